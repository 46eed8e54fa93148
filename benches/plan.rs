//! Benchmark: reconcile and plan a synthetic organisation of 100,000
//! recipients over 4 systems, staged in SQLite.
//!
//! Prints, from one run in one process:
//! * the time to read the staged rows from the store,
//! * the time to reconcile and diff them into a plan (target: < 1 s and
//!   < 2x the read time),
//! * the same for a no-change re-plan once every stub exists (target: at
//!   least as fast as the first plan),
//! * the peak resident memory (target: < 500 MB).
//!
//! Each time is the median of five runs in this process, the reads and
//! the reconciles alternating. Run:
//! `cargo bench --bench plan` (add `-- 20000` for another size).

use std::collections::BTreeMap;

/// The same allocator as the `coexist` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::{Duration, Instant};

use coexist::reconcile::{
    reconcile, DisabledMailboxes, Policy, StubStyle, SystemPolicy, UnknownRecipient,
};
use coexist::store::Store;
use coexist_connector::{FoundStub, Operation, Pull, Recipient};

mod common;
use common::recipient;

const SYSTEMS: [(&str, &str, StubStyle); 4] = [
    ("ldap", "mail.acmecorp.com", StubStyle::RoutingAddress),
    ("ad", "ad.acmecorp.com", StubStyle::RoutingAddress),
    ("google", "gapps.acmecorp.com", StubStyle::DomainRouting),
    (
        "m365",
        "acmecorp.mail.onmicrosoft.com",
        StubStyle::RoutingAddress,
    ),
];

fn policy() -> Policy {
    Policy {
        shared_domains: vec!["acmecorp.com".into()],
        systems: SYSTEMS
            .iter()
            .map(|(id, rd, style)| SystemPolicy {
                id: id.to_string(),
                routing_domain: Some(rd.to_string()),
                smart_host: Some(format!("mx.{rd}")),
                stub_style: *style,
                unknown_recipient: UnknownRecipient::Reject,
                disabled_mailboxes: DisabledMailboxes::Deliver,
                routing_domain_is_alias: true,
            })
            .collect(),
        home_attribute: None,
        precedence: vec![],
        precedence_by_attribute: BTreeMap::new(),
        include_disabled: false,
        mx: Some("ldap".into()),
    }
}

fn peak_rss_mb() -> f64 {
    rss_mb("VmHWM:")
}

fn rss_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_string))
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Each figure is the median of this many runs, in the same process.
const RUNS: usize = 5;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Reads the staged rows and reconciles them, alternately, `RUNS` times,
/// so a burst of noise on the machine falls on both figures alike. The
/// median times and the last results.
async fn timed_read_and_reconcile(
    store: &Store,
    ids: &[String],
    policy: &Policy,
) -> Result<
    (
        coexist::reconcile::Staged,
        Duration,
        coexist::reconcile::Reconciliation,
        Duration,
    ),
    Box<dyn std::error::Error>,
> {
    let (mut reads, mut plans) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..RUNS {
        drop(last.take());
        let t = Instant::now();
        let staged = store.load_staged(ids).await?;
        reads.push(t.elapsed());
        let t = Instant::now();
        let reconciliation = reconcile(&staged, policy);
        plans.push(t.elapsed());
        last = Some((staged, reconciliation));
    }
    let (staged, reconciliation) = last.ok_or("no run")?;
    Ok((staged, median(reads), reconciliation, median(plans)))
}

/// Prints the GAL build and the diff apart, once each, with the memory
/// they leave (`COEXIST_BENCH_BREAKDOWN=1`).
fn breakdown(staged: &coexist::reconcile::Staged, policy: &Policy) {
    let t = Instant::now();
    let joined = coexist::reconcile::gal::build(staged, policy);
    println!(
        "  (gal::build {:.3} s, rss {:.0} MB)",
        secs(t.elapsed()),
        rss_mb("VmRSS:")
    );
    let t = Instant::now();
    let planned = coexist::reconcile::diff::plan(&coexist::reconcile::diff::Inputs {
        staged,
        policy,
        gal: &joined.gal,
        index: &joined.index,
        mailboxes: &joined.mailboxes,
        held: &joined.held,
        looping: &Default::default(),
        decisions: &Default::default(),
    });
    println!(
        "  (diff::plan {:.3} s, rss {:.0} MB, {} ops)",
        secs(t.elapsed()),
        rss_mb("VmRSS:"),
        planned.operations.len()
    );
}

