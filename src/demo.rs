//! The demo (DESIGN.md section 4, `demo`): a group committee over a company committee with
//! six branches, a branch company, and a county education committee with five school
//! branches; the built-in templates installed on their subtrees from the start of the
//! year; a year of history played through the real functions with the clock set back, so
//! that every status shows; and logins with fresh random passwords, printed at start.

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use serde_json::json;

use crate::app::App;
use crate::db::records::{self, Actor, Decision, Meeting, NewRecord, RecordText};
use crate::db::rules::{self, NewRule};
use crate::db::{audit, duties, orgs, people, users};
use crate::domain::access::Role;
use crate::domain::period::{Cadence, Period};
use crate::domain::templates::{self, Binds};
use crate::domain::time::{local_date, local_midnight};
use crate::secret;

/// A demo person: login, name, whether admin, and their roles (org code, role).
type DemoPerson = (&'static str, &'static str, bool, &'static [(&'static str, Role)]);

const PEOPLE: &[DemoPerson] = &[
    ("admin", "系统管理员", true, &[]),
    ("lihua", "李华", false, &[("HX-GS", Role::Secretary)]),
    ("zhangwei", "张伟", false, &[("HX-01", Role::Secretary)]),
    ("wangfang", "王芳", false, &[("HX-GS", Role::Coordinator)]),
    ("chenjing", "陈静", false, &[("HX-01", Role::Member), ("HX-GS", Role::Member)]),
    ("zhaolei", "赵磊", false, &[("HX-JT", Role::Secretary)]),
    ("liuyang", "刘洋", false, &[("XJ-JY", Role::Secretary)]),
    ("sunli", "孙丽", false, &[("XJ-01", Role::Secretary)]),
    ("zhouqiang", "周强", false, &[("HX-02", Role::Secretary)]),
    ("wujun", "吴军", false, &[("HX-03", Role::Secretary)]),
    ("zhengmin", "郑敏", false, &[("HX-04", Role::Secretary)]),
];

/// The logins printed at start: (login, what they are).
const SHOWN: &[(&str, &str)] = &[
    ("admin", "管理员 / administrator"),
    ("zhangwei", "第一党支部书记 / secretary of branch HX-01"),
    ("lihua", "公司党委书记 / secretary of the company committee HX-GS"),
    ("wangfang", "政工部（统筹协调）/ coordinator of HX-GS"),
    ("sunli", "城关小学党支部书记 / secretary of school branch XJ-01"),
];

/// Create the demo on first use; on every start give the demo logins new passwords and
/// print them.
pub async fn prepare(app: &App) -> anyhow::Result<()> {
    let mut conn = app.pool.acquire().await?;
    let exists = orgs::find_by_code(&mut conn, "HX-JT").await?.is_some();
    drop(conn);
    if !exists {
        let any_org: bool = sqlx::query_scalar("select exists (select 1 from org)").fetch_one(&app.pool).await?;
        if any_org {
            anyhow::bail!("this database holds organisations that are not the demo's; run the demo on an empty one");
        }
        build(app).await?;
    }
    let mut tx = app.pool.begin().await?;
    let mut lines = Vec::new();
    for (login, what) in SHOWN {
        let password = secret::random_token(12);
        let hash = secret::hash_password(&password)?;
        sqlx::query("update app_user set password_hash = $2, password_changed_at = $3 where login = $1")
            .bind(login)
            .bind(hash)
            .bind(app.now())
            .execute(&mut *tx)
            .await?;
        sqlx::query("delete from session where user_id = (select id from app_user where login = $1)")
            .bind(login)
            .execute(&mut *tx)
            .await?;
        lines.push(format!("  {login:<10} {password}   {what}"));
    }
    tx.commit().await?;
    let addr = app.config.addr;
    println!(
        "\n责任制 Portal demo — http://{addr}/\nDemo logins (new passwords on every start):\n{}\n",
        lines.join("\n")
    );
    Ok(())
}

/// The instant `hour`:00 local time on `day`.
fn at(app: &App, day: NaiveDate, hour: u32) -> DateTime<Utc> {
    local_midnight(app.settings().tz, day) + chrono::Duration::hours(i64::from(hour))
}

