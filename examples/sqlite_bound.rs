//! The ceiling SQLite itself puts on durable ingest of realistic defects,
//! with no exporter code around it: rows shaped as `scripts/ingest.py` sends
//! them (random 64-bit hex ids, every field set, 50 products × 200 releases)
//! inserted with one prepared statement into the exporter's own schema
//! (`store::schema::open`: WAL, `synchronous=FULL`, its page cache), in
//! transactions of `GROUP` rows, into a fresh database each time. Printed
//! for the full schema and with the secondary indexes dropped, to show what
//! each costs.
//!
//! `cargo run --release --example sqlite_bound -- [ROWS] [GROUP]`
//! (defaults 200000 and 10000: the 4 × 2,500-event batches a writer group
//! holds under `ingest.py`).

use std::time::Instant;

use bug_escape_exporter::store::schema;

const STAGES: [&str; 5] = [
    "development",
    "code_review",
    "automated_tests",
    "qa",
    "production",
];

/// xorshift64*: the same rows for every shape, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn run(
    shape: &str,
    drop: &[&str],
    rows: usize,
    group: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut conn = schema::open(&dir.path().join("bound.db"))?;
    for index in drop {
        conn.execute_batch(&format!("DROP INDEX {index}"))?;
    }
    // The writer's insert of a new defect; a plain insert without the
    // unique index it names.
    let conflict = if drop.contains(&"defects_by_key") {
        ""
    } else {
        " ON CONFLICT (source, id) DO NOTHING"
    };
    let sql = format!(
        "INSERT INTO defects (source, id, product_kind, product_ns, product, \
         release_raw, release, stage, detected_by, cause, severity, team, status, \
         deleted, found_at, updated_at) \
         VALUES ('tracker', ?1, '', ?2, ?2, ?3, ?3, ?4, 'user', 'coverage', 'high', \
         'payments', 'valid', 0, 1767225600000, 1767312000000){conflict}"
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    let mut done = 0;
    while done < rows {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(&sql)?;
            for _ in 0..group.min(rows - done) {
                let p = rng.next() % 50;
                let id = format!("{:016x}", rng.next());
                let release = format!("{}.{p}.0", rng.next() % 200);
                let stage = STAGES[(rng.next() % 5) as usize];
                stmt.execute(rusqlite::params![
                    id,
                    format!("product-{p}"),
                    release,
                    stage
                ])?;
                done += 1;
            }
        }
        tx.commit()?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{shape:<32} {rows} rows in {secs:.2} s: {:>9.0} rows/s",
        rows as f64 / secs
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let group = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    println!("{rows} rows, {group} per transaction");
    run("full schema (as the exporter)", &[], rows, group)?;
    run("without defects_counted", &["defects_counted"], rows, group)?;
    run(
        "table alone (no index)",
        &["defects_counted", "defects_by_key"],
        rows,
        group,
    )
}
