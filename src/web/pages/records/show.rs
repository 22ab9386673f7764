//! The record page: what the record says (a meeting laid out as a 会议记录), its files, who
//! did what when, its versions, and the actions the user may take on it in its state —
//! edit, submit, withdraw, and for the superior accept or return with a comment.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::{actor, kind_label, parse_id, size_label, state_label};
use crate::app::App;
use crate::db::attachments;
use crate::db::records::{self, Decision, Meeting, NamedHistoryEntry, RecordView, VersionText};
use crate::error::AppError;
use crate::web::format;
use crate::web::guard;
use crate::web::i18n::Tr;
use crate::web::pages::{Layout, PageError, PageResultExt, render_status};
use crate::web::session::PageUser;

use super::files;

pub fn router() -> Router<App> {
    Router::new()
        .route("/records/{id}", get(record_page))
        .route("/records/{id}/versions/{n}", get(version_page))
        .route("/records/{id}/submit", post(submit_record))
        .route("/records/{id}/withdraw", post(withdraw_record))
        .route("/records/{id}/review", post(review_record))
}

/// A meeting's details as the page lays them out.
pub struct MeetingView {
    pub place: String,
    pub host: String,
    pub expected: Option<i32>,
    pub present: Option<i32>,
    pub absentees: Vec<(String, String)>,
}

/// One version of the text, as the page shows it.
pub struct TextView {
    pub title: String,
    pub body: String,
    pub attendees: String,
    pub attendee_count: usize,
    pub occurred_label: String,
    pub meeting: Option<MeetingView>,
}

impl TextView {
    fn new(
        t: &Tr,
        occurred_on: chrono::NaiveDate,
        title: &str,
        body: &str,
        attendees: &[String],
        meeting: Option<Meeting>,
    ) -> TextView {
        TextView {
            title: title.to_owned(),
            body: body.to_owned(),
            attendees: attendees.join(t.t("records.list_separator")),
            attendee_count: attendees.len(),
            occurred_label: format::date(t, occurred_on),
            meeting: meeting.map(|m| MeetingView {
                place: m.place,
                host: m.host,
                expected: m.expected,
                present: m.present,
                absentees: m.absentees.into_iter().map(|a| (a.name, a.reason)).collect(),
            }),
        }
    }
}

pub struct AttachmentItem {
    pub url: String,
    pub inline_url: Option<String>,
    pub name: String,
    pub size_label: String,
    pub kind_label: &'static str,
}

pub struct HistoryItem {
    pub when: String,
    pub who: String,
    pub what: String,
    pub note: Option<String>,
    pub kind: &'static str,
}

/// The superior's latest return, shown atop a returned record.
pub struct ReturnedNote {
    pub who: String,
    pub when: String,
    pub comment: String,
}

pub struct VersionItem {
    pub n: i32,
    pub url: String,
    pub who: String,
    pub when: String,
    pub current: bool,
}

/// What came back from an action on the page: a message, or a form with a mistake.
#[derive(Default)]
struct Extras {
    status: Option<StatusCode>,
    alert: Option<String>,
    comment: String,
    comment_error: Option<String>,
    reason: String,
    reason_error: Option<String>,
}

#[derive(Template)]
#[template(path = "records/show.html")]
struct RecordPage {
    t: Tr,
    layout: Layout,
    id: String,
    org_name: String,
    org_code: String,
    rule: String,
    rule_title: String,
    clause: String,
    period_label: String,
    person_name: Option<String>,
    state: String,
    state_label: &'static str,
    version: i32,
    meeting_like: bool,
    text: TextView,
    attachments: Vec<AttachmentItem>,
    history: Vec<HistoryItem>,
    versions: Vec<VersionItem>,
    duty_url: Option<String>,
    due_label: Option<String>,
    deadline_passed: bool,
    submitted_label: Option<String>,
    returned: Option<ReturnedNote>,
    withdrawn_reason: Option<String>,
    notice: Option<String>,
    alert: Option<String>,
    edit_label: Option<&'static str>,
    submit_label: Option<&'static str>,
    may_withdraw: bool,
    may_review: bool,
    own_submission: bool,
    comment: String,
    comment_error: Option<String>,
    reason: String,
    reason_error: Option<String>,
}

#[derive(Template)]
#[template(path = "records/version.html")]
struct VersionPage {
    t: Tr,
    layout: Layout,
    id: String,
    org_name: String,
    rule_title: String,
    period_label: String,
    n: i32,
    current: i32,
    who: String,
    when: String,
    meeting_like: bool,
    text: TextView,
}

