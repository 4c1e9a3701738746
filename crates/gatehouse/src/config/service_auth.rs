//! `[service_auth]`: the secrets the deployment's own services send on `/internal/v1`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gatehouse_crypto::SecretString;
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};
use crate::keyfile;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceAuthConfig {
    /// Files each holding a service secret (base64 of 32 random bytes, mode 0600), sent by your
    /// services as `X-Service-Auth` on `/internal/v1`. Two during a rotation; none disables the
    /// service API. With `apps`, up to two per app.
    pub secret_files: Vec<PathBuf>,
    /// Binds a service (a secret file's stem) to a registered app's audience (ASVS 9.2.4): a
    /// person's token the service presents for on-behalf-of or to the check API must have been
    /// issued for that app (`resource` on refresh). Several stems may name the same app (its
    /// current secret and, while rotating, the next). Either every secret file is bound or none
    /// is: with none, services present tokens for Gatehouse's own audience, as on `/v1`. The
    /// audiences are not looked up in the app registry at load (the database may not be
    /// reachable yet, and an operator may register the app after); posture control B2 warns
    /// about one no app is registered with, and calls for it are refused until one is.
    pub apps: BTreeMap<String, String>,
}

/// One service secret: the service's name (the file's stem, as the audit trail records it) and
/// the text the header must carry (the file's base64).
#[derive(Debug, Clone)]
pub struct ServiceSecret {
    pub name: String,
    pub secret: SecretString,
    /// The registered app's audience the service is bound to (`service_auth.apps`).
    pub app: Option<String>,
}

/// Reads each secret file once (mode 0600, base64 of 32 bytes) and binds each to its app, if
/// `apps` names it. `identity` is what an app's audience must differ from.
pub(super) fn validate(
    c: &ServiceAuthConfig,
    identity: &gatehouse_core::identity::IdentitySettings,
) -> Result<Vec<ServiceSecret>, ConfigError> {
    // Two is a rotation (the current secret and the next): more unbound secrets would be
    // services that cannot be told apart by what they may do. Bound, each app rotates its own.
    if c.apps.is_empty() && c.secret_files.len() > 2 {
        return refuse(
            "service_auth.secret_files: at most two (the current secret and, while rotating, the next); to run several services, bind each secret to its app in service_auth.apps",
        );
    }
    let secrets = c
        .secret_files
        .iter()
        .map(|path| {
            let secret = keyfile::secret_text(path)
                .and_then(|text| {
                    gatehouse_crypto::Key32::from_base64(text.expose())
                        .map(|_| text)
                        .map_err(|e| format!("{} {e}", path.display()))
                })
                .map_err(|e| ConfigError(format!("service_auth.secret_files: {e}")))?;
            let name = path.file_stem().map_or_else(
                || "service".to_owned(),
                |s| s.to_string_lossy().into_owned(),
            );
            let app = c.apps.get(&name).cloned();
            Ok(ServiceSecret { name, secret, app })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    for (name, audience) in &c.apps {
        if !secrets.iter().any(|s| &s.name == name) {
            return refuse(format!(
                "service_auth.apps.{name}: no secret file is named {name} (a service is its secret file's name without the extension)"
            ));
        }
        gatehouse_core::identity::check_app_audience(audience, identity)
            .map_err(|e| ConfigError(format!("service_auth.apps.{name}: {e}")))?;
        let per_app = c.apps.values().filter(|a| *a == audience).count();
        if per_app > 2 {
            return refuse(format!(
                "service_auth.apps.{name}: at most two secrets per app (the current one and, while rotating, the next); {per_app} name {audience}"
            ));
        }
    }
    // A secret added unbound beside bound ones (a rotation's new file under another name, say)
    // would let its holder present tokens for Gatehouse's own audience: refused, not guessed.
    if !c.apps.is_empty()
        && let Some(unbound) = secrets.iter().find(|s| s.app.is_none())
    {
        return refuse(format!(
            "service_auth.apps.{0}: missing; the secret file {0} is bound to no app while others are; bind every secret (several may name the same app) or none",
            unbound.name
        ));
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn secret_file(dir: &std::path::Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[test]
    fn a_service_is_bound_to_an_app_by_its_secrets_name_and_a_valid_audience() {
        let dir = std::env::temp_dir().join(format!("gh-service-apps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let identity = gatehouse_core::identity::IdentitySettings::default();
        let config = |apps: &[(&str, &str)]| ServiceAuthConfig {
            secret_files: vec![
                secret_file(&dir, "billing.key"),
                secret_file(&dir, "ops.key"),
            ],
            apps: apps
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let secrets = validate(
            &config(&[
                ("billing", "https://billing.example.com"),
                ("ops", "urn:example:ops"),
            ]),
            &identity,
        )
        .unwrap();
        let app_of = |name: &str| {
            secrets
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.app.clone())
        };
        assert_eq!(
            app_of("billing").as_deref(),
            Some("https://billing.example.com")
        );
        assert_eq!(app_of("ops").as_deref(), Some("urn:example:ops"));
        for (apps, says) in [
            (
                &[("billing", "https://billing.example.com")][..],
                "the secret file ops is bound to no app while others are",
            ),
            (
                &[("payroll", "https://payroll.example.com")][..],
                "no secret file is named payroll",
            ),
            (&[("billing", "billing")][..], "absolute URI"),
            (&[("billing", "gatehouse")][..], "absolute URI"),
            (
                &[("billing", "https://billing.example.com#x")][..],
                "fragment",
            ),
        ] {
            let refused = validate(&config(apps), &identity).unwrap_err().0;
            assert!(
                refused.starts_with("service_auth.apps.") && refused.contains(says),
                "{refused}"
            );
        }
        // Bound: two secrets per app (a rotation each), so several services fit.
        let rotating = ServiceAuthConfig {
            secret_files: ["billing.key", "billing-next.key", "reports.key"]
                .iter()
                .map(|n| secret_file(&dir, n))
                .collect(),
            apps: [
                ("billing", "https://billing.example.com"),
                ("billing-next", "https://billing.example.com"),
                ("reports", "urn:example:reports"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        };
        let secrets = validate(&rotating, &identity).unwrap();
        assert_eq!(secrets.len(), 3);
        assert!(
            secrets
                .iter()
                .filter(|s| s.name.starts_with("billing"))
                .all(|s| s.app.as_deref() == Some("https://billing.example.com"))
        );
        let unbound = ServiceAuthConfig {
            apps: BTreeMap::new(),
            ..rotating.clone()
        };
        let refused = validate(&unbound, &identity).unwrap_err().0;
        assert!(refused.contains("at most two"), "{refused}");
        let mut three = rotating;
        three
            .secret_files
            .push(secret_file(&dir, "billing-third.key"));
        three.apps.insert(
            "billing-third".to_owned(),
            "https://billing.example.com".to_owned(),
        );
        let refused = validate(&three, &identity).unwrap_err().0;
        assert!(refused.contains("at most two secrets per app"), "{refused}");
        let own = gatehouse_core::identity::IdentitySettings {
            audience: "urn:gatehouse:self".to_owned(),
            ..Default::default()
        };
        let refused = validate(&config(&[("billing", "urn:gatehouse:self")]), &own)
            .unwrap_err()
            .0;
        assert!(refused.contains("Gatehouse's own audience"), "{refused}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
