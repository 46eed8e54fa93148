//! What a system does with stubs and with mail: the choices a kind of system
//! allows (its connector crate says which) and the configuration picks.

/// How a system takes stubs for recipients homed elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StubStyle {
    /// A forwarding entry or mail contact routed to `local@<home routing domain>`.
    RoutingAddress,
    /// A directory entry relayed to the home's smart host (`mailHost`).
    SmartHost,
    /// An address-book entry only; the system's domain routing carries mail
    /// (Google's catch-all / split delivery).
    DomainRouting,
    /// The system takes no stubs (a master directory read only for its
    /// attributes, for instance).
    None,
    /// An Exchange Online mail contact in the tenant's address list, routed
    /// to the recipient's routing address (its `ExternalEmailAddress`):
    /// routes as [`StubStyle::RoutingAddress`] does.
    MailContact,
    /// Personal contacts in a folder of each mailbox of a Microsoft 365
    /// tenant, for tenants that want no objects in their address list: an
    /// address-book entry only; the tenant's relay of the shared domain
    /// carries the mail, as with [`StubStyle::DomainRouting`].
    MailboxContacts,
}

/// What a system does with mail for a mailbox whose account is disabled or
/// suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledMailboxes {
    /// It bounces the message (Google Workspace bounces mail to suspended
    /// users; qmail-ldap bounces for `accountStatus: disabled`).
    Bounce,
    /// It still delivers into the mailbox (Exchange delivers to the mailbox
    /// of a disabled AD account).
    Deliver,
}

impl StubStyle {
    /// Every style, in the order the configuration documents them.
    pub const ALL: [StubStyle; 6] = [
        StubStyle::RoutingAddress,
        StubStyle::SmartHost,
        StubStyle::DomainRouting,
        StubStyle::None,
        StubStyle::MailContact,
        StubStyle::MailboxContacts,
    ];

    /// The name used in the configuration (`stub_style = "…"`).
    pub fn name(self) -> &'static str {
        match self {
            StubStyle::RoutingAddress => "routing_address",
            StubStyle::SmartHost => "smart_host",
            StubStyle::DomainRouting => "domain_routing",
            StubStyle::None => "none",
            StubStyle::MailContact => "mail_contact",
            StubStyle::MailboxContacts => "mailbox_contacts",
        }
    }
}
