//! The reconciler's specification, by example and by property.

use std::collections::BTreeMap;

use proptest::prelude::*;

use coexist_model::{Attributes, FoundStub, Operation, Recipient, RecipientKind, Route};

use super::*;

fn system(id: &str, rd: &str, style: StubStyle, unknown: UnknownRecipient) -> SystemPolicy {
    SystemPolicy {
        id: id.into(),
        routing_domain: Some(rd.into()),
        smart_host: Some(format!("mx.{rd}")),
        stub_style: style,
        unknown_recipient: unknown,
        disabled_mailboxes: DisabledMailboxes::Deliver,
        routing_domain_is_alias: true,
    }
}

/// acmecorp of the seeds: Google (MX, catch-all to the LDAP mail server)
/// and an LDAP mail server with "forward to alternate domain" entries.
fn acmecorp() -> Policy {
    Policy {
        shared_domains: vec!["acmecorp.com".into()],
        systems: vec![
            system(
                "google",
                "gapps.acmecorp.com",
                StubStyle::DomainRouting,
                UnknownRecipient::Relay("ldap".into()),
            ),
            system(
                "ldap",
                "mithi.acmecorp.com",
                StubStyle::RoutingAddress,
                UnknownRecipient::Reject,
            ),
        ],
        home_attribute: None,
        precedence: vec![],
        precedence_by_attribute: BTreeMap::new(),
        include_disabled: false,
        mx: Some("google".into()),
    }
}

fn person(anchor: &str, address: &str) -> Recipient {
    Recipient {
        attributes: Attributes {
            display_name: Some(address.split('@').next().unwrap_or_default().into()),
            ..Default::default()
        },
        ..Recipient::mailbox(anchor, RecipientKind::Person, address)
    }
}

fn staged(google: Vec<Recipient>, ldap: Vec<Recipient>) -> Staged {
    Staged {
        systems: vec![
            StagedSystem {
                id: "google".into(),
                recipients: google,
                stubs: vec![],
            },
            StagedSystem {
                id: "ldap".into(),
                recipients: ldap,
                stubs: vec![],
            },
        ],
        placements: BTreeMap::new(),
    }
}

/// Applies a plan to the staged state the way a connector would.
fn apply(staged: &mut Staged, operations: &[PlannedOperation]) {
    for (n, planned) in operations.iter().enumerate() {
        let Some(system) = staged.systems.iter_mut().find(|s| s.id == planned.system) else {
            continue;
        };
        match &*planned.operation {
            Operation::Create { stub } => system.stubs.push(FoundStub {
                id: format!("new-{n}-{}", stub.anchor),
                locator: format!("loc-{n}"),
                misplaced: false,
                stub: stub.clone(),
            }),
            Operation::Update { id, after, .. } => {
                if let Some(f) = system.stubs.iter_mut().find(|f| &f.id == id) {
                    f.stub = (**after).clone();
                    f.misplaced = false;
                }
            }
            Operation::Delete { id, .. } => system.stubs.retain(|f| &f.id != id),
        }
    }
}

fn ops_on<'a>(r: &'a Reconciliation, system: &str) -> Vec<&'a PlannedOperation> {
    r.operations.iter().filter(|o| o.system == system).collect()
}

#[test]
fn each_system_gets_a_stub_for_every_recipient_homed_elsewhere() {
    let state = staged(
        vec![person("g1", "ann@acmecorp.com")],
        vec![person("l1", "bob@acmecorp.com")],
    );
    let r = reconcile(&state, &acmecorp());

    assert_eq!(r.gal.len(), 2);
    assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);
    let ldap = ops_on(&r, "ldap");
    assert_eq!(ldap.len(), 1);
    let stub = ldap[0].operation.stub();
    assert_eq!(stub.primary_address, "ann@acmecorp.com");
    assert_eq!(stub.route, Route::Address("ann@gapps.acmecorp.com".into()));
    assert_eq!(stub.anchor, "google:g1");

    let google = ops_on(&r, "google");
    assert_eq!(google.len(), 1);
    assert_eq!(
        google[0].operation.stub().primary_address,
        "bob@acmecorp.com"
    );
    assert_eq!(google[0].operation.stub().route, Route::DomainRouting);
}

#[test]
fn planning_again_after_applying_changes_nothing() {
    let mut state = staged(
        vec![person("g1", "ann@acmecorp.com")],
        vec![person("l1", "bob@acmecorp.com")],
    );
    let first = reconcile(&state, &acmecorp());
    apply(&mut state, &first.operations);
    let second = reconcile(&state, &acmecorp());
    assert!(second.operations.is_empty(), "{:?}", second.operations);
}

#[test]
fn values_are_kept_as_directories_store_them_without_spaces_around() {
    let mut ann = person("g1", "ann@acmecorp.com");
    ann.attributes.display_name = Some("  Ann Archer\t".into());
    ann.attributes.title = Some(" ".into());
    let mut bob = person("l1", "bob@acmecorp.com");
    bob.aliases = vec!["ann.extra@acmecorp.com".into()];
    let mut bob_google = person("g2", "bob@acmecorp.com");
    bob_google.mailbox = false;
    bob_google.attributes.department = Some(" Sales ".into());
    let r = reconcile(&staged(vec![ann, bob_google], vec![bob]), &acmecorp());
    let stub = ops_on(&r, "ldap")[0].operation.stub().clone();
    assert_eq!(stub.attributes.display_name.as_deref(), Some("Ann Archer"));
    assert_eq!(stub.attributes.title, None);
    let bob_entry = r
        .gal
        .iter()
        .find(|e| e.primary_address == "bob@acmecorp.com")
        .unwrap();
    assert_eq!(bob_entry.attributes.department.as_deref(), Some("Sales"));
}

