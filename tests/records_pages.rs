//! The record form, the record page, the duty page and the review queue, over HTTP with
//! signed-in sessions: what a branch secretary and their superior see and do.

mod common;

use common::{PageClient, TestApp};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::json;

/// A small but real PDF.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0A, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// The company tree on 26 March 2026 with the ideology system installed, and: zhang the
/// secretary of branch HX-1, li the secretary of the company committee HGS above it,
/// wang the secretary of the sibling branch HX-2, zhao a leadership member of HX-2.
async fn company() -> TestApp {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    for (login, org, role) in [
        ("zhang", "HX-1", "secretary"),
        ("li", "HGS", "secretary"),
        ("wang", "HX-2", "secretary"),
        ("zhao", "HX-2", "member"),
    ] {
        t.user(login, false).await;
        let (st, body) = t
            .post(&format!("/api/v1/orgs/{org}/roles"), json!({"login": login, "role": role, "from": "2020-01-01"}))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
    }
    t
}

/// Post a multipart form as the page does: the CSRF token in the action URL's query.
async fn post_form(page: &PageClient, path: &str, form: Form) -> (StatusCode, Option<String>, String) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let resp = page
        .http
        .post(format!("{}{}{}csrf={}", page.base, path, sep, page.csrf))
        .multipart(form)
        .send()
        .await
        .expect("request");
    let st = resp.status();
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (st, location, resp.text().await.unwrap())
}

fn text_form(fields: &[(&str, &str)]) -> Form {
    fields.iter().fold(Form::new(), |f, (k, v)| f.text(k.to_string(), v.to_string()))
}

fn file(name: &str, bytes: &[u8]) -> Part {
    Part::bytes(bytes.to_vec()).file_name(name.to_owned())
}

/// The record id a redirect to `/records/{id}?…` names.
fn record_id(location: &Option<String>) -> String {
    let loc = location.as_deref().expect("a redirect");
    let rest = loc.strip_prefix("/records/").unwrap_or_else(|| panic!("a record page: {loc}"));
    rest.split(['?', '/']).next().unwrap().to_owned()
}

