//! The part of OData `$filter` the fake evaluates
//! (<https://learn.microsoft.com/graph/filter-query-parameter>): comparisons
//! `prop eq|ne literal` (strings in single quotes with `''` for a quote,
//! `true`, `false`, `null`, numbers), `startswith(prop,'text')`, lambda
//! `prop/any(x:x eq 'text')` on collections, joined with `and`, `or`, `not`
//! and parentheses. Property names are checked against the type in the CSDL
//! first; anything else is refused as an unsupported query.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    Comma,
    Colon,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Cmp {
        prop: String,
        negate: bool,
        value: Value,
    },
    StartsWith {
        prop: String,
        prefix: String,
    },
    Any {
        prop: String,
        value: Value,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

/// Why a filter is refused: a name the type lacks, or syntax the fake does not
/// evaluate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FilterError {
    UnknownProperty(String),
    Unsupported(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Token::LParen);
                i += 1;
            }
            ')' => {
                out.push(Token::RParen);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            ':' => {
                out.push(Token::Colon);
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(FilterError::Unsupported(
                                "unterminated string literal".to_owned(),
                            ))
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Str(s));
            }
            _ => {
                let start = i;
                while i < chars.len() && !" \t(),:'".contains(chars[i]) {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: &Token) -> Result<(), FilterError> {
        match self.next() {
            Some(t) if t == *want => Ok(()),
            other => Err(FilterError::Unsupported(format!(
                "expected {want:?}, found {other:?}"
            ))),
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or_expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and_expr()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Token::LParen) {
            self.pos += 1;
            let inner = self.or_expr()?;
            self.expect(&Token::RParen)?;
            return Ok(inner);
        }
        let Some(Token::Ident(name)) = self.next() else {
            return Err(FilterError::Unsupported(
                "expected a property name".to_owned(),
            ));
        };
        if name.eq_ignore_ascii_case("startswith") {
            self.expect(&Token::LParen)?;
            let Some(Token::Ident(prop)) = self.next() else {
                return Err(FilterError::Unsupported(
                    "startswith needs a property".to_owned(),
                ));
            };
            self.expect(&Token::Comma)?;
            let Some(Token::Str(prefix)) = self.next() else {
                return Err(FilterError::Unsupported(
                    "startswith needs a string".to_owned(),
                ));
            };
            self.expect(&Token::RParen)?;
            return Ok(Expr::StartsWith { prop, prefix });
        }
        if let Some((prop, func)) = name.split_once('/') {
            if !func.eq_ignore_ascii_case("any") {
                return Err(FilterError::Unsupported(format!(
                    "the lambda operator '{func}' is not evaluated by this fake"
                )));
            }
            self.expect(&Token::LParen)?;
            let Some(Token::Ident(var)) = self.next() else {
                return Err(FilterError::Unsupported(
                    "any() needs a variable".to_owned(),
                ));
            };
            self.expect(&Token::Colon)?;
            match self.next() {
                Some(Token::Ident(v)) if v == var => {}
                _ => {
                    return Err(FilterError::Unsupported(
                        "any() compares its variable".to_owned(),
                    ))
                }
            }
            if !self.keyword("eq") {
                return Err(FilterError::Unsupported("any() supports eq".to_owned()));
            }
            self.pos += 1;
            let value = self.literal()?;
            self.expect(&Token::RParen)?;
            return Ok(Expr::Any {
                prop: prop.to_owned(),
                value,
            });
        }
        let negate = if self.keyword("eq") {
            false
        } else if self.keyword("ne") {
            true
        } else {
            return Err(FilterError::Unsupported(format!(
                "the operator after '{name}' is not evaluated by this fake (eq, ne)"
            )));
        };
        self.pos += 1;
        let value = self.literal()?;
        Ok(Expr::Cmp {
            prop: name,
            negate,
            value,
        })
    }

    fn literal(&mut self) -> Result<Value, FilterError> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Value::String(s)),
            Some(Token::Ident(w)) if w == "true" => Ok(Value::Bool(true)),
            Some(Token::Ident(w)) if w == "false" => Ok(Value::Bool(false)),
            Some(Token::Ident(w)) if w == "null" => Ok(Value::Null),
            Some(Token::Ident(w)) => w
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| FilterError::Unsupported(format!("'{w}' is not a literal"))),
            other => Err(FilterError::Unsupported(format!(
                "expected a literal, found {other:?}"
            ))),
        }
    }
}

