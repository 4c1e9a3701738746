//! Bad ID tokens from the certified provider itself (issue 24, must 3): each one `oidc-provider`
//! (`oidc_provider.rs`) issued, or minted from its genuine token with its own keys, reaches
//! Gatehouse's callback through the provider's token endpoint in answer to Gatehouse's real
//! exchange of its real code (the harness swaps the ID token of that one answer):
//! - another audience: a token the provider issued to a second registered client;
//! - another issuer: a token a second `oidc-provider` issued under its own issuer, signing with
//!   the first one's key; and the provider's own token re-signed by its key with `iss` spelled
//!   with a trailing `/`;
//! - another nonce: a token the provider issued to Gatehouse's client for another sign-in's
//!   nonce;
//! - expired: the provider's own token, issued with a 5 s lifetime, reaching a Gatehouse whose
//!   clock has passed it by more than the leeway;
//! - an `alg` swap: the provider's own claims as `alg: none`, and as HS256 keyed with the
//!   provider's public key (its PEM, and its JWK's JSON), minted with `jose`.
//!
//! Each is refused with `sso_refused` and its reason, audited, and stores nothing; then the
//! same path with nothing swapped signs the person in, so each refusal was its token's doing.
//! `sso_signin.rs` keeps the same refusals against a Rust stub (with the forgeries a certified
//! provider cannot be made to issue, such as an unknown key).

use reqwest::Method;
use serde_json::{Value, json};

use crate::oidc_provider::query_param;
use crate::oidc_provider::{IdTokenSwap, OidcAccount, OidcClient, OidcOptions, OidcProvider};
use crate::sso_signin::{Acme, acme_with, callback, callback_uri, links_of, start, user_by_email};
use crate::support::{TestApp, expect_problem, token_claims, token_subject};

/// Gatehouse's leeway on `exp` (`gatehouse_core::sso::signin`).
const LEEWAY_SECS: i64 = 60;
/// The short ID-token lifetime of the expired case.
const SHORT_TTL_SECS: u64 = 5;

#[derive(Debug, Clone, Copy)]
enum Bad {
    Audience,
    IssuerElsewhere,
    IssuerResigned,
    Nonce,
    Expired,
    AlgNone,
    Hs256Pem,
    Hs256Jwk,
}

impl Bad {
    const ALL: [Self; 8] = [
        Self::Audience,
        Self::IssuerElsewhere,
        Self::IssuerResigned,
        Self::Nonce,
        Self::AlgNone,
        Self::Hs256Pem,
        Self::Hs256Jwk,
        // Last: it moves Gatehouse's clock ahead of the provider's.
        Self::Expired,
    ];

    /// What the problem's detail and the audited reason say.
    fn says(self) -> &'static str {
        match self {
            Self::Audience => "for another client",
            Self::IssuerElsewhere | Self::IssuerResigned => "names another issuer",
            Self::Nonce => "not for this sign-in (nonce)",
            Self::Expired => "expired",
            Self::AlgNone | Self::Hs256Pem | Self::Hs256Jwk => "not signed by the provider's keys",
        }
    }
}