#[test]
fn a_stub_found_outside_the_stub_base_is_moved_there_never_doubled() {
    let mut state = staged(
        vec![person("g1", "ann@acmecorp.com")],
        vec![person("l1", "bob@acmecorp.com")],
    );
    let first = reconcile(&state, &acmecorp());
    apply(&mut state, &first.operations);
    // The stub base changed: the connector finds ann's stub in the old place.
    let ldap = state.systems.iter_mut().find(|s| s.id == "ldap").unwrap();
    ldap.stubs[0].misplaced = true;
    let moved = reconcile(&state, &acmecorp());
    let ops = ops_on(&moved, "ldap");
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0].reason, Reason::Misplaced);
    assert!(
        matches!(&*ops[0].operation, Operation::Update { .. }),
        "{ops:?}"
    );
    assert!(ops[0].describe().contains("outside the stub base"));
    apply(&mut state, &moved.operations);
    assert!(reconcile(&state, &acmecorp()).operations.is_empty());
}

#[test]
fn of_two_stubs_for_one_recipient_the_one_outside_the_stub_base_goes() {
    let mut state = staged(
        vec![person("g1", "ann@acmecorp.com")],
        vec![person("l1", "bob@acmecorp.com")],
    );
    let first = reconcile(&state, &acmecorp());
    apply(&mut state, &first.operations);
    let ldap = state.systems.iter_mut().find(|s| s.id == "ldap").unwrap();
    let mut old = ldap.stubs[0].clone();
    old.id = "old".into();
    old.misplaced = true;
    ldap.stubs.insert(0, old);
    let r = reconcile(&state, &acmecorp());
    let ops = ops_on(&r, "ldap");
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert!(
        matches!(&*ops[0].operation, Operation::Delete { id, .. } if id == "old"),
        "{ops:?}"
    );
}

#[test]
fn addresses_join_across_case_and_unicode_spelling() {
    let mut directory_copy = person("l1", "ANN@AcmeCorp.com");
    directory_copy.mailbox = false; // a directory entry of a Google mailbox
    directory_copy.attributes.title = Some("CFO".into());
    let state = staged(vec![person("g1", "ann@acmecorp.com")], vec![directory_copy]);
    let r = reconcile(&state, &acmecorp());
    assert_eq!(r.gal.len(), 1);
    assert_eq!(r.gal[0].home, "google");
    assert_eq!(r.gal[0].attributes.title.as_deref(), Some("CFO"));
    assert_eq!(r.gal[0].systems, ["google", "ldap"]);
    // ldap holds its own entry for ann: coexist writes no stub beside it.
    assert!(ops_on(&r, "ldap").is_empty());
    assert!(r.notices.iter().any(|n| n.message.contains("did not make")));

    let unicode = Policy {
        shared_domains: vec!["xn--exmple-cua.com".into()],
        ..acmecorp()
    };
    let a = staged(vec![person("g1", "émile@exämple.com")], vec![]);
    let r = reconcile(&a, &unicode);
    assert_eq!(r.gal[0].primary_address, "émile@xn--exmple-cua.com");
}

#[test]
fn a_mailbox_in_two_systems_is_a_conflict_and_gets_no_stubs() {
    let state = staged(
        vec![
            person("g1", "ann@acmecorp.com"),
            person("g2", "cat@acmecorp.com"),
        ],
        vec![person("l1", "ann@acmecorp.com")],
    );
    let r = reconcile(&state, &acmecorp());
    assert_eq!(r.conflicts.len(), 1);
    assert_eq!(r.conflicts[0].kind, ConflictKind::MailboxInTwoSystems);
    assert!(r.conflicts[0]
        .message
        .contains("ann@acmecorp.com has a mailbox on both google and ldap"));
    assert!(r
        .operations
        .iter()
        .all(|o| o.operation.stub().primary_address != "ann@acmecorp.com"));
    assert_eq!(ops_on(&r, "ldap").len(), 1, "cat still gets her stub");
}

#[test]
fn an_address_claimed_by_two_recipients_is_a_conflict() {
    let mut ann = person("g1", "ann@acmecorp.com");
    ann.aliases = vec!["sales@acmecorp.com".into()];
    let mut bob = person("l1", "bob@acmecorp.com");
    bob.aliases = vec!["Sales@acmecorp.com".into()];
    let r = reconcile(&staged(vec![ann], vec![bob]), &acmecorp());
    assert_eq!(r.conflicts.len(), 1);
    assert_eq!(r.conflicts[0].kind, ConflictKind::AddressClaimedTwice);
    assert!(
        r.conflicts[0]
            .message
            .starts_with("sales@acmecorp.com is claimed by two recipients"),
        "{}",
        r.conflicts[0].message
    );
    assert!(
        r.conflicts[0]
            .message
            .contains("ann@acmecorp.com on google and bob@acmecorp.com on ldap"),
        "{}",
        r.conflicts[0].message
    );
    assert!(r.operations.is_empty());

    let twice_in_one = staged(
        vec![
            person("g1", "x@acmecorp.com"),
            person("g2", "X@acmecorp.com"),
        ],
        vec![],
    );
    let r = reconcile(&twice_in_one, &acmecorp());
    assert_eq!(r.conflicts[0].kind, ConflictKind::AddressClaimedTwice);
    assert!(r.operations.is_empty());
}

#[test]
fn a_mailbox_in_two_systems_is_named_by_the_address_both_mailboxes_hold() {
    // As in the trial: one person, a mailbox on both sides under the
    // same primary; qmail's also answers at an address only it has, which
    // sorts first ('.' before '@').
    let mut qmail = person("l1", "ravi.kumar@acmecorp.com");
    qmail.aliases = vec!["ravi.kumar.q@acmecorp.com".into()];
    let state = staged(vec![person("g1", "ravi.kumar@acmecorp.com")], vec![qmail]);
    let r = reconcile(&state, &acmecorp());
    assert_eq!(r.conflicts.len(), 1, "{:?}", r.conflicts);
    let conflict = &r.conflicts[0];
    assert_eq!(conflict.kind, ConflictKind::MailboxInTwoSystems);
    assert!(
        conflict
            .message
            .starts_with("ravi.kumar@acmecorp.com has a mailbox on both google and ldap"),
        "{}",
        conflict.message
    );
    assert!(
        !conflict.message.contains("ravi.kumar.q@"),
        "an address only ldap has is not on both: {}",
        conflict.message
    );
    assert!(
        conflict.message.contains("remove one") && conflict.message.contains("placement"),
        "the sentence says how to settle it: {}",
        conflict.message
    );
    assert!(
        conflict
            .addresses
            .contains(&"ravi.kumar.q@acmecorp.com".to_string()),
        "every address of the recipient is held"
    );
}

