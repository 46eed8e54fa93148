//! The safety gates: pure checks that hold back operations before they run.
//!
//! * **incomplete source** — a system whose pull failed part-way, or that
//!   suddenly returned nothing though recipients were known for it, causes
//!   no deletes anywhere in this run (its recipients would look gone).
//! * **unreadable source** — a system that could not be read at all is sent
//!   none of its operations (what it holds now is unknown), and causes no
//!   deletes anywhere.
//! * **shrunk source** — a system whose read misses more than
//!   `max_shrink_percent` of the recipients known for it (held at its last
//!   good read, or routed to by coexist's stubs on the other systems) is
//!   not believed: it stays staged as it was and nothing is deleted
//!   anywhere, until the run accepts the shrink (`--accept-shrink SYSTEM`).
//! * **delete threshold** — more deletes in one system than the absolute
//!   limit, or than the configured share of its stubs, are held back unless
//!   the run explicitly allows them (`--allow-deletes`).
//! * **capacity** — creates that would take a system past the most stubs it
//!   can hold (Google: 200,000 shared contacts a domain) are held back,
//!   rather than failing one by one at the system on every run.

use std::collections::BTreeMap;

use coexist_connector::Capacity;

use crate::config::Safety;
use crate::plan::{Action, Gate, Plan};

/// The gate of a source read part-way or suddenly empty.
pub const INCOMPLETE_SOURCE: &str = "incomplete_source";
/// The gate of a source that could not be read at all.
pub const UNREADABLE_SOURCE: &str = "unreadable_source";
/// The gate of a source that shrank past `max_shrink_percent`.
pub const SOURCE_SHRUNK: &str = "source_shrunk";
/// The gate of too many deletes in one system.
pub const DELETE_THRESHOLD: &str = "delete_threshold";
/// The gate of creates past a system's capacity.
pub const CAPACITY: &str = "capacity";

/// The health of one system's pull in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceHealth {
    /// Read completely.
    Complete,
    /// The read stopped part-way.
    Incomplete(String),
    /// The read returned nothing although recipients were known for the
    /// system: `before` it held at its last good read, `routed` that the
    /// stubs on other systems route to.
    SuddenlyEmpty { before: i64, routed: u64 },
    /// The read misses more of the recipients known for the system than
    /// `max_shrink_percent` allows.
    Shrunk(Shrink),
    /// The system could not be read at all.
    Failed(String),
}

/// The figures of a read that shrank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shrink {
    /// Recipients the read lists (for a delta: of those known, the ones it
    /// did not remove).
    pub listed: u64,
    /// Recipients known for the system: held at its last good read, or
    /// routed to by coexist's stubs on other systems.
    pub known: u64,
    /// Of those known, the ones the read no longer lists.
    pub missing: u64,
    /// Recipients held at the last good read.
    pub held_before: u64,
    /// Recipients that other systems hold coexist stubs for.
    pub routed: u64,
}

/// Whether a read missing `missing` of the `known` recipients of a system
/// shrank too much to be believed.
pub fn shrank(safety: &Safety, known: u64, missing: u64) -> bool {
    missing > safety.percent_applies_above
        && missing as f64 * 100.0 > safety.max_shrink_percent * known as f64
}

/// "1 recipient", "2 recipients".
fn recipients(n: u64) -> String {
    if n == 1 {
        "1 recipient".into()
    } else {
        format!("{n} recipients")
    }
}

