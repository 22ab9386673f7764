//! The subtree overview (下级概况), over HTTP with signed-in sessions: what a superior
//! sees of the organisations below, who may see it, and that its pictures are sound SVG.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The company tree (HJT → HGS → HX-1, HX-2) with the company template from January, at
/// 20 November 2026. HX-1 held its third-quarter analysis meeting (A7) and visit (A11)
/// on time, but sent no report (A8); HX-2 did none of them. `li` is the secretary of HGS, `zhang` of HX-1.
async fn company() -> TestApp {
    company_with(|_| {}).await
}

/// [`company`] with a configuration of its own.
async fn company_with(configure: impl FnOnce(&mut zerenzhi::config::Config)) -> TestApp {
    let t = TestApp::spawn_with("2026-08-20T10:00:00+08:00", configure).await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    t.record("HX-1", "A7", "2026-08-18").await;
    t.record("HX-1", "A11", "2026-08-19").await;
    t.set_now("2026-11-20T10:00:00+08:00");
    for (login, org, role) in [("li", "HGS", "secretary"), ("zhang", "HX-1", "secretary")] {
        give(&t, login, org, role).await;
    }
    t
}

async fn give(t: &TestApp, login: &str, org: &str, role: &str) {
    t.user(login, false).await;
    let (st, body) =
        t.post(&format!("/api/v1/orgs/{org}/roles"), json!({"login": login, "role": role, "from": "2020-01-01"})).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

/// The table row of the organisation with this code (its `<tr>` … `</tr>`).
fn row_of<'a>(html: &'a str, code: &str) -> &'a str {
    let table = &html[html.find("class=\"st-table\"").expect("the children's table")..];
    let marker = format!("<span class=\"code\">{code}</span>");
    let at = table.find(&marker).unwrap_or_else(|| panic!("no row for {code}"));
    let start = table[..at].rfind("<tr").unwrap();
    let end = at + table[at..].find("</tr>").unwrap();
    &table[start..end]
}

/// The whole-number cells of a row: the eight statuses in the table's order, then the total.
fn figures(row: &str) -> Vec<i64> {
    row.split("<td class=\"num")
        .skip(1)
        .filter_map(|cell| {
            let value = &cell[cell.find('>')? + 1..cell.find("</td>")?];
            value.trim().parse().ok()
        })
        .collect()
}

const COLUMNS: [&str; 8] = ["overdue", "due_soon", "open", "submitted", "fulfilled", "late", "waived", "cancelled"];

fn counts_as_figures(counts: &Value) -> Vec<i64> {
    let mut v: Vec<i64> = COLUMNS.iter().map(|s| counts[*s].as_i64().unwrap()).collect();
    v.push(COLUMNS.iter().map(|s| counts[*s].as_i64().unwrap()).sum());
    v
}

/// The part of a page inside the section whose heading has this id.
fn section<'a>(html: &'a str, heading_id: &str) -> &'a str {
    let start = html.find(&format!("id=\"{heading_id}\"")).unwrap_or_else(|| panic!("no {heading_id}"));
    let end = start + html[start..].find("</section>").unwrap();
    &html[start..end]
}

/// Every `<svg class="{class}` … `</svg>` of a page.
fn svgs<'a>(html: &'a str, class: &str) -> Vec<&'a str> {
    let open = format!("<svg class=\"{class}");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(&open) {
        let end = i + rest[i..].find("</svg>").expect("a closed svg") + "</svg>".len();
        out.push(&rest[i..end]);
        rest = &rest[end..];
    }
    out
}

/// Whether every tag is closed in order (`<x/>` closes itself).
fn balanced(xml: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        let end = rest[i..].find('>').ok_or("a tag without >")? + i;
        let tag = &rest[i + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap_or("").to_owned());
        }
    }
    if stack.is_empty() { Ok(()) } else { Err(format!("unclosed {stack:?}")) }
}

#[tokio::test]
async fn each_childs_counts_match_the_api_rollup() {
    let t = company().await;
    let page = t.sign_in("li").await;
    for period in ["2026-Q3", "2026-Q4", "2026", "2026-H1"] {
        let (st, rollup) = t.get(&format!("/api/v1/orgs/HGS/rollup?period={period}")).await;
        assert_eq!(st, StatusCode::OK);
        let (st, html) = page.get(&format!("/subtree/HGS?period={period}")).await;
        assert_eq!(st, StatusCode::OK, "{html}");
        for child in rollup["children"].as_array().unwrap() {
            let code = child["code"].as_str().unwrap();
            assert_eq!(figures(row_of(&html, code)), counts_as_figures(&child["counts"]), "{code} {period}");
        }
        let totals = &html[html.find("<tfoot>").unwrap()..html.find("</tfoot>").unwrap()];
        assert_eq!(figures(totals), counts_as_figures(&rollup["counts"]), "the totals of {period}");
    }
}

