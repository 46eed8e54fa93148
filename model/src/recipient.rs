//! Recipients: what a system holds that can receive mail.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What kind of recipient an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientKind {
    /// A person's mailbox.
    Person,
    /// A distribution or mail-enabled security group.
    Group,
    /// A mailbox several people use (info@, sales@).
    SharedMailbox,
    /// A room or equipment mailbox.
    Resource,
}

impl RecipientKind {
    /// The lower-case name used in reports and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientKind::Person => "person",
            RecipientKind::Group => "group",
            RecipientKind::SharedMailbox => "shared_mailbox",
            RecipientKind::Resource => "resource",
        }
    }
}

/// The address-book attributes of a recipient, copied into the GAL and onto
/// stubs. Every field is optional: systems hold different subsets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Attributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub surname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
}

impl Attributes {
    /// The attribute names, as used in the precedence configuration.
    pub const NAMES: [&'static str; 8] = [
        "display_name",
        "given_name",
        "surname",
        "business_phone",
        "mobile_phone",
        "title",
        "department",
        "company",
    ];

    /// The value of the attribute called `name` (one of [`Self::NAMES`]).
    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            "display_name" => self.display_name.as_deref(),
            "given_name" => self.given_name.as_deref(),
            "surname" => self.surname.as_deref(),
            "business_phone" => self.business_phone.as_deref(),
            "mobile_phone" => self.mobile_phone.as_deref(),
            "title" => self.title.as_deref(),
            "department" => self.department.as_deref(),
            "company" => self.company.as_deref(),
            _ => None,
        }
    }

    /// Sets the attribute called `name`; unknown names are ignored.
    pub fn set(&mut self, name: &str, value: Option<String>) {
        let slot = match name {
            "display_name" => &mut self.display_name,
            "given_name" => &mut self.given_name,
            "surname" => &mut self.surname,
            "business_phone" => &mut self.business_phone,
            "mobile_phone" => &mut self.mobile_phone,
            "title" => &mut self.title,
            "department" => &mut self.department,
            "company" => &mut self.company,
            _ => return,
        };
        *slot = value;
    }
}

/// One object of a system that has at least one email address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The system's immutable identifier of the object: `objectGUID` on AD,
    /// `entryUUID` on OpenLDAP, the user or group `id` on Google.
    pub anchor: String,
    pub kind: RecipientKind,
    /// The primary address, as the system spells it.
    pub primary_address: String,
    /// Every other address the object receives mail for.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `true` when this system hosts the mailbox; `false` for a directory
    /// entry whose mail is delivered elsewhere (a hand-made forwarder, an AD
    /// user whose mailbox is on another system, a mail contact).
    pub mailbox: bool,
    /// `false` for a suspended or disabled account.
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default)]
    pub attributes: Attributes,
    /// For groups: the addresses of the members, nested groups resolved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// Where an unmarked forwarding entry sends mail (`mailRoutingAddress`,
    /// `targetAddress`), as found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwards_to: Option<String>,
    /// Extra attributes the configuration asked the connector to read, such
    /// as the directory attribute that decides a recipient's home.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
    /// How the system names the object to an admin (an LDAP or AD DN, a
    /// Google user's primary email): used in messages, never to find it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locator: Option<String>,
    /// The system's version tag of the object (Google etag, AD uSNChanged,
    /// OpenLDAP entryCSN), used to skip unchanged objects downstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

fn default_true() -> bool {
    true
}

impl Recipient {
    /// A recipient whose mailbox this system hosts, enabled, with no
    /// aliases or attributes yet.
    pub fn mailbox(
        anchor: impl Into<String>,
        kind: RecipientKind,
        primary_address: impl Into<String>,
    ) -> Self {
        Recipient {
            anchor: anchor.into(),
            kind,
            primary_address: primary_address.into(),
            aliases: Vec::new(),
            mailbox: true,
            enabled: true,
            attributes: Attributes::default(),
            members: Vec::new(),
            forwards_to: None,
            extra: BTreeMap::new(),
            locator: None,
            etag: None,
        }
    }

    /// The name to give the object in a message: its locator (DN) when the
    /// connector gave one, else its anchor.
    pub fn name(&self) -> &str {
        self.locator.as_deref().unwrap_or(&self.anchor)
    }

    /// The primary address followed by the aliases.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.primary_address.as_str())
            .chain(self.aliases.iter().map(String::as_str))
    }
}
