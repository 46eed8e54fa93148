//! The acmecorp organisation of the seeds, for `coexist demo`.
//!
//! 1000 people: 100 with their mailbox on Google Workspace (routing domain
//! gapps.acmecorp.com, the MX, catch-all to the mail server), 100 on
//! Microsoft 365 (routing domain acmecorp.mail.onmicrosoft.com, where each
//! mailbox answers only at the proxy address Exchange gave it, such as
//! `adoe@…` for ada.doe@acmecorp.com) and 800 on an LDAP-backed mail
//! server, with aliases and a few groups. The data is generated
//! deterministically and written as the seed files of three `simulated`
//! systems (no credentials), with a `coexist.toml` beside them. [`run`]
//! writes it, syncs twice (the second finds nothing left to do), exports the
//! GAL and traces one message between each pair of systems, for the CLI to
//! print.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coexist_connector::{Attributes, Recipient, RecipientKind};
use coexist_simulated::Seed;
use serde::Serialize;
use thiserror::Error;

use crate::config::{Config, ConfigError};
use crate::engine::{Engine, EngineError, ProgressSink, RunOptions, SyncReport};
use crate::exit;
use crate::export::{export, Format};
use crate::reconcile::route::{trace, Origin, StagedView, Trace};
use crate::store::{Store, StoreError};

const GIVEN: [&str; 40] = [
    "Aarav", "Ada", "Alan", "Amara", "Ana", "Arjun", "Bea", "Carlos", "Chen", "Dara", "Diego",
    "Elif", "Emma", "Farah", "Grace", "Hana", "Ines", "Ivan", "Jamal", "Jin", "Kavya", "Lars",
    "Leila", "Lin", "Maya", "Mei", "Nadia", "Noah", "Olu", "Omar", "Priya", "Rahul", "Rosa",
    "Sana", "Sofia", "Tariq", "Uma", "Vikram", "Yara", "Zoë",
];
const SURNAME: [&str; 50] = [
    "Abbott",
    "Bakshi",
    "Banerjee",
    "Becker",
    "Costa",
    "Das",
    "Dubois",
    "Evans",
    "Fernandes",
    "Fischer",
    "Garcia",
    "Gupta",
    "Hall",
    "Hoffmann",
    "Iyer",
    "Jansen",
    "Joshi",
    "Kapoor",
    "Kim",
    "Kowalski",
    "Kumar",
    "Lee",
    "Lopez",
    "Mehta",
    "Menon",
    "Meyer",
    "Nair",
    "Nguyen",
    "Novak",
    "O'Brien",
    "Okafor",
    "Patel",
    "Pereira",
    "Rao",
    "Reddy",
    "Rossi",
    "Sato",
    "Schmidt",
    "Shah",
    "Silva",
    "Singh",
    "Smith",
    "Tanaka",
    "Thomas",
    "Varma",
    "Wagner",
    "Wang",
    "Weber",
    "Yilmaz",
    "Zhang",
];
const DEPARTMENTS: [&str; 6] = [
    "Engineering",
    "Sales",
    "Support",
    "Finance",
    "Operations",
    "Marketing",
];
const TITLES: [&str; 6] = [
    "Engineer",
    "Account Manager",
    "Support Specialist",
    "Analyst",
    "Coordinator",
    "Manager",
];

/// The shared domain of the demo.
pub const DOMAIN: &str = "acmecorp.com";

fn local_part(given: &str, surname: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c == 'ë' { 'e' } else { c })
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase()
    };
    format!("{}.{}", clean(given), clean(surname))
}

/// The routing domain of the demo's Microsoft 365 tenant.
pub const M365_ROUTING_DOMAIN: &str = "acmecorp.mail.onmicrosoft.com";