#[tokio::test]
async fn sorting_by_overdue_puts_the_branch_furthest_behind_first() {
    let t = company().await;
    let page = t.sign_in("li").await;
    let (_, html) = page.get("/subtree/HGS?period=2026-Q3").await;
    assert!(html.find(">HX-1<").unwrap() < html.find(">HX-2<").unwrap(), "by code at first");
    assert!(html.contains("/subtree/HGS?period=2026-Q3&#38;sort=overdue&#38;dir=desc"), "a link sorts by overdue");

    let (st, html) = page.get("/subtree/HGS?period=2026-Q3&sort=overdue&dir=desc").await;
    assert_eq!(st, StatusCode::OK);
    let table = &html[html.find("<tbody>").unwrap()..];
    assert!(table.find(">HX-2<").unwrap() < table.find(">HX-1<").unwrap(), "HX-2 has more overdue");
    assert!(html.contains("aria-sort=\"descending\""), "the sorted column says so");
    assert!(row_of(&html, "HX-2").contains("st-behind"), "a branch with overdue duties is marked");
    assert_eq!((figures(row_of(&html, "HX-2"))[0], figures(row_of(&html, "HX-1"))[0]), (3, 1), "overdue counts");

    let (_, html) = page.get("/subtree/HGS?period=2026-Q3&sort=completion&dir=asc").await;
    let table = &html[html.find("<tbody>").unwrap()..];
    assert!(table.find(">HX-2<").unwrap() < table.find(">HX-1<").unwrap(), "the lowest completion first");

    let (st, _) = page.get("/subtree/HGS?sort=nonsense&dir=sideways").await;
    assert_eq!(st, StatusCode::OK, "an unknown sort falls back to the default");
}

#[tokio::test]
async fn a_superior_drills_down_to_a_grandchild() {
    let t = company().await;
    give(&t, "zhao", "HJT", "secretary").await;
    let page = t.sign_in("zhao").await;
    let (st, location) = {
        let resp = page.http.get(format!("{}/subtree", page.base)).send().await.unwrap();
        (resp.status(), resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned()))
    };
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/subtree/HJT"), "straight to the one subtree");

    let (_, html) = page.get("/subtree/HJT?period=2026-Q3").await;
    assert!(html.contains("href=\"/subtree/HGS?period=2026-Q3\""), "the child links down");
    let (_, html) = page.get("/subtree/HGS?period=2026-Q3").await;
    assert!(html.contains("href=\"/subtree/HX-1?period=2026-Q3\""), "and its child too");
    let (st, html) = page.get("/subtree/HX-1?period=2026-Q3").await;
    assert_eq!(st, StatusCode::OK);
    let crumbs = &html[html.find("class=\"st-crumbs\"").unwrap()..];
    let crumbs = &crumbs[..crumbs.find("</nav>").unwrap()];
    assert!(crumbs.contains("HJT 组织") && crumbs.contains("HGS 组织") && crumbs.contains("HX-1 组织"), "{crumbs}");
    assert!(html.contains("本组织没有下级组织"), "a leaf says it has none below");
}

#[tokio::test]
async fn a_branch_secretary_sees_their_branch_and_not_a_sibling_or_the_parent() {
    let t = company().await;
    let page = t.sign_in("zhang").await;
    let (st, html) = page.get("/subtree/HX-1").await;
    assert_eq!(st, StatusCode::OK, "{html}");
    assert!(html.contains("svg class=\"heatmap"), "the leaf still has its pictures");
    for other in ["HX-2", "HGS", "HJT", "NOPE"] {
        let (st, _) = page.get(&format!("/subtree/{other}")).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{other}");
    }
    // The parent's coordinator and inspector see the subtree; a leadership member does not.
    give(&t, "wang", "HGS", "coordinator").await;
    give(&t, "sun", "HGS", "inspector").await;
    give(&t, "chen", "HGS", "member").await;
    for (login, expect) in [("wang", StatusCode::OK), ("sun", StatusCode::OK), ("chen", StatusCode::NOT_FOUND)] {
        let (st, _) = t.sign_in(login).await.get("/subtree/HGS").await;
        assert_eq!(st, expect, "{login}");
    }
}

