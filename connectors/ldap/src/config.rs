//! The configuration of one LDAP or Active Directory system.
//!
//! Most settings have defaults that depend on the [`Flavor`]: the attribute
//! map, the filters, the stub schema and the marker attribute. The
//! configuration is read from the engine's TOML through serde; unknown keys
//! are refused.

use coexist_connector::SecretRef;
use serde::Deserialize;

/// Which kind of directory server the system is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    /// OpenLDAP (or another RFC-conforming server) behind a mail server:
    /// inetOrgPerson, inetLocalMailRecipient, qmail-ldap; `entryUUID`
    /// anchors; RFC 4533 content sync or `modifyTimestamp` for deltas.
    Openldap,
    /// Active Directory (or Samba AD): users, groups, contacts;
    /// `objectGUID` anchors; DirSync or `uSNChanged` for deltas.
    ActiveDirectory,
}

/// How stubs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StubSchema {
    /// `inetOrgPerson` + `inetLocalMailRecipient` (misc.schema): `mail`,
    /// `mailLocalAddress`, and `mailRoutingAddress` or `mailHost`.
    InetLocalMailRecipient,
    /// `inetOrgPerson` + `qmailUser` (qmail.schema): `mail`,
    /// `mailAlternateAddress`, `mailForwardingAddress`,
    /// `deliveryMode: forwardonly`, `accountStatus: active`.
    Qmail,
    /// An Active Directory `contact` with `mail`, `proxyAddresses` and
    /// `targetAddress` (Exchange schema).
    AdContact,
}

/// Which incremental read method pulls use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Incremental {
    /// The best the server offers: content sync, else modifyTimestamp
    /// (OpenLDAP); DirSync, else uSNChanged (AD).
    #[default]
    Auto,
    /// RFC 4533 content sync (OpenLDAP syncprov).
    ContentSync,
    /// `modifyTimestamp` plus a presence read (any LDAP server).
    ModifyTimestamp,
    /// AD DirSync (needs "Replicating Directory Changes").
    Dirsync,
    /// AD `uSNChanged` with the DC's invocationId.
    UsnChanged,
}

/// One rule that makes an account disabled: a disabled account is read with
/// `enabled = false`, so the reconciler leaves it out of the address list
/// and no other system gets a stub for it (nor keeps one).
///
/// Written in the connection table as a list of inline tables, each with
/// `when` (the kind of test), `attribute`, and what the test needs:
///
/// ```toml
/// disabled_when = [
///   { when = "day_passed", attribute = "shadowExpire" },
///   { when = "equals", attribute = "employeeType", values = ["left", "retired"] },
/// ]
/// ```
///
/// An entry that matches any rule is disabled. The attributes named are
/// read by every pull (full reads and deltas); an attribute the server's
/// schema lacks is simply never present. Attribute names are matched
/// without regard to case.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "when", rename_all = "snake_case", deny_unknown_fields)]
pub enum DisabledWhen {
    /// The attribute has one of `values` (compared without regard to case):
    /// `nsAccountLock` = `true` (389 Directory Server), qmail-ldap's
    /// `accountStatus` = `disabled` or `deleted`.
    Equals {
        attribute: String,
        values: Vec<String>,
    },
    /// The attribute is present, whatever its value.
    Present { attribute: String },
    /// The attribute is the day the account expires, counted in days from
    /// 1970-01-01 (UTC): the account is disabled from that day on (as
    /// `pam_unix` reads `shadowExpire`; `0` is 1970-01-01, so disabled). A
    /// negative number (`-1`) means never; a value that is not a number is
    /// ignored.
    DayPassed { attribute: String },
    /// The attribute is a GeneralizedTime (`20240131120000Z`, minutes and
    /// seconds optional, a fraction and a `+hhmm` offset allowed): the
    /// account is disabled from that time on, as the ppolicy overlay's
    /// `pwdAccountLockedTime` (`000001010000Z` is ppolicy's "locked until
    /// an administrator unlocks it"). A time still to come does not disable
    /// the account yet; a value that is not a time disables it (a lock is a
    /// lock).
    ///
    /// ppolicy also sets `pwdAccountLockedTime` when too many binds failed
    /// (`pwdLockout`), and with a `pwdLockoutDuration` that lock ends by
    /// itself while the attribute stays until the next good bind: such an
    /// account reads disabled meanwhile, and its stubs elsewhere are
    /// removed. To count only the locks an administrator sets, use
    /// `{ when = "equals", attribute = "pwdAccountLockedTime", values =
    /// ["000001010000Z"] }` instead.
    TimePassed { attribute: String },
    /// The attribute is an integer with any bit of `mask` set: AD's
    /// `userAccountControl` with mask 2 (ACCOUNTDISABLE).
    BitsSet { attribute: String, mask: u64 },
}

