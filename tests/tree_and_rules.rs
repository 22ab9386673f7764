//! Moving and closing organisations, and changing rules over time: what changes, what
//! never does (the past), and that the per-subtree totals stay true.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::json;
use zerenzhi::db::{duties, orgs, rules};

/// The per-subtree totals equal a recount of the duties, for every organisation.
async fn assert_totals_true(t: &TestApp) {
    let wrong: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(
        "with truth as (
            select a.id as org_id, d.period_key, d.class, count(*) as n
            from duty d join org o on o.id = d.org_id cross join unnest(o.path) as a(id)
            group by 1, 2, 3),
         kept as (select org_id, period_key, class, sum(n) as n from subtree_total group by 1, 2, 3)
         select coalesce(t.org_id, k.org_id), coalesce(t.period_key, k.period_key), coalesce(t.class, k.class),
                coalesce(t.n, 0)::bigint, coalesce(k.n, 0)::bigint
         from truth t full join kept k using (org_id, period_key, class)
         where coalesce(t.n, 0) <> coalesce(k.n, 0)",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert!(wrong.is_empty(), "totals differ from a recount (org, period, class, truth, kept): {wrong:?}");
}

/// Two companies: HGS with template A on its subtree, FGS (branch company) with B on its.
async fn two_companies() -> TestApp {
    let t = TestApp::spawn_at("2026-05-10T10:00:00+08:00").await;
    t.org("HJT", "group_committee", None, "2015-01-01").await;
    t.org("HGS", "committee", Some("HJT"), "2015-01-01").await;
    t.org("HX-1", "branch", Some("HGS"), "2015-01-01").await;
    t.org("HX-2", "branch", Some("HGS"), "2015-01-01").await;
    t.org("FGS", "committee", Some("HJT"), "2015-01-01").await;
    t.org("FX-1", "branch", Some("FGS"), "2015-01-01").await;
    t.install("ideology-company", "2026-01-01", Some("HGS")).await;
    t.install("ideology-branch-company", "2026-01-01", Some("FGS")).await;
    t
}

async fn org(t: &TestApp, code: &str) -> orgs::Org {
    let mut conn = t.pool.acquire().await.unwrap();
    orgs::find_by_code(&mut conn, code).await.unwrap().unwrap()
}

/// A new version of `old` from a day, with another title, count and review flag.
fn change_from(
    old: &rules::RuleVersion,
    (y, m, d): (i32, u32, u32),
    title: &str,
    min_count: i32,
    needs_review: bool,
) -> rules::VersionChange {
    rules::VersionChange {
        effective_from: chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap(),
        retired: false,
        title: title.into(),
        clause: old.clause.clone(),
        clause_text: String::new(),
        kinds: old.kinds.clone(),
        root_org_id: old.root_org_id,
        responsible_role: old.responsible_role.clone(),
        min_count,
        grace_days: 0,
        lead_days: None,
        needs_review,
    }
}

fn rules_of(statuses: Vec<(String, String)>) -> Vec<String> {
    statuses.into_iter().map(|(r, _)| r).collect()
}

