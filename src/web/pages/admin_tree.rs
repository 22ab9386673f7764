//! Administration of the organisation tree, kinds, people and role assignments (组织与人员
//!管理), for admins: the tree browsed level by level (a county of 2,000 organisations
//! never renders at once) and searched; each organisation's page with its holders on any
//! day, its history, the rules that apply and its actions (rename, change kind, move and
//! close with a preview first, reopen, hand over at a change of term); kinds; people and
//! every assignment they held, with acting deputies marked.
//!
//! Every change runs in one transaction with its audit entry. A form with a mistake comes
//! back with HTTP 422, the user's input kept and the field marked.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;

use super::{Layout, PageError, PageResultExt, render, render_status};
use crate::app::App;
use crate::db::orgs::{self, NewOrg, Org};
use crate::db::tree::{self, Assignment, Kind, OrgRef, TreeNode};
use crate::db::{audit, people};
use crate::domain::access::Role;
use crate::error::AppError;
use crate::web::format;
use crate::web::guard;
use crate::web::i18n::Tr;
use crate::web::session::{PageUser, percent_encode};

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/orgs", get(tree_page).post(create_org))
        .route("/admin/orgs/new", get(new_org_form))
        .route("/admin/orgs/{code}", get(org_page))
        .route("/admin/orgs/{code}/rename", post(rename_org))
        .route("/admin/orgs/{code}/kind", post(change_kind))
        .route("/admin/orgs/{code}/move", get(move_preview).post(move_org))
        .route("/admin/orgs/{code}/close", get(close_preview).post(close_org))
        .route("/admin/orgs/{code}/reopen", post(reopen_org))
        .route("/admin/orgs/{code}/handover", post(handover))
        .route("/admin/kinds", get(kinds_page).post(create_kind))
        .route("/admin/kinds/{code}", post(rename_kind))
        .route("/admin/people", get(people_page).post(create_person))
        .route("/admin/people/{id}", get(person_page).post(update_person))
        .route("/admin/people/{id}/roles", post(give_role))
        .route("/admin/roles/{id}/end", post(end_role))
}

/// Candidates offered when a typed organisation or person is not exact.
const CANDIDATES: usize = 20;

// ---------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------

/// Per-field messages of a form, in the user's language.
#[derive(Debug, Default, Clone)]
pub struct Errors(Vec<(&'static str, String)>);

impl Errors {
    fn add(&mut self, field: &'static str, message: impl Into<String>) {
        if !self.has(field) {
            self.0.push((field, message.into()));
        }
    }

    pub fn get(&self, field: &str) -> Option<String> {
        self.0.iter().find(|(f, _)| *f == field).map(|(_, m)| m.clone())
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| *f == field)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `aria-invalid` for a field.
    pub fn invalid(&self, field: &str) -> &'static str {
        if self.has(field) { "true" } else { "false" }
    }
}

/// A date as people type it: 2026-03-01 (what a date field sends), 2026/3/1, 2026.3.1 or
/// 2026年3月1日; years 1900–9999.
fn parse_form_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    let d = ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(s, f).ok())?;
    (1900..=9999).contains(&d.year()).then_some(d)
}

fn role_label(t: &Tr, role: &str) -> String {
    match role {
        "secretary" | "member" | "coordinator" | "inspector" => t.t(&format!("admin.role_{role}")).to_owned(),
        other => other.to_owned(),
    }
}

/// The roles as a select offers them.
pub struct RoleOption {
    pub value: &'static str,
    pub label: String,
}

fn role_options(t: &Tr) -> Vec<RoleOption> {
    Role::ALL.iter().map(|r| RoleOption { value: r.as_str(), label: role_label(t, r.as_str()) }).collect()
}

/// A kind as a select offers it.
pub struct KindOption {
    pub code: String,
    pub label: String,
}

fn kind_options(t: &Tr, kinds: &[Kind]) -> Vec<KindOption> {
    kinds.iter().map(|k| KindOption { code: k.code.clone(), label: k.name(t.is_en()).to_owned() }).collect()
}

fn kind_label(t: &Tr, kinds: &[Kind], code: &str) -> String {
    kinds.iter().find(|k| k.code == code).map(|k| k.name(t.is_en()).to_owned()).unwrap_or_else(|| code.to_owned())
}

/// "已撤销（最后活动日 2026年3月1日）" or "将于 … 撤销", for a closed organisation.
fn closed_label(t: &Tr, until: Option<NaiveDate>, today: NaiveDate) -> Option<String> {
    until.map(|u| {
        if u < today {
            t.f1("admin.closed_on", format::date(t, u))
        } else {
            t.f1("admin.closing_on", format::date(t, u))
        }
    })
}

fn descendants_label(t: &Tr, n: i64, capped: bool) -> String {
    if capped {
        t.f1("admin.descendants_many", n)
    } else if n == 0 {
        t.t("admin.descendants_none").to_owned()
    } else {
        t.f1("admin.descendants", n)
    }
}

fn crumbs_text(crumbs: &[OrgRef]) -> String {
    crumbs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(" › ")
}

/// A localised message for an error the database layer gave a form, by its field;
/// a message the portal has no words for shows generically.
fn db_message(t: &Tr, e: &AppError) -> String {
    match e {
        AppError::BadInput { message, .. } | AppError::Conflict(message) => {
            let m = message.as_ref();
            let known = [
                ("cannot move under itself", "admin.err_move_under_itself"),
                ("deeper than 32", "admin.err_too_deep"),
                ("at most 32 levels", "admin.err_too_deep"),
                ("parent organisation is closed by then", "admin.err_parent_closed_then"),
                ("parent organisation is closed: reopen it first", "admin.err_parent_closed"),
                ("cannot come before the organisation began", "admin.err_close_before_start"),
                ("already holds this role there", "admin.err_role_overlap"),
                ("holds the role there already", "admin.err_handover_same"),
                ("holds this role there again later", "admin.err_role_overlap"),
                ("not active on that day", "admin.err_org_inactive"),
                ("the last day comes before the first", "admin.err_until_before_from"),
                ("cannot come before the first day", "admin.err_until_before_from"),
                ("kind cannot change", "admin.kind_locked"),
            ];
            if let Some((_, key)) = known.iter().find(|(needle, _)| m.contains(needle)) {
                return t.t(key).to_owned();
            }
            // "{code} only begins after that day", "{code} has records dated after that day",
            // "{name} only took the role on {date}": the code or name comes first.
            let first = m.split_whitespace().next().unwrap_or("");
            if m.contains("only begins after") {
                return t.f1("admin.err_close_late_start", first);
            }
            if m.contains("has records dated after") {
                return t.f1("admin.err_close_records_after", first);
            }
            if m.contains("only took the role on") {
                return t.f1("admin.err_handover_too_early", first);
            }
            if m.contains("already exists") || m.contains("exists") {
                return t.t("admin.err_exists").to_owned();
            }
            t.t("admin.err_generic").to_owned()
        }
        _ => t.t("admin.err_generic").to_owned(),
    }
}

/// Whether an error is one a form shows beside a field (anything else is an error page).
fn is_form_error(e: &AppError) -> bool {
    matches!(e, AppError::BadInput { .. } | AppError::Conflict(_))
}

/// A success note, from the `done` query of the page a change redirects to.
fn notice(t: &Tr, done: Option<&str>) -> Option<String> {
    let key = match done? {
        "created" => "admin.done_created",
        "renamed" => "admin.done_renamed",
        "kind" => "admin.done_kind",
        "moved" => "admin.done_moved",
        "closed" => "admin.done_closed",
        "reopened" => "admin.done_reopened",
        "handover" => "admin.done_handover",
        "assigned" => "admin.done_assigned",
        "ended" => "admin.done_ended",
        "saved" => "admin.done_saved",
        _ => return None,
    };
    Some(t.t(key).to_owned())
}

