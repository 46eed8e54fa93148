//! Exchange Online's admin REST transport, the one the ExchangeOnlineManagement
//! v3 module speaks: `POST /adminapi/beta/{tenant}/InvokeCommand` with
//! `{"CmdletInput":{"CmdletName":…,"Parameters":{…}}}`, answered with
//! `{"@odata.context":…,"@adminapi.warnings":[…],"value":[…]}` and, for a large
//! result, `@odata.nextLink` (the same body posted to it gives the next page;
//! `Prefer: odata.maxpagesize=N` sets the page, at most 1000). Hashtable
//! parameters (`@{Add=…;Remove=…}`) come as JSON objects, their
//! `@odata.type` (`#Exchange.GenericHashTable`) ignored.
//!
//! The cmdlets and their parameters follow their Exchange Online reference
//! pages:
//! - Get-Recipient: <https://learn.microsoft.com/powershell/module/exchange/get-recipient>
//! - Get-MailContact: <https://learn.microsoft.com/powershell/module/exchange/get-mailcontact>
//! - Get-Contact: <https://learn.microsoft.com/powershell/module/exchange/get-contact>
//! - New-MailContact: <https://learn.microsoft.com/powershell/module/exchange/new-mailcontact>
//!   (no `-PrimarySmtpAddress` in Exchange Online: that parameter is
//!   on-premises only, and binding it fails as PowerShell does)
//! - Set-MailContact: <https://learn.microsoft.com/powershell/module/exchange/set-mailcontact>
//! - Set-Contact: <https://learn.microsoft.com/powershell/module/exchange/set-contact>
//! - Remove-MailContact: <https://learn.microsoft.com/powershell/module/exchange/remove-mailcontact>
//! - Get-AcceptedDomain: <https://learn.microsoft.com/powershell/module/exchange/get-accepteddomain>
//! - Get-Mailbox: <https://learn.microsoft.com/powershell/module/exchange/get-mailbox>
//!   (user, shared, room and equipment mailboxes, with their forwarding)
//! - Set-Mailbox: <https://learn.microsoft.com/powershell/module/exchange/set-mailbox>
//!   (`-EmailAddresses`, `-ForwardingSmtpAddress` an SMTP address or
//!   `$null`, `-DeliverToMailboxAndForward` a Boolean)
//!
//! Get-Recipient returns `ForwardingSmtpAddress` and
//! `DeliverToMailboxAndForward` only when `-Properties` names them.
//!
//! Errors come as the service sends them: `error.details[0].message` is
//! `{id}|{exception type}|{text}`; an unknown identity is 404 `NotFound`
//! (ManagementObjectNotFoundException); binding and validation errors are
//! 400 `BadRequest`. `-Filter` takes OPATH comparisons (`-eq`, `-ne`,
//! `-like`, `-notlike` with `*`) joined by `-and`, `-or`, `-not`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use crate::auth;
use crate::errors::{self, Reply};
use crate::state::{
    address_key, alias_from, distinguished_name, strip_smtp, Audience, FakeMailContact, Shared,
    State as Data,
};

/// The largest page of results.
const MAX_PAGE: usize = 1000;
/// What Get-* cmdlets return without `-ResultSize`.
const DEFAULT_RESULT_SIZE: usize = 1000;

const COMMON: &[&str] = &[
    "ErrorAction",
    "WarningAction",
    "InformationAction",
    "ErrorVariable",
    "WarningVariable",
    "InformationVariable",
    "OutVariable",
    "OutBuffer",
    "PipelineVariable",
    "Verbose",
    "Debug",
];

const RECIPIENT_DETAILS: &[&str] = &[
    "UserMailbox",
    "SharedMailbox",
    "RoomMailbox",
    "EquipmentMailbox",
    "LinkedMailbox",
    "SchedulingMailbox",
    "TeamMailbox",
    "MailUser",
    "GuestMailUser",
    "MailContact",
    "GroupMailbox",
    "MailUniversalDistributionGroup",
    "MailUniversalSecurityGroup",
    "MailNonUniversalGroup",
    "DynamicDistributionGroup",
    "RoomList",
    "DiscoveryMailbox",
    "PublicFolder",
];

/// The parameters a cmdlet binds (beside the common ones).
fn parameters_of(cmdlet: &str) -> Option<&'static [&'static str]> {
    Some(match cmdlet {
        "Get-Recipient" => &[
            "Identity",
            "ResultSize",
            "RecipientTypeDetails",
            "RecipientType",
            "Filter",
            "Anr",
            "Properties",
            "SortBy",
            "IncludeSoftDeletedRecipients",
        ],
        "Get-MailContact" => &[
            "Identity",
            "ResultSize",
            "Filter",
            "Anr",
            "SortBy",
            "RecipientTypeDetails",
        ],
        "Get-Contact" => &[
            "Identity",
            "ResultSize",
            "Filter",
            "Anr",
            "SortBy",
            "RecipientTypeDetails",
        ],
        "New-MailContact" => &[
            "Name",
            "ExternalEmailAddress",
            "Alias",
            "DisplayName",
            "FirstName",
            "LastName",
            "Initials",
            "MacAttachmentFormat",
            "MessageBodyFormat",
            "MessageFormat",
            "ModeratedBy",
            "ModerationEnabled",
            "OrganizationalUnit",
            "SendModerationNotifications",
            "UsePreferMessageFormat",
            "Confirm",
            "WhatIf",
        ],
        "Set-MailContact" => &[
            "Identity",
            "EmailAddresses",
            "ExternalEmailAddress",
            "DisplayName",
            "Name",
            "Alias",
            "HiddenFromAddressListsEnabled",
            "CustomAttribute1",
            "CustomAttribute2",
            "CustomAttribute3",
            "CustomAttribute4",
            "CustomAttribute5",
            "CustomAttribute6",
            "CustomAttribute7",
            "CustomAttribute8",
            "CustomAttribute9",
            "CustomAttribute10",
            "CustomAttribute11",
            "CustomAttribute12",
            "CustomAttribute13",
            "CustomAttribute14",
            "CustomAttribute15",
            "WindowsEmailAddress",
            "UsePreferMessageFormat",
            "MessageFormat",
            "MessageBodyFormat",
            "ForceUpgrade",
            "Confirm",
            "WhatIf",
        ],
        "Set-Mailbox" => &[
            "Identity",
            "EmailAddresses",
            "ForwardingSmtpAddress",
            "DeliverToMailboxAndForward",
            "Confirm",
            "WhatIf",
        ],
        "Get-Mailbox" => &[
            "Identity",
            "Anr",
            "Filter",
            "RecipientTypeDetails",
            "ResultSize",
            "SortBy",
            "SoftDeletedMailbox",
            "InactiveMailboxOnly",
            "IncludeInactiveMailbox",
        ],
        "Set-Contact" => &[
            "Identity",
            "FirstName",
            "LastName",
            "Initials",
            "DisplayName",
            "Name",
            "Title",
            "Department",
            "Company",
            "Office",
            "Phone",
            "MobilePhone",
            "HomePhone",
            "Fax",
            "Pager",
            "OtherTelephone",
            "StreetAddress",
            "City",
            "StateOrProvince",
            "PostalCode",
            "CountryOrRegion",
            "Notes",
            "WebPage",
            "AssistantName",
            "Manager",
            "Confirm",
            "WhatIf",
        ],
        "Remove-MailContact" => &["Identity", "Confirm", "WhatIf"],
        "Get-AcceptedDomain" => &["Identity", "ResultSize"],
        _ => return None,
    })
}