/// Setup, run in a child process so its memory is not counted: stages `n`
/// recipients (`recipients`), or stages the stubs the first plan creates, as
/// the connectors would after applying it (`stubs`).
async fn setup(step: &str, db: &str, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(db).await?;
    let ids: Vec<String> = SYSTEMS.iter().map(|(id, _, _)| id.to_string()).collect();
    match step {
        "recipients" => {
            for (s, (id, _, _)) in SYSTEMS.iter().enumerate() {
                let recipients: Vec<Recipient> = (0..n)
                    .filter(|i| i % SYSTEMS.len() == s)
                    .map(recipient)
                    .collect();
                store
                    .stage_pull(id, &Pull::full(recipients, vec![]), false)
                    .await?;
            }
        }
        _ => {
            let staged = store.load_staged(&ids).await?;
            let first = reconcile(&staged, &policy());
            for (id, _, _) in SYSTEMS {
                let stubs: Vec<FoundStub> = first
                    .operations
                    .iter()
                    .filter(|o| o.system == id)
                    .enumerate()
                    .filter_map(|(k, o)| match &*o.operation {
                        Operation::Create { stub } => Some(FoundStub {
                            id: format!("{id}-{k}"),
                            locator: format!("{id}/{k}"),
                            misplaced: false,
                            stub: stub.clone(),
                        }),
                        _ => None,
                    })
                    .collect();
                let pull = Pull::full(
                    staged
                        .system(id)
                        .map(|s| s.recipients.clone())
                        .unwrap_or_default(),
                    stubs,
                );
                store.stage_pull(id, &pull, false).await?;
            }
        }
    }
    Ok(())
}

fn run_setup(step: &str, db: &str, n: usize) -> Result<Duration, Box<dyn std::error::Error>> {
    let t = Instant::now();
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["--setup", step, db, &n.to_string()])
        .status()?;
    if !status.success() {
        return Err(format!("setup step {step} failed").into());
    }
    Ok(t.elapsed())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--setup") {
        let (step, db, n) = (&args[at + 1], &args[at + 2], args[at + 3].parse()?);
        return setup(step, db, n).await;
    }
    let n: usize = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite:{}", dir.path().join("bench.db").display());
    let policy = policy();
    let ids: Vec<String> = SYSTEMS.iter().map(|(id, _, _)| id.to_string()).collect();

    println!(
        "coexist plan benchmark: {n} recipients over {} systems (SQLite store)",
        SYSTEMS.len()
    );
    let took = run_setup("recipients", &db, n)?;
    println!(
        "  staging {n} recipients (child process):  {:>8.3} s (setup, not a target)",
        secs(took)
    );
    let store = Store::open(&db).await?;

    // First plan: every stub is missing.
    let (staged, read_first, first, plan_first) =
        timed_read_and_reconcile(&store, &ids, &policy).await?;
    if std::env::var_os("COEXIST_BENCH_BREAKDOWN").is_some() {
        println!(
            "  (rss after read: {:.0} MB, peak so far {:.0} MB)",
            rss_mb("VmRSS:"),
            peak_rss_mb()
        );
        breakdown(&staged, &policy);
    }
    let operations = first.operations.len();
    println!(
        "  read staged rows:                  {:>8.3} s",
        secs(read_first)
    );
    println!(
        "  reconcile + diff:                  {:>8.3} s  ({} GAL entries, {operations} operations)",
        secs(plan_first),
        first.gal.len()
    );
    drop(first);
    drop(staged);

    let took = run_setup("stubs", &db, n)?;
    println!(
        "  staging {operations} stubs (child process):   {:>8.3} s (setup, not a target)",
        secs(took)
    );

    let (_staged, read_again, again, plan_again) =
        timed_read_and_reconcile(&store, &ids, &policy).await?;
    if std::env::var_os("COEXIST_BENCH_BREAKDOWN").is_some() {
        println!(
            "  (rss after read with stubs: {:.0} MB, peak so far {:.0} MB)",
            rss_mb("VmRSS:"),
            peak_rss_mb()
        );
        breakdown(&_staged, &policy);
    }
    println!(
        "  read staged rows (with stubs):     {:>8.3} s",
        secs(read_again)
    );
    println!(
        "  no-change reconcile + diff:        {:>8.3} s  ({} operations)",
        secs(plan_again),
        again.operations.len()
    );
    let peak = peak_rss_mb();
    println!("  peak resident memory (planning process): {peak:.1} MB");

    let ratio = secs(plan_first) / secs(read_first);
    let ratio_again = secs(plan_again) / secs(read_again);
    println!();
    println!(
        "  target reconcile + diff < 1 s:                 {:.3} s  {}",
        secs(plan_first),
        verdict(plan_first < Duration::from_secs(1))
    );
    println!(
        "  target reconcile + diff < 2x read:             {ratio:.2}x   {}",
        verdict(ratio < 2.0)
    );
    println!(
        "  target no-change re-plan at least as fast:     {:.3} s vs {:.3} s  {}",
        secs(plan_again),
        secs(plan_first),
        verdict(plan_again <= plan_first)
    );
    println!("  (no-change re-plan vs its own read:           {ratio_again:.2}x)");
    if std::env::var_os("COEXIST_BENCH_BREAKDOWN").is_some() {
        // The breakdown holds a second GAL and plan: not the planner's peak.
        println!("  peak memory: not measured with COEXIST_BENCH_BREAKDOWN set");
    } else {
        println!(
            "  target peak memory < 500 MB:                   {peak:.1} MB  {}",
            verdict(peak < 500.0)
        );
    }
    if !again.operations.is_empty() {
        return Err(format!(
            "the re-plan after applying should be empty, it has {} operations",
            again.operations.len()
        )
        .into());
    }
    Ok(())
}
