//! The month calendar of deadlines (日历): each duty of the user's organisations on the
//! last day one can still submit for it, coloured by status; and the personal iCalendar
//! feed (`/feeds/{token}.ics`) that puts the same deadlines into the calendar a secretary
//! already uses (Outlook, WPS, a phone), behind a random token that can be revoked.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, body::Body};
use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{Layout, PageError, PageResultExt, error_page, local_path, render};
use crate::app::App;
use crate::db::duties::{self, DutyView};
use crate::db::orgs::{self, Org};
use crate::db::{audit, feeds, users};
use crate::domain::period::Period;
use crate::domain::status::Status;
use crate::domain::time::local_date;
use crate::web::format;
use crate::web::i18n::{Locale, Tr};
use crate::web::session::PageUser;

pub fn router() -> Router<App> {
    Router::new()
        .route("/calendar", get(month_calendar))
        .route("/calendar/feed", post(create_feed))
        .route("/calendar/feed/stop", post(stop_feed))
        .route("/feeds/{file}", get(calendar_feed))
}

/// Items a day cell lists before folding the rest away.
const CELL_ITEMS: usize = 3;
/// Hours of the morning, three days before the last day, at which the feed's reminder rings.
const ALARM_TRIGGER: &str = "-P2DT15H";

/// The last day one can still submit: the day before the local day of `due_at`
/// (a duty due at 2027-01-01 00:00 is due "on 31 December").
pub(crate) fn last_day(tz: chrono_tz::Tz, due_at: DateTime<Utc>) -> NaiveDate {
    let due_day = local_date(tz, due_at);
    due_day.checked_sub_days(Days::new(1)).unwrap_or(due_day)
}

/// A deadline on the calendar: a duty that exists, or the expected duty of a period that
/// has not started yet (projected from the current period's duty of the same rule).
struct Deadline<'a> {
    org: &'a Org,
    duty: &'a DutyView,
    last_day: NaiveDate,
    /// The period, when the deadline is projected rather than a duty's.
    expected: Option<Period>,
}

/// The duties of these organisations whose last day lies in `[from, until]`, and, for
/// days after today, the deadlines of periods still to start.
async fn deadlines_between(
    conn: &mut sqlx::PgConnection,
    app: &App,
    targets: &[(i64, Option<i64>)],
    from: NaiveDate,
    until: NaiveDate,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(i64, DutyView)>> {
    // Only started periods have duties, and a period's deadline comes after its start
    // (plus grace): the years from one before `from` up to this year hold them all.
    let mut out = Vec::new();
    if targets.is_empty() {
        return Ok(out);
    }
    let settings = app.settings();
    let last_year = until.year().min(today.year());
    for year in (from.year() - 1)..=last_year {
        out.extend(
            duties::for_orgs_year(conn, &app.catalog, &settings, targets, year, now, false)
                .await?
                .into_iter()
                .map(|d| (d.org_id, d.duty)),
        );
    }
    Ok(out)
}

/// Pick and order the deadlines in `[from, until]`: real duties, then the expected ones of
/// periods after the current one (shown only when `project` is set).
fn place<'a>(
    tz: chrono_tz::Tz,
    orgs: &'a [Org],
    duties: &'a [(i64, DutyView)],
    from: NaiveDate,
    until: NaiveDate,
    today: NaiveDate,
    project: bool,
) -> Vec<Deadline<'a>> {
    let mut out = Vec::new();
    for (org_id, duty) in duties {
        let Some(org) = orgs.iter().find(|o| o.id == *org_id) else { continue };
        let day = last_day(tz, duty.due_at.to_utc());
        if (from..=until).contains(&day) {
            out.push(Deadline { org, duty, last_day: day, expected: None });
        }
        // The current period's duty foretells the next ones, with the same grace, while the
        // organisation stays open; only up to the end of next year.
        let Ok(period) = duty.period.parse::<Period>() else { continue };
        if !project || !period.contains(today) || org.active_until.is_some() {
            continue;
        }
        let grace = day - period.last_day();
        let mut next = period.next();
        while next.first_day() <= until && next.year() <= today.year() + 1 {
            let day = next.last_day() + grace;
            if (from..=until).contains(&day) {
                out.push(Deadline { org, duty, last_day: day, expected: Some(next) });
            }
            next = next.next();
        }
    }
    out.sort_by_key(|d| (d.last_day, rank(d)));
    out
}

