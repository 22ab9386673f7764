//! The review queue (审核): records submitted by the child organisations of every
//! organisation where the user is secretary or coordinator, oldest first, with how long
//! each has waited and whether its deadline has passed (a slow review makes no one late).
//! Admins review the records of root organisations, and may look at everything waiting.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::parse_id;
use crate::app::App;
use crate::db::records::{self, RecordView};
use crate::domain::access::Role;
use crate::domain::time::local_date;
use crate::web::format;
use crate::web::guard;
use crate::web::i18n::Tr;
use crate::web::pages::{Layout, PageError, PageResultExt, render_status};
use crate::web::session::PageUser;

/// The most records the queue shows at once (the oldest).
const QUEUE_LIMIT: i64 = 200;

pub fn router() -> Router<App> {
    Router::new().route("/review", get(review_queue))
}

pub struct QueueRow {
    pub id: String,
    pub url: String,
    pub org_name: String,
    pub org_code: String,
    pub rule: String,
    pub rule_title: String,
    pub period_label: String,
    pub title: String,
    pub submitted_label: String,
    pub submitted_by: String,
    pub days_waiting: i64,
    pub deadline_label: Option<String>,
    pub deadline_passed: bool,
    pub own: bool,
}

#[derive(Template)]
#[template(path = "review/queue.html")]
struct QueuePage {
    t: Tr,
    layout: Layout,
    rows: Vec<QueueRow>,
    notice: Option<String>,
    is_admin: bool,
    scope: &'static str,
    truncated: bool,
    reviews_anything: bool,
}

#[derive(Deserialize)]
struct QueueQuery {
    scope: Option<String>,
    notice: Option<String>,
    record: Option<String>,
}

async fn review_queue(
    State(app): State<App>,
    user: PageUser,
    Query(q): Query<QueueQuery>,
) -> Result<Response, PageError> {
    let t = user.tr;
    let tz = app.settings().tz;
    let p = &user.principal;
    let parents: Vec<i64> = p
        .grants
        .iter()
        .filter(|g| matches!(g.role, Role::Secretary | Role::Coordinator))
        .filter_map(|g| g.org_path.last().copied())
        .collect();
    let scope: &'static str = match q.scope.as_deref() {
        Some("all") if p.is_admin => "all",
        _ => "mine",
    };
    let mut conn = app.pool.acquire().await.page(&user)?;
    let mut recs: Vec<RecordView> = Vec::new();
    if scope == "all" {
        recs = records::awaiting_review(&mut conn, None, QUEUE_LIMIT, tz).await.page(&user)?;
    } else {
        if !parents.is_empty() {
            recs = records::awaiting_review(&mut conn, Some(&parents), QUEUE_LIMIT, tz).await.page(&user)?;
        }
        if p.is_admin {
            let roots = records::awaiting_review_roots(&mut conn, QUEUE_LIMIT, tz).await.page(&user)?;
            // Roots have no parent, so these never repeat the children's records above.
            recs.extend(roots);
            recs.sort_by_key(|r| (r.submitted_at, r.id.parse::<i64>().unwrap_or(0)));
            recs.truncate(QUEUE_LIMIT as usize);
        }
    }
    let keys: Vec<(i64, String)> = recs.iter().map(|r| (r.rule_id, r.period.clone())).collect();
    let due = records::due_dates(&mut conn, &keys).await.page(&user)?;
    let mut submitters: Vec<i64> = recs.iter().filter_map(|r| r.submitted_by_id).collect();
    submitters.sort_unstable();
    submitters.dedup();
    let names = records::user_names(&mut conn, &submitters).await.page(&user)?;
    let notice = match (q.notice.as_deref(), q.record.as_deref().and_then(parse_id)) {
        (Some(word @ ("accepted" | "returned")), Some(id)) => match guard::visible_record(&mut conn, p, id, tz).await {
            Ok(r) => Some(t.f2(
                if word == "accepted" { "review.notice_accepted" } else { "review.notice_returned" },
                &r.title,
                &r.org_name,
            )),
            Err(_) => None,
        },
        _ => None,
    };
    drop(conn);

    let rows = recs
        .iter()
        .map(|r| {
            let submitted = r.submitted_at.map(|s| s.to_utc()).unwrap_or(user.now);
            let due_at = due.get(&(r.rule_id, r.period.clone())).copied();
            let last_day = due_at.map(|d| {
                let day = local_date(tz, d);
                day.pred_opt().unwrap_or(day)
            });
            QueueRow {
                id: r.id.clone(),
                url: format!("/records/{}", r.id),
                org_name: r.org_name.clone(),
                org_code: r.org.clone(),
                rule: r.rule.clone(),
                rule_title: r.rule_title.clone(),
                period_label: format::period_key(&t, &r.period),
                title: r.title.clone(),
                submitted_label: format::instant(&t, tz, submitted),
                submitted_by: super::show::name_and_login(
                    &t,
                    r.submitted_by_id.and_then(|id| names.get(&id)).map(String::as_str),
                    r.submitted_by.as_deref().unwrap_or_default(),
                ),
                days_waiting: (user.today - local_date(tz, submitted)).num_days().max(0),
                deadline_label: last_day.map(|d| format::date(&t, d)),
                deadline_passed: due_at.is_some_and(|d| user.now >= d),
                own: r.submitted_by_id == Some(p.user_id) && !p.is_admin,
            }
        })
        .collect::<Vec<_>>();
    let page = QueuePage {
        t,
        layout: Layout::new(&user, "review", "/review"),
        truncated: rows.len() as i64 >= QUEUE_LIMIT,
        rows,
        notice,
        is_admin: p.is_admin,
        scope,
        reviews_anything: p.is_admin || !parents.is_empty(),
    };
    Ok(render_status(StatusCode::OK, &page))
}
