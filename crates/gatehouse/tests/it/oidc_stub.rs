//! A test-only OpenID provider whose token endpoint answers an ID token the test forges: the way
//! a forged, misaddressed or expired ID token reaches Gatehouse's callback through a provider it
//! trusts, including forgeries `oidc-provider` cannot be made to produce (a key it does not
//! hold, an unknown key id, several audiences without `azp`). `sso_tokens.rs` shows the refusals
//! it can produce with `oidc-provider` itself.
//!
//! It is a faithful provider in everything else: discovery naming itself as issuer, an
//! authorization endpoint that sends the browser back with a code and the state, a token
//! endpoint that redeems each code once and only with the PKCE verifier of its challenge (so the
//! flow up to the ID token is Gatehouse's real one), and a JWKS with one Ed25519 key. With
//! [`Forgery::None`] the ID token is a correct one: the test that uses it shows the path signs in,
//! so each forgery's refusal is that forgery's doing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_crypto::{JwtSigner, Key32, MacKey, sha256};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "gatehouse-stub";
const KID: &str = "stub-1";

/// What the next ID tokens get wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// A correct ID token.
    None,
    /// `aud` is another client.
    Audience,
    /// `iss` is another issuer.
    Issuer,
    /// `nonce` is not the one of the authorization request.
    Nonce,
    /// Expired an hour ago (and issued before that).
    Expired,
    /// `alg: none`, no signature.
    AlgNone,
    /// `alg: HS256`, the HMAC keyed with the published public key (the classic swap).
    AlgHs256,
    /// Signed by a key the JWKS does not publish, under the published key's `kid`.
    OtherKey,
    /// Two audiences, the client among them, and no `azp`.
    NoAuthorizedParty,
    /// Signed by a key the JWKS does not publish, under a key id it does not name.
    UnknownKid,
}

#[derive(Debug, Clone)]
struct Authorized {
    nonce: String,
    challenge: String,
}

struct Stub {
    issuer: String,
    forgery: Forgery,
    /// The subject and claims of the person who signs in.
    claims: Value,
    codes: HashMap<String, Authorized>,
    signer: JwtSigner,
    intruder: JwtSigner,
    /// The clock the ID tokens' times follow (the app's fake clock).
    now: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Requests to the JWKS endpoint, counted before they are answered.
    jwks_requests: u64,
    /// Token requests, counted on arrival (before the gate).
    token_calls: u64,
    /// Held for writing by a test to keep the token endpoint from answering.
    gate: Arc<tokio::sync::RwLock<()>>,
}

type Shared = Arc<Mutex<Stub>>;

