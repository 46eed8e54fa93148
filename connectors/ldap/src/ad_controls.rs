//! The Active Directory controls ldap3 does not ship, encoded and decoded
//! here: DirSync (1.2.840.113556.1.4.841), for the DirSync delta, and Show
//! Deleted (1.2.840.113556.1.4.417), for the tombstones of the uSNChanged
//! delta.
//!
//! Request value: `SEQUENCE { flags INTEGER, maxBytes INTEGER, cookie OCTET STRING }`;
//! response value: `SEQUENCE { moreResults INTEGER, unused INTEGER, cookie OCTET STRING }`.

use ldap3::asn1::{parse_tag, parse_uint, ASNTag, Integer, OctetString, Sequence, Tag, PL};
use ldap3::controls::RawControl;

/// The DirSync control's OID.
pub const OID: &str = "1.2.840.113556.1.4.841";
/// The Show Deleted control's OID (tombstones in searches).
pub const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";
/// DirSync flag: only objects and attributes the caller may read
/// (needs no "Replicating Directory Changes" right).
pub const FLAG_OBJECT_SECURITY: i64 = 0x1;

/// The request control for a DirSync search from `cookie` (empty: from the
/// beginning).
pub fn request(flags: i64, max_bytes: i64, cookie: &[u8]) -> RawControl {
    let seq = Tag::Sequence(Sequence {
        inner: vec![
            Tag::Integer(Integer {
                inner: flags,
                ..Default::default()
            }),
            Tag::Integer(Integer {
                inner: max_bytes,
                ..Default::default()
            }),
            Tag::OctetString(OctetString {
                inner: cookie.to_vec(),
                ..Default::default()
            }),
        ],
        ..Default::default()
    })
    .into_structure();
    let mut buf = Vec::new();
    let _ = encode(&mut buf, seq);
    RawControl {
        ctype: OID.to_string(),
        crit: true,
        val: Some(buf),
    }
}

fn encode(buf: &mut Vec<u8>, tag: ldap3::asn1::StructureTag) -> std::io::Result<()> {
    let mut b = bytes::BytesMut::new();
    ldap3::asn1::write::encode_into(&mut b, tag)?;
    buf.extend_from_slice(&b);
    Ok(())
}

/// The Show Deleted control.
pub fn show_deleted() -> RawControl {
    RawControl {
        ctype: SHOW_DELETED_OID.to_string(),
        crit: true,
        val: None,
    }
}

/// A decoded DirSync response control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub more_results: bool,
    pub cookie: Vec<u8>,
}

/// Decodes a DirSync response value; `None` when it is malformed.
pub fn parse_response(value: &[u8]) -> Option<Response> {
    let (_, tag) = parse_tag(value).ok()?;
    let parts = match tag.payload {
        PL::C(parts) => parts,
        PL::P(_) => return None,
    };
    let mut it = parts.into_iter();
    let more = match it.next()?.payload {
        PL::P(bytes) => parse_uint(&bytes).ok()?.1,
        PL::C(_) => return None,
    };
    let _unused = it.next()?;
    let cookie = match it.next()?.payload {
        PL::P(bytes) => bytes,
        PL::C(_) => return None,
    };
    Some(Response {
        more_results: more != 0,
        cookie,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_encodes_flags_size_and_cookie_as_a_ber_sequence() {
        let c = request(FLAG_OBJECT_SECURITY, 1_048_576, b"ck");
        assert_eq!(c.ctype, OID);
        assert!(c.crit);
        let v = c.val.unwrap();
        // 30 len | 02 01 01 | 02 03 10 00 00 | 04 02 'c' 'k'
        assert_eq!(
            v,
            vec![
                0x30, 0x0c, 0x02, 0x01, 0x01, 0x02, 0x03, 0x10, 0x00, 0x00, 0x04, 0x02, b'c', b'k'
            ]
        );
    }

    #[test]
    fn a_response_decodes_more_results_and_the_cookie() {
        let v = [
            0x30, 0x0a, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x04, 0x02, 0xab, 0xcd,
        ];
        assert_eq!(
            parse_response(&v),
            Some(Response {
                more_results: true,
                cookie: vec![0xab, 0xcd]
            })
        );
        assert_eq!(parse_response(&[0x04, 0x00]), None);
    }
}
