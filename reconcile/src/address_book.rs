//! Address books: the plan that keeps a copy of the GAL as entries under
//! an OU of a directory (see [`coexist_model::address_book`]).
//!
//! Every recipient of the GAL, wherever its home (the directory's own
//! people included), gets one entry in each address book, carrying GAL
//! attributes and no route. The entries found are those carrying the
//! book's marker, read from the address book alone and staged under its
//! own id ([`coexist_model::address_book::address_book_id`]); they are
//! matched by anchor, so only coexist's own are ever updated or deleted,
//! and they take no part in the GAL's join, the stub diff or the loop
//! checks (which never see them).

use rustc_hash::FxHashMap;

use coexist_model::{Attributes, FoundStub, Operation, Route, Stub, StubField};

use super::{GalEntry, PlannedOperation, Reason, StagedSystem};

/// The entry an address book should hold for `entry`: its primary address
/// (an address book lists people; it carries none of the addresses mail
/// is accepted for), its attributes (blank ones left out, as a directory
/// stores them), and no route (always [`Route::DomainRouting`]).
pub fn desired_entry(entry: &GalEntry) -> Stub {
    let a = &entry.attributes;
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    Stub {
        anchor: entry.anchor.clone(),
        kind: entry.kind,
        primary_address: entry.primary_address.clone(),
        aliases: Vec::new(),
        route: Route::DomainRouting,
        attributes: Attributes {
            display_name: text(&a.display_name),
            given_name: text(&a.given_name),
            surname: text(&a.surname),
            business_phone: text(&a.business_phone),
            mobile_phone: text(&a.mobile_phone),
            title: text(&a.title),
            department: text(&a.department),
            company: text(&a.company),
        },
    }
}

