//! `bench-data --orgs N`: a synthetic tree for benchmarks (DESIGN.md section 6).
//!
//! Fills an empty database, in one transaction of set-based statements (a few per tree
//! level, never one per organisation), with:
//!
//! - three trees, one per built-in template, five levels deep: ~60 % of N under a
//!   `group_committee` (company committees → committees → branches, and a few
//!   committees at level 4 with branches at level 5), ~20 % under a committee of
//!   `branch`es, ~20 % under a committee of `school_branch`es; codes like `BC-000123`,
//!   names like `第123党支部`; most founded years ago, ~2 % of the leaves this year in
//!   the middle of a quarter, ~1 % closed this year;
//! - a secretary on every organisation (with a user account `bench-<code>`, all sharing
//!   one argon2 hash), a coordinator on every committee, 2–3 leadership members on
//!   committees and branches;
//! - the three templates installed on their roots from January 1st of the current year,
//!   as rows only: no rule period and no duty exists, and the materializer's marker is
//!   cleared, so that the first `tick` materializes everything (what the benchmark times);
//! - records for the organisation-level rules' periods of the current year that have
//!   started: per organisation and rule period ~60 % enough accepted records (a few
//!   late), ~10 % one awaiting review (or one of two done), a few returned, drafts and
//!   withdrawn, each with its first version and, where reviewed, its review (the
//!   per-member rule A13 gets none).
//!
//! Every row is consistent by construction (ids are computed, paths set as the path
//! trigger sets them), so as a superuser it switches per-row triggers off for the load
//! (`session_replication_role = replica`: foreign-key checks and the path trigger), as a
//! bulk restore does; as any other user it runs with them, slower.

use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::app::App;
use crate::db::audit;
use crate::db::settings::Settings;
use crate::domain::period::{Cadence, Period};
use crate::domain::templates::{self, Binds, Template};
use crate::domain::time::{deadlines, local_date};

/// The password of every `bench-…` account.
pub const PASSWORD: &str = "bench-zerenzhi-2026";

/// The smallest tree that still has every level.
const MIN_ORGS: u32 = 50;

/// One of the three trees: its shape and the template installed on its root.
#[derive(Debug, Clone)]
struct Part {
    template: &'static Template,
    root_kind: &'static str,
    root_name: &'static str,
    root_prefix: &'static str,
    leaf_kind: &'static str,
    leaf_prefix: &'static str,
    leaf_name: &'static str,
    /// Organisations at level 2 and 3 (committees).
    level2: i64,
    level3: i64,
    /// Committees and leaves at level 4, leaves at level 5 (under the level-4 committees).
    level4_mid: i64,
    level4_leaf: i64,
    level5_leaf: i64,
}

