//! The contract of `OAuthStateStore` (core's `store/oauth_states.rs`): a state is spent once, by
//! digest, and never once expired; and core's signed states over it (`oauth::state`): refused
//! when replayed, expired, signed with another key, or presented for another person,
//! organisation, provider or flow, each before the row is spent.

use std::sync::Arc;

use gatehouse_core::audit::{Actor, AuditEvent, Audited};
use gatehouse_core::keyring::KeyringSettings;
use gatehouse_core::oauth::{
    AuthorizationRequest, Binding, Expected, FlowMode, PkceVerifier, ProviderEndpoints, STATE_TTL,
};
use gatehouse_core::password_pool::PasswordPool;
use gatehouse_core::store::{OAuthStateRecord, PruneJob, StatePurpose, Store};
use gatehouse_core::{Clock, Error, Kernel, KeySource, OrgId, RequestContext, TenantScope, UserId};
use gatehouse_crypto::Argon2Params;
use time::Duration;
use url::Url;
use uuid::Uuid;

use crate::cases::keyring::{K1, clock, keyring_with};
use crate::cases::seed;

fn record(clock: &dyn Clock, digest: u8, org: Option<OrgId>) -> OAuthStateRecord {
    OAuthStateRecord {
        digest: vec![digest; 32],
        purpose: if org.is_some() {
            StatePurpose::Connector
        } else {
            StatePurpose::Sso
        },
        org_id: org,
        user_id: Some(Uuid::from_u128(u128::from(digest))),
        provider: "crm".into(),
        verifier_sealed: vec![1, 2, 3],
        nonce_sealed: vec![4, 5],
        created_at: clock.now(),
        expires_at: clock.now() + Duration::minutes(10),
        spent_at: None,
    }
}

pub async fn oauth_states_are_spent_once_by_digest_and_never_expired(store: Arc<dyn Store>) {
    let clock = clock();
    let orgs = seed(store.as_ref(), &clock, 1).await;
    let (org, _) = orgs[0];
    let with_org = record(clock.as_ref(), 1, Some(org));
    let without = record(clock.as_ref(), 2, None);
    let mut tx = store.begin().await.unwrap();
    tx.insert_oauth_state(&with_org).await.unwrap();
    tx.insert_oauth_state(&without).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let at = clock.now() + Duration::minutes(1);
    let mut tx = store.begin().await.unwrap();
    let spent = tx.spend_oauth_state(&with_org.digest, at).await.unwrap();
    assert_eq!(
        spent,
        Some(OAuthStateRecord {
            spent_at: Some(at),
            ..with_org.clone()
        })
    );
    assert_eq!(
        tx.spend_oauth_state(&with_org.digest, at).await.unwrap(),
        None
    );
    assert_eq!(tx.spend_oauth_state(&[9; 32], at).await.unwrap(), None);
    tx.commit(Audited::for_tests()).await.unwrap();
    // Spent stays spent in a later transaction; one that expired cannot be spent.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.spend_oauth_state(&with_org.digest, at).await.unwrap(),
        None
    );
    assert_eq!(
        tx.spend_oauth_state(&without.digest, without.expires_at)
            .await
            .unwrap(),
        None,
        "expired at its end"
    );
    let just_before = without.expires_at - Duration::microseconds(1);
    assert!(
        tx.spend_oauth_state(&without.digest, just_before)
            .await
            .unwrap()
            .is_some()
    );
    drop(tx);
    // A digest is unique.
    let mut tx = store.begin().await.unwrap();
    assert!(tx.insert_oauth_state(&with_org).await.is_err());
    drop(tx);
    // Pruning takes a state once spent or expired before its cutoff, and nothing younger.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.prune(PruneJob::OAuthStates, at - Duration::seconds(1), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        tx.prune(PruneJob::OAuthStates, at, 100).await.unwrap(),
        1,
        "the spent one"
    );
    assert_eq!(
        tx.prune(PruneJob::OAuthStates, without.expires_at, 100)
            .await
            .unwrap(),
        1,
        "the expired one"
    );
    tx.commit(Audited::for_tests()).await.unwrap();
}

async fn kernel(store: &Arc<dyn Store>, clock: &Arc<gatehouse_core::FakeClock>) -> Kernel {
    let keyring = keyring_with(
        store,
        clock,
        K1,
        KeyringSettings {
            link_key_overlap: Duration::hours(1),
            ..KeyringSettings::default()
        },
    )
    .await;
    Kernel::new(
        Arc::clone(store),
        clock.clone(),
        PasswordPool::start(1, 4, Argon2Params::MINIMUM).unwrap(),
        Arc::new(keyring),
        KeySource::Environment,
    )
}

fn endpoints() -> ProviderEndpoints {
    ProviderEndpoints {
        issuer: None,
        authorization: Url::parse("https://id.example.com/authorize?tenant=a").unwrap(),
        token: Url::parse("https://id.example.com/token").unwrap(),
        revocation: None,
        userinfo: None,
        jwks: None,
        iss_required: false,
    }
}

fn param(url: &Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{name} missing from {url}"))
}

/// Starts a connector's authorization for `user` in `org`; returns the state.
async fn start(k: &Kernel, org: OrgId, user: UserId) -> (String, Url) {
    let scope = TenantScope::for_tests(org);
    let e = endpoints();
    let scopes = vec!["openid".to_owned(), "offline_access".to_owned()];
    let a = k
        .oauth()
        .begin(
            Some(&scope),
            Binding {
                purpose: StatePurpose::Connector,
                mode: FlowMode::Cookie,
                org: Some(org),
                user: Some(user),
                provider: "crm".into(),
            },
            AuthorizationRequest {
                endpoints: &e,
                client_id: "gatehouse",
                scopes: &scopes,
                redirect_uri: "https://auth.example.com/v1/connectors/callback",
                extra: &[("prompt", "consent")],
            },
            AuditEvent::success(
                Actor::user(user),
                "connector.authorization_started",
                "oauth_provider",
                "crm",
            ),
        )
        .await
        .unwrap();
    (a.state, a.url)
}

