//! Responsibility systems and rules, as an admin uses them: changing a rule from a date
//! after a preview that says exactly what the change then does (and the past staying as
//! it was), adding a rule, installing a template, waiving a rule for one organisation
//! and one duty — over HTTP with a signed-in session, through the API, and once in a real
//! browser.

mod common;

use std::collections::BTreeSet;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A company at 10 May 2026 (the second quarter): group HJT → committee HGS → branches
/// HX-1 and HX-2, the company template in force since 1 January. HX-1 held its Q1 analysis
/// meeting (A7) late and its Q2 one on time; HX-2 missed Q1.
async fn company() -> TestApp {
    let t = TestApp::spawn_at("2026-05-10T10:00:00+08:00").await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    t.record("HX-1", "A7", "2026-02-01").await;
    t.record("HX-1", "A7", "2026-04-10").await;
    t
}

/// The number a preview shows for one of its counts (`data-count="NAME"`).
fn count_in(html: &str, name: &str) -> i64 {
    let marker = format!("data-count=\"{name}\">");
    let i = html.find(&marker).unwrap_or_else(|| panic!("the preview shows {name}: {html}")) + marker.len();
    html[i..].split('<').next().unwrap().trim().parse().unwrap()
}

/// The form fields of A7 as the edit form carries them, with some changed.
fn a7_fields<'a>(changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("title", "召开意识形态分析研判会"),
        ("clause", "第八条(三)"),
        ("clause_text", ""),
        ("kinds", "branch"),
        ("root", ""),
        ("responsible_role", "secretary"),
        ("min_count", "1"),
        ("grace_days", "0"),
        ("lead_days", ""),
        ("effective_from", "2026-07-01"),
    ];
    for (k, v) in changes {
        match fields.iter_mut().find(|(name, _)| name == k) {
            Some(f) => f.1 = v,
            None => fields.push((k, v)),
        }
    }
    fields
}

async fn scalar(t: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&t.pool).await.unwrap()
}

/// What an input of a form says about itself: the text of its tag.
fn input_tag<'a>(html: &'a str, name: &str) -> &'a str {
    let i = html.find(&format!("name=\"{name}\"")).unwrap_or_else(|| panic!("a {name} field"));
    let start = html[..i].rfind('<').unwrap();
    let end = i + html[i..].find('>').unwrap();
    &html[start..=end]
}

#[tokio::test]
async fn changing_a7_to_two_meetings_from_this_quarter_previews_exactly_what_it_does_and_q1_stays_as_it_was() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "late");
    assert_eq!(t.status_of("HX-2", "2026-Q1", "A7").await, "overdue");
    assert_eq!(t.status_of("HX-1", "2026-Q2", "A7").await, "fulfilled");

    let (st, form) = admin.get("/admin/rules/A7/edit").await;
    assert_eq!(st, StatusCode::OK);
    assert!(input_tag(&form, "effective_from").contains("value=\"2026-07-01\""), "defaults to the next quarter");
    assert!(input_tag(&form, "effective_from").contains("min=\"2026-04-01\""), "allowed from this quarter");
    assert!(form.contains("过去的周期保持原规定不变"), "the page says why");

    let change = a7_fields(&[("min_count", "2"), ("effective_from", "2026-04-01"), ("step", "preview")]);
    let (st, _, preview) = admin.post("/admin/rules/A7/versions", &change).await;
    assert_eq!(st, StatusCode::OK, "{preview}");
    assert!(preview.contains("2026年第二季度"), "the quarter it judges is named");
    assert!(preview.contains("每期至少次数：1 → 2"), "what changes is spelled out");
    let shown = [
        count_in(&preview, "orgs_before"),
        count_in(&preview, "orgs_after"),
        count_in(&preview, "duties_created"),
        count_in(&preview, "duties_removed"),
        count_in(&preview, "duties_updated"),
    ];
    assert_eq!(shown, [2, 2, 0, 0, 2], "both branches owe it before and after; both Q2 duties now need two");
    assert_eq!(scalar(&t, "select count(*) from rule_version").await, 14, "the preview changed nothing");
    assert_eq!(scalar(&t, "select count(*) from duty where required = 2 and period_key = '2026-Q2'").await, 0);

    let confirm = a7_fields(&[("min_count", "2"), ("effective_from", "2026-04-01"), ("step", "confirm")]);
    let (st, location, _) = admin.post("/admin/rules/A7/versions", &confirm).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/admin/rules/A7?saved=version"));

    let updated = scalar(
        &t,
        "select count(*) from duty d join rule r on r.id = d.rule_id
         where r.code = 'A7' and d.period_key = '2026-Q2' and d.required = 2",
    )
    .await;
    let owing = scalar(
        &t,
        "select count(distinct d.org_id) from duty d join rule r on r.id = d.rule_id
         where r.code = 'A7' and d.period_key = '2026-Q2'",
    )
    .await;
    assert_eq!((updated, owing), (shown[4], shown[1]), "the change did what the preview said");
    let audited: Value = sqlx::query_scalar(
        "select detail -> 'impact' from audit_log where action = 'rule.change' and object_id = 'A7'",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    let applied = [
        &audited["orgs_before"],
        &audited["orgs_after"],
        &audited["duties_created"],
        &audited["duties_removed"],
        &audited["duties_updated"],
    ]
    .map(|v| v.as_i64().unwrap());
    assert_eq!(applied, shown, "the audited impact of the applied change equals the preview");

    assert_eq!(t.status_of("HX-1", "2026-Q2", "A7").await, "open", "one meeting of two is no longer enough");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "late", "Q1 keeps the rule as it was");
    assert_eq!(t.status_of("HX-2", "2026-Q1", "A7").await, "overdue");
    let (_, q1) = t.get("/api/v1/orgs/HX-1/duties?period=2026-Q1").await;
    let a7 = q1.as_array().unwrap().iter().find(|d| d["rule"] == "A7").unwrap();
    assert_eq!(a7["required"], 1, "Q1 still needs one meeting");

    let (st, page) = admin.get("/admin/rules/A7?saved=version").await;
    assert_eq!(st, StatusCode::OK);
    assert!(page.contains("已保存新版本"), "{page}");
    assert!(page.contains("2026年4月1日起") && page.contains("2026年1月1日起"), "both versions are listed");
    assert!(page.contains("每期至少次数：1 → 2"), "with what changed");
    assert!(page.contains("首次发布"));
}

