//! `sync` against hostile stand-ins, every vendor: the real binary, each
//! vendor's stand-in served through the shared skeleton (`stand::serve`) with
//! its misbehaviour scripted (`stand::Act`), and a second server on another
//! origin that must never see a request carrying a credential.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::fake::{self as github};
use crate::stand::{Act, Hostile, elsewhere};
use crate::{BIN, gitlab_fake as gitlab, jira_fake as jira, run, sentry_fake as sentry, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vendor {
    Github,
    Gitlab,
    JiraCloud,
    JiraDc,
    Sentry,
}

use Vendor::*;

const ALL: [Vendor; 5] = [Github, Gitlab, JiraCloud, JiraDc, Sentry];

/// A vendor's stand-in, running.
struct Stand {
    vendor: Vendor,
    api: String,
    hostile: Hostile,
    /// Every form of the credentials it is sent.
    secrets: Vec<String>,
    github: Option<github::Fake>,
}

impl Stand {
    async fn start(vendor: Vendor) -> Stand {
        let (api, hostile, secrets, gh) = match vendor {
            Github => github_stand().await,
            Gitlab => gitlab_stand().await,
            JiraCloud | JiraDc => jira_stand(vendor).await,
            Sentry => sentry_stand().await,
        };
        Stand {
            vendor,
            api,
            hostile,
            secrets,
            github: gh,
        }
    }

    /// The path ending of its issue listing's pages.
    fn listing(&self) -> &'static str {
        match self.vendor {
            Github | Gitlab => "/issues",
            JiraCloud => "/search/jql",
            JiraDc => "/search",
            Sentry => "/issues/",
        }
    }

    /// The path ending of the call resolving the configured scope.
    fn resolve(&self) -> &'static str {
        match self.vendor {
            Github => "/repos/acme/payments",
            Gitlab => "/projects/acme%2Fpayments",
            JiraCloud | JiraDc => "/project/PAY",
            Sentry => "/projects/acme/payments-api/",
        }
    }

    /// `sync <vendor>` of this stand-in, `sync` replacing `[sync]` keys.
    fn command(&self, dir: &Path, sync: &[(&str, &str)], args: &[&str]) -> Command {
        let (name, table, var, token) = match self.vendor {
            Github => (
                "github",
                "[webhooks.github]\nrepositories = [\"acme/payments\"]\n".to_owned(),
                "BUG_ESCAPE_GITHUB_API_TOKEN",
                github::TOKEN,
            ),
            Gitlab => (
                "gitlab",
                "[webhooks.gitlab]\nprojects = [\"acme/payments\"]\n".to_owned(),
                "BUG_ESCAPE_GITLAB_API_TOKEN",
                gitlab::TOKEN,
            ),
            JiraCloud | JiraDc => (
                "jira",
                format!(
                    "[webhooks.jira]\nprojects = [\"PAY\"]\n{}",
                    if self.vendor == JiraCloud {
                        format!("api_user = \"{}\"\n", jira::USER)
                    } else {
                        String::new()
                    }
                ),
                "BUG_ESCAPE_JIRA_API_TOKEN",
                jira::TOKEN,
            ),
            Sentry => (
                "sentry",
                "[webhooks.sentry]\norganization = \"acme\"\nprojects = [\"payments-api\"]\n"
                    .to_owned(),
                "BUG_ESCAPE_SENTRY_API_TOKEN",
                sentry::TOKEN,
            ),
        };
        let mut keys: Vec<(&str, &str)> = vec![
            ("timeout", "\"2s\""),
            ("retry_backoff", "\"50ms\""),
            ("max_wait", "\"3s\""),
            ("max_attempts", "3"),
            ("page_size", "2"),
        ];
        keys.retain(|(k, _)| sync.iter().all(|(o, _)| o != k));
        keys.extend_from_slice(sync);
        let lines: Vec<String> = keys.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        let file = dir.join("config.toml");
        std::fs::write(
            &file,
            format!(
                "{table}api_url = \"{}\"\n[sync]\n{}\n",
                self.api,
                lines.join("\n")
            ),
        )
        .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("sync")
            .arg(name)
            .args(args)
            .arg("--db")
            .arg(dir.join("bug-escape.db"))
            .arg("--config")
            .arg(file)
            .env_clear()
            .env(var, token);
        cmd
    }

    async fn sync(&self, dir: &Path, sync: &[(&str, &str)], args: &[&str]) -> Output {
        run(self.command(dir, sync, args)).await
    }

    /// The pass failed (exit 2, no panic) saying `what`, and printed no
    /// credential.
    fn failed_with(&self, out: &Output, what: &[&str]) {
        let all = text(out);
        assert_eq!(out.status.code(), Some(2), "{:?}: {all}", self.vendor);
        for w in what {
            assert!(all.contains(w), "{:?}: `{w}` missing: {all}", self.vendor);
        }
        for s in &self.secrets {
            assert!(
                !all.contains(s.as_str()),
                "{:?}: a secret printed: {all}",
                self.vendor
            );
        }
    }
}

