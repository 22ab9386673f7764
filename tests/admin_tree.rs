//! Administration of the tree, kinds, people and roles, over HTTP: as a signed-in admin on
//! the pages (with previews before a move or a close), and through the JSON API; that a
//! non-admin is refused everywhere; and that long listings page.

mod common;

use common::{PageClient, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The company tree (HJT → HGS → HX-1, HX-2) with the company template installed for the
/// HGS subtree only, at 26 March 2026; and a second committee HGS2 under HJT, outside it.
async fn company() -> TestApp {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.company_tree().await;
    t.org("HGS2", "committee", Some("HJT"), "2016-05-01").await;
    t.install("ideology-company", "2026-01-01", Some("HGS")).await;
    t
}

async fn duty_count(t: &TestApp, code: &str) -> i64 {
    sqlx::query_scalar("select count(*) from duty d join org o on o.id = d.org_id where o.code = $1")
        .bind(code)
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

async fn audit_actions(t: &TestApp) -> Vec<String> {
    sqlx::query_scalar("select action from audit_log order by id").fetch_all(&t.pool).await.unwrap()
}

/// The whole numbers in the preview's summary sentence, in order.
fn summary_numbers(html: &str) -> Vec<i64> {
    let at = html.find("class=\"adm-summary\"").expect("a preview summary");
    let sentence = &html[at..at + html[at..].find("</p>").unwrap()];
    sentence.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect()
}

/// Where a page's form sent us: the `Location` of a 303.
fn redirected(st: StatusCode, location: Option<String>, body: &str) -> String {
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    location.expect("a Location header")
}

/// A new person made on the people page; returns their id.
async fn new_person(admin: &PageClient, name: &str) -> String {
    let (st, loc, body) = admin.post("/admin/people", &[("name", name), ("phone", "0571-8888 0001")]).await;
    let loc = redirected(st, loc, &body);
    loc.trim_start_matches("/admin/people/").split('?').next().unwrap().to_owned()
}

#[tokio::test]
async fn an_admin_creates_renames_and_moves_a_branch_and_the_preview_counts_what_the_move_does() {
    let t = company().await;
    let admin = t.sign_in("admin").await;

    // Create a branch under HGS from the page, then rename it.
    let (st, html) = admin.get("/admin/orgs/new?parent=HGS").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("value=\"HGS\""), "the parent is filled in");
    let (st, loc, body) = admin
        .post(
            "/admin/orgs",
            &[
                ("parent", "HGS"),
                ("code", "HX-3"),
                ("name", "第三支部"),
                ("kind", "branch"),
                ("active_from", "2020-01-01"),
            ],
        )
        .await;
    assert_eq!(redirected(st, loc, &body), "/admin/orgs/HX-3?done=created");
    assert!(duty_count(&t, "HX-3").await > 0, "a new branch owes the branch duties at once");
    let (st, loc, body) = admin.post("/admin/orgs/HX-3/rename", &[("name", "第三党支部（机加车间）")]).await;
    redirected(st, loc, &body);
    let (_, html) = admin.get("/admin/orgs/HX-3").await;
    assert!(html.contains("第三党支部（机加车间）"), "{html}");
    assert!(html.contains("A7"), "the rules that apply are listed");

    // Moving HX-2 out of the HGS subtree: the preview says what will change.
    let before = duty_count(&t, "HX-2").await;
    assert!(before > 0);
    let (st, html) = admin.get("/admin/orgs/HX-2/move?parent=HGS2").await;
    assert_eq!(st, StatusCode::OK, "{html}");
    assert!(html.contains("将移动 1 个组织（含下级）"), "{html}");
    let [moving, created, removed] = summary_numbers(&html)[..] else { panic!("three counts: {html}") };
    assert_eq!((moving, created), (1, 0));
    assert_eq!(duty_count(&t, "HX-2").await, before, "a preview changes nothing");
    let (st, loc, body) = admin.post("/admin/orgs/HX-2/move", &[("parent", "HGS2")]).await;
    assert_eq!(redirected(st, loc, &body), "/admin/orgs/HX-2?done=moved");
    assert_eq!(before - duty_count(&t, "HX-2").await, removed, "the move removed what the preview said");

    // The subtree views follow the move.
    let (_, rollup) = t.get("/api/v1/orgs/HGS2/rollup?period=2026-Q1").await;
    assert!(rollup["children"].as_array().unwrap().iter().any(|c| c["code"] == "HX-2"), "{rollup}");
    let (_, rollup) = t.get("/api/v1/orgs/HGS/rollup?period=2026-Q1").await;
    assert!(!rollup["children"].as_array().unwrap().iter().any(|c| c["code"] == "HX-2"), "{rollup}");
    let (_, html) = admin.get("/admin/orgs?parent=HGS2").await;
    assert!(html.contains("HX-2"), "the tree shows it under its new parent");

    // The API's dry run counts exactly what moving back does.
    let (st, dry) = t.post("/api/v1/orgs/HX-2/move", json!({"parent": "HGS", "dry_run": true})).await;
    assert_eq!(st, StatusCode::OK, "{dry}");
    assert_eq!(dry["org"]["parent"], "HGS");
    assert_eq!(duty_count(&t, "HX-2").await, before - removed, "a dry run changes nothing");
    let (st, done) = t.post("/api/v1/orgs/HX-2/move", json!({"parent": "HGS"})).await;
    assert_eq!(st, StatusCode::OK, "{done}");
    assert_eq!(dry["duties_created"], done["duties_created"]);
    assert_eq!(dry["organisations"], done["organisations"]);
    assert_eq!(done["duties_created"].as_i64().unwrap(), removed, "moving back owes the same duties again");
    assert_eq!(duty_count(&t, "HX-2").await, before);

    // A move under itself is refused in the preview, with no button to confirm, and when
    // confirmed anyway; a search for a new parent does not offer its own subtree.
    let (st, html) = admin.get("/admin/orgs/HGS/move?parent=HX-1").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("不能移到本组织自己或它的下级组织下面") && !html.contains("确认移动"), "{html}");
    let (st, _, html) = admin.post("/admin/orgs/HGS/move", &[("parent", "HX-1")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("不能移到本组织自己或它的下级组织下面"), "{html}");
    let (st, html) = admin.get("/admin/orgs/HGS/move?parent=HX").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "nothing outside its subtree matches");
    assert!(!html.contains("value=\"HX-1\""), "{html}");
    let (st, body) = t.post("/api/v1/orgs/HGS/move", json!({"parent": "HX-1", "dry_run": true})).await;
    assert_eq!((st, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("parent")));

    let actions = audit_actions(&t).await;
    for a in ["org.create", "org.rename", "org.move"] {
        assert!(actions.iter().any(|x| x == a), "audit has {a}: {actions:?}");
    }
}

