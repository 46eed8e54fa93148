//! What a nameserver said, as data: the [`Query`]s the checks asked, their
//! [`Answer`]s, kept in a [`Snapshot`].
//!
//! The checks read a snapshot and never a nameserver. What they wanted and
//! the snapshot did not hold yet is noted ([`Snapshot::take_wanted`]), so
//! the resolver can look it up and the checks run again: SPF includes are
//! expanded one level per round, as a receiver would.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

/// The record types the checks read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    /// Mail exchangers.
    Mx,
    /// Text records (SPF, DKIM keys, DMARC policies).
    Txt,
    /// Aliases (autodiscover, Microsoft's DKIM selectors).
    Cname,
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
}

impl RecordType {
    /// The type's name in zone files (`MX`, `TXT`, ...).
    pub fn name(self) -> &'static str {
        match self {
            RecordType::Mx => "MX",
            RecordType::Txt => "TXT",
            RecordType::Cname => "CNAME",
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
        }
    }
}

/// One question: a name (lower case, without the trailing dot) and a type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Query {
    /// The name asked about.
    pub name: String,
    /// The type asked for.
    pub kind: RecordType,
}

impl Query {
    /// A query for `name` (any case, with or without a trailing dot).
    pub fn new(name: &str, kind: RecordType) -> Query {
        Query {
            name: normalise(name),
            kind,
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.kind.name())
    }
}

/// A domain name as the checks compare them: lower case, no trailing dot.
pub fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// One record of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// An MX record.
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// The exchanger, normalised (`.` for a null MX is the empty string).
        host: String,
    },
    /// A TXT record, its character-strings joined (RFC 7208 3.3).
    Txt(String),
    /// A CNAME record's target, normalised.
    Cname(String),
    /// An A or AAAA record's address.
    Addr(IpAddr),
}

/// What the nameserver answered to one [`Query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Records of the type asked for (never empty).
    Records(Vec<Data>),
    /// The name exists but holds no record of that type (NODATA).
    NoRecords,
    /// The name does not exist (NXDOMAIN).
    NoDomain,
    /// No usable answer: a timeout, an unreachable nameserver, SERVFAIL,
    /// REFUSED; why, in words.
    Failed(String),
    /// Not looked up: the checks stopped expanding (too many rounds).
    Pending,
}

impl Answer {
    /// The records, or none for every other answer.
    pub fn records(&self) -> &[Data] {
        match self {
            Answer::Records(records) => records,
            _ => &[],
        }
    }

    /// Why there are no records, in words (`None` when there are some).
    pub fn why_none(&self, query: &Query) -> Option<String> {
        match self {
            Answer::Records(_) => None,
            Answer::NoRecords => Some(format!("no {} record at {}", query.kind.name(), query.name)),
            Answer::NoDomain => Some(format!("{} does not exist (NXDOMAIN)", query.name)),
            Answer::Failed(why) => Some(format!("no answer for {query}: {why}")),
            Answer::Pending => Some(format!(
                "{query} was not looked up (too many nested lookups)"
            )),
        }
    }

    /// Whether the nameserver could not be asked (timeout, unreachable,
    /// refused): not an answer about the records at all.
    pub fn failed(&self) -> bool {
        matches!(self, Answer::Failed(_))
    }
}

/// The answers gathered so far, and the queries the checks wanted that it
/// did not hold.
#[derive(Debug, Default)]
pub struct Snapshot {
    answers: BTreeMap<Query, Answer>,
    wanted: RefCell<BTreeSet<Query>>,
    /// Read past the last round: what is missing is `Pending`, not wanted.
    closed: bool,
    /// Every name not held has no records at all (a whole zone, in tests).
    complete: bool,
}

impl Snapshot {
    /// An empty snapshot.
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// Records the answer to `query`.
    pub fn insert(&mut self, query: Query, answer: Answer) {
        self.answers.insert(query, answer);
    }

    /// Adds `data` to the records of `name`/`kind` (building a snapshot by
    /// hand, in tests and examples).
    pub fn add(&mut self, name: &str, kind: RecordType, data: Data) {
        let query = Query::new(name, kind);
        match self.answers.get_mut(&query) {
            Some(Answer::Records(records)) => records.push(data),
            _ => {
                self.answers.insert(query, Answer::Records(vec![data]));
            }
        }
    }

    /// The answer to `name`/`kind`. One not held yet is noted as wanted and
    /// is [`Answer::Pending`] meanwhile (after [`Snapshot::close`] it is
    /// only `Pending`); in a [`Snapshot::complete`] one it is
    /// [`Answer::NoDomain`].
    pub fn answer(&self, name: &str, kind: RecordType) -> Answer {
        let query = Query::new(name, kind);
        match self.answers.get(&query) {
            Some(answer) => answer.clone(),
            None if self.complete => Answer::NoDomain,
            None => {
                if !self.closed {
                    self.wanted.borrow_mut().insert(query);
                }
                Answer::Pending
            }
        }
    }

    /// The queries wanted since the last call, forgotten here.
    pub fn take_wanted(&self) -> BTreeSet<Query> {
        std::mem::take(&mut *self.wanted.borrow_mut())
    }

    /// No more rounds: what is missing stays [`Answer::Pending`] and is no
    /// longer noted as wanted.
    pub fn close(&mut self) {
        self.closed = true;
        self.wanted.borrow_mut().clear();
    }

    /// Every answer gathered, by query.
    pub fn answers(&self) -> &BTreeMap<Query, Answer> {
        &self.answers
    }

    /// This snapshot as a whole zone: a name it does not hold does not
    /// exist (NXDOMAIN), so `answer` never returns `Pending` (for tests and
    /// examples built by hand).
    pub fn complete(mut self) -> Snapshot {
        self.complete = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_compares_names_in_lower_case_without_the_trailing_dot() {
        assert_eq!(
            Query::new("AcmeCorp.COM.", RecordType::Mx),
            Query::new("acmecorp.com", RecordType::Mx)
        );
    }

    #[test]
    fn what_the_snapshot_lacks_is_wanted_once_and_pending_meanwhile() {
        let mut snapshot = Snapshot::new();
        snapshot.add("a.test", RecordType::Txt, Data::Txt("v=spf1 -all".into()));
        assert_eq!(
            snapshot.answer("A.test.", RecordType::Txt).records().len(),
            1
        );
        assert_eq!(snapshot.answer("b.test", RecordType::Mx), Answer::Pending);
        assert_eq!(
            snapshot.take_wanted().into_iter().collect::<Vec<_>>(),
            vec![Query::new("b.test", RecordType::Mx)]
        );
        assert!(snapshot.take_wanted().is_empty());
        snapshot.close();
        assert_eq!(snapshot.answer("c.test", RecordType::Mx), Answer::Pending);
        assert!(snapshot.take_wanted().is_empty());
    }
}
