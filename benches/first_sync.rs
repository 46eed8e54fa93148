//! Benchmark: the first sync of 10,000 people on three simulated systems
//! (a third of them homed on each, so every person needs a stub on the two
//! others: 20,000 creates), from an empty store to every stub written and
//! recorded: pull, stage, plan, apply, journal, audit.
//!
//! Two write paths, run in this one process, alternating, each figure the
//! median of three runs, each run on a fresh store and fresh systems:
//! * per chunk (today's): the results of each chunk of 100 operations (stub
//!   rows, audit records, journal done/failed) in ONE transaction
//!   (`Store::record_chunk`);
//! * per operation (the baseline, the write path before it): each stub
//!   row, audit record and journal entry in a transaction of its own
//!   (`Engine::with_per_operation_writes`, `Store::record_per_operation`).
//!
//! On SQLite always; on PostgreSQL when `COEXIST_TEST_POSTGRES_URL` names
//! the test server (`source /tmp/coexist-testenv/env`; each run in a schema
//! of its own). Targets (per chunk): under 3 s on SQLite, under 5 s on
//! PostgreSQL. Run: `cargo bench --bench first_sync` (add `-- 20000` for
//! another number of people).

/// The same allocator as the `coexist` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coexist::config::Config;
use coexist::engine::{Engine, Quiet, RunOptions};
use coexist::store::Store;
use coexist_connector::{Attributes, Recipient, RecipientKind};

type Error = Box<dyn std::error::Error>;

/// Each figure is the median of this many runs.
const RUNS: usize = 3;

/// The systems: id, routing domain, stub style, catch-all.
const SYSTEMS: [(&str, &str, &str, &str); 3] = [
    (
        "google",
        "gapps.acmecorp.com",
        "domain_routing",
        "{ relay = \"ldap\" }",
    ),
    ("ldap", "mail.acmecorp.com", "routing_address", "\"reject\""),
    ("ad", "ad.acmecorp.com", "routing_address", "\"reject\""),
];

fn configuration() -> String {
    let mut text = String::from(
        "[organisation]\nshared_domains = [\"acmecorp.com\"]\n\n[topology]\nmx = \"google\"\n",
    );
    for (id, domain, style, unknown) in SYSTEMS {
        text.push_str(&format!(
            "\n[[systems]]\nid = \"{id}\"\nkind = \"simulated\"\nrouting_domain = \"{domain}\"\nstub_style = \"{style}\"\nunknown_recipient = {unknown}\n[systems.connection]\nseed = \"{id}.json\"\nstate = \"{id}-state.jsonl\"\n"
        ));
    }
    text
}

fn person(system: &str, i: usize) -> Recipient {
    let mut person = Recipient::mailbox(
        format!("person-{i}"),
        RecipientKind::Person,
        format!("{system}.user{i}@acmecorp.com"),
    );
    person.attributes = Attributes {
        display_name: Some(format!("User {i} of {system}")),
        given_name: Some("User".into()),
        surname: Some(format!("Number{i}")),
        title: Some(["Engineer", "Analyst", "Manager"][i % 3].into()),
        department: Some(["Sales", "Support", "Finance", "R&D"][i % 4].into()),
        ..Attributes::default()
    };
    person
}

