//! The OpenAPI documents, each on its own surface and behind its surface's credential: the
//! public one for anyone, the operator one for an operator token (on the operators' listener
//! when they have one), the service one for a service secret.

use axum::Json;
use axum::Router;
use utoipa::openapi::OpenApi;

use crate::Document;
use crate::auth::{OperatorCaller, ServiceProof};
use crate::state::AppState;

/// Adds the three documents' routes to `app`. Each is built once, here.
pub(crate) fn documents(app: Router<AppState>) -> Router<AppState> {
    use axum::routing::get;
    let public = crate::openapi_for(Document::Public);
    let operator = crate::openapi_for(Document::Operator);
    let service = crate::openapi_for(Document::Service);
    app.route(
        Document::Public.served_at().0,
        get(move || serve(public.clone())),
    )
    .route(
        Document::Operator.served_at().0,
        get(move |_: OperatorCaller| serve(operator.clone())),
    )
    .route(
        Document::Service.served_at().0,
        get(move |_: ServiceProof| serve(service.clone())),
    )
}

async fn serve(doc: OpenApi) -> Json<OpenApi> {
    Json(doc)
}
