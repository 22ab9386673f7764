//! Accounts, API tokens, settings and the audit log, through the pages and the API:
//! opening an account and signing in with it, resets and disabling that end sessions, the
//! last administrator who cannot be removed, tokens that work until revoked, settings that
//! move reminder windows and refuse bad input, the audit page's filters and escaping, the
//! tamper check, 403 for everyone else, and no secret in the logs or the database.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::{PageClient, TestApp, csrf_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Sign in with a given password; None when the portal refuses.
async fn sign_in_with(t: &TestApp, login: &str, password: &str) -> Option<PageClient> {
    let mut c = t.anonymous();
    let (_, html) = c.get("/login").await;
    let pre = csrf_of(&html).expect("the sign-in form has a CSRF field");
    let resp = c
        .http
        .post(format!("{}/login", c.base))
        .form(&[("login", login), ("password", password), ("csrf", pre.as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    if resp.status() != StatusCode::SEE_OTHER {
        return None;
    }
    let (st, html) = c.get("/").await;
    assert_eq!(st, StatusCode::OK);
    c.csrf = csrf_of(&html).expect("a signed-in page carries the session's CSRF token");
    Some(c)
}

/// Whether a client's session still opens a page (a signed-out one is sent to /login).
async fn signed_in(c: &PageClient) -> bool {
    let (st, _) = c.get("/").await;
    st == StatusCode::OK
}

/// The value shown once in the secret field of a page (a password or a token).
fn secret_of(html: &str) -> String {
    let at = html.find("au-secret-value").expect("a secret is shown");
    let rest = &html[at..];
    let i = rest.find("value=\"").expect("with a value") + "value=\"".len();
    rest[i..].split('"').next().unwrap().to_owned()
}

/// A company with a secretary `zhang` of HX-1 and the company template from 2026.
async fn company_at(now: &str) -> TestApp {
    let t = TestApp::spawn_at(now).await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    t.user("zhang", false).await;
    let (st, body) =
        t.post("/api/v1/orgs/HX-1/roles", json!({"login": "zhang", "role": "secretary", "from": "2020-01-01"})).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    t
}

async fn company() -> TestApp {
    company_at("2026-03-20T10:00:00+08:00").await
}

/// Whether the audit page lists an entry with this action code.
fn shows(html: &str, action: &str) -> bool {
    html.contains(&format!("<span class=\"code\">{action}</span>"))
}

async fn audit_rows(t: &TestApp, action: &str) -> Vec<Value> {
    sqlx::query_scalar("select detail from audit_log where action = $1 order by id")
        .bind(action)
        .fetch_all(&t.pool)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_opens_an_account_on_the_page_and_its_holder_signs_in_with_it() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    let (st, location, body) = admin
        .post(
            "/admin/users",
            &[
                ("login", "Liming"),
                ("name", "李明"),
                ("person_mode", "new"),
                ("password_mode", "set"),
                ("password", "a long sentence of my own"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location.as_deref(), Some("/admin/users/liming?done=created"), "logins are lower-case");
    let (st, html) = admin.get("/admin/users/liming?done=created").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("李明") && html.contains("账号已开通"), "{html}");
    let liming = sign_in_with(&t, "liming", "a long sentence of my own").await.expect("the new account signs in");
    assert!(signed_in(&liming).await);

    // With a generated password, shown once on the answer.
    let (st, _, html) =
        admin.post("/admin/users", &[("login", "wangwu"), ("name", "王五"), ("password_mode", "generate")]).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("只显示这一次"), "{html}");
    let password = secret_of(&html);
    assert!(password.len() >= 20, "{password}");
    assert!(sign_in_with(&t, "wangwu", &password).await.is_some(), "the generated password works");
    let (_, list) = admin.get("/admin/users?q=wang").await;
    assert!(list.contains("王五") && !list.contains(&password), "the list never shows a password");
    let detail = audit_rows(&t, "user.create").await;
    assert!(detail.iter().any(|d| d["password"] == "generated"), "{detail:?}");
    assert!(!detail.iter().any(|d| d.to_string().contains(&password)));
}

#[tokio::test]
async fn an_account_form_with_mistakes_comes_back_marked_with_the_input_kept() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    let (st, _, html) = admin
        .post(
            "/admin/users",
            &[("login", "Bad Login!"), ("name", ""), ("password_mode", "set"), ("password", "123456")],
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("表单有需要修改的地方"), "the summary line");
    assert!(html.contains("value=\"Bad Login!\""), "the login is kept");
    assert!(html.contains("登录名需为 2–64 位"), "{html}");
    assert!(html.contains("请填写姓名"));
    assert!(html.contains("密码至少需要 8 个字符"));
    assert!(html.contains("aria-invalid=\"true\""));
    assert!(!html.contains("value=\"123456\""), "a password is never sent back");

    let (st, _, html) = admin.post("/admin/users", &[("login", "zhang"), ("name", "张三")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("登录名 zhang 已被使用"), "{html}");
    let (st, _, html) = admin
        .post(
            "/admin/users",
            &[("login", "common"), ("name", "某"), ("password_mode", "set"), ("password", "password123")],
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("这个密码太常见"), "{html}");
}

#[tokio::test]
async fn an_account_can_belong_to_an_existing_person_who_has_none() {
    let t = company().await;
    let (st, person) = t.post("/api/v1/people", json!({"name": "赵敏", "code": "P-0042"})).await;
    assert_eq!(st, StatusCode::CREATED, "{person}");
    let person_id = person["id"].as_str().unwrap().to_owned();
    let admin = t.sign_in("admin").await;
    let (st, _, body) = admin
        .post(
            "/admin/users",
            &[("login", "zhaomin"), ("person_mode", "existing"), ("person", "P-0042"), ("password_mode", "generate")],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, user) = t.get("/api/v1/users/zhaomin").await;
    assert_eq!(user["person"], person_id.as_str());
    assert_eq!(user["name"], "赵敏", "the person's name is the account's");

    // Someone who has an account already cannot get a second one.
    let (st, _, html) =
        admin.post("/admin/users", &[("login", "zhaomin2"), ("person_mode", "existing"), ("person", "P-0042")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("已有账号 zhaomin"), "{html}");

    // A partial name offers the people it matches to choose from.
    let (st, _, html) =
        admin.post("/admin/users", &[("login", "x1"), ("person_mode", "existing"), ("person", "赵")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("name=\"person_pick\""), "{html}");

    // Linking an account to another person through its page and through the API.
    let (_, other) = t.post("/api/v1/people", json!({"name": "钱进"})).await;
    let other_id = other["id"].as_str().unwrap().to_owned();
    let (st, location, body) = admin.post("/admin/users/zhang/person", &[("person", &format!("#{other_id}"))]).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location.as_deref(), Some("/admin/users/zhang?done=linked"));
    let (_, user) = t.get("/api/v1/users/zhang").await;
    assert_eq!(user["person"], other_id.as_str());
    assert_eq!(user["name"], "钱进");
    let (st, body) = t.patch("/api/v1/users/zhang", json!({"person": person_id})).await;
    assert_eq!(st, StatusCode::CONFLICT, "赵敏 has an account: {body}");
}

#[tokio::test]
async fn resetting_a_password_ends_every_session_of_the_account() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;
    assert!(signed_in(&zhang).await);
    let admin = t.sign_in("admin").await;
    let (st, location, _) = admin
        .post("/admin/users/zhang/password", &[("password_mode", "set"), ("password", "a brand new sentence")])
        .await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/admin/users/zhang?done=password"));
    let (st, _) = zhang.get("/").await;
    assert_eq!(st, StatusCode::SEE_OTHER, "the old cookie is sent to sign in");
    assert!(sign_in_with(&t, "zhang", common::PASSWORD).await.is_none(), "the old password is refused");
    assert!(sign_in_with(&t, "zhang", "a brand new sentence").await.is_some());

    // A generated one, shown once; the audit entry says so and holds no password.
    let (st, _, html) = admin.post("/admin/users/zhang/password", &[("password_mode", "generate")]).await;
    assert_eq!(st, StatusCode::OK);
    let password = secret_of(&html);
    assert!(sign_in_with(&t, "zhang", &password).await.is_some());
    let entries = audit_rows(&t, "user.password_reset").await;
    assert_eq!(entries.len(), 2);
    assert!(!entries.iter().any(|d| d.to_string().contains(&password) || d.to_string().contains("brand new")));

    // Through the API too.
    let (st, body) = t.post("/api/v1/users/zhang/password", json!({"generate": true})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let api_password = body["password"].as_str().unwrap().to_owned();
    assert!(sign_in_with(&t, "zhang", &api_password).await.is_some());
    let (st, body) = t.post("/api/v1/users/zhang/password", json!({"password": "short"})).await;
    assert_eq!((st, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("password")));
}

#[tokio::test]
async fn disabling_an_account_ends_its_sessions_and_refuses_its_token_until_enabled() {
    let t = company().await;
    let token = t.user("li", false).await;
    let li = t.sign_in("li").await;
    let (st, _) = t.call("GET", "/api/v1/me", &token, None).await;
    assert_eq!(st, StatusCode::OK);

    let admin = t.sign_in("admin").await;
    let (st, location, _) = admin.post("/admin/users/li/disable", &[]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/admin/users/li?done=disabled"));
    assert!(!signed_in(&li).await, "the old cookie no longer opens a page");
    let (st, _) = t.call("GET", "/api/v1/me", &token, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the token is refused");
    assert!(sign_in_with(&t, "li", common::PASSWORD).await.is_none(), "a disabled account cannot sign in");
    let (_, html) = admin.get("/admin/users/li").await;
    assert!(html.contains("已停用") && html.contains("恢复使用"), "{html}");
    let (_, list) = admin.get("/admin/users?show=disabled").await;
    assert!(list.contains(">li<") && !list.contains(">zhang<"), "{list}");

    let (st, _, _) = admin.post("/admin/users/li/enable", &[]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let (st, _) = t.call("GET", "/api/v1/me", &token, None).await;
    assert_eq!(st, StatusCode::OK, "enabled again, the token works again");

    // Through the API.
    let (st, body) = t.patch("/api/v1/users/li", json!({"disabled": true})).await;
    assert_eq!((st, body["disabled"].as_bool()), (StatusCode::OK, Some(true)), "{body}");
    let (st, _) = t.call("GET", "/api/v1/me", &token, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let actions: Vec<String> =
        sqlx::query_scalar("select action from audit_log where object_type = 'user' and object_id = 'li' order by id")
            .fetch_all(&t.pool)
            .await
            .unwrap();
    assert_eq!(actions, ["user.disable", "user.enable", "user.disable"]);
}

#[tokio::test]
async fn the_last_admin_can_be_neither_disabled_nor_demoted_and_the_page_says_why() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    let (st, _, html) = admin.post("/admin/users/admin", &[("name", "系统管理员")]).await;
    assert_eq!(st, StatusCode::CONFLICT, "unticking the flag of the only admin");
    assert!(html.contains("这是唯一一个正常使用的管理员账号"), "{html}");
    let (st, _, html) = admin.post("/admin/users/admin/disable", &[]).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert!(html.contains("不能停用自己正在使用的账号"), "{html}");
    let (st, body) = t.patch("/api/v1/users/admin", json!({"admin": false})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("only enabled administrator"));
    let (st, _) = t.patch("/api/v1/users/admin", json!({"disabled": true})).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (_, me) = t.get("/api/v1/users/admin").await;
    assert_eq!((me["admin"].as_bool(), me["disabled"].as_bool()), (Some(true), Some(false)));

    // With a second admin, one may go; then the other is the last.
    let boss_token = t.user("boss", true).await;
    let (st, location, _) = admin.post("/admin/users/boss", &[("name", "boss")]).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "boss may lose the flag: admin remains");
    assert_eq!(location.as_deref(), Some("/admin/users/boss?done=saved"));
    let (st, _) = t.call("GET", "/api/v1/users", &boss_token, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "demoted at once");
    let (st, _, _) = admin.post("/admin/users/boss", &[("name", "boss"), ("admin", "1")]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let (st, body) = t.call("PATCH", "/api/v1/users/admin", &boss_token, Some(json!({"disabled": true}))).await;
    assert_eq!(st, StatusCode::OK, "another admin remains: {body}");
    let (st, body) = t.call("PATCH", "/api/v1/users/boss", &boss_token, Some(json!({"admin": false}))).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn an_admin_changes_their_own_password_on_its_page_and_leaves_when_no_longer_admin() {
    let t = company().await;
    t.user("boss", true).await;
    let admin = t.sign_in("admin").await;
    let (_, html) = admin.get("/admin/users/admin").await;
    assert!(html.contains("自己的密码请在“修改密码”页面修改") && html.contains("href=\"/account/password\""));
    let (st, location, _) = admin.post("/admin/users/admin/password", &[("password_mode", "generate")]).await;
    assert_eq!((st, location.as_deref()), (StatusCode::SEE_OTHER, Some("/account/password")));
    assert!(signed_in(&admin).await, "nothing was reset");
    let (st, location, _) = admin.post("/admin/users/admin", &[("name", "admin")]).await;
    assert_eq!((st, location.as_deref()), (StatusCode::SEE_OTHER, Some("/")), "demoted, sent home");
    let (st, _) = admin.get("/admin/users").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_token_made_on_the_page_works_until_it_is_revoked() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;
    let (st, _, html) = zhang.post("/account/tokens", &[("label", "周报脚本")]).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("令牌只显示这一次"), "{html}");
    let token = secret_of(&html);
    assert!(token.starts_with("zrz_"));
    let (st, me) = t.call("GET", "/api/v1/me", &token, None).await;
    assert_eq!((st, me["login"].as_str()), (StatusCode::OK, Some("zhang")));

    let (_, again) = zhang.get("/account/tokens").await;
    assert!(again.contains("周报脚本") && !again.contains(&token), "listed, never shown again");
    let (st, list) = t.call("GET", "/api/v1/tokens", &token, None).await;
    assert_eq!(st, StatusCode::OK);
    let mine = list.as_array().unwrap().iter().find(|x| x["label"] == "周报脚本").expect("listed").clone();
    assert!(mine.get("token").is_none() && !list.to_string().contains(&token));
    let id = mine["id"].as_str().unwrap().to_owned();

    let (st, location, _) = zhang.post(&format!("/account/tokens/{id}/revoke"), &[]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/account/tokens?done=revoked"));
    let (st, _) = t.call("GET", "/api/v1/me", &token, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "a revoked token is refused");
    let (_, html) = zhang.get("/account/tokens").await;
    assert!(html.contains("已于") && html.contains("吊销"), "{html}");

    let (st, _, html) = zhang.post("/account/tokens", &[("label", "  ")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("请写明令牌的用途"));
}

#[tokio::test]
async fn nobody_revokes_another_users_token_except_an_admin() {
    let t = company().await;
    let li_token = t.user("li", false).await;
    let zhang_token = t.user("zhang2", false).await;
    let (st, made) = t.call("POST", "/api/v1/tokens", &li_token, Some(json!({"label": "OA 对接"}))).await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    let new_token = made["token"].as_str().unwrap().to_owned();
    let id = made["id"].as_str().unwrap().to_owned();
    assert_eq!(made["user"], "li");

    let (st, _) = t.call("DELETE", &format!("/api/v1/tokens/{id}"), &zhang_token, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "someone else's token is not found");
    let zhang = sign_in_with(&t, "zhang2", common::PASSWORD).await.unwrap();
    let (st, _, _) = zhang.post(&format!("/account/tokens/{id}/revoke"), &[]).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = t.call("GET", "/api/v1/tokens?user=li", &zhang_token, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "only an admin lists another's tokens");
    let (st, _) = t.call("GET", "/api/v1/me", &new_token, None).await;
    assert_eq!(st, StatusCode::OK, "still working");

    let (st, list) = t.get("/api/v1/tokens?user=li").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2, "the harness's and the new one: {list}");
    let (st, _) = t.call("DELETE", &format!("/api/v1/tokens/{id}"), &t.admin_token.clone(), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "an admin may");
    let (st, _) = t.call("GET", "/api/v1/me", &new_token, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // An admin revokes from the account's page too.
    let (_, list) = t.get("/api/v1/tokens?user=li").await;
    let other =
        list.as_array().unwrap().iter().find(|x| x["revoked_at"].is_null()).unwrap()["id"].as_str().unwrap().to_owned();
    let admin = t.sign_in("admin").await;
    let (_, html) = admin.get("/admin/users/li").await;
    assert!(html.contains("OA 对接"), "{html}");
    let (st, _, _) = admin.post(&format!("/admin/users/li/tokens/{other}/revoke"), &[]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let (st, _) = t.call("GET", "/api/v1/me", &li_token, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _, _) = admin.post(&format!("/admin/users/zhang2/tokens/{other}/revoke"), &[]).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "a token is revoked only from its owner's page");
}

#[tokio::test]
async fn a_tokens_use_is_recorded_at_most_once_a_minute() {
    let t = company().await;
    let token = t.user("li", false).await;
    let now = common::instant("2026-03-20T10:00:00+08:00");
    let mut conn = t.pool.acquire().await.unwrap();
    let touch = zerenzhi::db::admin::touch_token;
    assert!(touch(&mut conn, &token, now).await.unwrap(), "the first use is written");
    assert!(!touch(&mut conn, &token, now + chrono::Duration::seconds(30)).await.unwrap(), "not again so soon");
    assert!(touch(&mut conn, &token, now + chrono::Duration::seconds(61)).await.unwrap(), "a minute later, again");
    let (_, list) = t.call("GET", "/api/v1/tokens", &token, None).await;
    assert_eq!(list[0]["last_used_at"], "2026-03-20T10:01:01+08:00", "{list}");
    assert!(!touch(&mut conn, "zrz_unknown", now).await.unwrap());
}

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

fn settings_form(quarter: &str) -> Vec<(&'static str, String)> {
    vec![
        ("time_zone", "Asia/Shanghai".into()),
        ("lead_year", "30".into()),
        ("lead_half", "14".into()),
        ("lead_quarter", quarter.into()),
        ("lead_month", "3".into()),
        ("attachment_max_mb", "20".into()),
        ("mail_tls", "starttls".into()),
    ]
}

async fn post_settings(c: &PageClient, fields: &[(&'static str, String)]) -> (StatusCode, Option<String>, String) {
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    c.post("/admin/settings", &pairs).await
}

#[tokio::test]
async fn longer_lead_days_open_the_due_soon_window_earlier_except_for_rules_with_their_own() {
    let t = company().await;
    // A7 (quarterly) of 2026-Q1 is due on 1 April: with 7 days' lead it opens on 25 March.
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "open");
    // Another quarterly rule keeps lead days of its own.
    let own: (i64, String) = sqlx::query_as(
        "select r.id, r.code from rule r join rule_version v on v.rule_id = r.id
         where r.cadence = 'quarter' and r.code <> 'A7' and r.binds = 'organisation' order by r.code limit 1",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    sqlx::query("update rule_version set lead_days = 7 where rule_id = $1").bind(own.0).execute(&t.pool).await.unwrap();
    let soon_before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select due_soon_at from rule_period where rule_id = $1 and period_key = '2026-Q1'")
            .bind(own.0)
            .fetch_one(&t.pool)
            .await
            .unwrap();

    let admin = t.sign_in("admin").await;
    let (st, location, body) = post_settings(&admin, &settings_form("14")).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    let location = location.unwrap();
    assert!(location.starts_with("/admin/settings?saved=1&moved="), "{location}");
    let (_, html) = admin.get(&location).await;
    assert!(html.contains("设置已保存") && html.contains("按新的提前天数调整"), "{html}");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "due_soon", "the window now opened on 18 March");
    let soon_after: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select due_soon_at from rule_period where rule_id = $1 and period_key = '2026-Q1'")
            .bind(own.0)
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(soon_before, soon_after, "{} keeps its own lead days", own.1);
    let (_, s) = t.get("/api/v1/settings").await;
    assert_eq!(s["lead_days"]["quarter"], 14);

    // A period already in its window keeps it when the lead gets shorter.
    let (st, _, _) = post_settings(&admin, &settings_form("2")).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "due_soon", "already reminded, not moved back");
    let entry = audit_rows(&t, "settings.update").await;
    assert_eq!(entry[0]["lead_days"]["to"]["quarter"], 14, "{entry:?}");
    assert!(entry[0]["lead_days"]["periods_moved"].as_u64().unwrap() >= 1);

    // The API moves them the same way.
    let (st, body) =
        t.call("PUT", "/api/v1/settings", &t.admin_token.clone(), Some(json!({"lead_days": {"month": 10}}))).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!((body["lead_days"]["month"].as_u64(), body["lead_days"]["quarter"].as_u64()), (Some(10), Some(2)));
}

#[tokio::test]
async fn wrong_settings_come_back_with_field_errors_and_the_input_kept() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    let mut form = settings_form("7");
    form.retain(|(k, _)| *k != "lead_month" && *k != "attachment_max_mb");
    form.push(("lead_month", "40".into()));
    form.push(("attachment_max_mb", "0".into()));
    form.push(("mail_host", "smtp bad host".into()));
    form.push(("mail_port", "70000".into()));
    let (st, _, html) = post_settings(&admin, &form).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("表单有需要修改的地方"));
    assert!(html.contains("请填写 0 到 28 之间的整数"), "{html}");
    assert!(html.contains("请填写 1 到 1024 之间的整数"));
    assert!(html.contains("请填写服务器的域名或 IP 地址"));
    assert!(html.contains("端口为 1 到 65535 之间的整数"));
    assert!(html.contains("填写了服务器地址时，需要同时填写发件人地址"));
    assert!(
        html.contains("value=\"40\"") && html.contains("value=\"smtp bad host\"") && html.contains("value=\"70000\"")
    );
    assert!(html.matches("aria-invalid=\"true\"").count() >= 5);
    let (_, s) = t.get("/api/v1/settings").await;
    assert_eq!(s["lead_days"]["month"], 3, "nothing was saved");

    // Duties exist: the time zone is fixed, and the page says why.
    let (_, page) = admin.get("/admin/settings").await;
    assert!(page.contains("时区不能再修改"), "{page}");
    let mut tz = settings_form("7");
    tz[0].1 = "Asia/Urumqi".into();
    let (st, _, html) = post_settings(&admin, &tz).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("时区不能再修改"));
    let (st, body) =
        t.call("PUT", "/api/v1/settings", &t.admin_token.clone(), Some(json!({"time_zone": "Asia/Urumqi"}))).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    let (st, body) =
        t.call("PUT", "/api/v1/settings", &t.admin_token.clone(), Some(json!({"lead_days": {"year": -1}}))).await;
    assert_eq!((st, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("lead_days.year")));
}

#[tokio::test]
async fn the_time_zone_changes_while_no_duty_exists() {
    let t = TestApp::spawn_at("2026-03-20T10:00:00+08:00").await;
    let (st, body) =
        t.call("PUT", "/api/v1/settings", &t.admin_token.clone(), Some(json!({"time_zone": "Asia/Urumqi"}))).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!((body["time_zone"].as_str(), body["time_zone_locked"].as_bool()), (Some("Asia/Urumqi"), Some(false)));
    let (st, body) =
        t.call("PUT", "/api/v1/settings", &t.admin_token.clone(), Some(json!({"time_zone": "Mars/Olympus"}))).await;
    assert_eq!((st, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("time_zone")));
}

#[tokio::test]
async fn the_mail_password_is_stored_but_never_shown_or_logged() {
    let t = company().await;
    let admin = t.sign_in("admin").await;
    let mut form = settings_form("7");
    form.extend([
        ("mail_host", "smtp.hx.gov.cn".to_owned()),
        ("mail_from", "portal@hx.gov.cn".to_owned()),
        ("mail_user", "portal".to_owned()),
        ("mail_password", "Mail-Secret-77".to_owned()),
    ]);
    let (st, _, body) = post_settings(&admin, &form).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    let (_, html) = admin.get("/admin/settings").await;
    assert!(html.contains("smtp.hx.gov.cn") && html.contains("已保存"), "the saved indicator");
    assert!(!html.contains("Mail-Secret-77"), "never shown back");
    let (_, s) = t.get("/api/v1/settings").await;
    assert_eq!(s["mail"]["password_set"], true);
    assert_eq!(s["mail"]["port"], 587, "the usual port of STARTTLS");
    assert!(!s.to_string().contains("Mail-Secret-77"));
    let logged: i64 = sqlx::query_scalar("select count(*) from audit_log where detail::text like '%Mail-Secret-77%'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(logged, 0);
    assert_eq!(audit_rows(&t, "settings.update").await[0]["mail_password"], "changed");

    // Saving again without typing it keeps it; ticking the box removes it.
    let mut keep = settings_form("7");
    keep.extend([("mail_host", "smtp.hx.gov.cn".to_owned()), ("mail_from", "portal@hx.gov.cn".to_owned())]);
    post_settings(&admin, &keep).await;
    assert_eq!(t.get("/api/v1/settings").await.1["mail"]["password_set"], true);
    keep.push(("mail_password_clear", "1".to_owned()));
    post_settings(&admin, &keep).await;
    assert_eq!(t.get("/api/v1/settings").await.1["mail"]["password_set"], false);
}

// ---------------------------------------------------------------------------------------
// The audit log
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_audit_page_filters_and_shows_details_as_text() {
    let t = company().await;
    let (st, body) = t
        .post(
            "/api/v1/orgs",
            json!({"code": "XSS-1", "name": "<script>alert(1)</script>", "kind": "branch", "parent": "HGS", "active_from": "2026-01-01"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let zhang = t.sign_in("zhang").await;
    drop(zhang);
    let admin = t.sign_in("admin").await;

    let (st, html) = admin.get("/admin/audit?action=org.").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("新建组织"), "the action in words: {html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            || html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "escaped: {html}"
    );
    assert!(!html.contains("<script>alert(1)"), "never as markup");
    assert!(!shows(&html, "auth.login"), "only org. actions");

    let (_, html) = admin.get("/admin/audit?actor=zhang").await;
    assert!(shows(&html, "auth.login") && !shows(&html, "org.create"), "only zhang's entries");
    let (_, html) = admin.get("/admin/audit?org=HX-1").await;
    assert!(shows(&html, "role.assign") && !html.contains("XSS-1"), "exactly HX-1");
    let (_, html) = admin.get("/admin/audit?org=HGS&sub=1&action=org.create").await;
    assert!(html.contains("XSS-1") && html.contains("HX-2"), "the subtree of HGS: {html}");
    let (_, html) = admin.get("/admin/audit?org=HGS&action=org.create").await;
    assert!(!html.contains("XSS-1"), "without the subtree, HGS alone");
    let (_, html) = admin.get("/admin/audit?from=2026-03-21").await;
    assert!(html.contains("没有符合条件的记录"), "nothing happened after today");
    let (st, html) = admin.get("/admin/audit?org=NOPE&from=2026-13-01").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("没有代码为 NOPE 的组织") && html.contains("请填写日期"), "{html}");

    // The API gives the same, page by page.
    let (st, page1) = t.get("/api/v1/audit?action=org.create&limit=2").await;
    assert_eq!(st, StatusCode::OK, "{page1}");
    assert_eq!(page1["entries"].as_array().unwrap().len(), 2);
    let next = page1["next_page"].as_str().unwrap();
    let (_, page2) = t.get(&format!("/api/v1/audit?action=org.create&limit=2&page={next}")).await;
    let first_ids: Vec<&str> = page1["entries"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    let second = page2["entries"].as_array().unwrap();
    assert!(!second.is_empty() && second.iter().all(|e| !first_ids.contains(&e["id"].as_str().unwrap())));
    let (st, body) = t.get("/api/v1/audit?org=NOPE").await;
    assert_eq!((st, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("org")));
}

#[tokio::test]
async fn the_audit_log_pages_by_keyset_and_exports_the_filter_as_csv() {
    let t = company().await;
    for i in 0..60 {
        let (st, _) = t.post("/api/v1/people", json!({"name": format!("人员{i}")})).await;
        assert_eq!(st, StatusCode::CREATED);
    }
    t.org("CALC", "branch", Some("HGS"), "2026-01-01").await;
    let (st, _) = t.patch("/api/v1/orgs/CALC", json!({"name": "=1+2"})).await;
    assert_eq!(st, StatusCode::OK);
    let admin = t.sign_in("admin").await;
    let (_, first) = admin.get("/admin/audit?action=person.create").await;
    assert_eq!(first.matches("class=\"au-entry\"").count(), 50);
    let older = first.find("before=").expect("a link to older entries");
    let link: String = first[older..].chars().take_while(|c| *c != '"').collect();
    let before_link = &first[..older];
    assert!(
        before_link.ends_with("action=person.create&amp;") || before_link.ends_with("action=person.create&#38;"),
        "the filter stays in the link"
    );
    let (_, second) = admin.get(&format!("/admin/audit?action=person.create&{link}")).await;
    assert_eq!(second.matches("class=\"au-entry\"").count(), 10);
    assert!(second.contains("after="), "and a link back to newer ones");

    let export = |q: &str| {
        let url = format!("{}/admin/audit/export?{q}", admin.base);
        let http = admin.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let resp = export("action=person.create").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let bytes = resp.bytes().await.unwrap();
    assert!(bytes.starts_with("\u{feff}".as_bytes()), "a BOM for Excel");
    let csv = String::from_utf8(bytes.to_vec()).unwrap();
    assert_eq!(csv.lines().count(), 61, "a header and 60 entries");
    assert!(csv.contains("新增人员") && csv.contains("人员59"));
    let csv = String::from_utf8(export("org=CALC").await.bytes().await.unwrap().to_vec()).unwrap();
    assert!(csv.contains(",'=1+2,"), "a cell a spreadsheet would run is quoted: {csv}");
    assert!(!csv.contains(",=1+2,"));
    assert_eq!(audit_rows(&t, "audit.export").await.len(), 2, "each export is logged");
}

/// Seal everything written so far into the chain.
async fn seal(t: &TestApp) {
    zerenzhi::db::audit::seal(&t.pool, 1000).await.unwrap();
}

#[tokio::test]
async fn verify_now_checks_the_chain_and_the_page_shows_what_it_found() {
    let t = company().await;
    seal(&t).await;
    let admin = t.sign_in("admin").await;
    let (_, html) = admin.get("/admin/audit").await;
    assert!(html.contains("尚未校验"), "{html}");
    let (st, location, _) = admin.post("/admin/audit/verify", &[]).await;
    assert_eq!((st, location.as_deref()), (StatusCode::SEE_OTHER, Some("/admin/audit?verified=1")));
    let (_, html) = admin.get("/admin/audit?verified=1").await;
    assert!(html.contains("校验完成：日志完好") && html.contains("由 admin 校验"), "{html}");

    // An intruder changes an entry: the next check says so.
    let mut conn = t.pool.acquire().await.unwrap();
    sqlx::query("alter table audit_log disable trigger audit_log_no_update").execute(&mut *conn).await.unwrap();
    sqlx::query("update audit_log set actor = 'nobody' where seal_no = 2").execute(&mut *conn).await.unwrap();
    let (st, _, _) = admin.post("/admin/audit/verify", &[]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let (_, html) = admin.get("/admin/audit?verified=1").await;
    assert!(html.contains("校验发现日志被改动") && html.contains("entry 2"), "{html}");
    let (st, body) = t.post("/api/v1/audit/verify", json!({})).await;
    assert_eq!((st, body["intact"].as_bool()), (StatusCode::OK, Some(false)), "{body}");
}

#[tokio::test]
async fn moving_two_sealed_entries_into_each_others_place_breaks_the_chain() {
    let t = company().await;
    seal(&t).await;
    assert_eq!(zerenzhi::db::audit::verify(&t.pool).await.unwrap().problem, None);
    let mut conn = t.pool.acquire().await.unwrap();
    sqlx::query("alter table audit_log disable trigger audit_log_no_update").execute(&mut *conn).await.unwrap();
    // Whole rows trade places in the chain, hashes and all.
    sqlx::query(
        "update audit_log a set seal_no = -b.seal_no, prev_hash = b.prev_hash, hash = b.hash
         from audit_log b where (a.seal_no, b.seal_no) in ((2, 3), (3, 2))",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("update audit_log set seal_no = -seal_no where seal_no < 0").execute(&mut *conn).await.unwrap();
    let v = zerenzhi::db::audit::verify(&t.pool).await.unwrap();
    let problem = v.problem.expect("the reordering is noticed");
    assert!(problem.contains("entry 2"), "{problem}");
    assert_eq!(v.sealed, 1);
}

// ---------------------------------------------------------------------------------------
// Who may
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn everyone_but_an_admin_is_refused_every_admin_page_and_api_route() {
    let t = company().await;
    let token =
        t.call("POST", "/api/v1/tokens", &t.user("li", false).await, Some(json!({"label": "x"}))).await.1["token"]
            .as_str()
            .unwrap()
            .to_owned();
    let zhang = t.sign_in("zhang").await;
    for path in [
        "/admin/users",
        "/admin/users?q=li",
        "/admin/users/li",
        "/admin/users/nobody",
        "/admin/settings",
        "/admin/audit",
        "/admin/audit?action=auth.",
        "/admin/audit/export",
    ] {
        let (st, _) = zhang.get(path).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "GET {path}");
    }
    for path in [
        "/admin/users",
        "/admin/users/li",
        "/admin/users/li/person",
        "/admin/users/li/password",
        "/admin/users/li/disable",
        "/admin/users/li/enable",
        "/admin/users/li/tokens/1/revoke",
        "/admin/settings",
        "/admin/audit/verify",
    ] {
        let (st, _, _) = zhang.post(path, &[("login", "x"), ("name", "x"), ("admin", "1")]).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "POST {path}");
    }
    for (method, path, body) in [
        ("GET", "/api/v1/users", None),
        ("GET", "/api/v1/users/li", None),
        ("PATCH", "/api/v1/users/li", Some(json!({"admin": true}))),
        ("PATCH", "/api/v1/users/zhang", Some(json!({"admin": true}))),
        ("POST", "/api/v1/users/li/password", Some(json!({"generate": true}))),
        ("POST", "/api/v1/users", Some(json!({"login": "x9", "password": "a long sentence here"}))),
        ("GET", "/api/v1/settings", None),
        ("PUT", "/api/v1/settings", Some(json!({"lead_days": {"month": 5}}))),
        ("GET", "/api/v1/audit", None),
        ("POST", "/api/v1/audit/verify", None),
        ("GET", "/api/v1/tokens?user=admin", None),
    ] {
        let (st, body) = t.call(method, path, &token, body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {path}: {body}");
    }
    let (_, me) = t.get("/api/v1/users/li").await;
    assert_eq!(me["admin"], false, "nothing changed");
    let refused: i64 =
        sqlx::query_scalar("select count(*) from audit_log where action = 'auth.refused' and actor = 'zhang'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(refused, 17, "each refusal is logged");

    // Everyone has their own tokens page.
    let (st, html) = zhang.get("/account/tokens").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("我的 API 令牌"));
    // Without a token: 401, not 403.
    let (st, _) = t.call("GET", "/api/v1/users", "zrz_nothing", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_api_lists_and_changes_accounts() {
    let t = company().await;
    let (st, body) =
        t.post("/api/v1/users", json!({"login": "newbie", "password": "a long sentence here", "name": "新人"})).await;
    assert_eq!(st, StatusCode::CREATED, "POST /users still works: {body}");
    let (st, list) = t.get("/api/v1/users?q=new").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["items"][0]["name"], "新人");
    let (_, admins) = t.get("/api/v1/users?show=admins").await;
    assert_eq!(admins["total"], 1);
    let (st, body) =
        t.patch("/api/v1/users/newbie", json!({"name": "新同志", "admin": true, "role": "x", "login": "hack"})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["admin"].as_bool(), body["login"].as_str()),
        (Some("新同志"), Some(true), Some("newbie"))
    );
    let (st, _) = t.get("/api/v1/users/nobody").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, body) = t.patch("/api/v1/users/newbie", json!({"name": ""})).await;
    assert_eq!((st, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("name")));
    let entries = audit_rows(&t, "user.update").await;
    assert_eq!(entries[0]["admin"]["to"], true);
    assert_eq!(entries[0]["name"]["to"], "新同志");
}

// ---------------------------------------------------------------------------------------
// No secrets in logs (SECURITY.md row 26)
// ---------------------------------------------------------------------------------------

/// Everything the server logs in this test process, at every level.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sign in by hand, without a cookie jar, to see the session cookie's value.
async fn session_cookie_of(t: &TestApp, login: &str, password: &str) -> String {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = http.get(format!("{}/login", t.base)).send().await.unwrap();
    let pre_cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let html = resp.text().await.unwrap();
    let pre = csrf_of(&html).unwrap();
    let resp = http
        .post(format!("{}/login", t.base))
        .header("cookie", pre_cookie)
        .form(&[("login", login), ("password", password), ("csrf", pre.as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("zrz_session="))
        .expect("a session cookie")
        .to_owned();
    session["zrz_session=".len()..].split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn passwords_cookies_and_tokens_appear_in_no_log_and_nowhere_in_clear_in_the_database() {
    let logs = captured_logs();
    let t = company().await;
    let password = "Known-Password-for-row-26";
    let admin = t.sign_in("admin").await;
    let (st, _, _) =
        admin.post("/admin/users/zhang/password", &[("password_mode", "set"), ("password", password)]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert!(sign_in_with(&t, "zhang", "wrong-password-xyz").await.is_none());
    let cookie = session_cookie_of(&t, "zhang", password).await;
    assert!(cookie.len() >= 22);
    let zhang = sign_in_with(&t, "zhang", password).await.expect("signs in");
    let (_, _, html) = zhang.post("/account/tokens", &[("label", "row 26")]).await;
    let token = secret_of(&html);
    let (st, _) = t.call("GET", "/api/v1/me", &token, None).await;
    assert_eq!(st, StatusCode::OK);
    let mut mail = settings_form("7");
    mail.extend([
        ("mail_host", "smtp.hx.gov.cn".to_owned()),
        ("mail_from", "portal@hx.gov.cn".to_owned()),
        ("mail_password", "Mail-Secret-26".to_owned()),
    ]);
    let (st, _, _) = post_settings(&admin, &mail).await;
    assert_eq!(st, StatusCode::SEE_OTHER);

    // Only a hash of the cookie is stored.
    let hashed: bool =
        sqlx::query_scalar("select exists (select 1 from session where id_hash = sha256(convert_to($1, 'UTF8')))")
            .bind(&cookie)
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert!(hashed, "the session is found by the cookie's hash");
    // No row of the tables that see these secrets holds one in clear.
    let dump: String = sqlx::query_scalar(
        "select coalesce(string_agg(x.t, E'\\n'), '') from (
             select row_to_json(a)::text as t from audit_log a
             union all select row_to_json(u)::text from app_user u
             union all select row_to_json(s)::text from session s
             union all select row_to_json(k)::text from api_token k
             union all select row_to_json(f)::text from login_failure f) x",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert!(dump.contains("auth.login_failed"), "the dump holds the log");
    for secret in [password, "wrong-password-xyz", token.as_str(), cookie.as_str(), "Mail-Secret-26"] {
        assert!(!dump.contains(secret), "{secret} is stored in clear");
    }
    // Nor does anything this process logged, at any level.
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    for secret in [password, "wrong-password-xyz", token.as_str(), cookie.as_str(), "Mail-Secret-26"] {
        assert!(!text.contains(secret), "{secret} was logged");
    }
}
