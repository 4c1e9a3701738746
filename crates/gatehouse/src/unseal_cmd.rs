//! `gatehouse unseal`: reads one share from standard input and submits it to a sealed server's
//! `POST /admin/v1/unseal`. The share never appears in an argument (process listings, shell
//! history), only on standard input.
//!
//! One HTTP/1.1 request over a plain connection, written here rather than pulling an HTTP client
//! into the binary for it: the server is our own and the exchange is one request with
//! `Connection: close`. A TLS listener is reached through `--url` at a plain-HTTP admin address
//! or a local TLS-terminating tunnel; see docs/design/keyring.md.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::config::Config;

/// A response larger than this is not one of ours.
const MAX_RESPONSE: u64 = 64 * 1024;

pub(crate) async fn run(config: &Config, url: Option<&str>) -> Result<(), String> {
    let address = match url {
        Some(u) => authority(u)?,
        None => {
            if config.tls.is_some() {
                return Err(
                    "unseal: this server serves HTTPS; pass --url http://HOST:PORT of a plain \
                     operator address (or a local TLS tunnel to it)"
                        .into(),
                );
            }
            config
                .server
                .admin_listen
                .unwrap_or(config.server.listen)
                .to_string()
        }
    };
    let share = read_share()?;
    let body = Zeroizing::new(
        serde_json::to_vec(&serde_json::json!({ "share": share.as_str() }))
            .map_err(|e| e.to_string())?,
    );
    drop(share);
    let (status, answer) = post(&address, &body).await?;
    drop(body);
    let out = |line: String| {
        let _ = writeln!(std::io::stdout(), "{line}");
    };
    if status == 200 {
        let sealed = answer
            .get("sealed")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let received = answer.get("received").and_then(Value::as_u64).unwrap_or(0);
        let threshold = answer.get("threshold").and_then(Value::as_u64);
        if sealed {
            out(format!(
                "share accepted: {received} of {} held; still sealed",
                threshold.map_or_else(|| "?".to_owned(), |t| t.to_string())
            ));
        } else {
            out("unsealed: the master key was rebuilt and the server is serving".to_owned());
        }
        return Ok(());
    }
    let code = answer
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or("error");
    let detail = answer
        .get("detail")
        .and_then(Value::as_str)
        .unwrap_or("the server refused the share");
    Err(format!("unseal refused ({status} {code}): {detail}"))
}

fn read_share() -> Result<Zeroizing<String>, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let _ = write!(std::io::stderr(), "Paste your share, then press Enter: ");
        let _ = std::io::stderr().flush();
    }
    let mut line = Zeroizing::new(String::new());
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("unseal: cannot read the share from standard input: {e}"))?;
    if line.trim().is_empty() {
        return Err("unseal: no share on standard input".into());
    }
    Ok(Zeroizing::new(line.trim().to_owned()))
}

/// `http://host:port[/]` to `host:port`.
fn authority(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("--url: {url:?} must be http://HOST:PORT (see `gatehouse unseal --help`)")
    })?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(format!(
            "--url: {url:?} must be http://HOST:PORT with no path"
        ));
    }
    Ok(host.to_owned())
}

async fn post(address: &str, body: &[u8]) -> Result<(u16, Value), String> {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("unseal: cannot connect to {address}: {e}"))?;
    let head = format!(
        "POST /admin/v1/unseal HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .and(stream.write_all(body).await)
        .map_err(|e| format!("unseal: cannot send to {address}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| format!("unseal: no answer from {address}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("unseal: {address} did not answer in HTTP"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("unseal: {address} did not answer in HTTP"))?;
    let value = serde_json::from_str(body).unwrap_or(Value::Null);
    Ok((status, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_plain_authorities() {
        assert_eq!(
            authority("http://127.0.0.1:9090/").unwrap(),
            "127.0.0.1:9090"
        );
        assert!(authority("https://x:1").is_err());
        assert!(authority("http://x:1/admin").is_err());
    }
}
