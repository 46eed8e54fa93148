//! The DNS a split mail domain needs, checked against the organisation's
//! topology (`coexist doctor`).
//!
//! * [`check`] holds the checks, pure: a [`Topology`] (the shared domains,
//!   the system the MX points at, and per system its routing domain, the
//!   hosts it receives mail on, what it sends from, its DKIM selectors)
//!   against a [`Snapshot`] of DNS gives [`Finding`]s:
//!   - **MX**: the shared domains' MX points at the MX system's hosts and
//!     nowhere else (a stray MX, and how it is preferred, is named); each
//!     routing domain's MX at its own system;
//!   - **SPF**: one record, within ten DNS lookups counted through its
//!     includes as receivers count, includes that resolve, every system
//!     authorised (its provider's includes, its relays' addresses or
//!     hosts), and an `all` that fits the DMARC policy;
//!   - **DKIM**: each selector of each signing system publishes a usable key;
//!   - **DMARC**: one valid record, its policy and alignment; with an
//!     enforcing policy, what the systems relaying to each other must
//!     trust (a manual check);
//!   - **autodiscover**: where a system's clients need it, as information.
//! * [`spf`] and [`tags`] parse SPF records, DKIM keys and DMARC policies.
//! * [`resolve`] asks a nameserver (hickory-resolver): the system's, or the
//!   configured one, each query bounded by a timeout. The checks run in
//!   rounds ([`resolve::gather`]): what a round wanted and the snapshot
//!   lacked is looked up, and the checks run again.
//!
//! [`examine`] does both, and turns a nameserver that answered nothing
//! into one clear finding.

pub mod check;
pub mod net;
pub mod records;
pub mod resolve;
pub mod spf;
pub mod tags;

pub use check::{check, Check, Finding, Status, SystemDns, Topology};
pub use net::{Network, ParseError, Relay};
pub use records::{Answer, Data, Query, RecordType, Snapshot};
pub use resolve::{ResolveError, Resolver, Settings};

/// Every finding about `topology`'s DNS, resolved as `settings` say. A
/// resolver that cannot be set up, or a nameserver that answered none of
/// the queries (unreachable, timing out, refusing), is one failed
/// [`Check::Dns`] finding instead of one per record.
pub async fn examine(topology: &Topology, settings: &Settings) -> Vec<Finding> {
    let expected = "answers from the nameserver".to_string();
    let resolver = match Resolver::new(settings) {
        Ok(resolver) => resolver,
        Err(error) => {
            let source = settings
                .nameserver
                .map(|a| a.to_string())
                .unwrap_or_else(|| "the system's resolvers".into());
            return vec![Finding {
                check: Check::Dns,
                record: format!("nameserver {source}"),
                detail: format!("DNS cannot be checked: {error}"),
                found: error.to_string(),
                expected,
                status: Status::Fail,
            }];
        }
    };
    let snapshot = resolve::gather(topology, &resolver).await;
    let answers = snapshot.answers();
    if !answers.is_empty() && answers.values().all(Answer::failed) {
        let why = answers
            .values()
            .find_map(|a| match a {
                Answer::Failed(why) => Some(why.clone()),
                _ => None,
            })
            .unwrap_or_default();
        return vec![Finding {
            check: Check::Dns,
            record: format!("nameserver {}", resolver.source()),
            detail: format!(
                "DNS cannot be checked: {} answered none of the {} queries ({why}); check [dns] nameserver and timeout, or the system's resolvers",
                resolver.source(),
                answers.len()
            ),
            found: why,
            expected,
            status: Status::Fail,
        }];
    }
    check(topology, &snapshot)
}
