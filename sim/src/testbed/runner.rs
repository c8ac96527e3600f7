//! `mimi-sim testbed SCENARIO`: one run of a scenario file on real processes.
//!
//! 1. Certificates for the scenario's providers; one `mimi-sim node --scenario FILE`
//!    process per provider on loopback (port 0; the runner reads the printed addresses).
//! 2. One fault proxy ([`super::proxy`]) per ordered pair of providers; node X's peers
//!    file points peer Y at the proxy X→Y.
//! 3. The scenario's clients are created through the control API; then the scenario is
//!    driven as the simulator drives it ([`crate::world::run`]), on the same schedule
//!    ([`crate::world::schedule`]): fault windows open and close at their times,
//!    scripted steps are handed to their clients when due and ready, and after healing
//!    the runner checks convergence every [`crate::world::run::CONVERGENCE_CHECK_MS`]
//!    until the liveness bound. Scenario times are multiplied by `--time-scale` (wall ms
//!    per scenario ms).
//! 4. Crash windows: the provider's process is killed with SIGKILL and restarted with the
//!    same `--state` folder when the window ends (the proxies towards it follow its new
//!    address). Its clients live in the process, so they are killed with it.
//!    Offline windows: the node's control API `/online`.
//! 5. The nodes' journals are merged ([`super::merge`]) and judged by the simulator's
//!    oracles ([`super::judge`]); the result is a [`RunReport`] like `mimi-sim run`'s.
//!
//! Every child process has `kill_on_drop` and is killed and waited for when the run
//! ends, fails or is cancelled (Ctrl-C drops the run's future).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nodes::ids::{ClientUri, Domain};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::control::{ConvergeAnswer, ConvergeView};
use super::judge;
use super::merge::{self, Raw};
use super::peers::PeersFile;
use super::proxy::{Proxy, ProxyStats};
use super::setup::Setup;
use super::tls::wall_ms;
use crate::observe::record::{Event, Header, Phase, What, TRACE_FORMAT};
use crate::scenario::{Fault, Op, StepEnd};
use crate::world::faults::Window;
use crate::world::run::{
    client_key, outcome_of, scenario_hash, step_notes, variant_json, Outcome, RunReport, StepNote,
    CLIENT_TICK_MS, CONVERGENCE_CHECK_MS,
};
use crate::world::schedule::Schedule;
use mimi_reports::records::trace::TestbedHeader;

/// How long a node may take to print its addresses.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a control API call may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// The driver's poll interval (wall time).
const POLL: Duration = Duration::from_millis(20);
/// Extra wall time past the liveness bound before the runner gives up regardless.
const GRACE: Duration = Duration::from_secs(30);

/// Why a testbed run could not be made (not an outcome: the run did not happen).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{0}")]
    Scenario(String),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificates: {0}")]
    Certs(String),
    #[error("node {provider} did not start: {reason}")]
    NodeStart { provider: String, reason: String },
    #[error(transparent)]
    Proxy(#[from] super::proxy::ProxyError),
    #[error("control API of {provider}: {reason}")]
    Control { provider: String, reason: String },
    #[error(transparent)]
    Merge(#[from] merge::MergeError),
    #[error("interrupted (Ctrl-C); every node process was killed")]
    Interrupted,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunnerError + '_ {
    move |source| RunnerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The `mimi-sim` binary that runs the nodes.
    pub exe: PathBuf,
    /// Wall ms per scenario ms.
    pub time_scale: f64,
    /// The folder for this run (certs, peers files, node state, logs).
    pub dir: PathBuf,
    pub seed: u64,
    pub enforcement: Option<String>,
    pub variants: Vec<String>,
}

/// One testbed run's results.
#[derive(Debug)]
pub struct TestbedRun {
    pub report: RunReport,
    /// The merged trace (header first).
    pub trace: Vec<String>,
    /// Per directed link "a→b": what its proxy did.
    pub proxies: BTreeMap<String, ProxyStats>,
    /// How each fault kind of the run was injected over TCP.
    pub fault_notes: BTreeMap<String, String>,
    /// Every node process started (for checking none survives).
    pub pids: Vec<u32>,
    /// Journal lines that were not JSON (a killed process's last line) and lines the
    /// judge could not read.
    pub unreadable_lines: u64,
}

/// How each fault kind is done on the testbed (the proxy's module docs say more).
pub fn fault_note(kind: &str) -> &'static str {
    match kind {
        "partition" => "proxy resets the link's connections and refuses new ones both ways",
        "flap" => "as partition (a short one), both ways",
        "partition-oneway" => {
            "proxy resets a connection when bytes flow from→to; the other direction passes (an exchange cut halfway fails both ways)"
        }
        "hold" => "proxy holds bytes per connection and direction, releases them at the end (reordering across connections only)",
        "loss" => "TCP loses no bytes: the proxy resets a connection with the given rate per chunk and refuses new ones at that rate",
        "latency" => "proxy delays every chunk by a uniform draw in [min, max] ms",
        "crash" => "SIGKILL of the provider's process (its clients too: they live in it) and a restart on the same --state folder",
        "offline" => "control API /online: the node keeps the client's outbox and mail",
        _ => "unknown fault kind: not injected",
    }
}