/// Writes the configuration and the seeds of `people` people.
fn write_org(dir: &Path, people: usize) -> Result<(), Error> {
    std::fs::write(dir.join("coexist.toml"), configuration())?;
    for (s, (id, _, _, _)) in SYSTEMS.iter().enumerate() {
        let recipients: Vec<Recipient> = (0..people)
            .filter(|i| i % SYSTEMS.len() == s)
            .map(|i| person(id, i))
            .collect();
        let seed = coexist_simulated::Seed {
            recipients,
            stubs: vec![],
        };
        std::fs::write(dir.join(format!("{id}.json")), serde_json::to_vec(&seed)?)?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WritePath {
    PerChunk,
    PerOperation,
}

impl WritePath {
    fn label(self) -> &'static str {
        match self {
            WritePath::PerChunk => "per chunk (today)",
            WritePath::PerOperation => "per operation (baseline, before)",
        }
    }
}

/// Where the stores are.
enum Backend {
    Sqlite,
    Postgres(String),
}

/// A fresh store for run `k`, and what to drop after it.
async fn fresh_store(
    backend: &Backend,
    dir: &Path,
    k: usize,
) -> Result<(Store, Option<String>), Error> {
    match backend {
        Backend::Sqlite => {
            let path = dir.join(format!("store-{k}.db"));
            Ok((
                Store::open(&format!("sqlite:{}", path.display())).await?,
                None,
            ))
        }
        Backend::Postgres(url) => {
            let schema = format!("coexist_bench_{}_{k}", std::process::id());
            postgres(url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
            postgres(url, &format!("CREATE SCHEMA {schema}")).await?;
            let separator = if url.contains('?') { '&' } else { '?' };
            let store = Store::open(&format!(
                "{url}{separator}options=-c%20search_path%3D{schema}"
            ))
            .await?;
            Ok((store, Some(schema)))
        }
    }
}

async fn postgres(url: &str, sql: &str) -> Result<(), Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query(sql).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// One first sync on fresh systems and a fresh store: its time and how
/// many operations it applied.
async fn first_sync(
    dir: &Path,
    backend: &Backend,
    path: WritePath,
    k: usize,
) -> Result<(Duration, u64), Error> {
    for (id, _, _, _) in SYSTEMS {
        let state = dir.join(format!("{id}-state.jsonl"));
        if state.exists() {
            std::fs::remove_file(state)?;
        }
    }
    let (store, schema) = fresh_store(backend, dir, k).await?;
    let started = Instant::now();
    let config = Config::load(&dir.join("coexist.toml"))?;
    let connectors = coexist::connectors::connect_all(&config)?;
    let mut engine = Engine::new(config, store.clone(), connectors, Arc::new(Quiet));
    if path == WritePath::PerOperation {
        engine = engine.with_per_operation_writes();
    }
    let lock = engine.lock("sync").await?;
    let options = RunOptions {
        actor: "benches/first_sync.rs".into(),
        ..RunOptions::default()
    };
    if std::env::var_os("COEXIST_BENCH_BREAKDOWN").is_some() {
        breakdown(&engine, &options, started).await?;
    }
    let report = engine.sync(&options).await?;
    lock.release().await;
    let took = started.elapsed();
    let creates = report.plan.summary.create;
    if report.apply.done != creates || report.apply.failed > 0 || report.exit_code() != 0 {
        return Err(format!(
            "the first sync did not apply its plan: {} of {creates} creates done, {} failed, exit {}",
            report.apply.done,
            report.apply.failed,
            report.exit_code()
        )
        .into());
    }
    // What the store recorded is what the systems hold: a plan made from
    // the store alone, without reading, finds nothing to do.
    let (again, _) = engine
        .plan(&BTreeMap::new(), &RunOptions::default())
        .await?;
    if again.summary.create + again.summary.update + again.summary.delete > 0 {
        return Err(format!(
            "after the first sync, a plan from the store still has {} operations",
            again.operations.len()
        )
        .into());
    }
    store.close().await;
    if let (Backend::Postgres(url), Some(schema)) = (backend, schema) {
        postgres(url, &format!("DROP SCHEMA {schema} CASCADE")).await?;
    }
    Ok((took, report.apply.done))
}

/// Prints the time of each step of a sync (`COEXIST_BENCH_BREAKDOWN=1`):
/// this run then syncs twice, the second finding nothing to do.
async fn breakdown(engine: &Engine, options: &RunOptions, started: Instant) -> Result<(), Error> {
    let step = |name: &str, t: Instant| {
        println!("      ({name}: {:.3} s)", t.elapsed().as_secs_f64());
        Instant::now()
    };
    let t = step("setup", started);
    let pulls = engine.pull_with(options).await?;
    let t = step("pull and stage", t);
    let (plan, _) = engine.plan(&engine.health(&pulls), options).await?;
    let t = step("plan", t);
    engine.apply(&plan, None, options).await?;
    step("apply", t);
    Ok(())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Runs both paths `RUNS` times, alternating (the first of each pair
/// alternating too), and prints their medians. The per-chunk median.
async fn measure(
    name: &str,
    dir: &Path,
    backend: &Backend,
    target: Duration,
) -> Result<bool, Error> {
    // `COEXIST_BENCH_PATH=chunk` (or `operation`) runs one path alone,
    // for a profiler.
    let only = match std::env::var("COEXIST_BENCH_PATH").as_deref() {
        Ok("chunk") => Some(WritePath::PerChunk),
        Ok("operation") => Some(WritePath::PerOperation),
        _ => None,
    };
    let (mut chunked, mut baseline) = (Vec::new(), Vec::new());
    let mut operations = 0;
    for run in 0..RUNS {
        let order = if run % 2 == 0 {
            [WritePath::PerOperation, WritePath::PerChunk]
        } else {
            [WritePath::PerChunk, WritePath::PerOperation]
        };
        for path in order {
            if only.is_some_and(|only| only != path) {
                continue;
            }
            let k = run * 2 + usize::from(path == WritePath::PerChunk);
            let (took, done) = first_sync(dir, backend, path, k).await?;
            println!(
                "    {name} run {}: {:<34} {:>7.3} s",
                run + 1,
                path.label(),
                took.as_secs_f64()
            );
            operations = done;
            match path {
                WritePath::PerChunk => chunked.push(took),
                WritePath::PerOperation => baseline.push(took),
            }
        }
    }
    if chunked.is_empty() || baseline.is_empty() {
        println!("  {name}: one path only (COEXIST_BENCH_PATH), no figures compared");
        return Ok(true);
    }
    let (chunked, baseline) = (median(chunked), median(baseline));
    println!(
        "  {name}: first sync, {operations} creates (median of {RUNS}): per operation {:.3} s, per chunk {:.3} s ({:.1}x faster)",
        baseline.as_secs_f64(),
        chunked.as_secs_f64(),
        baseline.as_secs_f64() / chunked.as_secs_f64()
    );
    let ok = chunked < target;
    println!(
        "  target {name} per chunk < {} s:  {:.3} s  {}",
        target.as_secs(),
        chunked.as_secs_f64(),
        verdict(ok)
    );
    Ok(ok)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let people: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    write_org(dir.path(), people)?;
    println!(
        "coexist first-sync benchmark: {people} people over {} simulated systems, every one needing a stub on the {} others",
        SYSTEMS.len(),
        SYSTEMS.len() - 1
    );
    let mut ok = measure(
        "SQLite",
        dir.path(),
        &Backend::Sqlite,
        Duration::from_secs(3),
    )
    .await?;
    match std::env::var("COEXIST_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            ok &= measure(
                "PostgreSQL",
                dir.path(),
                &Backend::Postgres(url),
                Duration::from_secs(5),
            )
            .await?;
        }
        _ => println!(
            "  PostgreSQL: skipped, COEXIST_TEST_POSTGRES_URL is not set (start the test server with deploy/testenv.sh up and source /tmp/coexist-testenv/env)"
        ),
    }
    if !ok {
        println!("  a target was missed");
    }
    Ok(())
}
