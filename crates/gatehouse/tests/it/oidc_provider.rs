//! A real OpenID provider for the tests of connectors and sign-in through a provider: the npm
//! package `oidc-provider` (certified by the OpenID Foundation; pinned below), run by
//! `tests/interop/oidc_provider.js` on a random loopback port.
//!
//! API, for any test that needs a provider:
//! - [`OidcProvider::start`] with [`OidcOptions`] (clients, accounts, token lifetimes) starts it
//!   and waits until it listens; dropping it kills it. [`OidcProvider::issuer`] is its issuer
//!   (`http://127.0.0.1:PORT`, no trailing `/`), discovery at
//!   `{issuer}/.well-known/openid-configuration`.
//! - [`OidcProvider::authorize`] drives an authorization request to its end without a browser:
//!   it follows the provider's redirects with the provider's cookies, logs `account` in and
//!   grants what was asked, and returns the URL the provider sends the browser back to (the
//!   client's `redirect_uri` with `code`, `state` and `iss`, or `error`), without calling it.
//! - [`OidcProvider::token_requests`] counts requests to the token endpoint (by grant type,
//!   and `"all"`), counted before they are handled: a test proves a code was never exchanged
//!   by this count not moving.
//! - [`OidcProvider::fail_token_endpoint`] makes the token endpoint answer every request with an
//!   OAuth error, a 500, a body that is not JSON, or a 30 s wait, until [`FailMode::None`].
//! - [`OidcProvider::userinfo_status`] and [`OidcProvider::introspect`] ask the provider itself
//!   whether it still honours a token (after revocation it does not).
//! - [`OidcProvider::redeem`] redeems a code as a client would (to show a code is still unused).
//! - [`OidcProvider::issued_tokens`] lists every access and refresh token it issued, so a test
//!   can look for them in responses, logs and database files.
//! - [`OidcProvider::swap_next_id_token`] makes the token endpoint's next answer carry another ID
//!   token than the one the provider issued ([`IdTokenSwap`]: a token it issued elsewhere, its
//!   own token re-signed by its own key with claims changed, or an `alg` swap minted with `jose`);
//!   [`OidcProvider::id_tokens_swapped`] counts the swaps done, [`OidcProvider::issued_id_tokens`]
//!   lists the genuine ID tokens.
//! - [`OidcProvider::id_token_for`] runs an authorization of its own (its own PKCE and `state`)
//!   from an authorization URL's parameters, for any registered client and nonce, and redeems
//!   the code: a genuine ID token the provider issued to someone else.
//! - [`OidcProvider::set_id_token_ttl`] shortens the lifetime of the ID tokens issued from then
//!   on; [`OidcProvider::signing_key`] is the provider's private key, to start a second provider
//!   (another issuer) signing with the same key ([`OidcOptions::signing_key`]).
//!
//! Offline access (refresh tokens) needs `offline_access` in the scopes and `prompt=consent` in
//! the request (OpenID Connect Core 11), and a client with the `refresh_token` grant.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The pinned package. 9.x prints a warning that it prefers Node 22 and runs on Node 20.
pub const OIDC_PROVIDER: &str = "oidc-provider@9.13.3";

/// One client registered at the provider.
#[derive(Debug, Clone)]
pub struct OidcClient {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    /// `client_secret_basic` (the default here) or `client_secret_post`.
    pub auth_method: String,
}

impl OidcClient {
    pub fn new(client_id: &str, redirect_uri: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret: format!("{client_id}-secret-0123456789"),
            redirect_uris: vec![redirect_uri.to_owned()],
            auth_method: "client_secret_basic".into(),
        }
    }
}

/// One account at the provider, with the claims it releases.
#[derive(Debug, Clone)]
pub struct OidcAccount {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
}

impl OidcAccount {
    pub fn new(sub: &str, email: &str) -> Self {
        Self {
            sub: sub.to_owned(),
            email: email.to_owned(),
            email_verified: true,
            name: sub.to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct OidcOptions {
    pub clients: Vec<OidcClient>,
    pub accounts: Vec<OidcAccount>,
    /// Access tokens' lifetime in seconds.
    pub access_token_ttl: u64,
    pub refresh_token_ttl: u64,
    /// ID tokens' lifetime in seconds (changed later by [`OidcProvider::set_id_token_ttl`]).
    pub id_token_ttl: u64,
    /// The private RSA JWK the provider signs with; `None`: one generated at start.
    pub signing_key: Option<serde_json::Value>,
}

impl Default for OidcOptions {
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            accounts: vec![OidcAccount::new("alice", "alice@example.com")],
            access_token_ttl: 60,
            refresh_token_ttl: 86_400,
            id_token_ttl: 3600,
            signing_key: None,
        }
    }
}

/// What the token endpoint answers while failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    None,
    /// 400 with `{"error":"invalid_grant"}`.
    InvalidGrant,
    /// 500 with an HTML page.
    ServerError,
    /// 200 with a body that is not JSON.
    Garbage,
    /// Waits 30 s, then 504.
    Slow,
}

