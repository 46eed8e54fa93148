//! Helpers shared by the fake's specification tests: a client that gets
//! tokens the way the Microsoft identity platform's client libraries do, and
//! calls Graph and Exchange's InvokeCommand.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coexist_fake_m365::{FakeM365, FakeOptions, FakeUser, RecipientType, JWT_BEARER_ASSERTION};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
pub const EXCHANGE_SCOPE: &str = "https://outlook.office365.com/.default";

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a certificate assertion, as MSAL writes them.
pub fn assertion_claims(m365: &FakeM365) -> Value {
    let now = now();
    json!({
        "aud": m365.token_url(),
        "iss": m365.client_id(),
        "sub": m365.client_id(),
        "jti": format!("{now}-jti"),
        "nbf": now,
        "exp": now + 600,
    })
}

/// Signs an assertion RS256 with `x5t` = the certificate's SHA-1 thumbprint.
pub fn sign(key_pem: &str, certificate_pem: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = FakeM365::thumbprint(certificate_pem);
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// POSTs a form to the token endpoint.
pub async fn token_request(m365: &FakeM365, form: &[(&str, &str)]) -> reqwest::Response {
    let body: String = form_body(form);
    reqwest::Client::new()
        .post(m365.token_url())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

pub fn form_body(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A token for a scope with the client secret.
pub async fn secret_token(m365: &FakeM365, scope: &str) -> String {
    let r = token_request(
        m365,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &m365.client_id()),
            ("client_secret", &m365.client_secret()),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// A certificate assertion's token request.
pub async fn assertion_request(m365: &FakeM365, assertion: &str, scope: &str) -> reqwest::Response {
    token_request(
        m365,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &m365.client_id()),
            ("client_assertion_type", JWT_BEARER_ASSERTION),
            ("client_assertion", assertion),
            ("scope", scope),
        ],
    )
    .await
}

/// A started fake with a Graph token and an Exchange token.
pub struct Ctx {
    pub m365: FakeM365,
    pub http: reqwest::Client,
    pub graph_token: String,
    pub exchange_token: String,
}

impl Ctx {
    pub async fn start() -> Ctx {
        Ctx::with(FakeOptions::default()).await
    }

    pub async fn with(options: FakeOptions) -> Ctx {
        let m365 = FakeM365::start(options).await.unwrap();
        let graph_token = secret_token(&m365, GRAPH_SCOPE).await;
        let exchange_token = secret_token(&m365, EXCHANGE_SCOPE).await;
        Ctx {
            m365,
            http: reqwest::Client::new(),
            graph_token,
            exchange_token,
        }
    }

    /// GET a Graph path (with its query), e.g. `/users?$top=5`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_url(&format!("{}{path}", self.m365.graph_url()))
            .await
    }

    /// GET an absolute URL (a next link) with the Graph token.
    pub async fn get_url(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .bearer_auth(&self.graph_token)
            .send()
            .await
            .unwrap()
    }

    /// GET, expecting 200; the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// A Graph request with a JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.http
            .request(method, format!("{}{path}", self.m365.graph_url()))
            .bearer_auth(&self.graph_token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POST `$batch`.
    pub async fn batch(&self, requests: Vec<Value>) -> reqwest::Response {
        self.send(
            reqwest::Method::POST,
            "/$batch",
            &json!({ "requests": requests }),
        )
        .await
    }

    /// POST InvokeCommand with the Exchange token.
    pub async fn invoke(&self, cmdlet: &str, parameters: Value) -> reqwest::Response {
        self.invoke_with(&self.exchange_token, cmdlet, parameters)
            .await
    }

    pub async fn invoke_with(
        &self,
        token: &str,
        cmdlet: &str,
        parameters: Value,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}/InvokeCommand", self.m365.exchange_url()))
            .bearer_auth(token)
            .json(&json!({"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}}))
            .send()
            .await
            .unwrap()
    }

    /// InvokeCommand expecting 200; the `value` rows.
    pub async fn cmdlet(&self, cmdlet: &str, parameters: Value) -> Vec<Value> {
        let r = self.invoke(cmdlet, parameters).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{cmdlet}: {body}");
        body["value"].as_array().unwrap().clone()
    }

    /// Adds a user with a mailbox: `{local}@acmecorp.com`.
    pub fn user(&self, local: &str, kind: RecipientType) -> String {
        let mail = format!("{local}@acmecorp.com");
        self.m365.add_user(FakeUser {
            user_principal_name: mail.clone(),
            proxy_addresses: vec![
                format!("SMTP:{mail}"),
                format!("smtp:{local}@acmecorp.mail.onmicrosoft.com"),
            ],
            mail,
            display_name: format!("{local} Person"),
            given_name: local.to_owned(),
            surname: "Person".to_owned(),
            recipient_type: kind,
            ..FakeUser::default()
        })
    }
}

/// Graph's error code and message of a response.
pub async fn graph_error(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["innerError"]["request-id"].is_string(),
        "{body}"
    );
    assert!(body["error"]["innerError"]["date"].is_string(), "{body}");
    (
        status,
        body["error"]["code"].as_str().unwrap().to_owned(),
        body["error"]["message"].as_str().unwrap().to_owned(),
    )
}

/// Exchange's error: status, code and the detail message (`id|type|text`).
pub async fn exchange_error(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
        body["error"]["details"][0]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    )
}
