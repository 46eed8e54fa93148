//! Request validation against the copy of Google's discovery document in
//! `testdata/directory_v1_subset.json` (parameter names, types, enums, minima
//! and maxima, scopes, and the resource schemas that `fields` selects from).
//!
//! Partial responses (`fields`) follow
//! <https://developers.google.com/admin-sdk/directory/v1/guides/performance#partial-response>:
//! a comma-separated list, `a/b` for a sub-field, `a(b,c)` for sub-fields of
//! each element of an array or of an object, `*` for everything at a level.

use std::collections::HashMap;

use axum::response::Response;
use serde_json::{Map, Value};

use crate::errors;

const SUBSET: &str = include_str!("../testdata/directory_v1_subset.json");

/// Validated query parameters (name to value).
pub(crate) type Params = HashMap<String, String>;

/// One selected field, with what is selected under it (`None`: all of it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldSel {
    pub name: String,
    pub sub: Option<Vec<FieldSel>>,
}

pub(crate) struct Spec {
    doc: Value,
}

impl Spec {
    pub fn load() -> Result<Spec, String> {
        let doc: Value = serde_json::from_str(SUBSET)
            .map_err(|e| format!("testdata/directory_v1_subset.json: {e}"))?;
        Ok(Spec { doc })
    }

    /// A method of a resource; `users.aliases` names a resource nested in
    /// another.
    fn method(&self, resource: &str, method: &str) -> Option<&Value> {
        let mut parts = resource.split('.');
        let mut node = self.doc.get("resources")?.get(parts.next()?)?;
        for part in parts {
            node = node.get("resources")?.get(part)?;
        }
        node.get("methods")?.get(method)
    }

    /// Checks a request body against the method's request schema as Google
    /// does: an unknown field, a value of the wrong JSON type, or a field
    /// the schema annotates as required for this method and the body lacks
    /// is a 400 naming it.
    pub fn check_body(&self, resource: &str, method: &str, body: &Value) -> Result<(), Response> {
        let Some(m) = self.method(resource, method) else {
            return Err(errors::bad_request("Unknown method"));
        };
        let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
        let Some(schema) = m
            .get("request")
            .and_then(|r| r.get("$ref"))
            .and_then(Value::as_str)
        else {
            return Err(errors::bad_request("This method takes no request body"));
        };
        self.check_object(schema, id, body, "")
    }

