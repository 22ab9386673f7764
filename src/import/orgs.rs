//! The organisations layout: `code`/组织代码, `name`/组织名称, `kind`/组织类型,
//! `parent`/上级组织代码, `active_from`/成立日期, `active_until`/撤销日期.
//!
//! The file describes the tree as it should be. Checking it works on the whole file at
//! once: the file's rows and every organisation of the database they touch (and those
//! organisations' ancestors) form the tree the import would leave, and every rule is
//! checked on that tree — unknown parents, cycles (through the database too), depth,
//! closing dates, kinds. Decisions:
//!
//! - Parents may come after their children; new organisations are inserted one tree
//!   level at a time, each level in batched statements, so the path trigger finds the
//!   parent.
//! - An existing organisation with another parent moves there with its whole subtree
//!   (like [`orgs::move_to`]); becoming a root is refused (an import cannot tell a
//!   forgotten parent from an intended one).
//! - A child may begin before its parent (reorganisations do that), but not after its
//!   parent is closed.
//! - An organisation is active no longer than its parent: a closing date closes the
//!   descendants still open then (as PATCH does), in the file or not; an empty
//!   `active_until` reopens a closed organisation whose parent is open. Without the
//!   `active_until` column, closing dates stay as they are.
//! - The kind of an organisation that owes duties cannot change (DESIGN.md: close it and
//!   create a new one).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

use super::{
    Column, Columns, Phase, Problem, Progress, Summary, bad_date, date_cell, has_control, row_list, valid_code,
};
use crate::db::{duties, orgs};
use crate::import::read::Table;

pub(super) static COLUMNS: [Column; 6] = [
    Column::new("code", "组织代码", true, "import.help_org_code"),
    Column::new("name", "组织名称", true, "import.help_org_name"),
    Column::new("kind", "组织类型", true, "import.help_org_kind"),
    Column::present("parent", "上级组织代码", "import.help_org_parent"),
    Column::new("active_from", "成立日期", true, "import.help_org_from"),
    Column::new("active_until", "撤销日期", false, "import.help_org_until"),
];
const CODE: usize = 0;
const NAME: usize = 1;
const KIND: usize = 2;
const PARENT: usize = 3;
const FROM: usize = 4;
const UNTIL: usize = 5;

/// The deepest a tree may be (the `org.path` check).
const MAX_DEPTH: u32 = 32;

/// Rows per insert or update statement.
const CHUNK: usize = 10_000;

/// New organisations per statement that creates their duties.
const DUTY_CHUNK: usize = 10_000;

/// Changed organisations per call of `duties::sync_orgs`.
const SYNC_CHUNK: usize = 5_000;

/// Rows written to a table before its planner statistics are refreshed in the transaction.
const ANALYZE_AFTER: u64 = 1_000;

/// The organisation kinds, to read a kind by its code or its Chinese (or English) name.
pub(super) struct Kinds {
    rows: Vec<(String, String, String)>,
}

pub(super) enum KindError {
    Unknown,
    Ambiguous,
}

impl Kinds {
    pub(super) async fn load(conn: &mut PgConnection) -> sqlx::Result<Kinds> {
        let rows = sqlx::query_as("select code, name_zh, name_en from org_kind order by position, code")
            .fetch_all(conn)
            .await?;
        Ok(Kinds { rows })
    }

    pub(super) fn resolve(&self, s: &str) -> Result<String, KindError> {
        let lower = s.to_lowercase();
        if let Some((code, ..)) = self.rows.iter().find(|(code, ..)| *code == lower) {
            return Ok(code.clone());
        }
        for pick in [
            |k: &(String, String, String), s: &str| k.1 == s,
            |k: &(String, String, String), s: &str| k.2.to_lowercase() == s.to_lowercase(),
        ] {
            let found: Vec<&(String, String, String)> = self.rows.iter().filter(|k| pick(k, s)).collect();
            match found.len() {
                0 => {}
                1 => return Ok(found[0].0.clone()),
                _ => return Err(KindError::Ambiguous),
            }
        }
        Err(KindError::Unknown)
    }

    /// "党委（committee）、党支部（branch）…" and "committee (党委), branch (党支部), …"
    pub(super) fn list(&self) -> [String; 2] {
        [
            self.rows.iter().map(|(code, zh, _)| format!("{zh}（{code}）")).collect::<Vec<_>>().join("、"),
            self.rows.iter().map(|(code, zh, _)| format!("{code} ({zh})")).collect::<Vec<_>>().join(", "),
        ]
    }

