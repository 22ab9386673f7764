//! The notifications list: what the scheduler told the user, in words, and the unread count.

mod common;

use common::{PageClient, TestApp};
use reqwest::StatusCode;
use serde_json::json;

/// The company tree a week before the first quarter's reminder window opens, with
/// secretaries for both branches and the company committee.
async fn company() -> TestApp {
    let t = TestApp::spawn_at("2026-03-20T10:00:00+08:00").await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    for (login, org) in [("zhang", "HX-1"), ("zhou", "HX-2"), ("lihua", "HGS")] {
        t.user(login, false).await;
        let (st, body) = t
            .post(
                &format!("/api/v1/orgs/{org}/roles"),
                json!({"login": login, "role": "secretary", "from": "2020-01-01"}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
    }
    t
}

/// A scheduler pass at `now`.
async fn tick_at(t: &TestApp, now: &str) {
    t.set_now(now);
    zerenzhi::scheduler::tick(&t.app, t.clock.now()).await.unwrap();
}

/// The number in the top bar's badge, if any.
fn badge(html: &str) -> Option<u32> {
    let i = html.find("class=\"badge\"")?;
    let rest = &html[i..];
    let start = rest.find('>')? + 1;
    let end = rest.find("</span>")?;
    rest[start..end].trim().parse().ok()
}

/// The event ids of the unread notifications' "open" buttons, in order.
fn unread_ids(html: &str) -> Vec<String> {
    html.split("action=\"/notifications/")
        .skip(1)
        .filter_map(|s| s.split_once("/read\"").map(|(id, _)| id.to_owned()))
        .collect()
}

async fn notifications(page: &PageClient) -> String {
    let (st, html) = page.get("/notifications").await;
    assert_eq!(st, StatusCode::OK);
    html
}

#[tokio::test]
async fn inside_the_reminder_window_the_secretary_is_told_in_words_and_the_badge_counts() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;
    let html = notifications(&zhang).await;
    assert!(html.contains("暂无通知"), "nothing before the window opens");
    assert_eq!(badge(&html), None);

    tick_at(&t, "2026-03-26T10:00:00+08:00").await;
    let zhang = t.sign_in("zhang").await; // six days on, the old session has expired
    let html = notifications(&zhang).await;
    assert!(
        html.contains("HX-1 组织「召开意识形态分析研判会」2026年第一季度将于 3月31日 截止"),
        "a due-soon notice in words: {html}"
    );
    assert_eq!(badge(&html), Some(3), "A7, A8 and A11 are due soon");
    assert_eq!(unread_ids(&html).len(), 3);
    assert!(html.contains("有 3 条未读") && html.contains("全部标为已读"));
    assert!(!html.contains("HX-2 组织"), "not another branch's");

    let (_, html) = zhang.get("/notifications?lang=en").await;
    assert!(html.contains("召开意识形态分析研判会") && html.contains("for Q1 2026 is due on 31 Mar"), "{html}");
}

#[tokio::test]
async fn opening_a_notification_marks_it_read_and_leads_to_its_duty() {
    let t = company().await;
    tick_at(&t, "2026-03-26T10:00:00+08:00").await;
    let zhang = t.sign_in("zhang").await;
    let html = notifications(&zhang).await;
    let ids = unread_ids(&html);
    let (st, location, _) = zhang.post(&format!("/notifications/{}/read", ids[0]), &[]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert!(location.as_deref().is_some_and(|l| l.starts_with("/duties/")), "{location:?}");

    let html = notifications(&zhang).await;
    assert_eq!(badge(&html), Some(2), "one fewer unread");
    assert_eq!(unread_ids(&html).len(), 2);
    assert!(html.contains(location.as_deref().unwrap()), "a read one still links to its duty");

    let (st, location, _) = zhang.post("/notifications/read-all", &[]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/notifications"));
    let html = notifications(&zhang).await;
    assert_eq!(badge(&html), None, "the badge is gone");
    assert!(html.contains("全部已读") && !html.contains("全部标为已读"));
}

#[tokio::test]
async fn another_users_notification_cannot_be_marked_and_marking_needs_the_csrf_token() {
    let t = company().await;
    tick_at(&t, "2026-03-26T10:00:00+08:00").await;
    let zhang = t.sign_in("zhang").await;
    let zhou = t.sign_in("zhou").await;
    let theirs = unread_ids(&notifications(&zhou).await);
    assert_eq!(theirs.len(), 3);

    let (st, _, _) = zhang.post(&format!("/notifications/{}/read", theirs[0]), &[]).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "someone else's notification is not found");
    let (st, _, _) = zhang.post("/notifications/abc/read", &[]).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(badge(&notifications(&zhou).await), Some(3), "and stays unread for its owner");

    let mine = unread_ids(&notifications(&zhang).await);
    let no_token = zhang.http.post(format!("{}/notifications/{}/read", t.base, mine[0])).send().await.unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let wrong = zhang
        .http
        .post(format!("{}/notifications/read-all", t.base))
        .form(&[("csrf", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(badge(&notifications(&zhang).await), Some(3), "nothing was marked");
}

#[tokio::test]
async fn the_parents_secretary_is_told_of_a_branchs_overdue_duty_naming_the_branch() {
    let t = company().await;
    tick_at(&t, "2026-03-26T10:00:00+08:00").await;
    tick_at(&t, "2026-04-01T09:00:00+08:00").await;
    let lihua = t.sign_in("lihua").await;
    let html = notifications(&lihua).await;
    assert!(
        html.contains(
            "下级组织HX-1 组织「召开意识形态分析研判会」2026年第一季度已逾期（截止日为 3月31日），请督促落实"
        ),
        "{html}"
    );
    assert!(html.contains("下级组织HX-2 组织「召开意识形态分析研判会」"));
    let newest = html.find("已逾期").unwrap();
    let older = html.find("将于").expect("the committee's own reminder for A3");
    assert!(newest < older, "newest first");
}
