//! The record form: a new record for a duty, or an edit of one, as one multipart form with
//! its attachments. Uploads are streamed to the file store with the size limit enforced as
//! bytes arrive; a form with a mistake, or a refused file, comes back (422, or 413 for a
//! file that is too large) with everything typed kept and the files that were accepted
//! carried over as signed references, so nothing needs choosing twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use askama::Template;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, extract::Multipart};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDate;
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::files::{self, FileStore, Refusal};
use super::{actor, file_store, is_meeting_like, parse_id, size_label};
use crate::app::App;
use crate::db::attachments::{self, NewAttachment};
use crate::db::duties;
use crate::db::orgs::Org;
use crate::db::records::{self, Absentee, Meeting, NewRecord, RecordText, RecordView};
use crate::db::rules::{self, Rule};
use crate::domain::period::Period;
use crate::error::AppError;
use crate::web::format;
use crate::web::guard;
use crate::web::i18n::Tr;
use crate::web::pages::{Layout, PageError, PageResultExt, error_page, render_status};
use crate::web::session::PageUser;

/// The most files one submission of the form may carry.
pub const MAX_FILES: usize = 10;
/// The most bytes of one text field (100,000 Chinese characters fit).
const MAX_TEXT_FIELD: usize = 1024 * 1024;
/// The most bytes of all text fields together.
const MAX_TEXT_TOTAL: usize = 4 * 1024 * 1024;

pub fn router() -> Router<App> {
    // Uploads set their own limit from the settings (see `limited`), so the router's
    // default body limit is lifted on the two routes that take them.
    Router::new()
        .route("/orgs/{code}/records/new", get(new_record_form))
        .route("/orgs/{code}/records", post(create_record).layer(DefaultBodyLimit::disable()))
        .route("/records/{id}/edit", get(edit_record_form).post(update_record).layer(DefaultBodyLimit::disable()))
}

/// Per-field messages of a form, in the user's language.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(Vec<(&'static str, String)>);

impl FieldErrors {
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
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
}

/// What the user typed, kept as typed so a form with a mistake comes back unchanged.
#[derive(Debug, Default, Clone)]
pub struct FormInput {
    pub rule: String,
    pub period: String,
    pub person: String,
    pub occurred_on: String,
    pub title: String,
    pub body: String,
    pub place: String,
    pub host: String,
    pub expected: String,
    pub present: String,
    pub attendees: String,
    pub absentees: String,
    pub action: String,
    /// Signed references to files accepted in an earlier attempt.
    pub keep: Vec<String>,
    /// Ids of existing attachments to remove.
    pub remove: Vec<String>,
}

impl FormInput {
    fn set(&mut self, name: &str, value: String) {
        match name {
            "rule" => self.rule = value,
            "period" => self.period = value,
            "person" => self.person = value,
            "occurred_on" => self.occurred_on = value,
            "title" => self.title = value,
            "body" => self.body = value,
            "place" => self.place = value,
            "host" => self.host = value,
            "expected" => self.expected = value,
            "present" => self.present = value,
            "attendees" => self.attendees = value,
            "absentees" => self.absentees = value,
            "action" => self.action = value,
            "keep" if self.keep.len() < 100 => self.keep.push(value),
            "remove" if self.remove.len() < 100 => self.remove.push(value),
            _ => {}
        }
    }

    fn submits(&self) -> bool {
        self.action == "submit"
    }

    /// The form of a record's current text, for editing.
    fn from_record(rec: &RecordView) -> FormInput {
        let m = rec.meeting.clone().unwrap_or_default();
        FormInput {
            rule: rec.rule.clone(),
            period: rec.period.clone(),
            person: rec.person.clone().unwrap_or_default(),
            occurred_on: rec.occurred_on.to_string(),
            title: rec.title.clone(),
            body: rec.body.clone(),
            place: m.place,
            host: m.host,
            expected: m.expected.map(|n| n.to_string()).unwrap_or_default(),
            present: m.present.map(|n| n.to_string()).unwrap_or_default(),
            attendees: rec.attendees.join("\n"),
            absentees: m
                .absentees
                .iter()
                .map(|a| if a.reason.is_empty() { a.name.clone() } else { format!("{}：{}", a.name, a.reason) })
                .collect::<Vec<_>>()
                .join("\n"),
            ..FormInput::default()
        }
    }
}

/// A file accepted into the store, not yet linked to a record.
#[derive(Debug, Clone)]
pub struct KeptFile {
    pub token: String,
    pub name: String,
    pub size: i64,
    pub media_type: String,
}

impl KeptFile {
    pub fn size_label(&self) -> String {
        size_label(self.size)
    }
}

/// An attachment the record has already, on the edit form.
pub struct ExistingFile {
    pub id: i64,
    pub name: String,
    pub size_label: String,
    pub removable: bool,
    pub remove: bool,
}

/// What a form is for: the organisation, the rule and the period, as its header shows them.
struct FormContext {
    org: Org,
    rule: Rule,
    rule_title: String,
    clause: String,
    needs_review: bool,
    period: Period,
    person_id: Option<i64>,
    person_name: Option<String>,
    due_label: Option<String>,
}

impl FormContext {
    fn meeting_like(&self) -> bool {
        is_meeting_like(&self.rule.record_kind)
    }
}

