//! The plan document: what `coexist plan --output json` prints and
//! `coexist apply FILE` reads.
//!
//! ```json
//! { "id": "…", "fingerprint": "…", "created_at": "…",
//!   "operations": [ { "seq": 0, "system": "ldap", "action": "create", "kind": "person",
//!                     "address": "ann@acmecorp.com", "target": "ann@gapps.acmecorp.com",
//!                     "reason": "…", "operation": { … } } ],
//!   "conflicts": [ … ], "notices": [ … ], "gates": [ … ],
//!   "summary": { "create": 1, "update": 0, "delete": 0, "withheld": 0, "conflicts": 0,
//!                "gal": 1000, "by_system": { "ldap": { "create": 1, … } } } }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use coexist_connector::{Operation, RecipientKind};

use crate::reconcile::{Conflict, ConflictKind, Notice, Reconciliation};

/// The plan format this version writes: 2 digests the policy through its
/// stable encoding (1: through its `Debug` text, before 2026-12).
pub const FORMAT: u32 = 2;

fn format_one() -> u32 {
    1
}

/// The fingerprint of a plan made from the staged state `staged` (the
/// store's fingerprint) under `policy`: a saved plan applies only while
/// both are as they were.
pub fn fingerprint(staged: &str, policy: &crate::reconcile::Policy) -> String {
    let digest = sha2::Sha256::digest(policy.stable_encoding().as_bytes());
    format!("{staged}-p{}", hex::encode(&digest[..6]))
}

pub mod legacy {
    //! The policy digest of plan format 1, kept so plans saved before the
    //! stable encoding still apply: the `Debug` text of the policy as those
    //! versions defined it (these mirror types print exactly that).
    #![allow(dead_code)] // the fields exist only to be printed by Debug

    use std::collections::BTreeMap;

    use sha2::Digest;

    use crate::reconcile::{self, StubStyle as Style, UnknownRecipient as Unknown};

    #[derive(Debug)]
    enum StubStyle {
        RoutingAddress,
        SmartHost,
        DomainRouting,
        None,
    }

    #[derive(Debug)]
    enum UnknownRecipient {
        Reject,
        Relay(String),
    }

    #[derive(Debug)]
    struct SystemPolicy {
        id: String,
        routing_domain: Option<String>,
        smart_host: Option<String>,
        stub_style: StubStyle,
        unknown_recipient: UnknownRecipient,
    }

    #[derive(Debug)]
    struct HomeAttribute {
        system: String,
        attribute: String,
        values: BTreeMap<String, String>,
    }

    #[derive(Debug)]
    struct Policy {
        shared_domains: Vec<String>,
        systems: Vec<SystemPolicy>,
        home_attribute: Option<HomeAttribute>,
        precedence: Vec<String>,
        precedence_by_attribute: BTreeMap<String, Vec<String>>,
        include_disabled: bool,
        mx: Option<String>,
    }

    /// The format-1 fingerprint of `staged` under `policy`.
    pub fn fingerprint(staged: &str, policy: &reconcile::Policy) -> String {
        let then = Policy {
            shared_domains: policy.shared_domains.clone(),
            systems: policy
                .systems
                .iter()
                .map(|s| SystemPolicy {
                    id: s.id.clone(),
                    routing_domain: s.routing_domain.clone(),
                    smart_host: s.smart_host.clone(),
                    stub_style: match s.stub_style {
                        Style::RoutingAddress => StubStyle::RoutingAddress,
                        Style::SmartHost => StubStyle::SmartHost,
                        Style::DomainRouting => StubStyle::DomainRouting,
                        Style::None => StubStyle::None,
                        // Styles that came after format 1, which no format-1
                        // plan was made under: they count as `none` in this
                        // digest.
                        Style::MailContact | Style::MailboxContacts => StubStyle::None,
                    },
                    unknown_recipient: match &s.unknown_recipient {
                        Unknown::Reject => UnknownRecipient::Reject,
                        Unknown::Relay(to) => UnknownRecipient::Relay(to.clone()),
                    },
                })
                .collect(),
            home_attribute: policy.home_attribute.as_ref().map(|h| HomeAttribute {
                system: h.system.clone(),
                attribute: h.attribute.clone(),
                values: h.values.clone(),
            }),
            precedence: policy.precedence.clone(),
            precedence_by_attribute: policy.precedence_by_attribute.clone(),
            include_disabled: policy.include_disabled,
            mx: policy.mx.clone(),
        };
        let digest = sha2::Sha256::digest(format!("{then:?}").as_bytes());
        format!("{staged}-{}", hex::encode(&digest[..6]))
    }
}

/// One operation of a plan, flattened for people and scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    /// Its position in the plan (the journal's key).
    pub seq: i64,
    pub system: String,
    /// `create`, `update` or `delete` (the operation's own action).
    pub action: Action,
    pub kind: RecipientKind,
    /// The recipient's primary address.
    pub address: String,
    /// Where the stub routes, when it names a place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub reason: String,
    /// `true` when a safety gate holds this operation back.
    #[serde(default)]
    pub withheld: bool,
    /// The operation itself, as the connector receives it.
    pub operation: Operation,
}

/// What a plan step does to a stub. Written `create`, `update` or
/// `delete`; a plan naming anything else is not a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    /// The action of `operation`.
    pub fn of(operation: &Operation) -> Action {
        match operation {
            Operation::Create { .. } => Action::Create,
            Operation::Update { .. } => Action::Update,
            Operation::Delete { .. } => Action::Delete,
        }
    }

    /// `create`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }

    /// The action written `word`, if it is one.
    pub fn parse(word: &str) -> Option<Action> {
        match word {
            "create" => Some(Action::Create),
            "update" => Some(Action::Update),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so widths and alignment (`{:<6}`) apply.
        f.pad(self.as_str())
    }
}

