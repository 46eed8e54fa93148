//! The AD delta without the DirSync right: the objects whose `uSNChanged`
//! is above the `highestCommittedUSN` of the previous read on the same DC
//! (same `invocationId`; another DC or a restore leads to a full read),
//! and the tombstones through the Show Deleted control; the changed
//! objects are then read again through the scopes ([`super::ad::reread`]).

use coexist_connector::{ConnectorError, Pull};
use ldap3::{Ldap, Scope, SearchEntry};

use super::ad::{naming_context, reread, root_dse, WATCH_FILTER};
use super::delta_pull;
use crate::ad_controls;
use crate::cursor::Method;
use crate::entry::{guid_to_string, Entry};
use crate::error;
use crate::read::{Query, Reader};

/// The DC's invocationId and highestCommittedUSN.
pub(super) async fn position(
    reader: &Reader,
    ldap: &mut Ldap,
) -> Result<Option<(String, u64)>, ConnectorError> {
    let dse = root_dse(reader, ldap, &["highestCommittedUSN", "dsServiceName"]).await?;
    let (Some(usn), Some(service)) = (
        dse.first("highestCommittedUSN")
            .and_then(|u| u.parse::<u64>().ok()),
        dse.first("dsServiceName").map(str::to_string),
    ) else {
        return Ok(None);
    };
    let result = ldap
        .with_timeout(reader.timeout)
        .search(
            &service,
            Scope::Base,
            "(objectClass=*)",
            vec!["invocationId"],
        )
        .await
        .map_err(|e| error::from_ldap(&reader.system, "read the DC's invocationId", e))?;
    let invocation = result
        .0
        .into_iter()
        .next()
        .map(|e| Entry::from(SearchEntry::construct(e)))
        .and_then(|e| e.first_bytes("invocationId").and_then(guid_to_string));
    Ok(invocation.map(|i| (i, usn)))
}

/// A uSNChanged delta; `None` when the DC changed (invocationId).
///
/// Deletions are found twice over: the tombstones (only a bind account
/// that may read `CN=Deleted Objects` sees them; for any other the search
/// silently returns nothing), and the anchors of `previous_ids` missing
/// from a listing of the anchors the scopes hold now (one paged search of
/// one attribute: cheap, and it needs no right beyond reading).
pub(super) async fn delta(
    reader: &Reader,
    ldap: &mut Ldap,
    invocation_id: &str,
    usn: u64,
    previous_ids: &[String],
) -> Result<Option<Pull>, ConnectorError> {
    let Some((current_invocation, highest)) = position(reader, ldap).await? else {
        return Ok(None);
    };
    if current_invocation != invocation_id {
        tracing::info!(
            "the domain controller's invocationId changed (another DC, or a restore): full read"
        );
        return Ok(None);
    }
    let since = usn + 1;
    let mut changed: Vec<(String, String)> = Vec::new();
    let mut refs = Vec::new();
    for scope in reader.scopes() {
        let filter = format!("(&{WATCH_FILTER}(uSNChanged>={since}))");
        let res = reader
            .search(
                ldap,
                Query {
                    base: &scope.base,
                    filter: &filter,
                    attrs: &["objectGUID".to_string()],
                    controls: Vec::new(),
                    paged: true,
                },
                |e| {
                    let entry = Entry::from(SearchEntry::construct(e));
                    if let Some(guid) = entry.first_bytes("objectGUID").and_then(guid_to_string) {
                        changed.push((guid, entry.dn));
                    }
                    Ok(())
                },
                &mut refs,
            )
            .await
            .map_err(|f| f.error)?;
        error::search_done(&reader.system, "uSNChanged search", &res)?;
    }
    // Tombstones, through the Show Deleted control.
    let nc = naming_context(reader, ldap).await?;
    let mut removed = Vec::new();
    let filter = format!("(&(isDeleted=TRUE)(uSNChanged>={since}))");
    let res = reader
        .search(
            ldap,
            Query {
                base: &nc,
                filter: &filter,
                attrs: &["objectGUID".to_string()],
                controls: vec![ad_controls::show_deleted()],
                paged: true,
            },
            |e| {
                let entry = Entry::from(SearchEntry::construct(e));
                removed.extend(entry.first_bytes("objectGUID").and_then(guid_to_string));
                Ok(())
            },
            &mut refs,
        )
        .await
        .map_err(|f| f.error)?;
    error::search_done(&reader.system, "tombstone search", &res)?;
    let present = super::present_anchors(reader, ldap).await?;
    removed.extend(
        previous_ids
            .iter()
            .filter(|id| !present.contains(*id))
            .cloned(),
    );
    let out = reread(reader, ldap, changed, &mut removed).await?;
    Ok(Some(delta_pull(
        reader,
        out,
        removed,
        Method::Usn {
            invocation_id: current_invocation,
            usn: highest,
            ids: Some(super::sorted(present)),
        },
    )))
}
