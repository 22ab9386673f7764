//! Bulk import and export for admins (批量导入): upload a CSV or XLSX file, read the dry
//! run's report (counts, and every problem by row, column and reason), then confirm to
//! import the same file — kept on the server under `ZRZ_DATA_DIR/imports/<id>` with its
//! SHA-256, so nobody uploads twice. The import runs in a background task; the page
//! follows it (htmx polling every second, or a refresh without JavaScript). Exports
//! download the same layouts.

use std::collections::HashSet;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{Layout, PageError, PageResultExt, error_page, render, render_status};
use crate::app::App;
use crate::db::audit;
use crate::import::read as import_read;
use crate::import::{self, Actor, FileInfo, Outcome, Phase, Problem, Progress, Summary, What, export};
use crate::web::format;
use crate::web::guard;
use crate::web::i18n::Tr;
use crate::web::session::PageUser;

/// Problems kept for the report (the command line lists them all).
const MAX_SHOWN: usize = 1000;

/// Uploads over the limit are read to this many bytes (and thrown away) so that the
/// browser gets the page that says so; beyond it the connection is simply refused.
const DRAIN_LIMIT: u64 = 4 * import_read::MAX_BYTES;

/// Uploaded files and reports older than this are deleted.
const KEEP: Duration = Duration::from_secs(24 * 3600);

/// A running import that has not reported for this long was interrupted (the server
/// stopped): its transaction rolled back, nothing changed.
const STALE_SECS: i64 = 600;

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/import", get(import_form).post(upload).layer(DefaultBodyLimit::disable()))
        .route("/admin/import/{id}", get(show_import))
        .route("/admin/import/{id}/commit", post(confirm_import))
        .route("/admin/import/{id}/status", get(import_status))
        .route("/admin/export/{file}", get(export_file))
}

// ---------------------------------------------------------------------------------------
// The stored upload and its report
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ImportState {
    /// Checked (the dry run); waiting for confirmation when it has no problem.
    Checked,
    Running,
    Done,
    Failed,
}

/// What the server keeps about one upload, next to the file (`<id>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    id: String,
    what: What,
    file_name: String,
    size: u64,
    sha256: String,
    user_id: i64,
    uploaded_at: DateTime<Utc>,
    state: ImportState,
    summary: Summary,
    problems: Vec<Problem>,
    problem_count: usize,
    phase: Phase,
    done: u64,
    total: u64,
    /// Seconds since the epoch (system time) of the last progress report.
    heartbeat: i64,
    finished_at: Option<DateTime<Utc>>,
}

fn imports_dir(app: &App) -> PathBuf {
    app.config.data_dir.join("imports")
}