impl DisabledWhen {
    /// The attribute the rule tests.
    pub fn attribute(&self) -> &str {
        match self {
            DisabledWhen::Equals { attribute, .. }
            | DisabledWhen::Present { attribute }
            | DisabledWhen::DayPassed { attribute }
            | DisabledWhen::TimePassed { attribute }
            | DisabledWhen::BitsSet { attribute, .. } => attribute,
        }
    }

    /// The rules of `flavor` when `disabled_when` is not set:
    ///
    /// * OpenLDAP: `shadowExpire` passed (nis.schema `shadowAccount`),
    ///   `pwdAccountLockedTime` passed (ppolicy), `nsAccountLock` = `true`
    ///   (389 Directory Server style), `accountStatus` = `disabled` or
    ///   `deleted` (qmail-ldap; `noaccess` and `nopop` still receive mail).
    /// * Active Directory: bit 2 (ACCOUNTDISABLE) of `userAccountControl`.
    pub fn defaults(flavor: Flavor) -> Vec<DisabledWhen> {
        let attribute = |a: &str| a.to_string();
        match flavor {
            Flavor::Openldap => vec![
                DisabledWhen::DayPassed {
                    attribute: attribute("shadowExpire"),
                },
                DisabledWhen::TimePassed {
                    attribute: attribute("pwdAccountLockedTime"),
                },
                DisabledWhen::Equals {
                    attribute: attribute("nsAccountLock"),
                    values: vec!["true".into()],
                },
                DisabledWhen::Equals {
                    attribute: attribute("accountStatus"),
                    values: vec!["disabled".into(), "deleted".into()],
                },
            ],
            Flavor::ActiveDirectory => vec![DisabledWhen::BitsSet {
                attribute: attribute("userAccountControl"),
                mask: 2,
            }],
        }
    }
}

impl DisabledWhen {
    /// The exceptions of `flavor` when `disabled_unless` is not set: on
    /// Active Directory, Exchange's linked (2), shared (4), room (16) and
    /// equipment (32) mailboxes by `msExchRecipientTypeDetails`; none on
    /// OpenLDAP.
    pub fn exceptions(flavor: Flavor) -> Vec<DisabledWhen> {
        match flavor {
            Flavor::Openldap => Vec::new(),
            Flavor::ActiveDirectory => vec![DisabledWhen::BitsSet {
                attribute: "msExchRecipientTypeDetails".into(),
                mask: 2 | 4 | 16 | 32,
            }],
        }
    }
}

/// Overrides of the flavor's default attribute names. Every field left out
/// keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeMap {
    /// The immutable identifier (`entryUUID`, `objectGUID`).
    pub anchor: Option<String>,
    /// The primary address (`mail`).
    pub mail: Option<String>,
    /// Attributes holding further addresses (`mailLocalAddress`,
    /// `mailAlternateAddress`; on AD `proxyAddresses`, parsed by prefix).
    pub aliases: Option<Vec<String>>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub business_phone: Option<String>,
    pub mobile_phone: Option<String>,
    pub title: Option<String>,
    pub department: Option<String>,
    pub company: Option<String>,
    /// Group member attributes holding DNs (`member`, `uniqueMember`).
    pub members: Option<Vec<String>>,
}

/// The resolved attribute names the connector reads (defaults + overrides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAttributes {
    pub anchor: String,
    pub mail: String,
    pub aliases: Vec<String>,
    pub display_name: String,
    pub given_name: String,
    pub surname: String,
    pub business_phone: String,
    pub mobile_phone: String,
    pub title: String,
    pub department: String,
    pub company: String,
    pub members: Vec<String>,
}

