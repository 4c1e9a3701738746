//! Who may read and write a record (C3): pure decisions over the record's level, owner and
//! allowed list and the caller's current permissions. No store, no clock: cheap enough to run
//! for every record of a listing.

use super::ProductCatalogue;
use crate::store::{Level, RecordRow};

/// A caller as a record subject: `user:{uuid}` or `key:{uuid}`, and what it holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub me: String,
    /// Shared: a check takes it from the cache without copying it.
    pub permissions: std::sync::Arc<[String]>,
}

impl Caller {
    #[must_use]
    pub fn holds(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }
}

/// `user:{uuid}` or `key:{uuid}` in canonical form (lower-case hyphenated uuid), or `None`.
#[must_use]
pub fn subject_entry(entry: &str) -> Option<String> {
    let (kind, id) = entry.split_once(':')?;
    if kind != "user" && kind != "key" {
        return None;
    }
    let id = uuid::Uuid::try_parse(id).ok()?;
    Some(format!("{kind}:{id}"))
}

/// Why `caller` may read `record`, or `None`.
#[must_use]
pub fn can_read(
    caller: &Caller,
    product: &ProductCatalogue,
    record: &RecordRow,
) -> Option<&'static str> {
    if record.owner == caller.me {
        return Some("owner");
    }
    match record.level {
        Level::Public => Some("level:public"),
        Level::Organization => product
            .record_type(&record.kind)
            .filter(|t| caller.holds(&t.read))
            .map(|_| "level:organization"),
        Level::Private => record
            .allowed
            .contains(&caller.me)
            .then_some("allowed_list"),
    }
}

/// Why `caller` may change or delete `record`, or `None`: its owner; or, for a record that is
/// not private, a holder of the type's write permission who may also read it (writing never
/// reveals more than reading would). A private record's allowed list reads only.
#[must_use]
pub fn can_write(
    caller: &Caller,
    product: &ProductCatalogue,
    record: &RecordRow,
) -> Option<&'static str> {
    if record.owner == caller.me {
        return Some("owner");
    }
    if record.level == Level::Private || can_read(caller, product, record).is_none() {
        return None;
    }
    product
        .record_type(&record.kind)
        .filter(|t| caller.holds(&t.write))
        .map(|_| "permission")
}

/// Whether a live grant (`access`) lets `caller`, of another organisation, read (or, with
/// `write`, change) `record`: never a private record; reading needs the type's read permission
/// in the caller's own organisation, writing a `read_write` grant and the type's write
/// permission too.
#[must_use]
pub fn can_via_grant(
    caller: &Caller,
    product: &ProductCatalogue,
    record: &RecordRow,
    write: bool,
    access: crate::store::GrantAccess,
) -> bool {
    let Some(t) = product.record_type(&record.kind) else {
        return false;
    };
    record.level != Level::Private
        && caller.holds(&t.read)
        && (!write || (access == crate::store::GrantAccess::ReadWrite && caller.holds(&t.write)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OrgId;
    use crate::product::{ProductPermission, RecordType};
    use time::OffsetDateTime;
    use uuid::Uuid;

    fn product() -> ProductCatalogue {
        let perm = |n: &str| ProductPermission {
            name: n.into(),
            description: "d".into(),
            step_up: false,
            roles: Vec::new(),
        };
        ProductCatalogue {
            permissions: vec![perm("memo.read"), perm("memo.write")],
            record_types: vec![RecordType {
                name: "memo".into(),
                read: "memo.read".into(),
                write: "memo.write".into(),
            }],
        }
    }

    fn record(level: Level, owner: &str, allowed: &[&str]) -> RecordRow {
        RecordRow {
            org_id: OrgId::from_uuid(Uuid::from_u128(1)),
            id: Uuid::from_u128(2),
            kind: "memo".into(),
            external_id: "m1".into(),
            namespace: None,
            owner: owner.into(),
            level,
            allowed: allowed.iter().map(|a| (*a).to_owned()).collect(),
            tags: Vec::new(),
            has_content: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: None,
        }
    }

    fn caller(me: &str, perms: &[&str]) -> Caller {
        Caller {
            me: me.into(),
            permissions: perms
                .iter()
                .map(|p| (*p).to_owned())
                .collect::<Vec<_>>()
                .into(),
        }
    }

    #[test]
    fn every_level_reads_and_writes_as_documented() {
        let p = product();
        let owner = caller("user:a", &[]);
        let reader = caller("user:b", &["memo.read"]);
        let writer = caller("user:c", &["memo.read", "memo.write"]);
        let listed = caller("key:d", &[]);
        let nobody = caller("user:e", &[]);
        let private = record(Level::Private, "user:a", &["key:d"]);
        let org = record(Level::Organization, "user:a", &[]);
        let public = record(Level::Public, "user:a", &[]);
        let read = |c: &Caller, r: &RecordRow| can_read(c, &p, r);
        let write = |c: &Caller, r: &RecordRow| can_write(c, &p, r);
        assert_eq!(read(&owner, &private), Some("owner"));
        assert_eq!(read(&listed, &private), Some("allowed_list"));
        assert_eq!(write(&listed, &private), None);
        assert_eq!(
            read(&writer, &private),
            None,
            "a write permission opens no private record"
        );
        assert_eq!(write(&writer, &private), None);
        assert_eq!(read(&reader, &org), Some("level:organization"));
        assert_eq!(read(&nobody, &org), None);
        assert_eq!(write(&reader, &org), None);
        assert_eq!(write(&writer, &org), Some("permission"));
        assert_eq!(read(&nobody, &public), Some("level:public"));
        assert_eq!(write(&nobody, &public), None);
        assert_eq!(write(&owner, &public), Some("owner"));
        // Writing never reaches a record the caller may not read.
        let write_only = caller("user:f", &["memo.write"]);
        assert_eq!(read(&write_only, &org), None);
        assert_eq!(write(&write_only, &org), None);
        assert_eq!(write(&write_only, &public), Some("permission"));
    }

    #[test]
    fn subject_entries_are_canonical_or_refused() {
        let id = Uuid::from_u128(5);
        assert_eq!(
            subject_entry(&format!("user:{}", id.simple())),
            Some(format!("user:{id}"))
        );
        for bad in ["user:", "group:1", "key:not-a-uuid", "user", ""] {
            assert_eq!(subject_entry(bad), None, "{bad}");
        }
    }
}
