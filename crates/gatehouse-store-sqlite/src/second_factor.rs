//! Second factors, one-time tokens, the platform data key, fresh-authentication times and the mail
//! outbox in SQLite. All are platform rows: no statement here names an organisation.

use gatehouse_core::store::{
    MailBacklog, MailRecord, OneTimeTokenRecord, PlatformKeyRecord, TokenPurpose, TotpFactorRecord,
};
use gatehouse_core::{StoreError, UserId};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{micros, opt_time_col, time_col, u32_col, uuid_col};

/// How much of a delivery error the outbox keeps, in characters.
const MAX_ERROR_CHARS: usize = 500;

/// TOTP steps are `u64` in the domain and INTEGER (i64) here: a step past `i64::MAX` is refused,
/// never wrapped.
fn step(s: u64) -> Result<i64, StoreError> {
    i64::try_from(s).map_err(|_| StoreError::Backend(format!("totp step {s} out of range")))
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
    row: &'r SqliteRow,
    col: &str,
) -> Result<T, StoreError> {
    row.try_get(col).map_err(map_err)
}

fn platform_key(row: &SqliteRow) -> Result<PlatformKeyRecord, StoreError> {
    Ok(PlatformKeyRecord {
        version: u32_col(row, "version")?,
        wrapped: get(row, "wrapped")?,
        kek_version: u32_col(row, "kek_version")?,
        created_at: time_col(row, "created_at")?,
    })
}

fn totp_factor(row: &SqliteRow) -> Result<TotpFactorRecord, StoreError> {
    let last: i64 = get(row, "last_step")?;
    Ok(TotpFactorRecord {
        user_id: UserId::from_uuid(uuid_col(row, "user_id")?),
        envelope: get(row, "envelope")?,
        created_at: time_col(row, "created_at")?,
        confirmed_at: opt_time_col(row, "confirmed_at")?,
        last_step: u64::try_from(last).map_err(|_| StoreError::Corrupt("last_step".into()))?,
    })
}

fn one_time_token(row: &SqliteRow) -> Result<OneTimeTokenRecord, StoreError> {
    let purpose: String = get(row, "purpose")?;
    Ok(OneTimeTokenRecord {
        digest: get(row, "digest")?,
        purpose: TokenPurpose::parse(&purpose)
            .ok_or_else(|| StoreError::Corrupt(format!("token purpose {purpose:?}")))?,
        subject_id: uuid_col(row, "subject_id")?,
        detail: get(row, "detail")?,
        created_at: time_col(row, "created_at")?,
        expires_at: time_col(row, "expires_at")?,
        used_at: opt_time_col(row, "used_at")?,
    })
}

fn mail(row: &SqliteRow) -> Result<MailRecord, StoreError> {
    Ok(MailRecord {
        id: uuid_col(row, "id")?,
        envelope: get(row, "envelope")?,
        created_at: time_col(row, "created_at")?,
        attempts: u32_col(row, "attempts")?,
        next_attempt_at: time_col(row, "next_attempt_at")?,
        sent_at: opt_time_col(row, "sent_at")?,
        last_error: get(row, "last_error")?,
    })
}

pub(crate) async fn set_email_verified(
    c: &mut SqliteConnection,
    user: UserId,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE users SET email_verified_at = ? WHERE id = ? AND email_verified_at IS NULL",
    )
    .bind(micros(at))
    .bind(user.as_uuid())
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn platform_keys(
    c: &mut SqliteConnection,
) -> Result<Vec<PlatformKeyRecord>, StoreError> {
    let rows = sqlx::query("SELECT * FROM platform_keys ORDER BY version")
        .fetch_all(c)
        .await
        .map_err(map_err)?;
    rows.iter().map(platform_key).collect()
}

