//! Validating a scenario ([`Scenario::validate`]): every name and range, each error
//! pointing at the offending entry (file, line, column, field) and saying what to do.
//!
//! One check per part of the file, run in the file's order (name, world, phases,
//! network, script, faults, variant, oracles, expectations, adversaries): the first
//! error found is the one reported.

use std::collections::BTreeSet;
use std::ops::Range;

use nodes::adversary::Adversary;
use nodes::client::failure::RefusalCode;
use nodes::hub::Rule;
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use toml::Spanned;

use super::planted::{self, Bugs};
use super::{
    AdversarySpec, Expect, ExpectedOutcome, Fault, Op, Scenario, ScenarioError, ScheduledFault,
    Step, Swarm, UserSpec, FAULT_KINDS, MAX_CLIENTS_PER_USER, MAX_FAULTS, MAX_PHASE_MS,
    MAX_PROVIDERS, MAX_STEPS, MAX_USERS,
};
use crate::observe::oracles::Oracles;

/// A validated scenario with its names resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub providers: Vec<Domain>,
    pub hub: Domain,
    pub room: RoomUri,
    /// Every client, in (user order, device) order.
    pub clients: Vec<ClientUri>,
    /// The clients that publish no KeyPackages at the start (`new_devices`).
    pub new_devices: BTreeSet<ClientUri>,
    pub users: Vec<UserUri>,
    pub bugs: Bugs,
    pub disabled_rules: Vec<Rule>,
    /// Malicious providers and their behaviour.
    pub adversaries: Vec<(Domain, Adversary)>,
}

impl Resolved {
    /// Whether `c` is hosted by an honest provider.
    pub fn honest(&self, c: &ClientUri) -> bool {
        !self.adversaries.iter().any(|(d, _)| *d == c.domain())
    }

    /// The clients hosted by honest providers, in client order.
    pub fn honest_clients(&self) -> impl Iterator<Item = &ClientUri> {
        self.clients.iter().filter(|c| self.honest(c))
    }

    /// The providers that follow no adversary, in provider order.
    pub fn honest_providers(&self) -> impl Iterator<Item = &Domain> {
        self.providers
            .iter()
            .filter(|d| !self.adversaries.iter().any(|(a, _)| a == *d))
    }

    /// The oracles a run of `scenario` is judged by: all but those the file disables,
    /// armed with the ghost devices its malicious providers hold (oracle
    /// `no-ghost-device`). One arming for the simulator and the testbed judge.
    pub fn armed_oracles(&self, scenario: &Scenario) -> Oracles {
        let mut oracles = Oracles::new(
            scenario
                .oracles
                .disabled
                .iter()
                .map(|o| o.get_ref().clone()),
        );
        for (d, a) in &self.adversaries {
            if *a == Adversary::GhostDevice {
                oracles.add_ghosts(nodes::adversary::ghost_devices(
                    self.clients.iter().filter(|c| c.domain() == *d),
                ));
            }
        }
        oracles
    }
}

/// The answer codes a hub refuses with where no enforcement rule applies (P§5.3–5.6);
/// a step's `may_refuse` may name them as well as rule ids.
const REFUSAL_CODES: [RefusalCode; 6] = [
    RefusalCode::WrongEpoch,
    RefusalCode::NotAllowed,
    RefusalCode::InvalidProposal,
    RefusalCode::EpochTooOld,
    RefusalCode::NotAuthorized,
    RefusalCode::NoSuchRoom,
];

/// Where a byte offset is in `text` (1-based line and column).
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

/// Errors about a whole table rather than one entry point at the file's start.
const TOP: Range<usize> = 0..0;

/// Makes the errors of one scenario text.
struct Errors<'a> {
    file: &'a str,
    text: &'a str,
}

impl Errors<'_> {
    /// An error at `span` of the text.
    fn at(&self, span: Range<usize>, message: String) -> ScenarioError {
        let (line, column) = line_col(self.text, span.start);
        ScenarioError::Invalid {
            file: self.file.to_string(),
            line,
            column,
            message,
        }
    }
}

