use axum::Json;
use utoipa::openapi::OpenApi;

pub(crate) async fn serve(doc: OpenApi) -> Json<OpenApi> {
    Json(doc)
}