/// Page links: "第 2 / 60 页".
pub struct Pager {
    pub label: String,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    fn new(t: &Tr, page: i64, total: i64, base: &str) -> Option<Pager> {
        let pages = ((total + tree::PAGE_SIZE - 1) / tree::PAGE_SIZE).max(1);
        if pages <= 1 && page <= 1 {
            return None;
        }
        let sep = if base.contains('?') { '&' } else { '?' };
        let link = |p: i64| format!("{base}{sep}page={p}");
        Some(Pager {
            label: t.f3("admin.page_of", page, pages, total),
            prev: (page > 1).then(|| link((page - 1).min(pages))),
            next: (page < pages).then(|| link(page + 1)),
        })
    }
}

fn parse_page(p: Option<&str>) -> i64 {
    p.and_then(|p| p.trim().parse::<i64>().ok()).filter(|p| (1..=1_000_000).contains(p)).unwrap_or(1)
}

/// An organisation as the tree lists it.
pub struct NodeView {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub closed: Option<String>,
    pub descendants: String,
    pub has_children: bool,
    pub crumbs: String,
}

fn node_view(t: &Tr, n: &TreeNode, today: NaiveDate, crumbs: &[OrgRef]) -> NodeView {
    NodeView {
        id: n.id,
        code: n.code.clone(),
        name: n.name.clone(),
        kind: n.kind_name(t.is_en()).to_owned(),
        closed: closed_label(t, n.active_until, today),
        descendants: descendants_label(t, n.descendants, n.descendants_capped()),
        has_children: n.descendants > 0,
        crumbs: crumbs_text(crumbs),
    }
}

/// What a typed organisation (a code, or part of a code or name) resolves to.
enum Picked<T> {
    One(T),
    /// Not exact: these match; the user chooses.
    Several(Vec<NodeView>),
    None,
}

async fn pick_org(conn: &mut PgConnection, t: &Tr, text: &str, today: NaiveDate) -> sqlx::Result<Picked<Org>> {
    pick_org_outside(conn, t, text, today, None).await
}

/// As [`pick_org`], leaving out the subtree at `outside` from the choices (a new parent
/// cannot be the organisation itself or below it).
async fn pick_org_outside(
    conn: &mut PgConnection,
    t: &Tr,
    text: &str,
    today: NaiveDate,
    outside: Option<&[i64]>,
) -> sqlx::Result<Picked<Org>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Picked::None);
    }
    if let Some(org) = tree::org_by_code_any_case(conn, text).await? {
        return Ok(Picked::One(org));
    }
    let (mut found, _) = tree::search(conn, text).await?;
    if let Some(path) = outside {
        found.retain(|n| !n.path.starts_with(path));
    }
    found.truncate(CANDIDATES);
    if found.is_empty() {
        return Ok(Picked::None);
    }
    let crumbs = tree::breadcrumbs(conn, &found).await?;
    Ok(Picked::Several(found.iter().zip(crumbs).map(|(n, c)| node_view(t, n, today, &c)).collect()))
}

async fn pick_person(conn: &mut PgConnection, text: &str, today: NaiveDate) -> sqlx::Result<Picked<tree::Person>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Picked::None);
    }
    let exact = tree::people_named(conn, text, today).await?;
    if exact.len() == 1 {
        return Ok(match tree::find_person(conn, exact[0].id).await? {
            Some(p) => Picked::One(p),
            None => Picked::None,
        });
    }
    let rows = if exact.is_empty() { tree::people_page(conn, text, today, 1).await?.0 } else { exact };
    if rows.is_empty() {
        return Ok(Picked::None);
    }
    Ok(Picked::Several(
        rows.into_iter()
            .take(CANDIDATES)
            .map(|p| NodeView {
                id: p.id,
                code: p.id.to_string(),
                name: p.name,
                kind: String::new(),
                closed: None,
                descendants: String::new(),
                has_children: false,
                crumbs: [p.code, p.login, p.phone].into_iter().flatten().collect::<Vec<_>>().join(" · "),
            })
            .collect(),
    ))
}

// ---------------------------------------------------------------------------------------
// The tree: browse level by level, search
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "admin/tree.html")]
struct TreePage {
    t: Tr,
    layout: Layout,
    q: String,
    /// The organisation whose children are listed (none: the roots).
    parent: Option<NodeView>,
    crumbs: Vec<OrgRef>,
    nodes: Vec<NodeView>,
    pager: Option<Pager>,
    searching: bool,
    results: Vec<NodeView>,
    more_results: bool,
}

/// One level of the tree, loaded in place by htmx.
#[derive(Template)]
#[template(path = "admin/tree_level.html")]
struct TreeLevel {
    t: Tr,
    nodes: Vec<NodeView>,
    pager: Option<Pager>,
}

#[derive(Deserialize)]
struct TreeQuery {
    q: Option<String>,
    parent: Option<String>,
    page: Option<String>,
}

async fn tree_page(
    State(app): State<App>,
    user: PageUser,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<TreeQuery>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let t = user.tr;
    let page = parse_page(q.page.as_deref());
    let text = q.q.as_deref().unwrap_or("").trim().to_owned();
    let mut conn = app.pool.acquire().await.page(&user)?;
    let parent_org = match q.parent.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(code) => Some(guard::visible_org(&mut conn, &user.principal, code).await.page(&user)?),
        None => None,
    };
    let (nodes, total) = tree::children_page(&mut conn, parent_org.as_ref().map(|o| o.id), page).await.page(&user)?;
    let base = match &parent_org {
        Some(o) => format!("/admin/orgs?parent={}", o.code),
        None => "/admin/orgs".to_owned(),
    };
    let pager = Pager::new(&t, page, total, &base);
    let nodes: Vec<NodeView> = nodes.iter().map(|n| node_view(&t, n, user.today, &[])).collect();
    if headers.contains_key("hx-request") && parent_org.is_some() && text.is_empty() {
        return Ok(render(&TreeLevel { t, nodes, pager }));
    }
    let (parent, crumbs) = match &parent_org {
        Some(o) => {
            let node = tree::node(&mut conn, o.id).await.page(&user)?;
            let crumbs = tree::ancestors(&mut conn, &o.path).await.page(&user)?;
            (node.map(|n| node_view(&t, &n, user.today, &crumbs)), crumbs)
        }
        None => (None, vec![]),
    };
    let (results, more_results) = if text.is_empty() {
        (vec![], false)
    } else {
        let (found, more) = tree::search(&mut conn, &text).await.page(&user)?;
        let crumbs = tree::breadcrumbs(&mut conn, &found).await.page(&user)?;
        (found.iter().zip(crumbs).map(|(n, c)| node_view(&t, n, user.today, &c)).collect(), more)
    };
    let page = TreePage {
        t,
        layout: Layout::new(&user, "admin", &uri.to_string()),
        searching: !text.is_empty(),
        q: text,
        parent,
        crumbs,
        nodes,
        pager,
        results,
        more_results,
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------------------
// Creating an organisation
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewOrgInput {
    code: String,
    name: String,
    kind: String,
    parent: String,
    parent_pick: String,
    active_from: String,
}

#[derive(Template)]
#[template(path = "admin/tree_new.html")]
struct NewOrgPage {
    t: Tr,
    layout: Layout,
    input: NewOrgInput,
    kinds: Vec<KindOption>,
    parent_crumbs: String,
    candidates: Vec<NodeView>,
    errors: Errors,
}

#[derive(Deserialize)]
struct NewOrgQuery {
    parent: Option<String>,
}

async fn new_org_form(
    State(app): State<App>,
    user: PageUser,
    uri: Uri,
    Query(q): Query<NewOrgQuery>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let kinds = tree::kinds(&mut conn).await.page(&user)?;
    let mut input = NewOrgInput { active_from: user.today.to_string(), ..NewOrgInput::default() };
    let mut parent_crumbs = String::new();
    if let Some(code) = q.parent.as_deref().filter(|c| !c.is_empty())
        && let Some(p) = orgs::find_by_code(&mut conn, code).await.page(&user)?
    {
        let mut crumbs = tree::ancestors(&mut conn, &p.path).await.page(&user)?;
        crumbs.push(OrgRef { id: p.id, code: p.code.clone(), name: p.name.clone() });
        parent_crumbs = crumbs_text(&crumbs);
        input.parent = p.code;
        // A new organisation under a committee is most often a branch: suggest the kind
        // its siblings have, else the first kind.
        input.kind = sibling_kind(&mut conn, p.id).await.page(&user)?.unwrap_or_default();
    }
    let page = NewOrgPage {
        t: user.tr,
        layout: Layout::new(&user, "admin", &uri.to_string()),
        kinds: kind_options(&user.tr, &kinds),
        input,
        parent_crumbs,
        candidates: vec![],
        errors: Errors::default(),
    };
    Ok(render(&page))
}

/// The kind most of an organisation's first children have.
async fn sibling_kind(conn: &mut PgConnection, parent_id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select kind from (select kind from org where parent_id = $1 order by code limit 50) c
         group by kind order by count(*) desc, kind limit 1",
    )
    .bind(parent_id)
    .fetch_optional(conn)
    .await
}

