//! Bulk import and export of organisations, people and role assignments (DESIGN.md
//! section 4, `import`): a file (CSV or XLSX) is read into rows ([`read`]), checked as a
//! whole against the database — every problem by row, column and reason — and, only when
//! it has none, written in one transaction with set-based statements ([`orgs`],
//! [`people`], [`roles`]). Rows equal to what the database holds change nothing, so the
//! same file imported twice changes nothing the second time. [`export`] writes the same
//! layouts. The command line and the admin pages both drive it from here.
//!
//! Problems carry message keys of `i18n/import.toml`, so the pages show them in the
//! reader's language and the command line in both.

pub mod export;
mod orgs;
mod people;
pub mod read;
mod roles;

use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::app::App;
use crate::db::audit;
use crate::web::i18n::{Locale, Tr};
use read::{Cell, FileProblem, Format, Row, Table};

/// Held for the length of an import's transaction: imports run one at a time.
const IMPORT_LOCK: i64 = 0x7a72_7a00_0101;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum What {
    /// Organisations: code, name, kind, parent, active_from, active_until.
    Orgs,
    /// People: code, name, login, phone, email, note.
    People,
    /// Role assignments: org, person (or login), role, from, until, acting.
    Roles,
}

impl What {
    pub const ALL: [What; 3] = [What::Orgs, What::People, What::Roles];

    pub fn as_str(self) -> &'static str {
        match self {
            What::Orgs => "orgs",
            What::People => "people",
            What::Roles => "roles",
        }
    }

    pub fn parse(s: &str) -> Option<What> {
        What::ALL.into_iter().find(|w| w.as_str() == s)
    }

    /// The columns of this layout, in the order exports write them.
    pub fn columns(self) -> &'static [Column] {
        match self {
            What::Orgs => &orgs::COLUMNS,
            What::People => &people::COLUMNS,
            What::Roles => &roles::COLUMNS,
        }
    }

    /// The layout's name as a message key (`import.what_orgs`).
    pub fn label_key(self) -> &'static str {
        match self {
            What::Orgs => "import.what_orgs",
            What::People => "import.what_people",
            What::Roles => "import.what_roles",
        }
    }
}

/// A column of a layout: its English and Chinese header, whether a file must have it,
/// and whether it is only there to read (exports write it, imports ignore it).
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub zh: &'static str,
    pub required: bool,
    /// A required column whose cells may be empty (a root has no parent).
    pub empty_ok: bool,
    pub read_only: bool,
    /// What the column holds, as a message key (for the page that documents the layout).
    pub help: &'static str,
}

impl Column {
    pub const fn new(name: &'static str, zh: &'static str, required: bool, help: &'static str) -> Column {
        Column { name, zh, required, empty_ok: false, read_only: false, help }
    }

    /// A column every file must have, whose cells may be empty.
    pub const fn present(name: &'static str, zh: &'static str, help: &'static str) -> Column {
        Column { name, zh, required: true, empty_ok: true, read_only: false, help }
    }

    pub const fn read_only(name: &'static str, zh: &'static str, help: &'static str) -> Column {
        Column { name, zh, required: false, empty_ok: true, read_only: true, help }
    }

    /// The header as a reader of `locale` expects it.
    pub fn header(&self, locale: Locale) -> &'static str {
        match locale {
            Locale::Zh => self.zh,
            Locale::En => self.name,
        }
    }
}

/// One problem of a file: where (row, column) and why (a message key and its arguments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The spreadsheet row (the header is row 1); none for the file as a whole.
    pub row: Option<u32>,
    /// The column's English header name.
    pub column: Option<String>,
    /// A key of `i18n/import.toml`.
    pub key: String,
    pub args: Vec<String>,
}

impl Problem {
    pub fn at(row: u32, column: &Column, key: &str, args: Vec<String>) -> Problem {
        Problem { row: Some(row), column: Some(column.name.to_owned()), key: key.to_owned(), args }
    }

    pub fn row(row: u32, key: &str, args: Vec<String>) -> Problem {
        Problem { row: Some(row), column: None, key: key.to_owned(), args }
    }

    pub fn file(p: FileProblem) -> Problem {
        let args = if p == FileProblem::TooLarge { vec![size_label(read::MAX_BYTES)] } else { vec![] };
        Problem { row: None, column: None, key: p.key().to_owned(), args }
    }

