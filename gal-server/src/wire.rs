//! Search result entries in BER (RFC 4511 §4.5.2, X.690 definite
//! lengths), encoded once per snapshot: each entry is its DN and each of
//! its attributes already encoded, one after the other in one buffer (the
//! snapshot's arena), and a search result is written by putting the
//! selected pieces behind the message's headers, without building an
//! `LdapMsg` per entry. The pieces are also what filters read: an
//! attribute's name and values are decoded in place ([`attribute`],
//! [`octets`]).

use tokio_util::bytes::{BufMut, BytesMut};

const OCTET_STRING: u8 = 0x04;
const INTEGER: u8 = 0x02;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
/// `[APPLICATION 4]`, constructed: SearchResultEntry.
const SEARCH_RESULT_ENTRY: u8 = 0x64;

/// The length of a BER length field for `len`.
fn length_len(len: usize) -> usize {
    match len {
        0..=0x7f => 1,
        0x80..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xff_ffff => 4,
        _ => 5,
    }
}

fn put_header(out: &mut impl BufMut, tag: u8, len: usize) {
    out.put_u8(tag);
    match len {
        0..=0x7f => out.put_u8(len as u8),
        0x80..=0xff => {
            out.put_u8(0x81);
            out.put_u8(len as u8);
        }
        0x100..=0xffff => {
            out.put_u8(0x82);
            out.put_u16(len as u16);
        }
        0x1_0000..=0xff_ffff => {
            out.put_u8(0x83);
            out.put_u8((len >> 16) as u8);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(0x84);
            out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        }
    }
}

fn put_octets(out: &mut Vec<u8>, value: &[u8]) {
    put_header(out, OCTET_STRING, value.len());
    out.extend_from_slice(value);
}

/// The content bytes of INTEGER `value` (two's complement, shortest).
fn integer(value: i32) -> ([u8; 4], usize) {
    let bytes = value.to_be_bytes();
    let mut skip = 0;
    while skip < 3 {
        let (a, b) = (bytes[skip], bytes[skip + 1]);
        if (a == 0 && b & 0x80 == 0) || (a == 0xff && b & 0x80 != 0) {
            skip += 1;
        } else {
            break;
        }
    }
    (bytes, skip)
}

/// Appends the BER of `dn` (an OCTET STRING) and of each of `attrs`
/// (name, values; a PartialAttribute SEQUENCE each) to `bytes`, and to
/// `ends` where each piece ends, counted from where the entry starts.
/// `None` (nothing appended) when the entry is 4 GiB or larger.
pub fn encode<'a>(
    bytes: &mut Vec<u8>,
    ends: &mut Vec<u32>,
    dn: &str,
    attrs: impl Iterator<Item = (&'a str, &'a [String])>,
) -> Option<()> {
    let start = bytes.len();
    let pieces = ends.len();
    let mut fits = true;
    let mut end = |bytes: &Vec<u8>, ends: &mut Vec<u32>| match u32::try_from(bytes.len() - start) {
        Ok(at) => ends.push(at),
        Err(_) => fits = false,
    };
    put_octets(bytes, dn.as_bytes());
    end(bytes, ends);
    for (name, values) in attrs {
        let name_len = 1 + length_len(name.len()) + name.len();
        let set_len: usize = values
            .iter()
            .map(|v| 1 + length_len(v.len()) + v.len())
            .sum();
        let content = name_len + 1 + length_len(set_len) + set_len;
        put_header(bytes, SEQUENCE, content);
        put_octets(bytes, name.as_bytes());
        put_header(bytes, SET, set_len);
        for value in values {
            put_octets(bytes, value.as_bytes());
        }
        end(bytes, ends);
    }
    if fits {
        Some(())
    } else {
        bytes.truncate(start);
        ends.truncate(pieces);
        None
    }
}

/// Piece `n` of an entry's `bytes` whose pieces end at `ends` (0: the DN).
pub fn piece<'a>(bytes: &'a [u8], ends: &[u32], n: usize) -> &'a [u8] {
    let start = match n {
        0 => 0,
        _ => ends.get(n - 1).map_or(0, |&e| e as usize),
    };
    let end = ends.get(n).map_or(start, |&e| e as usize);
    bytes.get(start..end).unwrap_or_default()
}

/// The tag, the header's length and the content's length of the BER
/// element at the start of `bytes` (definite lengths only, as encoded
/// here).
fn header(bytes: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *bytes.first()?;
    let first = *bytes.get(1)?;
    if first < 0x80 {
        return Some((tag, 2, usize::from(first)));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 || count > 4 {
        return None;
    }
    let len = bytes
        .get(2..2 + count)?
        .iter()
        .fold(0usize, |len, &b| (len << 8) | usize::from(b));
    Some((tag, 2 + count, len))
}

/// The content of the OCTET STRING at the start of `bytes`, and what
/// follows it.
fn octet_string(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, head, len) = header(bytes)?;
    if tag != OCTET_STRING {
        return None;
    }
    let content = bytes.get(head..head + len)?;
    Some((content, bytes.get(head + len..).unwrap_or_default()))
}

