//! The access-token verifier (`gatehouse_crypto::JwtVerifier`, with the server's claims type
//! `AccessClaims`) on arbitrary token text, against one fixed Ed25519 key.
//!
//! Asserts: a token is accepted only if it is, byte for byte, one of the unexpired tokens issued
//! for this issuer and audience by the fixed key, and the claims returned are the ones signed. So
//! no mutation of a real token (header, claims, signature, encoding), no token signed by another
//! key under the same `kid`, no `alg` other than EdDSA and no expired or misaddressed token is
//! ever accepted. A verifier that holds another key under the same `kid` accepts nothing.
//!
//! The same for the verifier the server runs (`JwtVerifier::for_any_audience`, which leaves `aud`
//! to its caller): it accepts exactly the unexpired tokens the fixed key issued for this issuer,
//! whatever their audience, with the claims signed, and its caller sees the signed `aud`.
//!
//! No `#![forbid(unsafe_code)]`: `fuzz_target!` emits a `#[no_mangle]` function (see src/lib.rs).
#![no_main]

use std::sync::LazyLock;

use gatehouse_core::identity::{AccessClaims, Act};
use gatehouse_crypto::{JwtSigner, JwtVerifier, Key32};
use libfuzzer_sys::fuzz_target;

const ISSUER: &str = "https://id.example";
const AUDIENCE: &str = "gatehouse";
const KID: &str = "k1";
/// The verifier's clock.
const NOW: u64 = 1_700_000_000;

struct Fixture {
    verifier: JwtVerifier,
    /// The same key, leaving the audience to its caller.
    any: JwtVerifier,
    /// Tokens for other audiences (the operators', an app's) that only `any` accepts.
    other_audiences: Vec<(String, AccessClaims)>,
    /// The same `kid` bound to a key that signed nothing.
    stranger: JwtVerifier,
    /// Tokens that must verify, with the claims they carry.
    valid: Vec<(String, AccessClaims)>,
    /// Tokens signed by a key, but expired, for another audience or issuer, or by another key.
    refused: Vec<String>,
}

fn claims(i: u64, aud: &str, iss: &str, exp: u64) -> AccessClaims {
    AccessClaims {
        iss: iss.to_owned(),
        aud: aud.to_owned(),
        sub: format!("0190a3c4-5e6f-7a8b-9c0d-{i:012x}"),
        org: (i % 2 == 0).then(|| "0190a3c4-5e6f-7a8b-9c0d-0000000000aa".to_owned()),
        roles: vec!["member".to_owned(); usize::try_from(i % 3).unwrap_or(0)],
        sid: format!("0190a3c4-5e6f-7a8b-9c0d-{:012x}", i + 100),
        tier: "tenant".to_owned(),
        iat: NOW - 60,
        exp,
        jti: format!("jti-{i}"),
        act: (i == 3).then(|| Act {
            sub: "0190a3c4-5e6f-7a8b-9c0d-0000000000ff".to_owned(),
        }),
        csrf: (i == 1).then(|| "q2Z0c3JmLWRpZ2VzdA".to_owned()),
        amr: if i == 2 {
            vec!["pwd".into(), "otp".into()]
        } else {
            Vec::new()
        },
        auth_time: Some(NOW - 60),
        mfa_time: (i == 2).then_some(NOW - 30),
        mfa: i == 2,
        mfa_required: i == 4,
        email_verified: i != 0,
    }
}