#[tokio::test]
async fn a_change_dated_before_the_current_quarter_is_refused_beside_the_date_and_keeps_what_was_typed() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    let change = a7_fields(&[
        ("min_count", "3"),
        ("title", "每季度召开三次分析研判会"),
        ("effective_from", "2026-03-31"),
        ("step", "preview"),
    ]);
    let (st, _, html) = admin.post("/admin/rules/A7/versions", &change).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(input_tag(&html, "effective_from").contains("aria-invalid=\"true\""), "the date is marked");
    assert!(html.contains("过去的周期保持原规定不变，生效日期不能早于本期第一天（2026年4月1日）"), "{html}");
    assert!(html.contains("表单有需要修改的地方"), "with the summary line");
    assert!(input_tag(&html, "min_count").contains("value=\"3\""), "what was typed is kept");
    assert!(input_tag(&html, "title").contains("每季度召开三次分析研判会"));
    assert!(input_tag(&html, "min_count").contains("aria-invalid=\"false\""), "only the date is marked");

    let (st, _, html) = admin.post("/admin/rules/A7/versions", &a7_fields(&[("min_count", "0"), ("kinds", "")])).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("请填写 1 到 366 之间的整数") && html.contains("请至少选择一种组织类型"), "{html}");

    let (st, _, _) =
        admin.post("/admin/rules/A7/versions", &a7_fields(&[("step", "confirm"), ("grace_days", "-1")])).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "a confirmation is checked again");
    assert_eq!(scalar(&t, "select count(*) from rule_version").await, 14, "nothing was saved");
}

