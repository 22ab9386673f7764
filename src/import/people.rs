//! The people layout: `code`/人员编号, `name`/姓名, `login`/登录名, `phone`/电话,
//! `email`/邮箱, `note`/备注.
//!
//! A person is found by their code (`person.code`, the stable key that makes re-imports
//! change nothing), else by the login of their user account. A row with a login whose
//! person has no code yet gives that person the code: that is how people who already
//! have an account get one. Import never creates user accounts (they need a password)
//! and never deletes anyone. An optional column the file lacks leaves that field as it
//! is; an empty cell in a column it has clears it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{Column, Columns, Phase, Problem, Progress, Summary, has_control, row_list, valid_code};
use crate::import::read::Table;

pub(super) static COLUMNS: [Column; 6] = [
    Column::present("code", "人员编号", "import.help_person_code"),
    Column::new("name", "姓名", true, "import.help_person_name"),
    Column::new("login", "登录名", false, "import.help_person_login"),
    Column::new("phone", "电话", false, "import.help_person_phone"),
    Column::new("email", "邮箱", false, "import.help_person_email"),
    Column::new("note", "备注", false, "import.help_person_note"),
];
const CODE: usize = 0;
const NAME: usize = 1;
const LOGIN: usize = 2;
const PHONE: usize = 3;
const EMAIL: usize = 4;
const NOTE: usize = 5;

