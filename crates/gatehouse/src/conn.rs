//! Connections (H1): one accept loop for every listener, plain or TLS, that bounds what a
//! client can hold. `axum::serve` gives hyper no timer, so hyper's header-read timeout never
//! fires there, and it has no per-address or total cap; a client that opened a few hundred
//! connections and never finished their headers kept a file descriptor each until the process
//! ran out. Here each connection is driven by hyper's HTTP/1.1 server directly, with:
//! - a header timeout, which also bounds a kept-alive connection's idle wait (hyper starts it
//!   whenever the connection waits for a request head);
//! - a lifetime, after which the connection finishes its request and closes, with a hard stop
//!   one request timeout later for a client that will not read its response;
//! - a cap per address (IPv6: per /64, as the rate limits count) and in all, checked at accept
//!   time, before a TLS handshake is spent; refused connections are closed at once.
//!
//! HTTP/1.1 only, on every listener: the plain listener no longer answers HTTP/2 with prior
//! knowledge (h2c), which axum's auto-detecting server did, and TLS offers only `http/1.1` by
//! ALPN. HTTP/2 would need bounds of its own (streams, pings, header lists) for no gain behind
//! the reverse proxy that usually fronts us; a proxy may still speak HTTP/2 to clients.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::Service as _;

use crate::config::connections::ConnectionSettings;
use crate::tls::TlsReloader;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once, per listener: each costs a key exchange, so a flood of
/// them is bounded below the connection cap; beyond it a new connection is closed.
const MAX_HANDSHAKES: usize = 1024;

/// The bounds one listener applies.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    pub settings: ConnectionSettings,
    /// How long a request may run; the hard stop after a connection's lifetime waits this long.
    pub request_timeout: Duration,
    /// Reverse proxies: every client arrives from their address, so they are not capped per
    /// address (the total cap still holds).
    pub exempt: Vec<IpAddr>,
}

/// Open connections by address subject, and in all.
#[derive(Debug, Default)]
struct Counts {
    by_address: HashMap<String, usize>,
    total: usize,
}

/// A connection's place in [`Counts`], given back on drop.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    subject: Option<String>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(s) = &self.subject
            && let Some(n) = c.by_address.get_mut(s)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_address.remove(s);
            }
        }
        gatehouse_core::telemetry::metrics::connection_closed();
    }
}

/// Takes a slot for a connection from `ip`, or says which cap refused it.
fn claim(counts: &Arc<Mutex<Counts>>, bounds: &Bounds, ip: IpAddr) -> Result<Slot, &'static str> {
    // An IPv4 peer on a dual-stack listener arrives as `::ffff:a.b.c.d`: counted (and matched
    // against the trusted proxies) as the IPv4 address it is.
    let ip = ip.to_canonical();
    let mut c = counts.lock().unwrap_or_else(PoisonError::into_inner);
    if c.total >= bounds.settings.max_total {
        return Err("total");
    }
    let subject = if bounds.exempt.contains(&ip) {
        None
    } else {
        let s = gatehouse_core::limits::address_subject(ip);
        let n = c.by_address.entry(s.clone()).or_insert(0);
        if *n >= bounds.settings.max_per_address {
            return Err("per_address");
        }
        *n += 1;
        Some(s)
    };
    c.total += 1;
    gatehouse_core::telemetry::metrics::connection_opened();
    Ok(Slot {
        counts: Arc::clone(counts),
        subject,
    })
}

/// Serves `router` on `listener` until `signal` resolves, then stops accepting, asks every
/// connection to finish its request and close, and returns when they have.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<Arc<TlsReloader>>,
    router: axum::Router,
    bounds: Bounds,
    signal: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (listener, drained) = accept_until(listener, tls, router, bounds, signal).await;
    drop(listener);
    drained.await;
    Ok(())
}

/// Like [`serve`], but when `signal` resolves the listener is handed back, still bound, and the
/// open connections finish in the background: a sealed server (D2) passes its listeners on to
/// the full application without refusing a connection in between.
pub(crate) async fn serve_then_hand_back(
    listener: TcpListener,
    tls: Option<Arc<TlsReloader>>,
    router: axum::Router,
    bounds: Bounds,
    signal: impl Future<Output = ()> + Send + 'static,
) -> TcpListener {
    let (listener, drained) = accept_until(listener, tls, router, bounds, signal).await;
    tokio::spawn(drained);
    listener
}

