//! Gatehouse's domain. It knows nothing of HTTP or SQL: it defines typed ids, the tenant scope,
//! validated inputs, the services, stable error codes, and the traits it needs from outside
//! (`Store` and its transactions, `Clock`). Adapters implement the traits; the HTTP layer calls the
//! services.
#![forbid(unsafe_code)]

pub mod api_keys;
pub mod audit;
pub mod backup;
pub mod clock;
pub mod connectors;
pub mod context;
pub mod data_rights;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod html;
pub mod identity;
pub mod ids;
pub mod inputs;
pub mod jobs;
pub mod kernel;
pub mod keyring;
pub mod lifecycle;
pub mod limits;
pub mod mail;
pub mod oauth;
pub mod page;
pub mod password_pool;
pub mod posture;
pub mod product;
pub mod scope;
pub mod secrets;
pub mod signup;
pub mod sso;
pub mod store;
pub mod telemetry;
pub mod transit;
pub mod webhooks;

pub use clock::{Clock, FakeClock, SystemClock};
pub use context::{AccountCall, OperatorCall, RequestContext, ServiceCall, TenantCall};
pub use error::{Error, StoreError};
pub use ids::{OrgId, UserId};
pub use kernel::{Check, Kernel, KeySource, Readiness};
pub use page::{Cursor, Limit, Page, PageRequest};
pub use scope::TenantScope;
