//! Bad input and refused access, end to end over HTTP. Every refusal is a JSON error
//! `{error: {code, message, field}}` with the status DESIGN.md sections 2–4 give (400 naming
//! the field, 401, 403, 404, 409), and nothing a client can send is answered with a 5xx.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

const NOW: &str = "2026-02-10T09:00:00+08:00";

/// A company tree (HJT → HGS → HX-1, HX-2) with the company template from 2026-01-01, at
/// 2026-02-10.
async fn company() -> TestApp {
    let t = TestApp::spawn_at(NOW).await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    t
}

/// Give `login` a role on `org` from the start of 2026.
async fn give_role(t: &TestApp, org: &str, login: &str, role: &str) {
    let (st, body) =
        t.post(&format!("/api/v1/orgs/{org}/roles"), json!({"login": login, "role": role, "from": "2026-01-01"})).await;
    assert_eq!(st, StatusCode::CREATED, "give {login} {role} on {org}: {body}");
}

/// A new user holding `role` on `org`; returns their token.
async fn holder(t: &TestApp, login: &str, org: &str, role: &str) -> String {
    let token = t.user(login, false).await;
    give_role(t, org, login, role).await;
    token
}

fn record_body(rule: &str, occurred_on: &str) -> Value {
    json!({"rule": rule, "occurred_on": occurred_on, "title": format!("{rule} 会议"), "body": "会议纪要", "attendees": ["王五"]})
}

/// File a record as `token`; panics unless it is created. Returns its id.
async fn file(t: &TestApp, token: &str, org: &str, body: Value) -> String {
    let (st, rec) = t.call("POST", &format!("/api/v1/orgs/{org}/records"), token, Some(body)).await;
    assert_eq!(st, StatusCode::CREATED, "file a record for {org}: {rec}");
    rec["id"].as_str().expect("an id string").to_owned()
}

/// Assert that a reply is the JSON error a client expects: status, `error.code`, a
/// message, and (for bad input) `error.field`.
#[track_caller]
fn expect_error(what: &str, reply: &(StatusCode, Value), status: u16, code: &str, field: Option<&str>) {
    let (st, body) = reply;
    assert_eq!(st.as_u16(), status, "{what}: status (body {body})");
    assert_eq!(body["error"]["code"], code, "{what}: error.code (body {body})");
    assert!(body["error"]["message"].is_string(), "{what}: error.message (body {body})");
    if let Some(field) = field {
        assert_eq!(body["error"]["field"], field, "{what}: error.field (body {body})");
    }
}

/// A reply as a client sees it, for requests the harness's `call` cannot make.
struct Reply {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn pair(&self) -> (StatusCode, Value) {
        (self.status, self.json())
    }

    /// Whether this is an error the API promises: JSON with `error.code`.
    fn is_json_error(&self) -> bool {
        self.content_type.starts_with("application/json") && self.json()["error"]["code"].is_string()
    }
}

/// Send raw bytes with an optional token and content type.
async fn send(
    t: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut req = t.http.request(method.parse().unwrap(), format!("{}{}", t.base, path)).body(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = resp.text().await.unwrap_or_default();
    Reply { status, content_type, text }
}

/// Send a request with a header of our choosing as the `Authorization` header.
async fn with_authorization(t: &TestApp, method: &str, path: &str, auth: Option<&str>, body: Option<Value>) -> Reply {
    let mut req = t.http.request(method.parse().unwrap(), format!("{}{}", t.base, path));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    Reply { status, content_type, text: resp.text().await.unwrap_or_default() }
}

// ---------------------------------------------------------------------------------------
// Records refused for their content (DESIGN.md section 2, Records)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_record_dated_in_the_future_is_refused_naming_occurred_on() {
    let t = company().await;
    let reply = t.post("/api/v1/orgs/HX-1/records", record_body("A7", "2026-02-11")).await;
    expect_error("dated tomorrow", &reply, 400, "bad_input", Some("occurred_on"));
    let reply = t.post("/api/v1/orgs/HX-1/records", record_body("A7", "2027-01-01")).await;
    expect_error("dated next year", &reply, 400, "bad_input", Some("occurred_on"));
    let (st, body) = t.post("/api/v1/orgs/HX-1/records", record_body("A7", "2026-02-10")).await;
    assert_eq!(st, StatusCode::CREATED, "today is not the future: {body}");
}

#[tokio::test]
async fn a_record_dated_before_the_organisation_existed_is_refused_naming_occurred_on() {
    let t = company().await;
    // HX-1 is active from 2017-01-01.
    let reply = t.post("/api/v1/orgs/HX-1/records", record_body("A7", "2016-12-31")).await;
    expect_error("the day before HX-1 began", &reply, 400, "bad_input", Some("occurred_on"));
    let (st, body) = t.post("/api/v1/orgs/HX-1/records", record_body("A7", "2017-01-01")).await;
    assert_eq!(st, StatusCode::CREATED, "its first day is active: {body}");
}

