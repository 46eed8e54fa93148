//! Creating users and their mailboxes, as `coexist provision` meets them:
//!
//! * `POST /users` (<https://learn.microsoft.com/graph/api/user-post-users>):
//!   the body checked against the CSDL's `user`; `accountEnabled`,
//!   `displayName`, `mailNickname`, `userPrincipalName` and
//!   `passwordProfile` required; the UPN's domain a verified domain of the
//!   tenant; a UPN taken is `Request_BadRequest` "Another object with the
//!   same value for property userPrincipalName already exists.". The user
//!   has no mailbox.
//! * `POST /users/{id}/assignLicense`
//!   (<https://learn.microsoft.com/graph/api/user-assignlicense>): both
//!   `addLicenses` and `removeLicenses` required; a SKU the tenant does
//!   not own and a user without `usageLocation` are refused with the
//!   service's words. A license with Exchange Online makes the mailbox,
//!   asynchronously: it appears after [`crate::FakeM365::set_mailbox_delay`]
//!   Exchange calls, with the tenant's routing-domain proxy address, as
//!   Exchange Online adds it.
//! * Exchange `Set-Mailbox -Identity -EmailAddresses
//!   -ForwardingSmtpAddress -DeliverToMailboxAndForward`
//!   (<https://learn.microsoft.com/powershell/module/exchange/set-mailbox>):
//!   the whole list, exactly one `SMTP:` primary, every domain an accepted
//!   one.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::Value;

use crate::errors::{self, Reply};
use crate::graph::Call;
use crate::state::{FakeUser, RecipientType, State};

/// The SKU of the license the fake tenant owns (Office 365 E3's id), whose
/// plans include Exchange Online.
pub const EXCHANGE_SKU: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";

/// Roles that allow creating users and assigning licenses.
const WRITE_ROLES: &[&str] = &["User.ReadWrite.All", "Directory.ReadWrite.All"];

/// What the fake remembers of a user it created.
#[derive(Debug, Clone, Default)]
pub(crate) struct Provisioning {
    pub usage_location: Option<String>,
    pub licenses: Vec<String>,
    /// Exchange calls until the mailbox appears, once licensed.
    pub mailbox_in: Option<u32>,
}

/// The users the fake created, by id, and how many Exchange calls a new
/// mailbox takes to appear.
#[derive(Debug, Default)]
pub(crate) struct Provisioned {
    pub users: HashMap<String, Provisioning>,
    pub mailbox_delay: u32,
    /// Each mailbox's forwarding, by user id: `ForwardingSmtpAddress`
    /// (`smtp:…`) and `DeliverToMailboxAndForward`.
    pub forwarding: HashMap<String, (Option<String>, bool)>,
}

