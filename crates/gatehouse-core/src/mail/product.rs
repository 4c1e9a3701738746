//! The product's own mail through Gatehouse's outbox (F2): raw bodies or a configured template,
//! to one recipient on one of the organisation's lists. Every message carries RFC 8058's
//! one-click unsubscribe headers and a visible link, and is consulted against the opt-out list
//! twice: when queued (an opted-out recipient's message is not queued at all) and again just
//! before each send (one queued before the opt-out is skipped, counted, never sent).

use std::collections::BTreeMap;

use uuid::Uuid;

use super::unsubscribe::valid_list;
use super::{Message, SEAL_KIND, recipient_digest};
use crate::audit::{self, Actor, AuditEvent};
use crate::context::ServiceCall;
use crate::error::Error;
use crate::ids::{OrgId, new_uuid};
use crate::kernel::Kernel;
use crate::scope::TenantScope;
use crate::store::MailRecord;

const MAX_SUBJECT: usize = 200;
const MAX_TEXT: usize = 100 * 1024;
const MAX_HTML: usize = 200 * 1024;
const MAX_VARIABLES: usize = 50;
const MAX_VARIABLE: usize = 1000;

/// A product template from configuration: `{{name}}` placeholders, filled from the call's
/// variables (HTML-escaped in `html`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailTemplate {
    pub name: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// What the message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductBody {
    Raw {
        subject: String,
        text: String,
        html: Option<String>,
    },
    Template {
        name: String,
        variables: BTreeMap<String, String>,
    },
}

/// One message of the product's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductMessage {
    pub org: OrgId,
    pub to: String,
    /// The list the recipient may leave (`news`, `billing-reminders`, ...).
    pub list: String,
    pub body: ProductBody,
}

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Queued(Uuid),
    /// The recipient had opted out of the list: nothing was queued.
    Suppressed,
}

fn plain(field: &'static str, value: &str, max: usize, lines: bool) -> Result<(), Error> {
    let bad = value
        .chars()
        .any(|c| c.is_control() && !(lines && matches!(c, '\n' | '\r' | '\t')));
    if value.is_empty() || value.len() > max || bad {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {max} bytes without control characters"),
        ));
    }
    Ok(())
}

fn address(to: &str) -> Result<(), Error> {
    let ok = to.len() <= 254
        && to.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !to.chars().any(|c| {
            c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '"')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "to",
            "must be one address such as ada@example.com",
        ))
    }
}

/// Replaces each `{{name}}` with its variable (escaped by `escape`); an unknown name is an error,
/// so a typo never sends a message with a hole in it.
fn fill(
    text: &str,
    variables: &BTreeMap<String, String>,
    escape: fn(&str) -> String,
) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let after = after.get(2..).unwrap_or("");
        let end = after
            .find("}}")
            .ok_or_else(|| Error::Internal("a template has an unclosed {{".into()))?;
        let (name, tail) = after.split_at(end);
        let value = variables.get(name.trim()).ok_or_else(|| {
            Error::invalid("variables", format!("the template needs {:?}", name.trim()))
        })?;
        out.push_str(&escape(value));
        rest = tail.get(2..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(out)
}

impl Kernel {
    fn product_body(&self, body: &ProductBody) -> Result<(String, String, Option<String>), Error> {
        let (subject, text, html) = match body {
            ProductBody::Raw {
                subject,
                text,
                html,
            } => (subject.clone(), text.clone(), html.clone()),
            ProductBody::Template { name, variables } => {
                if variables.len() > MAX_VARIABLES
                    || variables
                        .iter()
                        .any(|(k, v)| k.len() > 64 || v.len() > MAX_VARIABLE)
                {
                    return Err(Error::invalid(
                        "variables",
                        format!(
                            "at most {MAX_VARIABLES}, names of 64 and values of {MAX_VARIABLE} bytes"
                        ),
                    ));
                }
                let t = self
                    .mail_settings()
                    .templates
                    .iter()
                    .find(|t| &t.name == name)
                    .ok_or_else(|| {
                        Error::invalid("template", "is not a configured mail template")
                    })?;
                let html = t
                    .html
                    .as_deref()
                    .map(|h| fill(h, variables, crate::html::escape))
                    .transpose()?;
                (
                    fill(&t.subject, variables, str::to_owned)?,
                    fill(&t.text, variables, str::to_owned)?,
                    html,
                )
            }
        };
        plain("subject", &subject, MAX_SUBJECT, false)?;
        plain("text", &text, MAX_TEXT, true)?;
        if let Some(h) = &html {
            plain("html", h, MAX_HTML, true)?;
        }
        Ok((subject, text, html))
    }

