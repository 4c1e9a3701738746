//! `[product]`: the product's own permissions and record types (C1, C3), checked against each
//! other and Gatehouse's own catalogue at load.

use gatehouse_core::product::{ProductCatalogue, ProductPermission, RecordType};
use gatehouse_core::store::Role;
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProductConfig {
    /// `[[product.permissions]]`: name, description, step_up, roles.
    pub permissions: Vec<PermissionConfig>,
    /// `[[product.record_types]]`: name, read, write.
    pub record_types: Vec<RecordTypeConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionConfig {
    pub name: String,
    pub description: String,
    /// Needs a recent second factor (`step_up_required` otherwise).
    #[serde(default)]
    pub step_up: bool,
    /// Built-in roles that hold it: `owner`, `admin`, `member`, `viewer`.
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordTypeConfig {
    pub name: String,
    /// The product permission that reads the organisation's records of this type.
    pub read: String,
    /// The product permission that creates them and changes those one does not own.
    pub write: String,
}

pub(super) fn validate(c: &ProductConfig) -> Result<ProductCatalogue, ConfigError> {
    let mut permissions = Vec::with_capacity(c.permissions.len());
    for p in &c.permissions {
        let mut roles = Vec::with_capacity(p.roles.len());
        for r in &p.roles {
            match Role::parse(r) {
                Some(Role::Custom(_)) | None => {
                    return refuse(format!(
                        "product.permissions: {:?} names role {r:?}; only the built-in roles \
                         (owner, admin, member, viewer) are given permissions here",
                        p.name
                    ));
                }
                Some(role) => roles.push(role),
            }
        }
        permissions.push(ProductPermission {
            name: p.name.clone(),
            description: p.description.clone(),
            step_up: p.step_up,
            roles,
        });
    }
    let catalogue = ProductCatalogue {
        permissions,
        record_types: c
            .record_types
            .iter()
            .map(|t| RecordType {
                name: t.name.clone(),
                read: t.read.clone(),
                write: t.write.clone(),
            })
            .collect(),
    };
    catalogue
        .validate()
        .map_err(|e| ConfigError(format!("product: {e}")))?;
    Ok(catalogue)
}