async fn create_org(
    State(app): State<App>,
    user: PageUser,
    uri: Uri,
    Form(mut input): Form<NewOrgInput>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let t = user.tr;
    let mut errors = Errors::default();
    let mut candidates = vec![];
    if !input.parent_pick.trim().is_empty() {
        input.parent = std::mem::take(&mut input.parent_pick);
    }
    input.code = input.code.trim().to_owned();
    if orgs::validate_code(&input.code).is_err() {
        errors.add("code", t.t("admin.err_org_code"));
    }
    if orgs::validate_name(&input.name).is_err() {
        errors.add("name", t.t("admin.err_org_name"));
    }
    let active_from = parse_form_date(&input.active_from);
    if active_from.is_none() {
        errors.add("active_from", t.t("admin.err_date"));
    }
    app.ensure_duties(user.now).await.page(&user)?;
    let mut tx = app.pool.begin().await.page(&user)?;
    let kinds = tree::kinds(&mut tx).await.page(&user)?;
    if !kinds.iter().any(|k| k.code == input.kind) {
        errors.add("kind", t.t("admin.err_kind"));
    }
    let parent = match pick_org(&mut tx, &t, &input.parent, user.today).await.page(&user)? {
        Picked::One(p) => Some(p),
        Picked::Several(c) => {
            errors.add("parent", t.t("admin.err_choose_org"));
            candidates = c;
            None
        }
        Picked::None if input.parent.trim().is_empty() => None,
        Picked::None => {
            errors.add("parent", t.f1("admin.err_no_org", input.parent.trim()));
            None
        }
    };
    if let Some(p) = &parent {
        input.parent = p.code.clone();
    }
    if errors.is_empty()
        && let Some(from) = active_from
    {
        let new = NewOrg {
            code: input.code.clone(),
            name: input.name.clone(),
            kind: input.kind.clone(),
            parent: parent.as_ref().map(|p| p.code.clone()),
            active_from: from,
        };
        match orgs::create(&mut tx, new, user.now).await {
            Ok(org) => {
                audit::write(
                    &mut tx,
                    user.audit_entry("org.create",
                        ("org", org.code.clone()),
                        Some(org.id),
                        json!({"name": org.name, "kind": org.kind, "parent": org.parent, "active_from": org.active_from}),
                    ),
                )
                .await
                .page(&user)?;
                tx.commit().await.page(&user)?;
                return Ok(Redirect::to(&format!("/admin/orgs/{}?done=created", org.code)).into_response());
            }
            Err(AppError::Conflict(_)) => errors.add("code", t.t("admin.err_code_taken")),
            Err(e @ AppError::BadInput { .. }) => {
                let field = match &e {
                    AppError::BadInput { field, .. } if field == "active_from" => "active_from",
                    AppError::BadInput { field, .. } if field == "kind" => "kind",
                    AppError::BadInput { field, .. } if field == "name" => "name",
                    AppError::BadInput { field, .. } if field == "code" => "code",
                    _ => "parent",
                };
                errors.add(field, db_message(&t, &e));
            }
            Err(e) => return Err(PageError(e, t.locale)),
        }
    }
    drop(tx);
    let page = NewOrgPage {
        t,
        layout: Layout::new(&user, "admin", &uri.to_string()),
        kinds: kind_options(&t, &kinds),
        input,
        parent_crumbs: String::new(),
        candidates,
        errors,
    };
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

// ---------------------------------------------------------------------------------------
// One organisation's page
// ---------------------------------------------------------------------------------------

/// A role assignment as the pages show it.
pub struct HolderView {
    pub id: i64,
    pub person_id: i64,
    pub person_name: String,
    pub org_code: String,
    pub org_name: String,
    pub role_label: String,
    pub from: String,
    pub until: String,
    pub acting: bool,
    pub open: bool,
    /// The default last day offered by the "end" form.
    pub end_default: String,
}

fn view_of_holder(t: &Tr, today: NaiveDate, a: &people::AssignmentView) -> HolderView {
    HolderView {
        id: a.id,
        person_id: a.person_id,
        person_name: a.person_name.clone(),
        org_code: a.org_code.clone(),
        org_name: a.org_name.clone(),
        role_label: role_label(t, &a.role),
        from: format::date(t, a.starts_on),
        until: a.ends_on.map(|u| format::date(t, u)).unwrap_or_else(|| t.t("admin.no_end").to_owned()),
        acting: a.acting,
        open: a.ends_on.is_none_or(|u| u >= today),
        end_default: a.ends_on.filter(|e| *e < today).unwrap_or(today.max(a.starts_on)).to_string(),
    }
}

fn view_of_assignment(t: &Tr, today: NaiveDate, a: &Assignment) -> HolderView {
    let view = people::AssignmentView {
        id: a.id,
        person_id: a.person_id,
        person_name: a.person_name.clone(),
        org_code: a.org_code.clone(),
        org_name: a.org_name.clone(),
        role: a.role.clone(),
        starts_on: a.starts_on,
        ends_on: a.ends_on,
        acting: a.acting,
    };
    view_of_holder(t, today, &view)
}

/// A rule that applies, as the organisation's page lists it.
pub struct RuleView {
    pub code: String,
    pub title: String,
    pub clause: String,
    pub cadence: String,
    pub per_member: bool,
    pub responsible: String,
}

/// What the organisation's forms hold (as typed, after a mistake).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OrgForms {
    name: String,
    kind: String,
    person: String,
    person_pick: String,
    on: String,
}

#[derive(Template)]
#[template(path = "admin/tree_org.html")]
struct OrgPage {
    t: Tr,
    layout: Layout,
    code: String,
    name: String,
    kind_label: String,
    active_from: String,
    closed: Option<String>,
    is_closed: bool,
    can_reopen: bool,
    crumbs: Vec<OrgRef>,
    children: Vec<NodeView>,
    /// The organisation's page lists the first children only; the tree pages on.
    children_pager: Option<Pager>,
    children_more: bool,
    descendants: String,
    open_duties: i64,
    /// The day the holders are shown for.
    on: String,
    on_label: String,
    on_is_today: bool,
    on_error: Option<String>,
    holders: Vec<HolderView>,
    history: Option<Vec<HolderView>>,
    rules: Vec<RuleView>,
    kinds: Vec<KindOption>,
    owes: bool,
    forms: OrgForms,
    candidates: Vec<NodeView>,
    errors: Errors,
    notice: Option<String>,
    today: String,
}

#[derive(Deserialize)]
struct OrgQuery {
    on: Option<String>,
    history: Option<String>,
    done: Option<String>,
}

/// Everything the organisation's page shows; `forms` and `errors` come back from a form.
/// The organisation page's forms as typed, their mistakes, and the people to choose from.
#[derive(Default)]
struct OrgFormState {
    forms: OrgForms,
    errors: Errors,
    candidates: Vec<NodeView>,
}