/// Most urgent first within a day.
fn rank(d: &Deadline<'_>) -> u8 {
    if d.expected.is_some() {
        return 4;
    }
    match d.duty.status {
        Status::Overdue => 0,
        Status::DueSoon => 1,
        Status::Open => 2,
        Status::Submitted => 3,
        Status::Late => 5,
        Status::Fulfilled => 6,
        Status::Waived => 7,
        Status::Cancelled => 8,
    }
}

/// One deadline as a day of the calendar lists it.
pub struct CalItem {
    /// The colour: a status, or `expected`.
    pub css: &'static str,
    pub status_label: &'static str,
    pub rule: String,
    pub title: String,
    pub org_name: Option<String>,
    pub person_name: Option<String>,
    pub period: String,
    /// The duty's page; none for a period that has not started.
    pub url: Option<String>,
}

impl CalItem {
    /// Everything about the item in one line, for the tooltip.
    pub fn hover(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if let Some(o) = &self.org_name {
            parts.push(o);
        }
        parts.push(&self.title);
        if let Some(p) = &self.person_name {
            parts.push(p);
        }
        parts.push(&self.period);
        parts.push(self.status_label);
        parts.join(" · ")
    }
}

pub struct CalDay {
    pub iso: String,
    pub day: u32,
    pub in_month: bool,
    pub is_today: bool,
    pub weekend: bool,
    /// "11月30日 周一", for the list view.
    pub label: String,
    pub items: Vec<CalItem>,
}

impl CalDay {
    /// The items a cell shows at once: all of them when only one more would be folded.
    fn shown(&self) -> usize {
        if self.items.len() <= CELL_ITEMS + 1 { self.items.len() } else { CELL_ITEMS }
    }

    pub fn first_items(&self) -> &[CalItem] {
        &self.items[..self.shown()]
    }

    pub fn more_items(&self) -> &[CalItem] {
        &self.items[self.shown()..]
    }
}

/// What the feed section says about the user's feed.
pub struct FeedInfo {
    pub created: String,
    pub last_used: Option<String>,
}

#[derive(Template)]
#[template(path = "calendar/month.html")]
struct MonthPage {
    t: Tr,
    layout: Layout,
    heading: String,
    month_param: String,
    weekdays: Vec<&'static str>,
    weeks: Vec<Vec<CalDay>>,
    prev_url: String,
    prev_label: String,
    next_url: String,
    next_label: String,
    /// A way back to this month, when another is shown.
    this_month_url: Option<String>,
    total: usize,
    overdue: usize,
    due_soon: usize,
    expected: usize,
    no_orgs: bool,
    legend: Vec<(&'static str, &'static str)>,
    feed: Option<FeedInfo>,
}

impl MonthPage {
    fn due_days(&self) -> Vec<&CalDay> {
        self.weeks.iter().flatten().filter(|d| d.in_month && !d.items.is_empty()).collect()
    }
}

#[derive(Deserialize)]
struct MonthQuery {
    month: Option<String>,
}

/// `2026-11` → 1 November 2026, within twenty years back and five ahead of today.
fn parse_month(s: &str, today: NaiveDate) -> Option<NaiveDate> {
    let (y, m) = s.trim().split_once('-')?;
    if y.len() != 4 || m.is_empty() || m.len() > 2 {
        return None;
    }
    let first = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1)?;
    (today.year() - 20..=today.year() + 5).contains(&first.year()).then_some(first)
}

