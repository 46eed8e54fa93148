//! Benchmarks against the real slapd of `deploy/testenv.sh`, each compared
//! with OpenLDAP's own client in the same run:
//!
//! * a full pull of 100,000 entries vs `ldapsearch -E pr=1000/noprompt`
//!   fetching the same entries and attributes (same base, filter and
//!   attribute list, page size 1000 on both sides) to /dev/null (target
//!   ≤ 1.3x): each side runs once untimed, then three times alternating,
//!   and the medians are compared;
//! * writing 10,000 stubs (`apply_many`) vs `ldapadd` loading the same
//!   entries from LDIF (target ≤ 1.0x), three runs each, alternating,
//!   medians compared.
//!
//! The 100,000 entries are loaded once (with `ldapadd -c`) into
//! `ou=bench-100k` of the database without syncprov and kept for later runs.
//! The benchmark uses mimalloc as the global allocator, as the coexist
//! binary does.
//!
//! Run: `deploy/testenv.sh up slapd && cargo bench -p coexist-ldap`
//! (`COEXIST_BENCH_ONLY_PULL=1` or `COEXIST_BENCH_ONLY_WRITE=1` for one
//! half). slapd's CPU time per write run is printed too: the server is the
//! bottleneck of the writes, and its share varies a lot from run to run on
//! a shared machine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use coexist_connector::{
    Attributes, Connector, NoProgress, Operation, RecipientKind, Route, SecretRef, Stub,
};
use coexist_ldap::{Flavor, LdapConfig, LdapConnector};
use coexist_testenv::TestServer;

const PULL_ENTRIES: usize = 100_000;
const STUBS: usize = 10_000;
/// Timed runs of each side of the pull comparison (after one untimed).
const RUNS: usize = 3;

