//! What a provider's answers mean, decided here rather than in the HTTP client: a token
//! response (RFC 6749 5.1) or its error (5.2), a discovery document (OpenID Connect Discovery
//! 4.3), a revocation's answer (RFC 7009 2.2), userinfo and a JWKS. Anything else is a typed
//! [`ProviderError`]; no message carries a token or more of a body than the provider's own error
//! code (never its free-text description).

use gatehouse_crypto::SecretString;
use serde_json::{Map, Value};
use url::Url;

use super::client::{ProviderError, TokenSet};
use super::provider::ProviderEndpoints;
use crate::webhooks::destination::{DestinationPolicy, check_url};

/// The most a token endpoint's answer may hold.
pub const MAX_TOKEN_RESPONSE: usize = 64 * 1024;
/// The most a discovery document, a JWKS or a userinfo answer may hold.
pub const MAX_DOCUMENT: usize = 512 * 1024;
/// The longest token accepted from a provider.
const MAX_TOKEN: usize = 16 * 1024;

fn garbage(why: impl Into<String>) -> ProviderError {
    ProviderError::Garbage(why.into())
}

/// The JSON object of an answer, or why it is not one.
fn object(body: &[u8], what: &str) -> Result<Map<String, Value>, ProviderError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(garbage(format!("the {what} is not a JSON object"))),
        Err(_) => Err(garbage(format!("the {what} is not JSON"))),
    }
}

/// An answer that is not a success: the provider's OAuth error when it sent one (4xx with a
/// JSON `error`), otherwise unavailable (5xx) or garbage.
#[must_use]
pub fn error_answer(status: u16, body: &[u8], what: &str) -> ProviderError {
    if status >= 500 {
        return ProviderError::Unavailable(format!("the {what} answered {status}"));
    }
    if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body)
        && let Some(Value::String(error)) = m.get("error")
    {
        // RFC 6749's error codes keep to its characters; its `error_description` is free text
        // from the provider and goes nowhere (neither a problem detail nor a log line).
        if super::client::valid_error_code(error) {
            return ProviderError::Refused {
                error: error.clone(),
            };
        }
    }
    garbage(format!(
        "the {what} answered {status} without an OAuth error"
    ))
}

fn token_field(m: &Map<String, Value>, name: &str) -> Result<Option<SecretString>, ProviderError> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_TOKEN => {
            if s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                Ok(Some(SecretString::new(s.clone())))
            } else {
                Err(garbage(format!("{name} holds characters a token cannot")))
            }
        }
        Some(_) => Err(garbage(format!("{name} is not a token"))),
    }
}

/// A token endpoint's answer: its tokens on a 200, otherwise the typed error.
pub fn token_response(status: u16, body: &[u8]) -> Result<TokenSet, ProviderError> {
    if status != 200 {
        return Err(error_answer(status, body, "token endpoint"));
    }
    if body.len() > MAX_TOKEN_RESPONSE {
        return Err(garbage("the token response is too long"));
    }
    let m = object(body, "token response")?;
    let access_token =
        token_field(&m, "access_token")?.ok_or_else(|| garbage("access_token is missing"))?;
    let token_type = match m.get("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => t.clone(),
        Some(Value::String(_)) => return Err(garbage("token_type is not Bearer")),
        _ => return Err(garbage("token_type is missing")),
    };
    let expires_in = match m.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .filter(|s| *s <= 10 * 365 * 86_400)
                .ok_or_else(|| garbage("expires_in is not a number of seconds"))?,
        ),
        // Some providers send it as a string of digits.
        Some(Value::String(s)) => Some(
            s.parse::<u64>()
                .ok()
                .filter(|s| *s <= 10 * 365 * 86_400)
                .ok_or_else(|| garbage("expires_in is not a number of seconds"))?,
        ),
        Some(_) => return Err(garbage("expires_in is not a number of seconds")),
    };
    let scope = match m.get("scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(s))
            if s.len() <= 4096
                && s.split(' ')
                    .all(|t| t.is_empty() || super::provider::valid_scope(t)) =>
        {
            Some(
                s.split(' ')
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        }
        Some(_) => return Err(garbage("scope is not a list of scope tokens")),
    };
    Ok(TokenSet {
        access_token,
        token_type,
        expires_in,
        refresh_token: token_field(&m, "refresh_token")?,
        scope,
        id_token: token_field(&m, "id_token")?,
    })
}

/// A revocation's answer (RFC 7009 2.2): 200 is done, whatever the body.
pub fn revocation_response(status: u16, body: &[u8]) -> Result<(), ProviderError> {
    if status == 200 {
        Ok(())
    } else {
        Err(error_answer(status, body, "revocation endpoint"))
    }
}

