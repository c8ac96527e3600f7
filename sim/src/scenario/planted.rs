//! The planted bugs (`variant.bugs`) and adversary behaviours (`adversaries`) a scenario
//! file names. Planted bugs: the kebab-case names of
//! [`nodes::planted::Bug`].

use std::ops::Range;

use nodes::planted::Bug;
use toml::Spanned;

use crate::scenario::ScenarioError;

pub use nodes::planted::Bugs;

/// Parses `variant.bugs`; an unknown name is an error at its line listing the known ones.
pub fn parse_bugs(
    bugs: &[Spanned<String>],
    err: &dyn Fn(Range<usize>, String) -> ScenarioError,
) -> Result<Bugs, ScenarioError> {
    let mut out = Bugs::new();
    for b in bugs {
        let found = Bug::ALL.iter().copied().find(|x| x.id() == *b.get_ref());
        let Some(bug) = found else {
            return Err(err(
                b.span(),
                format!(
                    "field `variant.bugs`: unknown bug {:?} (expected one of {})",
                    b.get_ref(),
                    Bug::ALL
                        .iter()
                        .map(|x| x.id())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        out.insert(bug);
    }
    Ok(out)
}

/// Parses an adversary behaviour name; on failure, the known names.
pub fn parse_adversary(name: &str) -> Result<nodes::adversary::Adversary, String> {
    use nodes::adversary::Adversary;
    Adversary::ALL
        .iter()
        .copied()
        .find(|a| a.id() == name)
        .ok_or_else(|| {
            Adversary::ALL
                .iter()
                .map(|a| a.id())
                .collect::<Vec<_>>()
                .join(", ")
        })
}
