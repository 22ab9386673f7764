//! The organisation tree: create, read, rename, close and reopen. Every change that alters
//! what an organisation owes brings its duties up to date in the same transaction.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::duties;
use crate::error::{AppError, AppResult};

/// An organisation as the rest of the portal sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Org {
    #[serde(skip)]
    pub id: i64,
    pub code: String,
    pub name: String,
    pub kind: String,
    /// The parent's code.
    pub parent: Option<String>,
    #[serde(skip)]
    pub parent_id: Option<i64>,
    #[serde(skip)]
    pub path: Vec<i64>,
    pub active_from: NaiveDate,
    pub active_until: Option<NaiveDate>,
}

impl Org {
    pub fn is_active_on(&self, day: NaiveDate) -> bool {
        crate::domain::liability::active_on(self.active_from, self.active_until, day)
    }

    pub fn depth(&self) -> usize {
        self.path.len()
    }
}

/// The organisation query with a fixed clause appended; a macro so that the SQL stays a
/// string literal (no input ever reaches SQL text).
macro_rules! select_org {
    ($clause:literal) => {
        concat!(
            "select o.id, o.code, o.name, o.kind, p.code as parent, o.parent_id, o.path, o.active_from, o.active_until
             from org o left join org p on p.id = o.parent_id ",
            $clause
        )
    };
}

pub async fn find_by_code(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<Org>> {
    sqlx::query_as(select_org!("where o.code = $1")).bind(code).fetch_optional(conn).await
}

pub async fn find_by_id(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Org>> {
    sqlx::query_as(select_org!("where o.id = $1")).bind(id).fetch_optional(conn).await
}

/// The direct children of an organisation, by code.
pub async fn children(conn: &mut PgConnection, parent_id: i64) -> sqlx::Result<Vec<Org>> {
    sqlx::query_as(select_org!("where o.parent_id = $1 order by o.code")).bind(parent_id).fetch_all(conn).await
}

/// The organisations with these ids, in tree order.
pub async fn by_ids(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<Vec<Org>> {
    sqlx::query_as(select_org!("where o.id = any($1) order by o.path")).bind(ids).fetch_all(conn).await
}

/// A new organisation, validated at the edge.
#[derive(Debug, Clone)]
pub struct NewOrg {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub parent: Option<String>,
    pub active_from: NaiveDate,
}

pub fn validate_code(code: &str) -> AppResult<()> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && code.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_input(
            "code",
            "a code is 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

pub fn validate_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::bad_input("name", "a name is 1–200 characters"));
    }
    Ok(name.to_owned())
}

pub async fn kind_exists(conn: &mut PgConnection, kind: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("select exists (select 1 from org_kind where code = $1)").bind(kind).fetch_one(conn).await
}

/// Create an organisation and the duties it owes for every rule period already started.
pub async fn create(conn: &mut PgConnection, new: NewOrg, now: DateTime<Utc>) -> AppResult<Org> {
    validate_code(&new.code)?;
    let name = validate_name(&new.name)?;
    if !kind_exists(conn, &new.kind).await? {
        return Err(AppError::bad_input("kind", format!("unknown organisation kind {:?}", new.kind)));
    }
    let parent = match &new.parent {
        None => None,
        Some(code) => Some(
            find_by_code(conn, code)
                .await?
                .ok_or_else(|| AppError::bad_input("parent", format!("no organisation has the code {code:?}")))?,
        ),
    };
    if let Some(p) = &parent {
        if p.active_until.is_some_and(|until| new.active_from > until) {
            return Err(AppError::bad_input("active_from", "the parent organisation is closed by then"));
        }
        if p.depth() >= 31 {
            return Err(AppError::bad_input("parent", "the tree may be at most 32 levels deep"));
        }
    }
    if find_by_code(conn, &new.code).await?.is_some() {
        return Err(AppError::conflict(format!("an organisation with the code {:?} exists", new.code)));
    }
    let id: i64 = sqlx::query_scalar(
        "insert into org (code, name, kind, parent_id, active_from, created_at) values ($1, $2, $3, $4, $5, $6) returning id",
    )
    .bind(&new.code)
    .bind(&name)
    .bind(&new.kind)
    .bind(parent.as_ref().map(|p| p.id))
    .bind(new.active_from)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    duties::sync_orgs(conn, &[id], now).await?;
    Ok(find_by_id(conn, id).await?.ok_or_else(|| anyhow::anyhow!("the new organisation vanished"))?)
}

/// Rename an organisation.
pub async fn rename(conn: &mut PgConnection, org: &Org, name: &str) -> AppResult<()> {
    let name = validate_name(name)?;
    sqlx::query("update org set name = $2 where id = $1").bind(org.id).bind(name).execute(conn).await?;
    Ok(())
}

/// Change an organisation's kind: only while it owes nothing (DESIGN.md: close it and
/// create a new one instead).
pub async fn change_kind(conn: &mut PgConnection, org: &Org, kind: &str, now: DateTime<Utc>) -> AppResult<()> {
    if kind == org.kind {
        return Ok(());
    }
    if !kind_exists(conn, kind).await? {
        return Err(AppError::bad_input("kind", format!("unknown organisation kind {kind:?}")));
    }
    let owes: bool = sqlx::query_scalar("select exists (select 1 from duty where org_id = $1)")
        .bind(org.id)
        .fetch_one(&mut *conn)
        .await?;
    if owes {
        return Err(AppError::conflict(
            "the kind cannot change once the organisation owes a duty: close it and create a new one",
        ));
    }
    sqlx::query("update org set kind = $2 where id = $1").bind(org.id).bind(kind).execute(&mut *conn).await?;
    duties::sync_orgs(conn, &[org.id], now).await?;
    Ok(())
}

/// What closing an organisation on a day would change.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ClosePreview {
    /// The organisation and its descendants still open on that day.
    pub organisations: i64,
    /// Their unfinished duties of periods that end after that day: these become cancelled.
    pub duties_cancelled: i64,
    /// Duties of periods starting after that day, which are no longer owed.
    pub duties_removed: i64,
}

