//! The delta of OpenLDAP without syncprov: the entries whose
//! `modifyTimestamp` is at or after the previous read's start (less a
//! minute of overlap), plus a presence read of every anchor for deletions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coexist_connector::{ConnectorError, Pull};
use ldap3::Ldap;

use super::delta_pull;
use crate::cursor::Method;
use crate::read::{Collected, Reader};

/// How far back a `modifyTimestamp` delta looks before the previous read
/// started, against changes committed while it ran.
pub(super) const OVERLAP: Duration = Duration::from_secs(60);

/// A `modifyTimestamp` delta with a presence read for deletions.
pub(super) async fn delta(
    reader: &Reader,
    ldap: &mut Ldap,
    since: &str,
    previous_ids: &[String],
) -> Result<Option<Pull>, ConnectorError> {
    if since.len() < 15 || !since.ends_with('Z') {
        return Ok(None);
    }
    let next_since = generalized_time(SystemTime::now() - OVERLAP);
    let mut out = Collected::tracking();
    let extra = format!("(modifyTimestamp>={})", crate::escape::filter_value(since));
    reader
        .read_all(ldap, &mut out, &coexist_connector::NoProgress, Some(&extra))
        .await?;
    if !out.complete {
        return Err(ConnectorError::retryable(format!(
            "LDAP system `{}`: the incremental read stopped part-way; the next pull retries",
            reader.system
        )));
    }
    let present = super::present_anchors(reader, ldap).await?;
    let removed: Vec<String> = previous_ids
        .iter()
        .filter(|id| !present.contains(*id))
        .cloned()
        .collect();
    reader.add_parent_groups(ldap, &mut out).await;
    reader.resolve_members(ldap, &mut out).await?;
    let ids = super::sorted(present);
    Ok(Some(delta_pull(
        reader,
        out,
        removed,
        Method::ModifyTimestamp {
            since: next_since,
            ids,
        },
    )))
}

/// `time` as an LDAP GeneralizedTime in UTC (`YYYYMMDDHHMMSSZ`).
pub fn generalized_time(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let mut y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    if m <= 2 {
        y += 1;
    }
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}