async fn duty_id(t: &TestApp, org: &str, period: &str, rule: &str) -> String {
    let (st, body) = t.get(&format!("/api/v1/orgs/{org}/duties?period={period}")).await;
    assert_eq!(st, StatusCode::OK);
    body.as_array().unwrap().iter().find(|d| d["rule"] == rule).expect("the duty")["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_report_with_an_attachment_is_returned_with_a_comment_corrected_and_then_accepted() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;

    let (st, html) = zhang.get("/orgs/HX-1/records/new?rule=A8&period=2026-Q1").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("向公司党委汇报意识形态工作"), "the form names the duty");
    assert!(html.contains("enctype=\"multipart/form-data\""));
    assert!(html.contains(&format!("action=\"/orgs/HX-1/records?csrf={}\"", zhang.csrf)), "the token rides in the URL");
    assert!(html.contains("20 MB"), "the size limit is shown");
    assert!(html.contains("保存草稿") && html.contains("name=\"action\" value=\"submit\""), "draft and submit buttons");

    let form = text_form(&[
        ("rule", "A8"),
        ("period", "2026-Q1"),
        ("person", ""),
        ("occurred_on", "2026-03-20"),
        ("title", "一季度意识形态工作情况汇报"),
        ("body", "一、基本情况\n二、存在问题"),
        ("action", "submit"),
    ])
    .part("files", file("汇报材料.pdf", PDF));
    let (st, location, body) = post_form(&zhang, "/orgs/HX-1/records", form).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    let id = record_id(&location);
    assert!(location.unwrap().contains("notice=submitted"));

    let (st, html) = zhang.get(&format!("/records/{id}?notice=submitted")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("一季度意识形态工作情况汇报"));
    assert!(html.contains("待审核"), "the state badge");
    assert!(html.contains("已提交，等待上级审核"), "the notice");
    assert!(html.contains("汇报材料.pdf") && html.contains("/attachments/"), "the attachment is listed");
    assert!(!html.contains("name=\"decision\""), "the branch cannot review its own record");

    // The superior finds it in the queue and returns it with a comment.
    let li = t.sign_in("li").await;
    let (st, html) = li.get("/review").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("一季度意识形态工作情况汇报") && html.contains("HX-1 组织"), "{html}");
    assert!(html.contains(&format!("/records/{id}")));
    assert!(html.contains("已等待 0 天") || html.contains("今天报送"));
    let (st, html) = li.get(&format!("/records/{id}")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("name=\"decision\" value=\"return\""), "the superior may review");
    let (st, location, _) =
        li.post(&format!("/records/{id}/review"), &[("decision", "return"), ("comment", "请补充会议签到表")]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let location = location.unwrap();
    assert!(location.starts_with("/review?notice=returned"), "{location}");
    let (_, html) = li.get(&location).await;
    assert!(html.contains("已退回：“一季度意识形态工作情况汇报”"), "a notice after the decision");
    assert!(!html.contains(&format!("href=\"/records/{id}\"")), "no longer in the queue");

    // The branch sees the comment on its workbench and on the record.
    let (_, html) = zhang.get("/").await;
    assert!(html.contains("请补充会议签到表"), "the comment is on the workbench");
    let (_, html) = zhang.get(&format!("/records/{id}")).await;
    assert!(html.contains("请补充会议签到表") && html.contains("已退回"));
    assert!(html.contains("按意见修改"));

    // Corrected, with the sign-in sheet as a photo, and resubmitted.
    let (st, html) = zhang.get(&format!("/records/{id}/edit")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("value=\"一季度意识形态工作情况汇报\""), "the form holds the current text");
    assert!(html.contains("已报送过，日期不能再改"), "the date is fixed once submitted");
    let form = text_form(&[
        ("occurred_on", "2026-03-20"),
        ("title", "一季度意识形态工作情况汇报（补充签到表）"),
        ("body", "一、基本情况\n二、存在问题\n三、签到表见附件"),
        ("action", "submit"),
    ])
    .part("files", file("签到表.png", PNG));
    let (st, location, body) = post_form(&zhang, &format!("/records/{id}/edit"), form).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    assert!(location.unwrap().contains("notice=resubmitted"));

    let (_, html) = li.get("/review").await;
    assert!(html.contains("补充签到表"), "back in the queue");
    let (st, location, _) = li.post(&format!("/records/{id}/review"), &[("decision", "accept"), ("comment", "")]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert!(location.unwrap().starts_with("/review?notice=accepted"));

    assert_eq!(t.status_of("HX-1", "2026-Q1", "A8").await, "fulfilled");
    let duty = duty_id(&t, "HX-1", "2026-Q1", "A8").await;
    let (st, html) = zhang.get(&format!("/duties/{duty}")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("status-fulfilled"), "the duty is fulfilled");
    assert!(html.contains("补充签到表") && html.contains("已通过"));

    // The record page tells the whole story.
    let (_, html) = zhang.get(&format!("/records/{id}")).await;
    for step in
        ["提交，报上级审核", "退回修改", "请补充会议签到表", "修改了内容（形成第 2 版）", "修改后重新提交", "审核通过"]
    {
        assert!(html.contains(step), "history shows {step}");
    }
    assert!(html.contains("汇报材料.pdf") && html.contains("签到表.png"));
    assert!(html.contains(&format!("/records/{id}/versions/1")));
    let (st, html) = zhang.get(&format!("/records/{id}/versions/1")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("一季度意识形态工作情况汇报") && !html.contains("三、签到表见附件"), "version 1 as it was");
}

#[tokio::test]
async fn a_meeting_is_recorded_with_its_attendance_and_laid_out_as_minutes() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;
    let (st, html) = zhang.get("/orgs/HX-1/records/new?rule=A7&period=2026-Q1").await;
    assert_eq!(st, StatusCode::OK);
    for field in [
        "name=\"place\"",
        "name=\"host\"",
        "name=\"expected\"",
        "name=\"present\"",
        "name=\"attendees\"",
        "name=\"absentees\"",
    ] {
        assert!(html.contains(field), "a meeting form has {field}");
    }
    assert!(html.contains("value=\"2026-03-26\""), "the date defaults to today");
    assert!(html.contains("此项不需上级审核"), "the form says it counts at once");

    let form = text_form(&[
        ("rule", "A7"),
        ("period", "2026-Q1"),
        ("occurred_on", "2026-03-25"),
        ("place", "党员活动室"),
        ("host", "张伟"),
        ("expected", "9"),
        ("present", "８"),
        ("attendees", "张三、李四\n王五"),
        ("absentees", "赵六：出差"),
        ("title", "一季度意识形态分析研判会"),
        ("body", "分析了本季度意识形态领域情况。"),
        ("action", "submit"),
    ]);
    let (st, location, body) = post_form(&zhang, "/orgs/HX-1/records", form).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    let id = record_id(&location);
    assert!(location.unwrap().contains("notice=accepted_directly"));
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "fulfilled");

    let (_, html) = zhang.get(&format!("/records/{id}")).await;
    assert!(html.contains("会 议 记 录"), "laid out as minutes");
    assert!(html.contains("党员活动室") && html.contains("张伟"));
    assert!(html.contains("应到 9 人") && html.contains("实到 8 人"), "full-width digits count");
    assert!(html.contains("张三、李四、王五") && html.contains("（共 3 人）"));
    assert!(html.contains("赵六") && html.contains("（出差）"));
    assert!(html.contains("已通过"));
    assert!(html.contains("data-print"), "a print button");
}

