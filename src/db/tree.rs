//! Administration of the organisation tree, its kinds, people and their role assignments:
//! the bounded listings and searches the admin pages and API read, and the changes that
//! `orgs.rs` and `people.rs` do not make (kinds, contact details, ending an assignment, a
//! handover at a change of term). Every listing is bounded and names the index it uses.

use std::collections::HashMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::duties;
use super::orgs::Org;
use super::people::{self, NewAssignment};
use crate::domain::access::Role;
use crate::error::{AppError, AppResult};

/// Rows per page of a listing.
pub const PAGE_SIZE: i64 = 50;
/// Descendants are counted up to this many; a page shows more as "1000+".
pub const DESCENDANT_CAP: i64 = 1000;
/// Results of one search.
pub const SEARCH_LIMIT: i64 = 50;
/// The total of a listing is counted up to this many.
pub const TOTAL_CAP: i64 = 100_000;
/// Assignments listed for one person or one organisation's history.
pub const ASSIGNMENT_LIMIT: i64 = 500;

// ---------------------------------------------------------------------------------------
// The tree
// ---------------------------------------------------------------------------------------

/// An organisation as the tree lists it: with its kind's names and the size of its
/// subtree (capped).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TreeNode {
    #[serde(skip)]
    pub id: i64,
    pub code: String,
    pub name: String,
    pub kind: String,
    #[serde(skip)]
    pub kind_zh: String,
    #[serde(skip)]
    pub kind_en: String,
    /// The parent's code.
    pub parent: Option<String>,
    #[serde(skip)]
    pub path: Vec<i64>,
    pub active_from: NaiveDate,
    pub active_until: Option<NaiveDate>,
    /// Its descendants (not itself), counted up to [`DESCENDANT_CAP`].
    pub descendants: i64,
}

impl TreeNode {
    pub fn kind_name(&self, en: bool) -> &str {
        if en { &self.kind_en } else { &self.kind_zh }
    }

    /// Whether the count of descendants stopped at the cap.
    pub fn descendants_capped(&self) -> bool {
        self.descendants >= DESCENDANT_CAP
    }

    pub fn is_closed_on(&self, day: NaiveDate) -> bool {
        self.active_until.is_some_and(|u| u < day)
    }
}

/// The node query with a fixed clause appended; `$1` is the descendant cap. The count of
/// descendants reads the `org_path` range of each row, stopping at the cap.
macro_rules! select_node {
    ($clause:literal) => {
        concat!(
            "select o.id, o.code, o.name, o.kind, k.name_zh as kind_zh, k.name_en as kind_en, p.code as parent,
                    o.path, o.active_from, o.active_until,
                    (select count(*) from (select 1 from org d
                                           where d.path > o.path and d.path < subtree_upper(o.path) limit $1) x)
                        as descendants
             from org o join org_kind k on k.code = o.kind left join org p on p.id = o.parent_id ",
            $clause
        )
    };
}

/// One page (from 1) of the children of an organisation, or of the roots, by code, with
/// how many there are (counted up to [`TOTAL_CAP`]). Index: `org_parent` (parent_id, code).
pub async fn children_page(
    conn: &mut PgConnection,
    parent_id: Option<i64>,
    page: i64,
) -> sqlx::Result<(Vec<TreeNode>, i64)> {
    let offset = (page.max(1) - 1) * PAGE_SIZE;
    let (nodes, total) = match parent_id {
        Some(id) => {
            let nodes = sqlx::query_as(select_node!("where o.parent_id = $2 order by o.code limit $3 offset $4"))
                .bind(DESCENDANT_CAP)
                .bind(id)
                .bind(PAGE_SIZE)
                .bind(offset)
                .fetch_all(&mut *conn)
                .await?;
            let total: i64 =
                sqlx::query_scalar("select count(*) from (select 1 from org where parent_id = $1 limit $2) x")
                    .bind(id)
                    .bind(TOTAL_CAP)
                    .fetch_one(&mut *conn)
                    .await?;
            (nodes, total)
        }
        None => {
            let nodes = sqlx::query_as(select_node!("where o.parent_id is null order by o.code limit $2 offset $3"))
                .bind(DESCENDANT_CAP)
                .bind(PAGE_SIZE)
                .bind(offset)
                .fetch_all(&mut *conn)
                .await?;
            let total: i64 =
                sqlx::query_scalar("select count(*) from (select 1 from org where parent_id is null limit $1) x")
                    .bind(TOTAL_CAP)
                    .fetch_one(&mut *conn)
                    .await?;
            (nodes, total)
        }
    };
    Ok((nodes, total))
}