/// The operations that turn the entries found in the address book `book`
/// (staged under its own id) into one entry per recipient of `gal`:
/// creates first, then updates, then deletes (entries whose recipient left
/// the GAL, and second entries of one recipient).
pub fn plan(gal: &[GalEntry], book: &StagedSystem) -> Vec<PlannedOperation> {
    let mut by_anchor: FxHashMap<&str, Vec<&FoundStub>> = FxHashMap::default();
    for found in &book.stubs {
        by_anchor
            .entry(found.stub.anchor.as_str())
            .or_default()
            .push(found);
    }
    let (mut creates, mut updates, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
    let operation = |operation: Operation, reason: Reason| PlannedOperation {
        system: book.id.clone(),
        operation: Box::new(operation),
        reason,
    };
    for entry in gal {
        let want = desired_entry(entry);
        let Some(found) = by_anchor.remove(entry.anchor.as_str()) else {
            creates.push(operation(
                Operation::Create { stub: want },
                Reason::InTheGal,
            ));
            continue;
        };
        // The first found is kept; any other is a second entry.
        let mut found = found.into_iter();
        if let Some(have) = found.next() {
            if have.stub != want {
                updates.push(operation(
                    Operation::Update {
                        id: have.id.clone(),
                        locator: have.locator.clone(),
                        changed: StubField::changed(&have.stub, &want),
                        before: Box::new(have.stub.clone()),
                        after: Box::new(want),
                    },
                    Reason::Changed,
                ));
            }
        }
        for second in found {
            deletes.push(operation(delete(second), Reason::SecondStub));
        }
    }
    // What is left names no recipient of the GAL, in the order found.
    for found in &book.stubs {
        if by_anchor.contains_key(found.stub.anchor.as_str()) {
            deletes.push(operation(delete(found), Reason::LeftTheGal));
        }
    }
    creates.extend(updates);
    creates.extend(deletes);
    creates
}

fn delete(found: &FoundStub) -> Operation {
    Operation::Delete {
        id: found.id.clone(),
        locator: found.locator.clone(),
        stub: found.stub.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coexist_model::address_book::address_book_id;
    use coexist_model::RecipientKind;

    fn recipient(address: &str, name: &str, home: &str) -> GalEntry {
        GalEntry {
            anchor: format!("{home}:{address}"),
            kind: RecipientKind::Person,
            primary_address: address.into(),
            addresses: vec![address.into(), format!("alias.{address}")],
            home: home.into(),
            attributes: Attributes {
                display_name: Some(name.into()),
                ..Attributes::default()
            },
            members: Vec::new(),
            systems: vec![home.into()],
            routing_address: Some(format!("{address}.routing")),
        }
    }

    /// The address book as it is after `operations` were applied to it.
    fn applied(book: &StagedSystem, operations: &[PlannedOperation]) -> StagedSystem {
        let mut after = book.clone();
        for (n, planned) in operations.iter().enumerate() {
            match &*planned.operation {
                Operation::Create { stub } => after.stubs.push(FoundStub {
                    id: format!("new-{n}"),
                    locator: format!("cn={},ou=gal", stub.primary_address),
                    misplaced: false,
                    stub: stub.clone(),
                }),
                Operation::Update { id, after: to, .. } => {
                    for found in after.stubs.iter_mut().filter(|f| &f.id == id) {
                        found.stub = (**to).clone();
                    }
                }
                Operation::Delete { id, .. } => after.stubs.retain(|f| &f.id != id),
            }
        }
        after
    }

    fn empty_book() -> StagedSystem {
        StagedSystem {
            id: address_book_id("ad"),
            ..StagedSystem::default()
        }
    }

    #[test]
    fn every_recipient_of_the_gal_gets_an_entry_homed_anywhere_and_routed_nowhere() {
        let gal = [
            recipient("ann@x.com", "Ann Lee", "ad"),
            recipient("bob@x.com", "Bob Ray", "google"),
        ];
        let operations = plan(&gal, &empty_book());
        assert_eq!(operations.len(), 2);
        for (planned, entry) in operations.iter().zip(&gal) {
            assert_eq!(planned.system, "ad.address_book");
            assert_eq!(planned.reason, Reason::InTheGal);
            let Operation::Create { stub } = &*planned.operation else {
                panic!("{planned:?}");
            };
            assert_eq!(stub.anchor, entry.anchor);
            assert_eq!(stub.route, Route::DomainRouting);
            // Only the primary address: no address mail is accepted for.
            assert!(stub.aliases.is_empty());
            assert!(!stub.primary_address.contains("routing"));
        }
    }

    #[test]
    fn a_second_plan_after_applying_is_empty() {
        let gal = [
            recipient("ann@x.com", "Ann Lee", "ad"),
            recipient("bob@x.com", "Bob Ray", "google"),
        ];
        let book = applied(&empty_book(), &plan(&gal, &empty_book()));
        assert_eq!(book.stubs.len(), 2);
        assert!(plan(&gal, &book).is_empty());
    }

    #[test]
    fn a_changed_name_is_an_update_and_a_person_who_left_is_deleted() {
        let mut gal = vec![
            recipient("ann@x.com", "Ann Lee", "ad"),
            recipient("bob@x.com", "Bob Ray", "google"),
        ];
        let book = applied(&empty_book(), &plan(&gal, &empty_book()));
        gal[0].attributes.display_name = Some("Ann Smith".into());
        gal.remove(1);
        let operations = plan(&gal, &book);
        assert_eq!(operations.len(), 2, "{operations:?}");
        match &*operations[0].operation {
            Operation::Update { changed, after, .. } => {
                assert_eq!(changed, &[StubField::DisplayName]);
                assert_eq!(after.attributes.display_name.as_deref(), Some("Ann Smith"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(operations[0].reason, Reason::Changed);
        match &*operations[1].operation {
            Operation::Delete { stub, .. } => assert_eq!(stub.primary_address, "bob@x.com"),
            other => panic!("{other:?}"),
        }
        assert_eq!(operations[1].reason, Reason::LeftTheGal);
        assert!(plan(&gal, &applied(&book, &operations)).is_empty());
    }

    #[test]
    fn a_second_entry_of_one_recipient_is_deleted_and_the_first_kept() {
        let gal = [recipient("ann@x.com", "Ann Lee", "ad")];
        let mut book = applied(&empty_book(), &plan(&gal, &empty_book()));
        let mut twin = book.stubs[0].clone();
        twin.id = "twin".into();
        book.stubs.push(twin);
        let operations = plan(&gal, &book);
        assert_eq!(operations.len(), 1);
        assert_eq!(operations[0].reason, Reason::SecondStub);
        assert!(matches!(&*operations[0].operation, Operation::Delete { id, .. } if id == "twin"));
    }

    #[test]
    fn the_stub_reconciliation_never_sees_an_address_book() {
        // The book is staged under its own id, which no policy names: the
        // reconciler proper plans nothing for it and joins nothing from it.
        let gal = [recipient("ann@x.com", "Ann Lee", "google")];
        let book = applied(&empty_book(), &plan(&gal, &empty_book()));
        let staged = crate::Staged {
            systems: vec![book],
            placements: Default::default(),
        };
        let policy = crate::Policy {
            shared_domains: vec!["x.com".into()],
            systems: Vec::new(),
            home_attribute: None,
            precedence: Vec::new(),
            precedence_by_attribute: Default::default(),
            include_disabled: false,
            mx: None,
        };
        let reconciliation = crate::reconcile(&staged, &policy);
        assert!(reconciliation.gal.is_empty());
        assert!(reconciliation.operations.is_empty());
    }
}
