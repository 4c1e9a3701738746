//! The single HTTP integration-test binary. Every test starts the real server (the same
//! `App::build` and `App::serve` the binary runs) on 127.0.0.1:0 with its own data directory, and
//! talks HTTP to it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod interop;
mod oidc_provider;
mod oidc_stub;
mod support;

mod access_model;
mod account_control;
mod api_keys;
mod app_audiences;
mod apps;
mod audit_api;
mod backup;
mod checks;
mod connector_removal;
mod connector_states;
mod connectors;
mod cors;
mod degradation;
mod erasure;
mod errors;
mod exports;
mod factor_policy;
mod grants;
mod headers;
mod health;
mod invitations;
mod lifecycle;
mod limits;
mod mail_domains;
mod membership;
mod metrics;
mod mfa;
mod oauth;
mod openapi;
mod operator_sessions;
mod operators;
#[cfg(feature = "otlp")]
mod otlp;
mod password_checks;
mod passwords;
mod pathways;
mod posture;
mod process;
mod product;
mod product_events;
mod records;
mod recovery;
mod roles;
mod secrets_in_logs;
mod security_events;
mod session_policy;
mod sessions;
mod share_links;
mod signup;
mod slow_clients;
mod sso_confined;
mod sso_domains;
mod sso_flow;
mod sso_keys;
mod sso_linking;
mod sso_recheck;
mod sso_signin;
mod sso_tokens;
mod tls;
mod tokens;
mod transit;
mod trust_page;
mod unsubscribe;
mod vault;
mod webhooks;
