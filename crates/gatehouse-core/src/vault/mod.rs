//! The shared-secrets vault (D2) and transit encryption (D1) for the organisation's own fields.
//!
//! - A secret's value is sealed by the keyring per version (`SharedSecret`, record = the
//!   secret's id, field = `v{n}`), so organisation, secret and version are its associated data.
//!   No `/v1` route returns a value except reveal; services get it through `use` on a person's
//!   behalf. Both are audited with who, which secret and (for use) which service.
//! - Transit seals callers' values with a key derived per message from the organisation's data
//!   key (see `gatehouse_crypto::transit`); see `transit.rs`.

mod secrets;
mod transit;

pub use secrets::{NewSecret, SecretVersionView, SecretView};
pub use transit::{TransitItem, TransitOutcome};
