//! People and the roles they hold on organisations, from a date until a date.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::duties;
use super::orgs::Org;
use crate::domain::access::{Grant, Role};
use crate::error::{AppError, AppResult};

pub async fn create_person(conn: &mut PgConnection, name: &str, now: DateTime<Utc>) -> AppResult<i64> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_input("name", "a name is 1–100 characters"));
    }
    Ok(sqlx::query_scalar("insert into person (name, created_at) values ($1, $2) returning id")
        .bind(name)
        .bind(now)
        .fetch_one(conn)
        .await?)
}

/// A role to give, validated at the edge.
#[derive(Debug, Clone)]
pub struct NewAssignment {
    pub person_id: i64,
    pub role: Role,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
    pub acting: bool,
}

/// Give a person a role on an organisation. A leadership member's per-member duties for
/// periods already started are created at once.
pub async fn assign_role(conn: &mut PgConnection, org: &Org, a: NewAssignment, now: DateTime<Utc>) -> AppResult<i64> {
    if a.ends_on.is_some_and(|end| end < a.starts_on) {
        return Err(AppError::bad_input("until", "the last day comes before the first"));
    }
    let overlapping: bool = sqlx::query_scalar(
        "select exists (select 1 from role_assignment
                        where person_id = $1 and org_id = $2 and role = $3 and acting = $6
                          and starts_on <= coalesce($5, 'infinity'::date)
                          and coalesce(ends_on, 'infinity'::date) >= $4)",
    )
    .bind(a.person_id)
    .bind(org.id)
    .bind(a.role.as_str())
    .bind(a.starts_on)
    .bind(a.ends_on)
    .bind(a.acting)
    .fetch_one(&mut *conn)
    .await?;
    if overlapping {
        return Err(AppError::conflict("the person already holds this role there for part of those days"));
    }
    let id: i64 = sqlx::query_scalar(
        "insert into role_assignment (person_id, org_id, role, starts_on, ends_on, acting, created_at)
         values ($1, $2, $3, $4, $5, $6, $7) returning id",
    )
    .bind(a.person_id)
    .bind(org.id)
    .bind(a.role.as_str())
    .bind(a.starts_on)
    .bind(a.ends_on)
    .bind(a.acting)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    if a.role == Role::Member {
        duties::sync_orgs(conn, &[org.id], now).await?;
    }
    Ok(id)
}

/// The roles a person holds on `day`, each with its organisation's path.
pub async fn grants_on(conn: &mut PgConnection, person_id: i64, day: NaiveDate) -> sqlx::Result<Vec<Grant>> {
    let rows: Vec<(String, Vec<i64>)> = sqlx::query_as(
        "select ra.role, o.path from role_assignment ra join org o on o.id = ra.org_id
         where ra.person_id = $1 and ra.starts_on <= $2 and (ra.ends_on is null or ra.ends_on >= $2)
         order by o.path, ra.role",
    )
    .bind(person_id)
    .bind(day)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().filter_map(|(role, org_path)| Some(Grant { role: role.parse().ok()?, org_path })).collect())
}

/// A role assignment as pages show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AssignmentView {
    pub id: i64,
    pub person_id: i64,
    pub person_name: String,
    pub org_code: String,
    pub org_name: String,
    pub role: String,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
    pub acting: bool,
}

/// Who holds roles on an organisation on `day` (or at any time when `day` is None).
pub async fn holders(
    conn: &mut PgConnection,
    org_id: i64,
    day: Option<NaiveDate>,
) -> sqlx::Result<Vec<AssignmentView>> {
    sqlx::query_as(
        "select ra.id, ra.person_id, p.name as person_name, o.code as org_code, o.name as org_name, ra.role,
                ra.starts_on, ra.ends_on, ra.acting
         from role_assignment ra join person p on p.id = ra.person_id join org o on o.id = ra.org_id
         where ra.org_id = $1 and ($2::date is null or (ra.starts_on <= $2 and (ra.ends_on is null or ra.ends_on >= $2)))
         order by ra.role, ra.starts_on desc, p.name
         limit 500",
    )
    .bind(org_id)
    .bind(day)
    .fetch_all(conn)
    .await
}