async fn org_page_view(
    conn: &mut PgConnection,
    user: &PageUser,
    here: &str,
    org: &Org,
    q: &OrgQuery,
    state: OrgFormState,
) -> Result<OrgPage, PageError> {
    let OrgFormState { forms, errors, candidates } = state;
    let t = user.tr;
    let kinds = tree::kinds(conn).await.page(user)?;
    let crumbs = tree::ancestors(conn, &org.path).await.page(user)?;
    let node = tree::node(conn, org.id).await.page(user)?;
    let (children, children_total) = tree::children_page(conn, Some(org.id), 1).await.page(user)?;
    let mut on_error = None;
    let on = match q.on.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => user.today,
        Some(s) => parse_form_date(s).unwrap_or_else(|| {
            on_error = Some(t.t("admin.err_date").to_owned());
            user.today
        }),
    };
    let mut holders = people::holders(conn, org.id, Some(on)).await.page(user)?;
    // The first responsible person first, then the others in the order of DESIGN.md.
    holders.sort_by_key(|a| Role::ALL.iter().position(|r| r.as_str() == a.role).unwrap_or(Role::ALL.len()));
    let history = match q.history.as_deref() {
        Some("1") => Some(people::holders(conn, org.id, None).await.page(user)?),
        _ => None,
    };
    let rules = tree::rules_for(conn, org, user.today).await.page(user)?;
    let owes = tree::owes_duties(conn, org.id).await.page(user)?;
    let open_duties = tree::open_duties_in_subtree(conn, org.id).await.page(user)?;
    let parent_closed = match org.parent_id {
        Some(pid) => orgs::find_by_id(conn, pid).await.page(user)?.is_some_and(|p| p.active_until.is_some()),
        None => false,
    };
    let forms = OrgForms {
        name: if forms.name.is_empty() { org.name.clone() } else { forms.name },
        kind: if forms.kind.is_empty() { org.kind.clone() } else { forms.kind },
        on: if forms.on.is_empty() { user.today.to_string() } else { forms.on },
        ..forms
    };
    let (descendants, _) = node
        .as_ref()
        .map(|n| (descendants_label(&t, n.descendants, n.descendants_capped()), n.descendants))
        .unwrap_or_default();
    Ok(OrgPage {
        t,
        layout: Layout::new(user, "admin", here),
        code: org.code.clone(),
        name: org.name.clone(),
        kind_label: kind_label(&t, &kinds, &org.kind),
        active_from: format::date(&t, org.active_from),
        closed: closed_label(&t, org.active_until, user.today),
        is_closed: org.active_until.is_some(),
        can_reopen: org.active_until.is_some() && !parent_closed,
        crumbs,
        children: children.iter().map(|n| node_view(&t, n, user.today, &[])).collect(),
        children_pager: None,
        children_more: children_total > children.len() as i64,
        descendants,
        open_duties,
        on: on.to_string(),
        on_label: format::date(&t, on),
        on_is_today: on == user.today,
        on_error,
        holders: holders.iter().map(|a| view_of_holder(&t, user.today, a)).collect(),
        history: history.map(|h| h.iter().map(|a| view_of_holder(&t, user.today, a)).collect()),
        rules: rules
            .into_iter()
            .map(|r| RuleView {
                cadence: t.t(&format!("admin.cadence_{}", r.cadence)).to_owned(),
                per_member: r.binds == "each_member",
                responsible: role_label(&t, &r.responsible_role),
                code: r.code,
                title: r.title,
                clause: r.clause,
            })
            .collect(),
        kinds: kind_options(&t, &kinds),
        owes,
        forms,
        candidates,
        errors,
        notice: notice(&t, q.done.as_deref()),
        today: user.today.to_string(),
    })
}

async fn org_page(
    State(app): State<App>,
    user: PageUser,
    uri: Uri,
    Path(code): Path<String>,
    Query(q): Query<OrgQuery>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let org = guard::visible_org(&mut conn, &user.principal, &code).await.page(&user)?;
    let page = org_page_view(&mut conn, &user, &uri.to_string(), &org, &q, OrgFormState::default()).await?;
    let status = if page.on_error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render_status(status, &page))
}

/// The organisation's page again, with a form's input and its mistakes (422).
async fn org_page_with_errors(
    app: &App,
    user: &PageUser,
    org: &Org,
    forms: OrgForms,
    errors: Errors,
    candidates: Vec<NodeView>,
) -> Result<Response, PageError> {
    let mut conn = app.pool.acquire().await.page(user)?;
    let q = OrgQuery { on: None, history: None, done: None };
    let here = format!("/admin/orgs/{}", org.code);
    let page = org_page_view(&mut conn, user, &here, org, &q, OrgFormState { forms, errors, candidates }).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

async fn rename_org(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
    Form(forms): Form<OrgForms>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let t = user.tr;
    let mut tx = app.pool.begin().await.page(&user)?;
    let org = guard::visible_org(&mut tx, &user.principal, &code).await.page(&user)?;
    if orgs::validate_name(&forms.name).is_err() {
        drop(tx);
        let mut errors = Errors::default();
        errors.add("name", t.t("admin.err_org_name"));
        return org_page_with_errors(&app, &user, &org, forms, errors, vec![]).await;
    }
    orgs::rename(&mut tx, &org, &forms.name).await.page(&user)?;
    let name = forms.name.trim();
    audit::write(
        &mut tx,
        user.audit_entry("org.rename", ("org", org.code.clone()), Some(org.id), json!({"name": name, "was": org.name})),
    )
    .await
    .page(&user)?;
    tx.commit().await.page(&user)?;
    Ok(Redirect::to(&format!("/admin/orgs/{}?done=renamed", org.code)).into_response())
}

async fn change_kind(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
    Form(forms): Form<OrgForms>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let t = user.tr;
    app.ensure_duties(user.now).await.page(&user)?;
    let mut tx = app.pool.begin().await.page(&user)?;
    let org = guard::visible_org(&mut tx, &user.principal, &code).await.page(&user)?;
    match orgs::change_kind(&mut tx, &org, forms.kind.trim(), user.now).await {
        Ok(()) => {}
        Err(e) if is_form_error(&e) => {
            drop(tx);
            let mut errors = Errors::default();
            let message = match &e {
                AppError::Conflict(_) => t.t("admin.kind_locked").to_owned(),
                _ => t.t("admin.err_kind").to_owned(),
            };
            errors.add("kind", message);
            return org_page_with_errors(&app, &user, &org, forms, errors, vec![]).await;
        }
        Err(e) => return Err(PageError(e, t.locale)),
    }
    audit::write(
        &mut tx,
        user.audit_entry(
            "org.kind",
            ("org", org.code.clone()),
            Some(org.id),
            json!({"kind": forms.kind.trim(), "was": org.kind}),
        ),
    )
    .await
    .page(&user)?;
    tx.commit().await.page(&user)?;
    Ok(Redirect::to(&format!("/admin/orgs/{}?done=kind", org.code)).into_response())
}

async fn reopen_org(State(app): State<App>, user: PageUser, Path(code): Path<String>) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    app.ensure_duties(user.now).await.page(&user)?;
    let mut tx = app.pool.begin().await.page(&user)?;
    let org = guard::visible_org(&mut tx, &user.principal, &code).await.page(&user)?;
    if org.active_until.is_some() {
        orgs::reopen(&mut tx, &org, user.now).await.page(&user)?;
        audit::write(
            &mut tx,
            user.audit_entry("org.reopen", ("org", org.code.clone()), Some(org.id), json!({"was": org.active_until})),
        )
        .await
        .page(&user)?;
    }
    tx.commit().await.page(&user)?;
    Ok(Redirect::to(&format!("/admin/orgs/{}?done=reopened", org.code)).into_response())
}

