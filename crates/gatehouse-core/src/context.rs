//! What the edge knows about the request a service call serves: recorded in audit events.

/// The request behind a service call. IP and user agent are personal data: they are only ever
/// stored sealed under the data subject's key (see `keyring::PersonalData`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}
