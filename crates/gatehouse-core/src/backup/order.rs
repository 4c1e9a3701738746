//! The order tables are written and restored in: every table after the tables its foreign keys
//! point to, so a restore inserts parents first without switching constraint checks off.

use std::collections::{BTreeMap, BTreeSet};

use super::BackupError;

/// `tables` sorted so each comes after every table it references (`edges`: child, parent). Ties
/// are broken by name, so both backends produce the same order for the same schema.
pub fn foreign_key_order(
    tables: &[String],
    edges: &[(String, String)],
) -> Result<Vec<String>, BackupError> {
    let mut parents: BTreeMap<&str, BTreeSet<&str>> = tables
        .iter()
        .map(|t| (t.as_str(), BTreeSet::new()))
        .collect();
    for (child, parent) in edges {
        // A self-reference needs no ordering between tables; one to a table outside the list
        // (none exist) could not be satisfied by ordering either.
        if child != parent
            && let Some(set) = parents.get_mut(child.as_str())
            && tables.contains(parent)
        {
            set.insert(parent.as_str());
        }
    }
    let mut out: Vec<String> = Vec::with_capacity(tables.len());
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < parents.len() {
        let ready: Vec<&str> = parents
            .iter()
            .filter(|(t, ps)| !done.contains(*t) && ps.iter().all(|p| done.contains(p)))
            .map(|(t, _)| *t)
            .collect();
        if ready.is_empty() {
            return Err(BackupError::Store(
                "the tables' foreign keys form a cycle; no insertion order exists".into(),
            ));
        }
        for t in ready {
            done.insert(t);
            out.push(t.to_owned());
        }
    }
    Ok(out)
}