/// POST /adminapi/beta/{tenant}/InvokeCommand, the transport of the
/// ExchangeOnlineManagement module (<https://learn.microsoft.com/powershell/exchange/exchange-online-powershell-v2>);
/// the cmdlets follow their reference pages (module documentation).
pub(crate) async fn invoke(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = run(&shared, &tenant, query.as_deref(), &headers, &body);
    reply.into_response(
        headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok()),
    )
}

fn run(
    shared: &Shared,
    tenant: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    shared.count(|c| c.exchange_calls += 1);
    if !(tenant.eq_ignore_ascii_case(&shared.tenant_id)
        || tenant.eq_ignore_ascii_case(&shared.tenant_domain))
    {
        return Reply::empty(StatusCode::NOT_FOUND).rejected();
    }
    let roles = match auth::check_bearer(shared, headers, Audience::Exchange) {
        Ok(r) => r,
        Err(refusal) => return auth::exchange_refusal(shared, refusal),
    };
    if !roles.iter().any(|r| r == "Exchange.ManageAsApp") {
        return Reply::empty(StatusCode::FORBIDDEN)
            .header(
                "x-ms-diagnostics",
                "2000010;reason=\"The token lacks the Exchange.ManageAsApp application role.\";error_category=\"insufficient_scope\"",
            )
            .rejected();
    }
    let fault = {
        let mut st = shared.state.lock();
        st.exchange_faults
            .pop_front()
            .map(|f| (f, st.retry_after_secs))
    };
    if let Some((fault, retry_after)) = fault {
        return errors::exchange_fault(fault, retry_after);
    }
    let skiptoken = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case("$skiptoken"))
            .map(|(_, v)| v.into_owned())
    });
    let (input, offset) = match skiptoken {
        Some(t) => match shared.state.lock().exchange_cursors.get(&t).cloned() {
            Some(found) => found,
            None => return Reply::json(
                StatusCode::BAD_REQUEST,
                json!({"error": {"code": "BadRequest", "message": "The skip token is not valid."}}),
            )
            .rejected(),
        },
        None => {
            let parsed: Option<Value> = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("CmdletInput").cloned());
            match parsed {
                Some(i) if i.get("CmdletName").and_then(Value::as_str).is_some() => (i, 0),
                _ => {
                    return Reply::json(
                        StatusCode::BAD_REQUEST,
                        json!({"error": {"code": "BadRequest", "message": "The request body must be {\"CmdletInput\":{\"CmdletName\":…,\"Parameters\":{…}}}."}}),
                    )
                    .rejected()
                }
            }
        }
    };
    let cmdlet = input
        .get("CmdletName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    shared.count(|c| *c.exchange_by_cmdlet.entry(cmdlet.clone()).or_default() += 1);
    let empty = Map::new();
    let params = input
        .get("Parameters")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let (rows, warnings) = match execute(shared, &cmdlet, params) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let page_size = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .and_then(|p| {
            p.split([',', ';'])
                .filter_map(|part| part.trim().strip_prefix("odata.maxpagesize="))
                .find_map(|n| n.trim().parse::<usize>().ok())
        })
        .map_or(MAX_PAGE, |n| n.clamp(1, MAX_PAGE));
    let total = rows.len();
    let end = (offset + page_size).min(total);
    let value: Vec<Value> = rows
        .into_iter()
        .skip(offset)
        .take(end - offset.min(end))
        .collect();
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$metadata#Collection(Exchange.GenericHashTable)",
            shared.exchange_url()
        )),
    );
    out.insert(
        "adminapi.warnings@odata.type".into(),
        json!("#Collection(String)"),
    );
    out.insert("@adminapi.warnings".into(), json!(warnings));
    if end < total {
        let token = Data::opaque_token();
        shared
            .state
            .lock()
            .exchange_cursors
            .insert(token.clone(), (input.clone(), end));
        out.insert(
            "@odata.nextLink".into(),
            json!(format!(
                "{}/InvokeCommand?$skiptoken={token}",
                shared.exchange_url()
            )),
        );
    }
    out.insert("value".into(), Value::Array(value));
    Reply::ok(Value::Object(out))
}

