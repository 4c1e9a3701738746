//! No undocumented way in (ASVS 6.1.3, 6.3.4): the operations that take no credential are
//! exactly the ones listed here, and every other operation of the three API documents answers
//! 401 to a request that carries none. A new route that forgets its authenticating extractor,
//! or an annotation that forgets its `security`, fails here.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::support::TestApp;

/// The operations anyone may call: sign-in and its recovery, the public documents and pages,
/// health, share-link opening and unsubscribing (each carrying its own one-time proof).
const PUBLIC: &[(&str, &str)] = &[
    ("get", "/.well-known/jwks.json"),
    ("get", "/.well-known/security.txt"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/trust"),
    ("get", "/trust.md"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/mfa"),
    ("post", "/v1/auth/password-reset"),
    ("post", "/v1/auth/password-reset/confirm"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/signup"),
    ("post", "/v1/auth/sso/{target}/start"),
    ("get", "/v1/auth/sso/{target}/callback"),
    ("post", "/v1/auth/sso/{target}/callback"),
    ("post", "/v1/auth/verify-email"),
    ("post", "/v1/invitations/accept"),
    ("post", "/v1/share/{token}"),
    ("get", "/v1/unsubscribe"),
    ("post", "/v1/unsubscribe"),
    ("post", "/admin/v1/auth/login"),
    ("post", "/admin/v1/auth/refresh"),
    ("get", "/admin/v1/unseal"),
    ("post", "/admin/v1/unseal"),
];

const DOCUMENTS: [&str; 3] = [
    "docs/openapi.json",
    "docs/openapi-admin.json",
    "docs/openapi-internal.json",
];

fn operations() -> Vec<(String, String, bool)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut ops = Vec::new();
    for doc in DOCUMENTS {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert!(doc.get("security").is_none(), "no document-wide security");
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    continue;
                }
                let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
                ops.push((method.clone(), path.clone(), secured));
            }
        }
    }
    ops
}

/// A concrete path for a template: every parameter an id (the extractors run before anything
/// reads it).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "0190a9a1-0000-7000-8000-000000000001"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn only_the_listed_operations_take_no_credential_and_every_other_answers_401_without_one() {
    let ops = operations();
    assert!(ops.len() > 100, "the documents were read: {}", ops.len());
    let open: BTreeSet<(String, String)> = ops
        .iter()
        .filter(|(_, _, secured)| !secured)
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    let listed: BTreeSet<(String, String)> = PUBLIC
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        open, listed,
        "the operations documented without credentials are not the listed public ones"
    );

    let app = TestApp::spawn().await;
    let mut wrong = Vec::new();
    for (method, path, secured) in &ops {
        if !secured {
            continue;
        }
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut req = app.client.request(m.clone(), app.url(&concrete(path)));
        if m != Method::GET && m != Method::DELETE {
            req = req.json(&serde_json::json!({}));
        }
        let res = req.send().await.unwrap();
        if res.status() != 401 {
            wrong.push(format!("{method} {path}: {}", res.status()));
        }
    }
    assert!(
        wrong.is_empty(),
        "answered without a credential:\n{}",
        wrong.join("\n")
    );
    app.stop().await;
}
