//! Outcomes of a vector replay and their totals.
//!
//! Vocabulary: a test is **run** when both the joined client and the hub's public view
//! replayed it; it is **agreeing** when, after the join and after every epoch, the
//! client's epoch authenticator equals the vector's and the hub's GroupContext equals the
//! client's, and neither side rejected any message. A test that could not be run says
//! why in `skipped` (reason → count). A test whose handshakes the hub cannot read
//! (PrivateMessage) is skipped for the hub but still checked on the client alone
//! (`client_only`).
//!
//! A test whose inputs break RFC 9420 ([`super::rfc9420`]: e.g. a KeyPackage carrying an
//! extension its leaf's capabilities do not list, §10) **violates RFC 9420**: a
//! conforming implementation must refuse what the vector expects to be accepted, so the
//! test counts neither as agreeing nor as disagreeing. It is reported on its own line,
//! citing the section, with what our client made of the input; it does not make
//! `vectors mls` exit 1.
//!
//! Epoch numbers in failures: 0 is the join (Welcome and the hub's view built from the
//! client's GroupInfo); `k` ≥ 1 is the `k`-th entry of the vector's `epochs`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::rfc9420::{KeyPackageCheck, RfcViolation};

/// How many failures a report lists; the rest are only counted.
pub const MAX_REPORTED_FAILURES: usize = 20;

/// The step of a replay at which something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Loading the vector's PSKs, key package and private keys into the client's storage.
    KeyMaterial,
    /// Joining through the Welcome.
    Welcome,
    /// Checking that `signature_priv` signs for the client's own leaf.
    SignatureKey,
    /// Exporting the client's GroupInfo and ratchet tree for the hub.
    Export,
    /// Building the hub's view from that GroupInfo and tree.
    HubView,
    /// The `index`-th proposal of the epoch.
    Proposal { index: usize },
    /// The epoch's commit.
    Commit,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::KeyMaterial => f.write_str("key material"),
            Step::Welcome => f.write_str("welcome"),
            Step::SignatureKey => f.write_str("signature key"),
            Step::Export => f.write_str("group info export"),
            Step::HubView => f.write_str("hub view"),
            Step::Proposal { index } => write!(f, "proposal {index}"),
            Step::Commit => f.write_str("commit"),
        }
    }
}

/// What one side made of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The side accepted the message (or finished the step).
    Accepted,
    /// The side rejected it, with the error it gave.
    Rejected(String),
    /// The side did not take part in this step.
    NotRun,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accepted => f.write_str("accepted"),
            Verdict::Rejected(e) => write!(f, "rejected ({e})"),
            Verdict::NotRun => f.write_str("not run"),
        }
    }
}

/// One thing that disagreed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Disagreement {
    /// A side rejected a step the vector says succeeds.
    Rejected {
        step: Step,
        client: Verdict,
        hub: Verdict,
    },
    /// The client's epoch authenticator is not the vector's.
    EpochAuthenticator { expected: String, client: String },
    /// The hub's GroupContext (TLS bytes) is not the client's.
    GroupContext { client: String, hub: String },
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disagreement::Rejected { step, client, hub } => {
                write!(f, "{step}: client {client}, hub {hub}")
            }
            Disagreement::EpochAuthenticator { expected, client } => {
                write!(f, "epoch authenticator: vector {expected}, client {client}")
            }
            Disagreement::GroupContext { client, hub } => {
                write!(f, "group context: client {client}, hub {hub}")
            }
        }
    }
}

/// The first point at which a test disagreed (the replay of that test stops there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Index of the test in the file.
    pub test: usize,
    /// 0 = join, k = the vector's k-th epoch.
    pub epoch: usize,
    /// What disagreed (all checks of that point that failed).
    pub disagreements: Vec<Disagreement>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "test {}, epoch {}: ", self.test, self.epoch)?;
        for (i, d) in self.disagreements.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Why a test (or the hub's part of it) was not replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// openmls' RustCrypto provider does not implement this cipher suite.
    UnsupportedCipherSuite(u16),
    /// A handshake is a PrivateMessage, which the hub cannot read.
    PrivateHandshake,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::UnsupportedCipherSuite(n) => write!(f, "unsupported cipher suite {n}"),
            SkipReason::PrivateHandshake => f.write_str("private handshake"),
        }
    }
}