/// What a stand-in is made of.
type Parts = (String, Hostile, Vec<String>, Option<github::Fake>);

/// The github stand-in: its `api_url`, hostile layer, secrets and fake.
async fn github_stand() -> Parts {
    let base = "https://api.github.com";
    let f = github::Fake::start(github::World {
        issues: (1..=3)
            .map(|n| {
                github::issue_object(
                    base,
                    github::REPO,
                    n,
                    &["bug", "stage:qa"],
                    "2024-01-01T00:00:00Z",
                    &format!("2024-03-0{n}T00:00:00Z"),
                )
            })
            .collect(),
        ..Default::default()
    })
    .await;
    let h = f.hostile.clone();
    (f.url(), h, vec![github::TOKEN.to_owned()], Some(f))
}

/// The gitlab stand-in: its `api_url`, hostile layer, secrets and fake.
async fn gitlab_stand() -> Parts {
    let f = gitlab::Fake::start(gitlab::World {
        issues: (1..=3)
            .map(|n| {
                gitlab::issue_object(
                    n,
                    &["bug"],
                    "2024-01-10T09:00:00.000Z",
                    &format!("2024-03-0{n}T00:00:00.000Z"),
                )
            })
            .collect(),
        ..Default::default()
    })
    .await;
    (f.url(), f.hostile.clone(), vec![gitlab::TOKEN.into()], None)
}

/// The jira stand-in: its `api_url`, hostile layer, secrets and fake.
async fn jira_stand(vendor: Vendor) -> Parts {
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", jira::USER, jira::TOKEN));
    let auth = if vendor == JiraCloud {
        format!("Basic {basic}")
    } else {
        format!("Bearer {}", jira::TOKEN)
    };
    let f = jira::Fake::start(jira::World {
        issues: (1..=3)
            .map(|n| {
                jira::issue_object(
                    10000 + n,
                    &format!("PAY-{n}"),
                    "Bug",
                    &["stage:qa"],
                    &[],
                    &format!("2024-03-0{n}T00:00:00.000+0000"),
                )
            })
            .collect(),
        auth,
        ..Default::default()
    })
    .await;
    let secrets = vec![jira::TOKEN.into(), basic];
    (f.url(), f.hostile.clone(), secrets, None)
}

/// The sentry stand-in: its `api_url`, hostile layer, secrets and fake.
async fn sentry_stand() -> Parts {
    let f = sentry::Fake::start(sentry::World {
        issues: (1..=3)
            .map(|n| {
                sentry::issue_object(
                    100 + n,
                    "unresolved",
                    "2024-03-01T00:00:00Z",
                    &format!("2024-03-0{n}T10:00:00Z"),
                )
            })
            .collect(),
        ..Default::default()
    })
    .await;
    (f.url(), f.hostile.clone(), vec![sentry::TOKEN.into()], None)
}

/// The next page named on another origin (another loopback host, another
/// port, another scheme) ends the pass naming it; the other server never
/// sees a request, let alone one with the token.
#[tokio::test]
async fn a_next_page_on_another_origin_is_refused_for_every_vendor() {
    for vendor in [Github, Gitlab, Sentry] {
        let (other_host, host_log) = elsewhere("127.0.0.2").await;
        let (other_port, port_log) = elsewhere("127.0.0.1").await;
        let stand = Stand::start(vendor).await;
        let same_https = stand.api.replacen("http://", "https://", 1);
        for target in [&other_host, &other_port, &same_https] {
            let dir = tempfile::tempdir().unwrap();
            let next = format!("{target}/next{}?page=2", stand.listing());
            stand.hostile.on(
                stand.listing(),
                Act::Headers(vec![("link", format!("<{next}>; rel=\"next\""))]),
                1,
            );
            let out = stand.sync(dir.path(), &[], &[]).await;
            let origin = stand.api.trim_end_matches("/api/v4").to_owned();
            stand.failed_with(&out, &["refused to call", &next, &origin]);
        }
        for log in [&host_log, &port_log] {
            assert!(log.seen().is_empty(), "{vendor:?}: {:?}", log.seen());
        }
    }
}