#[tokio::test]
async fn the_overdue_list_shows_an_overdue_duty_and_not_a_fulfilled_one() {
    let t = company().await;
    let page = t.sign_in("li").await;
    let (_, html) = page.get("/subtree/HGS?period=2026-Q3").await;
    let list = section(&html, "overdue-title");
    let rows: Vec<&str> = list.split("<tr>").skip(2).collect();
    let a7 = |code: &str| rows.iter().any(|r| r.contains(&format!(">{code}<")) && r.contains(">A7<"));
    assert!(a7("HX-2"), "HX-2's missed meeting is listed: {list}");
    assert!(!a7("HX-1"), "HX-1's meeting was held");
    assert!(list.contains("已逾期 51 天"), "with how long: {list}");
    assert!(list.contains("2026年9月30日"), "and the last day");

    let (_, html) = page.get("/subtree/HGS?period=2026-Q4").await;
    assert!(section(&html, "overdue-title").contains("本周期没有逾期未完成的任务"), "nothing is overdue yet in Q4");
}

#[tokio::test]
async fn the_pictures_are_well_formed_svg_with_a_title_per_cell_and_no_inline_style() {
    let t = company().await;
    let page = t.sign_in("li").await;
    for path in ["/subtree/HGS?period=2026-Q3", "/subtree/HGS?period=2026-10&grain=month", "/subtree/HX-1"] {
        let (st, html) = page.get(path).await;
        assert_eq!(st, StatusCode::OK);
        assert!(!html.contains("style="), "no inline style on {path}");
        let heat = svgs(&html, "heatmap");
        let trend = svgs(&html, "trend");
        assert_eq!((heat.len(), trend.len()), (1, 1), "{path}");
        for svg in heat.iter().chain(&trend) {
            balanced(svg).unwrap_or_else(|e| panic!("{path}: {e}\n{svg}"));
        }
        let cells: Vec<&str> = heat[0].split("<a href=").filter(|a| a.contains("class=\"hm-cell\"")).collect();
        assert!(!cells.is_empty());
        assert!(cells.iter().all(|c| c.contains("<title>")), "every cell has a title on {path}");
    }
    let (_, html) = page.get("/subtree/HGS?period=2026-Q3").await;
    let heat = svgs(&html, "heatmap")[0];
    assert_eq!(heat.matches("class=\"hm-cell\"").count(), 8, "two branches by four quarters");
    assert!(heat.contains("HX-2 组织 · 2026年第三季度：完成 0/3（0%），逾期 3 项"), "{heat}");
    assert!(html.contains("class=\"st-legend\""), "a legend");
    assert!(html.contains("查看数据表"), "and the figures as a table");
    let (_, html) = page.get("/subtree/HGS?period=2026-10&grain=month").await;
    assert_eq!(svgs(&html, "heatmap")[0].matches("class=\"hm-cell\"").count(), 24, "by month");
}

#[tokio::test]
async fn the_period_chooser_refuses_a_malformed_key_with_a_message() {
    let t = company().await;
    let page = t.sign_in("li").await;
    for bad in ["2026-Q5", "abc", "1800", "2026-13", "%E4%B8%AD"] {
        let (st, html) = page.get(&format!("/subtree/HGS?period={bad}")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}");
        assert!(html.contains("无法识别统计周期"), "{bad}: {html}");
        assert!(html.contains("aria-invalid=\"true\""), "the chooser is marked");
        assert!(html.contains("2026年第四季度"), "the default period is shown instead");
    }
    let (st, html) = page.get("/subtree/HGS").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("统计周期：2026年第四季度"), "this quarter by default");
    for key in ["2026", "2026-H2", "2026-Q1", "2026-Q3"] {
        assert!(html.contains(&format!("<option value=\"{key}\"")), "{key} is offered");
    }
    for group in ["全年", "半年", "季度"] {
        assert!(html.contains(&format!("<optgroup label=\"{group}\">")), "grouped: {group}");
    }
    let (st, html) = page.get("/subtree/HGS?period=2027-Q1").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("所选周期尚未开始"), "a future period has nothing yet");
}

#[tokio::test]
async fn an_admin_with_two_trees_chooses_one_and_sees_english_on_request() {
    let t = company().await;
    t.org("XJ", "committee", None, "2015-01-01").await;
    let page = t.sign_in("admin").await;
    let (st, html) = page.get("/subtree").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("href=\"/subtree/HJT\"") && html.contains("href=\"/subtree/XJ\""), "{html}");
    let (st, html) = page.get("/subtree/HJT?period=2026-Q3&lang=en").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("Overdue duties") && html.contains("Q3 2026"), "{html}");
}

