//! Hub enforcement: three levels (README, "Hub enforcement") and one switch per MIMI rule.
//!
//! * `off` — the hub only orders: the first commit per epoch wins (P§5.3 `wrongEpoch`).
//! * `mls` — plus MLS validity through `PublicGroup` (P§5.3, RFC 9420 §12).
//! * `full` — plus every MIMI rule of [`Rule`] (each cites its draft section), each of
//!   which can be switched off on its own so a design team can see what that rule buys.

use std::collections::BTreeSet;

/// How much the hub checks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    Off,
    Mls,
    Full,
}

impl std::str::FromStr for Enforcement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Enforcement::Off),
            "mls" => Ok(Enforcement::Mls),
            "full" => Ok(Enforcement::Full),
            other => Err(format!(
                "unknown enforcement level {other:?} (expected off, mls or full)"
            )),
        }
    }
}

/// One hub rule, with the text it comes from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The handshake is a valid MLS PublicMessage for the group (P§5.3, RFC 9420 §12).
    MlsValid,
    /// Every change is authorised by room policy against the hub state (P§7.1, RP§8;
    /// role constraints RP§3, disruptive changes RP§8.6, fixed membership RP§5).
    Policy,
    /// Participant list ↔ MLS membership (P§5.3, RP§8.1).
    ListMembership,
    /// Per-commit composition (P§7.5, P§7.6, RP§3, RP§4).
    Composition,
    /// A commit includes every proposal the hub accepted this epoch (P§3.5 for a leave's
    /// proposals; for all of them the project's choice 3 of `nodes/CHOICES.md`).
    CachedProposals,
    /// Removed or banned users are muted until their clients are gone (P§5.3).
    Mute,
    /// A commit comes with a GroupInfo that matches the new epoch and is signed by the
    /// committer (RP§7, P§5.3).
    GroupInfo,
    /// Welcomes only for KeyPackages fetched through the hub (P§5.2, P§5.5).
    WelcomeRouting,
    /// External commits only after an authorised `/groupInfo` (P§5.6, RP§8.1.1).
    ExternalJoin,
    /// `/submitMessage` comes from an active participant allowed to send, through its
    /// own provider (P§5.4, RP§8.3).
    SubmitSender,
    /// `/groupInfo` only for authorised requesters (P§5.6).
    GroupInfoAuth,
    /// The hub stays in `external_senders` (P§7.4).
    HubExternalSender,
    /// A handshake is submitted by the provider of its sender (the project's choice for the
    /// client ↔ user ↔ provider binding the draft leaves open, P§1.1; `nodes/CHOICES.md` 1).
    SenderProvider,
    /// Who may move the hub, and where to (x-hub-transfer §2 T1–T3, an extension).
    HubTransfer,
    /// x-exiting-state (an extension): only a user itself sets its role to the exiting
    /// marker, and an exiting user's role does not change ([`crate::room::exiting`]).
    ExitingRole,
    /// x-exiting-state: no client of an exiting user is added.
    ExitingAdd,
    /// x-exiting-state: no application message from an exiting user.
    ExitingSend,
}

impl Rule {
    pub const ALL: [Rule; 17] = [
        Rule::MlsValid,
        Rule::Policy,
        Rule::ListMembership,
        Rule::Composition,
        Rule::CachedProposals,
        Rule::Mute,
        Rule::GroupInfo,
        Rule::WelcomeRouting,
        Rule::ExternalJoin,
        Rule::SubmitSender,
        Rule::GroupInfoAuth,
        Rule::HubExternalSender,
        Rule::SenderProvider,
        Rule::HubTransfer,
        Rule::ExitingRole,
        Rule::ExitingAdd,
        Rule::ExitingSend,
    ];

    /// The level from which the rule is on.
    pub fn level(self) -> Enforcement {
        match self {
            Rule::MlsValid => Enforcement::Mls,
            _ => Enforcement::Full,
        }
    }