// The coexist binary runs on mimalloc; so does its connector here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The CPU time slapd has used so far (its pid file in the test
/// environment), to tell the server's share of a run.
fn slapd_cpu() -> Option<f64> {
    let pid =
        std::fs::read_to_string(coexist_testenv::try_var("COEXIST_TEST_SLAPD_PIDFILE")?).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn list(times: &[Duration]) -> String {
    times
        .iter()
        .map(|t| format!("{:.2} s", t.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many entries with a mail `ldapsearch` finds below `base`.
fn count(ldap: &TestServer, base: &str) -> usize {
    let out = ldap
        .plain_command("ldapsearch")
        .args([
            "-LLL",
            "-E",
            "pr=1000/noprompt",
            "-b",
            base,
            "(mail=*)",
            "1.1",
        ])
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("dn:"))
            .count(),
        Err(_) => 0,
    }
}

/// Loads `ldif` with `ldapadd -c` (going on past entries that exist),
/// returning how long it took.
fn load(ldap: &TestServer, ldif: &str) -> Duration {
    let start = Instant::now();
    let mut child = ldap
        .plain_command("ldapadd")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ldapadd: {e} (install ldap-utils)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ldif.as_bytes())
        .unwrap();
    child.wait().unwrap();
    start.elapsed()
}

/// Deletes `dn` and everything below it, if it exists.
fn delete_tree(ldap: &TestServer, dn: &str) {
    let _ = ldap.plain_command("ldapdelete").args(["-r", dn]).output();
}

fn ou(dn: &str) -> String {
    let name = dn.split(',').next().unwrap().trim_start_matches("ou=");
    format!("dn: {dn}\nobjectClass: organizationalUnit\nou: {name}\n\n")
}

fn ratio_line(what: &str, ours: Duration, theirs: Duration, target: f64) {
    let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
    println!(
        "{what}: coexist {:.2} s, reference {:.2} s, ratio {:.2} (target <= {target:.1}) {}",
        ours.as_secs_f64(),
        theirs.as_secs_f64(),
        ratio,
        if ratio <= target { "PASS" } else { "FAIL" }
    );
}

fn main() {
    let only_pull = std::env::var("COEXIST_BENCH_ONLY_PULL").is_ok();
    let only_write = std::env::var("COEXIST_BENCH_ONLY_WRITE").is_ok();
    // The database without syncprov; the reference client speaks plain
    // LDAP, as the connector does here.
    let ldap = TestServer::slapd_plain();
    let base = ldap.base.clone();
    let pw_file = std::env::temp_dir().join("coexist-ldap-bench-pw");
    std::fs::write(&pw_file, &ldap.password).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // --- pull of 100,000 entries -----------------------------------------
    let pull_base = format!("ou=bench-100k,{base}");
    let have = count(&ldap, &pull_base);
    if have != PULL_ENTRIES {
        println!("loading {PULL_ENTRIES} entries into {pull_base} (once; kept for later runs; found {have})");
        delete_tree(&ldap, &pull_base);
        let mut ldif = ou(&pull_base);
        for i in 0..PULL_ENTRIES {
            ldif.push_str(&format!(
                "dn: uid=u{i},{pull_base}\nobjectClass: inetOrgPerson\nobjectClass: inetLocalMailRecipient\nuid: u{i}\ncn: User Number {i}\nsn: Number{i}\ngivenName: User\ndisplayName: User Number {i}\nmail: u{i}@acmecorp.com\nmailLocalAddress: user.{i}@acmecorp.com\ntelephoneNumber: +1 555 {i:06}\ntitle: Engineer\ndepartmentNumber: D{}\n\n",
                i % 97
            ));
        }
        let took = load(&ldap, &ldif);
        println!("loaded in {:.1} s", took.as_secs_f64());
    }
    let mut config = LdapConfig::new(
        Flavor::Openldap,
        ldap.url.clone(),
        ldap.bind_dn.clone(),
        SecretRef::File {
            file: pw_file.display().to_string(),
        },
        vec![pull_base.clone()],
        pull_base.clone(),
    );
    config.page_size = 1000;
    // Plain LDAP like the reference client (ldapsearch): a local test
    // server, so the cleartext bind is allowed explicitly.
    config.allow_cleartext_bind = true;
    let reader = coexist_ldap::read::Reader::new("bench", &config);
    let scope = reader.scopes().remove(0);
    let attrs = reader.mapper.read_attributes();
    let connector = LdapConnector::new("bench", config.clone()).unwrap();
    if !only_write {
        let pull = || {
            let start = Instant::now();
            let pull = runtime
                .block_on(connector.pull(None, &NoProgress))
                .expect("pull");
            let took = start.elapsed();
            assert_eq!(
                pull.recipients.len(),
                PULL_ENTRIES,
                "{:?}",
                pull.problems.first()
            );
            took
        };
        let search = || {
            let start = Instant::now();
            let status = ldap
                .plain_command("ldapsearch")
                .args(["-E", "pr=1000/noprompt", "-b", &scope.base, &scope.filter])
                .args(&attrs)
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            start.elapsed()
        };
        // Warm the server's caches and both clients once, untimed; then time
        // alternating runs and compare the medians.
        let _ = pull();
        let _ = search();
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..RUNS {
            ours.push(pull());
            theirs.push(search());
        }
        println!(
            "  pull runs: coexist {}; ldapsearch {} (same base, filter and {} attributes)",
            list(&ours),
            list(&theirs),
            attrs.len()
        );
        ratio_line(
            &format!("pull of {PULL_ENTRIES} entries vs ldapsearch -E pr=1000 (median of {RUNS})"),
            median(&mut ours),
            median(&mut theirs),
            1.3,
        );
        // For the record: the ldap3 library alone (paged search, entries parsed).
        let raw = runtime.block_on(async {
            let (conn, mut l) = ldap3::LdapConnAsync::new(&ldap.url).await.unwrap();
            tokio::spawn(async move {
                let _ = conn.drive().await;
            });
            l.simple_bind(&ldap.bind_dn, &ldap.password).await.unwrap();
            let start = Instant::now();
            let mut stream = l
                .streaming_search_with(
                    ldap3::adapters::PagedResults::new(1000),
                    &scope.base,
                    ldap3::Scope::Subtree,
                    &scope.filter,
                    attrs.clone(),
                )
                .await
                .unwrap();
            let mut n = 0;
            while let Some(e) = stream.next().await.unwrap() {
                let _ = ldap3::SearchEntry::construct(e);
                n += 1;
            }
            assert_eq!(n, PULL_ENTRIES);
            start.elapsed()
        });
        println!(
            "  (ldap3 alone, paged search with entries parsed: {:.2} s)",
            raw.as_secs_f64()
        );
    }
    if only_pull {
        return;
    }
    // --- writing 10,000 stubs ------------------------------------------------
    let ref_base = format!("ou=bench-ldapadd,{base}");
    let our_base = format!("ou=bench-stubs,{base}");
    delete_tree(&ldap, &ref_base);
    delete_tree(&ldap, &our_base);
    load(&ldap, &(ou(&ref_base) + &ou(&our_base)));
    let stubs: Vec<Stub> = (0..STUBS)
        .map(|i| Stub {
            anchor: format!("google:{i}"),
            kind: RecipientKind::Person,
            primary_address: format!("s{i}@acmecorp.com"),
            aliases: vec![format!("stub.{i}@acmecorp.com")],
            route: Route::Address(format!("s{i}@gapps.acmecorp.com")),
            attributes: Attributes {
                display_name: Some(format!("Stub Number {i}")),
                given_name: Some("Stub".into()),
                surname: Some(format!("Number{i}")),
                business_phone: Some(format!("+1 555 {i:06}")),
                title: Some("Engineer".into()),
                department: Some(format!("D{}", i % 97)),
                ..Attributes::default()
            },
        })
        .collect();
    let mut ref_config = config.clone();
    ref_config.stub_base = ref_base.clone();
    let ref_writer = coexist_ldap::write::Writer::new("bench", &ref_config);
    let mut ldif = String::new();
    for s in &stubs {
        let d = ref_writer.desired(s).unwrap();
        ldif.push_str(&format!("dn: {}\n", d.dn));
        for c in &d.object_classes {
            ldif.push_str(&format!("objectClass: {c}\n"));
        }
        for (k, vals) in &d.attributes {
            for val in vals {
                ldif.push_str(&format!("{k}: {val}\n"));
            }
        }
        ldif.push('\n');
    }
    let mut our_config = config.clone();
    our_config.stub_base = our_base.clone();
    let ops: Vec<Operation> = stubs
        .into_iter()
        .map(|stub| Operation::Create { stub })
        .collect();
    // Alternating runs into emptied OUs; the medians are compared.
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for run in 0..RUNS {
        if run > 0 {
            delete_tree(&ldap, &ref_base);
            delete_tree(&ldap, &our_base);
            load(&ldap, &(ou(&ref_base) + &ou(&our_base)));
        }
        let s0 = slapd_cpu();
        theirs.push(load(&ldap, &ldif));
        let s1 = slapd_cpu();
        assert_eq!(count(&ldap, &ref_base), STUBS, "ldapadd loaded everything");
        let writer = LdapConnector::new("bench", our_config.clone()).unwrap();
        let start = Instant::now();
        let results = runtime.block_on(writer.apply_many(&ops));
        ours.push(start.elapsed());
        if let (Some(s0), Some(s1), Some(s2)) = (s0, s1, slapd_cpu()) {
            println!(
                "    slapd CPU time: {:.2} s for ldapadd, {:.2} s for coexist",
                s1 - s0,
                s2 - s1
            );
        }
        let failed = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(failed, 0, "{:?}", results.iter().find(|r| r.is_err()));
        assert_eq!(count(&ldap, &our_base), STUBS);
    }
    println!(
        "  write runs: coexist {}; ldapadd {}",
        list(&ours),
        list(&theirs)
    );
    ratio_line(
        &format!("writing {STUBS} stubs vs ldapadd (median of {RUNS})"),
        median(&mut ours),
        median(&mut theirs),
        1.0,
    );
    delete_tree(&ldap, &ref_base);
    delete_tree(&ldap, &our_base);
    let _ = std::fs::remove_file(&pw_file);
}
