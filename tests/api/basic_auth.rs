//! Basic auth answers in one time: an unknown user, a wrong password of a
//! cheap hash and one of the costliest hash all take as long (issue 20,
//! item 7), over real HTTP on 127.0.0.1.

use std::time::{Duration, Instant};

use crate::helpers::{settings, spawn_with};

const PASSWORD: &str = "correct horse battery staple";

/// The median of `v` (sorted in place).
fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_a_users_existence_nor_its_hash_cost_shows_in_the_answer_time() {
    let dir = tempfile::tempdir().unwrap();
    let users = [("cheap", 4), ("usual", 10), ("strong", 12)];
    let mut yaml = String::from("basic_auth_users:\n");
    for (user, cost) in users {
        let hash = bcrypt::hash(PASSWORD, cost).unwrap();
        yaml.push_str(&format!("  {user}: '{hash}'\n"));
    }
    let file = dir.path().join("web.yml");
    std::fs::write(&file, yaml).unwrap();
    let mut s = settings(dir.path());
    s.web_config_file = Some(file);
    let app = spawn_with(s).await;
    let url = format!("{}/metrics", app.base);
    let get = |user: &str, password: &str| {
        app.client
            .get(&url)
            .basic_auth(user, Some(password))
            .timeout(Duration::from_secs(60))
            .send()
    };
    // The right passwords still pass, padded or not.
    for (user, _) in users {
        assert_eq!(get(user, PASSWORD).await.unwrap().status(), 200, "{user}");
    }

    // Wrong passwords (never cached) and an unknown user, interleaved so a
    // change in the machine's load falls on every kind alike.
    const TRIES: usize = 15;
    let kinds = [
        ("unknown user", "nobody"),
        ("cost 4", "cheap"),
        ("cost 10", "usual"),
        ("cost 12", "strong"),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(TRIES); kinds.len()];
    for _ in 0..TRIES {
        for (k, (_, user)) in kinds.iter().enumerate() {
            let started = Instant::now();
            let resp = get(user, "wrong password").await.unwrap();
            times[k].push(started.elapsed());
            assert_eq!(resp.status(), 401, "{user}");
        }
    }
    let medians: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
    let reference = medians[3];
    let report: Vec<String> = kinds
        .iter()
        .zip(&medians)
        .map(|((what, _), m)| format!("{what}: {m:?}"))
        .collect();
    eprintln!("basic-auth medians of {TRIES} tries: {}", report.join(", "));
    for ((what, _), m) in kinds.iter().zip(&medians) {
        let ratio = m.as_secs_f64() / reference.as_secs_f64();
        assert!(
            (0.5..=2.0).contains(&ratio),
            "{what} takes {ratio:.2}× the cost-12 user's time: {}",
            report.join(", ")
        );
    }
    app.stop().await;
}
