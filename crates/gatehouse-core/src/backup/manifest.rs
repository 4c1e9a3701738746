//! The manifest, the archive's last line: what was backed up (per table, rows and digest) and
//! the audit log's state at that moment (every chain's head and the newest signed checkpoint),
//! so an operator can compare a restored database with what the backup promised.

use serde::{Deserialize, Serialize};

use super::{Table, Value};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub schema_version: i64,
    /// The backend the snapshot was taken from.
    pub backend: String,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub created_at: String,
    pub tables: Vec<TableSummary>,
    /// One per audit chain: `operators`, or the organisation's id.
    pub chain_heads: Vec<ChainHead>,
    /// The most recent signed checkpoint of any chain, if one was ever signed.
    pub newest_checkpoint: Option<Checkpoint>,
}

/// The master key's seal over the manifest: an envelope, made by the deployment's master key
/// (in memory or inside the HSM), of the manifest's SHA-256. age proves only who can read an
/// archive, not who wrote it; the seal proves it was written by a holder of the master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// Base64 of the envelope.
    pub envelope: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSummary {
    pub name: String,
    pub rows: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub chain: String,
    pub seq: i64,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub chain: String,
    pub seq: i64,
    pub hash: String,
    /// Microseconds since the Unix epoch.
    pub at_micros: i64,
    pub key_version: i64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Picks the audit rows the manifest reports out of the stream of rows.
#[derive(Debug, Default)]
pub(super) struct AuditFacts {
    pub(super) heads: Vec<ChainHead>,
    pub(super) newest: Option<Checkpoint>,
}

/// What the seal covers: the manifest's SHA-256, over its JSON as this format version writes
/// it (a later version that adds a field seals under a new label).
pub fn manifest_digest(m: &Manifest) -> Result<[u8; 32], super::BackupError> {
    let json = serde_json::to_vec(m).map_err(|e| super::BackupError::Store(e.to_string()))?;
    Ok(gatehouse_crypto::sha256(&[
        b"gatehouse.backup.manifest.v1",
        &json,
    ]))
}

impl AuditFacts {
    pub(super) fn observe(&mut self, table: &Table, row: &[Value]) {
        let get = |name: &str| {
            table
                .columns
                .iter()
                .position(|c| c.name == name)
                .and_then(|i| row.get(i))
        };
        let int = |name: &str| match get(name) {
            Some(Value::Integer(i)) => Some(*i),
            _ => None,
        };
        let blob = |name: &str| match get(name) {
            Some(Value::Blob(b)) => Some(b.clone()),
            _ => None,
        };
        let chain = match table.name.as_str() {
            "audit_heads" | "audit_checkpoints" => match blob("org_id") {
                Some(b) => uuid::Uuid::from_slice(&b).map_or_else(|_| hex(&b), |u| u.to_string()),
                None => return,
            },
            // Named as `gatehouse audit verify --expect-checkpoint` names it.
            "operator_audit_head" | "operator_audit_checkpoints" => "operators".to_owned(),
            _ => return,
        };
        let (Some(seq), Some(hash)) = (int("seq"), blob("hash")) else {
            return;
        };
        if table.name.ends_with("_checkpoints") {
            let (Some(at), Some(key_version)) = (int("at"), int("key_version")) else {
                return;
            };
            let newer = self
                .newest
                .as_ref()
                .is_none_or(|n| (at, seq) > (n.at_micros, n.seq));
            if newer {
                self.newest = Some(Checkpoint {
                    chain,
                    seq,
                    hash: hex(&hash),
                    at_micros: at,
                    key_version,
                });
            }
        } else {
            self.heads.push(ChainHead {
                chain,
                seq,
                hash: hex(&hash),
            });
        }
    }
}
