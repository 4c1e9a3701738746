//! The OpenAPI document is generated from the handlers; the committed copy in docs/openapi.json
//! must match it. Regenerate with `UPDATE_SNAPSHOTS=1 cargo nextest run -p gatehouse openapi`.

use crate::support::TestApp;

fn snapshot_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn committed_document_matches_the_code() {
    let generated = serde_json::to_string_pretty(&gatehouse_http::openapi()).unwrap() + "\n";
    let path = snapshot_path();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date; run UPDATE_SNAPSHOTS=1 cargo nextest run -p gatehouse openapi"
    );
}

#[tokio::test]
async fn served_document_is_the_generated_one() {
    let app = TestApp::spawn().await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    let served: serde_json::Value = res.json().await.unwrap();
    let generated = serde_json::to_value(gatehouse_http::openapi()).unwrap();
    assert_eq!(served, generated);
    assert!(served["paths"]["/v1/auth/signup"]["post"].is_object());
    assert!(served["paths"]["/health/ready"]["get"].is_object());
    assert!(served["components"]["schemas"]["Problem"].is_object());
    app.stop().await;
}