const CHUNK: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct DbPerson {
    id: i64,
    code: Option<String>,
    name: String,
    phone: Option<String>,
    email: Option<String>,
    note: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct DbUser {
    login: String,
    #[sqlx(flatten)]
    person: DbPerson,
}

/// A person as the import would leave them.
#[derive(Debug, Clone)]
struct Person {
    code: Option<String>,
    name: String,
    phone: Option<String>,
    email: Option<String>,
    note: Option<String>,
}

#[derive(Default)]
pub(super) struct Plan {
    pub summary: Summary,
    pub problems: Vec<Problem>,
    creates: Vec<Person>,
    updates: Vec<(i64, Person)>,
}

impl Plan {
    pub(super) fn refused(summary: Summary, problems: Vec<Problem>) -> Plan {
        Plan { summary, problems, ..Plan::default() }
    }
}

/// An optional text column: `None` when the file has no such column (keep the field),
/// `Some(None)` for an empty cell (clear it).
type Optional = Option<Option<String>>;

struct Parsed {
    row: u32,
    code: Option<String>,
    name: Option<String>,
    login: Option<String>,
    phone: Optional,
    email: Optional,
    note: Optional,
    ok: bool,
}

fn optional_text(
    row: &crate::import::read::Row,
    cols: &Columns,
    i: usize,
    max: usize,
    problems: &mut Vec<Problem>,
    ok: &mut bool,
) -> Optional {
    if !cols.has(i) {
        return None;
    }
    match cols.cell(row, i).text() {
        None => Some(None),
        Some(s) if s.chars().count() > max => {
            problems.push(Problem::at(row.number, &COLUMNS[i], "import.too_long", vec![max.to_string()]));
            *ok = false;
            None
        }
        Some(s) if i != NOTE && has_control(&s) => {
            problems.push(Problem::at(row.number, &COLUMNS[i], "import.line_break", vec![]));
            *ok = false;
            None
        }
        Some(s) => Some(Some(s)),
    }
}

fn parse_row(row: &crate::import::read::Row, cols: &Columns, problems: &mut Vec<Problem>) -> Parsed {
    let n = row.number;
    let mut ok = true;
    let code = match cols.cell(row, CODE).text() {
        Some(c) if !valid_code(&c) => {
            problems.push(Problem::at(n, &COLUMNS[CODE], "import.bad_code", vec![c]));
            ok = false;
            None
        }
        c => c,
    };
    let name = match cols.cell(row, NAME).text() {
        None => {
            problems.push(Problem::at(n, &COLUMNS[NAME], "import.missing", vec![]));
            ok = false;
            None
        }
        Some(s) if s.chars().count() > 100 => {
            problems.push(Problem::at(n, &COLUMNS[NAME], "import.too_long", vec!["100".into()]));
            ok = false;
            None
        }
        Some(s) if has_control(&s) => {
            problems.push(Problem::at(n, &COLUMNS[NAME], "import.line_break", vec![]));
            ok = false;
            None
        }
        Some(s) => Some(s),
    };
    let login = match cols.cell(row, LOGIN).text() {
        None => None,
        Some(l) => match crate::db::users::normalize_login(&l) {
            Ok(l) => Some(l),
            Err(_) => {
                problems.push(Problem::at(n, &COLUMNS[LOGIN], "import.bad_login", vec![l]));
                ok = false;
                None
            }
        },
    };
    if code.is_none() && login.is_none() && ok {
        problems.push(Problem::at(n, &COLUMNS[CODE], "import.person_key_missing", vec![]));
        ok = false;
    }
    let phone = optional_text(row, cols, PHONE, 40, problems, &mut ok);
    let email = optional_text(row, cols, EMAIL, 200, problems, &mut ok);
    if let Some(Some(e)) = &email
        && !e.split_once('@').is_some_and(|(local, host)| {
            !local.is_empty() && !host.is_empty() && !host.contains('@') && !e.contains(char::is_whitespace)
        })
    {
        problems.push(Problem::at(n, &COLUMNS[EMAIL], "import.bad_email", vec![e.clone()]));
        ok = false;
    }
    let note = optional_text(row, cols, NOTE, 2000, problems, &mut ok);
    Parsed { row: n, code, name, login, phone, email, note, ok }
}

pub(super) async fn plan(conn: &mut PgConnection, table: &Table, cols: &Columns) -> anyhow::Result<Plan> {
    let mut problems = Vec::new();
    let parsed: Vec<Parsed> = table.rows.iter().map(|r| parse_row(r, cols, &mut problems)).collect();

    for (key, col) in [(0, CODE), (1, LOGIN)] {
        let mut rows_of: HashMap<&str, Vec<u32>> = HashMap::new();
        for p in &parsed {
            let k = if key == 0 { p.code.as_deref() } else { p.login.as_deref() };
            if let Some(k) = k {
                rows_of.entry(k).or_default().push(p.row);
            }
        }
        for p in &parsed {
            let k = if key == 0 { p.code.as_deref() } else { p.login.as_deref() };
            if let Some(k) = k
                && rows_of[k].len() > 1
            {
                let others: Vec<u32> = rows_of[k].iter().copied().filter(|r| *r != p.row).collect();
                let [zh, en] = row_list(&others);
                problems.push(Problem::at(p.row, &COLUMNS[col], "import.value_repeated", vec![k.into(), zh, en]));
            }
        }
    }

    let codes: Vec<&str> = parsed.iter().filter_map(|p| p.code.as_deref()).collect();
    let logins: Vec<&str> = parsed.iter().filter_map(|p| p.login.as_deref()).collect();
    let by_code: HashMap<String, DbPerson> =
        sqlx::query_as::<_, DbPerson>("select id, code, name, phone, email, note from person where code = any($1)")
            .bind(&codes)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .filter_map(|p| Some((p.code.clone()?, p)))
            .collect();
    let by_login: HashMap<String, DbUser> = sqlx::query_as::<_, DbUser>(
        "select u.login, p.id, p.code, p.name, p.phone, p.email, p.note
         from app_user u join person p on p.id = u.person_id where u.login = any($1)",
    )
    .bind(&logins)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|u| (u.login.clone(), u))
    .collect();

    let mut plan = Plan::default();
    let mut rows_of_person: HashMap<i64, Vec<u32>> = HashMap::new();
    let mut targets: Vec<(u32, Option<DbPerson>, Person)> = Vec::new();
    for p in &parsed {
        if !p.ok {
            continue;
        }
        let n = p.row;
        let user = match &p.login {
            None => None,
            Some(l) => match by_login.get(l) {
                Some(u) => Some(u),
                None => {
                    problems.push(Problem::at(n, &COLUMNS[LOGIN], "import.login_unknown", vec![l.clone()]));
                    continue;
                }
            },
        };
        let existing: Option<DbPerson> = match (&p.code, user) {
            (Some(code), user) => match (by_code.get(code), user) {
                (Some(person), Some(u)) if u.person.id != person.id => {
                    problems.push(Problem::at(
                        n,
                        &COLUMNS[LOGIN],
                        "import.login_other_person",
                        vec![u.login.clone(), u.person.code.clone().unwrap_or_else(|| "—".into())],
                    ));
                    continue;
                }
                (Some(person), _) => Some(person.clone()),
                (None, Some(u)) => match &u.person.code {
                    Some(other) => {
                        problems.push(Problem::at(
                            n,
                            &COLUMNS[CODE],
                            "import.login_has_code",
                            vec![u.login.clone(), other.clone()],
                        ));
                        continue;
                    }
                    None => Some(u.person.clone()),
                },
                (None, None) => None,
            },
            (None, Some(u)) => Some(u.person.clone()),
            (None, None) => continue,
        };
        let keep = |field: &Optional, old: Option<&Option<String>>| -> Option<String> {
            match field {
                Some(v) => v.clone(),
                None => old.cloned().flatten(),
            }
        };
        let target = Person {
            code: p.code.clone().or_else(|| existing.as_ref().and_then(|e| e.code.clone())),
            name: p.name.clone().unwrap_or_default(),
            phone: keep(&p.phone, existing.as_ref().map(|e| &e.phone)),
            email: keep(&p.email, existing.as_ref().map(|e| &e.email)),
            note: keep(&p.note, existing.as_ref().map(|e| &e.note)),
        };
        if let Some(e) = &existing {
            rows_of_person.entry(e.id).or_default().push(n);
        }
        targets.push((n, existing, target));
    }
    let mut twice: HashSet<u32> = HashSet::new();
    for rows in rows_of_person.values().filter(|r| r.len() > 1) {
        for r in rows {
            let others: Vec<u32> = rows.iter().copied().filter(|o| o != r).collect();
            problems.push(Problem::row(*r, "import.same_person", row_list(&others).to_vec()));
            twice.insert(*r);
        }
    }
    for (n, existing, target) in targets {
        if twice.contains(&n) {
            continue;
        }
        match existing {
            None => {
                plan.summary.created += 1;
                plan.creates.push(target);
            }
            Some(e) => {
                let same = e.code == target.code
                    && e.name == target.name
                    && e.phone == target.phone
                    && e.email == target.email
                    && e.note == target.note;
                if same {
                    plan.summary.unchanged += 1;
                } else {
                    plan.summary.changed += 1;
                    plan.updates.push((e.id, target));
                }
            }
        }
    }
    plan.problems = problems;
    Ok(plan)
}