fn valid_id(id: &str) -> bool {
    (16..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn data_path(dir: &FsPath, id: &str) -> PathBuf {
    dir.join(format!("{id}.upload"))
}

fn meta_path(dir: &FsPath, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

fn epoch_secs() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Write the report atomically (a reader never sees half of it).
fn save(dir: &FsPath, s: &Stored) -> std::io::Result<()> {
    let tmp = dir.join(format!("{}.json.tmp", s.id));
    std::fs::write(&tmp, serde_json::to_vec(s).map_err(std::io::Error::other)?)?;
    std::fs::rename(tmp, meta_path(dir, &s.id))
}

fn load(dir: &FsPath, id: &str) -> Option<Stored> {
    if !valid_id(id) {
        return None;
    }
    serde_json::from_slice(&std::fs::read(meta_path(dir, id)).ok()?).ok()
}

/// The imports this process runs now.
fn running() -> &'static Mutex<HashSet<String>> {
    static RUNNING: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

fn is_running_here(id: &str) -> bool {
    running().lock().map(|r| r.contains(id)).unwrap_or(false)
}

/// Delete uploads and reports older than a day.
fn sweep(dir: &FsPath) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|m| m.elapsed().ok()).is_some_and(|a| a > KEEP);
        let name = e.file_name().to_string_lossy().into_owned();
        let id = name.split('.').next().unwrap_or("");
        if old && !is_running_here(id) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

// ---------------------------------------------------------------------------------------
// The form
// ---------------------------------------------------------------------------------------

/// A layout's columns, for the page that documents them.
struct ColumnDoc {
    header: String,
    other: String,
    /// required, column_required, optional or read_only (a key of `import.toml`).
    need: &'static str,
    help: String,
}

struct LayoutDoc {
    what: &'static str,
    label: String,
    columns: Vec<ColumnDoc>,
    sample_csv: String,
    sample_xlsx: String,
    export_csv: String,
    export_xlsx: String,
}

fn layout_docs(t: &Tr, layout: &Layout) -> Vec<LayoutDoc> {
    What::ALL
        .into_iter()
        .map(|w| LayoutDoc {
            what: w.as_str(),
            label: t.t(w.label_key()).to_owned(),
            columns: w
                .columns()
                .iter()
                .map(|c| ColumnDoc {
                    header: c.header(t.locale).to_owned(),
                    other: if t.is_en() { c.zh.to_owned() } else { c.name.to_owned() },
                    need: match (c.required, c.empty_ok, c.read_only) {
                        (true, false, _) => "import.required",
                        (true, true, _) => "import.column_required",
                        (false, _, true) => "import.read_only",
                        (false, _, false) => "import.optional",
                    },
                    help: t.t(c.help).to_owned(),
                })
                .collect(),
            sample_csv: layout.asset(&format!("samples/{}.csv", w.as_str())),
            sample_xlsx: layout.asset(&format!("samples/{}.xlsx", w.as_str())),
            export_csv: format!("/admin/export/{}.csv", w.as_str()),
            export_xlsx: format!("/admin/export/{}.xlsx", w.as_str()),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "admin/import.html")]
struct ImportPage {
    t: Tr,
    layout: Layout,
    what: &'static str,
    whats: Vec<(&'static str, String)>,
    docs: Vec<LayoutDoc>,
    what_error: Option<String>,
    file_error: Option<String>,
    max_bytes: u64,
    max_label: String,
}

impl ImportPage {
    fn new(t: Tr, layout: Layout, what: Option<What>) -> ImportPage {
        let docs = layout_docs(&t, &layout);
        ImportPage {
            t,
            whats: What::ALL.into_iter().map(|w| (w.as_str(), t.t(w.label_key()).to_owned())).collect(),
            docs,
            layout,
            what: what.map(What::as_str).unwrap_or(""),
            what_error: None,
            file_error: None,
            max_bytes: import_read::MAX_BYTES,
            max_label: import::size_label(import_read::MAX_BYTES),
        }
    }

    fn has_errors(&self) -> bool {
        self.what_error.is_some() || self.file_error.is_some()
    }
}

#[derive(Deserialize)]
struct FormQuery {
    what: Option<String>,
}

async fn import_form(user: PageUser, Query(q): Query<FormQuery>) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let what = q.what.as_deref().and_then(What::parse).or(Some(What::Orgs));
    Ok(render(&ImportPage::new(user.tr, Layout::new(&user, "admin", "/admin/import"), what)))
}

/// What the upload form sent.
struct Received {
    what: Option<String>,
    /// The file's name as the browser gave it, its size and SHA-256 (kept on disk).
    file: Option<(String, u64, String)>,
    too_large: bool,
}

/// Stream the multipart body: the file to `<id>.upload` while hashing it, stopping at the
/// size limit (the rest is read and dropped, up to [`DRAIN_LIMIT`]).
async fn receive(app: &App, req: Request, dir: &FsPath, id: &str) -> Result<Received, StatusCode> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let mut multipart = Multipart::from_request(req, app).await.map_err(|_| StatusCode::BAD_REQUEST)?;
    let mut got = Received { what: None, file: None, too_large: false };
    let mut seen: u64 = 0;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => return Err(StatusCode::BAD_REQUEST),
        };
        match field.name().unwrap_or("") {
            "what" => {
                let mut text = Vec::new();
                while let Ok(Some(chunk)) = field.chunk().await {
                    seen += chunk.len() as u64;
                    if text.len() < 64 {
                        text.extend_from_slice(&chunk[..chunk.len().min(64)]);
                    }
                }
                got.what = Some(String::from_utf8_lossy(&text).trim().to_owned());
            }
            "file" => {
                let name = field.file_name().unwrap_or("").to_owned();
                let part = dir.join(format!("{id}.part"));
                let mut out = tokio::fs::File::create(&part).await.map_err(|e| {
                    tracing::error!("creating an import upload failed: {e}");
                    StatusCode::INTERNAL_SERVER_ERROR
                })?;
                let mut hash = Sha256::new();
                let mut size: u64 = 0;
                loop {
                    let chunk = match field.chunk().await {
                        Ok(Some(c)) => c,
                        Ok(None) => break,
                        Err(_) => {
                            let _ = tokio::fs::remove_file(&part).await;
                            return Err(StatusCode::BAD_REQUEST);
                        }
                    };
                    seen += chunk.len() as u64;
                    if seen > DRAIN_LIMIT {
                        let _ = tokio::fs::remove_file(&part).await;
                        return Err(StatusCode::PAYLOAD_TOO_LARGE);
                    }
                    if got.too_large {
                        continue;
                    }
                    size += chunk.len() as u64;
                    if size > import_read::MAX_BYTES {
                        got.too_large = true;
                        continue;
                    }
                    hash.update(&chunk);
                    if let Err(e) = out.write_all(&chunk).await {
                        tracing::error!("writing an import upload failed: {e}");
                        let _ = tokio::fs::remove_file(&part).await;
                        return Err(StatusCode::INTERNAL_SERVER_ERROR);
                    }
                }
                let _ = out.flush().await;
                drop(out);
                if got.too_large || (name.is_empty() && size == 0) {
                    let _ = tokio::fs::remove_file(&part).await;
                } else {
                    tokio::fs::rename(&part, data_path(dir, id)).await.map_err(|e| {
                        tracing::error!("keeping an import upload failed: {e}");
                        StatusCode::INTERNAL_SERVER_ERROR
                    })?;
                    got.file = Some((name, size, hex::encode(hash.finalize())));
                }
            }
            _ => while let Ok(Some(_)) = field.chunk().await {},
        }
    }
    Ok(got)
}

