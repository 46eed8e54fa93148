//! Helpers shared by the fake's specification tests: a client that signs
//! service-account JWTs the way Google's client libraries do.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coexist_fake_google::{FakeGoogle, FakeOptions};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const USER_RO: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
pub const GROUP_RO: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
pub const DOMAIN_RO: &str = "https://www.googleapis.com/auth/admin.directory.domain.readonly";
pub const CONTACTS: &str = "https://www.google.com/m8/feeds";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

pub fn all_scopes() -> String {
    [USER_RO, GROUP_RO, DOMAIN_RO, CONTACTS].join(" ")
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims a service account sends (RFC 7523 / Google's service-account guide).
pub fn claims(google: &FakeGoogle) -> Value {
    let iat = now();
    json!({
        "iss": google.client_email(),
        "scope": all_scopes(),
        "aud": google.token_uri(),
        "iat": iat,
        "exp": iat + 3600,
        "sub": "admin@acmecorp.com",
    })
}

/// Signs claims with the private key of a key file, RS256, kid = private_key_id.
pub fn sign(key_file_json: &str, claims: &Value) -> String {
    let key: Value = serde_json::from_str(key_file_json).unwrap();
    let pem = key["private_key"].as_str().unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = key["private_key_id"].as_str().map(str::to_owned);
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

pub async fn exchange(google: &FakeGoogle, assertion: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(google.token_uri())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type={}&assertion={assertion}",
            JWT_BEARER.replace(':', "%3A")
        ))
        .send()
        .await
        .unwrap()
}

/// A started fake and an access token with every scope coexist uses.
pub struct Ctx {
    pub google: FakeGoogle,
    pub http: reqwest::Client,
    pub token: String,
}

impl Ctx {
    pub async fn start() -> Ctx {
        Ctx::with(FakeOptions::default()).await
    }

    pub async fn with(options: FakeOptions) -> Ctx {
        let google = FakeGoogle::start(options).await.unwrap();
        let assertion = sign(&google.service_account_key_json(), &claims(&google));
        let body: Value = exchange(&google, &assertion).await.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap().to_owned();
        google.reset_counts();
        Ctx {
            google,
            http: reqwest::Client::new(),
            token,
        }
    }

    /// GET a Directory path (relative to directory_url) with query pairs.
    pub async fn dir(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.google.directory_url()))
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    /// GET a Directory path and decode the JSON, asserting 200.
    pub async fn dir_ok(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let r = self.dir(path, query).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    pub fn feed_url(&self) -> String {
        format!("{}acmecorp.com/full", self.google.contacts_url())
    }

    /// A contacts request with the token, GData-Version 3.0 and Atom content type.
    pub fn gdata(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(&self.token)
            .header("GData-Version", "3.0")
            .header("Content-Type", "application/atom+xml")
    }
}

/// An Atom entry for a shared contact.
pub fn contact_entry(name: &str, email: &str) -> String {
    format!(
        "<atom:entry xmlns:atom='http://www.w3.org/2005/Atom' xmlns:gd='http://schemas.google.com/g/2005'>\
         <atom:category scheme='http://schemas.google.com/g/2005#kind' term='http://schemas.google.com/contact/2008#contact'/>\
         <gd:name><gd:givenName>{name}</gd:givenName><gd:familyName>Test</gd:familyName><gd:fullName>{name} Test</gd:fullName></gd:name>\
         <gd:email rel='http://schemas.google.com/g/2005#work' primary='true' address='{email}'/>\
         <gd:phoneNumber rel='http://schemas.google.com/g/2005#work'>+1 555 0100</gd:phoneNumber>\
         <gd:organization rel='http://schemas.google.com/g/2005#work'><gd:orgName>Acme</gd:orgName><gd:orgTitle>Engineer</gd:orgTitle><gd:orgDepartment>R&amp;D</gd:orgDepartment></gd:organization>\
         <gd:extendedProperty name='coexist' value='anchor-{email}'/>\
         </atom:entry>"
    )
}

/// Text between `<tag ...>` and `</tag>` (first match).
pub fn between<'a>(xml: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = xml.find(open)? + open.len();
    let start = start + xml[start..].find('>')? + 1;
    let end = start + xml[start..].find(close)?;
    Some(&xml[start..end])
}

/// Undoes XML escaping.
pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The (unescaped) value of the first `attr='…'` or `attr="…"` after `after`.
pub fn attr(xml: &str, after: &str, attr: &str) -> Option<String> {
    raw_attr(xml, after, attr).map(unescape)
}

fn raw_attr<'a>(xml: &'a str, after: &str, attr: &str) -> Option<&'a str> {
    let from = xml.find(after)?;
    let rest = &xml[from..];
    let at = rest.find(&format!("{attr}="))? + attr.len() + 1;
    let quote = rest[at..].chars().next()?;
    let value_start = at + 1;
    let end = value_start + rest[value_start..].find(quote)?;
    Some(&rest[value_start..end])
}
