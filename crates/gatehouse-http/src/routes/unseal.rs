//! D2, a sealed start: while the master key exists only as operators' shares, the process serves
//! the sealed router (`crate::sealed_router`): the health probes, `GET`/`POST /admin/v1/unseal`
//! and a 503 `sealed` problem for everything else. The unsealed API answers the same two routes
//! (so a late operator learns the server is open rather than meeting a 404), and they are
//! documented here once.
//!
//! Unseal is unauthenticated by necessity: operators' credentials are sealed by the key being
//! rebuilt. What guards it is the share format (checksum, key id), the implementation behind
//! [`Unsealer`] (a per-address limit, a bounded set of pending shares) and the keyring's check of
//! the rebuilt key.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use gatehouse_crypto::SecretString;
use serde::{Deserialize, Serialize};

use crate::json::ApiJson;
use crate::problem::ApiError;
use crate::state::AppState;

/// How far unsealing has got. Never anything about the shares themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UnsealProgress {
    /// Whether the server is still sealed.
    pub sealed: bool,
    /// How many shares rebuild the key; unknown (null) until the first share arrives, since each
    /// share carries it.
    pub threshold: Option<u8>,
    /// Shares held now, waiting for the threshold.
    pub received: u8,
}

impl UnsealProgress {
    #[must_use]
    pub fn unsealed() -> Self {
        Self {
            sealed: false,
            threshold: None,
            received: 0,
        }
    }
}

/// Why a share was not taken. Each leaves the pending shares as they were, except
/// `KeyRefused` and `Failed`, after which none is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsealRefusal {
    /// Not a share, or a share with a changed character.
    Invalid(String),
    /// A share of another master key, or one not dealt with those already held.
    WrongKey(String),
    /// A share whose index is already held.
    Duplicate(String),
    /// The shares combined, and the key they rebuilt is not one the database accepts.
    KeyRefused(String),
    /// Too many submissions from this address.
    RateLimited { retry_after_secs: u32 },
    /// The key was right but the server could not start with it (logged); nothing is held.
    Failed,
}

/// A boxed future, so the trait stays object-safe without a macro.
pub type Submitted<'a> =
    Pin<Box<dyn Future<Output = Result<UnsealProgress, UnsealRefusal>> + Send + 'a>>;

/// What the sealed router hands shares to; implemented by the binary, which holds the store.
pub trait Unsealer: Send + Sync + 'static {
    fn progress(&self) -> UnsealProgress;
    fn submit(&self, share: SecretString, from: IpAddr) -> Submitted<'_>;
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct UnsealRequest {
    /// One share, as `gatehouse keys split` printed it (case and whitespace do not matter).
    share: String,
}

/// Submit one share of the master key (a sealed start, `master_key = "shares"`). Served on the
/// operators' listener when `admin_listen` is set, otherwise on the main listener. No credential:
/// the shares are the credential.
#[utoipa::path(post, path = "/admin/v1/unseal", tag = "admin",
    request_body = UnsealRequest,
    responses(
        (status = 200, description = "Taken (or the server is already unsealed); the progress", body = UnsealProgress),
        (status = 400, description = "`share_invalid`: not a share or a character changed; `share_wrong_key`: a share of another key", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`share_duplicate`: that share's index is already held", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`unseal_key_refused`: the shares rebuilt a key other than the one they name (shares of different splits, or a forged share); every pending share was dropped", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many submissions from this address", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unseal_failed`: the key was right but the server could not start; nothing is held", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn unseal_submit(
    State(_state): State<AppState>,
    ApiJson(_body): ApiJson<UnsealRequest>,
) -> Json<UnsealProgress> {
    Json(UnsealProgress::unsealed())
}

/// How far unsealing has got: threshold and shares received, never a share.
#[utoipa::path(get, path = "/admin/v1/unseal", tag = "admin",
    responses((status = 200, description = "The progress", body = UnsealProgress)))]
pub(crate) async fn unseal_progress(State(_state): State<AppState>) -> Json<UnsealProgress> {
    Json(UnsealProgress::unsealed())
}

pub(crate) async fn sealed_submit(
    State(unsealer): State<Arc<dyn Unsealer>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<UnsealRequest>,
) -> Result<Json<UnsealProgress>, ApiError> {
    unsealer
        .submit(SecretString::new(body.share), peer.ip())
        .await
        .map(Json)
        .map_err(ApiError::from)
}

pub(crate) async fn sealed_progress(
    State(unsealer): State<Arc<dyn Unsealer>>,
) -> Json<UnsealProgress> {
    Json(unsealer.progress())
}

pub(crate) async fn sealed() -> ApiError {
    ApiError::sealed()
}
