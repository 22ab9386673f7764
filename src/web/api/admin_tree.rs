//! `/api/v1` for administering the tree, kinds, people and role assignments (admins only):
//! the JSON counterparts of the `/admin` pages. Creating, renaming, closing and reopening
//! an organisation and giving a user a role live in `orgs.rs`; this adds listing and
//! searching the tree, moving with a dry run, the close preview, kinds, people (with or
//! without an account), role history, handovers and ending an assignment.
//!
//! Every route here is for admins, and says so (403) before looking anything up, so a
//! non-admin learns nothing about what exists.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::{ApiJson, ApiUser, created, parse_date, parse_id};
use crate::app::App;
use crate::db::orgs::{self, Org};
use crate::db::tree::{self, Assignment, Kind, PersonRow, TreeNode};
use crate::db::{audit, people};
use crate::domain::access::Role;
use crate::error::{AppError, AppResult};
use crate::web::guard;

pub fn router() -> Router<App> {
    Router::new()
        .route("/orgs", get(list_orgs))
        .route("/orgs/{code}/move", post(move_org))
        .route("/orgs/{code}/close-preview", get(close_preview))
        .route("/orgs/{code}/roles", get(list_roles))
        .route("/orgs/{code}/handover", post(handover))
        .route("/kinds", get(list_kinds).post(create_kind))
        .route("/kinds/{code}", patch(update_kind))
        .route("/people", get(list_people).post(create_person))
        .route("/people/{id}", get(get_person).patch(update_person))
        .route("/people/{id}/roles", post(give_role))
        .route("/roles/{id}", patch(end_role))
}

// ---------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------

async fn write_audit(
    conn: &mut PgConnection,
    user: &ApiUser,
    action: &str,
    object: (&str, String),
    org_id: Option<i64>,
    detail: Value,
) -> AppResult<()> {
    audit::write(conn, user.audit_entry(action, (object.0, object.1), org_id, detail)).await?;
    Ok(())
}

/// A page number from a query (from 1); absent is 1.
fn parse_page(page: Option<&str>) -> AppResult<i64> {
    match page.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(1),
        Some(p) => p
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| AppError::bad_input("page", "a page is a whole number from 1")),
    }
}

fn parse_role(s: &str) -> AppResult<Role> {
    s.parse().map_err(|_| AppError::bad_input("role", "one of secretary, member, coordinator, inspector"))
}

/// A role assignment as the API shows it.
#[derive(Serialize)]
struct Holding {
    id: String,
    person: String,
    person_name: String,
    org: String,
    org_name: String,
    role: String,
    from: NaiveDate,
    until: Option<NaiveDate>,
    acting: bool,
}

impl From<Assignment> for Holding {
    fn from(a: Assignment) -> Holding {
        Holding {
            id: a.id.to_string(),
            person: a.person_id.to_string(),
            person_name: a.person_name,
            org: a.org_code,
            org_name: a.org_name,
            role: a.role,
            from: a.starts_on,
            until: a.ends_on,
            acting: a.acting,
        }
    }
}

impl From<people::AssignmentView> for Holding {
    fn from(a: people::AssignmentView) -> Holding {
        Holding {
            id: a.id.to_string(),
            person: a.person_id.to_string(),
            person_name: a.person_name,
            org: a.org_code,
            org_name: a.org_name,
            role: a.role,
            from: a.starts_on,
            until: a.ends_on,
            acting: a.acting,
        }
    }
}

async fn holding(conn: &mut PgConnection, id: i64) -> AppResult<Holding> {
    Ok(tree::find_assignment(conn, id).await?.ok_or_else(|| AppError::not_found("role assignment"))?.into())
}

// ---------------------------------------------------------------------------------------
// The tree
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct OrgListQuery {
    q: Option<String>,
    parent: Option<String>,
    page: Option<String>,
}

#[derive(Serialize)]
struct OrgItem {
    #[serde(flatten)]
    node: TreeNode,
    descendants_capped: bool,
    /// The ancestors, root first (search results only).
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<Vec<tree::OrgRef>>,
}

#[derive(Serialize)]
struct Listing<T> {
    items: Vec<T>,
    page: i64,
    per_page: i64,
    total: i64,
    has_more: bool,
}

