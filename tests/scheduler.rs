//! The scheduler (DESIGN.md section 2 "Notifications", section 5 "safe to run in several
//! processes at once", section 6 "idle scheduler passes"): concurrent passes, when
//! `due_soon` and `overdue` fire and for whom, duties created after a threshold, records
//! returned after the deadline, idle passes, and the audit chain it seals.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use common::{TestApp, instant, url_for};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use zerenzhi::app::App;
use zerenzhi::clock::Clock;
use zerenzhi::config::Config;
use zerenzhi::db::audit;
use zerenzhi::scheduler::{TickReport, tick};

/// (org code, rule code, person name, period key)
type DutyKey = (String, String, Option<String>, String);
/// (kind, org code, rule code, person name, period key)
type EventKey = (String, String, String, Option<String>, String);
/// (login, kind, org code, rule code, person name, period key)
type NoteKey = (String, String, String, String, Option<String>, String);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// One scheduler pass of the test portal at `at`, with the portal's clock moved there too.
async fn tick_at(t: &TestApp, at: &str) -> TickReport {
    t.set_now(at);
    tick(&t.app, instant(at)).await.unwrap_or_else(|e| panic!("tick at {at}: {e:#}"))
}

/// Create a user and give their person a role on an organisation (through the API, from
/// 2025-01-01); returns the user's id and token.
async fn holder(t: &TestApp, login: &str, org: &str, role: &str) -> (i64, String) {
    let token = t.user(login, false).await;
    let (st, body) =
        t.post(&format!("/api/v1/orgs/{org}/roles"), json!({"login": login, "role": role, "from": "2025-01-01"})).await;
    assert_eq!(st, StatusCode::CREATED, "role {role} of {login} on {org}: {body}");
    (user_id(&t.pool, login).await, token)
}

async fn user_id(pool: &PgPool, login: &str) -> i64 {
    sqlx::query_scalar("select id from app_user where login = $1").bind(login).fetch_one(pool).await.unwrap()
}

/// Another "process": its own pool (own connections) and its own per-process caches.
async fn another_app(t: &TestApp, now: DateTime<Utc>) -> App {
    let url = url_for(&t.db_name);
    let pool = zerenzhi::db::connect(&url, 4).await.expect("connect");
    App::new(pool, Clock::frozen_at(now), Config::for_tests(url, t.data_dir.clone())).await.expect("app")
}