fn month_key(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

fn month_label(t: &Tr, d: NaiveDate) -> String {
    match t.locale {
        Locale::Zh => format!("{}月", d.month()),
        Locale::En => {
            format::month(t, d.year(), d.month()).split(' ').next().unwrap_or_default().chars().take(3).collect()
        }
    }
}

const WEEKDAY_KEYS: [&str; 7] =
    ["calendar.mon", "calendar.tue", "calendar.wed", "calendar.thu", "calendar.fri", "calendar.sat", "calendar.sun"];

const WEEKDAY_LONG_KEYS: [&str; 7] = [
    "calendar.mon_long",
    "calendar.tue_long",
    "calendar.wed_long",
    "calendar.thu_long",
    "calendar.fri_long",
    "calendar.sat_long",
    "calendar.sun_long",
];

fn status_label(t: &Tr, status: Status) -> &'static str {
    t.t(&format!("status.{}", status.as_str()))
}

async fn month_calendar(
    State(app): State<App>,
    user: PageUser,
    uri: Uri,
    Query(q): Query<MonthQuery>,
) -> Result<Response, PageError> {
    let t = user.tr;
    let settings = app.settings();
    let today = user.today;
    let this_month = today.with_day(1).unwrap_or(today);
    let first = q.month.as_deref().and_then(|m| parse_month(m, today)).unwrap_or(this_month);
    let next_month = first + Months::new(1);
    let month_end = next_month.pred_opt().unwrap_or(first);
    let grid_start = first - Days::new(u64::from(first.weekday().num_days_from_monday()));
    let grid_end = month_end + Days::new(u64::from(6 - month_end.weekday().num_days_from_monday()));

    app.ensure_duties(user.now).await.page(&user)?;
    let targets = user.principal.record_targets();
    let mut conn = app.pool.acquire().await.page(&user)?;
    let ids: Vec<i64> = targets.iter().map(|(id, _)| *id).collect();
    let org_list = orgs::by_ids(&mut conn, &ids).await.page(&user)?;
    let duty_rows =
        deadlines_between(&mut conn, &app, &targets, first, month_end, today, user.now).await.page(&user)?;
    let feed = feeds::live_for_user(&mut conn, user.principal.user_id).await.page(&user)?;
    drop(conn);

    let placed = place(settings.tz, &org_list, &duty_rows, first, month_end, today, month_end > today);
    let several_orgs = org_list.len() > 1;
    let (mut overdue, mut due_soon, mut expected) = (0, 0, 0);
    let mut weeks: Vec<Vec<CalDay>> = Vec::new();
    let mut day = grid_start;
    while day <= grid_end {
        let in_month = day >= first && day <= month_end;
        let mut items = Vec::new();
        for d in placed.iter().filter(|d| d.last_day == day) {
            match (d.expected, d.duty.status) {
                (Some(_), _) => expected += 1,
                (None, Status::Overdue) => overdue += 1,
                (None, Status::DueSoon) => due_soon += 1,
                _ => {}
            }
            items.push(cal_item(&t, d, several_orgs));
        }
        let weekday = day.weekday().num_days_from_monday() as usize;
        let cell = CalDay {
            iso: day.format("%Y-%m-%d").to_string(),
            day: day.day(),
            in_month,
            is_today: day == today,
            weekend: weekday >= 5,
            label: t.f2("calendar.day_label", format::short_date(&t, day), t.t(WEEKDAY_LONG_KEYS[weekday])),
            items,
        };
        if weekday == 0 {
            weeks.push(Vec::with_capacity(7));
        }
        if let Some(w) = weeks.last_mut() {
            w.push(cell);
        }
        day = day + Days::new(1);
    }
    let prev = first - Months::new(1);
    let page = MonthPage {
        t,
        layout: Layout::new(&user, "calendar", &uri.to_string()),
        heading: format::month(&t, first.year(), first.month()),
        month_param: month_key(first),
        weekdays: WEEKDAY_KEYS.iter().map(|k| t.t(k)).collect(),
        weeks,
        prev_url: format!("/calendar?month={}", month_key(prev)),
        prev_label: month_label(&t, prev),
        next_url: format!("/calendar?month={}", month_key(next_month)),
        next_label: month_label(&t, next_month),
        this_month_url: (first != this_month).then(|| format!("/calendar?month={}", month_key(this_month))),
        total: placed.iter().filter(|d| d.expected.is_none()).count(),
        overdue,
        due_soon,
        expected,
        no_orgs: targets.is_empty(),
        legend: [Status::Overdue, Status::DueSoon, Status::Open, Status::Submitted, Status::Fulfilled, Status::Late]
            .iter()
            .map(|s| (s.as_str(), status_label(&t, *s)))
            .chain([("waived", t.t("calendar.legend_waived")), ("expected", t.t("calendar.expected"))])
            .collect(),
        feed: feed.map(|f| FeedInfo {
            created: format::date(&t, local_date(settings.tz, f.created_at)),
            last_used: f.last_used_at.map(|u| format::instant(&t, settings.tz, u)),
        }),
    };
    Ok(render(&page))
}