#[tokio::test]
async fn a_form_with_mistakes_comes_back_with_everything_typed_and_the_fields_marked() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;
    let typed = [
        ("rule", "A7"),
        ("period", "2026-Q1"),
        ("occurred_on", "2026-04-02"),
        ("place", "三楼会议室<b>"),
        ("host", "张伟"),
        ("expected", "9"),
        ("present", "12"),
        ("attendees", "张三、李四"),
        ("absentees", "赵六：出差"),
        ("title", ""),
        ("body", "会议纪要正文第一段"),
        ("action", "submit"),
    ];
    let (st, _, html) = post_form(&zhang, "/orgs/HX-1/records", text_form(&typed)).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("表单有需要修改的地方"), "a summary line");
    for value in [
        "2026-04-02",
        "三楼会议室&#60;b&#62;",
        "张伟",
        "value=\"9\"",
        "value=\"12\"",
        "张三、李四",
        "赵六：出差",
        "会议纪要正文第一段",
    ] {
        assert!(html.contains(value), "{value} is kept: {html}");
    }
    assert!(html.contains("日期不能晚于今天"));
    assert!(html.contains("请填写会议主题"));
    assert!(html.contains("实到人数不能多于应到人数"));
    assert!(html.matches("aria-invalid=\"true\"").count() >= 3, "the fields are marked");
    assert!(html.contains("class=\"invalid\""));

    let mut outside = typed.to_vec();
    outside[2] = ("occurred_on", "2025-12-30");
    outside[6] = ("present", "8");
    outside[9] = ("title", "研判会");
    let (st, _, html) = post_form(&zhang, "/orgs/HX-1/records", text_form(&outside)).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("日期应在2026年第一季度之内（2026年1月1日至2026年3月31日）"), "{html}");
    assert!(html.contains("value=\"研判会\""));

    let mut bad_count = outside.clone();
    bad_count[2] = ("occurred_on", "2026-03-02");
    bad_count[5] = ("expected", "九人");
    let (st, _, html) = post_form(&zhang, "/orgs/HX-1/records", text_form(&bad_count)).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("请填写 0 到 100000 之间的整数") && html.contains("value=\"九人\""));

    let n: i64 = sqlx::query_scalar("select count(*) from record").fetch_one(&t.pool).await.unwrap();
    assert_eq!(n, 0, "nothing was filed");

    let (_, html) = zhang.get("/orgs/HX-1/records/new?rule=A7&period=2026-Q1&lang=en").await;
    assert!(html.contains("Save draft") && html.contains("Attendees"), "the form speaks English too");
}