/// `GET /orgs?q=&parent=&page=`: a search (by code prefix or name), else one page of the
/// children of `parent`, else of the roots.
async fn list_orgs(
    State(app): State<App>,
    user: ApiUser,
    Query(q): Query<OrgListQuery>,
) -> AppResult<Json<Listing<OrgItem>>> {
    guard::require_admin(&user.principal)?;
    let page = parse_page(q.page.as_deref())?;
    let mut conn = app.pool.acquire().await?;
    let text = q.q.as_deref().map(str::trim).unwrap_or("");
    if !text.is_empty() {
        let (nodes, more) = tree::search(&mut conn, text).await?;
        let crumbs = tree::breadcrumbs(&mut conn, &nodes).await?;
        let total = nodes.len() as i64;
        let items = nodes
            .into_iter()
            .zip(crumbs)
            .map(|(node, path)| OrgItem { descendants_capped: node.descendants_capped(), node, path: Some(path) })
            .collect();
        return Ok(Json(Listing { items, page: 1, per_page: tree::SEARCH_LIMIT, total, has_more: more }));
    }
    let parent = match q.parent.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(code) => Some(guard::visible_org(&mut conn, &user.principal, code).await?.id),
        None => None,
    };
    let (nodes, total) = tree::children_page(&mut conn, parent, page).await?;
    let items = nodes
        .into_iter()
        .map(|node| OrgItem { descendants_capped: node.descendants_capped(), node, path: None })
        .collect();
    Ok(Json(Listing { items, page, per_page: tree::PAGE_SIZE, total, has_more: page * tree::PAGE_SIZE < total }))
}

#[derive(Deserialize)]
struct MoveOrg {
    parent: String,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Serialize)]
struct Moved {
    org: Org,
    dry_run: bool,
    organisations: i64,
    duties_created: i64,
    duties_removed: i64,
}

/// `POST /orgs/{code}/move {parent, dry_run}`: move with the whole subtree; a dry run
/// makes the move and rolls it back, so its counts are exactly what the move would do.
async fn move_org(
    State(app): State<App>,
    user: ApiUser,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<MoveOrg>,
) -> AppResult<Json<Moved>> {
    guard::require_admin(&user.principal)?;
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let org = guard::visible_org(&mut tx, &user.principal, &code).await?;
    let parent_code = body.parent.trim();
    if parent_code.is_empty() {
        return Err(AppError::bad_input("parent", "give the code of the new parent organisation"));
    }
    let parent = orgs::find_by_code(&mut tx, parent_code)
        .await?
        .ok_or_else(|| AppError::bad_input("parent", format!("no organisation has the code {parent_code:?}")))?;
    let summary = orgs::move_to(&mut tx, &org, &parent, user.now).await?;
    let moved = orgs::find_by_id(&mut tx, org.id).await?.ok_or_else(|| AppError::not_found("organisation"))?;
    if body.dry_run {
        tx.rollback().await?;
    } else {
        write_audit(
            &mut tx,
            &user,
            "org.move",
            ("org", moved.code.clone()),
            Some(org.id),
            json!({"from": org.parent, "to": parent.code, "organisations": summary.organisations,
                   "duties_created": summary.duties_created, "duties_removed": summary.duties_removed}),
        )
        .await?;
        tx.commit().await?;
    }
    Ok(Json(Moved {
        org: moved,
        dry_run: body.dry_run,
        organisations: summary.organisations,
        duties_created: summary.duties_created,
        duties_removed: summary.duties_removed,
    }))
}

#[derive(Deserialize)]
struct UntilQuery {
    until: Option<String>,
}

#[derive(Serialize)]
struct ClosePreview {
    org: String,
    until: NaiveDate,
    #[serde(flatten)]
    counts: orgs::ClosePreview,
    /// Whether closing on that day is possible; if not, `problem` says why.
    allowed: bool,
    problem: Option<Value>,
}

/// `GET /orgs/{code}/close-preview?until=`: what closing on that day would change, and
/// whether it can be done (the close is tried and rolled back).
async fn close_preview(
    State(app): State<App>,
    user: ApiUser,
    Path(code): Path<String>,
    Query(q): Query<UntilQuery>,
) -> AppResult<Json<ClosePreview>> {
    guard::require_admin(&user.principal)?;
    let until = parse_date("until", q.until.as_deref().unwrap_or(""))?;
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let org = guard::visible_org(&mut tx, &user.principal, &code).await?;
    let counts = orgs::preview_close(&mut tx, &org, until).await?;
    let problem = match orgs::close(&mut tx, &org, until, user.now).await {
        Ok(_) => None,
        Err(e @ (AppError::BadInput { .. } | AppError::Conflict(_))) => {
            let field = match &e {
                AppError::BadInput { field, .. } => Some(field.to_string()),
                _ => None,
            };
            let message = match &e {
                AppError::BadInput { message, .. } => message.to_string(),
                AppError::Conflict(m) => m.to_string(),
                _ => String::new(),
            };
            Some(json!({"code": e.code(), "message": message, "field": field}))
        }
        Err(e) => return Err(e),
    };
    tx.rollback().await?;
    Ok(Json(ClosePreview { org: org.code, until, counts, allowed: problem.is_none(), problem }))
}