impl Part {
    fn shaped(
        template: &'static Template,
        n: i64,
        root: (&'static str, &'static str, &'static str),
        leaf: (&'static str, &'static str, &'static str),
    ) -> Part {
        let level2 = (n / 2000).max(1);
        let level3 = (n / 100).max(1);
        let rest = n - 1 - level2 - level3;
        let level5_leaf = rest * 2 / 5;
        let level4 = rest - level5_leaf;
        let level4_mid = if level5_leaf > 0 { (level4 / 20).max(1) } else { 0 };
        Part {
            template,
            root_kind: root.0,
            root_name: root.1,
            root_prefix: root.2,
            leaf_kind: leaf.0,
            leaf_name: leaf.1,
            leaf_prefix: leaf.2,
            level2,
            level3,
            level4_mid,
            level4_leaf: level4 - level4_mid,
            level5_leaf,
        }
    }

    fn total(&self) -> i64 {
        1 + self.level2 + self.level3 + self.level4_mid + self.level4_leaf + self.level5_leaf
    }
}

/// The three parts of a tree of `orgs` organisations.
fn parts(orgs: u32) -> [Part; 3] {
    let n = i64::from(orgs);
    let a = n * 6 / 10;
    let b = n * 2 / 10;
    let c = n - a - b;
    [
        Part::shaped(
            &templates::IDEOLOGY_COMPANY,
            a,
            ("group_committee", "基准集团党委", "GC"),
            ("branch", "第{n}党支部", "BC"),
        ),
        Part::shaped(
            &templates::IDEOLOGY_BRANCH_COMPANY,
            b,
            ("committee", "基准分公司党委", "CM"),
            ("branch", "第{n}党支部", "BC"),
        ),
        Part::shaped(
            &templates::IDEOLOGY_SCHOOL,
            c,
            ("committee", "基准县教育工委", "CM"),
            ("school_branch", "第{n}学校党支部", "SB"),
        ),
    ]
}

/// One level of one part: `count` organisations with consecutive ids from `first_id`,
/// their parents spread round-robin over `parent_count` ids from `first_parent`.
struct Level<'a> {
    first_id: i64,
    count: i64,
    prefix: &'a str,
    name: &'a str,
    kind: &'a str,
    first_parent: Option<i64>,
    parent_count: i64,
    leaf: bool,
}

/// What the clock says, in the deployment's zone, and where the new ids start.
struct Today {
    now: DateTime<Utc>,
    today: NaiveDate,
    year_start: NaiveDate,
    /// Quarters of the current year that have started (1–4).
    quarters_started: i32,
    tz: String,
    /// Person `person_base + 5 (org − 1) + slot + 1` holds slot 0–4 of organisation `org`
    /// (secretary, coordinator, three members), and user `user_base + org` is the
    /// secretary's account, so no statement needs to look an id up.
    person_base: i64,
    user_base: i64,
}

/// Insert one level of organisations with one statement. Codes and names carry the id;
/// the path is the parent's and the id (what the path trigger computes, for when it is
/// off); dates: committees were founded 1995–2004; leaves 2005 to two years ago, except
/// ~2 % founded this year in the middle of a started quarter and ~1 % closed this year.
async fn insert_level(conn: &mut PgConnection, l: &Level<'_>, width: i32, t: &Today) -> sqlx::Result<u64> {
    let r = sqlx::query(
        "insert into org (id, code, name, kind, parent_id, path, active_from, active_until, created_at)
         overriding system value
         select s.id, $3 || '-' || lpad(s.id::text, $4, '0'), replace($5, '{n}', s.id::text), $6, p.id,
                coalesce(p.path, '{}') || s.id,
                case when not $9 then date '1995-01-01' + (s.id * 37 % 3650)::int
                     when u < 0.02 then least($11, (q_start + 30 + (v * 31)::int))
                     else date '2005-01-01' + (v * (($10 - interval '1 year')::date - date '2005-01-01'))::int
                end,
                case when $9 and u >= 0.02 and u < 0.03 then $10 + (v * ($11 - $10))::int end,
                $12
         from (select g, $1 + g as id, random() as u, random() as v,
                      ($10 + make_interval(months => 3 * floor(random() * $13)::int))::date as q_start
               from generate_series(0::bigint, $2 - 1) g) s
         left join org p on p.id = $7 + s.g % $8",
    )
    .bind(l.first_id)
    .bind(l.count)
    .bind(l.prefix)
    .bind(width)
    .bind(l.name)
    .bind(l.kind)
    .bind(l.first_parent)
    .bind(l.parent_count.max(1))
    .bind(l.leaf)
    .bind(t.year_start)
    .bind(t.today)
    .bind(t.now)
    .bind(t.quarters_started)
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}
/// Insert the organisations of every part, level by level; returns the root ids.
async fn insert_tree(conn: &mut PgConnection, parts: &[Part], t: &Today) -> anyhow::Result<Vec<i64>> {
    let total: i64 = parts.iter().map(Part::total).sum();
    let width = (total.to_string().len() as i32).max(6);
    let mut next = 1i64;
    let mut roots = Vec::with_capacity(parts.len());
    for p in parts {
        let root = next;
        let l2 = root + 1;
        let l3 = l2 + p.level2;
        let l4_mid = l3 + p.level3;
        let l4_leaf = l4_mid + p.level4_mid;
        let l5_leaf = l4_leaf + p.level4_leaf;
        let levels = [
            Level {
                first_id: root,
                count: 1,
                prefix: p.root_prefix,
                name: p.root_name,
                kind: p.root_kind,
                first_parent: None,
                parent_count: 1,
                leaf: false,
            },
            Level {
                first_id: l2,
                count: p.level2,
                prefix: "CM",
                name: "第{n}党委",
                kind: "committee",
                first_parent: Some(root),
                parent_count: 1,
                leaf: false,
            },
            Level {
                first_id: l3,
                count: p.level3,
                prefix: "CM",
                name: "第{n}党委",
                kind: "committee",
                first_parent: Some(l2),
                parent_count: p.level2,
                leaf: false,
            },
            Level {
                first_id: l4_mid,
                count: p.level4_mid,
                prefix: "CM",
                name: "第{n}党委",
                kind: "committee",
                first_parent: Some(l3),
                parent_count: p.level3,
                leaf: false,
            },
            Level {
                first_id: l4_leaf,
                count: p.level4_leaf,
                prefix: p.leaf_prefix,
                name: p.leaf_name,
                kind: p.leaf_kind,
                first_parent: Some(l3),
                parent_count: p.level3,
                leaf: true,
            },
            Level {
                first_id: l5_leaf,
                count: p.level5_leaf,
                prefix: p.leaf_prefix,
                name: p.leaf_name,
                kind: p.leaf_kind,
                first_parent: Some(l4_mid),
                parent_count: p.level4_mid,
                leaf: true,
            },
        ];
        for level in levels.iter().filter(|l| l.count > 0) {
            insert_level(conn, level, width, t).await.with_context(|| format!("inserting {} orgs", level.kind))?;
        }
        roots.push(root);
        next = l5_leaf + p.level5_leaf;
    }
    sqlx::query("select setval(pg_get_serial_sequence('org', 'id'), (select max(id) from org))")
        .execute(&mut *conn)
        .await?;
    Ok(roots)
}

/// The person slots of every organisation: a secretary everywhere, a coordinator on
/// committees, 2–3 leadership members on committees and branches.
macro_rules! slots {
    () => {
        "(select o.*, s.n, s.role, $1::bigint + 5 * (o.id - 1) + s.n + 1 as person_id
   from org o
   cross join (values (0, 'secretary'), (1, 'coordinator'), (2, 'member'), (3, 'member'), (4, 'member')) as s(n, role)
   where s.role = 'secretary'
      or (s.role = 'coordinator' and o.kind in ('group_committee', 'committee'))
      or (s.role = 'member' and o.kind in ('committee', 'branch', 'school_branch') and (s.n < 4 or o.id % 2 = 0))) x"
    };
}