pub struct OidcStub {
    pub issuer: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OidcStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OidcStub {
    /// Starts the stub on a random loopback port; `now` gives the ID tokens' times.
    pub async fn start(now: Arc<dyn Fn() -> i64 + Send + Sync>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(Stub {
            issuer: issuer.clone(),
            forgery: Forgery::None,
            claims: json!({"sub": "stub-person", "email": "dana@acme.test", "email_verified": true}),
            codes: HashMap::new(),
            signer: JwtSigner::from_seed(KID.into(), &Key32::from_bytes([41; 32])).unwrap(),
            intruder: JwtSigner::from_seed(KID.into(), &Key32::from_bytes([42; 32])).unwrap(),
            now,
            jwks_requests: 0,
            token_calls: 0,
            gate: Arc::default(),
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            issuer,
            shared,
            task,
        }
    }

    pub fn forge(&self, forgery: Forgery) {
        self.shared.lock().unwrap().forgery = forgery;
    }

    /// Rotates the signing key: a new key under `kid`, the only one the JWKS publishes.
    pub fn rotate(&self, kid: &str, seed: u8) {
        self.shared.lock().unwrap().signer =
            JwtSigner::from_seed(kid.into(), &Key32::from_bytes([seed; 32])).unwrap();
    }

    /// How many times the JWKS was asked for.
    /// Keeps the token endpoint from answering until the guard is dropped.
    pub async fn hold_tokens(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        let gate = Arc::clone(&self.shared.lock().unwrap().gate);
        gate.write_owned().await
    }

    /// Token requests that have arrived (answered or held).
    pub fn token_calls(&self) -> u64 {
        self.shared.lock().unwrap().token_calls
    }

    pub fn jwks_requests(&self) -> u64 {
        self.shared.lock().unwrap().jwks_requests
    }

    /// The claims of the person who signs in (`sub`, `email`, `email_verified`, ...).
    pub fn person(&self, claims: Value) {
        self.shared.lock().unwrap().claims = claims;
    }

    /// Follows an authorization URL to the redirect back (not fetched).
    pub async fn authorize(&self, url: &str) -> String {
        let res = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{:?}", res.text().await);
        res.headers()["location"].to_str().unwrap().to_owned()
    }
}

async fn discovery(State(s): State<Shared>) -> Json<Value> {
    let issuer = s.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    let mut stub = s.lock().unwrap();
    stub.codes.insert(
        code.clone(),
        Authorized {
            nonce: q["nonce"].clone(),
            challenge: q["code_challenge"].clone(),
        },
    );
    let mut back = reqwest::Url::parse(&q["redirect_uri"]).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q["state"])
        .append_pair("iss", &stub.issuer);
    Redirect::to(back.as_str()).into_response()
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
}

async fn token(State(s): State<Shared>, body: String) -> Response {
    let gate = {
        let mut stub = s.lock().unwrap();
        stub.token_calls += 1;
        Arc::clone(&stub.gate)
    };
    let _pass = gate.read().await;
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let mut stub = s.lock().unwrap();
    let refused = || {
        (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response()
    };
    let Some(auth) = form.get("code").and_then(|c| stub.codes.remove(c)) else {
        return refused();
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(sha256(&[verifier.as_bytes()])) != auth.challenge {
        return refused();
    }
    let now = (stub.now)();
    let mut claims = stub.claims.clone();
    claims["iss"] = json!(stub.issuer);
    claims["aud"] = json!(CLIENT_ID);
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 300);
    claims["nonce"] = json!(auth.nonce);
    let id_token = match stub.forgery {
        Forgery::None => stub.signer.sign(&claims).unwrap(),
        Forgery::Audience => {
            claims["aud"] = json!("another-client");
            stub.signer.sign(&claims).unwrap()
        }
        Forgery::Issuer => {
            claims["iss"] = json!("http://127.0.0.1:1");
            stub.signer.sign(&claims).unwrap()
        }
        Forgery::Nonce => {
            claims["nonce"] = json!("not-the-nonce-that-was-sent");
            stub.signer.sign(&claims).unwrap()
        }
        Forgery::Expired => {
            claims["iat"] = json!(now - 7200);
            claims["exp"] = json!(now - 3600);
            stub.signer.sign(&claims).unwrap()
        }
        Forgery::AlgNone => format!(
            "{}.{}.",
            b64json(&json!({"alg": "none", "kid": KID})),
            b64json(&claims)
        ),
        Forgery::AlgHs256 => {
            let input = format!(
                "{}.{}",
                b64json(&json!({"alg": "HS256", "kid": KID, "typ": "JWT"})),
                b64json(&claims)
            );
            let key = MacKey::from_bytes(stub.signer.public_key());
            format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(key.tag(&[input.as_bytes()]))
            )
        }
        Forgery::OtherKey => stub.intruder.sign(&claims).unwrap(),
        Forgery::NoAuthorizedParty => {
            claims["aud"] = json!([CLIENT_ID, "another-client"]);
            stub.signer.sign(&claims).unwrap()
        }
        Forgery::UnknownKid => {
            JwtSigner::from_seed(format!("made-up-{now}"), &Key32::from_bytes([43; 32]))
                .unwrap()
                .sign(&claims)
                .unwrap()
        }
    };
    Json(json!({
        "access_token": "stub-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}

async fn jwks(State(s): State<Shared>) -> Json<Value> {
    let mut stub = s.lock().unwrap();
    stub.jwks_requests += 1;
    Json(json!({"keys": [{
        "kty": "OKP",
        "crv": "Ed25519",
        "use": "sig",
        "kid": stub.signer.kid(),
        "x": URL_SAFE_NO_PAD.encode(stub.signer.public_key()),
    }]}))
}

/// Acme's owner (with a factor) and its verified domain `acme.test`, its sign-on configured with
/// this stub on Gatehouse's clock. The DNS server is returned so it outlives the test's calls.
pub(crate) async fn acme_on_stub() -> (
    crate::support::TestApp,
    crate::interop::DnsServer,
    crate::support::Signed,
    OidcStub,
) {
    use crate::sso_domains::{app_with_dns, owner_with_factor, verified_domain};
    let (app, dns) = app_with_dns(crate::sso_signin::sso_config).await;
    let clock = app.clock.clone();
    let stub = OidcStub::start(Arc::new(move || {
        gatehouse_core::Clock::now(&clock).unix_timestamp()
    }))
    .await;
    let (ada, _) = owner_with_factor(&app, "ada@acme.test").await;
    let mut zone = json!({});
    verified_domain(&app, &dns, &ada, &mut zone, "acme.test").await;
    crate::sso_signin::configure(
        &app,
        &ada,
        &stub.issuer,
        CLIENT_ID,
        "stub-secret",
        json!({}),
    )
    .await;
    (app, dns, ada, stub)
}
