//! DirSync, the AD delta for a bind DN with "Replicating Directory
//! Changes": from the naming context root, the objects changed since the
//! cookie (only their changed attributes, so they are read again through
//! the scopes: [`super::ad::reread`]) and the tombstones. The control
//! itself is encoded by [`crate::ad_controls`].

use coexist_connector::{ConnectorError, Pull};
use ldap3::adapters::EntriesOnly;
use ldap3::controls::Control;
use ldap3::{Ldap, Scope, SearchEntry};

use super::ad::{naming_context, reread, WATCH_FILTER};
use super::delta_pull;
use crate::ad_controls;
use crate::cursor::{b64, unb64, Method};
use crate::entry::{guid_to_string, Entry};
use crate::error::{self, rc};
use crate::read::Reader;

/// Runs a DirSync from `cookie` until the server has no more, returning the
/// entries and the last cookie; `Ok(Err(rc))` when the server refused.
async fn run(
    reader: &Reader,
    ldap: &mut Ldap,
    base: &str,
    filter: &str,
    attrs: &[String],
    mut cookie: Vec<u8>,
    mut each: impl FnMut(Entry),
) -> Result<Result<Vec<u8>, ldap3::LdapResult>, ConnectorError> {
    for _round in 0..100_000 {
        let control = ad_controls::request(0, 10 * 1024 * 1024, &cookie);
        let mut stream = ldap
            .with_timeout(reader.timeout)
            .with_controls(control)
            .streaming_search_with(
                EntriesOnly::new(),
                base,
                Scope::Subtree,
                filter,
                attrs.to_vec(),
            )
            .await
            .map_err(|e| error::from_ldap(&reader.system, "DirSync", e))?;
        loop {
            match stream.next().await {
                Ok(Some(e)) => each(Entry::from(SearchEntry::construct(e))),
                Ok(None) => break,
                Err(e) => {
                    let _ = stream.finish().await;
                    return Err(error::from_ldap(&reader.system, "DirSync", e));
                }
            }
        }
        let res = stream.finish().await;
        if res.rc != rc::SUCCESS {
            return Ok(Err(res));
        }
        let response = res
            .ctrls
            .iter()
            .find(|Control(_, raw)| raw.ctype == ad_controls::OID)
            .and_then(|Control(_, raw)| raw.val.as_deref())
            .and_then(ad_controls::parse_response);
        let Some(response) = response else {
            return Ok(Err(res));
        };
        cookie = response.cookie;
        if !response.more_results {
            return Ok(Ok(cookie));
        }
    }
    Err(ConnectorError::permanent(format!(
        "LDAP system `{}`: DirSync did not finish",
        reader.system
    )))
}

/// A DirSync cookie for "now"; `Err` with the server's answer, in words,
/// when DirSync is not available to the bind account.
pub(super) async fn cookie(
    reader: &Reader,
    ldap: &mut Ldap,
) -> Result<Result<Vec<u8>, String>, ConnectorError> {
    let nc = naming_context(reader, ldap).await?;
    // A filter that matches no object still advances the cookie.
    let filter = "(&(objectClass=contact)(!(objectClass=contact)))";
    match run(
        reader,
        ldap,
        &nc,
        filter,
        &["objectGUID".to_string()],
        Vec::new(),
        |_| {},
    )
    .await?
    {
        Ok(cookie) => Ok(Ok(cookie)),
        Err(res) => Ok(Err(error::describe(&res))),
    }
}

/// A DirSync delta; `None` when the server refused the cookie.
pub(super) async fn delta(
    reader: &Reader,
    ldap: &mut Ldap,
    cookie: &str,
) -> Result<Option<Pull>, ConnectorError> {
    let Some(cookie) = unb64(cookie) else {
        return Ok(None);
    };
    let nc = naming_context(reader, ldap).await?;
    let mut attrs = reader.mapper.read_attributes();
    attrs.push("isDeleted".into());
    let mut changed: Vec<(String, String)> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let outcome = run(reader, ldap, &nc, WATCH_FILTER, &attrs, cookie, |e| {
        if let Some(guid) = e.first_bytes("objectGUID").and_then(guid_to_string) {
            let deleted = e
                .first("isDeleted")
                .is_some_and(|v| v.eq_ignore_ascii_case("TRUE"));
            if deleted {
                removed.push(guid);
            } else {
                changed.push((guid, e.dn.clone()));
            }
        }
    })
    .await?;
    let next = match outcome {
        Ok(c) => c,
        Err(res) => {
            tracing::info!(result = %error::describe(&res), "the server refused the DirSync cookie");
            return Ok(None);
        }
    };
    let out = reread(reader, ldap, changed, &mut removed).await?;
    Ok(Some(delta_pull(
        reader,
        out,
        removed,
        Method::Dirsync { cookie: b64(&next) },
    )))
}
