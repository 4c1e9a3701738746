//! The OAuth client's HTTP side (issue 24): core's [`OAuthClient`] over reqwest 0.13 with rustls
//! on aws-lc-rs, behind the webhooks' resolver guard, so every address a provider's name
//! resolves to is checked against core's destination rules before connecting (an address
//! written in the URL is checked here). No redirect is followed, no proxy used; answers are read
//! up to a bound within a bounded time, and core's [`wire`] decides what they mean.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_core::oauth::client::{CodeGrant, OAuthClient, ProviderError, TokenHint, TokenSet};
use gatehouse_core::oauth::provider::{ClientAuth, ClientCredentials, ProviderEndpoints};
use gatehouse_core::oauth::wire;
use gatehouse_core::webhooks::destination::{self, DestinationPolicy};
use gatehouse_crypto::SecretString;
use reqwest_webhooks as reqwest;
use url::Url;
use url::form_urlencoded::Serializer;

use crate::webhooks::{Guard, refused};

/// Where the client may go and how long it waits.
#[derive(Debug, Clone, Default)]
pub struct OAuthClientSettings {
    pub policy: DestinationPolicy,
    /// Name servers to ask (UDP); the system's when empty.
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// One call's time bound, connection included (10 s when zero).
    pub timeout: Duration,
}

/// The client, shared by every provider call of this process.
#[derive(Debug)]
pub struct HttpOAuthClient {
    client: reqwest::Client,
    guard: Arc<Guard>,
}

impl HttpOAuthClient {
    pub fn new(s: &OAuthClientSettings) -> Result<Self, String> {
        let resolver = crate::dns::resolver(&s.dns_servers, "oauth", true)?;
        let guard = Arc::new(Guard {
            resolver,
            policy: s.policy,
        });
        let timeout = if s.timeout.is_zero() {
            Duration::from_secs(10)
        } else {
            s.timeout
        };
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::clone(&guard))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!s.policy.allow_http)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent("gatehouse")
            .build()
            .map_err(|e| format!("oauth: the HTTP client: {e}"))?;
        Ok(Self { client, guard })
    }

    /// Refuses a URL whose literal address the rules refuse (a name is checked at resolution).
    fn check_literal(&self, url: &Url) -> Result<(), ProviderError> {
        let checked = match url.host() {
            Some(url::Host::Ipv4(a)) => destination::check_ip(a.into(), self.guard.policy),
            Some(url::Host::Ipv6(a)) => destination::check_ip(a.into(), self.guard.policy),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err("has no host".into()),
        };
        checked.map_err(ProviderError::Destination)
    }

    /// Sends `request` and reads at most `max` bytes of the answer: its status and body.
    async fn send(
        &self,
        url: &Url,
        request: reqwest::RequestBuilder,
        max: usize,
    ) -> Result<(u16, Vec<u8>), ProviderError> {
        self.check_literal(url)?;
        let mut response = request
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| match refused(&e) {
                Some(reason) => {
                    tracing::info!(detail = %reason, "a provider call was refused before connecting");
                    ProviderError::Destination(
                        "the provider's host does not resolve to allowed addresses only".into(),
                    )
                }
                None if e.is_timeout() => ProviderError::Unavailable("timed out".into()),
                None if e.is_connect() => ProviderError::Unavailable("could not connect".into()),
                None => ProviderError::Unavailable("the request failed".into()),
            })?;
        let status = response.status().as_u16();
        if response.content_length().is_some_and(|n| n > max as u64) {
            return Err(ProviderError::Garbage("the answer is too long".into()));
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len().saturating_add(chunk.len()) > max {
                        return Err(ProviderError::Garbage("the answer is too long".into()));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return Err(ProviderError::Unavailable("timed out".into()));
                }
                Err(_) => return Err(ProviderError::Unavailable("the answer was cut off".into())),
            }
        }
        Ok((status, body))
    }

    /// A form POST authenticated as `client` (RFC 6749 2.3.1): HTTP Basic over the form-encoded
    /// id and secret, or both in the body; a public client sends its id in the body.
    async fn post_form(
        &self,
        url: &Url,
        client: &ClientCredentials,
        fields: &[(&str, &str)],
        max: usize,
    ) -> Result<(u16, Vec<u8>), ProviderError> {
        let request = self.form_request(url, client, fields)?;
        self.send(url, request, max).await
    }

    fn form_request(
        &self,
        url: &Url,
        client: &ClientCredentials,
        fields: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut form = Serializer::new(String::new());
        for (k, v) in fields {
            form.append_pair(k, v);
        }
        let mut request = self
            .client
            .post(url.as_str())
            .header("content-type", "application/x-www-form-urlencoded");
        match (&client.client_secret, client.auth) {
            (Some(secret), ClientAuth::Basic) => {
                let enc = |s: &str| Serializer::new(String::new()).append_key_only(s).finish();
                let pair = SecretString::new(format!(
                    "{}:{}",
                    enc(&client.client_id),
                    enc(secret.expose())
                ));
                let header = SecretString::new(format!("Basic {}", STANDARD.encode(pair.expose())));
                let mut value = reqwest::header::HeaderValue::from_str(header.expose())
                    .map_err(|_| ProviderError::Garbage("the client id cannot be sent".into()))?;
                value.set_sensitive(true);
                request = request.header("authorization", value);
            }
            (Some(secret), ClientAuth::Post) => {
                form.append_pair("client_id", &client.client_id);
                form.append_pair("client_secret", secret.expose());
            }
            (None, _) => {
                form.append_pair("client_id", &client.client_id);
            }
        }
        let body = zeroize::Zeroizing::new(form.finish());
        Ok(request.body(body.as_bytes().to_vec()))
    }

    async fn get(
        &self,
        url: &Url,
        bearer: Option<&SecretString>,
        max: usize,
    ) -> Result<(u16, Vec<u8>), ProviderError> {
        let mut request = self.client.get(url.as_str());
        if let Some(token) = bearer {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| ProviderError::Garbage("the token cannot be sent".into()))?;
            value.set_sensitive(true);
            request = request.header("authorization", value);
        }
        self.send(url, request, max).await
    }
}

