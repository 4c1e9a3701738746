//! Self-service signup: a new user and a new organisation with that user as its owner, created in
//! one transaction.
//!
//! A registered address gets the same answer as a new one (the HTTP layer says "accepted" either
//! way, with no ids); its owner is told by mail instead, at most once a minute. Both paths hash
//! the password first, so the answer's timing differs only by the store work.

use gatehouse_crypto::SecretString;

use crate::StoreError;
use crate::audit::{self, Actor, AuditEvent};
use crate::context::RequestContext;
use crate::error::Error;
use crate::ids::{OrgId, UserId};
use crate::inputs::{DisplayName, Email};
use crate::kernel::Kernel;
use crate::keyring::PersonalData;
use crate::mail::Template;
use crate::scope::TenantScope;
use crate::store::{MembershipRecord, OrganizationRecord, Role, UserRecord};

#[derive(Debug)]
pub struct SignupInput {
    pub email: String,
    pub password: SecretString,
    pub name: String,
    pub organization_name: String,
}

/// What sign-up did. Callers must not tell the two apart to the person signing up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    Created {
        user_id: UserId,
        organization_id: OrgId,
    },
    /// The address was registered: nothing was made, and its owner was mailed.
    AlreadyRegistered,
}

impl SignupOutcome {
    /// The new organisation, when one was made.
    #[must_use]
    pub fn organization_id(&self) -> Option<OrgId> {
        match self {
            Self::Created {
                organization_id, ..
            } => Some(*organization_id),
            Self::AlreadyRegistered => None,
        }
    }
}

/// Self-service sign-up: a person and their first organisation.
#[derive(Debug, Clone, Copy)]
pub struct Signup<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Signup);

impl Signup<'_> {
    pub async fn register(
        &self,
        input: SignupInput,
        request: &RequestContext,
    ) -> Result<SignupOutcome, Error> {
        let email = Email::parse(&input.email)?;
        let name = DisplayName::parse("name", &input.name)?;
        let org_name = DisplayName::parse("organization_name", &input.organization_name)?;
        let password = self
            .accept_new_password(
                input.password,
                &[email.as_str()],
                &[name.as_str(), org_name.as_str()],
            )
            .await?;
        // Hash before touching the store: a duplicate email then costs the same time as a new one.
        let password_hash = self.passwords().hash(password.secret().clone()).await?;

        let now = self.clock().now();
        let user = UserRecord {
            id: UserId::new(self.clock()),
            email: email.as_str().to_owned(),
            name: name.as_str().to_owned(),
            password_hash,
            created_at: now,
            email_verified_at: None,
            disabled_at: None,
        };
        let org = OrganizationRecord {
            id: OrgId::new(self.clock()),
            name: org_name.as_str().to_owned(),
            created_at: now,
            keys_shredded_at: None,
        };
        let mut tx = self.store().begin().await?;
        if let Some(existing) = tx.user_by_email(email.as_str()).await? {
            self.tell_the_owner(tx, &existing, request).await?;
            return Ok(SignupOutcome::AlreadyRegistered);
        }
        match tx.insert_user(&user).await {
            // Registered in the meantime by a parallel sign-up, whose own mail goes out.
            Err(StoreError::EmailTaken) => return Ok(SignupOutcome::AlreadyRegistered),
            other => other?,
        }
        tx.insert_organization(&org).await?;
        self.queue_email_verification(tx.as_mut(), &user).await?;
        // The founder is the new organisation's owner: the one grant signup is allowed to make.
        let scope = TenantScope::granted(org.id);
        let mut tx = tx.enter(&scope).await?;
        tx.insert_membership(&MembershipRecord {
            org_id: org.id,
            user_id: user.id,
            role: Role::Owner,
            created_at: now,
            sessions_ended_at: None,
        })
        .await?;
        let subject = user.id.to_string();
        let personal = PersonalData {
            ip: request.ip.clone(),
            user_agent: request.user_agent.clone(),
        };
        let sealed = self
            .keyring()
            .seal_personal(tx.as_mut(), &subject, &personal)
            .await?;
        let event = AuditEvent::success(
            Actor::user(user.id),
            "organization.created",
            "organization",
            org.id,
        )
        .with_details(format!("{{\"owner\":\"{}\"}}", user.id))
        .with_request(request.request_id.clone())
        .with_personal(&subject, sealed);
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        tracing::info!(user_id = %user.id, org_id = %org.id, "signup created a user and an organisation");
        self.mail_queued();
        Ok(SignupOutcome::Created {
            user_id: user.id,
            organization_id: org.id,
        })
    }

    /// Mails the owner of a registered address that someone tried to sign up with it.
    async fn tell_the_owner(
        &self,
        mut tx: Box<dyn crate::store::PlatformTx>,
        owner: &UserRecord,
        request: &RequestContext,
    ) -> Result<(), Error> {
        if !self.account_mail_allowed(owner.id, "account_exists").await {
            return Ok(());
        }
        self.enqueue_mail(tx.as_mut(), &owner.email, Template::AccountExists)
            .await?;
        let event = AuditEvent::success(
            Actor::anonymous(),
            "user.signup_attempted",
            "user",
            owner.id,
        )
        .with_request(request.request_id.clone());
        let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.mail_queued();
        Ok(())
    }
}