    fn check_object(
        &self,
        schema: &str,
        id: &str,
        value: &Value,
        at: &str,
    ) -> Result<(), Response> {
        let Some(object) = value.as_object() else {
            return Err(errors::bad_request(&format!(
                "Invalid JSON payload received. Expected an object for {}.",
                if at.is_empty() { "the request" } else { at }
            )));
        };
        let properties = self
            .schema(schema)
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object);
        let Some(properties) = properties else {
            return Ok(());
        };
        for (name, spec) in properties {
            let required = spec
                .get("annotations")
                .and_then(|a| a.get("required"))
                .and_then(Value::as_array)
                .is_some_and(|ids| ids.iter().any(|i| i.as_str() == Some(id)));
            if required && object.get(name).is_none_or(Value::is_null) {
                return Err(errors::bad_request(&format!(
                    "Invalid Input: {at}{name} is required"
                )));
            }
        }
        for (name, field) in object {
            let path = format!("{at}{name}");
            let Some(spec) = properties.get(name) else {
                return Err(errors::bad_request(&format!(
                    "Invalid JSON payload received. Unknown name \"{path}\": Cannot find field."
                )));
            };
            if let Some(target) = spec.get("$ref").and_then(Value::as_str) {
                self.check_object(target, id, field, &format!("{path}."))?;
                continue;
            }
            let fits = match spec.get("type").and_then(Value::as_str) {
                Some("string") => field.is_string(),
                Some("boolean") => field.is_boolean(),
                Some("integer" | "number") => field.is_number(),
                Some("array") => field.is_array(),
                Some("object") => field.is_object(),
                _ => true,
            };
            if !fits {
                return Err(errors::bad_request(&format!(
                    "Invalid value at '{path}': not of the type the API documents"
                )));
            }
        }
        Ok(())
    }

    /// The scopes the discovery document lists for a method (any one suffices).
    pub fn scopes(&self, resource: &str, method: &str) -> Vec<String> {
        self.method(resource, method)
            .and_then(|m| m.get("scopes"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The name of the schema a method answers with.
    pub fn response_schema(&self, resource: &str, method: &str) -> Option<String> {
        self.method(resource, method)?
            .get("response")?
            .get("$ref")?
            .as_str()
            .map(str::to_owned)
    }

    /// The `kind` a schema's objects carry (its documented default).
    pub fn kind(&self, schema: &str) -> String {
        self.schema(schema)
            .and_then(|s| s.get("properties"))
            .and_then(|p| p.get("kind"))
            .and_then(|k| k.get("default"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    }

    fn schema(&self, name: &str) -> Option<&Value> {
        self.doc.get("schemas")?.get(name)
    }

    /// Checks every query parameter of a request against the method's and
    /// the API's parameters. Path parameters are not accepted in the query.
    pub fn validate_query(
        &self,
        resource: &str,
        method: &str,
        pairs: &[(String, String)],
    ) -> Result<Params, Response> {
        let Some(m) = self.method(resource, method) else {
            return Err(errors::bad_request("Unknown method"));
        };
        let mut params = Params::new();
        for (name, value) in pairs {
            let spec = m
                .get("parameters")
                .and_then(|p| p.get(name))
                .filter(|p| p.get("location").and_then(Value::as_str) == Some("query"))
                .or_else(|| self.doc.get("parameters").and_then(|p| p.get(name)));
            let Some(spec) = spec else {
                return Err(errors::unknown_parameter(name));
            };
            let repeated = spec.get("repeated").and_then(Value::as_bool) == Some(true);
            if params.contains_key(name) && !repeated {
                return Err(errors::bad_parameter(
                    &format!("Invalid value for parameter '{name}': it may be given only once"),
                    name,
                ));
            }
            check_value(name, value, spec)?;
            params.insert(name.clone(), value.clone());
        }
        Ok(params)
    }

    /// The effective integer value of a parameter: the given one or the
    /// documented default.
    pub fn int_param(&self, resource: &str, method: &str, params: &Params, name: &str) -> i64 {
        if let Some(v) = params.get(name).and_then(|v| v.parse().ok()) {
            return v;
        }
        self.method(resource, method)
            .and_then(|m| m.get("parameters"))
            .and_then(|p| p.get(name))
            .and_then(|p| p.get("default"))
            .and_then(Value::as_str)
            .and_then(|d| d.parse().ok())
            .unwrap_or(100)
    }

    /// Parses and checks a `fields` selector for a response schema.
    pub fn parse_fields(&self, schema: &str, selector: &str) -> Result<Vec<FieldSel>, Response> {
        let sels = parse_selector(selector).map_err(|e| errors::invalid_field_selection(&e))?;
        self.check_selection(&Target::Schema(schema.to_owned()), &sels, "")?;
        Ok(sels)
    }

    fn check_selection(
        &self,
        target: &Target,
        sels: &[FieldSel],
        prefix: &str,
    ) -> Result<(), Response> {
        for sel in sels {
            let path = if prefix.is_empty() {
                sel.name.clone()
            } else {
                format!("{prefix}/{}", sel.name)
            };
            let child = match target {
                Target::Anything => Target::Anything,
                Target::Primitive => return Err(errors::invalid_field_selection(&path)),
                Target::Schema(name) => {
                    if sel.name == "*" {
                        Target::Anything
                    } else {
                        let prop = self
                            .schema(name)
                            .and_then(|s| s.get("properties"))
                            .and_then(|p| p.get(&sel.name));
                        match prop {
                            Some(prop) => self.target_of(name, &sel.name, prop),
                            None => return Err(errors::invalid_field_selection(&path)),
                        }
                    }
                }
            };
            if let Some(sub) = &sel.sub {
                self.check_selection(&child, sub, &path)?;
            }
        }
        Ok(())
    }

    /// What a property holds, for checking sub-selections.
    fn target_of(&self, schema: &str, prop_name: &str, prop: &Value) -> Target {
        if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
            return Target::Schema(r.to_owned());
        }
        match prop.get("type").and_then(Value::as_str) {
            Some("array") => match prop.get("items") {
                Some(items) => self.target_of(schema, prop_name, items),
                None => Target::Anything,
            },
            // Maps (customSchemas) and free-form objects: any key.
            Some("object") => Target::Anything,
            Some("any") => {
                let mapped = self
                    .doc
                    .get("_anyItems")
                    .and_then(|m| m.get(format!("{schema}.{prop_name}")))
                    .and_then(Value::as_str);
                match mapped {
                    Some(s) => Target::Schema(s.to_owned()),
                    None => Target::Anything,
                }
            }
            _ => Target::Primitive,
        }
    }
}

enum Target {
    Schema(String),
    Anything,
    Primitive,
}

/// The maximum of an integer parameter: its `maximum`, or the "Max allowed
/// value is N" its description states (groups and members lists).
fn maximum_of(spec: &Value) -> Option<i64> {
    if let Some(m) = spec.get("maximum").and_then(Value::as_str) {
        return m.parse().ok();
    }
    let desc = spec.get("description").and_then(Value::as_str)?;
    let rest = desc.split("Max allowed value is ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn check_value(name: &str, value: &str, spec: &Value) -> Result<(), Response> {
    match spec.get("type").and_then(Value::as_str) {
        Some("integer") => {
            let Ok(n) = value.trim().parse::<i64>() else {
                return Err(errors::bad_parameter(
                    &format!("Invalid value '{value}'. Values must be integers."),
                    name,
                ));
            };
            let min = spec
                .get("minimum")
                .and_then(Value::as_str)
                .and_then(|m| m.parse::<i64>().ok());
            let max = maximum_of(spec);
            let below = min.is_some_and(|m| n < m);
            let above = max.is_some_and(|m| n > m);
            if below || above {
                let lo = min.map(|m| m.to_string()).unwrap_or_else(|| "-inf".into());
                let hi = max.map(|m| m.to_string()).unwrap_or_else(|| "inf".into());
                return Err(errors::bad_parameter(
                    &format!(
                        "Invalid value '{value}'. Values must be within the range: [{lo}, {hi}]"
                    ),
                    name,
                ));
            }
        }
        Some("boolean") if value != "true" && value != "false" => {
            return Err(errors::bad_parameter(
                &format!("Invalid value '{value}'. Values must be 'true' or 'false'."),
                name,
            ));
        }
        _ => {}
    }
    if let Some(allowed) = spec.get("enum").and_then(Value::as_array) {
        if !allowed.iter().any(|a| a.as_str() == Some(value)) {
            let list: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
            return Err(errors::bad_parameter(
                &format!(
                    "Invalid value at '{name}', \"{value}\": must be one of {}",
                    list.join(", ")
                ),
                name,
            ));
        }
    }
    Ok(())
}

/// Parses `a,b/c,d(e,f/g)` into a merged tree.
pub(crate) fn parse_selector(selector: &str) -> Result<Vec<FieldSel>, String> {
    let chars: Vec<char> = selector.chars().collect();
    let mut pos = 0;
    let sels = parse_list(&chars, &mut pos, selector)?;
    if pos != chars.len() {
        return Err(selector.to_owned());
    }
    Ok(sels)
}

fn parse_list(chars: &[char], pos: &mut usize, whole: &str) -> Result<Vec<FieldSel>, String> {
    let mut out: Vec<FieldSel> = Vec::new();
    loop {
        let item = parse_item(chars, pos, whole)?;
        merge(&mut out, item);
        match chars.get(*pos) {
            Some(',') => *pos += 1,
            _ => return Ok(out),
        }
    }
}

fn parse_item(chars: &[char], pos: &mut usize, whole: &str) -> Result<FieldSel, String> {
    let mut path = Vec::new();
    loop {
        let start = *pos;
        while let Some(c) = chars.get(*pos) {
            if c.is_alphanumeric() || *c == '_' || *c == '*' || *c == '-' || *c == '$' || *c == '.'
            {
                *pos += 1;
            } else {
                break;
            }
        }
        let name: String = chars[start..*pos].iter().collect();
        let name = name.trim().to_owned();
        if name.is_empty() {
            return Err(whole.to_owned());
        }
        path.push(name);
        if chars.get(*pos) == Some(&'/') {
            *pos += 1;
        } else {
            break;
        }
    }
    let mut sub = None;
    if chars.get(*pos) == Some(&'(') {
        *pos += 1;
        let inner = parse_list(chars, pos, whole)?;
        if chars.get(*pos) != Some(&')') {
            return Err(whole.to_owned());
        }
        *pos += 1;
        sub = Some(inner);
    }
    // Build a/b/c(sub) from the inside out.
    let mut node: Option<FieldSel> = None;
    for name in path.into_iter().rev() {
        node = Some(FieldSel {
            name,
            sub: match node.take() {
                Some(n) => Some(vec![n]),
                None => sub.take(),
            },
        });
    }
    node.ok_or_else(|| whole.to_owned())
}

fn merge(list: &mut Vec<FieldSel>, item: FieldSel) {
    match list.iter_mut().find(|s| s.name == item.name) {
        None => list.push(item),
        Some(existing) => match (&mut existing.sub, item.sub) {
            (None, _) => {}
            (slot @ Some(_), None) => *slot = None,
            (Some(a), Some(b)) => {
                for s in b {
                    merge(a, s);
                }
            }
        },
    }
}

/// Keeps only the selected parts of a JSON value.
pub(crate) fn apply_selection(value: &Value, sels: &[FieldSel]) -> Value {
    match value {
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| apply_selection(v, sels)).collect())
        }
        Value::Object(obj) => {
            let mut out = Map::new();
            for sel in sels {
                if sel.name == "*" {
                    for (k, v) in obj {
                        let v = match &sel.sub {
                            Some(sub) => apply_selection(v, sub),
                            None => v.clone(),
                        };
                        out.insert(k.clone(), v);
                    }
                    continue;
                }
                if let Some(v) = obj.get(&sel.name) {
                    let v = match &sel.sub {
                        Some(sub) => apply_selection(v, sub),
                        None => v.clone(),
                    };
                    out.insert(sel.name.clone(), v);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &[FieldSel]) -> Vec<String> {
        s.iter().map(|f| f.name.clone()).collect()
    }

    #[test]
    fn selector_grammar() {
        let s = parse_selector("nextPageToken,users(id,primaryEmail,name/fullName)").unwrap();
        assert_eq!(names(&s), ["nextPageToken", "users"]);
        let users = s[1].sub.as_ref().unwrap();
        assert_eq!(names(users), ["id", "primaryEmail", "name"]);
        assert_eq!(names(users[2].sub.as_ref().unwrap()), ["fullName"]);
        assert!(parse_selector("users(id").is_err());
        assert!(parse_selector("users,,id").is_err());
        // a(b),a/c merge into a(b,c); a and a(b) merge into a.
        let s = parse_selector("a(b),a/c,d(e),d").unwrap();
        assert_eq!(names(s[0].sub.as_ref().unwrap()), ["b", "c"]);
        assert!(s[1].sub.is_none());
    }

    #[test]
    fn maxima_come_from_the_discovery_document() {
        let spec = Spec::load().unwrap();
        let users = spec.method("users", "list").unwrap()["parameters"]["maxResults"].clone();
        let groups = spec.method("groups", "list").unwrap()["parameters"]["maxResults"].clone();
        let members = spec.method("members", "list").unwrap()["parameters"]["maxResults"].clone();
        assert_eq!(maximum_of(&users), Some(500));
        assert_eq!(maximum_of(&groups), Some(200));
        assert_eq!(maximum_of(&members), Some(200));
    }
}
