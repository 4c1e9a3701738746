//! The OAuth client machinery (issue 24) against a real OpenID provider (`oidc-provider`, see
//! `oidc_provider.rs`): discovery, an authorization with PKCE and a signed state driven to the
//! callback, the code exchange, userinfo, JWKS, refresh and revocation, through the kernel's
//! client, which every flow (connectors, sign-in) uses.

use gatehouse_core::audit::{Actor, AuditEvent};
use gatehouse_core::oauth::{
    AuthorizationRequest, Binding, ClientAuth, ClientCredentials, CodeGrant, Expected, FlowMode,
    ProviderError, StatePurpose, TokenHint,
};
use gatehouse_core::{OrgId, RequestContext, TenantScope, UserId};
use gatehouse_crypto::SecretString;

use crate::oidc_provider::{FailMode, OidcClient, OidcOptions, OidcProvider, query_param};
use crate::support::TestApp;

const REDIRECT: &str = "http://127.0.0.1:9/v1/connectors/callback";

pub fn dev_oauth(raw: &mut gatehouse::config::RawConfig) {
    raw.oauth.allow_http = true;
    raw.oauth.allow_loopback = true;
    // A provider told to stall is given up on after this.
    raw.oauth.timeout_secs = 2;
}

#[tokio::test]
async fn the_client_completes_an_authorization_refreshes_and_revokes_at_a_real_provider() {
    let client = OidcClient::new("gatehouse", REDIRECT);
    let op = OidcProvider::start(OidcOptions {
        clients: vec![client.clone()],
        ..OidcOptions::default()
    });
    let app = TestApp::spawn_with(dev_oauth).await;
    let owner = app.signup_login("oauth-owner@example.com", "laptop").await;
    let org = OrgId::parse(&owner.org).unwrap();
    let user = UserId::parse(&owner.user).unwrap();
    let oauth = app.kernel.oauth();
    let issuer = reqwest::Url::parse(&op.issuer()).unwrap();

    let endpoints = oauth.client().unwrap().discover(&issuer).await.unwrap();
    // RFC 9207: the provider says it sends `iss` with every response, so it is required.
    assert!(endpoints.iss_required);
    assert_eq!(endpoints.issuer.as_deref(), Some(op.issuer().as_str()));
    let scopes = vec![
        "openid".to_owned(),
        "offline_access".to_owned(),
        "email".to_owned(),
    ];
    let scope = TenantScope::for_tests(org);
    let started = oauth
        .begin(
            Some(&scope),
            Binding {
                purpose: StatePurpose::Connector,
                mode: FlowMode::Bearer,
                org: Some(org),
                user: Some(user),
                provider: "op".into(),
            },
            AuthorizationRequest {
                endpoints: &endpoints,
                client_id: &client.client_id,
                scopes: &scopes,
                redirect_uri: REDIRECT,
                extra: &[("prompt", "consent")],
            },
            AuditEvent::success(
                Actor::user(user),
                "oauth.test_started",
                "oauth_provider",
                "op",
            ),
        )
        .await
        .unwrap();
    let back = op.authorize(started.url.as_str(), "alice").await;
    assert!(back.starts_with(REDIRECT), "{back}");
    assert_eq!(
        query_param(&back, "state").as_deref(),
        Some(started.state.as_str())
    );
    let code = query_param(&back, "code").unwrap();
    let spent = oauth
        .spend(
            &started.state,
            &Expected {
                purpose: StatePurpose::Connector,
                mode: FlowMode::Bearer,
                org: Some(org),
                user: Some(user),
                provider: Some("op"),
            },
            &RequestContext::default(),
        )
        .await
        .unwrap();
    let credentials = ClientCredentials {
        client_id: client.client_id.clone(),
        client_secret: Some(SecretString::new(client.client_secret.clone())),
        auth: ClientAuth::Basic,
    };
    let tokens = oauth
        .client()
        .unwrap()
        .exchange_code(
            &endpoints.token,
            &credentials,
            CodeGrant {
                code: &code,
                verifier: &spent.verifier,
                redirect_uri: REDIRECT,
            },
        )
        .await
        .unwrap();
    assert_eq!(tokens.expires_in, Some(60));
    assert!(tokens.id_token.is_some());
    let refresh = tokens.refresh_token.clone().expect("offline access");
    let userinfo_url = endpoints.userinfo.clone().unwrap();
    let claims = oauth
        .client()
        .unwrap()
        .userinfo(&userinfo_url, &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(claims["sub"], "alice");
    let jwks = oauth
        .client()
        .unwrap()
        .jwks(endpoints.jwks.as_ref().unwrap())
        .await
        .unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty());

    let refreshed = oauth
        .client()
        .unwrap()
        .refresh(&endpoints.token, &credentials, &refresh)
        .await
        .unwrap();
    assert_ne!(
        refreshed.access_token.expose(),
        tokens.access_token.expose()
    );
    let rotated = refreshed.refresh_token.clone().unwrap();
    assert_eq!(
        op.userinfo_status(refreshed.access_token.expose()).await,
        200
    );

    assert_eq!(op.token_requests("authorization_code").await, 1);
    assert_eq!(op.token_requests("refresh_token").await, 1);

    // Errors, garbage and silence from the token endpoint are typed refusals.
    op.fail_token_endpoint(FailMode::InvalidGrant).await;
    let e = oauth
        .client()
        .unwrap()
        .refresh(&endpoints.token, &credentials, &rotated)
        .await
        .unwrap_err();
    assert!(e.is_invalid_grant(), "{e:?}");
    op.fail_token_endpoint(FailMode::Slow).await;
    let e = oauth
        .client()
        .unwrap()
        .refresh(&endpoints.token, &credentials, &rotated)
        .await
        .unwrap_err();
    assert_eq!(e, ProviderError::Unavailable("timed out".into()));
    op.fail_token_endpoint(FailMode::ServerError).await;
    let e = oauth
        .client()
        .unwrap()
        .refresh(&endpoints.token, &credentials, &rotated)
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    op.fail_token_endpoint(FailMode::Garbage).await;
    let e = oauth
        .client()
        .unwrap()
        .refresh(&endpoints.token, &credentials, &rotated)
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Garbage(_)), "{e:?}");
    op.fail_token_endpoint(FailMode::None).await;

    // RFC 7009: the refresh token revoked, the provider honours neither token any more.
    oauth
        .client()
        .unwrap()
        .revoke(
            endpoints.revocation.as_ref().unwrap(),
            &credentials,
            &rotated,
            TokenHint::RefreshToken,
        )
        .await
        .unwrap();
    assert_eq!(op.revocation_requests().await, 1);
    assert!(!op.introspect(&client, rotated.expose()).await);
    assert_eq!(
        op.userinfo_status(refreshed.access_token.expose()).await,
        401
    );
    let e = oauth
        .client()
        .unwrap()
        .refresh(&endpoints.token, &credentials, &rotated)
        .await
        .unwrap_err();
    assert!(e.is_invalid_grant(), "{e:?}");
    // The code was spent at the provider: redeeming it again is refused with invalid_grant.
    let (status, body) = op.redeem(&client, &code, spent.verifier.expose()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_provider_on_loopback_is_refused_without_the_development_setting() {
    let op = OidcProvider::start(OidcOptions::default());
    let app = TestApp::spawn_with(|raw| raw.oauth.allow_http = true).await;
    let issuer = reqwest::Url::parse(&op.issuer()).unwrap();
    let e = app
        .kernel
        .oauth()
        .client()
        .unwrap()
        .discover(&issuer)
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Destination(_)), "{e:?}");
    app.stop().await;
}