/// Which form: a new record, or an edit of an existing one.
enum Mode<'a> {
    New,
    Edit(&'a RecordView),
}

#[derive(Template)]
#[template(path = "records/form.html")]
struct FormPage {
    t: Tr,
    layout: Layout,
    heading: String,
    org_name: String,
    org_code: String,
    rule_code: String,
    rule_title: String,
    clause: String,
    period_label: String,
    due_label: Option<String>,
    person_name: Option<String>,
    meeting_like: bool,
    is_new: bool,
    action_url: String,
    cancel_url: String,
    input: FormInput,
    errors: FieldErrors,
    file_errors: Vec<String>,
    general_error: Option<String>,
    kept: Vec<KeptFile>,
    existing: Vec<ExistingFile>,
    /// The day, written out, when it can no longer change (submitted once).
    date_fixed: Option<String>,
    date_min: String,
    date_max: String,
    max_label: String,
    max_bytes: i64,
    max_files: usize,
    accept: &'static str,
    save_label: &'static str,
    submit_label: Option<&'static str>,
    submit_hint: &'static str,
}

impl FormPage {
    fn has_errors(&self) -> bool {
        !self.errors.is_empty() || !self.file_errors.is_empty() || self.general_error.is_some()
    }

    /// ` aria-invalid="true"` where a field has an error.
    fn invalid(&self, field: &str) -> &'static str {
        if self.errors.has(field) { "true" } else { "false" }
    }
}