fn cal_item(t: &Tr, d: &Deadline<'_>, several_orgs: bool) -> CalItem {
    let (css, status_text, period, url) = match d.expected {
        Some(p) => ("expected", t.t("calendar.expected"), format::period(t, p), None),
        None => (
            d.duty.status.as_str(),
            status_label(t, d.duty.status),
            format::period_key(t, &d.duty.period),
            Some(format!("/duties/{}", d.duty.id)),
        ),
    };
    CalItem {
        css,
        status_label: status_text,
        rule: d.duty.rule.clone(),
        title: d.duty.title.clone(),
        org_name: several_orgs.then(|| d.org.name.clone()),
        person_name: d.duty.person_name.clone(),
        period,
        url,
    }
}

// ---- The feed: creating, stopping, serving ----

#[derive(Template)]
#[template(path = "calendar/feed_created.html")]
struct FeedCreatedPage {
    t: Tr,
    layout: Layout,
    url: String,
    /// The same address for programs that subscribe on a `webcal://` link.
    webcal: Option<String>,
    back: String,
}

#[derive(Deserialize)]
struct FeedForm {
    #[serde(default)]
    month: String,
}

fn back_to_calendar(month: &str, today: NaiveDate) -> String {
    match parse_month(month, today) {
        Some(m) => format!("/calendar?month={}#feed", month_key(m)),
        None => "/calendar#feed".to_owned(),
    }
}