/// Parameters with PowerShell's binding rules: names without regard to case.
struct Params<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Params<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn string(&self, name: &str) -> Option<String> {
        self.get(name).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_owned()),
            _ => None,
        })
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, Reply> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.to_ascii_lowercase().trim_start_matches('$') {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(cannot_convert(name, s, "System.Boolean")),
            },
            Some(other) => Err(cannot_convert(name, &other.to_string(), "System.Boolean")),
        }
    }

    fn required(&self, cmdlet: &str, name: &str) -> Result<String, Reply> {
        self.string(name)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                errors::exchange(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "",
                    "System.Management.Automation.ParameterBindingException",
                    &format!("Cannot process command because of one or more missing mandatory parameters: {name}. ({cmdlet})"),
                )
            })
    }
}

fn cannot_convert(name: &str, value: &str, to: &str) -> Reply {
    errors::exchange(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "",
        "System.Management.Automation.ParameterBindingException",
        &format!("Cannot process argument transformation on parameter '{name}'. Cannot convert value \"{value}\" to type \"{to}\"."),
    )
}

type Rows = (Vec<Value>, Vec<String>);

fn execute(shared: &Shared, cmdlet: &str, map: &Map<String, Value>) -> Result<Rows, Reply> {
    let canonical = [
        "Get-Recipient",
        "Get-MailContact",
        "Get-Contact",
        "New-MailContact",
        "Set-MailContact",
        "Set-Contact",
        "Remove-MailContact",
        "Get-AcceptedDomain",
        "Set-Mailbox",
        "Get-Mailbox",
    ]
    .into_iter()
    .find(|c| c.eq_ignore_ascii_case(cmdlet));
    let Some(cmdlet) = canonical else {
        return Err(errors::exchange(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "",
            "System.Management.Automation.CommandNotFoundException",
            &format!("The term '{cmdlet}' is not recognized as a name of a cmdlet, function, script file, or executable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again."),
        ));
    };
    let allowed = parameters_of(cmdlet).unwrap_or(&[]);
    for name in map.keys() {
        let known = allowed
            .iter()
            .chain(COMMON.iter())
            .any(|a| a.eq_ignore_ascii_case(name));
        if !known {
            return Err(errors::exchange_unknown_parameter(name));
        }
    }
    let p = Params { map };
    let mut st = shared.state.lock();
    crate::users::settle_mailboxes(&mut st, &crate::routing_domain_of(&shared.tenant_domain));
    match cmdlet {
        "Set-Mailbox" => {
            let identity = p.required("Set-Mailbox", "Identity")?;
            let forwarding = match p.get("ForwardingSmtpAddress") {
                None => None,
                Some(Value::Null) => Some(None),
                Some(_) => {
                    let text = p.string("ForwardingSmtpAddress").unwrap_or_default();
                    if text.trim().is_empty() || text.trim().eq_ignore_ascii_case("$null") {
                        Some(None)
                    } else {
                        let address = smtp_address("ForwardingSmtpAddress", &text)?;
                        Some(Some(format!("smtp:{}", &address[5..])))
                    }
                }
            };
            let deliver = p.boolean("DeliverToMailboxAndForward")?;
            crate::users::set_mailbox(
                &mut st,
                &identity,
                p.get("EmailAddresses"),
                forwarding,
                deliver,
            )
            .map(|()| (Vec::new(), Vec::new()))
        }
        "Get-Mailbox" => get_mailbox(&st, &p),
        "Get-Recipient" => get_recipient(shared, &st, &p),
        "Get-MailContact" => get_contacts(&st, &p, mail_contact_json),
        "Get-Contact" => get_contacts(&st, &p, contact_json),
        "New-MailContact" => new_mail_contact(&mut st, &p),
        "Set-MailContact" => set_mail_contact(&mut st, &p),
        "Set-Contact" => set_contact(&mut st, &p),
        "Remove-MailContact" => remove_mail_contact(&mut st, &p),
        _ => accepted_domains(&st, &p),
    }
}

fn stable_guid(seed: &str, salt: u64) -> String {
    let mut h1 = DefaultHasher::new();
    (seed, salt).hash(&mut h1);
    let a = h1.finish();
    let mut h2 = DefaultHasher::new();
    (salt, seed, a).hash(&mut h2);
    let b = h2.finish();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

fn result_size(p: &Params<'_>) -> Result<Option<usize>, Reply> {
    match p.string("ResultSize") {
        None => Ok(Some(DEFAULT_RESULT_SIZE)),
        Some(s) if s.eq_ignore_ascii_case("Unlimited") => Ok(None),
        Some(s) => s.trim().parse::<usize>().map(Some).map_err(|_| {
            cannot_convert(
                "ResultSize",
                &s,
                "Microsoft.Exchange.Data.Unlimited`1[System.UInt32]",
            )
        }),
    }
}

const MORE_RESULTS: &str = "By default, only the first 1000 items are returned. Use the ResultSize parameter to specify the number of items returned. To return all items, specify \"-ResultSize Unlimited\". Be aware that, depending upon the actual number of items, returning all items can take a long time and consume a large amount of memory. Also, we don't recommend storing the results in a variable. Instead, pipe the results to another task or script to perform batch changes.";

/// Applies `-Identity`, `-Filter`, `-ResultSize` to rows.
/// `template`: a row with every property the objects have (for `-Filter` names).
fn finish(
    rows: Vec<Value>,
    p: &Params<'_>,
    identity_keys: &[&str],
    template: &Value,
) -> Result<Rows, Reply> {
    let mut rows = rows;
    if let Some(identity) = p.string("Identity") {
        let want = identity.trim().to_ascii_lowercase();
        let addr = address_key(&want);
        rows.retain(|r| {
            identity_keys.iter().any(|k| match r.get(*k) {
                Some(Value::String(s)) => s.to_ascii_lowercase() == want || address_key(s) == addr,
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|s| address_key(s) == addr),
                _ => false,
            })
        });
        if rows.is_empty() {
            return Err(errors::exchange_not_found(&identity));
        }
    }
    if let Some(text) = p.string("Filter") {
        let expr = opath::parse(&text).map_err(|why| invalid_filter(&text, &why))?;
        let empty = Map::new();
        let names = template.as_object().unwrap_or(&empty);
        if let Some(bad) = opath::unknown_property(&expr, names) {
            return Err(invalid_filter(
                &text,
                &format!("the property '{bad}' is not a filterable property of these objects"),
            ));
        }
        rows.retain(|r| r.as_object().is_some_and(|o| opath::matches(&expr, o)));
    }
    let mut warnings = Vec::new();
    if let Some(limit) = result_size(p)? {
        if rows.len() > limit {
            rows.truncate(limit);
            warnings.push(MORE_RESULTS.to_owned());
        }
    }
    Ok((rows, warnings))
}