fn refusal(e: Error) -> &'static str {
    match e {
        Error::OAuthState(why) => why,
        other => panic!("not a state refusal: {other:?}"),
    }
}

pub async fn oauth_states_are_signed_bound_short_lived_and_single_use(store: Arc<dyn Store>) {
    let clock = clock();
    let orgs = seed(store.as_ref(), &clock, 2).await;
    let ((a, alice), (b, bob)) = (orgs[0], orgs[1]);
    let k = kernel(&store, &clock).await;
    let request = RequestContext::default();
    let expect = |org, user| Expected {
        purpose: StatePurpose::Connector,
        mode: FlowMode::Cookie,
        org: Some(org),
        user: Some(user),
        provider: Some("crm"),
    };

    // The URL carries the protocol's parameters, the endpoint's own and the extra ones; the
    // challenge is the verifier's, which only the spent state returns.
    let (state, url) = start(&k, a, alice).await;
    assert_eq!(param(&url, "tenant"), "a");
    assert_eq!(param(&url, "response_type"), "code");
    assert_eq!(param(&url, "code_challenge_method"), "S256");
    assert_eq!(param(&url, "scope"), "openid offline_access");
    assert_eq!(param(&url, "prompt"), "consent");
    assert_eq!(param(&url, "state"), state);
    // Another person, organisation, provider or flow: refused, and the state is not spent.
    assert!(
        refusal(
            k.oauth()
                .spend(&state, &expect(a, bob), &request)
                .await
                .unwrap_err()
        )
        .contains("another person")
    );
    assert!(
        refusal(
            k.oauth()
                .spend(&state, &expect(b, alice), &request)
                .await
                .unwrap_err()
        )
        .contains("another organisation")
    );
    let other_provider = Expected {
        provider: Some("mail"),
        ..expect(a, alice)
    };
    assert!(
        refusal(
            k.oauth()
                .spend(&state, &other_provider, &request)
                .await
                .unwrap_err()
        )
        .contains("another flow")
    );
    // Started with a cookie session: a bearer relay of it is another mode.
    let bearer = Expected {
        mode: FlowMode::Bearer,
        ..expect(a, alice)
    };
    assert!(
        refusal(
            k.oauth()
                .spend(&state, &bearer, &request)
                .await
                .unwrap_err()
        )
        .contains("another mode")
    );
    // The URL does not name the organisation or the person (sealed in the body).
    let body = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        state.split_once('.').unwrap().0,
    )
    .unwrap();
    for id in [a.as_uuid(), alice.as_uuid()] {
        assert!(
            !body.windows(16).any(|w| w == id.as_bytes()),
            "an id in clear"
        );
        let text = id.to_string();
        assert!(!state.contains(&text));
    }
    let sso = Expected {
        purpose: StatePurpose::Sso,
        ..expect(a, alice)
    };
    assert!(
        refusal(k.oauth().spend(&state, &sso, &request).await.unwrap_err())
            .contains("another flow")
    );
    let spent = k
        .oauth()
        .spend(&state, &expect(a, alice), &request)
        .await
        .unwrap();
    assert_eq!(spent.binding.org, Some(a));
    assert_eq!(spent.binding.user, Some(alice));
    assert_eq!(spent.verifier.challenge(), param(&url, "code_challenge"));
    assert_eq!(spent.oidc_nonce.expose(), param(&url, "nonce"));
    assert!(
        PkceVerifier::from_secret(gatehouse_crypto::SecretString::new(
            spent.verifier.expose().to_owned()
        ))
        .is_some()
    );
    // Replayed.
    assert!(
        refusal(
            k.oauth()
                .spend(&state, &expect(a, alice), &request)
                .await
                .unwrap_err()
        )
        .contains("already used")
    );

    // Older than ten minutes: refused at the end, accepted a second before.
    let (state, _) = start(&k, a, alice).await;
    let (fresh, _) = start(&k, a, alice).await;
    clock.advance(STATE_TTL - Duration::seconds(1));
    k.oauth()
        .spend(&fresh, &expect(a, alice), &request)
        .await
        .unwrap();
    clock.advance(Duration::seconds(1));
    assert!(
        refusal(
            k.oauth()
                .spend(&state, &expect(a, alice), &request)
                .await
                .unwrap_err()
        )
        .contains("expired")
    );

    // Signed with another key: a bent tag, a key version bumped, a body from elsewhere.
    let (state, _) = start(&k, a, alice).await;
    let (body, tag) = state.split_once('.').unwrap();
    let bent = format!(
        "{body}.{}{}",
        if tag.starts_with('A') { "B" } else { "A" },
        &tag[1..]
    );
    assert!(
        refusal(
            k.oauth()
                .spend(&bent, &expect(a, alice), &request)
                .await
                .unwrap_err()
        )
        .contains("not one Gatehouse issued")
    );
    // A key rotated out past its overlap no longer verifies its states.
    k.keyring().rotate_link_key().await.unwrap();
    let (newer, _) = start(&k, a, alice).await;
    clock.advance(Duration::hours(1));
    assert!(
        refusal(
            k.oauth()
                .spend(&state, &expect(a, alice), &request)
                .await
                .unwrap_err()
        )
        .contains("not one Gatehouse issued")
    );
    // (The newer state's key is the current one, but the state itself has expired by now.)
    assert!(
        refusal(
            k.oauth()
                .spend(&newer, &expect(a, alice), &request)
                .await
                .unwrap_err()
        )
        .contains("expired")
    );
}