/// The DN of an entry from its first piece.
pub fn dn(piece: &[u8]) -> &[u8] {
    octet_string(piece).map_or(&[][..], |(dn, _)| dn)
}

/// An attribute's name and the encoded values (the SET's content) from
/// its piece.
pub fn attribute(piece: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, head, _) = header(piece)?;
    if tag != SEQUENCE {
        return None;
    }
    let (name, rest) = octet_string(piece.get(head..)?)?;
    let (tag, head, len) = header(rest)?;
    if tag != SET {
        return None;
    }
    Some((name, rest.get(head..head + len)?))
}

/// The values of an attribute: the contents of the OCTET STRINGs in
/// `set` (the SET's content from [`attribute`]).
pub fn octets(mut set: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (value, rest) = octet_string(set)?;
        set = rest;
        Some(value)
    })
}

/// Writes the LDAPMessage of the entry encoded as `bytes` (pieces ending
/// at `ends`) as message `msgid`'s SearchResultEntry with the attributes
/// `selected` picks (by their position in the entry).
pub fn write(
    bytes: &[u8],
    ends: &[u32],
    out: &mut BytesMut,
    msgid: i32,
    selected: impl Fn(usize) -> bool,
) {
    let dn = piece(bytes, ends, 0);
    let count = ends.len().saturating_sub(1);
    let attrs_len: usize = (0..count)
        .filter(|&n| selected(n))
        .map(|n| piece(bytes, ends, n + 1).len())
        .sum();
    let op_len = dn.len() + 1 + length_len(attrs_len) + attrs_len;
    let (id, skip) = integer(msgid);
    let id_len = 4 - skip;
    let msg_len = 2 + id_len + 1 + length_len(op_len) + op_len;
    out.reserve(1 + length_len(msg_len) + msg_len);
    put_header(out, SEQUENCE, msg_len);
    put_header(out, INTEGER, id_len);
    out.put_slice(id.get(skip..).unwrap_or_default());
    put_header(out, SEARCH_RESULT_ENTRY, op_len);
    out.put_slice(dn);
    put_header(out, SEQUENCE, attrs_len);
    for n in (0..count).filter(|&n| selected(n)) {
        out.put_slice(piece(bytes, ends, n + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::proto::{LdapMsg, LdapOp, LdapPartialAttribute, LdapSearchResultEntry};
    use ldap3_proto::LdapCodec;
    use tokio_util::codec::Decoder;

    fn entry() -> (String, Vec<(&'static str, Vec<String>)>) {
        let long = "x".repeat(300);
        (
            "cn=Ann Lee,ou=gal,dc=x,dc=com".into(),
            vec![
                ("objectClass", vec!["top".into(), "person".into()]),
                ("cn", vec!["Ann Lee".into()]),
                ("description", vec![long]),
                ("mail", vec!["ann@x.com".into(), "a.lee@x.com".into()]),
            ],
        )
    }

    #[test]
    fn entries_encode_as_the_codec_encodes_them() {
        let (dn, attrs) = entry();
        let (mut bytes, mut ends) = (Vec::new(), Vec::new());
        encode(
            &mut bytes,
            &mut ends,
            &dn,
            attrs.iter().map(|(n, v)| (*n, v.as_slice())),
        )
        .unwrap();
        for msgid in [0, 1, 127, 128, 255, 256, 40_000, i32::MAX] {
            for keep in [
                [true, true, true, true],
                [false, true, false, true],
                [false; 4],
            ] {
                let mut ours = BytesMut::new();
                write(&bytes, &ends, &mut ours, msgid, |n| keep[n]);
                let msg = LdapMsg {
                    msgid,
                    op: LdapOp::SearchResultEntry(LdapSearchResultEntry {
                        dn: dn.clone(),
                        attributes: attrs
                            .iter()
                            .zip(keep)
                            .filter(|(_, k)| *k)
                            .map(|((name, values), _)| LdapPartialAttribute {
                                atype: (*name).to_string(),
                                vals: values.iter().map(|v| v.clone().into_bytes()).collect(),
                            })
                            .collect(),
                    }),
                    ctrl: Vec::new(),
                };
                let decoded = LdapCodec::default().decode(&mut ours).unwrap().unwrap();
                assert_eq!(decoded, msg);
                assert!(ours.is_empty());
            }
        }
        // And they decode in place.
        assert_eq!(dn.as_bytes(), super::dn(piece(&bytes, &ends, 0)));
        for (n, (name, values)) in attrs.iter().enumerate() {
            let (have, set) = attribute(piece(&bytes, &ends, n + 1)).unwrap();
            assert_eq!(have, name.as_bytes());
            let decoded: Vec<&[u8]> = octets(set).collect();
            let want: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
            assert_eq!(decoded, want);
        }
    }
}
