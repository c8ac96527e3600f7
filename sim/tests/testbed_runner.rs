//! The testbed runner (`mimi-sim testbed`): a 3-provider testbed on loopback runs a
//! scenario file through the fault proxies and is judged by the simulator's oracles; a
//! partition really blocks a step until it heals; a malformed request through a proxy
//! gets a 4xx and the node stays up; no node process outlives the runner, also on Ctrl-C.
//! Every wait is bounded; loopback only; time scale 0.5 so a run takes seconds.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mimi_sim::testbed::peers::PeersFile;
use mimi_sim::testbed::proxy::Proxy;
use mimi_sim::testbed::tls::TlsConfig;
use nodes::endpoint::Endpoint;
use nodes::ids::{Domain, RoomUri};
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mimi-sim")
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("runner-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A child killed and reaped on drop (a failing test leaves nothing behind).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits at most `limit` for the child to exit; its exit code.
fn wait_exit(c: &mut Reaped, limit: Duration) -> i32 {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(s)) = c.0.try_wait() {
            return s.code().unwrap_or(-1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the runner did not end within {limit:?}");
}

/// Runs `mimi-sim testbed FILE` into `out`; its exit code and runs.jsonl records.
fn testbed(file: &Path, out: &Path, extra: &[&str]) -> (i32, Vec<Value>) {
    let child = Command::new(bin())
        .arg("testbed")
        .arg(file)
        .args(["--time-scale", "0.5", "--out"])
        .arg(out)
        .args(extra)
        .stdout(std::fs::File::create(out.with_extension("stdout")).unwrap())
        .stderr(std::fs::File::create(out.with_extension("stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut c = Reaped(child);
    let code = wait_exit(&mut c, Duration::from_secs(240));
    let runs = std::fs::read_to_string(out.join("runs.jsonl")).unwrap_or_default();
    let records = runs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (code, records)
}

/// Whether process `pid` is still running (a zombie has exited).
fn running(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u64> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

fn pids(record: &Value) -> Vec<u64> {
    record["testbed"]["pids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect()
}

/// A small file: alice (hub a.example) adds bob and cathy; a.example–b.example is
/// partitioned 2000–5000 ms; bob sends at 2500 ms (through the partition to the hub).
const PARTITION: &str = r#"
name = "testbed-partition"
question = "Does the proxy's partition hold a step until it heals?"

[world]
providers = ["a.example", "b.example", "c.example"]
room = { name = "clubhouse", hub = "a.example", preset = "cooperative" }
users = [
  { name = "alice", provider = "a.example" },
  { name = "bob", provider = "b.example" },
  { name = "cathy", provider = "c.example" },
]

[phases]
chaos_ms = 6000
heal_ms = 20000

[[script]]
at_ms = 0
client = "alice"
op = "create"

[[script]]
at_ms = 500
client = "alice"
op = "add"
user = "bob"

[[script]]
at_ms = 1000
client = "alice"
op = "add"
user = "cathy"

[[script]]
at_ms = 2500
client = "bob"
op = "send"
text = "through the partition"

[[script]]
at_ms = 3000
client = "alice"
op = "send"
text = "hello"

[[faults.schedule]]
at_ms = 2000
for_ms = 3000
kind = "partition"
a = "a.example"
b = "b.example"

[expect]
outcome = "ok"
"#;

#[test]
fn a_partition_through_the_proxy_holds_a_step_until_it_heals_and_the_oracles_hold() {
    let dir = scratch("partition");
    let file = dir.join("partition.toml");
    std::fs::write(&file, PARTITION).unwrap();
    let out = dir.join("out");
    let (code, runs) = testbed(&file, &out, &[]);
    let r = &runs[0];
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["outcome"], "ok", "{r}");
    assert!(r["violations"].as_array().unwrap().is_empty());
    // The proxies between a and b refused or reset connections.
    let p = &r["testbed"]["proxies"];
    let blocked: u64 = ["b.example→a.example", "a.example→b.example"]
        .iter()
        .map(|k| p[k]["refused"].as_u64().unwrap() + p[k]["resets"].as_u64().unwrap())
        .sum();
    assert!(blocked > 0, "the proxy blocked nothing: {p}");
    // In the merged trace: bob's send starts inside the window, settles after it.
    let trace_dir = out.join("traces");
    let trace = std::fs::read_dir(&trace_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(trace.path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let t_of = |kind: &str| {
        lines
            .iter()
            .find(|l| l["kind"] == kind && l["node"] == "sim")
            .and_then(|l| l["t"].as_u64())
            .unwrap()
    };
    let (start, end) = (t_of("fault-start"), t_of("fault-end"));
    let bob = "mimi://b.example/d/bob/1";
    let sent = lines
        .iter()
        .find(|l| l["node"] == bob && l["kind"] == "op" && l["op"] == "send")
        .and_then(|l| l["t"].as_u64())
        .unwrap();
    let done = lines
        .iter()
        .find(|l| {
            l["node"] == bob
                && l["t"].as_u64() >= Some(sent)
                && l["event"]["OpSucceeded"]["op"] == "send"
        })
        .and_then(|l| l["t"].as_u64())
        .unwrap();
    assert!(
        start <= sent && sent < end,
        "bob's send at {sent} is not inside the partition [{start}, {end})"
    );
    assert!(
        done >= end,
        "bob's send settled at {done}, before the partition healed at {end}"
    );
    // The report was written from the same records.
    assert!(out.join("report").join("index.html").is_file());
    for pid in pids(r) {
        assert!(!running(pid), "node process {pid} outlived the runner");
    }
}

#[test]
fn drafts_flows_run_on_the_testbed_and_no_process_survives_the_runner() {
    let dir = scratch("drafts");
    let out = dir.join("out");
    let (code, runs) = testbed(&repo("scenarios/drafts-flows.toml"), &out, &[]);
    let r = &runs[0];
    // Seed 1 under full: the simulator's outcome is ok, the swarm has partitions.
    assert_eq!(r["outcome"], "ok", "{r}");
    assert_eq!(code, 0);
    assert!(r["faults"]["partition"].as_u64().unwrap_or(0) > 0, "{r}");
    let ps = pids(r);
    assert_eq!(ps.len(), 3, "{r}");
    for pid in ps {
        assert!(!running(pid), "node process {pid} outlived the runner");
    }
}

#[test]
fn ctrl_c_kills_every_node_process() {
    let dir = scratch("ctrl-c");
    let out = dir.join("out");
    let child = Command::new(bin())
        .arg("testbed")
        .arg(repo("scenarios/drafts-flows.toml"))
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut c = Reaped(child);
    let runner = c.0.id();
    let start = Instant::now();
    let mut nodes = Vec::new();
    while nodes.len() < 3 && start.elapsed() < Duration::from_secs(60) {
        nodes = children(runner);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(nodes.len(), 3, "the runner did not start three nodes");
    let ok = Command::new("kill")
        .args(["-INT", &runner.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let code = wait_exit(&mut c, Duration::from_secs(30));
    assert_ne!(code, 0, "an interrupted run is not a success");
    for pid in nodes {
        assert!(
            !running(pid),
            "node process {pid} outlived the interrupted runner"
        );
    }
}

/// Sends `request` over TLS (as `client`) to `to`; the response text.
fn tls_exchange(
    client: Arc<rustls::ClientConfig>,
    to: SocketAddr,
    server_name: &str,
    request: Vec<u8>,
) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let work = async {
            let tcp = tokio::net::TcpStream::connect(to)
                .await
                .map_err(|e| e.to_string())?;
            let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
                .map_err(|e| e.to_string())?;
            let mut tls = tokio_rustls::TlsConnector::from(client)
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            tls.write_all(&request).await.map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            tls.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&out).into_owned())
        };
        tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
    })
}

#[test]
fn a_malformed_request_through_the_proxy_gets_a_4xx_and_the_node_stays_up() {
    let dir = scratch("malformed");
    let providers = [
        Domain::new("a.example").unwrap(),
        Domain::new("c.example").unwrap(),
    ];
    mimi_sim::testbed::certs::generate(&dir.join("certs"), "mimi-sim testbed CA", &providers)
        .unwrap();
    PeersFile {
        certs: PathBuf::from("certs"),
        ..PeersFile::default()
    }
    .write(&dir.join("peers.toml"))
    .unwrap();
    let child = Command::new(bin())
        .args(["node", "--provider", "a.example", "--listen", "127.0.0.1:0"])
        .arg("--peers")
        .arg(dir.join("peers.toml"))
        .arg("--state")
        .arg(dir.join("a.example"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("a.stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut node = Reaped(child);
    let mut line = String::new();
    BufReader::new(node.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = |key: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
            .parse()
            .unwrap()
    };
    let (mimi, control) = (addr("mimi="), addr("control="));
    // The proxy c.example→a.example, on its own runtime thread.
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let proxy_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let p = Proxy::start("c.example", "a.example", mimi, 7)
                .await
                .unwrap();
            tx.send(p.addr).unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(120), stop_rx).await;
            p.stats()
        })
    });
    let via = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let cert_c = TlsConfig::load(&dir.join("certs"), &Domain::new("c.example").unwrap()).unwrap();
    let room = RoomUri::new(&Domain::new("a.example").unwrap(), "lobby").unwrap();
    let path = Endpoint::SubmitMessage(room).path();
    for body in [&b"garbage"[..], &[0xff; 64][..]] {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: a.example\r\nFrom: mimi@c.example\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        let r = tls_exchange(cert_c.client.clone(), via, "a.example", req).unwrap();
        let status: u16 = r
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!((400..500).contains(&status), "garbage {body:?} got {r}");
    }
    // The node is alive and answers its control API.
    assert!(matches!(node.0.try_wait(), Ok(None)), "the node died");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, v) = rt
        .block_on(mimi_sim::testbed::runner::control_call(
            control, "GET", "/status", None,
        ))
        .unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["provider"], "a.example");
    let _ = stop_tx.send(());
    let stats = proxy_thread.join().unwrap();
    assert!(
        stats.connections >= 2 && stats.bytes_forward > 0,
        "{stats:?}"
    );
}
