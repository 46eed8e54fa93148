//! Address books: a copy of the GAL kept as entries under an OU of a
//! directory coexist already writes to (`[systems.address_book]`), for the
//! clients already pointed at that directory.
//!
//! An address book is staged, planned, journalled and gated as a system of
//! its own, named [`address_book_id`] of the directory's system: its
//! entries are [`FoundStub`](crate::FoundStub)s of that id only, never of
//! the directory's system, so nothing that reads a system's recipients or
//! stubs (the GAL's join, the diff, the loop checks, `route`) ever sees
//! them. The id is not a configured system: no policy names it, no mail is
//! routed through it.
//!
//! An entry carries the book's own marker (`coexist-gal:<anchor>`), which
//! is not coexist's stub marker (`coexist:`): a directory's reads never
//! take it for a stub (nor a misplaced one), and the address book's read
//! takes nothing else. Entries carry GAL attributes only, no routing
//! attribute; their [`Stub::route`](crate::Stub) is always
//! [`Route::DomainRouting`](crate::Route) (the field is unused: the entry
//! routes nothing).

/// The prefix of the marker value on every address-book entry.
pub const BOOK_MARKER_PREFIX: &str = "coexist-gal:";

/// What the address-book id of a system adds to the system's id (a `.`,
/// which no configured system id holds).
pub const BOOK_ID_SUFFIX: &str = ".address_book";

/// The marker value of the address-book entry of the recipient with GAL
/// anchor `anchor`.
pub fn book_marker_value(anchor: &str) -> String {
    format!("{BOOK_MARKER_PREFIX}{anchor}")
}

/// The anchor inside an address-book marker value, or `None` when `value`
/// is not one.
pub fn parse_book_marker(value: &str) -> Option<&str> {
    value
        .strip_prefix(BOOK_MARKER_PREFIX)
        .filter(|anchor| !anchor.is_empty())
}

/// The id under which the address book of `system` is staged and planned.
pub fn address_book_id(system: &str) -> String {
    format!("{system}{BOOK_ID_SUFFIX}")
}

/// The system whose address book `id` is, or `None` when `id` is not an
/// address book's.
pub fn address_book_of(id: &str) -> Option<&str> {
    id.strip_suffix(BOOK_ID_SUFFIX).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marker::parse_marker;

    #[test]
    fn a_book_marker_is_not_a_stub_marker_and_round_trips() {
        let value = book_marker_value("ldap:1234");
        assert_eq!(parse_book_marker(&value), Some("ldap:1234"));
        assert_eq!(parse_marker(&value), None);
        assert_eq!(parse_book_marker("coexist:ldap:1234"), None);
        assert_eq!(parse_book_marker(BOOK_MARKER_PREFIX), None);
    }

    #[test]
    fn a_book_id_names_its_system_and_no_configured_one() {
        assert_eq!(address_book_id("ad"), "ad.address_book");
        assert_eq!(address_book_of("ad.address_book"), Some("ad"));
        assert_eq!(address_book_of("ad"), None);
        assert_eq!(address_book_of(".address_book"), None);
    }
}
