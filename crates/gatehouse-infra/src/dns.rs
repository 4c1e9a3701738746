//! One way to build a DNS resolver (hickory): the system's servers, or the configured ones over
//! UDP; bounded time per query. Used by webhook delivery and by the sender-domain check, whose
//! TXT lookups it answers.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::mail::{TxtError, TxtResolver};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

/// A resolver asking `servers` (UDP), or the system's (`/etc/resolv.conf`) when empty. With
/// `cache` false it keeps no answer, so every lookup reads what is published now.
pub fn resolver(servers: &[SocketAddr], what: &str, cache: bool) -> Result<TokioResolver, String> {
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(3);
    opts.attempts = 2;
    if !cache {
        opts.cache_size = 0;
    }
    if servers.is_empty() {
        return TokioResolver::builder_tokio()
            .map_err(|e| format!("{what}: the system's DNS configuration: {e}"))?
            .with_options(opts)
            .build()
            .map_err(|e| format!("{what}: the DNS resolver: {e}"));
    }
    let servers = servers
        .iter()
        .map(|a| {
            let mut c = ConnectionConfig::udp();
            c.port = a.port();
            NameServerConfig::new(a.ip(), true, vec![c])
        })
        .collect();
    TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(servers),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .map_err(|e| format!("{what}: the DNS resolver: {e}"))
}

/// TXT lookups for the sender-domain check and single sign-on's domain challenges.
#[derive(Debug, Clone)]
pub struct TxtLookups {
    resolver: TokioResolver,
}

impl TxtLookups {
    pub fn new(servers: &[SocketAddr]) -> Result<Self, String> {
        Self::for_setting(servers, "mail.domain_check")
    }

    /// Lookups for the setting `what` names (in its errors).
    pub fn for_setting(servers: &[SocketAddr], what: &str) -> Result<Self, String> {
        // An operator who fixes a record and checks again must see the fix.
        resolver(servers, what, false).map(|resolver| Self { resolver })
    }
}

#[async_trait]
impl TxtResolver for TxtLookups {
    async fn txt(&self, name: &str) -> Result<Vec<String>, TxtError> {
        // Fully qualified: the system's search domains are never appended.
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match self.resolver.txt_lookup(fqdn.as_str()).await {
            Ok(found) => Ok(found
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() => Err(TxtError::NotFound),
            // The resolver's own words (addresses, socket errors) stay in the operator's log.
            Err(e) => {
                tracing::info!(name = %fqdn, error = %e, "a TXT lookup failed");
                Err(TxtError::Failed("no answer from the resolver".to_owned()))
            }
        }
    }
}