async fn build(app: &App) -> anyhow::Result<()> {
    let now = app.now();
    let tz = app.settings().tz;
    let today = local_date(tz, now);
    let year = today.year();
    let jan1 = NaiveDate::from_ymd_opt(year, 1, 1).expect("January 1st exists");
    let founded = NaiveDate::from_ymd_opt(year - 8, 3, 1).expect("a valid date");
    let start = at(app, jan1, 9);
    let mut tx = app.pool.begin().await?;

    // The tree.
    let tree: &[(&str, &str, &str, Option<&str>)] = &[
        ("HX-JT", "华星集团党委", "group_committee", None),
        ("HX-GS", "华星机电装备公司党委", "committee", Some("HX-JT")),
        ("HX-01", "第一党支部（机关）", "branch", Some("HX-GS")),
        ("HX-02", "第二党支部（装配车间）", "branch", Some("HX-GS")),
        ("HX-03", "第三党支部（机加车间）", "branch", Some("HX-GS")),
        ("HX-04", "第四党支部（质检中心）", "branch", Some("HX-GS")),
        ("HX-05", "第五党支部（销售公司）", "branch", Some("HX-GS")),
        ("HX-06", "第六党支部（物流中心）", "branch", Some("HX-GS")),
        ("HX-FGS", "华星物流分公司党支部", "branch", Some("HX-JT")),
        ("XJ-JY", "城关县教育局党委", "committee", None),
        ("XJ-01", "城关小学党支部", "school_branch", Some("XJ-JY")),
        ("XJ-02", "实验小学党支部", "school_branch", Some("XJ-JY")),
        ("XJ-03", "第一中学党支部", "school_branch", Some("XJ-JY")),
        ("XJ-04", "第二中学党支部", "school_branch", Some("XJ-JY")),
        ("XJ-05", "职业中学党支部", "school_branch", Some("XJ-JY")),
    ];
    for (code, name, kind, parent) in tree {
        orgs::create(
            &mut tx,
            orgs::NewOrg {
                code: code.to_string(),
                name: name.to_string(),
                kind: kind.to_string(),
                parent: parent.map(str::to_owned),
                active_from: founded,
            },
            start,
        )
        .await?;
    }

    // People, accounts and roles, held since before this year.
    for (login, name, admin, roles) in PEOPLE {
        let user = users::create(&mut tx, login, &secret::random_token(24), name, *admin, start).await?;
        for (code, role) in *roles {
            let org = orgs::find_by_code(&mut tx, code).await?.ok_or_else(|| anyhow::anyhow!("demo org {code}"))?;
            let assignment = people::NewAssignment {
                person_id: user.person_id,
                role: *role,
                starts_on: founded,
                ends_on: None,
                acting: false,
            };
            people::assign_role(&mut tx, &org, assignment, start).await?;
        }
    }

    // The three templates on their own subtrees, and the company's own monthly rule.
    let settings = app.settings();
    for (template, root) in [
        (&templates::IDEOLOGY_COMPANY, "HX-GS"),
        (&templates::IDEOLOGY_BRANCH_COMPANY, "HX-FGS"),
        (&templates::IDEOLOGY_SCHOOL, "XJ-JY"),
    ] {
        let root = orgs::find_by_code(&mut tx, root).await?;
        rules::install_template(&mut tx, &settings, template, jan1, root.as_ref(), None, start).await?;
    }
    let company = orgs::find_by_code(&mut tx, "HX-GS").await?.ok_or_else(|| anyhow::anyhow!("demo org HX-GS"))?;
    let system = rules::create_system(&mut tx, "company-monthly", "公司党委月度工作要求", None, start).await?;
    let monthly = NewRule {
        code: "M1".into(),
        title: "报送月度意识形态动态信息".into(),
        clause: "公司党委〔2026〕3号".into(),
        clause_text: "各党支部每月向政工部报送一次职工思想动态和意识形态领域情况。".into(),
        kinds: vec!["branch".into()],
        cadence: Cadence::Month,
        binds: Binds::Organisation,
        record_kind: "report".into(),
        responsible_role: "secretary".into(),
        min_count: 1,
        grace_days: 0,
        lead_days: Some(10),
        needs_review: false,
        effective_from: jan1,
        root_org_id: Some(company.id),
    };
    let m1 = rules::create_rule(&mut tx, system, &monthly, None, start).await?;
    duties::materialize_rules(&mut tx, &settings, &[m1], start).await?;
    audit::write(
        &mut tx,
        audit::Entry {
            at: start,
            actor_id: None,
            actor: "demo",
            action: "demo.create",
            object_type: "demo",
            object_id: "demo".into(),
            org_id: None,
            detail: json!({"year": year}),
            ip: None,
        },
    )
    .await?;
    tx.commit().await?;

    play_the_year(app, jan1, today).await?;
    crate::scheduler::tick(app, now).await?;
    Ok(())
}

