//! The Microsoft Graph v1.0 schema, read from the official CSDL
//! (`shared/specs/msgraph-v1.0.csdl`, the `$metadata` document of
//! <https://graph.microsoft.com/v1.0/$metadata>) once per process.
//!
//! Only the `microsoft.graph` namespace is kept (other schemas of the document,
//! such as `microsoft.graph.security`, reuse names like `user`): its entity
//! types and complex types, each with its structural properties, navigation
//! properties and base type. [`Schema::members`] walks the base types, as
//! OData does, so `user` has `id` (from `entity`) and `deletedDateTime` (from
//! `directoryObject`).

use std::collections::HashMap;
use std::sync::OnceLock;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// The environment variable that names another CSDL file.
pub(crate) const CSDL_ENV: &str = "COEXIST_GRAPH_CSDL";

/// Where the project keeps the CSDL: `shared/specs` beside the repository.
const DEFAULT_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../../shared/specs/msgraph-v1.0.csdl"
);

const NAMESPACE: &str = "microsoft.graph";

/// One property of a type.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub name: String,
    /// The type as the CSDL writes it, e.g. `Collection(graph.emailAddress)`.
    pub type_name: String,
    pub navigation: bool,
}

/// An entity type or a complex type.
#[derive(Debug, Clone, Default)]
pub(crate) struct TypeDef {
    pub base: Option<String>,
    pub members: Vec<Member>,
}

/// The `microsoft.graph` types of the CSDL.
#[derive(Debug, Default)]
pub(crate) struct Schema {
    types: HashMap<String, TypeDef>,
    /// Each type's members with its base types' (nearest type first),
    /// flattened once after parsing: the fake looks members up for every
    /// property of every request body it checks and every object it renders.
    flat: HashMap<String, Flattened>,
}

/// A type's members, its base types' included, and where each is by its
/// name in lower case (OData matches names without regard to case).
#[derive(Debug, Default)]
struct Flattened {
    members: Vec<Member>,
    by_lowercase_name: HashMap<String, usize>,
}

static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();

