//! The status table of DESIGN.md section 2, row by row, end to end through the HTTP API
//! with a controlled clock.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::json;

/// A company tree with template A installed from the start of 2026, at 2026-02-10.
async fn company() -> TestApp {
    let t = TestApp::spawn_at("2026-02-10T09:00:00+08:00").await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    t
}

#[tokio::test]
async fn a_duty_is_open_until_its_lead_window_then_due_soon_then_overdue_at_the_deadline() {
    let t = company().await;
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "open");
    t.set_now("2026-03-24T23:59:59+08:00");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "open");
    t.set_now("2026-03-25T00:00:00+08:00");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "due_soon");
    t.set_now("2026-03-31T23:59:59+08:00");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "due_soon");
    t.set_now("2026-04-01T00:00:00+08:00");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "overdue");
}

#[tokio::test]
async fn a_record_submitted_at_the_deadline_itself_is_on_time_and_one_second_later_is_late() {
    let t = company().await;
    t.set_now("2026-04-01T00:00:00+08:00");
    t.record("HX-1", "A7", "2026-03-31").await;
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "fulfilled");
    t.set_now("2026-04-01T00:00:01+08:00");
    t.record("HX-2", "A7", "2026-03-31").await;
    assert_eq!(t.status_of("HX-2", "2026-Q1", "A7").await, "late");
}

#[tokio::test]
async fn a_rule_needing_two_records_is_fulfilled_by_the_second_and_judged_by_its_time() {
    let t = company().await;
    t.record("HX-1", "A6", "2026-02-01").await;
    assert_eq!(t.status_of("HX-1", "2026", "A6").await, "open", "one of two is not enough");
    t.set_now("2026-12-31T23:59:00+08:00");
    t.record("HX-1", "A6", "2026-12-31").await;
    t.set_now("2027-01-02T00:00:00+08:00");
    assert_eq!(t.status_of("HX-1", "2026", "A6").await, "fulfilled");
}

#[tokio::test]
async fn a_record_awaiting_review_shows_submitted_even_past_the_deadline() {
    let t = company().await;
    t.set_now("2026-03-26T16:00:00+08:00");
    t.record("HX-1", "A8", "2026-03-24").await;
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A8").await, "submitted");
    t.set_now("2026-05-20T10:00:00+08:00");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A8").await, "submitted", "a slow review makes no one late");
}

#[tokio::test]
async fn accepting_an_on_time_submission_fulfils_even_when_the_review_comes_late() {
    let t = company().await;
    t.set_now("2026-03-26T16:00:00+08:00");
    let id = t.record("HX-2", "A8", "2026-03-24").await;
    t.set_now("2026-04-20T10:00:00+08:00");
    let (st, body) =
        t.post(&format!("/api/v1/records/{id}/review"), json!({"decision": "accept", "comment": ""})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "accepted");
    assert_eq!(t.status_of("HX-2", "2026-Q1", "A8").await, "fulfilled");
}