#[tokio::test]
async fn a_draft_is_kept_moved_to_another_day_and_submitted_later() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;
    let form = text_form(&[
        ("rule", "A7"),
        ("period", "2026-Q1"),
        ("occurred_on", "2026-03-10"),
        ("title", "研判会（草稿）"),
        ("body", "待补充"),
        ("action", "save"),
    ]);
    let (st, location, body) = post_form(&zhang, "/orgs/HX-1/records", form).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    let id = record_id(&location);
    assert!(location.unwrap().contains("notice=draft_saved"));
    assert_ne!(t.status_of("HX-1", "2026-Q1", "A7").await, "fulfilled", "a draft does not count");

    let (_, html) = zhang.get("/").await;
    assert!(html.contains(&format!("/records/{id}")), "the workbench offers to continue the draft");
    let (_, html) = zhang.get(&format!("/records/{id}")).await;
    assert!(html.contains("草稿") && html.contains("编辑草稿"));
    assert!(html.contains(&format!("action=\"/records/{id}/submit\"")));

    let form = text_form(&[("occurred_on", "2026-03-12"), ("title", "研判会"), ("body", "已补充"), ("action", "save")]);
    let (st, _, body) = post_form(&zhang, &format!("/records/{id}/edit"), form).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    let (_, html) = zhang.get(&format!("/records/{id}")).await;
    assert!(html.contains("把日期改为 2026年3月12日"), "the history says the day moved");
    assert!(html.contains("2026年3月12日"));

    let (st, location, _) = zhang.post(&format!("/records/{id}/submit"), &[]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert!(location.unwrap().contains("notice=accepted_directly"));
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "fulfilled");
}

