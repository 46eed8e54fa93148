#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `coexist serve-gal` as address books meet it: the real binary serving
//! the demo's store (a GAL of 1007 entries), queried with the OpenLDAP
//! clients (`ldapsearch`, `ldapwhoami`, `ldapmodify`, installed by
//! `deploy/testenv.sh`) and, for what no client sends, raw bytes on a socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BASE: &str = "ou=gal,dc=acmecorp,dc=com";
const ACCOUNT: &str = "cn=addressbook,ou=gal,dc=acmecorp,dc=com";
const PASSWORD: &str = "correct horse battery staple";
/// The demo's GAL: 1007 recipients, and the base entry above them.
const GAL: usize = 1007;

/// A `coexist serve-gal` on a free loopback port over a fresh demo store;
/// killed when dropped.
struct Server {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    /// The LDAPS port, when `ldaps_listen` is configured.
    ldaps_port: Option<u16>,
}

impl Server {
    /// The server with one account (`ACCOUNT`, `PASSWORD` by reference),
    /// a one-second refresh, and `lines` added to `[gal_server]`.
    fn start(lines: &str) -> Server {
        Server::launch(lines, |_| {})
    }

    /// As [`Server::start`], with `prepare` run on the demo's folder
    /// before the server starts.
    fn launch(lines: &str, prepare: impl FnOnce(&std::path::Path)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let demo = Command::new(env!("CARGO_BIN_EXE_coexist"))
            .args(["demo", "--dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(
            demo.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&demo.stderr)
        );
        let config = dir.path().join("coexist.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!(
            "\n[gal_server]\nlisten = \"127.0.0.1:0\"\nrefresh_seconds = 1\n{lines}\n\n[[gal_server.accounts]]\ndn = \"{ACCOUNT}\"\npassword = {{ env = \"COEXIST_TEST_GAL_PASSWORD\" }}\n"
        ));
        std::fs::write(&config, text).unwrap();
        prepare(dir.path());
        let mut child = Command::new(env!("CARGO_BIN_EXE_coexist"))
            .arg("--config")
            .arg(&config)
            .arg("serve-gal")
            .env("COEXIST_TEST_GAL_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let port_after = |line: &str, scheme: &str| -> Option<u16> {
            let rest = line.split(&format!("{scheme}://127.0.0.1:")).nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        };
        let (port, ldaps_port) = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("serve-gal stopped before serving: {seen}");
            }
            seen.push_str(&line);
            if let Some(port) = port_after(&line, "ldap") {
                break (port, port_after(&line, "ldaps"));
            }
        };
        // Keep reading its log, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stderr.read_to_string(&mut sink);
        });
        Server {
            dir,
            child,
            port,
            ldaps_port,
        }
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Runs an OpenLDAP client against the server with `args` (simple
    /// authentication) and `input` on its standard input.
    fn client(&self, program: &str, args: &[&str], input: &str) -> Output {
        self.client_at(&self.url(), program, args, input)
    }

    /// As [`Server::client`], at `url`; the test certificate, when there
    /// is one, is the clients' trusted CA.
    fn client_at(&self, url: &str, program: &str, args: &[&str], input: &str) -> Output {
        let mut command = Command::new(program);
        let ca = self.dir.path().join("gal.crt");
        if ca.exists() {
            command.env("LDAPTLS_CACERT", ca);
        }
        let mut child = command
            .args(["-x", "-H", url, "-o", "nettimeout=10"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} (deploy/testenv.sh installs it): {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// `ldapsearch` bound as the account, plain LDIF without wrapping:
    /// its exit code (the LDAP result code) and its output.
    fn search(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec!["-D", ACCOUNT, "-w", PASSWORD, "-LLL", "-o", "ldif-wrap=no"];
        all.extend_from_slice(args);
        let out = self.client("ldapsearch", &all, "");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn seed(&self, system: &str) -> PathBuf {
        self.dir.path().join(format!("{system}.json"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DNs of the entries in LDIF output.
fn dns(ldif: &str) -> Vec<&str> {
    ldif.lines().filter(|l| l.starts_with("dn:")).collect()
}

/// The values of `name` in the LDIF of one entry.
fn values<'a>(ldif: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}: ");
    ldif.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

// ---- raw LDAP messages, for what no client sends ---------------------------

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn message(msgid: u8, op: Vec<u8>) -> Vec<u8> {
    tlv(0x30, &[tlv(0x02, &[msgid]), op].concat())
}

fn simple_bind(msgid: u8, dn: &str, password: &str) -> Vec<u8> {
    let body = [
        tlv(0x02, &[3]),
        tlv(0x04, dn.as_bytes()),
        tlv(0x80, password.as_bytes()),
    ]
    .concat();
    message(msgid, tlv(0x60, &body))
}

/// A base search of the base for `(objectClass=*)`, DNs only.
fn search_request(msgid: u8) -> Vec<u8> {
    let body = [
        tlv(0x04, BASE.as_bytes()),
        tlv(0x0a, &[0]),
        tlv(0x0a, &[0]),
        tlv(0x02, &[5]),
        tlv(0x02, &[0]),
        tlv(0x01, &[0]),
        tlv(0x87, b"objectClass"),
        tlv(0x30, &tlv(0x04, b"1.1")),
    ]
    .concat();
    message(msgid, tlv(0x63, &body))
}

/// Reads one LDAP message; `None` when the server closed the connection.
fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).ok()?;
    let len = if head[1] < 0x80 {
        usize::from(head[1])
    } else {
        let mut bytes = vec![0u8; usize::from(head[1] & 0x7f)];
        stream.read_exact(&mut bytes).ok()?;
        bytes.iter().fold(0, |n, b| n << 8 | usize::from(*b))
    };
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// The protocol operation's tag and its result code, of a message whose
/// operation starts with an LDAPResult (binds, searches done, extended).
fn op_and_code(body: &[u8]) -> (u8, u8) {
    // 02 01 <msgid> <op tag> <len> 0a 01 <code>
    let op = 3 + usize::from(body[1]) - 1;
    let tag = body[op];
    let content = if body[op + 1] < 0x80 {
        op + 2
    } else {
        op + 2 + usize::from(body[op + 1] & 0x7f)
    };
    assert_eq!(body[content], 0x0a, "an LDAPResult: {body:?}");
    (tag, body[content + 2])
}

/// Reads messages until the result of `tag` (skipping entries).
fn result_of(stream: &mut TcpStream, tag: u8) -> u8 {
    loop {
        let body = read_message(stream).expect("a reply");
        let op = body[2 + usize::from(body[1])];
        if op == tag {
            return op_and_code(&body).1;
        }
    }
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Whether the server closes `stream` (after at most a notice of
/// disconnection) within ten seconds.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
    false
}

// ---- the tests ---------------------------------------------------------------

#[test]
fn the_root_dse_names_the_base_ldap_v3_the_paged_results_control_and_the_vendor() {
    let server = Server::start("");
    let (code, out) = server.search(&["-b", "", "-s", "base", "+"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(values(&out, "namingContexts"), [BASE]);
    assert_eq!(values(&out, "supportedLDAPVersion"), ["3"]);
    assert!(
        values(&out, "supportedControl").contains(&"1.2.840.113556.1.4.319"),
        "{out}"
    );
    assert_eq!(values(&out, "vendorName"), ["coexist"]);
    assert_eq!(values(&out, "subschemaSubentry"), ["cn=Subschema"]);
}

#[test]
fn the_schema_entry_defines_the_attributes_and_classes_the_entries_use() {
    let server = Server::start("");
    let (code, out) = server.search(&[
        "-b",
        "cn=Subschema",
        "-s",
        "base",
        "(objectClass=subschema)",
        "attributeTypes",
        "objectClasses",
    ]);
    assert_eq!(code, 0, "{out}");
    let types = values(&out, "attributeTypes").join("\n");
    for name in [
        "'cn'",
        "'sn'",
        "'givenName'",
        "'displayName'",
        "'mail'",
        "'telephoneNumber'",
        "'mobile'",
        "'title'",
        "'ou'",
        "'department'",
        "'o'",
        "'member'",
    ] {
        assert!(types.contains(name), "{name} in {types}");
    }
    let classes = values(&out, "objectClasses").join("\n");
    assert!(classes.contains("'inetOrgPerson'"), "{classes}");
    assert!(classes.contains("'groupOfNames'"), "{classes}");
}

#[test]
fn a_person_carries_only_gal_attributes_and_every_shared_address() {
    let server = Server::start("");
    let (code, out) = server.search(&["-b", BASE, "(mail=adas@acmecorp.com)"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        dns(&out),
        ["dn: cn=Aarav Das,ou=gal,dc=acmecorp,dc=com"],
        "{out}"
    );
    assert_eq!(
        values(&out, "objectClass"),
        ["top", "person", "organizationalPerson", "inetOrgPerson"]
    );
    assert_eq!(values(&out, "cn"), ["Aarav Das"]);
    assert_eq!(values(&out, "sn"), ["Das"]);
    assert_eq!(values(&out, "givenName"), ["Aarav"]);
    assert_eq!(values(&out, "displayName"), ["Aarav Das"]);
    assert_eq!(
        values(&out, "mail"),
        ["aarav.das@acmecorp.com", "adas@acmecorp.com"]
    );
    assert_eq!(values(&out, "telephoneNumber"), ["+1 555 0100 0200"]);
    assert_eq!(values(&out, "title"), ["Director"]);
    assert_eq!(values(&out, "ou"), ["Support"]);
    assert_eq!(values(&out, "department"), ["Support"]);
    assert_eq!(values(&out, "o"), ["Acme Corp"]);
    let allowed = [
        "dn",
        "objectClass",
        "cn",
        "sn",
        "givenName",
        "displayName",
        "mail",
        "telephoneNumber",
        "mobile",
        "title",
        "ou",
        "department",
        "o",
    ];
    for line in out.lines().filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap();
        assert!(allowed.contains(&name), "{line} is not a GAL attribute");
    }
    // Never coexist's internal ids: the anchor, the home, the systems.
    assert!(!out.contains("5a1d0200"), "{out}");
}

#[test]
fn groups_are_groups_of_names_whose_members_are_gal_entries() {
    let server = Server::start("");
    let (code, out) = server.search(&["-b", BASE, "(objectClass=groupOfNames)", "cn", "member"]);
    assert_eq!(code, 0, "{out}");
    assert!(!dns(&out).is_empty(), "{out}");
    let members = values(&out, "member");
    assert!(!members.is_empty(), "{out}");
    let first = members[0];
    let (code, entry) = server.search(&[
        "-b",
        first,
        "-s",
        "base",
        "(objectClass=inetOrgPerson)",
        "1.1",
    ]);
    assert_eq!(code, 0, "{entry}");
    assert_eq!(dns(&entry), [format!("dn: {first}").as_str()]);
}

#[test]
fn base_one_and_subtree_scopes_find_the_base_its_children_and_both() {
    let server = Server::start("size_limit = 5000");
    let (code, out) = server.search(&["-b", BASE, "-s", "base", "1.1"]);
    assert_eq!((code, dns(&out).len()), (0, 1), "{out}");
    let (code, out) = server.search(&["-b", BASE, "-s", "one", "1.1"]);
    assert_eq!((code, dns(&out).len()), (0, GAL), "{out}");
    let (code, out) = server.search(&["-b", BASE, "-s", "sub", "1.1"]);
    assert_eq!((code, dns(&out).len()), (0, GAL + 1), "{out}");
    // A base given in another case and spacing is the same entry.
    let (code, out) = server.search(&[
        "-b",
        "CN=aarav das, OU=GAL, DC=AcmeCorp, DC=com",
        "-s",
        "base",
        "cn",
    ]);
    assert_eq!(values(&out, "cn"), ["Aarav Das"], "{code} {out}");
    // From the domain above the base, a subtree search finds the GAL.
    let (code, out) = server.search(&[
        "-b",
        "dc=acmecorp,dc=com",
        "(mail=adas@acmecorp.com)",
        "1.1",
    ]);
    assert_eq!((code, dns(&out).len()), (0, 1), "{out}");
    // Elsewhere there is nothing: noSuchObject (32).
    let (code, out) = server.search(&["-b", "ou=people,dc=example,dc=org", "1.1"]);
    assert_eq!(code, 32, "{out}");
    let (code, out) = server.search(&["-b", "cn=Nobody,ou=gal,dc=acmecorp,dc=com", "-s", "base"]);
    assert_eq!(code, 32, "{out}");
}

#[test]
fn thunderbirds_autocomplete_filters_find_people_by_the_start_of_a_name_or_address() {
    let server = Server::start("");
    // Thunderbird before 78, nsLDAPAutoCompleteSession.cpp's default
    // `ldap_2.autoComplete.filterTemplate`:
    //   (|(cn=%v1*%v2-*)(mail=%v1*%v2-*)(sn=%v1*%v2-*))
    // expanded for the typed text "aarav d".
    let (code, out) = server.search(&[
        "-b",
        BASE,
        "-z",
        "100",
        "(|(cn=aarav*d*)(mail=aarav*d*)(sn=aarav*d*))",
        "cn",
        "mail",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(values(&out, "cn").contains(&"Aarav Das"), "{out}");
    assert!(
        values(&out, "cn").iter().all(|cn| cn.starts_with("Aarav")),
        "{out}"
    );
    // Thunderbird 78 and later (comm-central, mailnews/addrbook,
    // LDAPAutoCompleteSearch): the default template
    //   (|(cn=*%v1*%v2-*)(mail=*%v*)(givenName=*%v1*)(sn=*%v*))
    // expanded for the typed text "das".
    let (code, out) = server.search(&[
        "-b",
        BASE,
        "-z",
        "100",
        "(|(cn=*das*)(mail=*das*)(givenName=*das*)(sn=*das*))",
        "cn",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(values(&out, "cn").contains(&"Aarav Das"), "{out}");
    assert!(
        values(&out, "cn")
            .iter()
            .all(|cn| cn.to_lowercase().contains("das")),
        "{out}"
    );
}

#[test]
fn outlooks_name_search_finds_people_by_given_name_surname_or_address() {
    let server = Server::start("");
    // Outlook's LDAP address book search, as Microsoft's Office Resource
    // Kit ("Configure LDAP options in Outlook", custom search filters)
    // quotes the default: (&(mail=*)(|(mail=%s*)(|(cn=%s*)(|(sn=%s*)(givenName=%s*)))))
    // with the name typed, "Das".
    let (code, out) = server.search(&[
        "-b",
        BASE,
        "(&(mail=*)(|(mail=Das*)(|(cn=Das*)(|(sn=Das*)(givenName=Das*)))))",
        "cn",
        "sn",
        "givenName",
        "mail",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(values(&out, "cn").contains(&"Aarav Das"), "{out}");
    let people = dns(&out).len();
    assert_eq!(values(&out, "sn").len(), people, "{out}");
    assert!(values(&out, "sn").iter().all(|sn| *sn == "Das"), "{out}");
    // NOT, and attribute names and values in any case.
    let (code, out) = server.search(&[
        "-b",
        BASE,
        "(&(SN=das)(!(GIVENNAME=AARAV))(objectclass=INETORGPERSON))",
        "givenName",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(!values(&out, "givenName").contains(&"Aarav"), "{out}");
    assert_eq!(dns(&out).len(), people - 1, "{out}");
}

#[test]
fn filters_reach_every_gal_attribute() {
    let server = Server::start("size_limit = 5000");
    for (filter, expect_some) in [
        ("(telephoneNumber=+15550100*)", true),
        ("(title=director)", true),
        ("(department=support)", true),
        ("(ou=Support)", true),
        ("(o=acme corp)", true),
        ("(displayName=aarav das)", true),
        ("(givenName=aarav)", true),
        ("(mobile=*)", false),
        ("(title=astronaut)", false),
        ("(uid=adas)", false),
    ] {
        let (code, out) = server.search(&["-b", BASE, filter, "1.1"]);
        assert_eq!(code, 0, "{filter}: {out}");
        assert_eq!(!dns(&out).is_empty(), expect_some, "{filter}: {out}");
    }
    // Support is a department of some people, not all.
    let (_, support) = server.search(&["-b", BASE, "(ou=support)", "1.1"]);
    let (_, others) = server.search(&["-b", BASE, "(&(objectClass=person)(!(ou=support)))", "1.1"]);
    assert!(dns(&support).len() + dns(&others).len() <= GAL);
    assert!(!dns(&others).is_empty());
}

#[test]
fn attribute_selection_returns_the_attributes_asked_for_or_none() {
    let server = Server::start("");
    let (_, out) = server.search(&["-b", BASE, "(mail=adas@acmecorp.com)", "1.1"]);
    assert_eq!(out.lines().filter(|l| !l.is_empty()).count(), 1, "{out}");
    let (_, out) = server.search(&["-b", BASE, "(mail=adas@acmecorp.com)", "MAIL", "title"]);
    let names: Vec<&str> = out
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("dn:"))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(names, ["mail", "mail", "title"], "{out}");
    let (_, out) = server.search(&["-b", BASE, "-A", "(mail=adas@acmecorp.com)", "*"]);
    assert!(out.lines().any(|l| l == "mail:"), "types only: {out}");
}

#[test]
fn an_unpaged_search_stops_at_the_size_limit_with_size_limit_exceeded() {
    let server = Server::start("");
    // The default limit, 1000, is below the demo's 1007 entries.
    let (code, out) = server.search(&["-b", BASE, "1.1"]);
    assert_eq!(code, 4, "sizeLimitExceeded: {out}");
    assert_eq!(dns(&out).len(), 1000);
    // A client's own lower limit wins.
    let (code, out) = server.search(&["-b", BASE, "-z", "5", "1.1"]);
    assert_eq!((code, dns(&out).len()), (4, 5), "{out}");
    let server = Server::start("size_limit = 10");
    let (code, out) = server.search(&["-b", BASE, "-z", "50", "1.1"]);
    assert_eq!((code, dns(&out).len()), (4, 10), "{out}");
}

#[test]
fn a_paged_search_reads_the_whole_gal_past_the_size_limit() {
    let server = Server::start("");
    let (code, out) = server.search(&["-b", BASE, "-E", "pr=100/noprompt", "1.1"]);
    assert_eq!(code, 0, "{out}");
    let found = dns(&out);
    assert_eq!(found.len(), GAL + 1);
    let mut unique = found.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), found.len(), "no entry twice");
    // A page larger than the size limit is cut to it, page after page.
    let server = Server::start("size_limit = 300");
    let (code, out) = server.search(&["-b", BASE, "-E", "pr=500/noprompt", "1.1"]);
    assert_eq!((code, dns(&out).len()), (0, GAL + 1), "{out}");
}

#[test]
fn anonymous_binds_and_unbound_searches_are_refused_unless_configured() {
    let server = Server::start("");
    let out = server.client("ldapwhoami", &[], "");
    assert_eq!(out.status.code(), Some(48), "inappropriateAuthentication");
    let out = server.client("ldapsearch", &["-b", BASE, "1.1"], "");
    assert_eq!(out.status.code(), Some(48));
    // A search without any bind: insufficientAccessRights (50).
    let mut raw = connect(&server);
    raw.write_all(&search_request(1)).unwrap();
    assert_eq!(result_of(&mut raw, 0x65), 50);
    // A DN without a password (an unauthenticated bind) is no way in.
    raw.write_all(&simple_bind(2, ACCOUNT, "")).unwrap();
    assert_eq!(result_of(&mut raw, 0x61), 53);

    let open = Server::start("anonymous = true");
    let out = open.client(
        "ldapsearch",
        &["-LLL", "-b", BASE, "(mail=adas@acmecorp.com)", "cn"],
        "",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cn: Aarav Das"));
    let mut raw = connect(&open);
    raw.write_all(&search_request(1)).unwrap();
    assert_eq!(result_of(&mut raw, 0x65), 0);
}

#[test]
fn a_configured_account_binds_and_a_wrong_password_is_refused() {
    let server = Server::start("");
    let out = server.client("ldapwhoami", &["-D", ACCOUNT, "-w", PASSWORD], "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("dn:{ACCOUNT}")
    );
    // The DN in another case and spacing is the same account.
    let out = server.client(
        "ldapwhoami",
        &[
            "-D",
            "CN=AddressBook, OU=gal, DC=acmecorp, DC=com",
            "-w",
            PASSWORD,
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0));
    let out = server.client("ldapwhoami", &["-D", ACCOUNT, "-w", "wrong"], "");
    assert_eq!(out.status.code(), Some(49), "invalidCredentials");
    let out = server.client(
        "ldapwhoami",
        &[
            "-D",
            "cn=Aarav Das,ou=gal,dc=acmecorp,dc=com",
            "-w",
            PASSWORD,
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(49), "GAL entries are no accounts");
}

#[test]
fn every_write_is_refused_with_unwilling_to_perform() {
    let server = Server::start("");
    let person = "cn=Aarav Das,ou=gal,dc=acmecorp,dc=com";
    for ldif in [
        format!("dn: cn=Mallory,{BASE}\nchangetype: add\nobjectClass: inetOrgPerson\ncn: Mallory\nsn: Mallory\nmail: mallory@acmecorp.com\n"),
        format!("dn: {person}\nchangetype: modify\nreplace: mail\nmail: mallory@evil.example\n"),
        format!("dn: {person}\nchangetype: delete\n"),
        format!("dn: {person}\nchangetype: modrdn\nnewrdn: cn=Mallory\ndeleteoldrdn: 1\n"),
    ] {
        let out = server.client("ldapmodify", &["-D", ACCOUNT, "-w", PASSWORD], &ldif);
        assert_eq!(
            out.status.code(),
            Some(53),
            "{ldif}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("unwilling to perform"));
    }
    let (_, out) = server.search(&["-b", BASE, "(mail=adas@acmecorp.com)", "mail"]);
    assert_eq!(
        values(&out, "mail"),
        ["aarav.das@acmecorp.com", "adas@acmecorp.com"]
    );
}

#[test]
fn a_malformed_or_oversized_request_closes_that_connection_only() {
    let server = Server::start("");
    // A client already at work, bound.
    let mut steady = connect(&server);
    steady
        .write_all(&simple_bind(1, ACCOUNT, PASSWORD))
        .unwrap();
    assert_eq!(result_of(&mut steady, 0x61), 0);

    // A message whose operation is no LDAP operation.
    let mut broken = connect(&server);
    broken
        .write_all(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x5f, 0x01, 0x00])
        .unwrap();
    assert!(
        closed_by_server(&mut broken),
        "the malformed PDU closed its connection"
    );
    // Well-formed BER that is no LDAP message (an octet string).
    let mut noise = connect(&server);
    noise.write_all(&tlv(0x04, b"hello")).unwrap();
    assert!(closed_by_server(&mut noise));
    // A request announcing 16 MiB, and sending a good part of it.
    let mut huge = connect(&server);
    let _ = huge.write_all(&[0x30, 0x84, 0x01, 0x00, 0x00, 0x00]);
    let _ = huge.write_all(&vec![0x04; 256 * 1024]);
    assert!(closed_by_server(&mut huge));

    // The client at work still is, and a new one is served.
    steady.write_all(&search_request(2)).unwrap();
    assert_eq!(result_of(&mut steady, 0x65), 0);
    let (code, out) = server.search(&["-b", BASE, "(mail=adas@acmecorp.com)", "1.1"]);
    assert_eq!((code, dns(&out).len()), (0, 1), "{out}");
}

#[test]
fn a_client_address_holds_at_most_the_configured_connections() {
    let server = Server::start("max_connections_per_client = 2");
    let mut held = Vec::new();
    for msgid in 1..=2 {
        let mut stream = connect(&server);
        stream
            .write_all(&simple_bind(msgid, ACCOUNT, PASSWORD))
            .unwrap();
        assert_eq!(result_of(&mut stream, 0x61), 0);
        held.push(stream);
    }
    let mut third = connect(&server);
    let notice = read_message(&mut third).expect("a notice of disconnection");
    assert_eq!(op_and_code(&notice), (0x78, 51), "busy");
    assert!(closed_by_server(&mut third));
    let (code, _) = server.search(&["-b", BASE, "-s", "base", "1.1"]);
    assert_ne!(code, 0);

    held.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out) = server.search(&["-b", BASE, "-s", "base", "1.1"]);
        if code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a freed connection is given back: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_sync_that_changes_the_gal_shows_up_without_a_restart_and_never_as_a_partial_list() {
    let server = Server::start("");
    let seed_path = server.seed("ldap");
    let mut seed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&seed_path).unwrap()).unwrap();
    let recipients = seed["recipients"].as_array_mut().unwrap();
    let mut newcomer = recipients[0].clone();
    newcomer["anchor"] = "5a1dffff-0000-4000-8000-00000000ffff".into();
    newcomer["primary_address"] = "zelda.newcomer@acmecorp.com".into();
    newcomer["aliases"] = serde_json::json!([]);
    newcomer["attributes"]["display_name"] = "Zelda Newcomer".into();
    newcomer["attributes"]["given_name"] = "Zelda".into();
    newcomer["attributes"]["surname"] = "Newcomer".into();
    newcomer["etag"] = "\"v1-ffff\"".into();
    recipients.push(newcomer);
    std::fs::write(&seed_path, serde_json::to_string_pretty(&seed).unwrap()).unwrap();

    let sync = Command::new(env!("CARGO_BIN_EXE_coexist"))
        .arg("--config")
        .arg(server.dir.path().join("coexist.toml"))
        .arg("sync")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Whole dumps while the sync runs and the server swaps: the old list
    // or the new one, never an empty or half list.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut counts = Vec::new();
    loop {
        let (code, out) = server.search(&["-b", BASE, "-E", "pr=500/noprompt", "1.1"]);
        assert_eq!(code, 0, "{out}");
        let count = dns(&out).len();
        counts.push(count);
        assert!(
            count == GAL + 1 || count == GAL + 2,
            "a whole list, old or new: {counts:?}"
        );
        if count == GAL + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the newcomer shows up: {counts:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = sync.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let (code, out) = server.search(&["-b", BASE, "(cn=zelda*)", "cn", "mail"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        values(&out, "mail"),
        ["zelda.newcomer@acmecorp.com"],
        "{out}"
    );
}

/// A self-signed certificate for 127.0.0.1 (`gal.crt`, `gal.key`) in `dir`,
/// made with `openssl` (which `deploy/testenv.sh` installs).
fn make_certificate(dir: &std::path::Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-days",
            "2",
            "-keyout",
            "gal.key",
            "-out",
            "gal.crt",
        ])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl (deploy/testenv.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn with_a_certificate_binds_go_over_starttls_or_ldaps_and_never_in_clear_text() {
    let server = Server::launch(
        "tls = { cert_file = \"gal.crt\", key_file = \"gal.key\" }\nldaps_listen = \"127.0.0.1:0\"",
        make_certificate,
    );
    let bind = ["-D", ACCOUNT, "-w", PASSWORD];
    let out = server.client("ldapwhoami", &bind, "");
    assert_eq!(out.status.code(), Some(13), "confidentialityRequired");
    let out = server.client("ldapwhoami", &[&["-ZZ"][..], &bind].concat(), "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("dn:{ACCOUNT}")
    );
    let ldaps = format!("ldaps://127.0.0.1:{}", server.ldaps_port.unwrap());
    let out = server.client_at(
        &ldaps,
        "ldapsearch",
        &[
            &bind[..],
            &["-LLL", "-b", BASE, "-E", "pr=200/noprompt", "1.1"],
        ]
        .concat(),
        "",
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(dns(&String::from_utf8_lossy(&out.stdout)).len(), GAL + 1);
    // The root DSE says StartTLS is offered.
    let out = server.client(
        "ldapsearch",
        &[
            &["-ZZ"][..],
            &bind,
            &["-LLL", "-b", "", "-s", "base", "supportedExtension"],
        ]
        .concat(),
        "",
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1.3.6.1.4.1.1466.20037"),
        "{out:?}"
    );
}

#[test]
fn starttls_without_a_certificate_is_refused_and_the_connection_stays_usable() {
    let server = Server::start("");
    let mut raw = connect(&server);
    raw.write_all(&message(
        1,
        tlv(0x77, &tlv(0x80, b"1.3.6.1.4.1.1466.20037")),
    ))
    .unwrap();
    assert_eq!(result_of(&mut raw, 0x78), 2, "protocolError");
    raw.write_all(&simple_bind(2, ACCOUNT, PASSWORD)).unwrap();
    assert_eq!(result_of(&mut raw, 0x61), 0);
    let out = server.client("ldapwhoami", &["-ZZ", "-D", ACCOUNT, "-w", PASSWORD], "");
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn a_connection_that_does_not_bind_in_time_is_cut_off_and_a_bound_one_is_not() {
    let server = Server::start("unbound_timeout_seconds = 1");
    let mut bound = connect(&server);
    bound.write_all(&simple_bind(1, ACCOUNT, PASSWORD)).unwrap();
    assert_eq!(result_of(&mut bound, 0x61), 0);
    let started = Instant::now();
    let mut unbound = connect(&server);
    let notice = read_message(&mut unbound).expect("a notice of disconnection");
    assert_eq!(op_and_code(&notice), (0x78, 52), "unavailable");
    assert!(closed_by_server(&mut unbound));
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The bound connection is still served.
    bound.write_all(&search_request(2)).unwrap();
    assert_eq!(result_of(&mut bound, 0x65), 0);
}

#[test]
fn a_client_address_sending_past_its_request_rate_waits_its_turn() {
    let server = Server::start("requests_per_second = 20");
    let mut stream = connect(&server);
    let started = Instant::now();
    // A burst of 20 is answered at once, the next 40 at 20 a second.
    let requests: Vec<u8> = (1..=60)
        .flat_map(|msgid| simple_bind(msgid, ACCOUNT, PASSWORD))
        .collect();
    stream.write_all(&requests).unwrap();
    for _ in 1..=60 {
        assert_eq!(result_of(&mut stream, 0x61), 0);
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1800), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
}

#[test]
fn serve_gal_stops_cleanly_on_sigterm() {
    let mut server = Server::start("");
    let pid = server.child.id().to_string();
    let kill = Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve-gal stops on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}