    /// The reason in one language.
    pub fn reason(&self, t: &Tr) -> String {
        fill(t.t(&self.key), &self.args)
    }

    /// The column's header in one language (as the layout names it), if any.
    pub fn column_label(&self, what: What, t: &Tr) -> Option<String> {
        let name = self.column.as_deref()?;
        Some(match what.columns().iter().find(|c| c.name == name) {
            Some(c) => c.header(t.locale).to_owned(),
            None => name.to_owned(),
        })
    }

    /// The line the command line prints: Chinese, then English.
    /// `第 17 行，上级组织代码（parent）：QX-09 不存在 / row 17, parent: QX-09 does not exist`
    pub fn line(&self, what: What) -> String {
        let zh = Tr::new(Locale::Zh);
        let en = Tr::new(Locale::En);
        let column = self.column.as_deref().map(|name| {
            let zh_name = what.columns().iter().find(|c| c.name == name).map(|c| c.zh).unwrap_or(name);
            (zh_name, name)
        });
        let (zh_where, en_where) = match (self.row, column) {
            (Some(r), Some((z, e))) => (format!("第 {r} 行，{z}（{e}）"), format!("row {r}, {e}")),
            (Some(r), None) => (format!("第 {r} 行"), format!("row {r}")),
            (None, _) => ("文件".to_owned(), "file".to_owned()),
        };
        format!("{zh_where}：{} / {en_where}: {}", self.reason(&zh), self.reason(&en))
    }
}

/// A message with `{0}`, `{1}`, … filled in.
pub fn fill(template: &str, args: &[String]) -> String {
    let mut out = template.to_owned();
    for (i, a) in args.iter().enumerate() {
        out = out.replace(&format!("{{{i}}}"), a);
    }
    out
}

/// "50 MB".
pub fn size_label(bytes: u64) -> String {
    format!("{} MB", bytes / (1024 * 1024))
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub format: Option<Format>,
    /// Data rows in the file.
    pub rows: u64,
    pub created: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// Organisations not in the file closed because an ancestor in it closes.
    pub cascaded: u64,
    /// Organisations in the file that move under another parent (with their subtrees).
    pub moved: u64,
    /// Duties created (only known after the import).
    pub duties_created: u64,
}

impl Summary {
    pub fn changes(&self) -> u64 {
        self.created + self.changed + self.cascaded
    }
}

/// The result of checking (and perhaps importing) a file.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub summary: Summary,
    pub problems: Vec<Problem>,
}

/// Where an import is in its work, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Waiting,
    Checking,
    Creating,
    Moving,
    Updating,
    Closing,
    Duties,
    Finishing,
}

impl Phase {
    pub fn label_key(self) -> &'static str {
        match self {
            Phase::Waiting => "import.phase_waiting",
            Phase::Checking => "import.phase_checking",
            Phase::Creating => "import.phase_creating",
            Phase::Moving => "import.phase_moving",
            Phase::Updating => "import.phase_updating",
            Phase::Closing => "import.phase_closing",
            Phase::Duties => "import.phase_duties",
            Phase::Finishing => "import.phase_finishing",
        }
    }
}

/// Told how far an import has come: a phase, and rows done of rows to do in it.
pub trait Progress: Send + Sync {
    fn report(&self, phase: Phase, done: u64, total: u64);
}

impl<F: Fn(Phase, u64, u64) + Send + Sync> Progress for F {
    fn report(&self, phase: Phase, done: u64, total: u64) {
        self(phase, done, total)
    }
}

/// Who imports, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub login: String,
    pub ip: Option<String>,
}

/// The file, as the audit log names it.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

impl FileInfo {
    pub fn of(name: &str, bytes: &[u8]) -> FileInfo {
        use sha2::Digest;
        FileInfo { name: name.to_owned(), sha256: hex::encode(sha2::Sha256::digest(bytes)), size: bytes.len() as u64 }
    }
}

/// Read a file's bytes into a table off the async threads (a large file takes a moment).
pub async fn read_bytes(bytes: std::sync::Arc<Vec<u8>>) -> Result<Table, FileProblem> {
    tokio::task::spawn_blocking(move || read::read(&bytes)).await.unwrap_or(Err(FileProblem::Unreadable))
}

/// Check a file without changing anything: the dry run.
pub async fn check(app: &App, what: What, table: &Table) -> anyhow::Result<Outcome> {
    let now = app.now();
    app.ensure_duties(now).await?;
    let mut conn = app.pool.acquire().await?;
    let plan = plan(&mut conn, what, table, now).await?;
    Ok(plan.outcome())
}

