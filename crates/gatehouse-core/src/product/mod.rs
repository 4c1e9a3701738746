//! The product beside Gatehouse: its own permissions and record types (declared in
//! configuration), and the decisions about them.

pub mod access;
mod catalogue;
mod check;
pub mod decision_cache;
mod granted;
mod grants;
mod lookup;
mod records;
mod share_links;
pub(crate) mod share_opens;

pub use catalogue::{
    MAX_ALLOWED, MAX_CONTENT_BYTES, MAX_TAGS, ProductCatalogue, ProductPermission, RecordType,
    valid_permission_name, valid_type_name,
};

pub use check::{CheckInput, CheckSubject, Checks, Decision, MAX_BATCH, ProductState, ResourceRef};
pub use grants::{GrantView, Grants, MAX_GRANT_SCOPE, NewGrant};
pub use records::{NewRecord, RecordChange, RecordFilter, RecordView};
pub use share_links::{CreatedShareLink, NewShareLink, ShareLinks, ShareSettings, ViewerPass};

use crate::kernel::Kernel;

impl Kernel {
    /// `name` as a permission a role or key may hold: one of Gatehouse's own or a declared
    /// product permission.
    pub(crate) fn known_permission(&self, name: &str) -> Option<String> {
        crate::identity::Permission::parse(name)
            .map(|p| p.as_str().to_owned())
            .or_else(|| self.product().permission(name).map(|p| p.name.clone()))
    }
}

impl Kernel {
    /// A record was created, changed or deleted: decisions about it are forgotten here and on
    /// every instance.
    pub(crate) fn record_changed(&self, org: crate::ids::OrgId, kind: &str, external_id: &str) {
        self.product_state()
            .decisions
            .forget_record(org, kind, external_id);
        self.publish_revocation(crate::identity::Revocation::Record {
            org,
            kind: kind.to_owned(),
            external_id: external_id.to_owned(),
        });
    }

    /// A grant was made or revoked: what the grantee saw of the owner's records is forgotten
    /// here and on every instance.
    pub(crate) fn grant_changed(&self, owner: crate::ids::OrgId, grantee: crate::ids::OrgId) {
        self.product_state().decisions.forget_grant(owner, grantee);
        self.publish_revocation(crate::identity::Revocation::Grant { owner, grantee });
    }
}

/// The product's records (C3).
#[derive(Debug, Clone, Copy)]
pub struct Records<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Records);

impl Kernel {
    /// The product's records (`product::records`).
    #[must_use]
    pub fn records(&self) -> Records<'_> {
        Records(self)
    }
}
