//! A. Identity and sessions.

use std::sync::Arc;

use gatehouse_core::posture::{Finding, Probe};
use gatehouse_core::posture_settings;

use super::{Facts, probe, secs};
use crate::config::{MailTransportSettings, Mode};

pub(super) fn probes(f: &Facts<'_>) -> Vec<Arc<dyn Probe>> {
    vec![
        a1(f),
        a2(),
        a3(f),
        a4(f),
        a5(f),
        a6(f),
        one_time_tokens(f, "A7", f.config.identity.password_reset_ttl, "reset"),
        one_time_tokens(
            f,
            "A8",
            f.config.identity.email_verification_ttl,
            "verification",
        ),
        a9(f),
        a10(f),
    ]
}

/// OWASP's floor for Argon2id (the catalogue's A1): 19 MiB, two passes, one lane.
const ARGON2_FLOOR: (u32, u32, u32) = (19 * 1024, 2, 1);

fn a1(f: &Facts<'_>) -> Arc<dyn Probe> {
    let p = &f.config.password_hashing;
    let params = p.argon2;
    let settings = posture_settings! {
        "algorithm" => "argon2id",
        "memory_kib" => params.memory_kib,
        "iterations" => params.iterations,
        "parallelism" => params.parallelism,
        "workers" => p.workers,
        "queue" => p.queue,
        "pepper" => gatehouse_core::posture::redacted(p.pepper.is_some()),
    };
    let kernel = Arc::clone(f.kernel);
    probe("A1", true, settings, move || {
        let kernel = Arc::clone(&kernel);
        async move {
            let (m, t, lanes) = ARGON2_FLOOR;
            let floor = if params.memory_kib >= m
                && params.iterations >= t
                && params.parallelism >= lanes
            {
                Finding::pass(format!(
                    "New hashes use Argon2id m={} KiB, t={}, p={}, at or above OWASP's floor.",
                    params.memory_kib, params.iterations, params.parallelism
                ))
            } else {
                Finding::fail("The configured Argon2id parameters are below OWASP's floor.")
            };
            floor.and(
                super::data::password_census(kernel.store(), params, kernel.passwords().pepper())
                    .await,
            )
        }
    })
}

fn a2() -> Arc<dyn Probe> {
    probe(
        "A2",
        false,
        posture_settings! {"runs_in" => "gatehouse local-vault and the gatehouse-vault library"},
        || async {
            Finding::not_applicable(
                "The local vault is a library and CLI for desktop apps; nothing of it runs in the server.",
            )
        },
    )
}

fn a3(f: &Facts<'_>) -> Arc<dyn Probe> {
    let id = &f.config.identity;
    let settings = posture_settings! {
        "algorithm" => "EdDSA (Ed25519)",
        "issuer" => id.issuer,
        "audience" => id.audience,
        "access_token_ttl_secs" => secs(id.access_token_ttl),
        "leeway_secs" => id.leeway_secs,
    };
    let kernel = Arc::clone(f.kernel);
    probe("A3", true, settings, move || {
        let kernel = Arc::clone(&kernel);
        async move {
            match kernel.auth().published_token_keys().await {
                Ok(keys) if keys.is_empty() => {
                    Finding::fail("The JWKS document publishes no signing key.")
                }
                Ok(keys) => Finding::pass(format!(
                    "The JWKS document publishes {} Ed25519 key(s) for verifiers.",
                    keys.len()
                ))
                .figure("published_keys", keys.len()),
                Err(e) => Finding::fail(format!("The signing keys cannot be read: {e}")),
            }
        }
    })
}

fn a4(f: &Facts<'_>) -> Arc<dyn Probe> {
    let check = gatehouse_crypto::otp::TotpCheck::default();
    let settings = posture_settings! {
        "digits" => check.digits,
        "period_secs" => check.period,
        "skew_steps" => check.skew,
        "recovery_codes" => 10,
        "recovery_code_bits" => gatehouse_core::identity::recovery_code_bits(),
        "operator_totp_required" => f.config.identity.operator_totp_required,
        "require_second_factor" => f.config.identity.require_second_factor,
    };
    probe("A4", true, settings, move || async move {
        // RFC 6238 appendix B, SHA-1, T = 59: the generator answers the published vector.
        let secret =
            gatehouse_crypto::otp::TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let eight = gatehouse_crypto::otp::TotpCheck { digits: 8, ..check };
        if eight.code_at(&secret, 59) == "94287082" {
            Finding::pass("The TOTP generator reproduces RFC 6238's test vector.")
        } else {
            Finding::fail("The TOTP generator does not reproduce RFC 6238's test vector.")
        }
    })
}

fn a5(f: &Facts<'_>) -> Arc<dyn Probe> {
    let fanout = f.config.redis_url.is_some();
    let id = &f.config.identity;
    let settings = posture_settings! {
        "revocation_fanout" => if fanout { "redis" } else { "this instance only" },
        "refresh_rotation" => true,
        "idle_timeout_secs" => secs(id.idle_timeout),
        "max_sessions_per_account" => id.max_sessions_per_account,
        "session_limit_action" => id.session_limit_action.as_str(),
        "sso_social_providers" => f.config.sso.social_providers.join(", "),
        "sso_dns_servers" => if f.config.sso.dns_servers.is_empty() { "the system's" } else { "configured" },
    };
    probe("A5", true, settings, move || async move {
        if !id_token_verifier_refuses_forgeries() {
            return Finding::fail(
                "The ID-token verifier of sign-in through a provider accepted an unsigned or HS256 token.",
            );
        }
        // The subscriber marks the feature degraded while its Redis connection is down.
        if fanout && gatehouse_core::telemetry::metrics::is_degraded("revocation_fanout") {
            Finding::warn(
                "Revocations apply here at once, but the Redis subscription is down: other instances refuse revoked sessions only within their cache bound.",
            )
        } else if fanout {
            Finding::pass(
                "Revoked sessions are refused on the next request here, and on other instances through Redis.",
            )
        } else {
            Finding::pass("Revoked sessions are refused on the next request (one instance).")
        }
    })
}