impl ResolvedAttributes {
    /// The defaults of `flavor` with `map`'s overrides applied.
    pub fn resolve(flavor: Flavor, map: Option<&AttributeMap>) -> Self {
        let mut r = match flavor {
            Flavor::Openldap => ResolvedAttributes {
                anchor: "entryUUID".into(),
                mail: "mail".into(),
                aliases: vec!["mailLocalAddress".into(), "mailAlternateAddress".into()],
                display_name: "displayName".into(),
                given_name: "givenName".into(),
                surname: "sn".into(),
                business_phone: "telephoneNumber".into(),
                mobile_phone: "mobile".into(),
                title: "title".into(),
                department: "departmentNumber".into(),
                company: "o".into(),
                members: vec!["member".into(), "uniqueMember".into()],
            },
            Flavor::ActiveDirectory => ResolvedAttributes {
                anchor: "objectGUID".into(),
                mail: "mail".into(),
                aliases: vec!["proxyAddresses".into()],
                display_name: "displayName".into(),
                given_name: "givenName".into(),
                surname: "sn".into(),
                business_phone: "telephoneNumber".into(),
                mobile_phone: "mobile".into(),
                title: "title".into(),
                department: "department".into(),
                company: "company".into(),
                members: vec!["member".into()],
            },
        };
        if let Some(m) = map {
            let set = |slot: &mut String, v: &Option<String>| {
                if let Some(v) = v {
                    *slot = v.clone();
                }
            };
            set(&mut r.anchor, &m.anchor);
            set(&mut r.mail, &m.mail);
            set(&mut r.display_name, &m.display_name);
            set(&mut r.given_name, &m.given_name);
            set(&mut r.surname, &m.surname);
            set(&mut r.business_phone, &m.business_phone);
            set(&mut r.mobile_phone, &m.mobile_phone);
            set(&mut r.title, &m.title);
            set(&mut r.department, &m.department);
            set(&mut r.company, &m.company);
            if let Some(a) = &m.aliases {
                r.aliases = a.clone();
            }
            if let Some(a) = &m.members {
                r.members = a.clone();
            }
        }
        r
    }
}