#[tokio::test]
async fn a_moved_branch_owes_its_new_companys_rules_and_the_totals_follow_it() {
    let t = two_companies().await;
    assert_eq!(rules_of(t.statuses("HX-2", "2026").await), ["A6", "A9", "A10", "A12"]);
    let (_, before) = t.get("/api/v1/orgs/FGS/rollup?period=2026").await;
    let (hx2, fgs) = (org(&t, "HX-2").await, org(&t, "FGS").await);
    let mut tx = t.pool.begin().await.unwrap();
    let summary = orgs::move_to(&mut tx, &hx2, &fgs, t.clock.now()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(summary.organisations, 1);
    assert!(summary.duties_created > 0 && summary.duties_removed > 0, "{summary:?}");
    assert_eq!(rules_of(t.statuses("HX-2", "2026").await), ["B2", "B3", "B4"]);
    assert_eq!(org(&t, "HX-2").await.parent.as_deref(), Some("FGS"));
    let (_, after) = t.get("/api/v1/orgs/FGS/rollup?period=2026").await;
    assert_eq!(after["counts"]["open"].as_i64().unwrap(), before["counts"]["open"].as_i64().unwrap() + 3);
    let (_, hgs) = t.get("/api/v1/orgs/HGS/rollup?period=2026").await;
    assert!(hgs["children"].as_array().unwrap().iter().all(|c| c["code"] != "HX-2"));
    assert_totals_true(&t).await;
}

#[tokio::test]
async fn duties_with_records_stay_with_a_moved_branch_and_count_in_its_new_place() {
    let t = two_companies().await;
    t.record("HX-2", "A6", "2026-03-01").await;
    let (hx2, fgs) = (org(&t, "HX-2").await, org(&t, "FGS").await);
    let mut tx = t.pool.begin().await.unwrap();
    orgs::move_to(&mut tx, &hx2, &fgs, t.clock.now()).await.unwrap();
    tx.commit().await.unwrap();
    let statuses = t.statuses("HX-2", "2026").await;
    assert!(statuses.iter().any(|(r, _)| r == "A6"), "the A6 duty with its record is history: {statuses:?}");
    assert_totals_true(&t).await;
}

#[tokio::test]
async fn a_whole_subtree_moves_and_stays_findable_by_subtree_queries() {
    let t = two_companies().await;
    t.org("HX-2-1", "branch", Some("HX-2"), "2015-01-01").await;
    let (hgs, fgs) = (org(&t, "HGS").await, org(&t, "FGS").await);
    let mut tx = t.pool.begin().await.unwrap();
    let summary = orgs::move_to(&mut tx, &hgs, &fgs, t.clock.now()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(summary.organisations, 4);
    let in_fgs: Vec<String> = sqlx::query_scalar(
        "select code from org where path >= (select path from org where code = 'FGS')
           and path < subtree_upper((select path from org where code = 'FGS')) order by path",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert_eq!(in_fgs, ["FGS", "HGS", "HX-1", "HX-2", "HX-2-1", "FX-1"], "depth-first, by id");
    let grandchild = org(&t, "HX-2-1").await;
    assert_eq!(grandchild.path.len(), 5);
    assert_totals_true(&t).await;
}

#[tokio::test]
async fn an_organisation_cannot_move_under_its_own_descendant() {
    let t = two_companies().await;
    let (hgs, hx1) = (org(&t, "HGS").await, org(&t, "HX-1").await);
    let mut tx = t.pool.begin().await.unwrap();
    let err = orgs::move_to(&mut tx, &hgs, &hx1, t.clock.now()).await.unwrap_err();
    assert_eq!(err.status(), 400, "{err}");
    let err = orgs::move_to(&mut tx, &hgs, &hgs, t.clock.now()).await.unwrap_err();
    assert_eq!(err.status(), 400, "{err}");
}

#[tokio::test]
async fn closing_previews_what_it_changes_then_does_it() {
    let t = two_companies().await;
    t.org("HX-2-1", "branch", Some("HX-2"), "2015-01-01").await;
    let hx2 = org(&t, "HX-2").await;
    let until = chrono::NaiveDate::from_ymd_opt(2026, 5, 20).unwrap();
    let mut conn = t.pool.acquire().await.unwrap();
    let preview = orgs::preview_close(&mut conn, &hx2, until).await.unwrap();
    assert_eq!(preview.organisations, 2, "the branch and its open descendant");
    // Two branches × (yearly A6, A9, A10, A12 + Q2 A7, A8, A11), all unfinished and
    // ending after 20 May.
    assert_eq!(preview.duties_cancelled, 14);
    drop(conn);
    let (st, _) = t.patch("/api/v1/orgs/HX-2", json!({"active_until": "2026-05-20"})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(org(&t, "HX-2-1").await.active_until, Some(until), "descendants close on the same day");
    assert!(t.statuses("HX-2-1", "2026-Q2").await.iter().all(|(_, s)| s == "cancelled"));
    assert_totals_true(&t).await;
}

#[tokio::test]
async fn a_rule_change_from_the_current_period_applies_now_and_leaves_the_past_alone() {
    let t = two_companies().await;
    t.record("HX-1", "A7", "2026-02-01").await;
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "late", "filed on 10 May for Q1");
    assert_eq!(t.status_of("HX-2", "2026-Q1", "A7").await, "overdue");
    t.record("HX-1", "A7", "2026-04-10").await;
    assert_eq!(t.status_of("HX-1", "2026-Q2", "A7").await, "fulfilled");
    let mut conn = t.pool.acquire().await.unwrap();
    let rule = rules::find_by_code(&mut conn, "A7").await.unwrap().unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 5, 10).unwrap();
    let old = rules::version_on(&mut conn, rule.id, today).await.unwrap().unwrap();
    drop(conn);
    let change = change_from(&old, (2026, 4, 1), "每季度召开两次分析研判会", 2, false);
    let settings = t.app.settings();
    let mut tx = t.pool.begin().await.unwrap();
    let impact = rules::change_rule(&mut tx, &settings, &rule, &change, None, t.clock.now(), today).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(impact.periods, ["2026-Q2"]);
    assert_eq!(impact.duties_updated, 2, "both branches' Q2 duties now need two");
    assert_eq!(t.status_of("HX-1", "2026-Q2", "A7").await, "open", "one of two is no longer enough");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "late", "Q1 keeps the rule as it was");
    assert_eq!(t.status_of("HX-2", "2026-Q1", "A7").await, "overdue");
    let (_, q1) = t.get("/api/v1/orgs/HX-1/duties?period=2026-Q1").await;
    let a7 = q1.as_array().unwrap().iter().find(|d| d["rule"] == "A7").unwrap();
    assert_eq!((a7["required"].as_i64(), a7["title"].as_str()), (Some(1), Some("召开意识形态分析研判会")));
    assert_totals_true(&t).await;
}

#[tokio::test]
async fn a_rule_change_dated_before_the_current_period_is_refused() {
    let t = two_companies().await;
    let mut conn = t.pool.acquire().await.unwrap();
    let rule = rules::find_by_code(&mut conn, "A7").await.unwrap().unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 5, 10).unwrap();
    let old = rules::version_on(&mut conn, rule.id, today).await.unwrap().unwrap();
    let change = change_from(&old, (2026, 3, 31), &old.title, 3, false);
    let err =
        rules::change_rule(&mut conn, &t.app.settings(), &rule, &change, None, t.clock.now(), today).await.unwrap_err();
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn a_future_rule_change_waits_for_its_period_and_a_new_kind_is_owed_from_then() {
    let t = two_companies().await;
    let mut conn = t.pool.acquire().await.unwrap();
    let rule = rules::find_by_code(&mut conn, "A7").await.unwrap().unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 5, 10).unwrap();
    let old = rules::version_on(&mut conn, rule.id, today).await.unwrap().unwrap();
    drop(conn);
    let change = rules::VersionChange {
        effective_from: chrono::NaiveDate::from_ymd_opt(2026, 7, 1).unwrap(),
        retired: false,
        title: old.title.clone(),
        clause: old.clause.clone(),
        clause_text: String::new(),
        kinds: vec!["branch".into(), "committee".into()],
        root_org_id: old.root_org_id,
        responsible_role: old.responsible_role.clone(),
        min_count: 1,
        grace_days: 5,
        lead_days: None,
        needs_review: false,
    };
    let mut tx = t.pool.begin().await.unwrap();
    let impact =
        rules::change_rule(&mut tx, &t.app.settings(), &rule, &change, None, t.clock.now(), today).await.unwrap();
    tx.commit().await.unwrap();
    assert!(impact.periods.is_empty(), "nothing started yet is affected: {impact:?}");
    assert!(!rules_of(t.statuses("HGS", "2026-Q2").await).contains(&"A7".to_owned()));
    t.set_now("2026-07-02T09:00:00+08:00");
    assert!(rules_of(t.statuses("HGS", "2026-Q3").await).contains(&"A7".to_owned()), "committees owe it from Q3");
    let (_, q3) = t.get("/api/v1/orgs/HX-1/duties?period=2026-Q3").await;
    let a7 = q3.as_array().unwrap().iter().find(|d| d["rule"] == "A7").unwrap().clone();
    assert_eq!(a7["due_at"], "2026-10-06T00:00:00+08:00", "five days' grace from Q3 on");
    assert_totals_true(&t).await;
}

