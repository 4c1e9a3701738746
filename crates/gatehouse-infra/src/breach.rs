//! The breached-password range client (A1; ASVS 5.0 6.2.12): one GET of `{url}/{prefix}` per
//! new password, with the 5-hex-character prefix core computed, under a timeout. Only the
//! prefix leaves the process; core compares the suffixes. No redirects, no proxy from the
//! environment; `Add-Padding: true` asks the service to pad its answer so the response size
//! says little about the prefix.

use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::identity::BreachRange;
use reqwest_webhooks as reqwest;

/// Answers longer than this are refused (a real range answer is a few tens of kilobytes).
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug)]
pub struct HttpBreachRange {
    client: reqwest::Client,
    /// The range endpoint without its trailing `/`.
    base: String,
}

impl HttpBreachRange {
    pub fn new(url: &url::Url, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| format!("passwords.breach_range_url: the HTTP client: {e}"))?;
        Ok(Self {
            client,
            base: url.as_str().trim_end_matches('/').to_owned(),
        })
    }
}

#[async_trait]
impl BreachRange for HttpBreachRange {
    async fn range(&self, prefix: &str) -> Result<String, String> {
        // Errors leave without their URL, which holds the prefix: a log line must not carry it.
        let mut res = self
            .client
            .get(format!("{}/{prefix}", self.base))
            .header("add-padding", "true")
            .send()
            .await
            .map_err(|e| format!("the range service did not answer: {}", e.without_url()))?;
        if !res.status().is_success() {
            return Err(format!("the range service answered {}", res.status()));
        }
        if res.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(TOO_LONG.to_owned());
        }
        // Read piece by piece up to the bound: an answer without a length (or lying about it)
        // is never held past it.
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| {
            format!(
                "the range service's answer was cut off: {}",
                e.without_url()
            )
        })? {
            if body.len().saturating_add(chunk.len()) > MAX_BODY {
                return Err(TOO_LONG.to_owned());
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| "the range service's answer is not text".into())
    }
}

const TOO_LONG: &str = "the range service's answer is too long";

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-connection HTTP server answering `head` then `body_len` bytes of `A`.
    async fn answer(head: String, body_len: usize) -> url::Url {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url =
            url::Url::parse(&format!("http://{}/range", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(head.as_bytes()).await;
            let piece = vec![b'A'; 64 * 1024];
            let mut left = body_len;
            while left > 0 {
                let n = left.min(piece.len());
                if s.write_all(&piece[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        });
        url
    }

    #[tokio::test]
    async fn an_answer_past_the_bound_is_refused_with_or_without_a_length() {
        let big = MAX_BODY + 1;
        let url = answer(
            format!("HTTP/1.1 200 OK\r\ncontent-length: {big}\r\n\r\n"),
            0,
        )
        .await;
        let client = HttpBreachRange::new(&url, Duration::from_secs(5)).unwrap();
        assert_eq!(client.range("ABCDE").await.unwrap_err(), TOO_LONG);
        // No length: read up to the bound, then refused.
        let url = answer(
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_owned(),
            4 * MAX_BODY,
        )
        .await;
        let client = HttpBreachRange::new(&url, Duration::from_secs(5)).unwrap();
        assert_eq!(client.range("ABCDE").await.unwrap_err(), TOO_LONG);
        let url = answer(
            "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n".to_owned(),
            10,
        )
        .await;
        let client = HttpBreachRange::new(&url, Duration::from_secs(5)).unwrap();
        assert_eq!(client.range("ABCDE").await.unwrap(), "AAAAAAAAAA");
    }

    #[tokio::test]
    async fn a_failure_does_not_name_the_url_and_its_prefix() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            url::Url::parse(&format!("http://{}/range", l.local_addr().unwrap())).unwrap()
        };
        let client = HttpBreachRange::new(&closed, Duration::from_secs(2)).unwrap();
        let e = client.range("F00BA").await.unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
        assert!(!e.contains("F00BA") && !e.contains("/range"), "{e}");
    }
}