fn invalid_filter(text: &str, why: &str) -> Reply {
    errors::exchange(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "",
        "System.Management.Automation.ParameterBindingException",
        &format!("Cannot bind parameter 'Filter' to the target. Exception setting \"Filter\": \"Invalid filter syntax. For a description of the filter parameter syntax see the command help. \"{text}\": {why}.\""),
    )
}

fn details_filter(p: &Params<'_>) -> Result<Option<Vec<String>>, Reply> {
    let Some(v) = p.get("RecipientTypeDetails") else {
        return Ok(None);
    };
    let list: Vec<String> = match v {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Value::String(s) => s.split(',').map(|x| x.trim().to_owned()).collect(),
        other => {
            return Err(cannot_convert(
                "RecipientTypeDetails",
                &other.to_string(),
                "Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails[]",
            ))
        }
    };
    for item in &list {
        if !RECIPIENT_DETAILS
            .iter()
            .any(|d| d.eq_ignore_ascii_case(item))
        {
            return Err(cannot_convert(
                "RecipientTypeDetails",
                item,
                "Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails",
            ));
        }
    }
    Ok(Some(list))
}

/// <https://learn.microsoft.com/powershell/module/exchange/get-recipient>.
fn get_recipient(shared: &Shared, st: &Data, p: &Params<'_>) -> Result<Rows, Reply> {
    let details = details_filter(p)?;
    let recipient_type = p.string("RecipientType");
    let extra = requested_properties(p);
    let mut rows = Vec::new();
    for s in st.users.values() {
        let u = &s.user;
        let (Some(det), Some(kind)) = (
            u.recipient_type.details(),
            u.recipient_type.recipient_type(),
        ) else {
            continue;
        };
        rows.push(json!({
            "Identity": u.mail_nickname,
            "Name": u.mail_nickname,
            "Alias": u.mail_nickname,
            "DisplayName": u.display_name,
            "FirstName": u.given_name,
            "LastName": u.surname,
            "Title": u.job_title,
            "Department": u.department,
            "Company": u.company_name,
            "Office": u.office_location,
            "Phone": u.business_phones.first().cloned().unwrap_or_default(),
            "MobilePhone": u.mobile_phone,
            "PrimarySmtpAddress": u.mail,
            "WindowsLiveID": u.user_principal_name,
            "EmailAddresses": u.proxy_addresses,
            "RecipientType": kind,
            "RecipientTypeDetails": det,
            "ExternalDirectoryObjectId": u.id,
            "ExternalEmailAddress": if kind == "MailUser" { json!(u.proxy_addresses.iter().find(|a| !a.to_ascii_lowercase().contains(&shared.domain)).cloned()) } else { Value::Null },
            "Guid": stable_guid(&u.id, 1),
            "DistinguishedName": distinguished_name(&u.mail_nickname),
            "HiddenFromAddressListsEnabled": false,
            "CustomAttribute1": "",
        }));
        if let Some(o) = rows.last_mut().and_then(Value::as_object_mut) {
            let (to, deliver) = forwarding_of(st, &u.id);
            for name in &extra {
                match name.as_str() {
                    "forwardingsmtpaddress" => {
                        o.insert("ForwardingSmtpAddress".into(), json!(to));
                    }
                    "delivertomailboxandforward" => {
                        o.insert("DeliverToMailboxAndForward".into(), json!(deliver));
                    }
                    _ => {}
                }
            }
        }
    }
    for s in st.groups.values() {
        let g = &s.group;
        let Some(det) = g.recipient_details() else {
            continue;
        };
        let kind = if det == "MailUniversalSecurityGroup" {
            "MailUniversalSecurityGroup"
        } else {
            "MailUniversalDistributionGroup"
        };
        rows.push(json!({
            "Identity": g.mail_nickname,
            "Name": g.mail_nickname,
            "Alias": g.mail_nickname,
            "DisplayName": g.display_name,
            "PrimarySmtpAddress": g.mail,
            "EmailAddresses": g.proxy_addresses,
            "RecipientType": kind,
            "RecipientTypeDetails": det,
            "ExternalDirectoryObjectId": g.id,
            "ExternalEmailAddress": Value::Null,
            "Guid": stable_guid(&g.id, 2),
            "DistinguishedName": distinguished_name(&g.mail_nickname),
            "HiddenFromAddressListsEnabled": false,
            "CustomAttribute1": "",
        }));
    }
    for c in st.mail_contacts.values() {
        let mut row = mail_contact_json(c);
        if let Some(o) = row.as_object_mut() {
            o.insert("Company".into(), json!(c.company));
            o.insert("Department".into(), json!(c.department));
            o.insert("Title".into(), json!(c.title));
            o.insert("FirstName".into(), json!(c.first_name));
            o.insert("LastName".into(), json!(c.last_name));
        }
        rows.push(row);
    }
    if let Some(details) = details {
        rows.retain(|r| {
            r.get("RecipientTypeDetails")
                .and_then(Value::as_str)
                .is_some_and(|d| details.iter().any(|w| w.eq_ignore_ascii_case(d)))
        });
    }
    if let Some(kind) = recipient_type {
        let kinds: Vec<String> = kind
            .split(',')
            .map(|k| k.trim().to_ascii_lowercase())
            .collect();
        rows.retain(|r| {
            r.get("RecipientType")
                .and_then(Value::as_str)
                .is_some_and(|d| kinds.contains(&d.to_ascii_lowercase()))
        });
    }
    finish(
        rows,
        p,
        &[
            "Identity",
            "Name",
            "Alias",
            "Guid",
            "ExternalDirectoryObjectId",
            "DistinguishedName",
            "PrimarySmtpAddress",
            "EmailAddresses",
        ],
        &recipient_template(),
    )
}