/// What a scenario's world declares: the names that steps, faults and adversaries may use.
struct Names<'a> {
    errors: &'a Errors<'a>,
    providers: Vec<Domain>,
    users: Vec<UserUri>,
    /// Every client, in (user order, device) order.
    clients: Vec<ClientUri>,
    new_devices: BTreeSet<ClientUri>,
}

impl Names<'_> {
    /// The provider `name` (field `field`), one of `world.providers`.
    fn provider(
        &self,
        span: Range<usize>,
        field: &str,
        name: &str,
    ) -> Result<Domain, ScenarioError> {
        self.providers
            .iter()
            .find(|d| d.as_str() == name)
            .cloned()
            .ok_or_else(|| {
                self.errors.at(
                    span,
                    format!(
                        "field `{field}`: {name:?} is not one of world.providers ({})",
                        self.providers
                            .iter()
                            .map(Domain::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }

    /// The user `name` (field `field`), one of `world.users`.
    fn user(&self, span: Range<usize>, field: &str, name: &str) -> Result<UserUri, ScenarioError> {
        self.users
            .iter()
            .find(|u| u.name() == name)
            .cloned()
            .ok_or_else(|| {
                self.errors.at(
                    span,
                    format!("field `{field}`: {name:?} is not a user of world.users"),
                )
            })
    }

    /// The client `name` ("alice" is "alice/1"; field `field`).
    fn client(
        &self,
        span: Range<usize>,
        field: &str,
        name: &str,
    ) -> Result<ClientUri, ScenarioError> {
        let (u, dev) = name.split_once('/').unwrap_or((name, "1"));
        let uu = self.user(span.clone(), field, u)?;
        self.clients
            .iter()
            .find(|c| c.user() == uu && c.device() == dev)
            .cloned()
            .ok_or_else(|| {
                self.errors.at(
                    span,
                    format!("field `{field}`: {name:?}: user {u} has no device {dev:?}"),
                )
            })
    }

    /// `world.users[i]`: its provider, a unique name, its device count; adds the user and
    /// its clients.
    fn add_user(&mut self, i: usize, u: &Spanned<UserSpec>) -> Result<(), ScenarioError> {
        let errors = self.errors;
        let err = |message| errors.at(u.span(), message);
        let us = u.get_ref();
        let d = self.provider(
            u.span(),
            &format!("world.users[{i}].provider"),
            &us.provider,
        )?;
        let uri = UserUri::new(&d, &us.name)
            .map_err(|e| err(format!("field `world.users[{i}].name`: {:?}: {e}", us.name)))?;
        if self.users.iter().any(|x| x.name() == us.name) {
            return Err(err(format!(
                "field `world.users[{i}].name`: {:?} is used twice (user names are unique across providers)",
                us.name
            )));
        }
        if us.clients == 0 || us.clients + us.new_devices > MAX_CLIENTS_PER_USER {
            return Err(err(format!(
                "field `world.users[{i}].clients`: give 1 to {MAX_CLIENTS_PER_USER}"
            )));
        }
        for dev in 1..=us.clients + us.new_devices {
            let c = uri
                .client(&dev.to_string())
                .map_err(|e| err(format!("world.users[{i}]: {e}")))?;
            if dev > us.clients {
                self.new_devices.insert(c.clone());
            }
            self.clients.push(c);
        }
        self.users.push(uri);
        Ok(())
    }
}

/// The oracle ids a file may name.
fn known_oracles() -> BTreeSet<&'static str> {
    crate::observe::oracles::ORACLES
        .iter()
        .map(|o| o.id)
        .collect()
}

impl Scenario {
    /// Checks every name and range; errors point at the offending entry.
    pub fn validate(&self, file: &str, text: &str) -> Result<Resolved, ScenarioError> {
        let errors = Errors { file, text };
        if self.name.trim().is_empty() {
            return Err(errors.at(TOP, "field `name`: must not be empty".into()));
        }
        let mut names = Names {
            errors: &errors,
            providers: self.check_providers(&errors)?,
            users: Vec::new(),
            clients: Vec::new(),
            new_devices: BTreeSet::new(),
        };
        let (hub, room) = self.check_room(&names)?;
        self.check_users(&mut names)?;
        self.check_phases(&errors)?;
        self.check_network(&errors)?;
        self.check_script(&names, &hub)?;
        self.check_fault_schedule(&names)?;
        if let Some(sw) = &self.faults.swarm {
            check_swarm(&errors, sw, names.providers.len())?;
        }
        let disabled_rules = self.check_disabled_rules(&errors)?;
        let bugs = planted::parse_bugs(&self.variant.bugs, &|span, m| errors.at(span, m))?;
        self.check_disabled_oracles(&errors)?;
        self.check_expectations(&errors)?;
        let adversaries = self.check_adversaries(&names)?;
        Ok(Resolved {
            providers: names.providers,
            hub,
            room,
            clients: names.clients,
            new_devices: names.new_devices,
            users: names.users,
            bugs,
            disabled_rules,
            adversaries,
        })
    }

    /// `world.providers`: 1 to [`MAX_PROVIDERS`] distinct domains.
    fn check_providers(&self, errors: &Errors) -> Result<Vec<Domain>, ScenarioError> {
        let w = &self.world;
        if w.providers.is_empty() || w.providers.len() > MAX_PROVIDERS {
            return Err(errors.at(
                TOP,
                format!("field `world.providers`: give 1 to {MAX_PROVIDERS} provider domains"),
            ));
        }
        let mut providers = Vec::new();
        for p in &w.providers {
            let d = Domain::new(p.get_ref()).map_err(|e| {
                errors.at(
                    p.span(),
                    format!(
                        "field `world.providers`: {:?} is not a domain: {e}",
                        p.get_ref()
                    ),
                )
            })?;
            if providers.contains(&d) {
                return Err(errors.at(
                    p.span(),
                    format!("field `world.providers`: {d} is listed twice"),
                ));
            }
            providers.push(d);
        }
        Ok(providers)
    }

    /// `world.room`: its hub is one of the providers, its name makes a room URI.
    fn check_room(&self, names: &Names) -> Result<(Domain, RoomUri), ScenarioError> {
        let w = &self.world;
        let room_spec = w.room.get_ref();
        let hub = names.provider(w.room.span(), "world.room.hub", &room_spec.hub)?;
        let room = RoomUri::new(&hub, &room_spec.name).map_err(|e| {
            names.errors.at(
                w.room.span(),
                format!("field `world.room.name`: {:?}: {e}", room_spec.name),
            )
        })?;
        Ok((hub, room))
    }

    /// `world.users`: 1 to [`MAX_USERS`] users, each checked by [`Names::add_user`].
    fn check_users(&self, names: &mut Names) -> Result<(), ScenarioError> {
        let w = &self.world;
        if w.users.is_empty() || w.users.len() > MAX_USERS {
            return Err(names.errors.at(
                TOP,
                format!("field `world.users`: give 1 to {MAX_USERS} users"),
            ));
        }
        for (i, u) in w.users.iter().enumerate() {
            names.add_user(i, u)?;
        }
        Ok(())
    }

    /// `phases`: both at most [`MAX_PHASE_MS`], healing not empty.
    fn check_phases(&self, errors: &Errors) -> Result<(), ScenarioError> {
        let p = &self.phases;
        if p.chaos_ms > MAX_PHASE_MS || p.heal_ms == 0 || p.heal_ms > MAX_PHASE_MS {
            return Err(errors.at(
                TOP,
                format!("field `phases`: chaos_ms must be at most {MAX_PHASE_MS} and heal_ms 1 to {MAX_PHASE_MS}"),
            ));
        }
        Ok(())
    }

    /// `network`: a latency range of at most a minute, a tick of 1 to 100 ms.
    fn check_network(&self, errors: &Errors) -> Result<(), ScenarioError> {
        let n = &self.network;
        if n.latency_ms[0] > n.latency_ms[1] || n.latency_ms[1] > 60_000 {
            return Err(errors.at(
                TOP,
                "field `network.latency_ms`: give [min, max] with min <= max <= 60000".into(),
            ));
        }
        if n.tick_ms == 0 || n.tick_ms > 100 {
            return Err(errors.at(TOP, "field `network.tick_ms`: give 1 to 100".into()));
        }
        Ok(())
    }

    /// `script`: at most [`MAX_STEPS`] steps, each checked by [`check_step`].
    fn check_script(&self, names: &Names, hub: &Domain) -> Result<(), ScenarioError> {
        if self.script.len() > MAX_STEPS {
            return Err(names
                .errors
                .at(TOP, format!("field `script`: at most {MAX_STEPS} steps")));
        }
        for (i, s) in self.script.iter().enumerate() {
            check_step(names, hub, i, s)?;
        }
        Ok(())
    }

    /// `faults.schedule`: at most [`MAX_FAULTS`] faults, each checked by
    /// [`check_scheduled_fault`].
    fn check_fault_schedule(&self, names: &Names) -> Result<(), ScenarioError> {
        if self.faults.schedule.len() > MAX_FAULTS {
            return Err(names.errors.at(
                TOP,
                format!("field `faults.schedule`: at most {MAX_FAULTS} faults"),
            ));
        }
        for (i, f) in self.faults.schedule.iter().enumerate() {
            check_scheduled_fault(names, i, f)?;
        }
        Ok(())
    }

    /// `variant.disabled_rules`: hub rule ids.
    fn check_disabled_rules(&self, errors: &Errors) -> Result<Vec<Rule>, ScenarioError> {
        let mut disabled_rules = Vec::new();
        for r in &self.variant.disabled_rules {
            let rule = Rule::ALL
                .iter()
                .copied()
                .find(|x| x.id() == r.get_ref())
                .ok_or_else(|| {
                    errors.at(
                        r.span(),
                        format!(
                        "field `variant.disabled_rules`: unknown rule {:?} (expected one of {})",
                        r.get_ref(),
                        Rule::ALL.iter().map(|r| r.id()).collect::<Vec<_>>().join(", ")
                    ),
                    )
                })?;
            disabled_rules.push(rule);
        }
        Ok(disabled_rules)
    }

    /// `oracles.disabled`: oracle ids.
    fn check_disabled_oracles(&self, errors: &Errors) -> Result<(), ScenarioError> {
        let known = known_oracles();
        for o in &self.oracles.disabled {
            if !known.contains(o.get_ref().as_str()) {
                return Err(errors.at(
                    o.span(),
                    format!(
                        "unknown oracle {:?} (expected one of {})",
                        o.get_ref(),
                        known.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `expect`, its level tables (which nest no further level) and its cases: each
    /// expectation by [`check_expect`].
    fn check_expectations(&self, errors: &Errors) -> Result<(), ScenarioError> {
        let mut expects = vec![("expect", &self.expect)];
        for (name, e) in [
            ("expect.off", &self.expect.off),
            ("expect.mls", &self.expect.mls),
            ("expect.full", &self.expect.full),
        ] {
            if let Some(e) = e {
                if e.off.is_some() || e.mls.is_some() || e.full.is_some() {
                    return Err(errors.at(
                        TOP,
                        format!("field `{name}`: a level's expectation cannot nest another level"),
                    ));
                }
                expects.push((name, e));
            }
        }
        let cases = self.check_expect_cases(errors)?;
        let known = known_oracles();
        for (name, e) in expects
            .into_iter()
            .map(|(n, e)| (n.to_string(), e))
            .chain(cases.iter().map(|(n, e)| (n.clone(), e)))
        {
            check_expect(errors, &known, &name, e)?;
        }
        Ok(())
    }

    /// `expect.case`: each `if` names variant keys and values; the cases' expectations,
    /// named by where they are in the file.
    fn check_expect_cases(&self, errors: &Errors) -> Result<Vec<(String, Expect)>, ScenarioError> {
        for (i, c) in self.expect.case.iter().enumerate() {
            if c.when.get_ref().is_empty() {
                return Err(errors.at(
                    c.when.span(),
                    format!("field `expect.case[{i}].if`: name at least one variant key"),
                ));
            }
            for (k, v) in c.when.get_ref() {
                let mut probe = self.clone();
                probe.set_variant(k, v).map_err(|e| {
                    errors.at(c.when.span(), format!("field `expect.case[{i}].if`: {e}"))
                })?;
            }
        }
        Ok(self
            .expect
            .case
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("expect.case[{i}]"), c.as_expect()))
            .collect())
    }

    /// `adversaries`: one known behaviour per provider.
    fn check_adversaries(&self, names: &Names) -> Result<Vec<(Domain, Adversary)>, ScenarioError> {
        let mut adversaries = Vec::new();
        for (i, a) in self.adversaries.iter().enumerate() {
            let d = check_adversary(names, i, a)?;
            if adversaries.iter().any(|(x, _)| x == &d.0) {
                return Err(names.errors.at(
                    a.span(),
                    format!(
                        "field `adversaries[{i}].provider`: {} already has a behaviour",
                        d.0
                    ),
                ));
            }
            adversaries.push(d);
        }
        Ok(adversaries)
    }
}

/// `script[i]`: its client, the rules and codes of its `may_refuse`, the users its op
/// names; only a client of the hub's provider creates the room.
fn check_step(
    names: &Names,
    hub: &Domain,
    i: usize,
    s: &Spanned<Step>,
) -> Result<(), ScenarioError> {
    let err = |message| names.errors.at(s.span(), message);
    let st = s.get_ref();
    let f = format!("script[{i}]");
    names.client(s.span(), &format!("{f}.client"), &st.client)?;
    for r in &st.may_refuse {
        let known =
            Rule::ALL.iter().any(|x| x.id() == r) || REFUSAL_CODES.iter().any(|c| c.name() == r);
        if !known {
            return Err(err(format!(
                "field `{f}.may_refuse`: unknown hub rule {r:?} (expected a rule id, one of {}, or an answer code the hub refuses with where no rule applies, one of {})",
                Rule::ALL
                    .iter()
                    .map(|r| r.id())
                    .collect::<Vec<_>>()
                    .join(", "),
                REFUSAL_CODES
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    match &st.op {
        Op::Add { user: u, .. }
        | Op::Remove { user: u }
        | Op::Kick { user: u }
        | Op::Ban { user: u }
        | Op::Role { user: u, .. } => {
            names.user(s.span(), &format!("{f}.user"), u)?;
        }
        Op::AddUsers { users: us } => {
            for u in us {
                names.user(s.span(), &format!("{f}.users"), u)?;
            }
        }
        Op::Create => {
            let c = names.client(s.span(), &format!("{f}.client"), &st.client)?;
            if c.domain() != *hub {
                return Err(err(format!(
                    "field `{f}.client`: only a client of the hub's provider {hub} can create the room"
                )));
            }
        }
        _ => {}
    }
    Ok(())
}

/// `faults.schedule[i]`: the providers or client it names (a link joins two different
/// providers), a loss rate in [0, 1], a latency range of at most a minute, a length.
fn check_scheduled_fault(
    names: &Names,
    i: usize,
    f: &Spanned<ScheduledFault>,
) -> Result<(), ScenarioError> {
    let err = |message| names.errors.at(f.span(), message);
    let field = format!("faults.schedule[{i}]");
    let sf = f.get_ref();
    match &sf.fault {
        Fault::Crash { provider: p } => {
            names.provider(f.span(), &format!("{field}.provider"), p)?;
        }
        Fault::Offline { client: c } => {
            names.client(f.span(), &format!("{field}.client"), c)?;
        }
        link => {
            if let Some(((fa, a), (fb, b))) = link.link() {
                let (x, y) = (
                    names.provider(f.span(), &format!("{field}.{fa}"), a)?,
                    names.provider(f.span(), &format!("{field}.{fb}"), b)?,
                );
                if x == y {
                    return Err(err(format!(
                        "field `{field}`: a link joins two different providers"
                    )));
                }
            }
        }
    }
    if let Fault::Loss { rate, .. } = &sf.fault {
        if !(0.0..=1.0).contains(rate) {
            return Err(err(format!(
                "field `{field}.rate`: give a probability in [0, 1]"
            )));
        }
    }
    if let Fault::Latency { min_ms, max_ms, .. } = &sf.fault {
        if min_ms > max_ms || *max_ms > 60_000 {
            return Err(err(format!(
                "field `{field}`: give min_ms <= max_ms <= 60000"
            )));
        }
    }
    if sf.for_ms == 0 {
        return Err(err(format!(
            "field `{field}.for_ms`: a fault lasts at least 1 ms"
        )));
    }
    Ok(())
}

/// `faults.swarm`: known kinds (link faults need two providers) and sane ranges.
fn check_swarm(
    errors: &Errors,
    sw: &Spanned<Swarm>,
    providers: usize,
) -> Result<(), ScenarioError> {
    let err = |message| errors.at(sw.span(), message);
    let s = sw.get_ref();
    if s.kinds.is_empty() {
        return Err(err(
            "field `faults.swarm.kinds`: name at least one fault kind".into(),
        ));
    }
    for k in &s.kinds {
        if !FAULT_KINDS.contains(&k.as_str()) {
            return Err(err(format!(
                "field `faults.swarm.kinds`: unknown fault kind {k:?} (expected one of {})",
                FAULT_KINDS.join(", ")
            )));
        }
        let links_needed = !matches!(k.as_str(), "crash" | "offline");
        if links_needed && providers < 2 {
            return Err(err(format!(
                "field `faults.swarm.kinds`: {k:?} needs at least two providers"
            )));
        }
    }
    if s.count[0] > s.count[1] || s.count[1] > 1000 {
        return Err(err(
            "field `faults.swarm.count`: give [min, max] with min <= max <= 1000".into(),
        ));
    }
    if s.duration_ms[0] == 0 || s.duration_ms[0] > s.duration_ms[1] {
        return Err(err(
            "field `faults.swarm.duration_ms`: give [min, max] with 1 <= min <= max".into(),
        ));
    }
    if s.loss_percent > 100 {
        return Err(err(
            "field `faults.swarm.loss_percent`: give 0 to 100".into()
        ));
    }
    if s.slow_latency_ms[0] > s.slow_latency_ms[1] || s.slow_latency_ms[1] > 60_000 {
        return Err(err(
            "field `faults.swarm.slow_latency_ms`: give [min, max] with min <= max <= 60000".into(),
        ));
    }
    Ok(())
}

/// One expectation (`name`: where it is in the file): known oracles, listed only with a
/// violation outcome; `within_seeds` 1 to 100000 and only for a failure outcome.
fn check_expect(
    errors: &Errors,
    known: &BTreeSet<&str>,
    name: &str,
    e: &Expect,
) -> Result<(), ScenarioError> {
    for o in &e.violations {
        if !known.contains(o.get_ref().as_str()) {
            return Err(errors.at(
                o.span(),
                format!(
                    "field `{name}.violations`: unknown oracle {:?} (expected one of {})",
                    o.get_ref(),
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    if !e.violations.is_empty() && e.outcome != ExpectedOutcome::Violation {
        return Err(errors.at(
            TOP,
            format!("field `{name}.violations`: only with outcome = \"violation\""),
        ));
    }
    if e.within_seeds.is_some_and(|n| n == 0 || n > 100_000) {
        return Err(errors.at(
            TOP,
            format!("field `{name}.within_seeds`: give 1 to 100000"),
        ));
    }
    if e.within_seeds.is_some() && e.outcome == ExpectedOutcome::Ok {
        return Err(errors.at(
            TOP,
            format!("field `{name}.within_seeds`: only with outcome \"violation\" or \"liveness\" (\"ok\" holds in every seed)"),
        ));
    }
    Ok(())
}

/// `adversaries[i]`: a provider of the world and a known behaviour.
fn check_adversary(
    names: &Names,
    i: usize,
    a: &Spanned<AdversarySpec>,
) -> Result<(Domain, Adversary), ScenarioError> {
    let spec = a.get_ref();
    let d = names.provider(
        a.span(),
        &format!("adversaries[{i}].provider"),
        &spec.provider,
    )?;
    let behaviour = planted::parse_adversary(&spec.behaviour).map_err(|known| {
        names.errors.at(
            a.span(),
            format!(
                "field `adversaries[{i}].behaviour`: unknown behaviour {:?} (expected one of {known})",
                spec.behaviour
            ),
        )
    })?;
    Ok((d, behaviour))
}