    /// Queues a product message for delivery, unless its recipient opted out of its list.
    pub async fn send_product_mail(
        &self,
        call: &ServiceCall,
        m: ProductMessage,
    ) -> Result<Queued, Error> {
        if self.mail_settings().public_url.is_empty() {
            return Err(Error::Conflict(
                "mail.public_url is not configured: the product's mail needs it for its \
                 unsubscribe links",
            ));
        }
        address(&m.to)?;
        if !valid_list(&m.list) {
            return Err(Error::invalid(
                "list",
                "must be 1 to 64 of a-z, 0-9, '.', '_', '-'",
            ));
        }
        let (subject, text, html) = self.product_body(&m.body)?;
        let digest = recipient_digest(&m.to);
        let scope = TenantScope::granted(m.org);
        let mut platform = self.store().begin().await?;
        if platform.organization_by_id(m.org).await?.is_none() {
            return Err(Error::NotFound("organization"));
        }
        let unsubscribe = self.unsubscribe_url(m.org, &digest, &m.list)?;
        let id = new_uuid(self.clock());
        let footer = format!("\n\n--\nTo stop receiving these messages: {unsubscribe}\n");
        let html = html.unwrap_or_else(|| format!("<pre>{}</pre>", crate::html::escape(&text)));
        let message = Message {
            id,
            from: self.mail_settings().from.clone(),
            to: m.to.clone(),
            subject,
            text: format!("{text}{footer}"),
            html: format!(
                "{html}\n<p><a href=\"{}\">Unsubscribe</a></p>\n",
                crate::html::escape(&unsubscribe)
            ),
            headers: vec![
                ("List-Unsubscribe".to_owned(), format!("<{unsubscribe}>")),
                (
                    "List-Unsubscribe-Post".to_owned(),
                    "List-Unsubscribe=One-Click".to_owned(),
                ),
            ],
        };
        let sealed = zeroize::Zeroizing::new(
            serde_json::to_vec(&message).map_err(|e| Error::Internal(e.to_string()))?,
        );
        let envelope = self
            .keyring()
            .seal_platform(SEAL_KIND, &id.to_string(), &sealed)?;
        let now = self.clock().now();
        platform
            .enqueue_mail(&MailRecord {
                id,
                envelope,
                created_at: now,
                attempts: 0,
                next_attempt_at: now,
                sent_at: None,
                last_error: None,
                recipient: digest.to_vec(),
                kind: "product".to_owned(),
                org_id: Some(m.org),
                list: Some(m.list.clone()),
            })
            .await?;
        // The opt-out list is read in the same transaction: an opted-out recipient's message
        // rolls back with it. (An opt-out committed after this read is caught by delivery's own
        // check.)
        let mut tx = platform.enter(&scope).await?;
        if tx.opted_out(&digest, &m.list).await? {
            drop(tx);
            crate::telemetry::metrics::mail_delivery("suppressed");
            return Ok(Queued::Suppressed);
        }
        let event = AuditEvent::success(
            Actor::system(&format!("service:{}", call.service)),
            "mail.queued",
            "mail",
            id,
        )
        .with_details(serde_json::json!({"list": m.list}).to_string())
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.mail_queued();
        Ok(Queued::Queued(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_every_placeholder_or_refuse() {
        let vars: BTreeMap<String, String> = [("name".to_owned(), "<Ada>".to_owned())].into();
        assert_eq!(
            fill("Hi {{ name }}!", &vars, str::to_owned).unwrap(),
            "Hi <Ada>!"
        );
        assert_eq!(
            fill("<b>{{name}}</b>", &vars, crate::html::escape).unwrap(),
            "<b>&lt;Ada&gt;</b>"
        );
        assert!(fill("Hi {{who}}", &vars, str::to_owned).is_err());
        assert!(fill("Hi {{name", &vars, str::to_owned).is_err());
        assert_eq!(
            fill("no placeholders", &vars, str::to_owned).unwrap(),
            "no placeholders"
        );
    }

    #[test]
    fn one_plain_address_only() {
        assert!(address("ada@example.com").is_ok());
        for bad in [
            "",
            "ada",
            "a@b",
            "a@b.com, c@d.com",
            "a@b.com\r\nBcc: x@y.z",
            "<a@b.com>",
            "a b@c.com",
        ] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }
}