/// A file name safe to show and keep: its last path part, without control characters.
fn display_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if clean.trim().is_empty() { "upload".to_owned() } else { clean }
}

async fn upload(State(app): State<App>, user: PageUser, req: Request) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let t = user.tr;
    let dir = imports_dir(&app);
    tokio::fs::create_dir_all(&dir).await.map_err(anyhow::Error::from).page(&user)?;
    {
        let dir = dir.clone();
        let _ = tokio::task::spawn_blocking(move || sweep(&dir)).await;
    }
    let id = crate::secret::random_token(16);
    let got = match receive(&app, req, &dir, &id).await {
        Ok(g) => g,
        Err(StatusCode::INTERNAL_SERVER_ERROR) => {
            return Err(PageError(anyhow::anyhow!("storing an upload failed").into(), t.locale));
        }
        Err(status) => return Ok(error_page(status, t.locale)),
    };
    let what = got.what.as_deref().and_then(What::parse);
    let mut page = ImportPage::new(t, Layout::new(&user, "admin", "/admin/import"), what);
    if what.is_none() {
        page.what_error = Some(t.t("import.err_what").to_owned());
    }
    if got.too_large {
        page.file_error = Some(t.f1("import.file_too_large", import::size_label(import_read::MAX_BYTES)));
        return Ok(render_status(StatusCode::PAYLOAD_TOO_LARGE, &page));
    }
    let Some((raw_name, size, sha256)) = got.file else {
        page.file_error = Some(t.t("import.err_no_file").to_owned());
        return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let Some(what) = what else {
        let _ = tokio::fs::remove_file(data_path(&dir, &id)).await;
        return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let bytes = tokio::fs::read(data_path(&dir, &id)).await.map_err(anyhow::Error::from).page(&user)?;
    let table = match import::read_bytes(Arc::new(bytes)).await {
        Ok(table) => table,
        Err(problem) => {
            let _ = tokio::fs::remove_file(data_path(&dir, &id)).await;
            page.file_error = Some(Problem::file(problem).reason(&t));
            return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let outcome: Outcome = import::check(&app, what, &table).await.page(&user)?;
    drop(table);
    let problem_count = outcome.problems.len();
    let stored = Stored {
        id: id.clone(),
        what,
        file_name: display_name(&raw_name),
        size,
        sha256,
        user_id: user.principal.user_id,
        uploaded_at: user.now,
        state: ImportState::Checked,
        summary: outcome.summary,
        problems: outcome.problems.into_iter().take(MAX_SHOWN).collect(),
        problem_count,
        phase: Phase::Checking,
        done: 0,
        total: 0,
        heartbeat: epoch_secs(),
        finished_at: None,
    };
    if problem_count > 0 {
        // Nothing to confirm: the file itself is not needed any more.
        let _ = tokio::fs::remove_file(data_path(&dir, &id)).await;
    }
    save(&dir, &stored).map_err(anyhow::Error::from).page(&user)?;
    Ok(Redirect::to(&format!("/admin/import/{id}")).into_response())
}

// ---------------------------------------------------------------------------------------
// The report, the confirmation and the progress
// ---------------------------------------------------------------------------------------

struct ProblemView {
    row: String,
    column: String,
    reason: String,
}

/// The report as the page and its htmx fragment show it.
struct StatusView {
    id: String,
    /// checked, running, done, failed or interrupted.
    state: &'static str,
    what: &'static str,
    what_label: String,
    file_name: String,
    format_label: String,
    size_label: String,
    uploaded_label: String,
    summary: Summary,
    problems: Vec<ProblemView>,
    problem_count: usize,
    truncated: bool,
    phase_label: String,
    done: u64,
    total: u64,
    sha256: String,
    csrf: String,
    finished_label: String,
}

impl StatusView {
    fn new(t: &Tr, tz: chrono_tz::Tz, s: &Stored, csrf: &str) -> StatusView {
        let interrupted =
            s.state == ImportState::Running && !is_running_here(&s.id) && epoch_secs() - s.heartbeat > STALE_SECS;
        let state = match s.state {
            ImportState::Checked => "checked",
            ImportState::Running if interrupted => "interrupted",
            ImportState::Running => "running",
            ImportState::Done => "done",
            ImportState::Failed => "failed",
        };
        StatusView {
            id: s.id.clone(),
            state,
            what: s.what.as_str(),
            what_label: t.t(s.what.label_key()).to_owned(),
            file_name: s.file_name.clone(),
            format_label: s.summary.format.map(|f| f.label().to_owned()).unwrap_or_default(),
            size_label: size_label(s.size),
            uploaded_label: format::instant(t, tz, s.uploaded_at),
            summary: s.summary.clone(),
            problems: s
                .problems
                .iter()
                .map(|p| ProblemView {
                    row: match p.row {
                        Some(r) => t.f1("import.row_n", r),
                        None => t.t("import.whole_file").to_owned(),
                    },
                    column: p.column_label(s.what, t).unwrap_or_default(),
                    reason: p.reason(t),
                })
                .collect(),
            problem_count: s.problem_count,
            truncated: s.problem_count > s.problems.len(),
            phase_label: t.t(s.phase.label_key()).to_owned(),
            done: s.done,
            total: s.total,
            sha256: s.sha256.clone(),
            csrf: csrf.to_owned(),
            finished_label: s.finished_at.map(|at| format::instant(t, tz, at)).unwrap_or_default(),
        }
    }

    /// The page's heading: the check, the import under way, or its result.
    fn title_key(&self) -> &'static str {
        match self.state {
            "checked" => "import.report_title",
            "running" => "import.report_title_running",
            _ => "import.report_title_done",
        }
    }

    fn done_label(&self) -> String {
        thousands(self.done)
    }

    fn total_label(&self) -> String {
        thousands(self.total)
    }

    fn percent(&self) -> u64 {
        (self.done * 100).checked_div(self.total).unwrap_or(0).min(100)
    }

    fn is_orgs(&self) -> bool {
        self.what == "orgs"
    }

    fn is_people(&self) -> bool {
        self.what == "people"
    }
}

/// 100000 → "100,000".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn size_label(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KB", bytes.div_ceil(1024).max(1))
    }
}

