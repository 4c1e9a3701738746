use axum::http::StatusCode;

use crate::problem::ApiError;

pub(crate) async fn not_found() -> ApiError {
    ApiError::for_status(StatusCode::NOT_FOUND)
}