#[test]
fn a_mailbox_in_two_systems_with_several_shared_addresses_names_the_primary_and_counts_the_rest() {
    let mut google = person("g1", "ann@acmecorp.com");
    google.aliases = vec!["a.smith@acmecorp.com".into(), "sales@acmecorp.com".into()];
    let mut ldap = person("l1", "ann@acmecorp.com");
    ldap.aliases = vec![
        "a.smith@acmecorp.com".into(),
        "sales@acmecorp.com".into(),
        "ann.ldap@acmecorp.com".into(),
    ];
    let r = reconcile(&staged(vec![google], vec![ldap]), &acmecorp());
    assert_eq!(r.conflicts.len(), 1, "{:?}", r.conflicts);
    assert_eq!(r.conflicts[0].kind, ConflictKind::MailboxInTwoSystems);
    assert!(
        r.conflicts[0].message.starts_with(
            "ann@acmecorp.com (and 2 more shared addresses) has a mailbox on both google and ldap;"
        ),
        "{}",
        r.conflicts[0].message
    );
    assert!(!r.conflicts[0].message.contains("ann.ldap@"));
}

#[test]
fn a_mailbox_in_three_systems_names_all_three() {
    let state = three_staged(
        vec![person("g1", "ann@acmecorp.com")],
        vec![person("l1", "ann@acmecorp.com")],
        vec![person("m1", "ann@acmecorp.com")],
    );
    let r = reconcile(&state, &three_systems());
    assert_eq!(r.conflicts.len(), 1, "{:?}", r.conflicts);
    assert!(
        r.conflicts[0]
            .message
            .starts_with("ann@acmecorp.com has a mailbox on google, ldap and m365;"),
        "{}",
        r.conflicts[0].message
    );
}

#[test]
fn two_mailboxes_with_their_own_primaries_and_one_shared_alias_are_named_by_the_shared_alias() {
    // Each side has its own primary; they share one alias, which joins them.
    let mut google = person("g1", "ravi.kumar.g@acmecorp.com");
    google.aliases = vec!["ravi.kumar@acmecorp.com".into()];
    let mut qmail = person("l1", "ravi.kumar.q@acmecorp.com");
    qmail.aliases = vec!["Ravi.Kumar@acmecorp.com".into()];
    let r = reconcile(&staged(vec![google], vec![qmail]), &acmecorp());
    assert_eq!(r.conflicts.len(), 1, "{:?}", r.conflicts);
    let message = &r.conflicts[0].message;
    assert!(
        message.starts_with("ravi.kumar@acmecorp.com "),
        "the shared address comes first: {message}"
    );
    for own in ["ravi.kumar.g@acmecorp.com", "ravi.kumar.q@acmecorp.com"] {
        assert!(
            !message.starts_with(own) && !message.contains(&format!("{own} has a mailbox on both")),
            "{own} is on one system only: {message}"
        );
    }
    assert!(
        message.contains("ravi.kumar.g@acmecorp.com on google")
            && message.contains("ravi.kumar.q@acmecorp.com on ldap"),
        "each side is named with its system: {message}"
    );
    assert!(
        message.contains("remove the address from all but one"),
        "{message}"
    );
    assert!(r.operations.is_empty());
}

#[test]
fn a_placement_decides_the_home_and_must_agree_with_the_mailbox() {
    // During a move both systems hold a mailbox; the placement decides.
    let mut state = staged(
        vec![person("g1", "ann@acmecorp.com")],
        vec![person("l1", "ann@acmecorp.com")],
    );
    state
        .placements
        .insert("ann@acmecorp.com".into(), "google".into());
    let r = reconcile(&state, &acmecorp());
    assert!(r.conflicts.is_empty());
    assert_eq!(r.gal[0].home, "google");

    // A placement naming a system without the mailbox is a conflict.
    let mut state = staged(vec![], vec![person("l1", "ann@acmecorp.com")]);
    state
        .placements
        .insert("ann@acmecorp.com".into(), "google".into());
    let r = reconcile(&state, &acmecorp());
    assert_eq!(
        r.conflicts[0].kind,
        ConflictKind::PlacementContradictsMailbox
    );
    assert!(
        r.conflicts[0].message.contains("should be homed on google"),
        "{}",
        r.conflicts[0].message
    );
    assert!(r.operations.is_empty());
}

#[test]
fn a_master_directory_attribute_decides_the_home() {
    let mut policy = acmecorp();
    policy.home_attribute = Some(HomeAttribute {
        system: "ldap".into(),
        attribute: "extensionAttribute1".into(),
        values: [("gapps".to_string(), "google".to_string())].into(),
    });
    let mut master = person("l1", "ann@acmecorp.com");
    master.mailbox = false;
    master
        .extra
        .insert("extensionAttribute1".into(), "gapps".into());
    let r = reconcile(
        &staged(vec![person("g1", "ann@acmecorp.com")], vec![master]),
        &policy,
    );
    assert_eq!(r.gal[0].home, "google");
    assert!(r.conflicts.is_empty());
}

#[test]
fn only_changed_attributes_are_updated() {
    let mut state = staged(vec![person("g1", "ann@acmecorp.com")], vec![]);
    let first = reconcile(&state, &acmecorp());
    apply(&mut state, &first.operations);
    state.systems[0].recipients[0].attributes.title = Some("CEO".into());
    let r = reconcile(&state, &acmecorp());
    assert_eq!(r.operations.len(), 1);
    match &*r.operations[0].operation {
        Operation::Update { changed, .. } => {
            assert_eq!(changed, &[coexist_model::StubField::Title])
        }
        other => panic!("expected an update, got {other:?}"),
    }
    assert_eq!(
        r.operations[0].describe(),
        "ann@acmecorp.com changed: title"
    );
}

