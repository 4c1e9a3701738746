use super::*;
use std::collections::HashMap;

#[derive(Debug, Default)]
struct Zone(HashMap<String, Result<Vec<String>, TxtError>>);

#[async_trait]
impl TxtResolver for Zone {
    async fn txt(&self, name: &str) -> Result<Vec<String>, TxtError> {
        self.0.get(name).cloned().unwrap_or(Err(TxtError::NotFound))
    }
}

fn zone(entries: &[(&str, &str)]) -> Zone {
    let mut z = Zone::default();
    for (name, txt) in entries {
        z.0.entry((*name).to_owned())
            .or_insert_with(|| Ok(Vec::new()))
            .as_mut()
            .map(|v| v.push((*txt).to_owned()))
            .ok();
    }
    z
}

async fn run(z: &Zone, selector: Option<&str>) -> DomainReport {
    let s = DomainCheckSettings {
        spf_include: vec!["_spf.mailer.test".into()],
        dkim_selector: selector.map(str::to_owned),
        dkim_signer: None,
    };
    check_domain(z, &s, "d.test").await.unwrap()
}

fn verdicts(r: &DomainReport) -> Vec<(&'static str, Verdict)> {
    r.checks.iter().map(|c| (c.check, c.verdict)).collect()
}

#[tokio::test]
async fn warnings_passes_and_failures_follow_the_rules() {
    let z = zone(&[
        ("d.test", "v=spf1 redirect=_spf.mailer.test."),
        ("_spf.mailer.test", "v=spf1 ip4:192.0.2.0/24 ~all"),
        (
            "s1._domainkey.d.test",
            "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        ),
        (
            "_dmarc.d.test",
            "v=DMARC1; p=reject; pct=50; rua=mailto:r@d.test",
        ),
    ]);
    let r = run(&z, Some("s1")).await;
    assert_eq!(
        verdicts(&r),
        vec![
            ("spf", Verdict::Pass),
            ("dkim", Verdict::Warn),
            ("dmarc", Verdict::Warn)
        ]
    );
    assert_eq!(r.verdict, Verdict::Warn);
    // No selector configured: DKIM is not checked, and says so.
    let r = run(&z, None).await;
    assert_eq!(r.checks[1].verdict, Verdict::Warn);
    assert!(r.checks[1].advice.starts_with("Not checked"));
}

#[tokio::test]
async fn past_the_deadline_or_the_budget_nothing_is_asked() {
    #[derive(Debug)]
    struct Refuses;
    #[async_trait]
    impl TxtResolver for Refuses {
        async fn txt(&self, name: &str) -> Result<Vec<String>, TxtError> {
            panic!("{name} was asked after the check's limit");
        }
    }
    let mut late = Budget {
        resolver: &Refuses,
        left: MAX_QUERIES,
        deadline: tokio::time::Instant::now(),
    };
    let e = late.txt("d.test").await.unwrap_err();
    assert!(
        matches!(e, TxtError::Failed(ref why) if why.contains("time limit")),
        "{e:?}"
    );
    let mut spent = Budget {
        resolver: &Refuses,
        left: 0,
        deadline: tokio::time::Instant::now() + CHECK_DEADLINE,
    };
    assert!(spent.txt("d.test").await.is_err());
}

#[tokio::test]
async fn loops_neutral_endings_and_failed_lookups_fail() {
    let looped = zone(&[("d.test", "v=spf1 include:d.test -all")]);
    assert!(run(&looped, None).await.checks[0].advice.contains("loop"));
    let neutral = zone(&[
        ("d.test", "v=spf1 include:_spf.mailer.test ?all"),
        ("_spf.mailer.test", "v=spf1 -all"),
    ]);
    assert_eq!(run(&neutral, None).await.checks[0].verdict, Verdict::Fail);
    let void = zone(&[("d.test", "v=spf1 include:_spf.mailer.test -all")]);
    assert!(
        run(&void, None).await.checks[0]
            .advice
            .contains("0 SPF records")
    );
    let mut broken = zone(&[]);
    broken
        .0
        .insert("d.test".into(), Err(TxtError::Failed("SERVFAIL".into())));
    let r = run(&broken, None).await;
    assert_eq!(r.checks[0].verdict, Verdict::Fail);
    assert!(r.checks[0].advice.contains("failed (SERVFAIL)"));
    // An include whose record ends with +all lets anyone send.
    let open = zone(&[
        (
            "d.test",
            "v=spf1 include:_spf.mailer.test include:open.test -all",
        ),
        ("_spf.mailer.test", "v=spf1 -all"),
        ("open.test", "v=spf1 +all"),
    ]);
    let r = run(&open, None).await;
    assert_eq!(r.checks[0].verdict, Verdict::Fail);
    assert!(
        r.checks[0].advice.contains("ends with +all"),
        "{}",
        r.checks[0].advice
    );
    // The service reached only through a ~include is not authorised.
    let wrapped = zone(&[
        ("d.test", "v=spf1 ~include:wrap.test -all"),
        ("wrap.test", "v=spf1 include:_spf.mailer.test -all"),
        ("_spf.mailer.test", "v=spf1 -all"),
    ]);
    let r = run(&wrapped, None).await;
    assert!(
        r.checks[0].advice.contains("does not include"),
        "{}",
        r.checks[0].advice
    );
    // A redirect beside an all is never followed and costs nothing.
    let both = zone(&[
        (
            "d.test",
            "v=spf1 include:_spf.mailer.test redirect=other.test -all",
        ),
        ("_spf.mailer.test", "v=spf1 -all"),
    ]);
    let r = run(&both, None).await;
    assert!(
        r.checks[0].advice.contains("1 of 10"),
        "{}",
        r.checks[0].advice
    );
}
