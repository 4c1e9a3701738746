//! H1, slow clients: connections that never finish their headers, idle keep-alive connections,
//! too many connections from one address, old connections, and HTTP/2 prior knowledge on the
//! plain listener.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::process::start_with;
use crate::support::{TestApp, temp_dir};

/// A TCP connection to `to` from the loopback address `from` (Linux answers on all of 127/8).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// Reads until the server closes the connection (end of stream or reset), at most `limit`;
/// returns how long that took, or `None` if it was still open at `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((start + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Must 2 of issue 18: 1,000 connections that never finish their headers are closed within the
/// header timeout, and the server answers others throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_unfinished_headers_are_closed_within_the_header_timeout_while_others_are_served()
 {
    const SLOW: usize = 1000;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
    let dir = temp_dir();
    let server = start_with(&dir, &[("GATEHOUSE_CONNECTIONS__HEADER_TIMEOUT_SECS", "3")]);
    let addr = server.addr;

    // Others, from 127.0.0.1, every 50 ms on a fresh connection each, until told to stop.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let probe = tokio::spawn(async move {
        let (mut ok, mut failed) = (0u32, Vec::new());
        while !*stop_rx.borrow() {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            match client
                .get(format!("http://{addr}/health/live"))
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => ok += 1,
                Ok(r) => failed.push(r.status().to_string()),
                Err(e) => failed.push(e.to_string()),
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), stop_rx.changed()).await;
        }
        (ok, failed)
    });

    // The slow ones come from eight other loopback addresses, 125 each: within the default
    // per-address cap (128), so every one is held open until its header timeout.
    let mut slow = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        let from = [127, 0, 0, 2 + u8::try_from(i % 8).unwrap()];
        let mut s = connect_from(from, addr).await;
        s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push((Instant::now(), s));
    }
    let mut latest = Duration::ZERO;
    for (opened, mut s) in slow {
        let left = (opened + HEADER_TIMEOUT + Duration::from_secs(2))
            .saturating_duration_since(Instant::now());
        let closed = closed_within(&mut s, left).await;
        assert!(
            closed.is_some(),
            "a connection with unfinished headers outlived the header timeout by 2 s"
        );
        let age = opened.elapsed();
        assert!(
            age >= HEADER_TIMEOUT - Duration::from_millis(500),
            "closed after {age:?}: held until the header timeout, not refused"
        );
        latest = latest.max(age);
    }
    let _ = stop_tx.send(true);
    let (ok, failed) = probe.await.unwrap();
    assert!(
        failed.is_empty(),
        "others were refused while the slow connections were open: {failed:?}"
    );
    assert!(ok >= 20, "the probe ran throughout ({ok} answers)");
    eprintln!(
        "{SLOW} slow connections; the last closed {latest:?} after it opened; {ok} probe answers, all 200"
    );

    server.signal("TERM");
    let (code, _) = server.wait();
    assert_eq!(code, Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_timeout() {
    let app = TestApp::spawn_with(|c| c.connections.header_timeout_secs = 1).await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let closed = closed_within(&mut s, Duration::from_secs(4)).await;
    let closed = closed.expect("an idle connection stayed open");
    assert!(
        closed >= Duration::from_millis(700),
        "closed too soon: {closed:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_closed_at_once_and_others_are_served() {
    let app = TestApp::spawn_with(|c| c.connections.max_per_address = 5).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from([127, 0, 0, 2], app.addr).await);
    }
    // Accepting is asynchronous: give the server a moment to count the five.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sixth = connect_from([127, 0, 0, 2], app.addr).await;
    let closed = closed_within(&mut sixth, Duration::from_secs(2)).await;
    assert!(
        closed.is_some(),
        "a sixth connection from one address was kept"
    );
    // Another address is not affected.
    let mut other = connect_from([127, 0, 0, 3], app.addr).await;
    other
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    other.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // A slot given back is free again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from([127, 0, 0, 2], app.addr).await;
    again
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    again.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let text = app.metrics().await;
    assert!(
        text.lines()
            .any(|l| l.starts_with(r#"gatehouse_connections_refused_total{cap="per_address"}"#)),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_connection_past_its_lifetime_finishes_its_request_and_closes() {
    let app = TestApp::spawn_with(|c| c.connections.max_lifetime_secs = 2).await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let start = Instant::now();
    let mut closed_by_server = false;
    while start.elapsed() < Duration::from_secs(6) {
        if s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .is_err()
        {
            break;
        }
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            closed_by_server = true;
            break;
        }
        let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        if head.contains("connection: close") {
            // The last answer says so, and the stream ends after it.
            closed_by_server = closed_within(&mut s, Duration::from_secs(2))
                .await
                .is_some();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let age = start.elapsed();
    assert!(
        closed_by_server,
        "the connection was still open after {age:?}"
    );
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(5)).contains(&age),
        "closed after {age:?} with a 2 s lifetime"
    );
    app.stop().await;
}

/// The plain listener speaks HTTP/1.1 only: HTTP/2 with prior knowledge gets no HTTP/2 frames.
#[tokio::test]
async fn the_plain_listener_does_not_answer_http2_prior_knowledge() {
    let app = TestApp::spawn().await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    // The connection preface, then an empty SETTINGS frame (RFC 9113 section 3.4).
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut answer)).await;
    // An HTTP/2 server's first frame is its SETTINGS: type 0x4 at byte 3.
    let http2_settings = answer.len() >= 9 && answer[3] == 0x04;
    assert!(!http2_settings, "answered HTTP/2: {answer:?}");
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    app.stop().await;
}

/// A trusted proxy is exempt from the per-address cap: every client arrives from its address.
/// (The IPv4-mapped form a dual-stack listener sees is matched too: `conn.rs`'s unit tests.)
#[tokio::test]
async fn a_trusted_proxy_is_exempt_from_the_per_address_cap() {
    let app = TestApp::spawn_with(|c| {
        c.connections.max_per_address = 2;
        c.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(app.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut more = TcpStream::connect(app.addr).await.unwrap();
    more.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    more.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    app.stop().await;
}