struct NodeProc {
    child: Option<tokio::process::Child>,
    mimi: SocketAddr,
    control: SocketAddr,
    state: PathBuf,
    peers: PathBuf,
}

/// The node processes and proxies of a run; killing on drop.
struct Bed {
    exe: PathBuf,
    dir: PathBuf,
    file: PathBuf,
    seed: u64,
    enforcement: String,
    variants: Vec<String>,
    /// `--time-scale`, passed to every node (its cores' clock).
    time_scale: f64,
    nodes: BTreeMap<Domain, NodeProc>,
    proxies: BTreeMap<(Domain, Domain), Proxy>,
    pids: Vec<u32>,
}

impl Bed {
    async fn spawn(&mut self, d: &Domain) -> Result<(), RunnerError> {
        let state = self.dir.join("state").join(d.as_str());
        let peers = self.dir.join(format!("peers-{}.toml", d.as_str()));
        let log_path = self.dir.join(format!("{}.log", d.as_str()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg("node")
            .arg("--provider")
            .arg(d.as_str())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--control")
            .arg("127.0.0.1:0")
            .arg("--peers")
            .arg(&peers)
            .arg("--state")
            .arg(&state)
            .arg("--seed")
            .arg(self.seed.to_string())
            .arg("--enforcement")
            .arg(&self.enforcement)
            .arg("--scenario")
            .arg(&self.file)
            .arg("--time-scale")
            .arg(self.time_scale.to_string());
        for v in &self.variants {
            cmd.arg("--variant").arg(v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let fail = |reason: String| RunnerError::NodeStart {
            provider: d.to_string(),
            reason,
        };
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", self.exe.display())))?;
        if let Some(pid) = child.id() {
            self.pids.push(pid);
            spawned(pid);
        }
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| fail("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
        let line = match first {
            Ok(Ok(Some(l))) => l,
            Ok(Ok(None)) | Ok(Err(_)) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(fail(format!(
                    "it exited without printing its addresses (see {})",
                    log_path.display()
                )));
            }
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(fail(format!("no addresses within {START_TIMEOUT:?}")));
            }
        };
        let (mimi, control) =
            parse_started(&line).ok_or_else(|| fail(format!("unexpected first line {line:?}")))?;
        // Keep draining stdout so the node never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.nodes.insert(
            d.clone(),
            NodeProc {
                child: Some(child),
                mimi,
                control,
                state,
                peers,
            },
        );
        Ok(())
    }

    /// SIGKILL and wait.
    async fn kill(&mut self, d: &Domain) {
        if let Some(n) = self.nodes.get_mut(d) {
            if let Some(mut c) = n.child.take() {
                let _ = c.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(10), c.wait()).await;
            }
        }
    }

    fn up(&self, d: &Domain) -> bool {
        self.nodes.get(d).is_some_and(|n| n.child.is_some())
    }

    async fn kill_all(&mut self) {
        let ds: Vec<Domain> = self.nodes.keys().cloned().collect();
        for d in ds {
            self.kill(&d).await;
        }
        self.proxies.clear();
    }

    async fn call(
        &self,
        d: &Domain,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), RunnerError> {
        let n = self
            .nodes
            .get(d)
            .filter(|n| n.child.is_some())
            .ok_or_else(|| RunnerError::Control {
                provider: d.to_string(),
                reason: "the node is down".into(),
            })?;
        control_call(n.control, method, path, body)
            .await
            .map_err(|reason| RunnerError::Control {
                provider: d.to_string(),
                reason,
            })
    }
}

/// `mimi-sim node <domain> mimi=ADDR control=ADDR` → the two addresses.
fn parse_started(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let mut mimi = None;
    let mut control = None;
    for w in line.split_whitespace() {
        if let Some(a) = w.strip_prefix("mimi=") {
            mimi = a.parse().ok();
        } else if let Some(a) = w.strip_prefix("control=") {
            control = a.parse().ok();
        }
    }
    Some((mimi?, control?))
}

/// One JSON request to a control API (HTTP/1.1, `Connection: close`).
pub async fn control_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&out);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in {head:?}"))?;
        let v = serde_json::from_str(body).unwrap_or(Value::Null);
        Ok((status, v))
    };
    tokio::time::timeout(CONTROL_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {CONTROL_TIMEOUT:?}")))
}

/// What the runner knows of a client from the last `/converge`.
#[derive(Debug, Clone, Default)]
struct ClientSnap {
    online: bool,
    mail: u64,
    idle: bool,
    view: Option<ConvergeView>,
}

/// The last `/converge` answers.
#[derive(Default)]
struct Snap {
    nodes: BTreeMap<Domain, ConvergeAnswer>,
    clients: BTreeMap<ClientUri, ClientSnap>,
}

