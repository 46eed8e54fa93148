#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The daemon's HTTP side (`coexist::status`) over a store made by real
//! syncs of simulated systems: a run with a conflict, then a run whose
//! deletes a safety gate holds back. Every endpoint over HTTP (reqwest),
//! the token rules, `/metrics` checked by the real `promtool`, and the
//! status page loaded in a real headless Chromium, with screenshots saved
//! to `target/screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coexist::config::Config;
use coexist::engine::{Engine, Quiet, RunOptions, SyncReport};
use coexist::status::{router, Organisation, StatusState, SyncRequest};
use coexist::store::Store;
use common::{people, person, Org, GOOGLE_AND_LDAP};
use tokio::sync::mpsc;

const TOKEN: &str = "s3cret-status-token";

/// google: 40 people and ann (whose display name is HTML); ldap: one
/// person and ann again (a mailbox in two systems: a conflict).
fn acmecorp() -> Org {
    let mut google = people("g", "acmecorp.com", 40);
    let mut ann = person("g-ann", "ann@acmecorp.com");
    ann.attributes.display_name = Some("<b>Ann</b> & \"Co\"".into());
    google.push(ann);
    Org::new(
        GOOGLE_AND_LDAP,
        &[
            ("google", google),
            (
                "ldap",
                vec![
                    person("m-0", "m0@acmecorp.com"),
                    person("m-ann", "ann@acmecorp.com"),
                ],
            ),
        ],
    )
}

async fn sync(org: &Org) -> SyncReport {
    let config = Config::load(&org.config()).unwrap();
    let store = Store::open(&config.store_url().unwrap()).await.unwrap();
    let connectors = coexist::connectors::connect_all(&config).unwrap();
    Engine::new(config, store, connectors, Arc::new(Quiet))
        .sync(&RunOptions::default())
        .await
        .unwrap()
}

/// Two runs: the first syncs (ann is in conflict), the second finds half
/// of google gone and the delete threshold holds the 20 deletes on ldap.
async fn held_org() -> (Org, Vec<SyncReport>) {
    let org = acmecorp();
    let first = sync(&org).await;
    assert_eq!(first.exit_code(), 0, "{:?}", first.plan.gates);
    assert_eq!(first.plan.conflicts.len(), 1);
    let mut google = people("g", "acmecorp.com", 20);
    google.push(person("g-ann", "ann@acmecorp.com"));
    org.seed("google", google);
    let second = sync(&org).await;
    assert_eq!(second.exit_code(), 3);
    assert_eq!(second.plan.gates[0].gate, "delete_threshold");
    (org, vec![first, second])
}

struct Served {
    url: String,
    state: Arc<StatusState>,
    requests: mpsc::Receiver<SyncRequest>,
}

