//! Asking a nameserver (hickory-resolver): the system's resolvers, or the
//! one the configuration names; every query bounded in time, so an
//! unreachable nameserver is an answer ([`Answer::Failed`]), never a hang.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType as Type};
use thiserror::Error;
use tokio::task::JoinSet;

use crate::check::{check, Topology};
use crate::records::{normalise, Answer, Data, Query, RecordType, Snapshot};

/// How many rounds of lookups the checks may ask for (each round follows
/// one more level of SPF includes).
const MAX_ROUNDS: usize = 16;

/// How to resolve: `[dns]` of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The nameserver to ask (`127.0.0.1:5353`); `None`: the system's
    /// resolvers (`/etc/resolv.conf`).
    pub nameserver: Option<SocketAddr>,
    /// How long to wait for one answer.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            nameserver: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why no resolver could be set up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResolveError {
    /// The system's resolver configuration cannot be read.
    #[error("the system's resolver configuration (/etc/resolv.conf) cannot be read: {0}")]
    System(String),
    /// hickory-resolver refused the settings.
    #[error("the resolver cannot be set up: {0}")]
    Build(String),
}

/// A resolver with its settings.
#[derive(Clone)]
pub struct Resolver {
    inner: hickory_resolver::TokioResolver,
    /// Who is asked, in words (`127.0.0.1:5353`).
    source: String,
    /// The most one query may take, retries included.
    deadline: Duration,
    timeout: Duration,
}

impl Resolver {
    /// A resolver asking `settings.nameserver`, or the system's resolvers.
    pub fn new(settings: &Settings) -> Result<Resolver, ResolveError> {
        let (config, mut options, source) = match settings.nameserver {
            Some(address) => {
                let mut server =
                    hickory_resolver::config::NameServerConfig::udp_and_tcp(address.ip());
                for connection in &mut server.connections {
                    connection.port = address.port();
                }
                let mut options = ResolverOpts::default();
                options.attempts = 1;
                (
                    ResolverConfig::from_parts(None, Vec::new(), vec![server]),
                    options,
                    address.to_string(),
                )
            }
            None => {
                let (config, options) = hickory_resolver::system_conf::read_system_conf()
                    .map_err(|e| ResolveError::System(e.to_string()))?;
                let servers: Vec<String> = config
                    .name_servers()
                    .iter()
                    .map(|s| s.ip.to_string())
                    .collect();
                let source = format!(
                    "the system's resolvers ({})",
                    if servers.is_empty() {
                        "none in /etc/resolv.conf".to_string()
                    } else {
                        servers.join(", ")
                    }
                );
                (config, options, source)
            }
        };
        options.timeout = settings.timeout;
        options.cache_size = 1024;
        options.attempts = options.attempts.max(1);
        let attempts = u32::try_from(options.attempts).unwrap_or(u32::MAX);
        let deadline = settings.timeout.saturating_mul(attempts.saturating_add(1));
        let inner = hickory_resolver::Resolver::builder_with_config(
            config,
            TokioRuntimeProvider::default(),
        )
        .with_options(options)
        .build()
        .map_err(|e| ResolveError::Build(e.to_string()))?;
        Ok(Resolver {
            inner,
            source,
            deadline,
            timeout: settings.timeout,
        })
    }

    /// Who is asked, in words.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The answer to `query`, within the deadline.
    pub async fn answer(&self, query: &Query) -> Answer {
        let kind = match query.kind {
            RecordType::Mx => Type::MX,
            RecordType::Txt => Type::TXT,
            RecordType::Cname => Type::CNAME,
            RecordType::A => Type::A,
            RecordType::Aaaa => Type::AAAA,
        };
        let name = format!("{}.", query.name);
        let lookup = self.inner.lookup(name.as_str(), kind);
        match tokio::time::timeout(self.deadline, lookup).await {
            Err(_) => Answer::Failed(format!(
                "no answer from {} within {}",
                self.source,
                seconds(self.deadline)
            )),
            Ok(Ok(lookup)) => {
                let records: Vec<Data> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == kind)
                    .filter_map(|r| data(&r.data))
                    .collect();
                if records.is_empty() {
                    Answer::NoRecords
                } else {
                    Answer::Records(records)
                }
            }
            Ok(Err(error)) => self.failure(error),
        }
    }

    fn failure(&self, error: NetError) -> Answer {
        match error {
            NetError::Dns(DnsError::NoRecordsFound(none)) => {
                if none.response_code == ResponseCode::NXDomain {
                    Answer::NoDomain
                } else {
                    Answer::NoRecords
                }
            }
            NetError::Dns(DnsError::ResponseCode(code)) => {
                Answer::Failed(format!("{} answered {code}", self.source))
            }
            NetError::Timeout => Answer::Failed(format!(
                "no answer from {} within {} (timed out)",
                self.source,
                seconds(self.timeout)
            )),
            NetError::Io(e) => Answer::Failed(format!("{} cannot be reached: {e}", self.source)),
            NetError::NoConnections => {
                Answer::Failed(format!("no connection to {} could be made", self.source))
            }
            other => Answer::Failed(format!("asking {}: {other}", self.source)),
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

fn data(rdata: &RData) -> Option<Data> {
    Some(match rdata {
        RData::MX(mx) => Data::Mx {
            preference: mx.preference,
            host: normalise(&mx.exchange.to_string()),
        },
        RData::TXT(txt) => Data::Txt(
            txt.txt_data
                .iter()
                .map(|part| String::from_utf8_lossy(part))
                .collect(),
        ),
        RData::CNAME(target) => Data::Cname(normalise(&target.0.to_string())),
        RData::A(a) => Data::Addr(a.0.into()),
        RData::AAAA(a) => Data::Addr(a.0.into()),
        _ => return None,
    })
}

/// Runs the checks against what `resolver` answers, round after round,
/// until they want nothing more: every SPF include followed as deep as
/// receivers would (bounded).
pub async fn gather(topology: &Topology, resolver: &Resolver) -> Snapshot {
    let mut snapshot = Snapshot::new();
    for _ in 0..MAX_ROUNDS {
        let _ = check(topology, &snapshot);
        let wanted = snapshot.take_wanted();
        if wanted.is_empty() {
            return snapshot;
        }
        let mut lookups = JoinSet::new();
        for query in wanted {
            let resolver = resolver.clone();
            lookups.spawn(async move {
                let answer = resolver.answer(&query).await;
                (query, answer)
            });
        }
        while let Some(done) = lookups.join_next().await {
            if let Ok((query, answer)) = done {
                snapshot.insert(query, answer);
            }
        }
    }
    snapshot.close();
    snapshot
}