#[tokio::test]
async fn a_rule_waived_for_one_organisation_waives_its_open_and_future_duties() {
    let t = two_companies().await;
    let mut conn = t.pool.acquire().await.unwrap();
    let rule = rules::find_by_code(&mut conn, "A11").await.unwrap().unwrap();
    let hx2 = orgs::find_by_code(&mut conn, "HX-2").await.unwrap().unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 5, 10).unwrap();
    let waived =
        rules::waive_for_org(&mut conn, &rule, &hx2, "该支部不涉及改革人员", None, t.clock.now(), today).await.unwrap();
    assert_eq!(waived, 1, "the current quarter's duty");
    let again = rules::waive_for_org(&mut conn, &rule, &hx2, "again", None, t.clock.now(), today).await.unwrap_err();
    assert_eq!(again.status(), 409);
    drop(conn);
    assert_eq!(t.status_of("HX-2", "2026-Q2", "A11").await, "waived");
    assert_eq!(t.status_of("HX-2", "2026-Q1", "A11").await, "overdue", "an ended period stays as it was");
    assert_eq!(t.status_of("HX-1", "2026-Q2", "A11").await, "open", "other branches still owe it");
    t.set_now("2026-07-02T09:00:00+08:00");
    assert_eq!(t.status_of("HX-2", "2026-Q3", "A11").await, "waived", "and later periods come waived");
    assert_totals_true(&t).await;
}

