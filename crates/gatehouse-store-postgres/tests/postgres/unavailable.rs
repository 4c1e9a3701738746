//! A transaction whose connection the server ends (as `pg_ctl stop -m fast` ends every one) is
//! refused as `StoreError::Unavailable`, which the HTTP layer answers 503 `store_unavailable`,
//! not as a backend error (500).

use gatehouse_core::StoreError;
use gatehouse_core::store::Store;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use gatehouse_store_tests::Fixture as _;

use crate::fixture::{admin_url, fresh};

#[tokio::test]
async fn a_connection_the_server_ends_mid_transaction_is_unavailable() {
    let fx = fresh().await;
    let mut tx = fx.store.begin().await.unwrap();
    assert!(
        tx.user_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    // The same message a fast shutdown sends each backend (SQLSTATE 57P01).
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{}' AND usename = 'gatehouse_app'",
        fx.name
    )))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ended.is_empty() && ended.iter().all(|b| *b));
    let err = tx.user_by_email("nobody@example.com").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    drop(tx);
    // The pool replaces the ended connections: the next transaction works.
    let mut tx = fx.store.begin().await.unwrap();
    assert!(
        tx.user_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    drop(tx);
    fx.finish().await;
}