#[derive(Deserialize)]
struct NewQuery {
    rule: Option<String>,
    period: Option<String>,
    person: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

async fn new_record_form(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
    Query(q): Query<NewQuery>,
) -> Result<Response, PageError> {
    app.ensure_duties(user.now).await.page(&user)?;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let org = guard::visible_org(&mut conn, &user.principal, &code).await.page(&user)?;
    let ctx = new_context(
        &app,
        &user,
        &mut conn,
        org,
        q.rule.as_deref().unwrap_or(""),
        q.period.as_deref().unwrap_or(""),
        q.person.as_deref().unwrap_or(""),
    )
    .await?;
    drop(conn);
    if !user.principal.can_submit(&ctx.org.path, ctx.person_id) {
        return Err(PageError(AppError::forbidden("you may not file records here"), user.tr.locale));
    }
    let default_day = user.today.min(ctx.period.last_day()).max(ctx.period.first_day());
    let input = FormInput {
        rule: ctx.rule.code.clone(),
        period: ctx.period.to_string(),
        person: ctx.person_id.map(|p| p.to_string()).unwrap_or_default(),
        occurred_on: default_day.to_string(),
        host: if ctx.meeting_like() { user.name.clone() } else { String::new() },
        ..FormInput::default()
    };
    let page = form_page(&app, &user, &ctx, Mode::New, input, FieldErrors::default(), vec![], vec![], vec![], None);
    Ok(render_status(StatusCode::OK, &page))
}

async fn create_record(
    State(app): State<App>,
    user: PageUser,
    Path(code): Path<String>,
    req: Request,
) -> Result<Response, PageError> {
    let mut conn = app.pool.acquire().await.page(&user)?;
    let org = guard::visible_org(&mut conn, &user.principal, &code).await.page(&user)?;
    drop(conn);
    // Nobody stores files for an organisation they cannot file records for.
    if !user.principal.can_submit(&org.path, Some(user.principal.person_id)) {
        return Err(PageError(AppError::forbidden("you may not file records here"), user.tr.locale));
    }
    let received = match receive(&app, &user, req).await {
        Ok(r) => r,
        Err(resp) => return Ok(resp),
    };
    app.ensure_duties(user.now).await.page(&user)?;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let ctx =
        new_context(&app, &user, &mut conn, org, &received.input.rule, &received.input.period, &received.input.person)
            .await?;
    drop(conn);
    let Received { input, mut uploads, body_problem } = received;
    let store = file_store(&app);
    let mut kept = verify_kept(&store, &user, &input.keep, &mut uploads.errors).await;
    kept.append(&mut uploads.accepted);
    let (parsed, mut errors) = validate(&user.tr, &input, &ctx, user.today, true);
    let general = body_problem.map(|p| p.message(&user.tr, app.settings().attachment_max_bytes));
    let parsed = match parsed {
        Some(p) if errors.is_empty() && uploads.errors.is_empty() && general.is_none() => p,
        _ => {
            let status = refusal_status(uploads.too_large, body_problem);
            let page = form_page(&app, &user, &ctx, Mode::New, input, errors, uploads.errors, kept, vec![], general);
            return Ok(render_status(status, &page));
        }
    };

    let mut tx = app.pool.begin().await.page(&user)?;
    let who = actor(&app, &user);
    let org = guard::visible_org(&mut tx, &user.principal, &ctx.org.code).await.page(&user)?;
    let created = records::create(
        &mut tx,
        &who,
        &org,
        NewRecord {
            rule_code: ctx.rule.code.clone(),
            person_id: ctx.person_id,
            occurred_on: parsed.occurred_on,
            text: parsed.text,
            draft: !input.submits(),
        },
    )
    .await;
    let rec = match created {
        Ok(rec) => rec,
        Err(e) => {
            drop(tx);
            return refused(&app, &user, &ctx, Mode::New, input, kept, vec![], e, &mut errors);
        }
    };
    for f in &kept {
        let new = NewAttachment {
            sha256: f.sha256().to_owned(),
            size: f.size,
            media_type: f.media_type.clone(),
            file_name: f.name.clone(),
        };
        if let Err(e) = attachments::add(&mut tx, &who, &rec, &new).await {
            drop(tx);
            return refused(&app, &user, &ctx, Mode::New, input, kept, vec![], e, &mut errors);
        }
    }
    tx.commit().await.page(&user)?;
    let notice = match rec.state.as_str() {
        "draft" => "draft_saved",
        "accepted" => "accepted_directly",
        _ => "submitted",
    };
    Ok(Redirect::to(&format!("/records/{}?notice={notice}", rec.id)).into_response())
}

async fn edit_record_form(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (rec, ctx, existing) = load_for_edit(&app, &user, &id).await?;
    let input = FormInput::from_record(&rec);
    let page =
        form_page(&app, &user, &ctx, Mode::Edit(&rec), input, FieldErrors::default(), vec![], vec![], existing, None);
    Ok(render_status(StatusCode::OK, &page))
}

async fn update_record(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, PageError> {
    let (rec, ctx, mut existing) = load_for_edit(&app, &user, &id).await?;
    let received = match receive(&app, &user, req).await {
        Ok(r) => r,
        Err(resp) => return Ok(resp),
    };
    let Received { input, mut uploads, body_problem } = received;
    let store = file_store(&app);
    let mut kept = verify_kept(&store, &user, &input.keep, &mut uploads.errors).await;
    kept.append(&mut uploads.accepted);
    for e in existing.iter_mut() {
        e.remove = e.removable && input.remove.iter().any(|r| r == &e.id.to_string());
    }
    let date_editable = rec.state == "draft";
    let (parsed, mut errors) = validate(&user.tr, &input, &ctx, user.today, date_editable);
    let general = body_problem.map(|p| p.message(&user.tr, app.settings().attachment_max_bytes));
    let parsed = match parsed {
        Some(p) if errors.is_empty() && uploads.errors.is_empty() && general.is_none() => p,
        _ => {
            let status = refusal_status(uploads.too_large, body_problem);
            let page =
                form_page(&app, &user, &ctx, Mode::Edit(&rec), input, errors, uploads.errors, kept, existing, general);
            return Ok(render_status(status, &page));
        }
    };

    app.ensure_duties(user.now).await.page(&user)?;
    let mut tx = app.pool.begin().await.page(&user)?;
    let who = actor(&app, &user);
    let record_id = parse_id(&rec.id).unwrap_or_default();
    let result: Result<RecordView, AppError> = async {
        let mut current = rec.clone();
        if date_editable && parsed.occurred_on != rec.occurred_on {
            current = records::change_draft_date(&mut tx, &who, record_id, parsed.occurred_on).await?;
        }
        if parsed.text != current_text(&current) {
            current = records::add_version(&mut tx, &who, record_id, parsed.text.clone()).await?;
        }
        for e in existing.iter().filter(|e| e.remove) {
            attachments::remove(&mut tx, &who, &current, e.id).await?;
        }
        for f in &kept {
            let new = NewAttachment {
                sha256: f.sha256().to_owned(),
                size: f.size,
                media_type: f.media_type.clone(),
                file_name: f.name.clone(),
            };
            attachments::add(&mut tx, &who, &current, &new).await?;
        }
        if input.submits() && matches!(current.state.as_str(), "draft" | "returned") {
            current = records::submit(&mut tx, &who, record_id).await?;
        }
        Ok(current)
    }
    .await;
    let done = match result {
        Ok(r) => r,
        Err(e) => {
            drop(tx);
            return refused(&app, &user, &ctx, Mode::Edit(&rec), input, kept, existing, e, &mut errors);
        }
    };
    tx.commit().await.page(&user)?;
    let notice = match (rec.state.as_str(), done.state.as_str()) {
        ("returned", "submitted") => "resubmitted",
        (_, "submitted") if rec.state != "submitted" => "submitted",
        (_, "accepted") if rec.state != "accepted" => "accepted_directly",
        _ => "saved",
    };
    Ok(Redirect::to(&format!("/records/{}?notice={notice}", done.id)).into_response())
}

/// 413 when a file (or the whole body) was too large, 400 for a body that is not a form,
/// 422 for every other mistake: the form comes back in each case.
fn refusal_status(file_too_large: bool, body: Option<BodyProblem>) -> StatusCode {
    match body {
        Some(BodyProblem::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
        _ if file_too_large => StatusCode::PAYLOAD_TOO_LARGE,
        Some(BodyProblem::Malformed) => StatusCode::BAD_REQUEST,
        None => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The current text of a record, as a form would give it.
fn current_text(rec: &RecordView) -> RecordText {
    RecordText {
        title: rec.title.clone(),
        body: rec.body.clone(),
        attendees: rec.attendees.clone(),
        meeting: rec.meeting.clone(),
    }
}

/// A record the user may edit, with its form's context and its attachments.
async fn load_for_edit(
    app: &App,
    user: &PageUser,
    id: &str,
) -> Result<(RecordView, FormContext, Vec<ExistingFile>), PageError> {
    let not_found = || PageError(AppError::not_found("record"), user.tr.locale);
    let id = parse_id(id).ok_or_else(not_found)?;
    app.ensure_duties(user.now).await.page(user)?;
    let settings = app.settings();
    let mut conn = app.pool.acquire().await.page(user)?;
    let rec = guard::visible_record(&mut conn, &user.principal, id, settings.tz).await.page(user)?;
    if !user.principal.can_submit(&rec.org_path, rec.person_id) {
        return Err(PageError(AppError::forbidden("you may not change this record"), user.tr.locale));
    }
    if rec.state == "withdrawn" {
        return Err(PageError(AppError::conflict("the record is withdrawn"), user.tr.locale));
    }
    let org = guard::visible_org_id(&mut conn, &user.principal, rec.org_id).await.page(user)?;
    let rule = rules::find_by_code(&mut conn, &rec.rule).await.page(user)?.ok_or_else(not_found)?;
    let period: Period = rec.period.parse().map_err(|_| not_found())?;
    let duty = duties::for_org_period(&mut conn, &app.catalog, &settings, org.id, &rec.period, user.now)
        .await
        .page(user)?
        .into_iter()
        .find(|d| d.rule_id == rec.rule_id && d.person_id == rec.person_id);
    let clause = match &duty {
        Some(d) => d.clause.clone(),
        None => rules::version_on(&mut conn, rule.id, period.first_day())
            .await
            .page(user)?
            .map(|v| v.clause)
            .unwrap_or_default(),
    };
    let removable = matches!(rec.state.as_str(), "draft" | "returned");
    let existing = attachments::for_record(&mut conn, id)
        .await
        .page(user)?
        .into_iter()
        .map(|a| ExistingFile { id: a.id, name: a.file_name, size_label: size_label(a.size), removable, remove: false })
        .collect();
    drop(conn);
    let ctx = FormContext {
        org,
        rule,
        rule_title: rec.rule_title.clone(),
        clause,
        needs_review: rec.needs_review,
        period,
        person_id: rec.person_id,
        person_name: rec.person_name.clone(),
        due_label: duty.map(|d| last_day_label(&user.tr, settings.tz, d.due_at.to_utc())),
    };
    Ok((rec, ctx, existing))
}

/// The context of a new record's form: the rule (404 if unknown or not binding the
/// organisation), the period (the one asked for, else the current one), and the duty.
async fn new_context(
    app: &App,
    user: &PageUser,
    conn: &mut sqlx::PgConnection,
    org: Org,
    rule_code: &str,
    period_key: &str,
    person: &str,
) -> Result<FormContext, PageError> {
    let not_found = || PageError(AppError::not_found("rule"), user.tr.locale);
    let settings = app.settings();
    let rule = rules::find_by_code(conn, rule_code.trim()).await.page(user)?.ok_or_else(not_found)?;
    let period = period_key
        .trim()
        .parse::<Period>()
        .ok()
        .filter(|p| p.cadence() == rule.cadence())
        .unwrap_or_else(|| Period::containing(rule.cadence(), user.today));
    let person_id = match person.trim() {
        "" => None,
        p => Some(parse_id(p).ok_or_else(not_found)?),
    };
    let duty = duties::for_org_period(conn, &app.catalog, &settings, org.id, &period.to_string(), user.now)
        .await
        .page(user)?
        .into_iter()
        .find(|d| d.rule_id == rule.id && d.person_id == person_id);
    let ctx = match duty {
        Some(d) => FormContext {
            rule_title: d.title.clone(),
            clause: d.clause.clone(),
            needs_review: d.needs_review,
            person_name: d.person_name.clone(),
            due_label: Some(last_day_label(&user.tr, settings.tz, d.due_at.to_utc())),
            org,
            rule,
            period,
            person_id,
        },
        None => {
            // No duty (a period before the rule, a rule without schedule): the form still
            // works when the rule binds the organisation; the record then counts for nothing.
            let version = rules::version_on(conn, rule.id, period.first_day()).await.page(user)?;
            let Some(version) = version.filter(|v| rules::binds(v, &org)) else { return Err(not_found()) };
            if person_id.is_some() != rule.binds_each_member() {
                return Err(not_found());
            }
            FormContext {
                rule_title: version.title,
                clause: version.clause,
                needs_review: version.needs_review,
                person_name: None,
                due_label: None,
                org,
                rule,
                period,
                person_id,
            }
        }
    };
    Ok(ctx)
}

/// "2026年3月31日": the last day one can submit on time.
fn last_day_label(t: &Tr, tz: chrono_tz::Tz, due_at: chrono::DateTime<chrono::Utc>) -> String {
    let due_day = crate::domain::time::local_date(tz, due_at);
    format::date(t, due_day.pred_opt().unwrap_or(due_day))
}

#[allow(clippy::too_many_arguments)]
fn form_page(
    app: &App,
    user: &PageUser,
    ctx: &FormContext,
    mode: Mode<'_>,
    input: FormInput,
    errors: FieldErrors,
    file_errors: Vec<String>,
    kept: Vec<KeptFile>,
    existing: Vec<ExistingFile>,
    general_error: Option<String>,
) -> FormPage {
    let t = user.tr;
    let max = app.settings().attachment_max_bytes;
    let (heading, action_url, cancel_url, date_fixed, save_label, submit_label, here) = match &mode {
        Mode::New => {
            let mut here = format!(
                "/orgs/{}/records/new?rule={}&period={}",
                ctx.org.code,
                crate::web::session::percent_encode(&ctx.rule.code),
                ctx.period
            );
            if let Some(p) = ctx.person_id {
                here.push_str(&format!("&person={p}"));
            }
            (
                t.f1("records.new_heading", &ctx.rule_title),
                format!("/orgs/{}/records?csrf={}", ctx.org.code, user.csrf),
                "/".to_owned(),
                None,
                t.t("records.save_draft"),
                Some(t.t("records.submit")),
                here,
            )
        }
        Mode::Edit(rec) => {
            let (save, submit) = match rec.state.as_str() {
                "draft" => (t.t("records.save_draft"), Some(t.t("records.submit"))),
                "returned" => (t.t("records.save_changes"), Some(t.t("records.resubmit"))),
                "accepted" => (t.t("records.save_correction"), None),
                _ => (t.t("records.save_changes"), None),
            };
            (
                t.f1("records.edit_heading", &rec.title),
                format!("/records/{}/edit?csrf={}", rec.id, user.csrf),
                format!("/records/{}", rec.id),
                (rec.state != "draft").then(|| format::date(&t, rec.occurred_on)),
                save,
                submit,
                format!("/records/{}/edit", rec.id),
            )
        }
    };
    let first = ctx.period.first_day().max(ctx.org.active_from);
    let mut last = ctx.period.last_day().min(user.today);
    if let Some(until) = ctx.org.active_until {
        last = last.min(until);
    }
    FormPage {
        t,
        layout: Layout::new(user, "workbench", &here),
        heading,
        org_name: ctx.org.name.clone(),
        org_code: ctx.org.code.clone(),
        rule_code: ctx.rule.code.clone(),
        rule_title: ctx.rule_title.clone(),
        clause: ctx.clause.clone(),
        period_label: format::period(&t, ctx.period),
        due_label: ctx.due_label.clone(),
        person_name: ctx.person_name.clone(),
        meeting_like: ctx.meeting_like(),
        is_new: matches!(mode, Mode::New),
        action_url,
        cancel_url,
        input,
        errors,
        file_errors,
        general_error,
        kept,
        existing,
        date_fixed,
        date_min: first.to_string(),
        date_max: last.max(first).to_string(),
        max_label: size_label(max),
        max_bytes: max,
        max_files: MAX_FILES,
        accept: files::ACCEPT_HINT,
        save_label,
        submit_label,
        submit_hint: if ctx.needs_review { t.t("records.hint_review") } else { t.t("records.hint_no_review") },
    }
}

/// The database refused what the form checked already (a race, a rule that does not bind
/// on that day): the form comes back with the reason on the field; an access refusal is an
/// error page.
#[allow(clippy::too_many_arguments)]
fn refused(
    app: &App,
    user: &PageUser,
    ctx: &FormContext,
    mode: Mode<'_>,
    input: FormInput,
    kept: Vec<KeptFile>,
    existing: Vec<ExistingFile>,
    e: AppError,
    errors: &mut FieldErrors,
) -> Result<Response, PageError> {
    let t = user.tr;
    let field = match &e {
        AppError::BadInput { field, .. } => Some(field.to_string()),
        _ => None,
    };
    let (status, general) = match (&e, field.as_deref()) {
        (_, Some("occurred_on")) => {
            errors.add("occurred_on", t.t("records.err_date_not_binding"));
            (StatusCode::UNPROCESSABLE_ENTITY, None)
        }
        (_, Some("attachments")) => {
            errors.add("files", t.f1("records.err_too_many_on_record", attachments::MAX_PER_RECORD));
            (StatusCode::UNPROCESSABLE_ENTITY, None)
        }
        (_, Some(f)) if TEXT_FIELDS.contains(&f) => {
            let f = TEXT_FIELDS.iter().find(|x| **x == f).copied().unwrap_or("title");
            errors.add(f, t.t("records.err_invalid"));
            (StatusCode::UNPROCESSABLE_ENTITY, None)
        }
        (AppError::Conflict(_), _) => (StatusCode::CONFLICT, Some(t.t("records.err_conflict").to_owned())),
        _ => return Err(PageError(e, t.locale)),
    };
    let page = form_page(app, user, ctx, mode, input, std::mem::take(errors), vec![], kept, existing, general);
    Ok(render_status(status, &page))
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

/// The fields of a record's text, as the form and [`RecordText::parse`] name them.
const TEXT_FIELDS: [&str; 8] = ["title", "body", "place", "host", "expected", "present", "attendees", "absentees"];

struct Parsed {
    occurred_on: NaiveDate,
    text: RecordText,
}

/// Check every field, each problem beside its field in the user's language; the text is
/// then checked once more by [`RecordText::parse`], the one rule the API keeps too.
fn validate(
    t: &Tr,
    input: &FormInput,
    ctx: &FormContext,
    today: NaiveDate,
    date_editable: bool,
) -> (Option<Parsed>, FieldErrors) {
    let mut errors = FieldErrors::default();
    let meeting_like = ctx.meeting_like();

    let occurred_on = if date_editable {
        match parse_day(&input.occurred_on) {
            None if input.occurred_on.trim().is_empty() => {
                errors.add("occurred_on", t.t("records.err_date_required"));
                None
            }
            None => {
                errors.add("occurred_on", t.t("records.err_date_format"));
                None
            }
            Some(d) if d > today => {
                errors.add("occurred_on", t.t("records.err_date_future"));
                None
            }
            Some(d) if !ctx.period.contains(d) => {
                errors.add(
                    "occurred_on",
                    t.f3(
                        "records.err_date_outside_period",
                        format::period(t, ctx.period),
                        format::date(t, ctx.period.first_day()),
                        format::date(t, ctx.period.last_day()),
                    ),
                );
                None
            }
            Some(d) if !ctx.org.is_active_on(d) => {
                errors.add("occurred_on", t.f1("records.err_date_org_inactive", &ctx.org.name));
                None
            }
            Some(d) => Some(d),
        }
    } else {
        parse_day(&input.occurred_on).or(Some(ctx.period.first_day()))
    };

    let title = input.title.trim();
    if title.is_empty() {
        errors.add(
            "title",
            if meeting_like { t.t("records.err_topic_required") } else { t.t("records.err_title_required") },
        );
    } else if title.chars().count() > 200 {
        errors.add("title", t.f1("records.err_too_long", 200));
    }
    if input.body.chars().count() > 100_000 {
        errors.add("body", t.f1("records.err_too_long", 100_000));
    }

    let mut meeting = None;
    let mut attendees = Vec::new();
    if meeting_like {
        if input.place.trim().chars().count() > 200 {
            errors.add("place", t.f1("records.err_too_long", 200));
        }
        if input.host.trim().chars().count() > 100 {
            errors.add("host", t.f1("records.err_too_long", 100));
        }
        let expected = parse_count(t, &input.expected, "expected", &mut errors);
        let present = parse_count(t, &input.present, "present", &mut errors);
        if let (Some(e), Some(p)) = (expected, present)
            && p > e
        {
            errors.add("present", t.t("records.err_present_over_expected"));
        }
        attendees = split_names(&input.attendees);
        if attendees.len() > 2000 {
            errors.add("attendees", t.f1("records.err_too_many_names", 2000));
        } else if attendees.iter().any(|a| a.chars().count() > 100) {
            errors.add("attendees", t.f1("records.err_name_too_long", 100));
        }
        let absentees = parse_absentees(&input.absentees);
        if absentees.len() > 2000 {
            errors.add("absentees", t.f1("records.err_too_many_names", 2000));
        } else if absentees.iter().any(|a| a.name.chars().count() > 100 || a.reason.chars().count() > 500) {
            errors.add("absentees", t.t("records.err_absentee_too_long"));
        }
        meeting = Some(Meeting {
            place: input.place.trim().to_owned(),
            host: input.host.trim().to_owned(),
            expected,
            present,
            absentees,
        });
    }
    if !errors.is_empty() {
        return (None, errors);
    }
    match RecordText::parse(title, &input.body, attendees, meeting) {
        Ok(text) => match occurred_on {
            Some(occurred_on) => (Some(Parsed { occurred_on, text }), errors),
            None => (None, errors),
        },
        Err(AppError::BadInput { field, .. }) => {
            let f = TEXT_FIELDS.iter().find(|x| **x == field.as_ref()).copied().unwrap_or("title");
            errors.add(f, t.t("records.err_invalid"));
            (None, errors)
        }
        Err(_) => {
            errors.add("title", t.t("records.err_invalid"));
            (None, errors)
        }
    }
}

/// A day as a form gives it (2026-03-05), or as people type it (2026/3/5, 2026年3月5日).
fn parse_day(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
        .filter(|d| (1900..=9999).contains(&chrono::Datelike::year(d)))
}

/// A head count: empty is none; full-width digits count as digits.
fn parse_count(t: &Tr, raw: &str, field: &'static str, errors: &mut FieldErrors) -> Option<i32> {
    let s: String = raw
        .trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            c => c,
        })
        .collect();
    if s.is_empty() {
        return None;
    }
    match s.parse::<i32>() {
        Ok(n) if (0..=100_000).contains(&n) => Some(n),
        _ => {
            errors.add(field, t.t("records.err_count"));
            None
        }
    }
}

/// Names as people list them: one a line, or separated by 、，, ; ；.
fn split_names(raw: &str) -> Vec<String> {
    raw.split(['\n', '\r', '、', '，', ',', '；', ';']).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

/// Absentees one a line: "李四：出差", "李四: 出差" or "李四（出差）"; a name alone is fine.
fn parse_absentees(raw: &str) -> Vec<Absentee> {
    raw.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            if let Some((name, reason)) = line.split_once(['：', ':']) {
                return Absentee { name: name.trim().to_owned(), reason: reason.trim().to_owned() };
            }
            if let Some(open) = line.find(['（', '('])
                && let Some(inner) = line[open..].strip_suffix(['）', ')'])
            {
                let reason = inner.trim_start_matches(['（', '(']);
                return Absentee { name: line[..open].trim().to_owned(), reason: reason.trim().to_owned() };
            }
            Absentee { name: line.to_owned(), reason: String::new() }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Receiving the multipart body
// ---------------------------------------------------------------------------------------

/// What went wrong with the request body as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyProblem {
    /// More than all files at the limit could make: reading stopped there.
    TooLarge,
    /// Not a readable form (it did not come from our page).
    Malformed,
}

impl BodyProblem {
    fn message(self, t: &Tr, max: i64) -> String {
        match self {
            BodyProblem::TooLarge => t.f2("records.err_body_too_large", MAX_FILES, size_label(max)),
            BodyProblem::Malformed => t.t("records.err_body_malformed").to_owned(),
        }
    }
}

struct Uploads {
    accepted: Vec<KeptFile>,
    errors: Vec<String>,
    too_large: bool,
}

struct Received {
    input: FormInput,
    uploads: Uploads,
    body_problem: Option<BodyProblem>,
}

/// Read the form: text fields into [`FormInput`], files streamed into the store one by
/// one, each refused (with a message) when it passes the size limit or is not of an
/// accepted type. Only a body that is not a form at all gets an error page.
async fn receive(app: &App, user: &PageUser, req: Request) -> Result<Received, Response> {
    let t = user.tr;
    let max_file = app.settings().attachment_max_bytes.max(1) as u64;
    let ceiling = max_file.saturating_mul(MAX_FILES as u64).saturating_add(MAX_TEXT_TOTAL as u64 + 64 * 1024);
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > ceiling) {
        return Err(error_page(StatusCode::PAYLOAD_TOO_LARGE, t.locale));
    }
    let hit_limit = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, limited(body, ceiling, hit_limit.clone()));
    let mut multipart = match Multipart::from_request(req, app).await {
        Ok(m) => m,
        Err(_) => return Err(error_page(StatusCode::BAD_REQUEST, t.locale)),
    };
    let store = file_store(app);
    let mut input = FormInput::default();
    let mut uploads = Uploads { accepted: vec![], errors: vec![], too_large: false };
    let mut text_total = 0usize;
    let mut problem = None;
    let mut files_seen = 0usize;
    'fields: loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => {
                problem = Some(if hit_limit.load(Ordering::Relaxed) {
                    BodyProblem::TooLarge
                } else {
                    BodyProblem::Malformed
                });
                break;
            }
        };
        let name = field.name().unwrap_or("").to_owned();
        if name == "files" {
            let raw_name = field.file_name().unwrap_or("").to_owned();
            if raw_name.is_empty() {
                // The empty part a browser sends when no file was chosen.
                continue;
            }
            let shown = files::display_name(&raw_name, "");
            files_seen += 1;
            if files_seen > MAX_FILES {
                if files_seen == MAX_FILES + 1 {
                    uploads.errors.push(t.f1("records.err_too_many_files", MAX_FILES));
                }
                continue;
            }
            let mut upload = match store.begin(max_file).await {
                Ok(u) => u,
                Err(e) => {
                    tracing::error!("starting an upload failed: {e}");
                    uploads.errors.push(t.f1("records.err_file_failed", &shown));
                    continue;
                }
            };
            let mut refused_size = false;
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        if refused_size {
                            continue;
                        }
                        match upload.write(&chunk).await {
                            Ok(()) => {}
                            Err(Refusal::TooLarge { .. }) => refused_size = true,
                            Err(e) => {
                                tracing::error!("writing an upload failed: {e}");
                                uploads.errors.push(t.f1("records.err_file_failed", &shown));
                                continue 'fields;
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        problem = Some(if hit_limit.load(Ordering::Relaxed) {
                            BodyProblem::TooLarge
                        } else {
                            BodyProblem::Malformed
                        });
                        break 'fields;
                    }
                }
            }
            if refused_size {
                uploads.too_large = true;
                uploads.errors.push(t.f2("records.err_file_too_large", &shown, size_label(max_file as i64)));
                continue;
            }
            match upload.finish(&raw_name).await {
                Ok(stored) => {
                    let display = files::display_name(&raw_name, stored.media_type);
                    uploads.accepted.push(KeptFile {
                        token: sign_kept(user, &stored.sha256, stored.size as i64, stored.media_type, &display),
                        name: display,
                        size: stored.size as i64,
                        media_type: stored.media_type.to_owned(),
                    });
                }
                Err(Refusal::Type) => uploads.errors.push(t.f1("records.err_file_type", &shown)),
                Err(Refusal::Empty) => uploads.errors.push(t.f1("records.err_file_empty", &shown)),
                Err(Refusal::TooLarge { .. }) => {
                    uploads.too_large = true;
                    uploads.errors.push(t.f2("records.err_file_too_large", &shown, size_label(max_file as i64)));
                }
                Err(Refusal::Io(e)) => {
                    tracing::error!("storing an upload failed: {e}");
                    uploads.errors.push(t.f1("records.err_file_failed", &shown));
                }
            }
        } else {
            let mut bytes: Vec<u8> = Vec::new();
            let mut overflow = false;
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        text_total += chunk.len();
                        if bytes.len() + chunk.len() > MAX_TEXT_FIELD || text_total > MAX_TEXT_TOTAL {
                            overflow = true;
                            let room = MAX_TEXT_FIELD.saturating_sub(bytes.len());
                            bytes.extend_from_slice(&chunk[..room.min(chunk.len())]);
                        } else {
                            bytes.extend_from_slice(&chunk);
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        problem = Some(if hit_limit.load(Ordering::Relaxed) {
                            BodyProblem::TooLarge
                        } else {
                            BodyProblem::Malformed
                        });
                        break 'fields;
                    }
                }
            }
            let mut value = clean_text(&String::from_utf8_lossy(&bytes));
            if overflow {
                // Cut at a character; the length check then marks the field.
                value = value.chars().take(MAX_TEXT_FIELD / 3).collect();
            }
            input.set(&name, value);
        }
    }
    Ok(Received { input, uploads, body_problem: problem })
}