#[test]
fn stubs_of_recipients_that_left_are_deleted_and_foreign_entries_never_touched() {
    let mut state = staged(vec![person("g1", "ann@acmecorp.com")], vec![]);
    let mut forwarder = person("l9", "old@acmecorp.com");
    forwarder.mailbox = false;
    forwarder.forwards_to = Some("old@elsewhere.example".into());
    state.systems[1].recipients.push(forwarder);
    let first = reconcile(&state, &acmecorp());
    apply(&mut state, &first.operations);

    state.systems[0].recipients.clear();
    let r = reconcile(&state, &acmecorp());
    assert_eq!(r.operations.len(), 1);
    assert_eq!(r.operations[0].operation.action(), "delete");
    assert_eq!(
        r.operations[0].describe(),
        "ann@acmecorp.com is no longer in the GAL"
    );
}

#[test]
fn a_recipient_moved_into_a_system_loses_its_stub_there() {
    let mut state = staged(vec![person("g1", "ann@acmecorp.com")], vec![]);
    let first = reconcile(&state, &acmecorp());
    apply(&mut state, &first.operations);
    // ann moved to ldap.
    let ann = state.systems[0].recipients.remove(0);
    state.systems[1].recipients.push(Recipient {
        anchor: "l7".into(),
        ..ann
    });
    let r = reconcile(&state, &acmecorp());
    let ldap = ops_on(&r, "ldap");
    assert_eq!(ldap.len(), 1);
    assert_eq!(ldap[0].describe(), "ann@acmecorp.com is now homed on ldap");
    assert_eq!(
        ops_on(&r, "google").len(),
        1,
        "google gets a contact for ann"
    );
}

#[test]
fn a_routing_loop_is_a_conflict() {
    let mut policy = acmecorp();
    // A third system, reached by neither stubs nor catch-all: google relays
    // unknown addresses to ldap, and ldap (which takes no stubs) relays them back.
    policy.systems[1].stub_style = StubStyle::None;
    policy.systems[1].unknown_recipient = UnknownRecipient::Relay("google".into());
    policy.systems.push(system(
        "ad",
        "ad.acmecorp.com",
        StubStyle::RoutingAddress,
        UnknownRecipient::Reject,
    ));
    let mut state = staged(vec![person("g1", "ann@acmecorp.com")], vec![]);
    state.systems.push(StagedSystem {
        id: "ad".into(),
        recipients: vec![person("a1", "cy@acmecorp.com")],
        stubs: vec![],
    });
    let r = reconcile(&state, &policy);
    let looping: Vec<_> = r
        .conflicts
        .iter()
        .filter(|c| c.kind == ConflictKind::RoutingLoop)
        .collect();
    // The two pairs, and the catch-all cycle itself.
    assert_eq!(looping.len(), 3, "{:?}", r.conflicts);
    assert!(
        looping.iter().any(|c| c
            .message
            .starts_with("the catch-all relays form a cycle (google → ldap → google)")),
        "{looping:?}"
    );
    assert!(
        looping.iter().any(|c| c.message.contains(
            "mail from google to recipients homed on ad would loop (google → ldap → google)"
        )),
        "{looping:?}"
    );
    assert!(r.operations.iter().all(
        |o| !(o.system == "google" && o.operation.stub().primary_address == "cy@acmecorp.com")
    ));
}

#[test]
fn precedence_picks_the_master_directory_value() {
    let mut policy = acmecorp();
    policy.precedence = vec!["ldap".into()];
    policy
        .precedence_by_attribute
        .insert("mobile_phone".into(), vec!["google".into()]);
    let mut cloud = person("g1", "ann@acmecorp.com");
    cloud.attributes.title = Some("cloud title".into());
    cloud.attributes.mobile_phone = Some("+1 555 0100".into());
    let mut master = person("l1", "ann@acmecorp.com");
    master.mailbox = false;
    master.attributes.title = Some("Head of Finance".into());
    master.attributes.mobile_phone = Some("+1 555 0199".into());
    let r = reconcile(&staged(vec![cloud], vec![master]), &policy);
    assert_eq!(
        r.gal[0].attributes.title.as_deref(),
        Some("Head of Finance")
    );
    assert_eq!(
        r.gal[0].attributes.mobile_phone.as_deref(),
        Some("+1 555 0100")
    );
}

#[test]
fn disabled_accounts_are_left_out_of_the_gal() {
    let mut gone = person("g1", "ann@acmecorp.com");
    gone.enabled = false;
    let r = reconcile(&staged(vec![gone], vec![]), &acmecorp());
    assert!(r.gal.is_empty());
    assert_eq!(r.disabled, 1);
}

#[test]
fn groups_keep_their_members_and_get_stubs() {
    let mut group = person("g5", "team@acmecorp.com");
    group.kind = RecipientKind::Group;
    group.members = vec!["Ann@acmecorp.com".into(), "bob@acmecorp.com".into()];
    let r = reconcile(&staged(vec![group], vec![]), &acmecorp());
    assert_eq!(r.gal[0].members, ["ann@acmecorp.com", "bob@acmecorp.com"]);
    assert_eq!(
        ops_on(&r, "ldap")[0].operation.stub().kind,
        RecipientKind::Group
    );
}