impl FailMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::InvalidGrant => "invalid_grant",
            Self::ServerError => "server_error",
            Self::Garbage => "garbage",
            Self::Slow => "slow",
        }
    }
}

/// What the token endpoint's next ID token is instead of the one the provider issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdTokenSwap {
    /// This token, verbatim.
    Token(String),
    /// The issued token's claims with these overridden, re-signed by the provider's own key.
    Claims(serde_json::Value),
    /// The issued token's claims, `alg: none` and no signature.
    AlgNone,
    /// The issued token's claims, `alg: HS256`, the HMAC keyed with the provider's public key
    /// as its SPKI PEM.
    Hs256PublicPem,
    /// Likewise, keyed with the JSON of the provider's public JWK.
    Hs256PublicJwk,
}

impl IdTokenSwap {
    fn body(&self) -> serde_json::Value {
        match self {
            Self::Token(t) => serde_json::json!({ "token": t }),
            Self::Claims(c) => serde_json::json!({ "claims": c }),
            Self::AlgNone => serde_json::json!({ "alg": "none" }),
            Self::Hs256PublicPem => serde_json::json!({ "alg": "HS256", "key": "pem" }),
            Self::Hs256PublicJwk => serde_json::json!({ "alg": "HS256", "key": "jwk" }),
        }
    }
}

