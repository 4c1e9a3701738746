//! The tenant scope: proof that the caller may act inside one organisation.
//!
//! Every store method that touches tenant-owned rows takes a `TenantScope`, and the PostgreSQL
//! backend turns it into the row-level-security setting of the transaction. Outside this crate a
//! scope cannot be made: only the domain's authorization decisions construct one (for example
//! signup, which makes the founder the owner of the new organisation). The `testing` feature adds
//! a constructor for test code only.

use crate::ids::OrgId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantScope {
    org: OrgId,
}

impl TenantScope {
    /// Only authorization code in this crate may grant a scope.
    pub(crate) fn granted(org: OrgId) -> Self {
        Self { org }
    }

    #[must_use]
    pub fn org_id(&self) -> OrgId {
        self.org
    }

    /// A scope made without any authorization check. Test code only.
    #[cfg(feature = "testing")]
    #[must_use]
    pub fn for_tests(org: OrgId) -> Self {
        Self { org }
    }
}