/// A7's title in each 2026 period, as the workbench reads it (through the rule catalog).
async fn a7_titles(t: &TestApp, org_id: i64) -> Vec<(String, String)> {
    let mut conn = t.pool.acquire().await.unwrap();
    let settings = t.app.settings();
    let duties =
        duties::for_orgs_year(&mut conn, &t.app.catalog, &settings, &[(org_id, None)], 2026, t.clock.now(), true)
            .await
            .unwrap();
    duties.into_iter().filter(|d| d.duty.rule == "A7").map(|d| (d.duty.period, d.duty.title)).collect()
}

#[tokio::test]
async fn rule_wording_is_kept_once_read_and_the_database_refuses_to_change_it() {
    let t = two_companies().await;
    let hx1 = org(&t, "HX-1").await;
    let old_title = "召开意识形态分析研判会".to_string();
    let before = a7_titles(&t, hx1.id).await;
    assert_eq!(before, [("2026-Q1".to_string(), old_title.clone()), ("2026-Q2".to_string(), old_title.clone())]);

    // New wording from Q2 is a new version: the kept copy of the old one stays right for Q1.
    let mut conn = t.pool.acquire().await.unwrap();
    let rule = rules::find_by_code(&mut conn, "A7").await.unwrap().unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 5, 10).unwrap();
    let old = rules::version_on(&mut conn, rule.id, today).await.unwrap().unwrap();
    let change = change_from(&old, (2026, 4, 1), "每季度召开两次分析研判会", old.min_count, old.needs_review);
    let mut tx = t.pool.begin().await.unwrap();
    rules::change_rule(&mut tx, &t.app.settings(), &rule, &change, None, t.clock.now(), today).await.unwrap();
    tx.commit().await.unwrap();
    let after = a7_titles(&t, hx1.id).await;
    assert_eq!(
        after,
        [("2026-Q1".to_string(), old_title), ("2026-Q2".to_string(), "每季度召开两次分析研判会".to_string())]
    );

    // What is kept cannot change underneath: the database refuses it; other columns may.
    for refused in [
        "update rule_version set title = '改过的标题' where rule_id = $1",
        "update rule_version set clause = '第九条' where rule_id = $1",
        "update rule_version set needs_review = not needs_review where rule_id = $1",
        "update rule set code = 'Z9' where id = $1",
        "update rule set position = position + 100 where id = $1",
        "delete from rule_version where rule_id = $1",
    ] {
        let err = sqlx::query(refused).bind(rule.id).execute(&mut *conn).await.unwrap_err();
        assert!(err.to_string().contains("never change"), "{refused}: {err}");
    }
    sqlx::query("update rule_version set lead_days = 7 where rule_id = $1")
        .bind(rule.id)
        .execute(&mut *conn)
        .await
        .unwrap();
}