/// How the hub's view of a test's group was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HubViewOrigin {
    /// `PublicGroup::from_external` from the client's GroupInfo and ratchet tree.
    GroupInfo,
    /// `from_external` rejected the GroupInfo and tree only because a leaf's lifetime
    /// has expired (it checks lifetimes last, after signatures, parent hashes and the
    /// tree hash, and openmls 0.9.2 offers no way to skip that check there), so the view
    /// was loaded from the client's stored public state, after checking that its
    /// GroupContext equals the GroupInfo's. The client's join already validated every
    /// leaf except for lifetimes.
    ClientStateAfterExpiredLifetime,
}

/// A test whose inputs break RFC 9420.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VectorViolation {
    /// Index of the test in the file.
    pub test: usize,
    /// The rules broken (at least one).
    pub violations: Vec<RfcViolation>,
    /// What our client's key-package check (openmls `KeyPackageIn::validate`, lifetime
    /// aside) made of the same KeyPackage; `not_run` for a cipher suite it lacks.
    pub client: Verdict,
}

impl fmt::Display for VectorViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "test {}: ", self.test)?;
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        write!(f, "; our client {}", self.client)
    }
}

/// The outcome of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestOutcome {
    /// Not replayed at all.
    Skipped(SkipReason),
    /// Not replayed: the vector's inputs break RFC 9420.
    ViolatesRfc9420(VectorViolation),
    /// Replayed on the client, and on the hub unless `hub_skipped` says why not.
    Replayed {
        /// Why the hub did not take part, if it did not.
        hub_skipped: Option<SkipReason>,
        /// How the hub's view was built, if it was.
        hub_view: Option<HubViewOrigin>,
        /// Epoch checks passed (the join counts as one).
        epochs_agreeing: usize,
        /// The first disagreement, if any.
        failure: Option<Failure>,
    },
}

/// Counts for tests checked on the client alone (the hub was skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientOnlyCounts {
    /// Tests replayed on the client alone.
    pub checked: usize,
    /// Of those, tests where the client matched every epoch authenticator.
    pub agreeing: usize,
}

/// What the RFC 9420 input check could read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rfc9420CheckCounts {
    /// KeyPackages the check decoded and judged (conforming or not).
    pub key_packages_checked: usize,
    /// KeyPackages it could not decode (left to the replay).
    pub key_packages_undecodable: usize,
}

/// Totals of a replay of one vector file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Tests in the file.
    pub tests: usize,
    /// Tests replayed on both the client and the hub.
    pub run: usize,
    /// Run tests where everything agreed.
    pub agreeing: usize,
    /// Tests (run or client-only) with a disagreement.
    pub disagreeing: usize,
    /// Tests whose inputs break RFC 9420: neither agreeing nor disagreeing.
    pub violating_rfc9420: usize,
    /// The first [`MAX_REPORTED_FAILURES`] of those, in test order.
    pub rfc9420_violations: Vec<VectorViolation>,
    /// How many KeyPackages the RFC 9420 check read.
    pub rfc9420_check: Rfc9420CheckCounts,
    /// Epoch checks that agreed, over all replayed tests (the join counts as one).
    pub epochs_agreeing: usize,
    /// Tests (or their hub part) not replayed, by reason.
    pub skipped: BTreeMap<String, usize>,
    /// Tests checked on the client alone.
    pub client_only: ClientOnlyCounts,
    /// Hub views built by `PublicGroup::from_external` from the GroupInfo and tree.
    pub hub_views_from_group_info: usize,
    /// Hub views loaded from the client's public state because `from_external` rejected
    /// an expired leaf lifetime (see [`HubViewOrigin::ClientStateAfterExpiredLifetime`]).
    pub hub_views_after_expired_lifetime: usize,
    /// The first [`MAX_REPORTED_FAILURES`] failures, in test order.
    pub failures: Vec<Failure>,
    /// Failures beyond those listed.
    pub failures_not_listed: usize,
}

