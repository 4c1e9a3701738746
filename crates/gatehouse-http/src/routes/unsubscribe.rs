//! `/v1/unsubscribe` (F2): the signed link in the product's mail. `GET` shows a small
//! confirmation page (no script, no style, under the edge's `default-src 'none'` policy);
//! `POST` is RFC 8058's one-click unsubscribe, which mail clients send with the body
//! `List-Unsubscribe=One-Click` and no credentials: the signature is the authority, so the body
//! is not read.

use axum::extract::{Query, State};
use axum::response::Html;
use gatehouse_core::mail::UnsubscribeLink;
use serde::Deserialize;

use crate::extract::RequestMeta;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnsubscribeQuery {
    /// The organisation.
    #[param(max_length = 36)]
    o: String,
    /// The recipient: base64url of the SHA-256 of the lower-cased address.
    #[param(max_length = 43)]
    r: String,
    /// The list.
    #[param(max_length = 64)]
    l: String,
    /// The link key's version.
    k: u32,
    /// base64url of the HMAC-SHA-256 tag.
    #[param(max_length = 43)]
    sig: String,
}

impl From<UnsubscribeQuery> for UnsubscribeLink {
    fn from(q: UnsubscribeQuery) -> Self {
        Self {
            org: q.o,
            recipient: q.r,
            list: q.l,
            key: q.k,
            sig: q.sig,
        }
    }
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title}</title></head>\n<body><h1>{title}</h1>\n{body}\n</body></html>\n"
    ))
}

/// The confirmation page: what the link unsubscribes from, and one button. Nothing changes
/// until it is pressed (link scanners follow `GET`s).
#[utoipa::path(get, path = "/v1/unsubscribe", tag = "mail",
    params(UnsubscribeQuery),
    responses(
        (status = 200, description = "An HTML page with one button that unsubscribes", content_type = "text/html", body = String),
        (status = 400, description = "`invalid_token`: the link was changed, or signed by a key retired past its overlap", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn confirm(
    State(state): State<AppState>,
    Query(q): Query<UnsubscribeQuery>,
) -> Result<Html<String>, ApiError> {
    let link: UnsubscribeLink = q.into();
    let (_, _, list) = state.kernel.verify_unsubscribe(&link).await?;
    // The list name is a-z, 0-9, '.', '_', '-' only (checked by the signature's verifier), and
    // the other fields are base64url or a uuid: none needs escaping. The action is this same
    // path with its query, so it holds behind a proxy that mounts Gatehouse under a prefix.
    let action = format!(
        "?o={}&amp;r={}&amp;l={}&amp;k={}&amp;sig={}",
        link.org, link.recipient, link.list, link.key, link.sig
    );
    Ok(page(
        "Unsubscribe",
        &format!(
            "<p>Stop receiving messages from the list <strong>{list}</strong>?</p>\n\
             <form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>"
        ),
    ))
}

/// Unsubscribes at once (RFC 8058 one-click, or the confirmation page's button). Answers the
/// same whether or not the recipient had already left the list.
#[utoipa::path(post, path = "/v1/unsubscribe", tag = "mail",
    params(UnsubscribeQuery),
    responses(
        (status = 200, description = "Unsubscribed: an HTML page saying so", content_type = "text/html", body = String),
        (status = 400, description = "`invalid_token`: the link was changed, or signed by a key retired past its overlap", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The organisation no longer exists", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn one_click(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    Query(q): Query<UnsubscribeQuery>,
) -> Result<Html<String>, ApiError> {
    let done = state.kernel.unsubscribe(&q.into(), &meta).await?;
    Ok(page(
        "Unsubscribed",
        &format!(
            "<p>You will no longer receive messages from the list <strong>{}</strong>.</p>",
            done.list
        ),
    ))
}