#[test]
fn a_groups_members_in_the_gal_leave_out_disabled_accounts_unless_they_are_included() {
    let mut group = person("g5", "team@acmecorp.com");
    group.kind = RecipientKind::Group;
    group.members = vec![
        "ann@acmecorp.com".into(),
        "Bob@acmecorp.com".into(),
        "partner@example.org".into(),
    ];
    let mut bob = person("l2", "bob@acmecorp.com");
    bob.enabled = false;
    let state = staged(vec![group, person("g1", "ann@acmecorp.com")], vec![bob]);

    let r = reconcile(&state, &acmecorp());
    assert_eq!(r.disabled, 1);
    let team = r
        .gal
        .iter()
        .find(|e| e.primary_address == "team@acmecorp.com")
        .expect("the group is in the GAL");
    assert_eq!(
        team.members,
        ["ann@acmecorp.com", "partner@example.org"],
        "bob is out of the GAL, so out of its groups; an address coexist read no recipient for stays"
    );

    let mut policy = acmecorp();
    policy.include_disabled = true;
    let r = reconcile(&state, &policy);
    assert_eq!(r.disabled, 0);
    let team = r
        .gal
        .iter()
        .find(|e| e.primary_address == "team@acmecorp.com")
        .expect("the group is in the GAL");
    assert_eq!(
        team.members,
        [
            "ann@acmecorp.com",
            "bob@acmecorp.com",
            "partner@example.org"
        ]
    );
}

#[test]
fn a_disabled_member_known_by_an_alias_is_left_out_of_the_group_too() {
    let mut group = person("l5", "team@acmecorp.com");
    group.kind = RecipientKind::Group;
    group.members = vec!["ann@acmecorp.com".into(), "robert@acmecorp.com".into()];
    let mut bob = person("g2", "bob@acmecorp.com");
    bob.aliases = vec!["robert@acmecorp.com".into()];
    bob.enabled = false;
    let r = reconcile(
        &staged(vec![person("g1", "ann@acmecorp.com"), bob], vec![group]),
        &acmecorp(),
    );
    let team = r
        .gal
        .iter()
        .find(|e| e.primary_address == "team@acmecorp.com")
        .expect("the group is in the GAL");
    assert_eq!(team.members, ["ann@acmecorp.com"]);
}

// ---- the world coexist did not write ---------------------------------------

/// Three systems as in the trial: Google (MX, catch-all to LDAP),
/// an LDAP mail server and Microsoft 365, both rejecting unknown recipients.
fn three_systems() -> Policy {
    let mut policy = acmecorp();
    policy.systems.push(system(
        "m365",
        "acmecorp.mail.onmicrosoft.com",
        StubStyle::RoutingAddress,
        UnknownRecipient::Reject,
    ));
    policy
}

fn three_staged(google: Vec<Recipient>, ldap: Vec<Recipient>, m365: Vec<Recipient>) -> Staged {
    let mut state = staged(google, ldap);
    state.systems.push(StagedSystem {
        id: "m365".into(),
        recipients: m365,
        stubs: vec![],
    });
    state
}

/// A directory entry coexist did not make: no mailbox, forwards by hand.
fn forwarder(anchor: &str, dn: &str, address: &str, to: &str) -> Recipient {
    let mut entry = person(anchor, address);
    entry.mailbox = false;
    entry.forwards_to = Some(to.into());
    entry.locator = Some(dn.into());
    entry
}

#[test]
fn a_hand_made_forwarder_to_the_wrong_system_is_a_routing_loop_naming_the_entry() {
    // bob's mailbox is on m365; ldap still forwards bob@ to Google, a
    // leftover of a migration. Google's catch-all sends unknown mail to ldap.
    let state = three_staged(
        vec![person("g1", "gina@acmecorp.com")],
        vec![forwarder(
            "l1",
            "uid=bob,ou=people,dc=acmecorp,dc=com",
            "bob@acmecorp.com",
            "bob@gapps.acmecorp.com",
        )],
        vec![person("m1", "bob@acmecorp.com")],
    );
    let r = reconcile(&state, &three_systems());
    let looping: Vec<&Conflict> = r
        .conflicts
        .iter()
        .filter(|c| c.kind == ConflictKind::RoutingLoop)
        .collect();
    assert_eq!(looping.len(), 1, "{:?}", r.conflicts);
    let message = &looping[0].message;
    assert!(
        message.contains("uid=bob,ou=people,dc=acmecorp,dc=com")
            && message.contains("forwards to bob@gapps.acmecorp.com")
            && message.contains("the mailbox is on m365")
            && message.contains("point it at bob@acmecorp.mail.onmicrosoft.com"),
        "{message}"
    );
    assert!(message.contains("google → ldap → google"), "{message}");
    assert!(
        r.operations
            .iter()
            .all(|o| o.operation.stub().primary_address != "bob@acmecorp.com"),
        "no stub for bob anywhere while his mail loops: {:?}",
        r.operations
    );
    assert!(r
        .gal
        .iter()
        .all(|e| e.primary_address != "bob@acmecorp.com"));
}

#[test]
fn a_hand_made_forwarder_that_reaches_the_home_is_not_a_loop() {
    let state = three_staged(
        vec![],
        vec![forwarder(
            "l1",
            "uid=bob,ou=people,dc=acmecorp,dc=com",
            "bob@acmecorp.com",
            "bob@acmecorp.mail.onmicrosoft.com",
        )],
        vec![person("m1", "bob@acmecorp.com")],
    );
    let r = reconcile(&state, &three_systems());
    assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);
    assert!(ops_on(&r, "ldap").is_empty(), "the forwarder does the job");
    assert_eq!(ops_on(&r, "google").len(), 1, "google lists bob");
}

#[test]
fn addresses_a_hand_made_forwarder_does_not_cover_still_reach_the_home() {
    // ldap forwards leo.clark@ by hand; Google's leo also answers at lclark@,
    // which ldap (rejecting unknown recipients) would bounce.
    let mut leo = person("g1", "leo.clark@acmecorp.com");
    leo.aliases = vec!["lclark@acmecorp.com".into()];
    let mut state = staged(
        vec![leo],
        vec![forwarder(
            "l1",
            "uid=leo.clark,ou=people,dc=acmecorp,dc=com",
            "leo.clark@acmecorp.com",
            "leo.clark@gapps.acmecorp.com",
        )],
    );
    let r = reconcile(&state, &acmecorp());
    let ldap = ops_on(&r, "ldap");
    assert_eq!(ldap.len(), 1, "{:?}", r.operations);
    let stub = ldap[0].operation.stub();
    assert_eq!(stub.primary_address, "lclark@acmecorp.com");
    assert!(
        stub.aliases.is_empty(),
        "the forwarder's address stays its own"
    );
    assert_eq!(
        stub.route,
        Route::Address("leo.clark@gapps.acmecorp.com".into())
    );
    apply(&mut state, &r.operations);
    let view = route::StagedView::new(&state);
    for address in ["lclark@acmecorp.com", "leo.clark@acmecorp.com"] {
        let traced = route::trace(
            &acmecorp(),
            &view,
            &route::Origin::System("ldap".into()),
            address,
        );
        assert!(
            matches!(&traced.outcome, route::Outcome::Delivered { system, .. } if system == "google"),
            "{address}: {traced:?}"
        );
    }
    assert!(reconcile(&state, &acmecorp()).operations.is_empty());
}