#[derive(Template)]
#[template(path = "admin/import_report.html")]
struct ReportPage {
    t: Tr,
    layout: Layout,
    s: StatusView,
    max_bytes: u64,
    max_label: String,
}

#[derive(Template)]
#[template(path = "admin/import_status.html")]
struct StatusFragment {
    t: Tr,
    s: StatusView,
}

/// The stored report of an upload by this user; another user's is not found.
fn own_report(app: &App, user: &PageUser, id: &str) -> Result<Stored, PageError> {
    guard::require_admin(&user.principal).page(user)?;
    match load(&imports_dir(app), id) {
        Some(s) if s.user_id == user.principal.user_id => Ok(s),
        _ => Err(PageError(crate::error::AppError::not_found("import"), user.tr.locale)),
    }
}

async fn show_import(State(app): State<App>, user: PageUser, Path(id): Path<String>) -> Result<Response, PageError> {
    let stored = own_report(&app, &user, &id)?;
    let here = format!("/admin/import/{id}");
    let page = ReportPage {
        t: user.tr,
        layout: Layout::new(&user, "admin", &here),
        s: StatusView::new(&user.tr, app.settings().tz, &stored, &user.csrf),
        max_bytes: import_read::MAX_BYTES,
        max_label: import::size_label(import_read::MAX_BYTES),
    };
    Ok(render(&page))
}