/// People and their roles, and a user account for each secretary.
async fn insert_people(conn: &mut PgConnection, t: &Today, password_hash: &str) -> sqlx::Result<()> {
    let people = concat!(
        "insert into person (id, name, phone, created_at) overriding system value
         select person_id,
                (array['王','李','张','刘','陈','杨','黄','赵','吴','周','徐','孙','马','朱','胡','郭','何','高','林','罗',
                       '郑','梁','谢','宋','唐','许','韩','冯','邓','曹'])[1 + h % 30]
                || (array['建','国','明','华','志','文','海','伟','丽','芳','军','平','红','秀','英','玉','春','晓','东','亮',
                          '杰','静','敏','强','磊','洋','艳','勇','刚','涛','斌','燕','霞','峰','鹏','宇','婷','雪','琳','超'])
                       [1 + h / 30 % 40]
                || case when h % 3 = 0 then ''
                        else (array['民','生','成','林','荣','新','庆','云','飞','波','辉','娟','萍','梅','凤','兰','桂','龙',
                                    '金','宁'])[1 + h / 1200 % 20] end,
                '1' || (30 + h % 60)::text || lpad((h / 60 % 100000000)::text, 8, '0'),
                $2
         from (select person_id, abs(hashint8(person_id))::bigint as h from ",
        slots!(),
        ") y order by person_id"
    );
    sqlx::query(people).bind(t.person_base).bind(t.now).execute(&mut *conn).await?;
    // Secretaries and coordinators took office some years ago (or when the organisation
    // began); members before this year, so that each owes this year's per-member duty.
    let roles = concat!(
        "insert into role_assignment (person_id, org_id, role, starts_on, created_at)
         select person_id, id, role, greatest(active_from, $2 - 1 - (person_id * 13 % 1800)::int), $3
         from ",
        slots!(),
        " order by id, n"
    );
    sqlx::query(roles).bind(t.person_base).bind(t.year_start).bind(t.now).execute(&mut *conn).await?;
    sqlx::query(
        "insert into app_user (id, login, person_id, password_hash, password_changed_at, created_at)
         overriding system value
         select $1 + id, 'bench-' || lower(code), $2 + 5 * (id - 1) + 1, $3, $4, $4 from org order by id",
    )
    .bind(t.user_base)
    .bind(t.person_base)
    .bind(password_hash)
    .bind(t.now)
    .execute(&mut *conn)
    .await?;
    sqlx::query("select setval(pg_get_serial_sequence('person', 'id'), (select max(id) from person))")
        .execute(&mut *conn)
        .await?;
    sqlx::query("select setval(pg_get_serial_sequence('app_user', 'id'), (select max(id) from app_user))")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Install the three templates as rows, each on its root, in force from January 1st;
/// the same rows `install_template` writes, without materializing anything.
async fn install_templates(conn: &mut PgConnection, parts: &[Part], roots: &[i64], t: &Today) -> sqlx::Result<()> {
    for (part, root) in parts.iter().zip(roots) {
        let template = part.template;
        let system_id: i64 = sqlx::query_scalar(
            "insert into responsibility_system (code, title, template, created_at) values ($1, $2, $1, $3) returning id",
        )
        .bind(template.code)
        .bind(template.title)
        .bind(t.now)
        .fetch_one(&mut *conn)
        .await?;
        for (position, spec) in template.rules.iter().enumerate() {
            let rule_id: i64 = sqlx::query_scalar(
                "insert into rule (system_id, code, position, cadence, binds, record_kind, created_at)
                 values ($1, $2, $3, $4, $5, $6, $7) returning id",
            )
            .bind(system_id)
            .bind(spec.code)
            .bind(position as i32 + 1)
            .bind(spec.cadence.as_str())
            .bind(spec.binds.as_str())
            .bind(spec.record_kind)
            .bind(t.now)
            .fetch_one(&mut *conn)
            .await?;
            let version_id: i64 = sqlx::query_scalar(
                "insert into rule_version (rule_id, effective_from, title, clause, root_org_id, responsible_role,
                                           min_count, grace_days, lead_days, needs_review, created_at, created_by)
                 values ($1, $2, $3, $4, $5, $6, $7, 0, null, $8, $9, null) returning id",
            )
            .bind(rule_id)
            .bind(t.year_start)
            .bind(spec.title)
            .bind(spec.clause)
            .bind(root)
            .bind(spec.responsible_role)
            .bind(spec.min_count as i32)
            .bind(spec.needs_review)
            .bind(t.now)
            .fetch_one(&mut *conn)
            .await?;
            sqlx::query("insert into rule_version_kind (version_id, kind) select $1, unnest($2::text[])")
                .bind(version_id)
                .bind(spec.kinds)
                .execute(&mut *conn)
                .await?;
        }
    }
    // Nothing is materialized: the first tick does it all.
    sqlx::query("update materializer_state set materialized_through = null").execute(&mut *conn).await?;
    Ok(())
}

/// The organisation-level rule periods of the current year that have started, as the
/// materializer will plan them (period keys from `Period`, deadlines from `deadlines`).
#[derive(Default)]
struct RulePeriods {
    rule_code: Vec<String>,
    key: Vec<String>,
    first_day: Vec<NaiveDate>,
    end: Vec<NaiveDate>,
    due_at: Vec<DateTime<Utc>>,
}

fn rule_periods(settings: &Settings, t: &Today) -> RulePeriods {
    let mut out = RulePeriods::default();
    for spec in templates::ALL.iter().flat_map(|tpl| tpl.rules).filter(|r| r.binds == Binds::Organisation) {
        let cadence: Cadence = spec.cadence;
        let first = Period::containing(cadence, t.year_start);
        for period in first.through(Period::containing(cadence, t.today)) {
            let dl = deadlines(settings.tz, period, 0, settings.lead_days.of(cadence));
            out.rule_code.push(spec.code.to_owned());
            out.key.push(period.to_string());
            out.first_day.push(period.first_day());
            out.end.push(period.end());
            out.due_at.push(dl.due_at);
        }
    }
    out
}

/// Records for every organisation-level rule period of the current year that has
/// started, with their first versions and reviews, in the order they were filed.
async fn insert_records(conn: &mut PgConnection, settings: &Settings, t: &Today) -> sqlx::Result<()> {
    let rp = rule_periods(settings, t);
    // One case per (organisation, rule period) where the organisation was active on some
    // day of the period up to today: the window its records fall in, and a draw x:
    //   x < 0.60: enough accepted records (the last one late in ~12 % of ended periods);
    //   x < 0.70: one awaiting review (reviewed rules) or one of two done;
    //   x < 0.72: one returned (reviewed rules); x < 0.75: a draft; x < 0.76: withdrawn.
    // Instants are local (the day it happened, filed within days, never after `now`); an
    // on-time record is submitted before the deadline, a late one after it.
    sqlx::query(
        "with c as materialized (
             select o.id as org_id, r.id as rule_id, rp.period_key, rp.due_at, v.min_count, v.needs_review,
                    greatest(rp.first_day, o.active_from) as lo,
                    least(rp.end_day - 1, $6, coalesce(o.active_until, $6)) as hi,
                    $9 + o.id as user_id, random() as x
             from unnest($1::text[], $2::text[], $3::date[], $4::date[], $5::timestamptz[])
                  as rp(rule_code, period_key, first_day, end_day, due_at)
             join rule r on r.code = rp.rule_code
             join rule_version v on v.rule_id = r.id
             join rule_version_kind k on k.version_id = v.id
             join org root on root.id = v.root_org_id
             join org o on o.kind = k.kind and o.path >= root.path and o.path < subtree_upper(root.path)
             where greatest(rp.first_day, o.active_from) <= least(rp.end_day - 1, $6, coalesce(o.active_until, $6))),
         filed as (
             select c.*, s.state, s.occurred_on, (s.occurred_on::timestamp at time zone $8) as day_start,
                    c.x < 0.60 and k = n.cnt and c.due_at < $7 and random() < 0.12 as late
             from c
             cross join lateral (
                 select case when c.x < 0.60 then c.min_count
                             when c.x < 0.70 then case when c.needs_review then c.min_count else c.min_count - 1 end
                             when c.x < 0.72 then case when c.needs_review then 1 else 0 end
                             when c.x < 0.76 then 1 else 0 end as cnt) n
             cross join lateral generate_series(1, n.cnt) k
             cross join lateral (
                 select case when c.x < 0.60 then 'accepted'
                             when c.x < 0.70 then case when c.needs_review and k = n.cnt then 'submitted'
                                                       else 'accepted' end
                             when c.x < 0.72 then 'returned'
                             when c.x < 0.75 then 'draft'
                             else 'withdrawn' end as state,
                        c.lo + floor((c.hi - c.lo + 1) * ((k - 1) + random()) / n.cnt)::int as occurred_on) s),
         timed as (
             select f.*,
                    case when state = 'draft' then null
                         when late then due_at + random() * least($7 - due_at, interval '20 days')
                         else greatest(day_start, least(day_start + interval '8 hours' + random() * interval '3 days',
                                                        due_at - interval '1 minute', $7 - interval '1 minute'))
                    end as submitted_at
             from filed f)
         insert into record (org_id, rule_id, person_id, period_key, occurred_on, state, created_by, created_at,
                             first_submitted_at, submitted_at, submitted_by, accepted_at,
                             withdrawn_at, withdrawn_by, withdrawn_reason)
         select org_id, rule_id, null, period_key, occurred_on, state, user_id, created_at,
                submitted_at, submitted_at, case when state <> 'draft' then user_id end,
                case when state = 'accepted' and needs_review
                         then least(submitted_at + random() * interval '5 days', $7)
                     when state in ('accepted', 'withdrawn') and not needs_review then submitted_at end,
                case when state = 'withdrawn' then least(submitted_at + random() * interval '2 days', $7) end,
                case when state = 'withdrawn' then user_id end,
                case when state = 'withdrawn' then '重复提交，撤回后以正式记录为准' end
         from (select *, coalesce(submitted_at, least(day_start + interval '10 hours', $7)) as created_at from timed) r
         order by created_at",
    )
    .bind(&rp.rule_code)
    .bind(&rp.key)
    .bind(&rp.first_day)
    .bind(&rp.end)
    .bind(&rp.due_at)
    .bind(t.today)
    .bind(t.now)
    .bind(&t.tz)
    .bind(t.user_base)
    .execute(&mut *conn)
    .await?;
    // The attendees of each organisation's records: its secretary and members.
    sqlx::query(
        "create temp table bench_people on commit drop as
         select (id - $1 - 1) / 5 + 1 as org_id, jsonb_agg(name order by id) as names,
                min(name) filter (where (id - $1 - 1) % 5 = 0) as host
         from person where id > $1 and (id - $1 - 1) % 5 <> 1
         group by 1",
    )
    .bind(t.person_base)
    .execute(&mut *conn)
    .await?;
    // The first version of each record: a title, a text of a few hundred characters, the
    // attendees; meetings also say where, who chaired and how many came.
    sqlx::query(
        "insert into record_version (record_id, version, title, body, attendees, meeting, created_by, created_at)
         select r.id, 1, v.title || '（' || r.period_key || '）',
                format('%s，%s在%s%s，专题落实“%s”。由%s主持，应到%s人，实到%s人。%s。结合本单位实际，%s，%s。'
                       || '会议要求，%s；%s。与会人员一致表示，将切实履行意识形态工作责任制，%s。',
                       to_char(r.occurred_on, 'YYYY年MM月DD日'), o.name, place,
                       case ru.record_kind when 'meeting' then '召开会议' when 'report' then '形成专题报告'
                            when 'briefing' then '进行情况通报' when 'inspection' then '开展专项督查'
                            when 'assessment' then '开展检查考核' when 'visit' then '开展走访回访'
                            else '研究制定年度计划' end,
                       v.title, pp.host, jsonb_array_length(pp.names) + 5, jsonb_array_length(pp.names) + 4 - r.id % 3,
                       (array['传达学习了上级党组织关于意识形态工作的部署要求',
                              '逐条对照责任清单检查了本单位的落实情况',
                              '通报了近期网络舆情和职工思想动态'])[1 + r.id % 3],
                       (array['分析研判了当前职工队伍思想状况，梳理出三个方面的苗头性问题',
                              '听取了各班子成员履行一岗双责情况的汇报',
                              '对阵地管理、网络管理和宣传报道工作进行了检查'])[1 + r.id / 3 % 3],
                       (array['明确了责任人和完成时限','制定了整改措施清单','形成了纪要报上级党组织'])[1 + r.id / 9 % 3],
                       (array['各支部要把意识形态工作纳入重要议事日程','班子成员要带头讲党课、作表率',
                              '加强对新媒体账号的日常管理'])[1 + r.id / 27 % 3],
                       (array['按季度开展分析研判，及时上报重大情况','严格落实“三审三校”制度',
                              '做好重点人群的走访谈心工作'])[1 + r.id / 81 % 3],
                       (array['守好意识形态阵地','把各项要求落到实处','以实际行动推动责任制落地见效'])[1 + r.id / 243 % 3]),
                pp.names,
                case when ru.record_kind = 'meeting' then jsonb_build_object(
                    'place', place, 'host', pp.host, 'expected', jsonb_array_length(pp.names) + 5,
                    'present', jsonb_array_length(pp.names) + 4 - r.id % 3,
                    'absentees', case when r.id % 3 = 0 then '[]'::jsonb
                                      else jsonb_build_array(jsonb_build_object('name', '请假人员', 'reason', '出差')) end)
                end,
                r.created_by, r.created_at
         from record r
         join org o on o.id = r.org_id
         join rule ru on ru.id = r.rule_id
         join rule_version v on v.rule_id = r.rule_id
         join bench_people pp on pp.org_id = r.org_id
         cross join lateral (select (array['党员活动室','第一会议室','第二会议室','职工之家','党建书屋'])[1 + r.id % 5]
                             as place) pl",
    )
    .execute(&mut *conn)
    .await?;
    // Reviews by the parent's secretary: accepted and returned records of reviewed rules.
    sqlx::query(
        "insert into record_review (record_id, reviewer_id, decision, comment, created_at)
         select r.id, $2 + o.parent_id,
                case when r.state = 'accepted' then 'accept' else 'return' end,
                case when r.state = 'accepted' then '' else '请补充研判结论和整改措施后重新提交。' end,
                case when r.state = 'accepted' then r.accepted_at else least(r.submitted_at + interval '1 day', $1) end
         from record r
         join org o on o.id = r.org_id
         join rule_version v on v.rule_id = r.rule_id
         where v.needs_review and r.state in ('accepted', 'returned')
         order by 5, r.id",
    )
    .bind(t.now)
    .bind(t.user_base)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What `bench-data` made.
#[derive(Debug, sqlx::FromRow)]
struct Summary {
    orgs: i64,
    people: i64,
    roles: i64,
    users: i64,
    rules: i64,
    records: i64,
    accepted: i64,
    submitted: i64,
    returned: i64,
    drafts: i64,
    withdrawn: i64,
}

pub async fn generate(app: &App, orgs: u32) -> anyhow::Result<()> {
    let started = Instant::now();
    if orgs < MIN_ORGS {
        anyhow::bail!("bench-data needs --orgs {MIN_ORGS} or more (five levels in each of three trees)");
    }
    let settings = app.settings();
    let now = app.now();
    let today = local_date(settings.tz, now);
    let year_start = NaiveDate::from_ymd_opt(today.year(), 1, 1).context("the first of January")?;
    let mut conn = app.pool.acquire().await?;
    let (has_orgs, has_rules, person_base, user_base): (bool, bool, i64, i64) = sqlx::query_as(
        "select exists (select 1 from org), exists (select 1 from rule),
                (select coalesce(max(id), 0) from person), (select coalesce(max(id), 0) from app_user)",
    )
    .fetch_one(&mut *conn)
    .await?;
    if has_orgs || has_rules {
        anyhow::bail!(
            "the database already has {}: bench-data fills an empty database only \
             (create a new one and point DATABASE_URL at it)",
            if has_orgs { "organisations" } else { "rules" }
        );
    }
    let t = Today {
        now,
        today,
        year_start,
        quarters_started: Period::containing(Cadence::Quarter, today).index().into(),
        tz: settings.tz.name().to_owned(),
        person_base,
        user_base,
    };
    let password_hash = tokio::task::spawn_blocking(|| crate::secret::hash_password(PASSWORD)).await??;
    let parts = parts(orgs);

    let mut tx = conn.begin().await?;
    sqlx::query("set local synchronous_commit = off").execute(&mut *tx).await?;
    sqlx::query("set local work_mem = '256MB'").execute(&mut *tx).await?;
    sqlx::query("set local jit = off").execute(&mut *tx).await?;
    sqlx::query("select setseed(0.2026)").execute(&mut *tx).await?;
    // Every row is consistent by construction (ids are computed, paths set as the trigger
    // sets them), so where the database allows it (a superuser) skip the per-row trigger
    // work — foreign-key checks and the path trigger — as a bulk load does; else keep it.
    sqlx::query("savepoint bench_replica").execute(&mut *tx).await?;
    let triggers_off = sqlx::query("set local session_replication_role = replica").execute(&mut *tx).await.is_ok();
    if !triggers_off {
        sqlx::query("rollback to savepoint bench_replica").execute(&mut *tx).await?;
    }
    let roots = insert_tree(&mut tx, &parts, &t).await.context("creating the organisations")?;
    let tree_done = started.elapsed();
    insert_people(&mut tx, &t, &password_hash).await.context("creating people, roles and users")?;
    let people_done = started.elapsed();
    install_templates(&mut tx, &parts, &roots, &t).await.context("installing the templates")?;
    insert_records(&mut tx, &settings, &t).await.context("creating records")?;
    let records_done = started.elapsed();
    let summary: Summary = sqlx::query_as(
        "select (select count(*) from org) as orgs, (select count(*) from person) as people,
                (select count(*) from role_assignment) as roles, (select count(*) from app_user) as users,
                (select count(*) from rule) as rules, count(*) as records,
                count(*) filter (where state = 'accepted') as accepted,
                count(*) filter (where state = 'submitted') as submitted,
                count(*) filter (where state = 'returned') as returned,
                count(*) filter (where state = 'draft') as drafts,
                count(*) filter (where state = 'withdrawn') as withdrawn
         from record",
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::write(
        &mut tx,
        audit::Entry {
            at: now,
            actor_id: None,
            actor: "cli",
            action: "bench.generate",
            object_type: "database",
            object_id: "bench-data".to_owned(),
            org_id: None,
            detail: json!({"orgs": summary.orgs, "people": summary.people, "records": summary.records}),
            ip: None,
        },
    )
    .await?;
    if triggers_off {
        sqlx::query("set local session_replication_role = origin").execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let committed = started.elapsed();
    // What autovacuum would have done by the time a real database held this much: fresh
    // statistics, and the visibility map that lets the index-only scans skip the heap.
    sqlx::query("vacuum analyze").execute(&mut *conn).await?;

    let roots: Vec<(String, String)> = sqlx::query_as("select code, name from org where id = any($1) order by id")
        .bind(&roots)
        .fetch_all(&mut *conn)
        .await?;
    println!(
        "bench-data: {} organisations ({}), {} people, {} role assignments, {} users (password {PASSWORD}), \
         {} rules installed from {} (not materialized: run `zerenzhi tick`)",
        summary.orgs,
        roots.iter().map(|(code, name)| format!("{code} {name}")).collect::<Vec<_>>().join(", "),
        summary.people,
        summary.roles,
        summary.users,
        summary.rules,
        t.year_start,
    );
    println!(
        "bench-data: {} records ({} accepted, {} submitted, {} returned, {} drafts, {} withdrawn) up to {}",
        summary.records,
        summary.accepted,
        summary.submitted,
        summary.returned,
        summary.drafts,
        summary.withdrawn,
        t.today,
    );
    println!(
        "bench-data: {:.1} s (tree {:.1} s, people {:.1} s, records {:.1} s, commit {:.1} s, vacuum analyze {:.1} s){}",
        started.elapsed().as_secs_f64(),
        tree_done.as_secs_f64(),
        (people_done - tree_done).as_secs_f64(),
        (records_done - people_done).as_secs_f64(),
        (committed - records_done).as_secs_f64(),
        (started.elapsed() - committed).as_secs_f64(),
        if triggers_off { "" } else { " (with per-row triggers: not a superuser)" },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_parts_add_up_to_the_requested_size_with_every_level() {
        for n in [MIN_ORGS, 1_000, 100_000, 1_000_000] {
            let parts = parts(n);
            assert_eq!(parts.iter().map(Part::total).sum::<i64>(), i64::from(n), "{n}");
            for p in &parts {
                assert!(p.level2 > 0 && p.level3 > 0 && p.level4_mid > 0 && p.level4_leaf > 0 && p.level5_leaf > 0);
            }
        }
        let [a, b, c] = parts(100_000);
        assert_eq!((a.total(), b.total(), c.total()), (60_000, 20_000, 20_000));
    }
}
