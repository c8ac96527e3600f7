//! The testbed: three providers as real `mimi-sim node` processes on 127.0.0.1 with
//! mutual TLS. The draft's flows through the control API (create, add two users on other
//! providers, messages both ways), a peer with a certificate of another CA or none, a
//! `From` that is not the certificate's name, and a malformed request.
//!
//! Every process is killed when its guard drops (also when a test fails). Every wait is a
//! bounded number of polls; a poll that gives up fails the test with what was seen.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mimi_sim::testbed::peers::PeersFile;
use mimi_sim::testbed::tls::TlsConfig;
use nodes::endpoint::Endpoint;
use nodes::ids::{Domain, RoomUri, UserUri};
use serde_json::{json, Value};

/// Polls of a wait, [`POLL`] apart: 60 s in all, far more than any flow here needs.
const MAX_POLLS: usize = 1200;
const POLL: Duration = Duration::from_millis(50);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mimi-sim")
}

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("testbed-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn certs(out: &Path, ca_name: &str, providers: &str) {
    let o = Command::new(bin())
        .args(["testbed-certs", "--out"])
        .arg(out)
        .args(["--providers", providers, "--ca-name", ca_name])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "testbed-certs failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// One running node; killed and reaped on drop.
struct Node {
    domain: Domain,
    child: Child,
    mimi: SocketAddr,
    control: SocketAddr,
    stderr: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(dir: &Path, domain: &str) -> Node {
        Node::start_on(dir, domain, "127.0.0.1:0")
    }

    /// Starts (or restarts, on the same `--state`) a node whose MIMI server listens on
    /// `listen`; stderr is appended to `<domain>.stderr`.
    fn start_on(dir: &Path, domain: &str, listen: &str) -> Node {
        let stderr = dir.join(format!("{domain}.stderr"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr)
            .unwrap();
        let mut child = Command::new(bin())
            .args(["node", "--provider", domain, "--listen", listen])
            .arg("--peers")
            .arg(dir.join("peers.toml"))
            .arg("--state")
            .arg(dir.join(domain))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        // The node prints one line with its addresses, then nothing more on stdout.
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        let n = BufReader::new(stdout).read_line(&mut line).unwrap();
        let mut node = Node {
            domain: Domain::new(domain).unwrap(),
            child,
            mimi: "127.0.0.1:1".parse().unwrap(),
            control: "127.0.0.1:1".parse().unwrap(),
            stderr,
        };
        assert!(n > 0, "node {domain} exited: {}", node.log());
        let addr = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .parse()
                .unwrap()
        };
        node.mimi = addr("mimi=");
        node.control = addr("control=");
        node
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// One control API call; `(status, body)`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut s = TcpStream::connect(self.control).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: control\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(rest).unwrap_or(Value::Null))
    }

    fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, v) = self.call(method, path, Some(body));
        assert_eq!(status, 200, "{method} {path} on {}: {v}", self.domain);
        v
    }

    fn events(&self) -> Vec<Value> {
        let (status, v) = self.call("GET", "/events?since=0", None);
        assert_eq!(status, 200, "{v}");
        v["events"].as_array().cloned().unwrap_or_default()
    }

    /// The texts `client` received, in order.
    fn received(&self, client: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| {
                e["node"]
                    .as_str()
                    .is_some_and(|n| n.contains(&format!("/d/{client}/")))
            })
            .filter_map(|e| {
                e["event"]["MessageReceived"]["text"]
                    .as_str()
                    .map(String::from)
            })
            .collect()
    }

    fn epoch(&self, client: &str, room: &RoomUri) -> Option<u64> {
        let path = format!("/view?client={client}&room={}", encode(room.as_str()));
        let (status, v) = self.call("GET", &path, None);
        assert_eq!(status, 200, "{v}");
        v["epoch"].as_u64()
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `done` until it holds; panics with `what` after [`MAX_POLLS`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..MAX_POLLS {
        if done() {
            return;
        }
        std::thread::sleep(POLL);
    }
    panic!("gave up waiting for {what}");
}

/// Three providers a, b, c with certificates of one CA, all started and in the peers file.
struct Testbed {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl Testbed {
    fn start(name: &str) -> Testbed {
        let dir = scratch(name);
        certs(
            &dir.join("certs"),
            "mimi-sim testbed CA",
            "a.example,b.example,c.example",
        );
        let mut peers = PeersFile {
            certs: "certs".into(),
            ..PeersFile::default()
        };
        peers.write(&dir.join("peers.toml")).unwrap();
        let nodes: Vec<Node> = ["a.example", "b.example", "c.example"]
            .iter()
            .map(|d| Node::start(&dir, d))
            .collect();
        for n in &nodes {
            peers.providers.insert(n.domain.to_string(), n.mimi);
        }
        peers.write(&dir.join("peers.toml")).unwrap();
        Testbed { dir, nodes }
    }
    fn node(&self, d: &str) -> &Node {
        self.nodes.iter().find(|n| n.domain.as_str() == d).unwrap()
    }
}

fn user(d: &str, name: &str) -> String {
    UserUri::new(&Domain::new(d).unwrap(), name)
        .unwrap()
        .to_string()
}

fn step(node: &Node, client: &str, room: &RoomUri, op: Value) {
    node.ok(
        "POST",
        "/step",
        json!({
            "client": client,
            "room": room.as_str(),
            "hub": "a.example",
            "users": {"bob": user("b.example", "bob"), "cathy": user("c.example", "cathy")},
            "op": op,
        }),
    );
}

/// Alice (hub a) creates the room and adds Bob (b) and Cathy (c); returns the room.
fn room_of_three(tb: &Testbed) -> RoomUri {
    let (a, b, c) = (
        tb.node("a.example"),
        tb.node("b.example"),
        tb.node("c.example"),
    );
    a.ok("POST", "/clients", json!({"user": "alice"}));
    b.ok("POST", "/clients", json!({"user": "bob"}));
    c.ok("POST", "/clients", json!({"user": "cathy"}));
    let room = lobby();
    step(a, "alice", &room, json!({"op": "create"}));
    wait_for("alice's room", || a.epoch("alice", &room).is_some());
    step(a, "alice", &room, json!({"op": "add", "user": "bob"}));
    wait_for("bob to join", || b.epoch("bob", &room).is_some());
    wait_for("alice at bob's epoch", || {
        a.epoch("alice", &room) == b.epoch("bob", &room)
    });
    step(a, "alice", &room, json!({"op": "add", "user": "cathy"}));
    wait_for("cathy to join", || c.epoch("cathy", &room).is_some());
    room
}

#[test]
fn three_providers_with_mutual_tls_run_the_drafts_flows() {
    let tb = Testbed::start("flows");
    let (a, b, c) = (
        tb.node("a.example"),
        tb.node("b.example"),
        tb.node("c.example"),
    );
    let room = room_of_three(&tb);
    wait_for("one epoch everywhere", || {
        let e = a.epoch("alice", &room);
        e.is_some() && e == b.epoch("bob", &room) && e == c.epoch("cathy", &room)
    });
    step(
        a,
        "alice",
        &room,
        json!({"op": "send", "text": "hello from a"}),
    );
    step(
        b,
        "bob",
        &room,
        json!({"op": "send", "text": "hello from b"}),
    );
    wait_for("every message at every other client", || {
        b.received("bob").contains(&"hello from a".to_string())
            && c.received("cathy").contains(&"hello from a".to_string())
            && a.received("alice").contains(&"hello from b".to_string())
            && c.received("cathy").contains(&"hello from b".to_string())
    });
    // Each message arrived once.
    for (n, who) in [(a, "alice"), (b, "bob"), (c, "cathy")] {
        let got = n.received(who);
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            got.len(),
            unique.len(),
            "{who} got a message twice: {got:?}"
        );
    }
    // The hub's requests went over TLS and were journalled with wall-clock times.
    let journal = std::fs::read_to_string(tb.dir.join("a.example/events.jsonl")).unwrap();
    let lines: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l["kind"] == "request"),
        "a.example journalled no incoming request"
    );
    assert!(lines
        .iter()
        .all(|l| l["t"].as_u64().is_some_and(|t| t > 1_700_000_000_000)));
}

