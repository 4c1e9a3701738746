//! The product's own permissions and record types, declared by the operator in configuration
//! (C1, C3): each permission names the built-in roles that hold it and whether it needs a recent
//! second factor; each record type names the permissions that read and write its records.
//! Custom roles may hold product permissions like Gatehouse's own.

use crate::store::Role;

/// A permission of the product's (`report.export`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductPermission {
    pub name: String,
    pub description: String,
    /// Needs a recent second factor, like `secrets.reveal`.
    pub step_up: bool,
    /// The built-in roles (`owner`, `admin`, `member`, `viewer`) that hold it.
    pub roles: Vec<Role>,
}

/// A kind of record the product stores (`report`, `memory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordType {
    pub name: String,
    /// Reading the organisation's records of this type (level `organization`).
    pub read: String,
    /// Creating records of this type, and changing or deleting those one does not own.
    pub write: String,
}

/// Everything the operator declared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductCatalogue {
    pub permissions: Vec<ProductPermission>,
    pub record_types: Vec<RecordType>,
}

/// Bounds on what a record may carry.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;
pub const MAX_TAGS: usize = 20;
pub const MAX_ALLOWED: usize = 100;

/// `word(.word)+`, lower case: the shape of every permission name, Gatehouse's and the product's.
#[must_use]
pub fn valid_permission_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    (3..=64).contains(&name.len())
        && parts.len() >= 2
        && parts.iter().all(|p| {
            p.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// A record type's name: 1 to 40 of `a-z`, `0-9`, `_`, starting with a letter.
#[must_use]
pub fn valid_type_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl ProductCatalogue {
    /// Checks the declarations against each other and Gatehouse's own catalogue; the message
    /// names the offending entry.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen: Vec<&str> = Vec::new();
        for p in &self.permissions {
            if !valid_permission_name(&p.name) {
                return Err(format!(
                    "permission {:?}: names are lower-case words joined by dots (report.export)",
                    p.name
                ));
            }
            if crate::identity::Permission::parse(&p.name).is_some() {
                return Err(format!(
                    "permission {:?} is one of Gatehouse's own; choose another name",
                    p.name
                ));
            }
            if seen.contains(&p.name.as_str()) {
                return Err(format!("permission {:?} is declared twice", p.name));
            }
            if p.description.trim().is_empty() || p.description.len() > 200 {
                return Err(format!(
                    "permission {:?}: a description of 1 to 200 characters is required",
                    p.name
                ));
            }
            if p.roles.iter().any(|r| matches!(r, Role::Custom(_))) {
                return Err(format!(
                    "permission {:?}: roles are built-in roles (owner, admin, member, viewer); \
                     custom roles are given permissions through the API",
                    p.name
                ));
            }
            seen.push(&p.name);
        }
        let mut types: Vec<&str> = Vec::new();
        for t in &self.record_types {
            if !valid_type_name(&t.name) {
                return Err(format!(
                    "record type {:?}: 1 to 40 of a-z, 0-9 and _, starting with a letter",
                    t.name
                ));
            }
            if types.contains(&t.name.as_str()) {
                return Err(format!("record type {:?} is declared twice", t.name));
            }
            for (what, p) in [("read", &t.read), ("write", &t.write)] {
                if self.permission(p).is_none() {
                    return Err(format!(
                        "record type {:?}: {what} permission {p:?} is not a declared product \
                         permission",
                        t.name
                    ));
                }
            }
            types.push(&t.name);
        }
        Ok(())
    }

    #[must_use]
    pub fn permission(&self, name: &str) -> Option<&ProductPermission> {
        self.permissions.iter().find(|p| p.name == name)
    }

    #[must_use]
    pub fn record_type(&self, name: &str) -> Option<&RecordType> {
        self.record_types.iter().find(|t| t.name == name)
    }

    /// The product permissions a built-in role holds.
    pub fn held_by(&self, role: &Role) -> impl Iterator<Item = &str> {
        self.permissions
            .iter()
            .filter(move |p| p.roles.contains(role))
            .map(|p| p.name.as_str())
    }

    /// Whether `name` needs a recent second factor.
    #[must_use]
    pub fn needs_step_up(&self, name: &str) -> bool {
        self.permission(name).is_some_and(|p| p.step_up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(name: &str, roles: Vec<Role>) -> ProductPermission {
        ProductPermission {
            name: name.into(),
            description: "d".into(),
            step_up: false,
            roles,
        }
    }

    #[test]
    fn declarations_are_checked_against_each_other_and_gatehouses_own() {
        let ok = ProductCatalogue {
            permissions: vec![
                perm("report.read", vec![Role::Owner, Role::Member]),
                perm("report.write", vec![Role::Owner]),
            ],
            record_types: vec![RecordType {
                name: "report".into(),
                read: "report.read".into(),
                write: "report.write".into(),
            }],
        };
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(
            ok.held_by(&Role::Member).collect::<Vec<_>>(),
            vec!["report.read"]
        );
        for (bad, says) in [
            (perm("Report", vec![]), "lower-case"),
            (perm("secrets.reveal", vec![]), "Gatehouse's own"),
            (perm("report.read", vec![]), "twice"),
            (
                perm("x.y", vec![Role::Custom("ops".into())]),
                "built-in roles",
            ),
        ] {
            let mut c = ok.clone();
            c.permissions.push(bad);
            let msg = c.validate().unwrap_err();
            assert!(msg.contains(says), "{msg}");
        }
        let mut c = ok.clone();
        c.record_types[0].write = "report.delete".into();
        assert!(c.validate().unwrap_err().contains("not a declared"));
        let mut c = ok;
        c.record_types.push(c.record_types[0].clone());
        assert!(c.validate().unwrap_err().contains("twice"));
    }

    #[test]
    fn permission_names_are_dotted_lower_case_words() {
        for good in ["report.export", "memory.share_link", "a.b2.c"] {
            assert!(valid_permission_name(good), "{good}");
        }
        for bad in [
            "report", ".x", "x.", "Report.x", "x..y", "x.1y", "x.y-z", "",
        ] {
            assert!(!valid_permission_name(bad), "{bad}");
        }
    }
}
