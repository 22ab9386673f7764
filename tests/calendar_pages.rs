//! The month calendar of deadlines and the personal iCalendar feed, over HTTP.

mod common;

use common::{PageClient, TestApp};
use reqwest::StatusCode;
use serde_json::json;

/// The company tree with the company template, and secretaries for both branches.
async fn company() -> TestApp {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    for (login, org) in [("zhang", "HX-1"), ("zhou", "HX-2")] {
        role(&t, login, org, "secretary").await;
    }
    t
}

async fn role(t: &TestApp, login: &str, org: &str, role: &str) {
    t.user(login, false).await;
    let (st, body) =
        t.post(&format!("/api/v1/orgs/{org}/roles"), json!({"login": login, "role": role, "from": "2020-01-01"})).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

/// The HTML of one day's cell of the month grid.
fn cell<'a>(html: &'a str, day: &str) -> &'a str {
    let start = html.find(&format!("id=\"d-{day}\"")).unwrap_or_else(|| panic!("no cell for {day}"));
    let end = start + html[start..].find("</td>").expect("the cell ends");
    &html[start..end]
}

/// Create a feed address on the calendar page and return the token in it.
async fn new_feed(page: &PageClient) -> String {
    let (st, _, html) = page.post("/calendar/feed", &[("month", "2026-03")]).await;
    assert_eq!(st, StatusCode::OK, "{html}");
    let i = html.find("/feeds/").expect("the new address is shown") + "/feeds/".len();
    let token = html[i..].split(".ics").next().unwrap().to_owned();
    assert_eq!(token.len(), 43, "32 random bytes, base64url: {token}");
    token
}

/// Fetch a feed as a calendar program does: no cookies, no session.
async fn fetch_feed(t: &TestApp, token: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let resp = reqwest::get(format!("{}/feeds/{token}.ics", t.base)).await.unwrap();
    let st = resp.status();
    let headers = resp.headers().clone();
    (st, headers, resp.text().await.unwrap())
}