/// The names `-Properties` asks for, lower-cased.
fn requested_properties(p: &Params<'_>) -> Vec<String> {
    match p.get("Properties") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.trim().to_ascii_lowercase())
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|x| x.trim().to_ascii_lowercase())
            .collect(),
        _ => Vec::new(),
    }
}

/// A mailbox's `ForwardingSmtpAddress` and `DeliverToMailboxAndForward`.
fn forwarding_of(st: &Data, id: &str) -> (Option<String>, bool) {
    st.provisioned
        .forwarding
        .get(id)
        .cloned()
        .unwrap_or((None, false))
}

/// <https://learn.microsoft.com/powershell/module/exchange/get-mailbox>:
/// user, shared, room and equipment mailboxes, with their forwarding.
fn get_mailbox(st: &Data, p: &Params<'_>) -> Result<Rows, Reply> {
    let details = details_filter(p)?;
    let mut rows = Vec::new();
    for s in st.users.values() {
        let u = &s.user;
        let Some(det) = u.recipient_type.details() else {
            continue;
        };
        if !matches!(
            det,
            "UserMailbox" | "SharedMailbox" | "RoomMailbox" | "EquipmentMailbox"
        ) {
            continue;
        }
        let (to, deliver) = forwarding_of(st, &u.id);
        rows.push(json!({
            "Identity": u.mail_nickname,
            "Name": u.mail_nickname,
            "Alias": u.mail_nickname,
            "DisplayName": u.display_name,
            "PrimarySmtpAddress": u.mail,
            "WindowsLiveID": u.user_principal_name,
            "UserPrincipalName": u.user_principal_name,
            "EmailAddresses": u.proxy_addresses,
            "RecipientTypeDetails": det,
            "ExternalDirectoryObjectId": u.id,
            "Guid": stable_guid(&u.id, 1),
            "DistinguishedName": distinguished_name(&u.mail_nickname),
            "ForwardingAddress": Value::Null,
            "ForwardingSmtpAddress": to,
            "DeliverToMailboxAndForward": deliver,
        }));
    }
    if let Some(details) = details {
        rows.retain(|r| {
            r.get("RecipientTypeDetails")
                .and_then(Value::as_str)
                .is_some_and(|d| details.iter().any(|w| w.eq_ignore_ascii_case(d)))
        });
    }
    let template = rows.first().cloned().unwrap_or_else(|| {
        json!({
            "Identity": "", "Name": "", "Alias": "", "DisplayName": "", "PrimarySmtpAddress": "",
            "WindowsLiveID": "", "UserPrincipalName": "", "EmailAddresses": [],
            "RecipientTypeDetails": "", "ExternalDirectoryObjectId": "", "Guid": "",
            "DistinguishedName": "", "ForwardingAddress": null, "ForwardingSmtpAddress": null,
            "DeliverToMailboxAndForward": false,
        })
    });
    finish(
        rows,
        p,
        &[
            "Identity",
            "Name",
            "Alias",
            "Guid",
            "ExternalDirectoryObjectId",
            "DistinguishedName",
            "PrimarySmtpAddress",
            "UserPrincipalName",
            "EmailAddresses",
        ],
        &template,
    )
}

/// Every property a Get-Recipient row can have.
fn recipient_template() -> Value {
    let mut row = mail_contact_json(&FakeMailContact::default());
    if let Some(o) = row.as_object_mut() {
        for k in [
            "FirstName",
            "LastName",
            "Title",
            "Department",
            "Company",
            "Office",
            "Phone",
            "MobilePhone",
            "WindowsLiveID",
        ] {
            o.insert(k.to_owned(), Value::Null);
        }
    }
    row
}

/// Get-MailContact's view of a contact.
pub(crate) fn mail_contact_json(c: &FakeMailContact) -> Value {
    json!({
        "Identity": c.name,
        "Name": c.name,
        "Alias": c.alias,
        "DisplayName": c.display_name,
        "ExternalEmailAddress": c.external_email_address,
        "EmailAddresses": c.email_addresses,
        "PrimarySmtpAddress": c.primary_smtp_address(),
        "CustomAttribute1": c.custom_attribute1,
        "CustomAttribute2": c.custom_attribute2,
        "HiddenFromAddressListsEnabled": c.hidden_from_address_lists_enabled,
        "RecipientType": "MailContact",
        "RecipientTypeDetails": "MailContact",
        "Guid": c.guid,
        "ExternalDirectoryObjectId": stable_guid(&c.guid, 3),
        "DistinguishedName": distinguished_name(&c.name),
    })
}

/// Get-Contact's view of a contact.
fn contact_json(c: &FakeMailContact) -> Value {
    json!({
        "Identity": c.name,
        "Name": c.name,
        "DisplayName": c.display_name,
        "FirstName": c.first_name,
        "LastName": c.last_name,
        "Title": c.title,
        "Department": c.department,
        "Company": c.company,
        "Phone": c.phone,
        "MobilePhone": c.mobile_phone,
        "WindowsEmailAddress": c.primary_smtp_address(),
        "RecipientType": "MailContact",
        "RecipientTypeDetails": "MailContact",
        "Guid": c.guid,
        "DistinguishedName": distinguished_name(&c.name),
    })
}

