//! Open-loop latency probe: sends `GET {url}` with a bearer token at a fixed rate (requests are
//! scheduled on the clock, not sent when the previous one returns, so a slow answer does not
//! slow the probe down) and prints p50, p99 and max in milliseconds as JSON. Latency runs from
//! the moment each request is started (tokio's timer fires up to a millisecond late; counting
//! from the due time would add that to every sample).
//!
//! Usage: verify-probe URL TOKEN [rate per second, default 500] [seconds, default 10]
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).expect("URL").clone();
    let token = args.get(2).expect("TOKEN").clone();
    let rate: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(500);
    let secs: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(10);
    let client = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(0u64));
    let started = Instant::now();
    let every = Duration::from_micros(1_000_000 / rate.max(1));
    let total = rate * secs;
    let mut handles = Vec::with_capacity(usize::try_from(total).unwrap());
    for n in 0..total {
        let due = started + every * u32::try_from(n).unwrap();
        tokio::time::sleep_until(due.into()).await;
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        let (latencies, failures) = (Arc::clone(&latencies), Arc::clone(&failures));
        handles.push(tokio::spawn(async move {
            let sent = Instant::now();
            let res = client.get(&url).bearer_auth(&token).send().await;
            let ok = matches!(&res, Ok(r) if r.status().is_success());
            if let Ok(r) = res {
                let _ = r.bytes().await;
            }
            let elapsed = sent.elapsed().as_secs_f64() * 1e3;
            if ok {
                latencies.lock().unwrap().push(elapsed);
            } else {
                *failures.lock().unwrap() += 1;
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(f64::total_cmp);
    let pct = |p: f64| l[((l.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{{\"requests\":{},\"failures\":{},\"rate\":{rate},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        l.len(),
        failures.lock().unwrap(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}