    /// The Chinese name of a kind, when no other kind shares it; else its code.
    pub(super) fn display(&self, code: &str) -> String {
        match self.rows.iter().find(|k| k.0 == code) {
            Some(k) if self.rows.iter().filter(|o| o.1 == k.1).count() == 1 => k.1.clone(),
            _ => code.to_owned(),
        }
    }
}

/// `active_until` as the file gives it.
#[derive(Debug, Clone, Copy)]
enum Until {
    /// No such column: keep what the database has.
    Keep,
    Set(Option<NaiveDate>),
}

/// One row, with `None` in each field that had a problem.
#[derive(Debug)]
struct Parsed {
    row: u32,
    code: Option<String>,
    name: Option<String>,
    kind: Option<String>,
    /// `Some(None)`: a root.
    parent: Option<Option<String>>,
    from: Option<NaiveDate>,
    until: Option<Until>,
}

impl Parsed {
    fn complete(&self) -> bool {
        self.code.is_some()
            && self.name.is_some()
            && self.kind.is_some()
            && self.parent.is_some()
            && self.from.is_some()
            && self.until.is_some()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct DbOrg {
    id: i64,
    code: String,
    name: String,
    kind: String,
    parent_id: Option<i64>,
    path: Vec<i64>,
    active_from: NaiveDate,
    active_until: Option<NaiveDate>,
}

/// A node's parent in the tree the import would leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Up<'a> {
    Root,
    Parent(&'a str),
    /// A parent that is not known (a problem already reported).
    Unknown,
}

struct NewOrg {
    code: String,
    name: String,
    kind: String,
    parent: Option<String>,
    from: NaiveDate,
    until: Option<NaiveDate>,
}

struct Update {
    id: i64,
    name: String,
    kind: String,
    from: NaiveDate,
    until: Option<NaiveDate>,
    /// Whether what it owes may change (not only its name).
    liability: bool,
}

/// What importing a file would do.
#[derive(Default)]
pub(super) struct Plan {
    pub summary: Summary,
    pub problems: Vec<Problem>,
    /// New organisations, one list per depth in the final tree, shallowest first.
    creates: Vec<Vec<NewOrg>>,
    /// Existing organisations moving under another parent (code, parent code),
    /// shallowest first.
    moves: Vec<(String, String)>,
    updates: Vec<Update>,
    /// Existing organisations whose closing date comes earlier (or at all): their
    /// descendants not in the file close with them.
    closings: Vec<(i64, NaiveDate)>,
    /// Every existing organisation the file names.
    file_ids: Vec<i64>,
}

impl Plan {
    pub(super) fn refused(summary: Summary, problems: Vec<Problem>) -> Plan {
        Plan { summary, problems, ..Plan::default() }
    }
}

fn parse_row(row: &crate::import::read::Row, cols: &Columns, kinds: &Kinds, problems: &mut Vec<Problem>) -> Parsed {
    let n = row.number;
    let text = |i: usize| cols.cell(row, i).text();
    let code = match text(CODE) {
        None => {
            problems.push(Problem::at(n, &COLUMNS[CODE], "import.missing", vec![]));
            None
        }
        Some(c) if !valid_code(&c) => {
            problems.push(Problem::at(n, &COLUMNS[CODE], "import.bad_code", vec![c]));
            None
        }
        Some(c) => Some(c),
    };
    let name = match text(NAME) {
        None => {
            problems.push(Problem::at(n, &COLUMNS[NAME], "import.missing", vec![]));
            None
        }
        Some(s) if s.chars().count() > 200 => {
            problems.push(Problem::at(n, &COLUMNS[NAME], "import.too_long", vec!["200".into()]));
            None
        }
        Some(s) if has_control(&s) => {
            problems.push(Problem::at(n, &COLUMNS[NAME], "import.line_break", vec![]));
            None
        }
        Some(s) => Some(s),
    };
    let kind = match text(KIND) {
        None => {
            problems.push(Problem::at(n, &COLUMNS[KIND], "import.missing", vec![]));
            None
        }
        Some(k) => match kinds.resolve(&k) {
            Ok(code) => Some(code),
            Err(KindError::Unknown) => {
                let [zh, en] = kinds.list();
                problems.push(Problem::at(n, &COLUMNS[KIND], "import.kind_unknown", vec![k, zh, en]));
                None
            }
            Err(KindError::Ambiguous) => {
                problems.push(Problem::at(n, &COLUMNS[KIND], "import.kind_ambiguous", vec![k]));
                None
            }
        },
    };
    let parent = match text(PARENT) {
        None => Some(None),
        Some(p) if !valid_code(&p) => {
            problems.push(Problem::at(n, &COLUMNS[PARENT], "import.bad_code", vec![p]));
            None
        }
        Some(p) => Some(Some(p)),
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
        Some(Until::Keep)
    } else {
        match date_cell(cols.cell(row, UNTIL)) {
            Ok(d) => Some(Until::Set(d)),
            Err(shown) => {
                problems.push(bad_date(n, &COLUMNS[UNTIL], shown));
                None
            }
        }
    };
    Parsed { row: n, code, name, kind, parent, from, until }
}

async fn load_by_codes(conn: &mut PgConnection, codes: &[String]) -> sqlx::Result<Vec<DbOrg>> {
    sqlx::query_as(
        "select id, code, name, kind, parent_id, path, active_from, active_until from org where code = any($1)",
    )
    .bind(codes)
    .fetch_all(conn)
    .await
}

async fn load_by_ids(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<Vec<DbOrg>> {
    sqlx::query_as(
        "select id, code, name, kind, parent_id, path, active_from, active_until from org where id = any($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

fn earliest(a: Option<NaiveDate>, b: Option<NaiveDate>) -> Option<NaiveDate> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(super) async fn plan(
    conn: &mut PgConnection,
    table: &Table,
    cols: &Columns,
    _now: DateTime<Utc>,
) -> anyhow::Result<Plan> {
    let kinds = Kinds::load(conn).await?;
    let mut problems = Vec::new();
    let parsed: Vec<Parsed> = table.rows.iter().map(|r| parse_row(r, cols, &kinds, &mut problems)).collect();

    // Codes the file repeats: every occurrence is a problem; the first stands for the
    // code in the checks that follow.
    let mut rows_of: HashMap<&str, Vec<u32>> = HashMap::new();
    let mut file: HashMap<&str, &Parsed> = HashMap::new();
    for p in &parsed {
        if let Some(code) = p.code.as_deref() {
            rows_of.entry(code).or_default().push(p.row);
            file.entry(code).or_insert(p);
        }
    }
    for p in &parsed {
        if let Some(code) = p.code.as_deref() {
            let rows = &rows_of[code];
            if rows.len() > 1 {
                let others: Vec<u32> = rows.iter().copied().filter(|r| *r != p.row).collect();
                let [zh, en] = row_list(&others);
                problems.push(Problem::at(p.row, &COLUMNS[CODE], "import.code_repeated", vec![code.into(), zh, en]));
            }
        }
    }

    // The database's side: the organisations the file names, their ancestors, and the
    // parents it names.
    let mut wanted: HashSet<String> = file.keys().map(|c| (*c).to_owned()).collect();
    for p in &parsed {
        if let Some(Some(parent)) = &p.parent {
            wanted.insert(parent.clone());
        }
    }
    let wanted: Vec<String> = wanted.into_iter().collect();
    let mut db: HashMap<String, DbOrg> = HashMap::new();
    let mut code_of: HashMap<i64, String> = HashMap::new();
    for o in load_by_codes(conn, &wanted).await? {
        code_of.insert(o.id, o.code.clone());
        db.insert(o.code.clone(), o);
    }
    let ancestors: Vec<i64> = {
        let mut ids: HashSet<i64> = HashSet::new();
        for o in db.values() {
            ids.extend(o.path.iter().copied().filter(|id| !code_of.contains_key(id)));
        }
        ids.into_iter().collect()
    };
    if !ancestors.is_empty() {
        for o in load_by_ids(conn, &ancestors).await? {
            code_of.insert(o.id, o.code.clone());
            db.insert(o.code.clone(), o);
        }
    }

    for p in &parsed {
        if let Some(Some(parent)) = &p.parent
            && !file.contains_key(parent.as_str())
            && !db.contains_key(parent)
        {
            problems.push(Problem::at(p.row, &COLUMNS[PARENT], "import.parent_unknown", vec![parent.clone()]));
        }
    }

    // The tree the import would leave: a row's parent is the file's, any other
    // organisation's the database's.
    let up = |code: &str| -> Up<'_> {
        match file.get(code) {
            Some(p) => match &p.parent {
                Some(None) => Up::Root,
                Some(Some(parent)) if file.contains_key(parent.as_str()) || db.contains_key(parent) => {
                    Up::Parent(parent.as_str())
                }
                _ => Up::Unknown,
            },
            None => match db.get(code).and_then(|o| o.parent_id) {
                None => Up::Root,
                Some(pid) => code_of.get(&pid).map(|c| Up::Parent(c.as_str())).unwrap_or(Up::Unknown),
            },
        }
    };

    // Cycles: every row on one is a problem, naming the whole loop.
    let mut state: HashMap<&str, u8> = HashMap::new();
    let mut cyclic: HashSet<&str> = HashSet::new();
    for p in &parsed {
        let Some(start) = p.code.as_deref() else { continue };
        if file.get(start).is_some_and(|f| f.row != p.row) {
            continue;
        }
        let mut stack: Vec<&str> = Vec::new();
        let mut cur = start;
        loop {
            match state.get(cur) {
                Some(2) => break,
                Some(_) => {
                    let at = stack.iter().position(|c| *c == cur).unwrap_or(0);
                    let ring: Vec<&str> = stack[at..].to_vec();
                    for c in &ring {
                        cyclic.insert(c);
                    }
                    for c in &ring {
                        if let Some(row) = file.get(c) {
                            let i = ring.iter().position(|x| x == c).unwrap_or(0);
                            let chain: Vec<&str> =
                                ring[i..].iter().chain(ring[..i].iter()).chain(std::iter::once(c)).copied().collect();
                            if ring.len() == 1 {
                                problems.push(Problem::at(row.row, &COLUMNS[PARENT], "import.cycle_self", vec![]));
                            } else {
                                problems.push(Problem::at(
                                    row.row,
                                    &COLUMNS[PARENT],
                                    "import.cycle",
                                    vec![chain.join(" → ")],
                                ));
                            }
                        }
                    }
                    break;
                }
                None => {
                    state.insert(cur, 1);
                    stack.push(cur);
                    match up(cur) {
                        Up::Parent(p) => cur = p,
                        _ => break,
                    }
                }
            }
        }
        for c in stack {
            state.insert(c, 2);
        }
    }

    // Depth and the effective closing date of every node on a resolvable chain: an
    // organisation is active no longer than its parent.
    let own_until = |code: &str| -> Option<NaiveDate> {
        match file.get(code) {
            Some(p) => match p.until {
                Some(Until::Set(d)) => d,
                _ => db.get(code).and_then(|o| o.active_until),
            },
            None => db.get(code).and_then(|o| o.active_until),
        }
    };
    let mut resolved: HashMap<&str, Option<(u32, Option<NaiveDate>)>> = HashMap::new();
    for p in &parsed {
        let Some(start) = p.code.as_deref() else { continue };
        if resolved.contains_key(start) {
            continue;
        }
        let mut stack: Vec<&str> = vec![start];
        let mut base: Option<(u32, Option<NaiveDate>)> = None;
        let mut ok = true;
        loop {
            let cur = *stack.last().unwrap_or(&start);
            if cyclic.contains(cur) {
                ok = false;
                break;
            }
            match up(cur) {
                Up::Root => {
                    base = Some((0, None));
                    break;
                }
                Up::Unknown => {
                    ok = false;
                    break;
                }
                Up::Parent(parent) => match resolved.get(parent) {
                    Some(Some(b)) => {
                        base = Some(*b);
                        break;
                    }
                    Some(None) => {
                        ok = false;
                        break;
                    }
                    None if stack.len() > 10_000 => {
                        ok = false;
                        break;
                    }
                    None => stack.push(parent),
                },
            }
        }
        match (ok, base) {
            (true, Some((mut depth, mut until))) => {
                for c in stack.into_iter().rev() {
                    depth += 1;
                    until = earliest(own_until(c), until);
                    resolved.insert(c, Some((depth, until)));
                }
            }
            _ => {
                for c in stack {
                    resolved.insert(c, None);
                }
            }
        }
    }
    let node = |code: &str| resolved.get(code).copied().flatten();

    let mut plan = Plan::default();
    let mut kind_changes: Vec<(i64, u32, String, String)> = Vec::new();
    let mut from_later: Vec<(i64, u32, NaiveDate)> = Vec::new();
    let mut moved: Vec<(i64, u32, u32)> = Vec::new();
    let mut creates: Vec<(u32, NewOrg)> = Vec::new();
    let mut moves: Vec<(u32, String, String)> = Vec::new();
    let mut row_of_id: HashMap<i64, u32> = HashMap::new();
    for p in &parsed {
        let Some(code) = p.code.as_deref() else { continue };
        if file.get(code).is_some_and(|f| f.row != p.row) || !p.complete() {
            continue;
        }
        let (Some(name), Some(kind), Some(parent), Some(from)) = (&p.name, &p.kind, &p.parent, p.from) else {
            continue;
        };
        let existing = db.get(code);
        let Some((depth, until)) = node(code) else { continue };
        let n = p.row;
        let before = problems.len();
        if depth > MAX_DEPTH {
            problems.push(Problem::at(n, &COLUMNS[PARENT], "import.too_deep", vec![MAX_DEPTH.to_string()]));
        }
        if let Some(parent_code) = parent
            && let Some((_, Some(parent_until))) = node(parent_code)
            && from > parent_until
        {
            problems.push(Problem::at(
                n,
                &COLUMNS[FROM],
                "import.parent_closed",
                vec![parent_code.clone(), day(parent_until), day(from)],
            ));
        }
        if let Some(own) = own_until(code).filter(|u| *u < from) {
            if matches!(p.until, Some(Until::Set(_))) {
                problems.push(Problem::at(n, &COLUMNS[UNTIL], "import.until_before_from", vec![day(own), day(from)]));
            } else {
                problems.push(Problem::at(n, &COLUMNS[FROM], "import.from_after_closed", vec![day(from), day(own)]));
            }
        }
        match existing {
            None => {
                if problems.len() == before {
                    creates.push((
                        depth,
                        NewOrg {
                            code: code.to_owned(),
                            name: name.clone(),
                            kind: kind.clone(),
                            parent: parent.clone(),
                            from,
                            until,
                        },
                    ));
                }
                plan.summary.created += 1;
            }
            Some(o) => {
                plan.file_ids.push(o.id);
                row_of_id.insert(o.id, n);
                let db_parent = o.parent_id.and_then(|id| code_of.get(&id)).cloned();
                let parent_changed = db_parent != *parent;
                if parent_changed && parent.is_none() {
                    problems.push(Problem::at(
                        n,
                        &COLUMNS[PARENT],
                        "import.becomes_root",
                        vec![db_parent.clone().unwrap_or_default()],
                    ));
                }
                if kind != &o.kind {
                    kind_changes.push((o.id, n, o.kind.clone(), kind.clone()));
                }
                if from > o.active_from {
                    from_later.push((o.id, n, from));
                }
                let changed = parent_changed
                    || name != &o.name
                    || kind != &o.kind
                    || from != o.active_from
                    || until != o.active_until;
                if !changed {
                    plan.summary.unchanged += 1;
                    continue;
                }
                plan.summary.changed += 1;
                if let (true, Some(parent)) = (parent_changed, parent) {
                    plan.summary.moved += 1;
                    moved.push((o.id, n, depth));
                    moves.push((depth, code.to_owned(), parent.clone()));
                }
                if name != &o.name || kind != &o.kind || from != o.active_from || until != o.active_until {
                    plan.updates.push(Update {
                        id: o.id,
                        name: name.clone(),
                        kind: kind.clone(),
                        from,
                        until,
                        liability: kind != &o.kind || from != o.active_from || until != o.active_until,
                    });
                }
                if let Some(u) = until
                    && o.active_until.is_none_or(|old| u < old)
                {
                    plan.closings.push((o.id, u));
                }
            }
        }
    }

    // The kind of an organisation that owes duties stays.
    if !kind_changes.is_empty() {
        let ids: Vec<i64> = kind_changes.iter().map(|k| k.0).collect();
        let owing: HashSet<i64> =
            sqlx::query_scalar::<_, i64>("select distinct org_id from duty where org_id = any($1)")
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect();
        for (id, row, old, new) in &kind_changes {
            if owing.contains(id) {
                problems.push(Problem::at(
                    *row,
                    &COLUMNS[KIND],
                    "import.kind_locked",
                    vec![kinds.display(old), kinds.display(new), old.clone(), new.clone()],
                ));
            }
        }
    }

    // A later first day must not leave records before it.
    if !from_later.is_empty() {
        let ids: Vec<i64> = from_later.iter().map(|f| f.0).collect();
        let days: Vec<NaiveDate> = from_later.iter().map(|f| f.2).collect();
        let early: Vec<(i64, NaiveDate)> = sqlx::query_as(
            "select c.id, min(r.occurred_on) from unnest($1::bigint[], $2::date[]) c(id, first_day)
             join record r on r.org_id = c.id and r.occurred_on < c.first_day and r.state <> 'withdrawn'
             group by c.id",
        )
        .bind(&ids)
        .bind(&days)
        .fetch_all(&mut *conn)
        .await?;
        for (id, first) in early {
            if let Some(f) = from_later.iter().find(|f| f.0 == id) {
                problems.push(Problem::at(f.1, &COLUMNS[FROM], "import.records_before", vec![day(first), day(f.2)]));
            }
        }
    }

    // A moved subtree must fit under its new parent.
    if !moved.is_empty() {
        let ids: Vec<i64> = moved.iter().map(|m| m.0).collect();
        let heights: Vec<(i64, i32)> = sqlx::query_as(
            "select x.id, (max(cardinality(d.path)) - cardinality(x.path))::int
             from org x join org d on d.path >= x.path and d.path < subtree_upper(x.path)
             where x.id = any($1) group by x.id, x.path",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        for (id, height) in heights {
            if let Some(m) = moved.iter().find(|m| m.0 == id)
                && m.2 <= MAX_DEPTH
                && m.2 + height as u32 > MAX_DEPTH
            {
                problems.push(Problem::at(m.1, &COLUMNS[PARENT], "import.too_deep", vec![MAX_DEPTH.to_string()]));
            }
        }
    }

    // Closing: the descendants still open then close too (those the file does not name);
    // none may begin after that day, and none may have records after it.
    if !plan.closings.is_empty() {
        for (root, code, begins, is_self, has_records) in closing_set(conn, &plan.closings, &plan.file_ids).await? {
            let Some(row) = row_of_id.get(&root).copied() else { continue };
            let until = plan.closings.iter().find(|c| c.0 == root).map(|c| c.1).unwrap_or(begins);
            if !is_self {
                plan.summary.cascaded += 1;
                if begins > until {
                    problems.push(Problem::at(
                        row,
                        &COLUMNS[UNTIL],
                        "import.late_start",
                        vec![code.clone(), day(begins), day(until)],
                    ));
                }
            }
            if has_records {
                problems.push(Problem::at(row, &COLUMNS[UNTIL], "import.records_after", vec![code, day(until)]));
            }
        }
    }

    creates.sort_by_key(|c| c.0);
    let mut levels: Vec<Vec<NewOrg>> = Vec::new();
    let mut last_depth = 0;
    for (depth, org) in creates {
        if levels.is_empty() || depth != last_depth {
            levels.push(Vec::new());
            last_depth = depth;
        }
        if let Some(level) = levels.last_mut() {
            level.push(org);
        }
    }
    plan.creates = levels;
    moves.sort_by_key(|m| m.0);
    plan.moves = moves.into_iter().map(|(_, code, parent)| (code, parent)).collect();
    plan.problems = problems;
    Ok(plan)
}

/// The organisations that closing these would close: each closing organisation itself,
/// and its descendants still open on that day, except those under another organisation
/// of the file (the file decides for them). With each: its code, first day, whether it is
/// the closing organisation itself, and whether it has records after that day.
async fn closing_set(
    conn: &mut PgConnection,
    closings: &[(i64, NaiveDate)],
    file_ids: &[i64],
) -> sqlx::Result<Vec<(i64, String, NaiveDate, bool, bool)>> {
    let ids: Vec<i64> = closings.iter().map(|c| c.0).collect();
    let days: Vec<NaiveDate> = closings.iter().map(|c| c.1).collect();
    sqlx::query_as(
        "select c.id, d.code, d.active_from, d.id = c.id,
                exists (select 1 from record r where r.org_id = d.id and r.occurred_on > c.until
                          and r.state <> 'withdrawn')
         from unnest($1::bigint[], $2::date[]) c(id, until)
         join org x on x.id = c.id
         join org d on d.path >= x.path and d.path < subtree_upper(x.path)
         where d.id = c.id
            or (not (d.path[cardinality(x.path) + 1:] && $3::bigint[])
                and (d.active_until is null or d.active_until > c.until))
         order by d.path
         limit 1000000",
    )
    .bind(&ids)
    .bind(&days)
    .bind(file_ids)
    .fetch_all(conn)
    .await
}

fn internal(e: crate::error::AppError) -> anyhow::Error {
    match e {
        crate::error::AppError::Internal(e) => e,
        other => anyhow::anyhow!("{other}"),
    }
}

pub(super) async fn apply(
    conn: &mut PgConnection,
    plan: Plan,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> anyhow::Result<Summary> {
    let mut summary = plan.summary;
    // New organisations, and existing ones whose liability may have changed.
    let mut created: Vec<i64> = Vec::new();
    let mut sync: Vec<i64> = Vec::new();

    // New organisations, shallowest first, so that each finds its parent's path.
    let total: u64 = plan.creates.iter().map(|l| l.len() as u64).sum();
    let mut done: u64 = 0;
    progress.report(Phase::Creating, 0, total);
    for level in &plan.creates {
        for chunk in level.chunks(CHUNK) {
            let codes: Vec<&str> = chunk.iter().map(|o| o.code.as_str()).collect();
            let names: Vec<&str> = chunk.iter().map(|o| o.name.as_str()).collect();
            let kinds: Vec<&str> = chunk.iter().map(|o| o.kind.as_str()).collect();
            let parents: Vec<Option<&str>> = chunk.iter().map(|o| o.parent.as_deref()).collect();
            let froms: Vec<NaiveDate> = chunk.iter().map(|o| o.from).collect();
            let untils: Vec<Option<NaiveDate>> = chunk.iter().map(|o| o.until).collect();
            let ids: Vec<i64> = sqlx::query_scalar(
                "insert into org (code, name, kind, parent_id, active_from, active_until, created_at)
                 select u.code, u.name, u.kind, p.id, u.active_from, u.active_until, $7
                 from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[], $6::date[])
                      with ordinality as u(code, name, kind, parent, active_from, active_until, n)
                 left join org p on p.code = u.parent
                 where u.parent is null or p.id is not null
                 order by u.n
                 returning id",
            )
            .bind(&codes)
            .bind(&names)
            .bind(&kinds)
            .bind(&parents)
            .bind(&froms)
            .bind(&untils)
            .bind(now)
            .fetch_all(&mut *conn)
            .await?;
            anyhow::ensure!(ids.len() == chunk.len(), "a new organisation's parent vanished during the import");
            created.extend(ids);
            done += chunk.len() as u64;
            progress.report(Phase::Creating, done, total);
        }
    }

    // The planner's statistics of `org` do not know the rows this transaction added
    // (autovacuum cannot see them): without them it joins a large import's organisations
    // as if they were a handful, and the statements below take minutes instead of seconds.
    if created.len() as u64 >= ANALYZE_AFTER {
        analyze(conn, "org").await?;
    }

    // Moves, shallowest first: each parent is in its final place before its children move.
    let total = plan.moves.len() as u64;
    for (i, (code, parent)) in plan.moves.iter().enumerate() {
        progress.report(Phase::Moving, i as u64, total);
        let org = orgs::find_by_code(conn, code).await?.ok_or_else(|| anyhow::anyhow!("{code} vanished"))?;
        let to = orgs::find_by_code(conn, parent).await?.ok_or_else(|| anyhow::anyhow!("{parent} vanished"))?;
        let moved = orgs::move_to(conn, &org, &to, now).await.map_err(internal)?;
        summary.duties_created += moved.duties_created.max(0) as u64;
    }

    // Names, kinds and days of existing organisations, only where they differ.
    let total = plan.updates.len() as u64;
    progress.report(Phase::Updating, 0, total);
    let mut done = 0;
    for chunk in plan.updates.chunks(CHUNK) {
        let ids: Vec<i64> = chunk.iter().map(|u| u.id).collect();
        let names: Vec<&str> = chunk.iter().map(|u| u.name.as_str()).collect();
        let kinds: Vec<&str> = chunk.iter().map(|u| u.kind.as_str()).collect();
        let froms: Vec<NaiveDate> = chunk.iter().map(|u| u.from).collect();
        let untils: Vec<Option<NaiveDate>> = chunk.iter().map(|u| u.until).collect();
        sqlx::query(
            "update org o set name = u.name, kind = u.kind, active_from = u.active_from, active_until = u.active_until
             from unnest($1::bigint[], $2::text[], $3::text[], $4::date[], $5::date[])
                  as u(id, name, kind, active_from, active_until)
             where o.id = u.id
               and (o.name, o.kind, o.active_from, o.active_until)
                   is distinct from (u.name, u.kind, u.active_from, u.active_until)",
        )
        .bind(&ids)
        .bind(&names)
        .bind(&kinds)
        .bind(&froms)
        .bind(&untils)
        .execute(&mut *conn)
        .await?;
        sync.extend(chunk.iter().filter(|u| u.liability).map(|u| u.id));
        done += chunk.len() as u64;
        progress.report(Phase::Updating, done, total);
    }

    // Descendants close with their ancestor (those the file names were set above).
    if !plan.closings.is_empty() {
        progress.report(Phase::Closing, 0, plan.closings.len() as u64);
        let ids: Vec<i64> = plan.closings.iter().map(|c| c.0).collect();
        let days: Vec<NaiveDate> = plan.closings.iter().map(|c| c.1).collect();
        let closed: Vec<i64> = sqlx::query_scalar(
            "update org d set active_until = c.until
             from unnest($1::bigint[], $2::date[]) c(id, until) join org x on x.id = c.id
             where d.path >= x.path and d.path < subtree_upper(x.path) and d.id <> x.id
               and not (d.path[cardinality(x.path) + 1:] && $3::bigint[])
               and (d.active_until is null or d.active_until > c.until)
             returning d.id",
        )
        .bind(&ids)
        .bind(&days)
        .bind(&plan.file_ids)
        .fetch_all(&mut *conn)
        .await?;
        summary.cascaded = closed.len() as u64;
        sync.extend(closed);
    }

    // What the organisations owe. New organisations have no duties, records or
    // notifications yet, so creating what they owe is all there is to do for them;
    // organisations that changed are brought in line by `duties::sync_orgs`.
    let total = (created.len() + sync.len()) as u64;
    progress.report(Phase::Duties, 0, total);
    summary.duties_created +=
        create_owed_duties(conn, &created, now, &|done| progress.report(Phase::Duties, done, total)).await?;
    if summary.duties_created >= ANALYZE_AFTER {
        analyze(conn, "duty").await?;
    }
    sync.sort_unstable();
    sync.dedup();
    let mut done = created.len() as u64;
    for chunk in sync.chunks(SYNC_CHUNK) {
        let synced = duties::sync_orgs(conn, chunk, now).await?;
        summary.duties_created += synced.created.max(0) as u64;
        done += chunk.len() as u64;
        progress.report(Phase::Duties, done, total);
    }
    Ok(summary)
}

/// Refresh a table's planner statistics inside the import's transaction (ANALYZE counts
/// the rows the transaction itself wrote). Only a hint for the planner: should it be
/// refused (a database user that does not own the table), the import goes on.
async fn analyze(conn: &mut PgConnection, table: &'static str) -> sqlx::Result<()> {
    let statement = match table {
        "org" => "analyze org",
        _ => "analyze duty",
    };
    sqlx::query("savepoint import_analyze").execute(&mut *conn).await?;
    match sqlx::query(statement).execute(&mut *conn).await {
        Ok(_) => sqlx::query("release savepoint import_analyze").execute(&mut *conn).await.map(|_| ()),
        Err(e) => {
            tracing::warn!("refreshing the statistics of {table} failed: {e}");
            sqlx::query("rollback to savepoint import_analyze").execute(&mut *conn).await.map(|_| ())
        }
    }
}

/// Create the duties that new organisations owe for every rule period already
/// materialized: the insert of `duties::sync_orgs`, for organisations that have no
/// duties, records or notifications yet (so nothing to update, remove or recount), in
/// batches, under the liability lock. Returns how many were created.
async fn create_owed_duties(
    conn: &mut PgConnection,
    org_ids: &[i64],
    now: DateTime<Utc>,
    progress: &(dyn Fn(u64) + Sync),
) -> sqlx::Result<u64> {
    if org_ids.is_empty() {
        return Ok(0);
    }
    duties::lock_shared(conn).await?;
    let mut created = 0;
    let mut done = 0;
    for chunk in org_ids.chunks(DUTY_CHUNK) {
        created += sqlx::query(
            "insert into duty (org_id, rule_id, person_id, period_key, required, due_at, cancelled, created_at,
                               waived_at, waived_by, waived_reason)
             select od.org_id, od.rule_id, od.person_id, od.period_key, od.required, od.due_at, od.cancelled, $2,
                    od.waived_at, od.waived_by, od.waived_reason
             from owed_duty od join rule_period rp on rp.rule_id = od.rule_id and rp.period_key = od.period_key
             where od.org_id = any($1) and rp.materialized_at is not null
             on conflict do nothing",
        )
        .bind(chunk)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        done += chunk.len() as u64;
        progress(done);
    }
    Ok(created)
}
