//! Scenario files: what world to build, which protocol variant to run, what the users do
//! and when, which faults to inject, how long each phase lasts and what must hold.
//!
//! The format is TOML (see `scenarios/README.md` for every field with an example). A
//! scenario is parsed ([`Scenario::parse`]) and then validated ([`Scenario::validate`]):
//! every error names the file, the line and the field, and says what to do.
//!
//! ```toml
//! name = "drafts-flows"
//! question = "Do the draft's flows converge under partitions, reordering and loss?"
//!
//! [world]
//! providers = ["a.example", "b.example", "c.example"]
//! room = { name = "clubhouse", hub = "a.example", preset = "cooperative" }
//! users = [
//!   { name = "alice", provider = "a.example" },
//!   { name = "cathy", provider = "c.example", clients = 2 },
//! ]
//!
//! [variant]
//! enforcement = "full"
//!
//! [phases]
//! chaos_ms = 20000
//! heal_ms = 60000
//!
//! [[script]]
//! at_ms = 0
//! client = "alice"
//! op = "create"
//!
//! [[faults.schedule]]
//! at_ms = 1500
//! kind = "partition"
//! a = "a.example"
//! b = "b.example"
//! for_ms = 3000
//!
//! [faults.swarm]
//! kinds = ["partition", "hold", "flap"]
//! count = [1, 4]
//! ```

mod expect;
pub mod planted;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use nodes::client::leave::LeaveOrder;
use nodes::hub::Enforcement;
use nodes::room::RolePreset;
use nodes::room::RoomStateMode;
use serde::{Deserialize, Serialize};
use toml::Spanned;

pub use expect::{CellJudgement, Expect, ExpectCase, Expectation, ExpectedOutcome};
use validate::line_col;
pub use validate::Resolved;

/// Most providers, users, clients per user, script steps and scheduled faults a
/// scenario may have.
pub const MAX_PROVIDERS: usize = 16;
pub const MAX_USERS: usize = 1024;
pub const MAX_CLIENTS_PER_USER: u32 = 16;
pub const MAX_STEPS: usize = 10_000;
pub const MAX_FAULTS: usize = 10_000;
/// Longest chaos or heal phase: one simulated day.
pub const MAX_PHASE_MS: u64 = 24 * 3600 * 1000;

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in reports and trace headers.
    pub name: String,
    /// The question this scenario answers, in one sentence.
    #[serde(default)]
    pub question: Option<String>,
    pub world: WorldSpec,
    #[serde(default)]
    pub variant: Variant,
    #[serde(default)]
    pub phases: Phases,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub script: Vec<Spanned<Step>>,
    #[serde(default)]
    pub faults: Faults,
    #[serde(default)]
    pub oracles: OracleConfig,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default)]
    pub matrix: Matrix,
    #[serde(default)]
    pub adversaries: Vec<Spanned<AdversarySpec>>,
    /// Set in reproducers written by `mimi-sim shrink` (`scenarios/regressions/`).
    #[serde(default)]
    pub regression: Option<Regression>,
    /// Variant keys set by a matrix axis or `--variant` (not by the file's `[variant]`),
    /// in key order; recorded in trace headers so a replay applies them again.
    #[serde(skip)]
    pub overrides: BTreeMap<String, String>,
}

/// Where a shrunk reproducer came from and the seed it must run with (keys and latency
/// still derive from the seed; the faults are the fixed schedule).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Regression {
    /// The seed to run the file with.
    pub seed: u64,
    /// The input the shrinker started from (file, seed, level).
    pub shrunk_from: String,
    /// Runs the shrinker needed.
    pub re_executions: u64,
    /// The oracle id it reproduces, or "liveness".
    pub oracle: String,
}

impl Scenario {
    /// The enforcement levels this file runs under.
    pub fn levels(&self) -> Vec<EnforcementLevel> {
        if self.matrix.enforcement.is_empty() {
            vec![self.variant.enforcement]
        } else {
            self.matrix.enforcement.clone()
        }
    }

    /// This scenario under another enforcement level.
    pub fn at_level(&self, level: EnforcementLevel) -> Scenario {
        let mut s = self.clone();
        s.variant.enforcement = level;
        s
    }

