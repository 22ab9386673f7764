//! Personal calendar feeds: a random token per user, kept only as its SHA-256, that lets a
//! calendar program fetch the user's deadlines as iCalendar without a session. A user has
//! at most one live feed; creating a new one revokes the old URL.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;

use crate::secret;

/// Write `last_used_at` at most this often per feed (calendar programs poll often).
const TOUCH_EVERY_MINUTES: i64 = 60;

/// A user's live feed, as the calendar page describes it (never the token).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Feed {
    pub id: i64,
    pub user_id: i64,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The name of the person whose feed it is.
    pub owner_name: String,
}

/// A feed just created: its token is shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewFeed {
    pub id: i64,
    pub token: String,
    /// The feeds this one replaced.
    pub revoked: Vec<i64>,
}

/// Revoke the user's live feed, if any, and create a new one, in the caller's transaction.
pub async fn replace(conn: &mut PgConnection, user_id: i64, now: DateTime<Utc>) -> sqlx::Result<NewFeed> {
    // Two requests at once must not both find no live feed: take the user's row first.
    sqlx::query("select id from app_user where id = $1 for update").bind(user_id).execute(&mut *conn).await?;
    let revoked = revoke(conn, user_id, now).await?;
    let token = secret::random_token(32);
    let id: i64 = sqlx::query_scalar(
        "insert into calendar_feed (user_id, token_hash, created_at) values ($1, $2, $3) returning id",
    )
    .bind(user_id)
    .bind(secret::token_hash(&token))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(NewFeed { id, token, revoked })
}

/// Revoke the user's live feed; returns the ids revoked (none or one).
pub async fn revoke(conn: &mut PgConnection, user_id: i64, now: DateTime<Utc>) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "update calendar_feed set revoked_at = $2 where user_id = $1 and revoked_at is null returning id",
    )
    .bind(user_id)
    .bind(now)
    .fetch_all(conn)
    .await
}

/// The user's live feed, if they have one.
pub async fn live_for_user(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<Option<Feed>> {
    sqlx::query_as(
        "select f.id, f.user_id, f.created_at, f.last_used_at, p.name as owner_name
         from calendar_feed f join app_user u on u.id = f.user_id join person p on p.id = u.person_id
         where f.user_id = $1 and f.revoked_at is null",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

/// The live feed a token opens; a revoked or unknown token opens nothing.
pub async fn find_by_token(conn: &mut PgConnection, token: &str) -> sqlx::Result<Option<Feed>> {
    if token.is_empty() || token.len() > 100 {
        return Ok(None);
    }
    sqlx::query_as(
        "select f.id, f.user_id, f.created_at, f.last_used_at, p.name as owner_name
         from calendar_feed f join app_user u on u.id = f.user_id join person p on p.id = u.person_id
         where f.token_hash = $1 and f.revoked_at is null",
    )
    .bind(secret::token_hash(token))
    .fetch_optional(conn)
    .await
}

/// Note that a feed was fetched, at most once an hour.
pub async fn touch(conn: &mut PgConnection, feed: &Feed, now: DateTime<Utc>) -> sqlx::Result<()> {
    if feed.last_used_at.is_some_and(|t| now - t < Duration::minutes(TOUCH_EVERY_MINUTES) && t <= now) {
        return Ok(());
    }
    sqlx::query("update calendar_feed set last_used_at = $2 where id = $1")
        .bind(feed.id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}