/// <https://learn.microsoft.com/powershell/module/exchange/get-mailcontact> and
/// <https://learn.microsoft.com/powershell/module/exchange/get-contact>.
fn get_contacts(
    st: &Data,
    p: &Params<'_>,
    render: fn(&FakeMailContact) -> Value,
) -> Result<Rows, Reply> {
    if let Some(details) = details_filter(p)? {
        if !details
            .iter()
            .any(|d| d.eq_ignore_ascii_case("MailContact"))
        {
            return Ok((Vec::new(), Vec::new()));
        }
    }
    let rows: Vec<Value> = st.mail_contacts.values().map(render).collect();
    finish(
        rows,
        p,
        &[
            "Identity",
            "Name",
            "Alias",
            "DisplayName",
            "Guid",
            "DistinguishedName",
            "PrimarySmtpAddress",
            "WindowsEmailAddress",
            "EmailAddresses",
            "ExternalEmailAddress",
        ],
        &render(&FakeMailContact::default()),
    )
}

/// The one contact an `-Identity` names.
fn resolve(st: &Data, p: &Params<'_>, cmdlet: &str) -> Result<String, Reply> {
    let identity = p.required(cmdlet, "Identity")?;
    let found = st.find_contact(&identity);
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(errors::exchange_not_found(&identity)),
        _ => Err(errors::exchange(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Ex4B5A61",
            "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException",
            &format!("The operation couldn't be performed because '{identity}' matches multiple entries."),
        )),
    }
}

fn proxy_conflict(address: &str, owner: &str) -> Reply {
    errors::exchange(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "Ex5A4D3A",
        "Microsoft.Exchange.Data.ProxyAddressExistsException",
        &format!("The proxy address \"{address}\" is already being used by the proxy addresses or LegacyExchangeDN of \"{owner}\". Please choose another proxy address."),
    )
}

fn name_taken(st: &Data, name: &str, except: Option<&str>) -> bool {
    st.contact_named(name)
        .is_some_and(|guid| Some(guid) != except)
        || st.users.values().any(|s| {
            s.user.recipient_type.details().is_some()
                && s.user.mail_nickname.eq_ignore_ascii_case(name)
        })
        || st.groups.values().any(|s| {
            s.group.recipient_details().is_some()
                && s.group.mail_nickname.eq_ignore_ascii_case(name)
        })
}

fn name_in_use(name: &str) -> Reply {
    errors::exchange(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "ExA9E4D0",
        "Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException",
        &format!("The name \"{name}\" is already being used. Please try another name."),
    )
}

/// `someone@x` or `SMTP:someone@x`, checked, as `SMTP:someone@x`.
fn smtp_address(name: &str, value: &str) -> Result<String, Reply> {
    let bare = strip_smtp(value).unwrap_or(value).trim();
    let valid = bare.split_once('@').is_some_and(|(l, d)| {
        !l.is_empty() && d.contains('.') && !d.starts_with('.') && !bare.contains(' ')
    });
    if !valid {
        return Err(errors::exchange_invalid(
            "Microsoft.Exchange.Data.DataValidationException",
            &format!("Cannot process argument transformation on parameter '{name}'. The address '{value}' is invalid: \"{value}\" isn't a valid SMTP address. The domain name can't contain spaces and it has to have a prefix and a suffix, such as example.com."),
        ));
    }
    Ok(format!("SMTP:{bare}"))
}

/// <https://learn.microsoft.com/powershell/module/exchange/new-mailcontact> (Exchange Online's parameters).
fn new_mail_contact(st: &mut Data, p: &Params<'_>) -> Result<Rows, Reply> {
    let name = p.required("New-MailContact", "Name")?;
    let external = p.required("New-MailContact", "ExternalEmailAddress")?;
    let external = smtp_address("ExternalEmailAddress", &external)?;
    if name_taken(st, &name, None) {
        return Err(name_in_use(&name));
    }
    if let Some(owner) = st.address_owner(&external, None) {
        return Err(proxy_conflict(&external, &owner));
    }
    let contact = FakeMailContact {
        name: name.clone(),
        alias: p.string("Alias").unwrap_or_else(|| alias_from(&name)),
        display_name: p.string("DisplayName").unwrap_or_else(|| name.clone()),
        external_email_address: external,
        first_name: p.string("FirstName").unwrap_or_default(),
        last_name: p.string("LastName").unwrap_or_default(),
        ..FakeMailContact::default()
    };
    let guid = st.add_mail_contact(contact);
    let row = st
        .mail_contacts
        .get(&guid)
        .map(mail_contact_json)
        .unwrap_or(Value::Null);
    Ok((vec![row], Vec::new()))
}