/// Parses a filter; `known` says whether the type has a property (and gives
/// its canonical name).
pub(crate) fn parse(
    text: &str,
    known: &dyn Fn(&str) -> Option<String>,
) -> Result<Expr, FilterError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, pos: 0 };
    let expr = parser.or_expr()?;
    if parser.pos < parser.tokens.len() {
        return Err(FilterError::Unsupported(
            "unexpected text after the expression".to_owned(),
        ));
    }
    canonical(expr, known)
}

fn canonical(expr: Expr, known: &dyn Fn(&str) -> Option<String>) -> Result<Expr, FilterError> {
    let name = |p: String| known(&p).ok_or(FilterError::UnknownProperty(p));
    Ok(match expr {
        Expr::Cmp {
            prop,
            negate,
            value,
        } => Expr::Cmp {
            prop: name(prop)?,
            negate,
            value,
        },
        Expr::StartsWith { prop, prefix } => Expr::StartsWith {
            prop: name(prop)?,
            prefix,
        },
        Expr::Any { prop, value } => Expr::Any {
            prop: name(prop)?,
            value,
        },
        Expr::And(a, b) => Expr::And(
            Box::new(canonical(*a, known)?),
            Box::new(canonical(*b, known)?),
        ),
        Expr::Or(a, b) => Expr::Or(
            Box::new(canonical(*a, known)?),
            Box::new(canonical(*b, known)?),
        ),
        Expr::Not(a) => Expr::Not(Box::new(canonical(*a, known)?)),
    })
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

/// Whether an object (its full JSON) matches.
pub(crate) fn matches(expr: &Expr, object: &Map<String, Value>) -> bool {
    match expr {
        Expr::Cmp {
            prop,
            negate,
            value,
        } => {
            let actual = object.get(prop).unwrap_or(&Value::Null);
            equal(actual, value) != *negate
        }
        Expr::StartsWith { prop, prefix } => {
            object.get(prop).and_then(Value::as_str).is_some_and(|s| {
                s.to_ascii_lowercase()
                    .starts_with(&prefix.to_ascii_lowercase())
            })
        }
        Expr::Any { prop, value } => object
            .get(prop)
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|i| equal(i, value))),
        Expr::And(a, b) => matches(a, object) && matches(b, object),
        Expr::Or(a, b) => matches(a, object) || matches(b, object),
        Expr::Not(a) => !matches(a, object),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn known(p: &str) -> Option<String> {
        ["mailEnabled", "groupTypes", "mail", "displayName"]
            .iter()
            .find(|k| k.eq_ignore_ascii_case(p))
            .map(|k| (*k).to_owned())
    }

    #[test]
    fn evaluates_the_filters_coexist_sends() {
        let g = json!({"mailEnabled": true, "groupTypes": ["Unified"], "mail": "a@x", "displayName": "O'Neil"});
        let g = g.as_object().unwrap();
        for (f, want) in [
            ("mailEnabled eq true", true),
            ("mailEnabled eq false", false),
            ("groupTypes/any(c:c eq 'Unified')", true),
            ("mailEnabled eq true and not (mail eq 'b@x')", true),
            ("displayName eq 'O''Neil'", true),
            ("startswith(mail,'A')", true),
            ("mail eq 'b@x' or mailEnabled ne false", true),
        ] {
            assert_eq!(matches(&parse(f, &known).unwrap(), g), want, "{f}");
        }
    }

    #[test]
    fn names_the_unknown_property() {
        assert_eq!(
            parse("foo eq 1", &known),
            Err(FilterError::UnknownProperty("foo".into()))
        );
        assert!(matches!(
            parse("mail gt 'a'", &known),
            Err(FilterError::Unsupported(_))
        ));
    }
}