/// The progress fragment that the report page polls with htmx (pages link only to the
/// whole report, which works without JavaScript).
async fn import_status(State(app): State<App>, user: PageUser, Path(id): Path<String>) -> Result<Response, PageError> {
    let stored = own_report(&app, &user, &id)?;
    let view = StatusView::new(&user.tr, app.settings().tz, &stored, &user.csrf);
    let finished = view.state != "running";
    let mut resp = render(&StatusFragment { t: user.tr, s: view });
    if finished {
        // The whole page changes (its heading, the form to upload again): load it anew.
        resp.headers_mut().insert("hx-refresh", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    sha256: String,
}

/// Progress written to the report file, at most twice a second.
struct FileProgress {
    dir: PathBuf,
    stored: Mutex<(Stored, Instant)>,
}

impl Progress for FileProgress {
    fn report(&self, phase: Phase, done: u64, total: u64) {
        let Ok(mut guard) = self.stored.lock() else { return };
        let (s, last) = &mut *guard;
        let phase_changed = s.phase != phase;
        s.phase = phase;
        s.done = done;
        s.total = total;
        s.heartbeat = epoch_secs();
        if phase_changed || last.elapsed() >= Duration::from_millis(500) {
            *last = Instant::now();
            if let Err(e) = save(&self.dir, s) {
                tracing::warn!("writing an import's progress failed: {e}");
            }
        }
    }
}

async fn confirm_import(
    State(app): State<App>,
    user: PageUser,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<ConfirmForm>,
) -> Result<Response, PageError> {
    let mut stored = own_report(&app, &user, &id)?;
    let conflict = |why: &'static str| PageError(crate::error::AppError::conflict(why), user.tr.locale);
    if stored.state != ImportState::Checked || stored.problem_count > 0 {
        return Err(conflict("this file has been imported already, or has problems"));
    }
    let dir = imports_dir(&app);
    let bytes = tokio::fs::read(data_path(&dir, &id))
        .await
        .map_err(|_| conflict("the uploaded file is gone: upload it again"))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if sha256 != stored.sha256 || form.sha256 != stored.sha256 {
        return Err(conflict("the uploaded file changed: upload it again"));
    }
    {
        let mut r = running().lock().map_err(|_| conflict("busy"))?;
        if !r.insert(id.clone()) {
            return Err(conflict("this import is running"));
        }
    }
    stored.state = ImportState::Running;
    stored.phase = Phase::Waiting;
    stored.heartbeat = epoch_secs();
    if let Err(e) = save(&dir, &stored) {
        running().lock().map(|mut r| r.remove(&id)).ok();
        return Err(PageError(anyhow::Error::from(e).into(), user.tr.locale));
    }
    let actor =
        Actor { user_id: Some(user.principal.user_id), login: user.principal.login.clone(), ip: user.ip.clone() };
    tokio::spawn(run_import(app.clone(), dir, stored, bytes, actor));
    Ok(Redirect::to(&format!("/admin/import/{id}")).into_response())
}

/// The import itself, in the background: the report file follows its progress.
async fn run_import(app: App, dir: PathBuf, stored: Stored, bytes: Vec<u8>, actor: Actor) {
    let id = stored.id.clone();
    let what = stored.what;
    let info = FileInfo { name: stored.file_name.clone(), sha256: stored.sha256.clone(), size: stored.size };
    let progress = FileProgress { dir: dir.clone(), stored: Mutex::new((stored, Instant::now())) };
    let result = match import::read_bytes(Arc::new(bytes)).await {
        Ok(table) => import::commit(&app, what, &table, &info, &actor, &progress).await,
        Err(p) => Ok(Outcome { summary: Summary::default(), problems: vec![Problem::file(p)] }),
    };
    // Outside any request: the overview's kept counts learn of it here.
    app.counts.changed();
    let mut s = match progress.stored.into_inner() {
        Ok((s, _)) => s,
        Err(e) => e.into_inner().0,
    };
    match result {
        Ok(outcome) if outcome.problems.is_empty() => {
            s.state = ImportState::Done;
            s.summary = outcome.summary;
        }
        Ok(outcome) => {
            // The database changed between the dry run and the confirmation.
            s.state = ImportState::Failed;
            s.problem_count = outcome.problems.len();
            s.problems = outcome.problems.into_iter().take(MAX_SHOWN).collect();
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), import = %id, "an import failed");
            s.state = ImportState::Failed;
        }
    }
    s.finished_at = Some(app.now());
    s.heartbeat = epoch_secs();
    let _ = std::fs::remove_file(data_path(&dir, &id));
    if let Err(e) = save(&dir, &s) {
        tracing::error!("writing an import's report failed: {e}");
    }
    running().lock().map(|mut r| r.remove(&id)).ok();
}