#[tokio::test]
async fn a_record_dated_after_the_organisation_closed_is_refused_naming_occurred_on() {
    let t = company().await;
    let (st, body) = t.patch("/api/v1/orgs/HX-2", json!({"active_until": "2026-01-31"})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let reply = t.post("/api/v1/orgs/HX-2/records", record_body("A7", "2026-02-01")).await;
    expect_error("the day after HX-2 closed", &reply, 400, "bad_input", Some("occurred_on"));
    let (st, body) = t.post("/api/v1/orgs/HX-2/records", record_body("A7", "2026-01-31")).await;
    assert_eq!(st, StatusCode::CREATED, "its last day is active: {body}");
}

#[tokio::test]
async fn a_record_for_an_unknown_rule_is_refused_naming_rule() {
    let t = company().await;
    for rule in ["Z99", "", "a7", "B1"] {
        let reply = t.post("/api/v1/orgs/HX-1/records", record_body(rule, "2026-02-01")).await;
        expect_error(&format!("rule {rule:?}"), &reply, 400, "bad_input", Some("rule"));
    }
}

#[tokio::test]
async fn a_record_for_a_rule_of_another_kind_is_refused_naming_rule() {
    let t = company().await;
    t.install("ideology-school", "2026-01-01", None).await;
    // A1 binds committees, C1 school branches; HX-1 is a branch.
    for rule in ["A1", "A14", "C1"] {
        let reply = t.post("/api/v1/orgs/HX-1/records", record_body(rule, "2026-02-01")).await;
        expect_error(&format!("{rule} for a branch"), &reply, 400, "bad_input", Some("rule"));
    }
    // A7 binds branches, not the committee.
    let reply = t.post("/api/v1/orgs/HGS/records", record_body("A7", "2026-02-01")).await;
    expect_error("A7 for a committee", &reply, 400, "bad_input", Some("rule"));
}

#[tokio::test]
async fn a_malformed_date_is_refused_naming_its_field() {
    let t = company().await;
    for bad in ["2026-02-30", "2026/02/01", "01-02-2026", "2026-02-01T10:00:00+08:00", "yesterday", "", "20260201"] {
        let reply = t.post("/api/v1/orgs/HX-1/records", record_body("A7", bad)).await;
        expect_error(&format!("occurred_on {bad:?}"), &reply, 400, "bad_input", Some("occurred_on"));
        let reply = t
            .post(
                "/api/v1/orgs",
                json!({"code": "N1", "name": "新支部", "kind": "branch", "parent": "HGS", "active_from": bad}),
            )
            .await;
        expect_error(&format!("active_from {bad:?}"), &reply, 400, "bad_input", Some("active_from"));
        let reply = t.patch("/api/v1/orgs/HX-2", json!({"active_until": bad})).await;
        expect_error(&format!("active_until {bad:?}"), &reply, 400, "bad_input", Some("active_until"));
        let reply =
            t.post("/api/v1/orgs/HX-1/roles", json!({"login": "admin", "role": "inspector", "from": bad})).await;
        expect_error(&format!("from {bad:?}"), &reply, 400, "bad_input", Some("from"));
        let reply = t.post("/api/v1/templates/ideology-school/install", json!({"effective_from": bad})).await;
        expect_error(&format!("effective_from {bad:?}"), &reply, 400, "bad_input", Some("effective_from"));
    }
}

#[tokio::test]
async fn a_missing_required_field_is_refused_naming_it() {
    let t = company().await;
    let id = t.record("HX-1", "A7", "2026-02-01").await;
    let cases: Vec<(&str, String, Value)> = vec![
        ("POST", "/api/v1/orgs/HX-1/records".into(), record_body("A7", "2026-02-01")),
        (
            "POST",
            "/api/v1/orgs".into(),
            json!({"code": "N1", "name": "新支部", "kind": "branch", "active_from": "2026-01-01"}),
        ),
        ("POST", "/api/v1/users".into(), json!({"login": "newbie", "password": "correct-horse-battery"})),
        (
            "POST",
            "/api/v1/orgs/HX-1/roles".into(),
            json!({"login": "admin", "role": "inspector", "from": "2026-01-01"}),
        ),
        ("POST", "/api/v1/templates/ideology-school/install".into(), json!({"effective_from": "2026-01-01"})),
        ("POST", format!("/api/v1/records/{id}/review"), json!({"decision": "accept"})),
        ("POST", format!("/api/v1/records/{id}/versions"), json!({"title": "更正"})),
    ];
    for (method, path, full) in cases {
        for key in full.as_object().unwrap().keys() {
            if key == "body" || key == "attendees" {
                continue; // optional
            }
            let mut partial = full.clone();
            partial.as_object_mut().unwrap().remove(key);
            let reply = t.call(method, &path, &t.admin_token, Some(partial)).await;
            expect_error(&format!("{path} without {key}"), &reply, 400, "bad_input", Some(key));
        }
    }
    // A rule binding each leadership member needs the person.
    let reply = t.post("/api/v1/orgs/HX-1/records", record_body("A13", "2026-02-01")).await;
    expect_error("A13 without a person", &reply, 400, "bad_input", Some("person"));
    // Withdrawing and waiving need a reason.
    let reply = t.post(&format!("/api/v1/records/{id}/withdraw"), json!({})).await;
    expect_error("withdraw without a reason", &reply, 400, "bad_input", Some("reason"));
    let (_, duties) = t.get("/api/v1/orgs/HX-1/duties?period=2026-Q1").await;
    let duty = duties[0]["id"].as_str().unwrap().to_owned();
    let reply = t.post(&format!("/api/v1/duties/{duty}/waive"), json!({"reason": "  "})).await;
    expect_error("waive without a reason", &reply, 400, "bad_input", Some("reason"));
}

#[tokio::test]
async fn a_field_of_the_wrong_json_type_is_refused_naming_it() {
    let t = company().await;
    let id = t.record("HX-1", "A7", "2026-02-01").await;
    let with = |base: Value, key: &str, v: Value| {
        let mut b = base;
        b[key] = v;
        b
    };
    let rec = record_body("A7", "2026-02-01");
    let records = "/api/v1/orgs/HX-1/records";
    let org = json!({"code": "N1", "name": "新支部", "kind": "branch", "parent": "HGS", "active_from": "2026-01-01"});
    let user = json!({"login": "newbie", "password": "correct-horse-battery"});
    let cases: Vec<(String, Value, &str)> = vec![
        (records.into(), with(rec.clone(), "rule", json!(7)), "rule"),
        (records.into(), with(rec.clone(), "title", json!(["标题"])), "title"),
        (records.into(), with(rec.clone(), "body", json!({"text": "x"})), "body"),
        (records.into(), with(rec.clone(), "occurred_on", json!(20260201)), "occurred_on"),
        (records.into(), with(rec.clone(), "attendees", json!("王五")), "attendees"),
        (records.into(), with(rec.clone(), "attendees", json!([1])), "attendees[0]"),
        (records.into(), with(rec.clone(), "draft", json!("yes")), "draft"),
        (records.into(), with(rec.clone(), "person", json!({"id": 1})), "person"),
        (records.into(), with(rec.clone(), "person", json!(true)), "person"),
        (records.into(), with(rec.clone(), "meeting", json!({"expected": "ten"})), "meeting.expected"),
        (records.into(), with(rec.clone(), "meeting", json!("会议室")), "meeting"),
        ("/api/v1/orgs".into(), with(org.clone(), "parent", json!(5)), "parent"),
        ("/api/v1/orgs".into(), with(org.clone(), "code", json!(null)), "code"),
        ("/api/v1/orgs".into(), with(org.clone(), "name", json!(false)), "name"),
        ("/api/v1/users".into(), with(user.clone(), "admin", json!("true")), "admin"),
        ("/api/v1/users".into(), with(user.clone(), "login", json!(12)), "login"),
        (format!("/api/v1/records/{id}/review"), json!({"decision": true}), "decision"),
        (format!("/api/v1/records/{id}/review"), json!({"decision": "accept", "comment": 1}), "comment"),
        (format!("/api/v1/records/{id}/withdraw"), json!({"reason": ["误报"]}), "reason"),
        ("/api/v1/templates/ideology-school/install".into(), json!({"effective_from": 2026}), "effective_from"),
        (
            "/api/v1/templates/ideology-school/install".into(),
            json!({"effective_from": "2026-01-01", "root": 1}),
            "root",
        ),
        (
            "/api/v1/orgs/HX-1/roles".into(),
            json!({"login": "admin", "role": "inspector", "from": "2026-01-01", "acting": "no"}),
            "acting",
        ),
    ];
    for (path, body, field) in cases {
        let reply = t.post(&path, body.clone()).await;
        expect_error(&format!("{path} {body}"), &reply, 400, "bad_input", Some(field));
    }
    for (body, field) in [
        (json!({"name": 1}), "name"),
        (json!({"kind": ["branch"]}), "kind"),
        (json!({"active_until": 20260101}), "active_until"),
    ] {
        let reply = t.patch("/api/v1/orgs/HX-2", body.clone()).await;
        expect_error(&format!("PATCH {body}"), &reply, 400, "bad_input", Some(field));
    }
}

#[tokio::test]
async fn a_value_out_of_range_is_refused_naming_its_field() {
    let t = company().await;
    let id = t.record("HX-1", "A8", "2026-02-01").await;
    let long = "长".repeat(201);
    let mut too_many = record_body("A7", "2026-02-01");
    too_many["attendees"] = json!(vec!["王五"; 2001]);
    let cases: Vec<(String, Value, &str)> = vec![
        (
            "/api/v1/orgs/HX-1/records".into(),
            json!({"rule": "A7", "occurred_on": "2026-02-01", "title": "  "}),
            "title",
        ),
        (
            "/api/v1/orgs/HX-1/records".into(),
            json!({"rule": "A7", "occurred_on": "2026-02-01", "title": long}),
            "title",
        ),
        ("/api/v1/orgs/HX-1/records".into(), too_many, "attendees"),
        (
            "/api/v1/orgs/HX-1/records".into(),
            json!({"rule": "A7", "occurred_on": "2026-02-01", "title": "会", "meeting": {"expected": 3, "present": 4}}),
            "present",
        ),
        (
            "/api/v1/orgs/HX-1/records".into(),
            json!({"rule": "A7", "occurred_on": "2026-02-01", "title": "会", "meeting": {"expected": -1}}),
            "expected",
        ),
        (
            "/api/v1/orgs/HX-1/records".into(),
            json!({"rule": "A7", "occurred_on": "2026-02-01", "title": "会", "person": "1"}),
            "person",
        ),
        (
            "/api/v1/orgs".into(),
            json!({"code": "-bad", "name": "x", "kind": "branch", "active_from": "2026-01-01"}),
            "code",
        ),
        (
            "/api/v1/orgs".into(),
            json!({"code": "N1", "name": " ", "kind": "branch", "active_from": "2026-01-01"}),
            "name",
        ),
        ("/api/v1/users".into(), json!({"login": "x", "password": "correct-horse-battery"}), "login"),
        ("/api/v1/users".into(), json!({"login": "newbie", "password": "short"}), "password"),
        ("/api/v1/users".into(), json!({"login": "newbie", "password": "password123"}), "password"),
        ("/api/v1/orgs/HX-1/roles".into(), json!({"login": "admin", "role": "boss", "from": "2026-01-01"}), "role"),
        ("/api/v1/orgs/HX-1/roles".into(), json!({"login": "nobody", "role": "member", "from": "2026-01-01"}), "login"),
        (
            "/api/v1/orgs/HX-1/roles".into(),
            json!({"login": "admin", "role": "member", "from": "2026-03-01", "until": "2026-02-01"}),
            "until",
        ),
        (
            "/api/v1/templates/ideology-school/install".into(),
            json!({"effective_from": "2026-01-01", "root": "NOPE"}),
            "root",
        ),
        (format!("/api/v1/records/{id}/review"), json!({"decision": "maybe"}), "decision"),
        (format!("/api/v1/records/{id}/review"), json!({"decision": "return", "comment": ""}), "comment"),
        (
            format!("/api/v1/records/{id}/review"),
            json!({"decision": "accept", "comment": "长".repeat(2001)}),
            "comment",
        ),
        (format!("/api/v1/records/{id}/withdraw"), json!({"reason": "长".repeat(1001)}), "reason"),
    ];
    for (path, body, field) in cases {
        let shown: String = body.to_string().chars().take(120).collect();
        let reply = t.post(&path, body).await;
        expect_error(&format!("{path} {shown}"), &reply, 400, "bad_input", Some(field));
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_naming_the_body() {
    let t = company().await;
    let path = "/api/v1/orgs/HX-1/records";
    let token = t.admin_token.clone();
    let cases: [(&str, &[u8]); 9] = [
        ("application/json", b"rule=A7&title=x"),
        ("application/json", b"{\"rule\": \"A7\""),
        ("application/json", b"{\"rule\": \"A7\", \"occurred_on\": \"2026-02-01\", \"title\": \"x\"} trailing"),
        ("application/json", b"{'rule': 'A7'}"),
        ("application/json", b"\xff\xfe{}"),
        ("application/json", b"[]"),
        ("application/json", b"\"A7\""),
        ("text/plain", b"{\"rule\": \"A7\", \"occurred_on\": \"2026-02-01\", \"title\": \"x\"}"),
        ("application/x-www-form-urlencoded", b"rule=A7&occurred_on=2026-02-01&title=x"),
    ];
    let mut failures = Vec::new();
    for (ct, body) in cases {
        let reply = send(&t, "POST", path, Some(&token), Some(ct), body.to_vec()).await;
        let (st, json) = reply.pair();
        if st != StatusCode::BAD_REQUEST || json["error"]["code"] != "bad_input" || json["error"]["field"] != "body" {
            failures.push(format!("{ct} {:?} -> {st} {}", String::from_utf8_lossy(body), reply.text));
        }
    }
    assert!(failures.is_empty(), "not refused as 400 naming `body`:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn an_empty_body_is_read_as_an_empty_object() {
    let t = company().await;
    let token = t.admin_token.clone();
    for ct in [Some("application/json"), None] {
        let reply = send(&t, "POST", "/api/v1/orgs/HX-1/records", Some(&token), ct, vec![]).await;
        let (st, body) = reply.pair();
        expect_error("an empty record body", &(st, body.clone()), 400, "bad_input", None);
        let field = body["error"]["field"].as_str().unwrap_or_default();
        assert!(["rule", "occurred_on", "title"].contains(&field), "names a required field, not {field:?}");
    }
    let id = t.record("HX-1", "A7", "2026-02-01").await;
    let reply = send(&t, "POST", &format!("/api/v1/records/{id}/withdraw"), Some(&token), None, vec![]).await;
    expect_error("an empty withdrawal", &reply.pair(), 400, "bad_input", Some("reason"));
    // Submitting takes no body: an empty one is fine.
    let draft =
        file(&t, &token, "HX-1", json!({"rule": "A7", "occurred_on": "2026-02-02", "title": "草稿", "draft": true}))
            .await;
    let reply = send(&t, "POST", &format!("/api/v1/records/{draft}/submit"), Some(&token), None, vec![]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

// ---------------------------------------------------------------------------------------
// Periods
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_malformed_or_missing_period_key_is_refused_naming_period() {
    let t = company().await;
    for what in ["duties", "rollup"] {
        for key in [
            "2026-Q0", "2026-H3", "26", "2026-13", "2026-q1", "2026-Q5", "2026-00", "2026-1", "Q1-2026", "", "%FF",
            "1899",
        ] {
            let reply = t.get(&format!("/api/v1/orgs/HX-1/{what}?period={key}")).await;
            expect_error(&format!("{what} period={key:?}"), &reply, 400, "bad_input", Some("period"));
        }
        let reply = t.get(&format!("/api/v1/orgs/HX-1/{what}")).await;
        expect_error(&format!("{what} without a period"), &reply, 400, "bad_input", Some("period"));
        let reply = t.get(&format!("/api/v1/orgs/HX-1/{what}?year=2026")).await;
        expect_error(&format!("{what} with year= instead of period="), &reply, 400, "bad_input", Some("period"));
        for key in ["2026", "2026-H1", "2026-Q1", "2026-02", "2030-Q4"] {
            let (st, body) = t.get(&format!("/api/v1/orgs/HX-1/{what}?period={key}")).await;
            assert_eq!(st, StatusCode::OK, "{what} period={key}: {body}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Visibility (404) and authentication (401)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_organisation_is_not_found() {
    let t = company().await;
    for path in [
        "/api/v1/orgs/NOPE",
        "/api/v1/orgs/NOPE/children",
        "/api/v1/orgs/NOPE/duties?period=2026",
        "/api/v1/orgs/NOPE/rollup?period=2026",
    ] {
        expect_error(path, &t.get(path).await, 404, "not_found", None);
    }
    let reply = t.patch("/api/v1/orgs/NOPE", json!({"name": "新名"})).await;
    expect_error("PATCH an unknown org", &reply, 404, "not_found", None);
    let reply = t.post("/api/v1/orgs/NOPE/records", record_body("A7", "2026-02-01")).await;
    expect_error("a record for an unknown org", &reply, 404, "not_found", None);
    let reply =
        t.post("/api/v1/orgs/NOPE/roles", json!({"login": "admin", "role": "member", "from": "2026-01-01"})).await;
    expect_error("a role on an unknown org", &reply, 404, "not_found", None);
    let reply = t.get("/api/v1/no-such-route").await;
    expect_error("an unknown API route", &reply, 404, "not_found", None);
}

#[tokio::test]
async fn a_branch_secretary_cannot_see_a_sibling_branch_or_the_parent() {
    let t = company().await;
    let sec1 = holder(&t, "sec1", "HX-1", "secretary").await;
    let other = file(&t, &t.admin_token, "HX-2", record_body("A7", "2026-02-01")).await;
    for org in ["HX-2", "HGS", "HJT"] {
        for path in [
            format!("/api/v1/orgs/{org}"),
            format!("/api/v1/orgs/{org}/children"),
            format!("/api/v1/orgs/{org}/duties?period=2026-Q1"),
            format!("/api/v1/orgs/{org}/rollup?period=2026-Q1"),
        ] {
            let reply = t.call("GET", &path, &sec1, None).await;
            expect_error(&format!("sec1 GET {path}"), &reply, 404, "not_found", None);
        }
        let reply =
            t.call("POST", &format!("/api/v1/orgs/{org}/records"), &sec1, Some(record_body("A7", "2026-02-01"))).await;
        expect_error(&format!("sec1 files for {org}"), &reply, 404, "not_found", None);
    }
    for (method, path, body) in [
        ("GET", format!("/api/v1/records/{other}"), None),
        ("POST", format!("/api/v1/records/{other}/withdraw"), Some(json!({"reason": "误报"}))),
        ("POST", format!("/api/v1/records/{other}/versions"), Some(json!({"title": "改"}))),
        ("POST", format!("/api/v1/records/{other}/review"), Some(json!({"decision": "accept"}))),
        ("POST", format!("/api/v1/records/{other}/submit"), None),
    ] {
        let reply = t.call(method, &path, &sec1, body).await;
        expect_error(&format!("sec1 {method} {path} (HX-2's record)"), &reply, 404, "not_found", None);
    }
    let (st, body) = t.call("GET", "/api/v1/orgs/HX-1/duties?period=2026-Q1", &sec1, None).await;
    assert_eq!(st, StatusCode::OK, "sec1 sees their own branch: {body}");
}

#[tokio::test]
async fn a_request_without_a_valid_token_is_unauthenticated() {
    let t = company().await;
    let token = t.admin_token.clone();
    let auths: [Option<String>; 7] = [
        None,
        Some("Bearer nonsense".into()),
        Some("Bearer ".into()),
        Some(format!("Basic {token}")),
        Some(token.clone()),
        Some(format!("Bearer {token}x")),
        Some(format!("Bearer {}", "z".repeat(5000))),
    ];
    for auth in &auths {
        for (method, path, body) in [
            ("GET", "/api/v1/me", None),
            ("GET", "/api/v1/orgs/HX-1", None),
            ("GET", "/api/v1/orgs/HX-1/duties?period=2026", None),
            (
                "POST",
                "/api/v1/orgs",
                Some(json!({"code": "N1", "name": "x", "kind": "branch", "active_from": "2026-01-01"})),
            ),
            ("POST", "/api/v1/orgs/HX-1/records", Some(record_body("A7", "2026-02-01"))),
            ("POST", "/api/v1/templates/ideology-school/install", Some(json!({"effective_from": "2026-01-01"}))),
        ] {
            let reply = with_authorization(&t, method, path, auth.as_deref(), body).await;
            let shown: String = auth.as_deref().unwrap_or("(none)").chars().take(40).collect();
            expect_error(&format!("{method} {path} with {shown}"), &reply.pair(), 401, "unauthenticated", None);
        }
    }
    let reply = with_authorization(&t, "GET", "/api/v1/me", Some(&format!("Bearer {token}")), None).await;
    assert_eq!(reply.status, StatusCode::OK, "the real token works: {}", reply.text);
}

// ---------------------------------------------------------------------------------------
// Permission (403)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_non_admin_may_not_configure_organisations_users_roles_templates_or_waive() {
    let t = company().await;
    let gsec = holder(&t, "gsec", "HGS", "secretary").await;
    let (_, duties) = t.get("/api/v1/orgs/HX-1/duties?period=2026-Q1").await;
    let duty = duties[0]["id"].as_str().unwrap().to_owned();
    let cases: Vec<(&str, String, Value)> = vec![
        (
            "POST",
            "/api/v1/orgs".into(),
            json!({"code": "HX-9", "name": "九支部", "kind": "branch", "parent": "HGS", "active_from": "2026-01-01"}),
        ),
        (
            "POST",
            "/api/v1/users".into(),
            json!({"login": "newbie", "password": "correct-horse-battery", "admin": true}),
        ),
        ("POST", "/api/v1/templates/ideology-school/install".into(), json!({"effective_from": "2026-01-01"})),
        ("PATCH", "/api/v1/orgs/HX-1".into(), json!({"name": "改名"})),
        ("PATCH", "/api/v1/orgs/HGS".into(), json!({"active_until": "2026-02-10"})),
        ("POST", "/api/v1/orgs/HX-1/roles".into(), json!({"login": "gsec", "role": "secretary", "from": "2026-01-01"})),
        ("POST", format!("/api/v1/duties/{duty}/waive"), json!({"reason": "支部撤并"})),
    ];
    for (method, path, body) in cases {
        let reply = t.call(method, &path, &gsec, Some(body)).await;
        expect_error(&format!("gsec {method} {path}"), &reply, 403, "forbidden", None);
    }
    let (st, org) = t.get("/api/v1/orgs/HGS").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(org["active_until"], Value::Null, "the refused PATCH changed nothing");
}

#[tokio::test]
async fn a_secretary_may_not_file_for_a_child_organisation() {
    let t = company().await;
    let gsec = holder(&t, "gsec", "HGS", "secretary").await;
    let reply = t.call("POST", "/api/v1/orgs/HX-1/records", &gsec, Some(record_body("A7", "2026-02-01"))).await;
    expect_error("HGS's secretary files for HX-1", &reply, 403, "forbidden", None);
    let id = file(&t, &gsec, "HGS", record_body("A1", "2026-02-01")).await;
    assert!(!id.is_empty(), "files for their own organisation");
    // Nor act on a child's records as their submitter.
    let child = file(&t, &t.admin_token, "HX-1", record_body("A7", "2026-02-01")).await;
    let reply =
        t.call("POST", &format!("/api/v1/records/{child}/withdraw"), &gsec, Some(json!({"reason": "误报"}))).await;
    expect_error("HGS's secretary withdraws HX-1's record", &reply, 403, "forbidden", None);
}

#[tokio::test]
async fn a_coordinator_may_not_file_records() {
    let t = company().await;
    let coord = holder(&t, "coord", "HGS", "coordinator").await;
    let reply = t.call("POST", "/api/v1/orgs/HGS/records", &coord, Some(record_body("A1", "2026-02-01"))).await;
    expect_error("HGS's coordinator files for HGS", &reply, 403, "forbidden", None);
    let reply = t.call("POST", "/api/v1/orgs/HX-1/records", &coord, Some(record_body("A7", "2026-02-01"))).await;
    expect_error("HGS's coordinator files for HX-1", &reply, 403, "forbidden", None);
}

#[tokio::test]
async fn a_member_files_only_their_own_per_member_duty_and_an_inspector_files_nothing() {
    let t = company().await;
    let mem1 = holder(&t, "mem1", "HX-1", "member").await;
    let insp = holder(&t, "insp", "HX-1", "inspector").await;
    let reply = t.call("POST", "/api/v1/orgs/HX-1/records", &mem1, Some(record_body("A7", "2026-02-01"))).await;
    expect_error("a member files an organisation duty", &reply, 403, "forbidden", None);
    let reply = t.call("POST", "/api/v1/orgs/HX-1/records", &insp, Some(record_body("A7", "2026-02-01"))).await;
    expect_error("an inspector files", &reply, 403, "forbidden", None);
    let (_, duties) = t.get("/api/v1/orgs/HX-1/duties?period=2026").await;
    let person =
        duties.as_array().unwrap().iter().find(|d| d["rule"] == "A13").expect("mem1 owes A13")["person"].clone();
    let mut body = record_body("A13", "2026-02-01");
    body["person"] = person;
    let id = file(&t, &mem1, "HX-1", body).await;
    assert!(!id.is_empty());
}

#[tokio::test]
async fn nobody_reviews_a_record_they_submitted_but_the_parents_secretary_may() {
    let t = company().await;
    // `dual` is secretary of both HX-1 and its parent HGS.
    let dual = holder(&t, "dual", "HX-1", "secretary").await;
    give_role(&t, "HGS", "dual", "secretary").await;
    let gsec = holder(&t, "gsec", "HGS", "secretary").await;
    let sec1 = holder(&t, "sec1", "HX-1", "secretary").await;
    let id = file(&t, &dual, "HX-1", record_body("A8", "2026-02-01")).await;
    let review = json!({"decision": "accept", "comment": ""});
    let reply = t.call("POST", &format!("/api/v1/records/{id}/review"), &dual, Some(review.clone())).await;
    expect_error("dual reviews their own submission", &reply, 403, "forbidden", None);
    let reply = t.call("POST", &format!("/api/v1/records/{id}/review"), &sec1, Some(review.clone())).await;
    expect_error("HX-1's own secretary reviews HX-1's record", &reply, 403, "forbidden", None);
    let (st, rec) = t.call("POST", &format!("/api/v1/records/{id}/review"), &gsec, Some(review)).await;
    assert_eq!(st, StatusCode::OK, "the parent's secretary reviews: {rec}");
    assert_eq!(rec["state"], "accepted");
}

#[tokio::test]
async fn a_member_of_the_organisation_may_not_review_its_records() {
    let t = company().await;
    let mem1 = holder(&t, "mem1", "HX-1", "member").await;
    let insp = holder(&t, "ginsp", "HGS", "inspector").await;
    let gmem = holder(&t, "gmem", "HGS", "member").await;
    let id = t.record("HX-1", "A8", "2026-02-01").await;
    let review = json!({"decision": "accept"});
    let reply = t.call("POST", &format!("/api/v1/records/{id}/review"), &mem1, Some(review.clone())).await;
    expect_error("a member of HX-1 reviews", &reply, 403, "forbidden", None);
    let reply = t.call("POST", &format!("/api/v1/records/{id}/review"), &insp, Some(review.clone())).await;
    expect_error("an inspector of HGS reviews", &reply, 403, "forbidden", None);
    // A member of HGS sees only HGS, not its children.
    let reply = t.call("POST", &format!("/api/v1/records/{id}/review"), &gmem, Some(review)).await;
    expect_error("a member of HGS reviews", &reply, 404, "not_found", None);
}

// ---------------------------------------------------------------------------------------
// Wrong state (409)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn reviewing_a_draft_is_a_conflict() {
    let t = company().await;
    let gsec = holder(&t, "gsec", "HGS", "secretary").await;
    let draft = file(
        &t,
        &t.admin_token,
        "HX-1",
        json!({"rule": "A8", "occurred_on": "2026-02-01", "title": "草稿", "draft": true}),
    )
    .await;
    for token in [&gsec, &t.admin_token] {
        let reply = t
            .call("POST", &format!("/api/v1/records/{draft}/review"), token, Some(json!({"decision": "accept"})))
            .await;
        expect_error("reviewing a draft", &reply, 409, "conflict", None);
    }
}

#[tokio::test]
async fn resubmitting_an_accepted_or_pending_record_is_a_conflict() {
    let t = company().await;
    let accepted = t.record("HX-1", "A7", "2026-02-01").await;
    let reply = t.post(&format!("/api/v1/records/{accepted}/submit"), json!({})).await;
    expect_error("submitting an accepted record", &reply, 409, "conflict", None);
    let pending = t.record("HX-1", "A8", "2026-02-01").await;
    let reply = t.post(&format!("/api/v1/records/{pending}/submit"), json!({})).await;
    expect_error("submitting a record awaiting review", &reply, 409, "conflict", None);
    let (st, _) = t.post(&format!("/api/v1/records/{pending}/review"), json!({"decision": "accept"})).await;
    assert_eq!(st, StatusCode::OK);
    let reply = t.post(&format!("/api/v1/records/{pending}/submit"), json!({})).await;
    expect_error("submitting a reviewed, accepted record", &reply, 409, "conflict", None);
    let reply =
        t.post(&format!("/api/v1/records/{pending}/review"), json!({"decision": "return", "comment": "再看"})).await;
    expect_error("reviewing an accepted record", &reply, 409, "conflict", None);
}

#[tokio::test]
async fn withdrawing_a_record_twice_is_a_conflict() {
    let t = company().await;
    let id = t.record("HX-1", "A7", "2026-02-01").await;
    let (st, body) = t.post(&format!("/api/v1/records/{id}/withdraw"), json!({"reason": "误报"})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let reply = t.post(&format!("/api/v1/records/{id}/withdraw"), json!({"reason": "误报"})).await;
    expect_error("withdrawing again", &reply, 409, "conflict", None);
    let reply = t.post(&format!("/api/v1/records/{id}/submit"), json!({})).await;
    expect_error("submitting a withdrawn record", &reply, 409, "conflict", None);
    let reply = t.post(&format!("/api/v1/records/{id}/versions"), json!({"title": "更正"})).await;
    expect_error("correcting a withdrawn record", &reply, 409, "conflict", None);
}

#[tokio::test]
async fn waiving_a_waived_duty_again_is_a_conflict() {
    let t = company().await;
    let (_, duties) = t.get("/api/v1/orgs/HX-1/duties?period=2026-Q1").await;
    let duty = duties[0]["id"].as_str().unwrap().to_owned();
    let (st, body) = t.post(&format!("/api/v1/duties/{duty}/waive"), json!({"reason": "支部撤并"})).await;
    assert_eq!((st, body["reason"].as_str()), (StatusCode::OK, Some("支部撤并")), "{body}");
    // The duty stays waived for the first reason: a second waiver must not claim another.
    let reply = t.post(&format!("/api/v1/duties/{duty}/waive"), json!({"reason": "另一个理由"})).await;
    expect_error("waiving the waived duty again", &reply, 409, "conflict", None);
}

#[tokio::test]
async fn installing_a_template_twice_is_a_conflict() {
    let t = company().await;
    let reply = t.post("/api/v1/templates/ideology-company/install", json!({"effective_from": "2026-01-01"})).await;
    expect_error("installing ideology-company again", &reply, 409, "conflict", None);
    let reply = t
        .post("/api/v1/templates/ideology-company/install", json!({"effective_from": "2026-02-01", "root": "HGS"}))
        .await;
    expect_error("installing it again for a subtree", &reply, 409, "conflict", None);
    let reply = t.post("/api/v1/templates/no-such-template/install", json!({"effective_from": "2026-01-01"})).await;
    expect_error("an unknown template", &reply, 404, "not_found", None);
}

#[tokio::test]
async fn creating_an_organisation_whose_code_exists_is_a_conflict() {
    let t = company().await;
    let reply = t
        .post(
            "/api/v1/orgs",
            json!({"code": "HX-1", "name": "重复", "kind": "branch", "parent": "HGS", "active_from": "2026-01-01"}),
        )
        .await;
    expect_error("a second HX-1", &reply, 409, "conflict", None);
    let reply = t
        .post(
            "/api/v1/orgs",
            json!({"code": " HX-1 ", "name": "重复", "kind": "branch", "parent": "HGS", "active_from": "2026-01-01"}),
        )
        .await;
    expect_error("a second HX-1 with spaces", &reply, 409, "conflict", None);
    let reply = t.post("/api/v1/users", json!({"login": "admin", "password": "correct-horse-battery"})).await;
    expect_error("a second admin login", &reply, 409, "conflict", None);
}

#[tokio::test]
async fn an_unknown_parent_is_refused_naming_parent() {
    let t = company().await;
    let reply = t
        .post(
            "/api/v1/orgs",
            json!({"code": "N1", "name": "新支部", "kind": "branch", "parent": "NOPE", "active_from": "2026-01-01"}),
        )
        .await;
    expect_error("parent NOPE", &reply, 400, "bad_input", Some("parent"));
    let (st, _) = t.get("/api/v1/orgs/N1").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "nothing was created");
}

#[tokio::test]
async fn an_unknown_kind_is_refused_naming_kind() {
    let t = company().await;
    let reply = t
        .post(
            "/api/v1/orgs",
            json!({"code": "N1", "name": "新支部", "kind": "castle", "parent": "HGS", "active_from": "2026-01-01"}),
        )
        .await;
    expect_error("kind castle on create", &reply, 400, "bad_input", Some("kind"));
    let reply = t.patch("/api/v1/orgs/HJT", json!({"kind": "castle"})).await;
    expect_error("kind castle on update", &reply, 400, "bad_input", Some("kind"));
}

#[tokio::test]
async fn changing_the_kind_of_an_organisation_that_owes_a_duty_is_a_conflict() {
    let t = company().await;
    let reply = t.patch("/api/v1/orgs/HX-1", json!({"kind": "committee"})).await;
    expect_error("HX-1 owes A7 and more", &reply, 409, "conflict", None);
    let (_, org) = t.get("/api/v1/orgs/HX-1").await;
    assert_eq!(org["kind"], "branch", "the kind stays");
    // The group committee owes nothing: its kind may change.
    let (st, org) = t.patch("/api/v1/orgs/HJT", json!({"kind": "office"})).await;
    assert_eq!(st, StatusCode::OK, "{org}");
    assert_eq!(org["kind"], "office");
}

// ---------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_record_or_duty_id_that_is_not_a_number_or_does_not_exist_is_not_found() {
    let t = company().await;
    let real = t.record("HX-1", "A8", "2026-02-01").await;
    let ids = ["abc", "0", "-1", "1.5", "1e3", "0x10", "99999999", "99999999999999999999", "%20", "1%00"];
    for id in ids {
        for (method, path, body) in [
            ("GET", format!("/api/v1/records/{id}"), None),
            ("POST", format!("/api/v1/records/{id}/submit"), None),
            ("POST", format!("/api/v1/records/{id}/review"), Some(json!({"decision": "accept"}))),
            ("POST", format!("/api/v1/records/{id}/versions"), Some(json!({"title": "更正"}))),
            ("POST", format!("/api/v1/records/{id}/withdraw"), Some(json!({"reason": "误报"}))),
            ("POST", format!("/api/v1/duties/{id}/waive"), Some(json!({"reason": "支部撤并"}))),
        ] {
            let reply = t.call(method, &path, &t.admin_token, body).await;
            expect_error(&format!("{method} {path}"), &reply, 404, "not_found", None);
        }
    }
    let (st, body) = t.get(&format!("/api/v1/records/{real}")).await;
    assert_eq!(st, StatusCode::OK, "the real id is found: {body}");
}

// ---------------------------------------------------------------------------------------
// Mass assignment
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn fields_a_client_may_not_set_are_ignored_in_bodies() {
    let t = company().await;
    let sec1 = holder(&t, "sec1", "HX-1", "secretary").await;
    let mut body = record_body("A8", "2026-02-01");
    for (k, v) in [
        ("state", json!("accepted")),
        ("org", json!("HX-2")),
        ("id", json!("1")),
        ("version", json!(9)),
        ("accepted_at", json!("2026-02-01T00:00:00+08:00")),
        ("submitted_by", json!("admin")),
        ("needs_review", json!(false)),
        ("role", json!("admin")),
        ("admin", json!(true)),
    ] {
        body[k] = v;
    }
    let (st, rec) = t.call("POST", "/api/v1/orgs/HX-1/records", &sec1, Some(body)).await;
    assert_eq!(st, StatusCode::CREATED, "{rec}");
    assert_eq!(rec["state"], "submitted", "A8 needs review whatever the body says");
    assert_eq!(rec["org"], "HX-1");
    assert_eq!(rec["version"], 1);
    assert_eq!(rec["accepted_at"], Value::Null);
    assert_eq!(rec["submitted_by"], "sec1");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A8").await, "submitted", "the duty waits for review");
    let id = rec["id"].as_str().unwrap();
    // Reviewing still takes the parent's secretary, whatever a body claims.
    let reply = t
        .call(
            "POST",
            &format!("/api/v1/records/{id}/review"),
            &sec1,
            Some(json!({"decision": "accept", "role": "secretary", "admin": true})),
        )
        .await;
    expect_error("sec1 claims a role in the body", &reply, 403, "forbidden", None);

    let (st, user) = t
        .post(
            "/api/v1/users",
            json!({"login": "eve", "password": "correct-horse-battery", "is_admin": true, "role": "admin", "id": "1"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{user}");
    assert_eq!(user["admin"], false);
    assert_ne!(user["id"], "1");

    let (st, org) = t
        .patch(
            "/api/v1/orgs/HX-1",
            json!({"name": "一支部", "code": "HACK", "parent": "HX-2", "active_from": "2000-01-01"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{org}");
    assert_eq!(
        (org["code"].as_str(), org["parent"].as_str(), org["active_from"].as_str()),
        (Some("HX-1"), Some("HGS"), Some("2017-01-01"))
    );
    assert_eq!(org["name"], "一支部");

    let (st, role) = t
        .post("/api/v1/orgs/HX-1/roles", json!({"login": "eve", "role": "member", "from": "2026-01-01", "org": "HX-2"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{role}");
    assert_eq!(role["org"], "HX-1");
}

// ---------------------------------------------------------------------------------------
// Contract: errors are JSON, never 5xx
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_nul_character_in_input_is_bad_input_and_not_a_server_error() {
    let t = company().await;
    let id = t.record("HX-1", "A7", "2026-02-01").await;
    let nul = "a\u{0}b";
    let mut rec = record_body("A7", "2026-02-01");
    rec["title"] = json!(nul);
    let mut attendee = record_body("A7", "2026-02-01");
    attendee["attendees"] = json!([nul]);
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", "/api/v1/orgs/HX-1/records".into(), Some(rec)),
        ("POST", "/api/v1/orgs/HX-1/records".into(), Some(attendee)),
        ("POST", "/api/v1/orgs/HX-1/records".into(), Some(record_body(nul, "2026-02-01"))),
        (
            "POST",
            "/api/v1/orgs".into(),
            Some(json!({"code": "N1", "name": nul, "kind": "branch", "active_from": "2026-01-01"})),
        ),
        (
            "POST",
            "/api/v1/orgs".into(),
            Some(json!({"code": "N1", "name": "x", "kind": nul, "active_from": "2026-01-01"})),
        ),
        (
            "POST",
            "/api/v1/orgs".into(),
            Some(json!({"code": "N1", "name": "x", "kind": "branch", "parent": nul, "active_from": "2026-01-01"})),
        ),
        ("PATCH", "/api/v1/orgs/HX-1".into(), Some(json!({"name": nul}))),
        (
            "POST",
            "/api/v1/users".into(),
            Some(json!({"login": "newbie", "password": "correct-horse-battery", "name": nul})),
        ),
        ("POST", "/api/v1/orgs/HX-1/roles".into(), Some(json!({"login": nul, "role": "member", "from": "2026-01-01"}))),
        ("POST", format!("/api/v1/records/{id}/versions"), Some(json!({"title": nul}))),
        (
            "POST",
            "/api/v1/templates/ideology-school/install".into(),
            Some(json!({"effective_from": "2026-01-01", "root": nul})),
        ),
        ("GET", "/api/v1/orgs/a%00b".into(), None),
    ];
    let mut failures = Vec::new();
    for (method, path, body) in cases {
        let shown = body.as_ref().map(Value::to_string).unwrap_or_default();
        let (st, reply) = t.call(method, &path, &t.admin_token, body).await;
        if st.is_server_error() || !(st.is_client_error() && reply["error"]["code"].is_string()) {
            failures.push(format!("{method} {path} {shown} -> {st} {reply}"));
        }
    }
    assert!(failures.is_empty(), "answered with a server error or no JSON error:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn a_date_postgresql_cannot_store_is_bad_input_and_not_a_server_error() {
    let t = company().await;
    let mut failures = Vec::new();
    // PostgreSQL keeps dates from 4713 BC on; these parse as dates but cannot be stored.
    for day in ["-5000-01-01", "-4800-06-30"] {
        for (method, path, body, field) in [
            (
                "POST",
                "/api/v1/orgs",
                json!({"code": "OLD", "name": "旧", "kind": "branch", "parent": "HGS", "active_from": day}),
                "active_from",
            ),
            ("PATCH", "/api/v1/orgs/HX-2", json!({"active_until": day}), "active_until"),
            ("POST", "/api/v1/orgs/HX-1/roles", json!({"login": "admin", "role": "inspector", "from": day}), "from"),
            ("POST", "/api/v1/orgs/HX-1/records", record_body("A7", day), "occurred_on"),
            ("POST", "/api/v1/templates/ideology-school/install", json!({"effective_from": day}), "effective_from"),
        ] {
            let (st, reply) = t.call(method, path, &t.admin_token, Some(body)).await;
            if st != StatusCode::BAD_REQUEST || reply["error"]["field"] != field {
                failures.push(format!("{method} {path} {field}={day} -> {st} {reply}"));
            }
        }
    }
    assert!(failures.is_empty(), "unstorable dates were not refused as bad input:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn a_record_of_an_organisation_founded_before_1900_can_still_be_submitted() {
    let t = company().await;
    // The API accepts an organisation founded in 1850 and a record dated then (or refuses
    // both as bad input); either way, submitting the draft must not fail with a 5xx.
    let (st, body) = t
        .post(
            "/api/v1/orgs",
            json!({"code": "OLD", "name": "旧支部", "kind": "branch", "parent": "HGS", "active_from": "1850-01-01"}),
        )
        .await;
    if st != StatusCode::CREATED {
        expect_error("an organisation founded in 1850", &(st, body), 400, "bad_input", Some("active_from"));
        return;
    }
    let (st, rec) = t
        .post(
            "/api/v1/orgs/OLD/records",
            json!({"rule": "A7", "occurred_on": "1850-05-01", "title": "旧会议", "draft": true}),
        )
        .await;
    if st != StatusCode::CREATED {
        expect_error("a record dated 1850", &(st, rec), 400, "bad_input", Some("occurred_on"));
        return;
    }
    let id = rec["id"].as_str().unwrap();
    let (st, body) = t.post(&format!("/api/v1/records/{id}/submit"), json!({})).await;
    assert!(!st.is_server_error(), "submitting a draft dated 1850: {st} {body}");
}

#[tokio::test]
async fn a_malformed_path_or_query_or_method_is_answered_with_a_json_error() {
    let t = company().await;
    let token = t.admin_token.clone();
    let mut failures = Vec::new();
    for (method, path) in [
        ("GET", "/api/v1/orgs/%FF"),
        ("GET", "/api/v1/records/%FF"),
        ("GET", "/api/v1/orgs/HX-1/duties?period=2026&period=2027"),
        ("GET", "/api/v1/orgs/HX-1/rollup?period=2026&period=2026"),
        ("DELETE", "/api/v1/orgs/HX-1"),
        ("PUT", "/api/v1/orgs"),
        ("GET", "/api/v1/records/1/submit"),
    ] {
        let reply = send(&t, method, path, Some(&token), None, vec![]).await;
        if reply.status.is_server_error() || !reply.status.is_client_error() || !reply.is_json_error() {
            failures.push(format!("{method} {path} -> {} {:?} {:?}", reply.status, reply.content_type, reply.text));
        }
    }
    assert!(failures.is_empty(), "errors that are not `{{error: {{code, …}}}}` JSON:\n{}", failures.join("\n"));
}

/// A deterministic pseudo-random generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T: ?Sized>(&mut self, xs: &[&'a T]) -> &'a T {
        xs[self.below(xs.len())]
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "7",
    "-9223372036854775808",
    "9223372036854775807",
    "18446744073709551615",
    "123456789012345678901234567890",
    "1e308",
    "-1e308",
    "1e400",
    "1e-400",
    "0.5",
    "-0.0",
    "2147483648",
    "-2147483649",
    "100001",
];

const STRINGS: &[&str] = &[
    "",
    " ",
    "A7",
    "A8",
    "A13",
    "Z99",
    "HX-1",
    "HX-2",
    "HGS",
    "NOPE",
    "branch",
    "committee",
    "castle",
    "secretary",
    "member",
    "boss",
    "accept",
    "return",
    "admin",
    "2026-02-10",
    "2026-02-01",
    "2026-02-11",
    "2026-02-30",
    "2026-13-01",
    "2016-12-31",
    "1970-01-01",
    "1850-01-01",
    "0001-01-01",
    "-5000-01-01",
    "+99999-12-31",
    "9999-12-31",
    "2026/02/01",
    "2026-Q1",
    "null",
    "true",
    "-1",
    "1e400",
    "组织 名称",
    "王五",
    "🙂🙃",
    "\u{202e}evil",
    "e\u{301}\u{301}\u{301}",
    "\u{0}",
    "a\u{0}b",
    "\u{fffd}",
    "\u{feff}",
    "\u{10ffff}",
    "'; drop table org; --",
    "<script>alert(1)</script>",
    "../../../etc/passwd",
    "\\",
    "\"",
    "\t\r\n",
    "%00",
    "${jndi:ldap://x}",
];

const EXTRA_KEYS: &[&str] = &["state", "org", "id", "role", "admin", "__proto__", "submitted_by", "", "rule\u{0}"];

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// A random JSON value as text: wrong types, huge strings, deep nesting, odd unicode,
/// extreme numbers.
fn random_value(rng: &mut Rng, depth: usize, out: &mut String) {
    match rng.below(100) {
        0..=7 => out.push_str("null"),
        8..=13 => out.push_str(if rng.chance(50) { "true" } else { "false" }),
        14..=29 => out.push_str(rng.pick(NUMBERS)),
        30..=64 => out.push_str(&json_string(rng.pick(STRINGS))),
        65..=72 => {
            let len = 1 + rng.below(40);
            let s: String = (0..len)
                .map(|_| {
                    loop {
                        let cp = match rng.below(4) {
                            0 => rng.below(0x80) as u32,
                            1 => rng.below(0x800) as u32,
                            2 => rng.below(0x10000) as u32,
                            _ => rng.below(0x110000) as u32,
                        };
                        if let Some(c) = char::from_u32(cp) {
                            break c;
                        }
                    }
                })
                .collect();
            out.push_str(&json_string(&s));
        }
        73..=76 => {
            let unit = rng.pick(&["a", "字", "🙂", "\u{0}", "\\", "\""]);
            let n = 300 * 1024 / unit.len().max(1);
            out.push_str(&json_string(&unit.repeat(n)));
        }
        77..=82 => {
            let n = *rng.pick(&[&64usize, &127, &129, &500, &5000]);
            if rng.chance(50) {
                out.push_str(&"[".repeat(n));
                out.push_str(&"]".repeat(n));
            } else {
                out.push_str(&"{\"a\":".repeat(n));
                out.push_str("null");
                out.push_str(&"}".repeat(n));
            }
        }
        83..=91 if depth < 3 => {
            out.push('[');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                random_value(rng, depth + 1, out);
            }
            out.push(']');
        }
        92..=99 if depth < 3 => {
            out.push('{');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                let key = if rng.chance(50) { rng.pick(EXTRA_KEYS).to_owned() } else { format!("k{i}") };
                out.push_str(&json_string(&key));
                out.push(':');
                random_value(rng, depth + 1, out);
            }
            out.push('}');
        }
        _ => out.push_str("null"),
    }
}

/// One POST or PATCH route to hammer: its fields, each with a few plausible values (as
/// JSON text), so that generated bodies also get past the first checks.
struct Target {
    method: &'static str,
    /// The route as the OpenAPI document names it.
    route: &'static str,
    path: String,
    fields: Vec<(&'static str, Vec<&'static str>)>,
}

/// A generated body: all fields null, an empty object, a random value, or an object whose
/// fields are plausible, random or missing, sometimes with extra keys.
fn random_body(rng: &mut Rng, target: &Target, n: usize) -> String {
    let mut out = String::new();
    if n == 0 {
        let fields: Vec<String> = target.fields.iter().map(|(f, _)| format!("{}:null", json_string(f))).collect();
        return format!("{{{}}}", fields.join(","));
    }
    if n == 1 {
        return "{}".into();
    }
    if n % 8 == 7 {
        random_value(rng, 0, &mut out);
        return out;
    }
    out.push('{');
    let mut first = true;
    for (field, plausible) in &target.fields {
        if rng.chance(15) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&json_string(field));
        out.push(':');
        if rng.chance(40) && !plausible.is_empty() {
            out.push_str(rng.pick(plausible));
        } else {
            random_value(rng, 1, &mut out);
        }
    }
    if rng.chance(25) {
        if !first {
            out.push(',');
        }
        out.push_str(&json_string(rng.pick(EXTRA_KEYS)));
        out.push(':');
        random_value(rng, 1, &mut out);
    }
    out.push('}');
    out
}

#[tokio::test]
async fn no_post_or_patch_route_answers_a_generated_body_with_a_server_error() {
    let t = company().await;
    let token = t.admin_token.clone();
    let reviewed = t.record("HX-1", "A8", "2026-02-01").await;
    let corrected = t.record("HX-1", "A7", "2026-02-01").await;
    let withdrawn = t.record("HX-1", "A7", "2026-02-02").await;
    let draft =
        file(&t, &token, "HX-1", json!({"rule": "A7", "occurred_on": "2026-02-03", "title": "草稿", "draft": true}))
            .await;
    let (_, duties) = t.get("/api/v1/orgs/HX-1/duties?period=2026-Q1").await;
    let duty = duties[0]["id"].as_str().unwrap().to_owned();
    let id_of = |v: &Value| v["id"].as_str().map(str::to_owned).unwrap_or_else(|| v["id"].to_string());
    let (st, person) = t.post("/api/v1/people", json!({"name": "赵六", "code": "FZ-P1"})).await;
    assert_eq!(st, StatusCode::CREATED, "{person}");
    let person = id_of(&person);
    let (st, role) = t
        .post(&format!("/api/v1/people/{person}/roles"), json!({"org": "HX-1", "role": "member", "from": "2026-01-01"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{role}");
    let role = id_of(&role);
    let (st, system) = t.post("/api/v1/systems", json!({"code": "fz-s", "title": "测试制度"})).await;
    assert_eq!(st, StatusCode::CREATED, "{system}");
    let text = || {
        vec![
            ("title", vec!["\"会议\"", "\"更正\""]),
            ("body", vec!["\"纪要\"", "\"\""]),
            ("attendees", vec!["[\"王五\"]", "[]"]),
            ("meeting", vec!["null", "{\"place\":\"会议室\",\"expected\":5,\"present\":4}"]),
        ]
    };
    let mut record_fields = vec![
        ("rule", vec!["\"A7\"", "\"A8\"", "\"A13\""]),
        ("person", vec!["null"]),
        ("occurred_on", vec!["\"2026-02-01\"", "\"2026-01-15\""]),
        ("draft", vec!["true", "false"]),
    ];
    record_fields.extend(text());
    let targets = vec![
        Target {
            method: "POST",
            route: "/api/v1/orgs",
            path: "/api/v1/orgs".into(),
            fields: vec![
                ("code", vec!["\"FZ-1\"", "\"FZ-2\""]),
                ("name", vec!["\"新支部\""]),
                ("kind", vec!["\"branch\"", "\"office\""]),
                ("parent", vec!["\"HGS\"", "null"]),
                ("active_from", vec!["\"2020-01-01\""]),
            ],
        },
        Target {
            method: "PATCH",
            route: "/api/v1/orgs/{code}",
            path: "/api/v1/orgs/HX-2".into(),
            fields: vec![
                ("name", vec!["\"二支部\""]),
                ("kind", vec!["\"branch\"", "\"committee\""]),
                ("active_until", vec!["null", "\"2026-02-09\""]),
            ],
        },
        Target {
            method: "POST",
            route: "/api/v1/orgs/{code}/roles",
            path: "/api/v1/orgs/HX-1/roles".into(),
            fields: vec![
                ("login", vec!["\"admin\""]),
                ("role", vec!["\"member\"", "\"inspector\""]),
                ("from", vec!["\"2026-01-01\""]),
                ("until", vec!["null", "\"2026-12-31\""]),
                ("acting", vec!["true", "false"]),
            ],
        },
        Target {
            method: "POST",
            route: "/api/v1/orgs/{code}/records",
            path: "/api/v1/orgs/HX-1/records".into(),
            fields: record_fields,
        },
        Target {
            method: "POST",
            route: "/api/v1/records/{id}/submit",
            path: format!("/api/v1/records/{draft}/submit"),
            fields: vec![],
        },
        Target {
            method: "POST",
            route: "/api/v1/records/{id}/review",
            path: format!("/api/v1/records/{reviewed}/review"),
            fields: vec![("decision", vec!["\"accept\"", "\"return\""]), ("comment", vec!["\"请补充\""])],
        },
        Target {
            method: "POST",
            route: "/api/v1/records/{id}/versions",
            path: format!("/api/v1/records/{corrected}/versions"),
            fields: text(),
        },
        Target {
            method: "POST",
            route: "/api/v1/records/{id}/withdraw",
            path: format!("/api/v1/records/{withdrawn}/withdraw"),
            fields: vec![("reason", vec!["\"误报\""])],
        },
        Target {
            method: "POST",
            route: "/api/v1/templates/{template}/install",
            path: "/api/v1/templates/ideology-branch-company/install".into(),
            fields: vec![("effective_from", vec!["\"2026-01-01\""]), ("root", vec!["null", "\"HGS\""])],
        },
        Target {
            method: "POST",
            route: "/api/v1/users",
            path: "/api/v1/users".into(),
            fields: vec![
                ("login", vec!["\"fz-user\""]),
                ("password", vec!["\"correct-horse-battery\""]),
                ("name", vec!["\"张三\""]),
                ("admin", vec!["false"]),
            ],
        },
        Target {
            method: "POST",
            route: "/api/v1/duties/{id}/waive",
            path: format!("/api/v1/duties/{duty}/waive"),
            fields: vec![("reason", vec!["\"支部撤并\""])],
        },
        Target {
            method: "POST",
            route: "/api/v1/kinds",
            path: "/api/v1/kinds".into(),
            fields: vec![
                ("code", vec!["\"fz-kind\"", "\"branch\""]),
                ("name_zh", vec!["\"联合支部\""]),
                ("name_en", vec!["\"Joint branch\""]),
            ],
        },
        Target {
            method: "PATCH",
            route: "/api/v1/kinds/{code}",
            path: "/api/v1/kinds/branch".into(),
            fields: vec![("name_zh", vec!["\"党支部\"", "\"\""]), ("name_en", vec!["\"Branch\""])],
        },
        Target {
            method: "POST",
            route: "/api/v1/orgs/{code}/move",
            path: "/api/v1/orgs/HX-2/move".into(),
            fields: vec![("parent", vec!["\"HGS\"", "\"HX-1\"", "\"HX-2\""]), ("dry_run", vec!["true", "false"])],
        },
        Target {
            method: "POST",
            route: "/api/v1/orgs/{code}/handover",
            path: "/api/v1/orgs/HX-1/handover".into(),
            fields: vec![
                ("person", vec!["\"FZ-P1\"", "\"admin\""]),
                ("role", vec!["\"secretary\"", "null"]),
                ("on", vec!["\"2026-03-01\"", "\"2025-01-01\""]),
            ],
        },
        Target {
            method: "POST",
            route: "/api/v1/people",
            path: "/api/v1/people".into(),
            fields: vec![
                ("name", vec!["\"钱七\""]),
                ("code", vec!["\"FZ-P2\"", "null"]),
                ("phone", vec!["\"13800000000\"", "null"]),
                ("email", vec!["\"q@example.org\"", "null"]),
            ],
        },
        Target {
            method: "PATCH",
            route: "/api/v1/people/{id}",
            path: format!("/api/v1/people/{person}"),
            fields: vec![("name", vec!["\"赵六六\""]), ("code", vec!["\"FZ-P1\"", "null"]), ("phone", vec!["null"])],
        },
        Target {
            method: "POST",
            route: "/api/v1/people/{id}/roles",
            path: format!("/api/v1/people/{person}/roles"),
            fields: vec![
                ("org", vec!["\"HX-2\"", "\"HGS\""]),
                ("role", vec!["\"member\"", "\"coordinator\""]),
                ("from", vec!["\"2026-01-01\""]),
                ("until", vec!["null", "\"2026-06-30\""]),
                ("acting", vec!["true", "false"]),
            ],
        },
        Target {
            method: "PATCH",
            route: "/api/v1/roles/{id}",
            path: format!("/api/v1/roles/{role}"),
            fields: vec![("until", vec!["null", "\"2026-06-30\"", "\"2025-01-01\""])],
        },
        Target {
            method: "POST",
            route: "/api/v1/systems",
            path: "/api/v1/systems".into(),
            fields: vec![("code", vec!["\"fz-s2\"", "\"fz-s\""]), ("title", vec!["\"制度\""])],
        },
        Target {
            method: "POST",
            route: "/api/v1/systems/{code}/rules",
            path: "/api/v1/systems/fz-s/rules".into(),
            fields: vec![
                ("code", vec!["\"FZ-R1\"", "\"A7\""]),
                ("title", vec!["\"学习\""]),
                ("clause", vec!["\"第一条\""]),
                ("kinds", vec!["[\"branch\"]", "[]"]),
                ("cadence", vec!["\"quarter\"", "\"year\""]),
                ("binds", vec!["\"organisation\"", "\"each_member\""]),
                ("record_kind", vec!["\"meeting\"", "\"report\""]),
                ("min_count", vec!["1", "0"]),
                ("grace_days", vec!["0", "10"]),
                ("lead_days", vec!["null", "7"]),
                ("effective_from", vec!["\"2026-01-01\"", "\"2026-04-01\""]),
                ("root", vec!["null", "\"HGS\""]),
                ("dry_run", vec!["true", "false"]),
            ],
        },
        Target {
            method: "POST",
            route: "/api/v1/rules/{code}/versions",
            path: "/api/v1/rules/A7/versions".into(),
            fields: vec![
                ("effective_from", vec!["\"2026-01-01\"", "\"2026-04-01\""]),
                ("title", vec!["\"学习\""]),
                ("min_count", vec!["1", "2"]),
                ("grace_days", vec!["0", "5"]),
                ("lead_days", vec!["null", "3"]),
                ("needs_review", vec!["true", "false"]),
                ("dry_run", vec!["true", "false"]),
            ],
        },
        Target {
            method: "POST",
            route: "/api/v1/rules/{code}/waivers",
            path: "/api/v1/rules/A8/waivers".into(),
            fields: vec![("org", vec!["\"HX-2\"", "\"HGS\""]), ("reason", vec!["\"合并\""])],
        },
        Target {
            method: "POST",
            route: "/api/v1/users/{login}/password",
            path: "/api/v1/users/fz-user/password".into(),
            fields: vec![
                ("password", vec!["\"another-long-passphrase\"", "\"x\""]),
                ("generate", vec!["true", "false"]),
            ],
        },
        Target {
            method: "PATCH",
            route: "/api/v1/users/{login}",
            path: "/api/v1/users/fz-user".into(),
            fields: vec![
                ("name", vec!["\"张三\""]),
                ("admin", vec!["false"]),
                ("disabled", vec!["true", "false"]),
                ("person", vec!["\"FZ-P1\""]),
            ],
        },
        Target {
            method: "POST",
            route: "/api/v1/tokens",
            path: "/api/v1/tokens".into(),
            fields: vec![("label", vec!["\"ci\""])],
        },
        Target {
            method: "PUT",
            route: "/api/v1/settings",
            path: "/api/v1/settings".into(),
            fields: vec![
                ("lead_days", vec!["{\"quarter\":10}", "{}"]),
                ("attachment_max_mb", vec!["20", "0"]),
                ("mail", vec!["null"]),
            ],
        },
        Target { method: "POST", route: "/api/v1/audit/verify", path: "/api/v1/audit/verify".into(), fields: vec![] },
    ];

    // Every POST and PATCH operation the API documents is hammered here.
    let doc: Value = serde_json::from_str(include_str!("../src/web/api/openapi.json")).unwrap();
    let mut documented: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["post", "patch", "put"] {
            if item.get(method).is_some() {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let mut covered: Vec<String> = targets.iter().map(|t| format!("{} {}", t.method, t.route)).collect();
    documented.sort();
    covered.sort();
    assert_eq!(covered, documented, "the targets cover every documented POST/PATCH route");

    let mut rng = Rng(0x7a72_7a68_6920_6675);
    let mut failures = Vec::new();
    for target in &targets {
        for n in 0..50 {
            let body = random_body(&mut rng, target, n);
            let reply = send(
                &t,
                target.method,
                &target.path,
                Some(&token),
                Some("application/json"),
                body.clone().into_bytes(),
            )
            .await;
            let bad = reply.status.is_server_error() || (!reply.status.is_success() && !reply.is_json_error());
            if bad {
                let shown: String = body.chars().take(200).collect();
                let text: String = reply.text.chars().take(200).collect();
                failures.push(format!("{} {} body {shown:?} -> {} {text}", target.method, target.path, reply.status));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} generated requests were answered with a 5xx or a non-JSON error:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
