//! The subtree overview (下级概况) for superiors, coordinators and inspectors: for one
//! organisation and one period, its totals by status, each child's counts over the
//! child's own subtree (sortable, with a drill-down), the overdue duties of the whole
//! subtree, a heat map of the children by period and the completion trend by quarter.
//!
//! Every count comes from the maintained per-subtree totals (`subtree_total`), so the page
//! costs the same few indexed queries for a branch and for the root of a large tree; the
//! counts are kept between views ([`CountsCache`](crate::db::overview::CountsCache)) until
//! something changes them.

mod charts;

use std::cmp::Ordering;

use askama::Template;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{Datelike, Days};

use super::{Layout, PageError, PageResultExt, render, render_status};
use crate::app::App;
use crate::db::duties::StatusCounts;
use crate::db::overview::{self, OrgEntry, OverdueDuty};
use crate::domain::period::{Cadence, Period};
use crate::domain::status::Status;
use crate::domain::time::local_date;
use crate::web::format;
use crate::web::guard;
use crate::web::i18n::{Locale, Tr};
use crate::web::session::PageUser;
use charts::{HeatInput, HeatMap, HeatRowInput, Trend, TrendInput};

pub fn router() -> Router<App> {
    Router::new().route("/subtree", get(subtree_start)).route("/subtree/{code}", get(subtree_page))
}

/// Children listed in the table; a larger family is cut with a note.
const CHILD_LIMIT: i64 = 500;
/// Rows of the heat map; with more children, the ones furthest behind.
const HEAT_ROWS: usize = 40;
/// Overdue duties listed.
const OVERDUE_LIMIT: i64 = 100;
/// Roots offered on the chooser.
const ROOT_LIMIT: i64 = 200;

/// The columns of counts, in the order a superior reads them: what is behind first.
const COUNT_COLUMNS: [Status; 8] = [
    Status::Overdue,
    Status::DueSoon,
    Status::Open,
    Status::Submitted,
    Status::Fulfilled,
    Status::Late,
    Status::Waived,
    Status::Cancelled,
];

// ---------------------------------------------------------------------------------------
// The query string

/// What the query string asks for, read leniently: unknown keys are ignored, the first of
/// a repeated key wins.
#[derive(Debug, Default)]
struct Ask {
    period: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    grain: Option<String>,
}

impl Ask {
    fn parse(raw: Option<&str>) -> Ask {
        let pairs: Vec<(String, String)> = raw.and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
        let first = |name: &str| {
            pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).filter(|v| !v.is_empty())
        };
        Ask { period: first("period"), sort: first("sort"), dir: first("dir"), grain: first("grain") }
    }
}

/// A column the children can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Name,
    Code,
    Kind,
    Completion,
    Total,
    Count(Status),
}

impl SortKey {
    fn parse(s: &str) -> Option<SortKey> {
        Some(match s {
            "name" => SortKey::Name,
            "code" => SortKey::Code,
            "kind" => SortKey::Kind,
            "completion" => SortKey::Completion,
            "total" => SortKey::Total,
            other => SortKey::Count(other.parse().ok()?),
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::Code => "code",
            SortKey::Kind => "kind",
            SortKey::Completion => "completion",
            SortKey::Total => "total",
            SortKey::Count(s) => s.as_str(),
        }
    }

    /// The direction a first click sorts in: the worst first for figures, A to Z for words.
    fn first_dir(self) -> Dir {
        match self {
            SortKey::Name | SortKey::Code | SortKey::Kind | SortKey::Completion => Dir::Asc,
            SortKey::Total | SortKey::Count(_) => Dir::Desc,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Asc,
    Desc,
}

impl Dir {
    fn as_str(self) -> &'static str {
        match self {
            Dir::Asc => "asc",
            Dir::Desc => "desc",
        }
    }

    fn flip(self) -> Dir {
        match self {
            Dir::Asc => Dir::Desc,
            Dir::Desc => Dir::Asc,
        }
    }
}

/// The granularity of the heat map's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grain {
    Half,
    Quarter,
    Month,
}

impl Grain {
    fn parse(s: &str) -> Option<Grain> {
        match s {
            "half" => Some(Grain::Half),
            "quarter" => Some(Grain::Quarter),
            "month" => Some(Grain::Month),
            _ => None,
        }
    }