/// The new `EmailAddresses` of a contact: a full list, or `{Add, Remove}`.
fn new_addresses(current: &[String], value: &Value) -> Result<Vec<String>, Reply> {
    fn entries(v: &Value) -> Vec<String> {
        match v {
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Value::String(s) => s
                .split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect(),
            _ => Vec::new(),
        }
    }
    fn with_prefix(a: &str) -> String {
        if a.contains(':') {
            a.to_owned()
        } else {
            format!("smtp:{a}")
        }
    }
    let mut list: Vec<String> = match value {
        Value::Object(ops) => {
            let get = |k: &str| {
                ops.iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(k))
                    .map(|(_, v)| entries(v))
                    .unwrap_or_default()
            };
            for k in ops.keys() {
                if !(k.starts_with('@')
                    || k.eq_ignore_ascii_case("add")
                    || k.eq_ignore_ascii_case("remove"))
                {
                    return Err(errors::exchange_invalid(
                        "System.Management.Automation.ParameterBindingException",
                        &format!("Cannot process argument transformation on parameter 'EmailAddresses'. The hashtable key '{k}' is not Add or Remove."),
                    ));
                }
            }
            let mut list = current.to_vec();
            for r in get("remove") {
                let r = with_prefix(&r);
                if strip_smtp(&r).is_some() {
                    let key = address_key(&r);
                    list.retain(|a| strip_smtp(a).is_none() || address_key(a) != key);
                } else {
                    list.retain(|a| !a.eq_ignore_ascii_case(&r));
                }
            }
            for a in get("add") {
                let a = with_prefix(&a);
                let primary = a.starts_with("SMTP:");
                if primary {
                    for x in list.iter_mut() {
                        if let Some(rest) = x.strip_prefix("SMTP:") {
                            *x = format!("smtp:{rest}");
                        }
                    }
                }
                let key = address_key(&a);
                list.retain(|x| address_key(x) != key);
                list.push(a);
            }
            list
        }
        other => entries(other).iter().map(|a| with_prefix(a)).collect(),
    };
    for a in &list {
        if let Some(bare) = strip_smtp(a) {
            smtp_address("EmailAddresses", bare)?;
        }
    }
    let primaries = list.iter().filter(|a| a.starts_with("SMTP:")).count();
    if primaries > 1 {
        return Err(errors::exchange_invalid(
            "Microsoft.Exchange.Data.DataValidationException",
            "The e-mail address list contains more than one primary SMTP address (SMTP:). Make exactly one address primary.",
        ));
    }
    if primaries == 0 {
        if let Some(first) = list.iter_mut().find(|a| a.starts_with("smtp:")) {
            *first = format!("SMTP:{}", &first[5..]);
        }
    }
    Ok(list)
}

/// <https://learn.microsoft.com/powershell/module/exchange/set-mailcontact>.
fn set_mail_contact(st: &mut Data, p: &Params<'_>) -> Result<Rows, Reply> {
    let guid = resolve(st, p, "Set-MailContact")?;
    let Some(mut contact) = st.mail_contacts.get(&guid).cloned() else {
        return Err(errors::exchange_not_found(&guid));
    };
    if let Some(v) = p.get("EmailAddresses") {
        let list = new_addresses(&contact.email_addresses, v)?;
        for a in &list {
            if strip_smtp(a).is_some() {
                if let Some(owner) = st.address_owner(a, Some(&guid)) {
                    return Err(proxy_conflict(a, &owner));
                }
            }
        }
        contact.email_addresses = list;
    }
    if let Some(ext) = p.string("ExternalEmailAddress") {
        let ext = smtp_address("ExternalEmailAddress", &ext)?;
        if let Some(owner) = st.address_owner(&ext, Some(&guid)) {
            return Err(proxy_conflict(&ext, &owner));
        }
        contact.external_email_address = ext;
    }
    if let Some(name) = p.string("Name") {
        if name_taken(st, &name, Some(&guid)) {
            return Err(name_in_use(&name));
        }
        contact.name = name;
    }
    if let Some(v) = p.string("DisplayName") {
        contact.display_name = v;
    }
    if let Some(v) = p.string("Alias") {
        contact.alias = v;
    }
    if let Some(v) = p.get("CustomAttribute1") {
        contact.custom_attribute1 = v.as_str().unwrap_or("").to_owned();
    }
    if let Some(v) = p.get("CustomAttribute2") {
        contact.custom_attribute2 = v.as_str().unwrap_or("").to_owned();
    }
    if let Some(v) = p.boolean("HiddenFromAddressListsEnabled")? {
        contact.hidden_from_address_lists_enabled = v;
    }
    st.put_contact(contact);
    Ok((Vec::new(), Vec::new()))
}

/// <https://learn.microsoft.com/powershell/module/exchange/set-contact>.
fn set_contact(st: &mut Data, p: &Params<'_>) -> Result<Rows, Reply> {
    let guid = resolve(st, p, "Set-Contact")?;
    let Some(contact) = st.mail_contacts.get_mut(&guid) else {
        return Err(errors::exchange_not_found(&guid));
    };
    let text = |name: &str| p.get(name).map(|v| v.as_str().unwrap_or("").to_owned());
    if let Some(v) = text("FirstName") {
        contact.first_name = v;
    }
    if let Some(v) = text("LastName") {
        contact.last_name = v;
    }
    if let Some(v) = text("Title") {
        contact.title = v;
    }
    if let Some(v) = text("Department") {
        contact.department = v;
    }
    if let Some(v) = text("Company") {
        contact.company = v;
    }
    if let Some(v) = text("Phone") {
        contact.phone = v;
    }
    if let Some(v) = text("MobilePhone") {
        contact.mobile_phone = v;
    }
    if let Some(v) = text("DisplayName") {
        contact.display_name = v;
    }
    Ok((Vec::new(), Vec::new()))
}

/// <https://learn.microsoft.com/powershell/module/exchange/remove-mailcontact>.
fn remove_mail_contact(st: &mut Data, p: &Params<'_>) -> Result<Rows, Reply> {
    let guid = resolve(st, p, "Remove-MailContact")?;
    st.take_contact(&guid);
    Ok((Vec::new(), Vec::new()))
}

/// <https://learn.microsoft.com/powershell/module/exchange/get-accepteddomain>.
fn accepted_domains(st: &Data, p: &Params<'_>) -> Result<Rows, Reply> {
    let rows = st
        .domains
        .iter()
        .filter(|d| d.verified)
        .map(|d| {
            json!({
                "Identity": d.name,
                "Name": d.name,
                "DomainName": d.name,
                "DomainType": d.accepted_type,
                "Default": d.is_default,
                "InitialDomain": d.is_initial,
            })
        })
        .collect();
    let template = json!({"Identity": "", "Name": "", "DomainName": "", "DomainType": "", "Default": false, "InitialDomain": false});
    finish(rows, p, &["Identity", "Name", "DomainName"], &template)
}

/// OPATH filters, the subset coexist sends.
mod opath {
    use serde_json::{Map, Value};

    #[derive(Debug, Clone)]
    pub enum Expr {
        Cmp { prop: String, op: Op, value: String },
        And(Box<Expr>, Box<Expr>),
        Or(Box<Expr>, Box<Expr>),
        Not(Box<Expr>),
    }

