//! Platform operators: separate accounts on their own audience and tier, user import, and
//! impersonation (a 30-minute, never-renewed session whose every action carries both identities).
//! Their own sign-in, second factor and sessions are in `operator_auth`.

use gatehouse_crypto::Argon2Params;
use gatehouse_crypto::SecretString;
use gatehouse_crypto::legacy_hash::{BCRYPT_MAX_COST, BCRYPT_MIN_COST, bcrypt_cost, is_bcrypt};
use uuid::Uuid;

use super::sessions::IssuedSession;
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::context::OperatorCall;
use crate::error::{Error, StoreError};
use crate::ids::{OrgId, UserId, new_uuid};
use crate::inputs::{DisplayName, Email};
use crate::kernel::Kernel;
use crate::scope::TenantScope;
use crate::store::{OperatorRecord, Tier, UserRecord};

/// A user to import with a hash from another system (bcrypt or Argon2id PHC).
#[derive(Debug)]
pub struct ImportedUser {
    pub email: String,
    pub name: String,
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    pub email: String,
    /// `None` when refused; `error` says why.
    pub user_id: Option<UserId>,
    pub error: Option<&'static str>,
}

/// Platform operators: their accounts, sign-in, impersonation and user import.
#[derive(Debug, Clone, Copy)]
pub struct Operators<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Operators);

impl Operators<'_> {
    /// Creates a platform operator (from the CLI).
    pub async fn create(
        &self,
        email: &str,
        name: &str,
        password: SecretString,
    ) -> Result<Uuid, Error> {
        let email = Email::parse(email)?;
        let name = DisplayName::parse("name", name)?;
        let password = self
            .accept_new_password(password, &[email.as_str()], &[name.as_str()])
            .await?;
        let hash = self.passwords().hash(password.secret().clone()).await?;
        let record = OperatorRecord {
            id: new_uuid(self.clock()),
            email: email.as_str().to_owned(),
            name: name.as_str().to_owned(),
            password_hash: hash,
            created_at: self.clock().now(),
            totp: None,
        };
        let mut tx = self.store().begin().await?;
        tx.insert_operator(&record).await?;
        let event = AuditEvent::success(
            Actor::system("cli"),
            "operator.created",
            "operator",
            record.id,
        );
        let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(record.id)
    }

    /// Starts impersonating a member of an organisation. The session lasts the impersonation
    /// lifetime, has no refresh token, and is recorded on both the operators' and the
    /// organisation's chain with the reason.
    pub async fn impersonate(
        &self,
        call: &OperatorCall,
        user: UserId,
        org: OrgId,
        reason: &str,
    ) -> Result<IssuedSession, Error> {
        let OperatorCall {
            principal: operator,
            request,
        } = call;
        if operator.tier != Tier::Operator {
            return Err(Error::WrongAudience("only operators impersonate"));
        }
        // A stolen operator token alone must not become a customer's session: the operator
        // shows a recent second factor (or, where none is enrolled or required, password) first.
        if let Some(method) = self.step_up_missing(operator) {
            let mut event = AuditEvent::success(
                operator.actor(),
                "impersonation.step_up_required",
                "user",
                user,
            )
            .with_request(request.request_id.clone());
            event.outcome = Outcome::Denied;
            if let Err(e) = audit::record_operator(self.store(), self.clock(), event).await {
                tracing::error!(error = %e, "could not record a refused impersonation");
            }
            return Err(Error::StepUpRequired {
                permission: "impersonation",
                method,
            });
        }
        let reason = reason.trim();
        if reason.len() < 3 || reason.len() > 500 {
            return Err(Error::invalid("reason", "must be 3 to 500 characters"));
        }
        let mut tx = self.store().begin().await?;
        let membership = tx
            .memberships_of_user(user)
            .await?
            .into_iter()
            .find(|m| m.org_id == org)
            .ok_or(Error::NotFound("membership"))?;
        let (session, _refresh) = self.new_session(
            user.as_uuid(),
            Tier::Impersonation,
            Some(org),
            Some(operator.subject),
            Some(reason.to_owned()),
            "impersonation".to_owned(),
            request,
        )?;
        tx.insert_session(&session).await?;
        // An impersonation never carries the user's second factor: step-up permissions stay shut.
        let flags = self.user_flags(tx.as_mut(), &session, request).await?;
        let details = format!(
            "{{\"user_id\":\"{user}\",\"organization_id\":\"{org}\",\"session_id\":\"{}\",\"reason\":{}}}",
            session.id,
            serde_json::Value::String(reason.to_owned())
        );
        let op_event = AuditEvent::success(
            operator.actor(),
            "impersonation.started",
            "session",
            session.id,
        )
        .with_details(details.clone())
        .with_request(request.request_id.clone());
        let _ = audit::append_operator(tx.as_mut(), self.clock(), op_event).await?;
        let mut tx = tx.enter(&TenantScope::granted(org)).await?;
        let mut actor = Actor::user(user);
        actor.impersonator_id = Some(operator.subject.to_string());
        let org_event = AuditEvent::success(actor, "impersonation.started", "session", session.id)
            .with_details(details)
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), org_event).await?;
        tx.commit(proof).await?;
        self.issue(
            &session,
            vec![membership.role.as_str().to_owned()],
            None,
            false,
            flags,
        )
        .await
    }

    /// Imports users with hashes from another system. Each is checked and inserted on its own;
    /// a bcrypt hash is replaced by Argon2id at the user's first sign-in.
    /// Hashes below today's floor are refused unless `allow_weak` (each is replaced at its
    /// user's first sign-in anyway); hashes dearer than the ceiling always are.
    pub async fn import_users(
        &self,
        call: &OperatorCall,
        users: Vec<ImportedUser>,
        allow_weak: bool,
    ) -> Result<Vec<ImportOutcome>, Error> {
        let OperatorCall {
            principal: operator,
            request,
        } = call;
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            let email = match Email::parse(&u.email) {
                Ok(e) => e,
                Err(_) => {
                    out.push(refused(u.email, "invalid_email"));
                    continue;
                }
            };
            let Ok(name) = DisplayName::parse("name", &u.name) else {
                out.push(refused(u.email, "invalid_name"));
                continue;
            };
            match imported_hash_cost(&u.password_hash, &self.passwords().params()) {
                HashCost::Unreadable => {
                    out.push(refused(u.email, "unsupported_hash"));
                    continue;
                }
                HashCost::TooCostly => {
                    out.push(refused(u.email, "hash_too_costly"));
                    continue;
                }
                HashCost::Weak if !allow_weak => {
                    out.push(refused(u.email, "weak_hash"));
                    continue;
                }
                HashCost::Weak | HashCost::Fine => {}
            }
            let record = UserRecord {
                id: UserId::new(self.clock()),
                email: email.as_str().to_owned(),
                name: name.as_str().to_owned(),
                password_hash: u.password_hash,
                created_at: self.clock().now(),
                email_verified_at: None,
                disabled_at: None,
            };
            let mut tx = self.store().begin().await?;
            match tx.insert_user(&record).await {
                Ok(()) => {}
                Err(StoreError::EmailTaken) => {
                    out.push(refused(u.email, "email_taken"));
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let event = AuditEvent::success(operator.actor(), "user.imported", "user", record.id)
                .with_details(format!(
                    "{{\"hash\":\"{}\"}}",
                    if is_bcrypt(&record.password_hash) {
                        "bcrypt"
                    } else {
                        "argon2id"
                    }
                ))
                .with_request(request.request_id.clone());
            let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
            tx.commit(proof).await?;
            out.push(ImportOutcome {
                email: record.email,
                user_id: Some(record.id),
                error: None,
            });
        }
        Ok(out)
    }
}