    /// Stable id, as used in scenario files and reports.
    pub fn id(self) -> &'static str {
        match self {
            Rule::MlsValid => "mls-valid",
            Rule::Policy => "policy",
            Rule::ListMembership => "list-membership",
            Rule::Composition => "composition",
            Rule::CachedProposals => "cached-proposals",
            Rule::Mute => "mute",
            Rule::GroupInfo => "group-info",
            Rule::WelcomeRouting => "welcome-routing",
            Rule::ExternalJoin => "external-join",
            Rule::SubmitSender => "submit-sender",
            Rule::GroupInfoAuth => "group-info-auth",
            Rule::HubExternalSender => "hub-external-sender",
            Rule::SenderProvider => "sender-provider",
            Rule::HubTransfer => "hub-transfer",
            Rule::ExitingRole => "exiting-role",
            Rule::ExitingAdd => "exiting-add",
            Rule::ExitingSend => "exiting-send",
        }
    }

    /// Where the rule comes from.
    pub fn reference(self) -> &'static str {
        match self {
            Rule::MlsValid => "P§5.3, RFC 9420 §12",
            Rule::Policy => "P§7.1, RP§8",
            Rule::ListMembership => "P§5.3, RP§8.1",
            Rule::Composition => "P§7.5, P§7.6, RP§3, RP§4",
            Rule::CachedProposals => "P§3.5",
            Rule::Mute => "P§5.3",
            Rule::GroupInfo => "RP§7, P§5.3",
            Rule::WelcomeRouting => "P§5.2, P§5.5",
            Rule::ExternalJoin => "P§5.6, RP§8.1.1",
            Rule::SubmitSender => "P§5.4, RP§8.3",
            Rule::GroupInfoAuth => "P§5.6",
            Rule::HubExternalSender => "P§7.4",
            Rule::SenderProvider => "P§1.1 Known Gaps (sim choice, nodes/CHOICES.md)",
            Rule::HubTransfer => "x-hub-transfer §2 (extension)",
            Rule::ExitingRole | Rule::ExitingAdd | Rule::ExitingSend => {
                "x-exiting-state (extension; nodes/src/room/exiting.rs)"
            }
        }
    }
}

impl std::str::FromStr for Rule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Rule::ALL.into_iter().find(|r| r.id() == s).ok_or_else(|| {
            let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
            format!("unknown hub rule {s:?} (known: {})", ids.join(", "))
        })
    }
}

/// The hub's enforcement configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnforcementConfig {
    pub level: Enforcement,
    /// Rules switched off although the level would have them on.
    #[serde(default)]
    pub disabled: BTreeSet<Rule>,
}

impl EnforcementConfig {
    pub fn new(level: Enforcement) -> Self {
        EnforcementConfig {
            level,
            disabled: BTreeSet::new(),
        }
    }

    /// Whether `rule` is enforced.
    pub fn on(&self, rule: Rule) -> bool {
        self.level >= rule.level() && !self.disabled.contains(&rule)
    }

    /// Whether the hub keeps an MLS public view at all.
    pub fn tracks_mls(&self) -> bool {
        self.level >= Enforcement::Mls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_switches() {
        let off = EnforcementConfig::new(Enforcement::Off);
        assert!(Rule::ALL.iter().all(|r| !off.on(*r)));
        let mls = EnforcementConfig::new(Enforcement::Mls);
        assert!(mls.on(Rule::MlsValid) && !mls.on(Rule::Policy));
        let mut full = EnforcementConfig::new(Enforcement::Full);
        assert!(Rule::ALL.iter().all(|r| full.on(*r)));
        full.disabled.insert(Rule::Mute);
        assert!(!full.on(Rule::Mute) && full.on(Rule::Policy));
        for r in Rule::ALL {
            assert_eq!(r.id().parse::<Rule>().unwrap(), r);
        }
        assert!("nope".parse::<Rule>().unwrap_err().contains("known"));
    }
}
