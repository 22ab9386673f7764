//! User accounts (linked to people), API tokens, and the principal a request acts as.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

use super::people;
use crate::domain::access::Principal;
use crate::error::{AppError, AppResult};
use crate::secret;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub login: String,
    pub person_id: i64,
    pub is_admin: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub locale: Option<String>,
    pub password_hash: String,
}

/// Logins are lower-case letters, digits and `._@-`, 2–64 characters.
pub fn normalize_login(login: &str) -> AppResult<String> {
    let login = login.trim().to_lowercase();
    let ok = (2..=64).contains(&login.len())
        && login.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && login.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(login)
    } else {
        Err(AppError::bad_input("login", "a login is 2–64 letters, digits, '.', '_', '@' or '-'"))
    }
}

/// The password policy: at least 8 characters, at most 1024, no composition rules, never
/// truncated, and not one of the common or breached passwords shipped with the portal.
pub fn check_password(password: &str) -> AppResult<()> {
    let n = password.chars().count();
    if n < 8 {
        return Err(AppError::bad_input("password", "a password has at least 8 characters (15 or more is better)"));
    }
    if n > 1024 {
        return Err(AppError::bad_input("password", "a password has at most 1024 characters"));
    }
    if crate::secret::is_common_password(password) {
        return Err(AppError::bad_input("password", "this password is too common; choose another"));
    }
    Ok(())
}

pub async fn find_by_login(conn: &mut PgConnection, login: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as(
        "select id, login, person_id, is_admin, disabled_at, locale, password_hash from app_user where login = $1",
    )
    .bind(login.trim().to_lowercase())
    .fetch_optional(conn)
    .await
}

pub async fn find_by_id(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<User>> {
    sqlx::query_as(
        "select id, login, person_id, is_admin, disabled_at, locale, password_hash from app_user where id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Create a person and a user account for them.
pub async fn create(
    conn: &mut PgConnection,
    login: &str,
    password: &str,
    name: &str,
    admin: bool,
    now: DateTime<Utc>,
) -> AppResult<User> {
    let login = normalize_login(login)?;
    check_password(password)?;
    if find_by_login(conn, &login).await?.is_some() {
        return Err(AppError::conflict(format!("the login {login:?} is taken")));
    }
    let name = if name.trim().is_empty() { login.as_str() } else { name };
    let person_id = people::create_person(conn, name, now).await?;
    let hash = secret::hash_password(password)?;
    let id: i64 = sqlx::query_scalar(
        "insert into app_user (login, person_id, password_hash, is_admin, password_changed_at, created_at)
         values ($1, $2, $3, $4, $5, $5) returning id",
    )
    .bind(&login)
    .bind(person_id)
    .bind(&hash)
    .bind(admin)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(find_by_id(conn, id).await?.ok_or_else(|| anyhow::anyhow!("the new user vanished"))?)
}

/// Create an API token for a user; returns the token (shown once; only its hash is kept).
pub async fn create_token(
    conn: &mut PgConnection,
    user_id: i64,
    label: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<String> {
    let token = format!("zrz_{}", secret::random_token(32));
    sqlx::query("insert into api_token (user_id, token_hash, label, created_at) values ($1, $2, $3, $4)")
        .bind(user_id)
        .bind(secret::token_hash(&token))
        .bind(label)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(token)
}

/// The principal behind a bearer token, with the roles they hold on `today`.
pub async fn principal_for_token(
    conn: &mut PgConnection,
    token: &str,
    today: NaiveDate,
) -> sqlx::Result<Option<Principal>> {
    let user: Option<User> = sqlx::query_as(
        "select u.id, u.login, u.person_id, u.is_admin, u.disabled_at, u.locale, u.password_hash
         from api_token t join app_user u on u.id = t.user_id
         where t.token_hash = $1 and t.revoked_at is null and u.disabled_at is null",
    )
    .bind(secret::token_hash(token))
    .fetch_optional(&mut *conn)
    .await?;
    match user {
        Some(u) => Ok(Some(principal(conn, &u, today).await?)),
        None => Ok(None),
    }
}

/// The principal a user acts as on `today`.
pub async fn principal(conn: &mut PgConnection, user: &User, today: NaiveDate) -> sqlx::Result<Principal> {
    Ok(Principal {
        user_id: user.id,
        person_id: user.person_id,
        login: user.login.clone(),
        is_admin: user.is_admin,
        grants: people::grants_on(conn, user.person_id, today).await?,
    })
}

/// Failed sign-ins in the last `minutes`, for this login and for this client address.
pub async fn recent_failures(
    conn: &mut PgConnection,
    login: &str,
    ip: &str,
    since: DateTime<Utc>,
) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "select (select count(*) from login_failure where login = $1 and at >= $3),
                (select count(*) from login_failure where ip = $2 and at >= $3)",
    )
    .bind(login)
    .bind(ip)
    .bind(since)
    .fetch_one(conn)
    .await
}

pub async fn record_failure(conn: &mut PgConnection, login: &str, ip: &str, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("insert into login_failure (login, ip, at) values ($1, $2, $3)")
        .bind(login.chars().take(100).collect::<String>())
        .bind(ip)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Change a user's password and end all their sessions.
pub async fn set_password(conn: &mut PgConnection, user_id: i64, password: &str, now: DateTime<Utc>) -> AppResult<()> {
    check_password(password)?;
    let hash = secret::hash_password(password)?;
    sqlx::query("update app_user set password_hash = $2, password_changed_at = $3 where id = $1")
        .bind(user_id)
        .bind(hash)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query("delete from session where user_id = $1").bind(user_id).execute(conn).await?;
    Ok(())
}

/// Remember a user's language.
pub async fn set_locale(conn: &mut PgConnection, user_id: i64, locale: &str) -> sqlx::Result<()> {
    sqlx::query("update app_user set locale = $2 where id = $1").bind(user_id).bind(locale).execute(conn).await?;
    Ok(())
}