/// Two issuer identifiers are the same only when equal, character for character (RFC 9207
/// 2.4, OpenID Connect Core 3.1.3.7): an `iss` from a callback or an ID token is compared with
/// the discovery document's own `issuer` this way.
#[must_use]
pub fn same_issuer(a: &str, b: &str) -> bool {
    a == b
}

/// Whether a discovery document's `issuer` names the configured issuer URL: exactly as the URL
/// is written, the only allowance being the `/` a URL parser adds to an empty path
/// (`https://id.example.com` configured is `https://id.example.com/` parsed).
fn names_issuer(named: &str, configured: &Url) -> bool {
    let written = configured.as_str();
    named == written || (configured.path() == "/" && Some(named) == written.strip_suffix('/'))
}

/// Where an issuer's discovery document is.
pub fn discovery_url(issuer: &Url) -> Result<Url, ProviderError> {
    let base = issuer.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/.well-known/openid-configuration"))
        .map_err(|_| ProviderError::Destination("the issuer is not a base URL".into()))
}

fn endpoint(
    m: &Map<String, Value>,
    name: &str,
    policy: DestinationPolicy,
) -> Result<Option<Url>, ProviderError> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => check_url(s, policy)
            .map(Some)
            .map_err(|why| garbage(format!("{name} {why}"))),
        Some(_) => Err(garbage(format!("{name} is not a URL"))),
    }
}

/// A discovery document for `issuer`: its endpoints, each checked against `policy`.
pub fn discovery_response(
    issuer: &Url,
    status: u16,
    body: &[u8],
    policy: DestinationPolicy,
) -> Result<ProviderEndpoints, ProviderError> {
    if status != 200 {
        return Err(error_answer(status, body, "discovery document"));
    }
    let m = object(body, "discovery document")?;
    let named = match m.get("issuer") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(garbage("the discovery document names no issuer")),
    };
    if !names_issuer(&named, issuer) {
        return Err(garbage("the discovery document names another issuer"));
    }
    if let Some(methods) = m.get("code_challenge_methods_supported") {
        let s256 = methods
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("S256")));
        if !s256 {
            return Err(garbage("the provider does not support PKCE with S256"));
        }
    }
    Ok(ProviderEndpoints {
        issuer: Some(named),
        authorization: endpoint(&m, "authorization_endpoint", policy)?
            .ok_or_else(|| garbage("authorization_endpoint is missing"))?,
        token: endpoint(&m, "token_endpoint", policy)?
            .ok_or_else(|| garbage("token_endpoint is missing"))?,
        revocation: endpoint(&m, "revocation_endpoint", policy)?,
        userinfo: endpoint(&m, "userinfo_endpoint", policy)?,
        jwks: endpoint(&m, "jwks_uri", policy)?,
        iss_required: m.get("authorization_response_iss_parameter_supported")
            == Some(&Value::Bool(true)),
    })
}

/// A userinfo answer: a JSON object of claims.
pub fn userinfo_response(status: u16, body: &[u8]) -> Result<Map<String, Value>, ProviderError> {
    if status != 200 {
        // RFC 6750 puts its error in `WWW-Authenticate`, not the body: a 401 is a refusal.
        if status == 401 || status == 403 {
            return Err(ProviderError::Refused {
                error: "invalid_token".into(),
            });
        }
        return Err(error_answer(status, body, "userinfo endpoint"));
    }
    object(body, "userinfo answer")
}

