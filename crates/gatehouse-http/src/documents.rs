//! One OpenAPI document per API surface (ASVS 13.4.5, 16.5.1): the public document describes
//! the public API only, and the operator and service APIs are each described on their own
//! surface, behind their own credential. Each is cut from the one document the handlers
//! generate, keeping only its family's paths and the tags, schemas and security schemes they
//! use, so nothing of another surface (not even a schema's name) shows in it.

use std::collections::BTreeSet;

use serde_json::Value;
use utoipa::openapi::OpenApi;

/// Which surface a document describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// `GET /openapi.json`, anonymous: `/v1`, the health probes, `/.well-known` and the trust
    /// page.
    Public,
    /// `GET /admin/v1/openapi.json`, for an operator token, on the operators' listener when they
    /// have one: `/admin/v1`.
    Operator,
    /// `GET /internal/v1/openapi.json`, for a service secret (`X-Service-Auth`): `/internal/v1`.
    Service,
}

impl Document {
    /// Every document, for the snapshot tests.
    pub const ALL: [Self; 3] = [Self::Public, Self::Operator, Self::Service];

    /// Whether `path` belongs to this document's surface.
    #[must_use]
    pub fn holds(self, path: &str) -> bool {
        let operator = path == "/admin" || path.starts_with("/admin/");
        let service = path == "/internal" || path.starts_with("/internal/");
        match self {
            Self::Public => !operator && !service,
            Self::Operator => operator,
            Self::Service => service,
        }
    }

    /// Where it is served, and the name of its committed snapshot under `docs/`.
    #[must_use]
    pub fn served_at(self) -> (&'static str, &'static str) {
        match self {
            Self::Public => ("/openapi.json", "openapi.json"),
            Self::Operator => ("/admin/v1/openapi.json", "openapi-admin.json"),
            Self::Service => ("/internal/v1/openapi.json", "openapi-internal.json"),
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Public => "Gatehouse",
            Self::Operator => "Gatehouse operator API",
            Self::Service => "Gatehouse service API",
        }
    }
}

/// What the kept operations refer to: schemas, tags and security schemes by name.
#[derive(Default)]
struct Used {
    schemas: BTreeSet<String>,
    tags: BTreeSet<String>,
    security: BTreeSet<String>,
}

impl Used {
    fn walk(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", Value::String(r)) => {
                            if let Some(name) = r.strip_prefix("#/components/schemas/") {
                                self.schemas.insert(name.to_owned());
                            }
                        }
                        ("tags", Value::Array(tags)) => {
                            self.tags
                                .extend(tags.iter().filter_map(Value::as_str).map(str::to_owned));
                        }
                        ("security", Value::Array(reqs)) => {
                            for req in reqs.iter().filter_map(Value::as_object) {
                                self.security.extend(req.keys().cloned());
                            }
                        }
                        _ => self.walk(v),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.walk(v)),
            _ => {}
        }
    }
}

/// `whole` cut down to `which`'s surface.
pub(crate) fn cut(mut doc: OpenApi, which: Document) -> OpenApi {
    doc.paths.paths.retain(|path, _| which.holds(path));
    doc.info.title = which.title().to_owned();
    let mut used = Used::default();
    used.walk(&serde_json::to_value(&doc.paths).unwrap_or(Value::Null));
    if let Some(components) = doc.components.as_mut() {
        // Schemas refer to schemas: follow them until nothing new turns up.
        let mut seen = BTreeSet::new();
        while let Some(name) = used.schemas.difference(&seen).next().cloned() {
            if let Some(schema) = components.schemas.get(&name) {
                used.walk(&serde_json::to_value(schema).unwrap_or(Value::Null));
            }
            seen.insert(name);
        }
        // `Problem` is every refusal's body, whether or not an operation names it.
        used.schemas.insert("Problem".to_owned());
        components
            .schemas
            .retain(|name, _| used.schemas.contains(name));
        components
            .security_schemes
            .retain(|name, _| used.security.contains(name));
    }
    if let Some(tags) = doc.tags.as_mut() {
        tags.retain(|t| used.tags.contains(&t.name));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_belongs_to_exactly_one_document() {
        for path in [
            "/v1/me",
            "/health/ready",
            "/.well-known/jwks.json",
            "/trust",
            "/admin/v1/apps",
            "/internal/v1/check",
            "/administrator",
            "/internals",
        ] {
            let holders = Document::ALL.iter().filter(|d| d.holds(path)).count();
            assert_eq!(holders, 1, "{path}");
        }
        assert!(Document::Public.holds("/administrator"));
        assert!(Document::Operator.holds("/admin/v1/health"));
        assert!(Document::Service.holds("/internal/v1/metrics"));
    }
}