    /// The grain a period suggests: its own cadence, quarters for a year.
    fn of(period: Period) -> Grain {
        match period.cadence() {
            Cadence::Half => Grain::Half,
            Cadence::Month => Grain::Month,
            Cadence::Year | Cadence::Quarter => Grain::Quarter,
        }
    }

    fn cadence(self) -> Cadence {
        match self {
            Grain::Half => Cadence::Half,
            Grain::Quarter => Cadence::Quarter,
            Grain::Month => Cadence::Month,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Grain::Half => "half",
            Grain::Quarter => "quarter",
            Grain::Month => "month",
        }
    }
}

/// Where the page is, for building links that change one thing.
#[derive(Debug, Clone)]
struct Here {
    code: String,
    period: String,
    sort: SortKey,
    dir: Dir,
    grain: Grain,
    /// Whether the grain was asked for (else it follows the period).
    grain_asked: bool,
}

impl Here {
    fn url_with(&self, code: &str, period: &str, sort: SortKey, dir: Dir, grain: Option<Grain>) -> String {
        let mut url = format!("/subtree/{code}?period={period}");
        if sort != SortKey::Code || dir != Dir::Asc {
            url.push_str(&format!("&sort={}&dir={}", sort.as_str(), dir.as_str()));
        }
        if let Some(g) = grain {
            url.push_str(&format!("&grain={}", g.as_str()));
        }
        url
    }

    /// Another period here, keeping the sort and grain.
    fn with_period(&self, period: &str) -> String {
        self.url_with(&self.code, period, self.sort, self.dir, self.grain_asked.then_some(self.grain))
    }

    /// Another organisation (drill-down), same period and sort.
    fn at(&self, code: &str, period: &str) -> String {
        self.url_with(code, period, self.sort, self.dir, self.grain_asked.then_some(self.grain))
    }

    fn sorted(&self, key: SortKey) -> String {
        let dir = if key == self.sort { self.dir.flip() } else { key.first_dir() };
        self.url_with(&self.code, &self.period, key, dir, self.grain_asked.then_some(self.grain))
    }

    fn sorted_as(&self, key: SortKey, dir: Dir) -> String {
        self.url_with(&self.code, &self.period, key, dir, self.grain_asked.then_some(self.grain))
    }