async fn serve(org: &Org, token: Option<&str>, token_for_reads: bool) -> Served {
    let config = Config::load(&org.config()).unwrap();
    let store = Store::open(&config.store_url().unwrap()).await.unwrap();
    let (sender, requests) = mpsc::channel(4);
    let state = Arc::new(
        StatusState::new(
            vec![Organisation {
                id: "acmecorp".into(),
                config: Arc::new(config),
                store,
            }],
            token.map(str::to_string),
            sender,
        )
        .with_token_for_reads(token_for_reads),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Served {
        url,
        state,
        requests,
    }
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Searches `query` through the API until the routes are there: a
/// search waits for the routing directory only briefly (the page answers
/// in under 50 ms) and answers without routes while it loads.
async fn search_once_routes_are_loaded(url: &str, query: &str) -> (u16, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (code, body) = get(&format!("{url}/api/search?q={query}"), None).await;
        let pending = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|results| {
                results[0]["hits"]
                    .as_array()
                    .map(|hits| hits.iter().any(|hit| hit["routes_pending"] == true))
            })
            .unwrap_or(false);
        if code != 200 || !pending || std::time::Instant::now() > deadline {
            return (code, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn post(url: &str, token: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().post(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_the_json_twins_tell_what_the_store_holds() {
    let (org, _) = held_org().await;
    let served = serve(&org, None, false).await;
    let url = &served.url;

    assert_eq!(
        get(&format!("{url}/healthz"), None).await,
        (200, "ok\n".into())
    );
    let (code, body) = get(&format!("{url}/readyz"), None).await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("a safety gate withheld changes (exit 3)"),
        "{body}"
    );

    let (code, body) = get(&format!("{url}/api/status"), None).await;
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let org_status = &status[0];
    assert_eq!(org_status["organisation"], "acmecorp");
    assert_eq!(org_status["readiness"]["ready"], false);
    let gate = &org_status["gates"][0];
    assert_eq!(gate["gate"], "delete_threshold");
    assert_eq!(gate["system"], "ldap");
    assert!(gate["message"]
        .as_str()
        .unwrap()
        .contains("20 deletes planned on ldap (50% of its 40 stubs)"));
    assert!(gate["release"]
        .as_str()
        .unwrap()
        .contains("coexist sync --allow-deletes"));
    assert_eq!(org_status["withheld"][0]["system"], "ldap");
    assert_eq!(org_status["withheld"][0]["action"], "delete");
    assert_eq!(org_status["withheld"][0]["count"], 20);
    assert_eq!(
        org_status["withheld_operations"].as_array().unwrap().len(),
        20
    );
    assert_eq!(org_status["conflicts"][0]["kind"], "mailbox_in_two_systems");
    assert!(org_status["conflicts"][0]["message"]
        .as_str()
        .unwrap()
        .contains("ann@acmecorp.com has a mailbox on both google and ldap"));
    let runs = org_status["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["status"], "withheld");
    assert_eq!(runs[0]["withheld"], 20);
    assert_eq!(runs[1]["status"], "ok");
    assert_eq!(runs[0]["delete"], 0, "the deletes are withheld");
    assert_eq!(runs[1]["create"], 41, "40 stubs on ldap, 1 on google");
    let systems = org_status["systems"].as_array().unwrap();
    assert_eq!(systems.len(), 2);
    assert_eq!(systems[0]["system"], "google");
    assert_eq!(systems[0]["kind"], "simulated");
    assert_eq!(systems[0]["health"], "ok");
    assert_eq!(systems[0]["recipients"], 21);
    assert_eq!(systems[1]["system"], "ldap");
    assert_eq!(systems[1]["stubs"], 40, "the 20 deletes are held");
    assert!(systems[1]["read_at"].as_str().unwrap().starts_with("20"));

    let (code, body) = get(&format!("{url}/api/runs?limit=1"), None).await;
    assert_eq!(code, 200);
    let runs: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(runs["acmecorp"].as_array().unwrap().len(), 1);
    assert_eq!(runs["acmecorp"][0]["status"], "withheld");

    // The search: who is where, which stubs, how mail reaches them.
    let (code, body) = search_once_routes_are_loaded(url, "g1%40acmecorp.com").await;
    assert_eq!(code, 200, "{body}");
    let results: serde_json::Value = serde_json::from_str(&body).unwrap();
    let hits = results[0]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{body}");
    let hit = &hits[0];
    assert_eq!(hit["entry"]["primary_address"], "g1@acmecorp.com");
    assert_eq!(hit["entry"]["home"], "google");
    assert_eq!(hit["stubs"][0]["system"], "ldap");
    assert_eq!(hit["stubs"][0]["route"]["to"], "g1@gapps.acmecorp.com");
    let from_ldap = hit["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["from"] == "ldap")
        .unwrap();
    assert_eq!(from_ldap["outcome"]["result"], "delivered");
    assert_eq!(from_ldap["outcome"]["system"], "google");
    // By name (a part of the entry), and nothing for a stranger.
    let (_, body) = get(&format!("{url}/api/search?q=%3Cb%3EAnn"), None).await;
    let results: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        results[0]["hits"].as_array().unwrap().len(),
        0,
        "ann is in conflict, out of the GAL: {body}"
    );
    let (_, body) = get(&format!("{url}/api/search?q=m0"), None).await;
    let results: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(results[0]["hits"][0]["entry"]["home"], "ldap", "{body}");
    let (_, body) = get(&format!("{url}/api/search?q=nobody"), None).await;
    let results: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(results[0]["hits"].as_array().unwrap().len(), 0);

    // The HTML page says the same, escaped.
    let (code, page) = get(&format!("{url}/"), None).await;
    assert_eq!(code, 200);
    assert!(page.contains("20 deletes planned on ldap"), "{page}");
    assert!(page.contains("To release: "));
    assert!(page.contains("ann@acmecorp.com has a mailbox on both google and ldap"));
    assert!(!page.contains("<script"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_after_a_clean_run_and_names_are_escaped() {
    let org = Org::new(
        GOOGLE_AND_LDAP,
        &[
            ("google", {
                let mut g = people("g", "acmecorp.com", 2);
                g[0].attributes.display_name = Some("<i>Gina</i> & \"Co\"".into());
                g
            }),
            ("ldap", people("m", "acmecorp.com", 2)),
        ],
    );
    let served = serve(&org, None, false).await;
    let (code, body) = get(&format!("{}/readyz", served.url), None).await;
    assert_eq!(
        (code, body.as_str()),
        (200, "ready\n"),
        "no run yet: nothing waits"
    );
    // Before the first run: nothing read, nothing found.
    let (_, body) = get(&format!("{}/api/status", served.url), None).await;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status[0]["systems"][0]["health"], "never_read", "{body}");
    assert_eq!(status[0]["systems"][0]["recipients"], 0);
    let (_, body) = get(&format!("{}/api/search?q=g0", served.url), None).await;
    assert!(body.contains(r#""hits":[]"#), "{body}");
    assert_eq!(sync(&org).await.exit_code(), 0);
    // What the page keeps between requests is read again after a run.
    let (_, body) = get(&format!("{}/api/status", served.url), None).await;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status[0]["systems"][0]["health"], "ok", "{body}");
    assert_eq!(status[0]["systems"][0]["recipients"], 2);
    assert_eq!(status[0]["systems"][0]["stubs"], 2);
    let (_, body) = search_once_routes_are_loaded(&served.url, "g0").await;
    let results: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        results[0]["hits"][0]["stubs"][0]["system"], "ldap",
        "{body}"
    );
    // By any part of a name, whatever its case (the name index).
    let (_, body) = get(&format!("{}/api/search?q=GINA%3C", served.url), None).await;
    let results: serde_json::Value = serde_json::from_str(&body).unwrap();
    let hits = results[0]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{body}");
    assert_eq!(hits[0]["entry"]["primary_address"], "g0@acmecorp.com");
    assert_eq!(hits[0]["stubs"][0]["system"], "ldap", "{body}");
    assert!(hits[0].get("routes_pending").is_none(), "{body}");
    let (code, body) = get(&format!("{}/readyz", served.url), None).await;
    assert_eq!((code, body.as_str()), (200, "ready\n"));
    let (code, page) = get(&format!("{}/?q=g0", served.url), None).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("&lt;i&gt;Gina&lt;/i&gt; &amp; &quot;Co&quot;")
            || page.contains("&lt;i&gt;Gina&lt;/i&gt; &amp; \"Co\""),
        "{page}"
    );
    assert!(!page.contains("<i>Gina</i>"), "{page}");
    // A query is escaped where the form shows it again.
    let (_, page) = get(&format!("{}/?q=%22%3E%3Cscript%3Ex", served.url), None).await;
    assert!(!page.contains("<script>x"), "{page}");
    assert!(page.contains("&quot;&gt;&lt;script&gt;x"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_posts_and_beyond_loopback_everything_but_healthz() {
    let org = acmecorp();
    sync(&org).await;

    // Loopback with a token: reads are open, a POST needs the token.
    let mut served = serve(&org, Some(TOKEN), false).await;
    let url = served.url.clone();
    assert_eq!(get(&format!("{url}/api/status"), None).await.0, 200);
    assert_eq!(get(&format!("{url}/"), None).await.0, 200);
    assert_eq!(post(&format!("{url}/api/sync"), None).await, 401);
    assert_eq!(post(&format!("{url}/api/sync"), Some("wrong")).await, 401);
    assert!(served.requests.try_recv().is_err(), "nothing was asked");
    assert_eq!(post(&format!("{url}/api/sync"), Some(TOKEN)).await, 202);
    assert_eq!(
        served.requests.recv().await,
        Some(SyncRequest {
            organisation: "acmecorp".into()
        })
    );
    assert_eq!(
        post(
            &format!("{url}/api/sync?organisation=elsewhere"),
            Some(TOKEN)
        )
        .await,
        404
    );
    assert!(served.requests.try_recv().is_err());

    // No token: POST is refused outright.
    let mut open = serve(&org, None, false).await;
    assert_eq!(post(&format!("{}/api/sync", open.url), None).await, 403);
    assert!(open.requests.try_recv().is_err());

    // Beyond loopback: everything but /healthz needs the token.
    let guarded = serve(&org, Some(TOKEN), true).await;
    let url = &guarded.url;
    assert_eq!(get(&format!("{url}/healthz"), None).await.0, 200);
    for path in [
        "/",
        "/?q=g1",
        "/readyz",
        "/metrics",
        "/api/status",
        "/api/runs",
        "/api/search?q=g1",
    ] {
        assert_eq!(get(&format!("{url}{path}"), None).await.0, 401, "{path}");
        assert_eq!(
            get(&format!("{url}{path}"), Some("wrong")).await.0,
            401,
            "{path}"
        );
        let (code, body) = get(&format!("{url}{path}"), Some(TOKEN)).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    // Beyond loopback without a token: refused, never open.
    let closed = serve(&org, None, true).await;
    assert_eq!(get(&format!("{}/healthz", closed.url), None).await.0, 200);
    assert_eq!(
        get(&format!("{}/api/status", closed.url), None).await.0,
        403
    );
    assert_eq!(get(&format!("{}/metrics", closed.url), None).await.0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_valid_for_promtool_and_count_runs_gates_and_conflicts() {
    let (org, reports) = held_org().await;
    let served = serve(&org, None, false).await;
    let metrics = served.state.metrics();
    for report in &reports {
        metrics.record_run("acmecorp", report, &report.phases);
    }
    metrics.record_failed_run("acmecorp", 1);
    metrics.record_skipped("acmecorp");
    let (code, text) = get(&format!("{}/metrics", served.url), None).await;
    assert_eq!(code, 200);
    for line in [
        r#"coexist_runs_total{organisation="acmecorp",outcome="ok",exit_code="0"} 1"#,
        r#"coexist_runs_total{organisation="acmecorp",outcome="withheld",exit_code="3"} 1"#,
        r#"coexist_runs_total{organisation="acmecorp",outcome="failed",exit_code="1"} 1"#,
        r#"coexist_runs_skipped_total{organisation="acmecorp"} 1"#,
        r#"coexist_gates_tripped_total{organisation="acmecorp",gate="delete_threshold",system="ldap"} 1"#,
        r#"coexist_conflicts{organisation="acmecorp",kind="mailbox_in_two_systems"} 1"#,
        r#"coexist_conflicts{organisation="acmecorp",kind="routing_loop"} 0"#,
        r#"coexist_operations_total{organisation="acmecorp",system="ldap",action="create",outcome="planned"} 40"#,
        r#"coexist_operations_total{organisation="acmecorp",system="ldap",action="delete",outcome="withheld"} 20"#,
        r#"coexist_apply_operations_total{organisation="acmecorp",outcome="withheld"} 20"#,
        r#"coexist_staged_objects{organisation="acmecorp",system="google",class="recipient"} 21"#,
        r#"coexist_system_readable{organisation="acmecorp",system="ldap"} 1"#,
        r#"coexist_plan_operations{organisation="acmecorp"} 20"#,
        r#"coexist_run_phase_duration_seconds_count{organisation="acmecorp",phase="pull",system="all"} 2"#,
        // Per system: each read, and each system's part of the apply.
        r#"coexist_run_phase_duration_seconds_count{organisation="acmecorp",phase="pull",system="google"} 2"#,
        r#"coexist_run_phase_duration_seconds_count{organisation="acmecorp",phase="pull",system="ldap"} 2"#,
        r#"coexist_run_phase_duration_seconds_count{organisation="acmecorp",phase="apply",system="ldap"} "#,
        // What the apply made of each system's operations, per action.
        r#"coexist_operations_total{organisation="acmecorp",system="ldap",action="create",outcome="done"} 40"#,
        r#"coexist_operations_total{organisation="acmecorp",system="ldap",action="create",outcome="failed"} 0"#,
        // The simulated systems count one request per read and operation:
        // two reads of google and its one create (m0's stub); two reads of
        // ldap and its 40 creates (its 20 deletes were withheld, not sent).
        r#"coexist_api_requests_total{organisation="acmecorp",system="google"} 3"#,
        r#"coexist_api_requests_total{organisation="acmecorp",system="ldap"} 42"#,
        r#"coexist_api_throttled_requests_total{organisation="acmecorp",system="ldap"} 0"#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(text.contains("coexist_last_success_timestamp_seconds{organisation=\"acmecorp\"} 1"));

    let file = org.path("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new(coexist_testenv::promtool())
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {:?}\n{}{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool does fail on a broken exposition (the check can fail).
    std::fs::write(&file, "# TYPE x counter\nx{a=\"1\" 2\n").unwrap();
    let out = std::process::Command::new(coexist_testenv::promtool())
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Runs the test environment's headless Chromium with `args`.
fn chromium(profile: &Path, args: &[String]) -> std::process::Output {
    std::process::Command::new(coexist_testenv::chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs")
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn dump_dom(profile: &Path, url: String) -> String {
    let profile = profile.to_path_buf();
    let out =
        tokio::task::spawn_blocking(move || chromium(&profile, &["--dump-dom".to_string(), url]))
            .await
            .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn screenshot(profile: &Path, url: String, name: &str, size: &str) -> PathBuf {
    let path = screenshots().join(name);
    let _ = std::fs::remove_file(&path);
    let profile = profile.to_path_buf();
    let args = vec![
        format!("--screenshot={}", path.display()),
        format!("--window-size={size}"),
        url,
    ];
    let out = tokio::task::spawn_blocking(move || chromium(&profile, &args))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&path).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name} is a PNG");
    assert!(
        png.len() > 10_000,
        "{name} shows something ({} bytes)",
        png.len()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_headless_chromium() {
    let (org, reports) = held_org().await;
    let served = serve(&org, None, false).await;
    served
        .state
        .metrics()
        .record_run("acmecorp", &reports[1], &[]);
    let profile = tempfile::tempdir().unwrap();
    let url = &served.url;

    // The overview: systems, the held gate and how to release it, the
    // withheld deletes, the conflict's sentence, the runs.
    let dom = dump_dom(profile.path(), format!("{url}/")).await;
    assert!(
        dom.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#),
        "{dom}"
    );
    assert!(!dom.contains("<script"), "no JavaScript");
    for shown in [
        "Organisation acmecorp",
        "Needs a person:",
        "a safety gate withheld changes (exit 3)",
        "<strong>delete_threshold</strong> on <strong>ldap</strong>",
        "20 deletes planned on ldap (50% of its 40 stubs)",
        "To release: check why ldap would lose so many stubs; if it is right, run `coexist sync --allow-deletes` once",
        "20 delete on ldap",
        "<strong>mailbox_in_two_systems</strong>: ann@acmecorp.com has a mailbox on both google and ldap",
        "g20@acmecorp.com is no longer in the GAL",
    ] {
        assert!(dom.contains(shown), "{shown} not shown:\n{dom}");
    }
    // The systems' table and the runs' table, row by row.
    let systems = dom.split("<table class=\"systems\">").nth(1).unwrap();
    let systems = systems.split("</table>").next().unwrap();
    assert!(systems.contains("<td>google</td><td>simulated</td><td><span class=\"ok\">ok</span></td><td>21</td><td>1</td>"), "{systems}");
    assert!(systems.contains("<td>ldap</td><td>simulated</td><td><span class=\"ok\">ok</span></td><td>2</td><td>40</td>"), "{systems}");
    let runs = dom.split("<table class=\"runs\">").nth(1).unwrap();
    let runs = runs.split("</table>").next().unwrap();
    assert!(
        runs.contains("<span class=\"bad\">withheld</span>"),
        "{runs}"
    );
    assert!(runs.contains("<span class=\"ok\">ok</span>"), "{runs}");
    assert!(
        runs.contains("<td>0 / 0 / 0</td><td>0 / 0 / 20</td><td>1</td>"),
        "{runs}"
    );
    assert!(
        runs.contains("<td>41 / 0 / 0</td><td>41 / 0 / 0</td><td>1</td>"),
        "{runs}"
    );
    screenshot(
        profile.path(),
        format!("{url}/"),
        "status-page.png",
        "1280,2400",
    )
    .await;
    screenshot(
        profile.path(),
        format!("{url}/"),
        "status-page-phone.png",
        "390,2400",
    )
    .await;

    // The search: who is where, stubs, how mail reaches them.
    search_once_routes_are_loaded(url, "g1%40acmecorp.com").await;
    let dom = dump_dom(profile.path(), format!("{url}/?q=g1%40acmecorp.com")).await;
    for shown in [
        "Search: g1@acmecorp.com",
        "g1 — g1@acmecorp.com",
        "home <strong class=\"home\">google</strong>",
        "<td>ldap</td><td>g1@acmecorp.com</td><td>forwards to g1@gapps.acmecorp.com</td>",
        "How mail reaches g1@acmecorp.com",
        "<strong>From ldap: </strong><span class=\"ok\">Delivered to a mailbox on google after 1 hop(s).</span>",
        "<strong>From internet: </strong><span class=\"ok\">Delivered to a mailbox on google",
    ] {
        assert!(dom.contains(shown), "{shown} not shown:\n{dom}");
    }
    assert!(
        dom.contains("value=\"g1@acmecorp.com\""),
        "the form keeps the query"
    );
    screenshot(
        profile.path(),
        format!("{url}/search?q=g1%40acmecorp.com"),
        "status-search.png",
        "1280,1600",
    )
    .await;

    let dom = dump_dom(profile.path(), format!("{url}/?q=nobody-here")).await;
    assert!(dom.contains("Nobody in the GAL matches."), "{dom}");
}
