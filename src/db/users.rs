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
