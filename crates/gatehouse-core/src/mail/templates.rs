//! The messages Gatehouse sends, in plain text and HTML. Product name and base URL come from
//! configuration; every value placed in HTML is escaped.

use super::MailSettings;

/// A message to render.
#[derive(Clone, Copy)]
pub enum Template<'a> {
    /// A link carrying a one-time reset token.
    PasswordReset { token: &'a str, minutes: i64 },
    /// A link carrying a one-time verification token.
    VerifyEmail { token: &'a str, hours: i64 },
    /// Sent after a password was changed or reset: no link, just the notice.
    PasswordChanged,
    /// Sent to a registered address that someone tried to sign up with: sign-up answers the
    /// same for new and registered addresses, so the owner hears of it here instead.
    AccountExists,
    /// A link carrying a one-time invitation token into an organisation.
    Invitation {
        token: &'a str,
        organization: &'a str,
        hours: i64,
    },
    /// Sent to an organisation's owners and admins when Gatehouse disabled a webhook endpoint
    /// that kept failing.
    WebhookDisabled { url: &'a str, since_hours: i64 },
}

impl std::fmt::Debug for Template<'_> {
    // The tokens are live credentials: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PasswordReset { .. } => "Template::PasswordReset([redacted])",
            Self::VerifyEmail { .. } => "Template::VerifyEmail([redacted])",
            Self::PasswordChanged => "Template::PasswordChanged",
            Self::AccountExists => "Template::AccountExists",
            Self::Invitation { .. } => "Template::Invitation([redacted])",
            Self::WebhookDisabled { .. } => "Template::WebhookDisabled",
        })
    }
}

impl Template<'_> {
    /// The template's name, kept with the queued message (never its content).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PasswordReset { .. } => "password_reset",
            Self::VerifyEmail { .. } => "verify_email",
            Self::PasswordChanged => "password_changed",
            Self::AccountExists => "account_exists",
            Self::Invitation { .. } => "invitation",
            Self::WebhookDisabled { .. } => "webhook_disabled",
        }
    }
}

fn link(settings: &MailSettings, path: &str, token: &str) -> String {
    format!(
        "{}/{path}?token={token}",
        settings.base_url.trim_end_matches('/')
    )
}

fn html_page(product: &str, paragraphs: &[String], action: Option<(&str, &str)>) -> String {
    let mut body = String::new();
    for p in paragraphs {
        body.push_str(&format!("<p>{}</p>\n", crate::html::escape(p)));
    }
    if let Some((label, href)) = action {
        body.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>\n",
            crate::html::escape(href),
            crate::html::escape(label)
        ));
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{p}</title></head>\n<body>\n{body}<p>{p}</p>\n</body></html>\n",
        p = crate::html::escape(product)
    )
}

/// (subject, text, html) for `template`.
#[must_use]
pub fn render(settings: &MailSettings, template: &Template<'_>) -> (String, String, String) {
    let product = &settings.product_name;
    match template {
        Template::PasswordReset { token, minutes } => {
            let url = link(settings, "reset-password", token);
            let lines = [
                format!("Someone asked to reset the password of your {product} account."),
                format!(
                    "The link below works once, for {minutes} minutes. If you did not ask, ignore \
                     this message: your password stays as it is."
                ),
            ];
            (
                format!("Reset your {product} password"),
                format!("{}\n\n{}\n\n{url}\n\n{product}\n", lines[0], lines[1]),
                html_page(product, &lines, Some(("Choose a new password", &url))),
            )
        }
        Template::VerifyEmail { token, hours } => {
            let url = link(settings, "verify-email", token);
            let lines = [
                format!("Please confirm this address for your {product} account."),
                format!("The link below works once, for {hours} hours."),
            ];
            (
                format!("Confirm your email for {product}"),
                format!("{}\n\n{}\n\n{url}\n\n{product}\n", lines[0], lines[1]),
                html_page(product, &lines, Some(("Confirm this address", &url))),
            )
        }
        Template::AccountExists => {
            let url = format!("{}/sign-in", settings.base_url.trim_end_matches('/'));
            let lines = [
                format!(
                    "Someone tried to create a {product} account with this address, which already \
                     has one. No new account was made."
                ),
                "If it was you, sign in, or reset your password if you have forgotten it. If it \
                 was not, you need do nothing."
                    .to_owned(),
            ];
            (
                format!("Your {product} account already exists"),
                format!("{}\n\n{}\n\n{url}\n\n{product}\n", lines[0], lines[1]),
                html_page(product, &lines, Some(("Sign in", &url))),
            )
        }
        Template::Invitation {
            token,
            organization,
            hours,
        } => {
            let url = link(settings, "accept-invitation", token);
            let lines = [
                format!("You are invited to join {organization} on {product}."),
                format!(
                    "The link below works once, for {hours} hours. If you did not expect this, \
                     ignore this message."
                ),
            ];
            (
                format!("Join {organization} on {product}"),
                format!("{}\n\n{}\n\n{url}\n\n{product}\n", lines[0], lines[1]),
                html_page(product, &lines, Some(("Accept the invitation", &url))),
            )
        }
        Template::WebhookDisabled { url, since_hours } => {
            let lines = [
                format!(
                    "A webhook endpoint of your organisation on {product} failed every delivery \
                     for {since_hours} hours, so it was disabled: {url}"
                ),
                "Events are no longer sent to it. Fix the receiver, then enable the endpoint \
                 again and replay what it missed from its delivery log."
                    .to_owned(),
            ];
            (
                format!("A {product} webhook endpoint was disabled"),
                format!("{}\n\n{}\n\n{product}\n", lines[0], lines[1]),
                html_page(product, &lines, None),
            )
        }
        Template::PasswordChanged => {
            let lines = [
                format!("The password of your {product} account was just changed."),
                "Every other session was signed out. If this was not you, reset your password \
                 now and contact your administrator."
                    .to_owned(),
            ];
            (
                format!("Your {product} password was changed"),
                format!("{}\n\n{}\n\n{product}\n", lines[0], lines[1]),
                html_page(product, &lines, None),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_use_the_base_url_and_html_is_escaped() {
        let settings = MailSettings {
            product_name: "Acme <Cloud>".into(),
            base_url: "https://acme.test/".into(),
            ..MailSettings::default()
        };
        let (subject, text, html) = render(
            &settings,
            &Template::PasswordReset {
                token: "tok123",
                minutes: 30,
            },
        );
        assert_eq!(subject, "Reset your Acme <Cloud> password");
        assert!(text.contains("https://acme.test/reset-password?token=tok123"));
        assert!(html.contains("href=\"https://acme.test/reset-password?token=tok123\""));
        assert!(html.contains("Acme &lt;Cloud&gt;"));
        assert!(!html.contains("Acme <Cloud>"));
    }
}