    /// Sets one single-valued variant key (`enforcement`, `hub_transfer`,
    /// `leave_order`, `room_state`) to `value`, as a matrix axis or `--variant KEY=VALUE` does.
    /// `enforcement` is not recorded in [`Scenario::overrides`] (records name it anyway).
    pub fn set_variant(&mut self, key: &str, value: &str) -> Result<(), String> {
        fn parse<T: serde::de::DeserializeOwned>(key: &str, value: &str) -> Result<T, String> {
            serde_json::from_value(serde_json::Value::String(value.to_string()))
                .map_err(|e| format!("variant `{key}` = {value:?}: {e}"))
        }
        match key {
            "enforcement" => self.variant.enforcement = parse(key, value)?,
            "hub_transfer" => self.variant.hub_transfer = parse(key, value)?,
            "leave_order" => self.variant.leave_order = parse(key, value)?,
            "room_state" => self.variant.room_state = parse(key, value)?,
            _ => {
                return Err(format!(
                    "`{key}` is not a variant key with one value (expected one of {})",
                    VARIANT_KEYS.join(", ")
                ))
            }
        }
        if key != "enforcement" {
            self.overrides.insert(key.to_string(), value.to_string());
        }
        Ok(())
    }

    /// Applies `KEY=VALUE` settings (from `--variant`).
    pub fn with_variants(&self, settings: &[String]) -> Result<Scenario, String> {
        let mut s = self.clone();
        for kv in settings {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                format!("--variant {kv:?}: write KEY=VALUE, e.g. leave_order=exiting")
            })?;
            s.set_variant(k.trim(), v.trim())
                .map_err(|e| format!("--variant {kv:?}: {e}"))?;
        }
        Ok(s)
    }

    /// Applies the overrides a run record or trace header names (`variant.overrides`).
    pub fn with_recorded_overrides(&self, variant: &serde_json::Value) -> Result<Scenario, String> {
        let mut s = self.clone();
        if let Some(o) = variant
            .get("overrides")
            .and_then(serde_json::Value::as_object)
        {
            for (k, v) in o {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("variant.overrides.{k}: not a string"))?;
                s.set_variant(k, v)?;
            }
        }
        Ok(s)
    }

    /// The value of every single-valued variant key, by key.
    pub fn variant_values(&self) -> BTreeMap<&'static str, String> {
        let name = |v: serde_json::Result<serde_json::Value>| {
            v.ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        let v = &self.variant;
        BTreeMap::from([
            ("enforcement", v.enforcement.name().to_string()),
            ("hub_transfer", name(serde_json::to_value(v.hub_transfer))),
            ("leave_order", name(serde_json::to_value(v.leave_order))),
            ("room_state", v.room_state.name().to_string()),
        ])
    }

    /// The matrix axes other than enforcement: `(variant key, values)` in key order.
    pub fn axes(&self) -> Vec<(&'static str, Vec<String>)> {
        fn names<T: Serialize>(values: &[T]) -> Vec<String> {
            values
                .iter()
                .filter_map(|x| serde_json::to_value(x).ok()?.as_str().map(str::to_string))
                .collect()
        }
        let m = &self.matrix;
        [
            ("hub_transfer", names(&m.hub_transfer)),
            ("leave_order", names(&m.leave_order)),
            ("room_state", names(&m.room_state)),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }

    /// Every cell of the file's matrix: each combination of the non-enforcement axes
    /// (outer, in key order) × each enforcement level (inner), applied to the variant.
    pub fn cells(&self) -> Result<Vec<MatrixCell>, String> {
        let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for (key, values) in self.axes() {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push((key.to_string(), v.clone()));
                        c
                    })
                })
                .collect();
        }
        let mut out = Vec::new();
        for combo in combos {
            for level in self.levels() {
                let mut s = self.at_level(level);
                for (k, v) in &combo {
                    s.set_variant(k, v)?;
                }
                out.push(MatrixCell {
                    level,
                    level_from_matrix: !self.matrix.enforcement.is_empty(),
                    overrides: combo.clone(),
                    scenario: s,
                });
            }
        }
        Ok(out)
    }

    /// The overrides as `key=value,...` (see [`variant_label`]).
    pub fn variant_label(&self) -> String {
        self.overrides
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// What this scenario (with its variant as set) expects.
    pub fn expectation(&self) -> Expectation {
        self.expect.for_variant(&self.variant_values())
    }
}

/// The variant keys that take one value (matrix axes, `--variant`, `[[expect.case]]`).
pub const VARIANT_KEYS: [&str; 4] = ["enforcement", "hub_transfer", "leave_order", "room_state"];

