//! The one way a Redis client is made here, so every user of Redis (limits, revocation fan-out,
//! lockouts) speaks TLS the same way: `rediss://` through rustls on aws-lc-rs, trusting only the
//! configured CA when one is given (else the platform's roots), and `redis://` in the clear.

use gatehouse_core::{Error, StoreError};

/// A Redis client as configured: where the server is and which CA vouches for it. Cheap to
/// clone; connects only when asked. `Debug` shows neither the URL (it may carry a password) nor
/// the CA.
#[derive(Clone)]
pub struct RedisClient {
    inner: redis::Client,
    tls: bool,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl RedisClient {
    /// Whether connections are made over TLS (`rediss://`).
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub(crate) fn inner(&self) -> &redis::Client {
        &self.inner
    }
}

fn unusable(e: &redis::RedisError) -> Error {
    Error::Store(StoreError::Unavailable(format!("redis: {e}")))
}

/// Builds the client for `url`. With `ca_pem` (PEM certificates, for `rediss://` only) the
/// server's certificate must chain to one of them and name the URL's host; without it the
/// platform's roots are used. Fails on a malformed URL, a CA for a plain URL, or a CA that does
/// not parse; never connects.
pub fn redis_client(url: &str, ca_pem: Option<&[u8]>) -> Result<RedisClient, Error> {
    // redis builds its rustls configuration from the process-wide provider; make it aws-lc-rs
    // explicitly rather than rely on it being the only one compiled in. Already installed (by an
    // earlier client) is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tls = matches!(
        url.split_once("://").map(|(scheme, _)| scheme),
        Some("rediss" | "valkeys")
    );
    let inner = match ca_pem {
        None => redis::Client::open(url).map_err(|e| unusable(&e))?,
        Some(_) if !tls => {
            return Err(Error::Store(StoreError::Unavailable(
                "redis: a CA file is only used with a rediss:// URL".to_owned(),
            )));
        }
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        )
        .map_err(|e| unusable(&e))?,
    };
    Ok(RedisClient { inner, tls })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_is_for_tls_urls_only_and_must_parse() {
        let plain = redis_client("redis://127.0.0.1:6379", None).unwrap();
        assert!(!plain.is_tls());
        assert!(
            redis_client("rediss://127.0.0.1:6379", None)
                .unwrap()
                .is_tls()
        );
        let e = redis_client("redis://127.0.0.1:6379", Some(b"x")).unwrap_err();
        assert!(e.to_string().contains("rediss://"), "{e}");
        let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
        assert!(redis_client("rediss://127.0.0.1:6379", Some(garbage)).is_err());
        assert!(redis_client("http://127.0.0.1", None).is_err());
        let debug = format!("{:?}", redis_client("redis://:pw@127.0.0.1", None).unwrap());
        assert!(!debug.contains("pw"), "{debug}");
    }
}
