//! GAL export: LDIF (for an LDAP address-book OU), CSV, vCard 3.0 and JSON.

use std::fmt::Write as _;

use crate::reconcile::GalEntry;

/// The formats `export-gal` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Ldif,
    Csv,
    Vcard,
    Json,
}

/// The version of the JSON export's format: `{"format": 1, "entries":
/// [GalEntry, …]}`. (LDIF and vCard carry their own standard's version;
/// CSV has a header row.)
pub const FORMAT: u32 = 1;

/// The GAL could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the GAL as JSON: {0}")]
pub struct ExportError(#[from] serde_json::Error);

/// The JSON export document.
#[derive(serde::Serialize)]
struct JsonExport<'a> {
    format: u32,
    entries: &'a [GalEntry],
}

/// Writes `gal` in `format`. LDIF entries go under `base`
/// (`ou=gal,dc=acmecorp,dc=com`).
pub fn export(gal: &[GalEntry], format: Format, base: &str) -> Result<String, ExportError> {
    Ok(match format {
        Format::Ldif => ldif(gal, base),
        Format::Csv => csv(gal),
        Format::Vcard => vcard(gal),
        Format::Json => serde_json::to_string_pretty(&JsonExport {
            format: FORMAT,
            entries: gal,
        })?,
    })
}

/// `ou=gal` under the first shared domain (`ou=gal,dc=acmecorp,dc=com`):
/// where LDIF entries go unless `--base` says otherwise.
pub fn default_base(shared_domains: &[String]) -> String {
    let domain = shared_domains
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let dcs: Vec<String> = domain.split('.').map(|p| format!("dc={p}")).collect();
    format!("ou=gal,{}", dcs.join(","))
}

/// An LDIF attribute line, base64-encoded when RFC 2849 requires it.
fn ldif_line(out: &mut String, name: &str, value: &str) {
    let safe = !value.is_empty()
        && value
            .bytes()
            .all(|b| (0x01..=0x7f).contains(&b) && b != b'\n' && b != b'\r')
        && !value.starts_with([' ', ':', '<'])
        && !value.ends_with(' ');
    if safe {
        let _ = writeln!(out, "{name}: {value}");
    } else {
        use base64::Engine as _;
        let _ = writeln!(
            out,
            "{name}:: {}",
            base64::engine::general_purpose::STANDARD.encode(value)
        );
    }
}

/// Escapes an RDN value per RFC 4514.
pub fn escape_rdn(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' | ' ' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    if out.ends_with(' ') {
        out.pop();
        out.push_str("\\ ");
    }
    out
}