#[async_trait]
impl OAuthClient for HttpOAuthClient {
    async fn discover(&self, issuer: &Url) -> Result<ProviderEndpoints, ProviderError> {
        let url = wire::discovery_url(issuer)?;
        let (status, body) = self.get(&url, None, wire::MAX_DOCUMENT).await?;
        wire::discovery_response(issuer, status, &body, self.guard.policy)
    }

    async fn exchange_code(
        &self,
        token_url: &Url,
        client: &ClientCredentials,
        grant: CodeGrant<'_>,
    ) -> Result<TokenSet, ProviderError> {
        let (status, body) = self
            .post_form(
                token_url,
                client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", grant.code),
                    ("redirect_uri", grant.redirect_uri),
                    ("code_verifier", grant.verifier.expose()),
                ],
                wire::MAX_TOKEN_RESPONSE,
            )
            .await?;
        wire::token_response(status, &body)
    }

    async fn refresh(
        &self,
        token_url: &Url,
        client: &ClientCredentials,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, ProviderError> {
        let (status, body) = self
            .post_form(
                token_url,
                client,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose()),
                ],
                wire::MAX_TOKEN_RESPONSE,
            )
            .await?;
        wire::token_response(status, &body)
    }

    async fn revoke(
        &self,
        revocation_url: &Url,
        client: &ClientCredentials,
        token: &SecretString,
        hint: TokenHint,
    ) -> Result<(), ProviderError> {
        let (status, body) = self
            .post_form(
                revocation_url,
                client,
                &[
                    ("token", token.expose()),
                    ("token_type_hint", hint.as_str()),
                ],
                wire::MAX_TOKEN_RESPONSE,
            )
            .await?;
        wire::revocation_response(status, &body)
    }

    async fn userinfo(
        &self,
        userinfo_url: &Url,
        access_token: &SecretString,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ProviderError> {
        let (status, body) = self
            .get(userinfo_url, Some(access_token), wire::MAX_DOCUMENT)
            .await?;
        wire::userinfo_response(status, &body)
    }

    async fn jwks(&self, jwks_url: &Url) -> Result<serde_json::Value, ProviderError> {
        let (status, body) = self.get(jwks_url, None, wire::MAX_DOCUMENT).await?;
        wire::jwks_response(status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-connection HTTP server answering `answer`; returns its URL and the request it saw.
    async fn serve(answer: String) -> (Url, tokio::sync::oneshot::Receiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/token", listener.local_addr().unwrap())).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 16 * 1024];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = s.write_all(answer.as_bytes()).await;
        });
        (url, rx)
    }

    fn dev() -> HttpOAuthClient {
        HttpOAuthClient::new(&OAuthClientSettings {
            policy: DestinationPolicy {
                allow_http: true,
                allow_loopback: true,
            },
            dns_servers: Vec::new(),
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    fn client() -> ClientCredentials {
        ClientCredentials {
            client_id: "app one".into(),
            client_secret: Some(SecretString::new("s3:cret".into())),
            auth: ClientAuth::Basic,
        }
    }

    fn reply(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn a_refresh_sends_basic_credentials_form_encoded_and_reads_the_tokens() {
        let (url, seen) = serve(reply(
            "200 OK",
            r#"{"access_token":"at","token_type":"Bearer","expires_in":60}"#,
        ))
        .await;
        let tokens = dev()
            .refresh(&url, &client(), &SecretString::new("rt/1".into()))
            .await
            .unwrap();
        assert_eq!(tokens.access_token.expose(), "at");
        let request = seen.await.unwrap();
        // base64("app+one:s3%3Acret")
        assert!(
            request.contains(&format!("Basic {}", STANDARD.encode("app+one:s3%3Acret"))),
            "{request}"
        );
        assert!(request.ends_with("grant_type=refresh_token&refresh_token=rt%2F1"));
    }

    #[tokio::test]
    async fn redirects_garbage_and_private_addresses_are_refused() {
        let (url, _) = serve(
            "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n"
                .into(),
        )
        .await;
        let e = dev()
            .refresh(&url, &client(), &SecretString::new("rt".into()))
            .await
            .unwrap_err();
        assert!(matches!(e, ProviderError::Garbage(_)), "{e:?}");
        let (url, _) = serve(reply("200 OK", "<html>")).await;
        let e = dev().jwks(&url).await.unwrap_err();
        assert!(matches!(e, ProviderError::Garbage(_)), "{e:?}");
        let strict = HttpOAuthClient::new(&OAuthClientSettings {
            policy: DestinationPolicy {
                allow_http: true,
                allow_loopback: false,
            },
            ..OAuthClientSettings::default()
        })
        .unwrap();
        let (url, _) = serve(reply("200 OK", "{}")).await;
        let e = strict.jwks(&url).await.unwrap_err();
        assert!(matches!(e, ProviderError::Destination(_)), "{e:?}");
        let (url, _) = serve(format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            wire::MAX_DOCUMENT + 1
        ))
        .await;
        let e = dev().jwks(&url).await.unwrap_err();
        assert_eq!(e, ProviderError::Garbage("the answer is too long".into()));
    }
}