/// The seeds of acmecorp: `people` people, the first `on_google` of them on
/// Google, the next `on_m365` on Microsoft 365 (each with a proxy address
/// `<initial><surname>@acmecorp.mail.onmicrosoft.com`, as Exchange gives
/// them), the rest on the LDAP mail server.
pub fn acmecorp(people: usize, on_google: usize, on_m365: usize) -> Seeds {
    let mut used = HashSet::new();
    let mut google = Seed::default();
    let mut m365 = Seed::default();
    let mut ldap = Seed::default();
    let mut by_department: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut leaders = Vec::new();
    for i in 0..people {
        let given = GIVEN[i % GIVEN.len()];
        let surname = SURNAME[(i * 7 + i / GIVEN.len()) % SURNAME.len()];
        let mut local = local_part(given, surname);
        if !used.insert(local.clone()) {
            local = format!("{local}{i}");
            used.insert(local.clone());
        }
        let address = format!("{local}@{DOMAIN}");
        let department = DEPARTMENTS[i % DEPARTMENTS.len()];
        let on_google_side = i < on_google;
        let on_m365_side = !on_google_side && i < on_google + on_m365;
        let title = if i % 25 == 0 {
            "Director"
        } else {
            TITLES[(i / 6) % TITLES.len()]
        };
        let mut aliases = Vec::new();
        let initials = format!("{}{}", &local[..1], local.split('.').nth(1).unwrap_or(""));
        if i % 5 == 0 && used.insert(initials.clone()) {
            aliases.push(format!("{initials}@{DOMAIN}"));
        }
        if on_m365_side {
            // Exchange's proxy address in the tenant's routing domain: its
            // local part is the mailbox alias, not the primary's.
            aliases.push(format!("{initials}{i}@{M365_ROUTING_DOMAIN}"));
        }
        let recipient = Recipient {
            anchor: if on_google_side {
                format!("1{:020}", 4_200_000 + i)
            } else if on_m365_side {
                format!("0c5e{:04}-1111-4000-8000-{:012}", i % 10_000, i)
            } else {
                format!("5a1d{:04}-0000-4000-8000-{:012}", i % 10_000, i)
            },
            kind: RecipientKind::Person,
            primary_address: address.clone(),
            aliases,
            mailbox: true,
            enabled: true,
            attributes: Attributes {
                display_name: Some(format!("{given} {surname}")),
                given_name: Some(given.to_string()),
                surname: Some(surname.to_string()),
                business_phone: Some(format!("+1 555 01{:02} {:04}", i % 100, i)),
                mobile_phone: None,
                title: Some(title.to_string()),
                department: Some(department.to_string()),
                company: Some("Acme Corp".to_string()),
            },
            members: vec![],
            forwards_to: None,
            extra: BTreeMap::new(),
            locator: None,
            etag: Some(format!("\"v1-{i}\"")),
        };
        by_department
            .entry(department)
            .or_default()
            .push(address.clone());
        if title == "Director" {
            leaders.push(address);
        }
        if on_google_side {
            google.recipients.push(recipient);
        } else if on_m365_side {
            m365.recipients.push(recipient);
        } else {
            ldap.recipients.push(recipient);
        }
    }
    let group = |anchor: String, name: &str, members: Vec<String>| Recipient {
        anchor,
        kind: RecipientKind::Group,
        primary_address: format!("{}@{DOMAIN}", name.to_lowercase()),
        aliases: vec![],
        mailbox: true,
        enabled: true,
        attributes: Attributes {
            display_name: Some(format!("{name} team")),
            ..Attributes::default()
        },
        members,
        forwards_to: None,
        extra: BTreeMap::new(),
        locator: None,
        etag: None,
    };
    for (n, (department, members)) in by_department.into_iter().enumerate() {
        ldap.recipients.push(group(
            format!("9a0b{n:04}-0000-4000-8000-000000000000"),
            department,
            members,
        ));
    }
    google
        .recipients
        .push(group("1g-leadership".into(), "Leadership", leaders));
    Seeds { google, m365, ldap }
}

/// The seed of each of the demo's systems.
#[derive(Debug, Clone, Default)]
pub struct Seeds {
    pub google: Seed,
    pub m365: Seed,
    pub ldap: Seed,
}