/// The configuration of one LDAP or AD system.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawLdapConfig")]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// A PEM file of the CA certificates to trust (instead of the system's).
    pub ca_file: Option<String>,
    /// Turn certificate verification off (logs a warning on every connect).
    pub insecure_skip_verify: bool,
    /// Allow the simple bind over a cleartext TCP connection (an `ldap://`
    /// url without `starttls`). Default `false`: such a bind sends the bind
    /// DN and the password over the wire unencrypted, readable by anyone on
    /// the path, so the connector refuses to be set up that way (`coexist
    /// check-config` fails) and says to set `starttls = true` or use an
    /// `ldaps://` url. Set it only for a server that offers no TLS on a
    /// network you trust; every connector set-up then logs a warning.
    /// `ldapi://` (a local socket, not on the wire) needs no opt-in. It
    /// applies to every simple bind, an empty password included (the
    /// password is a secret read only when connecting).
    pub allow_cleartext_bind: bool,
    pub bind_dn: String,
    pub password: SecretRef,
    /// Which kind of server this is. Leave it out of the connection table:
    /// the system's `kind` decides it (`kind = "ldap"` is `openldap`,
    /// `kind = "active_directory"` is `active_directory`), and a `flavor`
    /// written there that contradicts the kind is refused. It sets the
    /// defaults of the attribute map, the filters, the stub schema and
    /// `disabled_when`.
    pub flavor: Flavor,
    /// Where recipients are read (subtree searches).
    pub base_dns: Vec<String>,
    /// Which entries are people (and contacts); flavor default when `None`.
    pub user_filter: Option<String>,
    /// Which entries are groups; flavor default when `None`.
    pub group_filter: Option<String>,
    /// The OU stubs are written to; it must exist.
    pub stub_base: String,
    pub stub_schema: StubSchema,
    /// The attribute holding coexist's marker on stubs (default
    /// `description` on both flavors: it is allowed on `inetOrgPerson`
    /// through `person`, and on the AD `contact` class).
    pub marker_attribute: String,
    /// Paged-results page size (AD's MaxPageSize is 1000).
    pub page_size: u32,
    /// Follow search references and referrals (RFC 4511 4.5.3, 4.1.10).
    ///
    /// Off (the default): a subtree search that meets a referral object
    /// skips the subtree below it; the reference is recorded and logged,
    /// and the entries it names are not read (add their DNs to `base_dns`
    /// to read them).
    ///
    /// On: every reference a read meets is searched with the same filter
    /// and attributes: its LDAP URL's DN as base (RFC 4516,
    /// percent-decoded), its scope if it has one, else the original scope.
    /// A reference to the system's own host and port reuses the system's
    /// connection; another server gets a connection of its own, bound with
    /// the same `bind_dn` and password and the same TLS settings
    /// (`ca_file`, `insecure_skip_verify`). When the system's connection is
    /// protected (`ldaps://`, `starttls`, `ldapi://`), an `ldap://`
    /// reference is reached with StartTLS, never in the clear, and a
    /// reference to another local socket is refused. References are
    /// followed at most 5 deep, and one leading where the read has been
    /// already is not read again (no loops, no duplicate entries).
    /// A reference that cannot be followed (a bad URL, an unreachable
    /// server, a refused bind or StartTLS, a missing DN) becomes a problem
    /// naming its URL and makes the pull incomplete, so nothing is deleted
    /// on that run. Entries read through a reference are mapped like any
    /// other. Deltas do not see behind references: after a full read that
    /// followed one, the next pull is a full read again.
    ///
    /// On AD, a search from the domain root always meets a reference to
    /// the Configuration partition (`ldap://<domain>/CN=Configuration,…`):
    /// with this on, that host name must resolve and accept the bind, or
    /// every pull is incomplete; prefer base DNs below the root.
    pub follow_referrals: bool,
    /// Further attributes read into `Recipient::extra`.
    pub extra_attributes: Vec<String>,
    /// Overrides of the flavor's attribute names.
    pub attribute_map: Option<AttributeMap>,
    /// The timeout of every network operation, in seconds.
    pub timeout_seconds: u64,
    /// The incremental read method (default: the best available).
    pub incremental: Incremental,
    /// Which accounts are disabled: an entry matching any of these rules is
    /// read with `enabled = false` and gets no stub on other systems (see
    /// [`DisabledWhen`] for the tests and how to write them).
    ///
    /// Default on OpenLDAP: `shadowExpire` passed, `pwdAccountLockedTime`
    /// passed, `nsAccountLock: true`, `accountStatus: disabled` or
    /// `deleted`. Default on Active Directory: `userAccountControl` with
    /// bit 2 (ACCOUNTDISABLE) set. Setting it replaces the defaults (list
    /// them again to keep them); an empty list disables no account. A change
    /// makes the next pull a full read, so every entry is judged again.
    pub disabled_when: Vec<DisabledWhen>,
    /// Exceptions to `disabled_when`: an entry matching any of these rules
    /// (written the same way) is never read as disabled.
    ///
    /// Default on Active Directory: Exchange's shared, room, equipment and
    /// linked mailboxes (`msExchRecipientTypeDetails` with any bit of 54:
    /// 2 linked, 4 shared, 16 room, 32 equipment), whose user accounts
    /// Exchange keeps disabled while their mailboxes receive mail. Default
    /// on OpenLDAP: none. Setting it replaces the default.
    pub disabled_unless: Vec<DisabledWhen>,
    /// Where and how `coexist provision` creates accounts in this system
    /// (the `provision` table); without it, the system is never a
    /// provisioned person's home.
    pub provision: Option<crate::provision::ProvisionTemplate>,
}

/// What the configuration file holds; turned into [`LdapConfig`] with the
/// flavor's defaults filled in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLdapConfig {
    url: String,
    #[serde(default)]
    starttls: bool,
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    insecure_skip_verify: bool,
    #[serde(default)]
    allow_cleartext_bind: bool,
    bind_dn: String,
    password: SecretRef,
    flavor: Flavor,
    base_dns: Vec<String>,
    #[serde(default)]
    user_filter: Option<String>,
    #[serde(default)]
    group_filter: Option<String>,
    stub_base: String,
    #[serde(default)]
    stub_schema: Option<StubSchema>,
    #[serde(default)]
    marker_attribute: Option<String>,
    #[serde(default)]
    page_size: Option<u32>,
    #[serde(default)]
    follow_referrals: bool,
    #[serde(default)]
    extra_attributes: Vec<String>,
    #[serde(default)]
    attribute_map: Option<AttributeMap>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
    #[serde(default)]
    incremental: Incremental,
    #[serde(default)]
    disabled_when: Option<Vec<DisabledWhen>>,
    #[serde(default)]
    disabled_unless: Option<Vec<DisabledWhen>>,
    #[serde(default)]
    provision: Option<crate::provision::ProvisionTemplate>,
}

