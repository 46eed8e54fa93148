//! Address networks (`192.0.2.0/24`) and the relays a system sends from.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use thiserror::Error;

/// An IPv4 or IPv6 network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Network {
    /// The network's address (host bits may be set; they are ignored).
    pub addr: IpAddr,
    /// The prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub prefix: u8,
}

impl Network {
    /// The network of one address.
    pub fn host(addr: IpAddr) -> Network {
        Network {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// Whether every address of `other` is in this network.
    pub fn covers(&self, other: &Network) -> bool {
        if self.prefix > other.prefix {
            return false;
        }
        match (self.addr, other.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                same_prefix(u32::from(a).into(), u32::from(b).into(), 32, self.prefix)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                same_prefix(u128::from(a), u128::from(b), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Whether `a` and `b`, numbers of `bits` bits, agree on their first
/// `prefix` bits.
fn same_prefix(a: u128, b: u128, bits: u32, prefix: u8) -> bool {
    let prefix = u32::from(prefix);
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix.min(bits);
    (a >> shift) == (b >> shift)
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == max_prefix(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// Why a text is not a network or relay.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{text}` is not {what}")]
pub struct ParseError {
    /// The text as given.
    pub text: String,
    /// What was expected, in words.
    pub what: &'static str,
}

impl FromStr for Network {
    type Err = ParseError;

    /// `ADDRESS` or `ADDRESS/PREFIX`, IPv4 or IPv6.
    fn from_str(text: &str) -> Result<Network, ParseError> {
        let error = || ParseError {
            text: text.to_string(),
            what: "an IP address or network (192.0.2.25, 192.0.2.0/24, 2001:db8::/32)",
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| error())?;
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| error())?,
            None => max_prefix(addr),
        };
        if prefix > max_prefix(addr) {
            return Err(error());
        }
        Ok(Network { addr, prefix })
    }
}

/// One way a system sends mail for the shared domain, which SPF must
/// authorise: a network of outbound relays, or a host whose addresses are
/// its relays (an on-premises smart host).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relay {
    /// An address or network (`ip4:`/`ip6:` in SPF).
    Network(Network),
    /// A host name (`a:HOST` in SPF, or its addresses).
    Host(String),
}

impl fmt::Display for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Relay::Network(n) => write!(f, "{n}"),
            Relay::Host(h) => f.write_str(h),
        }
    }
}

impl FromStr for Relay {
    type Err = ParseError;

    /// An IP address or network, else a host name.
    fn from_str(text: &str) -> Result<Relay, ParseError> {
        let text = text.trim();
        if let Ok(network) = text.parse::<Network>() {
            return Ok(Relay::Network(network));
        }
        if is_domain(text) {
            return Ok(Relay::Host(crate::records::normalise(text)));
        }
        Err(ParseError {
            text: text.to_string(),
            what: "an IP address, a network (192.0.2.0/24) or a host name",
        })
    }
}

/// Whether `text` is a plausible domain name: dot-separated labels of
/// letters, digits, `-` and `_`, at most 63 characters each, not starting
/// or ending with `-`, a trailing dot allowed.
pub fn is_domain(text: &str) -> bool {
    let text = text.strip_suffix('.').unwrap_or(text);
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        && text.parse::<IpAddr>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Network {
        text.parse().unwrap()
    }

    #[test]
    fn a_network_covers_the_addresses_and_smaller_networks_inside_it() {
        assert!(net("192.0.2.0/24").covers(&net("192.0.2.25")));
        assert!(net("192.0.2.0/24").covers(&net("192.0.2.128/25")));
        assert!(!net("192.0.2.0/25").covers(&net("192.0.2.0/24")));
        assert!(!net("192.0.2.0/24").covers(&net("198.51.100.1")));
        assert!(net("0.0.0.0/0").covers(&net("203.0.113.9")));
        assert!(net("2001:db8::/32").covers(&net("2001:db8:1::25")));
        assert!(!net("2001:db8::/32").covers(&net("192.0.2.1")));
    }

    #[test]
    fn relays_are_addresses_networks_or_host_names() {
        assert_eq!(
            "192.0.2.25".parse::<Relay>(),
            Ok(Relay::Network(net("192.0.2.25")))
        );
        assert_eq!(
            "Mail.AcmeCorp.com.".parse::<Relay>(),
            Ok(Relay::Host("mail.acmecorp.com".into()))
        );
        assert!("192.0.2.0/33".parse::<Relay>().is_err());
        assert!("not a host".parse::<Relay>().is_err());
        assert_eq!(net("192.0.2.0/24").to_string(), "192.0.2.0/24");
        assert_eq!(net("192.0.2.1").to_string(), "192.0.2.1");
    }
}