/// The demo's configuration file.
pub const CONFIG: &str = r#"# The acmecorp co-existence of the seeds (google-coexistence.txt):
# Google Workspace holds 100 mailboxes and the MX; unknown acmecorp.com
# addresses go to the LDAP mail server by Google's catch-all route. The mail
# server forwards Google users to the alias routing domain gapps.acmecorp.com.

[organisation]
shared_domains = ["acmecorp.com"]

[topology]
mx = "google"

[[systems]]
id = "google"
kind = "simulated"
routing_domain = "gapps.acmecorp.com"
stub_style = "domain_routing"          # shared contacts; the catch-all routes mail
unknown_recipient = { relay = "ldap" } # Gmail default routing: catch-all to the mail server

[systems.connection]
seed = "google.json"
state = "google-state.jsonl"

[[systems]]
id = "ldap"
kind = "simulated"
routing_domain = "mithi.acmecorp.com"
smart_host = "mail.acmecorp.com"
stub_style = "routing_address"         # "forward to alternate domain" entries
unknown_recipient = "reject"

[systems.connection]
seed = "ldap.json"
state = "ldap-state.jsonl"

# Microsoft 365 holds 100 mailboxes. Its routing domain is no blanket alias:
# a mailbox answers there only at the proxy address Exchange gave it, so the
# other systems' stubs route to that address. Simulated here (kind = "m365"
# with a tenant's credentials in a real deployment).
[[systems]]
id = "m365"
kind = "simulated"
routing_domain = "acmecorp.mail.onmicrosoft.com"
routing_domain_is_alias = false
stub_style = "mail_contact"            # Exchange Online mail contacts
unknown_recipient = "reject"

[systems.connection]
seed = "m365.json"
state = "m365-state.jsonl"
"#;

/// Writes the demo organisation (seeds and configuration) into `dir`.
pub fn write(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let seeds = acmecorp(1000, 100, 100);
    let encode = |seed: &Seed| serde_json::to_vec_pretty(seed).map_err(std::io::Error::other);
    std::fs::write(dir.join("google.json"), encode(&seeds.google)?)?;
    std::fs::write(dir.join("m365.json"), encode(&seeds.m365)?)?;
    std::fs::write(dir.join("ldap.json"), encode(&seeds.ldap)?)?;
    std::fs::write(dir.join("coexist.toml"), CONFIG)?;
    for stale in [
        "google-state.jsonl",
        "m365-state.jsonl",
        "ldap-state.jsonl",
        "coexist.db",
        "coexist.db-wal",
        "coexist.db-shm",
        "gal.ldif",
    ] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    Ok(())
}

/// Where the demo goes when no folder is given: a new temporary folder.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join(format!("coexist-demo-{}", std::process::id()))
}

/// The LDIF base of the demo's GAL: what `export-gal` uses by default for
/// [`CONFIG`] (`ou=gal` under the first shared domain).
pub const GAL_BASE: &str = "ou=gal,dc=acmecorp,dc=com";

/// Why the demo stopped: the failing step's own error.
#[derive(Debug, Error)]
pub enum DemoError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
}

/// The demo's closing document (what `coexist demo --output json` prints).
#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub dir: String,
    pub recipients: u64,
    pub operations_first_run: u64,
    pub operations_second_run: u64,
    pub conflicts: u64,
    pub stubs_by_system: BTreeMap<String, u64>,
    pub gal_ldif: String,
}

/// A message the demo traces: from a user of system `from` to `to`.
#[derive(Debug)]
pub struct Flow {
    pub from: String,
    pub to: String,
    pub trace: Trace,
}

/// Everything a demo run did: the closing document and what the text
/// output tells besides.
#[derive(Debug)]
pub struct DemoRun {
    pub report: DemoReport,
    /// The demo's configuration file, for the commands to try next.
    pub config: PathBuf,
    pub first: SyncReport,
    pub second: SyncReport,
    /// Between each pair of systems, both ways.
    pub flows: Vec<Flow>,
}

