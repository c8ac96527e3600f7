//! A cost meter for the benchmark: how much wall time a thread spends inside openmls
//! (and the MLS-level crypto of the MIMI wire structures), so that the simulator's own
//! overhead can be reported as a share of the MLS work.
//!
//! The meter is thread-local and **off** by default. When off, [`measure`] reads one
//! thread-local flag and calls its closure: no clock is read. When a benchmark turns it on
//! with [`enable`], every *outermost* [`measure`] reads `std::time::Instant` before and
//! after its closure and adds the elapsed time to the totals and to its category.
//!
//! # Why a clock here does not break determinism
//!
//! This module is the only place in `nodes` that uses `std::time`. The values it reads
//! flow only into the meter's own counters, which are read by [`snapshot`] for reporting;
//! nothing in the protocol cores (hub, follower, client, MLS glue) reads the meter, so no
//! byte, decision or event order can depend on it. `measure` calls its closure exactly
//! once, whether the meter is on or off, and returns its value unchanged; the test
//! `nodes/tests/cost_meter.rs` checks that seeded commit and Welcome bytes are identical
//! with the meter on and off.
//!
//! # Nesting
//!
//! Measured operations call each other (a member's commit stages a canonical commit,
//! which signs with the seeded crypto provider, …). Only the outermost `measure` of a
//! thread reads the clock, so time is never counted twice: [`CostSnapshot::nanos`] is the
//! wall time spent inside outermost measured calls. Inner calls are counted (per category,
//! as `nested`) but carry no time. [`CostSnapshot::calls`] counts outermost calls only.
//!
//! # Choices
//!
//! * Thread-local, not global: the simulator runs a whole world on one thread, tests run
//!   in parallel threads and must not see each other's counts. Work openmls hands to
//!   worker threads (rayon `par_iter` in UpdatePath encryption) is inside the caller's
//!   outermost measure, so its wall time is counted there; calls made *on* worker threads
//!   are not counted (their meter is off).
//! * Granularity: public operations of `client::member`, `hub::public_view`, the MLS
//!   identity and KeyPackage helpers, the canonical commit (and each of its attempts), the
//!   signed/encrypted wire structures (`wire::group_info`, `wire::key_material`), and as a
//!   safety net the asymmetric primitives of the seeded crypto provider (`crypto.*`), so
//!   that calls from code that is not wrapped (e.g. KeyPackage validation in the client
//!   core) still count. Trivial accessors (epoch, member list) are not measured.
//! * If a measured closure panics, the nesting depth is restored (drop guard) and the
//!   call counts with no time.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Instant;

/// The cost of one category of operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CategoryCost {
    /// Outermost calls (the ones whose time is counted).
    pub calls: u64,
    /// Calls made inside another measured call (counted, no time).
    pub nested: u64,
    /// Wall time of the outermost calls, in nanoseconds.
    pub nanos: u128,
}

/// The meter's totals since the last [`reset`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostSnapshot {
    /// Outermost measured calls.
    pub calls: u64,
    /// Measured calls nested inside another measured call.
    pub nested: u64,
    /// Wall time inside outermost measured calls, in nanoseconds.
    pub nanos: u128,
    /// Per operation name (e.g. `"member.commit"`), in name order.
    pub by_category: BTreeMap<&'static str, CategoryCost>,
}

impl CostSnapshot {
    /// The cost of one category (zero if it never ran).
    pub fn category(&self, what: &str) -> CategoryCost {
        self.by_category.get(what).copied().unwrap_or_default()
    }
}

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    /// How many measured calls are running on this thread.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static TOTALS: RefCell<CostSnapshot> = RefCell::new(CostSnapshot::default());
}

/// Turn this thread's meter on or off. Counters are kept (see [`reset`]).
pub fn enable(on: bool) {
    ENABLED.with(|e| e.set(on));
}

/// Whether this thread's meter is on.
pub fn is_enabled() -> bool {
    ENABLED.with(Cell::get)
}

/// Zero this thread's counters (the on/off state is kept).
pub fn reset() {
    TOTALS.with(|t| *t.borrow_mut() = CostSnapshot::default());
}

/// This thread's counters since the last [`reset`].
pub fn snapshot() -> CostSnapshot {
    TOTALS.with(|t| t.borrow().clone())
}

fn record(what: &'static str, nanos: Option<u128>) {
    TOTALS.with(|t| {
        let mut t = t.borrow_mut();
        match nanos {
            Some(n) => {
                t.calls += 1;
                t.nanos += n;
                let c = t.by_category.entry(what).or_default();
                c.calls += 1;
                c.nanos += n;
            }
            None => {
                t.nested += 1;
                t.by_category.entry(what).or_default().nested += 1;
            }
        }
    });
}

/// Restores the depth when the measured closure ends (also by unwinding) and records it.
struct Guard {
    what: &'static str,
    /// Set for the outermost call only.
    start: Option<Instant>,
    finished: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        match self.start {
            Some(start) => {
                let nanos = if self.finished {
                    start.elapsed().as_nanos()
                } else {
                    0
                };
                record(self.what, Some(nanos));
            }
            None => record(self.what, None),
        }
    }
}

/// Run `f`, counting it under `what` if this thread's meter is on. `f` runs exactly once
/// and its value is returned unchanged; only the outermost measured call reads the clock.
pub fn measure<T>(what: &'static str, f: impl FnOnce() -> T) -> T {
    if !is_enabled() {
        return f();
    }
    let outermost = DEPTH.with(|d| {
        let depth = d.get();
        d.set(depth.saturating_add(1));
        depth == 0
    });
    let mut guard = Guard {
        what,
        start: outermost.then(Instant::now),
        finished: false,
    };
    let value = f();
    guard.finished = true;
    drop(guard);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_records_nothing_and_returns_the_value() {
        enable(false);
        reset();
        assert_eq!(measure("x", || 7), 7);
        assert_eq!(snapshot(), CostSnapshot::default());
    }

    #[test]
    fn nested_calls_count_but_carry_no_time() {
        enable(true);
        reset();
        let v = measure("outer", || {
            let a = measure("inner", || measure("inner", || 1));
            a + measure("other", || 2)
        });
        enable(false);
        assert_eq!(v, 3);
        let s = snapshot();
        assert_eq!(s.calls, 1);
        assert_eq!(s.nested, 3);
        assert_eq!(s.category("outer").calls, 1);
        assert_eq!(
            s.category("inner"),
            CategoryCost {
                calls: 0,
                nested: 2,
                nanos: 0
            }
        );
        assert_eq!(s.category("other").nested, 1);
        assert_eq!(s.category("outer").nanos, s.nanos);
        assert_eq!(DEPTH.with(Cell::get), 0);
    }

    #[test]
    fn a_panicking_call_restores_the_depth() {
        enable(true);
        reset();
        let r = std::panic::catch_unwind(|| measure("boom", || -> u8 { panic!("planted") }));
        assert!(r.is_err());
        assert_eq!(DEPTH.with(Cell::get), 0);
        measure("after", || ());
        enable(false);
        let s = snapshot();
        assert_eq!(s.category("boom").calls, 1);
        assert_eq!(s.category("after").calls, 1);
        assert_eq!(s.nested, 0);
    }

    #[test]
    fn reset_zeroes_and_keeps_the_switch() {
        enable(true);
        measure("x", || ());
        reset();
        assert!(is_enabled());
        assert_eq!(snapshot(), CostSnapshot::default());
        enable(false);
    }
}
