//! Who may call which route (SECURITY.md rows 17–18, DESIGN.md section 3), over HTTP.
//!
//! The routes come from the sources at test time (every `.route(..)` the router mounts,
//! see `common::mounted_routes`), so a route added without an entry in [`entry`] fails the
//! test. Each route is called by every role — anonymous, an admin, the secretary, the
//! coordinator and the inspector of the committee C, a leadership member and the secretary
//! of its branch B1, the secretary of the sibling branch B2, and a user without a role —
//! on objects inside and outside the caller's subtree (the root R above C, C itself, the
//! branches B1 and B2, another root R2, and the member's own per-person duty in B1),
//! records and attachments included (no IDOR). What each role should get follows from the
//! reference tables below, written from DESIGN.md section 3, not from the code.
//!
//! Outcomes: allowed (the route's success status, or for admin probes sent with an empty
//! body, the form's own refusal: 400/409/422 — the access check was passed), 403, 404,
//! and for anonymous callers the sign-in page (303 to /login) or, on the API, 401.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{PageClient, SourceRoute, TestApp, csrf_of, mounted_routes};
use reqwest::StatusCode;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Who, on what
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Who {
    Anonymous,
    Admin,
    SecC,
    CoordC,
    InspC,
    MemberB1,
    SecB1,
    SecB2,
    NoRole,
}

impl Who {
    const ALL: [Who; 9] = [
        Who::Anonymous,
        Who::Admin,
        Who::SecC,
        Who::CoordC,
        Who::InspC,
        Who::MemberB1,
        Who::SecB1,
        Who::SecB2,
        Who::NoRole,
    ];

    fn login(self) -> &'static str {
        match self {
            Who::Anonymous => "anonymous",
            Who::Admin => "admin",
            Who::SecC => "sec_c",
            Who::CoordC => "coord_c",
            Who::InspC => "insp_c",
            Who::MemberB1 => "mem_b1",
            Who::SecB1 => "sec_b1",
            Who::SecB2 => "sec_b2",
            Who::NoRole => "norole",
        }
    }
}

/// The objects a route is called on. The tree: R → C → {B1, B2}; R2 apart. `B1m` is the
/// leadership member's own per-person duty (A13) in B1, and its records. `One` stands for
/// a route without an organisation behind it (or a single representative object).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Obj {
    R,
    C,
    B1,
    B2,
    R2,
    B1m,
    One,
}

impl Obj {
    fn code(self) -> &'static str {
        match self {
            Obj::R => "R",
            Obj::C => "C",
            Obj::B1 | Obj::B1m => "B1",
            Obj::B2 => "B2",
            Obj::R2 => "R2",
            Obj::One => panic!("no organisation behind this object"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Obj::R => "R",
            Obj::C => "C",
            Obj::B1 => "B1",
            Obj::B2 => "B2",
            Obj::R2 => "R2",
            Obj::B1m => "B1m",
            Obj::One => "-",
        }
    }

    /// The rule a record of this object fulfils, its period and whether it binds a person.
    fn rule(self) -> (&'static str, &'static str, bool) {
        match self {
            Obj::R | Obj::C | Obj::R2 => ("A2", "2026-H1", false),
            Obj::B1 | Obj::B2 => ("A8", "2026-Q1", false),
            Obj::B1m => ("A13", "2026", true),
            Obj::One => panic!("no rule behind this object"),
        }
    }
}

const ORGS: &[Obj] = &[Obj::R, Obj::C, Obj::B1, Obj::B2, Obj::R2];
const ORGS_AND_OWN: &[Obj] = &[Obj::R, Obj::C, Obj::B1, Obj::B2, Obj::R2, Obj::B1m];
const ONE: &[Obj] = &[Obj::One];

// The reference tables: DESIGN.md section 3, written out for this tree.

/// Who sees which organisation's things: an admin everything; the secretary, coordinator
/// and inspector of X the subtree of X; a member of X only X.
const SEES: &[(Who, &str)] = &[
    (Who::Admin, "R C B1 B2 R2 B1m"),
    (Who::SecC, "C B1 B2 B1m"),
    (Who::CoordC, "C B1 B2 B1m"),
    (Who::InspC, "C B1 B2 B1m"),
    (Who::MemberB1, "B1 B1m"),
    (Who::SecB1, "B1 B1m"),
    (Who::SecB2, "B2"),
];

/// Whose subtree overview one may open: a member sees their organisation, not a subtree.
const SEES_SUBTREE: &[(Who, &str)] = &[
    (Who::Admin, "R C B1 B2 R2"),
    (Who::SecC, "C B1 B2"),
    (Who::CoordC, "C B1 B2"),
    (Who::InspC, "C B1 B2"),
    (Who::SecB1, "B1"),
    (Who::SecB2, "B2"),
];

/// Who files records for what: the secretary of X for all of X's duties, a member only
/// for the duties that bind them; an admin anything. Coordinators and inspectors file none.
const FILES_FOR: &[(Who, &str)] = &[
    (Who::Admin, "R C B1 B2 R2 B1m"),
    (Who::SecC, "C"),
    (Who::SecB1, "B1 B1m"),
    (Who::SecB2, "B2"),
    (Who::MemberB1, "B1m"),
];

/// Who reviews the records of which organisation: the secretaries and coordinators of its
/// parent; a root's records, an admin.
const REVIEWS: &[(Who, &str)] =
    &[(Who::Admin, "R C B1 B2 R2 B1m"), (Who::SecC, "B1 B2 B1m"), (Who::CoordC, "B1 B2 B1m")];

fn listed(table: &[(Who, &str)], who: Who, obj: Obj) -> bool {
    table.iter().any(|(w, objs)| *w == who && objs.split_whitespace().any(|o| o == obj.name()))
}

// ---------------------------------------------------------------------------------------
// Policies and outcomes
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    /// Anyone, signed in or not (the sign-in page, assets, a calendar feed by its secret).
    Public,
    /// Anyone signed in; what they get is their own (workbench, queue, notifications).
    SignedIn,
    /// Admins only: 403 for everyone else, whatever the object, before anything is looked up.
    AdminOnly,
    /// Admins only, on an organisation: 404 unless seen, else 403.
    AdminOnSeen,
    /// Reading an organisation's things: 404 unless seen.
    SeeOrg,
    /// The subtree overview: 404 unless the subtree is seen.
    SeeSubtree,
    /// Reading a record or its files: 404 unless its organisation is seen or reviewed.
    SeeRecord,
    /// Filing a record for an organisation: 404 unless seen, 403 unless one files for it.
    FileFor,
    /// Changing a record (edit, submit, withdraw): 404 unless seen, 403 unless one files for it.
    FileForRecord,
    /// Reviewing a record: 404 unless seen, 403 unless one reviews it.
    Review,
    /// Someone's own thing: the owner, and admins when `admin` is true; 404 for others.
    Owner { owner: Who, admin: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Forbidden,
    NotFound,
    SignIn,
    Unexpected(u16),
}

