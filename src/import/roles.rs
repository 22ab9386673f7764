//! The role assignments layout: `org`/组织代码, `org_name`/组织名称 (to read only),
//! `person`/人员编号, `login`/登录名, `name`/姓名 (to read only), `role`/职务,
//! `from`/起始日期, `until`/终止日期, `acting`/代理.
//!
//! An assignment is the same one when person, organisation, role, acting and first day
//! agree: then only its last day may change. Any other row is a new assignment, and must
//! not overlap one the person already holds there (as [`people::assign_role`] refuses).
//! Import never ends or deletes assignments the file does not name. Organisations and
//! people must exist first (import them before their roles).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

use super::{Column, Columns, Phase, Problem, Progress, Summary, bad_date, date_cell, valid_code};
use crate::db::duties;
use crate::domain::access::Role;
use crate::import::read::{Cell, Table};

pub(super) static COLUMNS: [Column; 9] = [
    Column::new("org", "组织代码", true, "import.help_role_org"),
    Column::read_only("org_name", "组织名称", "import.help_read_only"),
    Column::present("person", "人员编号", "import.help_role_person"),
    Column::new("login", "登录名", false, "import.help_role_login"),
    Column::read_only("name", "姓名", "import.help_read_only"),
    Column::new("role", "职务", true, "import.help_role_role"),
    Column::new("from", "起始日期", true, "import.help_role_from"),
    Column::new("until", "终止日期", false, "import.help_role_until"),
    Column::new("acting", "代理", false, "import.help_role_acting"),
];
const ORG: usize = 0;
const PERSON: usize = 2;
const LOGIN: usize = 3;
const ROLE: usize = 5;
const FROM: usize = 6;
const UNTIL: usize = 7;
const ACTING: usize = 8;

const CHUNK: usize = 10_000;

/// The Chinese name of a role, as files write it.
pub fn role_zh(role: Role) -> &'static str {
    match role {
        Role::Secretary => "书记",
        Role::Member => "班子成员",
        Role::Coordinator => "统筹协调",
        Role::Inspector => "督查",
    }
}

fn parse_role(s: &str) -> Option<Role> {
    let lower = s.trim().to_lowercase();
    Role::ALL.into_iter().find(|r| r.as_str() == lower || role_zh(*r) == s.trim())
}