/// Marks the operations of `plan` that the gates hold back, and records why.
/// `stubs_held` is how many stubs each system holds now.
pub fn apply_gates(
    plan: &mut Plan,
    safety: &Safety,
    health: &BTreeMap<String, SourceHealth>,
    stubs_held: &BTreeMap<String, u64>,
    allow_deletes: bool,
) {
    let unhealthy: Vec<(&String, &SourceHealth)> = health
        .iter()
        .filter(|(_, h)| **h != SourceHealth::Complete)
        .collect();
    if !unhealthy.is_empty() {
        for step in plan
            .operations
            .iter_mut()
            .filter(|s| s.action == Action::Delete)
        {
            step.withheld = true;
        }
        for (system, h) in unhealthy {
            let nothing_deleted = "no stub is deleted anywhere in this run";
            let (gate, concerns, message) = match h {
                SourceHealth::Incomplete(why) => (
                    INCOMPLETE_SOURCE,
                    "*".to_string(),
                    format!("the read of {system} stopped part-way ({why}); {nothing_deleted}. Fix the source and run again"),
                ),
                SourceHealth::SuddenlyEmpty { before, routed } => {
                    let known = if *before > 0 {
                        format!("although it held {before} at its last good read")
                    } else {
                        format!("although other systems hold coexist stubs for {} of it", recipients(*routed))
                    };
                    (
                        INCOMPLETE_SOURCE,
                        "*".to_string(),
                        format!(
                            "{system} suddenly lists no recipients {known}, so what it held is kept as staged; {nothing_deleted}. Fix the source and run again (if {system} really is empty now, run `coexist sync --accept-shrink {system}`)"
                        ),
                    )
                }
                SourceHealth::Shrunk(shrink) => {
                    let mut evidence = Vec::new();
                    if shrink.held_before > 0 {
                        evidence.push(format!("{} at its last good read", shrink.held_before));
                    }
                    if shrink.routed > 0 {
                        evidence.push(format!(
                            "{} with coexist stubs on other systems routing to it",
                            shrink.routed
                        ));
                    }
                    let percent = shrink.missing as f64 * 100.0 / shrink.known.max(1) as f64;
                    (
                        SOURCE_SHRUNK,
                        system.clone(),
                        format!(
                            "{system} lists {}, but {} are known for it ({}): {} ({percent:.0}%) are missing, more than safety.max_shrink_percent ({}%). The read is not believed: what {system} held stays staged and {nothing_deleted}. Check its connection (base, filter, read rights) and run again; if {system} really lost them, run `coexist sync --accept-shrink {system}` (deletes above the delete threshold still need --allow-deletes)",
                            recipients(shrink.listed),
                            shrink.known,
                            evidence.join(", "),
                            shrink.missing,
                            safety.max_shrink_percent,
                        ),
                    )
                }
                SourceHealth::Failed(why) => {
                    plan.gates.push(Gate {
                        gate: INCOMPLETE_SOURCE.into(),
                        system: "*".into(),
                        message: format!(
                            "{system} could not be read ({why}); {nothing_deleted}. Fix the source and run again"
                        ),
                    });
                    let mut withheld = 0u64;
                    for step in plan
                        .operations
                        .iter_mut()
                        .filter(|s| s.system == *system)
                    {
                        withheld += u64::from(!step.withheld);
                        step.withheld = true;
                    }
                    (
                        UNREADABLE_SOURCE,
                        system.clone(),
                        format!(
                            "{system} could not be read ({why}), so what it holds now is unknown: none of its operations is sent in this run ({withheld} withheld besides the deletes). Check its connection and credentials (`coexist doctor`) and run again"
                        ),
                    )
                }
                SourceHealth::Complete => continue,
            };
            plan.gates.push(Gate {
                gate: gate.into(),
                system: concerns,
                message,
            });
        }
    }

    if !allow_deletes {
        let mut deletes: BTreeMap<&str, u64> = BTreeMap::new();
        for step in plan
            .operations
            .iter()
            .filter(|s| s.action == Action::Delete && !s.withheld)
        {
            *deletes.entry(step.system.as_str()).or_default() += 1;
        }
        let mut tripped: Vec<(String, String)> = Vec::new();
        for (system, count) in deletes {
            let held = stubs_held.get(system).copied().unwrap_or(0);
            let percent = if held == 0 {
                100.0
            } else {
                count as f64 * 100.0 / held as f64
            };
            let message = if count > safety.max_deletes {
                Some(format!(
                    "{count} deletes planned on {system}, more than the limit of {} per run; check why, then run again with --allow-deletes",
                    safety.max_deletes
                ))
            } else if count > safety.percent_applies_above && percent > safety.max_delete_percent {
                Some(format!(
                    "{count} deletes planned on {system} ({percent:.0}% of its {held} stubs), more than the limit of {}%; check why, then run again with --allow-deletes",
                    safety.max_delete_percent
                ))
            } else {
                None
            };
            if let Some(message) = message {
                tripped.push((system.to_string(), message));
            }
        }
        for (system, message) in tripped {
            for step in plan
                .operations
                .iter_mut()
                .filter(|s| s.action == Action::Delete && s.system == system)
            {
                step.withheld = true;
            }
            plan.gates.push(Gate {
                gate: DELETE_THRESHOLD.into(),
                system,
                message,
            });
        }
    }
    plan.recount();
}

