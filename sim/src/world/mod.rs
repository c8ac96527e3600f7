//! # The simulated world
//!
//! What one seeded run is made of: [`run`] (the world of one scenario and seed: hosts,
//! clients, the driver loop, phases, convergence), [`faults`] (the fault plan: the
//! scenario's schedule plus the seeded swarm, as windows over turmoil's links),
//! [`schedule`] (faults and steps in the order a driver applies them, for the simulator
//! and the testbed), [`steps`] (which op settles which scripted step, for the simulator
//! and the testbed's judge),
//! and [`net`] (any server core as an HTTP/1.1 host, over turmoil here or over TCP with
//! mutual TLS in the testbed).
//! What the world observes is judged in [`crate::observe`].

pub mod faults;
pub mod net;
pub mod run;
pub mod schedule;
pub mod steps;