async fn duty_keys(pool: &PgPool) -> Vec<DutyKey> {
    sqlx::query_as(
        "select o.code, r.code, p.name, d.period_key
         from duty d join org o on o.id = d.org_id join rule r on r.id = d.rule_id
         left join person p on p.id = d.person_id
         order by 1, 2, 3, 4",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn events(pool: &PgPool) -> Vec<EventKey> {
    sqlx::query_as(
        "select e.kind, o.code, r.code, p.name, d.period_key
         from notification_event e join duty d on d.id = e.duty_id join org o on o.id = d.org_id
         join rule r on r.id = d.rule_id left join person p on p.id = d.person_id
         order by 1, 2, 3, 4, 5",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn notifications(pool: &PgPool) -> Vec<NoteKey> {
    sqlx::query_as(
        "select u.login, e.kind, o.code, r.code, p.name, d.period_key
         from notification n join app_user u on u.id = n.user_id
         join notification_event e on e.id = n.event_id join duty d on d.id = e.duty_id
         join org o on o.id = d.org_id join rule r on r.id = d.rule_id left join person p on p.id = d.person_id
         order by 1, 2, 3, 4, 5, 6",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The events of one kind for one period, as (org, rule) pairs.
async fn fired(pool: &PgPool, kind: &str, period: &str) -> BTreeSet<(String, String)> {
    events(pool)
        .await
        .into_iter()
        .filter(|(k, _, _, _, p)| k == kind && p == period)
        .map(|(_, org, rule, _, _)| (org, rule))
        .collect()
}

/// A user's notifications as (kind, org, rule, period), read with the portal's own function.
async fn inbox(pool: &PgPool, user_id: i64) -> BTreeSet<(String, String, String, String)> {
    let mut conn = pool.acquire().await.unwrap();
    let list = zerenzhi::db::notifications::for_user(&mut conn, user_id, 1000, 0).await.unwrap();
    let set: BTreeSet<_> =
        list.iter().map(|n| (n.kind.clone(), n.org_code.clone(), n.rule.clone(), n.period_key.clone())).collect();
    assert_eq!(set.len(), list.len(), "a user is told of one event once: {list:?}");
    set
}

fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn quads(kind: &str, period: &str, items: &[(&str, &str)]) -> BTreeSet<(String, String, String, String)> {
    items.iter().map(|(org, rule)| (kind.to_owned(), org.to_string(), rule.to_string(), period.to_owned())).collect()
}

/// `subtree_total` holds, for every ancestor (itself included), the number of duties of its
/// subtree in each class: compare it with a recount from `duty`. (`duty_total` keeps the
/// descendants' part; a leaf has no rows there.)
async fn assert_totals_match_duties(pool: &PgPool) {
    let kept: BTreeMap<(i64, i64, String, String), i64> = sqlx::query_as::<_, (i64, i64, String, String, i64)>(
        "select org_id, rule_id, period_key, class, sum(n)::bigint from subtree_total
         group by 1, 2, 3, 4 having sum(n) <> 0",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(o, r, p, c, n)| ((o, r, p, c), n))
    .collect();
    let recounted: BTreeMap<(i64, i64, String, String), i64> = sqlx::query_as::<_, (i64, i64, String, String, i64)>(
        "select a.org_id, d.rule_id, d.period_key, d.class, count(*)
             from duty d join org o on o.id = d.org_id cross join unnest(o.path) as a(org_id)
             group by 1, 2, 3, 4",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(o, r, p, c, n)| ((o, r, p, c), n))
    .collect();
    assert_eq!(kept, recounted, "duty_total differs from a recount of duty");
}

// ---------------------------------------------------------------------------------------
// Several passes at once
// ---------------------------------------------------------------------------------------

/// A tree with two committees, ten branches, members and role holders, both company
/// templates installed from the start of 2026, at 2026-02-10: Q1 exists, Q2 does not.
async fn busy_tree() -> TestApp {
    let t = TestApp::spawn_at("2026-02-10T09:00:00+08:00").await;
    t.company_tree().await;
    for i in 3..=6 {
        t.org(&format!("HX-{i}"), "branch", Some("HGS"), "2017-01-01").await;
    }
    t.org("HGS2", "committee", Some("HJT"), "2018-01-01").await;
    for i in 1..=4 {
        t.org(&format!("HY-{i}"), "branch", Some("HGS2"), "2018-01-01").await;
    }
    holder(&t, "sec-hx1", "HX-1", "secretary").await;
    holder(&t, "sec-hy1", "HY-1", "secretary").await;
    holder(&t, "sec-hgs", "HGS", "secretary").await;
    holder(&t, "coord-hgs", "HGS", "coordinator").await;
    holder(&t, "mem-hx1", "HX-1", "member").await;
    holder(&t, "mem-hgs2", "HGS2", "member").await;
    t.install("ideology-company", "2026-01-01", None).await;
    t.install("ideology-branch-company", "2026-01-01", None).await;
    t.record("HX-2", "A7", "2026-02-09").await;
    t
}

/// Everything a pass leaves behind that must not depend on how many passes ran.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    duties: Vec<DutyKey>,
    rule_periods: Vec<(String, String, bool, bool, bool)>,
    events: Vec<EventKey>,
    notifications: Vec<NoteKey>,
    audit_unsealed: i64,
}

async fn outcome(pool: &PgPool) -> Outcome {
    let duties = duty_keys(pool).await;
    let distinct: BTreeSet<&DutyKey> = duties.iter().collect();
    assert_eq!(distinct.len(), duties.len(), "a duty exists twice");
    let events = events(pool).await;
    let distinct: BTreeSet<&EventKey> = events.iter().collect();
    assert_eq!(distinct.len(), events.len(), "an event fired twice for one duty");
    let notifications = notifications(pool).await;
    let rule_periods = sqlx::query_as(
        "select r.code, rp.period_key, rp.materialized_at is not null, rp.due_soon_swept_at is not null,
                rp.overdue_swept_at is not null
         from rule_period rp join rule r on r.id = rp.rule_id order by 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let audit_unsealed =
        sqlx::query_scalar("select count(*) from audit_log where seal_no is null").fetch_one(pool).await.unwrap();
    Outcome { duties, rule_periods, events, notifications, audit_unsealed }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_passes_at_the_same_moment_leave_what_one_pass_leaves() {
    let now = instant("2026-04-02T00:00:00+08:00");

    // One pass alone, on its own database: the reference.
    let single = busy_tree().await;
    let alone = tick(&another_app(&single, now).await, now).await.expect("single pass");
    assert!(alone.rule_periods > 0 && alone.duties_created > 0, "Q2 had to be materialized: {alone:?}");
    assert!(alone.overdue_events > 0, "Q1's deadline passed: {alone:?}");
    assert_eq!(alone.due_soon_events, 0, "Q1's window closed before the first pass: {alone:?}");
    let reference = outcome(&single.pool).await;
    assert!(
        reference.events.iter().any(|(k, o, r, _, p)| k == "overdue" && o == "HX-1" && r == "A8" && p == "2026-Q1")
    );
    assert!(!reference.events.iter().any(|(_, o, r, _, p)| o == "HX-2" && r == "A7" && p == "2026-Q1"));
    assert_eq!(reference.audit_unsealed, 0);
    assert_totals_match_duties(&single.pool).await;

    for round in 1..=5 {
        let t = busy_tree().await;
        let a = another_app(&t, now).await;
        let b = another_app(&t, now).await;
        let (ra, rb) = if round % 2 == 0 {
            // A reader of the portal joins the race: it materializes on demand.
            t.set_now("2026-04-02T00:00:00+08:00");
            let (ra, rb, q2) = tokio::join!(tick(&a, now), tick(&b, now), t.statuses("HX-1", "2026-Q2"));
            assert_eq!(q2.len(), 3, "round {round}: the reader sees Q2's duties: {q2:?}");
            (ra, rb)
        } else {
            tokio::join!(tick(&a, now), tick(&b, now))
        };
        let (ra, rb) = (ra.expect("first pass"), rb.expect("second pass"));
        let got = outcome(&t.pool).await;
        assert_eq!(got.duties, reference.duties, "round {round}: duties differ from one pass alone");
        assert_eq!(got.rule_periods, reference.rule_periods, "round {round}: rule periods");
        assert_eq!(got.events, reference.events, "round {round}: events differ from one pass alone");
        assert_eq!(got.notifications, reference.notifications, "round {round}: notifications");
        assert_eq!(got.audit_unsealed, 0, "round {round}: the audit log is sealed");
        assert_eq!(
            ra.overdue_events + rb.overdue_events,
            alone.overdue_events,
            "round {round}: together they fire what one fires: {ra:?} {rb:?}"
        );
        assert_eq!(ra.due_soon_events + rb.due_soon_events, 0, "round {round}");
        assert_eq!(ra.audit_sealed + rb.audit_sealed, alone.audit_sealed, "round {round}: {ra:?} {rb:?}");
        if round % 2 == 1 {
            assert_eq!(ra.rule_periods + rb.rule_periods, alone.rule_periods, "round {round}: {ra:?} {rb:?}");
            assert_eq!(ra.duties_created + rb.duties_created, alone.duties_created, "round {round}");
        }
        assert_totals_match_duties(&t.pool).await;
        let n: i64 = sqlx::query_scalar("select count(*) from duty").fetch_one(&t.pool).await.unwrap();
        assert_eq!(n as usize, reference.duties.len(), "round {round}");
        // A third pass afterwards finds nothing left to do.
        let again = tick(&a, now).await.expect("third pass");
        assert_eq!(again, TickReport::default(), "round {round}");
    }
}

/// A member who holds two overlapping terms on one organisation (an import can make
/// them) owes one duty per period of a per-member rule, and the pass that creates a new
/// period's duties does not stumble on the pair.
#[tokio::test]
async fn a_member_with_overlapping_terms_owes_one_duty_per_period() {
    let t = busy_tree().await;
    let mem = user_id(&t.pool, "mem-hx1").await;
    sqlx::query(
        "insert into role_assignment (person_id, org_id, role, starts_on, acting, created_at)
         select person_id, org_id, role, '2026-06-01', acting, created_at from role_assignment
         where role = 'member' and person_id = (select person_id from app_user where id = $1)",
    )
    .bind(mem)
    .execute(&t.pool)
    .await
    .unwrap();
    // The new year: the yearly per-member rules get their first duties made by this pass.
    let now = instant("2027-01-02T09:00:00+08:00");
    let report = tick(&another_app(&t, now).await, now).await.expect("the pass creates 2027 despite the pair");
    assert!(report.duties_created > 0, "{report:?}");
    let per_period: Vec<(String, String, i64)> = sqlx::query_as(
        "select r.code, d.period_key, count(*) from duty d join rule r on r.id = d.rule_id
         where d.person_id = (select person_id from app_user where id = $1)
         group by 1, 2 order by 1, 2",
    )
    .bind(mem)
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert!(per_period.iter().any(|(_, p, _)| p == "2027"), "the member owes 2027's duties: {per_period:?}");
    assert!(per_period.iter().all(|(_, _, n)| *n == 1), "one duty per rule and period: {per_period:?}");
    assert_totals_match_duties(&t.pool).await;
}

// ---------------------------------------------------------------------------------------
// When reminders fire, and for whom
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn due_soon_fires_once_when_the_window_opens_and_overdue_once_at_the_deadline_to_the_right_people() {
    let t = TestApp::spawn_at("2026-02-10T09:00:00+08:00").await;
    t.company_tree().await;
    let (sec1, _) = holder(&t, "sec1", "HX-1", "secretary").await;
    let (sec2, _) = holder(&t, "sec2", "HX-2", "secretary").await;
    let (psec, _) = holder(&t, "psec", "HGS", "secretary").await;
    let (coord, _) = holder(&t, "coord", "HGS", "coordinator").await;
    let (mem, _) = holder(&t, "mem", "HX-1", "member").await;
    t.install("ideology-company", "2026-01-01", None).await;
    t.record("HX-2", "A7", "2026-02-09").await; // fulfilled: never reminded

    let r = tick_at(&t, "2026-03-24T23:59:59+08:00").await;
    assert_eq!((r.due_soon_events, r.overdue_events), (0, 0), "{r:?}");
    assert!(events(&t.pool).await.is_empty());

    // The quarterly window (7 days) opens at 2026-03-25 00:00 local.
    let r = tick_at(&t, "2026-03-25T00:00:00+08:00").await;
    let q1_pending =
        pairs(&[("HGS", "A3"), ("HX-1", "A7"), ("HX-1", "A8"), ("HX-1", "A11"), ("HX-2", "A8"), ("HX-2", "A11")]);
    assert_eq!(fired(&t.pool, "due_soon", "2026-Q1").await, q1_pending);
    assert_eq!(r.due_soon_events, 6, "{r:?}");
    assert_eq!(r.overdue_events, 0, "{r:?}");
    assert_eq!(events(&t.pool).await.len(), 6, "nothing else fired");

    for again in ["2026-03-25T00:00:00+08:00", "2026-03-28T12:00:00+08:00", "2026-03-31T23:59:59+08:00"] {
        let r = tick_at(&t, again).await;
        assert_eq!((r.due_soon_events, r.overdue_events), (0, 0), "rerun at {again}: {r:?}");
        assert_eq!(events(&t.pool).await.len(), 6, "rerun at {again}");
    }

    assert_eq!(
        inbox(&t.pool, sec1).await,
        quads("due_soon", "2026-Q1", &[("HX-1", "A7"), ("HX-1", "A8"), ("HX-1", "A11")])
    );
    assert_eq!(inbox(&t.pool, sec2).await, quads("due_soon", "2026-Q1", &[("HX-2", "A8"), ("HX-2", "A11")]));
    assert_eq!(
        inbox(&t.pool, psec).await,
        quads("due_soon", "2026-Q1", &[("HGS", "A3")]),
        "due_soon goes to the org's own people"
    );
    assert!(inbox(&t.pool, coord).await.is_empty(), "a coordinator answers for no rule here");
    assert!(inbox(&t.pool, mem).await.is_empty());

    // The deadline: 2026-04-01 00:00 local.
    let r = tick_at(&t, "2026-04-01T00:00:00+08:00").await;
    assert_eq!(r.overdue_events, 6, "{r:?}");
    assert_eq!(r.due_soon_events, 0, "{r:?}");
    assert_eq!(fired(&t.pool, "overdue", "2026-Q1").await, q1_pending);
    let r = tick_at(&t, "2026-04-01T00:00:00+08:00").await;
    assert_eq!((r.due_soon_events, r.overdue_events), (0, 0), "rerun: {r:?}");
    let r = tick_at(&t, "2026-04-02T08:00:00+08:00").await;
    assert_eq!((r.due_soon_events, r.overdue_events), (0, 0), "next day: {r:?}");
    assert_eq!(events(&t.pool).await.len(), 12);

    let mut want = quads("due_soon", "2026-Q1", &[("HX-1", "A7"), ("HX-1", "A8"), ("HX-1", "A11")]);
    want.extend(quads("overdue", "2026-Q1", &[("HX-1", "A7"), ("HX-1", "A8"), ("HX-1", "A11")]));
    assert_eq!(inbox(&t.pool, sec1).await, want, "the branch secretary");
    let children = [("HX-1", "A7"), ("HX-1", "A8"), ("HX-1", "A11"), ("HX-2", "A8"), ("HX-2", "A11")];
    let mut want = quads("due_soon", "2026-Q1", &[("HGS", "A3")]);
    want.extend(quads("overdue", "2026-Q1", &[("HGS", "A3")]));
    want.extend(quads("overdue", "2026-Q1", &children));
    assert_eq!(inbox(&t.pool, psec).await, want, "the parent's secretary hears of the children's overdue duties");
    assert_eq!(inbox(&t.pool, coord).await, quads("overdue", "2026-Q1", &children), "the parent's coordinator too");
    assert!(inbox(&t.pool, mem).await.is_empty(), "a member answers for no organisation duty");

    // A per-member duty reminds the member it binds, and only them.
    let before = inbox(&t.pool, sec1).await;
    tick_at(&t, "2026-12-02T00:00:00+08:00").await;
    assert_eq!(inbox(&t.pool, mem).await, quads("due_soon", "2026", &[("HX-1", "A13")]));
    let new_for_sec1: BTreeSet<_> = inbox(&t.pool, sec1).await.difference(&before).cloned().collect();
    assert!(!new_for_sec1.iter().any(|(_, _, rule, _)| rule == "A13"), "{new_for_sec1:?}");
    assert!(new_for_sec1.contains(&("due_soon".into(), "HX-1".into(), "A6".into(), "2026".into())), "{new_for_sec1:?}");
}

// ---------------------------------------------------------------------------------------
// Duties created after a threshold
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_template_installed_inside_the_lead_window_sends_no_reminder_for_that_period_but_later_thresholds_fire() {
    let t = TestApp::spawn_at("2026-03-28T10:00:00+08:00").await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    let r = tick_at(&t, "2026-03-28T10:00:00+08:00").await;
    assert_eq!((r.due_soon_events, r.overdue_events), (0, 0), "{r:?}");
    assert!(events(&t.pool).await.is_empty(), "Q1's window had opened before its duties existed");

    // They existed before the deadline, so the deadline itself is announced.
    let r = tick_at(&t, "2026-04-01T00:00:00+08:00").await;
    assert_eq!(r.due_soon_events, 0, "{r:?}");
    let q1 = pairs(&[
        ("HGS", "A3"),
        ("HX-1", "A7"),
        ("HX-1", "A8"),
        ("HX-1", "A11"),
        ("HX-2", "A7"),
        ("HX-2", "A8"),
        ("HX-2", "A11"),
    ]);
    assert_eq!(fired(&t.pool, "overdue", "2026-Q1").await, q1);
    assert!(fired(&t.pool, "due_soon", "2026-Q1").await.is_empty());

    // Q2's duties were created with Q2, so its window and deadline both fire.
    tick_at(&t, "2026-06-24T00:00:00+08:00").await;
    assert_eq!(fired(&t.pool, "due_soon", "2026-Q2").await, q1, "same (org, rule) pairs in Q2");
    tick_at(&t, "2026-07-01T00:00:00+08:00").await;
    assert_eq!(fired(&t.pool, "overdue", "2026-Q2").await, q1);
    assert!(fired(&t.pool, "due_soon", "2026-Q1").await.is_empty(), "still no reminder for Q1, ever");
}

#[tokio::test]
async fn a_template_installed_after_a_deadline_fires_nothing_for_that_period_but_the_next_periods_fire() {
    let t = TestApp::spawn_at("2026-04-02T10:00:00+08:00").await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    let q1: Vec<_> = t.statuses("HX-1", "2026-Q1").await;
    assert_eq!(q1.len(), 3, "Q1's duties exist: {q1:?}");
    assert!(q1.iter().all(|(_, s)| s == "overdue"), "{q1:?}");

    let r = tick_at(&t, "2026-04-02T10:00:00+08:00").await;
    assert_eq!((r.due_soon_events, r.overdue_events), (0, 0), "{r:?}");
    assert!(events(&t.pool).await.is_empty());

    let r = tick_at(&t, "2026-06-24T00:00:00+08:00").await;
    let q2 = pairs(&[
        ("HGS", "A3"),
        ("HX-1", "A7"),
        ("HX-1", "A8"),
        ("HX-1", "A11"),
        ("HX-2", "A7"),
        ("HX-2", "A8"),
        ("HX-2", "A11"),
    ]);
    assert_eq!(fired(&t.pool, "due_soon", "2026-Q2").await, q2);
    assert_eq!(fired(&t.pool, "due_soon", "2026-H1").await, pairs(&[("HGS", "A2")]), "H1's window opened 06-17");
    assert_eq!(r.due_soon_events, 8, "{r:?}");
    tick_at(&t, "2026-07-01T00:00:00+08:00").await;
    assert_eq!(fired(&t.pool, "overdue", "2026-Q2").await, q2);
    let q1_events: Vec<_> = events(&t.pool).await.into_iter().filter(|e| e.4 == "2026-Q1").collect();
    assert!(q1_events.is_empty(), "Q1 was past its deadline when its duties were created: {q1_events:?}");
}

#[tokio::test]
async fn an_organisation_added_after_a_threshold_is_not_told_of_it_but_of_the_next_ones() {
    let t = TestApp::spawn_at("2026-02-10T09:00:00+08:00").await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    tick_at(&t, "2026-03-25T00:00:00+08:00").await;
    assert_eq!(fired(&t.pool, "due_soon", "2026-Q1").await.len(), 7);

    // HX-3 is entered on 03-28, inside the window: its Q1 duties get no reminder...
    t.set_now("2026-03-28T10:00:00+08:00");
    t.org("HX-3", "branch", Some("HGS"), "2020-01-01").await;
    let r = tick_at(&t, "2026-03-28T10:00:00+08:00").await;
    assert_eq!((r.due_soon_events, r.overdue_events), (0, 0), "{r:?}");
    // ...but they existed at the deadline, which is announced.
    tick_at(&t, "2026-04-01T00:00:00+08:00").await;
    let overdue = fired(&t.pool, "overdue", "2026-Q1").await;
    for rule in ["A7", "A8", "A11"] {
        assert!(overdue.contains(&("HX-3".into(), rule.into())), "{overdue:?}");
    }
    assert!(!fired(&t.pool, "due_soon", "2026-Q1").await.iter().any(|(o, _)| o == "HX-3"));

    // HX-4 is entered after the deadline: nothing for Q1, ever; Q2 as everyone.
    t.set_now("2026-04-03T10:00:00+08:00");
    t.org("HX-4", "branch", Some("HGS"), "2020-01-01").await;
    let r = tick_at(&t, "2026-04-03T10:00:00+08:00").await;
    assert_eq!((r.due_soon_events, r.overdue_events), (0, 0), "{r:?}");
    tick_at(&t, "2026-06-24T00:00:00+08:00").await;
    tick_at(&t, "2026-07-01T00:00:00+08:00").await;
    let hx4: Vec<EventKey> = events(&t.pool).await.into_iter().filter(|e| e.1 == "HX-4").collect();
    let want: Vec<EventKey> = ["due_soon", "overdue"]
        .iter()
        .flat_map(|k| {
            ["A11", "A7", "A8"]
                .iter()
                .map(move |r| (k.to_string(), "HX-4".to_owned(), r.to_string(), None, "2026-Q2".to_owned()))
        })
        .collect();
    assert_eq!(hx4, want);
}

// ---------------------------------------------------------------------------------------
// Records returned after a threshold
// ---------------------------------------------------------------------------------------

/// A company tree with a secretary on HX-1 (who files) and on HGS (who reviews), and a
/// coordinator on HGS; template A from 2026-01-01, at 2026-02-10.
async fn reviewed_tree() -> (TestApp, [i64; 3], [String; 2]) {
    let t = TestApp::spawn_at("2026-02-10T09:00:00+08:00").await;
    t.company_tree().await;
    let (sec1, sec1_token) = holder(&t, "sec1", "HX-1", "secretary").await;
    let (psec, psec_token) = holder(&t, "psec", "HGS", "secretary").await;
    let (coord, _) = holder(&t, "coord", "HGS", "coordinator").await;
    t.install("ideology-company", "2026-01-01", None).await;
    (t, [sec1, psec, coord], [sec1_token, psec_token])
}

async fn file_a8(t: &TestApp, token: &str, occurred_on: &str) -> String {
    let (st, body) = t
        .call(
            "POST",
            "/api/v1/orgs/HX-1/records",
            token,
            Some(json!({"rule": "A8", "occurred_on": occurred_on, "title": "季度汇报", "body": "…", "attendees": []})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["state"], "submitted");
    body["id"].as_str().unwrap().to_owned()
}

async fn review(t: &TestApp, token: &str, id: &str, decision: &str) {
    let (st, body) = t
        .call(
            "POST",
            &format!("/api/v1/records/{id}/review"),
            token,
            Some(json!({"decision": decision, "comment": "请补充"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{decision}: {body}");
}

async fn resubmit(t: &TestApp, token: &str, id: &str) {
    let (st, body) = t.call("POST", &format!("/api/v1/records/{id}/submit"), token, Some(json!({}))).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "submitted");
}

async fn hx1_a8_events(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as(
        "select e.kind, (select count(*) from notification n where n.event_id = e.id)
         from notification_event e join duty d on d.id = e.duty_id join org o on o.id = d.org_id
         join rule r on r.id = d.rule_id
         where o.code = 'HX-1' and r.code = 'A8' and d.period_key = '2026-Q1' order by e.kind",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_record_returned_after_the_deadline_fires_overdue_once_at_the_return_and_never_again() {
    let (t, [sec1, psec, coord], [sec1_token, psec_token]) = reviewed_tree().await;
    t.set_now("2026-03-20T10:00:00+08:00");
    let id = file_a8(&t, &sec1_token, "2026-03-19").await;

    tick_at(&t, "2026-03-25T00:00:00+08:00").await;
    tick_at(&t, "2026-04-01T00:00:00+08:00").await;
    assert!(hx1_a8_events(&t.pool).await.is_empty(), "submitted in time: neither reminded nor overdue");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A8").await, "submitted");

    t.set_now("2026-04-03T10:00:00+08:00");
    review(&t, &psec_token, &id, "return").await;
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A8").await, "overdue");
    assert_eq!(
        hx1_a8_events(&t.pool).await,
        [("overdue".to_owned(), 3)],
        "the org's secretary, the parent's secretary and coordinator"
    );
    let told = ("overdue".to_owned(), "HX-1".to_owned(), "A8".to_owned(), "2026-Q1".to_owned());
    for user in [sec1, psec, coord] {
        assert!(inbox(&t.pool, user).await.contains(&told), "user {user}");
    }
    let r = tick_at(&t, "2026-04-03T10:00:00+08:00").await;
    assert_eq!((r.due_soon_events, r.overdue_events), (0, 0), "{r:?}");

    // Resubmitted and returned again: no second event, no second notification.
    t.set_now("2026-04-05T10:00:00+08:00");
    resubmit(&t, &sec1_token, &id).await;
    t.set_now("2026-04-06T10:00:00+08:00");
    review(&t, &psec_token, &id, "return").await;
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A8").await, "overdue");
    let r = tick_at(&t, "2026-04-06T10:00:00+08:00").await;
    assert_eq!((r.due_soon_events, r.overdue_events), (0, 0), "{r:?}");
    assert_eq!(hx1_a8_events(&t.pool).await, [("overdue".to_owned(), 3)]);
    let a8: Vec<_> = inbox(&t.pool, sec1).await.into_iter().filter(|(_, _, rule, _)| rule == "A8").collect();
    assert_eq!(a8, [told], "sec1 was told of HX-1's A8 once");
}

#[tokio::test]
async fn a_record_returned_inside_the_lead_window_fires_due_soon_once_and_overdue_later() {
    let (t, [sec1, _, coord], [sec1_token, psec_token]) = reviewed_tree().await;
    t.set_now("2026-03-20T10:00:00+08:00");
    let id = file_a8(&t, &sec1_token, "2026-03-19").await;
    tick_at(&t, "2026-03-25T00:00:00+08:00").await;
    assert!(hx1_a8_events(&t.pool).await.is_empty());

    t.set_now("2026-03-27T10:00:00+08:00");
    review(&t, &psec_token, &id, "return").await;
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A8").await, "due_soon");
    assert_eq!(hx1_a8_events(&t.pool).await, [("due_soon".to_owned(), 1)], "only the org's secretary");
    t.set_now("2026-03-28T10:00:00+08:00");
    resubmit(&t, &sec1_token, &id).await;
    t.set_now("2026-03-29T10:00:00+08:00");
    review(&t, &psec_token, &id, "return").await;
    assert_eq!(hx1_a8_events(&t.pool).await, [("due_soon".to_owned(), 1)], "once, ever");

    tick_at(&t, "2026-04-01T00:00:00+08:00").await;
    assert_eq!(hx1_a8_events(&t.pool).await, [("due_soon".to_owned(), 1), ("overdue".to_owned(), 3)]);
    let a8 = |kind: &str| (kind.to_owned(), "HX-1".to_owned(), "A8".to_owned(), "2026-Q1".to_owned());
    let sec1_inbox = inbox(&t.pool, sec1).await;
    assert!(sec1_inbox.contains(&a8("due_soon")) && sec1_inbox.contains(&a8("overdue")), "{sec1_inbox:?}");
    assert!(inbox(&t.pool, coord).await.contains(&a8("overdue")));
}

#[tokio::test]
async fn reopening_an_organisation_after_the_deadline_tells_of_its_now_overdue_duties_once() {
    let (t, [sec1, psec, _], _) = reviewed_tree().await;
    // HX-1 is closed on 03-20: its Q1 duties are cancelled, so neither window nor deadline
    // concerns them.
    t.set_now("2026-03-20T10:00:00+08:00");
    let (st, body) = t.patch("/api/v1/orgs/HX-1", json!({"active_until": "2026-03-20"})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    tick_at(&t, "2026-03-25T00:00:00+08:00").await;
    tick_at(&t, "2026-04-01T00:00:00+08:00").await;
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "cancelled");
    assert!(events(&t.pool).await.iter().all(|e| e.1 != "HX-1"), "nothing for a cancelled duty");

    // Reopened after the deadline: the same duties are overdue now, which is news.
    t.set_now("2026-04-03T10:00:00+08:00");
    let (st, body) = t.patch("/api/v1/orgs/HX-1", json!({"active_until": null})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(t.status_of("HX-1", "2026-Q1", "A7").await, "overdue");
    tick_at(&t, "2026-04-03T10:00:00+08:00").await;
    tick_at(&t, "2026-04-04T10:00:00+08:00").await;
    assert_eq!(
        fired(&t.pool, "overdue", "2026-Q1").await.into_iter().filter(|(org, _)| org == "HX-1").collect::<Vec<_>>(),
        [
            ("HX-1".to_owned(), "A11".to_owned()),
            ("HX-1".to_owned(), "A7".to_owned()),
            ("HX-1".to_owned(), "A8".to_owned())
        ],
        "a duty that enters overdue is announced, once"
    );
    let told = ("overdue".to_owned(), "HX-1".to_owned(), "A7".to_owned(), "2026-Q1".to_owned());
    assert!(inbox(&t.pool, sec1).await.contains(&told));
    assert!(inbox(&t.pool, psec).await.contains(&told));
}

// ---------------------------------------------------------------------------------------
// Idle passes
// ---------------------------------------------------------------------------------------

async fn table_counts(pool: &PgPool) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (name, sql) in [
        ("duty", "select count(*) from duty"),
        ("duty_total", "select coalesce(sum(n), 0)::bigint from duty_total"),
        ("duty_total rows", "select count(*) from duty_total"),
        ("rule_period", "select count(*) from rule_period"),
        (
            "swept",
            "select count(*) from rule_period where due_soon_swept_at is not null or overdue_swept_at is not null",
        ),
        ("notification_event", "select count(*) from notification_event"),
        ("notification", "select count(*) from notification"),
        ("audit_log", "select count(*) from audit_log"),
        ("audit sealed", "select count(*) from audit_log where seal_no is not null"),
    ] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await.unwrap();
        out.push((name.to_owned(), n));
    }
    out
}

#[tokio::test]
async fn an_idle_pass_creates_nothing_and_fires_nothing() {
    let t = TestApp::spawn_at("2026-02-10T09:00:00+08:00").await;
    t.company_tree().await;
    holder(&t, "sec1", "HX-1", "secretary").await;
    t.install("ideology-company", "2026-01-01", None).await;
    let busy = tick_at(&t, "2026-04-02T10:00:00+08:00").await;
    assert!(busy.rule_periods > 0 && busy.overdue_events > 0 && busy.audit_sealed > 0, "{busy:?}");
    let before = table_counts(&t.pool).await;

    for at in ["2026-04-02T10:00:00+08:00", "2026-04-02T11:00:00+08:00", "2026-04-10T09:00:00+08:00"] {
        let r = tick_at(&t, at).await;
        assert_eq!(r, TickReport::default(), "at {at}");
        // Another process, with nothing remembered, finds nothing to do either.
        let other = another_app(&t, instant(at)).await;
        let r = tick(&other, instant(at)).await.expect("tick");
        assert_eq!(r, TickReport::default(), "another process at {at}");
        assert_eq!(table_counts(&t.pool).await, before, "at {at}");
    }
}

// ---------------------------------------------------------------------------------------
// The audit chain
// ---------------------------------------------------------------------------------------

/// A portal after a handful of changes through the API and one pass that sealed them.
async fn sealed_log() -> TestApp {
    let t = TestApp::spawn_at("2026-02-10T09:00:00+08:00").await;
    t.company_tree().await;
    holder(&t, "sec1", "HX-1", "secretary").await;
    t.install("ideology-company", "2026-01-01", None).await;
    t.record("HX-1", "A7", "2026-02-09").await;
    let (st, body) = t.patch("/api/v1/orgs/HX-2", json!({"name": "第二支部"})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let written: i64 = sqlx::query_scalar("select count(*) from audit_log").fetch_one(&t.pool).await.unwrap();
    assert!(written >= 8, "every change was logged: {written}");
    let r = tick_at(&t, "2026-02-10T10:00:00+08:00").await;
    assert_eq!(r.audit_sealed, written as u64, "{r:?}");
    let v = audit::verify(&t.pool).await.unwrap();
    assert_eq!(v, audit::Verification { sealed: written as u64, unsealed: 0, problem: None });
    t
}

/// Run SQL as the superuser with the append-only trigger off, as an intruder would.
async fn tamper(pool: &PgPool, sql: &'static str) -> u64 {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("alter table audit_log disable trigger audit_log_no_update").execute(&mut *conn).await.unwrap();
    sqlx::query(sql).execute(&mut *conn).await.unwrap().rows_affected()
}

async fn problem(pool: &PgPool) -> String {
    let v = audit::verify(pool).await.unwrap();
    match v.problem {
        Some(p) => p,
        None => panic!("the tampering went unnoticed: {v:?}"),
    }
}

#[tokio::test]
async fn the_audit_trigger_refuses_changes_to_sealed_entries() {
    let t = sealed_log().await;
    let err = sqlx::query("update audit_log set detail = '{}' where seal_no = 1").execute(&t.pool).await.unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("delete from audit_log where seal_no = 1").execute(&t.pool).await.unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert_eq!(audit::verify(&t.pool).await.unwrap().problem, None);
}

#[tokio::test]
async fn changing_a_sealed_entrys_detail_breaks_the_chain() {
    let t = sealed_log().await;
    let n = tamper(&t.pool, "update audit_log set detail = detail || '{\"forged\": true}' where seal_no = 3").await;
    assert_eq!(n, 1);
    let p = problem(&t.pool).await;
    assert!(p.contains("entry 3 ") && p.contains("changed"), "{p}");
    let v = audit::verify(&t.pool).await.unwrap();
    assert_eq!(v.sealed, 2, "two good entries before the forged one: {v:?}");
}

#[tokio::test]
async fn deleting_a_sealed_entry_from_the_middle_breaks_the_chain() {
    let t = sealed_log().await;
    assert_eq!(tamper(&t.pool, "delete from audit_log where seal_no = 2").await, 1);
    let p = problem(&t.pool).await;
    assert!(p.contains("entry 2") && p.contains("missing"), "{p}");
}

#[tokio::test]
async fn deleting_the_last_sealed_entry_breaks_the_chain() {
    let t = sealed_log().await;
    assert_eq!(tamper(&t.pool, "delete from audit_log where seal_no = (select max(seal_no) from audit_log)").await, 1);
    let p = problem(&t.pool).await;
    assert!(p.contains("removed"), "{p}");
}

#[tokio::test]
async fn swapping_the_details_of_two_sealed_entries_breaks_the_chain() {
    let t = sealed_log().await;
    let (d2, d3): (String, String) = sqlx::query_as(
        "select (select detail::text from audit_log where seal_no = 2), (select detail::text from audit_log where seal_no = 3)",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_ne!(d2, d3, "the two entries must differ for the swap to mean anything");
    let n = tamper(
        &t.pool,
        "update audit_log a set detail = b.detail from audit_log b
         where (a.seal_no = 2 and b.seal_no = 3) or (a.seal_no = 3 and b.seal_no = 2)",
    )
    .await;
    assert_eq!(n, 2);
    let p = problem(&t.pool).await;
    assert!(p.contains("entry 2 ") && p.contains("changed"), "{p}");
}