/// One organisation as the tree lists it.
pub async fn node(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<TreeNode>> {
    sqlx::query_as(select_node!("where o.id = $2")).bind(DESCENDANT_CAP).bind(id).fetch_optional(conn).await
}

/// The lower-cased text if it can begin a code (letters, digits, `.`, `_`, `-`).
fn code_prefix(q: &str) -> Option<String> {
    let q = q.trim().to_ascii_lowercase();
    let ok =
        !q.is_empty() && q.len() <= 64 && q.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    ok.then_some(q)
}

/// `%text%` for LIKE, with LIKE's own characters escaped.
fn like_substring(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Organisations whose code starts with `q` (any case; index `org_code_prefix`) or whose
/// name contains it, at most [`SEARCH_LIMIT`]: the exact code first, then codes by
/// prefix, then names in tree order. The second value says whether more would match.
pub async fn search(conn: &mut PgConnection, q: &str) -> sqlx::Result<(Vec<TreeNode>, bool)> {
    let q = q.trim();
    if q.is_empty() {
        return Ok((vec![], false));
    }
    let mut found: Vec<TreeNode> = Vec::new();
    if let Some(prefix) = code_prefix(q) {
        found = sqlx::query_as(select_node!(
            "where lower(o.code) collate \"C\" >= $2 and lower(o.code) collate \"C\" < $3
             order by lower(o.code) collate \"C\" limit $4"
        ))
        .bind(DESCENDANT_CAP)
        .bind(&prefix)
        .bind(format!("{prefix}~"))
        .bind(SEARCH_LIMIT + 1)
        .fetch_all(&mut *conn)
        .await?;
    }
    let room = SEARCH_LIMIT + 1 - found.len() as i64;
    if room > 0 && q.chars().count() <= 200 {
        let seen: Vec<i64> = found.iter().map(|n| n.id).collect();
        let mut by_name: Vec<TreeNode> =
            sqlx::query_as(select_node!("where o.name ilike $2 escape '\\' and o.id <> all($3) limit $4"))
                .bind(DESCENDANT_CAP)
                .bind(like_substring(q))
                .bind(&seen)
                .bind(room)
                .fetch_all(&mut *conn)
                .await?;
        by_name.sort_by(|a, b| a.path.cmp(&b.path));
        found.extend(by_name);
    }
    let more = found.len() as i64 > SEARCH_LIMIT;
    found.truncate(SEARCH_LIMIT as usize);
    Ok((found, more))
}

/// An organisation named by code and name, for breadcrumbs and links.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OrgRef {
    #[serde(skip)]
    pub id: i64,
    pub code: String,
    pub name: String,
}

/// The organisations with these ids, by id. Index: `org_pkey`.
pub async fn refs(conn: &mut PgConnection, ids: &[i64]) -> sqlx::Result<HashMap<i64, OrgRef>> {
    let rows: Vec<OrgRef> = sqlx::query_as("select id, code, name from org where id = any($1) limit 5000")
        .bind(ids)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.id, r)).collect())
}