/// The organisation and its descendants that closing on `until` would close.
async fn closing_set(conn: &mut PgConnection, org: &Org, until: NaiveDate) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "select id from org where path >= $1 and path < subtree_upper($1)
           and (active_until is null or active_until > $2)",
    )
    .bind(&org.path)
    .bind(until)
    .fetch_all(conn)
    .await
}

pub async fn preview_close(conn: &mut PgConnection, org: &Org, until: NaiveDate) -> AppResult<ClosePreview> {
    let ids = closing_set(conn, org, until).await?;
    Ok(sqlx::query_as(
        "select cardinality($1::bigint[])::bigint as organisations,
                count(*) filter (where d.class = 'pending' and rp.period_start <= $2 and rp.period_end - 1 > $2) as duties_cancelled,
                count(*) filter (where rp.period_start > $2) as duties_removed
         from duty d join rule_period rp on rp.rule_id = d.rule_id and rp.period_key = d.period_key
         where d.org_id = any($1)",
    )
    .bind(&ids)
    .bind(until)
    .fetch_one(conn)
    .await?)
}

/// Close an organisation on `until` (its last active day), and every descendant still
/// open then. Unfinished duties of periods that end later become cancelled; duties of
/// periods that start later are no longer owed.
pub async fn close(conn: &mut PgConnection, org: &Org, until: NaiveDate, now: DateTime<Utc>) -> AppResult<Vec<i64>> {
    if until < org.active_from {
        return Err(AppError::bad_input(
            "active_until",
            "the last active day cannot come before the organisation began",
        ));
    }
    let ids = closing_set(conn, org, until).await?;
    let late_start: Option<String> =
        sqlx::query_scalar("select code from org where id = any($1) and active_from > $2 order by path limit 1")
            .bind(&ids)
            .bind(until)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(code) = late_start {
        return Err(AppError::bad_input(
            "active_until",
            format!("{code} only begins after that day; close or move it first"),
        ));
    }
    let records_after: Option<String> = sqlx::query_scalar(
        "select o.code from record r join org o on o.id = r.org_id
         where r.org_id = any($1) and r.occurred_on > $2 and r.state <> 'withdrawn' limit 1",
    )
    .bind(&ids)
    .bind(until)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(code) = records_after {
        return Err(AppError::conflict(format!(
            "{code} has records dated after that day; withdraw them or choose a later day"
        )));
    }
    sqlx::query("update org set active_until = $2 where id = any($1)")
        .bind(&ids)
        .bind(until)
        .execute(&mut *conn)
        .await?;
    duties::sync_orgs(conn, &ids, now).await?;
    Ok(ids)
}

