//! `/api/v1/orgs`: the organisation tree, roles, duties and rollups.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ApiJson, ApiUser, created, parse_date};
use crate::app::App;
use crate::db::duties::{self, DutyView, StatusCounts};
use crate::db::orgs::{self, NewOrg, Org};
use crate::db::{audit, people, users};
use crate::domain::access::Role;
use crate::domain::period::Period;
use crate::error::{AppError, AppResult};
use crate::web::guard;

pub fn router() -> Router<App> {
    Router::new()
        .route("/orgs", post(create_org))
        .route("/orgs/{code}", get(get_org).patch(update_org))
        .route("/orgs/{code}/children", get(list_children))
        .route("/orgs/{code}/roles", post(assign_role))
        .route("/orgs/{code}/duties", get(list_duties))
        .route("/orgs/{code}/rollup", get(rollup))
}

#[derive(Deserialize)]
struct CreateOrg {
    code: String,
    name: String,
    kind: String,
    #[serde(default)]
    parent: Option<String>,
    active_from: String,
}

async fn create_org(
    State(app): State<App>,
    user: ApiUser,
    ApiJson(body): ApiJson<CreateOrg>,
) -> AppResult<impl axum::response::IntoResponse> {
    guard::require_admin(&user.principal)?;
    let active_from = parse_date("active_from", &body.active_from)?;
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let org = orgs::create(
        &mut tx,
        NewOrg {
            code: body.code.trim().to_owned(),
            name: body.name,
            kind: body.kind,
            parent: body.parent.filter(|p| !p.is_empty()),
            active_from,
        },
        user.now,
    )
    .await?;
    write_audit(
        &mut tx,
        &user,
        "org.create",
        &org,
        json!({"name": org.name, "kind": org.kind, "parent": org.parent, "active_from": org.active_from}),
    )
    .await?;
    tx.commit().await?;
    Ok(created(org))
}

async fn get_org(State(app): State<App>, user: ApiUser, Path(code): Path<String>) -> AppResult<Json<Org>> {
    let mut conn = app.pool.acquire().await?;
    Ok(Json(guard::visible_org(&mut conn, &user.principal, &code).await?))
}

async fn list_children(State(app): State<App>, user: ApiUser, Path(code): Path<String>) -> AppResult<Json<Vec<Org>>> {
    let mut conn = app.pool.acquire().await?;
    let org = guard::visible_org(&mut conn, &user.principal, &code).await?;
    // Children are part of the subtree, which a leadership member does not see.
    if !guard::sees_subtree(&user.principal, &org.path) {
        return Ok(Json(Vec::new()));
    }
    Ok(Json(orgs::children(&mut conn, org.id).await?))
}

/// A PATCH body: a field that is absent stays as it is; `active_until: null` reopens.
#[derive(Deserialize)]
struct UpdateOrg {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default, deserialize_with = "present")]
    active_until: Option<Value>,
}

/// Distinguishes a field sent as `null` (Some(Null)) from one not sent (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