/// A JWKS: an object with a `keys` array.
pub fn jwks_response(status: u16, body: &[u8]) -> Result<Value, ProviderError> {
    if status != 200 {
        return Err(error_answer(status, body, "JWKS endpoint"));
    }
    let m = object(body, "JWKS")?;
    if !m.get("keys").is_some_and(Value::is_array) {
        return Err(garbage("the JWKS has no keys array"));
    }
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses_are_read_and_their_errors_typed() {
        let ok = token_response(
            200,
            br#"{"access_token":"at-1","token_type":"bearer","expires_in":"60","refresh_token":"rt-1","scope":"openid  email"}"#,
        )
        .unwrap();
        assert_eq!(ok.access_token.expose(), "at-1");
        assert_eq!(ok.expires_in, Some(60));
        assert_eq!(ok.refresh_token.unwrap().expose(), "rt-1");
        assert_eq!(ok.scope.as_deref(), Some("openid email"));
        let refused = token_response(
            400,
            b"{\"error\":\"invalid_grant\",\"error_description\":\"grant request is invalid\\u0007\"}",
        )
        .unwrap_err();
        assert!(refused.is_invalid_grant());
        // The provider's free text goes nowhere; only the RFC 6749 code is kept.
        assert_eq!(refused.to_string(), "the provider refused: invalid_grant");
        let bent =
            token_response(400, br#"{"error":"bad\"code","error_description":"x"}"#).unwrap_err();
        assert!(matches!(bent, ProviderError::Garbage(_)), "{bent:?}");
        for (status, body) in [
            (200, &b"<html>hello</html>"[..]),
            (200, br#"{"token_type":"Bearer"}"#),
            (200, br#"{"access_token":"a","token_type":"mac"}"#),
            (200, br#"{"access_token":7,"token_type":"Bearer"}"#),
            (
                200,
                br#"{"access_token":"a","token_type":"Bearer","expires_in":-1}"#,
            ),
            (200, br#"[1,2]"#),
            (400, b"nope"),
            (302, b""),
        ] {
            let e = token_response(status, body).unwrap_err();
            assert!(matches!(e, ProviderError::Garbage(_)), "{status} {e:?}");
        }
        assert!(token_response(503, b"busy").unwrap_err().is_transient());
        let long = format!(
            r#"{{"access_token":"{}","token_type":"Bearer"}}"#,
            "a".repeat(MAX_TOKEN_RESPONSE)
        );
        assert!(token_response(200, long.as_bytes()).is_err());
    }

    #[test]
    fn discovery_must_name_the_issuer_asked_and_allowed_endpoints() {
        let issuer = Url::parse("https://id.example.com").unwrap();
        let policy = DestinationPolicy::default();
        let doc = |iss: &str, token: &str| {
            format!(
                r#"{{"issuer":"{iss}","authorization_endpoint":"https://id.example.com/auth","token_endpoint":"{token}","jwks_uri":"https://id.example.com/jwks","code_challenge_methods_supported":["S256"]}}"#
            )
        };
        let e = discovery_response(
            &issuer,
            200,
            doc("https://id.example.com", "https://id.example.com/token").as_bytes(),
            policy,
        )
        .unwrap();
        assert_eq!(e.issuer.as_deref(), Some("https://id.example.com"));
        assert!(e.revocation.is_none());
        assert!(!e.iss_required);
        let advertised = doc("https://id.example.com", "https://id.example.com/token").replace(
            "\"jwks_uri\"",
            "\"authorization_response_iss_parameter_supported\":true,\"jwks_uri\"",
        );
        let e = discovery_response(&issuer, 200, advertised.as_bytes(), policy).unwrap();
        assert!(e.iss_required);
        // Exact, but for the slash a parser adds to an empty path.
        assert!(same_issuer(
            "https://id.example.com",
            "https://id.example.com"
        ));
        assert!(!same_issuer(
            "https://id.example.com/",
            "https://id.example.com"
        ));
        assert!(
            discovery_response(
                &Url::parse("https://id.example.com/tenant").unwrap(),
                200,
                doc(
                    "https://id.example.com/tenant/",
                    "https://id.example.com/token"
                )
                .as_bytes(),
                policy
            )
            .is_err(),
            "a trailing slash the configured issuer does not have"
        );
        assert!(
            discovery_response(
                &issuer,
                200,
                doc("https://evil.example.com", "https://id.example.com/token").as_bytes(),
                policy
            )
            .is_err()
        );
        assert!(
            discovery_response(
                &issuer,
                200,
                doc("https://id.example.com", "https://10.1.2.3/token").as_bytes(),
                policy
            )
            .is_err()
        );
        let plain = r#"{"issuer":"https://id.example.com","authorization_endpoint":"https://id.example.com/a","token_endpoint":"https://id.example.com/t","code_challenge_methods_supported":["plain"]}"#;
        assert!(discovery_response(&issuer, 200, plain.as_bytes(), policy).is_err());
        assert_eq!(
            discovery_url(&issuer).unwrap().as_str(),
            "https://id.example.com/.well-known/openid-configuration"
        );
    }

    #[test]
    fn revocation_userinfo_and_jwks_answers() {
        assert!(revocation_response(200, b"").is_ok());
        assert!(revocation_response(503, b"").unwrap_err().is_transient());
        assert!(matches!(
            userinfo_response(401, b"").unwrap_err(),
            ProviderError::Refused { .. }
        ));
        assert!(userinfo_response(200, br#"{"sub":"a"}"#).is_ok());
        assert!(jwks_response(200, br#"{"keys":[]}"#).is_ok());
        assert!(jwks_response(200, br#"{"keys":{}}"#).is_err());
    }
}