/// Where the portal is reached: the configured public URL, else the host this request came
/// to (when it looks like a host name); `None` leaves the address relative.
fn site_base(app: &App, headers: &HeaderMap) -> Option<String> {
    if let Some(u) = app.config.public_url.as_deref().filter(|u| !u.is_empty()) {
        return Some(u.trim_end_matches('/').to_owned());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let plausible = !host.is_empty()
        && host.len() <= 255
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    plausible.then(|| format!("http://{host}"))
}

/// Create a new feed address (revoking the old one) and show it, once.
async fn create_feed(
    State(app): State<App>,
    user: PageUser,
    headers: HeaderMap,
    Form(form): Form<FeedForm>,
) -> Result<Response, PageError> {
    let mut tx = app.pool.begin().await.page(&user)?;
    let created = feeds::replace(&mut tx, user.principal.user_id, user.now).await.page(&user)?;
    audit::write(
        &mut tx,
        user.audit_entry(
            "calendar_feed.create",
            ("calendar_feed", created.id.to_string()),
            None,
            json!({"revoked": created.revoked}),
        ),
    )
    .await
    .page(&user)?;
    tx.commit().await.page(&user)?;
    let path = format!("/feeds/{}.ics", created.token);
    let (url, webcal) = match site_base(&app, &headers) {
        Some(base) => {
            let url = format!("{base}{path}");
            let webcal = url.split_once("://").map(|(_, rest)| format!("webcal://{rest}"));
            (url, webcal)
        }
        None => (path, None),
    };
    let page = FeedCreatedPage {
        t: user.tr,
        layout: Layout::new(&user, "calendar", "/calendar"),
        url,
        webcal,
        back: back_to_calendar(&form.month, user.today),
    };
    Ok(render(&page))
}

/// Stop the feed: its address stops working at once.
async fn stop_feed(State(app): State<App>, user: PageUser, Form(form): Form<FeedForm>) -> Result<Response, PageError> {
    let mut tx = app.pool.begin().await.page(&user)?;
    let revoked = feeds::revoke(&mut tx, user.principal.user_id, user.now).await.page(&user)?;
    for id in &revoked {
        audit::write(
            &mut tx,
            user.audit_entry("calendar_feed.revoke", ("calendar_feed", id.to_string()), None, json!({})),
        )
        .await
        .page(&user)?;
    }
    tx.commit().await.page(&user)?;
    Ok(Redirect::to(&local_path(Some(&back_to_calendar(&form.month, user.today)))).into_response())
}

/// `GET /feeds/{token}.ics`: the deadlines of the token's user as iCalendar, for calendar
/// programs (no session: the token is the credential). What it shows is what the user may
/// see today; a revoked or unknown token, or a disabled user, gets 404.
async fn calendar_feed(State(app): State<App>, Path(file): Path<String>) -> Response {
    let now = app.now();
    let today = app.today_at(now);
    let not_found = || error_page(StatusCode::NOT_FOUND, Locale::Zh);
    let Some(token) = file.strip_suffix(".ics") else { return not_found() };
    match feed_body(&app, token, now, today).await {
        Ok(Some(body)) => {
            let mut resp = Response::new(Body::from(body));
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/calendar; charset=utf-8"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline; filename=\"zerenzhi.ics\""));
            resp
        }
        Ok(None) => not_found(),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "serving a calendar feed failed");
            error_page(StatusCode::SERVICE_UNAVAILABLE, Locale::Zh)
        }
    }
}