#[tokio::test]
async fn closing_shows_what_it_will_change_first_and_reopening_restores_the_duties() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "due_soon");

    let (st, html) = admin.get("/admin/orgs/HGS/close?until=2026-03-26").await;
    assert_eq!(st, StatusCode::OK, "{html}");
    let counts = summary_numbers(&html);
    assert_eq!(counts[0], 3, "HGS and its two branches close: {html}");
    let (st, api) = t.get("/api/v1/orgs/HGS/close-preview?until=2026-03-26").await;
    assert_eq!(st, StatusCode::OK, "{api}");
    assert_eq!(api["allowed"], true);
    assert_eq!(
        vec![
            api["organisations"].as_i64().unwrap(),
            api["duties_cancelled"].as_i64().unwrap(),
            api["duties_removed"].as_i64().unwrap()
        ],
        counts[..3].to_vec(),
        "the page and the API preview agree"
    );
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "due_soon", "a preview changes nothing");

    let (st, loc, body) = admin.post("/admin/orgs/HGS/close", &[("until", "2026-03-26")]).await;
    assert_eq!(redirected(st, loc, &body), "/admin/orgs/HGS?done=closed");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "cancelled");
    let (_, html) = admin.get("/admin/orgs/HX-1").await;
    assert!(html.contains("已撤销"), "{html}");
    assert!(html.contains("上级组织已撤销，请先恢复上级组织"), "a branch cannot reopen before its parent");

    let (st, loc, body) = admin.post("/admin/orgs/HGS/reopen", &[]).await;
    redirected(st, loc, &body);
    let (st, loc, body) = admin.post("/admin/orgs/HX-1/reopen", &[]).await;
    redirected(st, loc, &body);
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "due_soon");
    assert_eq!(t.status_of("HX-2", "2026-Q1", "A7").await, "cancelled", "HX-2 stays closed until reopened");

    // A day before the organisation began is refused in the preview, beside the day.
    let (st, html) = admin.get("/admin/orgs/HX-1/close?until=2016-01-01").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("最后活动日不能早于组织的成立日期"), "{html}");
    assert!(!html.contains("确认撤销"), "no button to confirm");
    let (st, html) = admin.get("/admin/orgs/HX-1/close?until=not-a-day").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("aria-invalid=\"true\"") && html.contains("value=\"not-a-day\""), "{html}");

    let actions = audit_actions(&t).await;
    assert!(actions.iter().any(|a| a == "org.close") && actions.iter().any(|a| a == "org.reopen"), "{actions:?}");
}

