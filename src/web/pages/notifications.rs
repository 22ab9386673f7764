//! The user's notifications (通知): the scheduler's `due_soon` and `overdue` events, newest
//! first, each said in a sentence, the unread ones marked. Opening one marks it read and
//! leads to its duty; "mark all as read" clears the count in the top bar.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use sqlx::PgConnection;

use super::{Layout, PageError, PageResultExt, error_page, render};
use crate::app::App;
use crate::db::notifications::{self, NotificationView};
use crate::db::orgs;
use crate::web::format;
use crate::web::i18n::Tr;
use crate::web::pages::calendar::last_day;
use crate::web::session::PageUser;

pub fn router() -> Router<App> {
    Router::new()
        .route("/notifications", get(list_notifications))
        .route("/notifications/read-all", post(mark_all_read))
        .route("/notifications/{event_id}/read", post(open_notification))
}

const PER_PAGE: i64 = 50;
/// Pages beyond this are refused as empty rather than counted.
const MAX_PAGE: i64 = 10_000;

/// One notification as the list shows it.
pub struct NoticeItem {
    pub event_id: i64,
    /// `due_soon` or `overdue`.
    pub kind: String,
    pub kind_label: &'static str,
    pub unread: bool,
    /// What happened, in a sentence.
    pub sentence: String,
    pub rule: String,
    pub when: String,
    pub duty_url: String,
}

#[derive(Template)]
#[template(path = "notifications/index.html")]
struct NotificationsPage {
    t: Tr,
    layout: Layout,
    items: Vec<NoticeItem>,
    unread: i64,
    prev_url: Option<String>,
    next_url: Option<String>,
    page: i64,
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<String>,
}

async fn list_notifications(
    State(app): State<App>,
    user: PageUser,
    uri: Uri,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let t = user.tr;
    let tz = app.settings().tz;
    let page = q.page.as_deref().and_then(|p| p.trim().parse::<i64>().ok()).unwrap_or(1).clamp(1, MAX_PAGE);
    let mut conn = app.pool.acquire().await.page(&user)?;
    let mut rows = notifications::for_user(&mut conn, user.principal.user_id, PER_PAGE + 1, (page - 1) * PER_PAGE)
        .await
        .page(&user)?;
    // The organisations the user holds a role on: a notification about any other is about
    // one below them (an overdue duty told to the parent's secretaries).
    let own_ids: Vec<i64> = user.principal.grants.iter().filter_map(|g| g.org_path.last().copied()).collect();
    let own_codes: Vec<String> =
        orgs::by_ids(&mut conn, &own_ids).await.page(&user)?.into_iter().map(|o| o.code).collect();
    drop(conn);
    let has_more = rows.len() as i64 > PER_PAGE;
    rows.truncate(PER_PAGE as usize);
    let items = rows
        .iter()
        .map(|n| {
            let about_child = !own_codes.contains(&n.org_code);
            NoticeItem {
                event_id: n.event_id,
                kind: n.kind.clone(),
                kind_label: t.t(if n.kind == "overdue" {
                    "notifications.kind_overdue"
                } else {
                    "notifications.kind_due_soon"
                }),
                unread: n.read_at.is_none(),
                sentence: sentence(&t, tz, user.today, n, about_child),
                rule: n.rule.clone(),
                when: format::instant(&t, tz, n.created_at),
                duty_url: format!("/duties/{}", n.duty_id),
            }
        })
        .collect();
    let page_url = |p: i64| if p == 1 { "/notifications".to_owned() } else { format!("/notifications?page={p}") };
    let view = NotificationsPage {
        t,
        layout: Layout::new(&user, "notifications", &uri.to_string()),
        items,
        unread: user.unread,
        prev_url: (page > 1).then(|| page_url(page - 1)),
        next_url: has_more.then(|| page_url(page + 1)),
        page,
    };
    Ok(render(&view))
}

/// "第一党支部「召开意识形态分析研判会」2026年第三季度将于 9月30日 截止".
fn sentence(t: &Tr, tz: chrono_tz::Tz, today: NaiveDate, n: &NotificationView, about_child: bool) -> String {
    let day = last_day(tz, n.due_at);
    let day_label = if day.year() == today.year() { format::short_date(t, day) } else { format::date(t, day) };
    let period = format::period_key(t, &n.period_key);
    let key = match (n.kind.as_str(), about_child) {
        ("overdue", true) => "notifications.overdue_child",
        ("overdue", false) => "notifications.overdue",
        (_, true) => "notifications.due_soon_child",
        _ => "notifications.due_soon",
    };
    t.f3(key, &n.org_name, &n.title, period).replace("{3}", &day_label)
}

/// The duty a notification of this user's is about; `None` when the event is not theirs.
// A read of the notification aggregate: belongs in src/db/notifications.rs.
async fn duty_of(conn: &mut PgConnection, user_id: i64, event_id: i64) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "select e.duty_id from notification n join notification_event e on e.id = n.event_id
         where n.user_id = $1 and n.event_id = $2",
    )
    .bind(user_id)
    .bind(event_id)
    .fetch_optional(conn)
    .await
}

/// Mark one notification read and open its duty; someone else's is not found.
async fn open_notification(
    State(app): State<App>,
    user: PageUser,
    Path(event_id): Path<String>,
) -> Result<Response, PageError> {
    let not_found = || error_page(StatusCode::NOT_FOUND, user.tr.locale);
    let Ok(event_id) = event_id.parse::<i64>() else { return Ok(not_found()) };
    let mut conn = app.pool.acquire().await.page(&user)?;
    let Some(duty_id) = duty_of(&mut conn, user.principal.user_id, event_id).await.page(&user)? else {
        return Ok(not_found());
    };
    notifications::mark_read(&mut conn, user.principal.user_id, Some(event_id), user.now).await.page(&user)?;
    Ok(Redirect::to(&format!("/duties/{duty_id}")).into_response())
}

async fn mark_all_read(State(app): State<App>, user: PageUser) -> Result<Response, PageError> {
    let mut conn = app.pool.acquire().await.page(&user)?;
    notifications::mark_read(&mut conn, user.principal.user_id, None, user.now).await.page(&user)?;
    Ok(Redirect::to("/notifications").into_response())
}