#[tokio::test]
async fn the_overdue_list_is_the_same_whichever_index_reads_it() {
    // Two thousand branches far behind beside HGS: the tree holds thousands of overdue
    // duties, so the overview walks HGS's small subtree instead of reading them all.
    let t = TestApp::spawn_at("2026-08-20T10:00:00+08:00").await;
    t.company_tree().await;
    t.org("BIG", "committee", Some("HJT"), "2016-05-01").await;
    sqlx::query(
        "insert into org (code, name, kind, parent_id, active_from, created_at)
         select 'BIG-' || i, '支部' || i, 'branch', (select id from org where code = 'BIG'), '2017-01-01', now()
         from generate_series(1, 2000) i",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    t.install("ideology-company", "2026-01-01", None).await;
    t.record("HX-1", "A7", "2026-08-18").await;
    t.record("HX-1", "A11", "2026-08-19").await;
    t.set_now("2026-11-20T10:00:00+08:00");
    let page = t.sign_in("admin").await;

    let overdue_rows = |html: &str| -> Vec<(String, String)> {
        section(html, "overdue-title")
            .split("<tr>")
            .skip(2)
            .map(|r| {
                let codes: Vec<&str> =
                    r.split("<span class=\"code\">").skip(1).filter_map(|c| c.split('<').next()).collect();
                (codes[0].to_owned(), codes[1].to_owned())
            })
            .collect()
    };
    let (_, small) = page.get("/subtree/HGS?period=2026-Q3").await;
    let walked = overdue_rows(&small);
    assert_eq!(
        walked,
        [("HGS", "A3"), ("HX-1", "A8"), ("HX-2", "A7"), ("HX-2", "A8"), ("HX-2", "A11")]
            .map(|(o, r)| (o.to_owned(), r.to_owned()))
            .to_vec(),
        "{small}"
    );
    let (_, big) = page.get("/subtree/HJT?period=2026-Q3").await;
    assert!(section(&big, "overdue-title").contains("只列出前 100 项"), "the root's list is cut");
    let from_index: Vec<(String, String)> =
        overdue_rows(&big).into_iter().filter(|(o, _)| ["HGS", "HX-1", "HX-2"].contains(&o.as_str())).collect();
    assert_eq!(from_index, walked, "the same duties, in the same order");
}

#[tokio::test]
async fn kept_counts_show_a_change_made_here_at_once_and_one_made_elsewhere_within_their_age() {
    let t = company_with(|c| c.overview_cache_seconds = 2).await;
    let page = t.sign_in("li").await;
    let fresh = |rollup: &Value, code: &str| -> Vec<i64> {
        let child = rollup["children"].as_array().unwrap().iter().find(|c| c["code"] == code).unwrap().clone();
        counts_as_figures(&child["counts"])
    };
    let url = "/subtree/HGS?period=2026-Q3";
    let (_, html) = page.get(url).await;
    let before = figures(row_of(&html, "HX-2"));
    assert!(before[0] > 0, "HX-2 is behind: {before:?}");

    // Through this server (the API): the next view shows it.
    t.record("HX-2", "A7", "2026-09-10").await;
    let (_, rollup) = t.get("/api/v1/orgs/HGS/rollup?period=2026-Q3").await;
    let (_, html) = page.get(url).await;
    let after_record = figures(row_of(&html, "HX-2"));
    assert_ne!(after_record, before, "the record counts at once");
    assert_eq!(after_record, fresh(&rollup, "HX-2"));

    // Behind this server's back (another process): the kept copy serves until its age is up.
    let waived = sqlx::query(
        "update duty set waived_at = now(), waived_reason = '另一台服务器上免除'
         where org_id = (select id from org where code = 'HX-2') and period_key = '2026-Q3' and class = 'pending'",
    )
    .execute(&t.pool)
    .await
    .unwrap()
    .rows_affected();
    assert!(waived > 0);
    let (_, rollup) = t.get("/api/v1/orgs/HGS/rollup?period=2026-Q3").await;
    let (_, html) = page.get(url).await;
    assert_eq!(figures(row_of(&html, "HX-2")), after_record, "still the copy");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (_, html) = page.get(url).await;
    let later = figures(row_of(&html, "HX-2"));
    assert_eq!(later, fresh(&rollup, "HX-2"), "read again once the copy is two seconds old");
    assert_eq!(later[0], 0, "nothing overdue once waived: {later:?}");
}