/// 是/否, yes/no, true/false, 1/0 (and a spreadsheet's TRUE/FALSE).
fn parse_acting(cell: &Cell) -> Result<bool, String> {
    if let Cell::Bool(b) = cell {
        return Ok(*b);
    }
    match cell.text() {
        None => Ok(false),
        Some(s) => match s.to_lowercase().as_str() {
            "是" | "代理" | "yes" | "y" | "true" | "1" | "√" => Ok(true),
            "否" | "no" | "n" | "false" | "0" => Ok(false),
            _ => Err(s),
        },
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct DbAssignment {
    id: i64,
    person_id: i64,
    org_id: i64,
    role: String,
    starts_on: NaiveDate,
    ends_on: Option<NaiveDate>,
    acting: bool,
}

struct NewAssignment {
    person_id: i64,
    org_id: i64,
    role: Role,
    starts_on: NaiveDate,
    ends_on: Option<NaiveDate>,
    acting: bool,
}

#[derive(Default)]
pub(super) struct Plan {
    pub summary: Summary,
    pub problems: Vec<Problem>,
    creates: Vec<NewAssignment>,
    /// (assignment id, new last day)
    updates: Vec<(i64, Option<NaiveDate>)>,
    /// Organisations whose leadership members change (their per-member duties follow).
    member_orgs: Vec<i64>,
}

impl Plan {
    pub(super) fn refused(summary: Summary, problems: Vec<Problem>) -> Plan {
        Plan { summary, problems, ..Plan::default() }
    }
}

struct Parsed {
    row: u32,
    org: String,
    person: Option<String>,
    login: Option<String>,
    role: Role,
    from: NaiveDate,
    /// `None`: no such column (keep the last day).
    until: Option<Option<NaiveDate>>,
    acting: bool,
}

fn parse_row(row: &crate::import::read::Row, cols: &Columns, problems: &mut Vec<Problem>) -> Option<Parsed> {
    let n = row.number;
    let before = problems.len();
    let org = match cols.cell(row, ORG).text() {
        None => {
            problems.push(Problem::at(n, &COLUMNS[ORG], "import.missing", vec![]));
            None
        }
        Some(c) if !valid_code(&c) => {
            problems.push(Problem::at(n, &COLUMNS[ORG], "import.bad_code", vec![c]));
            None
        }
        c => c,
    };
    let person = match cols.cell(row, PERSON).text() {
        Some(c) if !valid_code(&c) => {
            problems.push(Problem::at(n, &COLUMNS[PERSON], "import.bad_code", vec![c]));
            None
        }
        c => c,
    };
    let login = match cols.cell(row, LOGIN).text() {
        None => None,
        Some(l) => match crate::db::users::normalize_login(&l) {
            Ok(l) => Some(l),
            Err(_) => {
                problems.push(Problem::at(n, &COLUMNS[LOGIN], "import.bad_login", vec![l]));
                None
            }
        },
    };
    if person.is_none() && login.is_none() && problems.len() == before {
        problems.push(Problem::at(n, &COLUMNS[PERSON], "import.person_key_missing", vec![]));
    }
    let role = match cols.cell(row, ROLE).text() {
        None => {
            problems.push(Problem::at(n, &COLUMNS[ROLE], "import.missing", vec![]));
            None
        }
        Some(r) => match parse_role(&r) {
            Some(role) => Some(role),
            None => {
                problems.push(Problem::at(n, &COLUMNS[ROLE], "import.role_unknown", vec![r]));
                None
            }
        },
    };
    let from = match date_cell(cols.cell(row, FROM)) {
        Ok(Some(d)) => Some(d),
        Ok(None) => {
            problems.push(Problem::at(n, &COLUMNS[FROM], "import.missing", vec![]));
            None
        }
        Err(shown) => {
            problems.push(bad_date(n, &COLUMNS[FROM], shown));
            None
        }
    };
    let until = if !cols.has(UNTIL) {
        Some(None)
    } else {
        match date_cell(cols.cell(row, UNTIL)) {
            Ok(d) => Some(d),
            Err(shown) => {
                problems.push(bad_date(n, &COLUMNS[UNTIL], shown));
                None
            }
        }
    };
    if let (Some(f), Some(Some(u))) = (from, until)
        && u < f
    {
        problems.push(Problem::at(n, &COLUMNS[UNTIL], "import.end_before_start", vec![day(u), day(f)]));
    }
    let acting = match parse_acting(cols.cell(row, ACTING)) {
        Ok(a) => Some(a),
        Err(shown) => {
            problems.push(Problem::at(n, &COLUMNS[ACTING], "import.bad_acting", vec![shown]));
            None
        }
    };
    if problems.len() != before {
        return None;
    }
    let until = if cols.has(UNTIL) { Some(until?) } else { None };
    Some(Parsed { row: n, org: org?, person, login, role: role?, from: from?, until, acting: acting? })
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(super) async fn plan(conn: &mut PgConnection, table: &Table, cols: &Columns) -> anyhow::Result<Plan> {
    let mut problems = Vec::new();
    let parsed: Vec<Parsed> = table.rows.iter().filter_map(|r| parse_row(r, cols, &mut problems)).collect();

    let org_codes: Vec<&str> = parsed.iter().map(|p| p.org.as_str()).collect();
    let person_codes: Vec<&str> = parsed.iter().filter_map(|p| p.person.as_deref()).collect();
    let logins: Vec<&str> = parsed.iter().filter_map(|p| p.login.as_deref()).collect();
    let org_ids: HashMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("select code, id from org where code = any($1)")
            .bind(&org_codes)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    let person_ids: HashMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("select code, id from person where code = any($1)")
            .bind(&person_codes)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    let login_people: HashMap<String, (i64, Option<String>)> = sqlx::query_as::<_, (String, i64, Option<String>)>(
        "select u.login, u.person_id, p.code from app_user u join person p on p.id = u.person_id where u.login = any($1)",
    )
    .bind(&logins)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(l, id, code)| (l, (id, code)))
    .collect();

    // Resolve every row to ids.
    type Key = (i64, i64, Role, bool);
    let mut rows: Vec<(&Parsed, i64, i64)> = Vec::new();
    for p in &parsed {
        let n = p.row;
        let org_id = org_ids.get(&p.org).copied();
        if org_id.is_none() {
            problems.push(Problem::at(n, &COLUMNS[ORG], "import.org_unknown", vec![p.org.clone()]));
        }
        let by_code = match &p.person {
            None => None,
            Some(c) => match person_ids.get(c) {
                Some(id) => Some(*id),
                None => {
                    problems.push(Problem::at(n, &COLUMNS[PERSON], "import.person_unknown", vec![c.clone()]));
                    continue;
                }
            },
        };
        let by_login = match &p.login {
            None => None,
            Some(l) => match login_people.get(l) {
                Some((id, code)) => Some((*id, code.clone())),
                None => {
                    problems.push(Problem::at(n, &COLUMNS[LOGIN], "import.login_unknown", vec![l.clone()]));
                    continue;
                }
            },
        };
        let person_id = match (by_code, by_login) {
            (Some(a), Some((b, code))) if a != b => {
                problems.push(Problem::at(
                    n,
                    &COLUMNS[LOGIN],
                    "import.login_other_person",
                    vec![p.login.clone().unwrap_or_default(), code.unwrap_or_else(|| "—".into())],
                ));
                continue;
            }
            (Some(a), _) => a,
            (None, Some((b, _))) => b,
            (None, None) => continue,
        };
        if let Some(org_id) = org_id {
            rows.push((p, person_id, org_id));
        }
    }

    // The assignments the people hold now, by (person, organisation, role, acting).
    let people: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let existing: Vec<DbAssignment> = sqlx::query_as(
        "select id, person_id, org_id, role, starts_on, ends_on, acting from role_assignment where person_id = any($1)",
    )
    .bind(&people)
    .fetch_all(&mut *conn)
    .await?;
    let mut groups: HashMap<Key, Vec<Interval>> = HashMap::new();
    for a in &existing {
        let Ok(role) = a.role.parse::<Role>() else { continue };
        groups.entry((a.person_id, a.org_id, role, a.acting)).or_default().push(Interval {
            start: a.starts_on,
            end: a.ends_on,
            row: None,
            id: Some(a.id),
        });
    }

    let mut plan = Plan::default();
    let mut seen: HashMap<(Key, NaiveDate), u32> = HashMap::new();
    // (row, assignment, the existing one it is, first day, last day)
    type Planned = (u32, Key, Option<i64>, NaiveDate, Option<NaiveDate>);
    let mut planned: Vec<Planned> = Vec::new();
    for (p, person_id, org_id) in &rows {
        let key: Key = (*person_id, *org_id, p.role, p.acting);
        if let Some(first) = seen.get(&(key, p.from)) {
            problems.push(Problem::row(p.row, "import.role_repeated", vec![first.to_string()]));
            continue;
        }
        seen.insert((key, p.from), p.row);
        let group = groups.entry(key).or_default();
        match group.iter_mut().find(|i| i.id.is_some() && i.start == p.from) {
            Some(i) => {
                let end = p.until.unwrap_or(i.end);
                if end.is_some_and(|e| e < p.from) {
                    problems.push(Problem::at(
                        p.row,
                        &COLUMNS[UNTIL],
                        "import.end_before_start",
                        vec![day(end.unwrap_or(p.from)), day(p.from)],
                    ));
                    continue;
                }
                i.row = Some(p.row);
                planned.push((p.row, key, i.id, p.from, end));
                i.end = end;
            }
            None => {
                let end = p.until.flatten();
                group.push(Interval { start: p.from, end, row: Some(p.row), id: None });
                planned.push((p.row, key, None, p.from, end));
            }
        }
    }

    // No two assignments of a person to the same role there may overlap: a sweep by first
    // day, keeping the assignment that reaches furthest so far.
    let mut overlapping: std::collections::HashSet<u32> = std::collections::HashSet::new();
    for group in groups.values_mut() {
        if !group.iter().any(|i| i.row.is_some()) {
            continue;
        }
        group.sort_by_key(|i| i.start);
        let mut reach: Option<usize> = None;
        for at in 0..group.len() {
            let i = &group[at];
            if let Some(r) = reach {
                let prev = &group[r];
                if prev.end.is_none_or(|e| e >= i.start) {
                    let problem = match (i.row, prev.row) {
                        (Some(row), Some(other)) => {
                            Some(Problem::row(row, "import.role_overlaps_row", vec![other.to_string()]))
                        }
                        (Some(row), None) => Some(Problem::row(row, "import.role_overlaps", vec![day(prev.start)])),
                        (None, Some(row)) => Some(Problem::row(row, "import.role_overlaps", vec![day(i.start)])),
                        (None, None) => None,
                    };
                    if let Some(p) = problem
                        && let Some(row) = p.row
                        && overlapping.insert(row)
                    {
                        problems.push(p);
                    }
                }
            }
            let ends_later = match (i.end, reach.map(|r| group[r].end)) {
                (_, None) => true,
                (None, Some(Some(_))) => true,
                (Some(a), Some(Some(b))) => a > b,
                (_, Some(None)) => false,
            };
            if ends_later {
                reach = Some(at);
            }
        }
    }

    for (row, key, id, start, end) in planned {
        if overlapping.contains(&row) {
            continue;
        }
        let (person_id, org_id, role, acting) = key;
        match id {
            None => {
                plan.summary.created += 1;
                plan.creates.push(NewAssignment { person_id, org_id, role, starts_on: start, ends_on: end, acting });
                if role == Role::Member {
                    plan.member_orgs.push(org_id);
                }
            }
            Some(id) => {
                let old = existing.iter().find(|a| a.id == id).and_then(|a| a.ends_on);
                if old == end {
                    plan.summary.unchanged += 1;
                } else {
                    plan.summary.changed += 1;
                    plan.updates.push((id, end));
                    if role == Role::Member {
                        plan.member_orgs.push(org_id);
                    }
                }
            }
        }
    }
    plan.problems = problems;
    Ok(plan)
}

/// An assignment's days, from the database (`id`) or the file (`row`), or both.
#[derive(Debug, Clone)]
struct Interval {
    start: NaiveDate,
    end: Option<NaiveDate>,
    row: Option<u32>,
    id: Option<i64>,
}

pub(super) async fn apply(
    conn: &mut PgConnection,
    mut plan: Plan,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> anyhow::Result<Summary> {
    let total = plan.creates.len() as u64;
    let mut done = 0;
    progress.report(Phase::Creating, 0, total);
    for chunk in plan.creates.chunks(CHUNK) {
        let people: Vec<i64> = chunk.iter().map(|a| a.person_id).collect();
        let orgs: Vec<i64> = chunk.iter().map(|a| a.org_id).collect();
        let roles: Vec<&str> = chunk.iter().map(|a| a.role.as_str()).collect();
        let starts: Vec<NaiveDate> = chunk.iter().map(|a| a.starts_on).collect();
        let ends: Vec<Option<NaiveDate>> = chunk.iter().map(|a| a.ends_on).collect();
        let acting: Vec<bool> = chunk.iter().map(|a| a.acting).collect();
        sqlx::query(
            "insert into role_assignment (person_id, org_id, role, starts_on, ends_on, acting, created_at)
             select u.person_id, u.org_id, u.role, u.starts_on, u.ends_on, u.acting, $7
             from unnest($1::bigint[], $2::bigint[], $3::text[], $4::date[], $5::date[], $6::boolean[])
                  as u(person_id, org_id, role, starts_on, ends_on, acting)",
        )
        .bind(&people)
        .bind(&orgs)
        .bind(&roles)
        .bind(&starts)
        .bind(&ends)
        .bind(&acting)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        done += chunk.len() as u64;
        progress.report(Phase::Creating, done, total);
    }
    progress.report(Phase::Updating, 0, plan.updates.len() as u64);
    for chunk in plan.updates.chunks(CHUNK) {
        let ids: Vec<i64> = chunk.iter().map(|u| u.0).collect();
        let ends: Vec<Option<NaiveDate>> = chunk.iter().map(|u| u.1).collect();
        sqlx::query(
            "update role_assignment a set ends_on = u.ends_on
             from unnest($1::bigint[], $2::date[]) as u(id, ends_on) where a.id = u.id",
        )
        .bind(&ids)
        .bind(&ends)
        .execute(&mut *conn)
        .await?;
    }
    progress.report(Phase::Updating, plan.updates.len() as u64, plan.updates.len() as u64);
    let mut summary = plan.summary;
    if !plan.member_orgs.is_empty() {
        plan.member_orgs.sort_unstable();
        plan.member_orgs.dedup();
        progress.report(Phase::Duties, 0, plan.member_orgs.len() as u64);
        let synced = duties::sync_orgs(conn, &plan.member_orgs, now).await?;
        summary.duties_created = synced.created.max(0) as u64;
    }
    Ok(summary)
}