/// The content lines of an iCalendar text, unfolded.
fn unfold(ics: &str) -> Vec<String> {
    ics.replace("\r\n ", "").split("\r\n").filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// The events of a feed, each as its unfolded lines.
fn events(ics: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in unfold(ics) {
        match line.as_str() {
            "BEGIN:VEVENT" => current = Some(Vec::new()),
            "END:VEVENT" => out.extend(current.take()),
            _ => {
                if let Some(c) = current.as_mut() {
                    c.push(line);
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn a_yearly_duty_shows_on_the_31st_of_december_not_on_new_years_day() {
    let t = company().await;
    let page = t.sign_in("zhang").await;
    let (st, html) = page.get("/calendar?month=2026-12").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("2026年12月"), "the month is headed in Chinese");
    let eve = cell(&html, "2026-12-31");
    assert!(eve.contains("把意识形态工作列入年度工作计划和工作总结"), "A12 (yearly) is due on 31 December: {eve}");
    assert!(eve.contains("href=\"/duties/"), "it links to the duty");
    assert!(eve.contains("共 "), "a day with more than three deadlines shows its count: {eve}");

    let (_, html) = page.get("/calendar?month=2027-01").await;
    let new_year = cell(&html, "2027-01-01");
    assert!(!new_year.contains("年度工作计划"), "nothing falls on 1 January: {new_year}");
    assert!(!new_year.contains("cal-item"), "{new_year}");
}

#[tokio::test]
async fn the_month_starts_on_monday_marks_today_and_links_to_the_months_around_it() {
    let t = company().await;
    let page = t.sign_in("zhang").await;
    let (st, html) = page.get("/calendar").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("2026年3月"), "this month by default");
    assert!(cell(&html, "2026-03-26").contains("今天"), "today is marked");
    assert!(html.contains("id=\"d-2026-03-26\" class=\"cal-day is-today\" aria-current=\"date\""));
    let due = cell(&html, "2026-03-31");
    assert!(
        due.contains("召开意识形态分析研判会") && due.contains("cal-due_soon"),
        "A7 is due soon on 31 March: {due}"
    );
    assert!(!cell(&html, "2026-04-01").contains("cal-item"), "not on 1 April");
    assert!(html.contains("href=\"/calendar?month=2026-02\"") && html.contains("href=\"/calendar?month=2026-04\""));

    let (_, html) = page.get("/calendar?month=2026-11").await;
    assert!(html.contains("2026年11月"));
    let heads: Vec<usize> =
        ["一", "二", "三", "四", "五", "六", "日"].iter().map(|d| html.find(&format!(">{d}</th>")).unwrap()).collect();
    assert!(heads.windows(2).all(|w| w[0] < w[1]), "Monday first, Sunday last");
    let first_cell = html.find("id=\"d-").unwrap();
    assert!(
        html[first_cell..].starts_with("id=\"d-2026-10-26\""),
        "1 Nov 2026 is a Sunday: the grid starts on Monday 26 Oct"
    );
    assert!(html.contains("href=\"/calendar?month=2026-10\"") && html.contains("href=\"/calendar?month=2026-12\""));
    assert!(html.contains("回到本月"), "a way back to this month");

    // Nonsense falls back to this month rather than failing.
    let (st, html) = page.get("/calendar?month=2026-99").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("2026年3月"));
    let (_, html) = page.get("/calendar?month=2026-11&lang=en").await;
    assert!(html.contains("November 2026") && html.contains(">Mon</th>"), "English on request");
}

#[tokio::test]
async fn a_member_sees_only_their_own_per_person_duty() {
    let t = company().await;
    role(&t, "li", "HX-1", "member").await;
    role(&t, "wang", "HX-1", "member").await;

    let member = t.sign_in("li").await;
    let (_, html) = member.get("/calendar?month=2026-12").await;
    let eve = cell(&html, "2026-12-31");
    assert!(eve.contains("把意识形态工作作为民主生活会和述职报告的重要内容"), "their own A13: {eve}");
    assert!(eve.contains(">li<"), "named: {eve}");
    assert!(!eve.contains(">wang<"), "not another member's: {eve}");
    assert!(!eve.contains("年度工作计划"), "not the branch's duties: {eve}");

    let secretary = t.sign_in("zhang").await;
    let (_, html) = secretary.get("/calendar?month=2026-12").await;
    let eve = cell(&html, "2026-12-31");
    assert!(eve.contains(">li<") && eve.contains(">wang<"), "the secretary sees every member's: {eve}");
}

#[tokio::test]
async fn the_feed_is_valid_icalendar_and_a_chinese_title_survives_folding() {
    let t = company().await;
    let page = t.sign_in("zhang").await;
    let (_, html) = page.get("/calendar").await;
    assert!(html.contains("订阅到我的日历") && html.contains("生成订阅地址"));
    let token = new_feed(&page).await;

    let (st, headers, ics) = fetch_feed(&t, &token).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/calendar; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(ics.ends_with("\r\n"));
    assert!(!ics.replace("\r\n", "").contains('\n'), "every line ends in CRLF");
    let mut folded = 0;
    for line in ics.trim_end_matches("\r\n").split("\r\n") {
        assert!(line.len() <= 75, "{} octets: {line}", line.len());
        if line.starts_with(' ') {
            folded += 1;
        }
    }
    assert!(folded > 0, "long Chinese lines are folded");
    let lines = unfold(&ics);
    assert_eq!(lines.first().map(String::as_str), Some("BEGIN:VCALENDAR"));
    assert_eq!(lines.last().map(String::as_str), Some("END:VCALENDAR"));
    let mut open: Vec<&str> = Vec::new();
    for l in &lines {
        if let Some(c) = l.strip_prefix("BEGIN:") {
            open.push(c);
        } else if let Some(c) = l.strip_prefix("END:") {
            assert_eq!(open.pop(), Some(c), "END:{c} closes what was opened");
        }
    }
    assert!(open.is_empty(), "BEGIN and END balance");
    for needed in ["VERSION:2.0", "CALSCALE:GREGORIAN"] {
        assert!(lines.iter().any(|l| l == needed), "{needed}");
    }
    assert!(lines.iter().any(|l| l.starts_with("PRODID:")));
    assert!(lines.iter().any(|l| l.starts_with("X-WR-CALNAME:")));

    let evs = events(&ics);
    let a10 = evs
        .iter()
        .find(|e| e.iter().any(|l| l == "SUMMARY:[HX-1 组织] 对本单位意识形态工作进行专题督查，结果报政工部"))
        .expect("A10's Chinese title comes back whole after unfolding");
    assert!(a10.contains(&"DTSTART;VALUE=DATE:20261231".to_owned()), "due on its last day: {a10:?}");
    assert!(a10.iter().any(|l| l.starts_with("UID:duty-") && l.ends_with("@zerenzhi")));
    assert!(a10.iter().any(|l| l.starts_with("DTSTAMP:")));
    assert!(a10.iter().any(|l| l.starts_with("DESCRIPTION:") && l.contains("第十二条") && l.contains("/duties/")));
    assert!(a10.iter().any(|l| l == "BEGIN:VALARM"), "a reminder before the deadline");
    let a7 = evs.iter().find(|e| {
        e.iter().any(|l| l.contains("召开意识形态分析研判会")) && e.contains(&"DTSTART;VALUE=DATE:20260331".to_owned())
    });
    assert!(a7.is_some(), "the Q1 analysis meeting on 31 March");
}

#[tokio::test]
async fn a_revoked_or_unknown_token_is_not_found_and_regenerating_invalidates_the_old_address() {
    let t = company().await;
    let page = t.sign_in("zhang").await;
    let first = new_feed(&page).await;
    assert_eq!(fetch_feed(&t, &first).await.0, StatusCode::OK);
    let (_, html) = page.get("/calendar").await;
    assert!(html.contains("已于 2026年3月26日 生成订阅地址"), "the page says a feed exists");
    assert!(html.contains("日历程序最近一次读取"), "and when it was last read");
    assert!(!html.contains(&first), "the address itself is never shown again");

    let second = new_feed(&page).await;
    assert_ne!(first, second);
    assert_eq!(fetch_feed(&t, &first).await.0, StatusCode::NOT_FOUND, "the old address stops working");
    assert_eq!(fetch_feed(&t, &second).await.0, StatusCode::OK);

    let (st, location, _) = page.post("/calendar/feed/stop", &[("month", "2026-03")]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/calendar?month=2026-03#feed"));
    assert_eq!(fetch_feed(&t, &second).await.0, StatusCode::NOT_FOUND, "a stopped feed is gone");
    let (_, html) = page.get("/calendar").await;
    assert!(html.contains("生成订阅地址"), "and can be created anew");

    assert_eq!(fetch_feed(&t, "not-a-token").await.0, StatusCode::NOT_FOUND);
    let third = new_feed(&page).await;
    let resp = reqwest::get(format!("{}/feeds/{third}", t.base)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "only the .ics address");
}

#[tokio::test]
async fn a_feed_shows_only_what_its_owner_may_see_and_nothing_once_they_are_disabled() {
    let t = company().await;
    role(&t, "li", "HX-1", "member").await;
    let zhang = new_feed(&t.sign_in("zhang").await).await;
    let zhou = new_feed(&t.sign_in("zhou").await).await;
    let li = new_feed(&t.sign_in("li").await).await;

    let (_, _, ics) = fetch_feed(&t, &zhang).await;
    let text = ics.replace("\r\n ", "");
    assert!(text.contains("[HX-1 组织]"));
    assert!(!text.contains("[HX-2 组织]") && !text.contains("[HGS 组织]"), "no other organisation's duties");
    let (_, _, ics) = fetch_feed(&t, &zhou).await;
    let text = ics.replace("\r\n ", "");
    assert!(text.contains("[HX-2 组织]") && !text.contains("[HX-1 组织]"));
    let (_, _, ics) = fetch_feed(&t, &li).await;
    let summaries: Vec<String> = unfold(&ics).into_iter().filter(|l| l.starts_with("SUMMARY:")).collect();
    assert_eq!(summaries, vec!["SUMMARY:[HX-1 组织] 把意识形态工作作为民主生活会和述职报告的重要内容 · li".to_owned()]);

    sqlx::query("update app_user set disabled_at = now() where login = 'zhang'").execute(&t.pool).await.unwrap();
    assert_eq!(fetch_feed(&t, &zhang).await.0, StatusCode::NOT_FOUND, "nothing for a disabled user");
}

#[tokio::test]
async fn creating_or_stopping_a_feed_needs_the_csrf_token() {
    let t = company().await;
    let page = t.sign_in("zhang").await;
    for path in ["/calendar/feed", "/calendar/feed/stop"] {
        let resp = page.http.post(format!("{}{path}", t.base)).form(&[("month", "2026-03")]).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
        let resp = page
            .http
            .post(format!("{}{path}", t.base))
            .form(&[("month", "2026-03"), ("csrf", "wrong")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let n: i64 = sqlx::query_scalar("select count(*) from calendar_feed").fetch_one(&t.pool).await.unwrap();
    assert_eq!(n, 0);
}
