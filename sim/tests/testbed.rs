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
        let stderr = dir.join(format!("{domain}.stderr"));
        let mut child = Command::new(bin())
            .args(["node", "--provider", domain, "--listen", "127.0.0.1:0"])
            .arg("--peers")
            .arg(dir.join("peers.toml"))
            .arg("--state")
            .arg(dir.join(domain))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
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
