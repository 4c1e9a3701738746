//! The `gatehouse` binary as a library: configuration, wiring (`App::build`, `App::serve`) and the
//! CLI. Tests drive the same `App` the binary runs, over a listener they bind themselves.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
mod keyfile;
pub mod logging;

pub use app::App;
pub use config::Config;