/// Accepts until `signal` resolves; then tells every connection to finish and returns the
/// listener and a future that resolves once they have.
async fn accept_until(
    listener: TcpListener,
    tls: Option<Arc<TlsReloader>>,
    router: axum::Router,
    bounds: Bounds,
    signal: impl Future<Output = ()> + Send + 'static,
) -> (TcpListener, impl Future<Output = ()> + Send + 'static) {
    let counts = Arc::new(Mutex::new(Counts::default()));
    warn_if_descriptors_short(bounds.settings.max_total);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    let bounds = Arc::new(bounds);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => match claim(&counts, &bounds, peer.ip()) {
                    Ok(slot) => {
                        let _ = tcp.set_nodelay(true);
                        connections.spawn(connection(
                            tcp,
                            peer,
                            slot,
                            tls.clone().map(|t| (t, Arc::clone(&handshakes))),
                            router.clone(),
                            Arc::clone(&bounds),
                            stop_rx.clone(),
                        ));
                    }
                    Err(cap) => {
                        gatehouse_core::telemetry::metrics::connection_refused(cap);
                        tracing::debug!(peer = %peer, cap, "connection refused: too many open");
                        drop(tcp);
                    }
                },
                Err(e) => accept_error(e).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    let drained = async move { while connections.join_next().await.is_some() {} };
    (listener, drained)
}

/// Warns when the process may open fewer files than `max_total` connections need: the kernel
/// would refuse accepts (EMFILE) before the cap does. Read from `/proc/self/limits`, so nothing
/// is said where that file is absent.
fn warn_if_descriptors_short(max_total: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft
        && soft < max_total.saturating_add(64)
    {
        tracing::warn!(
            open_files = soft,
            max_total,
            "the open-file limit is below connections.max_total: raise it (ulimit -n, systemd \
             LimitNOFILE) or lower connections.max_total, or accepts fail before the cap applies"
        );
    }
}

/// As axum's own loop does: per-connection errors are skipped, others (out of file
/// descriptors) wait a second.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    _slot: Slot,
    tls: Option<(Arc<TlsReloader>, Arc<tokio::sync::Semaphore>)>,
    router: axum::Router,
    bounds: Arc<Bounds>,
    stop: watch::Receiver<bool>,
) {
    match tls {
        None => drive(tcp, peer, router, &bounds, stop).await,
        Some((tls, handshakes)) => {
            let Ok(permit) = handshakes.try_acquire_owned() else {
                tracing::debug!(peer = %peer, "connection refused: too many TLS handshakes");
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
            drop(permit);
            match handshake {
                Ok(Ok(stream)) => drive(stream, peer, router, &bounds, stop).await,
                Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Runs one HTTP/1.1 connection to its end within the bounds.
async fn drive<S>(
    io: S,
    peer: SocketAddr,
    router: axum::Router,
    bounds: &Bounds,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().call(req)
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(bounds.settings.header_timeout)
        .keep_alive(true);
    let conn = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let lifetime = tokio::time::sleep(bounds.settings.max_lifetime);
    tokio::pin!(lifetime);
    let mut closing = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = &mut lifetime => {
                if closing {
                    tracing::debug!(peer = %peer, "connection cut off after its lifetime");
                    return;
                }
                conn.as_mut().graceful_shutdown();
                closing = true;
                lifetime
                    .as_mut()
                    .reset(tokio::time::Instant::now() + bounds.request_timeout);
            }
            changed = stop.wait_for(|s| *s), if !closing => {
                // Shutting down (or the sender is gone, which is the same): finish and close.
                let _ = changed;
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::connections::ConnectionsConfig;

    fn bounds(per_address: usize, exempt: &[&str]) -> Bounds {
        let c = ConnectionsConfig {
            max_per_address: per_address,
            ..ConnectionsConfig::default()
        };
        Bounds {
            settings: crate::config::connections::validate_for_tests(&c),
            request_timeout: Duration::from_secs(30),
            exempt: exempt.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4_and_a_proxy_is_exempt_in_either_form() {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let b = bounds(1, &["192.0.2.1"]);
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        let first = claim(&counts, &b, v4).unwrap();
        assert_eq!(claim(&counts, &b, mapped).err(), Some("per_address"));
        drop(first);
        let again = claim(&counts, &b, mapped).unwrap();
        // The proxy, plain or mapped, is never capped per address.
        let proxy: Vec<_> = ["192.0.2.1", "::ffff:192.0.2.1", "192.0.2.1"]
            .iter()
            .map(|a| claim(&counts, &b, a.parse().unwrap()).unwrap())
            .collect();
        assert_eq!(counts.lock().unwrap().total, 4);
        drop((again, proxy));
        assert_eq!(counts.lock().unwrap().total, 0);
        assert!(counts.lock().unwrap().by_address.is_empty());
    }

    #[test]
    fn the_total_cap_holds_across_addresses() {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let mut b = bounds(10, &[]);
        b.settings.max_total = 3;
        let held: Vec<_> = (1..=3)
            .map(|i| claim(&counts, &b, format!("203.0.113.{i}").parse().unwrap()).unwrap())
            .collect();
        assert_eq!(
            claim(&counts, &b, "203.0.113.9".parse().unwrap()).err(),
            Some("total")
        );
        drop(held);
        assert!(claim(&counts, &b, "203.0.113.9".parse().unwrap()).is_ok());
    }
}