async fn feed_body(app: &App, token: &str, now: DateTime<Utc>, today: NaiveDate) -> anyhow::Result<Option<String>> {
    let mut conn = app.pool.acquire().await?;
    let Some(feed) = feeds::find_by_token(&mut conn, token).await? else { return Ok(None) };
    let Some(user) = users::find_by_id(&mut conn, feed.user_id).await?.filter(|u| u.disabled_at.is_none()) else {
        return Ok(None);
    };
    drop(conn);
    app.ensure_duties(now).await?;
    let settings = app.settings();
    let mut conn = app.pool.acquire().await?;
    let principal = users::principal(&mut conn, &user, today).await?;
    let targets = principal.record_targets();
    let ids: Vec<i64> = targets.iter().map(|(id, _)| *id).collect();
    let org_list = orgs::by_ids(&mut conn, &ids).await?;
    // Last year's deadlines to next year's: what has started by today.
    let from = NaiveDate::from_ymd_opt(today.year() - 1, 1, 1).unwrap_or(today);
    let until = NaiveDate::from_ymd_opt(today.year() + 1, 12, 31).unwrap_or(today);
    let rows = deadlines_between(&mut conn, app, &targets, from, until, today, now).await?;
    feeds::touch(&mut conn, &feed, now).await?;
    drop(conn);

    let t = Tr::new(user.locale.as_deref().and_then(Locale::parse).unwrap_or_default());
    let placed = place(settings.tz, &org_list, &rows, from, until, today, false);
    let base = app.config.public_url.as_deref().map(|u| u.trim_end_matches('/').to_owned());
    let mut cal = ics::Calendar::new();
    cal.prop("PRODID", "-//zerenzhi//Responsibility Portal//ZH");
    cal.prop("VERSION", "2.0");
    cal.prop("CALSCALE", "GREGORIAN");
    cal.prop("METHOD", "PUBLISH");
    cal.text("X-WR-CALNAME", &t.f1("calendar.ics_name", &feed.owner_name));
    cal.text("X-WR-TIMEZONE", settings.tz.name());
    cal.prop("REFRESH-INTERVAL;VALUE=DURATION", "PT4H");
    cal.prop("X-PUBLISHED-TTL", "PT4H");
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    for d in &placed {
        let duty = d.duty;
        let status = duty.status;
        let mut summary = format!("[{}] {}", d.org.name, duty.title);
        if let Some(p) = &duty.person_name {
            summary.push_str(&format!(" · {p}"));
        }
        if matches!(status, Status::Fulfilled | Status::Late) {
            summary = format!("✓ {summary}");
        }
        let path = format!("/duties/{}", duty.id);
        let mut lines = vec![
            t.f1("calendar.ics_status", status_label(&t, status)),
            t.f1("calendar.ics_period", format::period_key(&t, &duty.period)),
            t.f1("calendar.ics_last_day", format::date(&t, d.last_day)),
            t.f1("calendar.ics_clause", &duty.clause),
        ];
        if let Some(p) = &duty.person_name {
            lines.push(t.f1("calendar.ics_person", p));
        }
        lines.push(match &base {
            Some(b) => t.f1("calendar.ics_open", format!("{b}{path}")),
            None => t.f1("calendar.ics_open_relative", &path),
        });
        cal.begin("VEVENT");
        cal.prop("UID", &format!("duty-{}@zerenzhi", duty.id));
        cal.prop("DTSTAMP", &stamp);
        cal.prop("DTSTART;VALUE=DATE", &d.last_day.format("%Y%m%d").to_string());
        cal.prop("DTEND;VALUE=DATE", &(d.last_day + Days::new(1)).format("%Y%m%d").to_string());
        cal.text("SUMMARY", &summary);
        cal.text("DESCRIPTION", &lines.join("\n"));
        if let Some(b) = &base {
            cal.prop("URL", &format!("{b}{path}"));
        }
        cal.prop("TRANSP", "TRANSPARENT");
        cal.prop(
            "STATUS",
            if matches!(status, Status::Waived | Status::Cancelled) { "CANCELLED" } else { "CONFIRMED" },
        );
        cal.text("CATEGORIES", status_label(&t, status));
        if matches!(status, Status::Open | Status::DueSoon) {
            cal.begin("VALARM");
            cal.prop("ACTION", "DISPLAY");
            cal.text("DESCRIPTION", &t.f1("calendar.ics_alarm", &summary));
            cal.prop("TRIGGER", ALARM_TRIGGER);
            cal.end("VALARM");
        }
        cal.end("VEVENT");
    }
    Ok(Some(cal.finish()))
}

/// Writing iCalendar (RFC 5545): CRLF line ends, lines folded at 75 octets without
/// splitting a character, and TEXT values escaped.
pub mod ics {
    /// Longest line, in octets, before folding.
    const MAX_OCTETS: usize = 75;

    pub struct Calendar {
        out: String,
        open: Vec<&'static str>,
    }

    impl Default for Calendar {
        fn default() -> Self {
            Calendar::new()
        }
    }

    impl Calendar {
        pub fn new() -> Calendar {
            let mut c = Calendar { out: String::new(), open: Vec::new() };
            c.begin("VCALENDAR");
            c
        }

        pub fn begin(&mut self, component: &'static str) {
            self.line(&format!("BEGIN:{component}"));
            self.open.push(component);
        }

        pub fn end(&mut self, component: &'static str) {
            debug_assert_eq!(self.open.last(), Some(&component));
            self.open.pop();
            self.line(&format!("END:{component}"));
        }

