//! Transit encryption (D1) for the organisation's own fields: encrypt, decrypt and rewrap, one
//! item or a batch, under the organisation's data key.

use std::fmt;

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gatehouse_core::Error;
use gatehouse_core::transit::{TransitItem, TransitOutcome};
use gatehouse_crypto::SecretBytes;
use serde::{Deserialize, Serialize};

use crate::auth::{OrgCaller, OrgScoped};
use crate::json::{ApiJson, JsonOk};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EncryptItem {
    /// Base64 (standard alphabet, padded, unused bits zero) of the bytes to encrypt.
    #[schema(
        pattern = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$"
    )]
    plaintext: String,
    /// Where the value lives (table, column, row id...): bound to the ciphertext, needed again
    /// to decrypt. Up to 1024 bytes.
    #[serde(default)]
    #[schema(max_length = 1024)]
    context: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecryptItem {
    /// `gh:v{version}:...` as returned by encrypt or rewrap.
    ciphertext: String,
    /// The context it was encrypted with. Up to 1024 bytes.
    #[serde(default)]
    #[schema(max_length = 1024)]
    context: String,
}

/// One item, or `batch` with up to `transit.max_batch_items` items.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum EncryptRequest {
    Batch {
        #[schema(min_items = 1)]
        batch: Vec<EncryptItem>,
    },
    One(EncryptItem),
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum DecryptRequest {
    Batch {
        #[schema(min_items = 1)]
        batch: Vec<DecryptItem>,
    },
    One(DecryptItem),
}

impl fmt::Debug for EncryptRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptRequest([redacted])")
    }
}

impl fmt::Debug for DecryptRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecryptRequest([redacted])")
    }
}

/// One result: `ciphertext` (encrypt, rewrap), `plaintext` (decrypt, base64) or `error`.
/// `deny_unknown_fields` is for the document: a result has no other fields (its schema's
/// `additionalProperties: false`), so the single form is never also read as the batch form.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    ciphertext: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

impl fmt::Debug for ItemResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ItemResult([redacted])")
    }
}

/// The single form answers one result's fields; the batch form `{"batch": [...]}` in order.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum TransitResponse {
    Batch { batch: Vec<ItemResult> },
    One(ItemResult),
}

impl fmt::Debug for TransitResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransitResponse([redacted])")
    }
}

fn check_batch(state: &AppState, n: usize) -> Result<(), Error> {
    if n == 0 || n > state.transit_max_batch {
        return Err(Error::invalid(
            "batch",
            format!("must hold 1 to {} items", state.transit_max_batch),
        ));
    }
    Ok(())
}

fn result(o: TransitOutcome) -> ItemResult {
    match o {
        TransitOutcome::Ciphertext(c) => ItemResult {
            ciphertext: Some(c),
            plaintext: None,
            error: None,
        },
        TransitOutcome::Plaintext(p) => ItemResult {
            ciphertext: None,
            plaintext: Some(STANDARD.encode(p.expose())),
            error: None,
        },
        TransitOutcome::Failed(why) => ItemResult {
            ciphertext: None,
            plaintext: None,
            error: Some(why),
        },
    }
}

/// The single form fails as a whole (400 `transit_failed`) when its item fails; a batch
/// reports each item.
fn respond(batch: bool, mut out: Vec<TransitOutcome>) -> Result<JsonOk<TransitResponse>, ApiError> {
    if batch {
        return Ok(JsonOk(TransitResponse::Batch {
            batch: out.into_iter().map(result).collect(),
        }));
    }
    match out.pop() {
        Some(TransitOutcome::Failed(why)) => Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "transit_failed",
            why,
        )),
        Some(o) => Ok(JsonOk(TransitResponse::One(result(o)))),
        None => Err(Error::Internal("transit returned nothing".to_owned()).into()),
    }
}

fn encrypt_items(req: EncryptRequest) -> (bool, Vec<Result<TransitItem, &'static str>>) {
    let (batch, items) = match req {
        EncryptRequest::Batch { batch } => (true, batch),
        EncryptRequest::One(item) => (false, vec![item]),
    };
    let items = items
        .into_iter()
        .map(|i| {
            STANDARD
                .decode(i.plaintext.as_bytes())
                .map(|bytes| TransitItem {
                    data: SecretBytes::new(bytes),
                    context: i.context.into_bytes(),
                })
                .map_err(|_| "plaintext is not base64")
        })
        .collect();
    (batch, items)
}

