//! Benchmark: `coexist serve-gal` against OpenLDAP `slapd` serving the
//! same 100,000-recipient GAL, with the same client, in the same run
//! (issue 13).
//!
//! * The GAL: 100,000 people with realistic names (the commonest US
//!   surnames at their census frequencies, Smith first, then a long tail),
//!   addresses, phones, titles, departments.
//! * coexist: a child process (this benchmark re-run with
//!   `COEXIST_BENCH_GAL_CHILD` set, on the binary's allocator, mimalloc, and
//!   a multi-threaded tokio runtime as `coexist serve-gal`) builds the
//!   `GalServer` from the GAL as `serve-gal` does from the store's, then
//!   serves it on a free loopback port. Its `[gal_server]` settings lift the
//!   per-address limits (`max_connections_per_client = 64`,
//!   `requests_per_second = 1000000`, `size_limit = 10000`), since every
//!   client comes from 127.0.0.1 and slapd has no such limits.
//! * slapd: the GAL exported by `coexist::export::export` (what
//!   `coexist export-gal --format ldif` writes) under
//!   `ou=gal,dc=acmecorp,dc=com`, loaded with `slapadd` into an mdb
//!   database with the usual indexes (objectClass eq; cn, sn, givenName,
//!   displayName, mail eq and sub) in a temporary directory, served by the
//!   installed `slapd` (`deploy/testenv.sh up slapd` installs it) on a free
//!   loopback port, stopped at the end.
//! * The client (the same for both, the `ldap3` crate): 16 connections at
//!   once, each bound (slapd: its root DN; coexist: a configured account),
//!   each sending the search again and again for a fixed time: the
//!   substring search `(cn=*smi*)`, an equality search on mail (a random
//!   address each time) and a full dump `(objectClass=*)` in pages of 1000
//!   (all attributes each time). It records each search's latency.
//!
//! Each round measures every search on both servers, one right after the
//! other (the order alternates between rounds); the verdicts use the
//! median round, and the spread over rounds is printed. Targets:
//! throughput at least 1.0x slapd's, p99 latency at most 1.5x slapd's,
//! the coexist server's peak resident memory (VmHWM of its process) under
//! 300 MB. Exits 1 when a target fails.
//!
//! Figures of 2026-12-03 (2 shared cores, median of 3 rounds): `(cn=*smi*)`
//! 16.25x slapd's throughput, p99 0.11x; mail equality 1.43x, p99 1.10x;
//! paged dump 1.19x, p99 0.84x; the server's peak RSS 178 MB (625 MB
//! before its directory became one arena of pre-encoded entries).
//!
//! Run: `cargo bench --bench serve_gal` (slapd must be installed:
//! `deploy/testenv.sh up slapd`). Environment: `GAL_BENCH_SIZE` (recipients,
//! default 100000), `GAL_BENCH_SECONDS` (per search and server, default 8;
//! the dump gets three times as long), `GAL_BENCH_ROUNDS` (default 3),
//! `GAL_BENCH_CLIENTS` (default 16).

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coexist::export::{export, Format};
use coexist_gal_server::{Account, GalServer, Password, Settings};
use coexist_model::{Attributes, GalEntry, RecipientKind};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConnAsync, Scope};

/// The same allocator as the `coexist` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Error = Box<dyn std::error::Error + Send + Sync>;

const SUFFIX: &str = "dc=acmecorp,dc=com";
const BASE: &str = "ou=gal,dc=acmecorp,dc=com";
const DOMAIN: &str = "acmecorp.com";
const PASSWORD: &str = "gal-bench-pw";
const COEXIST_BIND_DN: &str = "cn=addressbook,dc=acmecorp,dc=com";
const SLAPD_BIND_DN: &str = "cn=admin,dc=acmecorp,dc=com";
const CHILD_ENV: &str = "COEXIST_BENCH_GAL_CHILD";
const PAGE: i32 = 1000;
const RSS_LIMIT_MB: f64 = 300.0;
const THROUGHPUT_RATIO: f64 = 1.0;
const P99_RATIO: f64 = 1.5;