/// The schema, parsed on first use (about 3 MB of XML) and kept for the process.
pub(crate) fn schema() -> Result<&'static Schema, String> {
    SCHEMA
        .get_or_init(|| {
            let path = std::env::var(CSDL_ENV).unwrap_or_else(|_| DEFAULT_PATH.to_owned());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!("the Microsoft Graph CSDL {path} cannot be read ({e}); set {CSDL_ENV} to its path")
            })?;
            Schema::parse(&text).map_err(|e| format!("{path}: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn attr(start: &BytesStart<'_>, name: &str) -> Result<Option<String>, String> {
    for a in start.attributes() {
        let a = a.map_err(|e| format!("XML error: {e}"))?;
        if a.key.as_ref() == name {
            return Ok(Some(a.value.into_owned()));
        }
    }
    Ok(None)
}

/// `graph.user` or `microsoft.graph.user` to `user`; other namespaces to `None`.
fn local_type(qualified: &str) -> Option<&str> {
    qualified
        .strip_prefix("graph.")
        .or_else(|| qualified.strip_prefix("microsoft.graph."))
        .filter(|rest| !rest.contains('.'))
}

impl Schema {
    /// Parses a CSDL document, keeping the `microsoft.graph` schema.
    pub fn parse(xml: &str) -> Result<Schema, String> {
        let mut reader = Reader::from_str(xml);
        let mut schema = Schema::default();
        // Depth inside the microsoft.graph <Schema>, and the type being read.
        let mut in_graph = false;
        let mut schema_depth = 0usize;
        let mut depth = 0usize;
        let mut current: Option<(String, TypeDef, usize)> = None;
        loop {
            let event = reader
                .read_event()
                .map_err(|e| format!("XML error at byte {}: {e}", reader.buffer_position()))?;
            match event {
                Event::Start(start) => {
                    depth += 1;
                    let name = start.local_name();
                    match name.as_ref() {
                        "Schema" if attr(&start, "Namespace")?.as_deref() == Some(NAMESPACE) => {
                            in_graph = true;
                            schema_depth = depth;
                        }
                        "EntityType" | "ComplexType" if in_graph => {
                            if let Some(type_name) = attr(&start, "Name")? {
                                let base = attr(&start, "BaseType")?
                                    .and_then(|b| local_type(&b).map(str::to_owned));
                                current = Some((
                                    type_name,
                                    TypeDef {
                                        base,
                                        members: Vec::new(),
                                    },
                                    depth,
                                ));
                            }
                        }
                        "Property" | "NavigationProperty" => {
                            Self::read_member(&start, &mut current)?;
                        }
                        _ => {}
                    }
                }
                Event::Empty(start) => {
                    let name = start.local_name();
                    match name.as_ref() {
                        "Property" | "NavigationProperty" => {
                            Self::read_member(&start, &mut current)?;
                        }
                        "EntityType" | "ComplexType" if in_graph => {
                            if let Some(type_name) = attr(&start, "Name")? {
                                let base = attr(&start, "BaseType")?
                                    .and_then(|b| local_type(&b).map(str::to_owned));
                                schema.types.insert(
                                    type_name,
                                    TypeDef {
                                        base,
                                        members: Vec::new(),
                                    },
                                );
                            }
                        }
                        _ => {}
                    }
                }
                Event::End(_) => {
                    if let Some((_, _, at)) = &current {
                        if *at == depth {
                            if let Some((type_name, def, _)) = current.take() {
                                schema.types.insert(type_name, def);
                            }
                        }
                    }
                    if in_graph && depth == schema_depth {
                        in_graph = false;
                    }
                    depth = depth.saturating_sub(1);
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if schema.types.is_empty() {
            return Err(format!("no type of the {NAMESPACE} namespace found"));
        }
        schema.flat = schema
            .types
            .keys()
            .map(|name| (name.clone(), schema.flatten(name)))
            .collect();
        Ok(schema)
    }

    fn read_member(
        start: &BytesStart<'_>,
        current: &mut Option<(String, TypeDef, usize)>,
    ) -> Result<(), String> {
        if let Some((_, def, _)) = current.as_mut() {
            if let (Some(name), Some(type_name)) = (attr(start, "Name")?, attr(start, "Type")?) {
                def.members.push(Member {
                    name,
                    type_name,
                    navigation: start.local_name().as_ref() == "NavigationProperty",
                });
            }
        }
        Ok(())
    }

    /// Whether the namespace declares this type.
    pub fn has_type(&self, type_name: &str) -> bool {
        self.types.contains_key(type_name)
    }

    /// Walks a type and its base types, as OData does.
    fn flatten(&self, type_name: &str) -> Flattened {
        let mut members: Vec<Member> = Vec::new();
        let mut next = Some(type_name);
        let mut guard = 0;
        while let Some(name) = next {
            guard += 1;
            let Some(def) = self.types.get(name) else {
                break;
            };
            members.extend(def.members.iter().cloned());
            next = def.base.as_deref();
            if guard > 32 {
                break;
            }
        }
        let mut by_lowercase_name = HashMap::with_capacity(members.len());
        for (at, member) in members.iter().enumerate() {
            // The nearest declaration of a name wins.
            by_lowercase_name
                .entry(member.name.to_ascii_lowercase())
                .or_insert(at);
        }
        Flattened {
            members,
            by_lowercase_name,
        }
    }

    /// Every property and navigation property of a type, its base types' included
    /// (nearest type first); none for a type the namespace does not declare.
    pub fn members(&self, type_name: &str) -> &[Member] {
        self.flat
            .get(type_name)
            .map(|f| f.members.as_slice())
            .unwrap_or_default()
    }

    /// The member of a type with this name (OData names are matched without
    /// regard to case, as Microsoft Graph does).
    pub fn member(&self, type_name: &str, name: &str) -> Option<&Member> {
        let flat = self.flat.get(type_name)?;
        let at = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            flat.by_lowercase_name.get(&name.to_ascii_lowercase())
        } else {
            flat.by_lowercase_name.get(name)
        }?;
        flat.members.get(*at)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn user_has_its_own_and_inherited_properties() {
        let s = schema().unwrap();
        let names: Vec<&str> = s.members("user").iter().map(|m| m.name.as_str()).collect();
        for n in [
            "id",
            "deletedDateTime",
            "userPrincipalName",
            "proxyAddresses",
            "mail",
            "memberOf",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        assert!(!names.contains(&"foo"));
        assert!(s.member("group", "mailEnabled").is_some());
        assert!(s.member("directoryObject", "mail").is_none());
        let emails = s.member("contact", "emailAddresses").unwrap();
        assert_eq!(emails.type_name, "Collection(graph.emailAddress)");
        assert!(s.member("emailAddress", "address").is_some());
    }

    #[test]
    fn only_the_graph_namespace_is_kept() {
        let s = schema().unwrap();
        // microsoft.graph.security has its own `user` (based on identityAccounts).
        assert!(s.member("user", "proxyAddresses").is_some());
        assert!(s.member("user", "emailAddress").is_none());
    }
}
