//! The fault-injecting TCP proxy of the testbed: one per ordered pair of providers. The
//! peers file of node X points peer Y at the proxy X→Y, which forwards bytes to Y's real
//! address; the runner opens and closes the scenario's fault windows on it.
//!
//! The proxy sees bytes, not messages (TLS runs end to end through it), so each fault
//! kind is done over TCP as follows:
//! * `partition` / `flap`: every open connection of the link is reset (both directions)
//!   and new ones are accepted and closed at once, until the window ends.
//! * `partition-oneway` from→to: a connection is reset as soon as bytes would flow from
//!   `from` to `to` (on the proxy from→to: the requests; on to→from: the responses);
//!   bytes the other way pass. Over TCP a request cannot get through without its answer
//!   coming back, so a one-way partition also stops the exchanges it cuts halfway.
//! * `hold`: bytes are kept, per connection and direction, and forwarded when the window
//!   ends; every held connection flushes on its own when it sees the end, so messages
//!   on different connections may arrive in another order than they were sent (bytes
//!   within one connection keep TCP's order).
//! * `loss` (rate p): TCP does not lose bytes, so a lossy link **resets the connection**
//!   with probability p per chunk forwarded (and refuses a new connection with
//!   probability p): what was in flight is lost and the sender sees a transport error.
//! * `latency` min..max: every chunk waits a uniform delay in [min, max] ms before it is
//!   forwarded (order kept).
//!
//! Crashes and client offline periods are not link faults: the runner kills and restarts
//! the provider's process, and tells the node's control API to take a client offline.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Largest chunk read at once.
const CHUNK: usize = 16 * 1024;
/// Most bytes held per connection and direction during a hold (beyond: reset).
const MAX_HELD_BYTES: usize = 4 << 20;
/// How long the proxy tries to reach the real node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the proxy {from}→{to} could not listen on loopback: {source}")]
    Listen {
        from: String,
        to: String,
        source: std::io::Error,
    },
}

/// The faults open on one directed link (counts, so that overlapping windows nest).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkFaults {
    pub partition: u32,
    pub hold: u32,
    /// One-way partitions in the proxy's direction (from the connecting node to its peer).
    pub block_forward: u32,
    /// One-way partitions in the other direction (the peer's answers).
    pub block_back: u32,
    /// Open loss windows and the rate of the newest.
    pub loss: u32,
    pub loss_rate: f64,
    pub latency: u32,
    pub latency_ms: (u64, u64),
}

/// What the proxy did (for the report and the tests).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ProxyStats {
    pub connections: u64,
    /// Connections refused at accept (partition or loss).
    pub refused: u64,
    /// Connections reset while open (partition, one-way partition, loss).
    pub resets: u64,
    pub bytes_forward: u64,
    pub bytes_back: u64,
    /// Chunks held during a hold and released after.
    pub held_chunks: u64,
    /// Chunks delayed by a latency window.
    pub delayed_chunks: u64,
}

struct Shared {
    stats: Mutex<ProxyStats>,
    rng: Mutex<ChaCha8Rng>,
}

impl Shared {
    fn stat(&self, f: impl FnOnce(&mut ProxyStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }
    /// True with probability `p`.
    fn draw(&self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let x = self.rng.lock().map_or(0, |mut r| r.next_u64());
        (x as f64 / u64::MAX as f64) < p
    }
    fn delay(&self, (lo, hi): (u64, u64)) -> Duration {
        let x = self.rng.lock().map_or(0, |mut r| r.next_u64());
        let span = hi.saturating_sub(lo);
        Duration::from_millis(lo + if span == 0 { 0 } else { x % (span + 1) })
    }
}

/// One directed link's proxy: `from` connects to it to reach `to`.
pub struct Proxy {
    pub from: String,
    pub to: String,
    /// Where `from`'s peers file points `to`.
    pub addr: SocketAddr,
    faults: watch::Sender<LinkFaults>,
    /// The real address of `to` (changes when its process restarts).
    target: watch::Sender<SocketAddr>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Starts a proxy on 127.0.0.1 (any free port) forwarding to `target`. Must be called
    /// inside a tokio runtime.
    pub async fn start(
        from: &str,
        to: &str,
        target: SocketAddr,
        seed: u64,
    ) -> Result<Proxy, ProxyError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .and_then(|l| l.local_addr().map(|a| (l, a)));
        let (listener, addr) = listener.map_err(|source| ProxyError::Listen {
            from: from.into(),
            to: to.into(),
            source,
        })?;
        let (faults, faults_rx) = watch::channel(LinkFaults::default());
        let (target, target_rx) = watch::channel(target);
        let shared = Arc::new(Shared {
            stats: Mutex::new(ProxyStats::default()),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        });
        let task = tokio::spawn(accept_loop(listener, faults_rx, target_rx, shared.clone()));
        Ok(Proxy {
            from: from.into(),
            to: to.into(),
            addr,
            faults,
            target,
            shared,
            task,
        })
    }

