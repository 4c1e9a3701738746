//! Every refusal of `ProviderKeys::verify`, with keys generated here (aws-lc-rs) and tokens
//! assembled and signed by hand, so a header can say anything an attacker would make it say.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair as _, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair,
};
use serde_json::{Value, json};

use super::*;

const ISS: &str = "https://idp.example";
const CLIENT: &str = "gatehouse-client";
const NONCE: &str = "n-0S6_WzA2Mj";
const NOW: u64 = 1_700_000_000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn expected() -> Expected<'static> {
    Expected {
        issuer: ISS,
        client_id: CLIENT,
        nonce: NONCE,
        now_secs: NOW,
        leeway_secs: 30,
        max_age_secs: 600,
    }
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "sub": "248289761001",
        "aud": CLIENT,
        "exp": NOW + 300,
        "iat": NOW - 5,
        "nonce": NONCE,
        "email": "ada@acme.test",
        "email_verified": true,
        "name": "Ada",
    })
}

/// A signing key of one kind and its public JWK.
enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl Signer {
    fn rsa(bits: KeySize) -> Self {
        Self::Rsa(RsaKeyPair::generate(bits).unwrap())
    }

    fn ec() -> Self {
        Self::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }

    fn ed() -> Self {
        Self::Ed(Ed25519KeyPair::generate().unwrap())
    }

    fn jwk(&self, kid: &str) -> Value {
        match self {
            Self::Rsa(k) => {
                let public = k.public_key();
                json!({
                    "kty": "RSA", "kid": kid, "use": "sig",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Self::Ec(k) => {
                let point = k.public_key().as_ref();
                json!({
                    "kty": "EC", "kid": kid, "crv": "P-256",
                    "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                })
            }
            Self::Ed(k) => json!({
                "kty": "OKP", "kid": kid, "crv": "Ed25519",
                "x": b64(k.public_key().as_ref()),
            }),
        }
    }

    /// The compact token for `header` and `claims`, signed as `alg` says.
    fn token(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = match (self, header["alg"].as_str().unwrap()) {
            (Self::Rsa(k), alg) => {
                let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = match alg {
                    "PS256" => &RSA_PSS_SHA256,
                    _ => &RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(padding, &SystemRandom::new(), input.as_bytes(), &mut sig)
                    .unwrap();
                sig
            }
            (Self::Ec(k), _) => k
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            (Self::Ed(k), _) => k.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }

    fn signed(&self, alg: &str, kid: &str, claims: &Value) -> String {
        self.token(&json!({"alg": alg, "kid": kid, "typ": "JWT"}), claims)
    }
}

fn keys(jwks: &[Value]) -> ProviderKeys {
    ProviderKeys::from_jwks(json!({ "keys": jwks }).to_string().as_bytes()).unwrap()
}

fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
        input.as_bytes(),
    );
    format!("{input}.{}", b64(tag.as_ref()))
}

#[test]
fn tokens_signed_with_each_accepted_algorithm_verify_and_say_who() {
    let rsa = Signer::rsa(KeySize::Rsa2048);
    let ec = Signer::ec();
    let ed = Signer::ed();
    let set = keys(&[rsa.jwk("r1"), ec.jwk("e1"), ed.jwk("d1")]);
    assert_eq!(set.len(), 3);
    for (signer, alg, kid) in [
        (&rsa, "RS256", "r1"),
        (&rsa, "PS256", "r1"),
        (&ec, "ES256", "e1"),
        (&ed, "EdDSA", "d1"),
    ] {
        let got = set
            .verify(&signer.signed(alg, kid, &claims()), &expected())
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(got.sub.as_deref(), Some("248289761001"), "{alg}");
        assert_eq!(got.email.as_deref(), Some("ada@acme.test"));
        assert!(got.email_verified);
    }
    // A token without a kid is tried against the keys of its algorithm.
    let no_kid = rsa.token(&json!({"alg": "RS256"}), &claims());
    assert!(set.verify(&no_kid, &expected()).is_ok());
}

#[test]
fn alg_none_is_refused_before_any_key_is_looked_at() {
    let rsa = Signer::rsa(KeySize::Rsa2048);
    let set = keys(&[rsa.jwk("r1")]);
    for alg in ["none", "None", "NONE", ""] {
        let token = format!(
            "{}.{}.",
            b64(json!({"alg": alg, "kid": "r1"}).to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        assert_eq!(
            set.verify(&token, &expected()),
            Err(IdTokenError::Algorithm),
            "{alg:?}"
        );
    }
}

#[test]
fn an_alg_swap_to_hs256_signed_with_the_public_key_is_refused() {
    let rsa = Signer::rsa(KeySize::Rsa2048);
    let jwk = rsa.jwk("r1");
    let set = keys(std::slice::from_ref(&jwk));
    let Signer::Rsa(pair) = &rsa else {
        unreachable!()
    };
    let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
        pair.public_key(),
    )
    .unwrap();
    // Every form of the public key an attacker might guess the verifier uses as an HMAC key.
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    for secret in [
        der.as_ref().to_vec(),
        n,
        jwk.to_string().into_bytes(),
        json!({"keys": [jwk]}).to_string().into_bytes(),
    ] {
        for alg in ["HS256", "HS384", "HS512"] {
            let token = hs256(&secret, &json!({"alg": alg, "kid": "r1"}), &claims());
            assert_eq!(
                set.verify(&token, &expected()),
                Err(IdTokenError::Algorithm),
                "{alg}"
            );
        }
    }
}

#[test]
fn an_algorithm_the_key_type_does_not_allow_is_refused() {
    let rsa = Signer::rsa(KeySize::Rsa2048);
    let ec = Signer::ec();
    // An RSA key named by an ES256 header, and an EC key by an RS256 one.
    let set = keys(&[rsa.jwk("r1"), ec.jwk("e1")]);
    let swapped = ec.token(&json!({"alg": "ES256", "kid": "r1"}), &claims());
    assert_eq!(
        set.verify(&swapped, &expected()),
        Err(IdTokenError::UnknownKey)
    );
    let swapped = rsa.token(&json!({"alg": "RS256", "kid": "e1"}), &claims());
    assert_eq!(
        set.verify(&swapped, &expected()),
        Err(IdTokenError::UnknownKey)
    );
    // Algorithms outside the four, even where the family would have them.
    for alg in ["RS384", "RS512", "PS512", "ES384", "ES512", "EdDSA448"] {
        let token = rsa.token(&json!({"alg": alg, "kid": "r1"}), &claims());
        assert_eq!(
            set.verify(&token, &expected()),
            Err(IdTokenError::Algorithm),
            "{alg}"
        );
    }
    // A key stating its algorithm verifies that one only.
    let mut pinned = rsa.jwk("r2");
    pinned["alg"] = json!("RS256");
    let set = keys(&[pinned]);
    assert!(
        set.verify(&rsa.signed("RS256", "r2", &claims()), &expected())
            .is_ok()
    );
    assert_eq!(
        set.verify(&rsa.signed("PS256", "r2", &claims()), &expected()),
        Err(IdTokenError::UnknownKey)
    );
}

#[test]
fn unknown_kids_and_other_keys_signatures_are_refused() {
    let good = Signer::rsa(KeySize::Rsa2048);
    let evil = Signer::rsa(KeySize::Rsa2048);
    let set = keys(&[good.jwk("r1")]);
    let unknown = good.signed("RS256", "r9", &claims());
    assert_eq!(
        set.verify(&unknown, &expected()),
        Err(IdTokenError::UnknownKey)
    );
    assert!(set.lacks_kid_of(&unknown));
    let forged = evil.signed("RS256", "r1", &claims());
    assert!(!set.lacks_kid_of(&forged));
    assert_eq!(
        set.verify(&forged, &expected()),
        Err(IdTokenError::Signature)
    );
    // A genuine token whose claims were changed after signing.
    let token = good.signed("RS256", "r1", &claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut changed = claims();
    changed["sub"] = json!("someone-else");
    let body = b64(changed.to_string().as_bytes());
    parts[1] = &body;
    assert_eq!(
        set.verify(&parts.join("."), &expected()),
        Err(IdTokenError::Signature)
    );
}

#[test]
fn issuer_audience_and_authorized_party_are_compared_exactly() {
    let ec = Signer::ec();
    let set = keys(&[ec.jwk("e1")]);
    let check = |c: Value| set.verify(&ec.signed("ES256", "e1", &c), &expected());
    for iss in [
        json!("https://idp.example/"),
        json!("https://IDP.example"),
        json!(null),
    ] {
        let mut c = claims();
        c["iss"] = iss;
        assert_eq!(check(c), Err(IdTokenError::Issuer));
    }
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(check(c), Err(IdTokenError::Issuer));
    for aud in [
        json!("another-client"),
        json!(["a", "b"]),
        json!([]),
        json!(null),
    ] {
        let mut c = claims();
        c["aud"] = aud;
        assert_eq!(check(c), Err(IdTokenError::Audience));
    }
    // Several audiences: azp is required and must be the client.
    let mut c = claims();
    c["aud"] = json!([CLIENT, "another-client"]);
    assert_eq!(check(c.clone()), Err(IdTokenError::AuthorizedParty));
    c["azp"] = json!("another-client");
    assert_eq!(check(c.clone()), Err(IdTokenError::AuthorizedParty));
    c["azp"] = json!(CLIENT);
    assert!(check(c).is_ok());
    // One audience with a foreign azp is refused as well.
    let mut c = claims();
    c["azp"] = json!("another-client");
    assert_eq!(check(c), Err(IdTokenError::AuthorizedParty));
}

#[test]
fn expiry_and_issue_time_are_judged_by_the_callers_clock_with_the_leeway() {
    let ed = Signer::ed();
    let set = keys(&[ed.jwk("d1")]);
    let check = |c: Value| set.verify(&ed.signed("EdDSA", "d1", &c), &expected());
    let mut c = claims();
    c["exp"] = json!(NOW - 30);
    assert_eq!(check(c.clone()), Err(IdTokenError::Expired));
    c["exp"] = json!(NOW - 29);
    assert!(check(c).is_ok(), "within the leeway");
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(check(c), Err(IdTokenError::Claims));
    let mut c = claims();
    c["iat"] = json!(NOW + 31);
    assert_eq!(check(c), Err(IdTokenError::IssuedAt));
    let mut c = claims();
    c["iat"] = json!(NOW - 631);
    assert_eq!(
        check(c),
        Err(IdTokenError::IssuedAt),
        "older than the sign-in"
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iat");
    assert_eq!(check(c), Err(IdTokenError::Claims));
    let mut c = claims();
    c["nbf"] = json!(NOW + 60);
    assert_eq!(check(c), Err(IdTokenError::IssuedAt));
    // The same token passes at a time when it is valid: the clock is the caller's.
    let mut c = claims();
    c["exp"] = json!(NOW - 100);
    c["iat"] = json!(NOW - 200);
    let token = ed.signed("EdDSA", "d1", &c);
    let earlier = Expected {
        now_secs: NOW - 150,
        ..expected()
    };
    assert!(set.verify(&token, &earlier).is_ok());
    assert_eq!(set.verify(&token, &expected()), Err(IdTokenError::Expired));
}

#[test]
fn the_nonce_must_be_the_one_stored_with_the_state() {
    let ed = Signer::ed();
    let set = keys(&[ed.jwk("d1")]);
    let check = |c: Value| set.verify(&ed.signed("EdDSA", "d1", &c), &expected());
    for nonce in [json!("n-0S6_WzA2Mk"), json!(""), json!(null), json!(7)] {
        let mut c = claims();
        c["nonce"] = nonce.clone();
        let got = check(c);
        assert!(
            got == Err(IdTokenError::Nonce) || got == Err(IdTokenError::Malformed),
            "{nonce}: {got:?}"
        );
    }
    let mut c = claims();
    c.as_object_mut().unwrap().remove("nonce");
    assert_eq!(check(c), Err(IdTokenError::Nonce));
    // An empty expected nonce matches nothing, not even an empty claim.
    let mut c = claims();
    c["nonce"] = json!("");
    let token = ed.signed("EdDSA", "d1", &c);
    let lax = Expected {
        nonce: "",
        ..expected()
    };
    assert_eq!(set.verify(&token, &lax), Err(IdTokenError::Nonce));
}

#[test]
fn a_subject_is_required_and_email_verified_means_the_json_value_true() {
    let ed = Signer::ed();
    let set = keys(&[ed.jwk("d1")]);
    let check = |c: Value| set.verify(&ed.signed("EdDSA", "d1", &c), &expected());
    for sub in [json!(""), json!(null), json!("x".repeat(256))] {
        let mut c = claims();
        c["sub"] = sub;
        assert_eq!(check(c), Err(IdTokenError::Claims));
    }
    for (value, verified) in [
        (json!(true), true),
        (json!("true"), false),
        (json!(1), false),
        (json!(false), false),
        (json!(null), false),
        (json!({"value": true}), false),
    ] {
        let mut c = claims();
        c["email_verified"] = value.clone();
        assert_eq!(check(c).unwrap().email_verified, verified, "{value}");
    }
    let mut c = claims();
    c.as_object_mut().unwrap().remove("email_verified");
    assert!(!check(c).unwrap().email_verified);
}

#[test]
fn malformed_tokens_are_refused() {
    let ed = Signer::ed();
    let set = keys(&[ed.jwk("d1")]);
    let good = ed.signed("EdDSA", "d1", &claims());
    let mut parts = good.split('.');
    let two = format!("{}.{}", parts.next().unwrap(), parts.next().unwrap());
    for token in [
        String::new(),
        "garbage".to_owned(),
        two,
        format!("{good}.extra"),
        format!("!!.{}", good.split_once('.').unwrap().1),
        format!("{good}{}", "A".repeat(MAX_ID_TOKEN_BYTES)),
    ] {
        assert_eq!(
            set.verify(&token, &expected()),
            Err(IdTokenError::Malformed),
            "{token:.40}"
        );
    }
    // Genuinely signed, but the payload is not a claims object.
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "EdDSA", "kid": "d1"}).to_string().as_bytes()),
        b64(b"[1,2,3]")
    );
    let Signer::Ed(k) = &ed else { unreachable!() };
    let token = format!("{input}.{}", b64(k.sign(input.as_bytes()).as_ref()));
    assert_eq!(
        set.verify(&token, &expected()),
        Err(IdTokenError::Malformed)
    );
}

#[test]
fn a_jwks_keeps_only_signature_keys_it_can_use() {
    let small = Signer::rsa(KeySize::Rsa2048);
    let ec384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
    let point = ec384.public_key().as_ref().to_vec();
    let p384 = json!({"kty": "EC", "kid": "p384", "crv": "P-384",
        "x": b64(&point[1..49]), "y": b64(&point[49..97])});
    let oct = json!({"kty": "oct", "kid": "h1", "k": b64(b"a shared secret")});
    let mut enc = small.jwk("enc");
    enc["use"] = json!("enc");
    let mut wrap = small.jwk("wrap");
    wrap["key_ops"] = json!(["wrapKey"]);
    let mut rs512 = small.jwk("rs512");
    rs512["alg"] = json!("RS512");
    let mut short = small.jwk("short");
    short["n"] = json!(b64(&[0xc5; 128]));
    for jwk in [
        p384,
        oct.clone(),
        enc,
        wrap,
        rs512,
        short,
        json!({"kty": "weird"}),
    ] {
        assert_eq!(
            ProviderKeys::from_jwks(json!({ "keys": [jwk.clone()] }).to_string().as_bytes()).err(),
            Some(IdTokenError::UnknownKey),
            "{jwk}"
        );
    }
    // The symmetric key beside a good one is dropped, so an HS256 token naming it finds nothing.
    let set = keys(&[oct, small.jwk("r1")]);
    assert_eq!(set.len(), 1);
    let token = hs256(
        b"a shared secret",
        &json!({"alg": "HS256", "kid": "h1"}),
        &claims(),
    );
    assert_eq!(
        set.verify(&token, &expected()),
        Err(IdTokenError::Algorithm)
    );
    for doc in [&b"not json"[..], b"{}", b"{\"keys\": 3}", b"[]"] {
        assert_eq!(
            ProviderKeys::from_jwks(doc).err(),
            Some(IdTokenError::Malformed)
        );
    }
}

#[test]
fn a_1024_bit_rsa_key_is_not_used() {
    // aws-lc-rs does not generate keys under 2048 bits; a 1024-bit modulus is written out.
    let jwk = json!({"kty": "RSA", "kid": "r1024", "n": b64(&[0xc5; 128]), "e": "AQAB"});
    assert_eq!(
        ProviderKeys::from_jwks(json!({ "keys": [jwk] }).to_string().as_bytes()).err(),
        Some(IdTokenError::UnknownKey)
    );
    let jwk = json!({"kty": "RSA", "kid": "r2048", "n": b64(&[0xc5; 256]), "e": "AQAB"});
    assert!(ProviderKeys::from_jwks(json!({ "keys": [jwk] }).to_string().as_bytes()).is_ok());
}