/// Reopen a closed organisation: it is active again from its first day on, and owes
/// again what it owed.
pub async fn reopen(conn: &mut PgConnection, org: &Org, now: DateTime<Utc>) -> AppResult<()> {
    if let Some(parent_id) = org.parent_id {
        let parent_closed: bool = sqlx::query_scalar("select active_until is not null from org where id = $1")
            .bind(parent_id)
            .fetch_one(&mut *conn)
            .await?;
        if parent_closed {
            return Err(AppError::conflict("the parent organisation is closed: reopen it first"));
        }
    }
    sqlx::query("update org set active_until = null where id = $1").bind(org.id).execute(&mut *conn).await?;
    duties::sync_orgs(conn, &[org.id], now).await?;
    Ok(())
}

/// What moving an organisation did (or, in a preview, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MoveSummary {
    /// The organisation and its descendants.
    pub organisations: i64,
    /// Duties now owed that were not (rules installed on the new branch of the tree).
    pub duties_created: i64,
    /// Duties no longer owed (rules installed only on the old branch), without records.
    pub duties_removed: i64,
}

/// Move an organisation, with its whole subtree, under another parent. Paths are
/// rewritten in one statement (subtree queries stay indexed), the subtree's totals move
/// from the old ancestors to the new ones, and what the subtree owes is brought in line
/// with the rules installed on its new place in the tree.
pub async fn move_to(
    conn: &mut PgConnection,
    org: &Org,
    new_parent: &Org,
    now: DateTime<Utc>,
) -> AppResult<MoveSummary> {
    if new_parent.path.starts_with(&org.path) {
        return Err(AppError::bad_input("parent", "an organisation cannot move under itself or its own descendants"));
    }
    if org.parent_id == Some(new_parent.id) {
        return Ok(MoveSummary::default());
    }
    let ids: Vec<i64> = sqlx::query_scalar("select id from org where path >= $1 and path < subtree_upper($1)")
        .bind(&org.path)
        .fetch_all(&mut *conn)
        .await?;
    let deepest: i32 = sqlx::query_scalar(
        "select coalesce(max(cardinality(path)), 0) from org where path >= $1 and path < subtree_upper($1)",
    )
    .bind(&org.path)
    .fetch_one(&mut *conn)
    .await?;
    if new_parent.depth() + (deepest as usize + 1 - org.depth()) > 32 {
        return Err(AppError::bad_input("parent", "the tree would be deeper than 32 levels"));
    }
    duties::lock_shared(conn).await?;
    // The subtree's totals, its root's own duties included, leave the old ancestors'
    // descendant totals and join the new ones' (an ancestor both had and have keeps
    // them: the deltas cancel).
    let old_ancestors: Vec<i64> = org.path[..org.path.len() - 1].to_vec();
    sqlx::query(
        "insert into duty_total as t (org_id, rule_id, period_key, class, n)
         select a.id, s.rule_id, s.period_key, s.class, sum(s.n * a.sign)
         from subtree_total s
         cross join (select unnest($2::bigint[]) as id, -1 as sign
                     union all select unnest($3::bigint[]), 1) a
         where s.org_id = $1
         group by 1, 2, 3, 4 having sum(s.n * a.sign) <> 0
         order by 1, 2, 3, 4
         on conflict (org_id, period_key, rule_id, class) do update set n = t.n + excluded.n",
    )
    .bind(org.id)
    .bind(&old_ancestors)
    .bind(&new_parent.path)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "update org set path = $2 || path[$3:],
                        parent_id = case when id = $4 then $5 else parent_id end
         where path >= $1 and path < subtree_upper($1)",
    )
    .bind(&org.path)
    .bind(&new_parent.path)
    .bind(org.path.len() as i32)
    .bind(org.id)
    .bind(new_parent.id)
    .execute(&mut *conn)
    .await?;
    let synced = duties::sync_orgs(conn, &ids, now).await?;
    Ok(MoveSummary { organisations: ids.len() as i64, duties_created: synced.created, duties_removed: synced.removed })
}
