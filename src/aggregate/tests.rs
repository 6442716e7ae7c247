use super::*;
use crate::config::Settings;
use proptest::prelude::*;

fn contribution() -> impl Strategy<Value = Contribution> {
    (
        0..3usize,
        proptest::option::of(0..4usize),
        0..7usize,
        0..100i64,
        0..5usize,
        0..4usize,
        0..5usize,
    )
        .prop_map(|(p, r, s, t, c, d, sev)| Contribution {
            product: format!("p{p}"),
            release: r.map(|r| format!("{r}.0")),
            class: match s {
                5 => Class::UnknownStage,
                6 => Class::NoStage,
                s => Class::Stage(s),
            },
            found_at: t * 1000,
            cause: c,
            detector: d,
            severity: sev,
        })
}

/// At each maturity age a release counts, in its fixed counters, every
/// valid defect found up to that age after its release time (the age
/// itself included), its production defects, and those by detector; the
/// store's recomputation after a release time changes gives the same.
#[test]
fn at_age_counts_total_production_and_detectors_within_the_age() {
    const DAY: Millis = 86_400_000;
    let config = Config::from_settings(Settings::default()).unwrap();
    let mut agg = Aggregates::new(&config);
    let t = 1_000 * DAY;
    let timed = |time: Millis, at_age: Vec<AtAge>| ReleaseMeta {
        first_found: None,
        time: Some((Some(time), at_age)),
    };
    agg.set_release_meta("p", "1.0", &timed(t, vec![[0; AT_AGE]]));
    // Stage 3 is qa, 4 production; detectors user, monitoring, other, unknown.
    let defect = |stage: usize, days: Millis, detector: usize| Contribution {
        product: "p".into(),
        release: Some("1.0".into()),
        class: Class::Stage(stage),
        found_at: t + days * DAY,
        cause: 0,
        detector,
        severity: 0,
    };
    let cs = [
        defect(3, -5, 0),
        defect(4, 1, 0),
        defect(4, 2, 0),
        defect(4, 30, 1),
        defect(4, 31, 0),
        defect(4, 3, 3),
    ];
    let size = agg.empty_release().counts.len();
    for c in &cs {
        agg.add(c);
    }
    let r = &agg.products["p"].releases["1.0"];
    assert_eq!(r.at_age(0), [5, 4]);
    assert_eq!(r.at_age_detectors(0), [2, 1, 0, 1]);
    assert_eq!(r.detectors(), [3, 1, 0, 1], "all production defects");
    assert_eq!(r.counts.len(), size, "counters, not per-defect state");
    assert_eq!(
        agg.at_age_counts(Some(t), cs.iter()),
        vec![[5, 4, 2, 1, 0, 1]]
    );

    agg.remove(&cs[1]);
    let r = &agg.products["p"].releases["1.0"];
    assert_eq!(r.at_age(0), [4, 3]);
    assert_eq!(r.at_age_detectors(0), [1, 1, 0, 1]);

    // Shipped ten days later: the defect found on day 31 is now within 30d.
    let later = t + 10 * DAY;
    let kept: Vec<Contribution> = cs.iter().filter(|c| *c != &cs[1]).cloned().collect();
    let recomputed = agg.at_age_counts(Some(later), kept.iter());
    agg.set_release_meta("p", "1.0", &timed(later, recomputed));
    let r = &agg.products["p"].releases["1.0"];
    assert_eq!(r.at_age(0), [5, 4]);
    assert_eq!(r.at_age_detectors(0), [2, 1, 0, 1]);
}

proptest! {
    /// Removing what was added, in any order, leaves nothing behind; while
    /// added, T(R) is the number of staged, attributed contributions.
    #[test]
    fn add_and_remove_are_inverse(cs in proptest::collection::vec(contribution(), 0..60), seed in any::<u64>()) {
        let config = Config::from_settings(Settings::default()).unwrap();
        let mut agg = Aggregates::new(&config);
        for c in &cs {
            agg.add(c);
        }
        let staged = cs.iter().filter(|c| c.release.is_some() && matches!(c.class, Class::Stage(_))).count() as u64;
        let total: u64 = agg.products.values().flat_map(|p| p.releases.values()).map(ReleaseAgg::total).sum();
        prop_assert_eq!(total, staged);
        let mut order: Vec<usize> = (0..cs.len()).collect();
        let mut s = seed | 1;
        for i in (1..order.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            order.swap(i, (s % (i as u64 + 1)) as usize);
        }
        for i in order {
            agg.remove(&cs[i]);
        }
        prop_assert!(agg.products.is_empty(), "{:?}", agg.products);
    }
}