fn expect(policy: Policy, who: Who, obj: Obj) -> Outcome {
    use Outcome::*;
    if who == Who::Anonymous {
        return if policy == Policy::Public { Allowed } else { SignIn };
    }
    let sees = || listed(SEES, who, obj) || listed(REVIEWS, who, obj);
    match policy {
        Policy::Public | Policy::SignedIn => Allowed,
        Policy::AdminOnly => {
            if who == Who::Admin {
                Allowed
            } else {
                Forbidden
            }
        }
        Policy::AdminOnSeen => match (listed(SEES, who, obj), who == Who::Admin) {
            (false, _) => NotFound,
            (true, false) => Forbidden,
            (true, true) => Allowed,
        },
        Policy::SeeOrg => {
            if listed(SEES, who, obj) {
                Allowed
            } else {
                NotFound
            }
        }
        Policy::SeeSubtree => {
            if listed(SEES_SUBTREE, who, obj) {
                Allowed
            } else {
                NotFound
            }
        }
        Policy::SeeRecord => {
            if sees() {
                Allowed
            } else {
                NotFound
            }
        }
        Policy::FileFor => match (listed(SEES, who, obj), listed(FILES_FOR, who, obj)) {
            (false, _) => NotFound,
            (true, false) => Forbidden,
            (true, true) => Allowed,
        },
        Policy::FileForRecord => match (sees(), listed(FILES_FOR, who, obj)) {
            (false, _) => NotFound,
            (true, false) => Forbidden,
            (true, true) => Allowed,
        },
        Policy::Review => match (sees(), listed(REVIEWS, who, obj)) {
            (false, _) => NotFound,
            (true, false) => Forbidden,
            (true, true) => Allowed,
        },
        Policy::Owner { owner, admin } => {
            if who == owner || (admin && who == Who::Admin) {
                Allowed
            } else {
                NotFound
            }
        }
    }
}

/// The statuses an allowed call may get.
const OK_PAGE: &[u16] = &[200];
const OK_REDIRECT: &[u16] = &[303];
const OK_PAGE_OR_REDIRECT: &[u16] = &[200, 303];
const OK_JSON: &[u16] = &[200];
const OK_CREATED: &[u16] = &[201];
/// An admin probe sent with an empty form or body: the form's own answer.
const OK_EMPTY_FORM: &[u16] = &[200, 201, 204, 303, 400, 409, 422];

/// One route's expectations: the policy, the objects it is called on, and what "allowed"
/// answers.
struct Entry {
    policy: Policy,
    objects: &'static [Obj],
    ok: &'static [u16],
}

const fn e(policy: Policy, objects: &'static [Obj], ok: &'static [u16]) -> Entry {
    Entry { policy, objects, ok }
}