#[test]
fn a_stub_goes_where_a_hand_made_entry_now_carries_its_address() {
    // coexist's stub for ann sits in ldap; then an admin adds a hand-made
    // forwarder for ann@ there. Two routing entries for one address are
    // ambiguous: coexist's goes, the hand-made one stays.
    let mut state = staged(vec![person("g1", "ann@acmecorp.com")], vec![]);
    let first = reconcile(&state, &acmecorp());
    apply(&mut state, &first.operations);
    state.systems[1].recipients.push(forwarder(
        "l7",
        "cn=ann,ou=aliases,dc=acmecorp,dc=com",
        "ann@acmecorp.com",
        "ann@gapps.acmecorp.com",
    ));
    let r = reconcile(&state, &acmecorp());
    let ldap = ops_on(&r, "ldap");
    assert_eq!(ldap.len(), 1, "{:?}", r.operations);
    assert_eq!(ldap[0].operation.action(), "delete");
    assert_eq!(ldap[0].reason, Reason::CoveredHere);
}

#[test]
fn a_stub_beside_a_new_mailbox_goes_in_that_system_only() {
    // ann is homed on Google and has stubs on ldap and m365; then ldap
    // starts holding a mailbox for her too (moved before Google let go).
    let mut state = three_staged(vec![person("g1", "ann@acmecorp.com")], vec![], vec![]);
    let first = reconcile(&state, &three_systems());
    apply(&mut state, &first.operations);
    state.systems[1]
        .recipients
        .push(person("l1", "ann@acmecorp.com"));
    let r = reconcile(&state, &three_systems());
    assert_eq!(r.conflicts.len(), 1);
    assert_eq!(r.conflicts[0].kind, ConflictKind::MailboxInTwoSystems);
    assert_eq!(r.operations.len(), 1, "{:?}", r.operations);
    let delete = &r.operations[0];
    assert_eq!(delete.system, "ldap");
    assert_eq!(delete.operation.action(), "delete");
    assert_eq!(delete.reason, Reason::MailboxHere);
    assert!(delete
        .describe()
        .contains("ldap now holds a mailbox for ann@acmecorp.com"));
    // m365 keeps its stub: the conflict is still for an admin to resolve.
}

#[test]
fn mail_to_a_suspended_google_user_bounces_where_exchange_would_deliver() {
    let mut policy = acmecorp();
    policy.systems[0].disabled_mailboxes = DisabledMailboxes::Bounce;
    let mut suspended = person("g1", "sue@acmecorp.com");
    suspended.enabled = false;
    let state = staged(vec![suspended], vec![]);
    let view = route::StagedView::new(&state);
    let traced = route::trace(&policy, &view, &route::Origin::Internet, "sue@acmecorp.com");
    assert!(
        matches!(&traced.outcome, route::Outcome::Bounced { system, reason } if system == "google" && reason.contains("disabled or suspended")),
        "{traced:?}"
    );
    policy.systems[0].disabled_mailboxes = DisabledMailboxes::Deliver;
    let traced = route::trace(&policy, &view, &route::Origin::Internet, "sue@acmecorp.com");
    assert!(
        matches!(traced.outcome, route::Outcome::Delivered { .. }),
        "{traced:?}"
    );
}

#[test]
fn a_catch_all_relay_cycle_is_found_in_the_policy() {
    let mut policy = acmecorp();
    assert!(policy.relay_cycle().is_empty());
    policy.systems[1].unknown_recipient = UnknownRecipient::Relay("google".into());
    assert_eq!(policy.relay_cycle(), ["google", "ldap"]);
}

#[test]
fn two_entries_with_one_address_in_a_system_are_named_by_dn_and_keep_their_stubs() {
    let mut state = staged(vec![], vec![person("l1", "max@acmecorp.com")]);
    let first = reconcile(&state, &acmecorp());
    apply(&mut state, &first.operations);
    assert_eq!(state.systems[0].stubs.len(), 1);
    let mut twin = person("l2", "max@acmecorp.com");
    twin.locator = Some("uid=max2,ou=people,dc=acmecorp,dc=com".into());
    state.systems[1].recipients[0].locator = Some("uid=max,ou=people,dc=acmecorp,dc=com".into());
    state.systems[1].recipients.push(twin);
    let r = reconcile(&state, &acmecorp());
    assert_eq!(r.conflicts[0].kind, ConflictKind::AddressClaimedTwice);
    assert!(
        r.conflicts[0]
            .message
            .contains("uid=max,ou=people,dc=acmecorp,dc=com")
            && r.conflicts[0]
                .message
                .contains("uid=max2,ou=people,dc=acmecorp,dc=com"),
        "{}",
        r.conflicts[0].message
    );
    assert!(
        r.operations.is_empty(),
        "google keeps max's contact: {:?}",
        r.operations
    );
}

#[test]
fn a_panic_in_one_systems_diff_is_not_swallowed() {
    let mut policy = acmecorp();
    policy.systems[1].id = diff::PANICKING_SYSTEM_FOR_TESTS.into();
    let mut state = staged(vec![person("g1", "ann@acmecorp.com")], vec![]);
    state.systems[1].id = diff::PANICKING_SYSTEM_FOR_TESTS.into();
    let outcome = std::panic::catch_unwind(|| reconcile(&state, &policy));
    assert!(
        outcome.is_err(),
        "a plan without that system's operations was returned"
    );
}