// ---------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------

async fn export_file(State(app): State<App>, user: PageUser, Path(file): Path<String>) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let not_found = || PageError(crate::error::AppError::not_found("export"), user.tr.locale);
    let (name, ext) = file.rsplit_once('.').ok_or_else(not_found)?;
    let what = What::parse(name).ok_or_else(not_found)?;
    let format =
        export::Format::from_extension(ext).filter(|_| ext == ext.to_ascii_lowercase()).ok_or_else(not_found)?;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let sheet = export::sheet(&mut conn, what, user.tr.locale).await.page(&user)?;
    let rows = sheet.rows.len();
    // A read, logged as one (`orgs.export`): who took a copy of which data, and when.
    let action = format!("{}.export", what.as_str());
    audit::write(
        &mut conn,
        user.audit_entry(
            &action,
            ("export", what.as_str().to_owned()),
            None,
            serde_json::json!({"format": format.extension(), "rows": rows}),
        ),
    )
    .await
    .page(&user)?;
    drop(conn);
    let bytes = tokio::task::spawn_blocking(move || export::write(&sheet, format))
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r)
        .page(&user)?;
    let download = format!("zerenzhi-{}-{}.{}", what.as_str(), user.today.format("%Y-%m-%d"), format.extension());
    let mut resp = Body::from(bytes).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.media_type()));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{download}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