/// A change of term on the organisation's page: the new secretary from a day on; the
/// current one's assignment ends the day before.
async fn handover(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
    Form(mut forms): Form<OrgForms>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let t = user.tr;
    if !forms.person_pick.trim().is_empty() {
        forms.person = format!("#{}", forms.person_pick.trim());
    }
    app.ensure_duties(user.now).await.page(&user)?;
    let mut tx = app.pool.begin().await.page(&user)?;
    let org = guard::visible_org(&mut tx, &user.principal, &code).await.page(&user)?;
    let mut errors = Errors::default();
    let mut candidates = vec![];
    let on = parse_form_date(&forms.on);
    if on.is_none() {
        errors.add("on", t.t("admin.err_date"));
    }
    let person = match pick_person(&mut tx, &forms.person, user.today).await.page(&user)? {
        Picked::One(p) => Some(p),
        Picked::Several(c) => {
            errors.add("person", t.t("admin.err_choose_person"));
            candidates = c;
            None
        }
        Picked::None if forms.person.trim().is_empty() => {
            errors.add("person", t.t("admin.err_person_required"));
            None
        }
        Picked::None => {
            errors.add("person", t.f1("admin.err_no_person", forms.person.trim()));
            None
        }
    };
    if let (Some(person), Some(on)) = (&person, on)
        && errors.is_empty()
    {
        match tree::handover(&mut tx, &org, Role::Secretary, person.id, on, user.now).await {
            Ok(done) => {
                audit::write(
                    &mut tx,
                    user.audit_entry("role.handover",
                        ("org", org.code.clone()),
                        Some(org.id),
                        json!({"role": "secretary", "on": on, "person": person.id,
                               "ended": done.ended.iter().map(|a| a.id).collect::<Vec<_>>(), "assigned": done.assigned}),
                    ),
                )
                .await
                .page(&user)?;
                tx.commit().await.page(&user)?;
                return Ok(Redirect::to(&format!("/admin/orgs/{}?done=handover", org.code)).into_response());
            }
            Err(e) if is_form_error(&e) => {
                let field = match &e {
                    AppError::BadInput { field, .. } if field == "on" => "on",
                    AppError::BadInput { .. } => "on",
                    _ => "person",
                };
                errors.add(field, db_message(&t, &e));
            }
            Err(e) => return Err(PageError(e, t.locale)),
        }
    }
    drop(tx);
    if let Some(p) = person {
        forms.person = p.name;
    }
    forms.person_pick.clear();
    org_page_with_errors(&app, &user, &org, forms, errors, candidates).await
}

// ---------------------------------------------------------------------------------------
// Moving, with a preview first
// ---------------------------------------------------------------------------------------

/// What a move would do, from a move made and rolled back.
pub struct MovePreview {
    pub parent_code: String,
    pub parent_path: String,
    pub organisations: i64,
    pub duties_created: i64,
    pub duties_removed: i64,
}

