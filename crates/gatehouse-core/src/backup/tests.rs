use super::*;

fn table(name: &str) -> Table {
    Table {
        name: name.into(),
        columns: vec![
            Column {
                name: "org_id".into(),
                class: Class::Blob,
            },
            Column {
                name: "seq".into(),
                class: Class::Integer,
            },
            Column {
                name: "hash".into(),
                class: Class::Blob,
            },
            Column {
                name: "note".into(),
                class: Class::Text,
            },
        ],
    }
}

fn archive() -> Vec<u8> {
    let mut w = ArchiveWriter::new(Vec::new(), "2026-12-07T00:00:00Z".into());
    w.start(&SnapshotInfo {
        backend: "sqlite".into(),
        schema_version: 16,
    })
    .unwrap();
    w.begin_table(&table("audit_heads")).unwrap();
    for i in 0..3u8 {
        w.row(&[
            Value::Blob(vec![i; 16]),
            Value::Integer(i64::from(i) + 7),
            Value::Blob(vec![0xab; 32]),
            if i == 1 {
                Value::Null
            } else {
                Value::Text(format!("\"quoted\"\n{i} é"))
            },
        ])
        .unwrap();
    }
    w.end_table().unwrap();
    w.begin_table(&table("empty_one")).unwrap();
    w.end_table().unwrap();
    let (m, out) = w.finish().unwrap();
    assert_eq!(m.tables.len(), 2);
    assert_eq!(m.tables[0].rows, 3);
    assert_eq!(m.chain_heads.len(), 3);
    assert_eq!(m.chain_heads[1].seq, 8);
    out
}

fn read_all(bytes: &[u8]) -> Result<(Manifest, Vec<Vec<Value>>), BackupError> {
    let mut r = ArchiveReader::open(bytes)?;
    let mut rows = Vec::new();
    while r.next_table()?.is_some() {
        loop {
            let batch = r.next_rows(2)?;
            if batch.is_empty() {
                break;
            }
            rows.extend(batch);
        }
    }
    Ok((r.manifest().cloned().unwrap(), rows))
}

#[test]
fn what_is_written_reads_back_with_the_same_manifest() {
    let bytes = archive();
    let (m, rows) = read_all(&bytes).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1][3], Value::Null);
    assert_eq!(rows[2][3], Value::Text("\"quoted\"\n2 é".into()));
    assert_eq!(
        m,
        ArchiveReader::open(&bytes[..])
            .unwrap()
            .check_all()
            .unwrap()
    );
}

#[test]
fn a_changed_value_a_cut_and_a_trailer_are_each_refused() {
    let bytes = archive();
    let text = String::from_utf8(bytes.clone()).unwrap();
    // Changing a value keeps the line well-formed but breaks the table's digest.
    let changed = text.replacen(",7,", ",70,", 1);
    assert_ne!(changed, text);
    let err = read_all(changed.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, BackupError::Damaged(m) if m.contains("digest")),
        "{err}"
    );
    // Cut anywhere before the manifest's end.
    for cut in [bytes.len() - 1, bytes.len() / 2, 10] {
        assert!(
            matches!(read_all(&bytes[..cut]), Err(BackupError::Damaged(_))),
            "cut at {cut}"
        );
    }
    let mut trailer = bytes.clone();
    trailer.extend_from_slice(b"[1]\n");
    assert!(matches!(read_all(&trailer), Err(BackupError::Damaged(_))));
    // A whole row removed, with its end line fixed up, still fails the manifest.
    let lines: Vec<&str> = text.lines().collect();
    let mut dropped: Vec<&str> = lines.clone();
    dropped.remove(3);
    let joined = dropped.join("\n") + "\n";
    assert!(matches!(
        read_all(joined.as_bytes()),
        Err(BackupError::Damaged(_))
    ));
}

#[test]
fn another_format_version_is_refused_with_a_sentence() {
    let text = String::from_utf8(archive()).unwrap();
    let other = text.replacen("\"format_version\":1", "\"format_version\":2", 1);
    let err = ArchiveReader::open(other.as_bytes()).err().unwrap();
    assert!(err.to_string().contains("format version is 2"), "{err}");
}

#[test]
fn a_hostile_table_name_never_reaches_sql() {
    let text = String::from_utf8(archive()).unwrap();
    let other = text.replacen("audit_heads", "x\\\"; DROP TABLE users; --", 1);
    let mut r = ArchiveReader::open(other.as_bytes()).unwrap();
    assert!(matches!(r.next_table(), Err(BackupError::Damaged(_))));
}

#[test]
fn parents_come_before_children_and_ties_go_by_name() {
    let tables: Vec<String> = [
        "webhook_deliveries",
        "organizations",
        "webhook_endpoints",
        "users",
        "memberships",
        "webhook_messages",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let e = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    let edges = vec![
        e("memberships", "organizations"),
        e("memberships", "users"),
        e("webhook_endpoints", "organizations"),
        e("webhook_messages", "organizations"),
        e("webhook_deliveries", "webhook_endpoints"),
        e("webhook_deliveries", "webhook_messages"),
        e("users", "users"),
    ];
    let order = foreign_key_order(&tables, &edges).unwrap();
    assert_eq!(
        order,
        [
            "organizations",
            "users",
            "memberships",
            "webhook_endpoints",
            "webhook_messages",
            "webhook_deliveries"
        ]
    );
    let cyclic = vec![e("a", "b"), e("b", "a")];
    assert!(foreign_key_order(&["a".into(), "b".into()], &cyclic).is_err());
}

#[test]
fn a_seal_reads_back_and_a_second_pass_refuses_another_manifest() {
    let mut w = ArchiveWriter::new(Vec::new(), "t".into());
    w.start(&SnapshotInfo {
        backend: "sqlite".into(),
        schema_version: 1,
    })
    .unwrap();
    w.begin_table(&table("notes")).unwrap();
    w.end_table().unwrap();
    let (m, bytes) = w
        .finish_sealed(|m| {
            Ok(Some(Seal {
                envelope: format!("{:?}", manifest_digest(m).unwrap()),
            }))
        })
        .unwrap();
    let mut r = ArchiveReader::open(&bytes[..]).unwrap();
    r.expect_manifest(m.clone());
    while r.next_table().unwrap().is_some() {
        while !r.next_rows(10).unwrap().is_empty() {}
    }
    assert_eq!(
        r.seal().unwrap().envelope,
        format!("{:?}", manifest_digest(&m).unwrap())
    );
    let mut other = m.clone();
    other.created_at = "another time".into();
    assert_ne!(
        manifest_digest(&other).unwrap(),
        manifest_digest(&m).unwrap()
    );
    let mut r = ArchiveReader::open(&bytes[..]).unwrap();
    r.expect_manifest(other);
    assert!(r.next_table().unwrap().is_some());
    assert!(r.next_rows(10).unwrap().is_empty());
    assert!(matches!(r.next_table(), Err(BackupError::Damaged(m)) if m.contains("changed")));
}

#[test]
fn the_header_is_in_the_digest() {
    let rows = [Value::Integer(1), Value::Integer(2)];
    let two = |a: &str, b: &str| Table {
        name: "t".into(),
        columns: vec![
            Column {
                name: a.into(),
                class: Class::Integer,
            },
            Column {
                name: b.into(),
                class: Class::Integer,
            },
        ],
    };
    let mut x = TableDigest::for_table(&two("a", "b"));
    let mut y = TableDigest::for_table(&two("b", "a"));
    x.add(&rows);
    y.add(&rows);
    assert_ne!(x.finish(), y.finish());
}