/// A request body that fails once more than `max` bytes have come (and says so).
fn limited(body: Body, max: u64, hit: Arc<AtomicBool>) -> Body {
    let mut seen: u64 = 0;
    let stream = body.into_data_stream().map(move |chunk| match chunk {
        Ok(bytes) => {
            seen += bytes.len() as u64;
            if seen > max {
                hit.store(true, Ordering::Relaxed);
                Err(std::io::Error::other("request body too large"))
            } else {
                Ok(bytes)
            }
        }
        Err(e) => Err(std::io::Error::other(e)),
    });
    Body::from_stream(stream)
}

/// Text as typed, without NUL and other control characters (tabs and line breaks stay).
fn clean_text(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')).collect()
}

// ---------------------------------------------------------------------------------------
// Files carried over from an earlier attempt: signed with the session's CSRF token
// ---------------------------------------------------------------------------------------

impl KeptFile {
    fn sha256(&self) -> &str {
        self.token.split('.').next().unwrap_or("")
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer.finalize());
    out
}

fn kept_mac(user: &PageUser, sha256: &str, size: i64, media_type: &str, name: &str) -> String {
    let msg = format!("keep\n{}\n{sha256}\n{size}\n{media_type}\n{name}", user.principal.user_id);
    URL_SAFE_NO_PAD.encode(hmac_sha256(user.csrf.as_bytes(), msg.as_bytes()))
}