        /// A property whose value is written as it is (dates, codes, URIs).
        pub fn prop(&mut self, name: &str, value: &str) {
            let clean: String = value.chars().filter(|c| !c.is_control()).collect();
            self.line(&format!("{name}:{clean}"));
        }

        /// A property of type TEXT: escaped.
        pub fn text(&mut self, name: &str, value: &str) {
            self.line(&format!("{name}:{}", escape(value)));
        }

        pub fn finish(mut self) -> String {
            while let Some(c) = self.open.pop() {
                self.line(&format!("END:{c}"));
            }
            self.out
        }

        fn line(&mut self, line: &str) {
            fold_into(&mut self.out, line);
        }
    }

    /// Escape a TEXT value: backslash, semicolon, comma and line breaks.
    pub fn escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                ';' => out.push_str("\\;"),
                ',' => out.push_str("\\,"),
                '\n' => out.push_str("\\n"),
                c if c.is_control() => {}
                c => out.push(c),
            }
        }
        out
    }

    /// Append one content line, folded so that no physical line exceeds 75 octets (the
    /// leading space of a continuation counts), never inside a character, ending in CRLF.
    pub fn fold_into(out: &mut String, line: &str) {
        let mut used = 0;
        for c in line.chars() {
            let n = c.len_utf8();
            if used + n > MAX_OCTETS {
                out.push_str("\r\n ");
                used = 1;
            }
            out.push(c);
            used += n;
        }
        out.push_str("\r\n");
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn text_values_escape_the_characters_rfc_5545_reserves() {
            assert_eq!(escape("a,b;c\\d\ne\r"), "a\\,b\\;c\\\\d\\ne");
            assert_eq!(escape("第八条(三)，会议"), "第八条(三)，会议");
        }

        #[test]
        fn long_lines_fold_at_75_octets_without_splitting_a_character() {
            let title = "SUMMARY:".to_owned() + &"把意识形态工作作为民主生活会和述职报告的重要内容".repeat(3);
            let mut out = String::new();
            fold_into(&mut out, &title);
            assert!(out.ends_with("\r\n"));
            let lines: Vec<&str> = out.trim_end_matches("\r\n").split("\r\n").collect();
            assert!(lines.len() > 1);
            for (i, l) in lines.iter().enumerate() {
                assert!(l.len() <= 75, "line {i} has {} octets", l.len());
                assert_eq!(i > 0, l.starts_with(' '));
            }
            let unfolded = out.trim_end_matches("\r\n").replace("\r\n ", "");
            assert_eq!(unfolded, title);
        }

        #[test]
        fn a_calendar_closes_what_it_opened() {
            let mut c = Calendar::new();
            c.begin("VEVENT");
            c.prop("UID", "duty-1@zerenzhi");
            let s = c.finish();
            assert_eq!(s, "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:duty-1@zerenzhi\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_from_the_query_within_a_sane_range() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 26).unwrap();
        assert_eq!(parse_month("2026-11", today), NaiveDate::from_ymd_opt(2026, 11, 1));
        assert_eq!(parse_month("2027-1", today), NaiveDate::from_ymd_opt(2027, 1, 1));
        assert_eq!(parse_month("2026-13", today), None);
        assert_eq!(parse_month("99999-01", today), None);
        assert_eq!(parse_month("1900-01", today), None);
        assert_eq!(parse_month("2026", today), None);
        assert_eq!(parse_month("-", today), None);
    }

    #[test]
    fn a_duty_due_at_new_year_midnight_is_due_on_new_years_eve() {
        let tz: chrono_tz::Tz = "Asia/Shanghai".parse().unwrap();
        let due = crate::domain::time::local_midnight(tz, NaiveDate::from_ymd_opt(2027, 1, 1).unwrap());
        assert_eq!(last_day(tz, due), NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
    }
}