async fn members(app: &TestApp, owner: &crate::support::Signed) -> usize {
    let res = app
        .org_call(
            Method::GET,
            "/v1/organization/members?limit=200",
            owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .len()
}

fn count(events: &[gatehouse_core::audit::AuditRecord], action: &str) -> usize {
    events.iter().filter(|e| e.action == action).count()
}

#[tokio::test]
async fn id_tokens_oidc_provider_issued_for_another_client_issuer_or_sign_in_expired_or_alg_swapped_are_refused()
 {
    const CAROL: &str = "carol-at-idp";
    let carol = || OidcAccount::new(CAROL, "carol@acme.test");
    let Acme {
        app,
        ada,
        op,
        client,
        ..
    } = acme_with(vec![carol()], &["another-client"], |_| {}).await;
    let other = OidcClient::new("another-client", &callback_uri(&ada.org));
    // A second provider under another issuer, with Gatehouse's client registered, signing with
    // the first one's key (so only the issuer tells its tokens apart).
    let elsewhere = OidcProvider::start(OidcOptions {
        clients: vec![client.clone()],
        accounts: vec![carol()],
        signing_key: Some(op.signing_key().await),
        ..OidcOptions::default()
    });
    assert_ne!(elsewhere.issuer(), op.issuer());
    let members_before = members(&app, &ada).await;
    let events_before = app.audit_events(&ada.org).await;

    for bad in Bad::ALL {
        let started = start(&app, &ada.org).await;
        let nonce = query_param(&started.url, "nonce").unwrap();
        let swapped = op.id_tokens_swapped().await;
        let exchanged = op.token_requests("authorization_code").await;
        let refusals = count(&app.audit_events(&ada.org).await, "sso.sign_in_refused");
        let swap = match bad {
            Bad::Audience => {
                let token = op.id_token_for(&started.url, &other, None, CAROL).await;
                let claims = token_claims(&token);
                assert_eq!(claims["aud"], "another-client");
                assert_eq!(claims["nonce"], nonce.as_str());
                Some(IdTokenSwap::Token(token))
            }
            Bad::IssuerElsewhere => {
                let token = elsewhere
                    .id_token_for(&started.url, &client, None, CAROL)
                    .await;
                let claims = token_claims(&token);
                assert_eq!(claims["iss"], elsewhere.issuer().as_str());
                assert_eq!(claims["aud"], client.client_id.as_str());
                assert_eq!(claims["nonce"], nonce.as_str());
                Some(IdTokenSwap::Token(token))
            }
            Bad::IssuerResigned => Some(IdTokenSwap::Claims(
                json!({"iss": format!("{}/", op.issuer())}),
            )),
            Bad::Nonce => {
                // Another sign-in's nonce: a genuine token for Gatehouse's client, but not
                // for this sign-in.
                let another = start(&app, &ada.org).await;
                let theirs = query_param(&another.url, "nonce").unwrap();
                assert_ne!(theirs, nonce);
                let token = op
                    .id_token_for(&started.url, &client, Some(&theirs), CAROL)
                    .await;
                assert_eq!(token_claims(&token)["nonce"], theirs.as_str());
                Some(IdTokenSwap::Token(token))
            }
            Bad::Expired => {
                op.set_id_token_ttl(SHORT_TTL_SECS).await;
                None
            }
            Bad::AlgNone => Some(IdTokenSwap::AlgNone),
            Bad::Hs256Pem => Some(IdTokenSwap::Hs256PublicPem),
            Bad::Hs256Jwk => Some(IdTokenSwap::Hs256PublicJwk),
        };
        if let Some(swap) = swap {
            op.swap_next_id_token(swap).await;
        }
        let back = op.authorize(&started.url, CAROL).await;
        if matches!(bad, Bad::Expired) {
            // Gatehouse's clock to past the lifetime and the leeway of a token the provider
            // issues within the next 30 s (its clock is the system's).
            let real = gatehouse_core::Clock::now(&gatehouse_core::SystemClock).unix_timestamp();
            let target = real + i64::try_from(SHORT_TTL_SECS).unwrap() + LEEWAY_SECS + 30;
            let ahead = target - app.clock_secs();
            assert!(ahead > 0 && ahead < 300, "{ahead}");
            app.clock.advance(time::Duration::seconds(ahead));
        }
        let body = expect_problem(callback(&app, &started, &back).await, 403, "sso_refused").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(bad.says()), "{bad:?}: {body}");
        // Gatehouse exchanged its own code at the provider, once, and what came back was the
        // provider's answer: its genuine ID token (this sign-in's nonce), swapped where the
        // case swaps it.
        assert_eq!(
            op.token_requests("authorization_code").await,
            exchanged + 1 + u64::from(matches!(bad, Bad::Audience | Bad::Nonce)),
            "{bad:?}"
        );
        let genuine = op.issued_id_tokens().await.pop().unwrap();
        let claims = token_claims(&genuine);
        assert_eq!(claims["nonce"], nonce.as_str(), "{bad:?}");
        assert_eq!(claims["aud"], client.client_id.as_str(), "{bad:?}");
        if matches!(bad, Bad::Expired) {
            let life = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
            assert_eq!(life, i64::try_from(SHORT_TTL_SECS).unwrap());
            assert!(claims["exp"].as_i64().unwrap() + LEEWAY_SECS <= app.clock_secs());
            op.set_id_token_ttl(3600).await;
            assert_eq!(op.id_tokens_swapped().await, swapped);
        } else {
            assert_eq!(op.id_tokens_swapped().await, swapped + 1, "{bad:?}");
        }
        // Nothing stored: no account, so no link or membership through it.
        assert!(
            user_by_email(&app, "carol@acme.test").await.is_none(),
            "{bad:?}"
        );
        // Audited, with the reason: one refusal more, the latest this case's.
        let events = app.audit_events(&ada.org).await;
        assert_eq!(
            count(&events, "sso.sign_in_refused"),
            refusals + 1,
            "{bad:?}"
        );
        let refused = events
            .iter()
            .filter(|e| e.action == "sso.sign_in_refused")
            .max_by_key(|e| e.seq)
            .unwrap();
        assert!(
            refused.details.contains(bad.says()),
            "{bad:?}: {}",
            refused.details
        );
        assert!(
            refused.details.contains("sso_refused"),
            "{}",
            refused.details
        );
    }

    let events = app.audit_events(&ada.org).await;
    assert_eq!(
        count(&events, "sso.sign_in_refused") - count(&events_before, "sso.sign_in_refused"),
        Bad::ALL.len()
    );
    for action in ["sso.account_created", "sso.identity_linked", "member.added"] {
        assert_eq!(
            count(&events, action),
            count(&events_before, action),
            "{action}"
        );
    }
    assert_eq!(members(&app, &ada).await, members_before);

    // The same path with nothing swapped (and Gatehouse's clock still ahead) signs Carol in
    // and makes her a member: the harness is otherwise the genuine provider.
    let swapped = op.id_tokens_swapped().await;
    let started = start(&app, &ada.org).await;
    let back = op.authorize(&started.url, CAROL).await;
    let res = callback(&app, &started, &back).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(token_claims(access)["org"], ada.org);
    assert_eq!(op.id_tokens_swapped().await, swapped);
    let carol_account = user_by_email(&app, "carol@acme.test").await.unwrap();
    assert_eq!(carol_account.id.to_string(), token_subject(access));
    assert_eq!(links_of(&app, &token_subject(access)).await, 1);
    assert_eq!(members(&app, &ada).await, members_before + 1);
    app.chain_verifies(&ada.org).await;
}
