//! The backup archive's plaintext (`gatehouse_core::backup::ArchiveReader`) on arbitrary bytes:
//! what `backup verify` and `backup restore` read once age has decrypted a file.
//!
//! Asserts:
//! - reading never panics, whatever the bytes;
//! - an archive the reader accepts to the end has a manifest, and writing its tables and rows
//!   again with `ArchiveWriter` gives the same manifest (the digests depend on the values only,
//!   not on how the JSON was spelled), which the reader accepts in turn;
//! - archives from the writer (the seeds) are accepted.
//!
//! No `#![forbid(unsafe_code)]`: `fuzz_target!` emits a `#[no_mangle]` function (see src/lib.rs).
#![no_main]

use gatehouse_core::backup::{
    ArchiveReader, ArchiveWriter, Class, Column, RestoreSource, SnapshotInfo, SnapshotSink,
    Table, Value,
};
use libfuzzer_sys::fuzz_target;

type Read = (SnapshotInfo, String, Vec<(Table, Vec<Vec<Value>>)>);

fn read(bytes: &[u8]) -> Option<(Read, gatehouse_core::backup::Manifest)> {
    let mut r = ArchiveReader::open(bytes).ok()?;
    let mut tables = Vec::new();
    while let Some(t) = r.next_table().ok()? {
        let mut rows = Vec::new();
        loop {
            let batch = r.next_rows(7).ok()?;
            if batch.is_empty() {
                break;
            }
            rows.extend(batch);
        }
        tables.push((t, rows));
    }
    let manifest = r.manifest()?.clone();
    Some(((r.info().clone(), r.created_at().to_owned(), tables), manifest))
}

fn write((info, created_at, tables): &Read) -> (Vec<u8>, gatehouse_core::backup::Manifest) {
    let mut w = ArchiveWriter::new(Vec::new(), created_at.clone());
    w.start(info).unwrap_or_else(|e| panic!("start: {e}"));
    for (t, rows) in tables {
        w.begin_table(t).unwrap_or_else(|e| panic!("table: {e}"));
        for row in rows {
            w.row(row).unwrap_or_else(|e| panic!("row: {e}"));
        }
        w.end_table().unwrap_or_else(|e| panic!("end: {e}"));
    }
    let (m, out) = w.finish().unwrap_or_else(|e| panic!("finish: {e}"));
    (out, m)
}

fn seed() -> Vec<u8> {
    let col = |name: &str, class| Column {
        name: name.into(),
        class,
    };
    let heads = Table {
        name: "audit_heads".into(),
        columns: vec![
            col("hash", Class::Blob),
            col("org_id", Class::Blob),
            col("seq", Class::Integer),
        ],
    };
    let notes = Table {
        name: "notes".into(),
        columns: vec![col("body", Class::Text), col("n", Class::Integer)],
    };
    let read: Read = (
        SnapshotInfo {
            backend: "sqlite".into(),
            schema_version: 16,
        },
        "2026-12-07T00:00:00Z".into(),
        vec![
            (
                heads,
                vec![vec![
                    Value::Blob(vec![9; 32]),
                    Value::Blob(vec![1; 16]),
                    Value::Integer(3),
                ]],
            ),
            (
                notes,
                vec![
                    vec![Value::Text("a \"quoted\"\n line".into()), Value::Integer(-1)],
                    vec![Value::Null, Value::Integer(i64::MAX)],
                ],
            ),
        ],
    );
    write(&read).0
}

fuzz_target!(
    init: {
        let s = seed();
        assert!(read(&s).is_some(), "the writer's archive is refused");
        gatehouse_fuzz::write_seeds("backup_archive", &[s]);
    },
    |data: &[u8]| {
        let Some((parsed, manifest)) = read(data) else {
            return;
        };
        let (again, manifest2) = write(&parsed);
        assert_eq!(manifest, manifest2, "the same values gave another manifest");
        let reread = read(&again).map(|(_, m)| m);
        assert_eq!(reread.as_ref(), Some(&manifest), "the rewritten archive is refused");
    }
);