#[tokio::test]
async fn a_new_monthly_rule_is_previewed_then_added_and_its_duties_appear() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    let (st, form) = admin.get("/admin/systems/ideology-company/rules/new").await;
    assert_eq!(st, StatusCode::OK);
    assert!(form.contains("name=\"cadence\""));
    let fields = |step: &'static str| {
        vec![
            ("code", "A15"),
            ("cadence", "month"),
            ("binds", "organisation"),
            ("record_kind", "meeting"),
            ("title", "每月开展一次意识形态风险排查"),
            ("clause", "第十三条"),
            ("clause_text", "各党支部每月开展一次意识形态领域风险排查。"),
            ("kinds", "branch"),
            ("root", "HGS"),
            ("responsible_role", "secretary"),
            ("min_count", "1"),
            ("grace_days", "0"),
            ("lead_days", "2"),
            ("effective_from", "2026-05-01"),
            ("step", step),
        ]
    };
    let (st, _, preview) = admin.post("/admin/systems/ideology-company/rules", &fields("preview")).await;
    assert_eq!(st, StatusCode::OK, "{preview}");
    assert!(preview.contains("2026年5月"), "the month that gets duties now");
    assert_eq!((count_in(&preview, "orgs_owing"), count_in(&preview, "duties_created")), (2, 2));
    assert_eq!(scalar(&t, "select count(*) from rule where code = 'A15'").await, 0, "a preview adds nothing");

    let (st, location, _) = admin.post("/admin/systems/ideology-company/rules", &fields("confirm")).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/admin/rules/A15?saved=created"));
    assert_eq!(t.status_of("HX-1", "2026-05", "A15").await, "open");
    assert_eq!(t.status_of("HX-2", "2026-05", "A15").await, "open");
    let (_, page) = admin.get("/admin/rules/A15").await;
    assert!(page.contains("每月开展一次意识形态风险排查") && page.contains("各党支部每月开展一次意识形态领域风险排查"));
    assert!(page.contains("第十三条") && page.contains("2 天"), "the clause and the lead are shown");
    let (_, systems) = admin.get("/admin/systems").await;
    let a14 = systems.find(">A14<").unwrap();
    assert!(systems[a14..].contains(">A15<"), "the new rule comes last in its system");
    assert_eq!(scalar(&t, "select count(*) from audit_log where action = 'rule.create'").await, 1);

    let (st, _, again) = admin.post("/admin/systems/ideology-company/rules", &fields("preview")).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(again.contains("编号“A15”已被使用"), "{again}");
}

#[tokio::test]
async fn a_template_is_installed_from_the_page_and_a_second_install_is_refused_with_a_clear_message() {
    let t = TestApp::spawn_at("2026-05-10T10:00:00+08:00").await;
    t.company_tree().await;
    let admin = t.sign_in("admin").await;
    let (st, page) = admin.get("/admin/templates").await;
    assert_eq!(st, StatusCode::OK);
    for code in ["ideology-company", "ideology-branch-company", "ideology-school"] {
        assert!(page.contains(&format!("/admin/templates/{code}/install")), "{code} can be installed");
    }
    assert!(page.contains("召开意识形态分析研判会"), "the rules are listed");

    let install = [("effective_from", "2026-01-01"), ("root", "NOPE")];
    let (st, _, html) = admin.post("/admin/templates/ideology-company/install", &install).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("没有代码为“NOPE”的组织") && html.contains("value=\"NOPE\""), "{html}");

    let install = [("effective_from", "2026-01-01"), ("root", "")];
    let (st, location, _) = admin.post("/admin/templates/ideology-company/install", &install).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/admin/systems?saved=installed"));
    assert_eq!(t.status_of("HX-1", "2026-Q2", "A7").await, "open");
    let (_, systems) = admin.get("/admin/systems?saved=installed").await;
    assert!(systems.contains("模板已安装") && systems.contains("2026年第二季度应办：2 个组织"), "{systems}");

    let (st, _, html) = admin.post("/admin/templates/ideology-company/install", &install).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert!(html.contains("这套模板已经安装过了"), "{html}");
    assert_eq!(scalar(&t, "select count(*) from audit_log where action = 'template.install'").await, 1);
}

