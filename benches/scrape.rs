//! A scrape costs O(series), not O(defects): the same 5 products × 20 releases
//! encoded from aggregates fed with 1 thousand and with 1 million defects.
//!
//! Run: `cargo bench --bench scrape`.

use std::sync::{Arc, RwLock};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use bug_escape_exporter::aggregate::{Aggregates, Class, Contribution, ReleaseMeta};
use bug_escape_exporter::config::{Config, Settings};
use bug_escape_exporter::metrics::Metrics;
use bug_escape_exporter::metrics::exposition::to_classic;
use bug_escape_exporter::telemetry::Telemetry;

const PRODUCTS: usize = 5;
const RELEASES: usize = 20;

fn fed(config: &Config, defects: usize) -> Aggregates {
    let mut agg = Aggregates::new(config);
    for p in 0..PRODUCTS {
        for r in 0..RELEASES {
            let meta = ReleaseMeta {
                first_found: None,
                time: Some((
                    Some(1_600_000_000_000 + (r as i64) * 86_400_000),
                    vec![Default::default()],
                )),
            };
            agg.set_release_meta(&format!("product-{p}"), &format!("1.{r}.0"), &meta);
        }
    }
    for i in 0..defects {
        agg.add(&Contribution {
            product: format!("product-{}", i % PRODUCTS),
            release: Some(format!("1.{}.0", (i / PRODUCTS) % RELEASES)),
            class: Class::Stage(i % 5),
            found_at: 1_600_000_000_000 + (i as i64 % 1000) * 3_600_000,
            cause: i % 5,
            detector: i % 4,
            severity: i % 5,
        });
    }
    agg
}

fn scrape(c: &mut Criterion) {
    let config = Arc::new(Config::from_settings(Settings::default()).expect("defaults are valid"));
    let mut group = c.benchmark_group("scrape");
    for defects in [1_000usize, 1_000_000] {
        let aggregates = Arc::new(RwLock::new(fed(&config, defects)));
        let metrics = Metrics::new(config.clone(), aggregates, &Telemetry::default());
        let text = metrics.openmetrics().expect("encodes");
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        println!("{defects} defects: {series} series, {} bytes", text.len());
        group.bench_with_input(
            BenchmarkId::new("openmetrics", defects),
            &metrics,
            |b, m| b.iter(|| m.openmetrics().expect("encodes")),
        );
        group.bench_with_input(BenchmarkId::new("classic", defects), &metrics, |b, m| {
            b.iter(|| to_classic(&m.openmetrics().expect("encodes")))
        });
    }
    group.finish();
}

criterion_group!(benches, scrape);
criterion_main!(benches);