/// One cell of a file's matrix.
#[derive(Debug, Clone)]
pub struct MatrixCell {
    pub level: EnforcementLevel,
    /// Whether the level comes from `[matrix] enforcement` (else: the file's variant).
    pub level_from_matrix: bool,
    /// `(variant key, value)` of each non-enforcement axis.
    pub overrides: Vec<(String, String)>,
    /// The scenario with the level and the overrides applied.
    pub scenario: Scenario,
}

impl MatrixCell {
    /// `"leave_order=exiting"` (axes joined by `,`), or "" for a file without axes.
    pub fn variant_label(&self) -> String {
        variant_label(&self.overrides)
    }
}

/// `KEY=VALUE` pairs joined by `,`.
pub fn variant_label(overrides: &[(String, String)]) -> String {
    overrides
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Providers, users and the room.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorldSpec {
    /// Provider domains; each is one turmoil host running a hub and a follower.
    pub providers: Vec<Spanned<String>>,
    pub room: Spanned<RoomSpec>,
    pub users: Vec<Spanned<UserSpec>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSpec {
    pub name: String,
    /// The provider hosting the room (its hub).
    pub hub: String,
    #[serde(default)]
    pub preset: Preset,
}

/// The room's role preset (RP§4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    #[default]
    Cooperative,
    StrictlyAdministered,
    Moderated,
    DirectMessage,
}

impl Preset {
    pub fn role_preset(self) -> RolePreset {
        match self {
            Preset::Cooperative => RolePreset::Cooperative,
            Preset::StrictlyAdministered => RolePreset::StrictlyAdministered,
            Preset::Moderated => RolePreset::Moderated,
            Preset::DirectMessage => RolePreset::DirectMessage,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub name: String,
    pub provider: String,
    /// Devices of this user that publish KeyPackages at the start, named "1", "2", ...
    #[serde(default = "one")]
    pub clients: u32,
    /// Further devices that publish no KeyPackages (a new phone): they can only join by
    /// external commit. Named after the others.
    #[serde(default)]
    pub new_devices: u32,
}

fn one() -> u32 {
    1
}

/// The protocol variant.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Hub enforcement: "off", "mls" or "full".
    #[serde(default)]
    pub enforcement: EnforcementLevel,
    /// Rule ids switched off under "full" (see the README's rule table).
    #[serde(default)]
    pub disabled_rules: Vec<Spanned<String>>,
    /// Deliberate bugs planted in honest nodes (for oracle tests): kebab-case names of
    /// `nodes::planted::Bug`.
    #[serde(default)]
    pub bugs: Vec<Spanned<String>>,
    /// x-hub-transfer mechanism (nodes/src/transfer.rs): "cooperative" (default),
    /// "takeover", or "takeover-unfenced" (no fences: shows two sequencers).
    #[serde(default)]
    pub hub_transfer: HubTransferKind,
    /// Leave ordering: "atomic" (default, draft -06), "clients-first",
    /// "participant-first" or "exiting" (see `nodes::client::leave`).
    #[serde(default)]
    pub leave_order: LeaveOrder,
    /// Room state (issue 4): "bound" (default, the list in the GroupContext, P§7.5) or
    /// "hub-only" (kept at the hub, signalled out of band; `nodes::room::hub_only`).
    #[serde(default)]
    pub room_state: RoomStateMode,
}

/// The hub-transfer variant (x-hub-transfer). Only "takeover-unfenced" changes the
/// nodes (no fences sent, followers take `/notify` from any hub); the other two name
/// the mechanism the script's ops use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HubTransferKind {
    #[default]
    Cooperative,
    Takeover,
    TakeoverUnfenced,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnforcementLevel {
    Off,
    Mls,
    #[default]
    Full,
}

impl EnforcementLevel {
    pub fn level(self) -> Enforcement {
        match self {
            EnforcementLevel::Off => Enforcement::Off,
            EnforcementLevel::Mls => Enforcement::Mls,
            EnforcementLevel::Full => Enforcement::Full,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            EnforcementLevel::Off => "off",
            EnforcementLevel::Mls => "mls",
            EnforcementLevel::Full => "full",
        }
    }
}

/// The two phases (README, "The simulator"): chaos, in which faults fire, then heal, in
/// which every fault is lifted and every honest client must converge within `heal_ms`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Phases {
    #[serde(default = "default_chaos")]
    pub chaos_ms: u64,
    /// The liveness bound: time after healing (and after the last scripted step) by
    /// which every honest client must have converged.
    #[serde(default = "default_heal")]
    pub heal_ms: u64,
}

fn default_chaos() -> u64 {
    20_000
}
fn default_heal() -> u64 {
    60_000
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            chaos_ms: default_chaos(),
            heal_ms: default_heal(),
        }
    }
}

