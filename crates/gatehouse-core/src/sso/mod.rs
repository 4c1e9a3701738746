//! Single sign-on per organisation, and social sign-in on the same path (issue 24).
//!
//! **Domains** (`domains.rs`). An admin claims an email domain and publishes the challenge
//! Gatehouse gives them as a TXT record at `_gatehouse-challenge.<domain>`
//! (`gatehouse-domain-verification=<challenge>`); Gatehouse looks it up (hickory, through
//! [`crate::mail::TxtResolver`], the servers of `sso.dns_servers`) and marks the domain verified.
//! One organisation at most holds a domain verified: a domain another organisation verified
//! cannot be claimed, and of two claims the first verified wins. Subdomains are domains of
//! their own. A verified domain is checked again by a periodic job (`recheck.rs`): when its
//! record is gone on three runs in a row it is marked unverified.
//!
//! **Configuration** (`config.rs`). One OpenID provider per organisation: issuer, client id,
//! client secret (sealed under the organisation's data key, never shown again), scopes, the
//! role of a person who joins through it, and enforcement. Reading needs `sso.manage`; every
//! change needs it and a recent second factor (or, for an account without one, a recent
//! password), whatever `step_up_permissions` says, as the organisation's security policy does;
//! choosing the provider (a first one, another issuer or client id) or a default role of admin
//! needs the organisation's owner as well. API keys and impersonations cannot change it. Everything is audited in the change's
//! transaction.
//!
//! **Enforcement** (`enforcement.rs`). With enforcement on, a session enters the organisation
//! only if it began through the organisation's own sign-on: a password sign-in naming it, a
//! switch of organisation into it, and the refresh of a session in it that began otherwise are
//! refused with `sso_required`. Break-glass: an owner with a confirmed second factor may still
//! sign in with their password and that factor (a session that checked it), so a provider that
//! is down or misconfigured cannot lock the organisation out for good. Operators are not
//! members and sign in on their own surface; an impersonation is an operator's, audited, and
//! not refused. API keys are not sign-ins and keep working.
//!
//! **Sign-in** (`signin.rs`, over the OAuth client foundation): authorization code with PKCE,
//! `state` and `nonce`; the ID token verified by `crate::sso::id_token`; account linking
//! only through an email the provider marks verified in a domain the organisation verified.
//! One callback per provider; completing needs the start's proof (`flow.rs`); the providers'
//! keys are cached (`keys.rs`).

mod config;
mod domains;
pub(crate) mod enforcement;
mod flow;
pub mod id_token;
mod keys;
mod link;
mod linking;
mod links;
mod recheck;
mod signin;

use std::sync::Arc;

pub use config::{SsoConfigInput, SsoConfigView};
pub use domains::{CHALLENGE_LABEL, CHALLENGE_PREFIX, DomainView, challenge_record_name};
pub use flow::FlowMode;
pub use links::LinkView;
pub use recheck::{GRACE, RECHECK_EVERY, RecheckReport};
pub use signin::{CALLBACK_PATH, Callback, SignInTarget, StartedSignIn};

use crate::kernel::Kernel;
use crate::mail::TxtResolver;

/// Domain checks run at once on one instance, at most: each may keep a resolver busy.
const CONCURRENT_CHECKS: usize = 4;

/// What single sign-on needs from configuration, held by the kernel.
#[derive(Debug)]
pub struct SsoState {
    /// Answers the domain challenges; `None` until the application sets it.
    resolver: Option<Arc<dyn TxtResolver>>,
    /// The platform providers (`[[oauth.providers]]`, OpenID Connect) people may sign in with
    /// (social sign-in), by name.
    social: Vec<String>,
    /// Where a browser sign-in's callback sends the browser (`sso.return_url`).
    return_url: Option<String>,
    checks: tokio::sync::Semaphore,
    /// The providers' ID-token keys (`keys.rs`).
    keys: keys::KeyCache,
    /// The re-verification job's memory (`recheck.rs`).
    rechecks: recheck::Rechecks,
}

impl Default for SsoState {
    fn default() -> Self {
        Self {
            resolver: None,
            social: Vec::new(),
            return_url: None,
            checks: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
            keys: keys::KeyCache::default(),
            rechecks: recheck::Rechecks::default(),
        }
    }
}

impl SsoState {
    #[must_use]
    pub fn new(
        resolver: Arc<dyn TxtResolver>,
        social: Vec<String>,
        return_url: Option<String>,
    ) -> Self {
        Self {
            resolver: Some(resolver),
            social,
            return_url,
            ..Self::default()
        }
    }
}

/// Single sign-on: an organisation's provider, domains and enforcement; sign-in through it.
#[derive(Debug, Clone, Copy)]
pub struct Sso<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Sso);

impl Sso<'_> {
    /// Where a browser sign-in's callback sends the browser, with `sso.return_url` set: there
    /// once signed in (the session is in the cookies); with `?error={code}` when refused; with
    /// the second step's token in the fragment (which no browser sends to a server or in a
    /// `Referer`) when the account has a second factor. `None`: answer in the body.
    #[must_use]
    pub fn return_location(
        &self,
        outcome: &Result<crate::identity::LoginOutcome, crate::Error>,
    ) -> Option<String> {
        let mut url = url::Url::parse(self.sso_state().return_url.as_deref()?).ok()?;
        match outcome {
            Ok(crate::identity::LoginOutcome::Session(_)) => {}
            Ok(crate::identity::LoginOutcome::MfaRequired {
                mfa_token,
                expires_in,
            }) => {
                url.set_fragment(Some(&format!(
                    "mfa_token={}&expires_in={expires_in}",
                    mfa_token.expose()
                )));
            }
            Err(e) => {
                url.query_pairs_mut().append_pair("error", e.code());
            }
        }
        Some(url.to_string())
    }
}

impl Sso<'_> {
    /// Whether `sso.return_url` is set: without it a bearer-mode sign-in's callback has nowhere
    /// to hand the provider's answer, so a bearer-mode start is refused.
    #[must_use]
    pub fn hands_off(&self) -> bool {
        self.sso_state().return_url.is_some()
    }

    /// Where the callback of a sign-in started in bearer mode sends the browser, with
    /// `sso.return_url` set: there with the provider's answer (`state`, `code`, `iss` or
    /// `error`) in the fragment, which no browser sends to a server; the product's page posts it
    /// with the start's `flow_secret` (`crate::sso::FlowMode`). The state is not spent.
    #[must_use]
    pub fn handoff_location(&self, answer: &[(&str, Option<&str>)]) -> Option<String> {
        let mut url = url::Url::parse(self.sso_state().return_url.as_deref()?).ok()?;
        let fragment = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(answer.iter().filter_map(|(k, v)| v.map(|v| (*k, v))))
            .finish();
        url.set_fragment(Some(&fragment));
        Some(url.to_string())
    }
}

/// What a refused change of the sign-on names.
const MANAGE: &str = "sso.manage";

/// The provider name an organisation's own sign-on goes by in its states and audit events (a
/// platform provider may not be named so).
pub const ORG_PROVIDER: &str = "organization";
