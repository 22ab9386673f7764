//! The secretary's workbench, over HTTP with a signed-in session.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::json;

async fn branch_with_secretary() -> TestApp {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    t.user("zhang", false).await;
    let (st, body) =
        t.post("/api/v1/orgs/HX-1/roles", json!({"login": "zhang", "role": "secretary", "from": "2020-01-01"})).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    t
}

#[tokio::test]
async fn a_secretary_sees_what_is_due_soon_first_with_its_clause_and_a_record_button() {
    let t = branch_with_secretary().await;
    let page = t.sign_in("zhang").await;
    let (st, html) = page.get("/").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("HX-1"), "the branch is shown");
    let attention = html.find("需要尽快办理").expect("a needs-attention group");
    let analysis = html.find("召开意识形态分析研判会").expect("A7 is listed");
    assert!(attention < analysis, "the due-soon quarterly duties come first");
    assert!(html.contains("第八条(三)"), "the clause is shown");
    assert!(html.contains("还剩 5 天"), "the time left is in words: {html}");
    let link = html.find("/orgs/HX-1/records/new?rule=A7").expect("one button to record it");
    assert!(html[link..link + 60].contains("period=2026-Q1"), "for the right period");
}

#[tokio::test]
async fn a_returned_record_shows_the_superiors_comment_on_the_workbench() {
    let t = branch_with_secretary().await;
    let id = t.record("HX-1", "A8", "2026-03-20").await;
    let (st, _) =
        t.post(&format!("/api/v1/records/{id}/review"), json!({"decision": "return", "comment": "请补充签到表"})).await;
    assert_eq!(st, StatusCode::OK);
    let page = t.sign_in("zhang").await;
    let (_, html) = page.get("/").await;
    assert!(html.contains("请补充签到表"), "{html}");
    assert!(html.contains(&format!("/records/{id}")), "a link to correct it");
}

#[tokio::test]
async fn the_workbench_speaks_english_on_request_and_needs_a_session() {
    let t = branch_with_secretary().await;
    let anon = t.anonymous();
    let (st, _) = anon.get("/").await;
    assert_eq!(st, StatusCode::SEE_OTHER, "a visitor is sent to sign in");
    let page = t.sign_in("zhang").await;
    let (_, html) = page.get("/?lang=en").await;
    assert!(html.contains("Workbench") && html.contains("days left"), "{html}");
    assert!(html.contains("lang=\"en\""));
}