/// A redirect to another origin (of a page, of the scope, of a follow-up)
/// is not followed, whatever header carries the credential (GitLab's
/// `PRIVATE-TOKEN`, which reqwest would not strip).
#[tokio::test]
async fn a_redirect_to_another_origin_is_refused_for_every_vendor() {
    for vendor in ALL {
        let (other, log) = elsewhere("127.0.0.2").await;
        let stand = Stand::start(vendor).await;
        for (path, status) in [(stand.resolve(), 302), (stand.listing(), 307)] {
            let dir = tempfile::tempdir().unwrap();
            let to = format!("{other}/stolen{path}");
            stand.hostile.on(path, Act::Redirect(status, to.clone()), 1);
            let out = stand.sync(dir.path(), &[], &[]).await;
            stand.failed_with(&out, &["refused to call", &to]);
        }
        assert!(log.seen().is_empty(), "{vendor:?}: {:?}", log.seen());
        for s in &stand.secrets {
            assert!(log.carrying(s).is_empty());
        }
    }
}

/// Follow-ups go through the same check: Sentry's issue details and
/// GitHub's single-issue probe of the deletion sweep.
#[tokio::test]
async fn follow_up_calls_redirected_elsewhere_are_refused() {
    let (other, log) = elsewhere("127.0.0.2").await;
    let stand = Stand::start(Sentry).await;
    let dir = tempfile::tempdir().unwrap();
    let to = format!("{other}/api/0/organizations/acme/issues/102/");
    stand
        .hostile
        .on("/issues/102/", Act::Redirect(302, to.clone()), 1);
    let out = stand.sync(dir.path(), &[], &[]).await;
    stand.failed_with(&out, &["refused to call", &to]);

    let stand = Stand::start(Github).await;
    let dir = tempfile::tempdir().unwrap();
    let out = stand.sync(dir.path(), &[], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let fake = stand.github.as_ref().unwrap();
    fake.with(|w| w.deleted.push(2));
    let to = format!("{other}/repos/acme/payments/issues/2");
    stand.hostile.on(
        "/repos/acme/payments/issues/2",
        Act::Redirect(301, to.clone()),
        1,
    );
    let out = stand.sync(dir.path(), &[], &["--full"]).await;
    stand.failed_with(&out, &["refused to call", &to]);
    assert!(log.seen().is_empty(), "{:?}", log.seen());
}

/// Each pagination style that repeats or goes back ends the pass, after a
/// few requests.
#[tokio::test]
async fn a_listing_that_repeats_or_goes_back_ends_the_pass() {
    let forever = usize::MAX;
    let cases: Vec<(Vendor, Act, &str)> = vec![
        // GitHub `Link`: page 2 names page 2 again.
        (Github, Act::Headers(vec![]), "already read"),
        // GitLab `x-next-page`: the same page again.
        (
            Gitlab,
            Act::Headers(vec![("x-next-page", "2".into())]),
            "x-next-page `2` does not come after page 2",
        ),
        // Jira Cloud: the same `nextPageToken` again.
        (
            JiraCloud,
            Act::Merge(json!({"nextPageToken": "tok-2", "isLast": false})),
            "already read",
        ),
        // Jira Data Center: `startAt` back to 0.
        (
            JiraDc,
            Act::Merge(json!({"startAt": 0, "total": 100})),
            "does not move past 2",
        ),
        // Jira Data Center: `startAt` near u64::MAX must not wrap.
        (
            JiraDc,
            Act::Merge(json!({"startAt": u64::MAX - 1, "total": u64::MAX})),
            "startAt 18446744073709551614",
        ),
        // Sentry: the same cursor again.
        (Sentry, Act::Headers(vec![]), "already read"),
    ];
    for (vendor, act, says) in cases {
        let stand = Stand::start(vendor).await;
        let act = match (vendor, act) {
            (Github, _) => Act::Headers(vec![(
                "link",
                format!(
                    "<{}/repositories/{}/issues?state=all&sort=updated&direction=asc&per_page=2&page=2>; \
                     rel=\"next\"",
                    stand.api,
                    github::REPO_ID
                ),
            )]),
            (Sentry, _) => Act::Headers(vec![(
                "link",
                format!(
                    "<{}/api/0/projects/acme/payments-api/issues/?query=&sort=date&limit=2&cursor=0:2:0>; \
                     rel=\"next\"; \
                     results=\"true\"; cursor=\"0:2:0\"",
                    stand.api
                ),
            )]),
            (_, act) => act,
        };
        stand.hostile.on(stand.listing(), act, forever);
        let dir = tempfile::tempdir().unwrap();
        let out = stand.sync(dir.path(), &[], &[]).await;
        stand.failed_with(&out, &[says]);
        let pages = stand
            .hostile
            .seen()
            .iter()
            .filter(|s| s.path.ends_with(stand.listing()))
            .count();
        assert!(pages <= 3, "{vendor:?}: {pages} pages requested");
    }
}

/// `sync.max_pages` caps the pages of a pass; `sync.pass_timeout` its time.
#[tokio::test]
async fn pages_and_time_per_pass_are_capped() {
    let stand = Stand::start(Github).await;
    let dir = tempfile::tempdir().unwrap();
    let out = stand.sync(dir.path(), &[("max_pages", "1")], &[]).await;
    stand.failed_with(&out, &["sync.max_pages (1)"]);
    assert_eq!(
        stand
            .hostile
            .seen()
            .iter()
            .filter(|s| s.path.ends_with("/issues"))
            .count(),
        1
    );

    // A server answering 503 forever, retried without end but for the deadline.
    let stand = Stand::start(Gitlab).await;
    stand.hostile.on(
        "/issues",
        Act::Answer(503, vec![], json!({"message": "502 Bad Gateway"})),
        usize::MAX,
    );
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = stand
        .sync(
            dir.path(),
            &[("max_attempts", "100"), ("pass_timeout", "\"1s\"")],
            &[],
        )
        .await;
    stand.failed_with(&out, &["sync.pass_timeout (1s)"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

/// Runs `cmd` to its end; its output and its peak resident memory in KiB
/// (the kernel's `ru_maxrss` of the reaped child: VmHWM at exit).
fn run_measured(mut cmd: Command, dir: &Path) -> (Output, u64) {
    let out_file = dir.join("stdout");
    let err_file = dir.join("stderr");
    cmd.stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap());
    let child = cmd.spawn().expect("binary runs");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain data the kernel fills; `pid` is our child,
    // reaped here and never waited for again (the `Child` is forgotten).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    std::mem::forget(child);
    assert_eq!(reaped, pid);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let output = Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        stdout: std::fs::read(out_file).unwrap(),
        stderr: std::fs::read(err_file).unwrap(),
    };
    assert!(code.is_some(), "killed by a signal: {}", text(&output));
    (output, usage.ru_maxrss as u64)
}

/// A 200 MB answer, streamed without a length or declared by one, is
/// refused at `sync.max_response_bytes` (32 MiB by default), naming the URL
/// and the limit, and `sync` stays under 128 MiB resident.
#[tokio::test]
async fn a_huge_answer_is_refused_at_the_limit_within_bounded_memory() {
    for declared in [false, true] {
        let stand = Stand::start(Github).await;
        stand.hostile.on(
            "/issues",
            Act::Huge {
                bytes: 200_000_000,
                declared,
            },
            1,
        );
        let dir = tempfile::tempdir().unwrap();
        let cmd = stand.command(dir.path(), &[], &[]);
        let path = dir.path().to_owned();
        let started = Instant::now();
        let (out, peak_kib) = tokio::task::spawn_blocking(move || run_measured(cmd, &path))
            .await
            .unwrap();
        let url = format!("{}/repos/acme/payments/issues?", stand.api);
        stand.failed_with(
            &out,
            &["sync.max_response_bytes (33554432 bytes)", url.as_str()],
        );
        eprintln!("declared {declared}: peak resident {peak_kib} KiB");
        assert!(
            peak_kib < 128 * 1024,
            "declared {declared}: peak resident {peak_kib} KiB"
        );
        assert!(started.elapsed() < Duration::from_secs(60));
    }
}

/// A vendor's 401 quoting the credentials it was sent is printed with them
/// blanked out, for every vendor (Jira with basic auth and with Bearer).
#[tokio::test]
async fn a_vendor_message_quoting_the_token_is_printed_blanked() {
    for vendor in ALL {
        let stand = Stand::start(vendor).await;
        let quoted = match vendor {
            JiraCloud => format!(
                "you sent authorization: Basic {} ({}:{})",
                stand.secrets[1],
                jira::USER,
                jira::TOKEN
            ),
            Gitlab => format!("you sent private-token: {}", stand.secrets[0]),
            _ => format!("you sent authorization: Bearer {}", stand.secrets[0]),
        };
        let body = error_body(vendor, &quoted);
        stand
            .hostile
            .on(stand.resolve(), Act::Answer(401, vec![], body), 1);
        let dir = tempfile::tempdir().unwrap();
        let out = stand.sync(dir.path(), &[], &[]).await;
        let shown = match vendor {
            // `user:token` is a secret whole, as sent.
            JiraCloud => "you sent authorization: Basic *** (***)".to_owned(),
            Gitlab => "you sent private-token: ***".to_owned(),
            _ => "you sent authorization: Bearer ***".to_owned(),
        };
        stand.failed_with(&out, &["401", &shown]);
    }
}

/// Rate-limit headers from far in the future (`u64::MAX`) neither panic
/// nor wait: the pass stops saying when to retry.
#[tokio::test]
async fn a_rate_limit_reset_at_the_end_of_time_stops_the_pass_without_a_panic() {
    let limited = vec![
        ("x-ratelimit-remaining", "0".to_owned()),
        ("x-ratelimit-reset", u64::MAX.to_string()),
        ("retry-after", u64::MAX.to_string()),
    ];
    for act in [
        Act::Answer(
            429,
            limited.clone(),
            json!({"message": "API rate limit exceeded"}),
        ),
        Act::Headers(limited),
    ] {
        let stand = Stand::start(Github).await;
        stand.hostile.on("/repos/acme/payments", act, 1);
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let out = stand.sync(dir.path(), &[], &[]).await;
        stand.failed_with(&out, &["rate limited until", "sync.max_wait"]);
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

/// `serve`'s reconcile uses the same client: a huge answer, then a next page
/// on another origin, fail their passes; the next interval runs again and
/// the other origin never sees a request.
#[tokio::test]
async fn serve_reconciles_refuse_the_same_answers_and_keep_running() {
    let (other, log) = elsewhere("127.0.0.2").await;
    let stand = Stand::start(Github).await;
    stand.hostile.on(
        "/issues",
        Act::Huge {
            bytes: 200_000_000,
            declared: false,
        },
        1,
    );
    let next = format!("{other}/repositories/{}/issues?page=2", github::REPO_ID);
    stand.hostile.on(
        "/issues",
        Act::Headers(vec![("link", format!("<{next}>; rel=\"next\""))]),
        usize::MAX,
    );
    let dir = tempfile::tempdir().unwrap();
    let api = stand.api.clone();
    let served = crate::served::Served::start(&dir.path().join("bug-escape.db"), |s| {
        s.webhooks.github.api.api_url = api;
        s.webhooks.github.api.api_token = Some(github::TOKEN.into());
        s.webhooks.github.repositories = vec![github::REPO.into()];
        s.webhooks.github.sync_interval = Some("200ms".into());
    })
    .await;
    let lists = || {
        stand
            .hostile
            .seen()
            .iter()
            .filter(|s| s.path.ends_with("/issues"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while lists() < 3 {
        assert!(Instant::now() < deadline, "{} listings in 20 s", lists());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served.metrics().await;
    assert!(log.seen().is_empty(), "{:?}", log.seen());
    served.stop().await;
}

/// A vendor message quoting the token where the 300-character cut falls
/// inside it, or in encoded forms (percent-encoded in lowercase, base64 of
/// the token alone or after a `user:` prefix, URL-safe base64): nothing of
/// the token is printed, not even the part before the cut.
#[tokio::test]
async fn a_vendor_message_quoting_the_token_cut_or_encoded_prints_none_of_it() {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    for vendor in ALL {
        let stand = Stand::start(vendor).await;
        let token = stand.secrets[0].clone();
        let lower: String = token
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'~' => (b as char).to_string(),
                b => format!("%{b:02x}"),
            })
            .collect();
        let quotes = [
            // The cut at 300 characters falls after the token's 12th.
            format!("{}{token}", "A".repeat(288)),
            format!("b64 {} of {lower}", STANDARD.encode(&token)),
            format!(
                "basic {}",
                STANDARD.encode(format!("x-access-token:{token}"))
            ),
            format!("url-safe {}", URL_SAFE_NO_PAD.encode(format!("ab:{token}"))),
        ];
        for quoted in quotes {
            let body = error_body(vendor, &quoted);
            stand
                .hostile
                .on(stand.resolve(), Act::Answer(401, vec![], body), 1);
            let dir = tempfile::tempdir().unwrap();
            let out = stand.sync(dir.path(), &[], &[]).await;
            stand.failed_with(&out, &["401"]);
            let all = text(&out);
            for part in [&token[..12], &lower, &STANDARD.encode(&token)[..12]] {
                assert!(
                    !all.contains(part),
                    "{vendor:?}: `{part}` of the token printed: {all}"
                );
            }
            assert!(!all.contains(&quoted), "{vendor:?}: quoted verbatim: {all}");
        }
    }
}

/// A next page named again in another spelling (a `#fragment`, never sent;
/// its query's parameters in another order) is a page already read: the
/// pass stops at the second page, not after as many spellings as the server
/// can make up.
#[tokio::test]
async fn a_next_page_respelled_is_known_as_already_read() {
    let stand = Stand::start(Github).await;
    let page2 = format!("{}/repositories/{}/issues", stand.api, github::REPO_ID);
    let spellings = [
        format!("{page2}?state=all&sort=updated&direction=asc&per_page=2&page=2#a"),
        format!("{page2}?page=2&per_page=2&direction=asc&sort=updated&state=all"),
        format!("{page2}?state=all&sort=updated&direction=asc&per_page=2&page=2#c"),
        format!("{page2}?per_page=2&state=all&sort=updated&direction=asc&page=2#d"),
    ];
    for (i, link) in spellings.iter().enumerate() {
        let times = if i + 1 == spellings.len() {
            usize::MAX
        } else {
            1
        };
        let header = format!("<{link}>; rel=\"next\"");
        stand
            .hostile
            .on(stand.listing(), Act::Headers(vec![("link", header)]), times);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = stand.sync(dir.path(), &[], &[]).await;
    stand.failed_with(&out, &["already read"]);
    let pages = stand
        .hostile
        .seen()
        .iter()
        .filter(|s| s.path.ends_with(stand.listing()))
        .count();
    assert_eq!(pages, 2, "{pages} issue pages requested: {}", text(&out));
}

/// A redirect within the origin whose target carries a user name and
/// password is refused like any URL carrying them: one request, not ten
/// redirects followed, and no request with other credentials.
#[tokio::test]
async fn a_redirect_to_the_origin_with_user_info_is_refused() {
    for vendor in [Github, Gitlab] {
        let stand = Stand::start(vendor).await;
        let host = stand.api.trim_start_matches("http://");
        let target = format!("http://evil:hunter2@{host}{}", stand.resolve());
        stand
            .hostile
            .on(stand.resolve(), Act::Redirect(302, target), usize::MAX);
        let dir = tempfile::tempdir().unwrap();
        let out = stand.sync(dir.path(), &[], &[]).await;
        stand.failed_with(&out, &["refused to call"]);
        let all = text(&out);
        assert!(!all.contains("hunter2"), "{vendor:?}: {all}");
        let seen = stand.hostile.seen();
        assert_eq!(seen.len(), 1, "{vendor:?}: {seen:?}");
        assert!(
            seen[0].headers.iter().all(|(k, _)| k != "referer"),
            "{vendor:?}: {seen:?}"
        );
    }
}

/// Jira Data Center's `startAt` or `total` that is no count (negative, a
/// fraction, a string) ends the pass with an error naming it: the listing
/// is not taken as complete after its first page.
#[tokio::test]
async fn a_jira_offset_that_is_no_count_ends_the_pass() {
    for (field, value) in [
        ("startAt", json!(-2)),
        ("startAt", json!(2.5)),
        ("startAt", json!("2")),
        ("total", json!(-1)),
    ] {
        let stand = Stand::start(JiraDc).await;
        let mut merged = json!({"startAt": 0, "total": 100});
        merged[field] = value.clone();
        stand
            .hostile
            .on(stand.listing(), Act::Merge(merged), usize::MAX);
        let dir = tempfile::tempdir().unwrap();
        let out = stand.sync(dir.path(), &[], &[]).await;
        stand.failed_with(&out, &[&format!("{field} `{value}` is not a whole number")]);
    }
}

/// `Retry-After` as an HTTP-date: one already past is no wait (the call is
/// tried again and the pass completes), one at the end of the calendar
/// stops the pass naming that date.
#[tokio::test]
async fn a_retry_after_date_is_read_as_a_date() {
    let past = "Thu, 01 Jan 1970 00:00:00 GMT";
    let stand = Stand::start(Github).await;
    let answer = Act::Answer(
        429,
        vec![("retry-after", past.to_owned())],
        json!({"message": "API rate limit exceeded"}),
    );
    stand.hostile.on("/repos/acme/payments", answer, 1);
    let dir = tempfile::tempdir().unwrap();
    let out = stand.sync(dir.path(), &[], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let resolves = stand
        .hostile
        .seen()
        .iter()
        .filter(|s| s.path == "/repos/acme/payments")
        .count();
    assert_eq!(resolves, 2, "the refused call is tried once more");

    let stand = Stand::start(Github).await;
    let answer = Act::Answer(
        429,
        vec![("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT".to_owned())],
        json!({"message": "API rate limit exceeded"}),
    );
    stand.hostile.on("/repos/acme/payments", answer, 1);
    let out = stand.sync(dir.path(), &[], &[]).await;
    stand.failed_with(&out, &["rate limited until 9999-12-31T23:59:59"]);
}

/// A cursor quoted in an error (GitLab's `x-next-page`, Jira's `startAt`)
/// that holds the token after some padding is not cut through the token:
/// no part of it is printed.
#[tokio::test]
async fn a_cursor_quoting_the_token_prints_none_of_it() {
    for vendor in [Gitlab, JiraDc] {
        let stand = Stand::start(vendor).await;
        let token = stand.secrets[0].clone();
        let padded = format!("{}{token}", "9".repeat(30));
        let act = match vendor {
            Gitlab => Act::Headers(vec![("x-next-page", padded)]),
            _ => Act::Merge(json!({"startAt": padded, "total": 100})),
        };
        stand.hostile.on(stand.listing(), act, usize::MAX);
        let dir = tempfile::tempdir().unwrap();
        let out = stand.sync(dir.path(), &[], &[]).await;
        stand.failed_with(&out, &["characters)"]);
        let all = text(&out);
        assert!(!all.contains(&token[..6]), "{vendor:?}: {all}");
    }
}

/// A relative next link is read against the page's URL (RFC 8288): one
/// within the origin is followed; a scheme-relative `//127.0.0.2:…/` one
/// names another host, refused by name, and that host sees nothing.
#[tokio::test]
async fn a_relative_next_link_is_resolved_then_pinned() {
    let stand = Stand::start(Github).await;
    let page2 = format!(
        "</repositories/{}/issues?state=all&sort=updated&direction=asc&per_page=2&page=2>; rel=\"next\"",
        github::REPO_ID
    );
    stand
        .hostile
        .on(stand.listing(), Act::Headers(vec![("link", page2)]), 1);
    stand.hostile.on(
        stand.listing(),
        Act::Headers(vec![("link", String::new())]),
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = stand.sync(dir.path(), &[], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let pages: Vec<String> = stand
        .hostile
        .seen()
        .into_iter()
        .filter(|s| s.path.ends_with(stand.listing()))
        .map(|s| s.path)
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[1].starts_with("/repositories/"), "{pages:?}");

    let stand = Stand::start(Github).await;
    let (other, log) = elsewhere("127.0.0.2").await;
    let rest = other.trim_start_matches("http:");
    let link = format!("<{rest}/repos/acme/payments/issues?page=2>; rel=\"next\"");
    stand.hostile.on(
        stand.listing(),
        Act::Headers(vec![("link", link)]),
        usize::MAX,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = stand.sync(dir.path(), &[], &[]).await;
    stand.failed_with(&out, &["refused to call", &format!("{other}/repos")]);
    assert!(log.seen().is_empty(), "{:?}", log.seen());
}

/// A vendor's error answer carrying `message` where that vendor puts it.
fn error_body(vendor: Vendor, message: &str) -> Value {
    match vendor {
        Github | Gitlab => json!({"message": message}),
        JiraCloud | JiraDc => json!({"errorMessages": [message], "errors": {}}),
        Sentry => json!({"detail": message}),
    }
}