#[derive(Template)]
#[template(path = "admin/tree_move.html")]
struct MovePage {
    t: Tr,
    layout: Layout,
    code: String,
    name: String,
    path_now: String,
    descendants: String,
    open_duties: i64,
    parent: String,
    candidates: Vec<NodeView>,
    preview: Option<MovePreview>,
    problem: Option<String>,
    errors: Errors,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MoveInput {
    parent: String,
    parent_pick: String,
}

/// The move page: with a new parent chosen, the preview ("将移动 N 个组织…") and the
/// button that confirms; else the form to choose one.
async fn move_preview(
    State(app): State<App>,
    user: PageUser,
    uri: Uri,
    Path(code): Path<String>,
    Query(input): Query<MoveInput>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    move_page(&app, &user, &uri.to_string(), &code, input, false).await
}

async fn move_org(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
    Form(input): Form<MoveInput>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    move_page(&app, &user, &format!("/admin/orgs/{code}/move"), &code, input, true).await
}

/// Preview (and with `commit`, make) a move. The preview runs the move in a transaction
/// and rolls it back, so its counts are exactly what the move does.
async fn move_page(
    app: &App,
    user: &PageUser,
    here: &str,
    code: &str,
    mut input: MoveInput,
    commit: bool,
) -> Result<Response, PageError> {
    let t = user.tr;
    if !input.parent_pick.trim().is_empty() {
        input.parent = std::mem::take(&mut input.parent_pick);
    }
    app.ensure_duties(user.now).await.page(user)?;
    let mut tx = app.pool.begin().await.page(user)?;
    let org = guard::visible_org(&mut tx, &user.principal, code).await.page(user)?;
    let mut crumbs = tree::ancestors(&mut tx, &org.path).await.page(user)?;
    crumbs.push(OrgRef { id: org.id, code: org.code.clone(), name: org.name.clone() });
    let node = tree::node(&mut tx, org.id).await.page(user)?;
    let open_duties = tree::open_duties_in_subtree(&mut tx, org.id).await.page(user)?;
    let mut errors = Errors::default();
    let mut candidates = vec![];
    let mut preview = None;
    let mut problem = None;
    let typed = !input.parent.trim().is_empty();
    let parent = match pick_org_outside(&mut tx, &t, &input.parent, user.today, Some(&org.path)).await.page(user)? {
        Picked::One(p) => Some(p),
        // Looking up a parent by part of its name is a search, not a mistake; confirming
        // (a POST) always names one code.
        Picked::Several(c) => {
            if commit {
                errors.add("parent", t.t("admin.err_choose_org"));
            }
            candidates = c;
            None
        }
        Picked::None if !typed && commit => {
            errors.add("parent", t.t("admin.err_parent_required"));
            None
        }
        Picked::None if !typed => None,
        Picked::None => {
            errors.add("parent", t.f1("admin.err_no_org", input.parent.trim()));
            None
        }
    };
    if let Some(parent) = parent {
        input.parent = parent.code.clone();
        let mut to = tree::ancestors(&mut tx, &parent.path).await.page(user)?;
        to.push(OrgRef { id: parent.id, code: parent.code.clone(), name: parent.name.clone() });
        to.push(OrgRef { id: org.id, code: org.code.clone(), name: org.name.clone() });
        if org.parent_id == Some(parent.id) {
            problem = Some(t.t("admin.err_same_parent").to_owned());
        } else {
            match orgs::move_to(&mut tx, &org, &parent, user.now).await {
                Ok(summary) if commit => {
                    audit::write(
                        &mut tx,
                        user.audit_entry(
                            "org.move",
                            ("org", org.code.clone()),
                            Some(org.id),
                            json!({"from": org.parent, "to": parent.code, "organisations": summary.organisations,
                                   "duties_created": summary.duties_created, "duties_removed": summary.duties_removed}),
                        ),
                    )
                    .await
                    .page(user)?;
                    tx.commit().await.page(user)?;
                    return Ok(Redirect::to(&format!("/admin/orgs/{}?done=moved", org.code)).into_response());
                }
                Ok(summary) => {
                    preview = Some(MovePreview {
                        parent_code: parent.code.clone(),
                        parent_path: crumbs_text(&to),
                        organisations: summary.organisations,
                        duties_created: summary.duties_created,
                        duties_removed: summary.duties_removed,
                    });
                }
                Err(e) if is_form_error(&e) => problem = Some(db_message(&t, &e)),
                Err(e) => return Err(PageError(e, t.locale)),
            }
        }
    }
    tx.rollback().await.page(user)?;
    let status = if errors.is_empty() && problem.is_none() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let page = MovePage {
        t,
        layout: Layout::new(user, "admin", here),
        code: org.code.clone(),
        name: org.name.clone(),
        path_now: crumbs_text(&crumbs),
        descendants: node.map(|n| descendants_label(&t, n.descendants, n.descendants_capped())).unwrap_or_default(),
        open_duties,
        parent: input.parent,
        candidates,
        preview,
        problem,
        errors,
    };
    Ok(render_status(status, &page))
}

// ---------------------------------------------------------------------------------------
// Closing, with a preview first
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "admin/tree_close.html")]
struct ClosePage {
    t: Tr,
    layout: Layout,
    code: String,
    name: String,
    until: String,
    until_label: String,
    preview: Option<orgs::ClosePreview>,
    problem: Option<String>,
    errors: Errors,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CloseInput {
    until: String,
}

async fn close_preview(
    State(app): State<App>,
    user: PageUser,
    uri: Uri,
    Path(code): Path<String>,
    Query(input): Query<CloseInput>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    close_page(&app, &user, &uri.to_string(), &code, input, false).await
}

async fn close_org(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
    Form(input): Form<CloseInput>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    close_page(&app, &user, &format!("/admin/orgs/{code}/close"), &code, input, true).await
}

/// Preview (and with `commit`, make) a close on a day: the counts, and the close tried in
/// a transaction that is rolled back, so a refusal shows before anyone confirms.
async fn close_page(
    app: &App,
    user: &PageUser,
    here: &str,
    code: &str,
    mut input: CloseInput,
    commit: bool,
) -> Result<Response, PageError> {
    let t = user.tr;
    app.ensure_duties(user.now).await.page(user)?;
    let mut tx = app.pool.begin().await.page(user)?;
    let org = guard::visible_org(&mut tx, &user.principal, code).await.page(user)?;
    let mut errors = Errors::default();
    let mut preview = None;
    let mut problem = None;
    let until = if input.until.trim().is_empty() && !commit {
        None
    } else {
        let d = parse_form_date(&input.until);
        if d.is_none() {
            errors.add("until", t.t("admin.err_date"));
        }
        d
    };
    if let Some(until) = until {
        input.until = until.to_string();
        preview = Some(orgs::preview_close(&mut tx, &org, until).await.page(user)?);
        match orgs::close(&mut tx, &org, until, user.now).await {
            Ok(ids) if commit => {
                audit::write(
                    &mut tx,
                    user.audit_entry(
                        "org.close",
                        ("org", org.code.clone()),
                        Some(org.id),
                        json!({"until": until, "organisations": ids.len(), "was": org.active_until}),
                    ),
                )
                .await
                .page(user)?;
                tx.commit().await.page(user)?;
                return Ok(Redirect::to(&format!("/admin/orgs/{}?done=closed", org.code)).into_response());
            }
            Ok(_) => {}
            Err(e) if is_form_error(&e) => problem = Some(db_message(&t, &e)),
            Err(e) => return Err(PageError(e, t.locale)),
        }
    }
    tx.rollback().await.page(user)?;
    let status = if errors.is_empty() && problem.is_none() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let page = ClosePage {
        t,
        layout: Layout::new(user, "admin", here),
        code: org.code.clone(),
        name: org.name.clone(),
        until_label: until.map(|u| format::date(&t, u)).unwrap_or_default(),
        until: if input.until.is_empty() { user.today.to_string() } else { input.until },
        preview,
        problem,
        errors,
    };
    Ok(render_status(status, &page))
}

// ---------------------------------------------------------------------------------------
// Kinds
// ---------------------------------------------------------------------------------------

pub struct KindView {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub builtin: bool,
    pub in_use: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct KindInput {
    code: String,
    name_zh: String,
    name_en: String,
}

#[derive(Template)]
#[template(path = "admin/kinds.html")]
struct KindsPage {
    t: Tr,
    layout: Layout,
    kinds: Vec<KindView>,
    /// The new kind's form.
    input: KindInput,
    errors: Errors,
    /// The kind whose rename came back with a mistake, and what was typed.
    editing: Option<String>,
    edit: KindInput,
    edit_errors: Errors,
    notice: Option<String>,
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

/// The kinds page's forms as typed, and their mistakes.
#[derive(Default)]
struct KindForms {
    input: KindInput,
    errors: Errors,
    editing: Option<String>,
    edit: KindInput,
    edit_errors: Errors,
}

async fn kinds_view(app: &App, user: &PageUser, forms: KindForms, done: Option<&str>) -> Result<KindsPage, PageError> {
    let KindForms { input, errors, editing, edit, edit_errors } = forms;
    let mut conn = app.pool.acquire().await.page(user)?;
    let kinds = tree::kinds(&mut conn).await.page(user)?;
    Ok(KindsPage {
        t: user.tr,
        layout: Layout::new(user, "admin", "/admin/kinds"),
        kinds: kinds
            .into_iter()
            .map(|k| KindView {
                code: k.code,
                name_zh: k.name_zh,
                name_en: k.name_en,
                builtin: k.builtin,
                in_use: k.in_use,
            })
            .collect(),
        input,
        errors,
        editing,
        edit,
        edit_errors,
        notice: notice(&user.tr, done),
    })
}

async fn kinds_page(State(app): State<App>, user: PageUser, Query(q): Query<DoneQuery>) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let page = kinds_view(&app, &user, KindForms::default(), q.done.as_deref()).await?;
    Ok(render(&page))
}

/// Localised messages for a kind's fields.
fn kind_errors(t: &Tr, input: &KindInput, check_code: bool) -> Errors {
    let mut errors = Errors::default();
    if check_code && tree::validate_kind_code(&input.code).is_err() {
        errors.add("code", t.t("admin.err_kind_code"));
    }
    let zh = input.name_zh.trim().chars().count();
    if zh == 0 || zh > 50 {
        errors.add("name_zh", t.t("admin.err_kind_name_zh"));
    }
    let en = input.name_en.trim().chars().count();
    if en == 0 || en > 80 {
        errors.add("name_en", t.t("admin.err_kind_name_en"));
    }
    errors
}

async fn create_kind(
    State(app): State<App>,
    user: PageUser,
    Form(input): Form<KindInput>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let t = user.tr;
    let mut errors = kind_errors(&t, &input, true);
    if errors.is_empty() {
        let mut tx = app.pool.begin().await.page(&user)?;
        match tree::create_kind(&mut tx, &input.code, &input.name_zh, &input.name_en).await {
            Ok(kind) => {
                audit::write(
                    &mut tx,
                    user.audit_entry(
                        "kind.create",
                        ("org_kind", kind.code.clone()),
                        None,
                        json!({"name_zh": kind.name_zh, "name_en": kind.name_en}),
                    ),
                )
                .await
                .page(&user)?;
                tx.commit().await.page(&user)?;
                return Ok(Redirect::to("/admin/kinds?done=created").into_response());
            }
            Err(AppError::Conflict(m)) if m.contains("Chinese name") => {
                errors.add("name_zh", t.t("admin.err_kind_name_taken"))
            }
            Err(AppError::Conflict(_)) => errors.add("code", t.t("admin.err_kind_code_taken")),
            Err(e @ AppError::BadInput { .. }) => errors.add("code", db_message(&t, &e)),
            Err(e) => return Err(PageError(e, t.locale)),
        }
    }
    let page = kinds_view(&app, &user, KindForms { input, errors, ..KindForms::default() }, None).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

async fn rename_kind(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
    Form(edit): Form<KindInput>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let t = user.tr;
    let mut errors = kind_errors(&t, &edit, false);
    let mut tx = app.pool.begin().await.page(&user)?;
    let old = tree::find_kind(&mut tx, &code)
        .await
        .page(&user)?
        .ok_or_else(|| PageError(AppError::not_found("organisation kind"), t.locale))?;
    if errors.is_empty() {
        match tree::rename_kind(&mut tx, &code, &edit.name_zh, &edit.name_en).await {
            Ok(kind) => {
                audit::write(
                    &mut tx,
                    user.audit_entry(
                        "kind.update",
                        ("org_kind", kind.code.clone()),
                        None,
                        json!({"name_zh": kind.name_zh, "name_en": kind.name_en,
                               "was": {"name_zh": old.name_zh, "name_en": old.name_en}}),
                    ),
                )
                .await
                .page(&user)?;
                tx.commit().await.page(&user)?;
                return Ok(Redirect::to("/admin/kinds?done=saved").into_response());
            }
            Err(AppError::Conflict(_)) => errors.add("name_zh", t.t("admin.err_kind_name_taken")),
            Err(e @ AppError::BadInput { .. }) => errors.add("name_zh", db_message(&t, &e)),
            Err(e) => return Err(PageError(e, t.locale)),
        }
    }
    drop(tx);
    let forms = KindForms { editing: Some(code), edit, edit_errors: errors, ..KindForms::default() };
    let page = kinds_view(&app, &user, forms, None).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

// ---------------------------------------------------------------------------------------
// People
// ---------------------------------------------------------------------------------------

pub struct PersonListItem {
    pub id: i64,
    pub name: String,
    pub code: String,
    pub contact: String,
    pub login: String,
    /// "第一党支部书记、公司党委班子成员", or empty when none is held today.
    pub roles: String,
}

/// The roles a person holds today, as the list says them.
fn roles_summary(t: &Tr, p: &tree::PersonRow) -> String {
    let mut parts: Vec<String> = p
        .first_roles()
        .into_iter()
        .map(|(org, role, acting)| {
            let role = if acting {
                format!("{}{}", role_label(t, &role), t.t("admin.acting_suffix"))
            } else {
                role_label(t, &role)
            };
            t.f2("admin.role_at", org, role)
        })
        .collect();
    if p.roles_now > parts.len() as i64 {
        parts.push(t.f1("admin.roles_more", p.roles_now));
    }
    parts.join(t.t("admin.list_separator"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PersonInput {
    name: String,
    code: String,
    phone: String,
    email: String,
}

#[derive(Template)]
#[template(path = "admin/people.html")]
struct PeoplePage {
    t: Tr,
    layout: Layout,
    q: String,
    people: Vec<PersonListItem>,
    total: i64,
    pager: Option<Pager>,
    input: PersonInput,
    errors: Errors,
}

#[derive(Deserialize)]
struct PeopleQuery {
    q: Option<String>,
    page: Option<String>,
}

async fn people_view(
    app: &App,
    user: &PageUser,
    here: &str,
    q: &str,
    page: i64,
    input: PersonInput,
    errors: Errors,
) -> Result<PeoplePage, PageError> {
    let t = user.tr;
    let mut conn = app.pool.acquire().await.page(user)?;
    let (rows, total) = tree::people_page(&mut conn, q, user.today, page).await.page(user)?;
    let base = if q.is_empty() { "/admin/people".to_owned() } else { format!("/admin/people?q={}", percent_encode(q)) };
    Ok(PeoplePage {
        t,
        layout: Layout::new(user, "admin", here),
        q: q.to_owned(),
        people: rows
            .into_iter()
            .map(|p| PersonListItem {
                id: p.id,
                roles: roles_summary(&t, &p),
                name: p.name,
                code: p.code.unwrap_or_default(),
                contact: [p.phone, p.email].into_iter().flatten().collect::<Vec<_>>().join(" · "),
                login: p.login.unwrap_or_default(),
            })
            .collect(),
        total,
        pager: Pager::new(&t, page, total, &base),
        input,
        errors,
    })
}

async fn people_page(
    State(app): State<App>,
    user: PageUser,
    uri: Uri,
    Query(q): Query<PeopleQuery>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let text = q.q.as_deref().unwrap_or("").trim().to_owned();
    let page = people_view(
        &app,
        &user,
        &uri.to_string(),
        &text,
        parse_page(q.page.as_deref()),
        PersonInput::default(),
        Errors::default(),
    )
    .await?;
    Ok(render(&page))
}

/// A person's fields checked, with messages in the user's language.
fn person_errors(t: &Tr, input: &PersonInput) -> (Errors, Option<tree::PersonInput>) {
    let mut errors = Errors::default();
    match tree::validate_person(&input.name, &input.code, &input.phone, &input.email) {
        Ok(valid) => (errors, Some(valid)),
        Err(AppError::BadInput { field, .. }) => {
            let (f, key) = match field.as_ref() {
                "code" => ("code", "admin.err_person_code"),
                "phone" => ("phone", "admin.err_phone"),
                "email" => ("email", "admin.err_email"),
                _ => ("name", "admin.err_person_name"),
            };
            errors.add(f, t.t(key));
            // Check the others too, so every mistake shows at once.
            for (f, key, ok) in [
                ("phone", "admin.err_phone", tree::validate_person("x", "", &input.phone, "").is_ok()),
                ("email", "admin.err_email", tree::validate_person("x", "", "", &input.email).is_ok()),
                ("code", "admin.err_person_code", tree::validate_person("x", &input.code, "", "").is_ok()),
            ] {
                if !ok {
                    errors.add(f, t.t(key));
                }
            }
            (errors, None)
        }
        Err(_) => {
            errors.add("name", t.t("admin.err_generic"));
            (errors, None)
        }
    }
}

async fn create_person(
    State(app): State<App>,
    user: PageUser,
    Form(input): Form<PersonInput>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let t = user.tr;
    let (mut errors, valid) = person_errors(&t, &input);
    if let Some(valid) = valid {
        let mut tx = app.pool.begin().await.page(&user)?;
        match tree::create_person(&mut tx, &valid, user.now).await {
            Ok(id) => {
                audit::write(
                    &mut tx,
                    user.audit_entry(
                        "person.create",
                        ("person", id.to_string()),
                        None,
                        json!({"name": valid.name, "code": valid.code, "phone": valid.phone, "email": valid.email}),
                    ),
                )
                .await
                .page(&user)?;
                tx.commit().await.page(&user)?;
                return Ok(Redirect::to(&format!("/admin/people/{id}?done=created")).into_response());
            }
            Err(AppError::Conflict(_)) => errors.add("code", t.t("admin.err_person_code_taken")),
            Err(e) => return Err(PageError(e, t.locale)),
        }
    }
    let page = people_view(&app, &user, "/admin/people", "", 1, input, errors).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

// ---------------------------------------------------------------------------------------
// One person's page
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RoleInput {
    org: String,
    org_pick: String,
    role: String,
    from: String,
    until: String,
    acting: String,
}

#[derive(Template)]
#[template(path = "admin/person.html")]
struct PersonPage {
    t: Tr,
    layout: Layout,
    id: i64,
    name: String,
    code: String,
    phone: String,
    email: String,
    login: Option<String>,
    account_note: String,
    current: Vec<HolderView>,
    future: Vec<HolderView>,
    past: Vec<HolderView>,
    /// The details form.
    input: PersonInput,
    errors: Errors,
    /// The give-a-role form.
    role_input: RoleInput,
    role_errors: Errors,
    candidates: Vec<NodeView>,
    roles: Vec<RoleOption>,
    /// The assignment whose end came back with a mistake.
    end_id: i64,
    end_value: String,
    end_error: Option<String>,
    notice: Option<String>,
}

/// The person page's forms, as typed, after a mistake.
#[derive(Default)]
struct PersonForms {
    input: Option<PersonInput>,
    errors: Errors,
    role_input: Option<RoleInput>,
    role_errors: Errors,
    candidates: Vec<NodeView>,
    end: Option<(i64, String, String)>,
}

async fn person_view(
    app: &App,
    user: &PageUser,
    id: i64,
    forms: PersonForms,
    done: Option<&str>,
) -> Result<PersonPage, PageError> {
    let t = user.tr;
    let mut conn = app.pool.acquire().await.page(user)?;
    let p = tree::find_person(&mut conn, id)
        .await
        .page(user)?
        .ok_or_else(|| PageError(AppError::not_found("person"), t.locale))?;
    let all = tree::assignments_of_person(&mut conn, id).await.page(user)?;
    let (mut current, mut future, mut past) = (vec![], vec![], vec![]);
    for a in &all {
        let v = view_of_assignment(&t, user.today, a);
        if a.holds_on(user.today) {
            current.push(v);
        } else if a.is_past(user.today) {
            past.push(v);
        } else {
            future.push(v);
        }
    }
    let account_note = match (&p.login, p.is_admin, p.disabled) {
        (None, _, _) => t.t("admin.no_account").to_owned(),
        (Some(_), _, Some(true)) => t.t("admin.account_disabled").to_owned(),
        (Some(_), Some(true), _) => t.t("admin.account_admin").to_owned(),
        (Some(_), _, _) => t.t("admin.account_active").to_owned(),
    };
    let input = forms.input.unwrap_or_else(|| PersonInput {
        name: p.name.clone(),
        code: p.code.clone().unwrap_or_default(),
        phone: p.phone.clone().unwrap_or_default(),
        email: p.email.clone().unwrap_or_default(),
    });
    let role_input = forms.role_input.unwrap_or_else(|| RoleInput {
        role: "secretary".to_owned(),
        from: user.today.to_string(),
        ..RoleInput::default()
    });
    let (end_id, end_value, end_error) = match forms.end {
        Some((id, value, error)) => (id, value, Some(error)),
        None => (0, String::new(), None),
    };
    Ok(PersonPage {
        t,
        layout: Layout::new(user, "admin", &format!("/admin/people/{id}")),
        id: p.id,
        name: p.name,
        code: p.code.unwrap_or_default(),
        phone: p.phone.unwrap_or_default(),
        email: p.email.unwrap_or_default(),
        login: p.login,
        account_note,
        current,
        future,
        past,
        input,
        errors: forms.errors,
        role_input,
        role_errors: forms.role_errors,
        candidates: forms.candidates,
        roles: role_options(&t),
        end_id,
        end_value,
        end_error,
        notice: notice(&t, done),
    })
}

fn person_id(t: &Tr, s: &str) -> Result<i64, PageError> {
    s.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| PageError(AppError::not_found("person"), t.locale))
}

async fn person_page(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let id = person_id(&user.tr, &id)?;
    let page = person_view(&app, &user, id, PersonForms::default(), q.done.as_deref()).await?;
    Ok(render(&page))
}

async fn update_person(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
    Form(input): Form<PersonInput>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let t = user.tr;
    let id = person_id(&t, &id)?;
    let (mut errors, valid) = person_errors(&t, &input);
    let mut tx = app.pool.begin().await.page(&user)?;
    let old = tree::find_person(&mut tx, id)
        .await
        .page(&user)?
        .ok_or_else(|| PageError(AppError::not_found("person"), t.locale))?;
    if let Some(valid) = valid {
        match tree::update_person(&mut tx, id, &valid).await {
            Ok(()) => {
                audit::write(
                    &mut tx,
                    user.audit_entry(
                        "person.update",
                        ("person", id.to_string()),
                        None,
                        json!({"name": valid.name, "code": valid.code, "phone": valid.phone, "email": valid.email,
                               "was": {"name": old.name, "code": old.code, "phone": old.phone, "email": old.email}}),
                    ),
                )
                .await
                .page(&user)?;
                tx.commit().await.page(&user)?;
                return Ok(Redirect::to(&format!("/admin/people/{id}?done=saved")).into_response());
            }
            Err(AppError::Conflict(_)) => errors.add("code", t.t("admin.err_person_code_taken")),
            Err(e) => return Err(PageError(e, t.locale)),
        }
    }
    drop(tx);
    let forms = PersonForms { input: Some(input), errors, ..PersonForms::default() };
    let page = person_view(&app, &user, id, forms, None).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

async fn give_role(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
    Form(mut input): Form<RoleInput>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let t = user.tr;
    let id = person_id(&t, &id)?;
    if !input.org_pick.trim().is_empty() {
        input.org = std::mem::take(&mut input.org_pick);
    }
    let mut errors = Errors::default();
    let mut candidates = vec![];
    let role: Option<Role> = input.role.parse().ok();
    if role.is_none() {
        errors.add("role", t.t("admin.err_role"));
    }
    let from = parse_form_date(&input.from);
    if from.is_none() {
        errors.add("from", t.t("admin.err_date"));
    }
    let until = if input.until.trim().is_empty() {
        Some(None)
    } else {
        match parse_form_date(&input.until) {
            Some(d) => Some(Some(d)),
            None => {
                errors.add("until", t.t("admin.err_date"));
                None
            }
        }
    };
    if let (Some(f), Some(Some(u))) = (from, until)
        && u < f
    {
        errors.add("until", t.t("admin.err_until_before_from"));
    }
    app.ensure_duties(user.now).await.page(&user)?;
    let mut tx = app.pool.begin().await.page(&user)?;
    let person = tree::find_person(&mut tx, id)
        .await
        .page(&user)?
        .ok_or_else(|| PageError(AppError::not_found("person"), t.locale))?;
    let org = match pick_org(&mut tx, &t, &input.org, user.today).await.page(&user)? {
        Picked::One(o) => Some(o),
        Picked::Several(c) => {
            errors.add("org", t.t("admin.err_choose_org"));
            candidates = c;
            None
        }
        Picked::None if input.org.trim().is_empty() => {
            errors.add("org", t.t("admin.err_org_required"));
            None
        }
        Picked::None => {
            errors.add("org", t.f1("admin.err_no_org", input.org.trim()));
            None
        }
    };
    if let Some(o) = &org {
        input.org = o.code.clone();
    }
    let acting = !input.acting.is_empty();
    if let (Some(org), Some(role), Some(from), Some(until)) = (&org, role, from, until)
        && errors.is_empty()
    {
        let new = people::NewAssignment { person_id: person.id, role, starts_on: from, ends_on: until, acting };
        match people::assign_role(&mut tx, org, new, user.now).await {
            Ok(assigned) => {
                audit::write(
                    &mut tx,
                    user.audit_entry(
                        "role.assign",
                        ("role_assignment", assigned.to_string()),
                        Some(org.id),
                        json!({"person": person.id, "org": org.code, "role": role, "from": from, "until": until,
                               "acting": acting}),
                    ),
                )
                .await
                .page(&user)?;
                tx.commit().await.page(&user)?;
                return Ok(Redirect::to(&format!("/admin/people/{id}?done=assigned")).into_response());
            }
            Err(e) if is_form_error(&e) => {
                let field = match &e {
                    AppError::BadInput { field, .. } if field == "until" => "until",
                    AppError::BadInput { .. } => "from",
                    _ => "org",
                };
                errors.add(field, db_message(&t, &e));
            }
            Err(e) => return Err(PageError(e, t.locale)),
        }
    }
    drop(tx);
    let forms = PersonForms { role_input: Some(input), role_errors: errors, candidates, ..PersonForms::default() };
    let page = person_view(&app, &user, id, forms, None).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EndInput {
    until: String,
    /// `org`: return to the organisation's page.
    back: String,
}

/// End an assignment on a day (its last day): a term that ends, a deputy no longer acting.
async fn end_role(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
    Form(input): Form<EndInput>,
) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let t = user.tr;
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| PageError(AppError::not_found("role assignment"), t.locale))?;
    app.ensure_duties(user.now).await.page(&user)?;
    let mut tx = app.pool.begin().await.page(&user)?;
    let a = tree::find_assignment(&mut tx, id)
        .await
        .page(&user)?
        .ok_or_else(|| PageError(AppError::not_found("role assignment"), t.locale))?;
    let error = match parse_form_date(&input.until) {
        None => Some(t.t("admin.err_date").to_owned()),
        Some(until) => match tree::set_end(&mut tx, &a, Some(until), user.now).await {
            Ok(()) => {
                audit::write(
                    &mut tx,
                    user.audit_entry(
                        "role.end",
                        ("role_assignment", a.id.to_string()),
                        Some(a.org_id),
                        json!({"person": a.person_id, "org": a.org_code, "role": a.role, "until": until,
                               "was": a.ends_on}),
                    ),
                )
                .await
                .page(&user)?;
                tx.commit().await.page(&user)?;
                let to = if input.back == "org" {
                    format!("/admin/orgs/{}?done=ended", a.org_code)
                } else {
                    format!("/admin/people/{}?done=ended", a.person_id)
                };
                return Ok(Redirect::to(&to).into_response());
            }
            Err(e) if is_form_error(&e) => Some(db_message(&t, &e)),
            Err(e) => return Err(PageError(e, t.locale)),
        },
    };
    drop(tx);
    let forms =
        PersonForms { end: Some((a.id, input.until.clone(), error.unwrap_or_default())), ..PersonForms::default() };
    let page = person_view(&app, &user, a.person_id, forms, None).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_as_offices_write_them() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert_eq!(parse_form_date("2026-03-01"), Some(d));
        assert_eq!(parse_form_date(" 2026/3/1 "), Some(d));
        assert_eq!(parse_form_date("2026年3月1日"), Some(d));
        assert_eq!(parse_form_date("2026.3.1"), Some(d));
        assert_eq!(parse_form_date("1.3.2026"), None);
        assert_eq!(parse_form_date("0200-01-01"), None);
    }
}
