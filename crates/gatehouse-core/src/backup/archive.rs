//! The archive's plaintext: JSON lines, one object or row per line.
//!
//! ```text
//! {"gatehouse_backup":{"format_version":1,"backend":"sqlite","schema_version":16,"created_at":"..."}}
//! {"table":{"name":"organizations","columns":[{"name":"id","class":"blob"},...]}}
//! ["AAECAwQFBgcICQoLDA0ODw==","Acme",1733500000000000,null]
//! {"end":{"rows":1,"sha256":"..."}}
//! ...
//! {"manifest":{...}}
//! ```
//!
//! A row lists its values in the header's column order: `null`, an integer, a string (text), or
//! a base64 string (blob). The reader recomputes every table's digest and the audit facts as it
//! goes and refuses any difference from the `end` lines and the manifest, and anything after it.

use std::io::{BufRead, Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::manifest::AuditFacts;
use super::{
    BackupError, Class, FORMAT_VERSION, Manifest, RestoreSource, Seal, SnapshotInfo, SnapshotSink,
    Table, TableDigest, TableSummary, Value,
};

/// The longest line a reader accepts (one row): larger than any row Gatehouse stores.
const MAX_LINE: u64 = 256 << 20;

#[derive(Serialize, Deserialize)]
struct Header {
    format_version: u32,
    backend: String,
    schema_version: i64,
    created_at: String,
}

#[derive(Serialize, Deserialize)]
struct End {
    rows: u64,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    GatehouseBackup(Header),
    Table(Table),
    End(End),
    Manifest(Box<Manifest>),
    Seal(Seal),
}

fn io(e: &std::io::Error) -> BackupError {
    BackupError::Io(e.to_string())
}

/// Writes a snapshot as archive lines into `out` (in practice an age encryptor over a file).
pub struct ArchiveWriter<W> {
    out: W,
    created_at: String,
    info: Option<SnapshotInfo>,
    current: Option<(Table, TableDigest)>,
    tables: Vec<TableSummary>,
    audit: AuditFacts,
    line: Vec<u8>,
}

impl<W> std::fmt::Debug for ArchiveWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("tables", &self.tables.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> ArchiveWriter<W> {
    pub fn new(out: W, created_at: String) -> Self {
        Self {
            out,
            created_at,
            info: None,
            current: None,
            tables: Vec::new(),
            audit: AuditFacts::default(),
            line: Vec::with_capacity(4096),
        }
    }

    fn object(&mut self, line: &Line) -> Result<(), BackupError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, line).map_err(|e| BackupError::Io(e.to_string()))?;
        self.line.push(b'\n');
        if self.line.len() as u64 > MAX_LINE {
            return Err(BackupError::Refused(format!(
                "a header or the manifest is longer than {} MiB, the most a backup line carries",
                MAX_LINE >> 20
            )));
        }
        self.out.write_all(&self.line).map_err(|e| io(&e))
    }

    /// Writes the manifest line and hands back the manifest and the output, which the caller
    /// finishes (the age stream's last chunk) and syncs.
    pub fn finish(self) -> Result<(Manifest, W), BackupError> {
        self.finish_sealed(|_| Ok(None))
    }

    /// Like [`ArchiveWriter::finish`], with the seal `seal` makes over the manifest written after
    /// it (none when it answers `None`).
    pub fn finish_sealed(
        mut self,
        seal: impl FnOnce(&Manifest) -> Result<Option<Seal>, BackupError>,
    ) -> Result<(Manifest, W), BackupError> {
        if self.current.is_some() {
            return Err(BackupError::Store("a table was left unfinished".into()));
        }
        let Some(info) = self.info.take() else {
            return Err(BackupError::Store("the snapshot never started".into()));
        };
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            schema_version: info.schema_version,
            backend: info.backend,
            created_at: self.created_at.clone(),
            tables: std::mem::take(&mut self.tables),
            chain_heads: std::mem::take(&mut self.audit.heads),
            newest_checkpoint: self.audit.newest.take(),
        };
        self.object(&Line::Manifest(Box::new(manifest.clone())))?;
        if let Some(seal) = seal(&manifest)? {
            self.object(&Line::Seal(seal))?;
        }
        self.out.flush().map_err(|e| io(&e))?;
        Ok((manifest, self.out))
    }
}

impl<W: Write + Send> SnapshotSink for ArchiveWriter<W> {
    fn start(&mut self, info: &SnapshotInfo) -> Result<(), BackupError> {
        self.info = Some(info.clone());
        self.object(&Line::GatehouseBackup(Header {
            format_version: FORMAT_VERSION,
            backend: info.backend.clone(),
            schema_version: info.schema_version,
            created_at: self.created_at.clone(),
        }))
    }

    fn begin_table(&mut self, table: &Table) -> Result<(), BackupError> {
        self.current = Some((table.clone(), TableDigest::for_table(table)));
        self.object(&Line::Table(table.clone()))
    }

