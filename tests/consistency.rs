//! The database and the domain agree: `duty_class()` with `Settled::from_counts`, the
//! `owed_duty` view with `liability::owes`, and after any sequence of API operations the
//! stored counts, per-subtree totals and the set of duties with what they are derived from.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use common::{TestApp, instant, url_for};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use zerenzhi::domain::liability::{OrgFacts, VersionFacts, member_bound, owes};
use zerenzhi::domain::period::{Cadence, Period};
use zerenzhi::domain::status::{DutyCounts, Settled, closed_before_period_ends};
use zerenzhi::domain::time::local_date;

/// A duty's identity: (organisation, rule, person, period key).
type Identity = (i64, i64, Option<i64>, String);
/// A record as the recount reads it: identity fields, state, submitted_at.
type RecordRow = (i64, i64, Option<i64>, String, String, Option<DateTime<Utc>>);

fn day(s: &str) -> NaiveDate {
    s.parse().expect("a date")
}

fn shanghai() -> chrono_tz::Tz {
    "Asia/Shanghai".parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// duty_class() and Settled::from_counts
// ---------------------------------------------------------------------------------------

/// Consistent stored counts: `nth_accepted_at` is set exactly when `accepted >= required`
/// (the table's check), and often lies on or next to `due_at`.
fn duty_counts() -> impl Strategy<Value = DutyCounts> {
    let offset = prop_oneof![Just(0i64), Just(-1), Just(1), Just(-86_400), Just(86_400), -40_000_000i64..40_000_000,];
    (any::<bool>(), 1u32..=4, 0u32..=6, 0u32..=4, any::<bool>(), offset, 0i64..2_000).prop_map(
        |(waived, required, accepted, pending, cancelled, offset, due_day)| {
            let due_at = instant("2025-01-01T00:00:00+08:00") + Duration::days(due_day);
            DutyCounts {
                waived,
                required,
                accepted,
                nth_accepted_at: (accepted >= required).then(|| due_at + Duration::seconds(offset)),
                cancelled,
                pending,
                due_at,
            }
        },
    )
}

#[test]
fn the_database_duty_class_agrees_with_settled_from_counts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conn = rt.block_on(async {
        let db = common::fresh_database().await;
        PgConnection::connect(&url_for(&db)).await.expect("connect")
    });
    let conn = RefCell::new(conn);
    let seen = RefCell::new(BTreeSet::new());
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() });
    runner
        .run(&duty_counts(), |c| {
            let db: String = rt
                .block_on(
                    sqlx::query_scalar("select duty_class($1, $2, $3, $4, $5, $6, $7)")
                        .bind(c.waived)
                        .bind(c.required as i32)
                        .bind(c.accepted as i32)
                        .bind(c.nth_accepted_at)
                        .bind(c.due_at)
                        .bind(c.cancelled)
                        .bind(c.pending as i32)
                        .fetch_one(&mut *conn.borrow_mut()),
                )
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let rust = Settled::from_counts(&c);
            prop_assert_eq!(db.as_str(), rust.as_str(), "{:?}", c);
            seen.borrow_mut().insert(rust.as_str());
            Ok(())
        })
        .unwrap();
    assert_eq!(seen.borrow().len(), Settled::ALL.len(), "every class came up: {:?}", seen.borrow());
}

// ---------------------------------------------------------------------------------------
// owed_duty and liability::owes
// ---------------------------------------------------------------------------------------

/// A hand-picked organisation: code, kind, parent, first day, last day, whether it lies
/// under HGS (the root template A is installed for).
struct Picked {
    code: &'static str,
    kind: &'static str,
    parent: Option<&'static str>,
    from: &'static str,
    until: Option<&'static str>,
    under_hgs: bool,
}

const PICKED: &[Picked] = &[
    Picked { code: "HJT", kind: "group_committee", parent: None, from: "2015-01-01", until: None, under_hgs: false },
    Picked { code: "HGS", kind: "committee", parent: Some("HJT"), from: "2016-05-01", until: None, under_hgs: true },
    Picked { code: "HX-1", kind: "branch", parent: Some("HGS"), from: "2017-01-01", until: None, under_hgs: true },
    // founded in the middle of Q2 and of H1 and of the year
    Picked { code: "HX-MID", kind: "branch", parent: Some("HGS"), from: "2026-04-15", until: None, under_hgs: true },
    // founded on the first day of Q2
    Picked { code: "HX-Q2", kind: "branch", parent: Some("HGS"), from: "2026-04-01", until: None, under_hgs: true },
    // closed on the first day of Q3 and H2: still owes them (cancelled)
    Picked {
        code: "HX-FIRST",
        kind: "branch",
        parent: Some("HGS"),
        from: "2017-01-01",
        until: Some("2026-07-01"),
        under_hgs: true,
    },
    // closed on the last day of Q2 and H1: owes them in full, and nothing after
    Picked {
        code: "HX-LAST",
        kind: "branch",
        parent: Some("HGS"),
        from: "2017-01-01",
        until: Some("2026-06-30"),
        under_hgs: true,
    },
    // closed in the middle of Q1
    Picked {
        code: "HX-EARLY",
        kind: "branch",
        parent: Some("HGS"),
        from: "2017-01-01",
        until: Some("2026-03-15"),
        under_hgs: true,
    },
    // another kind inside the subtree
    Picked { code: "HO", kind: "office", parent: Some("HGS"), from: "2017-01-01", until: None, under_hgs: true },
    Picked { code: "HS", kind: "school_branch", parent: Some("HGS"), from: "2017-01-01", until: None, under_hgs: true },
    // outside the subtree template A is installed for
    Picked { code: "HGS2", kind: "committee", parent: Some("HJT"), from: "2016-01-01", until: None, under_hgs: false },
    Picked { code: "HY-1", kind: "branch", parent: Some("HGS2"), from: "2017-01-01", until: None, under_hgs: false },
];