impl DemoRun {
    /// Whether the second sync found nothing left to change and ran clean.
    pub fn settled(&self) -> bool {
        self.report.operations_second_run == 0 && self.second.exit_code() == exit::OK
    }
}

/// Runs the demo in `dir`: writes the organisation ([`write`]), syncs
/// twice, writes the GAL as LDIF to `gal.ldif` and traces a message each
/// way. `actor` is recorded in the runs' audit.
pub async fn run(
    dir: &Path,
    progress: Arc<dyn ProgressSink>,
    actor: String,
) -> Result<DemoRun, DemoError> {
    write(dir)?;
    let config_path = dir.join("coexist.toml");
    let config = Config::load(&config_path)?;
    let connectors = crate::connectors::connect_all(&config)?;
    let store = Store::open(&config.store_url()?).await?;
    let engine = Engine::new(config, store, connectors, progress);
    let options = RunOptions {
        actor,
        ..RunOptions::default()
    };

    let first = engine.sync(&options).await?;
    let second = engine.sync(&options).await?;
    let staged = engine.staged().await?;
    let stubs_by_system = staged
        .systems
        .iter()
        .map(|s| (s.id.clone(), s.stubs.len() as u64))
        .collect();
    let gal = engine.store.load_gal().await?;
    let ldif_path = dir.join("gal.ldif");
    std::fs::write(&ldif_path, export(&gal, Format::Ldif, GAL_BASE)?)?;

    // One flow each way, as the seed describes it.
    let view = StagedView::new(&staged);
    let first_at = |home: &str| {
        gal.iter()
            .find(|e| e.home == home)
            .map(|e| e.primary_address.clone())
            .unwrap_or_default()
    };
    let systems = ["google", "ldap", "m365"];
    let flows = systems
        .iter()
        .flat_map(|from| {
            systems
                .iter()
                .filter(move |to| *to != from)
                .map(move |to| (*from, first_at(to)))
        })
        .map(|(from, to)| Flow {
            trace: trace(
                &engine.config.policy,
                &view,
                &Origin::System(from.into()),
                &to,
            ),
            from: from.into(),
            to,
        })
        .collect();
    let operations = |r: &SyncReport| r.apply.done + r.apply.failed + r.apply.withheld;
    let report = DemoReport {
        dir: dir.display().to_string(),
        recipients: gal.len() as u64,
        operations_first_run: operations(&first),
        operations_second_run: operations(&second),
        conflicts: first.plan.summary.conflicts,
        stubs_by_system,
        gal_ldif: ldif_path.display().to_string(),
    };
    Ok(DemoRun {
        report,
        config: config_path,
        first,
        second,
        flows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acmecorp_has_1000_people_100_on_google_100_on_m365_and_unique_addresses() {
        let Seeds { google, m365, ldap } = acmecorp(1000, 100, 100);
        let people = |s: &Seed| {
            s.recipients
                .iter()
                .filter(|r| r.kind == RecipientKind::Person)
                .count()
        };
        assert_eq!(people(&google), 100);
        assert_eq!(people(&m365), 100);
        assert_eq!(people(&ldap), 800);
        assert!(m365.recipients.iter().all(|r| r
            .aliases
            .iter()
            .any(|a| a.ends_with(&format!("@{M365_ROUTING_DOMAIN}")))));
        let mut seen = HashSet::new();
        for r in google
            .recipients
            .iter()
            .chain(&m365.recipients)
            .chain(&ldap.recipients)
        {
            for a in r.addresses() {
                assert!(seen.insert(a.to_string()), "{a} twice");
            }
        }
        assert!(google
            .recipients
            .iter()
            .chain(&ldap.recipients)
            .any(|r| !r.aliases.is_empty()));
        assert!(ldap
            .recipients
            .iter()
            .any(|r| r.kind == RecipientKind::Group));
    }
}
