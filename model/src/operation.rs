//! Operations: the changes a plan asks a connector to make.

use serde::{Deserialize, Serialize};

use crate::stub::Stub;

/// One stub attribute that an update changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StubField {
    /// The marker's anchor.
    Anchor,
    Kind,
    /// The primary address (an LDAP connector renames the entry).
    PrimaryAddress,
    Aliases,
    Route,
    DisplayName,
    GivenName,
    Surname,
    BusinessPhone,
    MobilePhone,
    Title,
    Department,
    Company,
}

impl StubField {
    /// The fields in which `before` and `after` differ.
    pub fn changed(before: &Stub, after: &Stub) -> Vec<StubField> {
        let (a, b) = (&before.attributes, &after.attributes);
        let checks = [
            (StubField::Anchor, before.anchor != after.anchor),
            (StubField::Kind, before.kind != after.kind),
            (
                StubField::PrimaryAddress,
                before.primary_address != after.primary_address,
            ),
            (StubField::Aliases, before.aliases != after.aliases),
            (StubField::Route, before.route != after.route),
            (StubField::DisplayName, a.display_name != b.display_name),
            (StubField::GivenName, a.given_name != b.given_name),
            (StubField::Surname, a.surname != b.surname),
            (
                StubField::BusinessPhone,
                a.business_phone != b.business_phone,
            ),
            (StubField::MobilePhone, a.mobile_phone != b.mobile_phone),
            (StubField::Title, a.title != b.title),
            (StubField::Department, a.department != b.department),
            (StubField::Company, a.company != b.company),
        ];
        checks
            .into_iter()
            .filter(|(_, differs)| *differs)
            .map(|(f, _)| f)
            .collect()
    }
}

/// A change to one stub in one system.
///
/// Every operation must be **idempotent** in every connector: creating a stub
/// whose marker already exists in the system updates that stub instead;
/// deleting a stub that is already gone succeeds. The engine relies on this
/// to resume a plan after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Operation {
    /// Write a new stub.
    Create { stub: Stub },
    /// Change the attributes listed in `changed` of the stub at `locator`.
    /// (The stubs are boxed so every operation is as small as a create.)
    Update {
        id: String,
        locator: String,
        before: Box<Stub>,
        after: Box<Stub>,
        changed: Vec<StubField>,
    },
    /// Remove the stub at `locator`; it carries coexist's marker.
    Delete {
        id: String,
        locator: String,
        stub: Stub,
    },
}

impl Operation {
    /// `create`, `update` or `delete`.
    pub fn action(&self) -> &'static str {
        match self {
            Operation::Create { .. } => "create",
            Operation::Update { .. } => "update",
            Operation::Delete { .. } => "delete",
        }
    }

    /// The stub as it is after the operation (for a delete: the stub removed).
    pub fn stub(&self) -> &Stub {
        match self {
            Operation::Create { stub } | Operation::Delete { stub, .. } => stub,
            Operation::Update { after, .. } => after,
        }
    }
}

/// What a connector reports after carrying out an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The stub's object id and locator after a create or update (a rename
    /// changes the locator); `None` after a delete.
    pub found: Option<crate::stub::FoundStub>,
}