/// The ancestors of an organisation at `path`, root first (itself not included).
pub async fn ancestors(conn: &mut PgConnection, path: &[i64]) -> sqlx::Result<Vec<OrgRef>> {
    let ids = &path[..path.len().saturating_sub(1)];
    let mut by_id = refs(conn, ids).await?;
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// For each node, its ancestors root first: the breadcrumbs of search results.
pub async fn breadcrumbs(conn: &mut PgConnection, nodes: &[TreeNode]) -> sqlx::Result<Vec<Vec<OrgRef>>> {
    let mut ids: Vec<i64> =
        nodes.iter().flat_map(|n| n.path[..n.path.len().saturating_sub(1)].iter().copied()).collect();
    ids.sort_unstable();
    ids.dedup();
    let by_id = refs(conn, &ids).await?;
    Ok(nodes
        .iter()
        .map(|n| n.path[..n.path.len().saturating_sub(1)].iter().filter_map(|id| by_id.get(id).cloned()).collect())
        .collect())
}

/// An organisation by code, also when typed in another case (`hx-01` for `HX-01`).
pub async fn org_by_code_any_case(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<Org>> {
    let code = code.trim();
    if let Some(org) = super::orgs::find_by_code(conn, code).await? {
        return Ok(Some(org));
    }
    let Some(lower) = code_prefix(code) else { return Ok(None) };
    let ids: Vec<i64> =
        sqlx::query_scalar("select id from org where lower(code) collate \"C\" = $1 collate \"C\" limit 2")
            .bind(&lower)
            .fetch_all(&mut *conn)
            .await?;
    match ids.as_slice() {
        [id] => super::orgs::find_by_id(conn, *id).await,
        _ => Ok(None),
    }
}

/// Whether the organisation owes any duty (then its kind cannot change). Index:
/// `duty_identity` (org_id, …).
pub async fn owes_duties(conn: &mut PgConnection, org_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar("select exists (select 1 from duty where org_id = $1)").bind(org_id).fetch_one(conn).await
}

/// Unfinished duties of the organisation's whole subtree, from the maintained totals.
pub async fn open_duties_in_subtree(conn: &mut PgConnection, org_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select coalesce(sum(n), 0)::bigint from subtree_total where org_id = $1 and class in ('pending', 'submitted')",
    )
    .bind(org_id)
    .fetch_one(conn)
    .await
}

/// A rule that applies to an organisation (its kind and its place in the tree), as in
/// force on a day.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AppliedRule {
    pub code: String,
    pub title: String,
    pub clause: String,
    pub cadence: String,
    pub min_count: i32,
    pub binds: String,
    pub responsible_role: String,
    pub needs_review: bool,
    pub system: String,
}

/// The rules that apply to the organisation, in the order they stand in their systems.
pub async fn rules_for(conn: &mut PgConnection, org: &Org, day: NaiveDate) -> sqlx::Result<Vec<AppliedRule>> {
    sqlx::query_as(
        "select r.code, v.title, v.clause, r.cadence, v.min_count, r.binds, v.responsible_role, v.needs_review,
                s.title as system
         from rule r join responsibility_system s on s.id = r.system_id
         cross join lateral (
             select * from rule_version v where v.rule_id = r.id
             order by (v.effective_from <= $3) desc,
                      case when v.effective_from <= $3 then v.effective_from end desc,
                      v.effective_from asc
             limit 1) v
         where not v.retired
           and exists (select 1 from rule_version_kind k where k.version_id = v.id and k.kind = $1)
           and (v.root_org_id is null or v.root_org_id = any($2))
         order by s.id, r.position
         limit 300",
    )
    .bind(&org.kind)
    .bind(&org.path)
    .bind(day)
    .fetch_all(conn)
    .await
}

// ---------------------------------------------------------------------------------------
// Kinds
// ---------------------------------------------------------------------------------------

/// An organisation kind.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Kind {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub builtin: bool,
    /// Whether any organisation has this kind. Index: `org_by_kind`.
    pub in_use: bool,
}

impl Kind {
    pub fn name(&self, en: bool) -> &str {
        if en { &self.name_en } else { &self.name_zh }
    }
}

