//! The administration's landing page (系统管理): one entry per admin area, each with what
//! it holds now, so that an admin putting a county into service sees where to begin (the
//! tree, then people and roles, then the responsibility systems) and how far they are.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use super::{Layout, PageError, PageResultExt, render};
use crate::app::App;
use crate::db::tree;
use crate::web::guard;
use crate::web::i18n::Tr;
use crate::web::session::PageUser;

pub fn router() -> Router<App> {
    Router::new().route("/admin", get(admin_index))
}

/// One admin area as the landing page offers it.
pub struct Area {
    pub href: &'static str,
    pub icon: &'static str,
    pub title: &'static str,
    pub lead: &'static str,
    /// What the area holds now ("128 个组织，其中 3 个已撤销"), when it is counted here.
    pub count: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/index.html")]
struct AdminPage {
    t: Tr,
    layout: Layout,
    /// Setting up: the steps in the order a new deployment takes them.
    setup: Vec<Area>,
    /// Running: the areas an admin comes back to.
    running: Vec<Area>,
}

async fn admin_index(State(app): State<App>, user: PageUser) -> Result<Response, PageError> {
    guard::require_admin(&user.principal).page(&user)?;
    let t = user.tr;
    let mut conn = app.pool.acquire().await.page(&user)?;
    let c = tree::admin_counts(&mut conn, user.today).await.page(&user)?;
    drop(conn);
    // `key` is `<catalogue>.area_<name>`: each admin area names itself in its own catalogue.
    let area =
        |href, icon, key: &str, count| Area { href, icon, title: t.t(key), lead: t.t(&format!("{key}_lead")), count };
    let setup = vec![
        area(
            "/admin/orgs",
            "network",
            "admin.area_orgs",
            Some(t.f2("admin.count_orgs", c.orgs_open, c.orgs - c.orgs_open)),
        ),
        area("/admin/kinds", "list-tree", "admin.area_kinds", Some(t.f2("admin.count_kinds", c.kinds, c.kinds_added))),
        area(
            "/admin/people",
            "users",
            "admin.area_people",
            Some(t.f3("admin.count_people", c.people, c.roles_now, c.accounts)),
        ),
        area("/admin/users", "key-round", "admin_users.area_users", None),
        area("/admin/templates", "scroll-text", "admin.area_templates", None),
        area("/admin/import", "file-spreadsheet", "admin.area_import", None),
    ];
    let running = vec![
        area("/admin/systems", "clipboard-check", "admin.area_systems", None),
        area("/subtree", "building-2", "admin.area_subtree", None),
        area("/admin/audit", "history", "admin_users.area_audit", None),
        area("/admin/settings", "settings", "admin_users.area_settings", None),
    ];
    let page = AdminPage { t, layout: Layout::new(&user, "admin", "/admin"), setup, running };
    Ok(render(&page))
}