/// Sends raw HTTP bytes to `to` over TLS with `client` as the client config; returns the
/// response text, or the error (a refused handshake shows as an error or an empty read).
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

fn lobby() -> RoomUri {
    RoomUri::new(&Domain::new("a.example").unwrap(), "lobby").unwrap()
}

fn notify() -> String {
    Endpoint::Notify(lobby()).path()
}

fn post(to: &str, from: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: {to}\r\nFrom: mimi@{from}\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn peers_without_a_valid_certificate_or_with_a_false_from_are_refused() {
    let tb = Testbed::start("refused");
    let b = tb.node("b.example");
    // A second CA that also issued a certificate for b.example.
    certs(
        &tb.dir.join("foreign"),
        "some other CA",
        "b.example,c.example",
    );

    // 1. A certificate for c.example from another CA: the handshake fails.
    // Trust the real CA so that only the server's check of our certificate can fail.
    let real = TlsConfig::load(&tb.dir.join("certs"), &Domain::new("c.example").unwrap()).unwrap();
    let roots = mimi_sim::testbed::certs::load_roots(&tb.dir.join("certs/ca.pem")).unwrap();
    let chain =
        mimi_sim::testbed::certs::load_certs(&tb.dir.join("foreign/c.example.pem")).unwrap();
    let key = mimi_sim::testbed::certs::load_key(&tb.dir.join("foreign/c.example.key")).unwrap();
    let wrong_ca = TlsConfig::new(roots.clone(), chain, key).unwrap();
    let r = tls_exchange(
        wrong_ca.client.clone(),
        b.mimi,
        "b.example",
        post("b.example", "c.example", &notify(), b"x"),
    );
    assert!(
        !matches!(&r, Ok(text) if status_of(text) != 0),
        "a certificate of another CA got an HTTP answer: {r:?}"
    );
    wait_for("b to journal the refused peer", || {
        b.events().iter().any(|e| {
            e["kind"] == "peer-refused"
                && e["reason"].as_str().is_some_and(|r| {
                    r.contains("refused") && r.to_lowercase().contains("certificate")
                })
        })
    });
    assert!(
        b.log().contains("refused"),
        "no clear log line: {}",
        b.log()
    );

    // 2. No client certificate at all.
    let no_cert = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let r = tls_exchange(
        Arc::new(no_cert),
        b.mimi,
        "b.example",
        post("b.example", "c.example", &notify(), b"x"),
    );
    assert!(
        !matches!(&r, Ok(text) if status_of(text) != 0),
        "no certificate got an HTTP answer: {r:?}"
    );
    wait_for("b to journal a peer without a certificate", || {
        b.events()
            .iter()
            .filter(|e| e["kind"] == "peer-refused")
            .count()
            >= 2
    });

    // 3. A valid certificate for c.example, but From claims a.example: 403 naming both.
    let r = tls_exchange(
        real.client.clone(),
        b.mimi,
        "b.example",
        post("b.example", "a.example", &notify(), b"x"),
    )
    .unwrap();
    assert_eq!(status_of(&r), 403, "{r}");
    assert!(
        r.contains("a.example") && r.contains("c.example"),
        "the error must name both: {r}"
    );
    let mut b_node = tb
        .nodes
        .into_iter()
        .find(|n| n.domain.as_str() == "b.example")
        .unwrap();
    assert!(b_node.alive(), "b died: {}", b_node.log());
}

#[test]
fn a_malformed_request_gets_a_4xx_and_the_hub_goes_on() {
    let tb = Testbed::start("malformed");
    let (a, b, c) = (
        tb.node("a.example"),
        tb.node("b.example"),
        tb.node("c.example"),
    );
    let room = room_of_three(&tb);
    let cert_c =
        TlsConfig::load(&tb.dir.join("certs"), &Domain::new("c.example").unwrap()).unwrap();
    for body in [&b"garbage"[..], &[0xff; 64][..], &[][..]] {
        let r = tls_exchange(
            cert_c.client.clone(),
            a.mimi,
            "a.example",
            post(
                "a.example",
                "c.example",
                &Endpoint::SubmitMessage(room.clone()).path(),
                body,
            ),
        )
        .unwrap();
        let status = status_of(&r);
        assert!((400..500).contains(&status), "garbage {body:?} got {r}");
        // Refused for its body (by the hub core), not for the request line or headers.
        assert!(!r.contains("bad path") && !r.contains("header"), "{r}");
    }
    wait_for("one epoch everywhere", || {
        let e = a.epoch("alice", &room);
        e.is_some() && e == b.epoch("bob", &room) && e == c.epoch("cathy", &room)
    });
    // A following valid request: Bob's message goes to the hub's /submitMessage.
    step(
        b,
        "bob",
        &room,
        json!({"op": "send", "text": "after the garbage"}),
    );
    wait_for("bob's message at alice and cathy", || {
        a.received("alice")
            .contains(&"after the garbage".to_string())
            && c.received("cathy")
                .contains(&"after the garbage".to_string())
    });
}

/// Every line of a node's `events.jsonl` (all of its runs).
fn journal(dir: &Path, domain: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(domain).join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The texts `client` received according to its node's `events.jsonl`, in order.
fn received_in_journal(dir: &Path, domain: &str, client: &str) -> Vec<String> {
    journal(dir, domain)
        .iter()
        .filter(|e| {
            e["node"]
                .as_str()
                .is_some_and(|n| n.contains(&format!("/d/{client}/")))
        })
        .filter_map(|e| {
            e["event"]["MessageReceived"]["text"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

/// Bytes the process asked the kernel to write so far (`wchar` of /proc/PID/io).
fn written(node: &Node) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/io", node.child.id()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Size of a node's state files (database and its WAL).
fn state_bytes(dir: &Path, domain: &str) -> u64 {
    ["state.db", "state.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(domain).join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn the_hub_killed_with_sigkill_restarts_from_its_state_and_nothing_is_lost_or_repeated() {
    let began = std::time::Instant::now();
    let mut tb = Testbed::start("restart");
    let room = room_of_three(&tb);
    {
        let (a, b, c) = (
            tb.node("a.example"),
            tb.node("b.example"),
            tb.node("c.example"),
        );
        wait_for("one epoch everywhere", || {
            let e = a.epoch("alice", &room);
            e.is_some() && e == b.epoch("bob", &room) && e == c.epoch("cathy", &room)
        });
        // Messages before the crash, all delivered: the figure of bytes per message.
        let domains = ["a.example", "b.example", "c.example"];
        let sizes =
            |f: &dyn Fn(&str) -> u64| -> Vec<u64> { domains.iter().map(|d| f(d)).collect() };
        let events_bytes =
            |d: &str| std::fs::metadata(tb.dir.join(d).join("events.jsonl")).map_or(0, |m| m.len());
        let before: Vec<u64> = tb.nodes.iter().map(written).collect();
        let (state_before, events_before) =
            (sizes(&|d| state_bytes(&tb.dir, d)), sizes(&events_bytes));
        for i in 0..3 {
            step(
                b,
                "bob",
                &room,
                json!({"op": "send", "text": format!("early {i}")}),
            );
        }
        wait_for("the early messages everywhere", || {
            (0..3).all(|i| {
                let t = format!("early {i}");
                a.received("alice").contains(&t) && c.received("cathy").contains(&t)
            })
        });
        let per_message = |before: &[u64], after: &[u64]| -> Vec<u64> {
            before
                .iter()
                .zip(after)
                .map(|(x, y)| y.saturating_sub(*x) / 3)
                .collect()
        };
        let after: Vec<u64> = tb.nodes.iter().map(written).collect();
        eprintln!(
            "bytes per accepted message at a (hub + alice), b (bob), c (cathy): all writes \
             of the process incl. TLS {:?}; state.db (WAL) {:?}; events.jsonl {:?}",
            per_message(&before, &after),
            per_message(&state_before, &sizes(&|d| state_bytes(&tb.dir, d))),
            per_message(&events_before, &sizes(&events_bytes)),
        );
        let submitted = |tb: &Testbed| {
            journal(&tb.dir, "a.example")
                .iter()
                .filter(|e| e["kind"] == "request" && e["endpoint"] == "submitMessage")
                .count()
        };
        let submitted_before = submitted(&tb);
        // Messages in flight when the hub dies: from remote members (submitted to the
        // hub over mTLS) and from the hub's own member.
        for i in 0..4 {
            step(
                b,
                "bob",
                &room,
                json!({"op": "send", "text": format!("bob {i}")}),
            );
            step(
                c,
                "cathy",
                &room,
                json!({"op": "send", "text": format!("cathy {i}")}),
            );
        }
        step(a, "alice", &room, json!({"op": "send", "text": "alice 0"}));
        // Kill once the hub accepted at least one of them, likely with fan-out queued.
        wait_for("the hub to take a message of the batch", || {
            submitted(&tb) > submitted_before
        });
    }
    let a_index = tb
        .nodes
        .iter()
        .position(|n| n.domain.as_str() == "a.example")
        .unwrap();
    let mimi = tb.nodes[a_index].mimi;
    {
        let a = &mut tb.nodes[a_index];
        a.child.kill().unwrap(); // SIGKILL
        a.child.wait().unwrap();
    }
    let restarting = std::time::Instant::now();
    let a = Node::start_on(&tb.dir, "a.example", &mimi.to_string());
    let restart_ms = restarting.elapsed().as_millis();
    tb.nodes[a_index] = a;
    eprintln!("hub restart (spawn to ready, state restored): {restart_ms} ms");
    let mut texts: Vec<String> = (0..3).map(|i| format!("early {i}")).collect();
    texts.extend((0..4).map(|i| format!("bob {i}")));
    texts.extend((0..4).map(|i| format!("cathy {i}")));
    texts.push("alice 0".into());
    let members = [
        ("a.example", "alice"),
        ("b.example", "bob"),
        ("c.example", "cathy"),
    ];
    // Who sent each text (a member does not receive its own message).
    let own = |who: &str, t: &str| {
        let sender = match t.split(' ').next() {
            Some("early" | "after") => "bob",
            Some(s) => s,
            None => "",
        };
        sender == who
    };
    let all_delivered = |texts: &[String]| {
        members.iter().all(|(d, who)| {
            let got = received_in_journal(&tb.dir, d, who);
            texts
                .iter()
                .filter(|t| !own(who, t))
                .all(|t| got.contains(t))
        })
    };
    wait_for("every message of the crash at every other member", || {
        all_delivered(&texts)
    });
    // A follower dies too: Bob's provider, while Alice's and Cathy's messages fan out.
    for i in 0..3 {
        for (d, who) in [("a.example", "alice"), ("c.example", "cathy")] {
            let text = format!("{who} late {i}");
            step(tb.node(d), who, &room, json!({"op": "send", "text": text}));
            texts.push(text);
        }
    }
    let b_index = tb
        .nodes
        .iter()
        .position(|n| n.domain.as_str() == "b.example")
        .unwrap();
    let b_mimi = tb.nodes[b_index].mimi;
    {
        let b = &mut tb.nodes[b_index];
        b.child.kill().unwrap(); // SIGKILL
        b.child.wait().unwrap();
    }
    tb.nodes[b_index] = Node::start_on(&tb.dir, "b.example", &b_mimi.to_string());
    wait_for(
        "every message at every other member after the follower's restart",
        || all_delivered(&texts),
    );
    let (a, b) = (tb.node("a.example"), tb.node("b.example"));
    // The flow goes on: Alice removes Cathy, then Bob and Alice talk.
    step(a, "alice", &room, json!({"op": "remove", "user": "cathy"}));
    wait_for("cathy's removal at alice and bob", || {
        let (ea, eb) = (a.epoch("alice", &room), b.epoch("bob", &room));
        let members = |n: &Node, who: &str| -> Vec<String> {
            let path = format!("/view?client={who}&room={}", encode(room.as_str()));
            n.call("GET", &path, None).1["members"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        ea.is_some()
            && ea == eb
            && members(a, "alice") == members(b, "bob")
            && !members(a, "alice").iter().any(|m| m.contains("cathy"))
    });
    step(
        b,
        "bob",
        &room,
        json!({"op": "send", "text": "after the crash"}),
    );
    wait_for("bob's last message at alice", || {
        received_in_journal(&tb.dir, "a.example", "alice").contains(&"after the crash".into())
    });
    texts.push("after the crash".into());
    // Exactly once, every member, from the journals of all runs of each node.
    for (d, who) in members {
        let got = received_in_journal(&tb.dir, d, who);
        for t in texts.iter().filter(|t| !own(who, t)) {
            let n = got.iter().filter(|g| *g == t).count();
            let expected = usize::from(!(who == "cathy" && t == "after the crash"));
            assert_eq!(n, expected, "{who} got {t:?} {n} times: {got:?}");
        }
    }
    // The restarts restored Alice and Bob from their files: their groups are in openmls'
    // SQLite storage at the epoch their clients report, and the journals hold no client
    // input older than the last commit (every client file includes the others).
    for (d, who) in [("a.example", "alice"), ("b.example", "bob")] {
        let state = tb.dir.join(d);
        let started = journal(&tb.dir, d)
            .into_iter()
            .rfind(|e| e["kind"] == "node-started")
            .unwrap();
        assert_eq!(
            started["restored"]["clients_from_files"], 1,
            "{d}: {started}"
        );
        let (rows, first) = client_rows(&state);
        assert!(rows <= 2, "{d}: {rows} client rows in the journal");
        let files = mls_files(&state, who);
        assert!(
            applied(&files[0]) + 1 >= first,
            "{d}: {who}'s file includes row {}, the journal starts at {first}",
            applied(&files[0])
        );
        assert_eq!(files.len(), 1, "{files:?}");
        let epoch = tb.node(d).epoch(who, &room);
        let groups = groups_in(&files[0]);
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(Some(groups[0].1), epoch, "{who}'s database");
    }
    let restarted = journal(&tb.dir, "a.example")
        .into_iter()
        .rfind(|e| e["kind"] == "node-started")
        .unwrap();
    assert!(
        restarted["restored"]["server_tables"] == true
            && restarted["restored"]["hub_rooms"].as_u64().unwrap_or(0) >= 1
            && restarted["restored"]["room_log"].as_u64().unwrap_or(0) > 0,
        "the hub did not restart from its tables: {restarted}"
    );
    // The hub's room log is in its tables: one row per seq, with no gap; each log entry
    // the hub journalled (before and after the crash) is the row of its seq, and every
    // FanoutMessage a provider delivered to its clients is one of them.
    let log = room_log(&tb.dir.join("a.example"), &room);
    let hub_log: std::collections::BTreeMap<u64, String> = journal(&tb.dir, "a.example")
        .iter()
        .filter(|e| e["kind"] == "hub-log" && e["room"] == room.as_str())
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["fanout"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let rows: std::collections::BTreeMap<u64, String> =
        log.iter().map(|(seq, m)| (*seq, hex::encode(m))).collect();
    let first = log.first().map_or(0, |(seq, _)| *seq);
    assert!(
        log.iter()
            .enumerate()
            .all(|(i, (seq, _))| *seq == first + i as u64),
        "gaps in room_log"
    );
    assert!(log.len() >= texts.len(), "{} log rows", log.len());
    assert!(hub_log.len() * 10 >= log.len() * 9, "{hub_log:?}");
    for (seq, fanout) in &hub_log {
        assert_eq!(rows.get(seq), Some(fanout), "log entry {seq}");
    }
    let logged: std::collections::BTreeSet<String> = rows.values().cloned().collect();
    for d in ["a.example", "b.example", "c.example"] {
        let delivered: Vec<String> = journal(&tb.dir, d)
            .iter()
            .filter(|e| e["kind"] == "deliver" && e["room"] == room.as_str())
            .filter_map(|e| e["fanout"].as_str().map(String::from))
            .collect();
        assert!(!delivered.is_empty(), "{d}");
        assert!(delivered.iter().all(|f| logged.contains(f)), "{d}");
    }
    // The journal of the server core does not grow: every commit's snapshot covers it.
    for d in ["a.example", "b.example", "c.example"] {
        let rows = table_rows(&tb.dir.join(d));
        eprintln!(
            "{d}: state.db rows {rows:?}, {} bytes",
            state_bytes(&tb.dir, d)
        );
        assert_eq!(rows["server_inputs"], 0, "{d}: {rows:?}");
    }
    eprintln!(
        "kill-9 test: {} ms in all; hub restored {}",
        began.elapsed().as_millis(),
        restarted["restored"]
    );
}

/// Certificates and a peers file for one node, for tests of the state directory.
/// The `room_log` rows of `room` in a node's `state.db`: (seq, message), in seq order.
fn room_log(state: &Path, room: &RoomUri) -> Vec<(u64, Vec<u8>)> {
    let conn = rusqlite::Connection::open(state.join("state.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT seq, message FROM room_log WHERE room = ?1 ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map([room.as_str()], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// Rows per table of a node's `state.db`.
fn table_rows(state: &Path) -> std::collections::BTreeMap<&'static str, u64> {
    let conn = rusqlite::Connection::open(state.join("state.db")).unwrap();
    [
        "server_inputs",
        "server_core",
        "hub_rooms",
        "room_log",
        "public_group",
        "fanout_queue",
        "client_inputs",
        "to_clients",
    ]
    .into_iter()
    .map(|t| {
        let n: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
            .unwrap();
        (t, n as u64)
    })
    .collect()
}

fn lone_node_dir(name: &str) -> PathBuf {
    let dir = scratch(name);
    certs(
        &dir.join("certs"),
        "mimi-sim testbed CA",
        "a.example,b.example",
    );
    PeersFile {
        certs: "certs".into(),
        ..PeersFile::default()
    }
    .write(&dir.join("peers.toml"))
    .unwrap();
    dir
}

fn node_on_state(dir: &Path, provider: &str, seed: &str) -> std::process::Output {
    let mut child = Command::new(bin())
        .args(["node", "--provider", provider, "--listen", "127.0.0.1:0"])
        .args(["--seed", seed])
        .arg("--peers")
        .arg(dir.join("peers.toml"))
        .arg("--state")
        .arg(dir.join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A node that started prints its line: stop it (bounded wait for the line).
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    if !line.is_empty() {
        let _ = child.kill();
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_state_directory_of_another_provider_or_a_damaged_one_is_refused_with_exit_2() {
    let dir = lone_node_dir("state-mismatch");
    let first = node_on_state(&dir, "a.example", "1");
    assert!(
        !first.status.success() && first.status.code() != Some(2),
        "a.example should have started (and been killed)"
    );
    for (provider, seed, says) in [
        ("b.example", "1", "a.example"),
        ("a.example", "2", "seed 1"),
    ] {
        let o = node_on_state(&dir, provider, seed);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{provider} seed {seed}: {err}");
        assert!(
            err.contains(says) && err.contains("--state"),
            "the error must say whose state it is: {err}"
        );
    }
    // A damaged file: garbage over the header.
    let db = dir.join("state/state.db");
    let _ = std::fs::remove_file(dir.join("state/state.db-wal"));
    let _ = std::fs::remove_file(dir.join("state/state.db-shm"));
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let o = node_on_state(&dir, "a.example", "1");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("state.db") && err.contains("not a readable"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Restart time against the length of the journal (a measurement, not a check: run with
/// `cargo test -p mimi-sim --test testbed restart_time -- --ignored --nocapture`).
#[test]
#[ignore = "measurement; about 20 s"]
fn restart_time_after_more_and_more_messages() {
    let mut tb = Testbed::start("restart-time");
    let room = room_of_three(&tb);
    let a_index = tb
        .nodes
        .iter()
        .position(|n| n.domain.as_str() == "a.example")
        .unwrap();
    let mut sent = 0;
    for round in 0..3 {
        {
            let (a, b) = (tb.node("a.example"), tb.node("b.example"));
            for _ in 0..(50 << round) / 2 {
                step(
                    b,
                    "bob",
                    &room,
                    json!({"op": "send", "text": format!("m{sent}")}),
                );
                sent += 1;
            }
            let last = format!("m{}", sent - 1);
            wait_for("the last message at alice", || {
                a.received("alice").contains(&last)
            });
        }
        let mimi = tb.nodes[a_index].mimi;
        {
            let a = &mut tb.nodes[a_index];
            a.child.kill().unwrap();
            a.child.wait().unwrap();
        }
        let t = std::time::Instant::now();
        tb.nodes[a_index] = Node::start_on(&tb.dir, "a.example", &mimi.to_string());
        let ms = t.elapsed().as_millis();
        let starts = || -> Vec<Value> {
            journal(&tb.dir, "a.example")
                .into_iter()
                .filter(|e| e["kind"] == "node-started")
                .collect()
        };
        wait_for("the restarted hub's first event", || {
            starts().len() == round + 2
        });
        let started = starts().pop().unwrap();
        let rows = table_rows(&tb.dir.join("a.example"));
        eprintln!(
            "after {sent} messages: restart {ms} ms (restore {} ms), restored {}, rows {rows:?}, \
             state files {} bytes",
            started["restore_ms"],
            started["restored"],
            state_bytes(&tb.dir, "a.example")
        );
        assert_eq!(rows["server_inputs"], 0, "{rows:?}");
        // The clients are restored from their files: their journal keeps the last
        // commit's rows only, however long the history.
        assert!(rows["client_inputs"] <= 2, "{rows:?}");
    }
}

/// The files of a node's client databases (`<state>/mls/`) whose name contains
/// `client`.
fn mls_files(state: &Path, client: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state.join("mls")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(client) && n.ends_with(".db"))
        })
        .collect();
    files.sort();
    files
}

/// The journal row a client's file includes.
fn applied(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT applied_seq FROM mimi_client", [], |r| r.get(0))
        .unwrap()
}

/// The number of client rows in a node's journal and the first one's number (0: none).
fn client_rows(state: &Path) -> (i64, i64) {
    rusqlite::Connection::open(state.join("state.db"))
        .unwrap()
        .query_row(
            "SELECT COUNT(*), COALESCE(MIN(seq), 0) FROM client_inputs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

/// Copies the client files of a stopped node (`<state>/mls/`) to `to`, or back.
fn copy_files(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// The `node-started` events of a node's runs.
fn starts(dir: &Path, domain: &str) -> Vec<Value> {
    journal(dir, domain)
        .into_iter()
        .filter(|e| e["kind"] == "node-started")
        .collect()
}

/// Every group in a client's MLS database, opened as openmls' own SQLite storage:
/// `(epoch, own leaf)` by group id.
fn groups_in(db: &Path) -> Vec<(Vec<u8>, u64, u32)> {
    use mimi_sim::testbed::mls_store::JsonCodec;
    use openmls::prelude::{GroupId, MlsGroup};
    use openmls_sqlite_storage::SqliteStorageProvider;
    let conn = rusqlite::Connection::open(db).unwrap();
    let ids: Vec<Vec<u8>> = conn
        .prepare("SELECT DISTINCT group_id FROM openmls_group_data ORDER BY group_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let storage = SqliteStorageProvider::<JsonCodec, _>::new(&conn);
    ids.iter()
        .map(|key| {
            let id: GroupId = serde_json::from_slice(key).unwrap();
            let g = MlsGroup::load(&storage, &id).unwrap().unwrap();
            (
                id.as_slice().to_vec(),
                g.epoch().as_u64(),
                g.own_leaf_index().u32(),
            )
        })
        .collect()
}

fn kill(node: &mut Node) {
    node.child.kill().unwrap(); // SIGKILL
    node.child.wait().unwrap();
}

/// Starts a node on `dir`'s state of `domain` that is expected to refuse its state:
/// returns its exit code and stderr (a node that starts is killed and fails the test).
fn refused_start(dir: &Path, domain: &str) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .args(["node", "--provider", domain, "--listen", "127.0.0.1:0"])
        .arg("--peers")
        .arg(dir.join("peers.toml"))
        .arg("--state")
        .arg(dir.join(domain))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    if !line.is_empty() {
        let _ = child.kill();
    }
    let o = child.wait_with_output().unwrap();
    assert!(line.is_empty(), "the node started on its state: {line}");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_clients_mls_state_is_in_its_sqlite_file_and_a_restart_checks_it() {
    let dir = lone_node_dir("mls-db");
    let state = dir.join("a.example");
    let mut a = Node::start(&dir, "a.example");
    let room = lobby();
    a.ok("POST", "/clients", json!({"user": "alice"}));
    a.ok("POST", "/clients", json!({"user": "alice", "device": "2"}));
    step(&a, "alice", &room, json!({"op": "create"}));
    wait_for("alice's room", || a.epoch("alice", &room).is_some());
    let epoch = a.epoch("alice", &room).unwrap();
    kill(&mut a);

    // 1. openmls' own SQLite storage holds the group at the epoch the client reported,
    // beside the client's record; the journal keeps only the last commit's rows.
    let files = mls_files(&state, "alice");
    assert_eq!(files.len(), 2, "one database per client: {files:?}");
    let (first, second) = (&files[0], &files[1]);
    let groups = groups_in(first);
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!((groups[0].1, groups[0].2), (epoch, 0), "{groups:?}");
    assert!(
        groups_in(second).is_empty(),
        "alice/2 is in no room: {second:?}"
    );
    for f in [first, second] {
        let n: i64 = rusqlite::Connection::open(f)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM mimi_client_state", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "{f:?}");
    }
    let (rows, _) = client_rows(&state);
    assert!(rows <= 2, "{rows} client rows in the journal");

    // 2. A restart restores both clients from their files, replaying nothing, and goes
    // on. A copy of the files as they are now is kept: later it plays files that lost
    // commits.
    let old = dir.join("mls-old");
    copy_files(&state.join("mls"), &old);
    let mut a = Node::start(&dir, "a.example");
    assert_eq!(a.epoch("alice", &room), Some(epoch));
    let restored = &starts(&dir, "a.example")[1]["restored"];
    assert_eq!(restored["clients_from_files"], 2, "{restored}");
    assert_eq!(restored["client_inputs_replayed"], 0, "{restored}");
    for i in 0..3 {
        step(
            &a,
            "alice",
            &room,
            json!({"op": "send", "text": format!("m{i}")}),
        );
    }
    let sent = |a: &Node, n: usize| {
        a.events()
            .iter()
            .filter(|e| e["event"]["OpSucceeded"]["op"] == "send")
            .count()
            >= n
    };
    wait_for("alice's messages to be accepted", || sent(&a, 3));
    kill(&mut a);
    let now_at = applied(&mls_files(&state, "alice")[0]);
    let old_at = applied(&old.join(first.file_name().unwrap()));
    assert!(
        old_at < now_at,
        "sending changed alice's state: row {old_at} then {now_at}"
    );

    // 3. Files that lost commits the journal no longer holds are refused (exit 2), naming
    // the client; the current files start again.
    let current = dir.join("mls-current");
    copy_files(&state.join("mls"), &current);
    copy_files(&old, &state.join("mls"));
    let (code, err) = refused_start(&dir, "a.example");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("older than the journal can repair") && err.contains("alice"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    copy_files(&current, &state.join("mls"));

    // 4. A kill between the journal and the client's file: alice goes offline (one
    // commit), her files are copied, she sends (one commit: the step, its message held
    // in her outbox), the node is killed and the copy put back. Her file is one commit
    // behind; the restart replays the journal's step into her and she goes on.
    let mut a = Node::start(&dir, "a.example");
    a.ok(
        "POST",
        "/online",
        json!({"client": "alice/1", "online": false}),
    );
    kill(&mut a);
    let before = dir.join("mls-before");
    copy_files(&state.join("mls"), &before);
    let mut a = Node::start(&dir, "a.example");
    step(&a, "alice", &room, json!({"op": "send", "text": "offline"}));
    wait_for("the offline message built", || {
        a.events()
            .iter()
            .any(|e| e["event"]["MessageBuilt"].is_object())
    });
    kill(&mut a);
    let after_at = applied(&mls_files(&state, "alice")[0]);
    copy_files(&before, &state.join("mls"));
    assert!(applied(&mls_files(&state, "alice")[0]) < after_at);
    let mut a = Node::start(&dir, "a.example");
    let restored = &starts(&dir, "a.example").pop().unwrap()["restored"];
    // The step, and the silent ticks of alice/2 committed with it, if any.
    let replayed = restored["client_inputs_replayed"].as_u64().unwrap();
    assert!((1..=2).contains(&replayed), "{restored}");
    assert_eq!(applied(&mls_files(&state, "alice")[0]), after_at);
    a.ok(
        "POST",
        "/online",
        json!({"client": "alice/1", "online": true}),
    );
    wait_for("the offline message accepted", || sent(&a, 1));
    kill(&mut a);

    // 5. A database that says it includes an earlier journal row than it does (row 1:
    // no room yet) is refused, naming the client.
    let alice = mls_files(&state, "alice")[0].clone();
    rusqlite::Connection::open(&alice)
        .unwrap()
        .execute("UPDATE mimi_client SET applied_seq = 1", [])
        .unwrap();
    let (code, err) = refused_start(&dir, "a.example");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("older than the journal can repair") && err.contains("alice"),
        "{err}"
    );

    // 6. A damaged database: garbage over the file.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", alice.display()));
    }
    std::fs::write(&alice, vec![0x5a; 8192]).unwrap();
    let (code, err) = refused_start(&dir, "a.example");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(alice.file_name().unwrap().to_str().unwrap())
            && err.contains("MLS state database could not be read"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
