//! Sealing and opening a field, beside the provider's raw AEAD on the same sizes.
//!
//! `raw_*` is aws-lc-rs AES-256-GCM in place on a reused buffer with a counter nonce: the cipher
//! and nothing else. `field_*` is what `Keyring::seal`/`open` do in memory for each value: look the
//! data key up in the cache, build the context, draw a random nonce, write the header, bind header
//! and context as associated data, allocate the envelope. The ratio raw/field is our overhead.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, RwLock};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gatehouse_crypto::{AeadKey, EnvelopeHeader, Key32, context};

const SIZES: [usize; 3] = [16, 1024, 64 * 1024];

/// The shape of the keyring's data-key cache: (organisation, version) -> key.
type KeyCache = RwLock<HashMap<([u8; 16], u32), Arc<AeadKey>>>;

fn cache() -> KeyCache {
    let mut m = HashMap::new();
    for org in 0..1000u32 {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&org.to_be_bytes());
        m.insert(
            (id, 1),
            Arc::new(AeadKey::new(&Key32::from_bytes([7; 32])).unwrap()),
        );
    }
    RwLock::new(m)
}

fn field_context(org: &[u8; 16]) -> Vec<u8> {
    context(
        "gatehouse.field.v1",
        &[org, b"shared_secret", b"0190f1d2-rec", b"value"],
    )
}

fn seal(c: &mut Criterion) {
    let raw_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap());
    let keys = cache();
    let mut org = [0u8; 16];
    org[..4].copy_from_slice(&500u32.to_be_bytes());
    let versions = EnvelopeHeader {
        kek_version: 1,
        dek_version: 1,
    };
    let mut group = c.benchmark_group("seal");
    for size in SIZES {
        let plain = vec![0x42u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        let mut counter = 0u64;
        let mut buf = Vec::with_capacity(size + 16);
        group.bench_with_input(BenchmarkId::new("raw_aead", size), &plain, |b, p| {
            b.iter(|| {
                counter += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&counter.to_be_bytes());
                buf.clear();
                buf.extend_from_slice(p);
                raw_key
                    .seal_in_place_append_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(b"context"),
                        &mut buf,
                    )
                    .unwrap();
                black_box(&buf);
            });
        });
        group.bench_with_input(BenchmarkId::new("field_envelope", size), &plain, |b, p| {
            b.iter(|| {
                let key = keys.read().unwrap().get(&(org, 1)).cloned().unwrap();
                let env = key
                    .seal_envelope(versions, &field_context(&org), p)
                    .unwrap();
                black_box(env);
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("open");
    for size in SIZES {
        let plain = vec![0x42u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        let nonce = [9u8; 12];
        let mut sealed = plain.clone();
        raw_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(b"context"),
                &mut sealed,
            )
            .unwrap();
        let mut buf = Vec::with_capacity(size + 16);
        group.bench_with_input(BenchmarkId::new("raw_aead", size), &sealed, |b, s| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(s);
                let out = raw_key
                    .open_in_place(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(b"context"),
                        &mut buf,
                    )
                    .unwrap();
                black_box(out.len());
            });
        });
        let key = keys.read().unwrap().get(&(org, 1)).cloned().unwrap();
        let env = key
            .seal_envelope(versions, &field_context(&org), &plain)
            .unwrap();
        group.bench_with_input(BenchmarkId::new("field_envelope", size), &env, |b, e| {
            b.iter(|| {
                let key = keys.read().unwrap().get(&(org, 1)).cloned().unwrap();
                black_box(key.open_envelope(e, &field_context(&org)).unwrap());
            });
        });
    }
    group.finish();
}

/// The parts of the overhead, each alone.
fn parts(c: &mut Criterion) {
    let keys = cache();
    let mut org = [0u8; 16];
    org[..4].copy_from_slice(&500u32.to_be_bytes());
    let mut group = c.benchmark_group("parts");
    group.bench_function("random_nonce_96", |b| {
        b.iter(|| {
            let mut n = [0u8; 12];
            gatehouse_crypto::fill_random(&mut n).unwrap();
            black_box(n);
        });
    });
    group.bench_function("key_cache_lookup", |b| {
        b.iter(|| black_box(keys.read().unwrap().get(&(org, 1)).cloned()));
    });
    group.bench_function("field_context", |b| {
        b.iter(|| black_box(field_context(&org)))
    });
    group.finish();
}

criterion_group!(benches, seal, parts);
criterion_main!(benches);
