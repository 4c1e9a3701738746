//! The OpenAPI document against the code: the shared refusals appear exactly where their
//! mechanism is, every reference resolves, and values the documented constraints allow are
//! accepted by the parsers that enforce them (what schemathesis relies on in `.ci/schemathesis.sh`).

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::Value;

fn doc() -> Value {
    serde_json::to_value(crate::whole_openapi()).unwrap()
}

fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    op
}

fn statuses(doc: &Value, path: &str, method: &str) -> BTreeSet<String> {
    operation(doc, path, method)["responses"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn shared_refusals_are_documented_where_their_mechanism_is_and_nowhere_else() {
    let doc = doc();
    // No body, parameter, credential or limit: nothing shared.
    assert_eq!(statuses(&doc, "/health/live", "get"), set(&["200"]));
    assert_eq!(
        statuses(&doc, "/.well-known/jwks.json", "get"),
        set(&["200"])
    );
    // A JSON body and the `auth` limit class, no credentials.
    let signup = statuses(&doc, "/v1/auth/signup", "post");
    assert!(signup.is_superset(&set(&["400", "413", "415", "422", "429"])));
    assert!(!signup.contains("401") && !signup.contains("403"));
    // The service secret and a JSON body, not limited per address.
    let verify_key = statuses(&doc, "/internal/v1/api-keys/verify", "post");
    assert!(verify_key.is_superset(&set(&["400", "401", "413", "415", "422"])));
    assert!(!verify_key.contains("429") && !verify_key.contains("403"));
    // A bearer organisation route with query parameters and no body.
    let secrets = statuses(&doc, "/v1/secrets", "get");
    assert!(secrets.is_superset(&set(&["400", "401", "403", "422", "429"])));
    assert!(!secrets.contains("413") && !secrets.contains("415"));
    // An optional body read by the handler itself: no `ApiJson` refusals, but the body limit.
    let reveal = statuses(&doc, "/v1/secrets/{id}/reveal", "post");
    assert!(reveal.contains("413") && reveal.contains("422"));
    assert!(!reveal.contains("415"));
    // A route's own description is kept, and the shared cause added to it.
    let mfa_400 = operation(&doc, "/v1/auth/mfa", "post")["responses"]["400"]["description"]
        .as_str()
        .unwrap();
    assert!(mfa_400.contains("invalid_token") && mfa_400.contains("malformed_json"));
    // The organisation header is a required parameter of organisation routes only.
    let org_param = |path: &str, method: &str| {
        operation(&doc, path, method)["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "x-organization-id")
            .map(|p| p["required"] == true)
    };
    assert_eq!(org_param("/v1/transit/encrypt", "post"), Some(true));
    assert_eq!(org_param("/v1/auth/verify", "get"), Some(false));
    assert_eq!(org_param("/v1/me", "get"), None);
}

#[test]
fn every_refusal_is_a_problem_document_and_every_429_says_when_to_retry() {
    let doc = doc();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                let code: u16 = status.parse().unwrap();
                // Readiness answers 503 with its report of every check.
                if code < 400 || (path == "/health/ready" && code == 503) {
                    continue;
                }
                assert!(
                    response["content"]["application/problem+json"]["schema"]["$ref"]
                        == "#/components/schemas/Problem",
                    "{method} {path} {status} is not a problem document"
                );
                if code == 429 {
                    assert!(
                        response["headers"]["Retry-After"].is_object(),
                        "{method} {path} 429 has no Retry-After"
                    );
                }
            }
        }
    }
}

#[test]
fn every_schema_reference_resolves() {
    fn walk(v: &Value, doc: &Value, at: &str) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let pointer = r.trim_start_matches('#');
                    assert!(doc.pointer(pointer).is_some(), "{at}: {r} does not resolve");
                }
                for (k, child) in map {
                    walk(child, doc, &format!("{at}/{k}"));
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, doc, &format!("{at}/{i}"));
                }
            }
            _ => {}
        }
    }
    let doc = doc();
    walk(&doc, &doc, "");
}

#[test]
fn the_permission_enum_is_the_catalogue() {
    let doc = doc();
    let documented: Vec<&str> = doc["components"]["schemas"]["PermissionName"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let catalogue: Vec<&str> = gatehouse_core::identity::CATALOGUE
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(documented, catalogue);
    assert!(
        gatehouse_core::identity::CATALOGUE
            .iter()
            .all(|(n, _)| gatehouse_core::identity::Permission::parse(n).is_some())
    );
}

/// A documented string rule: its pattern (without the whole-string anchors, which proptest's
/// generator does not take) and its length bounds, read from the served document.
struct Rule {
    pattern: String,
    min: usize,
    max: usize,
}

fn rule(schema: &str, property: &str) -> Rule {
    let doc = doc();
    let p = &doc["components"]["schemas"][schema]["properties"][property];
    let pattern = p["pattern"].as_str().unwrap_or(".*");
    assert!(
        pattern == ".*" || (pattern.starts_with('^') && pattern.ends_with('$')),
        "{schema}.{property}: the pattern must match the whole string"
    );
    let bound = |k: &str, default: usize| {
        p[k].as_u64()
            .map_or(default, |n| usize::try_from(n).unwrap())
    };
    Rule {
        pattern: pattern
            .trim_start_matches('^')
            .trim_end_matches('$')
            .to_owned(),
        min: bound("minLength", 0),
        max: bound("maxLength", 300),
    }
}

fn allowed(r: &Rule) -> impl Strategy<Value = String> {
    let (min, max) = (r.min, r.max);
    proptest::string::string_regex(&r.pattern)
        .unwrap()
        .prop_filter("documented length", move |s| {
            (min..=max).contains(&s.chars().count())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn documented_display_names_are_accepted(s in allowed(&rule("SignupRequest", "name"))) {
        prop_assert!(gatehouse_core::inputs::DisplayName::parse("name", &s).is_ok(), "{s:?}");
    }

    #[test]
    fn documented_api_key_names_are_accepted(s in allowed(&rule("CreateApiKey", "name"))) {
        prop_assert!(gatehouse_core::inputs::DisplayName::parse("name", &s).is_ok(), "{s:?}");
    }

    #[test]
    fn documented_role_names_are_accepted(s in allowed(&rule("RoleChange", "role"))) {
        prop_assert!(gatehouse_core::store::Role::parse(&s).is_some(), "{s:?}");
    }

    #[test]
    fn documented_custom_role_names_are_accepted(s in allowed(&rule("CustomRole", "name"))) {
        prop_assert!(gatehouse_core::store::Role::parse(&s).is_some(), "{s:?}");
    }

    #[test]
    fn documented_plaintexts_are_base64(s in allowed(&rule("EncryptItem", "plaintext"))) {
        use base64::Engine as _;
        prop_assert!(base64::engine::general_purpose::STANDARD.decode(&s).is_ok(), "{s:?}");
    }

    /// Printable ASCII only: the policy counts characters after NFKC normalisation, which a
    /// JSON Schema length cannot express (a ligature becomes two characters, a combining accent
    /// joins its letter), and NFKC leaves printable ASCII as it is. Both ways: inside the
    /// documented lengths accepted, outside refused.
    #[test]
    fn documented_password_lengths_are_the_policy(s in "[ -~]{0,300}") {
        let r = rule("SignupRequest", "password");
        prop_assume!(!gatehouse_core::inputs::is_common_password(&s));
        let accepted = gatehouse_core::inputs::NewPassword::parse(
            gatehouse_crypto::SecretString::from(s.clone()),
        )
        .is_ok();
        prop_assert_eq!(accepted, (r.min..=r.max).contains(&s.len()), "{:?}", s);
    }
}