#[derive(Deserialize)]
struct RolesQuery {
    on: Option<String>,
    history: Option<String>,
}

#[derive(Serialize)]
struct Holders {
    org: String,
    /// The day asked about; null for the whole history.
    on: Option<NaiveDate>,
    holders: Vec<Holding>,
}

/// `GET /orgs/{code}/roles?on=DATE`: who held which role there on that day (today when
/// absent); `history=true` lists every assignment instead.
async fn list_roles(
    State(app): State<App>,
    user: ApiUser,
    Path(code): Path<String>,
    Query(q): Query<RolesQuery>,
) -> AppResult<Json<Holders>> {
    guard::require_admin(&user.principal)?;
    let history = match q.history.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(AppError::bad_input("history", "true or false")),
    };
    let on = match (history, q.on.as_deref().filter(|s| !s.is_empty())) {
        (true, _) => None,
        (false, Some(s)) => Some(parse_date("on", s)?),
        (false, None) => Some(user.today),
    };
    let mut conn = app.pool.acquire().await?;
    let org = guard::visible_org(&mut conn, &user.principal, &code).await?;
    let holders = people::holders(&mut conn, org.id, on).await?;
    Ok(Json(Holders { org: org.code, on, holders: holders.into_iter().map(Holding::from).collect() }))
}

#[derive(Deserialize)]
struct HandoverBody {
    person: Value,
    #[serde(default)]
    role: Option<String>,
    on: String,
}

#[derive(Serialize)]
struct HandedOver {
    ended: Vec<Holding>,
    assigned: Holding,
}

/// A person id from JSON: the string the API gave, or a number.
fn person_id(v: &Value) -> AppResult<i64> {
    let id = match v {
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    };
    id.filter(|id| *id > 0).ok_or_else(|| AppError::bad_input("person", "a person's id, as the API gave it"))
}

/// `POST /orgs/{code}/handover {person, role, on}`: a change of term — the role's
/// holders end the day before `on`, the person holds it from `on`.
async fn handover(
    State(app): State<App>,
    user: ApiUser,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<HandoverBody>,
) -> AppResult<impl IntoResponse> {
    guard::require_admin(&user.principal)?;
    let person_id = person_id(&body.person)?;
    let role = parse_role(body.role.as_deref().unwrap_or("secretary"))?;
    let on = parse_date("on", &body.on)?;
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let org = guard::visible_org(&mut tx, &user.principal, &code).await?;
    let person = tree::find_person(&mut tx, person_id)
        .await?
        .ok_or_else(|| AppError::bad_input("person", "no person has that id"))?;
    let done = tree::handover(&mut tx, &org, role, person.id, on, user.now).await?;
    write_audit(
        &mut tx,
        &user,
        "role.handover",
        ("org", org.code.clone()),
        Some(org.id),
        json!({"role": role, "on": on, "person": person.id,
               "ended": done.ended.iter().map(|a| a.id).collect::<Vec<_>>(), "assigned": done.assigned}),
    )
    .await?;
    let assigned = holding(&mut tx, done.assigned).await?;
    tx.commit().await?;
    Ok(created(HandedOver { ended: done.ended.into_iter().map(Holding::from).collect(), assigned }))
}

// ---------------------------------------------------------------------------------------
// Kinds
// ---------------------------------------------------------------------------------------

async fn list_kinds(State(app): State<App>, user: ApiUser) -> AppResult<Json<Vec<Kind>>> {
    guard::require_admin(&user.principal)?;
    let mut conn = app.pool.acquire().await?;
    Ok(Json(tree::kinds(&mut conn).await?))
}

#[derive(Deserialize)]
struct NewKind {
    code: String,
    name_zh: String,
    name_en: String,
}

async fn create_kind(
    State(app): State<App>,
    user: ApiUser,
    ApiJson(body): ApiJson<NewKind>,
) -> AppResult<impl IntoResponse> {
    guard::require_admin(&user.principal)?;
    let mut tx = app.pool.begin().await?;
    let kind = tree::create_kind(&mut tx, &body.code, &body.name_zh, &body.name_en).await?;
    write_audit(
        &mut tx,
        &user,
        "kind.create",
        ("org_kind", kind.code.clone()),
        None,
        json!({"name_zh": kind.name_zh, "name_en": kind.name_en}),
    )
    .await?;
    tx.commit().await?;
    Ok(created(kind))
}

