//! What the reconciler makes of each state of `coexist move`: a person
//! with a mailbox on the old home and on the target (settled by the
//! placement), then the old account forwarding to the target (a
//! forwarding entry coexist did not write as a stub, which takes part in
//! the route and loop checks).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use coexist_model::{Recipient, RecipientKind};
use coexist_reconcile::route::{trace, Origin, Outcome, StagedView};
use coexist_reconcile::{
    reconcile, ConflictKind, DisabledMailboxes, Policy, Staged, StagedSystem, StubStyle,
    SystemPolicy, UnknownRecipient,
};

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

/// Google (the MX, catch-all to ldap), the ldap mail server, and mail2.
fn policy() -> Policy {
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
            system(
                "mail2",
                "mail2.acmecorp.com",
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

/// ann's old account on ldap (forwarding to `forward` when given), her
/// new one on mail2, and the placement.
fn moving(forward: Option<&str>, placement: Option<&str>) -> Staged {
    let mut old = Recipient::mailbox("m1", RecipientKind::Person, "ann@acmecorp.com");
    if let Some(to) = forward {
        old.mailbox = false;
        old.forwards_to = Some(to.into());
    }
    let new = Recipient::mailbox("n1", RecipientKind::Person, "ann@acmecorp.com");
    let system = |id: &str, recipients| StagedSystem {
        id: id.into(),
        recipients,
        stubs: vec![],
    };
    Staged {
        systems: vec![
            system("google", vec![]),
            system("ldap", vec![old]),
            system("mail2", vec![new]),
        ],
        placements: placement
            .map(|p| BTreeMap::from([("ann@acmecorp.com".to_string(), p.to_string())]))
            .unwrap_or_default(),
    }
}

fn stub_systems(staged: &Staged) -> Vec<String> {
    reconcile(staged, &policy())
        .operations
        .iter()
        .map(|o| o.system.clone())
        .collect()
}

#[test]
fn two_mailboxes_need_the_placement_the_move_records_first() {
    let unplaced = reconcile(&moving(None, None), &policy());
    assert_eq!(
        unplaced.conflicts[0].kind,
        ConflictKind::MailboxInTwoSystems
    );

    // Step 1: placed on the old home; the new mailbox is an entry coexist
    // did not make on mail2, so no stub stands there, and no conflict.
    let staged = moving(None, Some("ldap"));
    let step1 = reconcile(&staged, &policy());
    assert!(step1.conflicts.is_empty(), "{:?}", step1.conflicts);
    assert_eq!(step1.gal[0].home, "ldap");
    assert_eq!(stub_systems(&staged), ["google"]);
}

#[test]
fn after_the_flip_the_old_account_forwards_and_mail_reaches_the_target_from_everywhere() {
    let staged = moving(Some("ann@mail2.acmecorp.com"), Some("mail2"));
    let flipped = reconcile(&staged, &policy());
    assert!(flipped.conflicts.is_empty(), "{:?}", flipped.conflicts);
    assert_eq!(flipped.gal[0].home, "mail2");
    // No stub of coexist's beside the forward on ldap; Google's contact.
    assert_eq!(stub_systems(&staged), ["google"]);
    assert!(flipped
        .notices
        .iter()
        .any(|n| n.system == "ldap" && n.message.contains("coexist did not make")));
    let view = StagedView::new(&staged);
    for origin in [
        Origin::Internet,
        Origin::System("google".into()),
        Origin::System("ldap".into()),
        Origin::System("mail2".into()),
    ] {
        let traced = trace(&policy(), &view, &origin, "ann@acmecorp.com");
        assert!(
            matches!(&traced.outcome, Outcome::Delivered { system, .. } if system == "mail2"),
            "{origin:?}: {traced:?}"
        );
    }
}

#[test]
fn a_forward_back_to_the_old_home_is_a_routing_loop_and_holds_the_person() {
    // The old account forwarding to its own routing domain (a mistake by
    // hand): mail would circle on ldap.
    let staged = moving(Some("ann@mithi.acmecorp.com"), Some("mail2"));
    let looping = reconcile(&staged, &policy());
    assert_eq!(looping.conflicts.len(), 1, "{:?}", looping.conflicts);
    assert_eq!(looping.conflicts[0].kind, ConflictKind::RoutingLoop);
    assert!(looping.conflicts[0]
        .message
        .contains("ann@mail2.acmecorp.com"));
    assert!(
        stub_systems(&staged).is_empty(),
        "no new stubs while it loops"
    );
}