#[tokio::test]
async fn refusals_on_the_record_page_are_explained_in_place() {
    let t = company().await;
    // li is also the acting secretary of HX-1, files its report and cannot review it.
    let (st, _) =
        t.post("/api/v1/orgs/HX-1/roles", json!({"login": "li", "role": "secretary", "from": "2020-01-01"})).await;
    assert_eq!(st, StatusCode::CREATED);
    let li = t.sign_in("li").await;
    let form = text_form(&[
        ("rule", "A8"),
        ("period", "2026-Q1"),
        ("occurred_on", "2026-03-20"),
        ("title", "自己报送的汇报"),
        ("action", "submit"),
    ]);
    let (st, location, _) = post_form(&li, "/orgs/HX-1/records", form).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let id = record_id(&location);
    let (_, html) = li.get("/review").await;
    assert!(html.contains("本人提交，由他人审核"), "the queue says who decides");
    let (_, html) = li.get(&format!("/records/{id}")).await;
    assert!(html.contains("这份记录是您本人提交的"));
    let (st, _, html) = li.post(&format!("/records/{id}/review"), &[("decision", "accept")]).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(html.contains("您不能审核自己提交的记录"), "{html}");

    // Another reviewer returns it only with a comment; a second decision is refused.
    t.user("chen", false).await;
    t.post("/api/v1/orgs/HGS/roles", json!({"login": "chen", "role": "coordinator", "from": "2020-01-01"})).await;
    let chen = t.sign_in("chen").await;
    let (st, _, html) = chen.post(&format!("/records/{id}/review"), &[("decision", "return"), ("comment", "  ")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("退回时请写明需要修改的地方"));
    let (st, _, _) = chen.post(&format!("/records/{id}/review"), &[("decision", "accept")]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let (st, _, html) =
        chen.post(&format!("/records/{id}/review"), &[("decision", "return"), ("comment", "再看看")]).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert!(html.contains("可能已被他人处理"));

    // Withdrawing needs a reason, and then the record stops counting.
    let (st, _, html) = li.post(&format!("/records/{id}/withdraw"), &[("reason", "")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("请写明撤回原因"));
    let (st, _, _) = li.post(&format!("/records/{id}/withdraw"), &[("reason", "报错了组织")]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let (_, html) = li.get(&format!("/records/{id}")).await;
    assert!(html.contains("已撤回，原因：报错了组织") && html.contains("撤回了记录"));
    assert_ne!(t.status_of("HX-1", "2026-Q1", "A8").await, "fulfilled");
}

#[tokio::test]
async fn the_queue_says_when_a_deadline_has_passed_without_making_anyone_late() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;
    let form = text_form(&[
        ("rule", "A8"),
        ("period", "2026-Q1"),
        ("occurred_on", "2026-03-25"),
        ("title", "按时报送的汇报"),
        ("action", "submit"),
    ]);
    let (st, _, _) = post_form(&zhang, "/orgs/HX-1/records", form).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    t.set_now("2026-04-08T09:00:00+08:00");
    let li = t.sign_in("li").await;
    let (_, html) = li.get("/review").await;
    assert!(html.contains("按时报送的汇报"));
    assert!(html.contains("截止日期已过（按时报送的不算逾期）"), "{html}");
    assert!(html.contains("已等待 13 天"));
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A8").await, "submitted");
    let duty = duty_id(&t, "HX-1", "2026-Q1", "A8").await;
    let (_, html) = li.get(&format!("/duties/{duty}")).await;
    assert!(html.contains("截止日期已过"));
}

#[tokio::test]
async fn other_branches_and_their_members_cannot_see_or_touch_a_record() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;
    let form = text_form(&[
        ("rule", "A8"),
        ("period", "2026-Q1"),
        ("occurred_on", "2026-03-20"),
        ("title", "保密的汇报"),
        ("action", "submit"),
    ]);
    let (_, location, _) = post_form(&zhang, "/orgs/HX-1/records", form).await;
    let id = record_id(&location);
    let duty = duty_id(&t, "HX-1", "2026-Q1", "A8").await;

    for login in ["wang", "zhao"] {
        let other = t.sign_in(login).await;
        for path in [
            format!("/records/{id}"),
            format!("/records/{id}/edit"),
            format!("/records/{id}/versions/1"),
            format!("/duties/{duty}"),
            "/orgs/HX-1/records/new?rule=A8&period=2026-Q1".to_owned(),
        ] {
            let (st, html) = other.get(&path).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "{login} {path}");
            assert!(!html.contains("保密的汇报"));
        }
        let (st, _, _) = other.post(&format!("/records/{id}/review"), &[("decision", "accept")]).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{login} cannot review");
        let (st, _, _) = other.post(&format!("/records/{id}/withdraw"), &[("reason", "x")]).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{login} cannot withdraw");
        let (st, _, _) = post_form(&other, &format!("/records/{id}/edit"), text_form(&[("title", "改掉")])).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{login} cannot edit");
        let (_, html) = other.get("/review").await;
        assert!(!html.contains("保密的汇报"));
    }
    // The superior sees the record but does not file the branch's records.
    let li = t.sign_in("li").await;
    let (st, _) = li.get(&format!("/records/{id}")).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = li.get(&format!("/records/{id}/edit")).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, _) = li.post(&format!("/records/{id}/withdraw"), &[("reason", "x")]).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, _) = li.post(&format!("/records/{id}/withdraw"), &[("reason", "")]).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "refused before the form is checked");
    // The branch files its record but does not review it.
    let (st, _, html) = zhang.post(&format!("/records/{id}/review"), &[("decision", "return"), ("comment", "")]).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(html.contains("您没有进行此操作的权限"));
    assert_eq!(t.anonymous().get(&format!("/records/{id}")).await.0, StatusCode::SEE_OTHER, "a visitor signs in first");
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;
    let fields = [("rule", "A7"), ("period", "2026-Q1"), ("occurred_on", "2026-03-20"), ("title", "无令牌")];
    let resp = zhang
        .http
        .post(format!("{}/orgs/HX-1/records", zhang.base))
        .multipart(text_form(&fields))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = zhang
        .http
        .post(format!("{}/orgs/HX-1/records?csrf=wrong-token", zhang.base))
        .multipart(text_form(&fields))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = zhang
        .http
        .post(format!("{}/records/1/review", zhang.base))
        .form(&[("decision", "accept")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let n: i64 = sqlx::query_scalar("select count(*) from record").fetch_one(&t.pool).await.unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn the_review_queue_and_the_duty_page_speak_english_on_request() {
    let t = company().await;
    let li = t.sign_in("li").await;
    let (st, html) = li.get("/review?lang=en").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("Nothing is waiting for review."), "{html}");
    let duty = duty_id(&t, "HX-1", "2026-Q1", "A7").await;
    let (st, html) = li.get(&format!("/duties/{duty}?lang=en")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("Records filed") && html.contains("Q1 2026"));
    assert!(!html.contains("/orgs/HX-1/records/new"), "the superior does not record for the branch");
}
