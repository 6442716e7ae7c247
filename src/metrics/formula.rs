//! The formulas of docs/semantics.md, as pure functions.

/// z for a two-sided 95 % interval.
const Z: f64 = 1.959_963_984_540_054;

/// `escaped / total`; `None` when `total` is 0.
pub fn rate(escaped: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| escaped as f64 / total as f64)
}

/// 95 % Wilson score interval of `escaped / total`; `None` when `total` is 0.
pub fn wilson(escaped: u64, total: u64) -> Option<(f64, f64)> {
    let p = rate(escaped, total)?;
    let n = total as f64;
    let z2 = Z * Z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Stage leaks `L_k = N_{>k} / N_{>=k}` for every stage index `k` in
/// `pre_release` (pipeline order), given the defect count of every stage of the
/// pipeline; `None` where `N_{>=k}` is 0.
pub fn stage_leaks(counts: &[u64], pre_release: &[usize]) -> Vec<(usize, Option<f64>)> {
    pre_release
        .iter()
        .map(|&k| (k, stage_leak(counts, k)))
        .collect()
}

/// The leak `L_k = N_{>k} / N_{>=k}` of the stage at index `k`; `None` where
/// `N_{>=k}` is 0.
pub fn stage_leak(counts: &[u64], k: usize) -> Option<f64> {
    let reached: u64 = counts[k..].iter().sum();
    rate(reached - counts[k], reached)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(rate(1, 4), Some(0.25));
        assert_eq!(rate(0, 0), None);
        // 1 of 3: the interval is wide (about 0.06 .. 0.79).
        let (lo, hi) = wilson(1, 3).unwrap();
        assert!(
            (lo - 0.0615).abs() < 1e-3 && (hi - 0.7923).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(wilson(0, 0), None);
        let (lo, _) = wilson(0, 10).unwrap();
        assert_eq!(lo, 0.0);
    }

    proptest! {
        #[test]
        fn wilson_contains_the_estimate(total in 1u64..100_000, frac in 0.0f64..=1.0) {
            let escaped = ((total as f64) * frac).floor() as u64;
            let p = rate(escaped, total).unwrap();
            let (lo, hi) = wilson(escaped, total).unwrap();
            prop_assert!(0.0 <= lo && lo <= p + 1e-12 && p <= hi + 1e-12 && hi <= 1.0, "{lo} {p} {hi}");
        }

        #[test]
        fn wilson_narrows_with_sample(escaped in 0u64..50, extra in 1u64..50) {
            let total = escaped + extra;
            let (lo1, hi1) = wilson(escaped, total).unwrap();
            let (lo2, hi2) = wilson(escaped * 10, total * 10).unwrap();
            prop_assert!(hi2 - lo2 <= hi1 - lo1 + 1e-12);
        }

        #[test]
        fn stage_leaks_multiply_to_the_escape_rate(
            pre in proptest::collection::vec(0u64..200, 1..6),
            prod in proptest::collection::vec(0u64..200, 1..3),
        ) {
            let counts: Vec<u64> = pre.iter().chain(prod.iter()).copied().collect();
            let pre_idx: Vec<usize> = (0..pre.len()).collect();
            let leaks = stage_leaks(&counts, &pre_idx);
            let total: u64 = counts.iter().sum();
            let escaped: u64 = prod.iter().sum();
            if leaks.iter().all(|(_, l)| l.is_some()) {
                let product: f64 = leaks.iter().map(|(_, l)| l.unwrap()).product();
                prop_assert!((product - rate(escaped, total).unwrap()).abs() < 1e-9);
            } else {
                // A factor is undefined only when no defect reached that stage,
                // so nothing escaped either.
                prop_assert_eq!(escaped, 0);
            }
            for (_, l) in leaks.into_iter() {
                if let Some(l) = l { prop_assert!((0.0..=1.0).contains(&l)); }
            }
        }
    }
}