// ---- properties ----------------------------------------------------------

/// A random organisation: recipients spread over three systems, some
/// sharing addresses, some directory-only copies, random attributes, and a
/// random set of stubs already present (some stale, some duplicated).
fn organisation() -> impl Strategy<Value = (Staged, Policy)> {
    let recipient = (
        0usize..3,
        0u8..40,
        prop::option::of(0u8..40),
        any::<bool>(),
        prop::option::of("[a-c]{1,2}"),
        0u8..10,
    );
    let stub = (0usize..3, 0u8..40, prop::option::of("[a-c]{1,2}"));
    (
        prop::collection::vec(recipient, 0..30),
        prop::collection::vec(stub, 0..15),
    )
        .prop_map(|(recipients, stubs)| {
            let mut policy = acmecorp();
            policy.systems.push(system(
                "ad",
                "ad.acmecorp.com",
                StubStyle::SmartHost,
                UnknownRecipient::Reject,
            ));
            let mut state = staged(vec![], vec![]);
            state.systems.push(StagedSystem {
                id: "ad".into(),
                ..Default::default()
            });
            for (n, (sys, local, alias, mailbox, title, enabled)) in
                recipients.into_iter().enumerate()
            {
                let mut r = person(&format!("o{n}"), &format!("u{local}@acmecorp.com"));
                r.aliases = alias
                    .map(|a| format!("a{a}@acmecorp.com"))
                    .into_iter()
                    .collect();
                r.mailbox = mailbox || n % 3 == 0;
                // Some entries coexist did not make forward by hand, to
                // any system's routing domain, right or wrong.
                if !r.mailbox && n % 2 == 1 {
                    let domain = [
                        "gapps.acmecorp.com",
                        "mithi.acmecorp.com",
                        "ad.acmecorp.com",
                    ][usize::from(local) % 3];
                    r.forwards_to = Some(format!("u{local}@{domain}"));
                }
                r.enabled = enabled > 0;
                r.attributes.title = title;
                state.systems[sys].recipients.push(r);
            }
            for (n, (sys, local, title)) in stubs.into_iter().enumerate() {
                let mut s = diff::desired_stub(
                    &GalEntry {
                        anchor: format!("google:o{local}"),
                        kind: RecipientKind::Person,
                        primary_address: format!("u{local}@acmecorp.com"),
                        addresses: vec![format!("u{local}@acmecorp.com")],
                        home: "google".into(),
                        attributes: Attributes::default(),
                        members: vec![],
                        systems: vec![],
                        routing_address: None,
                    },
                    Route::Address(format!("u{local}@gapps.acmecorp.com")),
                );
                s.attributes.title = title;
                state.systems[sys].stubs.push(FoundStub {
                    id: format!("s{n}"),
                    locator: format!("loc-s{n}"),
                    misplaced: false,
                    stub: s,
                });
            }
            (state, policy)
        })
}

/// 256 cases a property, or `PROPTEST_CASES` for a longer hunt.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn planning_after_applying_a_plan_gives_an_empty_plan((state, policy) in organisation()) {
        let mut state = state;
        let first = reconcile(&state, &policy);
        apply(&mut state, &first.operations);
        let second = reconcile(&state, &policy);
        prop_assert!(second.operations.is_empty(), "{:?}", second.operations);
    }

    #[test]
    fn no_system_holds_a_stub_for_a_recipient_it_is_home_to((state, policy) in organisation()) {
        let mut state = state;
        let r = reconcile(&state, &policy);
        apply(&mut state, &r.operations);
        for entry in &r.gal {
            let home = state.system(&entry.home).map(|s| s.stubs.clone()).unwrap_or_default();
            let offending: Vec<_> = home.iter().filter(|f| f.stub.anchor == entry.anchor || f.stub.primary_address == entry.primary_address).collect();
            prop_assert!(offending.is_empty(), "{entry:?} has stubs at home: {offending:?}; notices {:?}; conflicts {:?}", r.notices, r.conflicts);
        }
    }

    #[test]
    fn mail_to_a_gal_recipient_never_loops_once_the_plan_is_applied((state, policy) in organisation()) {
        // Every routing entry read (coexist's and those it did not make)
        // takes part: what would loop is a conflict and out of the GAL.
        let mut state = state;
        let r = reconcile(&state, &policy);
        apply(&mut state, &r.operations);
        let view = route::StagedView::new(&state);
        let origins: Vec<route::Origin> = std::iter::once(route::Origin::Internet)
            .chain(policy.systems.iter().map(|s| route::Origin::System(s.id.clone())))
            .collect();
        for entry in &r.gal {
            for address in &entry.addresses {
                for origin in &origins {
                    let traced = route::trace(&policy, &view, origin, address);
                    prop_assert!(!matches!(traced.outcome, route::Outcome::Looping { .. }), "{address} from {origin:?}: {traced:?}; conflicts {:?}", r.conflicts);
                }
            }
        }
    }

    #[test]
    fn a_system_never_holds_coexists_stub_beside_its_own_entry_for_an_address((state, policy) in organisation()) {
        let mut state = state;
        let r = reconcile(&state, &policy);
        apply(&mut state, &r.operations);
        for entry in &r.gal {
            for system in &state.systems {
                let own = system.recipients.iter().any(|rec| rec.addresses().any(|a| entry.addresses.iter().any(|e| e.eq_ignore_ascii_case(a))));
                let stubbed = system.stubs.iter().filter(|f| f.stub.anchor == entry.anchor).flat_map(|f| std::iter::once(&f.stub.primary_address).chain(&f.stub.aliases)).any(|a| system.recipients.iter().any(|rec| rec.addresses().any(|b| b.eq_ignore_ascii_case(a))));
                prop_assert!(!(own && stubbed), "{} holds its own entry and coexist's stub for {}", system.id, entry.primary_address);
            }
        }
    }

    #[test]
    fn every_recipient_has_exactly_one_home((state, policy) in organisation()) {
        let r = reconcile(&state, &policy);
        let mut seen = std::collections::HashSet::new();
        for entry in &r.gal {
            prop_assert!(policy.system(&entry.home).is_some());
            for address in &entry.addresses {
                prop_assert!(seen.insert(address.clone()), "{address} appears in two GAL entries");
            }
        }
    }

    #[test]
    fn no_stub_routes_anywhere_but_the_recipients_home((state, policy) in organisation()) {
        let r = reconcile(&state, &policy);
        let homes: std::collections::HashMap<_, _> = r.gal.iter().map(|e| (e.anchor.clone(), e.home.clone())).collect();
        for planned in &r.operations {
            let stub = match &*planned.operation {
                Operation::Create { stub } => Some(stub),
                Operation::Update { after, .. } => Some(&**after),
                Operation::Delete { .. } => None,
            };
            if let Some(stub) = stub {
                let home = homes.get(&stub.anchor).and_then(|h| policy.system(h));
                prop_assert!(home.is_some());
                let home = home.cloned().unwrap_or_else(|| policy.systems[0].clone());
                let ok = match &stub.route {
                    Route::Address(a) => Some(a.rsplit('@').next()) == Some(home.routing_domain.as_deref()),
                    Route::Host(h) => Some(h.as_str()) == home.smart_host.as_deref(),
                    Route::DomainRouting => true,
                };
                prop_assert!(ok, "{:?} does not route to {}", stub.route, home.id);
                prop_assert!(planned.system != home.id);
            }
        }
    }

    #[test]
    fn nothing_without_the_marker_is_ever_updated_or_deleted((state, policy) in organisation()) {
        // Only found stubs (which carry the marker) may be the target of an
        // update or delete: every id a plan touches is one of them.
        let r = reconcile(&state, &policy);
        for planned in &r.operations {
            if let Operation::Update { id, .. } | Operation::Delete { id, .. } = &*planned.operation {
                let found = state.system(&planned.system).map(|s| s.stubs.iter().any(|f| &f.id == id)).unwrap_or(false);
                prop_assert!(found, "{id} on {} is not a coexist stub", planned.system);
                let recipient = state.systems.iter().flat_map(|s| &s.recipients).any(|rec| &rec.anchor == id);
                prop_assert!(!recipient);
            }
        }
    }
}

