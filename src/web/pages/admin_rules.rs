//! Responsibility systems and their rules, for admins (责任制与要求): every system with its
//! rules in order; one rule with its versions, waivers and duties; adding a rule and
//! changing one from a date — each with a preview of exactly what it creates or cancels,
//! found by running the change in a transaction that is rolled back, and a confirmation
//! that runs it again for real; installing the built-in templates; waiving one duty, or
//! a rule for one organisation, with a reason. Every change is audited.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, RawForm, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;

use super::{Layout, PageError, PageResultExt, render, render_status};
use crate::app::App;
use crate::db::duties;
use crate::db::rules::{self, Rule, RuleVersion, VersionImpact};
use crate::db::settings::Settings;
use crate::db::systems::{self, Kind, NewRuleImpact, Problems, RuleInput, VersionView};
use crate::db::{audit, orgs};
use crate::domain::access::Role;
use crate::domain::period::{Cadence, Period};
use crate::domain::status::Status;
use crate::domain::templates::{self, RECORD_KINDS};
use crate::error::AppError;
use crate::web::format;
use crate::web::guard;
use crate::web::i18n::Tr;
use crate::web::session::PageUser;

/// Duties listed per page on a rule's page.
const DUTY_PAGE: i64 = 50;

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/systems", get(systems_page).post(create_system))
        .route("/admin/systems/{code}/rules/new", get(new_rule_form))
        .route("/admin/systems/{code}/rules", post(create_rule))
        .route("/admin/templates", get(templates_page))
        .route("/admin/templates/{template}/install", post(install_template))
        .route("/admin/rules/{code}", get(rule_page))
        .route("/admin/rules/{code}/edit", get(edit_rule_form))
        .route("/admin/rules/{code}/retire", get(retire_rule_form))
        .route("/admin/rules/{code}/versions", post(change_rule))
        .route("/admin/rules/{code}/waivers", post(waive_rule_for_org))
        .route("/admin/duties/{id}/waive", get(waive_duty_form).post(waive_duty))
}

// ---------------------------------------------------------------------------------------
// Words
// ---------------------------------------------------------------------------------------

/// Field messages of a form in the user's language, at most one per field.
#[derive(Debug, Default, Clone)]
pub struct Errors(Vec<(String, String)>);

impl Errors {
    fn from_problems(t: &Tr, problems: &Problems) -> Errors {
        Errors(problems.0.iter().map(|p| (p.field.to_owned(), problem_message(t, p.key, &p.arg))).collect())
    }

    fn add(&mut self, field: &str, message: String) {
        if !self.has(field) {
            self.0.push((field.to_owned(), message));
        }
    }

    pub fn get(&self, field: &str) -> Option<String> {
        self.0.iter().find(|(f, _)| f == field).map(|(_, m)| m.clone())
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| f == field)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `aria-invalid` for a field.
    pub fn invalid(&self, field: &str) -> &'static str {
        if self.has(field) { "true" } else { "false" }
    }
}

/// A problem's message; a date argument is written as people write dates.
fn problem_message(t: &Tr, key: &str, arg: &str) -> String {
    let arg = match systems::parse_day(arg) {
        Some(d) if arg.len() >= 8 => format::date(t, d),
        _ => arg.to_owned(),
    };
    t.f1(&format!("rules.{key}"), arg)
}

fn cadence_label(t: &Tr, cadence: &str) -> &'static str {
    match cadence {
        "year" => t.t("rules.cadence_year"),
        "half" => t.t("rules.cadence_half"),
        "quarter" => t.t("rules.cadence_quarter"),
        "month" => t.t("rules.cadence_month"),
        _ => t.t("rules.unknown"),
    }
}

fn role_label(t: &Tr, role: &str) -> &'static str {
    match role {
        "secretary" => t.t("rules.role_secretary"),
        "member" => t.t("rules.role_member"),
        "coordinator" => t.t("rules.role_coordinator"),
        "inspector" => t.t("rules.role_inspector"),
        _ => t.t("rules.unknown"),
    }
}

fn record_kind_label(t: &Tr, kind: &str) -> &'static str {
    match kind {
        "meeting" => t.t("rules.rk_meeting"),
        "report" => t.t("rules.rk_report"),
        "briefing" => t.t("rules.rk_briefing"),
        "inspection" => t.t("rules.rk_inspection"),
        "assessment" => t.t("rules.rk_assessment"),
        "visit" => t.t("rules.rk_visit"),
        "plan" => t.t("rules.rk_plan"),
        _ => t.t("rules.unknown"),
    }
}

fn binds_label(t: &Tr, binds: &str) -> &'static str {
    if binds == "each_member" { t.t("rules.binds_each_member") } else { t.t("rules.binds_organisation") }
}

fn kind_name(t: &Tr, kinds: &[Kind], code: &str) -> String {
    match kinds.iter().find(|k| k.code == code) {
        Some(k) if t.is_en() => k.name_en.clone(),
        Some(k) => k.name_zh.clone(),
        None => code.to_owned(),
    }
}

fn kinds_label(t: &Tr, kinds: &[Kind], codes: &[String]) -> String {
    let names: Vec<String> = codes.iter().map(|c| kind_name(t, kinds, c)).collect();
    names.join(t.t("rules.list_separator"))
}

fn subtree_label(t: &Tr, root_code: Option<&str>, root_name: Option<&str>) -> String {
    match (root_code, root_name) {
        (Some(code), Some(name)) => t.f2("rules.subtree_of", name, code),
        (Some(code), None) => t.f2("rules.subtree_of", code, code),
        _ => t.t("rules.whole_tree").to_owned(),
    }
}

fn lead_label(t: &Tr, settings: &Settings, cadence: Cadence, lead: Option<i32>) -> String {
    match lead {
        Some(d) => t.f1("rules.days", d),
        None => t.f1("rules.lead_default", settings.lead_days.of(cadence)),
    }
}

fn yes_no(t: &Tr, b: bool) -> &'static str {
    if b { t.t("app.yes") } else { t.t("app.no") }
}

/// A select's options: value, label, selected.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn choices<'a>(items: impl Iterator<Item = (&'a str, &'static str)>, current: &str) -> Vec<Choice> {
    items.map(|(v, l)| Choice { value: v.to_owned(), label: l.to_owned(), selected: v == current }).collect()
}

fn role_choices(t: &Tr, current: &str) -> Vec<Choice> {
    choices(Role::ALL.iter().map(|r| (r.as_str(), role_label(t, r.as_str()))), current)
}

fn record_kind_choices(t: &Tr, current: &str) -> Vec<Choice> {
    choices(RECORD_KINDS.iter().map(|k| (*k, record_kind_label(t, k))), current)
}

fn cadence_choices(t: &Tr, current: &str) -> Vec<Choice> {
    choices(Cadence::ALL.iter().map(|c| (c.as_str(), cadence_label(t, c.as_str()))), current)
}

fn binds_choices(t: &Tr, current: &str) -> Vec<Choice> {
    let current = if current.is_empty() { "organisation" } else { current };
    choices(
        [("organisation", binds_label(t, "organisation")), ("each_member", binds_label(t, "each_member"))].into_iter(),
        current,
    )
}

fn kind_choices(t: &Tr, kinds: &[Kind], input: &RuleInput) -> Vec<Choice> {
    kinds
        .iter()
        .map(|k| Choice {
            value: k.code.clone(),
            label: kind_name(t, kinds, &k.code),
            selected: input.has_kind(&k.code),
        })
        .collect()
}

/// A notice after a change, from the `saved` query parameter of the redirect.
fn saved_notice(t: &Tr, saved: Option<&str>) -> Option<String> {
    let key = match saved? {
        "system" => "rules.saved_system",
        "created" => "rules.saved_created",
        "version" => "rules.saved_version",
        "retired" => "rules.saved_retired",
        "waiver" => "rules.saved_waiver",
        "duty" => "rules.saved_duty",
        "installed" => "rules.saved_installed",
        _ => return None,
    };
    Some(t.t(key).to_owned())
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
}