/// Every kind, built-in ones first.
pub async fn kinds(conn: &mut PgConnection) -> sqlx::Result<Vec<Kind>> {
    sqlx::query_as(
        "select k.code, k.name_zh, k.name_en, k.builtin, exists (select 1 from org o where o.kind = k.code) as in_use
         from org_kind k order by k.position, k.code limit 500",
    )
    .fetch_all(conn)
    .await
}

pub async fn find_kind(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<Kind>> {
    sqlx::query_as(
        "select k.code, k.name_zh, k.name_en, k.builtin, exists (select 1 from org o where o.kind = k.code) as in_use
         from org_kind k where k.code = $1",
    )
    .bind(code)
    .fetch_optional(conn)
    .await
}

/// A kind's code: a lower-case letter, then up to 39 lower-case letters, digits or `_`.
pub fn validate_kind_code(code: &str) -> AppResult<String> {
    let code = code.trim();
    let ok = !code.is_empty()
        && code.len() <= 40
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(code.to_owned())
    } else {
        Err(AppError::bad_input(
            "code",
            "a kind's code is 1–40 lower-case letters, digits or '_', starting with a letter (e.g. village_branch)",
        ))
    }
}

/// A kind's names: Chinese 1–50 characters, English 1–80.
pub fn validate_kind_names(name_zh: &str, name_en: &str) -> AppResult<(String, String)> {
    let zh = name_zh.trim();
    let en = name_en.trim();
    if zh.is_empty() || zh.chars().count() > 50 {
        return Err(AppError::bad_input("name_zh", "the Chinese name is 1–50 characters"));
    }
    if en.is_empty() || en.chars().count() > 80 {
        return Err(AppError::bad_input("name_en", "the English name is 1–80 characters"));
    }
    Ok((zh.to_owned(), en.to_owned()))
}

/// Imports name a kind by its Chinese name too, so two kinds may not share one.
async fn check_name_free(conn: &mut PgConnection, name_zh: &str, except: Option<&str>) -> AppResult<()> {
    let taken: Option<String> =
        sqlx::query_scalar("select code from org_kind where name_zh = $1 and code is distinct from $2 limit 1")
            .bind(name_zh)
            .bind(except)
            .fetch_optional(conn)
            .await?;
    match taken {
        Some(code) => Err(AppError::conflict(format!("the kind {code} has the Chinese name {name_zh:?} already"))),
        None => Ok(()),
    }
}

/// Add a kind; it comes after the existing ones.
pub async fn create_kind(conn: &mut PgConnection, code: &str, name_zh: &str, name_en: &str) -> AppResult<Kind> {
    let code = validate_kind_code(code)?;
    let (zh, en) = validate_kind_names(name_zh, name_en)?;
    if find_kind(conn, &code).await?.is_some() {
        return Err(AppError::conflict(format!("a kind with the code {code:?} exists")));
    }
    check_name_free(conn, &zh, None).await?;
    sqlx::query(
        "insert into org_kind (code, name_zh, name_en, builtin, position)
         values ($1, $2, $3, false, (select coalesce(max(position), 0) + 1 from org_kind))",
    )
    .bind(&code)
    .bind(&zh)
    .bind(&en)
    .execute(&mut *conn)
    .await?;
    Ok(find_kind(conn, &code).await?.ok_or_else(|| anyhow::anyhow!("the new kind vanished"))?)
}

/// Rename a kind (built-in ones too: a deployment may call its branches otherwise).
pub async fn rename_kind(conn: &mut PgConnection, code: &str, name_zh: &str, name_en: &str) -> AppResult<Kind> {
    let (zh, en) = validate_kind_names(name_zh, name_en)?;
    if find_kind(conn, code).await?.is_none() {
        return Err(AppError::not_found(format!("organisation kind {code}")));
    }
    check_name_free(conn, &zh, Some(code)).await?;
    sqlx::query("update org_kind set name_zh = $2, name_en = $3 where code = $1")
        .bind(code)
        .bind(&zh)
        .bind(&en)
        .execute(&mut *conn)
        .await?;
    Ok(find_kind(conn, code).await?.ok_or_else(|| anyhow::anyhow!("the kind vanished"))?)
}