pub(crate) async fn insert_platform_key(
    c: &mut SqliteConnection,
    k: &PlatformKeyRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO platform_keys (version, wrapped, kek_version, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(i64::from(k.version))
    .bind(&k.wrapped)
    .bind(i64::from(k.kek_version))
    .bind(micros(k.created_at))
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn rewrap_platform_key(
    c: &mut SqliteConnection,
    version: u32,
    wrapped: &[u8],
    kek_version: u32,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE platform_keys SET wrapped = ?, kek_version = ? WHERE version = ?")
        .bind(wrapped)
        .bind(i64::from(kek_version))
        .bind(i64::from(version))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn totp_factor_of(
    c: &mut SqliteConnection,
    user: UserId,
) -> Result<Option<TotpFactorRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM totp_factors WHERE user_id = ?")
        .bind(user.as_uuid())
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.as_ref().map(totp_factor).transpose()
}

pub(crate) async fn put_pending_totp(
    c: &mut SqliteConnection,
    f: &TotpFactorRecord,
) -> Result<(), StoreError> {
    if f.confirmed_at.is_some() {
        return Err(StoreError::Backend(
            "refused: a pending TOTP factor cannot already be confirmed".into(),
        ));
    }
    // An unconfirmed factor is replaced; a confirmed one is left alone and reported.
    let done = sqlx::query(
        "INSERT INTO totp_factors (user_id, envelope, created_at, confirmed_at, last_step) \
         VALUES (?, ?, ?, NULL, ?) ON CONFLICT (user_id) DO UPDATE SET \
         envelope = excluded.envelope, created_at = excluded.created_at, \
         last_step = excluded.last_step WHERE totp_factors.confirmed_at IS NULL",
    )
    .bind(f.user_id.as_uuid())
    .bind(&f.envelope)
    .bind(micros(f.created_at))
    .bind(step(f.last_step)?)
    .execute(c)
    .await
    .map_err(map_err)?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Duplicate)
    }
}

