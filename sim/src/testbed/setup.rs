//! A node's configuration from a scenario file (`mimi-sim node --scenario FILE`): the
//! server core and clients configured exactly as the simulator configures them
//! ([`crate::world::run::make_server`], [`crate::world::run::make_client`]): variant, bugs, adversaries,
//! disabled rules, enforcement level.

use std::path::Path;

use nodes::client::core::Client;
use nodes::hub::EnforcementConfig;
use nodes::ids::{ClientUri, Domain};
use nodes::mls::MlsStorage;
use nodes::server::Server;

use crate::scenario::{Resolved, Scenario};
use crate::world::run::{enforcement_config, make_client, make_server};

/// A loaded and validated scenario (at one enforcement level and variant).
#[derive(Debug, Clone)]
pub struct Setup {
    pub scenario: Scenario,
    pub resolved: Resolved,
    /// The file's text (its hash goes into the trace header).
    pub text: String,
    pub file: String,
    /// The `--variant` arguments, as given.
    pub variants: Vec<String>,
}

impl Setup {
    /// Loads `path` at `enforcement` (default: the file's) with `variants` (`key=value`).
    pub fn load(
        path: &Path,
        enforcement: Option<&str>,
        variants: &[String],
    ) -> Result<Self, String> {
        let (s, text) = Scenario::load(path).map_err(|e| e.to_string())?;
        let s = match crate::cli::level(enforcement) {
            Some(l) => s.at_level(l),
            None => s,
        };
        let scenario = s.with_variants(variants)?;
        let file = path.display().to_string();
        let resolved = scenario.validate(&file, &text).map_err(|e| e.to_string())?;
        Ok(Setup {
            scenario,
            resolved,
            text,
            file,
            variants: variants.to_vec(),
        })
    }

    /// What configures a node's cores from this setup, as a state directory records it
    /// (`sim/src/testbed/store.rs`; the enforcement level is recorded beside it): the
    /// SHA-256 of the file's text and the variants.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let text = hex::encode(sha2::Sha256::digest(self.text.as_bytes()));
        format!(
            "scenario sha256:{text} with variants [{}]",
            self.variants.join(", ")
        )
    }

    pub fn config(&self) -> EnforcementConfig {
        enforcement_config(&self.scenario, &self.resolved)
    }

    pub fn server(&self, d: &Domain, seed: u64) -> Server {
        make_server(&self.scenario, &self.resolved, d, seed)
    }

    /// Sets `client`'s conduct as the simulator does ([`make_client`]): the file's planted
    /// bugs, and its provider's adversary behaviour if the file makes that provider
    /// malicious. For a client restored from its snapshot, which holds no conduct.
    pub fn set_conduct<S: MlsStorage>(&self, client: &mut Client<S>) {
        let d = client.uri().domain();
        let adversary = self
            .resolved
            .adversaries
            .iter()
            .find(|(x, _)| *x == d)
            .map(|(_, a)| *a);
        client.set_bugs(&self.resolved.bugs);
        client.set_adversary(adversary);
    }

    /// Client `c` and the KeyPackages it publishes at the start.
    pub fn client(&self, c: &ClientUri, seed: u64) -> (Client, usize) {
        make_client(&self.scenario, &self.resolved, c, seed)
    }
}