/// Link defaults.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// One-way latency range of every link, [min, max] ms (turmoil's exponential
    /// distribution between them).
    #[serde(default = "default_latency")]
    pub latency_ms: [u64; 2],
    /// turmoil's step length in ms (1 = full fidelity).
    #[serde(default = "default_tick")]
    pub tick_ms: u64,
}

fn default_latency() -> [u64; 2] {
    [1, 20]
}
fn default_tick() -> u64 {
    1
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency_ms: default_latency(),
            tick_ms: default_tick(),
        }
    }
}

/// One scripted operation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "toml::Table")]
pub struct Step {
    /// Simulated time (ms from the start) at which the client is told to do it.
    pub at_ms: u64,
    /// "user" (device 1) or "user/device".
    pub client: String,
    #[serde(flatten)]
    pub op: Op,
    /// The step may not happen: never handed to its client because its precondition
    /// never holds (e.g. the target was removed first by a racing step), or handed to an
    /// adversary's client that never settles it. Without it such a step makes the run
    /// `incomplete`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub may_abandon: bool,
    /// Hub enforcement rule ids (`nodes::hub::Rule::id`) that may refuse the step. A
    /// refusal by a rule not listed makes the run `incomplete`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub may_refuse: Vec<String>,
}

impl Step {
    /// Whether the scenario allows this step to end `how` (see [`StepEnd`]).
    pub fn allows(&self, how: &StepEnd) -> bool {
        match how {
            StepEnd::Done => true,
            // A step handed to a client that never settled it (possible only for an
            // adversary's client or a run that did not converge) did not happen either.
            StepEnd::Abandoned | StepEnd::Unfinished | StepEnd::Overtaken { .. } => {
                self.may_abandon
            }
            StepEnd::Refused { rule } => self.may_refuse.iter().any(|r| r == rule),
            StepEnd::Failed { .. } => false,
        }
    }
}

/// How a scripted step ended in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum StepEnd {
    /// Handed to its client, and its op (with any follow-up steps) succeeded.
    Done,
    /// Never handed to its client: its precondition never held.
    Abandoned,
    /// The hub refused it by enforcement rule `rule` (or by answer code, e.g.
    /// `notAllowed`, when no rule applies).
    Refused { rule: String },
    /// The op failed otherwise: the client could not start or finish it (`reason`).
    Failed { reason: String },
    /// Handed to its client but never settled (no success, no failure) by the run's end.
    Unfinished,
    /// Handed to its client, which was removed from the room before the op settled (a
    /// racing removal or ban won), so the op failed (`reason`).
    Overtaken { reason: String },
}

impl StepEnd {
    pub fn name(&self) -> &'static str {
        match self {
            StepEnd::Done => "done",
            StepEnd::Abandoned => "abandoned",
            StepEnd::Refused { .. } => "refused",
            StepEnd::Failed { .. } => "failed",
            StepEnd::Unfinished => "unfinished",
            StepEnd::Overtaken { .. } => "overtaken",
        }
    }
}

/// What a client is told to do (each maps to a `nodes::client::core::Command`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Op {
    /// Create the room (the client must be on the room's hub provider).
    Create,
    /// Add a user (all its clients, through the hub's /keyMaterial) with a role.
    Add {
        user: String,
        role: Option<u32>,
    },
    /// Add several users in one commit.
    AddUsers {
        users: Vec<String>,
    },
    /// Remove a user (participant-list update and all its clients).
    Remove {
        user: String,
    },
    Kick {
        user: String,
    },
    Ban {
        user: String,
    },
    /// Change a user's role.
    Role {
        user: String,
        role: u32,
    },
    /// Leave the room (the leave of P§3.5, in the order `[variant] leave_order` picks).
    Leave,
    /// Send a text message.
    Send {
        text: String,
    },
    /// Join by external commit (a new device of a participant).
    Join,
    /// Update own leaf.
    SelfUpdate,
    /// x-hub-transfer, cooperative: commit a move of the room's hub to provider `to`.
    MoveHub {
        to: String,
    },
    /// x-hub-transfer, takeover: the client's own provider becomes the hub.
    TakeOver,
}

/// Takes an unsigned integer field out of a table.
fn take_u64(t: &mut toml::Table, field: &str) -> Result<u64, String> {
    match t.remove(field) {
        Some(toml::Value::Integer(n)) if n >= 0 => Ok(n as u64),
        Some(v) => Err(format!(
            "field `{field}`: expected a non-negative integer, found {}",
            v.type_str()
        )),
        None => Err(format!("missing field `{field}`")),
    }
}

