//! A full read: the cursor of the best incremental method available
//! taken first (so changes made during the read are seen by the next
//! delta), the scopes read through the lean reader on a connection of its
//! own, members resolved over ldap3. After a read that followed
//! references, or an incomplete one, no cursor: the next pull reads in
//! full again.

use coexist_connector::{ConnectorError, Progress, Pull, PullMode};
use ldap3::Ldap;

use crate::cursor::{Cursor, Method};
use crate::read::{Collected, Reader, Via};

/// A full read, with the cursor of the best incremental method available.
pub(super) async fn read(
    reader: &Reader,
    ldap: &mut Ldap,
    progress: &dyn Progress,
    earlier: &[String],
) -> Result<Pull, ConnectorError> {
    // The cursor is taken before the read, so changes made during the read
    // are seen again by the next delta rather than lost.
    let chosen = super::choose(reader, ldap).await?;
    tracing::info!(method = %chosen.how, "incremental reads after this full read");
    let method = chosen.method;
    let mut out = Collected::new();
    // The bulk of the read goes through the lean client, on a connection
    // of its own.
    let mut wire = reader.endpoint.lean().await?;
    let read = reader
        .read_all_via(Via::Wire(&mut wire), &mut out, progress, None)
        .await;
    wire.close().await;
    read?;
    reader.resolve_members(ldap, &mut out).await?;
    // The methods that find deletions by comparing anchors keep those the
    // full read saw.
    let seen = || {
        let mut ids: Vec<String> = out
            .recipients
            .iter()
            .map(|(r, _)| r.anchor.clone())
            .chain(out.stubs.iter().map(|s| s.id.clone()))
            .collect();
        ids.sort();
        ids
    };
    let method = method.map(|m| match m {
        Method::ModifyTimestamp { since, .. } => Method::ModifyTimestamp { since, ids: seen() },
        Method::Usn {
            invocation_id, usn, ..
        } => Method::Usn {
            invocation_id,
            usn,
            ids: Some(seen()),
        },
        other => other,
    });
    // coexist's stubs left in an earlier stub base (the configuration
    // changed it): marked misplaced, so the plan moves them in. They are
    // not among the anchors a delta compares with (the presence read sees
    // the scopes only), so a delta never takes them for deleted.
    let left = super::misplaced::stubs(reader, ldap, earlier).await;
    out.stubs.extend(left.stubs);
    // Deltas do not see behind references (content sync, DirSync and
    // uSNChanged work on one server; the presence read of modifyTimestamp
    // does not follow them): after a read that followed references, the
    // next pull reads everything again (no cursor), so referred entries are
    // neither stale nor taken for removed.
    let cursor = if out.complete && out.followed.is_empty() {
        method.and_then(|m| {
            let mut cursor = Cursor::new(&reader.config, m);
            cursor.earlier_stub_bases = left.still_holding;
            cursor.how.clone_from(&chosen.how);
            cursor.encode()
        })
    } else {
        None
    };
    Ok(Pull {
        mode: PullMode::Full,
        recipients: out.recipients.into_iter().map(|(r, _)| r).collect(),
        stubs: out.stubs,
        removed: Vec::new(),
        cursor,
        complete: out.complete,
        problems: out.problems,
        incremental: Some(chosen.how),
    })
}
