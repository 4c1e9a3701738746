//! The webhook HTTP client (F3): reqwest with rustls on aws-lc-rs, a resolver that checks every
//! address a name resolves to against core's destination rules before any connection (so a name
//! that rebinds to a private address is refused at delivery, not only at creation), no redirect
//! followed, no proxy (a proxy would resolve the name itself), bounded times.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::webhooks::destination::{self, DestinationPolicy};
use gatehouse_core::webhooks::{Answer, EXCERPT, Failure, Refusal, WebhookTransport};
use hickory_resolver::TokioResolver;
use reqwest_webhooks as reqwest;

/// What the delivery log says of a refused destination: the organisation learns that its
/// endpoint's host is not public, not which internal address it resolved to (that goes to the
/// operator's log).
const REFUSED: &str = "destination refused: the host does not resolve to public addresses only";

/// A refused destination, carried through reqwest's error chain.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Resolves names for reqwest and refuses any whose addresses the destination rules do not all
/// allow (shared with the OAuth client).
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub(crate) resolver: TokioResolver,
    pub(crate) policy: DestinationPolicy,
}

impl Guard {
    pub(crate) async fn addresses(&self, host: &str) -> Result<Vec<std::net::IpAddr>, Refusal> {
        let found = self
            .resolver
            .lookup_ip(host)
            .await
            .map_err(|e| format!("does not resolve ({e})"))?;
        let ips: Vec<std::net::IpAddr> = found.iter().collect();
        if ips.is_empty() {
            return Err("resolves to no address".into());
        }
        // Every address must pass: a client may connect to any of them.
        for ip in &ips {
            destination::check_ip(*ip, self.policy)?;
        }
        Ok(ips)
    }
}

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = guard
                .addresses(&host)
                .await
                .map_err(|r| Box::new(Refused(r)) as Box<dyn std::error::Error + Send + Sync>)?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Where the client resolves names.
#[derive(Debug, Clone, Default)]
pub struct WebhookClientSettings {
    pub policy: DestinationPolicy,
    /// Name servers to ask (UDP); the system's (`/etc/resolv.conf`) when empty.
    pub dns_servers: Vec<SocketAddr>,
    pub timeout: Duration,
}

/// The client, shared by every delivery of this process.
#[derive(Debug)]
pub struct WebhookClient {
    client: reqwest::Client,
    guard: Arc<Guard>,
}

impl WebhookClient {
    pub fn new(s: &WebhookClientSettings) -> Result<Self, String> {
        let resolver = crate::dns::resolver(&s.dns_servers, "webhooks", true)?;
        let guard = Arc::new(Guard {
            resolver,
            policy: s.policy,
        });
        let timeout = if s.timeout.is_zero() {
            Duration::from_secs(15)
        } else {
            s.timeout
        };
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::clone(&guard))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!s.policy.allow_http)
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| format!("webhooks: the HTTP client: {e}"))?;
        Ok(Self { client, guard })
    }
}

/// The destination refusal in `e`'s chain, if the guard refused.
pub(crate) fn refused(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        source = s.source();
    }
    None
}

#[async_trait]
impl WebhookTransport for WebhookClient {
    async fn check_destination(&self, url: &url::Url) -> Result<(), Refusal> {
        match url.host() {
            Some(url::Host::Domain(d)) => self.guard.addresses(d).await.map(|_| ()),
            Some(url::Host::Ipv4(a)) => destination::check_ip(a.into(), self.guard.policy),
            Some(url::Host::Ipv6(a)) => destination::check_ip(a.into(), self.guard.policy),
            None => Err("has no host".into()),
        }
    }

    async fn post(
        &self,
        url: &url::Url,
        headers: &[(&'static str, String)],
        body: &[u8],
    ) -> Result<Answer, Failure> {
        // An address in the URL never reaches the resolver: it is checked here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(a)) => Some(destination::check_ip(a.into(), self.guard.policy)),
            Some(url::Host::Ipv6(a)) => Some(destination::check_ip(a.into(), self.guard.policy)),
            _ => None,
        };
        if let Some(Err(reason)) = literal {
            tracing::info!(detail = %reason, "a webhook attempt was refused before connecting");
            return Err(Failure {
                reason: REFUSED.to_owned(),
                refused: true,
            });
        }
        let mut request = self.client.post(url.as_str()).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let mut response = request.send().await.map_err(|e| match refused(&e) {
            Some(reason) => {
                tracing::info!(detail = %reason, "a webhook attempt was refused before connecting");
                Failure {
                    reason: REFUSED.to_owned(),
                    refused: true,
                }
            }
            None if e.is_timeout() => Failure {
                reason: "timed out".into(),
                refused: false,
            },
            None if e.is_connect() => Failure {
                reason: "could not connect".into(),
                refused: false,
            },
            None => Failure {
                reason: "the request failed".into(),
                refused: false,
            },
        })?;
        let status = response.status().as_u16();
        let mut excerpt = Vec::with_capacity(EXCERPT);
        // Only the start of the answer is read: a receiver cannot make us hold a large body.
        while excerpt.len() < EXCERPT {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = EXCERPT - excerpt.len();
                    excerpt.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or(&[]));
                }
                Ok(None) | Err(_) => break,
            }
        }
        Ok(Answer {
            status,
            excerpt: String::from_utf8_lossy(&excerpt)
                .chars()
                .filter(|c| !c.is_control() || *c == '\n')
                .collect(),
        })
    }
}
