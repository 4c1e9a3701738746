pub(crate) mod admin;
pub(crate) mod admin_accounts;
pub(crate) mod admin_sessions;
pub(crate) mod api_keys;
pub(crate) mod apps;
pub(crate) mod audit;
pub(crate) mod audit_events;
pub(crate) mod auth;
pub(crate) mod check;
pub(crate) mod connectors;
pub(crate) mod erasures;
pub(crate) mod exports;
pub(crate) mod fallback;
pub(crate) mod grants;
pub(crate) mod health;
pub(crate) mod invitations;
pub(crate) mod mail_domains;
pub(crate) mod me;
pub(crate) mod messages;
pub(crate) mod metrics;
pub(crate) mod mfa;
pub(crate) mod openapi;
pub(crate) mod organization;
pub(crate) mod posture;
pub(crate) mod records;
pub(crate) mod recovery;
pub(crate) mod secrets;
pub(crate) mod security_txt;
pub(crate) mod share_links;
pub(crate) mod signup;
pub(crate) mod sso;
pub(crate) mod sso_auth;
pub(crate) mod transit;
pub(crate) mod trust;
pub(crate) mod unseal;
pub(crate) mod unsubscribe;
pub(crate) mod webhooks;

/// A name from the permission catalogue, for the OpenAPI document: its schema is a string enum
/// built from `gatehouse_core::identity::CATALOGUE` itself, so it lists exactly what the server
/// accepts.
#[derive(Debug)]
pub(crate) struct PermissionName;

impl utoipa::PartialSchema for PermissionName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A permission from the catalogue (docs/API.md); a server also accepts the \
                 product permissions its configuration declares ([[product.permissions]])",
            ))
            .enum_values(Some(
                gatehouse_core::identity::CATALOGUE
                    .iter()
                    .map(|(name, _)| *name),
            ))
            .into()
    }
}

impl utoipa::ToSchema for PermissionName {}