impl ReplayReport {
    /// Counts what the RFC 9420 check made of one test's KeyPackage (the verdict itself
    /// is in the test's outcome).
    pub fn record_check(&mut self, check: &KeyPackageCheck) {
        match check {
            KeyPackageCheck::Conforms | KeyPackageCheck::Violates(_) => {
                self.rfc9420_check.key_packages_checked += 1
            }
            KeyPackageCheck::Undecodable(_) => self.rfc9420_check.key_packages_undecodable += 1,
        }
    }

    /// Adds one test's outcome.
    pub fn record(&mut self, outcome: TestOutcome) {
        self.tests += 1;
        match outcome {
            TestOutcome::Skipped(reason) => {
                *self.skipped.entry(reason.to_string()).or_insert(0) += 1;
            }
            TestOutcome::ViolatesRfc9420(violation) => {
                self.violating_rfc9420 += 1;
                if self.rfc9420_violations.len() < MAX_REPORTED_FAILURES {
                    self.rfc9420_violations.push(violation);
                }
            }
            TestOutcome::Replayed {
                hub_skipped,
                hub_view,
                epochs_agreeing,
                failure,
            } => {
                self.epochs_agreeing += epochs_agreeing;
                match hub_view {
                    Some(HubViewOrigin::GroupInfo) => self.hub_views_from_group_info += 1,
                    Some(HubViewOrigin::ClientStateAfterExpiredLifetime) => {
                        self.hub_views_after_expired_lifetime += 1
                    }
                    None => {}
                }
                let agreed = failure.is_none();
                match hub_skipped {
                    Some(reason) => {
                        *self.skipped.entry(reason.to_string()).or_insert(0) += 1;
                        self.client_only.checked += 1;
                        if agreed {
                            self.client_only.agreeing += 1;
                        }
                    }
                    None => {
                        self.run += 1;
                        if agreed {
                            self.agreeing += 1;
                        }
                    }
                }
                if let Some(failure) = failure {
                    self.disagreeing += 1;
                    if self.failures.len() < MAX_REPORTED_FAILURES {
                        self.failures.push(failure);
                    } else {
                        self.failures_not_listed += 1;
                    }
                }
            }
        }
    }