impl Snap {
    fn participant(&self, c: &ClientUri, user: &str) -> bool {
        self.clients
            .get(c)
            .and_then(|s| s.view.as_ref())
            .is_some_and(|v| v.participants.iter().any(|p| p == user))
    }
}

struct Driver<'a> {
    bed: &'a mut Bed,
    setup: &'a Setup,
    start: Instant,
    start_ms: u64,
    scale: f64,
    lines: Vec<Raw>,
    snap: Snap,
    offline: BTreeSet<ClientUri>,
    faults: BTreeMap<String, u64>,
    waiting: BTreeMap<ClientUri, VecDeque<usize>>,
    names: BTreeMap<String, ClientUri>,
    honest: BTreeSet<ClientUri>,
}

impl Driver<'_> {
    /// Scenario time now (ms).
    fn t(&self) -> u64 {
        (self.start.elapsed().as_secs_f64() * 1000.0 / self.scale) as u64
    }

    fn sim_line(&mut self, what: What) {
        let t = wall_ms();
        let event = Event {
            t,
            node: "sim".to_string(),
            what,
        };
        self.lines.push(Raw::new(t, event));
    }

    fn proxy(&self, a: &str, b: &str) -> Option<&Proxy> {
        let (a, b) = (Domain::new(a).ok()?, Domain::new(b).ok()?);
        self.bed.proxies.get(&(a, b))
    }

    /// Opens or closes fault window `w` (how each kind is done: [`fault_note`]).
    async fn open_fault(&mut self, w: &Window, open: bool) -> Result<(), RunnerError> {
        let fault = w.describe();
        self.sim_line(if open {
            What::FaultStart { fault }
        } else {
            What::FaultEnd { fault }
        });
        if open {
            *self.faults.entry(w.fault.kind().to_string()).or_default() += 1;
        }
        match &w.fault {
            Fault::Crash { provider } => self.crash(provider, open).await?,
            Fault::Offline { client } => self.offline(client, open).await,
            link => self.link_fault(link, open),
        }
        Ok(())
    }

    /// A link fault starts (`open`) or ends: the proxies of the link count it.
    fn link_fault(&self, fault: &Fault, open: bool) {
        let n = |x: &mut u32| {
            if open {
                *x += 1;
            } else {
                *x = x.saturating_sub(1);
            }
        };
        match fault {
            Fault::Partition { a, b } | Fault::Flap { a, b } => {
                for (x, y) in [(a, b), (b, a)] {
                    if let Some(p) = self.proxy(x, y) {
                        p.update(|f| n(&mut f.partition));
                    }
                }
            }
            Fault::Hold { a, b } => {
                for (x, y) in [(a, b), (b, a)] {
                    if let Some(p) = self.proxy(x, y) {
                        p.update(|f| n(&mut f.hold));
                    }
                }
            }
            Fault::PartitionOneway { from, to } => {
                if let Some(p) = self.proxy(from, to) {
                    p.update(|f| n(&mut f.block_forward));
                }
                if let Some(p) = self.proxy(to, from) {
                    p.update(|f| n(&mut f.block_back));
                }
            }
            Fault::Loss { a, b, rate } => {
                for (x, y) in [(a, b), (b, a)] {
                    if let Some(p) = self.proxy(x, y) {
                        p.update(|f| {
                            n(&mut f.loss);
                            f.loss_rate = *rate;
                        });
                    }
                }
            }
            Fault::Latency {
                a,
                b,
                min_ms,
                max_ms,
            } => {
                let scale = self.scale;
                let lat = (
                    (*min_ms as f64 * scale) as u64,
                    (*max_ms as f64 * scale) as u64,
                );
                for (x, y) in [(a, b), (b, a)] {
                    if let Some(p) = self.proxy(x, y) {
                        p.update(|f| {
                            n(&mut f.latency);
                            f.latency_ms = lat;
                        });
                    }
                }
            }
            Fault::Crash { .. } | Fault::Offline { .. } => {}
        }
    }

    /// A crash window starts (`open`: the provider's process is killed) or ends (it is
    /// restarted on its state and the proxies towards it follow its new address).
    /// Overlapping windows: the first crash wins, its end restarts.
    async fn crash(&mut self, provider: &str, open: bool) -> Result<(), RunnerError> {
        let Ok(d) = Domain::new(provider) else {
            return Ok(());
        };
        if open && self.bed.up(&d) {
            self.bed.kill(&d).await;
            self.sim_line(What::NodeKilled {
                provider: provider.to_string(),
            });
        } else if !open && !self.bed.up(&d) {
            self.bed.spawn(&d).await?;
            let addr = self.bed.nodes[&d].mimi;
            for ((_, to), p) in &self.bed.proxies {
                if *to == d {
                    p.retarget(addr);
                }
            }
            self.sim_line(What::NodeRestarted {
                provider: provider.to_string(),
            });
        }
        Ok(())
    }

    /// An offline window starts (`open`) or ends for `client`: its node's control API
    /// `/online`.
    async fn offline(&mut self, client: &str, open: bool) {
        let Some(c) = self.names.get(&client_key(client)).cloned() else {
            return;
        };
        if open {
            self.offline.insert(c.clone());
        } else {
            self.offline.remove(&c);
        }
        let body = json!({"client": c.as_str(), "online": !open});
        // A node that is down has no client to take offline: noted, not fatal.
        if let Err(e) = self
            .bed
            .call(&c.domain(), "POST", "/online", Some(&body))
            .await
        {
            self.sim_line(What::ControlError {
                reason: e.to_string(),
            });
        }
    }

    /// Refreshes the snapshot from every node that is up.
    async fn poll(&mut self) {
        let room = urlencode(self.setup.resolved.room.as_str());
        let ds: Vec<Domain> = self.bed.nodes.keys().cloned().collect();
        self.snap = Snap::default();
        for d in ds {
            if !self.bed.up(&d) {
                continue;
            }
            let Ok((200, v)) = self
                .bed
                .call(&d, "GET", &format!("/converge?room={room}"), None)
                .await
            else {
                continue;
            };
            let answer: ConvergeAnswer = match serde_json::from_value(v) {
                Ok(a) => a,
                Err(e) => {
                    self.sim_line(What::ControlError {
                        reason: format!("{d}'s /converge answer: {e}"),
                    });
                    continue;
                }
            };
            for c in &answer.clients {
                let Ok(uri) = c.client.parse() else {
                    continue;
                };
                self.snap.clients.insert(
                    uri,
                    ClientSnap {
                        online: c.online,
                        mail: c.mail,
                        idle: c.idle,
                        view: c.view.clone(),
                    },
                );
            }
            self.snap.nodes.insert(d, answer);
        }
    }

    /// As the simulator's `ready`: whether `op` makes sense for `c` now.
    fn ready(&self, c: &ClientUri, op: &Op) -> bool {
        let Some(s) = self.snap.clients.get(c) else {
            return false;
        };
        if !s.online || self.offline.contains(c) {
            return false;
        }
        let users: BTreeMap<String, String> = self
            .setup
            .resolved
            .users
            .iter()
            .map(|u| (u.name(), u.as_str().to_string()))
            .collect();
        let participant = |u: &str| users.get(u).is_some_and(|u| self.snap.participant(c, u));
        match op {
            Op::Create => true,
            Op::Join => self.snap.clients.keys().any(|o| {
                o != c && o.user() == c.user() && self.snap.participant(o, c.user().as_str())
            }),
            Op::Remove { user } | Op::Kick { user } | Op::Ban { user } | Op::Role { user, .. } => {
                participant(user)
            }
            _ => s.view.is_some(),
        }
    }

    async fn hand(&mut self, c: &ClientUri, i: usize) {
        let setup = self.setup;
        let step = setup.scenario.script[i].get_ref();
        let users: BTreeMap<String, String> = setup
            .resolved
            .users
            .iter()
            .map(|u| (u.name(), u.as_str().to_string()))
            .collect();
        let body = json!({
            "client": c.as_str(),
            "room": setup.resolved.room.as_str(),
            "hub": setup.resolved.hub.as_str(),
            "users": users,
            "preset": setup.scenario.world.room.get_ref().preset,
            "op": step.op,
            "step": i,
        });
        match self
            .bed
            .call(&c.domain(), "POST", "/step", Some(&body))
            .await
        {
            // 409: the client refused it; the node journalled `op` and `op-refused`.
            Ok((200 | 409, _)) => {}
            Ok((status, v)) => self.sim_line(What::OpFailed {
                step: i as u64,
                client: c.as_str().to_string(),
                reason: format!(
                    "{}: the node answered {status}: {}",
                    step.op.name(),
                    v["error"]
                ),
            }),
            Err(e) => self.sim_line(What::OpFailed {
                step: i as u64,
                client: c.as_str().to_string(),
                reason: format!("{}: {e}", step.op.name()),
            }),
        }
    }

    /// As the simulator's `converged`, over the nodes' `/converge` answers.
    /// `Ok` once every node is idle and every honest client has converged with the hub
    /// (as the simulator judges it, from the nodes' snapshots); else the first reason.
    fn converged(&self) -> Result<(), String> {
        self.nodes_idle()?;
        let hub = self.hub_state();
        for c in &self.honest {
            self.client_converged(c, hub.as_ref())?;
        }
        Ok(())
    }

    /// Every node answers, has no client message waiting and has delivered its fan-out.
    fn nodes_idle(&self) -> Result<(), String> {
        for d in self.bed.nodes.keys() {
            let Some(n) = self.snap.nodes.get(d) else {
                return Err(format!("{d} is down or does not answer"));
            };
            if n.waiting > 0 {
                return Err(format!("{d} has client messages waiting"));
            }
            if !n.fanout_idle {
                return Err(format!("{d}'s hub has fan-out not yet delivered"));
            }
        }
        Ok(())
    }

    /// The room as the current hub sees it (epoch, GroupContext, members); without an
    /// MLS view at the hub, as the honest client at the highest epoch sees it.
    fn hub_state(&self) -> Option<(u64, String, BTreeSet<String>)> {
        // The current hub: sequencing the room with the highest generation.
        let hub = self
            .snap
            .nodes
            .values()
            .filter_map(|n| n.hub.as_ref().filter(|h| h.sequencing))
            .max_by_key(|h| h.generation.unwrap_or(0))
            .or_else(|| {
                self.snap
                    .nodes
                    .get(&self.setup.resolved.hub)
                    .and_then(|n| n.hub.as_ref())
            })
            .and_then(|h| {
                Some((
                    h.epoch?,
                    h.group_context.clone().unwrap_or_default(),
                    h.members.iter().flatten().cloned().collect(),
                ))
            });
        // Without an MLS view at the hub: the members' highest epoch.
        hub.or_else(|| {
            self.snap
                .clients
                .iter()
                .filter(|(c, _)| self.honest.contains(*c))
                .filter_map(|(_, s)| s.view.as_ref())
                .max_by_key(|v| v.epoch)
                .map(|v| {
                    (
                        v.epoch,
                        v.group_context.clone(),
                        v.members.iter().cloned().collect(),
                    )
                })
        })
    }

    /// Honest client `c` is idle, online and at the hub's epoch and GroupContext if it is
    /// a member there, out of the room if not.
    fn client_converged(
        &self,
        c: &ClientUri,
        hub: Option<&(u64, String, BTreeSet<String>)>,
    ) -> Result<(), String> {
        let member = hub.is_some_and(|(_, _, m)| m.contains(c.as_str()));
        let Some(s) = self.snap.clients.get(c) else {
            if member {
                return Err(format!(
                    "{c} is a member at the hub but its node does not have it"
                ));
            }
            return Ok(());
        };
        if !s.online || s.mail > 0 {
            return Err(format!("{c} is offline or has undelivered mail"));
        }
        if !s.idle {
            return Err(format!("{c} has an operation in flight"));
        }
        match (hub, &s.view) {
            (Some((e, gc, _)), Some(v)) if member => {
                let ve = v.epoch;
                if ve != *e || v.group_context != *gc {
                    return Err(format!("{c} is at epoch {ve} but the hub is at {e}"));
                }
            }
            (Some((e, _, _)), None) if member => {
                return Err(format!(
                    "{c} is a member at the hub (epoch {e}) but has not joined"
                ));
            }
            (_, Some(v)) if !member => {
                return Err(format!(
                    "{c} still sees itself in the room at epoch {} but the hub does not",
                    v.epoch
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Percent-encodes a URI for a query string.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One run of `file` on the testbed. Every process it started is killed and waited for
/// before it returns (and killed if the future is dropped).
pub async fn run_once(file: &Path, opts: &RunOptions) -> Result<TestbedRun, RunnerError> {
    let setup = Setup::load(file, opts.enforcement.as_deref(), &opts.variants)
        .map_err(RunnerError::Scenario)?;
    let dir = &opts.dir;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::create_dir_all(dir.join("state")).map_err(io(dir))?;
    let providers = setup.resolved.providers.clone();
    super::certs::generate(&dir.join("certs"), "mimi-sim testbed CA", &providers)
        .map_err(|e| RunnerError::Certs(e.to_string()))?;
    // Peers files exist before the nodes start (each reads its own at start).
    for d in &providers {
        let p = dir.join(format!("peers-{}.toml", d.as_str()));
        PeersFile {
            certs: PathBuf::from("certs"),
            ..PeersFile::default()
        }
        .write(&p)
        .map_err(io(&p))?;
    }
    let mut bed = Bed {
        exe: opts.exe.clone(),
        dir: dir.clone(),
        file: file.to_path_buf(),
        seed: opts.seed,
        enforcement: setup.scenario.variant.enforcement.name().to_string(),
        variants: opts.variants.clone(),
        time_scale: opts.time_scale.max(0.001),
        nodes: BTreeMap::new(),
        proxies: BTreeMap::new(),
        pids: Vec::new(),
    };
    let result = drive(&mut bed, &setup, opts).await;
    bed.kill_all().await;
    let pids = bed.pids.clone();
    result.map(|mut r| {
        r.pids = pids;
        r
    })
}

async fn drive(bed: &mut Bed, setup: &Setup, opts: &RunOptions) -> Result<TestbedRun, RunnerError> {
    let providers = setup.resolved.providers.clone();
    for d in &providers {
        bed.spawn(d).await?;
    }
    for (i, x) in providers.iter().enumerate() {
        for (j, y) in providers.iter().enumerate() {
            if x == y {
                continue;
            }
            let seed =
                opts.seed ^ ((i as u64) << 32 | j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let p = Proxy::start(x.as_str(), y.as_str(), bed.nodes[y].mimi, seed).await?;
            bed.proxies.insert((x.clone(), y.clone()), p);
        }
    }
    for x in &providers {
        let file = PeersFile {
            certs: PathBuf::from("certs"),
            providers: bed
                .proxies
                .iter()
                .filter(|((from, _), _)| from == x)
                .map(|((_, to), p)| (to.as_str().to_string(), p.addr))
                .collect(),
            dir: PathBuf::new(),
        };
        let path = bed.nodes[x].peers.clone();
        file.write(&path).map_err(io(&path))?;
    }
    let mut w = Driver {
        bed,
        setup,
        start: Instant::now(),
        start_ms: wall_ms(),
        scale: opts.time_scale.max(0.001),
        lines: Vec::new(),
        snap: Snap::default(),
        offline: BTreeSet::new(),
        faults: BTreeMap::new(),
        waiting: BTreeMap::new(),
        names: setup
            .resolved
            .clients
            .iter()
            .map(|c| (format!("{}/{}", c.user().name(), c.device()), c.clone()))
            .collect(),
        honest: setup
            .resolved
            .clients
            .iter()
            .filter(|c| setup.resolved.honest(c))
            .cloned()
            .collect(),
    };
    // On an error the caller kills the processes.
    let (converged_at, liveness) = drive_scenario(&mut w, setup).await?;
    let end = RunEnd {
        runner_lines: w.lines,
        fault_counts: w.faults,
        start: w.start,
        start_ms: w.start_ms,
        scale: w.scale,
        converged_at,
        liveness,
    };
    finish(bed, setup, opts, end).await
}

impl Driver<'_> {
    /// Creates the scenario's clients through their nodes' control APIs.
    async fn create_clients(&mut self) -> Result<(), RunnerError> {
        for c in &self.setup.resolved.clients {
            let body = json!({"user": c.user().name(), "device": c.device()});
            let (status, v) = self
                .bed
                .call(&c.domain(), "POST", "/clients", Some(&body))
                .await?;
            if status != 200 {
                return Err(RunnerError::Control {
                    provider: c.domain().to_string(),
                    reason: format!("creating {c}: {status} {v}"),
                });
            }
        }
        Ok(())
    }

    /// Queues the steps due at `tick_at` for their clients.
    fn queue_due_steps(&mut self, schedule: &mut Schedule, tick_at: u64) {
        let setup = self.setup;
        while let Some(i) = schedule.next_step(tick_at) {
            let step = setup.scenario.script[i].get_ref();
            if let Some(c) = self.names.get(&client_key(&step.client)).cloned() {
                self.waiting.entry(c).or_default().push_back(i);
            }
        }
    }

    /// Hands every waiting step whose precondition holds to its client, in order.
    async fn hand_ready_steps(&mut self) {
        let setup = self.setup;
        let cs: Vec<ClientUri> = self.waiting.keys().cloned().collect();
        for c in cs {
            while let Some(&i) = self.waiting.get(&c).and_then(|q| q.front()) {
                if !self.ready(&c, &setup.scenario.script[i].get_ref().op) {
                    break;
                }
                if let Some(q) = self.waiting.get_mut(&c) {
                    q.pop_front();
                }
                self.hand(&c, i).await;
            }
        }
    }

    /// After healing, once every fault and step is handed: `Some((Some(t), None))` when
    /// every honest client has converged, `Some((None, why))` past the liveness bound
    /// (`deadline`), else `None` (keep going). Quiescent with steps still waiting: they
    /// can never become ready, so they are abandoned.
    fn settled(&mut self, t: u64, deadline: u64) -> Option<(Option<u64>, Option<String>)> {
        let setup = self.setup;
        let scenario = &setup.scenario;
        match self.converged() {
            Ok(()) if !self.waiting.is_empty() => {
                for (c, q) in std::mem::take(&mut self.waiting) {
                    for i in q {
                        let op = scenario.script[i].get_ref().op.name();
                        self.sim_line(What::OpAbandoned {
                            op: op.to_string(),
                            step: i as u64,
                            reason: "its precondition never held".to_string(),
                            client: Some(c.as_str().to_string()),
                        });
                    }
                }
                None
            }
            Ok(()) => Some((Some(t), None)),
            Err(reason) if t >= deadline => Some((
                None,
                Some(format!(
                    "not converged {} ms after healing: {reason}",
                    scenario.phases.heal_ms
                )),
            )),
            Err(_) => None,
        }
    }
}

/// Drives the scenario until convergence after healing or the liveness bound. Returns
/// (converged at, liveness failure), in scenario ms.
async fn drive_scenario(
    w: &mut Driver<'_>,
    setup: &Setup,
) -> Result<(Option<u64>, Option<String>), RunnerError> {
    w.create_clients().await?;
    w.start = Instant::now();
    w.start_ms = wall_ms();
    let mut schedule = Schedule::new(&setup.scenario, &setup.resolved, w.bed.seed);
    let (chaos, deadline) = (schedule.chaos_ms, schedule.deadline_ms);
    let hard_stop = Duration::from_secs_f64(deadline as f64 * w.scale / 1000.0) + GRACE;
    w.sim_line(What::Phase {
        phase: Phase::Chaos { until_ms: chaos },
    });
    let mut healed = false;
    let mut next_check = schedule.heal_start_ms;
    // As in the simulator, steps are handed to their clients on the client tick, at
    // multiples of CLIENT_TICK_MS of scenario time, and a tick takes the steps due at
    // its instant (not at the poll that notices it): two steps 5 ms apart in the file
    // are handed a tick apart, in both.
    let mut next_client_tick = 0;
    loop {
        if w.start.elapsed() > hard_stop {
            let t = w.t();
            return Ok((
                None,
                Some(format!(
                    "the runner stopped at {t} ms: past the liveness bound"
                )),
            ));
        }
        let t = w.t();
        while let Some(a) = schedule.next_fault(t) {
            w.open_fault(schedule.window(a), a.open).await?;
        }
        if !healed && t >= chaos {
            healed = true;
            w.sim_line(What::Phase {
                phase: Phase::Heal { bound_ms: deadline },
            });
        }
        let tick = t >= next_client_tick;
        let tick_at = t - t % CLIENT_TICK_MS;
        if tick {
            next_client_tick = tick_at + CLIENT_TICK_MS;
            w.queue_due_steps(&mut schedule, tick_at);
        }
        w.poll().await;
        if tick {
            w.hand_ready_steps().await;
        }
        w.waiting.retain(|_, q| !q.is_empty());
        let t = w.t();
        if healed && schedule.all_handed() && t >= next_check {
            next_check = t + CONVERGENCE_CHECK_MS;
            if let Some(end) = w.settled(t, deadline) {
                return Ok(end);
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What the driver leaves for judging: its own trace lines, the fault windows applied
/// per kind, when the run started (wall clock) and its time scale, and how it ended.
struct RunEnd {
    runner_lines: Vec<Raw>,
    fault_counts: BTreeMap<String, u64>,
    start: Instant,
    start_ms: u64,
    scale: f64,
    converged_at: Option<u64>,
    liveness: Option<String>,
}

/// The merged trace's header: as the simulator's ([`crate::world::run`]) with the
/// testbed's time scale.
fn trace_header(setup: &Setup, seed: u64, variant: &Value, scale: f64) -> Header {
    Header {
        format: TRACE_FORMAT,
        scenario: setup.scenario.name.clone(),
        scenario_sha256: scenario_hash(&setup.text),
        scenario_toml: setup.text.clone(),
        seed,
        variant: variant.clone(),
        build: env!("CARGO_PKG_VERSION").to_string(),
        testbed: Some(TestbedHeader { time_scale: scale }),
    }
}

/// Stops the nodes and reads their journals, merged with the runner's lines after
/// the header.
async fn merged_trace(
    bed: &mut Bed,
    setup: &Setup,
    opts: &RunOptions,
    end: &mut RunEnd,
    variant: &Value,
    testbed_line: What,
) -> Result<(Header, Vec<Event>, u64), RunnerError> {
    // The processes are stopped before their journals are read (nothing half-written
    // but a killed process's last line, which merge skips).
    bed.kill_all().await;
    let mut journals = Vec::new();
    for (i, n) in bed.nodes.values().enumerate() {
        journals.push(merge::read_journal(&n.state.join("events.jsonl"), i + 1)?);
    }
    let mut runner_lines = std::mem::take(&mut end.runner_lines);
    let t = wall_ms();
    let testbed_line = Event {
        t,
        node: "sim".to_string(),
        what: testbed_line,
    };
    runner_lines.push(Raw::new(t, testbed_line));
    let merged = merge::merge(runner_lines, journals, end.start_ms);
    let header = trace_header(setup, opts.seed, variant, end.scale);
    Ok((header, merged.lines, merged.skipped))
}

/// The run's outcome from the judged trace: the scripted steps not done, how many were
/// done, and the outcome.
fn judged_outcome(
    setup: &Setup,
    judged: &judge::Judged,
    liveness: bool,
) -> (Vec<StepNote>, usize, Outcome) {
    let scenario = &setup.scenario;
    let adversary = |name: &str| {
        let key = client_key(name);
        setup
            .resolved
            .clients
            .iter()
            .find(|c| format!("{}/{}", c.user().name(), c.device()) == key)
            .is_some_and(|c| !setup.resolved.honest(c))
    };
    let steps_not_done = step_notes(scenario, &judged.step_end, adversary);
    let steps_done = judged
        .step_end
        .iter()
        .filter(|e| **e == Some(StepEnd::Done))
        .count();
    let outcome = outcome_of(
        !judged.violations.is_empty(),
        liveness,
        &steps_not_done,
        steps_done,
        scenario.script.len(),
    );
    (steps_not_done, steps_done, outcome)
}

async fn finish(
    bed: &mut Bed,
    setup: &Setup,
    opts: &RunOptions,
    mut end: RunEnd,
) -> Result<TestbedRun, RunnerError> {
    let scenario = &setup.scenario;
    let end_t = (end.start.elapsed().as_secs_f64() * 1000.0 / end.scale) as u64;
    let proxies: BTreeMap<String, ProxyStats> = bed
        .proxies
        .iter()
        .map(|((a, b), p)| (format!("{}→{}", a.as_str(), b.as_str()), p.stats()))
        .collect();
    let enabled = Schedule::new(scenario, &setup.resolved, opts.seed).fault_kinds(scenario);
    let fault_notes: BTreeMap<String, String> = enabled
        .iter()
        .map(|k| (k.clone(), fault_note(k).to_string()))
        .collect();
    let testbed_line = What::Testbed {
        time_scale: end.scale,
        proxies: proxies
            .iter()
            .map(|(link, p)| (link.clone(), serde_json::to_value(p).unwrap_or(Value::Null)))
            .collect(),
        fault_notes: fault_notes.clone(),
    };
    let variant = variant_json(scenario, &setup.resolved);
    let (header, mut lines, skipped) =
        merged_trace(bed, setup, opts, &mut end, &variant, testbed_line).await?;
    let converged = end.converged_at.is_some();
    let judged = judge::judge(scenario, &setup.resolved, &lines, converged, end_t);
    let (steps_not_done, steps_done, outcome) =
        judged_outcome(setup, &judged, end.liveness.is_some());
    let t_end = lines.last().map_or(0, |l| l.t);
    let sim = |what: What| Event {
        t: t_end,
        node: "sim".to_string(),
        what,
    };
    for v in &judged.violations {
        lines.push(sim(What::Violation {
            id: v.id.to_string(),
            message: None,
            witness: None,
            detail: Some(Box::new(v.detail())),
        }));
    }
    lines.push(sim(What::End {
        outcome: outcome.into(),
        liveness: end.liveness.clone(),
        faults: end.fault_counts.clone(),
    }));
    let text: Vec<String> = std::iter::once(header.line())
        .chain(lines.iter().map(Event::line))
        .collect();
    let expectation = scenario.expectation();
    let ids: Vec<&str> = judged.violations.iter().map(|v| v.id).collect();
    let faults_never_fired = enabled
        .into_iter()
        .filter(|k| end.fault_counts.get(k).copied().unwrap_or(0) == 0)
        .collect();
    let report = RunReport {
        seed: opts.seed,
        scenario: scenario.name.clone(),
        scenario_file: Some(setup.file.clone()),
        scenario_sha256: scenario_hash(&setup.text),
        variant,
        outcome,
        expected: expectation.outcome,
        as_expected: expectation.run_as_expected(outcome.name(), &ids),
        violations: judged.violations.clone(),
        liveness: end.liveness,
        trace_hash: crate::observe::record::hash_lines(text.iter().map(String::as_str)),
        trace_events: text.len() as u64,
        sim_time_ms: end_t,
        wall_ms: end.start.elapsed().as_millis() as u64,
        faults: end.fault_counts,
        faults_never_fired,
        hub_rejections: judged.rejections.clone(),
        converged_at_ms: end.converged_at,
        ops: judged.ops.clone(),
        steps_total: scenario.script.len(),
        steps_done,
        steps_not_done,
        messages_accepted: judged.messages_accepted,
        messages_received: judged.messages_received,
        state_table: Vec::new(),
        trace: None,
        last_step_cost: None,
    };
    Ok(TestbedRun {
        report,
        trace: text,
        proxies,
        fault_notes,
        pids: Vec::new(),
        unreadable_lines: skipped + judged.unreadable,
    })
}

/// Every node process this runner started (all runs of this process): on Ctrl-C the run's
/// future is dropped and `kill_on_drop` sends each SIGKILL, but SIGKILL is asynchronous,
/// so [`wait_gone`] waits for them before the runner exits.
static SPAWNED: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn spawned(pid: u32) {
    if let Ok(mut v) = SPAWNED.lock() {
        v.push(pid);
    }
}

/// Whether process `pid` still runs (it exists and is not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// After a cancelled run: SIGKILL (again) every node process this runner started that
/// still runs, and wait until none does, at most `limit`. The ones still running then.
pub async fn wait_gone(limit: Duration) -> Vec<u32> {
    let pids: Vec<u32> = SPAWNED.lock().map(|v| v.clone()).unwrap_or_default();
    for &pid in &pids {
        if alive(pid) {
            let _ = tokio::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .await;
        }
    }
    let start = Instant::now();
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || start.elapsed() >= limit {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
