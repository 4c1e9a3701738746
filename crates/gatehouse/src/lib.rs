//! The `gatehouse` binary as a library: configuration, wiring (`App::build`, `App::serve`) and the
//! CLI. Tests drive the same `App` the binary runs, over a listener they bind themselves.
#![forbid(unsafe_code)]

mod admin_cmd;
pub mod app;
mod audit_cmd;
mod backup_cmd;
pub mod cli;
mod clients;
pub mod config;
mod conn;
pub mod dev_cert_cmd;
mod erase_cmd;
mod jobs;
mod keyfile;
mod keys_cmd;
mod lifecycle_job;
pub mod logging;
mod mail_cmd;
#[cfg(feature = "otlp")]
pub mod otlp;
mod posture;
mod posture_cmd;
mod shares;
pub mod tls;
pub mod unseal;
mod unseal_cmd;
mod vault_cmd;

pub use app::App;
pub use config::Config;