/// Check a file and, when it has no problem, import it: all or nothing, in one
/// transaction, with one audit entry (even when nothing changes).
pub async fn commit(
    app: &App,
    what: What,
    table: &Table,
    file: &FileInfo,
    actor: &Actor,
    progress: &dyn Progress,
) -> anyhow::Result<Outcome> {
    let now = app.now();
    progress.report(Phase::Waiting, 0, 0);
    app.ensure_duties(now).await?;
    let mut tx = app.pool.begin().await?;
    sqlx::query("select pg_advisory_xact_lock($1)").bind(IMPORT_LOCK).execute(&mut *tx).await?;
    progress.report(Phase::Checking, 0, table.rows.len() as u64);
    let plan = plan(&mut tx, what, table, now).await?;
    if !plan.problems().is_empty() {
        tx.rollback().await?;
        return Ok(plan.outcome());
    }
    let mut summary = match plan {
        Plan::Orgs(p) => orgs::apply(&mut tx, p, now, progress).await?,
        Plan::People(p) => people::apply(&mut tx, p, now, progress).await?,
        Plan::Roles(p) => roles::apply(&mut tx, p, now, progress).await?,
    };
    summary.format = Some(table.format);
    progress.report(Phase::Finishing, 0, 0);
    audit::write(
        &mut tx,
        audit::Entry {
            at: now,
            actor_id: actor.user_id,
            actor: &actor.login,
            action: match what {
                What::Orgs => "import.orgs",
                What::People => "import.people",
                What::Roles => "import.roles",
            },
            object_type: "import",
            object_id: file.sha256.clone(),
            org_id: None,
            detail: serde_json::json!({
                "file": file.name, "sha256": file.sha256, "size": file.size, "format": table.format,
                "rows": summary.rows, "created": summary.created, "changed": summary.changed,
                "unchanged": summary.unchanged, "cascaded": summary.cascaded, "moved": summary.moved,
                "duties_created": summary.duties_created,
            }),
            ip: actor.ip.as_deref(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Outcome { summary, problems: vec![] })
}

/// What a file would change, with its problems.
enum Plan {
    Orgs(orgs::Plan),
    People(people::Plan),
    Roles(roles::Plan),
}

impl Plan {
    fn problems(&self) -> &[Problem] {
        match self {
            Plan::Orgs(p) => &p.problems,
            Plan::People(p) => &p.problems,
            Plan::Roles(p) => &p.problems,
        }
    }

    fn outcome(&self) -> Outcome {
        let (summary, problems) = match self {
            Plan::Orgs(p) => (&p.summary, &p.problems),
            Plan::People(p) => (&p.summary, &p.problems),
            Plan::Roles(p) => (&p.summary, &p.problems),
        };
        Outcome { summary: summary.clone(), problems: problems.clone() }
    }
}

async fn plan(conn: &mut PgConnection, what: What, table: &Table, now: DateTime<Utc>) -> anyhow::Result<Plan> {
    let columns = match match_header(table, what.columns()) {
        Ok(c) => c,
        Err(problems) => {
            let summary = Summary { format: Some(table.format), rows: table.rows.len() as u64, ..Summary::default() };
            return Ok(match what {
                What::Orgs => Plan::Orgs(orgs::Plan::refused(summary, problems)),
                What::People => Plan::People(people::Plan::refused(summary, problems)),
                What::Roles => Plan::Roles(roles::Plan::refused(summary, problems)),
            });
        }
    };
    let mut plan = match what {
        What::Orgs => Plan::Orgs(orgs::plan(conn, table, &columns, now).await?),
        What::People => Plan::People(people::plan(conn, table, &columns).await?),
        What::Roles => Plan::Roles(roles::plan(conn, table, &columns).await?),
    };
    let (summary, problems) = match &mut plan {
        Plan::Orgs(p) => (&mut p.summary, &mut p.problems),
        Plan::People(p) => (&mut p.summary, &mut p.problems),
        Plan::Roles(p) => (&mut p.summary, &mut p.problems),
    };
    summary.format = Some(table.format);
    summary.rows = table.rows.len() as u64;
    problems.sort_by_key(|p| (p.row, column_position(what, p.column.as_deref())));
    Ok(plan)
}

fn column_position(what: What, name: Option<&str>) -> usize {
    name.and_then(|n| what.columns().iter().position(|c| c.name == n)).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// The header
// ---------------------------------------------------------------------------------------

/// Where each column of a layout is in the file (`None`: the file has no such column).
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    index: Vec<Option<usize>>,
}

impl Columns {
    /// Whether the file has the layout's column number `i`.
    pub fn has(&self, i: usize) -> bool {
        self.index.get(i).copied().flatten().is_some()
    }

    /// The cell of the layout's column `i` in a row.
    pub fn cell<'r>(&self, row: &'r Row, i: usize) -> &'r Cell {
        match self.index.get(i).copied().flatten() {
            Some(at) => row.get(at),
            None => &Cell::Empty,
        }
    }
}