    fn row(&mut self, row: &[Value]) -> Result<(), BackupError> {
        let Some((table, digest)) = self.current.as_mut() else {
            return Err(BackupError::Store("a row outside any table".into()));
        };
        digest.add(row);
        self.audit.observe(table, row);
        self.line.clear();
        self.line.push(b'[');
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                self.line.push(b',');
            }
            match v {
                Value::Null => self.line.extend_from_slice(b"null"),
                Value::Integer(n) => write!(self.line, "{n}").map_err(|e| io(&e))?,
                Value::Text(t) => serde_json::to_writer(&mut self.line, t)
                    .map_err(|e| BackupError::Io(e.to_string()))?,
                Value::Blob(b) => {
                    self.line.push(b'"');
                    self.line.extend_from_slice(B64.encode(b).as_bytes());
                    self.line.push(b'"');
                }
            }
        }
        self.line.extend_from_slice(b"]\n");
        // A row the reader would refuse must not make an archive that cannot be restored.
        if self.line.len() as u64 > MAX_LINE {
            return Err(BackupError::Refused(format!(
                "a row of {} is longer than {} MiB, the most a backup carries",
                table.name,
                MAX_LINE >> 20
            )));
        }
        self.out.write_all(&self.line).map_err(|e| io(&e))
    }

    fn end_table(&mut self) -> Result<(), BackupError> {
        let Some((table, digest)) = self.current.take() else {
            return Err(BackupError::Store("end of a table never begun".into()));
        };
        let (rows, sha256) = digest.finish();
        self.tables.push(TableSummary {
            name: table.name,
            rows,
            sha256: sha256.clone(),
        });
        self.object(&Line::End(End { rows, sha256 }))
    }
}

/// Reads an archive back, checking it as it goes. Every table's rows must be read to their end
/// (`next_rows` answering empty) before the next table is asked for.
pub struct ArchiveReader<R> {
    input: R,
    info: SnapshotInfo,
    created_at: String,
    current: Option<(Table, TableDigest)>,
    tables: Vec<TableSummary>,
    audit: AuditFacts,
    manifest: Option<Manifest>,
    expected: Option<Manifest>,
    seal: Option<Seal>,
    line: String,
}

impl<R> std::fmt::Debug for ArchiveReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveReader")
            .field("info", &self.info)
            .field("tables", &self.tables.len())
            .finish_non_exhaustive()
    }
}

impl<R: BufRead + Send> ArchiveReader<R> {
    /// Reads the header line, refusing anything that is not a backup of a known format.
    pub fn open(input: R) -> Result<Self, BackupError> {
        let mut reader = Self {
            input,
            info: SnapshotInfo {
                backend: String::new(),
                schema_version: 0,
            },
            created_at: String::new(),
            current: None,
            tables: Vec::new(),
            audit: AuditFacts::default(),
            manifest: None,
            expected: None,
            seal: None,
            line: String::new(),
        };
        let Some(Line::GatehouseBackup(h)) = reader.next_object()? else {
            return Err(BackupError::Damaged(
                "it does not start with a Gatehouse backup header".into(),
            ));
        };
        if h.format_version != FORMAT_VERSION {
            return Err(BackupError::Refused(format!(
                "the backup's format version is {}; this Gatehouse reads version {FORMAT_VERSION} \
                 only",
                h.format_version
            )));
        }
        reader.info = SnapshotInfo {
            backend: h.backend,
            schema_version: h.schema_version,
        };
        reader.created_at = h.created_at;
        Ok(reader)
    }

    #[must_use]
    pub fn info(&self) -> &SnapshotInfo {
        &self.info
    }

    #[must_use]
    pub fn created_at(&self) -> &str {
        &self.created_at
    }

    /// The manifest, once every table has been read and checked against it.
    #[must_use]
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// The master key's seal, read after the manifest, if the archive has one.
    #[must_use]
    pub fn seal(&self) -> Option<&Seal> {
        self.seal.as_ref()
    }

    /// Refuses, before the last table is handed out, a manifest other than `m`: a restore's
    /// second pass must read the archive its first pass checked.
    pub fn expect_manifest(&mut self, m: Manifest) {
        self.expected = Some(m);
    }

    /// Reads every table to the end without keeping rows: the whole check, nothing restored.
    pub fn check_all(mut self) -> Result<Manifest, BackupError> {
        while self.next_table()?.is_some() {
            while !self.next_rows(4096)?.is_empty() {}
        }
        self.manifest
            .ok_or_else(|| BackupError::Damaged("no manifest".into()))
    }