#[tokio::test]
async fn a_returned_record_leaves_the_duty_overdue_and_its_resubmission_is_judged_by_the_new_time() {
    let t = company().await;
    t.set_now("2026-03-30T10:00:00+08:00");
    let id = t.record("HX-1", "A8", "2026-03-30").await;
    t.set_now("2026-04-03T10:00:00+08:00");
    let (st, _) =
        t.post(&format!("/api/v1/records/{id}/review"), json!({"decision": "return", "comment": "请补充材料"})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A8").await, "overdue");
    t.set_now("2026-04-05T10:00:00+08:00");
    let (st, body) = t.post(&format!("/api/v1/records/{id}/submit"), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A8").await, "submitted");
    let (st, _) = t.post(&format!("/api/v1/records/{id}/review"), json!({"decision": "accept"})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A8").await, "late");
}

#[tokio::test]
async fn closing_before_the_periods_last_day_cancels_and_closing_on_it_does_not() {
    let t = company().await;
    t.org("HX-3", "branch", Some("HGS"), "2017-01-01").await;
    t.set_now("2026-09-20T10:00:00+08:00");
    let (st, _) = t.patch("/api/v1/orgs/HX-2", json!({"active_until": "2026-09-29"})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = t.patch("/api/v1/orgs/HX-3", json!({"active_until": "2026-09-30"})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(t.status_of("HX-2", "2026-Q3", "A7").await, "cancelled");
    assert_eq!(t.status_of("HX-3", "2026-Q3", "A7").await, "open");
    assert_eq!(t.status_of("HX-3", "2026", "A6").await, "cancelled");
    t.set_now("2026-10-01T00:00:00+08:00");
    assert_eq!(t.status_of("HX-3", "2026-Q3", "A7").await, "overdue");
    assert!(t.statuses("HX-3", "2026-Q4").await.is_empty(), "closed before Q4 began: owes nothing");
}

#[tokio::test]
async fn fulfilled_wins_over_cancelled_and_waived_over_everything() {
    let t = company().await;
    t.set_now("2026-07-10T10:00:00+08:00");
    t.record("HX-2", "A7", "2026-07-09").await;
    let (st, _) = t.patch("/api/v1/orgs/HX-2", json!({"active_until": "2026-08-31"})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(t.status_of("HX-2", "2026-Q3", "A7").await, "fulfilled");
    assert_eq!(t.status_of("HX-2", "2026-Q3", "A11").await, "cancelled");
    let (_, duties) = t.get("/api/v1/orgs/HX-2/duties?period=2026-Q3").await;
    let a11 =
        duties.as_array().unwrap().iter().find(|d| d["rule"] == "A11").unwrap()["id"].as_str().unwrap().to_owned();
    let (st, body) = t.post(&format!("/api/v1/duties/{a11}/waive"), json!({"reason": "支部撤并"})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(t.status_of("HX-2", "2026-Q3", "A11").await, "waived");
}

#[tokio::test]
async fn a_withdrawn_record_stops_counting() {
    let t = company().await;
    let id = t.record("HX-1", "A7", "2026-02-09").await;
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "fulfilled");
    let (st, body) = t.post(&format!("/api/v1/records/{id}/withdraw"), json!({"reason": "误报"})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "withdrawn");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "open");
}

#[tokio::test]
async fn duties_come_in_the_order_their_rules_stand_and_only_for_the_exact_period() {
    let t = company().await;
    let rules: Vec<String> = t.statuses("HX-1", "2026").await.into_iter().map(|(r, _)| r).collect();
    assert_eq!(rules, ["A6", "A9", "A10", "A12"]);
    let rules: Vec<String> = t.statuses("HGS", "2026").await.into_iter().map(|(r, _)| r).collect();
    assert_eq!(rules, ["A1", "A4", "A5", "A12", "A14"]);
    assert!(t.statuses("HX-1", "2026-Q2").await.is_empty(), "a future period has no duties yet");
    assert!(t.statuses("HJT", "2026").await.is_empty(), "the group committee's kind has no rules");
}

#[tokio::test]
async fn a_new_period_has_its_duties_the_moment_it_starts_without_a_scheduler_pass() {
    let t = company().await;
    t.set_now("2026-03-31T23:59:59+08:00");
    assert!(t.statuses("HX-1", "2026-Q2").await.is_empty());
    t.set_now("2026-04-01T00:00:00+08:00");
    let q2: Vec<String> = t.statuses("HX-1", "2026-Q2").await.into_iter().map(|(r, s)| format!("{r}:{s}")).collect();
    assert_eq!(q2, ["A7:open", "A8:open", "A11:open"]);
}

#[tokio::test]
async fn an_organisation_founded_mid_period_owes_from_the_next_period() {
    let t = company().await;
    t.org("HX-3", "branch", Some("HGS"), "2026-04-15").await;
    t.set_now("2026-07-08T11:00:00+08:00");
    assert!(t.statuses("HX-3", "2026").await.is_empty());
    assert!(t.statuses("HX-3", "2026-Q2").await.is_empty());
    assert_eq!(t.statuses("HX-3", "2026-Q3").await.len(), 3);
}

#[tokio::test]
async fn each_leadership_member_owes_a13_and_files_it_for_themselves() {
    let t = company().await;
    let member_token = t.user("wang", false).await;
    t.user("li", false).await;
    for login in ["wang", "li"] {
        let (st, body) =
            t.post("/api/v1/orgs/HX-1/roles", json!({"login": login, "role": "member", "from": "2025-01-01"})).await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
    }
    let (_, duties) = t.get("/api/v1/orgs/HX-1/duties?period=2026").await;
    let a13: Vec<&serde_json::Value> = duties.as_array().unwrap().iter().filter(|d| d["rule"] == "A13").collect();
    assert_eq!(a13.len(), 2, "one duty per member: {duties}");
    let wang = a13.iter().find(|d| d["person_name"] == "wang").unwrap()["person"].clone();
    let (st, body) = t
        .call(
            "POST",
            "/api/v1/orgs/HX-1/records",
            &member_token,
            Some(json!({"rule": "A13", "person": wang, "occurred_on": "2026-02-01", "title": "述职报告", "body": "…", "attendees": []})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (_, duties) = t.get("/api/v1/orgs/HX-1/duties?period=2026").await;
    let statuses: Vec<(String, String)> = duties
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["rule"] == "A13")
        .map(|d| (d["person_name"].as_str().unwrap().to_owned(), d["status"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(statuses, [("li".to_owned(), "open".to_owned()), ("wang".to_owned(), "fulfilled".to_owned())]);
}

#[tokio::test]
async fn the_rollup_counts_every_status_over_each_childs_subtree() {
    let t = company().await;
    t.set_now("2026-03-26T16:00:00+08:00");
    t.record("HX-1", "A7", "2026-03-20").await;
    t.record("HX-2", "A8", "2026-03-24").await;
    let (st, body) = t.get("/api/v1/orgs/HJT/rollup?period=2026-Q1").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let want = json!({"waived": 0, "fulfilled": 1, "late": 0, "cancelled": 0, "submitted": 1, "overdue": 0, "due_soon": 5, "open": 0});
    assert_eq!(body["counts"], want, "HGS A3 + 2 branches × (A7, A8, A11)");
    assert_eq!(body["children"][0]["code"], "HGS");
    assert_eq!(body["children"][0]["counts"], want);
    let (_, hgs) = t.get("/api/v1/orgs/HGS/rollup?period=2026-Q1").await;
    let hx1 = hgs["children"].as_array().unwrap().iter().find(|c| c["code"] == "HX-1").unwrap();
    assert_eq!(hx1["counts"]["fulfilled"], 1);
    assert_eq!(hx1["counts"]["due_soon"], 2);
    t.set_now("2026-04-01T00:00:00+08:00");
    let (_, body) = t.get("/api/v1/orgs/HJT/rollup?period=2026-Q1").await;
    assert_eq!(body["counts"]["overdue"], 5, "the deadline passing moves due_soon to overdue: {body}");
}
