//! Statistics for the campaign summary: Wilson score intervals for rates and
//! nearest-rank quantiles for times.
//!
//! # Choices
//! * Rates carry a Wilson 95% score interval (z = 1.96): it stays inside [0, 1] and is
//!   honest at 0 and n successes, where the normal approximation collapses to a point.
//! * Quantiles are nearest-rank (the smallest value with at least q of the sample at or
//!   below it), so every reported quantile is a value some run actually had.

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.96;

/// A rate `k/n` with its Wilson 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub k: u64,
    pub n: u64,
    pub lo: f64,
    pub hi: f64,
}

impl Rate {
    /// The point estimate (0 when there are no trials).
    pub fn p(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.k as f64 / self.n as f64
        }
    }

    /// "3/200 1.5% [0.5–4.3%]".
    pub fn text(&self) -> String {
        if self.n == 0 {
            return "—".into();
        }
        format!(
            "{}/{} {} [{}–{}]",
            self.k,
            self.n,
            pct(self.p()),
            pct(self.lo),
            pct(self.hi)
        )
    }
}

/// A percentage with one decimal.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The Wilson score interval for `k` successes in `n` trials at the given `z`.
pub fn wilson(k: u64, n: u64, z: f64) -> Rate {
    if n == 0 {
        return Rate {
            k,
            n,
            lo: 0.0,
            hi: 1.0,
        };
    }
    let k = k.min(n);
    let nf = n as f64;
    let p = k as f64 / nf;
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let centre = (p + z2 / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / denom;
    Rate {
        k,
        n,
        lo: (centre - half).max(0.0),
        hi: (centre + half).min(1.0),
    }
}

/// Nearest-rank quantile `q` in (0, 1] of an ascending-sorted sample; `None` if empty.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted.get(i).copied()
}

/// p50/p90/p99 of a sample (sorted here), as text: "p50 1200 · p90 3400 · p99 5000 ms".
pub fn quantiles_text(sample: &[u64]) -> String {
    let mut s = sample.to_vec();
    s.sort_unstable();
    match (quantile(&s, 0.5), quantile(&s, 0.9), quantile(&s, 0.99)) {
        (Some(a), Some(b), Some(c)) => format!("p50 {a} · p90 {b} · p99 {c} ms (n={})", s.len()),
        _ => "— (n=0)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values: Wilson (1927) as tabulated by Newcombe (1998), Table I:
    /// 81/263 → 0.2553–0.3662; 0/10 → 0–0.2775; 10/10 → 0.7225–1.
    #[test]
    fn wilson_matches_newcombe_table() {
        let r = wilson(81, 263, Z95);
        assert!((r.lo - 0.2553).abs() < 5e-4, "{r:?}");
        assert!((r.hi - 0.3662).abs() < 5e-4, "{r:?}");
        let r = wilson(0, 10, Z95);
        assert_eq!(r.lo, 0.0);
        assert!((r.hi - 0.2775).abs() < 5e-4, "{r:?}");
        let r = wilson(10, 10, Z95);
        assert!((r.lo - 0.7225).abs() < 5e-4, "{r:?}");
        assert!((r.hi - 1.0).abs() < 1e-9);
    }

    #[test]
    fn wilson_contains_the_estimate_and_narrows_with_n() {
        for n in [1u64, 5, 50, 500] {
            for k in [0, n / 3, n / 2, n] {
                let r = wilson(k, n, Z95);
                assert!(r.lo <= r.p() + 1e-12 && r.p() <= r.hi + 1e-12, "{r:?}");
            }
        }
        let small = wilson(5, 10, Z95);
        let big = wilson(500, 1000, Z95);
        assert!(big.hi - big.lo < small.hi - small.lo);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let s: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&s, 0.5), Some(50));
        assert_eq!(quantile(&s, 0.9), Some(90));
        assert_eq!(quantile(&s, 0.99), Some(99));
        assert_eq!(quantile(&[7], 0.99), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