pub(super) async fn apply(
    conn: &mut PgConnection,
    plan: Plan,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> anyhow::Result<Summary> {
    let total = plan.creates.len() as u64;
    let mut done = 0;
    progress.report(Phase::Creating, 0, total);
    for chunk in plan.creates.chunks(CHUNK) {
        let codes: Vec<Option<&str>> = chunk.iter().map(|p| p.code.as_deref()).collect();
        let names: Vec<&str> = chunk.iter().map(|p| p.name.as_str()).collect();
        let phones: Vec<Option<&str>> = chunk.iter().map(|p| p.phone.as_deref()).collect();
        let emails: Vec<Option<&str>> = chunk.iter().map(|p| p.email.as_deref()).collect();
        let notes: Vec<Option<&str>> = chunk.iter().map(|p| p.note.as_deref()).collect();
        sqlx::query(
            "insert into person (code, name, phone, email, note, created_at)
             select u.code, u.name, u.phone, u.email, u.note, $6
             from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) as u(code, name, phone, email, note)",
        )
        .bind(&codes)
        .bind(&names)
        .bind(&phones)
        .bind(&emails)
        .bind(&notes)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        done += chunk.len() as u64;
        progress.report(Phase::Creating, done, total);
    }
    let total = plan.updates.len() as u64;
    let mut done = 0;
    progress.report(Phase::Updating, 0, total);
    for chunk in plan.updates.chunks(CHUNK) {
        let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
        let codes: Vec<Option<&str>> = chunk.iter().map(|(_, p)| p.code.as_deref()).collect();
        let names: Vec<&str> = chunk.iter().map(|(_, p)| p.name.as_str()).collect();
        let phones: Vec<Option<&str>> = chunk.iter().map(|(_, p)| p.phone.as_deref()).collect();
        let emails: Vec<Option<&str>> = chunk.iter().map(|(_, p)| p.email.as_deref()).collect();
        let notes: Vec<Option<&str>> = chunk.iter().map(|(_, p)| p.note.as_deref()).collect();
        sqlx::query(
            "update person p set code = u.code, name = u.name, phone = u.phone, email = u.email, note = u.note
             from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                  as u(id, code, name, phone, email, note)
             where p.id = u.id",
        )
        .bind(&ids)
        .bind(&codes)
        .bind(&names)
        .bind(&phones)
        .bind(&emails)
        .bind(&notes)
        .execute(&mut *conn)
        .await?;
        done += chunk.len() as u64;
        progress.report(Phase::Updating, done, total);
    }
    Ok(plan.summary)
}
