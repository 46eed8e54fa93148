//! The safety gates: pure checks that hold back operations before they run.
//!
//! * **incomplete source** — a system whose pull failed part-way, or that
//!   suddenly returned nothing though it held recipients before, causes no
//!   deletes anywhere in this run (its recipients would look gone).
//! * **delete threshold** — more deletes in one system than the absolute
//!   limit, or than the configured share of its stubs, are held back unless
//!   the run explicitly allows them (`--allow-deletes`).
//! * **capacity** — creates that would take a system past the most stubs it
//!   can hold (Google: 200,000 shared contacts a domain) are held back,
//!   rather than failing one by one at the system on every run.

use std::collections::BTreeMap;

use coexist_connector::Capacity;

use crate::config::Safety;
use crate::plan::{Gate, Plan};

/// The health of one system's pull in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceHealth {
    /// Read completely.
    Complete,
    /// The read stopped part-way.
    Incomplete(String),
    /// The read returned nothing although the system held `before` recipients.
    SuddenlyEmpty { before: i64 },
    /// The system could not be read at all.
    Failed(String),
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
        for step in plan.operations.iter_mut().filter(|s| s.action == "delete") {
            step.withheld = true;
        }
        for (system, h) in unhealthy {
            let why = match h {
                SourceHealth::Incomplete(why) => {
                    format!("the read of {system} stopped part-way ({why})")
                }
                SourceHealth::SuddenlyEmpty { before } => format!(
                    "{system} suddenly lists no recipients although it held {before} at its last good read, so what it held is kept as staged"
                ),
                SourceHealth::Failed(why) => format!("{system} could not be read ({why})"),
                SourceHealth::Complete => continue,
            };
            plan.gates.push(Gate {
                gate: "incomplete_source".into(),
                system: "*".into(),
                message: format!(
                    "{why}; no stub is deleted anywhere in this run. Fix the source and run again"
                ),
            });
        }
    }

    if !allow_deletes {
        let mut deletes: BTreeMap<&str, u64> = BTreeMap::new();
        for step in plan
            .operations
            .iter()
            .filter(|s| s.action == "delete" && !s.withheld)
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
                .filter(|s| s.action == "delete" && s.system == system)
            {
                step.withheld = true;
            }
            plan.gates.push(Gate {
                gate: "delete_threshold".into(),
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
            .filter(|s| s.system == *system && s.action == "create" && !s.withheld)
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
            .filter(|s| s.system == *system && s.action == "create" && !s.withheld)
        {
            if left == 0 {
                break;
            }
            step.withheld = true;
            left -= 1;
        }
        plan.gates.push(Gate {
            gate: "capacity".into(),
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
    fn an_incomplete_or_empty_source_holds_every_delete_even_when_allowed() {
        for bad in [
            SourceHealth::Incomplete("page 3 failed".into()),
            SourceHealth::SuddenlyEmpty { before: 900 },
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