impl TryFrom<RawLdapConfig> for LdapConfig {
    type Error = String;

    fn try_from(raw: RawLdapConfig) -> Result<Self, Self::Error> {
        let mut config = LdapConfig::new(
            raw.flavor,
            raw.url,
            raw.bind_dn,
            raw.password,
            raw.base_dns,
            raw.stub_base,
        );
        config.starttls = raw.starttls;
        config.ca_file = raw.ca_file;
        config.insecure_skip_verify = raw.insecure_skip_verify;
        config.allow_cleartext_bind = raw.allow_cleartext_bind;
        config.user_filter = raw.user_filter;
        config.group_filter = raw.group_filter;
        if let Some(s) = raw.stub_schema {
            config.stub_schema = s;
        }
        if let Some(m) = raw.marker_attribute {
            config.marker_attribute = m;
        }
        if let Some(p) = raw.page_size {
            config.page_size = p;
        }
        config.follow_referrals = raw.follow_referrals;
        config.extra_attributes = raw.extra_attributes;
        config.attribute_map = raw.attribute_map;
        if let Some(t) = raw.timeout_seconds {
            config.timeout_seconds = t;
        }
        config.incremental = raw.incremental;
        if let Some(rules) = raw.disabled_when {
            config.disabled_when = rules;
        }
        if let Some(rules) = raw.disabled_unless {
            config.disabled_unless = rules;
        }
        config.provision = raw.provision;
        config.validate()?;
        Ok(config)
    }
}

/// The default filter for people on OpenLDAP: mail-carrying entries of the
/// usual person classes.
pub const OPENLDAP_USER_FILTER: &str = "(&(|(objectClass=inetOrgPerson)(objectClass=inetLocalMailRecipient)(objectClass=qmailUser))(|(mail=*)(mailLocalAddress=*)))";
/// The default filter for groups on OpenLDAP.
pub const OPENLDAP_GROUP_FILTER: &str =
    "(&(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))(mail=*))";
/// The default filter for users and contacts on AD (computers excluded).
pub const AD_USER_FILTER: &str = "(&(|(&(objectClass=user)(!(objectClass=computer)))(objectClass=contact))(|(mail=*)(proxyAddresses=*)))";
/// The default filter for groups on AD.
pub const AD_GROUP_FILTER: &str = "(&(objectClass=group)(|(mail=*)(proxyAddresses=*)))";

impl LdapConfig {
    /// A configuration with the flavor's defaults.
    pub fn new(
        flavor: Flavor,
        url: impl Into<String>,
        bind_dn: impl Into<String>,
        password: SecretRef,
        base_dns: Vec<String>,
        stub_base: impl Into<String>,
    ) -> Self {
        LdapConfig {
            url: url.into(),
            starttls: false,
            ca_file: None,
            insecure_skip_verify: false,
            allow_cleartext_bind: false,
            bind_dn: bind_dn.into(),
            password,
            flavor,
            base_dns,
            user_filter: None,
            group_filter: None,
            stub_base: stub_base.into(),
            stub_schema: match flavor {
                Flavor::Openldap => StubSchema::InetLocalMailRecipient,
                Flavor::ActiveDirectory => StubSchema::AdContact,
            },
            marker_attribute: "description".into(),
            page_size: 1000,
            follow_referrals: false,
            extra_attributes: Vec::new(),
            attribute_map: None,
            timeout_seconds: 30,
            incremental: Incremental::Auto,
            disabled_when: DisabledWhen::defaults(flavor),
            disabled_unless: DisabledWhen::exceptions(flavor),
            provision: None,
        }
    }

