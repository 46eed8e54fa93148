//! What the benchmarks of the binary's library share: the synthetic
//! recipients of a large organisation.

use std::collections::BTreeMap;

use coexist_connector::{Attributes, Recipient, RecipientKind};

/// The `i`th recipient of a synthetic organisation: a person with a
/// mailbox at `user<i>@acmecorp.com` (every 50th a group, every 4th with
/// an alias), with names, phone, title, department and company.
pub fn recipient(i: usize) -> Recipient {
    Recipient {
        anchor: format!("{i:08x}-0000-4000-8000-{i:012}"),
        kind: if i.is_multiple_of(50) {
            RecipientKind::Group
        } else {
            RecipientKind::Person
        },
        primary_address: format!("user{i}@acmecorp.com"),
        aliases: if i.is_multiple_of(4) {
            vec![format!("u.{i}@acmecorp.com")]
        } else {
            vec![]
        },
        mailbox: true,
        enabled: true,
        attributes: Attributes {
            display_name: Some(format!("User {i}")),
            given_name: Some("User".into()),
            surname: Some(format!("Number{i}")),
            business_phone: Some(format!("+1 555 {:07}", i)),
            mobile_phone: None,
            title: Some(["Engineer", "Analyst", "Manager"][i % 3].into()),
            department: Some(["Sales", "Support", "Finance", "R&D"][i % 4].into()),
            company: Some("Acme Corp".into()),
        },
        members: vec![],
        forwards_to: None,
        extra: BTreeMap::new(),
        locator: None,
        etag: Some(format!("\"{i}\"")),
    }
}