    fn grained(&self, grain: Grain) -> String {
        self.url_with(&self.code, &self.period, self.sort, self.dir, Some(grain))
    }
}

// ---------------------------------------------------------------------------------------
// What the template shows

struct Crumb {
    name: String,
    url: String,
}

struct PeriodOption {
    key: String,
    label: String,
    selected: bool,
}

struct PeriodGroup {
    label: &'static str,
    options: Vec<PeriodOption>,
}

struct Tab {
    label: String,
    url: String,
    current: bool,
}

struct StatusTile {
    status: &'static str,
    count: i64,
}

struct Header {
    label: &'static str,
    url: String,
    /// `ascending` / `descending` when the table is sorted by this column.
    aria_sort: Option<&'static str>,
    arrow: &'static str,
    numeric: bool,
    class: &'static str,
}

struct NumCell {
    value: i64,
    class: &'static str,
}

struct CompletionCell {
    label: String,
    class: &'static str,
    /// The bar's length in the 60-pixel track.
    bar: u32,
}

struct ChildRow {
    name: String,
    code: String,
    kind: String,
    /// "已撤销（2026年5月20日）" for a closed organisation.
    closed: Option<String>,
    /// The drill-down; `None` for the row of the organisation's own duties.
    url: Option<String>,
    cells: Vec<NumCell>,
    total: i64,
    completion: CompletionCell,
    behind: bool,
    counts: StatusCounts,
}

struct OverdueRow {
    org_name: String,
    org_code: String,
    org_url: String,
    rule: String,
    title: String,
    person: Option<String>,
    due: String,
    overdue_by: String,
    duty_url: String,
}

struct TrendRow {
    label: String,
    current: String,
    previous: String,
}

#[derive(Template)]
#[template(path = "subtree/index.html")]
struct SubtreePage {
    t: Tr,
    layout: Layout,
    org_name: String,
    org_code: String,
    org_kind: String,
    org_closed: Option<String>,
    crumbs: Vec<Crumb>,
    period_label: String,
    period_error: Option<String>,
    /// The period has not started, or nothing of it exists: a line says so.
    period_note: Option<String>,
    years: Vec<Tab>,
    period_groups: Vec<PeriodGroup>,
    sort: &'static str,
    dir: &'static str,
    grain: Option<&'static str>,
    tiles: Vec<StatusTile>,
    total: i64,
    completion: CompletionCell,
    completion_detail: String,
    headers: Vec<Header>,
    own_row: Option<ChildRow>,
    rows: Vec<ChildRow>,
    totals_row: ChildRow,
    children_cut: bool,
    sort_overdue_url: String,
    sort_completion_url: String,
    overdue: Vec<OverdueRow>,
    overdue_total: i64,
    heat: HeatMap,
    heat_note: Option<String>,
    heat_is_self: bool,
    grains: Vec<Tab>,
    trend: Trend,
    trend_rows: Vec<TrendRow>,
    trend_by_half: bool,
    this_year: String,
    last_year: String,
    scale: Vec<(&'static str, String)>,
}

struct RootChoice {
    name: String,
    code: String,
    kind: String,
    url: String,
    overdue: i64,
    completion: CompletionCell,
}

#[derive(Template)]
#[template(path = "subtree/start.html")]
struct StartPage {
    t: Tr,
    layout: Layout,
    period_label: String,
    roots: Vec<RootChoice>,
}

// ---------------------------------------------------------------------------------------
// Handlers

/// `/subtree`: straight to the one organisation whose subtree the user sees, or a short
/// chooser when there are several (an admin: the roots of the tree).
async fn subtree_start(State(app): State<App>, user: PageUser, uri: Uri) -> Result<Response, PageError> {
    app.ensure_duties(user.now).await.page(&user)?;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let roots = match user.principal.visible_roots() {
        None => overview::roots(&mut conn, ROOT_LIMIT).await.page(&user)?,
        Some(paths) => {
            let ids: Vec<i64> = paths
                .iter()
                .filter(|p| guard::sees_subtree(&user.principal, p))
                .filter_map(|p| p.last().copied())
                .collect();
            overview::lineage(&mut conn, &ids).await.page(&user)?
        }
    };
    if let [only] = roots.as_slice() {
        return Ok(Redirect::to(&format!("/subtree/{}", only.code)).into_response());
    }
    let t = user.tr;
    let period = Period::containing(Cadence::Quarter, user.today);
    let key = period.to_string();
    let ids: Vec<i64> = roots.iter().map(|r| r.id).collect();
    let counts = app.counts.counts(&mut conn, &ids, std::slice::from_ref(&key), user.now).await.page(&user)?;
    drop(conn);
    let choices = roots
        .iter()
        .map(|r| {
            let c = counts.get(&(r.id, key.clone())).cloned().unwrap_or_default();
            RootChoice {
                name: r.name.clone(),
                code: r.code.clone(),
                kind: kind_name(&t, r),
                url: format!("/subtree/{}", r.code),
                overdue: c.overdue,
                completion: completion_cell(&c),
            }
        })
        .collect();
    let page = StartPage {
        t,
        layout: Layout::new(&user, "subtree", &uri.to_string()),
        period_label: format::period(&t, period),
        roots: choices,
    };
    Ok(render(&page))
}

/// `/subtree/{code}?period=KEY&sort=…&dir=…&grain=…`: the overview of one organisation.
async fn subtree_page(
    State(app): State<App>,
    user: PageUser,
    uri: Uri,
    Path(code): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let t = user.tr;
    let tz = app.settings().tz;
    let ask = Ask::parse(raw.as_deref());
    app.ensure_duties(user.now).await.page(&user)?;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let org = guard::visible_subtree(&mut conn, &user.principal, &code).await.page(&user)?;

    // The period: as asked, or this quarter; a malformed key is refused with a message.
    let this_quarter = Period::containing(Cadence::Quarter, user.today);
    let (period, period_error) = match ask.period.as_deref().map(|k| (k, k.parse::<Period>())) {
        None => (None, None),
        Some((_, Ok(p))) => (Some(p), None),
        Some((k, Err(e))) => {
            let shown: String = k.chars().take(24).collect();
            let reason = match e {
                crate::domain::period::PeriodError::YearOutOfRange => t.t("subtree.period_year_range"),
                _ => t.t("subtree.period_format"),
            };
            (None, Some(t.f2("subtree.period_refused", shown, reason)))
        }
    };
    let year = period.map_or(this_quarter.year(), |p| p.year());
    let (keys, first_key) = overview::period_keys(&mut conn, year).await.page(&user)?;
    // The organisation's own subtree over every period of the year, and last year's
    // quarters and halves: for the default period and the trend.
    let mut own_keys: Vec<String> = all_periods(year).iter().map(|p| p.to_string()).collect();
    own_keys.extend(
        all_periods(year - 1)
            .iter()
            .filter(|p| matches!(p.cadence(), Cadence::Quarter | Cadence::Half))
            .map(|p| p.to_string()),
    );
    let own_by_period = app.counts.counts(&mut conn, &[org.id], &own_keys, user.now).await.page(&user)?;
    let has_duties = |p: Period| own_by_period.get(&(org.id, p.to_string())).is_some_and(|c| c.total() > 0);
    // By default this quarter; where the subtree owes nothing for it, the first of this
    // half, this year and this month for which it owes something (a school tree has
    // only half-yearly and yearly duties).
    let period = period.unwrap_or_else(|| {
        [Cadence::Quarter, Cadence::Half, Cadence::Year, Cadence::Month]
            .into_iter()
            .map(|c| Period::containing(c, user.today))
            .find(|p| has_duties(*p))
            .unwrap_or(this_quarter)
    });
    let key = period.to_string();
    let grain_asked = ask.grain.as_deref().and_then(Grain::parse);
    let sort = ask.sort.as_deref().and_then(SortKey::parse).unwrap_or(SortKey::Code);
    let dir = match ask.dir.as_deref() {
        Some("desc") => Dir::Desc,
        Some("asc") => Dir::Asc,
        _ => sort.first_dir(),
    };
    let here = Here {
        code: org.code.clone(),
        period: key.clone(),
        sort,
        dir,
        grain: grain_asked.unwrap_or(Grain::of(period)),
        grain_asked: grain_asked.is_some(),
    };

    // The organisations: the way down from what the user may see, and the children.
    let top = (0..org.path.len()).find(|i| guard::sees_subtree(&user.principal, &org.path[..=*i])).unwrap_or(0);
    let lineage = overview::lineage(&mut conn, &org.path[top..]).await.page(&user)?;
    let mut children = overview::children(&mut conn, org.id, CHILD_LIMIT + 1).await.page(&user)?;
    let children_cut = children.len() as i64 > CHILD_LIMIT;
    children.truncate(CHILD_LIMIT as usize);

    // The counts of the chosen period and of the heat map's columns, for the organisation
    // and each child.
    let columns: Vec<Period> = Period::new(here.grain.cadence(), year, 1)
        .map(|first| first.through(Period::containing(here.grain.cadence(), last_day_of_year(year))).collect())
        .unwrap_or_default();
    let mut wanted: Vec<String> = columns.iter().map(|p| p.to_string()).collect();
    if !wanted.contains(&key) {
        wanted.push(key.clone());
    }
    let mut ids: Vec<i64> = vec![org.id];
    ids.extend(children.iter().map(|c| c.id));
    let counts = app.counts.counts(&mut conn, &ids, &wanted, user.now).await.page(&user)?;
    // The overdue duties of the whole subtree: the index that reads fewer rows.
    let own_counts = counts.get(&(org.id, key.clone())).cloned().unwrap_or_default();
    let overdue_list: Vec<OverdueDuty> = if own_counts.overdue > 0 {
        // The index scan, unless counting the subtree shows that walking it costs less.
        let everywhere = overview::overdue_everywhere(&mut conn, &key, user.now).await.page(&user)?;
        let cost = overview::index_cost(everywhere, own_counts.overdue, OVERDUE_LIMIT);
        let size = if cost > overview::CHEAP_SCAN {
            Some(overview::subtree_size(&mut conn, &org.path, cost / 2).await.page(&user)?)
        } else {
            None
        };
        let scan = overview::choose_scan(cost, size);
        tracing::debug!(?scan, cost, ?size, org = %org.code, period = %key, "listing overdue duties");
        overview::overdue_duties(&mut conn, &org.path, &key, user.now, OVERDUE_LIMIT, scan).await.page(&user)?
    } else {
        Vec::new()
    };
    drop(conn);

    // The words.
    let started = period.first_day() <= user.today;
    let exists = keys.contains(&key);
    let period_note = if !started {
        Some(t.t("subtree.not_started").to_owned())
    } else if !exists || own_counts.total() == 0 {
        Some(t.t("subtree.nothing_due").to_owned())
    } else {
        None
    };
    let first_year = first_key.as_deref().and_then(|k| k.get(..4)).and_then(|y| y.parse::<i32>().ok());
    let current_year = user.today.year();
    let years = year_tabs(&here, period, first_year, current_year);
    let period_groups = period_groups(&t, year, &keys, &key);

    let mut rows: Vec<ChildRow> = children
        .iter()
        .map(|c| {
            let counts = counts.get(&(c.id, key.clone())).cloned().unwrap_or_default();
            child_row(&t, c, &counts, Some(here.at(&c.code, &key)))
        })
        .collect();
    sort_rows(&mut rows, sort, dir);
    let own_row = (!children.is_empty() && !children_cut)
        .then(|| {
            let mut own = own_counts.clone();
            for c in &children {
                if let Some(cc) = counts.get(&(c.id, key.clone())) {
                    for s in Status::ALL {
                        own.add(s, -cc.get(s));
                    }
                }
            }
            own
        })
        .filter(|own| own.total() > 0)
        .map(|own| {
            let mut row = child_row(&t, &lineage_entry(&lineage, &org.code), &own, None);
            row.name = t.t("subtree.own_row").to_owned();
            row.code = org.code.clone();
            row
        });
    let me = lineage_entry(&lineage, &org.code);
    let mut totals_row = child_row(&t, &me, &own_counts, None);
    totals_row.name = t.t("subtree.totals_row").to_owned();

    let headers = headers(&t, &here);
    let overdue: Vec<OverdueRow> = overdue_list
        .iter()
        .map(|d| {
            let last = last_day(tz, d.due_at);
            OverdueRow {
                org_name: d.org_name.clone(),
                org_code: d.org_code.clone(),
                org_url: here.at(&d.org_code, &key),
                rule: d.rule.clone(),
                title: d.title.clone(),
                person: d.person_name.clone(),
                due: format::date(&t, last),
                overdue_by: format::overdue_by(&t, user.today, last),
                duty_url: format!("/duties/{}", d.id),
            }
        })
        .collect();

    // The heat map: the children (or the organisation itself, without children) by period.
    let current_col = Period::containing(here.grain.cadence(), user.today);
    let heat_is_self = children.is_empty();
    let mut heat_orgs: Vec<&OrgEntry> = if heat_is_self { vec![&me] } else { children.iter().collect() };
    let heat_note = (heat_orgs.len() > HEAT_ROWS).then(|| t.f2("subtree.heat_cut", HEAT_ROWS, heat_orgs.len()));
    if heat_orgs.len() > HEAT_ROWS {
        let behind = |o: &OrgEntry| -> i64 {
            columns.iter().map(|p| counts.get(&(o.id, p.to_string())).map_or(0, |c| c.overdue)).sum()
        };
        heat_orgs.sort_by_key(|o| std::cmp::Reverse(behind(o)));
        heat_orgs.truncate(HEAT_ROWS);
        heat_orgs.sort_by(|a, b| a.code.cmp(&b.code));
    }
    let heat_rows = heat_orgs
        .iter()
        .map(|o| HeatRowInput {
            name: o.name.clone(),
            href: here.at(&o.code, &key),
            closed: o.active_until.is_some(),
            cells: columns
                .iter()
                .map(|p| {
                    let k = p.to_string();
                    let c = counts.get(&(o.id, k.clone())).cloned().unwrap_or_default();
                    HeatInput {
                        completion: c.completion(),
                        title: cell_title(&t, &o.name, *p, &c, p.first_day() > user.today),
                        href: here.at(&o.code, &k),
                    }
                })
                .collect(),
        })
        .collect();
    let heat = charts::heat_map(
        columns
            .iter()
            .map(|p| {
                let now = *p == current_col;
                (format::period_short(&t, *p), now)
            })
            .collect(),
        heat_rows,
    );
    let grains = [Grain::Half, Grain::Quarter, Grain::Month]
        .into_iter()
        .map(|g| Tab {
            label: t.t(&format!("subtree.grain_{}", g.as_str())).to_owned(),
            url: here.grained(g),
            current: g == here.grain,
        })
        .collect();

    // The trend: this year's quarters, last year's faintly; by halves where the subtree
    // owes nothing quarterly (a school tree).
    let owes = |c: Cadence| {
        [year, year - 1]
            .into_iter()
            .any(|y| (1..=c.per_year()).filter_map(|i| Period::new(c, y, i).ok()).any(&has_duties))
    };
    let trend_cadence = if !owes(Cadence::Quarter) && owes(Cadence::Half) { Cadence::Half } else { Cadence::Quarter };
    let this_part = Period::containing(trend_cadence, user.today);
    let trend_inputs: Vec<TrendInput> = (1..=trend_cadence.per_year())
        .filter_map(|i| {
            let cur = Period::new(trend_cadence, year, i).ok()?;
            let prev = Period::new(trend_cadence, year - 1, i).ok()?;
            let cc = own_by_period.get(&(org.id, cur.to_string())).cloned().unwrap_or_default();
            let pc = own_by_period.get(&(org.id, prev.to_string())).cloned().unwrap_or_default();
            let note = if cur.first_day() > user.today {
                Some(t.t("subtree.trend_not_started").to_owned())
            } else if cc.completion().is_none() {
                Some(t.t("subtree.trend_nothing").to_owned())
            } else if cur == this_part {
                Some(t.t("subtree.trend_in_progress").to_owned())
            } else {
                None
            };
            Some(TrendInput {
                label: format::period_short(&t, cur),
                note,
                current: cc.completion().map(|r| (r, trend_title(&t, cur, &cc))),
                previous: pc.completion().map(|r| (r, trend_title(&t, prev, &pc))),
            })
        })
        .collect();
    let trend_rows = trend_inputs
        .iter()
        .map(|g| TrendRow {
            label: g.label.clone(),
            current: g.current.as_ref().map_or_else(|| "—".to_owned(), |(r, _)| charts::percent(*r)),
            previous: g.previous.as_ref().map_or_else(|| "—".to_owned(), |(r, _)| charts::percent(*r)),
        })
        .collect();
    let trend = charts::trend(trend_inputs);

    let completion = completion_cell(&own_counts);
    let counted = own_counts.total() - own_counts.waived - own_counts.cancelled;
    let page = SubtreePage {
        t,
        layout: Layout::new(&user, "subtree", &uri.to_string()),
        org_name: org.name.clone(),
        org_code: org.code.clone(),
        org_kind: kind_name(&t, &me),
        org_closed: closed_label(&t, &me),
        crumbs: lineage
            .iter()
            .filter(|o| o.id != org.id)
            .map(|o| Crumb { name: o.name.clone(), url: here.at(&o.code, &key) })
            .collect(),
        period_label: format::period(&t, period),
        period_error: period_error.clone(),
        period_note,
        years,
        period_groups,
        sort: sort.as_str(),
        dir: dir.as_str(),
        grain: here.grain_asked.then_some(here.grain.as_str()),
        tiles: COUNT_COLUMNS.iter().map(|s| StatusTile { status: s.as_str(), count: own_counts.get(*s) }).collect(),
        total: own_counts.total(),
        completion,
        completion_detail: t.f2("subtree.completion_detail", own_counts.fulfilled + own_counts.late, counted),
        headers,
        own_row,
        rows,
        totals_row,
        children_cut,
        sort_overdue_url: here.sorted_as(SortKey::Count(Status::Overdue), Dir::Desc),
        sort_completion_url: here.sorted_as(SortKey::Completion, Dir::Asc),
        overdue,
        overdue_total: own_counts.overdue,
        heat,
        heat_note,
        heat_is_self,
        grains,
        trend,
        trend_rows,
        trend_by_half: trend_cadence == Cadence::Half,
        this_year: t.f1("subtree.year_n", year),
        last_year: t.f1("subtree.year_n", year - 1),
        scale: charts::SCALE.iter().map(|(class, lo, hi)| (*class, format!("{lo}–{hi}%"))).collect(),
    };
    Ok(if period_error.is_some() { render_status(StatusCode::BAD_REQUEST, &page) } else { render(&page) })
}

// ---------------------------------------------------------------------------------------
// Pieces

/// Every period of a year, of every cadence: the year, its halves, quarters and months.
fn all_periods(year: i32) -> Vec<Period> {
    Cadence::ALL
        .into_iter()
        .flat_map(|c| (1..=c.per_year()).filter_map(move |i| Period::new(c, year, i).ok()))
        .collect()
}

fn last_day_of_year(year: i32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(year, 12, 31).unwrap_or(chrono::NaiveDate::MAX)
}

/// The last day one can still submit: the day before the local day of `due_at`.
fn last_day(tz: chrono_tz::Tz, due_at: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
    let due_day = local_date(tz, due_at);
    due_day.checked_sub_days(Days::new(1)).unwrap_or(due_day)
}

fn kind_name(t: &Tr, o: &OrgEntry) -> String {
    match t.locale {
        Locale::Zh => o.kind_zh.clone(),
        Locale::En => o.kind_en.clone(),
    }
}

fn closed_label(t: &Tr, o: &OrgEntry) -> Option<String> {
    o.active_until.map(|d| t.f1("subtree.closed_on", format::date(t, d)))
}

fn lineage_entry(lineage: &[OrgEntry], code: &str) -> OrgEntry {
    lineage.iter().find(|o| o.code == code).cloned().unwrap_or_else(|| OrgEntry {
        id: 0,
        code: code.to_owned(),
        name: code.to_owned(),
        kind_zh: String::new(),
        kind_en: String::new(),
        active_until: None,
    })
}

fn completion_cell(c: &StatusCounts) -> CompletionCell {
    let rate = c.completion();
    CompletionCell {
        label: rate.map(charts::percent).unwrap_or_else(|| "—".to_owned()),
        class: charts::completion_class(rate),
        bar: rate.map_or(0, |r| (r.clamp(0.0, 1.0) * 60.0).round() as u32),
    }
}

fn child_row(t: &Tr, o: &OrgEntry, c: &StatusCounts, url: Option<String>) -> ChildRow {
    ChildRow {
        name: o.name.clone(),
        code: o.code.clone(),
        kind: kind_name(t, o),
        closed: closed_label(t, o),
        url,
        cells: COUNT_COLUMNS
            .iter()
            .map(|s| {
                let value = c.get(*s);
                let class = match s {
                    Status::Overdue if value > 0 => "num hot",
                    Status::DueSoon if value > 0 => "num warm",
                    _ if value == 0 => "num zero",
                    _ => "num",
                };
                NumCell { value, class }
            })
            .collect(),
        total: c.total(),
        completion: completion_cell(c),
        behind: c.overdue > 0,
        counts: c.clone(),
    }
}

/// Sort the children's rows; ties (and organisations with nothing to count, for the
/// completion) go by code.
fn sort_rows(rows: &mut [ChildRow], key: SortKey, dir: Dir) {
    rows.sort_by(|a, b| {
        let primary = match key {
            SortKey::Name => a.name.cmp(&b.name),
            SortKey::Code => a.code.cmp(&b.code),
            SortKey::Kind => a.kind.cmp(&b.kind),
            SortKey::Total => a.total.cmp(&b.total),
            SortKey::Count(s) => a.counts.get(s).cmp(&b.counts.get(s)),
            SortKey::Completion => match (a.counts.completion(), b.counts.completion()) {
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                // Nothing to count sorts last whichever way.
                (Some(_), None) => return Ordering::Less,
                (None, Some(_)) => return Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
        };
        let primary = if dir == Dir::Desc { primary.reverse() } else { primary };
        primary.then_with(|| a.code.cmp(&b.code))
    });
}

fn headers(t: &Tr, here: &Here) -> Vec<Header> {
    let mut cols: Vec<(SortKey, &'static str, bool, &'static str)> = vec![
        (SortKey::Name, t.t("subtree.col_org"), false, "col-org"),
        (SortKey::Code, t.t("subtree.col_code"), false, "col-code"),
        (SortKey::Kind, t.t("subtree.col_kind"), false, "col-kind"),
        (SortKey::Completion, t.t("subtree.col_completion"), true, "col-completion"),
    ];
    for s in COUNT_COLUMNS {
        let class = if s == Status::Overdue { "col-overdue" } else { "" };
        cols.push((SortKey::Count(s), t.t(&format!("status.{}", s.as_str())), true, class));
    }
    cols.push((SortKey::Total, t.t("subtree.col_total"), true, ""));
    cols.into_iter()
        .map(|(key, label, numeric, class)| {
            let active = key == here.sort;
            Header {
                label,
                url: here.sorted(key),
                aria_sort: active.then_some(if here.dir == Dir::Asc { "ascending" } else { "descending" }),
                arrow: match (active, here.dir) {
                    (false, _) => "",
                    (true, Dir::Asc) => "▲",
                    (true, Dir::Desc) => "▼",
                },
                numeric,
                class,
            }
        })
        .collect()
}

/// The year tabs: from the first year with duties (at most ten back) to this year, each
/// leading to the same kind of period in that year.
fn year_tabs(here: &Here, period: Period, first_year: Option<i32>, current_year: i32) -> Vec<Tab> {
    let last = current_year.max(period.year());
    let first = first_year.unwrap_or(current_year).clamp(last - 9, last).min(period.year());
    (first..=last)
        .rev()
        .filter_map(|y| {
            let p = Period::new(period.cadence(), y, period.index()).ok()?;
            Some(Tab { label: y.to_string(), url: here.with_period(&p.to_string()), current: y == period.year() })
        })
        .collect()
}

/// The choice of periods of one year, grouped by cadence; only the keys that exist, and
/// the chosen one even if it does not.
fn period_groups(t: &Tr, year: i32, keys: &[String], chosen: &str) -> Vec<PeriodGroup> {
    Cadence::ALL
        .into_iter()
        .filter_map(|cadence| {
            let options: Vec<PeriodOption> = (1..=cadence.per_year())
                .filter_map(|i| Period::new(cadence, year, i).ok())
                .filter(|p| {
                    let k = p.to_string();
                    keys.contains(&k) || k == chosen
                })
                .map(|p| PeriodOption {
                    key: p.to_string(),
                    label: option_label(t, p),
                    selected: p.to_string() == chosen,
                })
                .collect();
            (!options.is_empty())
                .then(|| PeriodGroup { label: t.t(&format!("subtree.group_{}", cadence.as_str())), options })
        })
        .collect()
}

/// "2026年全年（年度任务）", "第三季度（7–9月）", "上半年（1–6月）", "11月".
fn option_label(t: &Tr, p: Period) -> String {
    match p.cadence() {
        Cadence::Year => t.f1("subtree.option_year", p.year()),
        Cadence::Quarter => {
            let first = (u32::from(p.index()) - 1) * 3 + 1;
            t.f3("subtree.option_quarter", format::period_short(t, p), first, first + 2)
        }
        Cadence::Half => {
            let first = (u32::from(p.index()) - 1) * 6 + 1;
            t.f3("subtree.option_quarter", format::period_short(t, p), first, first + 5)
        }
        Cadence::Month => format::period_short(t, p),
    }
}

fn cell_title(t: &Tr, name: &str, p: Period, c: &StatusCounts, future: bool) -> String {
    let when = format::period(t, p);
    if future {
        return t.f2("subtree.cell_future", name, when);
    }
    match c.completion() {
        None => t.f2("subtree.cell_nothing", name, when),
        Some(r) => {
            let counted = c.total() - c.waived - c.cancelled;
            let detail = t.f3("subtree.cell_detail", c.fulfilled + c.late, counted, charts::percent(r));
            let overdue = if c.overdue > 0 { t.f1("subtree.cell_overdue", c.overdue) } else { String::new() };
            format!("{name} · {when}{}{detail}{overdue}", t.t("subtree.colon"))
        }
    }
}

fn trend_title(t: &Tr, p: Period, c: &StatusCounts) -> String {
    let counted = c.total() - c.waived - c.cancelled;
    let rate = c.completion().map(charts::percent).unwrap_or_default();
    format!(
        "{}{}{}",
        format::period(t, p),
        t.t("subtree.colon"),
        t.f3("subtree.cell_detail", c.fulfilled + c.late, counted, rate)
    )
}
