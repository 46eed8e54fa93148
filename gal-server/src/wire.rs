//! Search result entries in BER (RFC 4511 §4.5.2, X.690 definite
//! lengths), encoded once per snapshot: each entry keeps its DN and each of
//! its attributes already encoded ([`Wire`]), and a search result is
//! written by putting the selected pieces behind the message's headers,
//! without building an `LdapMsg` per entry.

use tokio_util::bytes::{BufMut, BytesMut};

const OCTET_STRING: u8 = 0x04;
const INTEGER: u8 = 0x02;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
/// `[APPLICATION 4]`, constructed: SearchResultEntry.
const SEARCH_RESULT_ENTRY: u8 = 0x64;

/// An entry's DN and attributes in BER: the DN (an OCTET STRING) first,
/// then each attribute (a PartialAttribute SEQUENCE) in the entry's order.
#[derive(Debug, Default)]
pub struct Wire {
    bytes: Box<[u8]>,
    /// Where each piece ends in `bytes`: the DN's, then each attribute's.
    ends: Box<[u32]>,
}

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

impl Wire {
    /// Encodes `dn` and `attrs` (name, values).
    pub fn new<'a>(dn: &str, attrs: impl Iterator<Item = (&'a str, &'a [String])>) -> Self {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        put_octets(&mut bytes, dn.as_bytes());
        ends.push(bytes.len());
        for (name, values) in attrs {
            let name_len = 1 + length_len(name.len()) + name.len();
            let set_len: usize = values
                .iter()
                .map(|v| 1 + length_len(v.len()) + v.len())
                .sum();
            let content = name_len + 1 + length_len(set_len) + set_len;
            put_header(&mut bytes, SEQUENCE, content);
            put_octets(&mut bytes, name.as_bytes());
            put_header(&mut bytes, SET, set_len);
            for value in values {
                put_octets(&mut bytes, value.as_bytes());
            }
            ends.push(bytes.len());
        }
        Wire {
            bytes: bytes.into_boxed_slice(),
            ends: ends
                .into_iter()
                .map(|e| u32::try_from(e).unwrap_or(u32::MAX))
                .collect(),
        }
    }

    fn piece(&self, n: usize) -> &[u8] {
        let start = match n {
            0 => 0,
            _ => self.ends.get(n - 1).map_or(0, |&e| e as usize),
        };
        let end = self.ends.get(n).map_or(start, |&e| e as usize);
        self.bytes.get(start..end).unwrap_or_default()
    }

    /// Writes the LDAPMessage of this entry as message `msgid`'s
    /// SearchResultEntry with the attributes `selected` picks (by their
    /// position in the entry).
    pub fn write(&self, out: &mut BytesMut, msgid: i32, selected: impl Fn(usize) -> bool) {
        let dn = self.piece(0);
        let count = self.ends.len().saturating_sub(1);
        let attrs_len: usize = (0..count)
            .filter(|&n| selected(n))
            .map(|n| self.piece(n + 1).len())
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
            out.put_slice(self.piece(n + 1));
        }
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
        let wire = Wire::new(&dn, attrs.iter().map(|(n, v)| (*n, v.as_slice())));
        for msgid in [0, 1, 127, 128, 255, 256, 40_000, i32::MAX] {
            for keep in [
                [true, true, true, true],
                [false, true, false, true],
                [false; 4],
            ] {
                let mut ours = BytesMut::new();
                wire.write(&mut ours, msgid, |n| keep[n]);
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
    }
}
