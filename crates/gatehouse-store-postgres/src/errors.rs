//! Driver errors to domain errors: by SQLSTATE class and constraint name, never by message text.

use gatehouse_core::StoreError;

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            if matches!(
                db.constraint(),
                Some("users_email_key" | "operators_email_key")
            ) {
                return StoreError::EmailTaken;
            }
            if db.is_unique_violation() {
                return StoreError::Duplicate;
            }
            if db.code().as_deref().is_some_and(server_unavailable) {
                return StoreError::Unavailable(db.to_string());
            }
            StoreError::Backend(db.to_string())
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        other => StoreError::Backend(other.to_string()),
    }
}

/// A failure to connect, with a TLS refusal (the server's certificate, or a server without TLS)
/// told as a sentence an operator can act on.
pub(crate) fn connect_err(e: sqlx::Error) -> StoreError {
    match tls_refusal(&e) {
        Some(sentence) => StoreError::Unavailable(sentence),
        None => map_err(e),
    }
}

fn tls_refusal(e: &sqlx::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let inner: &(dyn std::error::Error + Send + Sync + 'static) = match e {
        sqlx::Error::Tls(inner) => inner.as_ref(),
        // The handshake's own errors reach the driver as I/O errors around rustls's.
        sqlx::Error::Io(io) => io.get_ref()?,
        _ => return None,
    };
    let Some(tls) = inner.downcast_ref::<rustls::Error>() else {
        return matches!(e, sqlx::Error::Tls(_)).then(|| {
            format!("TLS to PostgreSQL failed ({inner}); check sslmode, and that the server has ssl = on")
        });
    };
    let why = match tls {
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            "the server's certificate is not valid for the host name in the URL, which \
             sslmode=verify-full requires; connect by a name the certificate carries"
        }
        // A CA of the same name that did not sign it shows as a bad signature.
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "the server's certificate is not signed by a CA in sslrootcert (or, without \
             sslrootcert, by a public root)"
        }
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => "the server's certificate is outside its validity period",
        _ => "the TLS handshake with PostgreSQL failed",
    };
    Some(format!("TLS refused: {why} ({tls})"))
}

/// SQLSTATEs that say the server is going away, starting, or out of connections, not that the
/// statement was wrong: a request that meets one is answered 503 `store_unavailable` (and may
/// be tried again), like one that found no server at all. Without this, a request in flight when
/// PostgreSQL is stopped (`57P01`, "terminating connection due to administrator command") was
/// answered 500 `internal_error`.
fn server_unavailable(code: &str) -> bool {
    // Class 08: connection exceptions.
    code.starts_with("08")
        || matches!(
            code,
            // admin_shutdown, crash_shutdown, cannot_connect_now, idle_session_timeout,
            // too_many_connections; and read_only_sql_transaction, what a write meets on a
            // primary demoted by a failover (the pool keeps such a connection until its
            // lifetime ends, so the 503s last until then, or until a restart).
            "57P01" | "57P02" | "57P03" | "57P05" | "53300" | "25006"
        )
}

#[cfg(test)]
mod tests {
    use super::server_unavailable;

    #[test]
    fn shutdown_start_up_and_connection_states_are_unavailable_and_others_are_not() {
        for code in [
            "57P01", "57P02", "57P03", "57P05", "53300", "25006", "08006", "08001", "08000",
        ] {
            assert!(server_unavailable(code), "{code}");
        }
        // A unique violation, a syntax error, a policy refusal, a serialization failure.
        for code in ["23505", "42601", "42501", "40001", "57014"] {
            assert!(!server_unavailable(code), "{code}");
        }
    }
}