/// A safety gate that tripped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    /// `incomplete_source`, `unreadable_source`, `source_shrunk`,
    /// `delete_threshold` or `capacity`.
    pub gate: String,
    /// The system it concerns (`*` for all). `incomplete_source` and
    /// `source_shrunk` hold back the deletes of every system;
    /// `unreadable_source` every operation of its system; the others the
    /// operations of their system they name.
    pub system: String,
    /// What happened and what to do, in words.
    pub message: String,
}

/// Counts per action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub create: u64,
    pub update: u64,
    pub delete: u64,
}

impl Counts {
    fn add(&mut self, action: Action) {
        match action {
            Action::Create => self.create += 1,
            Action::Update => self.update += 1,
            Action::Delete => self.delete += 1,
        }
    }

    /// All operations counted.
    pub fn total(&self) -> u64 {
        self.create + self.update + self.delete
    }
}

/// The summary block of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: u64,
    pub update: u64,
    pub delete: u64,
    pub withheld: u64,
    pub conflicts: u64,
    /// GAL entries.
    pub gal: u64,
    /// Recipients left out because their account is disabled.
    pub disabled: u64,
    pub by_system: BTreeMap<String, Counts>,
    /// The stubs each system should hold once the plan is applied.
    pub desired_stubs: BTreeMap<String, u64>,
}

/// A plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The version of this document's format ([`FORMAT`]); a plan saved by
    /// a version that wrote none is format 1. A newer format than this
    /// version reads is refused, saying so.
    #[serde(default = "format_one")]
    pub format: u32,
    /// Derived from the fingerprint and the operations: the same plan always
    /// has the same id, so applying it twice resumes its journal.
    pub id: String,
    /// The staged state the plan was computed from.
    pub fingerprint: String,
    pub created_at: String,
    pub operations: Vec<PlanStep>,
    pub conflicts: Vec<Conflict>,
    pub notices: Vec<Notice>,
    pub gates: Vec<Gate>,
    pub summary: Summary,
}

impl Plan {
    /// Builds the plan of a reconciliation. Fails only if an operation
    /// cannot be encoded for the plan's id.
    pub fn new(
        reconciliation: &Reconciliation,
        fingerprint: &str,
        created_at: String,
    ) -> Result<Plan, serde_json::Error> {
        let operations: Vec<PlanStep> = reconciliation
            .operations
            .iter()
            .enumerate()
            .map(|(seq, planned)| {
                let stub = planned.operation.stub();
                PlanStep {
                    seq: seq as i64,
                    system: planned.system.clone(),
                    action: Action::of(&planned.operation),
                    kind: stub.kind,
                    address: stub.primary_address.clone(),
                    target: stub.route.target().map(str::to_string),
                    reason: planned.describe(),
                    withheld: false,
                    operation: (*planned.operation).clone(),
                }
            })
            .collect();
        let mut hasher = sha2::Sha256::new();
        hasher.update(fingerprint.as_bytes());
        for step in &operations {
            hasher.update(serde_json::to_vec(&step.operation)?);
            hasher.update(step.system.as_bytes());
        }
        let id = hex::encode(&hasher.finalize()[..10]);
        let mut plan = Plan {
            format: FORMAT,
            id,
            fingerprint: fingerprint.to_string(),
            created_at,
            operations,
            conflicts: reconciliation.conflicts.clone(),
            notices: reconciliation.notices.clone(),
            gates: Vec::new(),
            summary: Summary::default(),
        };
        plan.summary.gal = reconciliation.gal.len() as u64;
        plan.summary.disabled = reconciliation.disabled as u64;
        plan.summary.desired_stubs = reconciliation
            .desired_stubs
            .iter()
            .map(|(k, v)| (k.clone(), *v as u64))
            .collect();
        plan.recount();
        Ok(plan)
    }

    /// Recomputes the summary counts after gates changed.
    pub fn recount(&mut self) {
        let mut by_system: BTreeMap<String, Counts> = BTreeMap::new();
        let (mut create, mut update, mut delete, mut withheld) = (0, 0, 0, 0);
        for step in &self.operations {
            if step.withheld {
                withheld += 1;
                continue;
            }
            by_system
                .entry(step.system.clone())
                .or_default()
                .add(step.action);
            match step.action {
                Action::Create => create += 1,
                Action::Update => update += 1,
                Action::Delete => delete += 1,
            }
        }
        self.summary.create = create;
        self.summary.update = update;
        self.summary.delete = delete;
        self.summary.withheld = withheld;
        self.summary.conflicts = self.conflicts.len() as u64;
        self.summary.by_system = by_system;
    }

    /// Whether mail loops somewhere (a `routing_loop` conflict).
    pub fn has_routing_loop(&self) -> bool {
        self.conflicts
            .iter()
            .any(|c| c.kind == ConflictKind::RoutingLoop)
    }

    /// The systems that could not be read when the plan was made (its
    /// `unreadable_source` gates).
    pub fn unreadable(&self) -> impl Iterator<Item = &str> {
        self.gates
            .iter()
            .filter(|g| g.gate == crate::engine::gates::UNREADABLE_SOURCE)
            .map(|g| g.system.as_str())
    }

    /// The operations that will run (not withheld).
    pub fn runnable(&self) -> impl Iterator<Item = &PlanStep> {
        self.operations.iter().filter(|s| !s.withheld)
    }
}
