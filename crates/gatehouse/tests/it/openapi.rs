//! The OpenAPI documents are generated from the handlers, one per API surface (ASVS 13.4.5,
//! 16.5.1): the public one at `/openapi.json` describes the public API only, the operator API's
//! is at `/admin/v1/openapi.json` for operators, the service API's at `/internal/v1/openapi.json`
//! for services. The committed copies under docs/ must match them. Regenerate with
//! `UPDATE_SNAPSHOTS=1 cargo nextest run -p gatehouse openapi`.

use gatehouse_http::{Document, openapi_for};
use serde_json::Value;

use crate::api_keys::{S1, service_secret_file};
use crate::support::{TestApp, expect_problem};

fn snapshot_path(which: Document) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(which.served_at().1)
}

fn generated(which: Document) -> Value {
    serde_json::to_value(openapi_for(which)).unwrap()
}

fn paths(doc: &Value) -> Vec<String> {
    doc["paths"].as_object().unwrap().keys().cloned().collect()
}

#[test]
fn committed_documents_match_the_code() {
    for which in Document::ALL {
        let text = serde_json::to_string_pretty(&openapi_for(which)).unwrap() + "\n";
        let path = snapshot_path(which);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "docs/{} is out of date; run UPDATE_SNAPSHOTS=1 cargo nextest run -p gatehouse openapi",
            which.served_at().1
        );
    }
}

#[test]
fn each_document_describes_its_own_surface_only() {
    let public = generated(Document::Public);
    let operator = generated(Document::Operator);
    let service = generated(Document::Service);
    for path in paths(&public) {
        assert!(
            !path.starts_with("/admin/") && !path.starts_with("/internal/"),
            "the public document describes {path}"
        );
    }
    for want in [
        "/v1/auth/signup",
        "/v1/me",
        "/health/ready",
        "/.well-known/jwks.json",
    ] {
        assert!(paths(&public).iter().any(|p| p == want), "{want}");
    }
    assert!(!paths(&operator).is_empty() && !paths(&service).is_empty());
    assert!(paths(&operator).iter().all(|p| p.starts_with("/admin/v1/")));
    assert!(
        paths(&service)
            .iter()
            .all(|p| p.starts_with("/internal/v1/"))
    );
    for want in [
        "/admin/v1/apps",
        "/admin/v1/auth/login",
        "/admin/v1/users/import",
    ] {
        assert!(paths(&operator).iter().any(|p| p == want), "{want}");
    }
    assert!(
        paths(&service)
            .iter()
            .any(|p| p == "/internal/v1/secrets/{id}/use")
    );
    // Every path (and operation) of the whole document the handlers generate is in exactly one
    // of the three: nothing was lost in the cut, and nothing is in two.
    let full = serde_json::to_value(gatehouse_http::whole_openapi()).unwrap();
    let mut whole = paths(&full);
    whole.sort();
    let mut all: Vec<String> = [&public, &operator, &service]
        .iter()
        .flat_map(|d| paths(d))
        .collect();
    all.sort();
    assert_eq!(all, whole);
    let operations = |doc: &Value| -> usize {
        doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum()
    };
    assert_eq!(
        operations(&public) + operations(&operator) + operations(&service),
        operations(&full)
    );
    // Nor a schema, tag or credential of another surface: not even a name.
    let text = public.to_string();
    for other in [
        "RegisterApp",
        "ImportRequest",
        "ImpersonationRequest",
        "X-Service-Auth",
    ] {
        assert!(
            !text.contains(other),
            "the public document mentions {other}"
        );
    }
    let tags = |doc: &Value| -> Vec<String> {
        doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        !tags(&public)
            .iter()
            .any(|t| t == "admin" || t == "internal")
    );
    assert_eq!(tags(&operator), ["admin"]);
    assert_eq!(tags(&service), ["internal"]);
    assert!(public["components"]["schemas"]["Problem"].is_object());
    assert!(service["components"]["securitySchemes"]["service"].is_object());
    assert!(service["components"]["securitySchemes"]["bearer"].is_null());
    assert!(operator["components"]["securitySchemes"]["service"].is_null());
    // Every reference in each document resolves inside it.
    for doc in [&public, &operator, &service] {
        let text = doc.to_string();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{name} is referred to and missing from {}",
                doc["info"]["title"]
            );
        }
    }
}

#[tokio::test]
async fn each_document_is_served_on_its_surface_behind_its_credential() {
    let dir = crate::support::temp_dir();
    let secret = service_secret_file(&dir, "s1.key", S1);
    let app = TestApp::spawn_in(dir, |raw| raw.service_auth.secret_files = vec![secret]).await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    let served: Value = res.json().await.unwrap();
    assert_eq!(served, generated(Document::Public));

    // The operator API's document: for operators only.
    let res = app.get("/admin/v1/openapi.json").await;
    expect_problem(res, 401, "unauthenticated").await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let res = app
        .call(
            reqwest::Method::GET,
            "/admin/v1/openapi.json",
            &owner.access,
            None,
            None,
        )
        .await;
    expect_problem(res, 403, "wrong_audience").await;
    let operator = app.operator_token().await;
    let res = app
        .call(
            reqwest::Method::GET,
            "/admin/v1/openapi.json",
            &operator,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        generated(Document::Operator)
    );

    // The service API's document: for the deployment's services only.
    let res = app.get("/internal/v1/openapi.json").await;
    expect_problem(res, 401, "unauthenticated").await;
    let res = app
        .call(
            reqwest::Method::GET,
            "/internal/v1/openapi.json",
            &owner.access,
            None,
            None,
        )
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    let res = app
        .client
        .get(app.url("/internal/v1/openapi.json"))
        .header("x-service-auth", S1)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        generated(Document::Service)
    );
    app.stop().await;
}

#[tokio::test]
async fn with_an_operators_listener_their_document_is_only_there() {
    let app = TestApp::spawn_with(|raw| raw.admin_listen = Some("127.0.0.1:0".into())).await;
    let admin = app.admin_base.clone().unwrap();
    let operator = app.operator_token().await;
    // Not on the public listener, even with an operator token: the same 404 as anywhere.
    let res = app
        .call(
            reqwest::Method::GET,
            "/admin/v1/openapi.json",
            &operator,
            None,
            None,
        )
        .await;
    expect_problem(res, 404, "not_found").await;
    let res = app
        .client
        .get(format!("{admin}/admin/v1/openapi.json"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        generated(Document::Operator)
    );
    // The public document is not on the operators' listener.
    let res = app
        .client
        .get(format!("{admin}/openapi.json"))
        .send()
        .await
        .unwrap();
    expect_problem(res, 404, "not_found").await;
    app.stop().await;
}
