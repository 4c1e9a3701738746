//! What the edge knows about the request a service call serves: recorded in audit events.

/// The request behind a service call. IP and user agent are personal data: the audit log stores
/// them only sealed under the data subject's key (see `keyring::PersonalData`). A session keeps
/// its device's IP and user agent readable for the owner's device list; erasing a subject (G2)
/// deletes their sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}