/// Holds back the creates that would take a system past its capacity
/// (`stubs_held` now plus the creates). Deletes are not counted as room:
/// an apply may run a system's creates before its deletes, so the room they
/// make serves the next run. The last creates of the plan's order are the
/// ones held back.
pub fn apply_capacity(
    plan: &mut Plan,
    stubs_held: &BTreeMap<String, u64>,
    capacity: &BTreeMap<String, Capacity>,
) {
    for (system, limit) in capacity {
        let creates = plan
            .operations
            .iter()
            .filter(|s| s.system == *system && s.action == Action::Create && !s.withheld)
            .count() as u64;
        let held = stubs_held.get(system).copied().unwrap_or(0);
        let after = held + creates;
        if after <= limit.stubs {
            continue;
        }
        let excess = (after - limit.stubs).min(creates);
        let mut left = excess;
        for step in plan
            .operations
            .iter_mut()
            .rev()
            .filter(|s| s.system == *system && s.action == Action::Create && !s.withheld)
        {
            if left == 0 {
                break;
            }
            step.withheld = true;
            left -= 1;
        }
        plan.gates.push(Gate {
            gate: CAPACITY.into(),
            system: system.clone(),
            message: format!(
                "{source}; with this plan's creates coexist would hold {after} stubs on {system}, so {excess} creates are held back and those recipients are missing from {system}'s address book (deletes planned now make room for them on the next run). List fewer recipients there (for example stub_style = \"none\" for another system's people) or remove other contacts",
                source = limit.source
            ),
        });
    }
    plan.recount();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{PlannedOperation, Reconciliation};
    use coexist_connector::{Operation, RecipientKind, Route, Stub};

    fn plan_with(deletes: usize, creates: usize) -> Plan {
        let stub = |n: usize| Stub {
            anchor: format!("google:{n}"),
            kind: RecipientKind::Person,
            primary_address: format!("u{n}@acmecorp.com"),
            aliases: vec![],
            route: Route::DomainRouting,
            attributes: Default::default(),
        };
        let mut operations = Vec::new();
        for n in 0..creates {
            operations.push(PlannedOperation {
                system: "google".into(),
                operation: Box::new(Operation::Create { stub: stub(n) }),
                reason: crate::reconcile::Reason::HomedElsewhere,
            });
        }
        for n in 0..deletes {
            operations.push(PlannedOperation {
                system: "ldap".into(),
                operation: Box::new(Operation::Delete {
                    id: format!("d{n}"),
                    locator: String::new(),
                    stub: stub(n),
                }),
                reason: crate::reconcile::Reason::HomedElsewhere,
            });
        }
        Plan::new(
            &Reconciliation {
                operations,
                ..Default::default()
            },
            "fp",
            String::new(),
        )
        .unwrap()
    }

    fn complete() -> BTreeMap<String, SourceHealth> {
        [
            ("google".to_string(), SourceHealth::Complete),
            ("ldap".to_string(), SourceHealth::Complete),
        ]
        .into()
    }

    #[test]
    fn a_normal_run_passes_every_gate() {
        let mut plan = plan_with(3, 5);
        apply_gates(
            &mut plan,
            &Safety::default(),
            &complete(),
            &[("ldap".to_string(), 100)].into(),
            false,
        );
        assert!(plan.gates.is_empty());
        assert_eq!(plan.summary.withheld, 0);
    }

    #[test]
    fn more_deletes_than_the_absolute_limit_are_withheld() {
        let mut plan = plan_with(501, 5);
        apply_gates(
            &mut plan,
            &Safety::default(),
            &complete(),
            &[("ldap".to_string(), 100_000)].into(),
            false,
        );
        assert_eq!(plan.summary.withheld, 501);
        assert_eq!(plan.summary.create, 5, "creates still go ahead");
        assert_eq!(plan.gates[0].gate, "delete_threshold");
        assert!(plan.gates[0]
            .message
            .contains("501 deletes planned on ldap, more than the limit of 500"));
    }

    #[test]
    fn more_than_the_share_of_a_systems_stubs_is_withheld_unless_allowed() {
        let mut plan = plan_with(30, 0);
        apply_gates(
            &mut plan,
            &Safety::default(),
            &complete(),
            &[("ldap".to_string(), 100)].into(),
            false,
        );
        assert_eq!(plan.summary.withheld, 30);
        assert!(
            plan.gates[0].message.contains("30% of its 100 stubs"),
            "{}",
            plan.gates[0].message
        );

        let mut plan = plan_with(30, 0);
        apply_gates(
            &mut plan,
            &Safety::default(),
            &complete(),
            &[("ldap".to_string(), 100)].into(),
            true,
        );
        assert_eq!(plan.summary.withheld, 0);
        assert_eq!(plan.summary.delete, 30);
    }

    #[test]
    fn small_numbers_of_deletes_ignore_the_percentage() {
        let mut plan = plan_with(3, 0);
        apply_gates(
            &mut plan,
            &Safety::default(),
            &complete(),
            &[("ldap".to_string(), 5)].into(),
            false,
        );
        assert_eq!(plan.summary.withheld, 0);
    }

    fn google_holds(stubs: u64) -> BTreeMap<String, Capacity> {
        [(
            "google".to_string(),
            Capacity {
                stubs,
                source: "Google allows at most 10 shared contacts here".into(),
            },
        )]
        .into()
    }

    #[test]
    fn creates_past_a_systems_capacity_are_withheld_and_the_rest_go_ahead() {
        let mut plan = plan_with(0, 8);
        apply_capacity(
            &mut plan,
            &[("google".to_string(), 5)].into(),
            &google_holds(10),
        );
        assert_eq!((plan.summary.create, plan.summary.withheld), (5, 3));
        // The last creates of the plan are the ones held back.
        let withheld: Vec<bool> = plan.operations.iter().map(|s| s.withheld).collect();
        assert_eq!(
            withheld,
            [false, false, false, false, false, true, true, true]
        );
        assert_eq!(plan.gates[0].gate, "capacity");
        assert!(
            plan.gates[0].message.starts_with(
                "Google allows at most 10 shared contacts here; with this plan's creates coexist would hold 13 stubs on google, so 3 creates are held back"
            ),
            "{}",
            plan.gates[0].message
        );
    }

    #[test]
    fn a_plan_within_capacity_trips_nothing() {
        let mut plan = plan_with(0, 5);
        apply_capacity(
            &mut plan,
            &[("google".to_string(), 5)].into(),
            &google_holds(10),
        );
        assert!(plan.gates.is_empty());
        assert_eq!(plan.summary.withheld, 0);
        // Systems without a known capacity are never held back.
        let mut plan = plan_with(0, 5);
        apply_capacity(
            &mut plan,
            &[("google".to_string(), 500)].into(),
            &BTreeMap::new(),
        );
        assert_eq!(plan.summary.withheld, 0);
    }

    #[test]
    fn a_system_already_over_capacity_gets_no_creates_at_all() {
        let mut plan = plan_with(0, 4);
        apply_capacity(
            &mut plan,
            &[("google".to_string(), 12)].into(),
            &google_holds(10),
        );
        assert_eq!((plan.summary.create, plan.summary.withheld), (0, 4));
    }

    #[test]
    fn a_system_that_could_not_be_read_is_sent_none_of_its_operations() {
        // 2 deletes on ldap, 4 creates on google.
        for (failed, withheld, sent) in [("ldap", 2, 4), ("google", 6, 0)] {
            let mut health = complete();
            health.insert(failed.into(), SourceHealth::Failed("bind refused".into()));
            let mut plan = plan_with(2, 4);
            apply_gates(
                &mut plan,
                &Safety::default(),
                &health,
                &[("ldap".to_string(), 900)].into(),
                true,
            );
            assert_eq!(
                (plan.summary.withheld, plan.summary.create),
                (withheld, sent),
                "{failed}"
            );
            let gates: Vec<(&str, &str)> = plan
                .gates
                .iter()
                .map(|g| (g.gate.as_str(), g.system.as_str()))
                .collect();
            assert_eq!(
                gates,
                [(INCOMPLETE_SOURCE, "*"), (UNREADABLE_SOURCE, failed)]
            );
            assert!(
                plan.gates[1]
                    .message
                    .starts_with(&format!("{failed} could not be read (bind refused)")),
                "{}",
                plan.gates[1].message
            );
        }
    }

    #[test]
    fn a_read_shrank_when_it_misses_more_than_the_share_and_the_minimum() {
        let safety = Safety::default();
        assert!(shrank(&safety, 896, 895), "896 to 1");
        assert!(shrank(&safety, 100, 51));
        assert!(!shrank(&safety, 40, 20), "half is not more than half");
        assert!(!shrank(&safety, 8, 8), "ten or fewer missing never count");
        assert!(!shrank(&safety, 0, 0));
    }

    #[test]
    fn a_shrunk_source_holds_every_delete_and_says_how_to_accept_it() {
        let mut health = complete();
        health.insert(
            "google".into(),
            SourceHealth::Shrunk(Shrink {
                listed: 1,
                known: 896,
                missing: 895,
                held_before: 0,
                routed: 896,
            }),
        );
        let mut plan = plan_with(2, 4);
        apply_gates(
            &mut plan,
            &Safety::default(),
            &health,
            &[("ldap".to_string(), 900)].into(),
            true,
        );
        assert_eq!((plan.summary.withheld, plan.summary.create), (2, 4));
        assert_eq!(
            (plan.gates[0].gate.as_str(), plan.gates[0].system.as_str()),
            (SOURCE_SHRUNK, "google")
        );
        assert_eq!(
            plan.gates[0].message,
            "google lists 1 recipient, but 896 are known for it (896 with coexist stubs on other systems routing to it): 895 (100%) are missing, more than safety.max_shrink_percent (50%). The read is not believed: what google held stays staged and no stub is deleted anywhere in this run. Check its connection (base, filter, read rights) and run again; if google really lost them, run `coexist sync --accept-shrink google` (deletes above the delete threshold still need --allow-deletes)"
        );
    }

    #[test]
    fn an_incomplete_or_empty_source_holds_every_delete_even_when_allowed() {
        for bad in [
            SourceHealth::Incomplete("page 3 failed".into()),
            SourceHealth::SuddenlyEmpty {
                before: 900,
                routed: 0,
            },
        ] {
            let mut health = complete();
            health.insert("google".into(), bad);
            let mut plan = plan_with(2, 4);
            apply_gates(
                &mut plan,
                &Safety::default(),
                &health,
                &[("ldap".to_string(), 900)].into(),
                true,
            );
            assert_eq!(plan.summary.withheld, 2);
            assert_eq!(plan.summary.create, 4);
            assert_eq!(plan.gates[0].gate, "incomplete_source");
            assert!(plan.gates[0]
                .message
                .contains("no stub is deleted anywhere"));
        }
    }
}