fn ldif(gal: &[GalEntry], base: &str) -> String {
    let mut out = String::from("version: 1\n\n");
    for entry in gal {
        ldif_line(
            &mut out,
            "dn",
            &format!("mail={},{base}", escape_rdn(&entry.primary_address)),
        );
        out.push_str("objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson\n");
        let a = &entry.attributes;
        let cn = a
            .display_name
            .clone()
            .unwrap_or_else(|| entry.primary_address.clone());
        ldif_line(&mut out, "cn", &cn);
        ldif_line(&mut out, "sn", a.surname.as_deref().unwrap_or(&cn));
        for (name, value) in [
            ("givenName", &a.given_name),
            ("displayName", &a.display_name),
            ("telephoneNumber", &a.business_phone),
            ("mobile", &a.mobile_phone),
            ("title", &a.title),
            ("ou", &a.department),
            ("o", &a.company),
        ] {
            if let Some(value) = value {
                ldif_line(&mut out, name, value);
            }
        }
        ldif_line(&mut out, "mail", &entry.primary_address);
        out.push('\n');
    }
    out
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn csv(gal: &[GalEntry]) -> String {
    let mut out = String::from("primary_address,aliases,kind,home,display_name,given_name,surname,business_phone,mobile_phone,title,department,company\n");
    for entry in gal {
        let a = &entry.attributes;
        let aliases: Vec<&str> = entry.aliases().collect();
        let fields = [
            entry.primary_address.as_str(),
            &aliases.join(" "),
            entry.kind.as_str(),
            &entry.home,
            a.display_name.as_deref().unwrap_or(""),
            a.given_name.as_deref().unwrap_or(""),
            a.surname.as_deref().unwrap_or(""),
            a.business_phone.as_deref().unwrap_or(""),
            a.mobile_phone.as_deref().unwrap_or(""),
            a.title.as_deref().unwrap_or(""),
            a.department.as_deref().unwrap_or(""),
            a.company.as_deref().unwrap_or(""),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        let _ = writeln!(out, "{}", line.join(","));
    }
    out
}

fn vcard_text(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace(';', "\\;")
        .replace('\n', "\\n")
}

fn vcard(gal: &[GalEntry]) -> String {
    let mut out = String::new();
    for entry in gal {
        let a = &entry.attributes;
        out.push_str("BEGIN:VCARD\r\nVERSION:3.0\r\n");
        let full = a
            .display_name
            .clone()
            .unwrap_or_else(|| entry.primary_address.clone());
        let _ = write!(out, "FN:{}\r\n", vcard_text(&full));
        let _ = write!(
            out,
            "N:{};{};;;\r\n",
            vcard_text(a.surname.as_deref().unwrap_or("")),
            vcard_text(a.given_name.as_deref().unwrap_or(""))
        );
        let _ = write!(
            out,
            "EMAIL;TYPE=INTERNET,PREF:{}\r\n",
            entry.primary_address
        );
        for alias in entry.aliases() {
            let _ = write!(out, "EMAIL;TYPE=INTERNET:{alias}\r\n");
        }
        if let Some(phone) = &a.business_phone {
            let _ = write!(out, "TEL;TYPE=WORK:{}\r\n", vcard_text(phone));
        }
        if let Some(phone) = &a.mobile_phone {
            let _ = write!(out, "TEL;TYPE=CELL:{}\r\n", vcard_text(phone));
        }
        if let Some(title) = &a.title {
            let _ = write!(out, "TITLE:{}\r\n", vcard_text(title));
        }
        if a.company.is_some() || a.department.is_some() {
            let _ = write!(
                out,
                "ORG:{};{}\r\n",
                vcard_text(a.company.as_deref().unwrap_or("")),
                vcard_text(a.department.as_deref().unwrap_or(""))
            );
        }
        if entry.kind == coexist_connector::RecipientKind::Group {
            out.push_str("KIND:group\r\n");
        }
        out.push_str("END:VCARD\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use coexist_connector::{Attributes, RecipientKind};

    fn entry() -> GalEntry {
        GalEntry {
            anchor: "google:1".into(),
            kind: RecipientKind::Person,
            primary_address: "ann@acmecorp.com".into(),
            addresses: vec!["a.smith@acmecorp.com".into(), "ann@acmecorp.com".into()],
            home: "google".into(),
            attributes: Attributes {
                display_name: Some("Smith, Ann".into()),
                given_name: Some("Ann".into()),
                surname: Some("Smith".into()),
                title: Some("Zoë's \"boss\"".into()),
                ..Default::default()
            },
            members: vec![],
            systems: vec!["google".into()],
            routing_address: None,
        }
    }

    #[test]
    fn ldif_escapes_and_encodes_what_it_must() {
        let out = export(&[entry()], Format::Ldif, "ou=gal,dc=acmecorp,dc=com").unwrap();
        assert!(out.contains("dn: mail=ann@acmecorp.com,ou=gal,dc=acmecorp,dc=com\n"));
        assert!(out.contains("cn: Smith, Ann\n"));
        assert!(
            out.contains("title:: "),
            "non-ASCII values are base64: {out}"
        );
        assert_eq!(escape_rdn("#Smith, Ann+1 "), "\\#Smith\\, Ann\\+1\\ ");
    }

    #[test]
    fn csv_quotes_fields_with_commas_and_quotes() {
        let out = export(&[entry()], Format::Csv, "").unwrap();
        assert!(out.contains("ann@acmecorp.com,a.smith@acmecorp.com,person,google,\"Smith, Ann\",Ann,Smith,,,\"Zoë's \"\"boss\"\"\""), "{out}");
    }

    #[test]
    fn vcards_list_every_address() {
        let out = export(&[entry()], Format::Vcard, "").unwrap();
        assert!(out.contains("FN:Smith\\, Ann\r\n"));
        assert!(out.contains("EMAIL;TYPE=INTERNET,PREF:ann@acmecorp.com\r\n"));
        assert!(out.contains("EMAIL;TYPE=INTERNET:a.smith@acmecorp.com\r\n"));
    }

    #[test]
    fn the_json_export_says_its_format() {
        let out = export(&[entry()], Format::Json, "").unwrap();
        let document: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(document["format"], FORMAT);
        assert_eq!(
            document["entries"][0]["primary_address"],
            "ann@acmecorp.com"
        );
    }
}
