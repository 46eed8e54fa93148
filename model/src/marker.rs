//! coexist's marker: the value written on every stub.
//!
//! A stub holds `coexist:<anchor>` in a place its system allows (an LDAP
//! attribute, a Google extended property, an AD attribute). Only objects that
//! carry the marker are ever updated or deleted by coexist.

/// The prefix every marker value starts with.
pub const MARKER_PREFIX: &str = "coexist:";

/// The marker value for the recipient with GAL anchor `anchor`.
pub fn marker_value(anchor: &str) -> String {
    format!("{MARKER_PREFIX}{anchor}")
}

/// The anchor inside a marker value, or `None` when `value` is not coexist's.
pub fn parse_marker(value: &str) -> Option<&str> {
    value
        .strip_prefix(MARKER_PREFIX)
        .filter(|anchor| !anchor.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_round_trips() {
        assert_eq!(
            parse_marker(&marker_value("google:1234")),
            Some("google:1234")
        );
    }

    #[test]
    fn foreign_values_are_not_markers() {
        assert_eq!(parse_marker("gapps"), None);
        assert_eq!(parse_marker("coexist:"), None);
    }
}