// ---------------------------------------------------------------------------------------
// People
// ---------------------------------------------------------------------------------------

/// A person as the list shows them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PersonRow {
    pub id: i64,
    pub name: String,
    pub code: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub login: Option<String>,
    /// Roles held today.
    pub roles_now: i64,
    /// The first three of them, `[[org name, role, acting], …]`, for the list.
    #[serde(skip)]
    pub roles_json: serde_json::Value,
}

impl PersonRow {
    /// (organisation name, role, acting) of the first roles held today.
    pub fn first_roles(&self) -> Vec<(String, String, bool)> {
        serde_json::from_value(self.roles_json.clone()).unwrap_or_default()
    }
}

/// One page (from 1) of people whose name contains `q` (or whose code, login or phone is
/// `q`), by name, with how many match (up to [`TOTAL_CAP`]). Index: `person_by_name`.
pub async fn people_page(
    conn: &mut PgConnection,
    q: &str,
    today: NaiveDate,
    page: i64,
) -> sqlx::Result<(Vec<PersonRow>, i64)> {
    let q = q.trim();
    let like = like_substring(q);
    let offset = (page.max(1) - 1) * PAGE_SIZE;
    let rows: Vec<PersonRow> = sqlx::query_as(
        "select p.id, p.name, p.code, p.phone, p.email, u.login,
                (select count(*) from role_assignment ra where ra.person_id = p.id and ra.starts_on <= $3
                   and (ra.ends_on is null or ra.ends_on >= $3)) as roles_now,
                (select coalesce(json_agg(json_build_array(x.name, x.role, x.acting)), '[]'::json)
                 from (select o.name, ra.role, ra.acting from role_assignment ra join org o on o.id = ra.org_id
                       where ra.person_id = p.id and ra.starts_on <= $3 and (ra.ends_on is null or ra.ends_on >= $3)
                       order by o.path, ra.role limit 3) x) as roles_json
         from person p left join app_user u on u.person_id = p.id
         where $1 = '' or p.name ilike $2 escape '\\' or p.code = $1 or u.login = lower($1) or p.phone = $1
         order by p.name, p.id
         limit $4 offset $5",
    )
    .bind(q)
    .bind(&like)
    .bind(today)
    .bind(PAGE_SIZE)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query_scalar(
        "select count(*) from (
             select 1 from person p left join app_user u on u.person_id = p.id
             where $1 = '' or p.name ilike $2 escape '\\' or p.code = $1 or u.login = lower($1) or p.phone = $1
             limit $3) x",
    )
    .bind(q)
    .bind(&like)
    .bind(TOTAL_CAP)
    .fetch_one(&mut *conn)
    .await?;
    Ok((rows, total))
}

/// The people a typed text names exactly: `#12` or `12` (an id), a person code, a login,
/// or a full name. At most 20, by name.
pub async fn people_named(conn: &mut PgConnection, q: &str, today: NaiveDate) -> sqlx::Result<Vec<PersonRow>> {
    let q = q.trim();
    let id: Option<i64> = q.strip_prefix('#').unwrap_or(q).parse().ok();
    sqlx::query_as(
        "select p.id, p.name, p.code, p.phone, p.email, u.login,
                (select count(*) from role_assignment ra where ra.person_id = p.id and ra.starts_on <= $3
                   and (ra.ends_on is null or ra.ends_on >= $3)) as roles_now,
                (select coalesce(json_agg(json_build_array(x.name, x.role, x.acting)), '[]'::json)
                 from (select o.name, ra.role, ra.acting from role_assignment ra join org o on o.id = ra.org_id
                       where ra.person_id = p.id and ra.starts_on <= $3 and (ra.ends_on is null or ra.ends_on >= $3)
                       order by o.path, ra.role limit 3) x) as roles_json
         from person p left join app_user u on u.person_id = p.id
         where p.id = $2 or p.name = $1 or p.code = $1 or u.login = lower($1)
         order by p.name, p.id
         limit 20",
    )
    .bind(q)
    .bind(id)
    .bind(today)
    .fetch_all(conn)
    .await
}