// serde's `flatten` cannot be combined with `deny_unknown_fields`, so the common fields
// are taken out by hand and the rest must be exactly one op (or fault) with its fields.
impl TryFrom<toml::Table> for Step {
    type Error = String;
    fn try_from(mut t: toml::Table) -> Result<Self, String> {
        let at_ms = take_u64(&mut t, "at_ms")?;
        let client = match t.remove("client") {
            Some(toml::Value::String(s)) => s,
            Some(v) => {
                return Err(format!(
                    "field `client`: expected a string, found {}",
                    v.type_str()
                ))
            }
            None => return Err("missing field `client`".into()),
        };
        let may_abandon = match t.remove("may_abandon") {
            None => false,
            Some(toml::Value::Boolean(b)) => b,
            Some(v) => {
                return Err(format!(
                    "field `may_abandon`: expected true or false, found {}",
                    v.type_str()
                ))
            }
        };
        let may_refuse = match t.remove("may_refuse") {
            None => Vec::new(),
            Some(toml::Value::Array(a)) => a
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    v => Err(format!(
                        "field `may_refuse`: expected hub rule ids (strings), found {}",
                        v.type_str()
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(v) => {
                return Err(format!(
                    "field `may_refuse`: expected a list of hub rule ids, found {}",
                    v.type_str()
                ))
            }
        };
        let op = Op::deserialize(toml::Value::Table(t)).map_err(|e| e.message().to_string())?;
        Ok(Step {
            at_ms,
            client,
            op,
            may_abandon,
            may_refuse,
        })
    }
}

impl TryFrom<toml::Table> for ScheduledFault {
    type Error = String;
    fn try_from(mut t: toml::Table) -> Result<Self, String> {
        let at_ms = take_u64(&mut t, "at_ms")?;
        let for_ms = take_u64(&mut t, "for_ms")?;
        let fault =
            Fault::deserialize(toml::Value::Table(t)).map_err(|e| e.message().to_string())?;
        Ok(ScheduledFault {
            at_ms,
            for_ms,
            fault,
        })
    }
}

impl Op {
    /// The name of the client command this op becomes (`nodes::client::core::Command::name`),
    /// as the client's `OpSucceeded`/`OpFailed` events name it.
    pub fn command_name(&self) -> &'static str {
        match self {
            Op::Create => "create-room",
            Op::Add { .. } => "add-user",
            Op::AddUsers { .. } => "add-users",
            Op::Remove { .. } => "remove-user",
            Op::Kick { .. } => "kick",
            Op::Ban { .. } => "ban",
            Op::Role { .. } => "change-role",
            Op::Leave => "leave",
            Op::Send { .. } => "send",
            Op::Join => "join-external",
            Op::SelfUpdate => "self-update",
            Op::MoveHub { .. } => "move-hub",
            Op::TakeOver => "take-over",
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Add { .. } => "add",
            Op::AddUsers { .. } => "add-users",
            Op::Remove { .. } => "remove",
            Op::Kick { .. } => "kick",
            Op::Ban { .. } => "ban",
            Op::Role { .. } => "role",
            Op::Leave => "leave",
            Op::Send { .. } => "send",
            Op::Join => "join",
            Op::SelfUpdate => "self-update",
            Op::MoveHub { .. } => "move-hub",
            Op::TakeOver => "take-over",
        }
    }
}

/// Faults: a fixed schedule and/or a seeded random swarm.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    #[serde(default)]
    pub schedule: Vec<Spanned<ScheduledFault>>,
    #[serde(default)]
    pub swarm: Option<Spanned<Swarm>>,
}

/// One fault at a fixed time, lifted after `for_ms` (or at healing, whichever is first).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "toml::Table")]
pub struct ScheduledFault {
    pub at_ms: u64,
    pub for_ms: u64,
    #[serde(flatten)]
    pub fault: Fault,
}

/// The fault kinds (scenarios/README.md, `[faults]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// Both directions between two providers are cut; in-flight messages are dropped.
    Partition { a: String, b: String },
    /// Messages from `from` to `to` are dropped; the other direction works.
    PartitionOneway { from: String, to: String },
    /// Messages between two providers are held, then released together (reordering).
    Hold { a: String, b: String },
    /// The link randomly drops (turmoil fail rate `rate` per send, repairing at 0.5).
    Loss { a: String, b: String, rate: f64 },
    /// The link goes down for the duration (a short partition: a flap).
    Flap { a: String, b: String },
    /// The link's latency range changes to [min_ms, max_ms].
    Latency {
        a: String,
        b: String,
        min_ms: u64,
        max_ms: u64,
    },
    /// The provider crashes and restarts with its durable state.
    Crash { provider: String },
    /// The client is offline: it neither sends nor receives; its provider keeps its mail.
    Offline { client: String },
}