#[tokio::test]
async fn a_rule_waived_for_one_branch_waives_its_duties_and_the_rule_page_says_why() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    let waive = [("org", "HX-2"), ("reason", "该支部不涉及改革人员")];
    let (st, location, _) = admin.post("/admin/rules/A11/waivers", &waive).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/admin/rules/A11?saved=waiver#waivers"));
    assert_eq!(t.status_of("HX-2", "2026-Q2", "A11").await, "waived");
    assert_eq!(t.status_of("HX-2", "2026-Q1", "A11").await, "overdue", "an ended period stays as it was");
    assert_eq!(t.status_of("HX-1", "2026-Q2", "A11").await, "open");
    let (_, page) = admin.get("/admin/rules/A11").await;
    assert!(page.contains("该支部不涉及改革人员") && page.contains("HX-2"), "{page}");

    let (st, _, html) = admin.post("/admin/rules/A11/waivers", &waive).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert!(html.contains("已经免除了这条要求"), "{html}");
    let (st, _, html) = admin.post("/admin/rules/A11/waivers", &[("org", "HX-9"), ("reason", "")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("没有代码为“HX-9”的组织") && html.contains("请写明免除理由"), "{html}");
    assert!(input_tag(&html, "org").contains("value=\"HX-9\""), "the typed code is kept");
    let (st, _, html) = admin.post("/admin/rules/A11/waivers", &[("org", "HGS"), ("reason", "x")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "A11 binds branches, not committees");
    assert!(html.contains("无需免除"));
    assert_eq!(scalar(&t, "select count(*) from audit_log where action = 'rule.waive_org'").await, 1);
}

#[tokio::test]
async fn one_duty_is_waived_from_its_own_form_with_a_reason() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    let (_, q2) = t.get("/api/v1/orgs/HX-2/duties?period=2026-Q2").await;
    let id = q2.as_array().unwrap().iter().find(|d| d["rule"] == "A7").unwrap()["id"].as_str().unwrap().to_owned();
    let (_, page) = admin.get("/admin/rules/A7").await;
    assert!(page.contains(&format!("/admin/duties/{id}/waive")), "the rule's duty list links to the form");
    let (st, form) = admin.get(&format!("/admin/duties/{id}/waive")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(form.contains("HX-2") && form.contains("2026年第二季度"));
    let (st, _, html) = admin.post(&format!("/admin/duties/{id}/waive"), &[("reason", "  ")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("请写明免除理由"));
    let (st, location, _) = admin.post(&format!("/admin/duties/{id}/waive"), &[("reason", "支部书记长期病休")]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/admin/rules/A7?period=2026-Q2&saved=duty#duties"));
    assert_eq!(t.status_of("HX-2", "2026-Q2", "A7").await, "waived");
    let (st, _, html) = admin.post(&format!("/admin/duties/{id}/waive"), &[("reason", "again")]).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert!(html.contains("已经免除过了"));
    let (st, _) = admin.get("/admin/duties/999999/waive").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(scalar(&t, "select count(*) from audit_log where action = 'duty.waive'").await, 1);
}

#[tokio::test]
async fn someone_who_is_not_an_admin_gets_403_on_every_rules_page_and_api_route() {
    let t = company().await;
    let token = t.user("zhang", false).await;
    let (st, _) =
        t.post("/api/v1/orgs/HX-1/roles", json!({"login": "zhang", "role": "secretary", "from": "2020-01-01"})).await;
    assert_eq!(st, StatusCode::CREATED);
    let page = t.sign_in("zhang").await;
    for path in [
        "/admin/systems",
        "/admin/templates",
        "/admin/rules/A7",
        "/admin/rules/A7/edit",
        "/admin/rules/A7/retire",
        "/admin/systems/ideology-company/rules/new",
        "/admin/duties/1/waive",
    ] {
        assert_eq!(page.get(path).await.0, StatusCode::FORBIDDEN, "GET {path}");
    }
    let form = a7_fields(&[("code", "Z1"), ("cadence", "month"), ("record_kind", "meeting"), ("org", "HX-1")]);
    for path in [
        "/admin/systems",
        "/admin/systems/ideology-company/rules",
        "/admin/templates/ideology-school/install",
        "/admin/rules/A7/versions",
        "/admin/rules/A7/waivers",
        "/admin/duties/1/waive",
    ] {
        assert_eq!(page.post(path, &form).await.0, StatusCode::FORBIDDEN, "POST {path}");
    }
    for (method, path) in [
        ("GET", "/api/v1/systems"),
        ("POST", "/api/v1/systems"),
        ("GET", "/api/v1/rules/A7"),
        ("POST", "/api/v1/systems/ideology-company/rules"),
        ("POST", "/api/v1/rules/A7/versions"),
        ("POST", "/api/v1/rules/A7/waivers"),
    ] {
        let body = (method == "POST")
            .then(|| json!({"code": "z", "title": "z", "effective_from": "2026-07-01", "dry_run": true}));
        let (st, err) = t.call(method, path, &token, body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {path}: {err}");
    }
    assert_eq!(scalar(&t, "select count(*) from rule_version").await, 14, "nothing changed");
}

/// Every duty, with its count and deadline: what a dry run must leave alone.
async fn duty_state(t: &TestApp) -> Vec<(i64, i32, String)> {
    sqlx::query_as("select id, required, due_at::text from duty order by id").fetch_all(&t.pool).await.unwrap()
}

#[tokio::test]
async fn the_api_dry_run_changes_nothing_and_the_real_run_does_what_it_said() {
    let t = company().await;
    let before = duty_state(&t).await;
    let change = json!({"effective_from": "2026-04-01", "min_count": 2, "grace_days": 5, "dry_run": true});
    let (st, dry) = t.post("/api/v1/rules/A7/versions", change).await;
    assert_eq!(st, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["impact"]["duties_updated"], 2, "{dry}");
    assert_eq!(duty_state(&t).await, before, "a dry run changes no duty");
    assert_eq!(scalar(&t, "select count(*) from rule_version").await, 14);

    let (st, done) = t
        .post("/api/v1/rules/A7/versions", json!({"effective_from": "2026-04-01", "min_count": 2, "grace_days": 5}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{done}");
    assert_eq!(done["impact"], dry["impact"], "the real change does what the dry run said");
    assert_ne!(duty_state(&t).await, before);
    let (_, rule) = t.get("/api/v1/rules/A7").await;
    let versions = rule["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!((versions[1]["min_count"].as_i64(), versions[1]["grace_days"].as_i64()), (Some(2), Some(5)));
    assert_eq!(versions[1]["title"], "召开意识形态分析研判会", "fields not sent keep their values");
    assert_eq!(versions[1]["created_by"], "admin");
    assert!(versions[1]["created_at"].as_str().unwrap().ends_with("+08:00"), "local offset: {rule}");
    assert_eq!(rule["in_force"]["effective_from"], "2026-04-01");

    let (st, err) = t.post("/api/v1/rules/A7/versions", json!({"effective_from": "2026-03-31", "min_count": 3})).await;
    assert_eq!((st, err["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("effective_from")), "{err}");
    let (st, _) = t.post("/api/v1/rules/A7/versions", json!({"effective_from": "2026-04-01", "min_count": 3})).await;
    assert_eq!(st, StatusCode::CONFLICT, "a version takes effect on that day already");
    let (st, err) = t.post("/api/v1/rules/A7/versions", json!({"effective_from": "2026-07-01", "kinds": []})).await;
    assert_eq!((st, err["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("kinds")));

    let before = duty_state(&t).await;
    let new_rule = json!({"code": "A15", "title": "每月风险排查", "kinds": ["branch"], "cadence": "month",
                          "record_kind": "meeting", "min_count": 1, "effective_from": "2026-05-01", "dry_run": true});
    let (st, dry) = t.post("/api/v1/systems/ideology-company/rules", new_rule.clone()).await;
    assert_eq!(st, StatusCode::OK, "{dry}");
    assert_eq!((dry["impact"]["duties_created"].as_i64(), dry["impact"]["orgs_owing"].as_i64()), (Some(2), Some(2)));
    assert_eq!(duty_state(&t).await, before, "a dry run adds no duty");
    let (st, _) = t.get("/api/v1/rules/A15").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "nor the rule");
    let mut real = new_rule.clone();
    real["dry_run"] = json!(false);
    let (st, made) = t.post("/api/v1/systems/ideology-company/rules", real.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    assert_eq!(made["impact"], dry["impact"]);
    assert_eq!(made["rule"]["code"], "A15");
    let (st, _) = t.post("/api/v1/systems/ideology-company/rules", real).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, err) = t
        .post(
            "/api/v1/systems/ideology-company/rules",
            json!({"code": "A16", "title": "x", "kinds": ["branch"],
        "cadence": "fortnight", "record_kind": "meeting", "min_count": 1, "effective_from": "2026-05-01"}),
        )
        .await;
    assert_eq!((st, err["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("cadence")));

    let (st, sys) = t.post("/api/v1/systems", json!({"code": "local-2026", "title": "本单位补充要求"})).await;
    assert_eq!(st, StatusCode::CREATED, "{sys}");
    let (st, _) = t.post("/api/v1/systems", json!({"code": "local-2026", "title": "again"})).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, err) = t.post("/api/v1/systems", json!({"code": "Bad Code", "title": "x"})).await;
    assert_eq!((st, err["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("code")));
    let (_, list) = t.get("/api/v1/systems").await;
    let codes: BTreeSet<&str> = list.as_array().unwrap().iter().map(|s| s["code"].as_str().unwrap()).collect();
    assert_eq!(codes, BTreeSet::from(["ideology-company", "local-2026"]));
    let company = &list[0];
    let a7 = company["rules"].as_array().unwrap().iter().find(|r| r["code"] == "A7").unwrap();
    assert_eq!(
        (a7["period"].as_str(), a7["owing"].as_i64(), a7["min_count"].as_i64()),
        (Some("2026-Q2"), Some(2), Some(2))
    );

    let (st, waived) = t.post("/api/v1/rules/A11/waivers", json!({"org": "HX-2", "reason": "不涉及改革人员"})).await;
    assert_eq!(st, StatusCode::CREATED, "{waived}");
    assert_eq!(waived["duties_waived"], 1);
    let (st, _) = t.post("/api/v1/rules/A11/waivers", json!({"org": "HX-2", "reason": "again"})).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, err) = t.post("/api/v1/rules/A11/waivers", json!({"org": "HX-1", "reason": ""})).await;
    assert_eq!((st, err["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("reason")));
    let (_, rule) = t.get("/api/v1/rules/A11").await;
    assert_eq!(rule["waivers"][0]["org"], "HX-2");
    let audited = scalar(
        &t,
        "select count(*) from audit_log
         where action in ('rule.change', 'rule.create', 'system.create', 'rule.waive_org')",
    )
    .await;
    assert_eq!(audited, 4, "every change is audited, no dry run is");
}

#[tokio::test]
async fn a_rule_retired_from_next_quarter_keeps_this_quarter_and_owes_nothing_after() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    let (st, form) = admin.get("/admin/rules/A11/retire").await;
    assert_eq!(st, StatusCode::OK);
    assert!(input_tag(&form, "effective_from").contains("value=\"2026-07-01\""));
    let retire = |step| vec![("retired", "1"), ("effective_from", "2026-07-01"), ("step", step)];
    let (st, _, preview) = admin.post("/admin/rules/A11/versions", &retire("preview")).await;
    assert_eq!(st, StatusCode::OK, "{preview}");
    assert!(preview.contains("停用本要求") && preview.contains("不影响任何已开始的周期"), "{preview}");
    let (st, location, _) = admin.post("/admin/rules/A11/versions", &retire("confirm")).await;
    assert_eq!((st, location.as_deref()), (StatusCode::SEE_OTHER, Some("/admin/rules/A11?saved=retired")));
    assert_eq!(scalar(&t, "select count(*) from audit_log where action = 'rule.retire'").await, 1);
    assert_eq!(t.status_of("HX-1", "2026-Q2", "A11").await, "open", "this quarter still owes it");
    t.set_now("2026-07-02T09:00:00+08:00");
    assert!(!t.statuses("HX-1", "2026-Q3").await.iter().any(|(r, _)| r == "A11"), "next quarter does not");
    let admin = t.sign_in("admin").await; // the old session is past its idle time by July
    let (_, page) = admin.get("/admin/rules/A11").await;
    assert!(page.contains("已停用"));
}

#[tokio::test]
async fn the_pages_speak_english_on_request() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    let (_, page) = admin.get("/admin/rules/A7?lang=en").await;
    assert!(page.contains("Versions") && page.contains("First published") && page.contains("Quarterly"), "{page}");
    let (_, page) = admin.get("/admin/systems?lang=en").await;
    assert!(page.contains("Systems and rules") && page.contains("Q2 2026: 2 owing"), "{page}");
}

#[test]
fn every_message_the_rules_pages_use_exists_in_chinese_and_english() {
    let root = env!("CARGO_MANIFEST_DIR");
    let catalogue: toml::Table =
        toml::from_str(&std::fs::read_to_string(format!("{root}/i18n/rules.toml")).unwrap()).unwrap();
    let mut sources = vec![
        std::fs::read_to_string(format!("{root}/src/web/pages/admin_rules.rs")).unwrap(),
        std::fs::read_to_string(format!("{root}/src/web/api/rules.rs")).unwrap(),
    ];
    for entry in std::fs::read_dir(format!("{root}/templates/admin")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if ["rules", "systems", "templates"].iter().any(|p| name.starts_with(p)) {
            sources.push(std::fs::read_to_string(&path).unwrap());
        }
    }
    let mut used = BTreeSet::new();
    for src in &sources {
        for (i, _) in src.match_indices("\"rules.") {
            let key: String = src[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !key.is_empty() {
                used.insert(key);
            }
        }
    }
    let systems = std::fs::read_to_string(format!("{root}/src/db/systems.rs")).unwrap();
    for (i, _) in systems.match_indices("\"err_") {
        used.insert(systems[i + 1..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect());
    }
    assert!(used.len() > 100, "the keys are found: {used:?}");
    for lang in ["zh", "en"] {
        let table = catalogue[lang].as_table().unwrap();
        let missing: Vec<&String> = used.iter().filter(|k| !table.contains_key(*k)).collect();
        assert!(missing.is_empty(), "{lang} lacks {missing:?}");
    }
}

// The rule edit in a real browser is in tests/browser.rs.
