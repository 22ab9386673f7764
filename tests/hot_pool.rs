//! The pool of the hottest reads (`db::hot`): a connection given back with `release` is
//! reused as it is; one dropped without it (an error, or a request cancelled while its
//! query ran) is closed, never reused.

mod common;

use common::TestApp;
use zerenzhi::db::hot::HotPool;

async fn backend_pid(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("select pg_backend_pid()").fetch_one(conn).await.unwrap()
}

#[tokio::test]
async fn a_released_connection_is_reused_and_a_dropped_one_is_closed() {
    let t = TestApp::spawn_at("2026-05-10T10:00:00+08:00").await;
    let hot = HotPool::beside(&t.pool);

    let mut conn = hot.acquire().await.unwrap();
    let first = backend_pid(&mut conn).await;
    let plan: String = sqlx::query_scalar("show plan_cache_mode").fetch_one(&mut *conn).await.unwrap();
    assert_eq!(plan, "force_generic_plan");
    conn.release();

    let mut conn = hot.acquire().await.unwrap();
    assert_eq!(backend_pid(&mut conn).await, first, "a released connection is reused");
    drop(conn);

    let mut conn = hot.acquire().await.unwrap();
    let third = backend_pid(&mut conn).await;
    assert_ne!(third, first, "a connection dropped without release is not reused");
    conn.release();
    // The dropped one is gone from the server, not idling in it.
    let mut alive = true;
    for _ in 0..50 {
        alive = sqlx::query_scalar("select exists (select 1 from pg_stat_activity where pid = $1)")
            .bind(first)
            .fetch_one(&t.pool)
            .await
            .unwrap();
        if !alive {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!alive, "the dropped connection was closed");
}