/// Microsoft 365's routing domain: a mailbox answers there only at the
/// proxy address Exchange gave it.
fn m365_not_an_alias() -> Policy {
    let mut policy = three_systems();
    policy.systems[2].routing_domain_is_alias = false;
    policy
}

fn delivered_to(policy: &Policy, state: &Staged, from: &str, address: &str) -> Option<String> {
    let view = route::StagedView::new(state);
    match route::trace(policy, &view, &route::Origin::System(from.into()), address).outcome {
        route::Outcome::Delivered { system, .. } => Some(system),
        other => panic!("{address} from {from}: {other:?}"),
    }
}

#[test]
fn stubs_route_to_the_address_the_home_lists_in_its_routing_domain_not_the_primarys_local_part() {
    let mut john = person("m1", "john.doe@acmecorp.com");
    john.aliases = vec!["jdoe@acmecorp.mail.onmicrosoft.com".into()];
    let mut state = three_staged(vec![], vec![person("l1", "bob@acmecorp.com")], vec![john]);
    let policy = m365_not_an_alias();
    let r = reconcile(&state, &policy);
    for system in ["google", "ldap"] {
        let ops = ops_on(&r, system);
        let stub = ops
            .iter()
            .map(|o| o.operation.stub())
            .find(|s| s.primary_address == "john.doe@acmecorp.com")
            .unwrap_or_else(|| panic!("no stub on {system}: {ops:?}"));
        if system == "ldap" {
            assert_eq!(
                stub.route,
                Route::Address("jdoe@acmecorp.mail.onmicrosoft.com".into())
            );
        }
    }
    apply(&mut state, &r.operations);
    for from in ["google", "ldap", "m365"] {
        assert_eq!(
            delivered_to(&policy, &state, from, "john.doe@acmecorp.com").as_deref(),
            Some("m365"),
            "from {from}"
        );
    }
    assert!(reconcile(&state, &policy).operations.is_empty());
}

#[test]
fn a_blanket_alias_home_also_prefers_the_routing_address_it_lists() {
    // Google answers at every alias, but a user may list another local part
    // in the routing domain; that one is taken, and it is delivered.
    let mut leo = person("g1", "leo.clark@acmecorp.com");
    leo.aliases = vec!["lc@gapps.acmecorp.com".into()];
    let mut state = staged(vec![leo], vec![person("l1", "bob@acmecorp.com")]);
    let r = reconcile(&state, &acmecorp());
    let stub = ops_on(&r, "ldap")[0].operation.stub().clone();
    assert_eq!(stub.route, Route::Address("lc@gapps.acmecorp.com".into()));
    apply(&mut state, &r.operations);
    assert_eq!(
        delivered_to(&acmecorp(), &state, "ldap", "leo.clark@acmecorp.com").as_deref(),
        Some("google")
    );
}

#[test]
fn a_home_that_is_no_alias_and_lists_no_routing_address_gets_no_stub_and_a_notice() {
    let state = three_staged(
        vec![],
        vec![person("l1", "bob@acmecorp.com")],
        vec![person("m1", "john.doe@acmecorp.com")],
    );
    let r = reconcile(&state, &m365_not_an_alias());
    assert!(
        ops_on(&r, "ldap")
            .iter()
            .all(|o| o.operation.stub().primary_address != "john.doe@acmecorp.com"),
        "a stub would route to an address the mailbox does not answer at"
    );
    assert!(
        r.notices.iter().any(|n| n
            .message
            .contains("lists no address in its routing domain acmecorp.mail.onmicrosoft.com")),
        "{:?}",
        r.notices
    );
}