pub(crate) async fn confirm_totp(
    c: &mut SqliteConnection,
    user: UserId,
    seed: &[u8],
    s: u64,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE totp_factors SET confirmed_at = ?, last_step = ? \
         WHERE user_id = ? AND confirmed_at IS NULL AND envelope = ?",
    )
    .bind(micros(at))
    .bind(step(s)?)
    .bind(user.as_uuid())
    .bind(seed)
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn use_totp_step(
    c: &mut SqliteConnection,
    user: UserId,
    s: u64,
) -> Result<bool, StoreError> {
    let s = step(s)?;
    // One conditional statement: of two uses of the same step, only one can match.
    let done = sqlx::query(
        "UPDATE totp_factors SET last_step = ?1 \
         WHERE user_id = ?2 AND confirmed_at IS NOT NULL AND last_step < ?1",
    )
    .bind(s)
    .bind(user.as_uuid())
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn delete_totp(
    c: &mut SqliteConnection,
    user: UserId,
) -> Result<bool, StoreError> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
        .bind(user.as_uuid())
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
    let done = sqlx::query("DELETE FROM totp_factors WHERE user_id = ?")
        .bind(user.as_uuid())
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn replace_recovery_codes(
    c: &mut SqliteConnection,
    user: UserId,
    digests: &[Vec<u8>],
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
        .bind(user.as_uuid())
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
    for digest in digests {
        sqlx::query("INSERT INTO recovery_codes (digest, user_id, created_at) VALUES (?, ?, ?)")
            .bind(digest)
            .bind(user.as_uuid())
            .bind(micros(at))
            .execute(&mut *c)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

pub(crate) async fn use_recovery_code(
    c: &mut SqliteConnection,
    user: UserId,
    digest: &[u8],
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE recovery_codes SET used_at = ? WHERE digest = ? AND user_id = ? AND used_at IS NULL",
    )
    .bind(micros(at))
    .bind(digest)
    .bind(user.as_uuid())
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn recovery_codes_left(
    c: &mut SqliteConnection,
    user: UserId,
) -> Result<u32, StoreError> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL")
            .bind(user.as_uuid())
            .fetch_one(c)
            .await
            .map_err(map_err)?;
    u32::try_from(n).map_err(|_| StoreError::Corrupt("recovery code count".into()))
}

pub(crate) async fn insert_one_time_token(
    c: &mut SqliteConnection,
    t: &OneTimeTokenRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO one_time_tokens (digest, purpose, subject_id, detail, created_at, expires_at, \
         used_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&t.digest)
    .bind(t.purpose.as_str())
    .bind(t.subject_id)
    .bind(&t.detail)
    .bind(micros(t.created_at))
    .bind(micros(t.expires_at))
    .bind(t.used_at.map(micros))
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn one_time_token_by_digest(
    c: &mut SqliteConnection,
    digest: &[u8],
) -> Result<Option<OneTimeTokenRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM one_time_tokens WHERE digest = ?")
        .bind(digest)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.as_ref().map(one_time_token).transpose()
}

pub(crate) async fn consume_one_time_token(
    c: &mut SqliteConnection,
    digest: &[u8],
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE one_time_tokens SET used_at = ? WHERE digest = ? AND used_at IS NULL")
            .bind(micros(at))
            .bind(digest)
            .execute(c)
            .await
            .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn consume_tokens_of(
    c: &mut SqliteConnection,
    subject: Uuid,
    purpose: TokenPurpose,
    at: OffsetDateTime,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE one_time_tokens SET used_at = ? \
         WHERE subject_id = ? AND purpose = ? AND used_at IS NULL",
    )
    .bind(micros(at))
    .bind(subject)
    .bind(purpose.as_str())
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected())
}

pub(crate) async fn set_session_auth(
    c: &mut SqliteConnection,
    id: Uuid,
    auth_at: OffsetDateTime,
    mfa_at: Option<OffsetDateTime>,
) -> Result<bool, StoreError> {
    // Live: unrevoked, and unexpired at the time of the check. A check without a second factor
    // keeps the last one's time.
    let done = sqlx::query(
        "UPDATE sessions SET auth_at = ?1, mfa_at = coalesce(?2, mfa_at) \
         WHERE id = ?3 AND revoked_at IS NULL AND expires_at > ?1",
    )
    .bind(micros(auth_at))
    .bind(mfa_at.map(micros))
    .bind(id)
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn enqueue_mail(
    c: &mut SqliteConnection,
    m: &MailRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mail_outbox (id, envelope, created_at, attempts, next_attempt_at, sent_at, \
         last_error) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(m.id)
    .bind(&m.envelope)
    .bind(micros(m.created_at))
    .bind(i64::from(m.attempts))
    .bind(micros(m.next_attempt_at))
    .bind(m.sent_at.map(micros))
    .bind(m.last_error.as_deref().map(truncated))
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

/// Leases the due messages: the caller runs this in a `BEGIN IMMEDIATE` transaction of its own,
/// so no other writer reads them between the selection and the update.
pub(crate) async fn claim_due_mail(
    c: &mut SqliteConnection,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: u32,
) -> Result<Vec<MailRecord>, StoreError> {
    let rows = sqlx::query(
        "UPDATE mail_outbox SET next_attempt_at = ?1 WHERE id IN (\
           SELECT id FROM mail_outbox WHERE sent_at IS NULL AND next_attempt_at <= ?2 \
           ORDER BY created_at, id LIMIT ?3) \
         RETURNING *",
    )
    .bind(micros(lease_until))
    .bind(micros(now))
    .bind(i64::from(limit))
    .fetch_all(c)
    .await
    .map_err(map_err)?;
    let mut claimed = rows.iter().map(mail).collect::<Result<Vec<_>, _>>()?;
    // RETURNING gives no order: oldest first again.
    claimed.sort_by_key(|m| (m.created_at, m.id));
    Ok(claimed)
}

pub(crate) async fn mail_delivered(
    c: &mut SqliteConnection,
    id: Uuid,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    // The sealed body goes as soon as it is delivered; only the bookkeeping stays.
    sqlx::query(
        "UPDATE mail_outbox SET sent_at = ?, envelope = X'', last_error = NULL \
         WHERE id = ? AND sent_at IS NULL",
    )
    .bind(micros(at))
    .bind(id)
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn mail_failed(
    c: &mut SqliteConnection,
    id: Uuid,
    attempts: u32,
    next_attempt_at: OffsetDateTime,
    error: &str,
) -> Result<(), StoreError> {
    // A message another worker delivered meanwhile stays delivered.
    sqlx::query(
        "UPDATE mail_outbox SET attempts = ?, next_attempt_at = ?, last_error = ? \
         WHERE id = ? AND sent_at IS NULL",
    )
    .bind(i64::from(attempts))
    .bind(micros(next_attempt_at))
    .bind(truncated(error))
    .bind(id)
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn mail_backlog(c: &mut SqliteConnection) -> Result<MailBacklog, StoreError> {
    let row = sqlx::query(
        "SELECT count(*) AS pending, coalesce(sum(attempts > 0), 0) AS failing, \
           min(created_at) AS oldest, \
           (SELECT last_error FROM mail_outbox \
             WHERE sent_at IS NULL AND last_error IS NOT NULL \
             ORDER BY created_at DESC, id DESC LIMIT 1) AS last_error \
         FROM mail_outbox WHERE sent_at IS NULL",
    )
    .fetch_one(c)
    .await
    .map_err(map_err)?;
    let count = |col: &str| -> Result<u64, StoreError> {
        let n: i64 = get(&row, col)?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{col} count")))
    };
    Ok(MailBacklog {
        pending: count("pending")?,
        failing: count("failing")?,
        oldest: opt_time_col(&row, "oldest")?,
        last_error: get(&row, "last_error")?,
    })
}

fn truncated(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}