/// The commonest US surnames with their frequency per 100,000 people
/// (2010 census), and a few that hold "smi" elsewhere.
const SURNAMES: &[(&str, u32)] = &[
    ("Smith", 828),
    ("Johnson", 655),
    ("Williams", 550),
    ("Brown", 488),
    ("Jones", 478),
    ("Garcia", 395),
    ("Miller", 394),
    ("Davis", 381),
    ("Rodriguez", 364),
    ("Martinez", 349),
    ("Hernandez", 344),
    ("Lopez", 292),
    ("Gonzalez", 282),
    ("Wilson", 280),
    ("Anderson", 279),
    ("Thomas", 276),
    ("Taylor", 262),
    ("Moore", 257),
    ("Jackson", 257),
    ("Martin", 254),
    ("Lee", 253),
    ("Perez", 231),
    ("Thompson", 231),
    ("White", 231),
    ("Harris", 222),
    ("Sanchez", 221),
    ("Clark", 196),
    ("Ramirez", 189),
    ("Lewis", 189),
    ("Robinson", 185),
    ("Walker", 182),
    ("Young", 172),
    ("Allen", 172),
    ("King", 165),
    ("Wright", 164),
    ("Scott", 157),
    ("Torres", 151),
    ("Nguyen", 150),
    ("Hill", 149),
    ("Flores", 148),
    ("Green", 148),
    ("Adams", 144),
    ("Nelson", 143),
    ("Baker", 143),
    ("Hall", 142),
    ("Rivera", 140),
    ("Campbell", 134),
    ("Mitchell", 133),
    ("Carter", 132),
    ("Roberts", 132),
    ("Schmidt", 40),
    ("Goldsmith", 9),
    ("Smiley", 8),
    ("Nesmith", 4),
    ("Smithson", 3),
];

const GIVEN_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Lisa",
    "Daniel",
    "Nancy",
    "Matthew",
    "Betty",
    "Anthony",
    "Sandra",
    "Mark",
    "Margaret",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Andrew",
    "Emily",
    "Paul",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Melissa",
    "George",
    "Deborah",
    "Timothy",
    "Stephanie",
    "Ronald",
    "Rebecca",
    "Jason",
    "Sharon",
    "Edward",
    "Laura",
    "Jeffrey",
    "Cynthia",
    "Ryan",
    "Dorothy",
    "Jacob",
    "Amy",
    "Gary",
    "Kathleen",
    "Nicholas",
    "Angela",
    "Eric",
    "Shirley",
    "Jonathan",
    "Emma",
    "Stephen",
    "Brenda",
    "Larry",
    "Pamela",
    "Justin",
    "Nicole",
    "Scott",
    "Anna",
    "Brandon",
    "Samantha",
    "Benjamin",
    "Katherine",
    "Samuel",
    "Christine",
    "Gregory",
    "Debra",
    "Alexander",
    "Rachel",
    "Patrick",
    "Carolyn",
    "Frank",
    "Janet",
    "Raymond",
    "Maria",
    "Jack",
    "Olivia",
    "Dennis",
    "Heather",
    "Jerry",
    "Helen",
];

/// Syllables of the long tail of surnames (none of them brings "smi").
const SYLLABLES: &[&str] = &[
    "bar", "ber", "bo", "cal", "dan", "del", "do", "fer", "gan", "gor", "ha", "hol", "ka", "kel",
    "lan", "lo", "ma", "mer", "mo", "nak", "no", "pal", "per", "ra", "ri", "ro", "sa", "sto", "ta",
    "ter", "to", "val", "ven", "wa", "win", "ya", "zel", "zu", "ost", "ard",
];

const TITLES: &[&str] = &[
    "Engineer",
    "Senior Engineer",
    "Analyst",
    "Manager",
    "Director",
    "Sales Representative",
    "Accountant",
    "Support Specialist",
    "Designer",
    "Consultant",
];

const DEPARTMENTS: &[&str] = &[
    "Sales",
    "Support",
    "Finance",
    "R&D",
    "Marketing",
    "Operations",
    "Human Resources",
    "Legal",
    "IT",
];

