//! The CSV files of `provision --from-csv` (RFC 4180: a header row naming
//! the columns, fields separated by commas, a field holding a comma, a
//! quote or a line break between double quotes, a quote doubled inside).

use std::collections::BTreeMap;

/// A row of a CSV file: its line number (of its first line, from 1) and
/// its fields by column name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: usize,
    pub fields: BTreeMap<String, String>,
}

/// Parses `text`: the first row names the columns (trimmed, lower case);
/// every later row must have as many fields. Blank lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Row>, String> {
    let records = records(text)?;
    let mut records = records.into_iter();
    let Some((_, header)) = records.next() else {
        return Err("the file is empty: its first row must name the columns".into());
    };
    let header: Vec<String> = header
        .iter()
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for name in &header {
        if name.is_empty() {
            return Err("line 1: a column has no name".into());
        }
        if !seen.insert(name) {
            return Err(format!("line 1: the column {name} is named twice"));
        }
    }
    records
        .map(|(line, fields)| {
            if fields.len() != header.len() {
                return Err(format!(
                    "line {line}: {} fields where the header names {} columns",
                    fields.len(),
                    header.len()
                ));
            }
            Ok(Row {
                line,
                fields: header
                    .iter()
                    .cloned()
                    .zip(fields.into_iter().map(|f| f.trim().to_string()))
                    .collect(),
            })
        })
        .collect()
}

/// The records of `text` with the line each starts on.
fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut out = Vec::new();
    let mut chars = text.trim_start_matches('\u{feff}').chars().peekable();
    let mut line = 1;
    let mut start = 1;
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted_field = false;
    let end_record = |fields: &mut Vec<String>, start: usize, out: &mut Vec<_>| {
        let blank = fields.len() == 1 && fields[0].trim().is_empty();
        if !blank {
            out.push((start, std::mem::take(fields)));
        }
        fields.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '"' if field.trim().is_empty() && !quoted_field => {
                field.clear();
                quoted_field = true;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                        None => return Err(format!("line {start}: a quoted field is not closed")),
                    }
                }
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                quoted_field = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                quoted_field = false;
                end_record(&mut fields, start, &mut out);
                line += 1;
                start = line;
            }
            c if quoted_field && !c.is_whitespace() => {
                return Err(format!(
                    "line {line}: text after a quoted field's closing quote"
                ))
            }
            c => field.push(c),
        }
    }
    if !field.is_empty() || !fields.is_empty() || quoted_field {
        fields.push(field);
        end_record(&mut fields, start, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_names_the_columns_and_quotes_hold_commas_quotes_and_lines() {
        let rows = parse(
            "Address,Given_Name,title\r\nann@acmecorp.com,Ann,\"Head, \"\"Sales\"\"\"\n\n\"bob@acmecorp.com\",Bob,\"two\nlines\"\ncy@acmecorp.com,Cy,",
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].fields["address"], "ann@acmecorp.com");
        assert_eq!(rows[0].fields["title"], "Head, \"Sales\"");
        assert_eq!(rows[1].line, 4);
        assert_eq!(rows[1].fields["title"], "two\nlines");
        assert_eq!(rows[2].line, 6);
        assert_eq!(rows[2].fields["title"], "");
    }

    #[test]
    fn malformed_files_are_refused_naming_the_line() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("address,address\n")
            .unwrap_err()
            .contains("named twice"));
        assert_eq!(
            parse("address,title\nann@acmecorp.com\n").unwrap_err(),
            "line 2: 1 fields where the header names 2 columns"
        );
        assert!(parse("address\n\"ann@acmecorp.com\n")
            .unwrap_err()
            .contains("not closed"));
        assert!(parse("address\n\"ann\"x\n").unwrap_err().contains("line 2"));
    }
}