#[derive(Deserialize)]
struct PageQuery {
    notice: Option<String>,
}

async fn record_page(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, PageError> {
    let notice = q.notice.as_deref().and_then(|n| notice_text(&user.tr, n));
    show(&app, &user, &id, notice, Extras::default()).await
}

fn notice_text(t: &Tr, key: &str) -> Option<String> {
    let k = match key {
        "draft_saved" => "records.notice_draft_saved",
        "submitted" => "records.notice_submitted",
        "resubmitted" => "records.notice_resubmitted",
        "accepted_directly" => "records.notice_accepted_directly",
        "saved" => "records.notice_saved",
        "withdrawn" => "records.notice_withdrawn",
        _ => return None,
    };
    Some(t.t(k).to_owned())
}

async fn show(
    app: &App,
    user: &PageUser,
    id: &str,
    notice: Option<String>,
    extras: Extras,
) -> Result<Response, PageError> {
    let t = user.tr;
    let id = parse_id(id).ok_or_else(|| PageError(AppError::not_found("record"), t.locale))?;
    let settings = app.settings();
    let tz = settings.tz;
    let mut conn = app.pool.acquire().await.page(user)?;
    let rec = guard::visible_record(&mut conn, &user.principal, id, tz).await.page(user)?;
    let files = attachments::for_record(&mut conn, id).await.page(user)?;
    let history = records::history_named(&mut conn, id).await.page(user)?;
    let versions = records::versions(&mut conn, id).await.page(user)?;
    let duty = records::duty_ref_of(&mut conn, &rec).await.page(user)?;
    let kind: Option<String> = rule_kind(&mut conn, rec.rule_id).await.page(user)?;
    let clause = rule_clause(&mut conn, &rec).await.page(user)?;
    let due = records::due_dates(&mut conn, &[(rec.rule_id, rec.period.clone())]).await.page(user)?;
    drop(conn);

    let due_at = due.get(&(rec.rule_id, rec.period.clone())).copied();
    let due_day = due_at.map(|d| crate::domain::time::local_date(tz, d));
    let last_day = due_day.map(|d| d.pred_opt().unwrap_or(d));
    let p = &user.principal;
    let may_file = p.can_submit(&rec.org_path, rec.person_id);
    let own_submission = rec.submitted_by_id == Some(p.user_id) && !p.is_admin;
    let may_review = rec.state == "submitted" && p.can_review(&rec.org_path);
    let edit_label = match (may_file, rec.state.as_str()) {
        (true, "draft") => Some(t.t("records.edit_draft")),
        (true, "returned") => Some(t.t("records.edit_returned")),
        (true, "submitted") => Some(t.t("records.edit_submitted")),
        (true, "accepted") => Some(t.t("records.edit_accepted")),
        _ => None,
    };
    let submit_label = match (may_file, rec.state.as_str()) {
        (true, "draft") => Some(t.t("records.submit")),
        (true, "returned") => Some(t.t("records.resubmit_unchanged")),
        _ => None,
    };
    let returned = (rec.state == "returned")
        .then(|| history.iter().rev().find(|h| h.action == "record.return"))
        .flatten()
        .map(|h| ReturnedNote {
            who: h.actor_name.clone().unwrap_or_else(|| h.actor.clone()),
            when: format::instant(&t, tz, h.at),
            comment: h.detail.get("comment").and_then(|c| c.as_str()).unwrap_or("").to_owned(),
        });
    let rid = rec.id.clone();
    let page = RecordPage {
        t,
        layout: Layout::new(user, "workbench", &format!("/records/{rid}")),
        id: rid.clone(),
        org_name: rec.org_name.clone(),
        org_code: rec.org.clone(),
        rule: rec.rule.clone(),
        rule_title: rec.rule_title.clone(),
        clause,
        period_label: format::period_key(&t, &rec.period),
        person_name: rec.person_name.clone(),
        state: rec.state.clone(),
        state_label: state_label(&t, &rec.state),
        version: rec.version,
        meeting_like: kind.as_deref().is_some_and(super::is_meeting_like) || rec.meeting.is_some(),
        text: TextView::new(&t, rec.occurred_on, &rec.title, &rec.body, &rec.attendees, rec.meeting.clone()),
        attachments: files
            .iter()
            .map(|a| AttachmentItem {
                url: format!("/attachments/{}", a.id),
                inline_url: files::is_image(&a.media_type).then(|| format!("/attachments/{}?inline=1", a.id)),
                name: a.file_name.clone(),
                size_label: size_label(a.size),
                kind_label: kind_label(&t, &a.media_type),
            })
            .collect(),
        history: in_reading_order(&history).into_iter().map(|h| history_item(&t, tz, h)).collect(),
        versions: versions.iter().map(|v| version_item(&t, tz, &rid, v, rec.version)).collect(),
        duty_url: duty.map(|d| format!("/duties/{}", d.id)),
        due_label: last_day.map(|d| format::date(&t, d)),
        deadline_passed: rec.state == "submitted" && due_at.is_some_and(|d| user.now >= d),
        submitted_label: rec.submitted_at.map(|s| format::instant(&t, tz, s.to_utc())),
        returned,
        withdrawn_reason: rec.withdrawn_reason.clone(),
        notice,
        alert: extras.alert,
        edit_label,
        submit_label,
        may_withdraw: may_file && rec.state != "withdrawn",
        may_review,
        own_submission,
        comment: extras.comment,
        comment_error: extras.comment_error,
        reason: extras.reason,
        reason_error: extras.reason_error,
    };
    Ok(render_status(extras.status.unwrap_or(StatusCode::OK), &page))
}

async fn rule_kind(conn: &mut sqlx::PgConnection, rule_id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select record_kind from rule where id = $1").bind(rule_id).fetch_optional(conn).await
}

/// The clause of the rule's version that judges the record's period.
async fn rule_clause(conn: &mut sqlx::PgConnection, rec: &RecordView) -> sqlx::Result<String> {
    let period: Option<crate::domain::period::Period> = rec.period.parse().ok();
    let day = period.map(|p| p.first_day()).unwrap_or(rec.occurred_on);
    Ok(crate::db::rules::version_on(conn, rec.rule_id, day).await?.map(|v| v.clause).unwrap_or_default())
}

/// The history as people read it: steps taken in one go (one instant) in their natural
/// order — the text, then its files, then the submission — whatever order they were written.
fn in_reading_order(history: &[NamedHistoryEntry]) -> Vec<&NamedHistoryEntry> {
    let rank = |action: &str| match action {
        "record.draft" => 0,
        "record.redate" | "record.correct" => 1,
        "record.attach" | "record.detach" => 2,
        "record.submit" | "record.resubmit" => 3,
        _ => 4,
    };
    let mut out: Vec<&NamedHistoryEntry> = history.iter().collect();
    out.sort_by_key(|h| (h.at, rank(&h.action)));
    out
}

/// "张伟（zhangwei）": a person's name and login, as the record's history names them.
pub fn name_and_login(t: &Tr, name: Option<&str>, login: &str) -> String {
    match name {
        Some(name) if name != login => t.f2("records.name_login", name, login),
        _ => login.to_owned(),
    }
}

fn who(t: &Tr, h: &NamedHistoryEntry) -> String {
    name_and_login(t, h.actor_name.as_deref(), &h.actor)
}

fn history_item(t: &Tr, tz: chrono_tz::Tz, h: &NamedHistoryEntry) -> HistoryItem {
    let s = |k: &str| h.detail.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let (what, note, kind) = match h.action.as_str() {
        "record.draft" => (t.t("records.h_draft").to_owned(), None, "draft"),
        "record.submit" if s("state").as_deref() == Some("accepted") => {
            (t.t("records.h_submit_accepted").to_owned(), None, "accept")
        }
        "record.submit" => (t.t("records.h_submit").to_owned(), None, "submit"),
        "record.resubmit" if s("state").as_deref() == Some("accepted") => {
            (t.t("records.h_resubmit_accepted").to_owned(), None, "accept")
        }
        "record.resubmit" => (t.t("records.h_resubmit").to_owned(), None, "submit"),
        "record.accept" => (t.t("records.h_accept").to_owned(), s("comment").filter(|c| !c.is_empty()), "accept"),
        "record.return" => (t.t("records.h_return").to_owned(), s("comment"), "return"),
        "record.correct" => {
            let v = h.detail.get("version").and_then(|v| v.as_i64()).unwrap_or(0);
            (t.f1("records.h_correct", v), None, "edit")
        }
        "record.withdraw" => (t.t("records.h_withdraw").to_owned(), s("reason"), "withdraw"),
        "record.attach" => (t.f1("records.h_attach", s("file_name").unwrap_or_default()), None, "file"),
        "record.detach" => (t.f1("records.h_detach", s("file_name").unwrap_or_default()), None, "file"),
        "record.redate" => {
            let to = s("to").and_then(|d| d.parse().ok()).map(|d| format::date(t, d)).unwrap_or_default();
            (t.f1("records.h_redate", to), None, "edit")
        }
        other => (other.to_owned(), None, "other"),
    };
    HistoryItem { when: format::instant(t, tz, h.at), who: who(t, h), what, note, kind }
}

fn version_item(t: &Tr, tz: chrono_tz::Tz, id: &str, v: &VersionText, current: i32) -> VersionItem {
    VersionItem {
        n: v.version,
        url: format!("/records/{id}/versions/{}", v.version),
        who: name_and_login(t, Some(&v.author_name), &v.author),
        when: format::instant(t, tz, v.created_at),
        current: v.version == current,
    }
}

async fn version_page(
    State(app): State<App>,
    user: PageUser,
    Path((id, n)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let t = user.tr;
    let not_found = || PageError(AppError::not_found("version"), t.locale);
    let id = parse_id(&id).ok_or_else(not_found)?;
    let n: i32 = n.parse().ok().filter(|n| *n >= 1).ok_or_else(not_found)?;
    let tz = app.settings().tz;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let rec = guard::visible_record(&mut conn, &user.principal, id, tz).await.page(&user)?;
    let v = records::version_text(&mut conn, id, n).await.page(&user)?.ok_or_else(not_found)?;
    let kind = rule_kind(&mut conn, rec.rule_id).await.page(&user)?;
    drop(conn);
    let meeting = v.meeting_details();
    let page = VersionPage {
        t,
        layout: Layout::new(&user, "workbench", &format!("/records/{}/versions/{n}", rec.id)),
        id: rec.id.clone(),
        org_name: rec.org_name.clone(),
        rule_title: rec.rule_title.clone(),
        period_label: format::period_key(&t, &rec.period),
        n,
        current: rec.version,
        who: name_and_login(&t, Some(&v.author_name), &v.author),
        when: format::instant(&t, tz, v.created_at),
        meeting_like: kind.as_deref().is_some_and(super::is_meeting_like) || meeting.is_some(),
        text: TextView::new(&t, rec.occurred_on, &v.title, &v.body, &v.attendee_list(), meeting),
    };
    Ok(render_status(StatusCode::OK, &page))
}

// ---------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------

/// The record page again with a message, after an action was refused.
async fn refused(app: &App, user: &PageUser, id: &str, e: AppError, mut extras: Extras) -> Result<Response, PageError> {
    let t = user.tr;
    let (status, alert) = match &e {
        AppError::Conflict(_) => (StatusCode::CONFLICT, t.t("records.err_state_changed")),
        AppError::Forbidden(m) if m.contains("submitted") => (StatusCode::FORBIDDEN, t.t("records.err_own_submission")),
        AppError::Forbidden(_) => (StatusCode::FORBIDDEN, t.t("records.err_not_allowed")),
        AppError::BadInput { .. } => (StatusCode::UNPROCESSABLE_ENTITY, t.t("app.form_has_errors")),
        _ => return Err(PageError(e, t.locale)),
    };
    extras.status = Some(status);
    extras.alert = Some(alert.to_owned());
    let mut resp = show(app, user, id, None, extras).await?;
    crate::web::refusal::mark(&mut resp, &e);
    Ok(resp)
}

/// Whether the user may act on a record they can see (else a 403 to explain in place);
/// a record they cannot see is a 404 page.
async fn may_act(
    app: &App,
    user: &PageUser,
    id: i64,
    allowed: impl Fn(&crate::domain::access::Principal, &RecordView) -> bool,
) -> Result<Result<(), AppError>, PageError> {
    let mut conn = app.pool.acquire().await.page(user)?;
    let rec = guard::visible_record(&mut conn, &user.principal, id, app.settings().tz).await.page(user)?;
    Ok(if allowed(&user.principal, &rec) { Ok(()) } else { Err(AppError::forbidden("not allowed")) })
}

async fn submit_record(State(app): State<App>, user: PageUser, Path(id): Path<String>) -> Result<Response, PageError> {
    let rid = parse_id(&id).ok_or_else(|| PageError(AppError::not_found("record"), user.tr.locale))?;
    app.ensure_duties(user.now).await.page(&user)?;
    let mut tx = app.pool.begin().await.page(&user)?;
    let was = guard::visible_record(&mut tx, &user.principal, rid, app.settings().tz).await.page(&user)?;
    match records::submit(&mut tx, &actor(&app, &user), rid).await {
        Ok(rec) => {
            tx.commit().await.page(&user)?;
            let notice = match (was.state.as_str(), rec.state.as_str()) {
                (_, "accepted") => "accepted_directly",
                ("returned", _) => "resubmitted",
                _ => "submitted",
            };
            Ok(Redirect::to(&format!("/records/{rid}?notice={notice}")).into_response())
        }
        Err(e) => {
            drop(tx);
            refused(&app, &user, &id, e, Extras::default()).await
        }
    }
}

#[derive(Deserialize)]
struct WithdrawForm {
    #[serde(default)]
    reason: String,
}

async fn withdraw_record(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
    Form(form): Form<WithdrawForm>,
) -> Result<Response, PageError> {
    let t = user.tr;
    let rid = parse_id(&id).ok_or_else(|| PageError(AppError::not_found("record"), t.locale))?;
    let reason = form.reason.replace('\0', "");
    let mut extras = Extras { reason: reason.clone(), ..Extras::default() };
    if let Err(e) = may_act(&app, &user, rid, |p, rec| p.can_submit(&rec.org_path, rec.person_id)).await? {
        return refused(&app, &user, &id, e, extras).await;
    }
    let trimmed = reason.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 1000 {
        extras.reason_error = Some(
            if trimmed.is_empty() { t.t("records.err_reason_required") } else { t.t("records.err_reason_too_long") }
                .to_owned(),
        );
        extras.status = Some(StatusCode::UNPROCESSABLE_ENTITY);
        extras.alert = Some(t.t("app.form_has_errors").to_owned());
        return show(&app, &user, &id, None, extras).await;
    }
    app.ensure_duties(user.now).await.page(&user)?;
    let mut tx = app.pool.begin().await.page(&user)?;
    match records::withdraw(&mut tx, &actor(&app, &user), rid, trimmed).await {
        Ok(_) => {
            tx.commit().await.page(&user)?;
            Ok(Redirect::to(&format!("/records/{rid}?notice=withdrawn")).into_response())
        }
        Err(e) => {
            drop(tx);
            refused(&app, &user, &id, e, extras).await
        }
    }
}

#[derive(Deserialize)]
struct ReviewForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    comment: String,
}

async fn review_record(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
    Form(form): Form<ReviewForm>,
) -> Result<Response, PageError> {
    let t = user.tr;
    let rid = parse_id(&id).ok_or_else(|| PageError(AppError::not_found("record"), t.locale))?;
    let comment = form.comment.replace('\0', "");
    let mut extras = Extras { comment: comment.clone(), ..Extras::default() };
    if let Err(e) = may_act(&app, &user, rid, |p, rec| p.can_review(&rec.org_path)).await? {
        return refused(&app, &user, &id, e, extras).await;
    }
    let decision = match form.decision.as_str() {
        "accept" => Decision::Accept,
        "return" => Decision::Return,
        _ => return Err(PageError(AppError::bad_input("decision", "accept or return"), t.locale)),
    };
    let trimmed = comment.trim();
    let problem = match decision {
        Decision::Return if trimmed.is_empty() => Some(t.t("records.err_comment_required")),
        _ if trimmed.chars().count() > 2000 => Some(t.t("records.err_comment_too_long")),
        _ => None,
    };
    if let Some(p) = problem {
        extras.comment_error = Some(p.to_owned());
        extras.status = Some(StatusCode::UNPROCESSABLE_ENTITY);
        extras.alert = Some(t.t("app.form_has_errors").to_owned());
        return show(&app, &user, &id, None, extras).await;
    }
    app.ensure_duties(user.now).await.page(&user)?;
    let mut tx = app.pool.begin().await.page(&user)?;
    match records::review(&mut tx, &actor(&app, &user), rid, decision, trimmed).await {
        Ok(_) => {
            tx.commit().await.page(&user)?;
            let word = if decision == Decision::Accept { "accepted" } else { "returned" };
            Ok(Redirect::to(&format!("/review?notice={word}&record={rid}")).into_response())
        }
        Err(e) => {
            drop(tx);
            refused(&app, &user, &id, e, extras).await
        }
    }
}