/// The names of the fault kinds, as in files and in counts.
pub const FAULT_KINDS: [&str; 8] = [
    "partition",
    "partition-oneway",
    "hold",
    "loss",
    "flap",
    "latency",
    "crash",
    "offline",
];

/// One end of a faulty link: the field naming it and the provider.
pub type LinkEnd<'a> = (&'static str, &'a str);

impl Fault {
    /// The link a link fault is on, as (field name, provider) for each end (`a`/`b`, or
    /// `from`/`to` for a one-way partition); `None` for crashes and offline periods.
    pub fn link(&self) -> Option<(LinkEnd<'_>, LinkEnd<'_>)> {
        match self {
            Fault::Partition { a, b }
            | Fault::Hold { a, b }
            | Fault::Flap { a, b }
            | Fault::Loss { a, b, .. }
            | Fault::Latency { a, b, .. } => Some((("a", a), ("b", b))),
            Fault::PartitionOneway { from, to } => Some((("from", from), ("to", to))),
            Fault::Crash { .. } | Fault::Offline { .. } => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::PartitionOneway { .. } => "partition-oneway",
            Fault::Hold { .. } => "hold",
            Fault::Loss { .. } => "loss",
            Fault::Flap { .. } => "flap",
            Fault::Latency { .. } => "latency",
            Fault::Crash { .. } => "crash",
            Fault::Offline { .. } => "offline",
        }
    }
}

/// Seeded random faults during chaos: for each kind in `kinds`, a number of faults in
/// `count` (inclusive), each at a uniform time in the chaos phase on a uniformly drawn
/// link/provider/client, lasting a uniform time in `duration_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Swarm {
    pub kinds: Vec<String>,
    #[serde(default = "default_count")]
    pub count: [u32; 2],
    #[serde(default = "default_duration")]
    pub duration_ms: [u64; 2],
    /// Per-send fail rate of "loss" faults, in percent.
    #[serde(default = "default_loss")]
    pub loss_percent: u32,
    /// Latency range of "latency" faults, ms.
    #[serde(default = "default_slow")]
    pub slow_latency_ms: [u64; 2],
}

fn default_count() -> [u32; 2] {
    [1, 3]
}
fn default_duration() -> [u64; 2] {
    [200, 5_000]
}
fn default_loss() -> u32 {
    20
}
fn default_slow() -> [u64; 2] {
    [50, 400]
}

/// What happens when an oracle is violated.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OracleConfig {
    /// "stop" (the default) ends the run at the first violation; "record" keeps going
    /// and reports every violation.
    #[serde(default)]
    pub on_violation: OnViolation,
    /// Oracle ids not checked.
    #[serde(default)]
    pub disabled: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnViolation {
    #[default]
    Stop,
    Record,
}

/// The variants one file stands for: every enforcement level listed (default: the
/// variant's own) × every value of each other axis listed (default: the variant's own).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    #[serde(default)]
    pub enforcement: Vec<EnforcementLevel>,
    /// x-hub-transfer mechanisms to run the file under.
    #[serde(default)]
    pub hub_transfer: Vec<HubTransferKind>,
    /// Leave orderings to run the file under.
    #[serde(default)]
    pub leave_order: Vec<LeaveOrder>,
    /// Room-state bindings to run the file under ("bound", "hub-only").
    #[serde(default)]
    pub room_state: Vec<RoomStateMode>,
}

/// A malicious provider: its follower role and the clients it hosts misbehave.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdversarySpec {
    pub provider: String,
    /// Kebab-case name of `nodes::adversary::Adversary`.
    pub behaviour: String,
}

/// A scenario that could not be read, parsed or validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    #[error("{file}: cannot read the scenario: {reason}")]
    Read { file: String, reason: String },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        /// The field, as a path (`script[2].client`), when known.
        message: String,
    },
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<(Scenario, String), ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        let s = Scenario::parse(&file, &text)?;
        Ok((s, text))
    }

    /// Parses and validates scenario text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ScenarioError::Invalid {
                file: file.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        s.validate(file, text)?;
        Ok(s)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
