//! The sender-domain check and DKIM signing (issue 21, F4). A DNS server the test starts (dnslib)
//! serves zones with good, missing and broken SPF, DKIM and DMARC records; the check's verdicts
//! are read over HTTP and from `gatehouse mail check-domain`. Mail sent through a real SMTP sink
//! (aiosmtpd) is verified by dkimpy, an independent DKIM implementation, with its
//! List-Unsubscribe headers covered.

use std::process::Command;

use serde_json::{Value, json};

use crate::interop::{DnsServer, SmtpSink, python};
use crate::recovery::with_smtp;
use crate::support::{TestApp, expect_problem, temp_dir};

const S1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A fresh RSA key: (PKCS#8 PEM file, mode 0600; base64 of its SubjectPublicKeyInfo DER).
fn rsa_key(bits: u32) -> (std::path::PathBuf, String) {
    let dir = temp_dir();
    let pem = dir.join(format!("dkim-{bits}.pem"));
    let ok = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
        .arg(format!("rsa_keygen_bits:{bits}"))
        .arg("-out")
        .arg(&pem)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl genpkey failed");
    std::fs::set_permissions(&pem, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let der = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(der.status.success());
    use base64::Engine as _;
    (
        pem,
        base64::engine::general_purpose::STANDARD.encode(der.stdout),
    )
}

fn txt(records: &[&str]) -> Value {
    json!({ "TXT": records })
}

/// good.test passes everything; missing.test publishes nothing; the others break one thing each.
fn zone(good_key: &str, small_key: &str) -> Value {
    let mut z = json!({
        "good.test.": txt(&["google-site-verification=abc", "v=spf1 ip4:192.0.2.1 include:_spf.mailer.test -all"]),
        "_spf.mailer.test.": txt(&["v=spf1 ip4:198.51.100.0/24 ~all"]),
        "gh1._domainkey.good.test.": txt(&[&format!("v=DKIM1; k=rsa; p={good_key}")]),
        "_dmarc.good.test.": txt(&["v=DMARC1; p=reject; adkim=r; aspf=r; rua=mailto:dmarc@good.test"]),

        // Anyone may send; a 1024-bit key; a policy that only monitors.
        "open.test.": txt(&["v=spf1 include:_spf.mailer.test +all"]),
        "gh1._domainkey.open.test.": txt(&[&format!("v=DKIM1; k=rsa; p={small_key}")]),
        "_dmarc.open.test.": txt(&["v=DMARC1; p=none; rua=mailto:d@open.test"]),

        // Two SPF records; a key that is not a key; no aggregate reports.
        "twice.test.": txt(&["v=spf1 include:_spf.mailer.test -all", "v=spf1 -all"]),
        "gh1._domainkey.twice.test.": txt(&["v=DKIM1; k=rsa; p=AAAAB3NzaC1yc2E="]),
        "_dmarc.twice.test.": txt(&["v=DMARC1; p=quarantine"]),

        // The sending service not included; a revoked key; a record without a policy.
        "elsewhere.test.": txt(&["v=spf1 ip4:203.0.113.9 -all"]),
        "gh1._domainkey.elsewhere.test.": txt(&["v=DKIM1; k=rsa; p="]),
        "_dmarc.elsewhere.test.": txt(&["v=DMARC1; rua=mailto:d@elsewhere.test"]),
    });
    // A redirect to the sending service (written with a trailing dot), a policy that asks for
    // signatures from this very name (Gatehouse signs as its parent), and no key.
    z["sub.good.test."] = txt(&["v=spf1 redirect=_spf.mailer.test."]);
    z["_dmarc.sub.good.test."] = txt(&["v=DMARC1; p=reject; adkim=s; rua=mailto:d@good.test"]);
    // The service included after -all (never evaluated), or with a qualifier that does not
    // authorise; two includes sharing a third (no loop); an include into a private zone.
    z["after.test."] = txt(&["v=spf1 -all include:_spf.mailer.test"]);
    z["soft.test."] = txt(&["v=spf1 ~include:_spf.mailer.test -all"]);
    z["shared.test."] = txt(&["v=spf1 include:a.shared.test include:b.shared.test -all"]);
    z["a.shared.test."] = txt(&["v=spf1 include:_spf.mailer.test -all"]);
    z["b.shared.test."] = txt(&["v=spf1 include:_spf.mailer.test -all"]);
    z["leak.test."] = txt(&["v=spf1 include:secrets.internal -all"]);
    z["secrets.internal."] = txt(&["v=spf1 ip4:10.0.0.1 -all"]);
    // Eleven includes: one past RFC 7208's ten lookups.
    let includes: Vec<String> = (0..11).map(|i| format!("include:n{i}.deep.test")).collect();
    z["deep.test."] = txt(&[&format!("v=spf1 {} -all", includes.join(" "))]);
    for i in 0..11 {
        z[format!("n{i}.deep.test.")] = txt(&["v=spf1 ip4:192.0.2.7 -all"]);
    }
    z
}

fn configure(raw: &mut gatehouse::config::RawConfig, dns: &str, key: &std::path::Path) {
    raw.mail.from = "Acme <no-reply@good.test>".into();
    raw.mail.dkim.private_key_file = Some(key.to_path_buf());
    raw.mail.dkim.selector = "gh1".into();
    raw.mail.domain_check.spf_include = vec!["_spf.mailer.test".into()];
    raw.mail.domain_check.dns_servers = vec![dns.to_owned()];
}

fn by_check(report: &Value) -> std::collections::HashMap<String, (String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                (
                    c["verdict"].as_str().unwrap().to_owned(),
                    c["advice"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

/// Asserts one check's verdict and that its advice says `words`.
fn expect(report: &Value, check: &str, verdict: &str, words: &str) {
    let checks = by_check(report);
    let (v, advice) = checks.get(check).unwrap();
    assert_eq!(v, verdict, "{check} of {}: {advice}", report["domain"]);
    assert!(
        advice.contains(words),
        "{check} of {}: {advice:?} does not say {words:?}",
        report["domain"]
    );
}

#[tokio::test]
async fn each_record_gets_the_right_verdict_and_bad_names_make_no_query() {
    let (good_pem, good_key) = rsa_key(2048);
    let (_, small_key) = rsa_key(1024);
    let dns = DnsServer::start(&zone(&good_key, &small_key));
    let addr = dns.address();
    let app = TestApp::spawn_with(|raw| configure(raw, &addr, &good_pem)).await;
    let owner = app.signup_login("owner@acme.test", "laptop").await;
    let check = |domain: String| {
        let app = &app;
        let owner = &owner;
        async move {
            let path = format!("/v1/mail/domains/{domain}/check");
            app.org_call(reqwest::Method::GET, &path, owner, None).await
        }
    };
    let report = |domain: &'static str| {
        let check = &check;
        async move {
            let res = check(domain.to_owned()).await;
            assert_eq!(res.status(), 200, "{domain}");
            res.json::<Value>().await.unwrap()
        }
    };

    let good = report("Good.Test").await;
    assert_eq!(good["domain"], "good.test");
    assert_eq!(good["verdict"], "pass", "{good:#}");
    expect(&good, "spf", "pass", "1 of 10 DNS lookups");
    expect(&good, "dkim", "pass", "2048-bit RSA key");
    expect(&good, "dmarc", "pass", "p=reject");

    let missing = report("missing.test").await;
    assert_eq!(missing["verdict"], "fail");
    expect(&missing, "spf", "fail", "No SPF record");
    expect(
        &missing,
        "dkim",
        "fail",
        "No DKIM key at gh1._domainkey.missing.test",
    );
    expect(&missing, "dmarc", "fail", "No DMARC record");

    let open = report("open.test").await;
    expect(&open, "spf", "fail", "+all");
    expect(&open, "dkim", "fail", "smaller than 2048 bits");
    expect(&open, "dmarc", "warn", "p=none only monitors");

    let twice = report("twice.test").await;
    expect(&twice, "spf", "fail", "2 records are published");
    expect(&twice, "dkim", "fail", "not an RSA public key");
    expect(&twice, "dmarc", "warn", "no rua=");

    let elsewhere = report("elsewhere.test").await;
    expect(&elsewhere, "spf", "fail", "add include:_spf.mailer.test");
    expect(&elsewhere, "dkim", "fail", "revoked");
    expect(&elsewhere, "dmarc", "fail", "p= tag is missing");

    let sub = report("sub.good.test").await;
    expect(&sub, "spf", "pass", "~all");
    // Gatehouse signs as good.test: the key is looked for there, and is the right one.
    expect(&sub, "dkim", "pass", "2048-bit RSA key");
    assert_eq!(sub["checks"][1]["name"], "gh1._domainkey.good.test");
    expect(&sub, "dmarc", "fail", "adkim=s");
    let order: Vec<&str> = sub["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["spf", "dkim", "dmarc"]);
    assert_eq!(sub["checks"][2]["name"], "_dmarc.sub.good.test");
    assert_eq!(
        sub["checks"][2]["record"],
        "v=DMARC1; p=reject; adkim=s; rua=mailto:d@good.test"
    );

    for terms_ignored in ["after.test", "soft.test"] {
        let r = report(terms_ignored).await;
        expect(&r, "spf", "fail", "add include:_spf.mailer.test");
    }
    let shared = report("shared.test").await;
    expect(&shared, "spf", "pass", "4 of 10 DNS lookups");
    let leak = report("leak.test").await;
    expect(&leak, "spf", "fail", "special-use or private name");
    assert!(
        !dns.queries().iter().any(|q| q.contains("internal")),
        "a private name was asked about: {:?}",
        dns.queries()
    );

    let deep = report("deep.test").await;
    expect(&deep, "spf", "fail", "It needs at least 11 DNS lookups");

    // The key published for the signing domain must be the one Gatehouse signs with.
    let (_, other_key) = rsa_key(2048);
    let mut z = zone(&good_key, &small_key);
    z["gh1._domainkey.good.test."] = txt(&[&format!("v=DKIM1; k=rsa; p={other_key}")]);
    dns.set_zone(&z);
    let swapped = report("good.test").await;
    expect(&swapped, "dkim", "fail", "not the one Gatehouse signs with");
    dns.set_zone(&zone(&good_key, &small_key));

    // Names that are not domains are refused before any query.
    let before = dns.queries().len();
    let long = format!("{}.test", vec!["a".repeat(63); 4].join("."));
    for bad in [
        long.as_str(),
        "localhost",
        "bad_name.test",
        "-x.test",
        "a..test",
        "printer.local",
        "vault.internal",
        "1.0.0.10.in-addr.arpa",
    ] {
        let res = check(bad.to_owned()).await;
        expect_problem(res, 422, "validation_failed").await;
    }
    assert_eq!(dns.queries().len(), before, "a refused name made a query");

    // A member without mail.check_domain is refused, and makes no query either.
    let member = app.add_member(&owner, "m@acme.test", "member").await;
    let res = app
        .org_call(
            reqwest::Method::GET,
            "/v1/mail/domains/good.test/check",
            &member,
            None,
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    assert_eq!(dns.queries().len(), before);
    app.stop().await;
}

#[tokio::test]
async fn the_cli_prints_the_verdicts_and_exits_non_zero_on_a_failing_domain() {
    let (pem, key) = rsa_key(2048);
    let (_, small) = rsa_key(1024);
    let dns = DnsServer::start(&zone(&key, &small));
    let dir = temp_dir();
    let config = dir.join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[mail]\nfrom = \"Acme <no-reply@good.test>\"\n\
             [mail.dkim]\nprivate_key_file = {pem:?}\nselector = \"gh1\"\n\
             [mail.domain_check]\nspf_include = [\"_spf.mailer.test\"]\ndns_servers = [{dns:?}]\n",
            data = dir.join("data"),
            dns = dns.address()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(args)
            .current_dir(&dir)
            .env_clear()
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["mail", "check-domain", "good.test"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("good.test: pass"), "{out}");
    let (code, out, _) = run(&["mail", "check-domain", "--json", "open.test"]);
    assert_eq!(code, Some(1), "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    expect(&report, "spf", "fail", "+all");
    let (code, out, _) = run(&["mail", "dkim-record"]);
    assert_eq!(code, Some(0));
    let record = format!("v=DKIM1; k=rsa; p={key}");
    let strings: Vec<String> = record
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", std::str::from_utf8(c).unwrap()))
        .collect();
    assert_eq!(
        out.trim(),
        format!("gh1._domainkey.good.test. IN TXT ( {} )", strings.join(" "))
    );
}

#[tokio::test]
async fn mail_sent_over_smtp_verifies_with_dkimpy_and_covers_the_unsubscribe_headers() {
    let (pem, key) = rsa_key(2048);
    let record = format!("v=DKIM1; k=rsa; p={key}");
    let sink = SmtpSink::started();
    let secret = temp_dir().join("svc.key");
    std::fs::write(&secret, S1).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let app = with_smtp(&sink, |raw| {
        configure(raw, "127.0.0.1:9", &pem);
        raw.service_auth.secret_files = vec![secret];
        raw.mail.public_url = "https://gatehouse.good.test".into();
    })
    .await;
    let owner = app.signup_login("owner@acme.test", "laptop").await;
    let res = app
        .client
        .post(app.url("/internal/v1/messages"))
        .header("x-service-auth", S1)
        .json(&json!({"organization_id": owner.org, "to": "reader@example.test", "list": "news",
                      "subject": "March  news   (spaced)", "text": "Line one.  \n\nLine two.\n\n\n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{:?}", res.text().await);
    // The product message, and the sign-up's own mail before it: each must verify.
    let mut messages = Vec::new();
    for _ in 0..200 {
        messages = sink.raw_messages();
        if messages
            .iter()
            .any(|m| m.contains("List-Unsubscribe-Post:"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        messages
            .iter()
            .any(|m| m.contains("List-Unsubscribe-Post:")),
        "the product message carries RFC 8058's headers"
    );
    assert!(
        messages.len() >= 2
            && messages
                .iter()
                .any(|m| !m.contains("List-Unsubscribe-Post:")),
        "the sign-up's own mail is among them"
    );
    let dir = temp_dir();
    for (i, message) in messages.iter().enumerate() {
        let file = dir.join(format!("{i}.eml"));
        std::fs::write(&file, message).unwrap();
        let out = Command::new(python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/interop/dkim_verify.py"
            ))
            .arg(&file)
            .arg(&record)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "dkimpy refused message {i}: {text}");
        assert!(
            text.contains("\nd good.test\n") && text.contains("\ns gh1\n"),
            "{text}"
        );
        assert!(text.contains("asked gh1._domainkey.good.test."), "{text}");
        if message.contains("List-Unsubscribe-Post:") {
            let h = text.lines().find_map(|l| l.strip_prefix("h ")).unwrap();
            let h: Vec<&str> = h.split(':').collect();
            for needed in [
                "list-unsubscribe",
                "list-unsubscribe-post",
                "from",
                "subject",
            ] {
                assert!(h.contains(&needed), "{needed} is not signed: {h:?}");
            }
        }
        // One changed byte in the subject and the signature no longer verifies.
        let tampered = message.replacen("Subject: ", "Subject: X", 1);
        std::fs::write(&file, tampered).unwrap();
        let out = Command::new(python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/interop/dkim_verify.py"
            ))
            .arg(&file)
            .arg(&record)
            .output()
            .unwrap();
        assert!(!out.status.success(), "a tampered message verified");
    }
    app.stop().await;
}

#[tokio::test]
async fn unsafe_dkim_and_check_settings_are_refused_at_load() {
    let (pem, _) = rsa_key(2048);
    let (small, _) = rsa_key(1024);
    let refused = |edit: &dyn Fn(&mut gatehouse::config::RawConfig), says: &str| {
        let dir = temp_dir();
        let mut raw = crate::support::raw_config(&dir);
        raw.mail.from = "Acme <no-reply@mail.good.test>".into();
        raw.mail.dkim.selector = "gh1".into();
        raw.mail.dkim.private_key_file = Some(pem.clone());
        edit(&mut raw);
        let err = gatehouse::Config::from_raw(raw, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{err:?} does not say {says:?}");
    };
    refused(
        &|r| r.mail.dkim.private_key_file = Some(small.clone()),
        "smaller than 2048 bits",
    );
    refused(
        &|r| r.mail.dkim.domain = "other.test".into(),
        "nor a parent",
    );
    refused(
        &|r| r.mail.dkim.selector = "bad selector".into(),
        "mail.dkim.selector",
    );
    refused(
        &|r| r.mail.dkim.private_key_file = None,
        "set mail.dkim.private_key_file too",
    );
    refused(
        &|r| r.mail.domain_check.dns_servers = vec!["dns.example".into()],
        "mail.domain_check.dns_servers",
    );
    let readable = temp_dir().join("open.pem");
    std::fs::copy(&pem, &readable).unwrap();
    std::fs::set_permissions(
        &readable,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    refused(
        &|r| r.mail.dkim.private_key_file = Some(readable.clone()),
        "readable by group or others",
    );
    // A parent of the From domain is accepted (relaxed alignment).
    let dir = temp_dir();
    let mut raw = crate::support::raw_config(&dir);
    raw.mail.from = "Acme <no-reply@mail.good.test>".into();
    raw.mail.dkim.selector = "gh1".into();
    raw.mail.dkim.domain = "good.test".into();
    raw.mail.dkim.private_key_file = Some(pem.clone());
    assert!(gatehouse::Config::from_raw(raw, None).is_ok());
}