/// THE TABLE: every route of the router, by `METHOD /path`. A route missing here fails.
fn entry(key: &str) -> Option<Entry> {
    use Policy::*;
    let admin = e(AdminOnly, ONE, OK_EMPTY_FORM);
    let admin_page = e(AdminOnly, ONE, OK_PAGE);
    let admin_on_orgs = e(AdminOnly, ORGS, OK_EMPTY_FORM);
    let admin_page_on_orgs = e(AdminOnly, ORGS, OK_PAGE);
    Some(match key {
        // Outside the pages and the API.
        "GET /healthz" | "GET /static/{*path}" => e(Public, ONE, OK_PAGE),

        // Signing in and out, the language, one's password.
        "GET /login" => e(Public, ONE, OK_PAGE_OR_REDIRECT),
        "POST /login" => e(Public, ONE, &[422]),
        "POST /lang" => e(Public, ONE, OK_REDIRECT),
        "POST /logout" => e(SignedIn, ONE, OK_REDIRECT),
        "GET /account/password" => e(SignedIn, ONE, OK_PAGE),
        "POST /account/password" => e(SignedIn, ONE, &[422]),

        // Everyone's own pages.
        "GET /" | "GET /review" | "GET /calendar" | "GET /notifications" | "GET /account/tokens" => {
            e(SignedIn, ONE, OK_PAGE)
        }
        "GET /subtree" => e(SignedIn, ONE, OK_PAGE_OR_REDIRECT),
        "POST /calendar/feed" | "POST /account/tokens" => e(SignedIn, ONE, OK_PAGE),
        "POST /calendar/feed/stop" | "POST /notifications/read-all" => e(SignedIn, ONE, OK_REDIRECT),
        "GET /feeds/{file}" => e(Public, ONE, OK_PAGE),
        "POST /notifications/{event_id}/read" => e(Owner { owner: Who::SecB1, admin: false }, ONE, OK_REDIRECT),
        "POST /account/tokens/{id}/revoke" => e(Owner { owner: Who::SecB1, admin: false }, ONE, OK_REDIRECT),

        // Organisations, duties, records, attachments.
        "GET /subtree/{code}" => e(SeeSubtree, ORGS, OK_PAGE),
        "GET /duties/{id}" => e(SeeOrg, ORGS_AND_OWN, OK_PAGE),
        "GET /orgs/{code}/records/new" => e(FileFor, ORGS_AND_OWN, OK_PAGE),
        "POST /orgs/{code}/records" => e(FileFor, ORGS_AND_OWN, OK_REDIRECT),
        "GET /records/{id}" | "GET /records/{id}/versions/{n}" => e(SeeRecord, ORGS_AND_OWN, OK_PAGE),
        "GET /attachments/{id}" => e(SeeRecord, ORGS, OK_PAGE),
        "GET /records/{id}/edit" => e(FileForRecord, ORGS_AND_OWN, OK_PAGE),
        "POST /records/{id}/edit" | "POST /records/{id}/submit" | "POST /records/{id}/withdraw" => {
            e(FileForRecord, ORGS_AND_OWN, OK_REDIRECT)
        }
        "POST /records/{id}/review" => e(Review, ORGS, OK_REDIRECT),

        // Administration pages.
        "GET /admin"
        | "GET /admin/users"
        | "GET /admin/users/{login}"
        | "GET /admin/settings"
        | "GET /admin/audit"
        | "GET /admin/audit/export"
        | "GET /admin/orgs"
        | "GET /admin/orgs/new"
        | "GET /admin/kinds"
        | "GET /admin/people"
        | "GET /admin/people/{id}"
        | "GET /admin/systems"
        | "GET /admin/systems/{code}/rules/new"
        | "GET /admin/templates"
        | "GET /admin/rules/{code}"
        | "GET /admin/rules/{code}/edit"
        | "GET /admin/rules/{code}/retire"
        | "GET /admin/duties/{id}/waive"
        | "GET /admin/import"
        | "GET /admin/import/{id}"
        | "GET /admin/import/{id}/status"
        | "GET /admin/export/{file}" => admin_page,
        "GET /admin/orgs/{code}" | "GET /admin/orgs/{code}/move" | "GET /admin/orgs/{code}/close" => admin_page_on_orgs,
        "POST /admin/orgs/{code}/rename"
        | "POST /admin/orgs/{code}/kind"
        | "POST /admin/orgs/{code}/move"
        | "POST /admin/orgs/{code}/close"
        | "POST /admin/orgs/{code}/reopen"
        | "POST /admin/orgs/{code}/handover" => admin_on_orgs,
        "POST /admin/users"
        | "POST /admin/users/{login}"
        | "POST /admin/users/{login}/person"
        | "POST /admin/users/{login}/password"
        | "POST /admin/users/{login}/disable"
        | "POST /admin/users/{login}/enable"
        | "POST /admin/users/{login}/tokens/{id}/revoke"
        | "POST /admin/settings"
        | "POST /admin/audit/verify"
        | "POST /admin/orgs"
        | "POST /admin/kinds"
        | "POST /admin/kinds/{code}"
        | "POST /admin/people"
        | "POST /admin/people/{id}"
        | "POST /admin/people/{id}/roles"
        | "POST /admin/roles/{id}/end"
        | "POST /admin/systems"
        | "POST /admin/systems/{code}/rules"
        | "POST /admin/templates/{template}/install"
        | "POST /admin/rules/{code}/versions"
        | "POST /admin/rules/{code}/waivers"
        | "POST /admin/duties/{id}/waive"
        | "POST /admin/import"
        | "POST /admin/import/{id}/commit" => admin,

        // The API: open, everyone's own, reading the tree, records.
        "GET /api/v1/openapi.json" => e(Public, ONE, OK_JSON),
        "GET /api/v1/me" | "GET /api/v1/templates" | "GET /api/v1/tokens" => e(SignedIn, ONE, OK_JSON),
        "POST /api/v1/tokens" => e(SignedIn, ONE, OK_CREATED),
        "DELETE /api/v1/tokens/{id}" => e(Owner { owner: Who::SecB1, admin: true }, ONE, &[204]),
        "GET /api/v1/orgs/{code}"
        | "GET /api/v1/orgs/{code}/children"
        | "GET /api/v1/orgs/{code}/duties"
        | "GET /api/v1/orgs/{code}/rollup" => e(SeeOrg, ORGS, OK_JSON),
        "POST /api/v1/orgs/{code}/records" => e(FileFor, ORGS_AND_OWN, OK_CREATED),
        "GET /api/v1/records/{id}" => e(SeeRecord, ORGS_AND_OWN, OK_JSON),
        "POST /api/v1/records/{id}/submit" | "POST /api/v1/records/{id}/withdraw" => {
            e(FileForRecord, ORGS_AND_OWN, OK_JSON)
        }
        "POST /api/v1/records/{id}/versions" => e(FileForRecord, ORGS_AND_OWN, OK_CREATED),
        "POST /api/v1/records/{id}/review" => e(Review, ORGS, OK_JSON),
        "PATCH /api/v1/orgs/{code}" | "POST /api/v1/duties/{id}/waive" => e(AdminOnSeen, ORGS, OK_JSON),
        "POST /api/v1/orgs/{code}/roles" => e(AdminOnSeen, ORGS, OK_CREATED),

        // The API's administration.
        "GET /api/v1/orgs/{code}/close-preview" | "GET /api/v1/orgs/{code}/roles" => e(AdminOnly, ORGS, OK_JSON),
        "POST /api/v1/orgs/{code}/move" | "POST /api/v1/orgs/{code}/handover" => admin_on_orgs,
        "GET /api/v1/users"
        | "GET /api/v1/users/{login}"
        | "GET /api/v1/settings"
        | "GET /api/v1/audit"
        | "GET /api/v1/systems"
        | "GET /api/v1/rules/{code}"
        | "GET /api/v1/orgs"
        | "GET /api/v1/kinds"
        | "GET /api/v1/people"
        | "GET /api/v1/people/{id}" => e(AdminOnly, ONE, OK_JSON),
        "POST /api/v1/users"
        | "PATCH /api/v1/users/{login}"
        | "POST /api/v1/users/{login}/password"
        | "PUT /api/v1/settings"
        | "POST /api/v1/audit/verify"
        | "POST /api/v1/orgs"
        | "POST /api/v1/templates/{template}/install"
        | "POST /api/v1/systems"
        | "POST /api/v1/systems/{code}/rules"
        | "POST /api/v1/rules/{code}/versions"
        | "POST /api/v1/rules/{code}/waivers"
        | "POST /api/v1/kinds"
        | "PATCH /api/v1/kinds/{code}"
        | "POST /api/v1/people"
        | "PATCH /api/v1/people/{id}"
        | "POST /api/v1/people/{id}/roles"
        | "PATCH /api/v1/roles/{id}" => admin,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------

/// A small but real PDF.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

struct Fx {
    t: TestApp,
    pages: BTreeMap<Who, PageClient>,
    tokens: BTreeMap<Who, String>,
    /// A submitted record of each object, created by the admin (so nobody else submitted it).
    records: BTreeMap<Obj, String>,
    attachments: BTreeMap<Obj, String>,
    /// A duty of each object, and more of each for the probes that waive one.
    duties: BTreeMap<Obj, String>,
    spare_duties: Mutex<BTreeMap<Obj, Vec<String>>>,
    /// The leadership member's person id.
    member_person: String,
    /// A notification event of sec_b1's, and sec_b1's calendar feed file.
    event: String,
    feed: String,
    /// A person and a role assignment, for the admin's pages.
    person: String,
    role: String,
    /// An import report of the admin's, when the import pages are mounted.
    import: Option<String>,
    counter: AtomicUsize,
}

async fn fixture(routes: &[SourceRoute]) -> Fx {
    let t = TestApp::spawn_at("2026-03-20T10:00:00+08:00").await;
    for (code, kind, parent) in [
        ("R", "committee", None),
        ("C", "committee", Some("R")),
        ("B1", "branch", Some("C")),
        ("B2", "branch", Some("C")),
        ("R2", "committee", None),
    ] {
        t.org(code, kind, parent, "2015-01-01").await;
    }
    t.install("ideology-company", "2026-01-01", None).await;
    let mut tokens = BTreeMap::new();
    tokens.insert(Who::Admin, t.admin_token.clone());
    for (who, org, role) in [
        (Who::SecC, "C", "secretary"),
        (Who::CoordC, "C", "coordinator"),
        (Who::InspC, "C", "inspector"),
        (Who::MemberB1, "B1", "member"),
        (Who::SecB1, "B1", "secretary"),
        (Who::SecB2, "B2", "secretary"),
    ] {
        tokens.insert(who, t.user(who.login(), false).await);
        t.grant(who.login(), org, role).await;
    }
    tokens.insert(Who::NoRole, t.user(Who::NoRole.login(), false).await);
    for spare in ["spare", "spare_roles"] {
        t.user(spare, false).await;
    }
    // The quarter's reminders go out on the 26th: sec_b1 is told about B1's duties.
    t.set_now("2026-03-26T10:00:00+08:00");
    zerenzhi::scheduler::tick(&t.app, t.clock.now()).await.expect("a scheduler pass");
    let event: i64 = sqlx::query_scalar(
        "select n.event_id from notification n join app_user u on u.id = n.user_id where u.login = 'sec_b1' limit 1",
    )
    .fetch_one(&t.pool)
    .await
    .expect("a notification for sec_b1");
    let member_person: i64 =
        sqlx::query_scalar("select person_id from app_user where login = 'mem_b1'").fetch_one(&t.pool).await.unwrap();
    let mut pages = BTreeMap::new();
    for who in Who::ALL.into_iter().filter(|w| *w != Who::Anonymous) {
        pages.insert(who, t.sign_in(who.login()).await);
    }
    let mut anon = t.anonymous();
    let (_, html) = anon.get("/login").await;
    anon.csrf = csrf_of(&html).expect("the sign-in form's token");
    pages.insert(Who::Anonymous, anon);

    let mut fx = Fx {
        t,
        pages,
        tokens,
        records: BTreeMap::new(),
        attachments: BTreeMap::new(),
        duties: BTreeMap::new(),
        spare_duties: Mutex::new(BTreeMap::new()),
        member_person: member_person.to_string(),
        event: event.to_string(),
        feed: String::new(),
        person: String::new(),
        role: String::new(),
        import: None,
        counter: AtomicUsize::new(0),
    };
    for obj in ORGS_AND_OWN.iter().copied() {
        let id = fx.fresh_record(obj, false).await;
        fx.records.insert(obj, id);
        let (rule, period, _) = obj.rule();
        let (st, body) = fx.t.get(&format!("/api/v1/orgs/{}/duties?period={period}", obj.code())).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        let all: Vec<&Value> = body.as_array().unwrap().iter().collect();
        let mine = all
            .iter()
            .find(|d| d["rule"] == rule && (obj != Obj::B1m || d["person"].as_str() == Some(&fx.member_person)))
            .unwrap_or_else(|| panic!("{obj:?} owes {rule} for {period}: {body}"));
        fx.duties.insert(obj, mine["id"].as_str().unwrap().to_owned());
        let (_, year) = fx.t.get(&format!("/api/v1/orgs/{}/duties?period=2026", obj.code())).await;
        let spare: Vec<String> = year
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["person"].is_null())
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect();
        fx.spare_duties.lock().unwrap().insert(obj, spare);
    }
    for obj in ORGS.iter().copied() {
        let (_, id) = fx.upload_record(Who::Admin, obj).await;
        let attachment: i64 = sqlx::query_scalar("select id from attachment where record_id = $1")
            .bind(id.parse::<i64>().unwrap())
            .fetch_one(&fx.t.pool)
            .await
            .expect("the upload's attachment");
        fx.attachments.insert(obj, attachment.to_string());
    }
    // sec_b1's calendar feed.
    let (st, html) = fx.pages[&Who::SecB1].post("/calendar/feed", &[("month", "2026-03")]).await.into_status_body();
    assert_eq!(st, StatusCode::OK);
    let at = html.find("/feeds/").expect("the feed's address is shown");
    let file = html[at + "/feeds/".len()..].split(".ics").next().unwrap();
    fx.feed = format!("{file}.ics");
    // A person and a role assignment for the admin's pages.
    let spare_person: i64 =
        sqlx::query_scalar("select person_id from app_user where login = 'spare'").fetch_one(&fx.t.pool).await.unwrap();
    fx.person = spare_person.to_string();
    fx.t.grant("spare", "R2", "inspector").await;
    let role: i64 = sqlx::query_scalar("select id from role_assignment where person_id = $1")
        .bind(spare_person)
        .fetch_one(&fx.t.pool)
        .await
        .unwrap();
    fx.role = role.to_string();
    if routes.iter().any(|r| r.path == "/admin/import/{id}") {
        fx.import = Some(fx.upload_import().await);
    }
    fx
}

/// The status and body of a page client's answer.
trait IntoStatusBody {
    fn into_status_body(self) -> (StatusCode, String);
}

impl IntoStatusBody for (StatusCode, Option<String>, String) {
    fn into_status_body(self) -> (StatusCode, String) {
        (self.0, self.2)
    }
}

impl Fx {
    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// A new record of the object through the API, as the admin: a draft, or submitted.
    async fn fresh_record(&self, obj: Obj, draft: bool) -> String {
        let (rule, _, per_person) = obj.rule();
        let n = self.next();
        let mut body = json!({
            "rule": rule, "occurred_on": "2026-03-20", "title": format!("{rule} 第{n}份"),
            "body": "正文", "attendees": ["王五"], "draft": draft,
        });
        if per_person {
            body["person"] = json!(self.member_person);
        }
        let (st, rec) = self.t.post(&format!("/api/v1/orgs/{}/records", obj.code()), body).await;
        assert_eq!(st, StatusCode::CREATED, "a record for {obj:?}: {rec}");
        rec["id"].as_str().unwrap().to_owned()
    }

    /// A duty of the object that no other probe uses.
    fn spare_duty(&self, obj: Obj) -> String {
        let mut all = self.spare_duties.lock().unwrap();
        all.get_mut(&obj).and_then(|v| v.pop()).unwrap_or_else(|| panic!("no spare duty of {obj:?} left"))
    }

    /// A new API token of a user; returns its id.
    async fn fresh_token(&self, login: &str) -> String {
        let mut conn = self.t.pool.acquire().await.unwrap();
        let user: i64 = sqlx::query_scalar("select id from app_user where login = $1")
            .bind(login)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let token = zerenzhi::db::users::create_token(&mut conn, user, "matrix", self.t.clock.now()).await.unwrap();
        let id: i64 = sqlx::query_scalar("select id from api_token where token_hash = $1")
            .bind(zerenzhi::secret::token_hash(&token))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        id.to_string()
    }

    /// The multipart fields of a new record of the object, as the record form sends them.
    fn record_fields(&self, obj: Obj) -> Vec<(String, String)> {
        let (rule, period, per_person) = obj.rule();
        let person = if per_person { self.member_person.clone() } else { String::new() };
        [
            ("rule", rule.to_owned()),
            ("period", period.to_owned()),
            ("person", person),
            ("occurred_on", "2026-03-20".to_owned()),
            ("title", format!("{rule} 页面报送")),
            ("body", "正文".to_owned()),
            ("action", "submit".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// File a record with a PDF through the record form as `who`; the status and the new
    /// record's id (empty unless it was made).
    async fn upload_record(&self, who: Who, obj: Obj) -> (StatusCode, String) {
        let (st, location, body) =
            self.multipart(who, &format!("/orgs/{}/records", obj.code()), self.record_fields(obj), true).await;
        if who == Who::Admin {
            assert_eq!(st, StatusCode::SEE_OTHER, "the admin files a record for {obj:?}: {body}");
        }
        let id = location
            .as_deref()
            .and_then(|l| l.strip_prefix("/records/"))
            .map(|rest| rest.split(['?', '/']).next().unwrap().to_owned())
            .unwrap_or_default();
        (st, id)
    }

    async fn multipart(
        &self,
        who: Who,
        path: &str,
        fields: Vec<(String, String)>,
        with_pdf: bool,
    ) -> (StatusCode, Option<String>, String) {
        let page = &self.pages[&who];
        let mut form = fields.into_iter().fold(reqwest::multipart::Form::new(), |f, (k, v)| f.text(k, v));
        if with_pdf {
            form = form.part("files", reqwest::multipart::Part::bytes(PDF.to_vec()).file_name("会议记录.pdf"));
        }
        let sep = if path.contains('?') { '&' } else { '?' };
        let resp = page
            .http
            .post(format!("{}{path}{sep}csrf={}", page.base, page.csrf))
            .multipart(form)
            .send()
            .await
            .expect("request");
        let st = resp.status();
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        (st, location, resp.text().await.unwrap())
    }

    /// Upload an organisations sheet on the import page as the admin; the report's id.
    async fn upload_import(&self) -> String {
        let page = &self.pages[&Who::Admin];
        let csv = "code,name,kind,parent,active_from\nIMP-1,导入的支部,branch,R2,2026-01-01\n";
        let form = reqwest::multipart::Form::new()
            .text("what", "orgs")
            .part("file", reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("orgs.csv"));
        let resp = page
            .http
            .post(format!("{}/admin/import?csrf={}", page.base, page.csrf))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let st = resp.status();
        let id = location
            .strip_prefix("/admin/import/")
            .unwrap_or_else(|| panic!("the import page answers {st} without a report: {location}"));
        id.split(['?', '/']).next().unwrap().to_owned()
    }
}

// ---------------------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------------------

enum Body {
    None,
    Form(Vec<(String, String)>),
    Multipart(Vec<(String, String)>),
    Json(Value),
}

struct Probe {
    path: String,
    body: Body,
    /// Sign in afresh for this call (signing out ends the session).
    fresh_session: bool,
}

fn form(fields: &[(&str, &str)]) -> Body {
    Body::Form(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// The concrete call of a route for a caller on an object.
async fn probe(fx: &Fx, route: &SourceRoute, who: Who, obj: Obj) -> Probe {
    let key = route.key();
    let fill = |path: &str, pairs: &[(&str, String)]| {
        let mut p = path.to_owned();
        for (k, v) in pairs {
            p = p.replace(k, v);
        }
        p
    };
    let plain = |p: String| Probe { path: p, body: Body::None, fresh_session: false };
    let with = |p: String, body: Body| Probe { path: p, body, fresh_session: false };
    let path = route.path.as_str();
    let code = || obj.code().to_owned();
    // A record for a probe that changes it: a fresh one, so every probe meets it as it was.
    let fresh = |draft: bool| fx.fresh_record(obj, draft);
    let empty_json = || Body::Json(json!({}));
    match key.as_str() {
        "GET /healthz" => plain("/healthz".into()),
        "GET /static/{*path}" => plain("/static/app.css".into()),
        "GET /login" => plain("/login".into()),
        "POST /login" => with("/login".into(), form(&[("login", "nobody"), ("password", "not-a-password")])),
        "POST /lang" => with("/lang".into(), form(&[("to", "zh-CN"), ("next", "/")])),
        "POST /logout" => Probe { path: "/logout".into(), body: form(&[]), fresh_session: true },
        "GET /account/password"
        | "GET /"
        | "GET /review"
        | "GET /calendar"
        | "GET /notifications"
        | "GET /subtree"
        | "GET /account/tokens"
        | "GET /admin"
        | "GET /admin/users"
        | "GET /admin/settings"
        | "GET /admin/audit"
        | "GET /admin/audit/export"
        | "GET /admin/orgs"
        | "GET /admin/orgs/new"
        | "GET /admin/kinds"
        | "GET /admin/people"
        | "GET /admin/systems"
        | "GET /admin/templates"
        | "GET /admin/import" => plain(path.into()),
        "POST /account/password" => with(
            path.into(),
            form(&[
                ("current", "not-my-password"),
                ("new", "a-new-long-passphrase"),
                ("confirm", "a-new-long-passphrase"),
            ]),
        ),
        "POST /calendar/feed" | "POST /calendar/feed/stop" => with(path.into(), form(&[("month", "2026-03")])),
        "POST /notifications/read-all" => with(path.into(), form(&[])),
        "POST /account/tokens" => with(path.into(), form(&[("label", "矩阵测试")])),
        "GET /feeds/{file}" => plain(format!("/feeds/{}", fx.feed)),
        "POST /notifications/{event_id}/read" => with(format!("/notifications/{}/read", fx.event), form(&[])),
        "POST /account/tokens/{id}/revoke" => {
            with(format!("/account/tokens/{}/revoke", fx.fresh_token("sec_b1").await), form(&[]))
        }
        "GET /subtree/{code}" => plain(format!("/subtree/{}", code())),
        "GET /duties/{id}" => plain(format!("/duties/{}", fx.duties[&obj])),
        "GET /orgs/{code}/records/new" => {
            let (rule, period, per_person) = obj.rule();
            let person = if per_person { format!("&person={}", fx.member_person) } else { String::new() };
            plain(format!("/orgs/{}/records/new?rule={rule}&period={period}{person}", code()))
        }
        "POST /orgs/{code}/records" => {
            with(format!("/orgs/{}/records", code()), Body::Multipart(fx.record_fields(obj)))
        }
        "GET /records/{id}" => plain(format!("/records/{}", fx.records[&obj])),
        "GET /records/{id}/versions/{n}" => plain(format!("/records/{}/versions/1", fx.records[&obj])),
        "GET /records/{id}/edit" => plain(format!("/records/{}/edit", fx.records[&obj])),
        "GET /attachments/{id}" => plain(format!("/attachments/{}", fx.attachments[&obj])),
        "POST /records/{id}/edit" => {
            let fields =
                [("occurred_on", "2026-03-20"), ("title", "改过的标题"), ("body", "改过的正文"), ("action", "save")];
            let fields = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            with(format!("/records/{}/edit", fresh(false).await), Body::Multipart(fields))
        }
        "POST /records/{id}/submit" => with(format!("/records/{}/submit", fresh(true).await), form(&[])),
        "POST /records/{id}/withdraw" => {
            with(format!("/records/{}/withdraw", fresh(false).await), form(&[("reason", "误报")]))
        }
        "POST /records/{id}/review" => {
            with(format!("/records/{}/review", fresh(false).await), form(&[("decision", "accept"), ("comment", "")]))
        }

        // Administration pages: objects that exist; an empty form for every change.
        "GET /admin/users/{login}" => plain("/admin/users/norole".into()),
        "GET /admin/people/{id}" => plain(format!("/admin/people/{}", fx.person)),
        "GET /admin/systems/{code}/rules/new" => plain("/admin/systems/ideology-company/rules/new".into()),
        "GET /admin/rules/{code}" | "GET /admin/rules/{code}/edit" | "GET /admin/rules/{code}/retire" => {
            plain(fill(path, &[("{code}", "A1".into())]))
        }
        "GET /admin/duties/{id}/waive" => plain(format!("/admin/duties/{}/waive", fx.duties[&Obj::B1])),
        "GET /admin/import/{id}" | "GET /admin/import/{id}/status" => {
            plain(fill(path, &[("{id}", fx.import.clone().expect("an import report"))]))
        }
        "GET /admin/export/{file}" => plain("/admin/export/orgs.csv".into()),
        "GET /admin/orgs/{code}" | "GET /admin/orgs/{code}/move" | "GET /admin/orgs/{code}/close" => {
            plain(fill(path, &[("{code}", code())]))
        }
        "POST /admin/orgs/{code}/rename"
        | "POST /admin/orgs/{code}/kind"
        | "POST /admin/orgs/{code}/move"
        | "POST /admin/orgs/{code}/close"
        | "POST /admin/orgs/{code}/reopen"
        | "POST /admin/orgs/{code}/handover" => with(fill(path, &[("{code}", code())]), form(&[])),
        "POST /admin/users/{login}"
        | "POST /admin/users/{login}/person"
        | "POST /admin/users/{login}/password"
        | "POST /admin/users/{login}/disable"
        | "POST /admin/users/{login}/enable" => with(fill(path, &[("{login}", "spare".into())]), form(&[])),
        "POST /admin/users/{login}/tokens/{id}/revoke" => {
            with(fill(path, &[("{login}", "spare".into()), ("{id}", fx.fresh_token("spare").await)]), form(&[]))
        }
        "POST /admin/users"
        | "POST /admin/settings"
        | "POST /admin/audit/verify"
        | "POST /admin/orgs"
        | "POST /admin/kinds"
        | "POST /admin/people"
        | "POST /admin/systems"
        | "POST /admin/import" => with(path.into(), form(&[])),
        "POST /admin/kinds/{code}" => with("/admin/kinds/branch".into(), form(&[])),
        "POST /admin/people/{id}" | "POST /admin/people/{id}/roles" => {
            with(fill(path, &[("{id}", fx.person.clone())]), form(&[]))
        }
        "POST /admin/roles/{id}/end" => with(format!("/admin/roles/{}/end", fx.role), form(&[])),
        "POST /admin/systems/{code}/rules" => with("/admin/systems/ideology-company/rules".into(), form(&[])),
        "POST /admin/templates/{template}/install" => {
            with("/admin/templates/ideology-school/install".into(), form(&[]))
        }
        "POST /admin/rules/{code}/versions" | "POST /admin/rules/{code}/waivers" => {
            with(fill(path, &[("{code}", "A1".into())]), form(&[]))
        }
        "POST /admin/duties/{id}/waive" => with(format!("/admin/duties/{}/waive", fx.duties[&Obj::B1]), form(&[])),
        "POST /admin/import/{id}/commit" => {
            with(fill(path, &[("{id}", fx.import.clone().expect("an import report"))]), form(&[]))
        }

        // The API.
        "GET /api/v1/openapi.json"
        | "GET /api/v1/me"
        | "GET /api/v1/templates"
        | "GET /api/v1/tokens"
        | "GET /api/v1/users"
        | "GET /api/v1/settings"
        | "GET /api/v1/audit"
        | "GET /api/v1/systems"
        | "GET /api/v1/orgs"
        | "GET /api/v1/kinds"
        | "GET /api/v1/people" => plain(path.into()),
        "POST /api/v1/tokens" => with(path.into(), Body::Json(json!({"label": "矩阵测试"}))),
        "DELETE /api/v1/tokens/{id}" => plain(format!("/api/v1/tokens/{}", fx.fresh_token("sec_b1").await)),
        "GET /api/v1/orgs/{code}" | "GET /api/v1/orgs/{code}/children" => plain(fill(path, &[("{code}", code())])),
        "GET /api/v1/orgs/{code}/duties" | "GET /api/v1/orgs/{code}/rollup" => {
            plain(format!("{}?period=2026-Q1", fill(path, &[("{code}", code())])))
        }
        "POST /api/v1/orgs/{code}/records" => {
            let (rule, _, per_person) = obj.rule();
            let mut body = json!({"rule": rule, "occurred_on": "2026-03-20", "title": "接口报送", "body": "正文", "attendees": []});
            if per_person {
                body["person"] = json!(fx.member_person);
            }
            with(format!("/api/v1/orgs/{}/records", code()), Body::Json(body))
        }
        "GET /api/v1/records/{id}" => plain(format!("/api/v1/records/{}", fx.records[&obj])),
        "POST /api/v1/records/{id}/submit" => {
            with(format!("/api/v1/records/{}/submit", fresh(true).await), empty_json())
        }
        "POST /api/v1/records/{id}/withdraw" => {
            with(format!("/api/v1/records/{}/withdraw", fresh(false).await), Body::Json(json!({"reason": "误报"})))
        }
        "POST /api/v1/records/{id}/versions" => with(
            format!("/api/v1/records/{}/versions", fresh(false).await),
            Body::Json(json!({"title": "改过的标题", "body": "改过的正文", "attendees": []})),
        ),
        "POST /api/v1/records/{id}/review" => with(
            format!("/api/v1/records/{}/review", fresh(false).await),
            Body::Json(json!({"decision": "accept", "comment": ""})),
        ),
        "PATCH /api/v1/orgs/{code}" => {
            with(format!("/api/v1/orgs/{}", code()), Body::Json(json!({"name": format!("{} 组织", code())})))
        }
        "POST /api/v1/orgs/{code}/roles" => with(
            format!("/api/v1/orgs/{}/roles", code()),
            Body::Json(json!({"login": "spare_roles", "role": "inspector", "from": "2026-01-01"})),
        ),
        "POST /api/v1/duties/{id}/waive" => {
            // Only an admin's probe waives; the others meet a duty that stays as it is.
            let duty = if who == Who::Admin { fx.spare_duty(obj) } else { fx.duties[&obj].clone() };
            with(format!("/api/v1/duties/{duty}/waive"), Body::Json(json!({"reason": "矩阵测试"})))
        }
        "GET /api/v1/orgs/{code}/close-preview" => {
            plain(format!("/api/v1/orgs/{}/close-preview?until=2026-12-31", code()))
        }
        "GET /api/v1/orgs/{code}/roles" => plain(format!("/api/v1/orgs/{}/roles?on=2026-03-26", code())),
        // The API parses a body before its handler checks the caller, so the admin probes
        // send well-formed bodies that the handler then refuses (400) without a change.
        "POST /api/v1/orgs/{code}/move" => {
            with(fill(path, &[("{code}", code())]), Body::Json(json!({"parent": "", "dry_run": true})))
        }
        "POST /api/v1/orgs/{code}/handover" => {
            with(fill(path, &[("{code}", code())]), Body::Json(json!({"person": "nobody", "on": "2026-04-01"})))
        }
        "GET /api/v1/users/{login}" => plain("/api/v1/users/norole".into()),
        "GET /api/v1/rules/{code}" => plain("/api/v1/rules/A1".into()),
        "GET /api/v1/people/{id}" => plain(format!("/api/v1/people/{}", fx.person)),
        "PATCH /api/v1/users/{login}" | "POST /api/v1/users/{login}/password" => {
            with(fill(path, &[("{login}", "spare".into())]), empty_json())
        }
        "PUT /api/v1/settings" | "POST /api/v1/audit/verify" | "POST /api/v1/systems" => {
            with(path.into(), empty_json())
        }
        "POST /api/v1/users" => with(path.into(), Body::Json(json!({"login": "matrix_user", "password": "short"}))),
        "POST /api/v1/orgs" => with(
            path.into(),
            Body::Json(
                json!({"code": "Z-1", "name": "Z", "kind": "branch", "parent": "R2", "active_from": "not-a-date"}),
            ),
        ),
        "POST /api/v1/kinds" => with(path.into(), Body::Json(json!({"code": "", "name_zh": "", "name_en": ""}))),
        "POST /api/v1/people" => with(path.into(), Body::Json(json!({"name": ""}))),
        "POST /api/v1/templates/{template}/install" => with(
            "/api/v1/templates/ideology-school/install".into(),
            Body::Json(json!({"effective_from": "not-a-date"})),
        ),
        "POST /api/v1/systems/{code}/rules" => with("/api/v1/systems/ideology-company/rules".into(), empty_json()),
        "POST /api/v1/rules/{code}/versions" | "POST /api/v1/rules/{code}/waivers" => {
            with(fill(path, &[("{code}", "A1".into())]), empty_json())
        }
        "PATCH /api/v1/kinds/{code}" => with("/api/v1/kinds/branch".into(), empty_json()),
        "PATCH /api/v1/people/{id}" => with(format!("/api/v1/people/{}", fx.person), empty_json()),
        "POST /api/v1/people/{id}/roles" => with(
            format!("/api/v1/people/{}/roles", fx.person),
            Body::Json(json!({"org": "R2", "role": "no-such-role", "from": "2026-01-01"})),
        ),
        "PATCH /api/v1/roles/{id}" => with(format!("/api/v1/roles/{}", fx.role), empty_json()),
        other => panic!("{other} has an entry in the access matrix but no probe: add one to probe()"),
    }
}

/// Make the call as `who`; the outcome, and a few words on what came back.
async fn call(fx: &Fx, route: &SourceRoute, who: Who, p: Probe) -> (Outcome, u16, String) {
    let method: reqwest::Method = route.method.to_uppercase().parse().unwrap();
    let (status, location, text) = if route.is_api() {
        let mut req = fx.t.http.request(method, format!("{}{}", fx.t.base, p.path));
        if let Some(token) = fx.tokens.get(&who) {
            req = req.bearer_auth(token);
        }
        req = match p.body {
            Body::Json(v) => req.json(&v),
            Body::None => req,
            _ => panic!("the API takes JSON"),
        };
        let resp = req.send().await.expect("request");
        let st = resp.status();
        (st, None, resp.text().await.unwrap_or_default())
    } else {
        let fresh;
        let page = if p.fresh_session && who != Who::Anonymous {
            fresh = fx.t.sign_in(who.login()).await;
            &fresh
        } else {
            &fx.pages[&who]
        };
        match p.body {
            Body::None if method == reqwest::Method::GET => {
                let resp = page.http.get(format!("{}{}", page.base, p.path)).send().await.expect("request");
                let st = resp.status();
                let loc = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
                (st, loc, resp.text().await.unwrap_or_default())
            }
            Body::None | Body::Form(_) => {
                let fields = match p.body {
                    Body::Form(f) => f,
                    _ => vec![],
                };
                let borrowed: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                page.post(&p.path, &borrowed).await
            }
            Body::Multipart(fields) => fx.multipart(who, &p.path, fields, p.path.ends_with("/records")).await,
            Body::Json(_) => panic!("pages take forms"),
        }
    };
    let outcome = match status.as_u16() {
        401 if route.is_api() => Outcome::SignIn,
        // The sign-in page, to come back here afterwards (not the page after signing out).
        302 | 303 | 307 if location.as_deref().is_some_and(|l| l == "/login" || l.starts_with("/login?next=")) => {
            Outcome::SignIn
        }
        403 => Outcome::Forbidden,
        404 => Outcome::NotFound,
        s if entry(&route.key()).is_some_and(|e| e.ok.contains(&s)) => Outcome::Allowed,
        s => Outcome::Unexpected(s),
    };
    let what = match &location {
        Some(l) => format!("{} → {l}", status.as_u16()),
        None => {
            let snippet: String = text.chars().filter(|c| !c.is_control()).take(160).collect();
            format!("{} {snippet}", status.as_u16())
        }
    };
    (outcome, status.as_u16(), what)
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[test]
fn every_route_of_the_router_has_an_entry_in_the_access_matrix() {
    let routes = mounted_routes();
    assert!(routes.len() >= 100, "the parser found only {} routes", routes.len());
    let missing: Vec<String> =
        routes.iter().filter(|r| entry(&r.key()).is_none()).map(|r| format!("{} ({})", r.key(), r.file)).collect();
    assert!(
        missing.is_empty(),
        "add the route to the access matrix (tests/access_matrix.rs, fn entry):\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_reference_tables_say_what_design_section_3_says() {
    use Outcome::*;
    // A secretary of a branch sees it and nothing above or beside it.
    assert_eq!(expect(Policy::SeeOrg, Who::SecB1, Obj::B1), Allowed);
    assert_eq!(expect(Policy::SeeOrg, Who::SecB1, Obj::C), NotFound, "the parent");
    assert_eq!(expect(Policy::SeeOrg, Who::SecB1, Obj::B2), NotFound, "a sibling");
    assert_eq!(expect(Policy::SeeOrg, Who::SecC, Obj::B2), Allowed, "a child");
    assert_eq!(expect(Policy::SeeOrg, Who::SecC, Obj::R), NotFound, "the parent of C");
    assert_eq!(expect(Policy::SeeOrg, Who::SecC, Obj::R2), NotFound, "another tree");
    // The committee's secretary files for C, reviews the branches, files nothing for them.
    assert_eq!(expect(Policy::FileFor, Who::SecC, Obj::C), Allowed);
    assert_eq!(expect(Policy::FileFor, Who::SecC, Obj::B1), Forbidden);
    assert_eq!(expect(Policy::Review, Who::SecC, Obj::B1), Allowed);
    assert_eq!(expect(Policy::Review, Who::SecC, Obj::C), Forbidden, "not one's own organisation's records");
    assert_eq!(expect(Policy::Review, Who::CoordC, Obj::B2), Allowed);
    assert_eq!(expect(Policy::FileFor, Who::CoordC, Obj::C), Forbidden);
    // The inspector reads and does nothing.
    assert_eq!(expect(Policy::SeeRecord, Who::InspC, Obj::B1), Allowed);
    assert_eq!(expect(Policy::Review, Who::InspC, Obj::B1), Forbidden);
    assert_eq!(expect(Policy::FileFor, Who::InspC, Obj::C), Forbidden);
    // A member files only their own per-person duty, and sees no subtree.
    assert_eq!(expect(Policy::FileFor, Who::MemberB1, Obj::B1m), Allowed);
    assert_eq!(expect(Policy::FileFor, Who::MemberB1, Obj::B1), Forbidden);
    assert_eq!(expect(Policy::SeeSubtree, Who::MemberB1, Obj::B1), NotFound);
    // Nobody but an admin reviews a root's records.
    assert_eq!(expect(Policy::Review, Who::SecC, Obj::R), NotFound);
    assert_eq!(expect(Policy::Review, Who::Admin, Obj::R), Allowed);
    // Without a role, nothing; without a session, the sign-in page.
    assert_eq!(expect(Policy::SeeOrg, Who::NoRole, Obj::B1), NotFound);
    assert_eq!(expect(Policy::SignedIn, Who::Anonymous, Obj::One), SignIn);
    assert_eq!(expect(Policy::AdminOnly, Who::SecC, Obj::One), Forbidden);
}

#[tokio::test]
async fn every_role_gets_what_design_section_3_allows_on_every_route_and_object() {
    let started = std::time::Instant::now();
    let routes = mounted_routes();
    let unknown: Vec<String> = routes.iter().filter(|r| entry(&r.key()).is_none()).map(|r| r.key()).collect();
    assert!(unknown.is_empty(), "add the route to the access matrix: {unknown:?}");
    let fx = fixture(&routes).await;
    let mut failures = Vec::new();
    let mut cells = 0usize;
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    let mut routes_seen = BTreeSet::new();
    for route in &routes {
        let e = entry(&route.key()).unwrap();
        for &obj in e.objects {
            for who in Who::ALL {
                let p = probe(&fx, route, who, obj).await;
                let shown = p.path.clone();
                let (got, _, what) = call(&fx, route, who, p).await;
                let want = expect(e.policy, who, obj);
                cells += 1;
                routes_seen.insert(route.key());
                *by_outcome.entry(format!("{want:?}")).or_default() += 1;
                if got != want {
                    failures.push(format!(
                        "{:<44} {:<4} {:<10} wants {:<9} got {:?}: {} {shown}",
                        route.key(),
                        obj.name(),
                        who.login(),
                        format!("{want:?}"),
                        got,
                        what
                    ));
                }
            }
        }
    }
    println!(
        "access matrix: {} routes, {} cells (route × role × object), expected {:?}, in {:.1?}",
        routes_seen.len(),
        cells,
        by_outcome,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {cells} calls did not get what DESIGN.md section 3 says:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Row 18, by content rather than status: a leadership member sees their organisation
/// only (DESIGN.md section 3), so the branches under a committee stay hidden from a member
/// of the committee — in every answer that lists organisations, not just in the 404s.
#[tokio::test]
async fn a_leadership_member_of_a_committee_learns_nothing_about_its_branches() {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.org("R", "committee", None, "2015-01-01").await;
    t.org("C", "committee", Some("R"), "2015-01-01").await;
    t.org("B1", "branch", Some("C"), "2015-01-01").await;
    t.install("ideology-company", "2026-01-01", None).await;
    let token = t.user("mem_c", false).await;
    t.grant("mem_c", "C", "member").await;
    t.record("B1", "A8", "2026-03-20").await;
    let (st, _) = t.call("GET", "/api/v1/orgs/B1", &token, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "the branch itself is not found");
    let mut leaks = Vec::new();
    for path in ["/api/v1/orgs/C/children", "/api/v1/orgs/C/rollup?period=2026-Q1"] {
        let (st, body) = t.call("GET", path, &token, None).await;
        if st == StatusCode::OK && body.to_string().contains("B1") {
            leaks.push(format!("GET {path} ({st}): {body}"));
        }
    }
    let page = t.sign_in("mem_c").await;
    for path in ["/", "/calendar", "/review", "/subtree", "/notifications"] {
        let (st, html) = page.get(path).await;
        if st == StatusCode::OK && (html.contains("B1 组织") || html.contains(">B1<")) {
            leaks.push(format!("GET {path}: names the branch B1"));
        }
    }
    assert!(leaks.is_empty(), "a member of C learns about the branch B1:\n{}", leaks.join("\n"));
}