/// Where an imported hash's cost falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashCost {
    Unreadable,
    /// Below today's floor: bcrypt under cost 10, Argon2id under OWASP's minimum.
    Weak,
    Fine,
    /// Dearer than a sign-in may be (see `stored_hash_affordable`).
    TooCostly,
}

pub(crate) fn imported_hash_cost(hash: &str, configured: &Argon2Params) -> HashCost {
    if let Some(cost) = bcrypt_cost(hash) {
        return match cost {
            c if c > BCRYPT_MAX_COST => HashCost::TooCostly,
            c if c < BCRYPT_MIN_COST => HashCost::Weak,
            _ => HashCost::Fine,
        };
    }
    // Only plain Argon2id: another system's pepper (`keyid`) could never be verified here.
    if hash.len() >= 512 || !Argon2Params::is_plain_argon2id(hash) {
        return HashCost::Unreadable;
    }
    match Argon2Params::of_hash(hash) {
        Some(p) if !p.within(&hash_ceiling(configured)) => HashCost::TooCostly,
        Some(p) if !p.meets_owasp_minimum() => HashCost::Weak,
        Some(_) => HashCost::Fine,
        None => HashCost::Unreadable,
    }
}

/// The dearest hash a sign-in verifies: the fixed ceiling, or the configured cost where an
/// operator chose a dearer one (Gatehouse's own hashes must always verify).
fn hash_ceiling(configured: &Argon2Params) -> Argon2Params {
    Argon2Params::CEILING.max(configured)
}

/// Whether verifying against a stored `hash` costs no more than the ceiling allows: checked
/// before a sign-in's verification is queued, so a hash stored before the import bounds existed
/// cannot pin the hashing pool. A hash whose cost cannot be read is not verified either.
pub(crate) fn stored_hash_affordable(hash: &str, configured: &Argon2Params) -> bool {
    match bcrypt_cost(hash) {
        Some(cost) => cost <= BCRYPT_MAX_COST,
        None => Argon2Params::of_hash(hash).is_some_and(|p| p.within(&hash_ceiling(configured))),
    }
}

fn refused(email: String, why: &'static str) -> ImportOutcome {
    ImportOutcome {
        email,
        user_id: None,
        error: Some(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_import_refuses_hashes_no_sign_in_can_verify() {
        // Found by the `password_hash` fuzz target (fuzz/): both were accepted as weak hashes,
        // and every sign-in of the imported user then failed.
        let configured = Argon2Params::MINIMUM;
        let cheap = Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let pw = SecretString::from("correct horse battery".to_owned());
        let argon2 = gatehouse_crypto::hash_password(&pw, &cheap).unwrap();
        let bcrypt = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        for fine in [argon2.as_str(), bcrypt] {
            assert_eq!(
                imported_hash_cost(fine, &configured),
                HashCost::Weak,
                "{fine}"
            );
            assert!(stored_hash_affordable(fine, &configured), "{fine}");
        }
        for bad in [
            argon2.replace("$v=19$", "$v=18$"),
            bcrypt.replace("$05$", "$03$"),
        ] {
            assert_eq!(
                imported_hash_cost(&bad, &configured),
                HashCost::Unreadable,
                "{bad}"
            );
            assert!(!stored_hash_affordable(&bad, &configured), "{bad}");
        }
    }
}