/// The SQLSTATE of a statement that must fail.
async fn refused(conn: &mut sqlx::PgConnection, sql: &str) -> String {
    let err = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut *conn).await.expect_err(sql);
    err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned()).unwrap_or_else(|| format!("{err}"))
}

#[tokio::test]
async fn a_duty_names_an_existing_organisation_and_rule_period_and_neither_goes_away() {
    let t = two_companies().await;
    let mut conn = t.pool.acquire().await.unwrap();
    // A copy of a real duty, with one reference changed at a time.
    let copy = |changes: &str| {
        format!(
            "insert into duty (org_id, rule_id, period_key, person_id, required, due_at, created_at)
             select {changes}, person_id, required, due_at, created_at from duty d
             where exists (select 1 from org o where o.id = d.org_id and o.code = 'HX-1')
               and period_key = '2026-Q1' and person_id is null limit 1"
        )
    };
    assert_eq!(
        refused(&mut conn, &copy("org_id + 1000000, rule_id, period_key")).await,
        "23503",
        "no such organisation"
    );
    assert_eq!(refused(&mut conn, &copy("org_id, rule_id, '2031-Q1'")).await, "23503", "no such rule period");
    assert_eq!(refused(&mut conn, &copy("org_id, rule_id + 1000, period_key")).await, "23503", "no such rule");
    // A good statement with one bad row among many is refused whole.
    let before: i64 = sqlx::query_scalar("select count(*) from duty").fetch_one(&mut *conn).await.unwrap();
    let mixed = "insert into duty (org_id, rule_id, person_id, period_key, required, due_at, created_at)
                 select case when row_number() over (order by d.id) = 1 then -1 else o.id end,
                        d.rule_id, d.person_id, d.period_key, d.required, d.due_at, d.created_at
                 from duty d join org o on o.code = 'FX-1' where d.period_key = '2026-Q1'
                 on conflict do nothing";
    assert_eq!(refused(&mut conn, mixed).await, "23503");
    let after: i64 = sqlx::query_scalar("select count(*) from duty").fetch_one(&mut *conn).await.unwrap();
    assert_eq!(before, after);

    // What duties refer to stays: no delete, truncate or change of key.
    for sql in [
        "delete from rule_period where period_key = '2026-Q1'",
        "truncate rule_period cascade",
        "update rule_period set period_key = '2030-Q1' where period_key = '2026-Q1'",
        "delete from org where code = 'HX-2'",
        "truncate org cascade",
        "update duty set period_key = '2026-Q2' where period_key = '2026-Q1'",
        "update duty set org_id = (select id from org where code = 'HX-2') where period_key = '2026-Q1'",
    ] {
        assert_eq!(refused(&mut conn, sql).await, "23503", "{sql}");
    }
    // A good insert still goes in: the same duty for a new branch under the company.
    t.org("HX-3", "branch", Some("HGS"), "2015-01-01").await;
    assert_eq!(t.status_of("HX-3", "2026-Q1", "A7").await, "overdue");
    assert_totals_true(&t).await;
}