    /// Checks the settings that can be checked without a server.
    pub fn validate(&self) -> Result<(), String> {
        let url = self.url.to_ascii_lowercase();
        if !(url.starts_with("ldap://")
            || url.starts_with("ldaps://")
            || url.starts_with("ldapi://"))
        {
            return Err(format!(
                "url `{}` must start with ldap://, ldaps:// or ldapi://",
                self.url
            ));
        }
        if self.starttls && !url.starts_with("ldap://") {
            return Err("starttls needs an ldap:// url (ldaps:// is TLS already)".into());
        }
        if self.base_dns.is_empty() {
            return Err("base_dns must name at least one base DN".into());
        }
        if self.stub_base.trim().is_empty() {
            return Err("stub_base must name the OU stubs are written to".into());
        }
        if self.marker_attribute.trim().is_empty() {
            return Err("marker_attribute must not be empty".into());
        }
        if self.page_size == 0 {
            return Err("page_size must be at least 1".into());
        }
        if self.timeout_seconds == 0 {
            return Err("timeout_seconds must be at least 1".into());
        }
        let rules = (self.disabled_when.iter().map(|r| ("disabled_when", r)))
            .chain(self.disabled_unless.iter().map(|r| ("disabled_unless", r)));
        for (key, rule) in rules {
            if rule.attribute().trim().is_empty() {
                return Err(format!("{key}: every rule must name an attribute"));
            }
            match rule {
                DisabledWhen::Equals { attribute, values } if values.is_empty() => {
                    return Err(format!(
                        "{key}: the `equals` rule of {attribute} must list values"
                    ))
                }
                DisabledWhen::BitsSet { attribute, mask: 0 } => {
                    return Err(format!(
                        "{key}: the `bits_set` rule of {attribute} needs a mask"
                    ))
                }
                _ => {}
            }
        }
        match (self.flavor, self.incremental) {
            (_, Incremental::Auto)
            | (Flavor::Openldap, Incremental::ContentSync | Incremental::ModifyTimestamp)
            | (Flavor::ActiveDirectory, Incremental::Dirsync | Incremental::UsnChanged) => {}
            (flavor, method) => {
                return Err(format!(
                    "incremental {method:?} does not fit flavor {flavor:?}"
                ))
            }
        }
        match (self.flavor, self.stub_schema) {
            (Flavor::ActiveDirectory, StubSchema::AdContact)
            | (Flavor::Openldap, StubSchema::InetLocalMailRecipient | StubSchema::Qmail) => Ok(()),
            (flavor, schema) => Err(format!(
                "stub_schema {schema:?} does not fit flavor {flavor:?}"
            )),
        }
    }

    /// The filter selecting people (and contacts).
    pub fn effective_user_filter(&self) -> &str {
        match (&self.user_filter, self.flavor) {
            (Some(f), _) => f,
            (None, Flavor::Openldap) => OPENLDAP_USER_FILTER,
            (None, Flavor::ActiveDirectory) => AD_USER_FILTER,
        }
    }

    /// The filter selecting groups.
    pub fn effective_group_filter(&self) -> &str {
        match (&self.group_filter, self.flavor) {
            (Some(f), _) => f,
            (None, Flavor::Openldap) => OPENLDAP_GROUP_FILTER,
            (None, Flavor::ActiveDirectory) => AD_GROUP_FILTER,
        }
    }

    /// The attribute names in force.
    pub fn attributes(&self) -> ResolvedAttributes {
        ResolvedAttributes::resolve(self.flavor, self.attribute_map.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<LdapConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn flavor_defaults_are_filled_in() {
        let c = parse(
            r#"{"url":"ldap://h","bind_dn":"cn=a","password":{"env":"X"},"flavor":"active_directory",
                "base_dns":["DC=ad"],"stub_base":"OU=c,DC=ad"}"#,
        )
        .unwrap();
        assert_eq!(c.stub_schema, StubSchema::AdContact);
        assert_eq!(c.page_size, 1000);
        assert_eq!(c.timeout_seconds, 30);
        assert_eq!(c.marker_attribute, "description");
        assert_eq!(c.attributes().anchor, "objectGUID");
        let o = parse(
            r#"{"url":"ldaps://h","bind_dn":"cn=a","password":{"file":"/p"},"flavor":"openldap",
                "base_dns":["dc=x"],"stub_base":"ou=c,dc=x","stub_schema":"qmail",
                "attribute_map":{"department":"ou"}}"#,
        )
        .unwrap();
        assert_eq!(o.stub_schema, StubSchema::Qmail);
        assert_eq!(o.attributes().department, "ou");
        assert_eq!(o.attributes().anchor, "entryUUID");
    }