    /// The next line, or `None` at the end of the input.
    fn read_line(&mut self) -> Result<Option<&str>, BackupError> {
        self.line.clear();
        let n = (&mut self.input)
            .take(MAX_LINE)
            .read_line(&mut self.line)
            .map_err(|e| BackupError::Damaged(format!("cannot read a line: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        match self.line.strip_suffix('\n') {
            Some(l) => Ok(Some(l)),
            None => Err(BackupError::Damaged(
                "a line is cut short or longer than any row Gatehouse writes".into(),
            )),
        }
    }

    fn next_object(&mut self) -> Result<Option<Line>, BackupError> {
        match self.read_line()? {
            None => Ok(None),
            Some(l) => serde_json::from_str(l)
                .map(Some)
                .map_err(|e| BackupError::Damaged(format!("a line does not parse: {e}"))),
        }
    }

    fn check_manifest(&mut self, m: Manifest) -> Result<(), BackupError> {
        let differs = |what: &str| BackupError::Damaged(format!("the manifest's {what} differ"));
        if m.format_version != FORMAT_VERSION
            || m.schema_version != self.info.schema_version
            || m.backend != self.info.backend
            || m.created_at != self.created_at
        {
            return Err(differs("header fields"));
        }
        if m.tables != self.tables {
            return Err(differs("tables (rows or digests)"));
        }
        if m.chain_heads != self.audit.heads || m.newest_checkpoint != self.audit.newest {
            return Err(differs("audit chain heads or checkpoint"));
        }
        if self.expected.as_ref().is_some_and(|e| *e != m) {
            return Err(BackupError::Damaged(
                "the file changed after it was checked".into(),
            ));
        }
        self.seal = match self.next_object()? {
            None => None,
            Some(Line::Seal(seal)) => Some(seal),
            Some(_) => {
                return Err(BackupError::Damaged(
                    "something follows the manifest".into(),
                ));
            }
        };
        if self.seal.is_some() && self.read_line()?.is_some() {
            return Err(BackupError::Damaged("something follows the seal".into()));
        }
        self.manifest = Some(m);
        Ok(())
    }
}

impl<R: BufRead + Send> RestoreSource for ArchiveReader<R> {
    fn next_table(&mut self) -> Result<Option<Table>, BackupError> {
        if self.current.is_some() {
            return Err(BackupError::Store(
                "a table's rows were not read to the end".into(),
            ));
        }
        if self.manifest.is_some() {
            return Ok(None);
        }
        match self.next_object()? {
            Some(Line::Table(t)) => {
                super::check_identifier(&t.name)?;
                for c in &t.columns {
                    super::check_identifier(&c.name)?;
                }
                self.current = Some((t.clone(), TableDigest::for_table(&t)));
                Ok(Some(t))
            }
            Some(Line::Manifest(m)) => {
                self.check_manifest(*m)?;
                Ok(None)
            }
            Some(_) => Err(BackupError::Damaged(
                "a line is out of place (expected a table or the manifest)".into(),
            )),
            None => Err(BackupError::Damaged(
                "it ends before its manifest: the file was cut short".into(),
            )),
        }
    }

    fn next_rows(&mut self, max: usize) -> Result<Vec<Vec<Value>>, BackupError> {
        let Some((table, mut digest)) = self.current.take() else {
            return Ok(Vec::new());
        };
        let mut rows = Vec::new();
        while rows.len() < max {
            let Some(line) = self.read_line()? else {
                return Err(BackupError::Damaged(format!(
                    "it ends inside table {}: the file was cut short",
                    table.name
                )));
            };
            if line.starts_with('[') {
                let row = parse_row(&table, line)?;
                digest.add(&row);
                self.audit.observe(&table, &row);
                rows.push(row);
                continue;
            }
            let Ok(Line::End(end)) = serde_json::from_str::<Line>(line) else {
                return Err(BackupError::Damaged(format!(
                    "table {} has no end line",
                    table.name
                )));
            };
            let (n, sha256) = digest.finish();
            if n != end.rows || sha256 != end.sha256 {
                return Err(BackupError::Damaged(format!(
                    "table {}: its rows do not match their digest",
                    table.name
                )));
            }
            self.tables.push(TableSummary {
                name: table.name,
                rows: n,
                sha256,
            });
            return Ok(rows);
        }
        self.current = Some((table, digest));
        Ok(rows)
    }
}

fn parse_row(table: &Table, line: &str) -> Result<Vec<Value>, BackupError> {
    let bad = |why: &str| BackupError::Damaged(format!("a row of {}: {why}", table.name));
    let raw: Vec<serde_json::Value> =
        serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
    if raw.len() != table.columns.len() {
        return Err(bad("wrong number of values"));
    }
    raw.into_iter()
        .zip(&table.columns)
        .map(|(v, c)| match (v, c.class) {
            (serde_json::Value::Null, _) => Ok(Value::Null),
            (serde_json::Value::Number(n), Class::Integer) => n
                .as_i64()
                .map(Value::Integer)
                .ok_or_else(|| bad("an integer out of range")),
            (serde_json::Value::String(s), Class::Text) => Ok(Value::Text(s)),
            (serde_json::Value::String(s), Class::Blob) => B64
                .decode(s.as_bytes())
                .map(Value::Blob)
                .map_err(|_| bad("a blob that is not base64")),
            _ => Err(bad("a value of the wrong class")),
        })
        .collect()
}