/// `sha256.size.media.name.mac`: a file this user uploaded in this session.
fn sign_kept(user: &PageUser, sha256: &str, size: i64, media_type: &str, name: &str) -> String {
    format!(
        "{sha256}.{size}.{}.{}.{}",
        URL_SAFE_NO_PAD.encode(media_type),
        URL_SAFE_NO_PAD.encode(name),
        kept_mac(user, sha256, size, media_type, name)
    )
}

fn open_kept(user: &PageUser, token: &str) -> Option<KeptFile> {
    let mut parts = token.split('.');
    let (sha, size, media, name, mac) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !files::is_sha256(sha) {
        return None;
    }
    let size: i64 = size.parse().ok()?;
    let media = String::from_utf8(URL_SAFE_NO_PAD.decode(media).ok()?).ok()?;
    let name = String::from_utf8(URL_SAFE_NO_PAD.decode(name).ok()?).ok()?;
    let expected = kept_mac(user, sha, size, &media, &name);
    let same = Sha256::digest(expected.as_bytes()) == Sha256::digest(mac.as_bytes());
    if !same || !files::ACCEPTED.contains(&media.as_str()) {
        return None;
    }
    Some(KeptFile { token: token.to_owned(), name, size, media_type: media })
}

/// The files kept from an earlier attempt that are genuine and still stored.
async fn verify_kept(store: &FileStore, user: &PageUser, tokens: &[String], errors: &mut Vec<String>) -> Vec<KeptFile> {
    let mut out: Vec<KeptFile> = Vec::new();
    for token in tokens {
        match open_kept(user, token) {
            Some(f) if store.contains(f.sha256()).await => {
                if !out.iter().any(|o| o.token == f.token) {
                    out.push(f);
                }
            }
            Some(f) => errors.push(user.tr.f1("records.err_kept_gone", &f.name)),
            None => errors.push(user.tr.t("records.err_kept_invalid").to_owned()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_split_as_people_list_them() {
        assert_eq!(split_names("张三、李四，王五\n赵六;  \n"), vec!["张三", "李四", "王五", "赵六"]);
        assert!(split_names("  \n ").is_empty());
    }

    #[test]
    fn absentees_take_a_reason_after_a_colon_or_in_brackets() {
        let a = parse_absentees("李四：出差\n王五: 病假\n赵六（外出学习）\n钱七\n");
        let pairs: Vec<(&str, &str)> = a.iter().map(|a| (a.name.as_str(), a.reason.as_str())).collect();
        assert_eq!(pairs, vec![("李四", "出差"), ("王五", "病假"), ("赵六", "外出学习"), ("钱七", "")]);
    }

    #[test]
    fn days_are_read_as_typed() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap();
        assert_eq!(parse_day("2026-03-05"), Some(d));
        assert_eq!(parse_day("2026/3/5"), Some(d));
        assert_eq!(parse_day("2026年3月5日"), Some(d));
        assert_eq!(parse_day("5.3.2026"), None);
    }

    #[test]
    fn hmac_matches_the_rfc_4231_vector() {
        let mac = hmac_sha256(&[0x0b; 20], b"Hi There");
        assert_eq!(hex::encode(mac), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    }

    #[test]
    fn control_characters_are_dropped_from_text() {
        assert_eq!(clean_text("a\0b\u{7}c\nd\te"), "abc\nd\te");
    }
}