/// A small deterministic random source (splitmix64): the GAL and the
/// addresses searched are the same in every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items
            .get(self.below(items.len()))
            .copied()
            .unwrap_or_default()
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn surname(random: &mut Random) -> String {
    let roll = random.below(100_000);
    let mut at = 0;
    for (name, per_100k) in SURNAMES {
        at += *per_100k as usize;
        if roll < at {
            return (*name).to_string();
        }
    }
    // The long tail: two or three syllables.
    let count = 2 + random.below(2);
    let name: String = (0..count).map(|_| random.pick(SYLLABLES)).collect();
    capitalised(&name)
}

/// The GAL of `n` people.
fn gal(n: usize) -> Vec<GalEntry> {
    let mut random = Random(0x00c0_e215_7a1b);
    let mut taken = std::collections::HashSet::with_capacity(n);
    let mut gal = Vec::with_capacity(n);
    for i in 0..n {
        let given = random.pick(GIVEN_NAMES).to_string();
        let sn = surname(&mut random);
        let local = format!("{}.{}", given.to_lowercase(), sn.to_lowercase());
        let mut address = format!("{local}@{DOMAIN}");
        let mut k = 2;
        while !taken.insert(address.clone()) {
            address = format!("{local}{k}@{DOMAIN}");
            k += 1;
        }
        let department = random.pick(DEPARTMENTS);
        gal.push(GalEntry {
            anchor: format!("{i:08x}-0000-4000-8000-{i:012}"),
            kind: RecipientKind::Person,
            primary_address: address.clone(),
            addresses: vec![address],
            home: ["ldap", "ad", "google", "m365"][i % 4].into(),
            attributes: Attributes {
                display_name: Some(format!("{given} {sn}")),
                given_name: Some(given),
                surname: Some(sn),
                business_phone: Some(format!("+1 555 {:03} {:04}", i / 10_000, i % 10_000)),
                mobile_phone: (i % 3 == 0).then(|| format!("+1 917 {:07}", i)),
                title: Some(random.pick(TITLES).into()),
                department: Some(department.into()),
                company: Some("Acme Corp".into()),
            },
            members: Vec::new(),
            systems: vec!["ldap".into(), "ad".into(), "google".into(), "m365".into()],
            routing_address: None,
        });
    }
    gal
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The child: serves the GAL as `coexist serve-gal` does, prints its port,
/// and exits when its standard input closes.
fn child(n: usize) -> Result<(), Error> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let gal = gal(n);
        let mut settings = Settings::new(BASE);
        settings.accounts = vec![Account {
            dn: COEXIST_BIND_DN.into(),
            password: Password::new(PASSWORD),
        }];
        settings.size_limit = 10_000;
        settings.max_connections_per_client = 64;
        settings.requests_per_second = 1_000_000;
        let server = GalServer::new(settings, &gal)?;
        drop(gal);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        std::io::stdout().flush()?;
        std::thread::spawn(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .is_ok_and(|read| read > 0)
            {}
            std::process::exit(0);
        });
        server.serve(listener).await?;
        Ok(())
    })
}

/// A process of ours, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resident memory of process `pid`: (VmRSS, VmHWM) in MB.
fn memory_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The cn=config of the private slapd: mdb with the usual indexes.
fn slapd_config(dir: &Path) -> String {
    let dir = dir.display();
    let mut config = format!(
        "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: {dir}/slapd.pid\n\
         olcLogLevel: none\nolcSizeLimit: unlimited\nolcTimeLimit: unlimited\nolcToolThreads: 2\n\n\
         dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\n\
         olcModulePath: /usr/lib/ldap\nolcModuleLoad: {{0}}back_mdb\n\n\
         dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n"
    );
    for schema in ["core", "cosine", "inetorgperson"] {
        config.push_str(&format!(
            "\ninclude: file:///etc/ldap/schema/{schema}.ldif\n"
        ));
    }
    config.push_str(&format!(
        "\ndn: olcDatabase={{-1}}frontend,cn=config\nobjectClass: olcDatabaseConfig\n\
         objectClass: olcFrontendConfig\nolcDatabase: {{-1}}frontend\nolcSizeLimit: unlimited\n\
         olcTimeLimit: unlimited\n\n\
         dn: olcDatabase={{0}}config,cn=config\nobjectClass: olcDatabaseConfig\n\
         olcDatabase: {{0}}config\nolcRootDN: cn=admin,cn=config\n\n\
         dn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\n\
         objectClass: olcMdbConfig\nolcDatabase: {{1}}mdb\nolcSuffix: {SUFFIX}\n\
         olcRootDN: {SLAPD_BIND_DN}\nolcRootPW: {PASSWORD}\nolcDbDirectory: {dir}/db\n\
         olcDbMaxSize: 4294967296\nolcDbNoSync: TRUE\nolcSizeLimit: unlimited\n\
         olcTimeLimit: unlimited\nolcDbIndex: objectClass eq\n\
         olcDbIndex: cn,sn,givenName,displayName,mail eq,sub\n\
         olcAccess: {{0}}to * by * read\n"
    ));
    config
}