    #[derive(Debug, Clone, Copy)]
    pub enum Op {
        Eq,
        Ne,
        Like,
        NotLike,
    }

    fn tokens(text: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
            } else if c == '(' || c == ')' {
                out.push(c.to_string());
                i += 1;
            } else if c == '\'' || c == '"' {
                let mut s = String::from("'");
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("an unterminated string".to_owned()),
                        Some(&q) if q == c && chars.get(i + 1) == Some(&c) => {
                            s.push(c);
                            i += 2;
                        }
                        Some(&q) if q == c => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(s);
            } else {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && chars[i] != '('
                    && chars[i] != ')'
                {
                    i += 1;
                }
                out.push(chars[start..i].iter().collect());
            }
        }
        Ok(out)
    }

    struct P {
        t: Vec<String>,
        i: usize,
    }

    impl P {
        fn kw(&self, w: &str) -> bool {
            self.t
                .get(self.i)
                .is_some_and(|x| x.eq_ignore_ascii_case(w))
        }
        fn or(&mut self) -> Result<Expr, String> {
            let mut l = self.and()?;
            while self.kw("-or") {
                self.i += 1;
                l = Expr::Or(Box::new(l), Box::new(self.and()?));
            }
            Ok(l)
        }
        fn and(&mut self) -> Result<Expr, String> {
            let mut l = self.un()?;
            while self.kw("-and") {
                self.i += 1;
                l = Expr::And(Box::new(l), Box::new(self.un()?));
            }
            Ok(l)
        }
        fn un(&mut self) -> Result<Expr, String> {
            if self.kw("-not") {
                self.i += 1;
                return Ok(Expr::Not(Box::new(self.un()?)));
            }
            if self.kw("(") {
                self.i += 1;
                let e = self.or()?;
                if !self.kw(")") {
                    return Err("a missing ')'".to_owned());
                }
                self.i += 1;
                return Ok(e);
            }
            let prop = self.t.get(self.i).cloned().ok_or("a missing property")?;
            let op = match self
                .t
                .get(self.i + 1)
                .map(|s| s.to_ascii_lowercase())
                .as_deref()
            {
                Some("-eq") => Op::Eq,
                Some("-ne") => Op::Ne,
                Some("-like") => Op::Like,
                Some("-notlike") => Op::NotLike,
                other => return Err(format!("the operator {other:?} is not supported")),
            };
            let value = self.t.get(self.i + 2).cloned().ok_or("a missing value")?;
            self.i += 3;
            let value = value.strip_prefix('\'').map(str::to_owned).unwrap_or(value);
            Ok(Expr::Cmp { prop, op, value })
        }
    }

    pub fn parse(text: &str) -> Result<Expr, String> {
        let mut p = P {
            t: tokens(text)?,
            i: 0,
        };
        let e = p.or()?;
        if p.i != p.t.len() {
            return Err("unexpected text after the expression".to_owned());
        }
        Ok(e)
    }

    fn get<'a>(o: &'a Map<String, Value>, prop: &str) -> Option<&'a Value> {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(prop))
            .map(|(_, v)| v)
    }

    pub fn unknown_property(e: &Expr, o: &Map<String, Value>) -> Option<String> {
        match e {
            Expr::Cmp { prop, .. } => get(o, prop).is_none().then(|| prop.clone()),
            Expr::And(a, b) | Expr::Or(a, b) => {
                unknown_property(a, o).or_else(|| unknown_property(b, o))
            }
            Expr::Not(a) => unknown_property(a, o),
        }
    }

    fn glob(pattern: &str, text: &str) -> bool {
        let p: Vec<char> = pattern.to_lowercase().chars().collect();
        let t: Vec<char> = text.to_lowercase().chars().collect();
        let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
        while ti < t.len() {
            if pi < p.len() && p[pi] == '*' {
                star = Some(pi);
                pi += 1;
                mark = ti;
            } else if pi < p.len() && p[pi] == t[ti] {
                pi += 1;
                ti += 1;
            } else if let Some(s) = star {
                pi = s + 1;
                mark += 1;
                ti = mark;
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }

    pub fn matches(e: &Expr, o: &Map<String, Value>) -> bool {
        match e {
            Expr::Cmp { prop, op, value } => {
                let texts: Vec<String> = match get(o, prop) {
                    Some(Value::String(s)) => vec![s.clone()],
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                    Some(Value::Bool(b)) => vec![b.to_string()],
                    Some(Value::Number(n)) => vec![n.to_string()],
                    _ => vec![String::new()],
                };
                let want = value.trim_start_matches('$');
                match op {
                    Op::Eq => texts.iter().any(|t| t.eq_ignore_ascii_case(want)),
                    Op::Ne => !texts.iter().any(|t| t.eq_ignore_ascii_case(want)),
                    Op::Like => texts.iter().any(|t| glob(value, t)),
                    Op::NotLike => !texts.iter().any(|t| glob(value, t)),
                }
            }
            Expr::And(a, b) => matches(a, o) && matches(b, o),
            Expr::Or(a, b) => matches(a, o) || matches(b, o),
            Expr::Not(a) => !matches(a, o),
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
        use super::*;
        use serde_json::json;

        #[test]
        fn like_with_a_trailing_star_matches_the_marker() {
            let o = json!({"CustomAttribute1": "coexist:abc", "Name": "Ann"});
            let o = o.as_object().unwrap();
            assert!(matches(
                &parse("CustomAttribute1 -like 'coexist:*'").unwrap(),
                o
            ));
            assert!(!matches(
                &parse("CustomAttribute1 -like 'other:*'").unwrap(),
                o
            ));
            assert!(matches(
                &parse("(Name -eq 'ann') -and -not (CustomAttribute1 -eq '')").unwrap(),
                o
            ));
            assert!(unknown_property(&parse("Foo -eq 'x'").unwrap(), o).is_some());
        }
    }
}