    #[test]
    fn disabled_when_defaults_to_the_flavors_rules_and_is_replaced_when_set() {
        let base = r#""url":"ldap://h","bind_dn":"cn=a","password":{"env":"X"},
                "base_dns":["dc=x"],"stub_base":"ou=c,dc=x""#;
        let o = parse(&format!(r#"{{{base},"flavor":"openldap"}}"#)).unwrap();
        let attributes: Vec<&str> = o
            .disabled_when
            .iter()
            .map(DisabledWhen::attribute)
            .collect();
        assert_eq!(
            attributes,
            [
                "shadowExpire",
                "pwdAccountLockedTime",
                "nsAccountLock",
                "accountStatus"
            ]
        );
        let ad = parse(&format!(r#"{{{base},"flavor":"active_directory"}}"#)).unwrap();
        assert_eq!(
            ad.disabled_when,
            [DisabledWhen::BitsSet {
                attribute: "userAccountControl".into(),
                mask: 2
            }]
        );
        let set = parse(&format!(
            r#"{{{base},"flavor":"openldap","disabled_when":[
                {{"when":"equals","attribute":"employeeType","values":["left"]}},
                {{"when":"present","attribute":"pwdAccountLockedTime"}},
                {{"when":"day_passed","attribute":"shadowExpire"}},
                {{"when":"time_passed","attribute":"x-lockedSince"}},
                {{"when":"bits_set","attribute":"flags","mask":6}}]}}"#
        ))
        .unwrap();
        assert_eq!(set.disabled_when.len(), 5);
        assert_eq!(
            set.disabled_when[0],
            DisabledWhen::Equals {
                attribute: "employeeType".into(),
                values: vec!["left".into()]
            }
        );
        let none = parse(&format!(
            r#"{{{base},"flavor":"openldap","disabled_when":[]}}"#
        ))
        .unwrap();
        assert!(none.disabled_when.is_empty());
        for bad in [
            r#"[{"when":"equals","attribute":"a","values":[]}]"#,
            r#"[{"when":"bits_set","attribute":"a","mask":0}]"#,
            r#"[{"when":"present","attribute":" "}]"#,
            r#"[{"when":"sometimes","attribute":"a"}]"#,
            r#"[{"when":"present","attribute":"a","colour":"red"}]"#,
        ] {
            let refused = parse(&format!(
                r#"{{{base},"flavor":"openldap","disabled_when":{bad}}}"#
            ));
            assert!(refused.is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn disabled_unless_defaults_to_exchanges_resource_mailboxes_on_ad_only() {
        let base = r#""url":"ldap://h","bind_dn":"cn=a","password":{"env":"X"},
                "base_dns":["dc=x"],"stub_base":"ou=c,dc=x""#;
        let ad = parse(&format!(r#"{{{base},"flavor":"active_directory"}}"#)).unwrap();
        assert_eq!(
            ad.disabled_unless,
            [DisabledWhen::BitsSet {
                attribute: "msExchRecipientTypeDetails".into(),
                mask: 54
            }]
        );
        let o = parse(&format!(r#"{{{base},"flavor":"openldap"}}"#)).unwrap();
        assert!(o.disabled_unless.is_empty());
        let set = parse(&format!(
            r#"{{{base},"flavor":"openldap","disabled_unless":[
                {{"when":"equals","attribute":"employeeType","values":["resource"]}}]}}"#
        ))
        .unwrap();
        assert_eq!(set.disabled_unless.len(), 1);
        let refused = parse(&format!(
            r#"{{{base},"flavor":"openldap","disabled_unless":[{{"when":"equals","attribute":"a","values":[]}}]}}"#
        ));
        assert!(refused.unwrap_err().to_string().contains("disabled_unless"));
    }

    #[test]
    fn unknown_keys_and_bad_settings_are_refused() {
        let unknown = parse(
            r#"{"url":"ldap://h","bind_dn":"cn=a","password":{"env":"X"},"flavor":"openldap",
                "base_dns":["dc=x"],"stub_base":"ou=c","colour":"red"}"#,
        );
        assert!(unknown.is_err());
        let mismatch = parse(
            r#"{"url":"ldap://h","bind_dn":"cn=a","password":{"env":"X"},"flavor":"openldap",
                "base_dns":["dc=x"],"stub_base":"ou=c","stub_schema":"ad_contact"}"#,
        );
        assert!(mismatch.unwrap_err().to_string().contains("does not fit"));
        let starttls_on_ldaps = parse(
            r#"{"url":"ldaps://h","starttls":true,"bind_dn":"cn=a","password":{"env":"X"},
                "flavor":"openldap","base_dns":["dc=x"],"stub_base":"ou=c"}"#,
        );
        assert!(starttls_on_ldaps.is_err());
    }
}
