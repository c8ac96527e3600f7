//! When a host ticks a client core: the one rule the simulator and the testbed share.
//!
//! A client says when it next needs time ([`super::core::Client::next_wakeup`]). A timer
//! that is due after the last tick is served by the next tick. A timer due at or before
//! the last tick was already served and did nothing then (it waits for something else,
//! e.g. a reply); ticking it again would spin, so it waits until an input reaches the
//! client (a message, a step, coming online), after which it may act.

use crate::io::Millis;

/// The host's record of one client's (or one node's clients') ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickGate {
    /// The time of the last tick: timers due by then were served.
    served: Millis,
    /// An input reached the client since the last tick.
    fed: bool,
}

impl Default for TickGate {
    /// A new client: nothing served, and its first timer may act.
    fn default() -> Self {
        TickGate {
            served: 0,
            fed: true,
        }
    }
}

impl TickGate {
    /// An input reached the client: a timer served before may act now.
    pub fn fed(&mut self) {
        self.fed = true;
    }

    /// The time the host should tick for a client whose next timer is `wakeup`: `None`
    /// if it has none, or only one already served with no input since.
    pub fn next(&self, wakeup: Option<Millis>) -> Option<Millis> {
        wakeup.filter(|t| self.fed || *t > self.served)
    }

    /// Whether a client whose next timer is `wakeup` is due a tick at `now`.
    pub fn due(&self, wakeup: Option<Millis>, now: Millis) -> bool {
        self.next(wakeup).is_some_and(|t| t <= now)
    }

    /// The host ticked the client at `now`.
    pub fn ticked(&mut self, now: Millis) {
        self.served = now;
        self.fed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_served_timer_waits_for_an_input_and_a_later_one_does_not() {
        let mut g = TickGate::default();
        assert_eq!(g.next(None), None);
        assert!(g.due(Some(100), 100));
        assert!(!g.due(Some(101), 100));
        g.ticked(100);
        // The timer at 100 was served and is still there: not due again, however late.
        assert_eq!(g.next(Some(100)), None);
        assert!(!g.due(Some(100), 5_000));
        // A later timer is.
        assert_eq!(g.next(Some(150)), Some(150));
        assert!(g.due(Some(150), 150));
        // An input: the served timer may act again.
        g.fed();
        assert!(g.due(Some(100), 120));
        g.ticked(120);
        assert!(!g.due(Some(100), 130));
    }
}