fn decrypt_items(req: DecryptRequest) -> (bool, Vec<TransitItem>) {
    let (batch, items) = match req {
        DecryptRequest::Batch { batch } => (true, batch),
        DecryptRequest::One(item) => (false, vec![item]),
    };
    let items = items
        .into_iter()
        .map(|i| TransitItem {
            data: SecretBytes::new(i.ciphertext.into_bytes()),
            context: i.context.into_bytes(),
        })
        .collect();
    (batch, items)
}

/// Encrypts. Needs `transit.encrypt` (API keys are the usual callers).
#[utoipa::path(post, path = "/v1/transit/encrypt", tag = "transit", security(("bearer" = [])), params(OrgScoped),
    request_body = EncryptRequest,
    responses(
        (status = 200, description = "`ciphertext`, or `batch` of results", body = TransitResponse),
        (status = 400, description = "`transit_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`keys_shredded`: the organisation's keys were destroyed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `batch` is empty or over `transit.max_batch_items`, or the single form's `plaintext` is not base64", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn encrypt(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<EncryptRequest>,
) -> Result<JsonOk<TransitResponse>, ApiError> {
    let (batch, parsed) = encrypt_items(req);
    check_batch(&state, parsed.len())?;
    // Items that are not base64 fail alone; the rest are encrypted.
    let mut bad = Vec::new();
    let mut items = Vec::with_capacity(parsed.len());
    for (i, p) in parsed.into_iter().enumerate() {
        match p {
            Ok(item) => items.push(item),
            Err(why) => bad.push((i, why)),
        }
    }
    if !batch && !bad.is_empty() {
        return Err(Error::invalid("plaintext", "must be base64").into());
    }
    let mut out = state.kernel.transit().encrypt(&call, items).await?;
    for (i, why) in bad {
        out.insert(i.min(out.len()), TransitOutcome::Failed(why));
    }
    respond(batch, out)
}

/// Decrypts. Needs `transit.decrypt`.
#[utoipa::path(post, path = "/v1/transit/decrypt", tag = "transit", security(("bearer" = [])), params(OrgScoped),
    request_body = DecryptRequest,
    responses(
        (status = 200, description = "`plaintext` (base64), or `batch` of results", body = TransitResponse),
        (status = 400, description = "`transit_failed`: not a ciphertext, another organisation's or context, or a version below the floor", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`keys_shredded`: the organisation's keys were destroyed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `batch` is empty or over `transit.max_batch_items`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn decrypt(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<DecryptRequest>,
) -> Result<JsonOk<TransitResponse>, ApiError> {
    let (batch, items) = decrypt_items(req);
    check_batch(&state, items.len())?;
    let out = state.kernel.transit().decrypt(&call, items).await?;
    respond(batch, out)
}

/// Re-encrypts under the newest key version without returning the plaintext. Needs
/// `transit.decrypt`.
#[utoipa::path(post, path = "/v1/transit/rewrap", tag = "transit", security(("bearer" = [])), params(OrgScoped),
    request_body = DecryptRequest,
    responses(
        (status = 200, description = "`ciphertext`, or `batch` of results", body = TransitResponse),
        (status = 400, description = "`transit_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`keys_shredded`: the organisation's keys were destroyed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `batch` is empty or over `transit.max_batch_items`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn rewrap(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<DecryptRequest>,
) -> Result<JsonOk<TransitResponse>, ApiError> {
    let (batch, items) = decrypt_items(req);
    check_batch(&state, items.len())?;
    let out = state.kernel.transit().rewrap(&call, items).await?;
    respond(batch, out)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FloorRequest {
    /// Ciphertexts below this key version stop decrypting (for good, once re-encryption retires
    /// the version). Can only rise.
    #[schema(minimum = 1)]
    min_version: u32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FloorResponse {
    min_version: u32,
    newest_version: u32,
}

/// Raises the lowest key version transit accepts. Needs `transit.manage`.
#[utoipa::path(put, path = "/v1/transit/min-version", tag = "transit", security(("bearer" = [])), params(OrgScoped),
    request_body = FloorRequest,
    responses(
        (status = 200, description = "The floor and the newest version", body = FloorResponse),
        (status = 422, description = "Below the current floor or above the newest version", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: that key version is seconds old; retry in a few seconds", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn min_version(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<FloorRequest>,
) -> Result<Json<FloorResponse>, ApiError> {
    let (min_version, newest_version) = state
        .kernel
        .transit()
        .raise_floor(&call, req.min_version)
        .await?;
    Ok(Json(FloorResponse {
        min_version,
        newest_version,
    }))
}