    /// True when any replayed test (run or client-only) disagreed.
    pub fn has_disagreement(&self) -> bool {
        self.disagreeing > 0
    }
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "tests:     {}", self.tests)?;
        writeln!(f, "run:       {} (client and hub)", self.run)?;
        writeln!(f, "agreeing:  {}", self.agreeing)?;
        writeln!(f, "disagreeing: {}", self.disagreeing)?;
        writeln!(
            f,
            "violates RFC 9420: {} (the vector's input breaks the RFC: neither agreeing nor disagreeing)",
            self.violating_rfc9420
        )?;
        for violation in &self.rfc9420_violations {
            writeln!(f, "  RFC {violation}")?;
        }
        if self.violating_rfc9420 > self.rfc9420_violations.len() {
            writeln!(
                f,
                "  ... and {} more",
                self.violating_rfc9420 - self.rfc9420_violations.len()
            )?;
        }
        writeln!(
            f,
            "key packages checked against RFC 9420: {} ({} not decodable by the check)",
            self.rfc9420_check.key_packages_checked, self.rfc9420_check.key_packages_undecodable
        )?;
        writeln!(f, "epoch checks agreeing: {}", self.epochs_agreeing)?;
        writeln!(
            f,
            "hub views: {} from GroupInfo, {} from client state after an expired leaf lifetime",
            self.hub_views_from_group_info, self.hub_views_after_expired_lifetime
        )?;
        if self.client_only.checked > 0 {
            writeln!(
                f,
                "client only: {} checked, {} agreeing",
                self.client_only.checked, self.client_only.agreeing
            )?;
        }
        let skipped: usize = self.skipped.values().sum();
        writeln!(f, "skipped:   {skipped}")?;
        for (reason, count) in &self.skipped {
            writeln!(f, "  {count:>4}  {reason}")?;
        }
        for failure in &self.failures {
            writeln!(f, "FAIL {failure}")?;
        }
        if self.failures_not_listed > 0 {
            writeln!(f, "... and {} more failures", self.failures_not_listed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(test: usize) -> Failure {
        Failure {
            test,
            epoch: 1,
            disagreements: vec![Disagreement::EpochAuthenticator {
                expected: "aa".into(),
                client: "bb".into(),
            }],
        }
    }

    #[test]
    fn totals_follow_outcomes() {
        let mut report = ReplayReport::default();
        report.record(TestOutcome::Skipped(SkipReason::UnsupportedCipherSuite(5)));
        report.record(TestOutcome::Replayed {
            hub_skipped: None,
            hub_view: Some(HubViewOrigin::GroupInfo),
            epochs_agreeing: 3,
            failure: None,
        });
        report.record(TestOutcome::Replayed {
            hub_skipped: None,
            hub_view: Some(HubViewOrigin::GroupInfo),
            epochs_agreeing: 1,
            failure: Some(failure(2)),
        });
        report.record(TestOutcome::Replayed {
            hub_skipped: Some(SkipReason::PrivateHandshake),
            hub_view: None,
            epochs_agreeing: 3,
            failure: None,
        });
        assert_eq!(report.tests, 4);
        assert_eq!(report.run, 2);
        assert_eq!(report.agreeing, 1);
        assert_eq!(report.disagreeing, 1);
        assert_eq!(report.epochs_agreeing, 7);
        assert_eq!(report.skipped.get("unsupported cipher suite 5"), Some(&1));
        assert_eq!(report.skipped.get("private handshake"), Some(&1));
        assert_eq!(
            report.client_only,
            ClientOnlyCounts {
                checked: 1,
                agreeing: 1
            }
        );
        assert!(report.has_disagreement());
        assert_eq!(
            report.failures[0].to_string(),
            "test 2, epoch 1: epoch authenticator: vector aa, client bb"
        );
    }

    #[test]
    fn a_vector_violating_the_rfc_is_neither_agreement_nor_disagreement() {
        let mut report = ReplayReport::default();
        report.record_check(&KeyPackageCheck::Conforms);
        report.record(TestOutcome::Replayed {
            hub_skipped: None,
            hub_view: Some(HubViewOrigin::GroupInfo),
            epochs_agreeing: 3,
            failure: None,
        });
        let violation = VectorViolation {
            test: 1,
            violations: vec![RfcViolation {
                section: "RFC 9420 §10",
                rule:
                    "a KeyPackage's extensions must be listed in leaf_node.capabilities.extensions",
                detail: "KeyPackage extension(s) 0x000a not in capabilities.extensions []".into(),
            }],
            client: Verdict::Rejected("invalid key package".into()),
        };
        report.record_check(&KeyPackageCheck::Violates(violation.violations.clone()));
        report.record(TestOutcome::ViolatesRfc9420(violation.clone()));
        report.record_check(&KeyPackageCheck::Undecodable("truncated".into()));
        report.record(TestOutcome::Skipped(SkipReason::UnsupportedCipherSuite(4)));

        assert_eq!(report.tests, 3);
        assert_eq!((report.run, report.agreeing, report.disagreeing), (1, 1, 0));
        assert_eq!(report.violating_rfc9420, 1);
        assert_eq!(report.rfc9420_violations, vec![violation]);
        assert_eq!(
            report.rfc9420_check,
            Rfc9420CheckCounts {
                key_packages_checked: 2,
                key_packages_undecodable: 1
            }
        );
        assert!(
            !report.has_disagreement(),
            "a violation is not a disagreement"
        );
        let text = report.to_string();
        assert!(text.contains("violates RFC 9420: 1"), "{text}");
        assert!(
            text.contains("RFC test 1: RFC 9420 §10: a KeyPackage's extensions"),
            "{text}"
        );
        assert!(
            text.contains("our client rejected (invalid key package)"),
            "{text}"
        );
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["violating_rfc9420"], 1);
        assert_eq!(
            json["rfc9420_violations"][0]["violations"][0]["section"],
            "RFC 9420 §10"
        );
    }

    #[test]
    fn failure_list_is_bounded() {
        let mut report = ReplayReport::default();
        for test in 0..MAX_REPORTED_FAILURES + 3 {
            report.record(TestOutcome::Replayed {
                hub_skipped: None,
                hub_view: None,
                epochs_agreeing: 0,
                failure: Some(failure(test)),
            });
        }
        assert_eq!(report.failures.len(), MAX_REPORTED_FAILURES);
        assert_eq!(report.failures_not_listed, 3);
        assert_eq!(report.disagreeing, MAX_REPORTED_FAILURES + 3);
    }
}