async fn update_org(
    State(app): State<App>,
    user: ApiUser,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<UpdateOrg>,
) -> AppResult<Json<Org>> {
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let org = guard::visible_org(&mut tx, &user.principal, &code).await?;
    guard::require_admin(&user.principal)?;
    if let Some(name) = &body.name {
        orgs::rename(&mut tx, &org, name).await?;
    }
    if let Some(kind) = &body.kind {
        orgs::change_kind(&mut tx, &org, kind, user.now).await?;
    }
    match &body.active_until {
        None => {}
        Some(Value::Null) if org.active_until.is_some() => orgs::reopen(&mut tx, &org, user.now).await?,
        Some(Value::Null) => {}
        Some(Value::String(s)) => {
            let until = parse_date("active_until", s)?;
            if org.active_until != Some(until) {
                orgs::close(&mut tx, &org, until, user.now).await?;
            }
        }
        Some(_) => return Err(AppError::bad_input("active_until", "a date (YYYY-MM-DD) or null")),
    }
    let updated = orgs::find_by_id(&mut tx, org.id).await?.ok_or_else(|| AppError::not_found("organisation"))?;
    write_audit(
        &mut tx,
        &user,
        "org.update",
        &updated,
        json!({
            "name": body.name, "kind": body.kind, "active_until": body.active_until,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(updated))
}

#[derive(Deserialize)]
struct AssignRole {
    login: String,
    role: String,
    from: String,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    acting: bool,
}

#[derive(Serialize)]
struct Assigned {
    id: String,
    org: String,
    login: String,
    role: Role,
    from: chrono::NaiveDate,
    until: Option<chrono::NaiveDate>,
    acting: bool,
}

async fn assign_role(
    State(app): State<App>,
    user: ApiUser,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<AssignRole>,
) -> AppResult<impl axum::response::IntoResponse> {
    let role: Role = body
        .role
        .parse()
        .map_err(|_| AppError::bad_input("role", "one of secretary, member, coordinator, inspector"))?;
    let from = parse_date("from", &body.from)?;
    let until = body.until.as_deref().filter(|s| !s.is_empty()).map(|s| parse_date("until", s)).transpose()?;
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let org = guard::visible_org(&mut tx, &user.principal, &code).await?;
    guard::require_admin(&user.principal)?;
    let target = users::find_by_login(&mut tx, &body.login)
        .await?
        .ok_or_else(|| AppError::bad_input("login", format!("no user has the login {:?}", body.login)))?;
    let id = people::assign_role(
        &mut tx,
        &org,
        people::NewAssignment {
            person_id: target.person_id,
            role,
            starts_on: from,
            ends_on: until,
            acting: body.acting,
        },
        user.now,
    )
    .await?;
    write_audit(
        &mut tx,
        &user,
        "role.assign",
        &org,
        json!({"login": target.login, "role": role, "from": from, "until": until, "acting": body.acting}),
    )
    .await?;
    tx.commit().await?;
    Ok(created(Assigned {
        id: id.to_string(),
        org: org.code,
        login: target.login,
        role,
        from,
        until,
        acting: body.acting,
    }))
}

#[derive(Deserialize)]
struct PeriodQuery {
    period: Option<String>,
}

fn parse_period(q: &PeriodQuery) -> AppResult<Period> {
    let key = q.period.as_deref().ok_or_else(|| AppError::bad_input("period", "give a period key, e.g. 2026-Q3"))?;
    key.parse().map_err(|e: crate::domain::period::PeriodError| AppError::bad_input("period", e.to_string()))
}

async fn list_duties(
    State(app): State<App>,
    user: ApiUser,
    Path(code): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> AppResult<Json<Vec<DutyView>>> {
    let period = parse_period(&q)?;
    let settings = app.settings();
    app.ensure_duties(user.now).await?;
    let mut conn = app.pool.acquire().await?;
    let org = guard::visible_org(&mut conn, &user.principal, &code).await?;
    if !duties::has_started(&settings, period, user.now) {
        return Ok(Json(vec![]));
    }
    Ok(Json(duties::for_org_period(&mut conn, &app.catalog, &settings, org.id, &period.to_string(), user.now).await?))
}

#[derive(Serialize)]
struct Rollup {
    org: String,
    name: String,
    period: String,
    counts: StatusCounts,
    children: Vec<ChildRollup>,
}

#[derive(Serialize)]
struct ChildRollup {
    code: String,
    name: String,
    kind: String,
    active_until: Option<chrono::NaiveDate>,
    counts: StatusCounts,
}

async fn rollup(
    State(app): State<App>,
    user: ApiUser,
    Path(code): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> AppResult<Json<Rollup>> {
    let period = parse_period(&q)?;
    app.ensure_duties(user.now).await?;
    let mut conn = app.pool.acquire().await?;
    let org = guard::visible_org(&mut conn, &user.principal, &code).await?;
    if !guard::sees_subtree(&user.principal, &org.path) {
        // A leadership member sees their organisation, not its subtree: the counts of
        // its own duties, no children.
        let key = period.to_string();
        let mut counts = duties::StatusCounts::default();
        for d in duties::for_org_period(&mut conn, &app.catalog, &app.settings(), org.id, &key, user.now).await? {
            counts.add(d.status, 1);
        }
        return Ok(Json(Rollup { org: org.code, name: org.name, period: key, counts, children: Vec::new() }));
    }
    let children = orgs::children(&mut conn, org.id).await?;
    let mut ids: Vec<i64> = children.iter().map(|c| c.id).collect();
    ids.push(org.id);
    let key = period.to_string();
    let mut counts = duties::subtree_counts(&mut conn, &ids, &key, user.now).await?;
    Ok(Json(Rollup {
        org: org.code,
        name: org.name,
        period: key,
        counts: counts.remove(&org.id).unwrap_or_default(),
        children: children
            .into_iter()
            .map(|c| ChildRollup {
                counts: counts.remove(&c.id).unwrap_or_default(),
                code: c.code,
                name: c.name,
                kind: c.kind,
                active_until: c.active_until,
            })
            .collect(),
    }))
}

async fn write_audit(
    conn: &mut sqlx::PgConnection,
    user: &ApiUser,
    action: &str,
    org: &Org,
    detail: Value,
) -> AppResult<()> {
    audit::write(conn, user.audit_entry(action, ("org", org.code.clone()), Some(org.id), detail)).await?;
    Ok(())
}
