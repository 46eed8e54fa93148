//! The Prometheus metrics of the daemon (`/metrics`), with
//! `prometheus-client`, every series labelled by organisation. The daemon
//! records each run ([`Metrics::record_run`]), each run that failed before
//! it had a report ([`Metrics::record_failed_run`]) and each run skipped
//! because another held the store ([`Metrics::record_skipped`]).
//!
//! Operations are counted per system and action in
//! `coexist_operations_total` (planned, withheld by a gate, and what the
//! apply made of them: done, failed), phase durations for the whole run
//! and per system (each system's read and its part of the apply).
//!
//! API requests and throttled requests are counted per system as the
//! connectors report them (`coexist_connector::requests`: every HTTP
//! request of the cloud connectors, each read and operation of the
//! simulated system; LDAP and Active Directory connectors count none yet,
//! so their systems have no such series).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::engine::SyncReport;
use crate::reconcile::ConflictKind;
use crate::store::RunStatus;

/// One organisation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Org {
    organisation: String,
}

/// A run's outcome (a run status's name) and its exit code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunOutcome {
    organisation: String,
    outcome: String,
    exit_code: String,
}

/// A phase of a run, for the whole run (`system="all"`) or one system.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Phase {
    organisation: String,
    phase: String,
    system: String,
}

/// One system of an organisation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrgSystem {
    organisation: String,
    system: String,
}

/// Staged objects of one class (`recipient`, `stub`) of one system.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Staged {
    organisation: String,
    system: String,
    class: String,
}

/// Operations of one system and action, by what became of them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Operations {
    organisation: String,
    system: String,
    action: String,
    outcome: String,
}

/// What an apply did with the operations of a run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Applied {
    organisation: String,
    outcome: String,
}

/// A safety gate that tripped, on one system (`*`: all).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GateLabels {
    organisation: String,
    gate: String,
    system: String,
}

/// Conflicts of one kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConflictLabels {
    organisation: String,
    kind: String,
}

/// How the last read of one system ended, as the daemon last recorded it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PullOutcome {
    pub system: String,
    /// Why it could not be read; `None`: it was read.
    pub error: Option<String>,
    /// What its connector skipped, in words.
    pub problems: usize,
}

fn duration_histogram() -> Histogram {
    // 50 ms … about 14 minutes.
    Histogram::new(exponential_buckets(0.05, 2.0, 15))
}

