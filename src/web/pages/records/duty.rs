//! The duty page: one organisation's duty for one rule and period — what the rule asks,
//! by when, how far it is done, the records filed for it, and the button to record one.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use super::{parse_id, state_label};
use crate::app::App;
use crate::db::duties;
use crate::db::records;
use crate::domain::status::Status;
use crate::domain::time::local_date;
use crate::error::AppError;
use crate::web::format;
use crate::web::guard;
use crate::web::i18n::Tr;
use crate::web::pages::{Layout, PageError, PageResultExt, render_status};
use crate::web::session::PageUser;

pub fn router() -> Router<App> {
    Router::new().route("/duties/{id}", get(duty_page))
}

pub struct DutyRecord {
    pub url: String,
    pub title: String,
    pub state: String,
    pub state_label: &'static str,
    pub occurred_label: String,
    pub submitted_label: Option<String>,
    pub counts: bool,
}

#[derive(Template)]
#[template(path = "records/duty.html")]
struct DutyPage {
    t: Tr,
    layout: Layout,
    org_name: String,
    org_code: String,
    rule: String,
    title: String,
    clause: String,
    period_label: String,
    person_name: Option<String>,
    status: Status,
    phrase: String,
    due_label: String,
    required: i32,
    accepted: i32,
    pending: i32,
    needs_review: bool,
    records: Vec<DutyRecord>,
    record_url: Option<String>,
    /// An admin may waive an unfinished duty from here.
    waive_url: Option<String>,
}

async fn duty_page(State(app): State<App>, user: PageUser, Path(id): Path<String>) -> Result<Response, PageError> {
    let t = user.tr;
    let not_found = || PageError(AppError::not_found("duty"), t.locale);
    let id = parse_id(&id).ok_or_else(not_found)?;
    app.ensure_duties(user.now).await.page(&user)?;
    let settings = app.settings();
    let tz = settings.tz;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let found = records::find_duty_ref(&mut conn, id).await.page(&user)?.ok_or_else(not_found)?;
    let org = guard::visible_org_id(&mut conn, &user.principal, found.org_id).await.page(&user)?;
    let duty = duties::for_org_period(&mut conn, &app.catalog, &settings, org.id, &found.period_key, user.now)
        .await
        .page(&user)?
        .into_iter()
        .find(|d| d.id == id.to_string())
        .ok_or_else(not_found)?;
    let recs = records::for_duty(&mut conn, org.id, found.rule_id, found.person_id, &found.period_key, tz)
        .await
        .page(&user)?;
    drop(conn);

    let due_day = local_date(tz, duty.due_at.to_utc());
    let last_day = due_day.pred_opt().unwrap_or(due_day);
    let phrase = match duty.status {
        Status::Fulfilled => t.t("records.duty_fulfilled").to_owned(),
        Status::Late => t.t("workbench.done_late").to_owned(),
        Status::Waived => t.t("records.duty_waived").to_owned(),
        Status::Cancelled => t.t("workbench.cancelled").to_owned(),
        Status::Submitted if user.today >= due_day => {
            format!("{}{}{}", t.t("status.submitted"), t.t("workbench.separator"), t.t("time.deadline_passed"))
        }
        Status::Submitted => t.t("status.submitted").to_owned(),
        Status::Overdue => format::overdue_by(&t, user.today, last_day),
        Status::DueSoon | Status::Open => format::time_left(&t, user.today, last_day),
    };
    let may_record = user.principal.can_submit(&org.path, duty.person_id)
        && !matches!(duty.status, Status::Waived | Status::Cancelled);
    let mut record_url = format!("/orgs/{}/records/new?rule={}&period={}", org.code, duty.rule, duty.period);
    if let Some(p) = &duty.person {
        record_url.push_str(&format!("&person={p}"));
    }
    let page = DutyPage {
        t,
        layout: Layout::new(&user, "workbench", &format!("/duties/{id}")),
        org_name: org.name.clone(),
        org_code: org.code.clone(),
        rule: duty.rule.clone(),
        title: duty.title.clone(),
        clause: duty.clause.clone(),
        period_label: format::period_key(&t, &duty.period),
        person_name: duty.person_name.clone(),
        status: duty.status,
        phrase,
        due_label: format::date(&t, last_day),
        required: duty.required,
        accepted: duty.accepted,
        pending: duty.pending,
        needs_review: duty.needs_review,
        waive_url: (user.principal.is_admin && (duty.status.is_unfinished() || duty.status == Status::Submitted))
            .then(|| format!("/admin/duties/{id}/waive")),
        records: recs
            .iter()
            .map(|r| DutyRecord {
                url: format!("/records/{}", r.id),
                title: r.title.clone(),
                state: r.state.clone(),
                state_label: state_label(&t, &r.state),
                occurred_label: format::date(&t, r.occurred_on),
                submitted_label: r.submitted_at.map(|s| format::instant(&t, tz, s.to_utc())),
                counts: r.state == "accepted",
            })
            .collect(),
        record_url: may_record.then_some(record_url),
    };
    Ok(render_status(StatusCode::OK, &page))
}