    /// Changes the link's faults (the open connections see the change at once).
    pub fn update(&self, f: impl FnOnce(&mut LinkFaults)) {
        self.faults.send_modify(f);
    }

    pub fn faults(&self) -> LinkFaults {
        self.faults.borrow().clone()
    }

    /// Points the proxy at `to`'s new address (after a restart).
    pub fn retarget(&self, addr: SocketAddr) {
        let _ = self.target.send(addr);
    }

    pub fn stats(&self) -> ProxyStats {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

async fn accept_loop(
    listener: TcpListener,
    faults: watch::Receiver<LinkFaults>,
    target: watch::Receiver<SocketAddr>,
    shared: Arc<Shared>,
) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        shared.stat(|s| s.connections += 1);
        let f = faults.borrow().clone();
        if f.partition > 0 || (f.loss > 0 && shared.draw(f.loss_rate)) {
            shared.stat(|s| s.refused += 1);
            drop(inbound);
            continue;
        }
        let to = *target.borrow();
        tokio::spawn(connection(inbound, to, faults.clone(), shared.clone()));
    }
}

/// One direction's bytes waiting for a hold to end.
#[derive(Default)]
struct Held {
    chunks: Vec<Vec<u8>>,
    bytes: usize,
}

/// Forwards one connection until either side closes or a fault resets it.
async fn connection(
    mut a: TcpStream,
    to: SocketAddr,
    mut faults: watch::Receiver<LinkFaults>,
    shared: Arc<Shared>,
) {
    let Ok(Ok(mut b)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await else {
        shared.stat(|s| s.resets += 1);
        return;
    };
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let (mut ar, mut aw) = a.split();
    let (mut br, mut bw) = b.split();
    let (mut abuf, mut bbuf) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let (mut held_fwd, mut held_back) = (Held::default(), Held::default());
    let (mut a_open, mut b_open) = (true, true);
    loop {
        let f = faults.borrow_and_update().clone();
        if f.partition > 0 {
            shared.stat(|s| s.resets += 1);
            return;
        }
        if f.hold == 0 && (!held_fwd.chunks.is_empty() || !held_back.chunks.is_empty()) {
            for c in std::mem::take(&mut held_fwd.chunks) {
                if aw_write(&mut bw, &c).await.is_err() {
                    return;
                }
            }
            for c in std::mem::take(&mut held_back.chunks) {
                if aw_write(&mut aw, &c).await.is_err() {
                    return;
                }
            }
            held_fwd.bytes = 0;
            held_back.bytes = 0;
        }
        if !a_open && !b_open {
            return;
        }
        tokio::select! {
            changed = faults.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            n = ar.read(&mut abuf), if a_open => {
                let n = match n { Ok(n) => n, Err(_) => return };
                if n == 0 {
                    a_open = false;
                    let _ = bw.shutdown().await;
                    continue;
                }
                let f = faults.borrow().clone();
                if f.block_forward > 0 || (f.loss > 0 && shared.draw(f.loss_rate)) {
                    shared.stat(|s| s.resets += 1);
                    return;
                }
                shared.stat(|s| s.bytes_forward += n as u64);
                if forward(&abuf[..n], &f, &mut held_fwd, &mut bw, &shared).await.is_err() {
                    return;
                }
            }
            n = br.read(&mut bbuf), if b_open => {
                let n = match n { Ok(n) => n, Err(_) => return };
                if n == 0 {
                    b_open = false;
                    let _ = aw.shutdown().await;
                    continue;
                }
                let f = faults.borrow().clone();
                if f.block_back > 0 || (f.loss > 0 && shared.draw(f.loss_rate)) {
                    shared.stat(|s| s.resets += 1);
                    return;
                }
                shared.stat(|s| s.bytes_back += n as u64);
                if forward(&bbuf[..n], &f, &mut held_back, &mut aw, &shared).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn aw_write<W: AsyncWriteExt + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

/// Forwards one chunk under the link's faults: held during a hold, delayed by latency.
async fn forward<W: AsyncWriteExt + Unpin>(
    chunk: &[u8],
    f: &LinkFaults,
    held: &mut Held,
    w: &mut W,
    shared: &Shared,
) -> Result<(), ()> {
    if f.hold > 0 {
        if held.bytes + chunk.len() > MAX_HELD_BYTES {
            shared.stat(|s| s.resets += 1);
            return Err(());
        }
        held.bytes += chunk.len();
        held.chunks.push(chunk.to_vec());
        shared.stat(|s| s.held_chunks += 1);
        return Ok(());
    }
    if f.latency > 0 {
        shared.stat(|s| s.delayed_chunks += 1);
        tokio::time::sleep(shared.delay(f.latency_ms)).await;
    }
    aw_write(w, chunk).await.map_err(|_| ())
}