#[derive(Deserialize)]
struct KindPatch {
    name_zh: Option<String>,
    name_en: Option<String>,
}

async fn update_kind(
    State(app): State<App>,
    user: ApiUser,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<KindPatch>,
) -> AppResult<Json<Kind>> {
    guard::require_admin(&user.principal)?;
    let mut tx = app.pool.begin().await?;
    let old = tree::find_kind(&mut tx, &code)
        .await?
        .ok_or_else(|| AppError::not_found(format!("organisation kind {code}")))?;
    let zh = body.name_zh.as_deref().unwrap_or(&old.name_zh);
    let en = body.name_en.as_deref().unwrap_or(&old.name_en);
    let kind = tree::rename_kind(&mut tx, &code, zh, en).await?;
    write_audit(
        &mut tx,
        &user,
        "kind.update",
        ("org_kind", kind.code.clone()),
        None,
        json!({"name_zh": kind.name_zh, "name_en": kind.name_en, "was": {"name_zh": old.name_zh, "name_en": old.name_en}}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(kind))
}

// ---------------------------------------------------------------------------------------
// People
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct PeopleQuery {
    q: Option<String>,
    page: Option<String>,
}

#[derive(Serialize)]
struct PersonItem {
    id: String,
    name: String,
    code: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    login: Option<String>,
    roles_now: i64,
}

impl From<PersonRow> for PersonItem {
    fn from(p: PersonRow) -> PersonItem {
        PersonItem {
            id: p.id.to_string(),
            name: p.name,
            code: p.code,
            phone: p.phone,
            email: p.email,
            login: p.login,
            roles_now: p.roles_now,
        }
    }
}

async fn list_people(
    State(app): State<App>,
    user: ApiUser,
    Query(q): Query<PeopleQuery>,
) -> AppResult<Json<Listing<PersonItem>>> {
    guard::require_admin(&user.principal)?;
    let page = parse_page(q.page.as_deref())?;
    let mut conn = app.pool.acquire().await?;
    let (rows, total) = tree::people_page(&mut conn, q.q.as_deref().unwrap_or(""), user.today, page).await?;
    Ok(Json(Listing {
        items: rows.into_iter().map(PersonItem::from).collect(),
        page,
        per_page: tree::PAGE_SIZE,
        total,
        has_more: page * tree::PAGE_SIZE < total,
    }))
}

#[derive(Serialize)]
struct Account {
    login: String,
    admin: bool,
    disabled: bool,
}

#[derive(Serialize)]
struct PersonView {
    id: String,
    name: String,
    code: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    account: Option<Account>,
    /// Every assignment, the latest first.
    roles: Vec<Holding>,
}

async fn person_view(conn: &mut PgConnection, id: i64) -> AppResult<PersonView> {
    let p = tree::find_person(conn, id).await?.ok_or_else(|| AppError::not_found("person"))?;
    let roles = tree::assignments_of_person(conn, id).await?;
    Ok(PersonView {
        id: p.id.to_string(),
        name: p.name,
        code: p.code,
        phone: p.phone,
        email: p.email,
        account: p.login.map(|login| Account {
            login,
            admin: p.is_admin.unwrap_or(false),
            disabled: p.disabled.unwrap_or(false),
        }),
        roles: roles.into_iter().map(Holding::from).collect(),
    })
}

#[derive(Deserialize)]
struct NewPerson {
    name: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

async fn create_person(
    State(app): State<App>,
    user: ApiUser,
    ApiJson(body): ApiJson<NewPerson>,
) -> AppResult<impl IntoResponse> {
    guard::require_admin(&user.principal)?;
    let input = tree::validate_person(
        &body.name,
        body.code.as_deref().unwrap_or(""),
        body.phone.as_deref().unwrap_or(""),
        body.email.as_deref().unwrap_or(""),
    )?;
    let mut tx = app.pool.begin().await?;
    let id = tree::create_person(&mut tx, &input, user.now).await?;
    write_audit(
        &mut tx,
        &user,
        "person.create",
        ("person", id.to_string()),
        None,
        json!({"name": input.name, "code": input.code, "phone": input.phone, "email": input.email}),
    )
    .await?;
    let view = person_view(&mut tx, id).await?;
    tx.commit().await?;
    Ok(created(view))
}

async fn get_person(State(app): State<App>, user: ApiUser, Path(id): Path<String>) -> AppResult<Json<PersonView>> {
    guard::require_admin(&user.principal)?;
    let id = parse_id("person", &id)?;
    let mut conn = app.pool.acquire().await?;
    Ok(Json(person_view(&mut conn, id).await?))
}

/// A PATCH body: absent fields stay; `null` or "" clears an optional one.
#[derive(Deserialize)]
struct PersonPatch {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    code: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    phone: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    email: Option<Value>,
}

/// Distinguishes a field sent as `null` (Some(Null)) from one not sent (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The new value of an optional text field: kept, cleared or set.
fn patched(field: &'static str, sent: &Option<Value>, old: &Option<String>) -> AppResult<String> {
    match sent {
        None => Ok(old.clone().unwrap_or_default()),
        Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(AppError::bad_input(field, "a string or null")),
    }
}

async fn update_person(
    State(app): State<App>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PersonPatch>,
) -> AppResult<Json<PersonView>> {
    guard::require_admin(&user.principal)?;
    let id = parse_id("person", &id)?;
    let mut tx = app.pool.begin().await?;
    let old = tree::find_person(&mut tx, id).await?.ok_or_else(|| AppError::not_found("person"))?;
    let input = tree::validate_person(
        body.name.as_deref().unwrap_or(&old.name),
        &patched("code", &body.code, &old.code)?,
        &patched("phone", &body.phone, &old.phone)?,
        &patched("email", &body.email, &old.email)?,
    )?;
    tree::update_person(&mut tx, id, &input).await?;
    write_audit(
        &mut tx,
        &user,
        "person.update",
        ("person", id.to_string()),
        None,
        json!({"name": input.name, "code": input.code, "phone": input.phone, "email": input.email}),
    )
    .await?;
    let view = person_view(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(view))
}

#[derive(Deserialize)]
struct GiveRole {
    org: String,
    role: String,
    from: String,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    acting: bool,
}

/// `POST /people/{id}/roles`: give a person (with or without an account) a role.
async fn give_role(
    State(app): State<App>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GiveRole>,
) -> AppResult<impl IntoResponse> {
    guard::require_admin(&user.principal)?;
    let id = parse_id("person", &id)?;
    let role = parse_role(&body.role)?;
    let from = parse_date("from", &body.from)?;
    let until = body.until.as_deref().filter(|s| !s.trim().is_empty()).map(|s| parse_date("until", s)).transpose()?;
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let person = tree::find_person(&mut tx, id).await?.ok_or_else(|| AppError::not_found("person"))?;
    let org = orgs::find_by_code(&mut tx, body.org.trim())
        .await?
        .ok_or_else(|| AppError::bad_input("org", format!("no organisation has the code {:?}", body.org.trim())))?;
    let assigned = people::assign_role(
        &mut tx,
        &org,
        people::NewAssignment { person_id: person.id, role, starts_on: from, ends_on: until, acting: body.acting },
        user.now,
    )
    .await?;
    write_audit(
        &mut tx,
        &user,
        "role.assign",
        ("role_assignment", assigned.to_string()),
        Some(org.id),
        json!({"person": person.id, "org": org.code, "role": role, "from": from, "until": until, "acting": body.acting}),
    )
    .await?;
    let view = holding(&mut tx, assigned).await?;
    tx.commit().await?;
    Ok(created(view))
}

#[derive(Deserialize)]
struct RolePatch {
    #[serde(default, deserialize_with = "present")]
    until: Option<Value>,
}

/// `PATCH /roles/{id} {until}`: end an assignment on a day (or, with null, let it run on).
async fn end_role(
    State(app): State<App>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RolePatch>,
) -> AppResult<Json<Holding>> {
    guard::require_admin(&user.principal)?;
    let id = parse_id("role assignment", &id)?;
    let until = match &body.until {
        None => return Err(AppError::bad_input("until", "give the last day (YYYY-MM-DD), or null for no end")),
        Some(Value::Null) => None,
        Some(Value::String(s)) => Some(parse_date("until", s)?),
        Some(_) => return Err(AppError::bad_input("until", "a date (YYYY-MM-DD) or null")),
    };
    app.ensure_duties(user.now).await?;
    let mut tx = app.pool.begin().await?;
    let a = tree::find_assignment(&mut tx, id).await?.ok_or_else(|| AppError::not_found("role assignment"))?;
    tree::set_end(&mut tx, &a, until, user.now).await?;
    write_audit(
        &mut tx,
        &user,
        "role.end",
        ("role_assignment", a.id.to_string()),
        Some(a.org_id),
        json!({"person": a.person_id, "org": a.org_code, "role": a.role, "until": until, "was": a.ends_on}),
    )
    .await?;
    let view = holding(&mut tx, a.id).await?;
    tx.commit().await?;
    Ok(Json(view))
}