fn run_tool(command: &mut Command, what: &str) -> Result<(), Error> {
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

/// Loads the GAL's LDIF export into a private slapd and starts it.
fn start_slapd(dir: &Path, gal: &[GalEntry]) -> Result<(Process, u16), Error> {
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir)?;
    std::fs::create_dir_all(dir.join("db"))?;
    std::fs::write(dir.join("config.ldif"), slapd_config(dir))?;
    let exported = export(gal, Format::Ldif, BASE)?;
    let entries = exported.strip_prefix("version: 1\n\n").unwrap_or(&exported);
    let data = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n\
         dc: acmecorp\no: Acme Corp\n\ndn: {BASE}\nobjectClass: organizationalUnit\nou: gal\n\n\
         {entries}"
    );
    std::fs::write(dir.join("gal.ldif"), data)?;
    run_tool(
        Command::new("slapadd")
            .arg("-n0")
            .arg("-F")
            .arg(&config_dir)
            .arg("-l")
            .arg(dir.join("config.ldif")),
        "slapadd of the config",
    )?;
    run_tool(
        Command::new("slapadd")
            .arg("-q")
            .arg("-F")
            .arg(&config_dir)
            .arg("-b")
            .arg(SUFFIX)
            .arg("-l")
            .arg(dir.join("gal.ldif")),
        "slapadd of the GAL",
    )?;
    let port = free_port()?;
    let child = Command::new("slapd")
        .arg("-d")
        .arg("0")
        .arg("-F")
        .arg(&config_dir)
        .arg("-h")
        .arg(format!("ldap://127.0.0.1:{port}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start slapd (deploy/testenv.sh up slapd installs it): {e}"))?;
    let process = Process(child);
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(30) {
            return Err("slapd did not listen within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((process, port))
}

/// Starts the coexist server as a child process; its port.
fn start_coexist(n: usize) -> Result<(Process, u16), Error> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(CHILD_ENV, n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    let port: u16 = line
        .trim()
        .parse()
        .map_err(|_| format!("the coexist server did not start (it said {line:?})"))?;
    Ok((Process(child), port))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Search {
    Substring,
    Equality,
    Dump,
}

impl Search {
    fn name(self) -> &'static str {
        match self {
            Search::Substring => "substring (cn=*smi*)",
            Search::Equality => "equality (mail=<address>)",
            Search::Dump => "paged dump (objectClass=*)",
        }
    }
}

/// A server under test.
#[derive(Clone)]
struct Target {
    name: &'static str,
    url: String,
    bind_dn: &'static str,
}

/// What one search run measured.
#[derive(Clone, Default)]
struct Measure {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    count: usize,
    entries_last: usize,
}

async fn one_search(
    ldap: &mut ldap3::Ldap,
    search: Search,
    addresses: &[String],
    random: &mut Random,
) -> Result<usize, Error> {
    match search {
        Search::Substring => {
            let (entries, _) = ldap
                .search(BASE, Scope::Subtree, "(cn=*smi*)", Vec::<&str>::new())
                .await?
                .success()?;
            Ok(entries.len())
        }
        Search::Equality => {
            let address = addresses
                .get(random.below(addresses.len()))
                .map(String::as_str)
                .unwrap_or_default();
            let (entries, _) = ldap
                .search(
                    BASE,
                    Scope::Subtree,
                    &format!("(mail={address})"),
                    Vec::<&str>::new(),
                )
                .await?
                .success()?;
            Ok(entries.len())
        }
        Search::Dump => {
            let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
                Box::new(EntriesOnly::new()),
                Box::new(PagedResults::new(PAGE)),
            ];
            let mut stream = ldap
                .streaming_search_with(
                    adapters,
                    BASE,
                    Scope::Subtree,
                    "(objectClass=*)",
                    Vec::<&str>::new(),
                )
                .await?;
            let mut n = 0;
            while stream.next().await?.is_some() {
                n += 1;
            }
            stream.finish().await.success()?;
            Ok(n)
        }
    }
}