fn sign(signer: &JwtSigner, c: &AccessClaims) -> String {
    match signer.sign(c) {
        Ok(t) => t,
        Err(e) => panic!("the fixture could not sign: {e}"),
    }
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let signer = match JwtSigner::from_seed(KID.to_owned(), &Key32::from_bytes([7; 32])) {
        Ok(s) => s,
        Err(e) => panic!("fixture key: {e}"),
    };
    let other = match JwtSigner::from_seed(KID.to_owned(), &Key32::from_bytes([8; 32])) {
        Ok(s) => s,
        Err(e) => panic!("fixture key: {e}"),
    };
    let later = NOW + 900;
    let valid: Vec<(String, AccessClaims)> = (0..4)
        .map(|i| {
            let c = claims(i, AUDIENCE, ISSUER, later);
            (sign(&signer, &c), c)
        })
        .collect();
    let nobody = match JwtSigner::from_seed(KID.to_owned(), &Key32::from_bytes([9; 32])) {
        Ok(s) => s,
        Err(e) => panic!("fixture key: {e}"),
    };
    let refused = vec![
        sign(&signer, &claims(10, AUDIENCE, ISSUER, NOW)),
        sign(&signer, &claims(11, AUDIENCE, ISSUER, NOW - 1)),
        sign(&signer, &claims(12, "gatehouse-operator", ISSUER, later)),
        sign(
            &signer,
            &claims(13, AUDIENCE, "https://other.example", later),
        ),
        sign(&other, &claims(14, AUDIENCE, ISSUER, later)),
    ];
    let other_audiences: Vec<(String, AccessClaims)> =
        ["gatehouse-operators", "https://app.example"]
            .iter()
            .zip(20..)
            .map(|(aud, i)| {
                let c = claims(i, aud, ISSUER, later);
                (sign(&signer, &c), c)
            })
            .collect();
    let verifier = JwtVerifier::new([(KID.to_owned(), signer.public_key())], ISSUER, AUDIENCE, 0);
    let any = JwtVerifier::for_any_audience([(KID.to_owned(), signer.public_key())], ISSUER, 0);
    let stranger = JwtVerifier::new([(KID.to_owned(), nobody.public_key())], ISSUER, AUDIENCE, 0);
    Fixture {
        verifier,
        any,
        other_audiences,
        stranger,
        valid,
        refused,
    }
});

fn self_check(f: &Fixture) {
    for (token, c) in &f.valid {
        assert_eq!(
            f.verifier.verify::<AccessClaims>(token, NOW).ok().as_ref(),
            Some(c),
            "a token the fixture issued does not verify"
        );
    }
    for token in &f.refused {
        assert!(
            f.verifier.verify::<AccessClaims>(token, NOW).is_err(),
            "an expired, misaddressed or foreign token verified: {token}"
        );
    }
    for (token, c) in f.valid.iter().chain(&f.other_audiences) {
        assert_eq!(
            f.any.verify::<AccessClaims>(token, NOW).ok().as_ref(),
            Some(c),
            "a token the fixture issued does not verify for any audience"
        );
    }
    for (token, _) in &f.other_audiences {
        assert!(f.verifier.verify::<AccessClaims>(token, NOW).is_err());
    }
    // Index 2 is the token for another audience: the only refused one `any` accepts.
    for token in f
        .refused
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, t)| t)
    {
        assert!(
            f.any.verify::<AccessClaims>(token, NOW).is_err(),
            "an expired or foreign token verified for any audience: {token}"
        );
    }
}

fuzz_target!(
    init: {
        let f = &*FIXTURE;
        self_check(f);
        let seeds: Vec<Vec<u8>> = f
            .valid
            .iter()
            .map(|(t, _)| t.as_bytes().to_vec())
            .chain(f.refused.iter().map(|t| t.as_bytes().to_vec()))
            .chain(f.other_audiences.iter().map(|(t, _)| t.as_bytes().to_vec()))
            .collect();
        gatehouse_fuzz::write_seeds("jwt_verify", &seeds);
    },
    |data: &[u8]| {
        let Ok(token) = std::str::from_utf8(data) else {
            return;
        };
        let f = &*FIXTURE;
        if let Ok(got) = f.verifier.verify::<AccessClaims>(token, NOW) {
            let issued = f.valid.iter().find(|(t, _)| t == token);
            assert!(issued.is_some(), "accepted a token that was never issued: {token:?}");
            if let Some((_, signed)) = issued {
                assert_eq!(&got, signed, "accepted claims differ from the signed ones");
            }
        }
        if let Ok(got) = f.any.verify::<AccessClaims>(token, NOW) {
            // The refused token for another audience (index 2) is one the key issued, unexpired.
            let misaddressed = f.refused.get(2).filter(|t| *t == token).map(|_| ());
            let issued = f
                .valid
                .iter()
                .chain(&f.other_audiences)
                .find(|(t, _)| t == token);
            assert!(
                issued.is_some() || misaddressed.is_some(),
                "accepted for any audience a token that was never issued: {token:?}"
            );
            if let Some((_, signed)) = issued {
                assert_eq!(&got, signed, "accepted claims differ from the signed ones");
                assert_eq!(got.aud, signed.aud, "the caller would see another audience");
            }
        }
        assert!(
            f.stranger.verify::<AccessClaims>(token, NOW).is_err(),
            "a key that signed nothing accepted {token:?}"
        );
    }
);