fn not_found(user: &PageUser, what: &'static str) -> PageError {
    PageError(AppError::not_found(what), user.tr.locale)
}

fn admin_only(user: &PageUser) -> Result<(), PageError> {
    guard::require_admin(&user.principal).page(user)
}

/// A system's title; one installed from a template speaks English when asked.
fn system_title(t: &Tr, s: &systems::System) -> String {
    match s.template.as_deref().and_then(templates::find) {
        Some(tpl) if t.is_en() && s.title == tpl.title => tpl.title_en.to_owned(),
        _ => s.title.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// The systems page
// ---------------------------------------------------------------------------------------

/// One rule as the systems page lists it.
pub struct RuleLine {
    pub code: String,
    pub url: String,
    pub title: String,
    pub clause: String,
    pub kinds: String,
    pub cadence: &'static str,
    pub min_count: i32,
    pub needs_review: bool,
    pub subtree: String,
    pub since: String,
    pub retired: bool,
    pub not_yet: bool,
    pub next_change: Option<String>,
    pub owing: String,
}

pub struct SystemBlock {
    pub code: String,
    pub title: String,
    pub template: Option<String>,
    pub new_rule_url: String,
    pub rules: Vec<RuleLine>,
}

#[derive(Template)]
#[template(path = "admin/systems.html")]
struct SystemsPage {
    t: Tr,
    layout: Layout,
    systems: Vec<SystemBlock>,
    notice: Option<String>,
    form_code: String,
    form_title: String,
    errors: Errors,
}

#[derive(Deserialize, Default)]
struct SavedQuery {
    saved: Option<String>,
}

async fn systems_page(
    State(app): State<App>,
    user: PageUser,
    Query(q): Query<SavedQuery>,
) -> Result<Response, PageError> {
    admin_only(&user)?;
    let page =
        build_systems_page(&app, &user, q.saved.as_deref(), String::new(), String::new(), Errors::default()).await?;
    Ok(render(&page))
}

async fn build_systems_page(
    app: &App,
    user: &PageUser,
    saved: Option<&str>,
    form_code: String,
    form_title: String,
    errors: Errors,
) -> Result<SystemsPage, PageError> {
    let t = user.tr;
    app.ensure_duties(user.now).await.page(user)?;
    let mut conn = app.pool.acquire().await.page(user)?;
    let list = systems::list_systems(&mut conn).await.page(user)?;
    let ids: Vec<i64> = list.iter().map(|s| s.id).collect();
    let rules = systems::rules_of_systems(&mut conn, &ids, user.today).await.page(user)?;
    let periods: Vec<(i64, String)> =
        rules.iter().map(|r| (r.rule_id, Period::containing(r.cadence(), user.today).to_string())).collect();
    let owing = systems::owing_counts(&mut conn, &periods).await.page(user)?;
    let kinds = systems::org_kinds(&mut conn).await.page(user)?;
    drop(conn);
    let systems = list
        .iter()
        .map(|s| SystemBlock {
            code: s.code.clone(),
            title: system_title(&t, s),
            template: s.template.as_deref().and_then(templates::find).map(|tpl| tpl.code.to_owned()),
            new_rule_url: format!("/admin/systems/{}/rules/new", s.code),
            rules: rules
                .iter()
                .filter(|r| r.system_id == s.id)
                .map(|r| {
                    let n = owing.get(&r.rule_id).copied().unwrap_or(0);
                    let period = format::period(&t, Period::containing(r.cadence(), user.today));
                    let owing = if r.binds == "each_member" {
                        t.f2("rules.owing_people", period, n)
                    } else {
                        t.f2("rules.owing_orgs", period, n)
                    };
                    RuleLine {
                        code: r.code.clone(),
                        url: format!("/admin/rules/{}", r.code),
                        title: r.title.clone(),
                        clause: r.clause.clone(),
                        kinds: kinds_label(&t, &kinds, &r.kinds),
                        cadence: cadence_label(&t, &r.cadence),
                        min_count: r.min_count,
                        needs_review: r.needs_review,
                        subtree: subtree_label(&t, r.root_code.as_deref(), r.root_name.as_deref()),
                        since: format::date(&t, r.first_effective),
                        retired: r.retired && !r.pending_on(user.today),
                        not_yet: r.pending_on(user.today),
                        next_change: r.next_change.map(|d| format::date(&t, d)),
                        owing,
                    }
                })
                .collect(),
        })
        .collect();
    Ok(SystemsPage {
        t,
        layout: Layout::new(user, "admin", "/admin/systems"),
        systems,
        notice: saved_notice(&t, saved),
        form_code,
        form_title,
        errors,
    })
}

async fn create_system(State(app): State<App>, user: PageUser, RawForm(body): RawForm) -> Result<Response, PageError> {
    admin_only(&user)?;
    let pairs = form_pairs(&body);
    let (code, title) = (field(&pairs, "code").to_owned(), field(&pairs, "title").to_owned());
    let mut tx = app.pool.begin().await.page(&user)?;
    let checked = systems::check_system(&mut tx, &code, &title).await.page(&user)?;
    let (code_ok, title_ok) = match checked {
        Ok(v) => v,
        Err(problems) => {
            drop(tx);
            let errors = Errors::from_problems(&user.tr, &problems);
            let page = build_systems_page(&app, &user, None, code, title, errors).await?;
            return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let id = match rules::create_system(&mut tx, &code_ok, &title_ok, None, user.now).await {
        Ok(id) => id,
        Err(AppError::Conflict(_)) => {
            drop(tx);
            let mut errors = Errors::default();
            errors.add("code", problem_message(&user.tr, "err_system_taken", &code_ok));
            let page = build_systems_page(&app, &user, None, code, title, errors).await?;
            return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
        Err(e) => return Err(PageError(e, user.tr.locale)),
    };
    audit::write(
        &mut tx,
        user.audit_entry("system.create", ("system", code_ok.clone()), None, json!({"id": id, "title": title_ok})),
    )
    .await
    .page(&user)?;
    tx.commit().await.page(&user)?;
    Ok(Redirect::to("/admin/systems?saved=system").into_response())
}

// ---------------------------------------------------------------------------------------
// The templates page
// ---------------------------------------------------------------------------------------

pub struct TemplateRule {
    pub code: String,
    pub title: String,
    pub clause: String,
    pub kinds: String,
    pub cadence: &'static str,
    pub min_count: u32,
    pub needs_review: bool,
    pub per_member: bool,
}

pub struct TemplateBlock {
    pub code: String,
    pub title: String,
    pub installed: bool,
    pub taken: String,
    pub action_url: String,
    pub rules: Vec<TemplateRule>,
    pub effective_from: String,
    pub root: String,
    pub errors: Errors,
    pub conflict: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/templates.html")]
struct TemplatesPage {
    t: Tr,
    layout: Layout,
    templates: Vec<TemplateBlock>,
}

/// What was typed into one template's install form, with its problems.
struct InstallAttempt {
    template: String,
    effective_from: String,
    root: String,
    errors: Errors,
    conflict: Option<String>,
}

async fn templates_page(State(app): State<App>, user: PageUser) -> Result<Response, PageError> {
    admin_only(&user)?;
    Ok(render(&build_templates_page(&app, &user, None).await?))
}

async fn build_templates_page(
    app: &App,
    user: &PageUser,
    attempt: Option<InstallAttempt>,
) -> Result<TemplatesPage, PageError> {
    let t = user.tr;
    let mut conn = app.pool.acquire().await.page(user)?;
    let kinds = systems::org_kinds(&mut conn).await.page(user)?;
    let mut blocks = Vec::new();
    for tpl in templates::ALL.iter() {
        let codes: Vec<&str> = tpl.rules.iter().map(|r| r.code).collect();
        let taken = systems::taken_codes(&mut conn, &codes).await.page(user)?;
        let mine = attempt.as_ref().filter(|a| a.template == tpl.code);
        let year_start = NaiveDate::from_ymd_opt(user.today.year(), 1, 1).unwrap_or(user.today);
        blocks.push(TemplateBlock {
            code: tpl.code.to_owned(),
            title: if t.is_en() { tpl.title_en.to_owned() } else { tpl.title.to_owned() },
            installed: !taken.is_empty(),
            // In the template's order (A2 before A10).
            taken: codes.iter().filter(|c| taken.iter().any(|t| t == *c)).copied().collect::<Vec<_>>().join(", "),
            action_url: format!("/admin/templates/{}/install", tpl.code),
            rules: tpl
                .rules
                .iter()
                .map(|r| TemplateRule {
                    code: r.code.to_owned(),
                    title: r.title.to_owned(),
                    clause: r.clause.to_owned(),
                    kinds: kinds_label(&t, &kinds, &r.kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>()),
                    cadence: cadence_label(&t, r.cadence.as_str()),
                    min_count: r.min_count,
                    needs_review: r.needs_review,
                    per_member: r.binds == templates::Binds::EachMember,
                })
                .collect(),
            effective_from: mine.map(|a| a.effective_from.clone()).unwrap_or_else(|| year_start.to_string()),
            root: mine.map(|a| a.root.clone()).unwrap_or_default(),
            errors: mine.map(|a| a.errors.clone()).unwrap_or_default(),
            conflict: mine.and_then(|a| a.conflict.clone()),
        });
    }
    Ok(TemplatesPage { t, layout: Layout::new(user, "admin", "/admin/templates"), templates: blocks })
}

async fn install_template(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, PageError> {
    admin_only(&user)?;
    let t = user.tr;
    let template = templates::find(&code).ok_or_else(|| not_found(&user, "template"))?;
    let pairs = form_pairs(&body);
    let mut attempt = InstallAttempt {
        template: template.code.to_owned(),
        effective_from: field(&pairs, "effective_from").trim().to_owned(),
        root: field(&pairs, "root").trim().to_owned(),
        errors: Errors::default(),
        conflict: None,
    };
    let earliest = NaiveDate::from_ymd_opt(user.today.year() - systems::MAX_YEARS_BACK, 1, 1).unwrap_or(user.today);
    let effective_from = match systems::parse_day(&attempt.effective_from) {
        Some(d) if d >= earliest => Some(d),
        Some(_) => {
            attempt.errors.add("effective_from", problem_message(&t, "err_too_far_back", "10"));
            None
        }
        None if attempt.effective_from.is_empty() => {
            attempt.errors.add("effective_from", problem_message(&t, "err_required", ""));
            None
        }
        None => {
            attempt.errors.add("effective_from", problem_message(&t, "err_date", ""));
            None
        }
    };
    app.ensure_duties(user.now).await.page(&user)?;
    let settings = app.settings();
    let mut tx = app.pool.begin().await.page(&user)?;
    let root = if attempt.root.is_empty() {
        None
    } else {
        let found = if attempt.root.contains('\0') {
            None
        } else {
            orgs::find_by_code(&mut tx, &attempt.root).await.page(&user)?
        };
        if found.is_none() {
            attempt.errors.add("root", problem_message(&t, "err_root_unknown", &attempt.root));
        }
        found
    };
    let Some(effective_from) = effective_from.filter(|_| attempt.errors.is_empty()) else {
        drop(tx);
        let page = build_templates_page(&app, &user, Some(attempt)).await?;
        return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let installed = match rules::install_template(
        &mut tx,
        &settings,
        template,
        effective_from,
        root.as_ref(),
        Some(user.principal.user_id),
        user.now,
    )
    .await
    {
        Ok(i) => i,
        Err(AppError::Conflict(_)) => {
            drop(tx);
            attempt.conflict = Some(t.t("rules.install_conflict").to_owned());
            let page = build_templates_page(&app, &user, Some(attempt)).await?;
            return Ok(render_status(StatusCode::CONFLICT, &page));
        }
        Err(e) => return Err(PageError(e, t.locale)),
    };
    audit::write(
        &mut tx,
        user.audit_entry(
            "template.install",
            ("template", template.code.to_owned()),
            root.as_ref().map(|r| r.id),
            json!({"effective_from": effective_from, "root": installed.root, "duties": installed.duties_created}),
        ),
    )
    .await
    .page(&user)?;
    tx.commit().await.page(&user)?;
    Ok(Redirect::to("/admin/systems?saved=installed").into_response())
}

// ---------------------------------------------------------------------------------------
// One rule
// ---------------------------------------------------------------------------------------

/// One line of a version's details: a label and a value.
pub struct Fact {
    pub label: &'static str,
    pub value: String,
}

/// A version in the rule's history.
pub struct VersionLine {
    pub from: String,
    /// "current", "past" or "scheduled".
    pub when: &'static str,
    pub retired: bool,
    pub title: String,
    pub changes: Vec<String>,
    pub by: String,
}

pub struct WaiverLine {
    pub org: String,
    pub org_name: String,
    pub reason: String,
    pub by: String,
}

pub struct DutyLine {
    pub url: String,
    pub org: String,
    pub org_name: String,
    pub person: Option<String>,
    pub status: Status,
    pub progress: String,
    pub waive_url: Option<String>,
    pub waived_reason: Option<String>,
}

pub struct PeriodChoice {
    pub key: String,
    pub label: String,
    pub selected: bool,
}

pub struct CountCell {
    pub status: &'static str,
    pub n: i64,
}

#[derive(Template)]
#[template(path = "admin/rules_show.html")]
struct RulePage {
    t: Tr,
    layout: Layout,
    notice: Option<String>,
    code: String,
    title: String,
    system_title: String,
    system_code: String,
    retired_now: bool,
    not_yet: bool,
    facts: Vec<Fact>,
    clause_text: String,
    versions: Vec<VersionLine>,
    edit_url: String,
    retire_url: String,
    waivers: Vec<WaiverLine>,
    waiver_action: String,
    waiver_org: String,
    waiver_reason: String,
    errors: Errors,
    periods: Vec<PeriodChoice>,
    period_label: String,
    counts: Vec<CountCell>,
    total: i64,
    duties: Vec<DutyLine>,
    next_url: Option<String>,
    first_url: Option<String>,
    rollup_url: String,
}

#[derive(Deserialize, Default)]
struct RuleQuery {
    saved: Option<String>,
    period: Option<String>,
    after: Option<String>,
}

async fn rule_page(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
    Query(q): Query<RuleQuery>,
) -> Result<Response, PageError> {
    admin_only(&user)?;
    let page = build_rule_page(&app, &user, &code, &q, String::new(), String::new(), Errors::default()).await?;
    Ok(render(&page))
}

/// The rule a page is about, or 404.
async fn find_rule(conn: &mut PgConnection, user: &PageUser, code: &str) -> Result<Rule, PageError> {
    if code.len() > 64 || code.contains('\0') {
        return Err(not_found(user, "rule"));
    }
    rules::find_by_code(conn, code).await.page(user)?.ok_or_else(|| not_found(user, "rule"))
}

/// What changed from one version to the next, in words.
fn changes(
    t: &Tr,
    kinds: &[Kind],
    settings: &Settings,
    cadence: Cadence,
    old: &VersionView,
    new: &VersionView,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut diff = |key: &str, a: String, b: String| {
        if a != b {
            out.push(t.f3("rules.diff", t.t(key), a, b));
        }
    };
    diff("rules.f_title", old.title.clone(), new.title.clone());
    diff("rules.f_clause", old.clause.clone(), new.clause.clone());
    diff("rules.f_kinds", kinds_label(t, kinds, &old.kinds), kinds_label(t, kinds, &new.kinds));
    diff(
        "rules.f_root",
        subtree_label(t, old.root.as_deref(), old.root_name.as_deref()),
        subtree_label(t, new.root.as_deref(), new.root_name.as_deref()),
    );
    diff(
        "rules.f_role",
        role_label(t, &old.responsible_role).to_owned(),
        role_label(t, &new.responsible_role).to_owned(),
    );
    diff("rules.f_min_count", old.min_count.to_string(), new.min_count.to_string());
    diff("rules.f_grace_days", t.f1("rules.days", old.grace_days), t.f1("rules.days", new.grace_days));
    diff(
        "rules.f_lead_days",
        lead_label(t, settings, cadence, old.lead_days),
        lead_label(t, settings, cadence, new.lead_days),
    );
    diff("rules.f_needs_review", yes_no(t, old.needs_review).to_owned(), yes_no(t, new.needs_review).to_owned());
    if old.clause_text != new.clause_text {
        out.push(t.t("rules.diff_clause_text").to_owned());
    }
    if old.retired != new.retired {
        out.push(t.t(if new.retired { "rules.diff_retired" } else { "rules.diff_restored" }).to_owned());
    }
    if out.is_empty() {
        out.push(t.t("rules.diff_none").to_owned());
    }
    out
}

async fn build_rule_page(
    app: &App,
    user: &PageUser,
    code: &str,
    q: &RuleQuery,
    waiver_org: String,
    waiver_reason: String,
    errors: Errors,
) -> Result<RulePage, PageError> {
    let t = user.tr;
    let settings = app.settings();
    app.ensure_duties(user.now).await.page(user)?;
    let mut conn = app.pool.acquire().await.page(user)?;
    let rule = find_rule(&mut conn, user, code).await?;
    let cadence = rule.cadence();
    let system =
        systems::system_by_id(&mut conn, rule.system_id).await.page(user)?.ok_or_else(|| not_found(user, "system"))?;
    let versions = systems::versions(&mut conn, rule.id).await.page(user)?;
    let kinds = systems::org_kinds(&mut conn).await.page(user)?;
    let waivers = systems::waivers(&mut conn, rule.id).await.page(user)?;
    let started = systems::started_periods(&mut conn, rule.id).await.page(user)?;
    let current_key = Period::containing(cadence, user.today).to_string();
    let period_key = q
        .period
        .as_deref()
        .filter(|k| started.iter().any(|s| s == k))
        .map(str::to_owned)
        .or_else(|| started.iter().find(|k| **k == current_key).cloned())
        .or_else(|| started.first().cloned())
        .unwrap_or(current_key);
    let after = q.after.as_deref().and_then(|a| a.parse::<i64>().ok()).filter(|a| *a > 0).unwrap_or(0);
    let counts = systems::period_counts(&mut conn, rule.id, &period_key, user.now).await.page(user)?;
    let mut duty_rows = systems::rule_duties(&mut conn, rule.id, &period_key, after, DUTY_PAGE + 1).await.page(user)?;
    drop(conn);

    let more = duty_rows.len() as i64 > DUTY_PAGE;
    duty_rows.truncate(DUTY_PAGE as usize);
    let idx = systems::in_force_index(&versions, user.today).ok_or_else(|| not_found(user, "rule"))?;
    let cur = &versions[idx];
    let mut facts = vec![
        Fact {
            label: t.t("rules.f_clause"),
            value: if cur.clause.is_empty() { t.t("app.none").to_owned() } else { cur.clause.clone() },
        },
        Fact { label: t.t("rules.f_kinds"), value: kinds_label(&t, &kinds, &cur.kinds) },
        Fact { label: t.t("rules.f_root"), value: subtree_label(&t, cur.root.as_deref(), cur.root_name.as_deref()) },
        Fact { label: t.t("rules.f_cadence"), value: cadence_label(&t, &rule.cadence).to_owned() },
        Fact { label: t.t("rules.f_min_count"), value: t.f1("rules.times", cur.min_count) },
        Fact { label: t.t("rules.f_binds"), value: binds_label(&t, &rule.binds).to_owned() },
        Fact { label: t.t("rules.f_role"), value: role_label(&t, &cur.responsible_role).to_owned() },
        Fact { label: t.t("rules.f_record_kind"), value: record_kind_label(&t, &rule.record_kind).to_owned() },
        Fact { label: t.t("rules.f_needs_review"), value: yes_no(&t, cur.needs_review).to_owned() },
        Fact { label: t.t("rules.f_grace_days"), value: t.f1("rules.days", cur.grace_days) },
        Fact { label: t.t("rules.f_lead_days"), value: lead_label(&t, &settings, cadence, cur.lead_days) },
        Fact { label: t.t("rules.f_since"), value: format::date(&t, versions[0].effective_from) },
    ];
    if idx > 0 {
        facts.push(Fact { label: t.t("rules.f_version_since"), value: format::date(&t, cur.effective_from) });
    }
    let mut lines: Vec<VersionLine> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| VersionLine {
            from: format::date(&t, v.effective_from),
            when: if i == idx && v.effective_from <= user.today {
                "current"
            } else if v.effective_from > user.today {
                "scheduled"
            } else {
                "past"
            },
            retired: v.retired,
            title: v.title.clone(),
            changes: if i == 0 {
                vec![t.t("rules.diff_first").to_owned()]
            } else {
                changes(&t, &kinds, &settings, cadence, &versions[i - 1], v)
            },
            by: t.f2(
                "rules.made_by",
                v.created_by_name
                    .clone()
                    .or_else(|| v.created_by.clone())
                    .unwrap_or_else(|| t.t("rules.by_system").to_owned()),
                format::instant(&t, settings.tz, v.created_at),
            ),
        })
        .collect();
    lines.reverse();
    let base = format!("/admin/rules/{}", rule.code);
    let duties = duty_rows
        .iter()
        .map(|d| {
            let status = d.status(user.now);
            DutyLine {
                url: format!("/duties/{}", d.id),
                org: d.org_code.clone(),
                org_name: d.org_name.clone(),
                person: d.person_name.clone(),
                status,
                progress: progress(&t, d),
                waive_url: (status.is_unfinished() || status == Status::Submitted)
                    .then(|| format!("/admin/duties/{}/waive", d.id)),
                waived_reason: d.waived_reason.clone(),
            }
        })
        .collect();
    let next_url =
        if more { duty_rows.last().map(|d| format!("{base}?period={period_key}&after={}#duties", d.id)) } else { None };
    let order = [
        Status::Overdue,
        Status::DueSoon,
        Status::Open,
        Status::Submitted,
        Status::Fulfilled,
        Status::Late,
        Status::Waived,
        Status::Cancelled,
    ];
    let counts_cells = order.iter().map(|s| CountCell { status: s.as_str(), n: counts.get(*s) }).collect();
    let rollup_url = match cur.root.as_deref() {
        Some(root) => format!("/subtree/{root}?period={period_key}"),
        None => format!("/subtree?period={period_key}"),
    };
    Ok(RulePage {
        t,
        layout: Layout::new(user, "admin", &base),
        notice: saved_notice(&t, q.saved.as_deref()),
        code: rule.code.clone(),
        title: cur.title.clone(),
        system_title: system_title(&t, &system),
        system_code: system.code.clone(),
        retired_now: cur.retired && cur.effective_from <= user.today,
        not_yet: versions[0].effective_from > user.today,
        facts,
        clause_text: cur.clause_text.clone(),
        versions: lines,
        edit_url: format!("{base}/edit"),
        retire_url: format!("{base}/retire"),
        waivers: waivers
            .into_iter()
            .map(|w| WaiverLine {
                org: w.org,
                org_name: w.org_name,
                reason: w.reason,
                by: t.f2(
                    "rules.made_by",
                    w.created_by.unwrap_or_else(|| t.t("rules.by_system").to_owned()),
                    format::instant(&t, settings.tz, w.created_at),
                ),
            })
            .collect(),
        waiver_action: format!("{base}/waivers"),
        waiver_org,
        waiver_reason,
        errors,
        periods: started
            .iter()
            .map(|k| PeriodChoice { key: k.clone(), label: format::period_key(&t, k), selected: *k == period_key })
            .collect(),
        period_label: format::period_key(&t, &period_key),
        total: counts.total(),
        counts: counts_cells,
        duties,
        next_url,
        first_url: (after > 0).then(|| format!("{base}?period={period_key}#duties")),
        rollup_url,
    })
}

/// "已通过 1/2 次" and, when some await review, "待审核 1 次".
fn progress(t: &Tr, d: &systems::RuleDuty) -> String {
    if d.pending > 0 {
        t.f3("rules.progress_pending", d.accepted, d.required, d.pending)
    } else {
        t.f2("rules.progress", d.accepted, d.required)
    }
}

// ---------------------------------------------------------------------------------------
// The rule forms: a new rule, a change, a retirement; their previews
// ---------------------------------------------------------------------------------------

/// Which form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    New,
    Edit,
    Retire,
}

#[derive(Template)]
#[template(path = "admin/rules_form.html")]
struct RuleFormPage {
    t: Tr,
    layout: Layout,
    heading: String,
    is_new: bool,
    is_retire: bool,
    action_url: String,
    back_url: String,
    input: RuleInput,
    errors: Errors,
    general_error: Option<String>,
    kinds: Vec<Choice>,
    roles: Vec<Choice>,
    record_kinds: Vec<Choice>,
    cadences: Vec<Choice>,
    binds: Vec<Choice>,
    /// For a change: the rule's fixed identity, and the dates the form explains.
    identity: Vec<Fact>,
    earliest: String,
    earliest_label: String,
    default_label: String,
    current_period: String,
    lead_defaults: String,
    restoring: bool,
    /// For a retirement: what the rule says now.
    summary: Vec<Fact>,
    system_title: String,
}

impl RuleFormPage {
    fn err(&self, field: &str) -> Option<String> {
        self.errors.get(field)
    }

    fn invalid(&self, field: &str) -> &'static str {
        self.errors.invalid(field)
    }
}

/// The page around a form, everything but the input and its errors.
struct FormFrame {
    mode: Mode,
    action_url: String,
    back_url: String,
    heading: String,
    identity: Vec<Fact>,
    earliest: Option<NaiveDate>,
    default_day: Option<NaiveDate>,
    cadence: Option<Cadence>,
    restoring: bool,
    summary: Vec<Fact>,
    system_title: String,
}

fn lead_defaults(t: &Tr, settings: &Settings) -> String {
    let parts: Vec<String> = Cadence::ALL
        .iter()
        .map(|c| t.f2("rules.lead_default_of", cadence_label(t, c.as_str()), settings.lead_days.of(*c)))
        .collect();
    parts.join(t.t("rules.list_separator"))
}

fn form_page(
    user: &PageUser,
    settings: &Settings,
    kinds: &[Kind],
    frame: FormFrame,
    input: RuleInput,
    errors: Errors,
    general_error: Option<String>,
) -> RuleFormPage {
    let t = user.tr;
    RuleFormPage {
        t,
        layout: Layout::new(user, "admin", &frame.back_url),
        heading: frame.heading,
        is_new: frame.mode == Mode::New,
        is_retire: frame.mode == Mode::Retire,
        action_url: frame.action_url,
        back_url: frame.back_url,
        kinds: kind_choices(&t, kinds, &input),
        roles: role_choices(&t, &input.responsible_role),
        record_kinds: record_kind_choices(&t, &input.record_kind),
        cadences: cadence_choices(&t, &input.cadence),
        binds: binds_choices(&t, &input.binds),
        identity: frame.identity,
        earliest: frame.earliest.map(|d| d.to_string()).unwrap_or_default(),
        earliest_label: frame.earliest.map(|d| format::date(&t, d)).unwrap_or_default(),
        default_label: frame.default_day.map(|d| format::date(&t, d)).unwrap_or_default(),
        current_period: frame
            .cadence
            .map(|c| format::period(&t, Period::containing(c, user.today)))
            .unwrap_or_default(),
        lead_defaults: lead_defaults(&t, settings),
        restoring: frame.restoring,
        summary: frame.summary,
        system_title: frame.system_title,
        input,
        errors,
        general_error,
    }
}

/// The frame of the change and retirement forms of a rule.
async fn change_frame(
    conn: &mut PgConnection,
    user: &PageUser,
    rule: &Rule,
    latest: &RuleVersion,
    mode: Mode,
    kinds: &[Kind],
    settings: &Settings,
) -> Result<FormFrame, PageError> {
    let t = user.tr;
    let cadence = rule.cadence();
    let system =
        systems::system_by_id(conn, rule.system_id).await.page(user)?.ok_or_else(|| not_found(user, "system"))?;
    let root = match latest.root_org_id {
        Some(id) => orgs::find_by_id(conn, id).await.page(user)?,
        None => None,
    };
    let identity = vec![
        Fact { label: t.t("rules.f_code"), value: rule.code.clone() },
        Fact { label: t.t("rules.f_cadence"), value: cadence_label(&t, &rule.cadence).to_owned() },
        Fact { label: t.t("rules.f_binds"), value: binds_label(&t, &rule.binds).to_owned() },
        Fact { label: t.t("rules.f_record_kind"), value: record_kind_label(&t, &rule.record_kind).to_owned() },
    ];
    let summary = vec![
        Fact { label: t.t("rules.f_title"), value: latest.title.clone() },
        Fact { label: t.t("rules.f_kinds"), value: kinds_label(&t, kinds, &latest.kinds) },
        Fact {
            label: t.t("rules.f_root"),
            value: subtree_label(&t, root.as_ref().map(|r| r.code.as_str()), root.as_ref().map(|r| r.name.as_str())),
        },
        Fact { label: t.t("rules.f_min_count"), value: t.f1("rules.times", latest.min_count) },
        Fact { label: t.t("rules.f_lead_days"), value: lead_label(&t, settings, cadence, latest.lead_days) },
    ];
    let heading_key = if mode == Mode::Retire { "rules.retire_heading" } else { "rules.edit_heading" };
    Ok(FormFrame {
        mode,
        action_url: format!("/admin/rules/{}/versions", rule.code),
        back_url: format!("/admin/rules/{}", rule.code),
        heading: t.f2(heading_key, &rule.code, &latest.title),
        identity,
        earliest: Some(systems::earliest_change(cadence, user.today)),
        default_day: Some(systems::default_change_day(cadence, user.today)),
        cadence: Some(cadence),
        restoring: mode == Mode::Edit && latest.retired,
        summary,
        system_title: system_title(&t, &system),
    })
}

/// The latest version of a rule as a form's input, taking effect on `day`.
async fn input_of_latest(
    conn: &mut PgConnection,
    user: &PageUser,
    latest: &RuleVersion,
    day: NaiveDate,
) -> Result<RuleInput, PageError> {
    let text = systems::clause_text(conn, latest.id).await.page(user)?;
    let root = match latest.root_org_id {
        Some(id) => orgs::find_by_id(conn, id).await.page(user)?.map(|o| o.code),
        None => None,
    };
    Ok(RuleInput::from_version(latest, &text, root.as_deref(), day))
}

async fn edit_rule_form(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
) -> Result<Response, PageError> {
    rule_version_form(app, user, code, Mode::Edit).await
}

async fn retire_rule_form(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
) -> Result<Response, PageError> {
    rule_version_form(app, user, code, Mode::Retire).await
}

async fn rule_version_form(app: App, user: PageUser, code: String, mode: Mode) -> Result<Response, PageError> {
    admin_only(&user)?;
    let settings = app.settings();
    let mut conn = app.pool.acquire().await.page(&user)?;
    let rule = find_rule(&mut conn, &user, &code).await?;
    let latest =
        systems::latest_version(&mut conn, rule.id).await.page(&user)?.ok_or_else(|| not_found(&user, "rule"))?;
    let kinds = systems::org_kinds(&mut conn).await.page(&user)?;
    let frame = change_frame(&mut conn, &user, &rule, &latest, mode, &kinds, &settings).await?;
    let mut input =
        input_of_latest(&mut conn, &user, &latest, systems::default_change_day(rule.cadence(), user.today)).await?;
    input.retired = mode == Mode::Retire;
    drop(conn);
    Ok(render(&form_page(&user, &settings, &kinds, frame, input, Errors::default(), None)))
}

/// One line of a preview.
pub struct ImpactLine {
    pub name: &'static str,
    pub label: &'static str,
    pub value: i64,
}

#[derive(Template)]
#[template(path = "admin/rules_preview.html")]
struct PreviewPage {
    t: Tr,
    layout: Layout,
    heading: String,
    is_new: bool,
    is_retire: bool,
    action_url: String,
    back_url: String,
    input: RuleInput,
    /// What the rule will say.
    facts: Vec<Fact>,
    /// What changes from the latest version, in words (a change or retirement).
    changes: Vec<String>,
    /// The started periods the change judges, in words.
    periods: String,
    no_period_note: Option<String>,
    current_period: String,
    lines: Vec<ImpactLine>,
    orgs_before: Option<i64>,
    orgs_after: i64,
}

/// What a version or a new rule will say, for the preview.
fn version_facts(
    t: &Tr,
    settings: &Settings,
    kinds: &[Kind],
    cadence: Cadence,
    input: &RuleInput,
    root_label: String,
    identity: Option<(&str, &str, &str)>,
) -> Vec<Fact> {
    let mut facts = Vec::new();
    if let Some((code, binds, record_kind)) = identity {
        facts.push(Fact { label: t.t("rules.f_code"), value: code.to_owned() });
        facts.push(Fact { label: t.t("rules.f_cadence"), value: cadence_label(t, cadence.as_str()).to_owned() });
        facts.push(Fact { label: t.t("rules.f_binds"), value: binds_label(t, binds).to_owned() });
        facts.push(Fact { label: t.t("rules.f_record_kind"), value: record_kind_label(t, record_kind).to_owned() });
    }
    facts.extend([
        Fact {
            label: t.t("rules.f_effective_from"),
            value: systems::parse_day(&input.effective_from).map(|d| format::date(t, d)).unwrap_or_default(),
        },
        Fact { label: t.t("rules.f_title"), value: input.title.trim().to_owned() },
        Fact {
            label: t.t("rules.f_clause"),
            value: if input.clause.trim().is_empty() {
                t.t("app.none").to_owned()
            } else {
                input.clause.trim().to_owned()
            },
        },
        Fact { label: t.t("rules.f_kinds"), value: kinds_label(t, kinds, &input.kinds) },
        Fact { label: t.t("rules.f_root"), value: root_label },
        Fact { label: t.t("rules.f_role"), value: role_label(t, input.responsible_role.trim()).to_owned() },
        Fact { label: t.t("rules.f_min_count"), value: t.f1("rules.times", input.min_count.trim()) },
        Fact {
            label: t.t("rules.f_grace_days"),
            value: t.f1("rules.days", if input.grace_days.trim().is_empty() { "0" } else { input.grace_days.trim() }),
        },
        Fact {
            label: t.t("rules.f_lead_days"),
            value: lead_label(t, settings, cadence, input.lead_days.trim().parse().ok()),
        },
        Fact { label: t.t("rules.f_needs_review"), value: yes_no(t, input.needs_review).to_owned() },
    ]);
    facts
}

/// The first period a version taking effect on `day` judges: the one starting that day,
/// else the next (each period is judged by the version in force on its first day).
fn first_judged(cadence: Cadence, day: NaiveDate) -> Period {
    let p = Period::containing(cadence, day);
    if p.first_day() < day { p.next() } else { p }
}

/// The form's step: `preview` (the default), `confirm`, or `edit` (back to the form).
fn step(pairs: &[(String, String)]) -> &str {
    match field(pairs, "step") {
        "confirm" => "confirm",
        "edit" => "edit",
        _ => "preview",
    }
}

async fn change_rule(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, PageError> {
    admin_only(&user)?;
    let t = user.tr;
    let pairs = form_pairs(&body);
    let step = step(&pairs).to_owned();
    let settings = app.settings();
    app.ensure_duties(user.now).await.page(&user)?;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let rule = find_rule(&mut conn, &user, &code).await?;
    let latest =
        systems::latest_version(&mut conn, rule.id).await.page(&user)?.ok_or_else(|| not_found(&user, "rule"))?;
    let kinds = systems::org_kinds(&mut conn).await.page(&user)?;
    let retiring = field(&pairs, "retired") == "1";
    let mode = if retiring { Mode::Retire } else { Mode::Edit };
    let mut input = RuleInput::default();
    if retiring {
        // A retirement changes nothing but the date: the rest is the latest version's.
        input = input_of_latest(&mut conn, &user, &latest, user.today).await?;
        input.effective_from = field(&pairs, "effective_from").to_owned();
        input.retired = true;
    } else {
        for (k, v) in &pairs {
            input.set(k, v.clone());
        }
        input.retired = false;
    }
    let frame = change_frame(&mut conn, &user, &rule, &latest, mode, &kinds, &settings).await?;
    if step == "edit" {
        return Ok(render(&form_page(&user, &settings, &kinds, frame, input, Errors::default(), None)));
    }
    let checked = systems::check_change(&mut conn, &rule, &input, user.today).await.page(&user)?;
    let change = match checked {
        Ok(c) => c,
        Err(problems) => {
            let errors = Errors::from_problems(&t, &problems);
            let page = form_page(&user, &settings, &kinds, frame, input, errors, None);
            return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let root_org = match change.root_org_id {
        Some(id) => orgs::find_by_id(&mut conn, id).await.page(&user)?,
        None => None,
    };
    let root_label =
        subtree_label(&t, root_org.as_ref().map(|o| o.code.as_str()), root_org.as_ref().map(|o| o.name.as_str()));
    let before = systems::versions(&mut conn, rule.id).await.page(&user)?;
    let after = VersionView {
        id: 0,
        effective_from: change.effective_from,
        retired: change.retired,
        title: change.title.clone(),
        clause: change.clause.clone(),
        clause_text: change.clause_text.clone(),
        kinds: change.kinds.clone(),
        root: root_org.as_ref().map(|o| o.code.clone()),
        root_name: root_org.as_ref().map(|o| o.name.clone()),
        responsible_role: change.responsible_role.clone(),
        min_count: change.min_count,
        grace_days: change.grace_days,
        lead_days: change.lead_days,
        needs_review: change.needs_review,
        created_at: user.now,
        created_by: None,
        created_by_name: None,
    };
    let changed = match before.last() {
        Some(old) => changes(&t, &kinds, &settings, rule.cadence(), old, &after),
        None => vec![],
    };
    drop(conn);
    let mut tx = app.pool.begin().await.page(&user)?;
    let applied =
        rules::change_rule(&mut tx, &settings, &rule, &change, Some(user.principal.user_id), user.now, user.today)
            .await;
    let impact: VersionImpact = match applied {
        Ok(i) => i,
        Err(AppError::BadInput { field, .. }) => {
            drop(tx);
            let mut errors = Errors::default();
            let (name, key) =
                if field == "kinds" { ("kinds", "err_kinds_none") } else { ("effective_from", "err_before_current") };
            let earliest = systems::earliest_change(rule.cadence(), user.today).to_string();
            errors.add(name, problem_message(&t, key, &earliest));
            let page = form_page(&user, &settings, &kinds, frame, input, errors, None);
            return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
        Err(AppError::Conflict(_)) => {
            drop(tx);
            let mut errors = Errors::default();
            errors.add("effective_from", problem_message(&t, "err_version_taken", &change.effective_from.to_string()));
            let page = form_page(&user, &settings, &kinds, frame, input, errors, None);
            return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
        Err(e) => return Err(PageError(e, t.locale)),
    };
    if step == "confirm" {
        let (action, detail) = change.audit(&impact);
        audit::write(&mut tx, user.audit_entry(action, ("rule", rule.code.clone()), None, detail)).await.page(&user)?;
        tx.commit().await.page(&user)?;
        let saved = if change.retired { "retired" } else { "version" };
        return Ok(Redirect::to(&format!("/admin/rules/{}?saved={saved}", rule.code)).into_response());
    }
    tx.rollback().await.page(&user)?;
    let cadence = rule.cadence();
    let current = Period::containing(cadence, user.today);
    let page = PreviewPage {
        t,
        layout: Layout::new(&user, "admin", &frame.back_url),
        heading: frame.heading.clone(),
        is_new: false,
        is_retire: retiring,
        action_url: frame.action_url.clone(),
        back_url: frame.back_url.clone(),
        facts: version_facts(&t, &settings, &kinds, cadence, &input, root_label, None),
        changes: changed,
        periods: impact
            .periods
            .iter()
            .map(|k| format::period_key(&t, k))
            .collect::<Vec<_>>()
            .join(t.t("rules.list_separator")),
        no_period_note: impact.periods.is_empty().then(|| {
            t.f2(
                if change.retired { "rules.preview_no_period_retire" } else { "rules.preview_no_period" },
                format::date(&t, change.effective_from),
                format::period(&t, first_judged(cadence, change.effective_from)),
            )
        }),
        current_period: format::period(&t, current),
        lines: vec![
            ImpactLine { name: "duties_created", label: t.t("rules.impact_created"), value: impact.duties_created },
            ImpactLine { name: "duties_removed", label: t.t("rules.impact_removed"), value: impact.duties_removed },
            ImpactLine { name: "duties_updated", label: t.t("rules.impact_updated"), value: impact.duties_updated },
        ],
        orgs_before: Some(impact.orgs_before),
        orgs_after: impact.orgs_after,
        input,
    };
    Ok(render(&page))
}

// A new rule --------------------------------------------------------------------------------

async fn new_rule_frame(
    conn: &mut PgConnection,
    user: &PageUser,
    system_code: &str,
) -> Result<(systems::System, FormFrame), PageError> {
    let t = user.tr;
    if system_code.len() > 64 || system_code.contains('\0') {
        return Err(not_found(user, "system"));
    }
    let system = systems::find_system(conn, system_code).await.page(user)?.ok_or_else(|| not_found(user, "system"))?;
    let frame = FormFrame {
        mode: Mode::New,
        action_url: format!("/admin/systems/{}/rules", system.code),
        back_url: format!("/admin/systems#sys-{}", system.code),
        heading: t.f1("rules.new_heading", system_title(&t, &system)),
        identity: vec![],
        earliest: None,
        default_day: None,
        cadence: None,
        restoring: false,
        summary: vec![],
        system_title: system_title(&t, &system),
    };
    Ok((system, frame))
}

async fn new_rule_form(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
) -> Result<Response, PageError> {
    admin_only(&user)?;
    let settings = app.settings();
    let mut conn = app.pool.acquire().await.page(&user)?;
    let (_, frame) = new_rule_frame(&mut conn, &user, &code).await?;
    let kinds = systems::org_kinds(&mut conn).await.page(&user)?;
    drop(conn);
    let month_start = NaiveDate::from_ymd_opt(user.today.year(), user.today.month(), 1).unwrap_or(user.today);
    let input = RuleInput {
        cadence: "quarter".into(),
        binds: "organisation".into(),
        record_kind: "meeting".into(),
        responsible_role: "secretary".into(),
        min_count: "1".into(),
        grace_days: "0".into(),
        effective_from: month_start.to_string(),
        ..RuleInput::default()
    };
    Ok(render(&form_page(&user, &settings, &kinds, frame, input, Errors::default(), None)))
}

async fn create_rule(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, PageError> {
    admin_only(&user)?;
    let t = user.tr;
    let pairs = form_pairs(&body);
    let step = step(&pairs).to_owned();
    let settings = app.settings();
    app.ensure_duties(user.now).await.page(&user)?;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let (system, frame) = new_rule_frame(&mut conn, &user, &code).await?;
    let kinds = systems::org_kinds(&mut conn).await.page(&user)?;
    let mut input = RuleInput::default();
    for (k, v) in &pairs {
        input.set(k, v.clone());
    }
    if step == "edit" {
        return Ok(render(&form_page(&user, &settings, &kinds, frame, input, Errors::default(), None)));
    }
    let new_rule = match systems::check_new_rule(&mut conn, &input, user.today).await.page(&user)? {
        Ok(r) => r,
        Err(problems) => {
            let errors = Errors::from_problems(&t, &problems);
            let page = form_page(&user, &settings, &kinds, frame, input, errors, None);
            return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let root_org = match new_rule.root_org_id {
        Some(id) => orgs::find_by_id(&mut conn, id).await.page(&user)?,
        None => None,
    };
    let root_label =
        subtree_label(&t, root_org.as_ref().map(|o| o.code.as_str()), root_org.as_ref().map(|o| o.name.as_str()));
    drop(conn);
    let mut tx = app.pool.begin().await.page(&user)?;
    let created = rules::create_rule(&mut tx, system.id, &new_rule, Some(user.principal.user_id), user.now).await;
    let rule_id = match created {
        Ok(id) => id,
        Err(AppError::Conflict(_)) => {
            drop(tx);
            let mut errors = Errors::default();
            errors.add("code", problem_message(&t, "err_rule_taken", &new_rule.code));
            let page = form_page(&user, &settings, &kinds, frame, input, errors, None);
            return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
        Err(e) => return Err(PageError(e, t.locale)),
    };
    let done = duties::materialize_rules(&mut tx, &settings, &[rule_id], user.now).await.page(&user)?;
    let current = Period::containing(new_rule.cadence, user.today);
    let impact: NewRuleImpact =
        systems::new_rule_impact(&mut tx, rule_id, &current.to_string(), done.duties).await.page(&user)?;
    if step == "confirm" {
        audit::write(
            &mut tx,
            user.audit_entry(
                "rule.create",
                ("rule", new_rule.code.clone()),
                new_rule.root_org_id,
                json!({
                    "system": system.code,
                    "title": new_rule.title,
                    "cadence": new_rule.cadence.as_str(),
                    "effective_from": new_rule.effective_from,
                    "impact": impact,
                }),
            ),
        )
        .await
        .page(&user)?;
        tx.commit().await.page(&user)?;
        return Ok(Redirect::to(&format!("/admin/rules/{}?saved=created", new_rule.code)).into_response());
    }
    tx.rollback().await.page(&user)?;
    let identity = Some((new_rule.code.as_str(), new_rule.binds.as_str(), new_rule.record_kind.as_str()));
    let page = PreviewPage {
        t,
        layout: Layout::new(&user, "admin", &frame.back_url),
        heading: frame.heading.clone(),
        is_new: true,
        is_retire: false,
        action_url: frame.action_url.clone(),
        back_url: frame.back_url.clone(),
        facts: version_facts(&t, &settings, &kinds, new_rule.cadence, &input, root_label, identity),
        changes: vec![],
        periods: impact
            .periods
            .iter()
            .map(|k| format::period_key(&t, k))
            .collect::<Vec<_>>()
            .join(t.t("rules.list_separator")),
        no_period_note: impact.periods.is_empty().then(|| {
            let first = first_judged(new_rule.cadence, new_rule.effective_from);
            t.f2("rules.preview_no_period", format::date(&t, new_rule.effective_from), format::period(&t, first))
        }),
        current_period: format::period(&t, current),
        lines: vec![ImpactLine {
            name: "duties_created",
            label: t.t("rules.impact_created"),
            value: impact.duties_created,
        }],
        orgs_before: None,
        orgs_after: impact.orgs_owing,
        input,
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------------------
// Waivers
// ---------------------------------------------------------------------------------------

async fn waive_rule_for_org(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, PageError> {
    admin_only(&user)?;
    let t = user.tr;
    let pairs = form_pairs(&body);
    let org_code = field(&pairs, "org").trim().to_owned();
    let reason = field(&pairs, "reason").to_owned();
    app.ensure_duties(user.now).await.page(&user)?;
    let mut tx = app.pool.begin().await.page(&user)?;
    let rule = find_rule(&mut tx, &user, &code).await?;
    let mut errors = Errors::default();
    let org = if org_code.is_empty() {
        errors.add("org", problem_message(&t, "err_required", ""));
        None
    } else if org_code.len() > 64 || org_code.contains('\0') {
        errors.add("org", problem_message(&t, "err_org_unknown", ""));
        None
    } else {
        match orgs::find_by_code(&mut tx, &org_code).await.page(&user)? {
            Some(o) => {
                let kinds_ever = systems::ever_applies_to_kind(&mut tx, rule.id, &o.kind).await.page(&user)?;
                if !kinds_ever {
                    errors.add("org", problem_message(&t, "err_org_not_bound", &o.name));
                }
                Some(o)
            }
            None => {
                errors.add("org", problem_message(&t, "err_org_unknown", &org_code));
                None
            }
        }
    };
    let trimmed = reason.trim();
    if trimmed.is_empty() {
        errors.add("reason", problem_message(&t, "err_reason", ""));
    } else if trimmed.chars().count() > 1000 || trimmed.contains('\0') {
        errors.add("reason", problem_message(&t, "err_too_long", "1000"));
    }
    let mut waived = None;
    let mut conflict = false;
    if let (Some(org), true) = (&org, errors.is_empty()) {
        match rules::waive_for_org(&mut tx, &rule, org, trimmed, Some(user.principal.user_id), user.now, user.today)
            .await
        {
            Ok(n) => waived = Some((org.clone(), n)),
            Err(AppError::Conflict(_)) => {
                conflict = true;
                errors.add("org", problem_message(&t, "err_waiver_taken", &org.name));
            }
            Err(AppError::BadInput { .. }) => errors.add("reason", problem_message(&t, "err_reason", "")),
            Err(e) => return Err(PageError(e, t.locale)),
        }
    }
    let Some((org, n)) = waived else {
        drop(tx);
        let q = RuleQuery::default();
        let page = build_rule_page(&app, &user, &code, &q, org_code, reason, errors).await?;
        let status = if conflict { StatusCode::CONFLICT } else { StatusCode::UNPROCESSABLE_ENTITY };
        return Ok(render_status(status, &page));
    };
    audit::write(
        &mut tx,
        user.audit_entry(
            "rule.waive_org",
            ("rule", rule.code.clone()),
            Some(org.id),
            json!({"org": org.code, "reason": trimmed, "duties_waived": n}),
        ),
    )
    .await
    .page(&user)?;
    tx.commit().await.page(&user)?;
    Ok(Redirect::to(&format!("/admin/rules/{}?saved=waiver#waivers", rule.code)).into_response())
}

#[derive(Template)]
#[template(path = "admin/rules_waive_duty.html")]
struct WaiveDutyPage {
    t: Tr,
    layout: Layout,
    action_url: String,
    rule_url: String,
    duty_url: String,
    rule: String,
    rule_title: String,
    org: String,
    org_name: String,
    person: Option<String>,
    period_label: String,
    status: Status,
    progress: String,
    waived_reason: Option<String>,
    reason: String,
    errors: Errors,
    conflict: Option<String>,
}

async fn load_duty(app: &App, user: &PageUser, id: &str) -> Result<systems::RuleDuty, PageError> {
    let id = id.parse::<i64>().ok().filter(|i| *i > 0).ok_or_else(|| not_found(user, "duty"))?;
    let mut conn = app.pool.acquire().await.page(user)?;
    let duty = systems::find_duty(&mut conn, id).await.page(user)?.ok_or_else(|| not_found(user, "duty"))?;
    guard::visible_org_id(&mut conn, &user.principal, duty.org_id).await.page(user)?;
    Ok(duty)
}

fn waive_duty_page(
    user: &PageUser,
    d: &systems::RuleDuty,
    reason: String,
    errors: Errors,
    conflict: Option<String>,
) -> WaiveDutyPage {
    let t = user.tr;
    let status = d.status(user.now);
    WaiveDutyPage {
        t,
        layout: Layout::new(user, "admin", &format!("/admin/duties/{}/waive", d.id)),
        action_url: format!("/admin/duties/{}/waive", d.id),
        rule_url: format!("/admin/rules/{}?period={}#duties", d.rule_code, d.period_key),
        duty_url: format!("/duties/{}", d.id),
        rule: d.rule_code.clone(),
        rule_title: d.rule_title.clone(),
        org: d.org_code.clone(),
        org_name: d.org_name.clone(),
        person: d.person_name.clone(),
        period_label: format::period_key(&t, &d.period_key),
        status,
        progress: progress(&t, d),
        waived_reason: d.waived_reason.clone(),
        reason,
        errors,
        conflict,
    }
}

async fn waive_duty_form(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    admin_only(&user)?;
    let duty = load_duty(&app, &user, &id).await?;
    Ok(render(&waive_duty_page(&user, &duty, String::new(), Errors::default(), None)))
}

async fn waive_duty(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, PageError> {
    admin_only(&user)?;
    let t = user.tr;
    let duty = load_duty(&app, &user, &id).await?;
    let pairs = form_pairs(&body);
    let reason = field(&pairs, "reason").to_owned();
    let trimmed = reason.trim();
    let mut errors = Errors::default();
    if trimmed.is_empty() {
        errors.add("reason", problem_message(&t, "err_reason", ""));
    } else if trimmed.chars().count() > 1000 || trimmed.contains('\0') {
        errors.add("reason", problem_message(&t, "err_too_long", "1000"));
    }
    if !errors.is_empty() {
        return Ok(render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &waive_duty_page(&user, &duty, reason, errors, None),
        ));
    }
    let mut tx = app.pool.begin().await.page(&user)?;
    match duties::waive(&mut tx, duty.id, user.principal.user_id, trimmed, user.now).await {
        Ok(()) => {}
        Err(AppError::Conflict(_)) => {
            drop(tx);
            let conflict = Some(t.t("rules.duty_waived_already").to_owned());
            return Ok(render_status(StatusCode::CONFLICT, &waive_duty_page(&user, &duty, reason, errors, conflict)));
        }
        Err(e) => return Err(PageError(e, t.locale)),
    }
    audit::write(
        &mut tx,
        user.audit_entry(
            "duty.waive",
            ("duty", duty.id.to_string()),
            Some(duty.org_id),
            json!({"reason": trimmed, "rule": duty.rule_code, "period": duty.period_key}),
        ),
    )
    .await
    .page(&user)?;
    tx.commit().await.page(&user)?;
    Ok(Redirect::to(&format!("/admin/rules/{}?period={}&saved=duty#duties", duty.rule_code, duty.period_key))
        .into_response())
}
