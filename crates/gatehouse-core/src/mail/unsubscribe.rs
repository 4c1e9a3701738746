//! Signed unsubscribe links (F2): `{public_url}/v1/unsubscribe?o=&r=&l=&k=&sig=` names the
//! organisation, the recipient (by the SHA-256 of the address: no address in a URL or a log) and
//! the list, under an HMAC from the keyring's link keys. No row is stored per link; a link signed
//! with an older key works for the overlap after a rotation. Opting out adds the recipient to the
//! organisation's opt-out list, which every send of that organisation's product mail consults.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::audit::{self, Actor, AuditEvent};
use crate::context::RequestContext;
use crate::error::Error;
use crate::ids::OrgId;
use crate::kernel::Kernel;
use crate::scope::TenantScope;

const LABEL: &[u8] = b"gatehouse.unsubscribe.v1\0";

/// A list name: 1 to 64 of `a-z`, `0-9`, `.`, `_`, `-`.
#[must_use]
pub fn valid_list(list: &str) -> bool {
    (1..=64).contains(&list.len())
        && list.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// An unsubscribe link's parameters, as the query string carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeLink {
    pub org: String,
    pub recipient: String,
    pub list: String,
    pub key: u32,
    pub sig: String,
}

/// What a verified link names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribed {
    pub org: OrgId,
    pub list: String,
    /// Whether this call added the recipient (false: already opted out).
    pub added: bool,
}

fn signed_parts<'a>(org: &'a [u8], recipient: &'a [u8], list: &'a str) -> [&'a [u8]; 5] {
    // Fixed-length fields first, then the list: no two links sign the same bytes.
    [LABEL, org, recipient, b"\0", list.as_bytes()]
}

fn tampered() -> Error {
    Error::InvalidToken("unsubscribe")
}

impl Kernel {
    /// The unsubscribe URL for `recipient_digest` on `org`'s `list`.
    pub(crate) fn unsubscribe_url(
        &self,
        org: OrgId,
        recipient_digest: &[u8; 32],
        list: &str,
    ) -> Result<String, Error> {
        if self.mail_settings().public_url.is_empty() {
            return Err(Error::Conflict(
                "mail.public_url is not configured: the product's mail needs it for its \
                 unsubscribe links",
            ));
        }
        let id = org.as_uuid();
        let (version, tag) =
            self.keyring()
                .link_tag(&signed_parts(id.as_bytes(), recipient_digest, list))?;
        Ok(format!(
            "{}/v1/unsubscribe?o={id}&r={}&l={list}&k={version}&sig={}",
            self.mail_settings().public_url,
            URL_SAFE_NO_PAD.encode(recipient_digest),
            URL_SAFE_NO_PAD.encode(tag),
        ))
    }

    /// Checks a link's signature: the organisation, the recipient's digest and the list.
    pub async fn verify_unsubscribe(
        &self,
        link: &UnsubscribeLink,
    ) -> Result<(OrgId, [u8; 32], String), Error> {
        let org = OrgId::parse(&link.org)
            .filter(|o| o.as_uuid().to_string() == link.org)
            .ok_or_else(tampered)?;
        let recipient: [u8; 32] = URL_SAFE_NO_PAD
            .decode(link.recipient.as_bytes())
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(tampered)?;
        let tag = URL_SAFE_NO_PAD
            .decode(link.sig.as_bytes())
            .map_err(|_| tampered())?;
        if !valid_list(&link.list) {
            return Err(tampered());
        }
        let id = org.as_uuid();
        if !self
            .keyring()
            .link_verifies(
                link.key,
                &signed_parts(id.as_bytes(), &recipient, &link.list),
                &tag,
            )
            .await
        {
            return Err(tampered());
        }
        Ok((org, recipient, link.list.clone()))
    }

    /// Opts the link's recipient out of its list (RFC 8058's one-click `POST`, or the
    /// confirmation page's button): at once, recorded on the organisation's chain.
    pub async fn unsubscribe(
        &self,
        link: &UnsubscribeLink,
        request: &RequestContext,
    ) -> Result<Unsubscribed, Error> {
        let (org, recipient, list) = self.verify_unsubscribe(link).await?;
        let mut platform = self.store().begin().await?;
        if platform.organization_by_id(org).await?.is_none() {
            return Err(Error::NotFound("organization"));
        }
        let mut tx = platform.enter(&TenantScope::granted(org)).await?;
        let added = tx
            .add_opt_out(&recipient, &list, self.clock().now())
            .await?;
        let event = AuditEvent::success(Actor::anonymous(), "mail.opted_out", "mail_list", &list)
            .with_details(
                serde_json::json!({
                    "recipient": hex_prefix(&recipient),
                    "already": !added,
                })
                .to_string(),
            )
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        crate::telemetry::metrics::mail_delivery("opted_out");
        Ok(Unsubscribed { org, list, added })
    }
}

/// The first 8 bytes of the digest in hex: enough to tell opt-outs apart in the audit log,
/// without the whole digest (which anyone holding the address could recompute and match).
fn hex_prefix(digest: &[u8; 32]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_names_are_bounded_and_plain() {
        for good in ["news", "a", "product-updates.v2", &"x".repeat(64)] {
            assert!(valid_list(good), "{good}");
        }
        for bad in ["", "News", "a b", "a&b=c", "ü", &"x".repeat(65)] {
            assert!(!valid_list(bad), "{bad}");
        }
    }

    #[test]
    fn the_list_cannot_slide_into_the_recipient() {
        let a = signed_parts(&[1; 16], &[2; 32], "ab");
        let b = signed_parts(&[1; 16], &[2; 32], "a");
        assert_ne!(a.concat(), b.concat());
    }
}
