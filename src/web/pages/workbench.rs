//! The secretary's workbench (工作台): the current periods' duties of the user's
//! organisations, overdue first, each in the words a secretary uses, with its clause and
//! one button to record it; earlier years on request.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Router, http::Uri};
use chrono::{Datelike, Days};
use serde::Deserialize;

use super::{Layout, PageError, PageResultExt, render};
use crate::app::App;
use crate::db::duties::{self, DutyView, OpenRecord};
use crate::db::orgs::{self, Org};
use crate::domain::status::Status;
use crate::domain::time::local_date;
use crate::web::format;
use crate::web::i18n::Tr;
use crate::web::session::PageUser;

pub fn router() -> Router<App> {
    Router::new().route("/", get(workbench))
}

/// One duty as the workbench shows it.
pub struct WorkItem {
    pub status: Status,
    pub rule: String,
    pub title: String,
    pub clause: String,
    pub period: String,
    pub person_name: Option<String>,
    /// The state in a secretary's words: "已完成 1/2 次，还剩 3 个月".
    pub phrase: String,
    /// The last day to submit, written out.
    pub due_label: String,
    /// Where the record button leads, when the user may record it.
    pub record_url: Option<String>,
    /// The duty's page (its records and history).
    pub duty_url: String,
    /// A draft to continue, or a returned record to correct, with the superior's comment.
    pub open: Option<OpenRecord>,
}

pub struct OrgSection {
    pub code: String,
    pub name: String,
    pub is_member_only: bool,
    pub attention: Vec<WorkItem>,
    pub in_progress: Vec<WorkItem>,
    pub done: Vec<WorkItem>,
    pub overdue: usize,
    pub due_soon: usize,
}

#[derive(Template)]
#[template(path = "workbench/index.html")]
struct WorkbenchPage {
    t: Tr,
    layout: Layout,
    sections: Vec<OrgSection>,
    today_label: String,
    year: i32,
    current_year: i32,
    years: Vec<i32>,
    /// Whether the user has no organisation to record for (an admin, a coordinator).
    no_orgs: bool,
}

#[derive(Deserialize)]
struct WorkbenchQuery {
    year: Option<i32>,
}

async fn workbench(
    State(app): State<App>,
    user: PageUser,
    uri: Uri,
    Query(q): Query<WorkbenchQuery>,
) -> Result<Response, PageError> {
    let settings = app.settings();
    let t = user.tr;
    let current_year = user.today.year();
    let year = q.year.filter(|y| (current_year - 20..=current_year).contains(y)).unwrap_or(current_year);
    app.ensure_duties(user.now).await.page(&user)?;

    // The organisations the user records for: as secretary all their duties, as a
    // leadership member the duties that bind them.
    let targets = user.principal.record_targets();
    let mut conn = app.hot_reads.acquire().await.page(&user)?;
    let ids: Vec<i64> = targets.iter().map(|(id, _)| *id).collect();
    let org_list: Vec<Org> = orgs::by_ids(&mut conn, &ids).await.page(&user)?;
    let mut duties =
        duties::for_orgs_year(&mut conn, &app.catalog, &settings, &targets, year, user.now, true).await.page(&user)?;
    conn.release();

    let mut sections = Vec::new();
    for org in &org_list {
        let member_only = targets.iter().any(|(id, p)| *id == org.id && p.is_some());
        let mut section = OrgSection {
            code: org.code.clone(),
            name: org.name.clone(),
            is_member_only: member_only,
            attention: vec![],
            in_progress: vec![],
            done: vec![],
            overdue: 0,
            due_soon: 0,
        };
        let mine;
        (mine, duties) = duties.into_iter().partition(|d| d.org_id == org.id);
        for d in mine {
            let status = d.duty.status;
            let item = work_item(&t, settings.tz, &user, org, &d.duty, d.open);
            match status {
                Status::Overdue => {
                    section.overdue += 1;
                    section.attention.push(item);
                }
                Status::DueSoon => {
                    section.due_soon += 1;
                    section.attention.push(item);
                }
                // Only started periods have duties, so an open one is a current one.
                Status::Open | Status::Submitted => section.in_progress.push(item),
                Status::Fulfilled | Status::Late | Status::Waived | Status::Cancelled => section.done.push(item),
            }
        }
        sections.push(section);
    }
    let page = WorkbenchPage {
        t,
        layout: Layout::new(&user, "workbench", &uri.to_string()),
        no_orgs: sections.is_empty(),
        sections,
        today_label: format::date(&t, user.today),
        year,
        current_year,
        years: (current_year - 4..=current_year).rev().collect(),
    };
    Ok(render(&page))
}

fn work_item(
    t: &Tr,
    tz: chrono_tz::Tz,
    user: &PageUser,
    org: &Org,
    duty: &DutyView,
    open: Option<OpenRecord>,
) -> WorkItem {
    let due_day = local_date(tz, duty.due_at.to_utc());
    let last_day = due_day.checked_sub_days(Days::new(1)).unwrap_or(due_day);
    let progress =
        (duty.required > 1 || duty.accepted > 0).then(|| t.f2("workbench.done_of", duty.accepted, duty.required));
    let phrase = match duty.status {
        Status::Fulfilled => t.f2("workbench.done_of", duty.accepted.max(duty.required), duty.required),
        Status::Late => t.t("workbench.done_late").to_owned(),
        Status::Waived => t.t("status.waived").to_owned(),
        Status::Cancelled => t.t("workbench.cancelled").to_owned(),
        Status::Submitted if user.today >= due_day => {
            join(t, Some(t.t("status.submitted").to_owned()), t.t("time.deadline_passed").to_owned())
        }
        Status::Submitted => t.t("status.submitted").to_owned(),
        Status::Overdue => join(t, progress, format::overdue_by(t, user.today, last_day)),
        Status::DueSoon | Status::Open => join(t, progress, format::time_left(t, user.today, last_day)),
    };
    let may_record = user.principal.can_submit(&org.path, duty.person_id);
    let needs_more = matches!(duty.status, Status::Overdue | Status::DueSoon | Status::Open)
        || (duty.status == Status::Fulfilled && duty.accepted < duty.required);
    let mut record_url = format!("/orgs/{}/records/new?rule={}&period={}", org.code, duty.rule, duty.period);
    if let Some(p) = &duty.person {
        record_url.push_str(&format!("&person={p}"));
    }
    WorkItem {
        status: duty.status,
        rule: duty.rule.clone(),
        title: duty.title.clone(),
        clause: duty.clause.clone(),
        period: format::period_key(t, &duty.period),
        person_name: duty.person_name.clone(),
        phrase,
        due_label: format::date(t, last_day),
        record_url: (may_record && needs_more).then_some(record_url),
        duty_url: format!("/duties/{}", duty.id),
        open,
    }
}

/// "已完成 1/2 次，还剩 3 个月" / "1 of 2 done, 3 months left".
fn join(t: &Tr, first: Option<String>, second: String) -> String {
    match first {
        Some(f) => format!("{f}{}{second}", t.t("workbench.separator")),
        None => second,
    }
}
