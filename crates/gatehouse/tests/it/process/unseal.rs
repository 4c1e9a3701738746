//! D2 through the real binary: `keys split`, a sealed `serve`, `gatehouse unseal` and
//! `POST /admin/v1/unseal`.

use serde_json::{Value, json};

use super::{run_cli, start_with};
use crate::support::temp_dir;

fn write_key(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let key = gatehouse_crypto::random_key().unwrap();
    std::fs::write(path, format!("{}\n", key.to_base64().expose())).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `keys split` with the key in `key_file`: the share lines.
fn split(dir: &std::path::Path, key_file: &std::path::Path) -> Vec<String> {
    let key_env = key_file.to_str().unwrap();
    let (ok, out, err) = run_cli(
        dir,
        &["keys", "split", "--shares", "5", "--threshold", "3"],
        &[("GATEHOUSE_MASTER_KEY_FILE", key_env)],
        "",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("Hand each share to a different operator"),
        "{out}"
    );
    let shares: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("ghs1-"))
        .map(str::to_owned)
        .collect();
    assert_eq!(shares.len(), 5, "{out}");
    shares
}

async fn submit(base: &str, share: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{base}/admin/v1/unseal"))
        .json(&json!({ "share": share }))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn unseal_a_server_started_sealed_serves_503_sealed_until_the_third_share() {
    let dir = temp_dir();
    let key_file = dir.join("master.key");
    write_key(&key_file);
    let original_key = std::fs::read_to_string(&key_file).unwrap();
    let shares = split(&dir, &key_file);
    // A second split of the same key: its shares name the same key but were not dealt with the
    // first ones.
    let other_deal = split(&dir, &key_file);
    // A share of another key altogether.
    let other_dir = temp_dir();
    let other_key = other_dir.join("master.key");
    write_key(&other_key);
    let foreign = split(&other_dir, &other_key);

    // The operator's procedure: delete the key file, name shares as the source.
    std::fs::remove_file(&key_file).unwrap();
    std::fs::write(dir.join("gatehouse.toml"), "master_key = \"shares\"\n").unwrap();
    let server = start_with(&dir, &[]);
    let base = format!("http://{}", server.addr);
    let url = base.as_str();
    let http = reqwest::Client::new();

    let sealed_everywhere = || async {
        let ready = http
            .get(format!("{url}/health/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 503);
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["status"], "sealed");
        for path in ["/v1/me", "/admin/v1/health", "/openapi.json"] {
            let res = http.get(format!("{url}{path}")).send().await.unwrap();
            assert_eq!(res.status(), 503, "{path}");
            assert!(res.headers().contains_key("retry-after"), "{path}");
            let problem: Value = res.json().await.unwrap();
            assert_eq!(problem["code"], "sealed", "{path}");
        }
        let live = http.get(format!("{url}/health/live")).send().await.unwrap();
        assert_eq!(live.status(), 200);
    };
    sealed_everywhere().await;

    // A share with one changed character: refused alone, through the command.
    let mut changed = shares[0].clone().into_bytes();
    changed[20] = if changed[20] == b'a' { b'b' } else { b'a' };
    let changed = String::from_utf8(changed).unwrap();
    let (ok, _, err) = run_cli(
        &dir,
        &["unseal", "--url", url],
        &[],
        &format!("{changed}\n"),
    );
    assert!(!ok && err.contains("share_invalid"), "{err}");

    // The first share, through the command.
    let (ok, out, err) = run_cli(
        &dir,
        &["unseal", "--url", url],
        &[],
        &format!("{}\n", shares[0]),
    );
    assert!(ok, "{err}");
    assert!(out.contains("1 of 3 held; still sealed"), "{out}");
    // Refused, each with nothing changed: a duplicate, a share of another key.
    let (status, problem) = submit(url, &shares[0]).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("share_duplicate"))
    );
    let (status, problem) = submit(url, &foreign[1]).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("share_wrong_key"))
    );
    let progress: Value = http
        .get(format!("{url}/admin/v1/unseal"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        progress,
        json!({"sealed": true, "threshold": 3, "received": 1})
    );

    // Two shares are not enough.
    let (status, progress) = submit(url, &shares[1]).await;
    assert_eq!(status, 200);
    assert_eq!(
        progress,
        json!({"sealed": true, "threshold": 3, "received": 2})
    );
    sealed_everywhere().await;

    // A third share from another deal rebuilds a key nobody has: every pending share goes.
    let (status, problem) = submit(url, &other_deal[2]).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("unseal_key_refused")),
        "{problem}"
    );
    let (_, progress) = submit(url, &shares[0]).await;
    assert_eq!(progress["received"], 1, "the refused round was cleared");
    let (_, progress) = submit(url, &shares[2]).await;
    assert_eq!(progress["received"], 2);
    sealed_everywhere().await;

    // The third share, through the command: unsealed, and everything works.
    let (ok, out, err) = run_cli(
        &dir,
        &["unseal", "--url", url],
        &[],
        &format!("{}\n", shares[4]),
    );
    assert!(ok, "{err}");
    assert!(out.contains("unsealed"), "{out}");
    // Connections kept alive from the sealed phase are closed at the switch (the listener is
    // not): a new client, as a real one would reconnect.
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("{url}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let res = http
        .post(format!("{url}/v1/auth/signup"))
        .json(&crate::support::signup_body("unsealed@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let res = http
        .post(format!("{url}/v1/auth/login"))
        .json(&json!({"email": "unsealed@example.com", "password": crate::support::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A late operator learns it is open.
    let (status, progress) = submit(url, &shares[3]).await;
    assert_eq!((status, progress["sealed"].as_bool()), (200, Some(false)));

    server.signal("TERM");
    let (code, lines) = server.wait();
    assert_eq!(code, Some(0));

    // Offline, any three shares rebuild the key file the split started from; two do not, and a
    // mistyped share is named by its line.
    let rebuilt = dir.join("rebuilt.key");
    let three = format!("{}\n\n{}\n{}\n", shares[4], shares[1], shares[3]);
    let (ok, out, err) = run_cli(
        &dir,
        &["keys", "combine", "--out", rebuilt.to_str().unwrap()],
        &[],
        &three,
    );
    assert!(ok, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(&rebuilt).unwrap().trim(),
        original_key.trim(),
        "keys combine rebuilt another key"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&rebuilt).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let two = format!("{}\n{}\n", shares[0], shares[2]);
    let (ok, _, err) = run_cli(
        &dir,
        &[
            "keys",
            "combine",
            "--out",
            dir.join("two.key").to_str().unwrap(),
        ],
        &[],
        &two,
    );
    assert!(!ok && !dir.join("two.key").exists(), "two shares: {err}");
    let mut typo = shares[2].clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = format!(
        "{}\n{}\n{}\n",
        shares[0],
        String::from_utf8(typo).unwrap(),
        shares[4]
    );
    let (ok, _, err) = run_cli(
        &dir,
        &[
            "keys",
            "combine",
            "--out",
            dir.join("typo.key").to_str().unwrap(),
        ],
        &[],
        &typo,
    );
    assert!(!ok && err.contains("line 2"), "a mistyped share: {err}");
    for share in shares.iter().chain(&other_deal) {
        let payload = share.split('-').nth(4).unwrap();
        assert!(
            lines.iter().all(|l| !l.contains(payload)),
            "a share reached the log"
        );
    }
}
