//! Issue 23, must 3: PostgreSQL stopped under a light steady load. While it is down every request
//! that needs it is answered 503 `store_unavailable` (with `Retry-After`) within a bound, never
//! left hanging, and readiness says 503; once it is back, requests succeed again within seconds,
//! and the Gatehouse process is the same one throughout (no crash, no restart).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::deployment::{self, Backend};
use crate::fleet::Fleet;
use crate::receiver::Receiver;
use crate::services::{Database, PrivatePostgres};
use crate::workload::{Tenant, client};

/// No request may take longer than this, database down or not.
const REQUEST_BOUND: Duration = Duration::from_secs(10);
/// Readiness with the database down: one pool acquire timeout (5 s) and a margin.
const READY_BOUND: Duration = Duration::from_secs(7);
/// How soon after PostgreSQL accepts connections again requests must succeed.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);
/// How long PostgreSQL stays down: longer than the pool's acquire timeout (5 s), so requests
/// that found no connection are answered while it is still down.
const DOWN_FOR: Duration = Duration::from_secs(8);

/// One request of the load: when it started and ended, its status and problem code.
#[derive(Debug, Clone)]
struct Sample {
    sent: Instant,
    took: Duration,
    status: u16,
    code: String,
    retry_after: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_under_load_answers_503_store_unavailable_then_recovers_in_process() {
    let pg = tokio::task::spawn_blocking(PrivatePostgres::start)
        .await
        .unwrap();
    pg.wait_ready().await;
    let db = Database::create(&pg.admin_url()).await;
    let dir = crate::temp_dir("pg-restart");
    let _remove = crate::RemoveOnDrop(dir.clone());
    deployment::write_config(&dir, &Backend::PostgresOnly { url: &db.app_url });
    let fleet = Arc::new(Fleet::new(&dir, 1));
    let f = Arc::clone(&fleet);
    tokio::task::spawn_blocking(move || f.start(0))
        .await
        .unwrap();
    let pid = fleet.pid(0).unwrap();
    let receiver = Receiver::start().await;
    let tenant = deployment::tenants(&fleet, 1, &receiver.url)
        .await
        .remove(0);

    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..6)
        .map(|_| {
            let (fleet, samples, stop, counter, tenant) = (
                Arc::clone(&fleet),
                Arc::clone(&samples),
                Arc::clone(&stop),
                Arc::clone(&counter),
                tenant.clone(),
            );
            tokio::spawn(async move {
                let client = client();
                while !stop.load(Ordering::SeqCst) {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let s = write_once(&client, &fleet, &tenant, n).await;
                    samples.lock().unwrap().push(s);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopping = Instant::now();
    let pg = Arc::new(pg);
    let p = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || p.stop_fast())
        .await
        .unwrap();
    let stopped = Instant::now();
    // Readiness, asked while the database is down, says so within the bound.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = Instant::now();
    let res = client()
        .get(format!("http://{}/health/ready", fleet.pick().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503, "readiness with the database down");
    let ready_took = asked.elapsed();
    assert!(ready_took < READY_BOUND, "readiness took {ready_took:?}");
    tokio::time::sleep(DOWN_FOR.saturating_sub(stopped.elapsed())).await;
    let restarting = Instant::now();
    let p = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || p.start_again())
        .await
        .unwrap();
    let back = Instant::now();
    // Load until requests have succeeded for a while after the return.
    let until = back + RECOVERY_BOUND + Duration::from_secs(3);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    let samples = samples.lock().unwrap().clone();

    // The timeline, relative to the stop, for a failure's message.
    let timeline: Vec<String> = samples
        .iter()
        .filter(|s| s.sent + s.took > stopping)
        .map(|s| {
            format!(
                "{:+.2}s..{:+.2}s {} {}",
                s.sent.saturating_duration_since(stopping).as_secs_f64(),
                (s.sent + s.took)
                    .saturating_duration_since(stopping)
                    .as_secs_f64(),
                s.status,
                s.code
            )
        })
        .take(40)
        .collect();
    println!(
        "postgres restart: stop took {:?}, down until +{:?}, back at +{:?}",
        stopped - stopping,
        restarting - stopping,
        back - stopping
    );
    // Before the stop: the load succeeded.
    let before: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent + s.took < stopping)
        .collect();
    assert!(
        !before.is_empty() && before.iter().all(|s| s.status == 201),
        "{before:#?}"
    );
    // Every answer given while it was down: 503 store_unavailable with Retry-After. (A request
    // still waiting for a connection when it returns may succeed; the check below bounds it.)
    let down: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent + s.took > stopped && s.sent + s.took < restarting)
        .collect();
    assert!(down.len() >= 3, "too few answers while down: {timeline:#?}");
    for s in &down {
        assert_eq!(
            (s.status, s.code.as_str(), s.retry_after),
            (503, "store_unavailable", true),
            "{timeline:#?}"
        );
    }
    // Whenever it was sent, a request succeeded or was refused as unavailable: a request in
    // flight as the database went away is no internal error either.
    let mut answers: std::collections::BTreeMap<(u16, String), usize> = Default::default();
    for s in &samples {
        *answers.entry((s.status, s.code.clone())).or_default() += 1;
    }
    println!("postgres restart: answers {answers:?}");
    assert!(
        answers
            .keys()
            .all(|(status, code)| *status == 201 || (*status == 503 && code == "store_unavailable")),
        "{answers:?}"
    );
    // No request hung, whenever it was sent.
    let slowest = samples.iter().map(|s| s.took).max().unwrap();
    assert!(slowest < REQUEST_BOUND, "a request took {slowest:?}");
    // Back: the first success within the bound, and every request sent after it succeeded.
    let first_ok = samples
        .iter()
        .filter(|s| s.sent >= back && s.status == 201)
        .map(|s| s.sent + s.took)
        .min()
        .expect("no request succeeded after PostgreSQL came back");
    let recovered = first_ok.saturating_duration_since(back);
    assert!(
        recovered < RECOVERY_BOUND,
        "requests succeeded again only after {recovered:?}: {timeline:#?}"
    );
    let after: Vec<&Sample> = samples.iter().filter(|s| s.sent > first_ok).collect();
    assert!(
        !after.is_empty() && after.iter().all(|s| s.status == 201),
        "{after:#?}"
    );
    // The same process throughout.
    assert!(
        fleet.running(0),
        "Gatehouse exited while PostgreSQL was down"
    );
    assert_eq!(fleet.pid(0), Some(pid));
    let res = client()
        .get(format!("http://{}/health/ready", fleet.pick().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "readiness after the return");
    let panics = fleet
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("panicked"))
        .count();
    assert_eq!(panics, 0);
    println!(
        "postgres restart: {} requests ({} while down, all 503 store_unavailable; slowest \
         {slowest:?}); readiness answered 503 in {ready_took:?}; first success {recovered:?} \
         after PostgreSQL accepted connections again; pid {pid} throughout",
        samples.len(),
        down.len()
    );
    fleet.terminate(0);
    db.drop_now().await;
    drop(pg);
}

async fn write_once(client: &reqwest::Client, fleet: &Fleet, t: &Tenant, n: u64) -> Sample {
    let addr = fleet.pick().unwrap();
    let sent = Instant::now();
    let res = client
        .post(format!("http://{addr}/v1/records"))
        .bearer_auth(&t.access)
        .header("x-organization-id", &t.org)
        .json(&json!({"type": "note", "external_id": format!("load-{n}"),
            "level": "organization", "content": {"n": n}}))
        .send()
        .await;
    let (status, code, retry_after) = match res {
        Ok(r) => {
            let status = r.status().as_u16();
            let retry_after = r.headers().contains_key("retry-after");
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (
                status,
                body["code"].as_str().unwrap_or("").to_owned(),
                retry_after,
            )
        }
        // No answer within the client's bound: recorded as a hang.
        Err(e) => (0, format!("no answer: {e}"), false),
    };
    Sample {
        sent,
        took: sent.elapsed(),
        status,
        code,
        retry_after,
    }
}