fn bad_request(message: &str) -> Reply {
    errors::graph_rejected(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

/// `POST /users`.
pub(crate) fn create(call: &Call<'_>) -> Result<Reply, Reply> {
    if !call.has_role(WRITE_ROLES) {
        return Err(errors::graph_forbidden(true));
    }
    let body = crate::contacts::parse_body(call)?;
    let schema = crate::contacts::schema()?;
    let checked = crate::contacts::check_object(schema, "user", &body, &[])?;
    for required in [
        "accountEnabled",
        "displayName",
        "mailNickname",
        "userPrincipalName",
        "passwordProfile",
    ] {
        if checked.get(required).is_none_or(Value::is_null) {
            return Err(bad_request(&format!(
                "Invalid value specified for property '{required}' of resource 'User'."
            )));
        }
    }
    let text = |name: &str| {
        checked
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    let password = checked
        .get("passwordProfile")
        .and_then(|p| p.get("password"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if password.len() < 8 {
        return Err(bad_request(
            "The specified password does not comply with password complexity requirements. Please provide a different password.",
        ));
    }
    let upn = text("userPrincipalName");
    let domain = upn.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
    let mut st = call.shared.state.lock();
    let verified = domain.as_deref().is_some_and(|d| {
        st.domains
            .iter()
            .any(|r| r.verified && r.name.eq_ignore_ascii_case(d))
    });
    if !verified {
        return Err(bad_request(
            "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.",
        ));
    }
    if st.user_id(&upn).is_some() {
        return Err(bad_request(
            "Another object with the same value for property userPrincipalName already exists.",
        ));
    }
    let id = st.add_user(FakeUser {
        user_principal_name: upn,
        mail_nickname: text("mailNickname"),
        display_name: text("displayName"),
        given_name: text("givenName"),
        surname: text("surname"),
        job_title: text("jobTitle"),
        department: text("department"),
        account_enabled: checked
            .get("accountEnabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        recipient_type: RecipientType::None,
        ..FakeUser::default()
    });
    let usage_location = Some(text("usageLocation")).filter(|u| !u.is_empty());
    st.provisioned.users.insert(
        id.clone(),
        Provisioning {
            usage_location,
            ..Provisioning::default()
        },
    );
    st.counters.graph_writes += 1;
    let user = st
        .users
        .get(&id)
        .map(|s| crate::graph::user_json(&s.user))
        .unwrap_or_default();
    Ok(Reply::json(StatusCode::CREATED, Value::Object(user)))
}

/// `PATCH /users/{id}` (<https://learn.microsoft.com/graph/api/user-update>):
/// the body checked against the CSDL's `user`; the fake applies
/// `accountEnabled` (what `coexist deprovision` sends) and answers 501 for
/// any other property, which it does not keep.
pub(crate) fn update(call: &Call<'_>, id: &str) -> Result<Reply, Reply> {
    if !call.has_role(WRITE_ROLES) {
        return Err(errors::graph_forbidden(true));
    }
    let body = crate::contacts::parse_body(call)?;
    let schema = crate::contacts::schema()?;
    let checked = crate::contacts::check_object(schema, "user", &body, &[])?;
    if let Some(other) = checked.keys().find(|k| *k != "accountEnabled") {
        return Err(errors::graph_rejected(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            &format!("The fake tenant does not update '{other}' (only accountEnabled)."),
        ));
    }
    let mut st = call.shared.state.lock();
    let Some(id) = st.user_id(id) else {
        return Err(errors::resource_not_found(id));
    };
    if let Some(enabled) = checked.get("accountEnabled").and_then(Value::as_bool) {
        st.update_user(&id, |u| u.account_enabled = enabled);
    }
    st.counters.graph_writes += 1;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// `POST /users/{id}/assignLicense`.
pub(crate) fn assign_license(call: &Call<'_>, id: &str) -> Result<Reply, Reply> {
    if !call.has_role(WRITE_ROLES) {
        return Err(errors::graph_forbidden(true));
    }
    let body = crate::contacts::parse_body(call)?;
    for (name, value) in &body {
        if name != "addLicenses" && name != "removeLicenses" {
            return Err(bad_request(&format!(
                "The parameter '{name}' in the request payload is not a valid parameter for the operation 'assignLicense'."
            )));
        }
        if !value.is_array() {
            return Err(bad_request(&format!(
                "The parameter '{name}' in the request payload must be a collection."
            )));
        }
    }
    let (Some(add), Some(remove)) = (body.get("addLicenses"), body.get("removeLicenses")) else {
        return Err(bad_request(
            "The parameters 'addLicenses' and 'removeLicenses' are required for the operation 'assignLicense'.",
        ));
    };
    let mut st = call.shared.state.lock();
    let Some(id) = st.user_id(id) else {
        return Err(errors::resource_not_found(id));
    };
    let delay = st.provisioned.mailbox_delay;
    let entry = st.provisioned.users.entry(id.clone()).or_default();
    let mut skus = Vec::new();
    for license in add.as_array().into_iter().flatten() {
        let sku = license.get("skuId").and_then(Value::as_str).unwrap_or("");
        if !sku.eq_ignore_ascii_case(EXCHANGE_SKU) {
            return Err(bad_request(&format!(
                "License {sku} does not correspond to a valid company License."
            )));
        }
        skus.push(sku.to_ascii_lowercase());
    }
    if !skus.is_empty() && entry.usage_location.is_none() {
        return Err(bad_request(
            "License assignment cannot be done for user with invalid usage location.",
        ));
    }
    for sku in skus {
        if !entry.licenses.contains(&sku) {
            entry.licenses.push(sku);
        }
    }
    let removed: Vec<String> = remove
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_ascii_lowercase)
        .collect();
    entry.licenses.retain(|l| !removed.contains(l));
    if !entry.licenses.is_empty() && entry.mailbox_in.is_none() {
        entry.mailbox_in = Some(delay);
    }
    let user = st
        .users
        .get(&id)
        .map(|s| crate::graph::user_json(&s.user))
        .unwrap_or_default();
    Ok(Reply::ok(Value::Object(user)))
}

/// One Exchange call passes: licensed users whose mailbox is due get it
/// (a user mailbox, `mail` its UPN, proxy addresses the UPN and
/// `<mailNickname>@<routing domain>`).
pub(crate) fn settle_mailboxes(st: &mut State, routing_domain: &str) {
    let mut due = Vec::new();
    for (id, p) in st.provisioned.users.iter_mut() {
        match p.mailbox_in {
            Some(0) => {
                due.push(id.clone());
                p.mailbox_in = None;
            }
            Some(n) => p.mailbox_in = Some(n - 1),
            None => {}
        }
    }
    for id in due {
        st.update_user(&id, |u| {
            u.recipient_type = RecipientType::UserMailbox;
            u.mail = u.user_principal_name.clone();
            u.proxy_addresses = vec![
                format!("SMTP:{}", u.user_principal_name),
                format!("smtp:{}@{routing_domain}", u.mail_nickname),
            ];
        });
    }
}

/// `Set-Mailbox -Identity -EmailAddresses` (the whole list),
/// `-ForwardingSmtpAddress` (`Some(None)`: `$null`, no forward) and
/// `-DeliverToMailboxAndForward`.
pub(crate) fn set_mailbox(
    st: &mut State,
    identity: &str,
    addresses: Option<&Value>,
    forwarding: Option<Option<String>>,
    deliver: Option<bool>,
) -> Result<(), Reply> {
    let id = st
        .users
        .iter()
        .find(|(id, s)| {
            id.eq_ignore_ascii_case(identity)
                || s.user.user_principal_name.eq_ignore_ascii_case(identity)
        })
        .filter(|(_, s)| s.user.recipient_type == RecipientType::UserMailbox)
        .map(|(id, _)| id.clone())
        .ok_or_else(|| errors::exchange_not_found(identity))?;
    if forwarding.is_some() || deliver.is_some() {
        let entry = st.provisioned.forwarding.entry(id.clone()).or_default();
        if let Some(to) = forwarding {
            entry.0 = to;
        }
        if let Some(deliver) = deliver {
            entry.1 = deliver;
        }
    }
    let Some(list) = addresses else {
        return Ok(());
    };
    let list: Vec<String> = match list {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Value::String(one) => vec![one.clone()],
        _ => Vec::new(),
    };
    let primaries: Vec<&String> = list.iter().filter(|a| a.starts_with("SMTP:")).collect();
    if primaries.len() != 1 {
        return Err(errors::exchange_invalid(
            "Microsoft.Exchange.Data.DataValidationException",
            "The e-mail address list must hold exactly one primary SMTP address (SMTP:).",
        ));
    }
    for address in &list {
        let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if !st
            .domains
            .iter()
            .any(|d| d.name.eq_ignore_ascii_case(domain))
        {
            return Err(errors::exchange_invalid(
                "Microsoft.Exchange.Data.DataValidationException",
                &format!("The domain {domain} of the address {address} isn't an accepted domain for your organization."),
            ));
        }
    }
    let primary = primaries[0].trim_start_matches("SMTP:").to_owned();
    st.update_user(&id, |u| {
        u.mail = primary;
        u.proxy_addresses = list;
    });
    Ok(())
}

/// The licenses of the user `id`, as the fake holds them.
pub(crate) fn licenses_of(st: &State, id: &str) -> Vec<String> {
    st.provisioned
        .users
        .get(id)
        .map(|p| p.licenses.clone())
        .unwrap_or_default()
}