/// Leadership members of HX-1: login, first day, last day.
const MEMBERS: &[(&str, &str, Option<&str>)] = &[
    ("m-old", "2025-01-01", None),
    ("m-new", "2026-05-01", None),
    ("m-gone", "2024-01-01", Some("2025-12-31")),
    ("m-edge", "2025-06-01", Some("2026-01-01")),
];

#[tokio::test]
async fn owed_duty_agrees_with_liability_owes_for_hand_picked_organisations() {
    let t = TestApp::spawn_at("2026-07-08T10:00:00+08:00").await;
    for p in PICKED {
        t.org(p.code, p.kind, p.parent, p.from).await;
    }
    for (login, from, until) in MEMBERS {
        t.user(login, false).await;
        let (st, body) = t
            .post("/api/v1/orgs/HX-1/roles", json!({"login": login, "role": "member", "from": from, "until": until}))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
    }
    t.install("ideology-company", "2025-11-20", Some("HGS")).await;
    t.install("ideology-branch-company", "2026-02-10", None).await;
    t.install("ideology-school", "2026-01-01", Some("HGS")).await;
    for p in PICKED {
        if let Some(until) = p.until {
            let (st, body) = t.patch(&format!("/api/v1/orgs/{}", p.code), json!({"active_until": until})).await;
            assert_eq!(st, StatusCode::OK, "{body}");
        }
    }

    let org_ids: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>("select code, id from org")
        .fetch_all(&t.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let person_ids: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>("select login, person_id from app_user")
        .fetch_all(&t.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let rules: Vec<(i64, String, String)> =
        sqlx::query_as("select id, code, binds from rule order by id").fetch_all(&t.pool).await.unwrap();
    let versions: Vec<(i64, NaiveDate, bool, Vec<String>)> = sqlx::query_as(
        "select v.rule_id, v.effective_from, v.retired,
                array(select kind from rule_version_kind k where k.version_id = v.id order by kind)
         from rule_version v order by v.rule_id, v.effective_from",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    let rule_periods: Vec<(i64, String)> =
        sqlx::query_as("select rule_id, period_key from rule_period order by 1, 2").fetch_all(&t.pool).await.unwrap();
    assert!(rule_periods.iter().any(|(_, k)| k == "2026-Q3"), "Q3 has started: {rule_periods:?}");
    assert!(!rule_periods.iter().any(|(_, k)| k == "2025-Q4"), "template A took effect inside 2025-Q4");

    // What the view says, for the picked organisations.
    let picked_ids: Vec<i64> = PICKED.iter().map(|p| org_ids[p.code]).collect();
    let view: BTreeMap<Identity, bool> = sqlx::query_as::<_, (i64, i64, Option<i64>, String, bool)>(
        "select org_id, rule_id, person_id, period_key, cancelled from owed_duty where org_id = any($1)",
    )
    .bind(&picked_ids)
    .fetch_all(&t.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(o, r, p, k, c)| ((o, r, p, k), c))
    .collect();

    // What the domain says.
    let mut domain = BTreeMap::new();
    for (rule_id, code, binds) in &rules {
        let kinds: Vec<Vec<&str>> =
            versions.iter().filter(|v| v.0 == *rule_id).map(|v| v.3.iter().map(String::as_str).collect()).collect();
        let facts: Vec<VersionFacts<'_>> = versions
            .iter()
            .filter(|v| v.0 == *rule_id)
            .zip(&kinds)
            .map(|(v, k)| VersionFacts { effective_from: v.1, retired: v.2, kinds: k })
            .collect();
        let installed_under_hgs = code.starts_with('A') || code.starts_with('C');
        for (_, key) in rule_periods.iter().filter(|(r, _)| r == rule_id) {
            let period: Period = key.parse().unwrap();
            for p in PICKED {
                let org = OrgFacts {
                    kind: p.kind,
                    active_from: day(p.from),
                    active_until: p.until.map(day),
                    in_rule_subtree: !installed_under_hgs || p.under_hgs,
                };
                if !owes(&org, &facts, period) {
                    continue;
                }
                let cancelled = closed_before_period_ends(org.active_until, period);
                if binds == "each_member" {
                    if p.code != "HX-1" {
                        continue;
                    }
                    for (login, from, until) in MEMBERS {
                        if member_bound(day(from), until.map(day), period) {
                            domain
                                .insert((org_ids[p.code], *rule_id, Some(person_ids[*login]), key.clone()), cancelled);
                        }
                    }
                } else {
                    domain.insert((org_ids[p.code], *rule_id, None, key.clone()), cancelled);
                }
            }
        }
    }

    let name_of = |(o, r, p, k): &Identity| {
        let org = org_ids.iter().find(|(_, id)| *id == o).unwrap().0.clone();
        let rule = rules.iter().find(|x| x.0 == *r).unwrap().1.clone();
        let person = p.map(|p| person_ids.iter().find(|(_, id)| **id == p).unwrap().0.clone());
        format!("{org} {rule} {person:?} {k}")
    };
    let only_view: Vec<String> = view.keys().filter(|k| !domain.contains_key(*k)).map(name_of).collect();
    let only_domain: Vec<String> = domain.keys().filter(|k| !view.contains_key(*k)).map(name_of).collect();
    assert!(
        only_view.is_empty() && only_domain.is_empty(),
        "owed only by the view: {only_view:?}; only by owes(): {only_domain:?}"
    );
    let cancelled_differs: Vec<String> =
        view.iter().filter(|(k, c)| domain.get(*k) != Some(*c)).map(|(k, _)| name_of(k)).collect();
    assert!(cancelled_differs.is_empty(), "cancelled differs: {cancelled_differs:?}");

    // A few of the hand-picked cases, spelled out.
    let owed = |org: &str, rule: &str, period: &str| -> Option<bool> {
        let rule_id = rules.iter().find(|r| r.1 == rule).unwrap().0;
        view.get(&(org_ids[org], rule_id, None, period.to_owned())).copied()
    };
    assert_eq!(owed("HX-MID", "A7", "2026-Q2"), None, "founded mid-Q2");
    assert_eq!(owed("HX-MID", "A7", "2026-Q3"), Some(false));
    assert_eq!(owed("HX-MID", "A6", "2026"), None);
    assert_eq!(owed("HX-Q2", "A7", "2026-Q2"), Some(false), "founded on Q2's first day");
    assert_eq!(owed("HX-FIRST", "A7", "2026-Q3"), Some(true), "closed on Q3's first day: owed, cancelled");
    assert_eq!(owed("HX-FIRST", "B1", "2026-H2"), Some(true));
    assert_eq!(owed("HX-LAST", "A7", "2026-Q2"), Some(false), "closed on Q2's last day: owed in full");
    assert_eq!(owed("HX-LAST", "A7", "2026-Q3"), None);
    assert_eq!(owed("HX-EARLY", "A7", "2026-Q1"), Some(true));
    assert_eq!(owed("HX-EARLY", "A6", "2026"), Some(true));
    assert_eq!(owed("HX-EARLY", "A7", "2026-Q2"), None);
    assert_eq!(owed("HO", "A7", "2026-Q3"), None, "an office owes no branch rule");
    assert_eq!(owed("HS", "C1", "2026"), Some(false));
    assert_eq!(owed("HY-1", "A7", "2026-Q3"), None, "outside the subtree of template A");
    assert_eq!(owed("HY-1", "B1", "2026-H2"), Some(false), "template B covers the whole tree");
    assert_eq!(owed("HX-1", "B1", "2026-H1"), None, "B took effect after H1 began");
    assert_eq!(owed("HGS", "A1", "2026"), Some(false));
    assert_eq!(owed("HGS2", "A1", "2026"), None);
    let a13 = rules.iter().find(|r| r.1 == "A13").unwrap().0;
    let members: BTreeSet<&str> = MEMBERS
        .iter()
        .filter(|(login, _, _)| view.contains_key(&(org_ids["HX-1"], a13, Some(person_ids[*login]), "2026".to_owned())))
        .map(|(login, _, _)| *login)
        .collect();
    assert_eq!(members, BTreeSet::from(["m-old", "m-edge"]), "members holding the role on 2026-01-01");

    // And the duties that exist are exactly those.
    let duties: BTreeSet<Identity> =
        sqlx::query_as("select org_id, rule_id, person_id, period_key from duty where org_id = any($1)")
            .bind(&picked_ids)
            .fetch_all(&t.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let want: BTreeSet<_> = domain.keys().cloned().collect();
    assert_eq!(duties, want);
}

// ---------------------------------------------------------------------------------------
// Invariants after random operations
// ---------------------------------------------------------------------------------------

/// SplitMix64: small, seedable, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        assert!(lo <= hi);
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        if xs.is_empty() { None } else { xs.get((self.next() % xs.len() as u64) as usize) }
    }
}

/// The seeds of a run: `ZRZ_SEED` if set (one seed, or `random` for one from the clock),
/// else a fixed set, so that a failure reproduces. Printed either way.
fn seeds() -> Vec<u64> {
    match std::env::var("ZRZ_SEED").as_deref() {
        Ok("random") => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
            vec![Rng(nanos).next() % 1_000_000_000]
        }
        Ok(s) => vec![s.parse().expect("ZRZ_SEED is a number or `random`")],
        // 17 closes an organisation retroactively after its duties were told overdue.
        Err(_) => vec![1, 2, 3, 17],
    }
}

/// Steps per seed: `ZRZ_STEPS`, default 150.
fn steps() -> usize {
    std::env::var("ZRZ_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(150)
}

const TEMPLATES: [(&str, &[&str]); 3] = [
    ("ideology-company", &["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9", "A10", "A11", "A12", "A13", "A14"]),
    ("ideology-branch-company", &["B1", "B2", "B3", "B4"]),
    ("ideology-school", &["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"]),
];
const KINDS: [&str; 6] = ["committee", "branch", "branch", "school_branch", "office", "committee"];
const LOGINS: [&str; 4] = ["u-a", "u-b", "u-c", "u-d"];
const END: &str = "2027-09-30T00:00:00+08:00";

/// The portal under test and what the driver knows of it.
struct World {
    t: TestApp,
    rng: Rng,
    now: DateTime<Utc>,
    orgs: Vec<String>,
    installed: Vec<&'static str>,
    next_org: u32,
    log: Vec<String>,
}

impl World {
    fn today(&self) -> NaiveDate {
        local_date(shanghai(), self.now)
    }

    fn date_between(&mut self, lo: NaiveDate, hi: NaiveDate) -> NaiveDate {
        if hi <= lo {
            return lo;
        }
        lo + Duration::days(self.rng.range(0, (hi - lo).num_days()))
    }

    async fn call(&mut self, method: &str, path: &str, body: Option<Value>, ok: &[u16]) -> (u16, Value) {
        let (st, resp) = self.t.call(method, path, &self.t.admin_token.clone(), body.clone()).await;
        let code = st.as_u16();
        self.log.push(format!("{method} {path} {} -> {code} {}", body.unwrap_or(Value::Null), short(&resp)));
        assert!(ok.contains(&code), "unexpected {code} for {method} {path}: {resp}\n{}", self.trail());
        (code, resp)
    }

    fn trail(&self) -> String {
        let from = self.log.len().saturating_sub(25);
        format!("last steps:\n  {}", self.log[from..].join("\n  "))
    }

    async fn org_row(&self, code: &str) -> (i64, NaiveDate, Option<NaiveDate>) {
        sqlx::query_as("select id, active_from, active_until from org where code = $1")
            .bind(code)
            .fetch_one(&self.t.pool)
            .await
            .unwrap()
    }

    async fn record_ids(&self, states: &[&str]) -> Vec<i64> {
        let states: Vec<String> = states.iter().map(|s| s.to_string()).collect();
        sqlx::query_scalar("select id from record where state = any($1) order by id")
            .bind(&states)
            .fetch_all(&self.t.pool)
            .await
            .unwrap()
    }

    async fn step(&mut self) -> bool {
        let roll = self.rng.range(0, 99);
        let mut materialized = false;
        match roll {
            0..=9 => self.create_org().await,
            10..=13 => self.install().await,
            14..=37 => self.file_record().await,
            38..=46 => self.review().await,
            47..=51 => self.submit().await,
            52..=54 => self.withdraw().await,
            55..=58 => self.close().await,
            59..=61 => self.reopen().await,
            62..=66 => self.assign_role().await,
            67..=68 => self.waive().await,
            69..=70 => self.change_kind().await,
            71..=84 => self.advance(),
            85..=90 => {
                let r = zerenzhi::scheduler::tick(&self.t.app, self.now).await.expect("tick");
                self.log.push(format!("tick at {}: {r:?}", self.now));
                materialized = true;
            }
            _ => {
                self.read().await;
                materialized = true;
            }
        }
        materialized
    }

    async fn create_org(&mut self) {
        let parent = self.rng.pick(&self.orgs).cloned();
        let kind = *self.rng.pick(&KINDS).unwrap();
        let today = self.today();
        let from = match self.rng.range(0, 3) {
            0 => day("2015-01-01"),
            1 => today,
            2 => Period::containing(Cadence::Quarter, today).first_day(),
            _ => self.date_between(today - Duration::days(400), today + Duration::days(20)),
        };
        self.next_org += 1;
        let code = format!("R{}", self.next_org);
        let (st, _) = self
            .call(
                "POST",
                "/api/v1/orgs",
                Some(json!({"code": code, "name": code, "kind": kind, "parent": parent, "active_from": from})),
                &[201, 400],
            )
            .await;
        if st == 201 {
            self.orgs.push(code);
        }
    }

    async fn install(&mut self) {
        let (code, _) = *self.rng.pick(&TEMPLATES).unwrap();
        let from = self.date_between(day("2025-07-01"), self.today() + Duration::days(60));
        let root = if self.rng.chance(50) { None } else { self.rng.pick(&self.orgs).cloned() };
        let expect: &[u16] = if self.installed.contains(&code) { &[409] } else { &[201] };
        let (st, _) = self
            .call(
                "POST",
                &format!("/api/v1/templates/{code}/install"),
                Some(json!({"effective_from": from, "root": root})),
                expect,
            )
            .await;
        if st == 201 {
            self.installed.push(code);
        }
    }

    async fn file_record(&mut self) {
        let Some(org) = self.rng.pick(&self.orgs).cloned() else { return };
        let (org_id, active_from, _) = self.org_row(&org).await;
        let kind: String = sqlx::query_scalar("select kind from org where id = $1")
            .bind(org_id)
            .fetch_one(&self.t.pool)
            .await
            .unwrap();
        // Mostly a rule meant for the organisation's kind; sometimes any rule (refused).
        let fits = |code: &&str| match kind.as_str() {
            "committee" => ["A1", "A2", "A3", "A4", "A5", "A12", "A13", "A14"].contains(code),
            "branch" => code.starts_with('B') || ["A6", "A7", "A8", "A9", "A10", "A11", "A12", "A13"].contains(code),
            "school_branch" => code.starts_with('C'),
            _ => false,
        };
        let any_rule = self.rng.chance(15);
        let rules: Vec<&str> = TEMPLATES
            .iter()
            .filter(|(t, _)| self.installed.contains(t))
            .flat_map(|(_, r)| r.iter().copied())
            .filter(|code| any_rule || fits(code))
            .collect();
        // Reports to the superior (reviewed) a third of the time, so that reviews happen.
        let reviewed: Vec<&str> = rules.iter().copied().filter(|c| ["A2", "A8", "B1", "C3"].contains(c)).collect();
        let pool = if !reviewed.is_empty() && self.rng.chance(35) { &reviewed } else { &rules };
        let Some(rule) = self.rng.pick(pool).copied() else { return };
        let today = self.today();
        let occurred = if self.rng.chance(50) {
            self.date_between(active_from.max(today - Duration::days(30)), today)
        } else {
            self.date_between(active_from.max(today - Duration::days(400)), today)
        };
        let person: Option<String> = if rule == "A13" {
            let people: Vec<i64> =
                sqlx::query_scalar("select person_id from role_assignment where org_id = $1 and role = 'member'")
                    .bind(org_id)
                    .fetch_all(&self.t.pool)
                    .await
                    .unwrap();
            self.rng.pick(&people).map(|p| p.to_string())
        } else {
            None
        };
        let draft = self.rng.chance(15);
        self.call(
            "POST",
            &format!("/api/v1/orgs/{org}/records"),
            Some(json!({"rule": rule, "person": person, "occurred_on": occurred, "title": "纪要", "body": "…",
                        "attendees": ["张三"], "draft": draft})),
            &[201, 400],
        )
        .await;
    }

    async fn review(&mut self) {
        let ids = self.record_ids(&["submitted"]).await;
        let Some(id) = self.rng.pick(&ids).copied() else { return };
        let decision = if self.rng.chance(60) { "accept" } else { "return" };
        self.call(
            "POST",
            &format!("/api/v1/records/{id}/review"),
            Some(json!({"decision": decision, "comment": "意见"})),
            &[200],
        )
        .await;
    }

    async fn submit(&mut self) {
        let ids = self.record_ids(&["draft", "returned"]).await;
        let Some(id) = self.rng.pick(&ids).copied() else { return };
        self.call("POST", &format!("/api/v1/records/{id}/submit"), Some(json!({})), &[200]).await;
    }

    async fn withdraw(&mut self) {
        let ids = self.record_ids(&["draft", "submitted", "accepted", "returned"]).await;
        let Some(id) = self.rng.pick(&ids).copied() else { return };
        self.call("POST", &format!("/api/v1/records/{id}/withdraw"), Some(json!({"reason": "误报"})), &[200]).await;
    }

    async fn close(&mut self) {
        let Some(org) = self.rng.pick(&self.orgs).cloned() else { return };
        let (_, from, _) = self.org_row(&org).await;
        let today = self.today();
        // Often on a period boundary (the last day of a period, or the first of the next),
        // sometimes retroactively before periods that have duties already.
        let until = match self.rng.range(0, 2) {
            0 => {
                let cadence = *self.rng.pick(&Cadence::ALL).unwrap();
                let back = self.rng.range(0, 2);
                let mut p = Period::containing(cadence, today);
                for _ in 0..back {
                    p = p.prev();
                }
                let first = p.first_day();
                if self.rng.chance(50) { first - Duration::days(1) } else { first }
            }
            _ => self.date_between(from.max(today - Duration::days(200)), today + Duration::days(90)),
        }
        .max(from);
        self.call("PATCH", &format!("/api/v1/orgs/{org}"), Some(json!({"active_until": until})), &[200, 400, 409])
            .await;
    }

    async fn reopen(&mut self) {
        let closed: Vec<String> =
            sqlx::query_scalar("select code from org where active_until is not null order by code")
                .fetch_all(&self.t.pool)
                .await
                .unwrap();
        let Some(org) = self.rng.pick(&closed).cloned() else { return };
        self.call("PATCH", &format!("/api/v1/orgs/{org}"), Some(json!({"active_until": null})), &[200, 409]).await;
    }

    async fn assign_role(&mut self) {
        let Some(org) = self.rng.pick(&self.orgs).cloned() else { return };
        let login = *self.rng.pick(&LOGINS).unwrap();
        let role = if self.rng.chance(60) { "member" } else { *self.rng.pick(&["secretary", "coordinator"]).unwrap() };
        let today = self.today();
        let from = self.date_between(day("2025-01-01"), today + Duration::days(30));
        let until = self.rng.chance(30).then(|| from + Duration::days(self.rng.range(0, 400)));
        self.call(
            "POST",
            &format!("/api/v1/orgs/{org}/roles"),
            Some(json!({"login": login, "role": role, "from": from, "until": until})),
            &[201, 409],
        )
        .await;
    }

    async fn waive(&mut self) {
        let ids: Vec<i64> = sqlx::query_scalar("select id from duty where waived_at is null order by id")
            .fetch_all(&self.t.pool)
            .await
            .unwrap();
        let Some(id) = self.rng.pick(&ids).copied() else { return };
        self.call("POST", &format!("/api/v1/duties/{id}/waive"), Some(json!({"reason": "撤并"})), &[200]).await;
    }

    async fn change_kind(&mut self) {
        let Some(org) = self.rng.pick(&self.orgs).cloned() else { return };
        let kind = *self.rng.pick(&KINDS).unwrap();
        self.call("PATCH", &format!("/api/v1/orgs/{org}"), Some(json!({"kind": kind})), &[200, 409]).await;
    }

    fn advance(&mut self) {
        let by = if self.rng.chance(45) {
            Duration::minutes(self.rng.range(1, 72 * 60))
        } else {
            Duration::hours(self.rng.range(5 * 24, 45 * 24))
        };
        self.now = (self.now + by).min(instant(END));
        self.t.clock.set(self.now);
        self.log.push(format!("clock -> {}", self.now.with_timezone(&shanghai())));
    }

    async fn read(&mut self) {
        let Some(org) = self.rng.pick(&self.orgs).cloned() else { return };
        let cadence = *self.rng.pick(&Cadence::ALL).unwrap();
        let key = Period::containing(cadence, self.today()).to_string();
        self.call("GET", &format!("/api/v1/orgs/{org}/duties?period={key}"), None, &[200]).await;
        self.call("GET", &format!("/api/v1/orgs/{org}/rollup?period={key}"), None, &[200]).await;
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 { format!("{}…", s.chars().take(160).collect::<String>()) } else { s }
}

/// (a) The per-subtree totals (`subtree_total`: the maintained descendants' totals and
/// each organisation's own duties) equal the per-ancestor recount of `duty` by class.
async fn check_totals(pool: &PgPool) -> Result<(), String> {
    let rows: Vec<(i64, i64, String, String, i64, i64)> = sqlx::query_as(
        "with want as (
            select a.org_id, d.rule_id, d.period_key, d.class, count(*) as n
            from duty d join org o on o.id = d.org_id cross join unnest(o.path) as a(org_id)
            group by 1, 2, 3, 4),
         kept as (select org_id, rule_id, period_key, class, sum(n)::bigint as n from subtree_total
                  group by 1, 2, 3, 4 having sum(n) <> 0)
         select coalesce(w.org_id, k.org_id), coalesce(w.rule_id, k.rule_id), coalesce(w.period_key, k.period_key),
                coalesce(w.class, k.class), coalesce(w.n, 0), coalesce(k.n, 0)
         from want w full join kept k
           on (w.org_id, w.rule_id, w.period_key, w.class) = (k.org_id, k.rule_id, k.period_key, k.class)
         where coalesce(w.n, 0) <> coalesce(k.n, 0)
         limit 10",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    if rows.is_empty() {
        Ok(())
    } else {
        Err(format!("duty_total differs from a recount (org, rule, period, class, recount, kept): {rows:?}"))
    }
}

/// (b) Every duty's counts equal a recount from its records, done here in Rust.
async fn check_counts(pool: &PgPool) -> Result<(), String> {
    type DutyRow = (i64, i64, i64, Option<i64>, String, i32, i32, i32, Option<DateTime<Utc>>);
    let duties: Vec<DutyRow> = sqlx::query_as(
        "select id, org_id, rule_id, person_id, period_key, required, accepted, pending, nth_accepted_at from duty",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let records: Vec<RecordRow> =
        sqlx::query_as("select org_id, rule_id, person_id, period_key, state, submitted_at from record")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut by_duty: HashMap<Identity, (i32, i32, Vec<DateTime<Utc>>)> = HashMap::new();
    for (org, rule, person, period, state, submitted_at) in records {
        let e = by_duty.entry((org, rule, person, period)).or_default();
        match state.as_str() {
            "accepted" => {
                e.0 += 1;
                e.2.push(submitted_at.expect("an accepted record was submitted"));
            }
            "submitted" => e.1 += 1,
            _ => {}
        }
    }
    let mut wrong = Vec::new();
    for (id, org, rule, person, period, required, accepted, pending, nth) in duties {
        let (acc, pend, mut times) = by_duty.remove(&(org, rule, person, period)).unwrap_or_default();
        times.sort();
        let want_nth = if acc >= required { times.get(required as usize - 1).copied() } else { None };
        if (accepted, pending, nth) != (acc, pend, want_nth) {
            wrong.push(format!(
                "duty {id}: stored ({accepted}, {pending}, {nth:?}), recounted ({acc}, {pend}, {want_nth:?})"
            ));
        }
    }
    if wrong.is_empty() { Ok(()) } else { Err(format!("counts differ from the records: {wrong:?}")) }
}

/// (c) The duties are exactly what `owed_duty` lists for materialized rule periods, plus
/// duties no longer owed that sync_orgs keeps because they carry history (counts, a
/// waiver, records or events); and each duty's stored facts are its rule period's and
/// its organisation's.
async fn check_liability(pool: &PgPool) -> Result<(), String> {
    let missing: Vec<Identity> = sqlx::query_as(
        "select od.org_id, od.rule_id, od.person_id, od.period_key
         from owed_duty od
         join rule_period rp on rp.rule_id = od.rule_id and rp.period_key = od.period_key
         where rp.materialized_at is not null
           and not exists (select 1 from duty d where d.org_id = od.org_id and d.rule_id = od.rule_id
                           and d.period_key = od.period_key and d.person_id is not distinct from od.person_id)
         limit 10",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    if !missing.is_empty() {
        return Err(format!("owed duties that do not exist (org, rule, person, period): {missing:?}"));
    }
    let unowed: Vec<(i64, i64, i64, Option<i64>, String)> = sqlx::query_as(
        "select d.id, d.org_id, d.rule_id, d.person_id, d.period_key
         from duty d
         where not exists (select 1 from owed_duty od where od.org_id = d.org_id and od.rule_id = d.rule_id
                           and od.period_key = d.period_key and od.person_id is not distinct from d.person_id)
           and d.accepted = 0 and d.pending = 0 and d.waived_at is null
           and not exists (select 1 from record r where r.org_id = d.org_id and r.rule_id = d.rule_id
                           and r.period_key = d.period_key and r.person_id is not distinct from d.person_id)
           and not exists (select 1 from notification_event e where e.duty_id = d.id)
         limit 10",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    if !unowed.is_empty() {
        return Err(format!(
            "duties that are not owed and carry no history (id, org, rule, person, period): {unowed:?}"
        ));
    }
    let differs: Vec<(i64, String, String, bool, bool)> = sqlx::query_as(
        "select d.id, o.code, d.period_key, d.cancelled, od.cancelled
         from duty d join org o on o.id = d.org_id
         join owed_duty od on od.org_id = d.org_id and od.rule_id = d.rule_id and od.period_key = d.period_key
              and od.person_id is not distinct from d.person_id
         where (d.cancelled, d.required, d.due_at) is distinct from (od.cancelled, od.required, od.due_at)
         limit 10",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    if !differs.is_empty() {
        return Err(format!("owed duties whose stored facts differ (id, org, period, cancelled, owed): {differs:?}"));
    }
    // Status table: "cancelled when the organisation's active_until is before the period's
    // last day" holds for every duty, owed or kept: its class is what that makes it. A duty
    // kept for its history that is no longer owed at all counts no more either: cancelled.
    let wrong_cancel: Vec<(i64, String, String, String, Option<NaiveDate>, String)> = sqlx::query_as(
        "select d.id, o.code, r.code, d.period_key, o.active_until, d.class
         from duty d join org o on o.id = d.org_id join rule r on r.id = d.rule_id
         join rule_period rp on rp.rule_id = d.rule_id and rp.period_key = d.period_key
         where d.class <> duty_class(d.waived_at is not null, d.required, d.accepted, d.nth_accepted_at, d.due_at,
                                     (o.active_until is not null and o.active_until < rp.period_end - 1)
                                     or not exists (select 1 from owed_duty od
                                                    where od.org_id = d.org_id and od.rule_id = d.rule_id
                                                      and od.period_key = d.period_key
                                                      and od.person_id is not distinct from d.person_id),
                                     d.pending)
            or d.required <> rp.required or d.due_at <> rp.due_at
         limit 10",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    if !wrong_cancel.is_empty() {
        return Err(format!(
            "duties whose class (or deadline) disagrees with their organisation's closing and their rule period \
             (id, org, rule, period, active_until, stored class): {wrong_cancel:?}"
        ));
    }
    Ok(())
}

/// (d) After a read or a scheduler pass at `now`, every rule period that has started
/// exists: the current period of each rule whose first version took effect by its start.
async fn check_materialized(pool: &PgPool, now: DateTime<Utc>) -> Result<(), String> {
    let today = local_date(shanghai(), now);
    let rules: Vec<(i64, String, String, NaiveDate)> = sqlx::query_as(
        "select r.id, r.code, r.cadence, min(v.effective_from) from rule r join rule_version v on v.rule_id = r.id
         group by r.id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let periods: BTreeSet<(i64, String)> =
        sqlx::query_as("select rule_id, period_key from rule_period where materialized_at is not null")
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    for (id, code, cadence, first) in rules {
        let current = Period::containing(cadence.parse().unwrap(), today);
        if current.first_day() >= first && !periods.contains(&(id, current.to_string())) {
            return Err(format!("{code} {current} has started by {today} but has no duties"));
        }
    }
    Ok(())
}

async fn check_all(w: &World, materialized: bool) -> Result<(), String> {
    check_totals(&w.t.pool).await?;
    check_counts(&w.t.pool).await?;
    check_liability(&w.t.pool).await?;
    if materialized {
        check_materialized(&w.t.pool, w.now).await?;
    }
    Ok(())
}

async fn run_seed(seed: u64, steps: usize) {
    println!("consistency: seed {seed} (rerun with ZRZ_SEED={seed})");
    let t = TestApp::spawn_at("2026-01-05T09:00:00+08:00").await;
    t.company_tree().await;
    for login in LOGINS {
        t.user(login, false).await;
    }
    let now = t.clock.now();
    let mut w = World {
        t,
        rng: Rng(seed),
        now,
        orgs: ["HJT", "HGS", "HX-1", "HX-2"].map(String::from).to_vec(),
        installed: Vec::new(),
        next_org: 0,
        log: Vec::new(),
    };
    // Start with one template so that records can be filed from the first steps.
    w.call(
        "POST",
        "/api/v1/templates/ideology-company/install",
        Some(json!({"effective_from": "2025-10-01", "root": null})),
        &[201],
    )
    .await;
    w.installed.push("ideology-company");
    for i in 0..steps {
        let materialized = w.step().await;
        if let Err(e) = check_all(&w, materialized).await {
            panic!("seed {seed}, step {i}: {e}\n{}", w.trail());
        }
    }
    let duties: i64 = sqlx::query_scalar("select count(*) from duty").fetch_one(&w.t.pool).await.unwrap();
    let records: i64 = sqlx::query_scalar("select count(*) from record").fetch_one(&w.t.pool).await.unwrap();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for line in &w.log {
        if let Some((call, rest)) = line.split_once(" -> ")
            && !line.starts_with("clock")
        {
            let what: Vec<&str> = call.split_whitespace().take(2).collect();
            let route: String = what[1]
                .split('/')
                .map(|s| {
                    if (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()))
                        || s.starts_with('R')
                        || s.starts_with('H')
                        || s.contains('?')
                    {
                        "_"
                    } else {
                        s
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            *outcomes.entry(format!("{} {route} {}", what[0], &rest[..3])).or_default() += 1;
        }
    }
    println!(
        "seed {seed}: {} orgs, {duties} duties, {records} records, ended at {}; {outcomes:?}",
        w.orgs.len(),
        w.now
    );
}

#[tokio::test]
async fn after_random_api_operations_totals_counts_and_duties_agree_with_what_they_derive_from() {
    for seed in seeds() {
        run_seed(seed, steps()).await;
    }
}

// ---------------------------------------------------------------------------------------
// Duties kept for their history
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_duty_kept_for_its_history_after_a_retroactive_close_reads_cancelled() {
    let t = TestApp::spawn_at("2026-02-10T09:00:00+08:00").await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    t.set_now("2026-04-01T00:00:00+08:00");
    let r = zerenzhi::scheduler::tick(&t.app, t.clock.now()).await.expect("tick");
    assert!(r.overdue_events >= 3, "HX-2's Q1 duties were told overdue: {r:?}");

    // HX-2 turns out to have been dissolved at the end of 2025: it owed nothing in 2026.
    t.set_now("2026-04-05T10:00:00+08:00");
    let (st, body) = t.patch("/api/v1/orgs/HX-2", json!({"active_until": "2025-12-31"})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(t.statuses("HX-2", "2026-Q2").await.is_empty(), "not owed, no history: removed");
    assert!(t.statuses("HX-2", "2026").await.is_empty());
    // The Q1 duties stay (their overdue events are history), but a closed organisation's
    // duty of a period after its last day is cancelled, never overdue.
    let q1 = t.statuses("HX-2", "2026-Q1").await;
    assert!(q1.iter().all(|(_, s)| s == "cancelled"), "HX-2 closed 2025-12-31, its 2026-Q1 duties: {q1:?}");
    let (_, rollup) = t.get("/api/v1/orgs/HGS/rollup?period=2026-Q1").await;
    let hx2 = rollup["children"].as_array().unwrap().iter().find(|c| c["code"] == "HX-2").unwrap();
    assert_eq!(hx2["counts"]["overdue"], 0, "{rollup}");
    check_liability(&t.pool).await.unwrap();
}
