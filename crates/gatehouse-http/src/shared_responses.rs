//! The refusals a route shares with others because they come from the extractors and layers it
//! uses rather than from its handler: a JSON body (`ApiJson`), path and query parameters, a
//! bearer token or service secret, `x-organization-id`, and the per-address rate limit. Each is
//! added to an operation's responses only when the document shows that mechanism on it (and the
//! limit class declared beside the route), so no route can forget one and none is claimed where
//! it cannot happen. A status the route's own annotation already documents keeps that
//! description, with the shared cause added to it.

use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, Header, Ref, RefOr, Required, Response};

use crate::problem::PROBLEM_JSON;
use crate::route_facts::Limit;

/// Adds the shared refusals to every operation of one path.
pub(crate) fn document(item: &mut PathItem, limit: Limit) {
    let operations = [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ];
    for op in operations.into_iter().flatten() {
        document_operation(op, limit);
    }
}

fn document_operation(op: &mut Operation, limit: Limit) {
    let mut shared: Vec<(u16, &str)> = Vec::new();
    if let Some(RefOr::T(body)) = &op.request_body {
        if json_body_required(body) {
            shared.push((400, "`malformed_json`: the body is not well-formed JSON"));
            shared.push((
                415,
                "`unsupported_media_type`: the body is not sent as `application/json`",
            ));
            shared.push((
                422,
                "`invalid_body`: the JSON does not have the documented fields and types",
            ));
        }
        shared.push((
            413,
            "`payload_too_large`: the body exceeds `body_limit_bytes`",
        ));
    }
    if has_parameter(op, ParameterIn::Path, None) {
        shared.push((400, "`bad_request`: a path parameter is malformed"));
    }
    if has_parameter(op, ParameterIn::Query, None) {
        shared.push((
            400,
            "`bad_request`: a query parameter is not of its documented type",
        ));
    }
    let bearer = requires(op, "bearer");
    if bearer {
        shared.push((
            401,
            "`unauthenticated`: no token, or one that is invalid, expired or revoked",
        ));
        shared.push((
            403,
            "`wrong_audience`: a token for the other API (operator or tenant); `csrf_failed`: a cookie session changing state without `x-csrf-token`",
        ));
    }
    if requires(op, "service") {
        shared.push((
            401,
            "`unauthenticated`: `X-Service-Auth` is missing or wrong, or no service secret is configured",
        ));
    }
    if has_parameter(op, ParameterIn::Header, Some(crate::auth::ORG_HEADER)) {
        shared.push((
            400,
            "`organization_required`: no `x-organization-id` header",
        ));
        shared.push((
            403,
            "`organization_mismatch`: `x-organization-id` names another organisation than the token's (audited); `forbidden`: the caller's role lacks the permission the operation needs; `step_up_required`: that permission needs a recent second factor; `email_unverified`: with `identity.unverified_access = \"read_only\"`, an unverified account may only read",
        ));
    }
    if bearer || limit != Limit::Unlimited {
        shared.push((
            429,
            "`rate_limited`: over a request quota (per address, user or API key); retry after `Retry-After` seconds",
        ));
    }
    for (status, why) in shared {
        add(op, status, why);
    }
}

/// A required JSON body: read by `ApiJson`, whose rejections these are. An optional body (one
/// the handler reads itself) is not.
fn json_body_required(body: &RequestBody) -> bool {
    matches!(body.required, Some(Required::True)) && body.content.contains_key("application/json")
}

/// Whether the operation has a parameter in `place`; with a `name`, that parameter and required
/// (forward authentication's optional `x-organization-id` does not make it an organisation route).
fn has_parameter(op: &Operation, place: ParameterIn, name: Option<&str>) -> bool {
    op.parameters.iter().flatten().any(|p| match p {
        RefOr::T(p) => {
            p.parameter_in == place
                && name.is_none_or(|n| p.name.eq_ignore_ascii_case(n))
                && (name.is_none() || matches!(p.required, Required::True))
        }
        RefOr::Ref(_) => false,
    })
}

/// Whether the operation's security names `scheme` (as `security(("scheme" = []))` does).
fn requires(op: &Operation, scheme: &str) -> bool {
    let wanted = SecurityRequirement::new(scheme, Vec::<String>::new());
    op.security.iter().flatten().any(|r| *r == wanted)
}

fn add(op: &mut Operation, status: u16, why: &str) {
    let key = status.to_string();
    match op.responses.responses.get_mut(&key) {
        Some(RefOr::T(existing)) => {
            if !existing.description.contains(why) {
                existing.description = format!("{}; {why}", existing.description);
            }
            if !existing.content.contains_key(PROBLEM_JSON) {
                existing
                    .content
                    .insert(PROBLEM_JSON.to_owned(), problem_content().into());
            }
            if status == 429 {
                existing
                    .headers
                    .entry("Retry-After".to_owned())
                    .or_insert_with(|| retry_after().into());
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let mut response = Response::new(why);
            response
                .content
                .insert(PROBLEM_JSON.to_owned(), problem_content().into());
            if status == 429 {
                response
                    .headers
                    .insert("Retry-After".to_owned(), retry_after().into());
            }
            op.responses.responses.insert(key, response.into());
        }
    }
}

fn problem_content() -> Content {
    Content::new(Some(Ref::from_schema_name("Problem")))
}

fn retry_after() -> Header {
    let mut header = Header::new(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .build(),
    );
    header.description = Some("Seconds to wait before trying again".to_owned());
    header
}