/// A header name as people type it, for comparison: no "*" marking a required column,
/// no hint in parentheses ("成立日期（YYYY-MM-DD）"), case and separators ignored.
fn normalize_header(s: &str) -> String {
    let s = s.trim().trim_start_matches('\u{feff}').trim().trim_end_matches(['*', '＊']).trim();
    let s = match s.find(['(', '（']) {
        Some(i) if i > 0 => s[..i].trim(),
        _ => s,
    };
    s.to_lowercase().replace([' ', '-'], "_")
}

/// Spreadsheet column letters: 0 → A, 26 → AA.
fn column_letters(mut i: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push((b'A' + (i % 26) as u8) as char);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    out.iter().rev().collect()
}

/// Match a file's header to a layout's columns, in any order, in English or Chinese.
/// An unknown, repeated or unnamed column, or a missing required one, is a problem.
pub(crate) fn match_header(table: &Table, layout: &'static [Column]) -> Result<Columns, Vec<Problem>> {
    let row = table.header_row;
    let mut index: Vec<Option<usize>> = vec![None; layout.len()];
    let mut problems = Vec::new();
    for (at, raw) in table.header.iter().enumerate() {
        let name = normalize_header(raw);
        if name.is_empty() {
            if table.rows.iter().any(|r| !r.get(at).is_empty()) {
                problems.push(Problem::row(row, "import.header_blank", vec![column_letters(at)]));
            }
            continue;
        }
        match layout.iter().position(|c| c.name == name || normalize_header(c.zh) == name) {
            Some(i) if index[i].is_some() => {
                problems.push(Problem::at(row, &layout[i], "import.header_repeated", vec![raw.clone()]))
            }
            Some(i) => index[i] = Some(at),
            None => {
                let zh: Vec<String> = layout.iter().map(|c| format!("{}/{}", c.zh, c.name)).collect();
                let en: Vec<String> = layout.iter().map(|c| format!("{} ({})", c.name, c.zh)).collect();
                problems.push(Problem::row(
                    row,
                    "import.header_unknown",
                    vec![raw.clone(), zh.join("、"), en.join(", ")],
                ));
            }
        }
    }
    for (i, c) in layout.iter().enumerate() {
        if c.required && index[i].is_none() {
            problems.push(Problem::at(row, c, "import.header_missing", vec![format!("{}/{}", c.zh, c.name)]));
        }
    }
    if problems.is_empty() { Ok(Columns { index }) } else { Err(problems) }
}

// ---------------------------------------------------------------------------------------
// Cells shared by the layouts
// ---------------------------------------------------------------------------------------

/// A code (organisation or person): 1–64 letters, digits, '.', '_' or '-'.
pub(crate) fn valid_code(code: &str) -> bool {
    crate::db::orgs::validate_code(code).is_ok()
}

/// Text without control characters (a line break inside a cell).
pub(crate) fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A date cell: `Ok(None)` when empty, `Err(shown value)` when it is not a date.
pub(crate) fn date_cell(cell: &Cell) -> Result<Option<NaiveDate>, String> {
    match cell.text() {
        None => Ok(None),
        Some(shown) => read::parse_date(cell).map(Some).ok_or(shown),
    }
}

/// Push a bad-date problem for a cell that holds something other than a date.
pub(crate) fn bad_date(row: u32, column: &Column, shown: String) -> Problem {
    Problem::at(row, column, "import.bad_date", vec![shown])
}

/// Row numbers as a list, in Chinese ("3、5") and in English ("3, 5"): at most ten,
/// then "…". Messages take both and show the one of their language.
pub(crate) fn row_list(rows: &[u32]) -> [String; 2] {
    let mut parts: Vec<String> = rows.iter().take(10).map(u32::to_string).collect();
    if rows.len() > 10 {
        parts.push("…".to_owned());
    }
    [parts.join("、"), parts.join(", ")]
}