pub struct OidcProvider {
    pub port: u16,
    child: Child,
    http: reqwest::Client,
    _config: PathBuf,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `name=value` pairs of a response's `Set-Cookie` headers.
fn cookies_of(res: &reqwest::Response) -> Vec<(String, String)> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

impl OidcProvider {
    /// Installs the package on first use, starts the provider and waits for it to listen.
    pub fn start(options: OidcOptions) -> Self {
        let modules =
            crate::interop::npm_package("oidc-provider-node", "oidc-provider", OIDC_PROVIDER);
        let port = crate::interop::free_port();
        let config = std::env::temp_dir().join(format!("gh-oidc-{}.json", uuid::Uuid::new_v4()));
        let clients: Vec<serde_json::Value> = options
            .clients
            .iter()
            .map(|c| {
                serde_json::json!({
                    "client_id": c.client_id,
                    "client_secret": c.client_secret,
                    "redirect_uris": c.redirect_uris,
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": c.auth_method,
                })
            })
            .collect();
        let accounts: serde_json::Map<String, serde_json::Value> = options
            .accounts
            .iter()
            .map(|a| {
                (
                    a.sub.clone(),
                    serde_json::json!({
                        "email": a.email,
                        "email_verified": a.email_verified,
                        "name": a.name,
                    }),
                )
            })
            .collect();
        std::fs::write(
            &config,
            serde_json::json!({
                "port": port,
                "clients": clients,
                "accounts": accounts,
                "access_token_ttl": options.access_token_ttl,
                "refresh_token_ttl": options.refresh_token_ttl,
                "id_token_ttl": options.id_token_ttl,
                "signing_key": options.signing_key,
            })
            .to_string(),
        )
        .unwrap();
        let mut child = Command::new("node")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/interop/oidc_provider.js"
            ))
            .arg(&config)
            .env("NODE_PATH", modules.join("node_modules"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node is needed for the OpenID provider");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the OpenID provider did not start");
        Self {
            port,
            child,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            _config: config,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Follows `authorization_url` through login (as `account`) and consent to the redirect
    /// back to the client; returns that URL (not fetched).
    pub async fn authorize(&self, authorization_url: &str, account: &str) -> String {
        let mut jar: Vec<(String, String)> = Vec::new();
        let mut url = authorization_url.to_owned();
        for _ in 0..12 {
            let mut target = reqwest::Url::parse(&url).unwrap();
            if target.path().starts_with("/interaction/") {
                target.query_pairs_mut().append_pair("account", account);
            }
            let cookie = jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let res = self
                .http
                .get(target)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            for (k, v) in cookies_of(&res) {
                jar.retain(|(name, _)| name != &k);
                jar.push((k, v));
            }
            let status = res.status().as_u16();
            let location = res
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            let Some(location) = location else {
                panic!(
                    "the provider answered {status} without a redirect: {}",
                    res.text().await.unwrap_or_default()
                );
            };
            let next = reqwest::Url::parse(&url).unwrap().join(&location).unwrap();
            if next.port() != Some(self.port) {
                return next.to_string();
            }
            url = next.to_string();
        }
        panic!("the authorization did not come back within 12 redirects");
    }

    /// Requests to the token endpoint so far, by grant type (`authorization_code`,
    /// `refresh_token`) and in all (`"all"`, including those answered by a failure mode).
    pub async fn token_requests(&self, grant: &str) -> u64 {
        let stats: serde_json::Value = self
            .http
            .get(format!("{}/test/stats", self.issuer()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["token"][grant].as_u64().unwrap_or(0)
    }

    /// Every access and refresh token the token endpoint issued so far, in order.
    pub async fn issued_tokens(&self) -> (Vec<String>, Vec<String>) {
        let stats: serde_json::Value = self
            .http
            .get(format!("{}/test/stats", self.issuer()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let list = |kind: &str| -> Vec<String> {
            stats["issued"][kind]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        (list("access"), list("refresh"))
    }

    async fn stats(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/test/stats", self.issuer()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Every ID token the token endpoint issued so far (before any swap), in order.
    pub async fn issued_id_tokens(&self) -> Vec<String> {
        self.stats().await["issued"]["id"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Makes the next answer of the token endpoint that carries an ID token carry `swap`'s
    /// instead (once).
    pub async fn swap_next_id_token(&self, swap: IdTokenSwap) {
        let res = self
            .http
            .post(format!("{}/test/id_token", self.issuer()))
            .body(swap.body().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }

    /// How many answers of the token endpoint had their ID token swapped.
    pub async fn id_tokens_swapped(&self) -> u64 {
        self.stats().await["swapped"].as_u64().unwrap_or(0)
    }

    /// ID tokens issued from now on live `seconds`.
    pub async fn set_id_token_ttl(&self, seconds: u64) {
        let res = self
            .http
            .post(format!(
                "{}/test/id_token_ttl?seconds={seconds}",
                self.issuer()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }

    /// The private JWK the provider signs with.
    pub async fn signing_key(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/test/signing_key", self.issuer()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A genuine ID token from an authorization of the test's own: `template`'s parameters (an
    /// authorization URL, of this provider or another) sent to this provider for `client`, with
    /// `nonce` if given (else the template's), the test's own `state` and PKCE challenge, logged
    /// in as `account`; the code redeemed as `client`.
    pub async fn id_token_for(
        &self,
        template: &str,
        client: &OidcClient,
        nonce: Option<&str>,
        account: &str,
    ) -> String {
        let verifier = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let challenge = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(gatehouse_crypto::sha256(&[verifier.as_bytes()]))
        };
        let mut url = reqwest::Url::parse(template).unwrap();
        url.set_port(Some(self.port)).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = match k.as_ref() {
                    "client_id" => client.client_id.clone(),
                    "code_challenge" => challenge.clone(),
                    "state" => format!("test-{}", uuid::Uuid::new_v4().simple()),
                    "nonce" => nonce.map_or_else(|| v.into_owned(), str::to_owned),
                    _ => v.into_owned(),
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        let back = self.authorize(url.as_str(), account).await;
        let code = query_param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
        let (status, body) = self.redeem(client, &code, &verifier).await;
        assert_eq!(status, 200, "{body}");
        body["id_token"].as_str().unwrap().to_owned()
    }

    /// Requests to the revocation endpoint so far.
    pub async fn revocation_requests(&self) -> u64 {
        let stats: serde_json::Value = self
            .http
            .get(format!("{}/test/stats", self.issuer()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["revocation"].as_u64().unwrap_or(0)
    }

    pub async fn fail_token_endpoint(&self, mode: FailMode) {
        let res = self
            .http
            .post(format!(
                "{}/test/fail?mode={}",
                self.issuer(),
                mode.as_str()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }

    /// The userinfo endpoint's status for `access_token` (200 while the provider honours it).
    pub async fn userinfo_status(&self, access_token: &str) -> u16 {
        self.http
            .get(format!("{}/me", self.issuer()))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Whether the provider's introspection (RFC 7662) says `token` is active, asked as `client`.
    pub async fn introspect(&self, client: &OidcClient, token: &str) -> bool {
        let res: serde_json::Value = self
            .http
            .post(format!("{}/token/introspection", self.issuer()))
            .basic_auth(&client.client_id, Some(&client.client_secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        res["active"].as_bool().unwrap_or(false)
    }

    /// Redeems `code` at the token endpoint as `client`; the status and body.
    pub async fn redeem(
        &self,
        client: &OidcClient,
        code: &str,
        verifier: &str,
    ) -> (u16, serde_json::Value) {
        let res = self
            .http
            .post(format!("{}/token", self.issuer()))
            .basic_auth(&client.client_id, Some(&client.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", client.redirect_uris[0].as_str()),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or_default())
    }
}

/// A query parameter of `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