/// The daemon's metrics (see the module's documentation).
pub struct Metrics {
    registry: Registry,
    runs: Family<RunOutcome, Counter>,
    skipped: Family<Org, Counter>,
    last_success: Family<Org, Gauge<f64, AtomicU64>>,
    durations: Family<Phase, Histogram, fn() -> Histogram>,
    staged: Family<Staged, Gauge>,
    readable: Family<OrgSystem, Gauge>,
    operations: Family<Operations, Counter>,
    applied: Family<Applied, Counter>,
    gates: Family<GateLabels, Counter>,
    conflicts: Family<ConflictLabels, Gauge>,
    plan_size: Family<Org, Gauge>,
    gal: Family<Org, Gauge>,
    requests: Family<OrgSystem, Counter>,
    throttled: Family<OrgSystem, Counter>,
    pulls: Mutex<HashMap<String, Vec<PullOutcome>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("coexist");
        let metrics = Metrics {
            runs: Family::default(),
            skipped: Family::default(),
            last_success: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            staged: Family::default(),
            readable: Family::default(),
            operations: Family::default(),
            applied: Family::default(),
            gates: Family::default(),
            conflicts: Family::default(),
            plan_size: Family::default(),
            gal: Family::default(),
            requests: Family::default(),
            throttled: Family::default(),
            pulls: Mutex::new(HashMap::new()),
            registry: Registry::default(),
        };
        registry.register(
            "runs",
            "Runs by outcome (ok, withheld, partial, routing_loop, failed, refused) and exit code",
            metrics.runs.clone(),
        );
        registry.register(
            "runs_skipped",
            "Runs not started because another run held the organisation's store",
            metrics.skipped.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When the last run that did everything asked (outcome ok) finished, in seconds since the epoch",
            metrics.last_success.clone(),
        );
        registry.register(
            "run_phase_duration_seconds",
            "How long each phase of a run took (system=all: the whole phase; else that system's part)",
            metrics.durations.clone(),
        );
        registry.register(
            "staged_objects",
            "Objects staged per system after the last run's read, by class (recipient, stub)",
            metrics.staged.clone(),
        );
        registry.register(
            "system_readable",
            "Whether the last run read the system (1) or could not (0)",
            metrics.readable.clone(),
        );
        registry.register(
            "operations",
            "Operations per system and action, by outcome (planned; withheld by a safety gate; done or failed by the apply)",
            metrics.operations.clone(),
        );
        registry.register(
            "apply_operations",
            "What applies did with the runs' operations (done, already_done, failed, not_attempted, withheld)",
            metrics.applied.clone(),
        );
        registry.register(
            "gates_tripped",
            "Safety gates tripped, by gate and system (* for all)",
            metrics.gates.clone(),
        );
        registry.register(
            "conflicts",
            "Conflicts in the last run's plan, by kind",
            metrics.conflicts.clone(),
        );
        registry.register(
            "plan_operations",
            "Operations in the last run's plan",
            metrics.plan_size.clone(),
        );
        registry.register(
            "gal_recipients",
            "Recipients in the GAL of the last run's plan",
            metrics.gal.clone(),
        );
        registry.register(
            "api_requests",
            "Requests sent to each system's API by its connector (systems whose connector counts them)",
            metrics.requests.clone(),
        );
        registry.register(
            "api_throttled_requests",
            "Requests each system throttled (HTTP 429 or 503)",
            metrics.throttled.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Records a run that finished with a report: its outcome and exit
    /// code, the plan's size, operations, gates and conflicts, what each
    /// system staged, and how long each phase took. A phase is named
    /// `pull`, `plan`, `apply` (the whole phase) or `pull:SYSTEM` (one
    /// system's part of it).
    pub fn record_run(&self, organisation: &str, report: &SyncReport, phases: &[(&str, Duration)]) {
        let code = report.exit_code();
        let outcome = RunStatus::of_exit_code(code);
        self.count_run(organisation, outcome.as_str(), code);
        if outcome == RunStatus::Ok {
            self.last_success
                .get_or_create(&org(organisation))
                .set(unix_now());
        }
        for (name, took) in phases {
            let (phase, system) = name.split_once(':').unwrap_or((name, "all"));
            self.durations
                .get_or_create(&Phase {
                    organisation: organisation.to_string(),
                    phase: phase.to_string(),
                    system: system.to_string(),
                })
                .observe(took.as_secs_f64());
        }
        let per_system = report
            .pulls
            .iter()
            .map(|p| ("pull", &p.system, p.elapsed))
            .chain(
                report
                    .apply
                    .durations
                    .iter()
                    .map(|(system, took)| ("apply", system, *took)),
            );
        for (phase, system, took) in per_system {
            self.durations
                .get_or_create(&Phase {
                    organisation: organisation.to_string(),
                    phase: phase.to_string(),
                    system: system.clone(),
                })
                .observe(took.as_secs_f64());
        }
        for (system, counts) in report.requests.iter().filter(|(_, c)| c.requests > 0) {
            let labels = OrgSystem {
                organisation: organisation.to_string(),
                system: system.clone(),
            };
            self.requests.get_or_create(&labels).inc_by(counts.requests);
            self.throttled
                .get_or_create(&labels)
                .inc_by(counts.throttled);
        }
        let mut pulls = Vec::with_capacity(report.pulls.len());
        for pull in &report.pulls {
            let labels = OrgSystem {
                organisation: organisation.to_string(),
                system: pull.system.clone(),
            };
            self.readable
                .get_or_create(&labels)
                .set(i64::from(pull.error.is_none()));
            if pull.error.is_none() {
                for (class, count) in [("recipient", pull.recipients), ("stub", pull.stubs)] {
                    self.staged
                        .get_or_create(&Staged {
                            organisation: organisation.to_string(),
                            system: pull.system.clone(),
                            class: class.to_string(),
                        })
                        .set(i64::try_from(count).unwrap_or(i64::MAX));
                }
            }
            pulls.push(PullOutcome {
                system: pull.system.clone(),
                error: pull.error.clone(),
                problems: pull.problems.len(),
            });
        }
        if let Ok(mut recorded) = self.pulls.lock() {
            recorded.insert(organisation.to_string(), pulls);
        }
        let plan = &report.plan;
        for step in &plan.operations {
            let mut labels = Operations {
                organisation: organisation.to_string(),
                system: step.system.clone(),
                action: step.action.as_str().to_string(),
                outcome: "planned".to_string(),
            };
            self.operations.get_or_create(&labels).inc();
            if step.withheld {
                labels.outcome = "withheld".to_string();
                self.operations.get_or_create(&labels).inc();
            }
        }
        let apply = &report.apply;
        for ((system, action), counts) in &apply.by_system {
            for (outcome, count) in [("done", counts.done), ("failed", counts.failed)] {
                self.operations
                    .get_or_create(&Operations {
                        organisation: organisation.to_string(),
                        system: system.clone(),
                        action: action.to_string(),
                        outcome: outcome.to_string(),
                    })
                    .inc_by(count);
            }
        }
        for (what, count) in [
            ("done", apply.done),
            ("already_done", apply.skipped_already_done),
            ("failed", apply.failed),
            ("not_attempted", apply.not_attempted),
            ("withheld", apply.withheld),
        ] {
            self.applied
                .get_or_create(&Applied {
                    organisation: organisation.to_string(),
                    outcome: what.to_string(),
                })
                .inc_by(count);
        }
        for gate in &plan.gates {
            self.gates
                .get_or_create(&GateLabels {
                    organisation: organisation.to_string(),
                    gate: gate.gate.clone(),
                    system: gate.system.clone(),
                })
                .inc();
        }
        for kind in [
            ConflictKind::MailboxInTwoSystems,
            ConflictKind::AddressClaimedTwice,
            ConflictKind::PlacementContradictsMailbox,
            ConflictKind::RoutingLoop,
        ] {
            let count = plan.conflicts.iter().filter(|c| c.kind == kind).count();
            self.conflicts
                .get_or_create(&ConflictLabels {
                    organisation: organisation.to_string(),
                    kind: conflict_kind_name(kind).to_string(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.plan_size
            .get_or_create(&org(organisation))
            .set(i64::try_from(plan.operations.len()).unwrap_or(i64::MAX));
        self.gal
            .get_or_create(&org(organisation))
            .set(i64::try_from(plan.summary.gal).unwrap_or(i64::MAX));
    }

    /// Records a run that stopped with `exit_code` before it had a report
    /// (the store, the configuration, a connector that could not be built).
    pub fn record_failed_run(&self, organisation: &str, exit_code: i32) {
        let outcome = match exit_code {
            crate::exit::FAILURE | crate::exit::USAGE => RunStatus::Failed,
            crate::exit::STALE_PLAN => RunStatus::Refused,
            code => RunStatus::of_exit_code(code),
        };
        self.count_run(organisation, outcome.as_str(), exit_code);
    }

    /// Records a run not started because another held the store.
    pub fn record_skipped(&self, organisation: &str) {
        self.skipped.get_or_create(&org(organisation)).inc();
    }

    /// How the last recorded run of `organisation` read each system;
    /// `None` when the daemon recorded no run of it yet.
    pub fn last_pulls(&self, organisation: &str) -> Option<Vec<PullOutcome>> {
        self.pulls
            .lock()
            .ok()
            .and_then(|pulls| pulls.get(organisation).cloned())
    }

    /// The metrics in the OpenMetrics text format (what Prometheus asks
    /// for first).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// The metrics in Prometheus' classic text format (version 0.0.4),
    /// what `promtool check metrics` and clients that do not ask for
    /// OpenMetrics read: see [`classic_text`].
    pub fn encode_classic(&self) -> Result<String, std::fmt::Error> {
        Ok(classic_text(&self.encode()?))
    }

    fn count_run(&self, organisation: &str, outcome: &str, code: i32) {
        self.runs
            .get_or_create(&RunOutcome {
                organisation: organisation.to_string(),
                outcome: outcome.to_string(),
                exit_code: code.to_string(),
            })
            .inc();
    }
}

/// OpenMetrics text as Prometheus' classic text format: a counter's
/// family is named with its samples' `_total` in `# HELP` and `# TYPE`
/// (OpenMetrics names it without), and the `# UNIT` and `# EOF` lines,
/// which the classic format does not have, are left out. The samples are
/// the same in both formats.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(line.trim_end()),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn org(organisation: &str) -> Org {
    Org {
        organisation: organisation.to_string(),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// A conflict kind's name, as the plan writes it.
pub(crate) fn conflict_kind_name(kind: ConflictKind) -> &'static str {
    match kind {
        ConflictKind::MailboxInTwoSystems => "mailbox_in_two_systems",
        ConflictKind::AddressClaimedTwice => "address_claimed_twice",
        ConflictKind::PlacementContradictsMailbox => "placement_contradicts_mailbox",
        ConflictKind::RoutingLoop => "routing_loop",
    }
}