/// Sign-in through a provider (issue 24) rests on the ID-token verifier refusing a token that
/// chooses its own algorithm: `none`, or HS256 keyed with the provider's public key. Checked on
/// a key made here, with no I/O.
fn id_token_verifier_refuses_forgeries() -> bool {
    use base64::Engine as _;
    use gatehouse_core::sso::id_token::{Expected, IdTokenError, ProviderKeys};
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let Ok(signer) = gatehouse_crypto::JwtSigner::from_seed(
        "k".into(),
        &gatehouse_crypto::Key32::from_bytes([5; 32]),
    ) else {
        return false;
    };
    let jwks = format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"k","x":"{}"}}]}}"#,
        b64(signer.public_key())
    );
    let Ok(keys) = ProviderKeys::from_jwks(jwks.as_bytes()) else {
        return false;
    };
    let claims = b64(
        br#"{"iss":"https://idp.example","sub":"s","aud":"c","exp":2000,"iat":1000,"nonce":"n"}"#,
    );
    let input = |alg: &str| {
        format!(
            "{}.{claims}",
            b64(format!(r#"{{"alg":"{alg}","kid":"k"}}"#).as_bytes())
        )
    };
    let hs = input("HS256");
    let tag = gatehouse_crypto::MacKey::from_bytes(signer.public_key()).tag(&[hs.as_bytes()]);
    let expected = Expected {
        issuer: "https://idp.example",
        client_id: "c",
        nonce: "n",
        now_secs: 1500,
        leeway_secs: 0,
        max_age_secs: 600,
    };
    [format!("{}.", input("none")), format!("{hs}.{}", b64(&tag))]
        .iter()
        .all(|t| keys.verify(t, &expected) == Err(IdTokenError::Algorithm))
}

fn a6(f: &Facts<'_>) -> Arc<dyn Probe> {
    let id = &f.config.identity;
    let values = [
        (
            "customer_session_ttl_secs",
            secs(id.customer_session_ttl),
            7 * 86_400_i64,
        ),
        (
            "operator_session_ttl_secs",
            secs(id.operator_session_ttl),
            12 * 3_600,
        ),
        (
            "impersonation_ttl_secs",
            secs(id.impersonation_ttl),
            30 * 60,
        ),
        ("access_token_ttl_secs", secs(id.access_token_ttl), 3_600),
    ];
    let mut settings = gatehouse_core::posture::Settings::new();
    for (k, v, _) in values {
        settings.insert(k.to_owned(), v.into());
    }
    probe("A6", true, settings, move || async move {
        let over: Vec<&str> = values
            .iter()
            .filter(|(_, v, max)| v > max)
            .map(|(k, _, _)| *k)
            .collect();
        if over.is_empty() {
            Finding::pass(
                "Every session tier and the access tokens live within the catalogue's bounds.",
            )
        } else {
            Finding::warn(format!(
                "Longer than the catalogue's bound: {}.",
                over.join(", ")
            ))
        }
    })
}

fn one_time_tokens(
    f: &Facts<'_>,
    id: &'static str,
    ttl: time::Duration,
    what: &'static str,
) -> Arc<dyn Probe> {
    let file_mail = matches!(f.config.mail.transport, MailTransportSettings::File(_));
    let settings = posture_settings! {
        "token_ttl_secs" => secs(ttl),
        "stored" => "SHA-256 digest, single use",
        "mail_transport" => if file_mail { "file" } else { "smtp" },
    };
    probe(id, true, settings, move || async move {
        if file_mail {
            Finding::warn(format!(
                "One-time {what} tokens are stored hashed and expire after {} s, but mail is written to files, not sent.",
                ttl.whole_seconds()
            ))
        } else {
            Finding::pass(format!(
                "One-time {what} tokens are stored hashed, single use, and expire after {} s.",
                ttl.whole_seconds()
            ))
        }
    })
}

fn a9(f: &Facts<'_>) -> Arc<dyn Probe> {
    let own = f.config.server.admin_listen.is_some();
    let settings = posture_settings! {
        "operator_routes" => "/admin/v1",
        "own_listener" => f.config.server.admin_listen.map(|a| a.to_string()),
        "operator_totp_required" => f.config.identity.operator_totp_required,
    };
    let production = f.config.mode == Mode::Production;
    let totp = f.config.identity.operator_totp_required;
    probe("A9", true, settings, move || async move {
        let listener = if own {
            "on their own listener"
        } else {
            "on the main listener"
        };
        if production && !totp {
            Finding::warn(format!(
                "Operator routes accept only operator tokens, {listener}, but operators need no second factor."
            ))
        } else {
            Finding::pass(format!(
                "Operator routes accept only operator tokens of their own audience, {listener}, with their own audit trail."
            ))
        }
    })
}

fn a10(f: &Facts<'_>) -> Arc<dyn Probe> {
    let settings = posture_settings! {
        "cookie_prefix" => "__Host-",
        "same_site" => "Lax",
        "csrf" => "x-csrf-token header, its digest bound to the session",
        "tls" => f.config.tls.is_some(),
    };
    probe("A10", true, settings, || async {
        Finding::by_design(
            "Browser sessions use __Host- cookies (HttpOnly, Secure, SameSite=Lax); a state change needs the session's CSRF token.",
        )
    })
}