/// A person with their account, if they have one.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub code: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub login: Option<String>,
    pub is_admin: Option<bool>,
    pub disabled: Option<bool>,
}

pub async fn find_person(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Person>> {
    sqlx::query_as(
        "select p.id, p.name, p.code, p.phone, p.email, u.login, u.is_admin, (u.disabled_at is not null) as disabled
         from person p left join app_user u on u.person_id = p.id where p.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A person's details, validated at the edge. Empty optional fields are absent.
#[derive(Debug, Clone, Default)]
pub struct PersonInput {
    pub name: String,
    pub code: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// Which field of a person is wrong, and why (in English, for the API).
pub fn validate_person(name: &str, code: &str, phone: &str, email: &str) -> AppResult<PersonInput> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_input("name", "a name is 1–100 characters"));
    }
    let code = code.trim();
    let code_ok = code.is_empty()
        || (code.len() <= 64
            && code.starts_with(|c: char| c.is_ascii_alphanumeric())
            && code.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    if !code_ok {
        return Err(AppError::bad_input(
            "code",
            "a person code is 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ));
    }
    let phone = phone.trim();
    let phone_ok = phone.chars().count() <= 40
        && phone.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')' | '转' | '#'));
    if !phone_ok {
        return Err(AppError::bad_input("phone", "a phone number is up to 40 digits, spaces, '+', '-' or brackets"));
    }
    let email = email.trim();
    let email_ok = email.is_empty()
        || (email.chars().count() <= 200
            && email.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.') && !b.contains('@'))
            && !email.chars().any(char::is_whitespace));
    if !email_ok {
        return Err(AppError::bad_input("email", "an e-mail address looks like name@example.cn"));
    }
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(PersonInput { name: name.to_owned(), code: some(code), phone: some(phone), email: some(email) })
}

async fn check_person_code_free(conn: &mut PgConnection, code: Option<&str>, except: Option<i64>) -> AppResult<()> {
    let Some(code) = code else { return Ok(()) };
    let taken: bool =
        sqlx::query_scalar("select exists (select 1 from person where code = $1 and id is distinct from $2)")
            .bind(code)
            .bind(except)
            .fetch_one(conn)
            .await?;
    if taken { Err(AppError::conflict(format!("another person has the code {code:?}"))) } else { Ok(()) }
}

/// Create a person (no account); returns the id.
pub async fn create_person(conn: &mut PgConnection, input: &PersonInput, now: DateTime<Utc>) -> AppResult<i64> {
    check_person_code_free(conn, input.code.as_deref(), None).await?;
    let id = people::create_person(conn, &input.name, now).await?;
    sqlx::query("update person set code = $2, phone = $3, email = $4 where id = $1")
        .bind(id)
        .bind(&input.code)
        .bind(&input.phone)
        .bind(&input.email)
        .execute(conn)
        .await?;
    Ok(id)
}

/// Change a person's details.
pub async fn update_person(conn: &mut PgConnection, id: i64, input: &PersonInput) -> AppResult<()> {
    check_person_code_free(conn, input.code.as_deref(), Some(id)).await?;
    sqlx::query("update person set name = $2, code = $3, phone = $4, email = $5 where id = $1")
        .bind(id)
        .bind(&input.name)
        .bind(&input.code)
        .bind(&input.phone)
        .bind(&input.email)
        .execute(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Role assignments
// ---------------------------------------------------------------------------------------

/// A role assignment with its person and organisation.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Assignment {
    pub id: i64,
    pub person_id: i64,
    pub person_name: String,
    #[serde(skip)]
    pub org_id: i64,
    pub org_code: String,
    pub org_name: String,
    #[serde(skip)]
    pub org_path: Vec<i64>,
    pub role: String,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
    pub acting: bool,
}

impl Assignment {
    pub fn role(&self) -> Option<Role> {
        self.role.parse().ok()
    }

    /// Held on `day`.
    pub fn holds_on(&self, day: NaiveDate) -> bool {
        self.starts_on <= day && self.ends_on.is_none_or(|e| e >= day)
    }

    pub fn is_past(&self, day: NaiveDate) -> bool {
        self.ends_on.is_some_and(|e| e < day)
    }
}

macro_rules! select_assignment {
    ($clause:literal) => {
        concat!(
            "select ra.id, ra.person_id, p.name as person_name, ra.org_id, o.code as org_code, o.name as org_name,
                    o.path as org_path, ra.role, ra.starts_on, ra.ends_on, ra.acting
             from role_assignment ra join person p on p.id = ra.person_id join org o on o.id = ra.org_id ",
            $clause
        )
    };
}

pub async fn find_assignment(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Assignment>> {
    sqlx::query_as(select_assignment!("where ra.id = $1")).bind(id).fetch_optional(conn).await
}

/// Every assignment of a person, the latest first (open-ended ones first of all), at most
/// [`ASSIGNMENT_LIMIT`]. Index: `role_assignment_person`.
pub async fn assignments_of_person(conn: &mut PgConnection, person_id: i64) -> sqlx::Result<Vec<Assignment>> {
    sqlx::query_as(select_assignment!(
        "where ra.person_id = $1
         order by coalesce(ra.ends_on, 'infinity'::date) desc, ra.starts_on desc, o.code, ra.role
         limit $2"
    ))
    .bind(person_id)
    .bind(ASSIGNMENT_LIMIT)
    .fetch_all(conn)
    .await
}

/// Whether another assignment of the same person, organisation, role and kind (acting or
/// not) covers part of [from, until].
async fn overlaps(
    conn: &mut PgConnection,
    a: &Assignment,
    from: NaiveDate,
    until: Option<NaiveDate>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "select exists (select 1 from role_assignment
                        where person_id = $1 and org_id = $2 and role = $3 and acting = $4 and id <> $5
                          and starts_on <= coalesce($7, 'infinity'::date)
                          and coalesce(ends_on, 'infinity'::date) >= $6)",
    )
    .bind(a.person_id)
    .bind(a.org_id)
    .bind(&a.role)
    .bind(a.acting)
    .bind(a.id)
    .bind(from)
    .bind(until)
    .fetch_one(conn)
    .await
}

/// Set the last day of an assignment (`None`: no end). A leadership member's per-member
/// duties follow at once.
pub async fn set_end(
    conn: &mut PgConnection,
    a: &Assignment,
    until: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    if let Some(u) = until
        && u < a.starts_on
    {
        return Err(AppError::bad_input(
            "until",
            format!("the last day cannot come before the first day of the assignment ({})", a.starts_on),
        ));
    }
    if overlaps(conn, a, a.starts_on, until).await? {
        return Err(AppError::conflict("the person holds this role there again later; that would overlap"));
    }
    sqlx::query("update role_assignment set ends_on = $2 where id = $1")
        .bind(a.id)
        .bind(until)
        .execute(&mut *conn)
        .await?;
    if a.role() == Some(Role::Member) {
        duties::sync_orgs(conn, &[a.org_id], now).await?;
    }
    Ok(())
}

/// What a handover changed.
#[derive(Debug, Clone, Serialize)]
pub struct Handover {
    /// The assignments that ended the day before (the previous holders).
    pub ended: Vec<Assignment>,
    /// The new holder's assignment.
    pub assigned: i64,
}

/// A change of term (换届): every holder of the role on the organisation on `from` (not
/// acting) holds it until the day before, and the new person holds it from `from` on.
pub async fn handover(
    conn: &mut PgConnection,
    org: &Org,
    role: Role,
    person_id: i64,
    from: NaiveDate,
    now: DateTime<Utc>,
) -> AppResult<Handover> {
    let day_before =
        from.checked_sub_days(Days::new(1)).ok_or_else(|| AppError::bad_input("on", "a date out of range"))?;
    if from < org.active_from || org.active_until.is_some_and(|u| from > u) {
        return Err(AppError::bad_input("on", "the organisation is not active on that day"));
    }
    let current: Vec<Assignment> = sqlx::query_as(select_assignment!(
        "where ra.org_id = $1 and ra.role = $2 and not ra.acting and ra.starts_on <= $3
           and (ra.ends_on is null or ra.ends_on >= $3)
         order by ra.starts_on
         limit 100"
    ))
    .bind(org.id)
    .bind(role.as_str())
    .bind(from)
    .fetch_all(&mut *conn)
    .await?;
    if current.iter().any(|a| a.person_id == person_id) {
        return Err(AppError::conflict("that person holds the role there already on that day"));
    }
    if let Some(a) = current.iter().find(|a| a.starts_on > day_before) {
        return Err(AppError::bad_input(
            "on",
            format!("{} only took the role on {}: choose a later day", a.person_name, a.starts_on),
        ));
    }
    let ids: Vec<i64> = current.iter().map(|a| a.id).collect();
    sqlx::query("update role_assignment set ends_on = $2 where id = any($1)")
        .bind(&ids)
        .bind(day_before)
        .execute(&mut *conn)
        .await?;
    let assigned = people::assign_role(
        conn,
        org,
        NewAssignment { person_id, role, starts_on: from, ends_on: None, acting: false },
        now,
    )
    .await?;
    let ended = current.into_iter().map(|a| Assignment { ends_on: Some(day_before), ..a }).collect();
    Ok(Handover { ended, assigned })
}

// ---------------------------------------------------------------------------------------
// The administration's landing page
// ---------------------------------------------------------------------------------------

/// How much there is to administer.
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct AdminCounts {
    pub orgs: i64,
    pub orgs_open: i64,
    pub kinds: i64,
    pub kinds_added: i64,
    pub people: i64,
    pub accounts: i64,
    pub roles_now: i64,
}

pub async fn admin_counts(conn: &mut PgConnection, today: NaiveDate) -> sqlx::Result<AdminCounts> {
    sqlx::query_as(
        "select (select count(*) from org) as orgs,
                (select count(*) from org where active_until is null or active_until >= $1) as orgs_open,
                (select count(*) from org_kind) as kinds,
                (select count(*) from org_kind where not builtin) as kinds_added,
                (select count(*) from person) as people,
                (select count(*) from app_user where disabled_at is null) as accounts,
                (select count(*) from role_assignment where starts_on <= $1 and (ends_on is null or ends_on >= $1))
                    as roles_now",
    )
    .bind(today)
    .fetch_one(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_their_wildcards() {
        assert_eq!(like_substring("第一"), "%第一%");
        assert_eq!(like_substring("50%_a\\"), "%50\\%\\_a\\\\%");
    }

    #[test]
    fn only_code_characters_make_a_code_prefix() {
        assert_eq!(code_prefix(" HX-0 ").as_deref(), Some("hx-0"));
        assert_eq!(code_prefix("第一支部"), None);
        assert_eq!(code_prefix(""), None);
    }

    #[test]
    fn kind_codes_are_lower_case_words() {
        assert!(validate_kind_code("village_branch").is_ok());
        assert!(validate_kind_code("Village").is_err());
        assert!(validate_kind_code("1abc").is_err());
        assert!(validate_kind_code("").is_err());
    }

    #[test]
    fn people_need_a_name_and_sensible_contacts() {
        let p = validate_person(" 王芳 ", "", "0571-8888 8888", "wang@example.cn").unwrap();
        assert_eq!(p.name, "王芳");
        assert_eq!(p.code, None);
        assert!(validate_person("", "", "", "").is_err());
        assert!(validate_person("王芳", "", "abc", "").is_err());
        assert!(validate_person("王芳", "", "", "wang").is_err());
        assert!(validate_person("王芳", "P 1", "", "").is_err());
    }
}