/// One client: connects, binds, searches until `until`; the latencies and
/// the entries the last search returned.
async fn client(
    target: Target,
    search: Search,
    addresses: Arc<Vec<String>>,
    seed: u64,
    until: Instant,
) -> Result<(Vec<Duration>, usize), Error> {
    let (conn, mut ldap) = LdapConnAsync::new(&target.url).await?;
    ldap3::drive!(conn);
    ldap.simple_bind(target.bind_dn, PASSWORD)
        .await?
        .success()?;
    let mut random = Random(seed);
    let mut times = Vec::new();
    let mut last = 0;
    while Instant::now() < until {
        let t = Instant::now();
        last = one_search(&mut ldap, search, &addresses, &mut random).await?;
        times.push(t.elapsed());
    }
    let _ = ldap.unbind().await;
    Ok((times, last))
}

async fn measure(
    target: &Target,
    search: Search,
    clients: usize,
    seconds: f64,
    addresses: &Arc<Vec<String>>,
) -> Result<Measure, Error> {
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(client(
                target.clone(),
                search,
                Arc::clone(addresses),
                0x5eed + c as u64,
                until,
            ))
        })
        .collect();
    let mut times = Vec::new();
    let mut entries_last = 0;
    for task in tasks {
        let (mut some, last) = task.await??;
        times.append(&mut some);
        entries_last = last;
    }
    let elapsed = start.elapsed().as_secs_f64();
    times.sort();
    let at = |q: f64| {
        let n = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len().max(1)) - 1;
        times.get(n).copied().unwrap_or_default()
    };
    Ok(Measure {
        per_second: times.len() as f64 / elapsed,
        p50: at(0.50),
        p99: at(0.99),
        count: times.len(),
        entries_last,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn spread(values: &[f64]) -> String {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.2}–{hi:.2}")
}

fn main() -> Result<(), Error> {
    if let Ok(n) = std::env::var(CHILD_ENV) {
        return child(n.parse()?);
    }
    let n = env_number("GAL_BENCH_SIZE", 100_000) as usize;
    let seconds = env_number("GAL_BENCH_SECONDS", 8) as f64;
    let rounds = env_number("GAL_BENCH_ROUNDS", 3).max(1) as usize;
    let clients = env_number("GAL_BENCH_CLIENTS", 16).max(1) as usize;
    println!(
        "coexist serve-gal versus slapd: {n} recipients, {clients} clients, {rounds} rounds of {seconds} s a search and server (dump {} s)",
        seconds * 3.0
    );

    let t = Instant::now();
    let gal = gal(n);
    let smiths = gal
        .iter()
        .filter(|e| {
            e.attributes
                .display_name
                .as_deref()
                .is_some_and(|d| d.to_lowercase().contains("smi"))
        })
        .count();
    let addresses: Arc<Vec<String>> =
        Arc::new(gal.iter().map(|e| e.primary_address.clone()).collect());
    let dir = tempfile::tempdir()?;
    let (slapd, slapd_port) = start_slapd(dir.path(), &gal)?;
    drop(gal);
    println!(
        "  slapd: {n} entries loaded with slapadd and started in {:.1} s (setup); {smiths} names hold \"smi\"",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let (coexist, coexist_port) = start_coexist(n)?;
    let coexist_pid = coexist.0.id();
    let (loaded_rss, _) = memory_mb(coexist_pid);
    println!(
        "  coexist: GAL built and served in {:.1} s (setup); RSS after loading {loaded_rss:.0} MB",
        t.elapsed().as_secs_f64()
    );

    let targets = [
        Target {
            name: "coexist",
            url: format!("ldap://127.0.0.1:{coexist_port}"),
            bind_dn: COEXIST_BIND_DN,
        },
        Target {
            name: "slapd",
            url: format!("ldap://127.0.0.1:{slapd_port}"),
            bind_dn: SLAPD_BIND_DN,
        },
    ];
    let searches = [Search::Substring, Search::Equality, Search::Dump];
    let runtime = tokio::runtime::Runtime::new()?;
    // results[search][round] = (coexist, slapd)
    let mut results: Vec<Vec<(Measure, Measure)>> = vec![Vec::new(); searches.len()];
    for round in 0..rounds {
        println!("  round {}:", round + 1);
        for (s, &search) in searches.iter().enumerate() {
            let secs = if search == Search::Dump {
                seconds * 3.0
            } else {
                seconds
            };
            let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            let mut pair = [Measure::default(), Measure::default()];
            for &which in &order {
                let target = &targets[which];
                // A short warm-up, not counted (a dump is its own).
                if search != Search::Dump {
                    runtime.block_on(measure(target, search, clients, 1.0, &addresses))?;
                }
                let m = runtime.block_on(measure(target, search, clients, secs, &addresses))?;
                println!(
                    "    {:<28} {:<8} {:>9.1} /s  p50 {:>8.2} ms  p99 {:>8.2} ms  ({} searches, {} entries each)",
                    search.name(),
                    target.name,
                    m.per_second,
                    ms(m.p50),
                    ms(m.p99),
                    m.count,
                    m.entries_last
                );
                pair[which] = m;
            }
            let [ours, theirs] = pair;
            if ours.entries_last != theirs.entries_last && search != Search::Equality {
                println!(
                    "    note: coexist returned {} entries, slapd {}",
                    ours.entries_last, theirs.entries_last
                );
            }
            results[s].push((ours, theirs));
        }
    }
    let (after_rss, peak_rss) = memory_mb(coexist_pid);
    let (slapd_rss, _) = memory_mb(slapd.0.id());
    drop(coexist);
    drop(slapd);

    println!("  summary (median of {rounds} rounds; spread min–max over rounds):");
    let mut failed = false;
    for (s, search) in searches.iter().enumerate() {
        let rounds = &results[s];
        let throughput: Vec<f64> = rounds
            .iter()
            .map(|(o, t)| o.per_second / t.per_second)
            .collect();
        let p99: Vec<f64> = rounds
            .iter()
            .map(|(o, t)| ms(o.p99) / ms(t.p99).max(1e-9))
            .collect();
        let (t_ratio, p_ratio) = (median(throughput.clone()), median(p99.clone()));
        let t_ok = t_ratio >= THROUGHPUT_RATIO;
        let p_ok = p_ratio <= P99_RATIO;
        failed |= !t_ok || !p_ok;
        let ours =
            |f: fn(&Measure) -> f64| median(rounds.iter().map(|(o, _)| f(&o.clone())).collect());
        let theirs =
            |f: fn(&Measure) -> f64| median(rounds.iter().map(|(_, t)| f(&t.clone())).collect());
        println!("    {}:", search.name());
        println!(
            "      throughput  coexist {:>9.1} /s  slapd {:>9.1} /s  ratio {t_ratio:.2}x (spread {})  target >= {THROUGHPUT_RATIO:.1}x  {}",
            ours(|m| m.per_second),
            theirs(|m| m.per_second),
            spread(&throughput),
            verdict(t_ok)
        );
        println!(
            "      p50         coexist {:>9.2} ms slapd {:>9.2} ms  (not a target)",
            ours(|m| ms(m.p50)),
            theirs(|m| ms(m.p50))
        );
        println!(
            "      p99         coexist {:>9.2} ms slapd {:>9.2} ms  ratio {p_ratio:.2}x (spread {})  target <= {P99_RATIO:.1}x  {}",
            ours(|m| ms(m.p99)),
            theirs(|m| ms(m.p99)),
            spread(&p99),
            verdict(p_ok)
        );
    }
    let rss_ok = peak_rss < RSS_LIMIT_MB;
    failed |= !rss_ok;
    println!(
        "    coexist server memory: RSS {loaded_rss:.0} MB after loading, {after_rss:.0} MB after the runs, peak {peak_rss:.0} MB  target < {RSS_LIMIT_MB:.0} MB  {}  (slapd RSS {slapd_rss:.0} MB, not a target)",
        verdict(rss_ok)
    );
    if failed {
        println!("  a target failed");
        std::process::exit(1);
    }
    Ok(())
}