/// What happened this year, in order, with the clock set to each moment.
async fn play_the_year(app: &App, jan1: NaiveDate, today: NaiveDate) -> anyhow::Result<()> {
    let quarter_now = Period::containing(Cadence::Quarter, today);
    let q1 = Period::containing(Cadence::Quarter, jan1);
    // Month by month: the month's duties appear as it starts, then the monthly reports
    // (on time, mid-month; the third branch forgets every third month). The scheduler
    // runs once at the end, so it tells only of what is really overdue or due soon now.
    let mut month = Period::containing(Cadence::Month, jan1);
    while month.first_day() <= today {
        app.ensure_duties(at(app, month.first_day(), 0)).await?;
        let day = month.first_day() + Days::new(14);
        for (code, submitter) in [("HX-01", "zhangwei"), ("HX-02", "zhouqiang"), ("HX-03", "wujun")] {
            if day <= today && !(code == "HX-03" && month.index().is_multiple_of(3)) {
                file(app, submitter, code, "M1", day, at(app, day, 10), "月度思想动态报送", false).await?;
            }
        }
        month = month.next();
    }

    for quarter in q1.through(quarter_now) {
        let last = quarter.last_day();
        let done = last < today;
        let mid = quarter.first_day() + Days::new(40);
        // HX-01, a model branch: analysis meeting, visit and report on time, the report accepted.
        if mid <= today {
            file(app, "zhangwei", "HX-01", "A7", mid, at(app, mid, 15), "季度意识形态分析研判会", false).await?;
            file(app, "zhangwei", "HX-01", "A11", mid, at(app, mid, 16), "改革涉及人员回访", false).await?;
            let day = mid + Days::new(2);
            let report =
                file(app, "zhangwei", "HX-01", "A8", day, at(app, day, 10), "向公司党委汇报意识形态工作", false)
                    .await?;
            if done {
                review(app, "lihua", report, Decision::Accept, "").await?;
            }
        }
        if done {
            // HX-02 held its analysis meeting in time but recorded it a week after the quarter: late.
            let filed = at(app, quarter.end() + Days::new(6), 10);
            if filed < app.now() {
                file(app, "zhouqiang", "HX-02", "A7", last - Days::new(1), filed, "分析研判会（补录）", false).await?;
            }
            // HX-03's report was returned once, corrected, resubmitted and accepted.
            let day = last - Days::new(5);
            let report = file(app, "wujun", "HX-03", "A8", day, at(app, day, 9), "意识形态工作汇报", false).await?;
            review(app, "lihua", report, Decision::Return, "请补充本季度职工思想动态分析和下一步措施。").await?;
            submit(app, "wujun", report, last - Days::new(2)).await?;
            review(app, "lihua", report, Decision::Accept, "").await?;
            // HX-04 and HX-05 recorded nothing: overdue.
        }
    }

    // This quarter: HX-02's report waits for the superior's review; HX-04's was returned.
    let recent = (today - Days::new(3)).max(quarter_now.first_day());
    let report =
        file(app, "zhouqiang", "HX-02", "A8", recent, at(app, recent, 9), "本季度意识形态工作汇报", true).await?;
    submit(app, "zhouqiang", report, recent).await?;
    let returned = file(app, "zhengmin", "HX-04", "A8", recent, at(app, recent, 11), "意识形态工作汇报", false).await?;
    review(app, "lihua", returned, Decision::Return, "汇报内容过于简单，请补充会议记录和参会人员签到表。").await?;
    // HX-01's yearly plan and a first special study.
    let plan_day = jan1 + Days::new(20);
    file(app, "zhangwei", "HX-01", "A12", plan_day, at(app, plan_day, 10), "年度工作计划（含意识形态工作）", false)
        .await?;
    let study_day = jan1 + Days::new(60);
    file(app, "zhangwei", "HX-01", "A6", study_day, at(app, study_day, 14), "专题研究意识形态工作（第一次）", false)
        .await?;
    // A school branch's half-year report, accepted by the county committee.
    let h1 = Period::containing(Cadence::Half, jan1);
    if h1.end() <= today {
        let day = h1.last_day() - Days::new(10);
        let report =
            file(app, "sunli", "XJ-01", "C3", day, at(app, day, 10), "上半年意识形态工作专题报告", false).await?;
        review(app, "liuyang", report, Decision::Accept, "").await?;
    }

    // HX-05's first-quarter visit was waived by the administrator.
    waive(app, "HX-05", "A11", q1, "支部书记调整期间，经公司党委同意本季度免于回访。").await?;
    // HX-06 merged into the logistics company this quarter: its unfinished duties are cancelled.
    let closed_on = (quarter_now.first_day() + Days::new(20)).min(today);
    if closed_on < quarter_now.last_day() {
        let mut tx = app.pool.begin().await?;
        if let Some(org) = orgs::find_by_code(&mut tx, "HX-06").await? {
            orgs::close(&mut tx, &org, closed_on, at(app, closed_on, 17).min(app.now())).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

async fn actor_principal(app: &App, login: &str, day: NaiveDate) -> anyhow::Result<crate::domain::access::Principal> {
    let mut conn = app.pool.acquire().await?;
    let user = users::find_by_login(&mut conn, login).await?.ok_or_else(|| anyhow::anyhow!("demo user {login}"))?;
    Ok(users::principal(&mut conn, &user, day).await?)
}

/// File a record of `day` as `login` at `filed_at`, with meeting details.
#[allow(clippy::too_many_arguments)]
async fn file(
    app: &App,
    login: &str,
    org: &str,
    rule: &str,
    day: NaiveDate,
    filed_at: DateTime<Utc>,
    title: &str,
    draft: bool,
) -> anyhow::Result<i64> {
    let when = filed_at.min(app.now());
    let today = local_date(app.settings().tz, when);
    app.ensure_duties(when).await?;
    let principal = actor_principal(app, login, today).await?;
    let tz = app.settings().tz;
    let actor = Actor { principal: &principal, tz, ip: None, now: when, today };
    let meeting = Meeting {
        place: "公司三楼会议室".into(),
        host: principal.login.clone(),
        expected: Some(9),
        present: Some(8),
        absentees: vec![records::Absentee { name: "刘明".into(), reason: "出差".into() }],
    };
    let body = format!(
        "一、学习传达上级关于意识形态工作的部署要求。\n二、分析本单位职工思想动态：总体稳定，个别职工对改革中的岗位调整有顾虑。\n三、下一步措施：加强谈心谈话，做好政策解释。\n（{title}，{day}）"
    );
    let text = RecordText::parse(title, &body, vec!["王五".into(), "赵六".into(), "钱七".into()], Some(meeting))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = app.pool.begin().await?;
    let org = orgs::find_by_code(&mut tx, org).await?.ok_or_else(|| anyhow::anyhow!("demo org {org}"))?;
    let rec = records::create(
        &mut tx,
        &actor,
        &org,
        NewRecord { rule_code: rule.into(), person_id: None, occurred_on: day, text, draft },
    )
    .await
    .map_err(|e| anyhow::anyhow!("demo record {rule} for {}: {e}", org.code))?;
    tx.commit().await?;
    Ok(rec.id.parse()?)
}

async fn review(app: &App, login: &str, id: i64, decision: Decision, comment: &str) -> anyhow::Result<()> {
    let mut conn = app.pool.acquire().await?;
    let rec = records::find(&mut conn, id, app.settings().tz).await?.ok_or_else(|| anyhow::anyhow!("record {id}"))?;
    drop(conn);
    let day = rec.submitted_at.map(|t| t.date_naive()).unwrap_or(rec.occurred_on) + Days::new(1);
    let when = at(app, day, 15).min(app.now());
    let principal = actor_principal(app, login, day).await?;
    let actor = Actor { principal: &principal, tz: app.settings().tz, ip: None, now: when, today: day };
    let mut tx = app.pool.begin().await?;
    records::review(&mut tx, &actor, id, decision, comment).await.map_err(|e| anyhow::anyhow!("demo review: {e}"))?;
    tx.commit().await?;
    Ok(())
}

async fn submit(app: &App, login: &str, id: i64, day: NaiveDate) -> anyhow::Result<()> {
    let when = at(app, day, 16).min(app.now());
    let principal = actor_principal(app, login, day).await?;
    let actor = Actor { principal: &principal, tz: app.settings().tz, ip: None, now: when, today: day };
    let mut tx = app.pool.begin().await?;
    records::submit(&mut tx, &actor, id).await.map_err(|e| anyhow::anyhow!("demo submit: {e}"))?;
    tx.commit().await?;
    Ok(())
}

async fn waive(app: &App, org: &str, rule: &str, period: Period, reason: &str) -> anyhow::Result<()> {
    let mut tx = app.pool.begin().await?;
    let admin = users::find_by_login(&mut tx, "admin").await?.ok_or_else(|| anyhow::anyhow!("demo admin"))?;
    let duty: Option<i64> = sqlx::query_scalar(
        "select d.id from duty d join org o on o.id = d.org_id join rule r on r.id = d.rule_id
         where o.code = $1 and r.code = $2 and d.period_key = $3",
    )
    .bind(org)
    .bind(rule)
    .bind(period.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = duty {
        let when = at(app, period.first_day() + Days::new(10), 10);
        duties::waive(&mut tx, id, admin.id, reason, when).await.map_err(|e| anyhow::anyhow!("demo waive: {e}"))?;
    }
    tx.commit().await?;
    Ok(())
}