// ---------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------

/// `zerenzhi import orgs|people|roles FILE [--dry-run]`: problems one per line on
/// standard error (row, column, reason, in Chinese and English) and exit code 1; else the
/// counts on standard output.
pub async fn run_import_command(app: &App, what: What, file: &Path, dry_run: bool) -> anyhow::Result<ExitCode> {
    let path = file.to_owned();
    let read = tokio::task::spawn_blocking(move || read::read_path(&path)).await?;
    let (table, bytes) = match read {
        Ok(r) => r,
        Err(p) => {
            eprintln!("{}", Problem::file(p).line(what));
            println!("未导入：文件无法读取 / nothing imported: the file cannot be read");
            return Ok(ExitCode::FAILURE);
        }
    };
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let outcome = if dry_run {
        check(app, what, &table).await?
    } else {
        let info = FileInfo::of(&name, &bytes);
        drop(bytes);
        let actor = Actor { user_id: None, login: "cli".to_owned(), ip: None };
        commit(app, what, &table, &info, &actor, &|_: Phase, _: u64, _: u64| {}).await?
    };
    if !outcome.problems.is_empty() {
        for p in &outcome.problems {
            eprintln!("{}", p.line(what));
        }
        let n = outcome.problems.len();
        println!("未导入：发现 {n} 个问题 / nothing imported: {n} problem{}", if n == 1 { "" } else { "s" });
        return Ok(ExitCode::FAILURE);
    }
    let s = &outcome.summary;
    let (zh, en) = if dry_run {
        ("检查通过（未导入）", "dry run passed (nothing imported)")
    } else {
        ("导入完成", "imported")
    };
    println!(
        "{zh}：共 {} 行，新增 {}，修改 {}，不变 {}{} / {en}: {} rows, {} new, {} changed, {} unchanged{}",
        s.rows,
        s.created,
        s.changed,
        s.unchanged,
        if s.cascaded > 0 { format!("，另有 {} 个下级组织随上级撤销", s.cascaded) } else { String::new() },
        s.rows,
        s.created,
        s.changed,
        s.unchanged,
        if s.cascaded > 0 {
            format!(", {} more organisations closed with their parent", s.cascaded)
        } else {
            String::new()
        },
    );
    if !dry_run && what != What::People {
        println!("新建应办事项 {} 项 / {} duties created", s.duties_created, s.duties_created);
    }
    Ok(ExitCode::SUCCESS)
}

/// `zerenzhi export orgs|people|roles FILE`: CSV or XLSX by the file's extension, with
/// Chinese headers.
pub async fn run_export_command(app: &App, what: What, file: &Path) -> anyhow::Result<ExitCode> {
    let Some(format) = export::Format::from_path(file) else {
        eprintln!("文件名须以 .csv 或 .xlsx 结尾 / the file name must end in .csv or .xlsx: {}", file.display());
        return Ok(ExitCode::FAILURE);
    };
    let mut conn = app.pool.acquire().await?;
    let sheet = export::sheet(&mut conn, what, Locale::Zh).await?;
    drop(conn);
    let rows = sheet.rows.len();
    let bytes = tokio::task::spawn_blocking(move || export::write(&sheet, format)).await??;
    tokio::fs::write(file, &bytes).await.map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))?;
    println!("已导出 {rows} 行到 {} / exported {rows} rows to {}", file.display(), file.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_in_either_language_with_decorations() {
        assert_eq!(normalize_header(" 组织代码* "), normalize_header("组织代码"));
        assert_eq!(normalize_header("成立日期（YYYY-MM-DD）"), normalize_header("成立日期"));
        assert_eq!(normalize_header("Active From"), "active_from");
        assert_eq!(normalize_header("\u{feff}code"), "code");
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(27), "AB");
    }

    #[test]
    fn a_problem_line_names_row_column_and_reason_in_both_languages() {
        let p = Problem::at(17, &orgs::COLUMNS[3], "import.parent_unknown", vec!["QX-09".into()]);
        let line = p.line(What::Orgs);
        assert!(line.starts_with("第 17 行，上级组织代码（parent）：QX-09 不存在"), "{line}");
        assert!(line.contains(" / row 17, parent: QX-09 does not exist"), "{line}");
    }
}
