//! Who may complete a sign-in (RFC 9700 4.7 and the mode of its session).
//!
//! A sign-in's state travels in URLs (the authorization request, the provider's redirect back),
//! so holding it proves nothing. The start hands the starter a **flow proof** too, bound to the
//! state and to the session mode it chose, which the completion must present:
//!
//! - **cookie mode**: the proof is the `__Host-gatehouse_sso` cookie (HttpOnly, set by the
//!   start's answer), and `GET /v1/auth/sso/{target}/callback` completes only in the browser that
//!   sent it;
//! - **bearer mode**: the proof is the start's `flow_secret`, which never appears in a URL; the
//!   product's own page (or app) receives the provider's `code`, `state` and `iss` and posts them
//!   with it to `POST /v1/auth/sso/{target}/callback`.
//!
//! A proof is `{version}.{BASE64URL(tag)}`, the tag the keyring's link-key HMAC of a label, the
//! mode and the state: nothing is stored, a cookie-mode proof is not a bearer-mode one (and the
//! reverse), and nobody without the link key can make one for a state they saw. The state is
//! still single use, spent in the store.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Sso;
use crate::error::Error;

const LABEL: &[u8] = b"gatehouse.sso-flow.v1\0";

/// The session mode a sign-in was started for: what its completion must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowMode {
    /// The session goes in cookies, in the browser holding the start's cookie.
    Cookie,
    /// The session's tokens are answered to whoever presents the start's `flow_secret`.
    Bearer,
}

impl FlowMode {
    fn byte(self) -> &'static [u8] {
        match self {
            Self::Cookie => b"c",
            Self::Bearer => b"b",
        }
    }
}

impl Sso<'_> {
    /// The proof that completes `state` in `mode` (given to the starter only).
    pub fn flow_proof(&self, state: &str, mode: FlowMode) -> Result<String, Error> {
        let (version, tag) = self
            .keyring()
            .link_tag(&[LABEL, mode.byte(), state.as_bytes()])?;
        Ok(format!("{version}.{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    /// Whether `proof` is the proof of `state` in `mode` (compared in constant time by the
    /// keyring's MAC check).
    pub async fn flow_proof_verifies(&self, state: &str, mode: FlowMode, proof: &str) -> bool {
        let Some((version, tag)) = proof.split_once('.') else {
            return false;
        };
        let (Ok(version), Ok(tag)) = (version.parse::<u32>(), URL_SAFE_NO_PAD.decode(tag)) else {
            return false;
        };
        self.keyring()
            .link_verifies(version, &[LABEL, mode.byte(), state.as_bytes()], &tag)
            .await
    }
}