#[tokio::test]
async fn a_kind_cannot_change_once_duties_exist_and_an_admin_can_add_a_kind() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    let (_, html) = admin.get("/admin/orgs/HX-1").await;
    assert!(html.contains("组织类型不能再修改"), "the page says why before anyone tries");
    let (st, _, html) = admin.post("/admin/orgs/HX-1/kind", &[("kind", "school_branch")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("组织类型不能再修改"), "{html}");

    // A new kind, then an organisation of it, whose kind may still change.
    let (st, loc, body) = admin
        .post("/admin/kinds", &[("code", "village_branch"), ("name_zh", "村党支部"), ("name_en", "Village branch")])
        .await;
    assert_eq!(redirected(st, loc, &body), "/admin/kinds?done=created");
    let (_, html) = admin.get("/admin/kinds").await;
    assert!(html.contains("村党支部") && html.contains("village_branch"), "{html}");
    let (_, kinds) = t.get("/api/v1/kinds").await;
    let added = kinds.as_array().unwrap().iter().find(|k| k["code"] == "village_branch").expect("listed");
    assert_eq!((added["builtin"].clone(), added["in_use"].clone()), (json!(false), json!(false)));
    let (st, loc, body) = admin
        .post(
            "/admin/orgs",
            &[
                ("parent", "HGS2"),
                ("code", "CUN-1"),
                ("name", "东村党支部"),
                ("kind", "village_branch"),
                ("active_from", "2026/3/1"),
            ],
        )
        .await;
    redirected(st, loc, &body);
    let (st, loc, body) = admin.post("/admin/orgs/CUN-1/kind", &[("kind", "branch")]).await;
    redirected(st, loc, &body);
    let (_, org) = t.get("/api/v1/orgs/CUN-1").await;
    assert_eq!(org["kind"], "branch");

    // Mistakes come back marked, with what was typed.
    let (st, _, html) =
        admin.post("/admin/kinds", &[("code", "Village!"), ("name_zh", "村支部"), ("name_en", "")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("value=\"Village!\"") && html.contains("value=\"村支部\""), "{html}");
    assert!(html.contains("类型代码须以小写字母开头") && html.contains("请填写英文名称"), "{html}");
    let (st, _, html) =
        admin.post("/admin/kinds", &[("code", "village_branch"), ("name_zh", "另一村"), ("name_en", "x")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("这个类型代码已经存在"), "{html}");
    let (st, _, html) = admin
        .post(
            "/admin/orgs",
            &[
                ("parent", "HGS"),
                ("code", "bad code"),
                ("name", "新支部"),
                ("kind", "branch"),
                ("active_from", "2026-03-01"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("value=\"新支部\"") && html.contains("value=\"bad code\""), "{html}");
    assert!(html.contains("表单有需要修改的地方"), "{html}");

    // Renaming a kind, through the page and the API.
    let (st, loc, body) =
        admin.post("/admin/kinds/office", &[("name_zh", "机关部门"), ("name_en", "Department")]).await;
    redirected(st, loc, &body);
    let (st, kind) = t.patch("/api/v1/kinds/village_branch", json!({"name_en": "Village Party branch"})).await;
    assert_eq!(st, StatusCode::OK, "{kind}");
    assert_eq!((kind["name_zh"].as_str(), kind["name_en"].as_str()), (Some("村党支部"), Some("Village Party branch")));
    let (st, _) = t.post("/api/v1/kinds", json!({"code": "village_branch", "name_zh": "x", "name_en": "x"})).await;
    assert_eq!(st, StatusCode::CONFLICT);

    let actions = audit_actions(&t).await;
    assert!(actions.iter().any(|a| a == "kind.create") && actions.iter().any(|a| a == "kind.update"), "{actions:?}");
}

#[tokio::test]
async fn after_a_change_of_term_the_portal_says_who_was_responsible_on_any_day() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    let wang = new_person(&admin, "王一").await;
    let li = new_person(&admin, "李二").await;

    // 王一 becomes secretary of HX-1 (named by part of its name, then chosen).
    let (st, _, html) = admin
        .post(&format!("/admin/people/{wang}/roles"), &[("org", "HX"), ("role", "secretary"), ("from", "2021-01-01")])
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "several organisations match");
    assert!(html.contains("name=\"org_pick\" value=\"HX-1\""), "{html}");
    let (st, loc, body) = admin
        .post(
            &format!("/admin/people/{wang}/roles"),
            &[("org_pick", "HX-1"), ("role", "secretary"), ("from", "2021-01-01")],
        )
        .await;
    redirected(st, loc, &body);

    // The change of term on 1 July 2024, from HX-1's page.
    let (st, loc, body) = admin.post("/admin/orgs/HX-1/handover", &[("person", "李二"), ("on", "2024-07-01")]).await;
    assert_eq!(redirected(st, loc, &body), "/admin/orgs/HX-1?done=handover");

    let (_, html) = admin.get("/admin/orgs/HX-1?on=2023-06-30").await;
    let holders = &html[html.find("id=\"holders\"").unwrap()..html.find("id=\"handover\"").unwrap()];
    assert!(holders.contains("王一") && !holders.contains("李二"), "{holders}");
    assert!(holders.contains("2021年1月1日至2024年6月30日"), "{holders}");
    let (_, html) = admin.get("/admin/orgs/HX-1?on=2025-06-30").await;
    let holders = &html[html.find("id=\"holders\"").unwrap()..html.find("id=\"handover\"").unwrap()];
    assert!(holders.contains("李二") && !holders.contains("王一"), "{holders}");

    let (st, body) = t.get("/api/v1/orgs/HX-1/roles?on=2024-06-30").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let holders = body["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!((holders[0]["person_name"].as_str(), holders[0]["until"].as_str()), (Some("王一"), Some("2024-06-30")));
    let (_, body) = t.get("/api/v1/orgs/HX-1/roles?on=2024-07-01").await;
    assert_eq!(body["holders"][0]["person"], json!(li));
    let (_, body) = t.get("/api/v1/orgs/HX-1/roles?history=true").await;
    assert_eq!(body["holders"].as_array().unwrap().len(), 2);

    // 王一's page lists the term among past responsibilities; 李二's as current.
    let (_, html) = admin.get(&format!("/admin/people/{wang}")).await;
    let past = &html[html.find("id=\"past-title\"").unwrap()..];
    assert!(past.contains("HX-1") && past.contains("至2024年6月30日"), "{html}");
    let (_, person) = t.get(&format!("/api/v1/people/{li}")).await;
    assert_eq!(person["roles"][0]["org"], "HX-1");
    assert_eq!(person["roles"][0]["until"], Value::Null);

    // A handover to the holder themself, or on the day the holder began, is refused.
    let (st, _, html) = admin.post("/admin/orgs/HX-1/handover", &[("person", "李二"), ("on", "2025-01-01")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("此人在交接日已经是本组织的书记"), "{html}");

    // Two people of the same name: the handover asks which one is meant.
    new_person(&admin, "张三").await;
    let other = new_person(&admin, "张三").await;
    let (st, _, html) = admin.post("/admin/orgs/HX-2/handover", &[("person", "张三"), ("on", "2026-01-01")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains(&format!("name=\"person_pick\" value=\"{other}\"")), "{html}");
    let (st, loc, body) =
        admin.post("/admin/orgs/HX-2/handover", &[("person_pick", other.as_str()), ("on", "2026-01-01")]).await;
    redirected(st, loc, &body);

    // Ending 李二's term through the API, then correcting it on the page.
    let id = person["roles"][0]["id"].as_str().unwrap().to_owned();
    let (st, ended) = t.patch(&format!("/api/v1/roles/{id}"), json!({"until": "2026-02-28"})).await;
    assert_eq!(st, StatusCode::OK, "{ended}");
    assert_eq!(ended["until"], "2026-02-28");
    let (st, _) = t.patch(&format!("/api/v1/roles/{id}"), json!({"until": "2020-01-01"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "an end before the start");
    let (st, _, html) = admin.post(&format!("/admin/roles/{id}/end"), &[("until", "2020-01-01")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("结束日期不能早于开始日期"), "{html}");

    let actions = audit_actions(&t).await;
    for a in ["person.create", "role.assign", "role.handover", "role.end"] {
        assert!(actions.iter().any(|x| x == a), "audit has {a}: {actions:?}");
    }
}

#[tokio::test]
async fn an_acting_deputy_acts_only_within_their_days_and_shows_as_acting() {
    let t = company().await;
    let deputy = t.user("deputy", false).await;
    let (_, found) = t.get("/api/v1/people?q=deputy").await;
    let person = found["items"][0]["id"].as_str().unwrap().to_owned();
    let (st, given) = t
        .post(
            &format!("/api/v1/people/{person}/roles"),
            json!({"org": "HX-1", "role": "secretary", "from": "2026-03-20", "until": "2026-03-31", "acting": true}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{given}");
    assert_eq!(given["acting"], true);

    let record = |occurred_on: &str| json!({"rule": "A7", "occurred_on": occurred_on, "title": "分析研判会", "body": "纪要", "attendees": ["王五"]});
    let (st, body) = t.call("POST", "/api/v1/orgs/HX-1/records", &deputy, Some(record("2026-03-25"))).await;
    assert_eq!(st, StatusCode::CREATED, "within the range the deputy files records: {body}");

    t.set_now("2026-04-02T10:00:00+08:00");
    let (st, _) = t.call("POST", "/api/v1/orgs/HX-1/records", &deputy, Some(record("2026-04-01"))).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "after the range the organisation is not theirs to see");

    let admin = t.sign_in("admin").await;
    let (_, html) = admin.get(&format!("/admin/people/{person}")).await;
    assert!(html.contains("adm-tag-acting") && html.contains("代理"), "{html}");
    let (_, html) = admin.get("/admin/orgs/HX-1?on=2026-03-25").await;
    assert!(html.contains("deputy") && html.contains("代理"), "{html}");
}

#[tokio::test]
async fn a_non_admin_is_refused_every_admin_page_and_api_and_forms_need_the_token() {
    let t = company().await;
    let token = t.user("zhang", false).await;
    let (st, _) =
        t.post("/api/v1/orgs/HX-1/roles", json!({"login": "zhang", "role": "secretary", "from": "2020-01-01"})).await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, found) = t.get("/api/v1/people?q=zhang").await;
    let person = found["items"][0]["id"].as_str().unwrap().to_owned();
    let role = sqlx::query_scalar::<_, i64>("select id from role_assignment limit 1").fetch_one(&t.pool).await.unwrap();

    let zhang = t.sign_in("zhang").await;
    for path in [
        "/admin".to_owned(),
        "/admin/orgs".into(),
        "/admin/orgs?q=HX".into(),
        "/admin/orgs/new".into(),
        "/admin/orgs/HX-1".into(),
        "/admin/orgs/HX-1/move?parent=HGS2".into(),
        "/admin/orgs/HX-1/close?until=2026-03-26".into(),
        "/admin/kinds".into(),
        "/admin/people".into(),
        format!("/admin/people/{person}"),
    ] {
        let (st, _) = zhang.get(&path).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "GET {path}");
    }
    for path in [
        "/admin/orgs".to_owned(),
        "/admin/orgs/HX-1/rename".into(),
        "/admin/orgs/HX-1/kind".into(),
        "/admin/orgs/HX-1/move".into(),
        "/admin/orgs/HX-1/close".into(),
        "/admin/orgs/HX-1/reopen".into(),
        "/admin/orgs/HX-1/handover".into(),
        "/admin/kinds".into(),
        "/admin/kinds/branch".into(),
        "/admin/people".into(),
        format!("/admin/people/{person}"),
        format!("/admin/people/{person}/roles"),
        format!("/admin/roles/{role}/end"),
    ] {
        let (st, _, _) = zhang.post(&path, &[("name", "x"), ("until", "2026-03-26"), ("parent", "HGS2")]).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "POST {path}");
    }
    let api: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/v1/orgs".into(), None),
        ("POST", "/api/v1/orgs/HX-1/move".into(), Some(json!({"parent": "HGS2", "dry_run": true}))),
        ("GET", "/api/v1/orgs/HX-1/close-preview?until=2026-03-26".into(), None),
        ("GET", "/api/v1/orgs/HX-1/roles".into(), None),
        ("POST", "/api/v1/orgs/HX-1/handover".into(), Some(json!({"person": person, "on": "2026-03-26"}))),
        ("GET", "/api/v1/kinds".into(), None),
        ("POST", "/api/v1/kinds".into(), Some(json!({"code": "x", "name_zh": "x", "name_en": "x"}))),
        ("PATCH", "/api/v1/kinds/branch".into(), Some(json!({"name_zh": "x"}))),
        ("GET", "/api/v1/people".into(), None),
        ("POST", "/api/v1/people".into(), Some(json!({"name": "x"}))),
        ("GET", format!("/api/v1/people/{person}"), None),
        ("PATCH", format!("/api/v1/people/{person}"), Some(json!({"name": "x"}))),
        (
            "POST",
            format!("/api/v1/people/{person}/roles"),
            Some(json!({"org": "HX-1", "role": "secretary", "from": "2026-01-01"})),
        ),
        ("PATCH", format!("/api/v1/roles/{role}"), Some(json!({"until": "2026-03-26"}))),
    ];
    for (method, path, body) in api {
        let (st, _) = t.call(method, &path, &token, body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {path}");
    }

    // An admin's form without the session's token, or with another's, is refused.
    let admin = t.sign_in("admin").await;
    let resp = admin
        .http
        .post(format!("{}/admin/kinds", t.base))
        .form(&[("code", "x1"), ("name_zh", "甲"), ("name_en", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = admin
        .http
        .post(format!("{}/admin/kinds", t.base))
        .form(&[("code", "x1"), ("name_zh", "甲"), ("name_en", "x"), ("csrf", zhang.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (_, kinds) = t.get("/api/v1/kinds").await;
    assert!(!kinds.as_array().unwrap().iter().any(|k| k["code"] == "x1"));
}

#[tokio::test]
async fn a_parent_with_3000_children_is_listed_a_page_at_a_time_and_searched_within_bounds() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.company_tree().await;
    sqlx::query(
        "insert into org (code, name, kind, parent_id, active_from, created_at)
         select 'C-' || lpad(i::text, 4, '0'), '村支部' || i, 'branch', (select id from org where code = 'HGS'),
                date '2020-01-01', timestamptz '2026-03-26 02:00:00+00'
         from generate_series(1, 3000) i",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    let admin = t.sign_in("admin").await;

    let (st, html) = admin.get("/admin/orgs?parent=HGS").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(html.matches("class=\"adm-node-row\"").count(), 50, "one page of children");
    assert!(html.contains("第 1 / 61 页，共 3002 个"), "{html}");
    assert!(html.contains("href=\"/admin/orgs?parent=HGS&#38;page=2\""), "a link to the next page: {html}");
    let (_, html) = admin.get("/admin/orgs?parent=HGS&page=61").await;
    assert_eq!(html.matches("class=\"adm-node-row\"").count(), 2);
    assert!(html.contains("HX-2"));

    // A level loaded in place is the list alone.
    let resp =
        admin.http.get(format!("{}/admin/orgs?parent=HGS", t.base)).header("HX-Request", "true").send().await.unwrap();
    let fragment = resp.text().await.unwrap();
    assert!(!fragment.contains("<html") && fragment.matches("class=\"adm-node-row\"").count() == 50, "{fragment}");

    // The size of a large subtree is counted up to a bound.
    let (_, html) = admin.get("/admin/orgs?parent=HJT").await;
    assert!(html.contains("下级组织 1000 个以上"), "{html}");

    let (_, page2) = t.get("/api/v1/orgs?parent=HGS&page=2").await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 50);
    assert_eq!((page2["total"].as_i64(), page2["has_more"].as_bool()), (Some(3002), Some(true)));
    assert_eq!(page2["items"][0]["code"], "C-0051");
    let (st, _) = t.get("/api/v1/orgs?page=0").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let (_, found) = t.get("/api/v1/orgs?q=c-2").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 50, "a search is bounded");
    assert_eq!(found["has_more"], true);
    assert_eq!(found["items"][0]["path"][1]["code"], "HGS", "each result says where it is");
    let (_, found) = t.get(&format!("/api/v1/orgs?q={}", "村支部2999")).await;
    assert_eq!(found["items"][0]["code"], "C-2999");
    let (_, html) = admin.get("/admin/orgs?q=C-0007").await;
    assert!(html.contains("村支部7") && html.contains("HJT 组织 ›"), "breadcrumbs: {html}");
}

#[tokio::test]
async fn the_people_api_creates_finds_edits_and_assigns_people_without_accounts() {
    let t = company().await;
    let (st, created) = t
        .post(
            "/api/v1/people",
            json!({"name": "赵六", "code": "P-006", "phone": "13800000000", "email": "zhao@example.cn"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    assert_eq!(created["account"], Value::Null);
    let id = created["id"].as_str().unwrap().to_owned();
    let (st, body) = t.post("/api/v1/people", json!({"name": "钱七", "code": "P-006"})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    let (st, body) = t.post("/api/v1/people", json!({"name": "钱七", "email": "not an address"})).await;
    assert_eq!((st, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("email")));

    let (st, patched) = t.patch(&format!("/api/v1/people/{id}"), json!({"phone": null, "name": "赵六六"})).await;
    assert_eq!(st, StatusCode::OK, "{patched}");
    assert_eq!(
        (patched["name"].as_str(), patched["phone"].clone(), patched["code"].as_str()),
        (Some("赵六六"), Value::Null, Some("P-006"))
    );

    let (st, given) = t
        .post(&format!("/api/v1/people/{id}/roles"), json!({"org": "HX-2", "role": "member", "from": "2025-01-01"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{given}");
    let (st, _) = t
        .post(&format!("/api/v1/people/{id}/roles"), json!({"org": "HX-2", "role": "member", "from": "2025-06-01"}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "overlapping terms are refused");
    let (_, listed) = t.get("/api/v1/people?q=P-006").await;
    assert_eq!(listed["items"][0]["roles_now"], 1);
    let (_, holders) = t.get("/api/v1/orgs/HX-2/roles").await;
    assert!(holders["holders"].as_array().unwrap().iter().any(|h| h["person_name"] == "赵六六"), "{holders}");
    let (st, _) = t.get("/api/v1/people/999999").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = t.get("/api/v1/people/not-an-id").await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The page lists them with the role they hold.
    let admin = t.sign_in("admin").await;
    let (_, html) = admin.get("/admin/people?q=%E8%B5%B5").await;
    assert!(html.contains("赵六六") && html.contains("HX-2 组织班子成员"), "{html}");
    let (st, _, html) = admin.post("/admin/people", &[("name", ""), ("phone", "abc"), ("email", "x@y")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("请填写姓名") && html.contains("电话号码只能包含") && html.contains("value=\"abc\""),
        "{html}"
    );
}
