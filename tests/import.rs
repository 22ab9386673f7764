//! Bulk import and export (DESIGN.md section 4, `import`): every problem class reported by
//! row, column and reason; CSV in UTF-8 (with or without BOM) and GB18030, XLSX with date
//! cells; parents after children; all or nothing; importing the same file twice changes
//! nothing; the duties of imported organisations; people and roles; export round trips;
//! the command line's exit codes and standard error; and the admin pages over HTTP.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestApp, url_for};
use reqwest::StatusCode;
use serde_json::json;
use zerenzhi::import::{self, Actor, FileInfo, Outcome, Phase, What};

const NOW: &str = "2026-03-26T10:00:00+08:00";
const BIN: &str = env!("CARGO_BIN_EXE_zerenzhi");

fn csv(lines: &[&str]) -> Vec<u8> {
    let mut s = lines.join("\n");
    s.push('\n');
    s.into_bytes()
}

async fn check(t: &TestApp, what: What, bytes: &[u8]) -> Outcome {
    match import::read::read(bytes) {
        Ok(table) => import::check(&t.app, what, &table).await.expect("the check runs"),
        Err(p) => Outcome { problems: vec![import::Problem::file(p)], ..Outcome::default() },
    }
}

async fn import_file(t: &TestApp, what: What, bytes: &[u8]) -> Outcome {
    let table = import::read::read(bytes).expect("a readable file");
    let actor = Actor { user_id: None, login: "test".into(), ip: None };
    let info = FileInfo::of("test.csv", bytes);
    import::commit(&t.app, what, &table, &info, &actor, &|_: Phase, _: u64, _: u64| {}).await.expect("the import runs")
}

/// The problems as the command line prints them.
fn lines(o: &Outcome, what: What) -> Vec<String> {
    o.problems.iter().map(|p| p.line(what)).collect()
}

fn has(o: &Outcome, what: What, needle: &str) -> bool {
    lines(o, what).iter().any(|l| l.contains(needle))
}

async fn org_count(t: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from org").fetch_one(&t.pool).await.unwrap()
}

async fn audit_count(t: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from audit_log").fetch_one(&t.pool).await.unwrap()
}

/// Every organisation row as text, to compare before and after.
async fn org_snapshot(t: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "select concat_ws('|', id, code, name, kind, parent_id, path::text, active_from, active_until, created_at)
         from org order by id",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap()
}

async fn org_json(t: &TestApp, code: &str) -> serde_json::Value {
    let (st, body) = t.get(&format!("/api/v1/orgs/{code}")).await;
    assert_eq!(st, StatusCode::OK, "{code}: {body}");
    body
}

const ORG_HEADER: &str = "code,name,kind,parent,active_from,active_until";

// ---------------------------------------------------------------------------------------
// Each problem class
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_parent_is_named_with_its_row_and_column() {
    let t = TestApp::spawn_at(NOW).await;
    let o = check(
        &t,
        What::Orgs,
        &csv(&[ORG_HEADER, "QX,区委,committee,,2020-01-01,", "QX-01,第一支部,branch,QX-09,2020-01-01,"]),
    )
    .await;
    assert_eq!(o.problems.len(), 1, "{:?}", lines(&o, What::Orgs));
    let p = &o.problems[0];
    assert_eq!((p.row, p.column.as_deref()), (Some(3), Some("parent")));
    assert!(
        lines(&o, What::Orgs)[0].starts_with("第 3 行，上级组织代码（parent）：QX-09 不存在"),
        "{:?}",
        lines(&o, What::Orgs)
    );
    assert!(has(&o, What::Orgs, "row 3, parent: QX-09 does not exist"));
}

#[tokio::test]
async fn a_code_repeated_in_the_file_is_reported_on_every_row_that_has_it() {
    let t = TestApp::spawn_at(NOW).await;
    let o = check(
        &t,
        What::Orgs,
        &csv(&[
            ORG_HEADER,
            "QX,区委,committee,,2020-01-01,",
            "QX-01,第一支部,branch,QX,2020-01-01,",
            "QX-01,第二支部,branch,QX,2020-01-01,",
        ]),
    )
    .await;
    let rows: Vec<Option<u32>> = o.problems.iter().map(|p| p.row).collect();
    assert_eq!(rows, vec![Some(3), Some(4)], "{:?}", lines(&o, What::Orgs));
    assert!(has(&o, What::Orgs, "第 3 行，组织代码（code）：组织代码 QX-01 在文件中重复（第 4 行也有）"));
}

#[tokio::test]
async fn every_row_of_a_cycle_is_reported_with_the_whole_loop_even_through_the_database() {
    let t = TestApp::spawn_at(NOW).await;
    t.company_tree().await;
    let o = check(
        &t,
        What::Orgs,
        &csv(&[
            ORG_HEADER,
            "A,甲,committee,C,2020-01-01,",
            "B,乙,committee,A,2020-01-01,",
            "C,丙,committee,B,2020-01-01,",
            "D,丁,branch,D,2020-01-01,",
            "OK,好的,branch,HGS,2020-01-01,",
        ]),
    )
    .await;
    let rows: Vec<u32> = o.problems.iter().filter_map(|p| p.row).collect();
    assert_eq!(rows, vec![2, 3, 4, 5], "{:?}", lines(&o, What::Orgs));
    assert!(has(&o, What::Orgs, "第 2 行，上级组织代码（parent）：上级关系形成了循环：A → C → B → A"));
    assert!(has(&o, What::Orgs, "第 5 行，上级组织代码（parent）：不能以自己为上级组织"));

    // The group committee under one of its own branches: a loop through the database.
    let o = check(&t, What::Orgs, &csv(&[ORG_HEADER, "HJT,集团党委,group_committee,HX-1,2015-01-01,"])).await;
    assert!(has(&o, What::Orgs, "HJT → HX-1 → HGS → HJT"), "{:?}", lines(&o, What::Orgs));
}

#[tokio::test]
async fn an_unknown_kind_is_refused_and_the_known_kinds_are_listed() {
    let t = TestApp::spawn_at(NOW).await;
    let o = check(
        &t,
        What::Orgs,
        &csv(&[
            ORG_HEADER,
            "QX,区委,区级党委,,2020-01-01,",
            "QX-1,一支部,党支部,QX,2020-01-01,",
            "QX-2,二支部,Branch,QX,2020-01-01,",
        ]),
    )
    .await;
    assert_eq!(o.problems.len(), 1, "Chinese names and codes in any case are kinds: {:?}", lines(&o, What::Orgs));
    assert!(has(
        &o,
        What::Orgs,
        "第 2 行，组织类型（kind）：“区级党委”不是已有的组织类型。可用的类型：集团党委（group_committee）"
    ));
}

#[tokio::test]
async fn bad_dates_show_the_value_and_a_closing_before_the_first_day_is_refused() {
    let t = TestApp::spawn_at(NOW).await;
    let o = check(
        &t,
        What::Orgs,
        &csv(&[
            ORG_HEADER,
            "QX,区委,committee,,2020-02-30,",
            "QX-1,一支部,branch,,2020年3月1日,明年",
            "QX-2,二支部,branch,,2020.3.1,2019/12/31",
            "QX-3,三支部,branch,,,",
        ]),
    )
    .await;
    let got = lines(&o, What::Orgs);
    assert_eq!(o.problems.len(), 4, "{got:?}");
    assert!(has(&o, What::Orgs, "第 2 行，成立日期（active_from）：“2020-02-30”不是有效的日期"));
    assert!(has(&o, What::Orgs, "第 3 行，撤销日期（active_until）：“明年”不是有效的日期"));
    assert!(has(&o, What::Orgs, "第 4 行，撤销日期（active_until）：撤销日期 2019-12-31 早于成立日期 2020-03-01"));
    assert!(has(&o, What::Orgs, "第 5 行，成立日期（active_from）：必须填写"));
}

#[tokio::test]
async fn files_that_are_no_table_are_refused_with_a_reason() {
    let t = TestApp::spawn_at(NOW).await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0\x1f\xf3\xffa";
    for (bytes, reason) in [
        (png.to_vec(), "这不是 CSV 或 XLSX 表格文件"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec(), "这不是 CSV 或 XLSX 表格文件"),
        (Vec::new(), "文件是空的"),
        (b"\r\n \r\n".to_vec(), "文件是空的"),
        (csv(&[ORG_HEADER]), "文件只有表头，没有数据行"),
        (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\0\0\0\0".to_vec(), "这是旧版 Excel 文件（.xls）"),
    ] {
        let o = check(&t, What::Orgs, &bytes).await;
        assert_eq!(o.problems.len(), 1);
        assert!(lines(&o, What::Orgs)[0].starts_with(&format!("文件：{reason}")), "{:?}", lines(&o, What::Orgs));
    }
}

#[tokio::test]
async fn header_problems_name_the_column() {
    let t = TestApp::spawn_at(NOW).await;
    let o = check(&t, What::Orgs, &csv(&["组织代码,组织名称,类型,成立日期", "QX,区委,committee,2020-01-01"])).await;
    let got = lines(&o, What::Orgs);
    assert!(has(&o, What::Orgs, "第 1 行：无法识别的列名“类型”"), "{got:?}");
    assert!(has(&o, What::Orgs, "第 1 行，组织类型（kind）：缺少“组织类型/kind”列"), "{got:?}");
    assert!(has(&o, What::Orgs, "第 1 行，上级组织代码（parent）：缺少“上级组织代码/parent”列"), "{got:?}");
}

#[tokio::test]
async fn a_100_mb_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.csv");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(100 * 1024 * 1024).unwrap();
    let started = Instant::now();
    let err = import::read::read_path(&path).unwrap_err();
    assert_eq!(err, import::read::FileProblem::TooLarge);
    assert!(started.elapsed() < Duration::from_millis(200), "refused without reading: {:?}", started.elapsed());
    let line = import::Problem::file(err).line(What::Orgs);
    assert!(line.contains("文件超过 50 MB") && line.contains("larger than 50 MB"), "{line}");
}

// ---------------------------------------------------------------------------------------
// What imports
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn parents_may_come_after_their_children() {
    let t = TestApp::spawn_at(NOW).await;
    let o = import_file(
        &t,
        What::Orgs,
        &csv(&[
            ORG_HEADER,
            "QX-01-A,第一小组党支部,branch,QX-01,2021-01-01,",
            "QX-01,第一总支,committee,QX,2020-06-01,",
            "QX,区委,committee,,2020-01-01,",
        ]),
    )
    .await;
    assert!(o.problems.is_empty(), "{:?}", lines(&o, What::Orgs));
    assert_eq!((o.summary.created, o.summary.changed, o.summary.unchanged), (3, 0, 0));
    let leaf = org_json(&t, "QX-01-A").await;
    assert_eq!(leaf["parent"], "QX-01");
    assert_eq!(leaf["kind"], "branch");
    assert_eq!(org_json(&t, "QX-01").await["parent"], "QX");
}

#[tokio::test]
async fn a_gb18030_csv_as_excel_saves_it_imports_with_its_chinese_intact() {
    let t = TestApp::spawn_at(NOW).await;
    let text = "组织代码,组织名称,组织类型,上级组织代码,成立日期\r\nGB-1,城关镇第一党支部,党支部,,2020/3/1\r\n";
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(text);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&bytes).is_err(), "the bytes are not UTF-8");
    let o = import_file(&t, What::Orgs, &bytes).await;
    assert!(o.problems.is_empty(), "{:?}", lines(&o, What::Orgs));
    assert_eq!(o.summary.format, Some(import::read::Format::CsvGb18030));
    let org = org_json(&t, "GB-1").await;
    assert_eq!(org["name"], "城关镇第一党支部");
    assert_eq!(org["active_from"], "2020-03-01");
}

#[tokio::test]
async fn a_utf8_csv_with_bom_and_chinese_headers_in_any_order_imports() {
    let t = TestApp::spawn_at(NOW).await;
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(csv(&[
        "成立日期,上级组织代码,组织名称,撤销日期,组织代码,组织类型",
        "2020-01-01,,区委,,QX,党委",
        "2020年3月1日,QX,第一支部,2026.2.28,QX-1,党支部",
    ]));
    let o = import_file(&t, What::Orgs, &bytes).await;
    assert!(o.problems.is_empty(), "{:?}", lines(&o, What::Orgs));
    assert_eq!(o.summary.format, Some(import::read::Format::CsvUtf8Bom));
    let org = org_json(&t, "QX-1").await;
    assert_eq!(
        (org["name"].as_str(), org["parent"].as_str(), org["active_from"].as_str(), org["active_until"].as_str()),
        (Some("第一支部"), Some("QX"), Some("2020-03-01"), Some("2026-02-28"))
    );
}

/// An XLSX as Excel writes it: text cells, date cells, a number typed into a code cell.
fn xlsx_orgs() -> Vec<u8> {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let mut book = Workbook::new();
    let ws = book.add_worksheet();
    let date = Format::new().set_num_format("yyyy/m/d");
    for (c, h) in ["组织代码", "组织名称", "组织类型", "上级组织代码", "成立日期", "撤销日期"].iter().enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    ws.write_string(1, 0, "XL").unwrap();
    ws.write_string(1, 1, "表格区委").unwrap();
    ws.write_string(1, 2, "党委").unwrap();
    ws.write_date_with_format(1, 4, ExcelDateTime::from_ymd(2019, 7, 1).unwrap(), &date).unwrap();
    ws.write_number(2, 0, 1001).unwrap();
    ws.write_string(2, 1, "表格第一支部").unwrap();
    ws.write_string(2, 2, "branch").unwrap();
    ws.write_string(2, 3, "XL").unwrap();
    ws.write_date_with_format(2, 4, ExcelDateTime::from_ymd(2020, 3, 1).unwrap(), &date).unwrap();
    ws.write_date_with_format(2, 5, ExcelDateTime::from_ymd(2026, 6, 30).unwrap(), &date).unwrap();
    book.save_to_buffer().unwrap()
}

#[tokio::test]
async fn an_xlsx_with_excel_date_cells_imports() {
    let t = TestApp::spawn_at(NOW).await;
    let o = import_file(&t, What::Orgs, &xlsx_orgs()).await;
    assert!(o.problems.is_empty(), "{:?}", lines(&o, What::Orgs));
    assert_eq!(o.summary.format, Some(import::read::Format::Xlsx));
    let org = org_json(&t, "1001").await;
    assert_eq!(
        (org["parent"].as_str(), org["active_from"].as_str(), org["active_until"].as_str()),
        (Some("XL"), Some("2020-03-01"), Some("2026-06-30"))
    );
    assert_eq!(org_json(&t, "XL").await["active_from"], "2019-07-01");
}

#[tokio::test]
async fn importing_the_same_file_again_changes_nothing_but_one_audit_entry() {
    let t = TestApp::spawn_at(NOW).await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    let file = csv(&[
        ORG_HEADER,
        "HX-3,第三党支部,党支部,HGS,2018-01-01,",
        "HX-4,第四党支部,branch,HGS,2018-01-01,2026-01-31",
        "HX-2,第二党支部（更名）,branch,HGS,2017-01-01,",
    ]);
    let first = import_file(&t, What::Orgs, &file).await;
    assert!(first.problems.is_empty(), "{:?}", lines(&first, What::Orgs));
    assert_eq!((first.summary.created, first.summary.changed), (2, 1));
    let orgs = org_snapshot(&t).await;
    let duties: i64 = sqlx::query_scalar("select count(*) from duty").fetch_one(&t.pool).await.unwrap();
    let audits = audit_count(&t).await;

    let dry = check(&t, What::Orgs, &file).await;
    assert_eq!((dry.summary.created, dry.summary.changed, dry.summary.unchanged), (0, 0, 3));
    let again = import_file(&t, What::Orgs, &file).await;
    assert_eq!((again.summary.created, again.summary.changed, again.summary.unchanged), (0, 0, 3));
    assert_eq!(org_snapshot(&t).await, orgs, "no organisation row changed");
    let duties_after: i64 = sqlx::query_scalar("select count(*) from duty").fetch_one(&t.pool).await.unwrap();
    assert_eq!(duties_after, duties);
    assert_eq!(audit_count(&t).await, audits + 1, "one audit entry for the import, nothing else");
    let detail: serde_json::Value =
        sqlx::query_scalar("select detail from audit_log where action = 'import.orgs' order by id desc limit 1")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!((detail["created"].as_i64(), detail["changed"].as_i64()), (Some(0), Some(0)));
}

#[tokio::test]
async fn a_file_with_one_bad_row_imports_nothing() {
    let t = TestApp::spawn_at(NOW).await;
    t.company_tree().await;
    let before = org_snapshot(&t).await;
    let audits = audit_count(&t).await;
    let o = import_file(
        &t,
        What::Orgs,
        &csv(&[
            ORG_HEADER,
            "HX-3,第三党支部,branch,HGS,2018-01-01,",
            "HGS,分公司党委（新名）,committee,HJT,2016-05-01,",
            "HX-5,第五党支部,branch,HGS,2018-13-01,",
        ]),
    )
    .await;
    assert_eq!(o.problems.len(), 1);
    assert_eq!(org_snapshot(&t).await, before, "neither the new branch nor the new name");
    assert_eq!(audit_count(&t).await, audits);
}

#[tokio::test]
async fn imported_branches_owe_their_duties_at_once() {
    let t = TestApp::spawn_at(NOW).await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    let o = import_file(
        &t,
        What::Orgs,
        &csv(&[ORG_HEADER, "HX-9,第九党支部,党支部,HX-GS2,2020-01-01,", "HX-GS2,第二分公司党委,党委,HJT,2019-01-01,"]),
    )
    .await;
    assert!(o.problems.is_empty(), "{:?}", lines(&o, What::Orgs));
    assert!(o.summary.duties_created > 0);
    let branch = t.statuses("HX-9", "2026-Q1").await;
    assert!(branch.iter().any(|(rule, _)| rule == "A7"), "the branch owes A7: {branch:?}");
    let committee = t.statuses("HX-GS2", "2026-Q1").await;
    assert!(!committee.is_empty(), "the committee owes its quarterly duties");
    let (st, rollup) = t.get("/api/v1/orgs/HJT/rollup?period=2026-Q1").await;
    assert_eq!(st, StatusCode::OK);
    let total: i64 = rollup["counts"].as_object().unwrap().values().map(|v| v.as_i64().unwrap()).sum();
    let direct: i64 =
        sqlx::query_scalar("select count(*) from duty d join org o on o.id = d.org_id where d.period_key = '2026-Q1'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(total, direct, "the group's totals count the imported subtree");
}

#[tokio::test]
async fn a_closing_date_closes_the_descendants_and_a_new_parent_moves_the_subtree() {
    let t = TestApp::spawn_at(NOW).await;
    t.company_tree().await;
    t.org("HGS-B", "committee", Some("HJT"), "2016-01-01").await;
    t.org("HX-1-A", "branch", Some("HX-1"), "2018-01-01").await;
    let o = import_file(
        &t,
        What::Orgs,
        &csv(&[
            ORG_HEADER,
            "HX-1,第一党支部,branch,HGS-B,2017-01-01,",
            "HGS,分公司党委,committee,HJT,2016-05-01,2026-02-28",
        ]),
    )
    .await;
    assert!(o.problems.is_empty(), "{:?}", lines(&o, What::Orgs));
    assert_eq!((o.summary.moved, o.summary.cascaded), (1, 1), "{:?}", o.summary);
    assert_eq!(org_json(&t, "HX-1").await["parent"], "HGS-B");
    assert_eq!(org_json(&t, "HX-1-A").await["parent"], "HX-1", "the subtree moved along");
    assert!(org_json(&t, "HX-1").await["active_until"].is_null(), "moved away before its old parent closed");
    assert_eq!(org_json(&t, "HX-2").await["active_until"], "2026-02-28", "a descendant closes with its parent");
    let path_ok: bool = sqlx::query_scalar(
        "select bool_and(c.path[1:cardinality(c.path) - 1] = p.path) from org c join org p on p.id = c.parent_id",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert!(path_ok, "every path is its parent's path and its own id");

    // An existing organisation cannot become a root by import.
    let o = check(&t, What::Orgs, &csv(&[ORG_HEADER, "HX-1,第一党支部,branch,,2017-01-01,"])).await;
    assert!(has(&o, What::Orgs, "已有组织不能通过导入变为顶级组织"), "{:?}", lines(&o, What::Orgs));
}

#[tokio::test]
async fn the_kind_of_an_organisation_that_owes_duties_stays() {
    let t = TestApp::spawn_at(NOW).await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    let o = check(&t, What::Orgs, &csv(&[ORG_HEADER, "HX-1,第一党支部,school_branch,HGS,2017-01-01,"])).await;
    assert!(
        has(&o, What::Orgs, "第 2 行，组织类型（kind）：组织类型不能从“党支部”改为“学校党支部”"),
        "{:?}",
        lines(&o, What::Orgs)
    );
}

#[tokio::test]
async fn a_child_may_not_begin_after_its_parent_closed() {
    let t = TestApp::spawn_at(NOW).await;
    let o = check(
        &t,
        What::Orgs,
        &csv(&[ORG_HEADER, "QX,区委,committee,,2010-01-01,2020-12-31", "QX-1,一支部,branch,QX,2021-01-01,"]),
    )
    .await;
    assert!(
        has(&o, What::Orgs, "第 3 行，成立日期（active_from）：上级组织 QX 于 2020-12-31 撤销"),
        "{:?}",
        lines(&o, What::Orgs)
    );
}

// ---------------------------------------------------------------------------------------
// People and roles
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn people_and_their_roles_import_and_a_second_import_changes_nothing() {
    let t = TestApp::spawn_at(NOW).await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    t.user("zhang", false).await;
    let people = csv(&[
        "人员编号,姓名,登录名,电话,邮箱",
        "P001,张伟,zhang,13800000000,zhang@example.cn",
        "P002,李华,,,",
        "P003,王芳,,13900000000,",
    ]);
    let o = import_file(&t, What::People, &people).await;
    assert!(o.problems.is_empty(), "{:?}", lines(&o, What::People));
    assert_eq!((o.summary.created, o.summary.changed), (2, 1), "zhang's person gets the code P001");
    let roles = csv(&[
        "组织代码,人员编号,登录名,职务,起始日期,终止日期,代理",
        "HX-1,P001,,书记,2020-01-01,,否",
        "HGS,P002,,secretary,2019-01-01,,",
        "HGS,P003,,班子成员,2020-01-01,,否",
        "HX-2,,zhang,班子成员,2021-01-01,2025-12-31,是",
    ]);
    let o = import_file(&t, What::Roles, &roles).await;
    assert!(o.problems.is_empty(), "{:?}", lines(&o, What::Roles));
    assert_eq!(o.summary.created, 4);
    let a13: i64 = sqlx::query_scalar(
        "select count(*) from duty d join rule r on r.id = d.rule_id join person p on p.id = d.person_id
         where r.code = 'A13' and p.code = 'P003'",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert!(a13 > 0, "the new leadership member owes A13");

    // The secretary signs in and sees the branch on the workbench.
    let page = t.sign_in("zhang").await;
    let (_, html) = page.get("/").await;
    assert!(html.contains("HX-1"), "zhang is HX-1's secretary now");

    let audits = audit_count(&t).await;
    for (what, file) in [(What::People, &people), (What::Roles, &roles)] {
        let o = import_file(&t, what, file).await;
        assert!(o.problems.is_empty(), "{:?}", lines(&o, what));
        assert_eq!((o.summary.created, o.summary.changed), (0, 0), "{what:?} again changes nothing");
    }
    assert_eq!(audit_count(&t).await, audits + 2);

    // Ending an assignment is a change; an overlapping one is a problem.
    let o = import_file(
        &t,
        What::Roles,
        &csv(&["org,person,role,from,until", "HX-1,P001,secretary,2020-01-01,2026-06-30"]),
    )
    .await;
    assert_eq!((o.summary.created, o.summary.changed), (0, 1), "{:?}", lines(&o, What::Roles));
    let o = check(&t, What::Roles, &csv(&["org,person,role,from", "HX-1,P001,secretary,2026-06-01"])).await;
    assert!(
        has(&o, What::Roles, "第 2 行：与此人在该组织已有的同一职务（2020-01-01 起）时间重叠"),
        "{:?}",
        lines(&o, What::Roles)
    );
}

#[tokio::test]
async fn people_and_role_problems_are_named() {
    let t = TestApp::spawn_at(NOW).await;
    t.company_tree().await;
    let o = check(
        &t,
        What::People,
        &csv(&["code,name,login,email", "P1,张三,nobody,", "P1,李四,,li@", ",王五,,", "P 2,赵六,,"]),
    )
    .await;
    let got = lines(&o, What::People);
    assert!(has(&o, What::People, "第 2 行，登录名（login）：没有登录名为 nobody 的用户"), "{got:?}");
    assert!(has(&o, What::People, "第 3 行，人员编号（code）：P1 在文件中重复（第 2 行也有）"), "{got:?}");
    assert!(has(&o, What::People, "第 3 行，邮箱（email）：“li@”"), "{got:?}");
    assert!(has(&o, What::People, "第 4 行，人员编号（code）：人员编号和登录名至少要填一个"), "{got:?}");
    assert!(has(&o, What::People, "第 5 行，人员编号（code）：“P 2”不是有效的代码"), "{got:?}");

    let o = check(
        &t,
        What::Roles,
        &csv(&[
            "org,person,role,from,until,acting",
            "NOPE,P9,书记,2020-01-01,,",
            "HX-1,P9,主任,2020-01-01,2019-01-01,也许",
        ]),
    )
    .await;
    let got = lines(&o, What::Roles);
    assert!(has(&o, What::Roles, "第 2 行，组织代码（org）：组织 NOPE 不存在"), "{got:?}");
    assert!(has(&o, What::Roles, "第 3 行，职务（role）：“主任”不是有效的职务"), "{got:?}");
    assert!(has(&o, What::Roles, "第 3 行，终止日期（until）：终止日期 2019-01-01 早于起始日期 2020-01-01"), "{got:?}");
    assert!(has(&o, What::Roles, "第 3 行，代理（acting）：“也许”无法识别"), "{got:?}");
}

// ---------------------------------------------------------------------------------------
// Export, samples
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_export_imported_again_changes_nothing_in_csv_and_xlsx() {
    let t = TestApp::spawn_at(NOW).await;
    t.company_tree().await;
    t.patch("/api/v1/orgs/HX-2", json!({"active_until": "2026-02-28"})).await;
    let mut conn = t.pool.acquire().await.unwrap();
    for locale in [zerenzhi::web::i18n::Locale::Zh, zerenzhi::web::i18n::Locale::En] {
        let sheet = import::export::sheet(&mut conn, What::Orgs, locale).await.unwrap();
        assert_eq!(sheet.rows.len(), 4);
        for format in [import::export::Format::Csv, import::export::Format::Xlsx] {
            let bytes = import::export::write(&sheet, format).unwrap();
            if format == import::export::Format::Csv {
                assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "a BOM, so that Excel reads UTF-8");
            }
            let o = check(&t, What::Orgs, &bytes).await;
            assert!(o.problems.is_empty(), "{:?}", lines(&o, What::Orgs));
            assert_eq!((o.summary.created, o.summary.changed, o.summary.unchanged), (0, 0, 4), "{format:?} {locale:?}");
        }
    }
}

#[tokio::test]
async fn the_sample_files_import_cleanly_in_order() {
    let t = TestApp::spawn_at(NOW).await;
    let root = env!("CARGO_MANIFEST_DIR");
    for what in [What::Orgs, What::People, What::Roles] {
        let bytes = std::fs::read(format!("{root}/static/samples/{}.csv", what.as_str())).unwrap();
        let o = import_file(&t, what, &bytes).await;
        assert!(o.problems.is_empty(), "{what:?}: {:?}", lines(&o, what));
        assert!(o.summary.created > 0);
        let xlsx = std::fs::read(format!("{root}/static/samples/{}.xlsx", what.as_str())).unwrap();
        let o = check(&t, what, &xlsx).await;
        assert!(o.problems.is_empty(), "{what:?} xlsx: {:?}", lines(&o, what));
        assert_eq!((o.summary.created, o.summary.changed), (0, 0), "the XLSX sample is the CSV sample");
    }
}

// ---------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------

async fn run_cli(t: &TestApp, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env("DATABASE_URL", url_for(&t.db_name))
        .env("ZRZ_NOW", NOW)
        .env("ZRZ_DATA_DIR", dir.path())
        .env("ZRZ_LOG", "warn")
        .env_remove("ZRZ_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("zerenzhi finishes").expect("runs")
}

/// Standard error without the log's warning about ZRZ_NOW.
fn problem_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().filter(|l| l.contains("行")).map(str::to_owned).collect()
}

#[tokio::test]
async fn the_command_line_prints_one_line_per_problem_and_exits_1() {
    let t = TestApp::spawn_at(NOW).await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        csv(&[
            ORG_HEADER,
            "QX,区委,committee,,2020-01-01,",
            "QX-1,一支部,branch,QX-09,2020-01-01,",
            "QX-2,二支部,学校,QX,2020-13-01,",
        ]),
    )
    .unwrap();
    let out = run_cli(&t, &["import", "orgs", bad.to_str().unwrap(), "--dry-run"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let got = problem_lines(&out);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[0],
        "第 3 行，上级组织代码（parent）：QX-09 不存在（文件和系统中都没有这个组织）。 / row 3, parent: QX-09 does not exist (neither in the file nor in the portal)."
    );
    assert!(got[1].starts_with("第 4 行，组织类型（kind）：“学校”不是已有的组织类型"), "{got:?}");
    assert!(got[2].starts_with("第 4 行，成立日期（active_from）：“2020-13-01”不是有效的日期"), "{got:?}");
    // Without --dry-run the same file imports nothing either.
    let out = run_cli(&t, &["import", "orgs", bad.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(org_count(&t).await, 0);

    let huge = dir.path().join("huge.csv");
    std::fs::File::create(&huge).unwrap().set_len(100 * 1024 * 1024).unwrap();
    let started = Instant::now();
    let out = run_cli(&t, &["import", "orgs", huge.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("文件：文件超过 50 MB"), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "refused quickly: {:?}", started.elapsed());
}

#[tokio::test]
async fn the_command_line_imports_checks_and_exports() {
    let t = TestApp::spawn_at(NOW).await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("orgs.csv");
    std::fs::write(&good, csv(&[ORG_HEADER, "QX-1,一支部,branch,QX,2020-01-01,", "QX,区委,committee,,2020-01-01,"]))
        .unwrap();
    let out = run_cli(&t, &["import", "orgs", good.to_str().unwrap(), "--dry-run"]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("新增 2"), "{out:?}");
    assert_eq!(org_count(&t).await, 0, "a dry run changes nothing");
    let out = run_cli(&t, &["import", "orgs", good.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 new, 0 changed, 0 unchanged"), "{out:?}");
    assert_eq!(org_count(&t).await, 2);
    let out = run_cli(&t, &["import", "orgs", good.to_str().unwrap()]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 new, 0 changed, 2 unchanged"), "{out:?}");

    for ext in ["csv", "xlsx"] {
        let file = dir.path().join(format!("export.{ext}"));
        let out = run_cli(&t, &["export", "orgs", file.to_str().unwrap()]).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let o = check(&t, What::Orgs, &std::fs::read(&file).unwrap()).await;
        assert_eq!((o.summary.unchanged, o.problems.len()), (2, 0), "{:?}", lines(&o, What::Orgs));
    }
    let out = run_cli(&t, &["export", "orgs", dir.path().join("x.pdf").to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
}

// ---------------------------------------------------------------------------------------
// The admin pages
// ---------------------------------------------------------------------------------------

async fn upload(page: &common::PageClient, what: &str, name: &str, bytes: Vec<u8>) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("what", what.to_owned())
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
    page.http
        .post(format!("{}/admin/import?csrf={}", page.base, page.csrf))
        .multipart(form)
        .send()
        .await
        .expect("upload")
}

#[tokio::test]
async fn an_admin_uploads_reads_the_check_confirms_and_sees_the_import_finish() {
    let t = TestApp::spawn_at(NOW).await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    let page = t.sign_in("admin").await;
    let (st, html) = page.get("/admin/import").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains(&format!("action=\"/admin/import?csrf={}\"", page.csrf)), "the token rides in the URL");
    assert!(html.contains("enctype=\"multipart/form-data\""));
    assert!(html.contains("/static/samples/orgs.xlsx"), "a sample to download");

    // A file with a problem: the report lists it, nothing to confirm.
    let resp = upload(&page, "orgs", "bad.csv", csv(&[ORG_HEADER, "HX-7,第七党支部,branch,QX-09,2020-01-01,"])).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let report = resp.headers()["location"].to_str().unwrap().to_owned();
    let (st, html) = page.get(&report).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("第 2 行") && html.contains("上级组织代码") && html.contains("QX-09 不存在"), "{html}");
    assert!(!html.contains("确认导入"), "nothing to confirm");

    // A clean file: counts and a confirm button; confirming imports it in the background.
    let file =
        csv(&[ORG_HEADER, "HX-7,第七党支部,branch,HGS,2020-01-01,", "HX-2,第二党支部（新）,branch,HGS,2017-01-01,"]);
    let resp = upload(&page, "orgs", "好的.csv", file).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let report = resp.headers()["location"].to_str().unwrap().to_owned();
    let (_, html) = page.get(&report).await;
    assert!(html.contains("确认导入") && html.contains("好的.csv"), "{html}");
    let sha = html.split("name=\"sha256\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    assert_eq!(org_count(&t).await, 4, "nothing imported before the confirmation");
    let (st, location, _) = page.post(&format!("{report}/commit"), &[("sha256", &sha)]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(report.as_str()));
    let mut html = String::new();
    for _ in 0..100 {
        html = page.get(&report).await.1;
        if html.contains("导入完成") {
            break;
        }
        assert!(html.contains("正在导入") || html.contains("导入完成"), "{html}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(html.contains("导入完成"), "{html}");
    assert_eq!(org_json(&t, "HX-7").await["parent"], "HGS");
    assert_eq!(org_json(&t, "HX-2").await["name"], "第二党支部（新）");
    assert!(!t.statuses("HX-7", "2026-Q1").await.is_empty(), "the new branch owes its duties");

    // The same confirmation twice is refused; the file is gone.
    let (st, _, _) = page.post(&format!("{report}/commit"), &[("sha256", &sha)]).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let leftovers: Vec<_> = std::fs::read_dir(t.data_dir.join("imports"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".upload"))
        .collect();
    assert!(leftovers.is_empty(), "uploads are deleted once imported");

    // The status fragment for htmx.
    let resp =
        page.http.get(format!("{}{report}/status", page.base)).header("HX-Request", "true").send().await.unwrap();
    let fragment = resp.text().await.unwrap();
    assert!(fragment.contains("id=\"import-status\"") && !fragment.contains("<html"), "{fragment}");

    // The export downloads.
    let resp = page.http.get(format!("{}/admin/export/orgs.xlsx", page.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
    assert!(resp.bytes().await.unwrap().starts_with(b"PK\x03\x04"));
}

#[tokio::test]
async fn the_upload_form_refuses_what_is_no_table_too_large_or_missing_and_keeps_the_choice() {
    let t = TestApp::spawn_at(NOW).await;
    let page = t.sign_in("admin").await;
    let resp = upload(&page, "people", "photo.csv", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.unwrap();
    assert!(html.contains("这不是 CSV 或 XLSX 表格文件"), "{html}");
    assert!(html.contains("value=\"people\" checked"), "the choice is kept");
    assert!(html.contains("aria-invalid=\"true\""));

    let resp = upload(&page, "orgs", "empty.csv", Vec::new()).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let big = vec![b'a'; 50 * 1024 * 1024 + 1];
    let resp = upload(&page, "orgs", "big.csv", big).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(resp.text().await.unwrap().contains("文件超过 50 MB"));

    // Without the token in the URL, the upload is refused.
    let form = reqwest::multipart::Form::new().text("what", "orgs");
    let resp = page.http.post(format!("{}/admin/import", page.base)).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn only_admins_import_or_export_and_nobody_sees_another_admins_upload() {
    let t = TestApp::spawn_at(NOW).await;
    t.company_tree().await;
    t.user("zhang", false).await;
    t.post("/api/v1/orgs/HX-1/roles", json!({"login": "zhang", "role": "secretary", "from": "2020-01-01"})).await;
    let secretary = t.sign_in("zhang").await;
    for path in ["/admin/import", "/admin/export/orgs.csv", "/admin/export/people.xlsx"] {
        let (st, _) = secretary.get(path).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{path}");
    }
    let resp = upload(&secretary, "orgs", "x.csv", csv(&[ORG_HEADER, "Z,z,branch,,2020-01-01,"])).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let admin = t.sign_in("admin").await;
    let resp = upload(&admin, "orgs", "x.csv", csv(&[ORG_HEADER, "Z,z,branch,,2020-01-01,"])).await;
    let report = resp.headers()["location"].to_str().unwrap().to_owned();
    t.user("other-admin", true).await;
    let other = t.sign_in("other-admin").await;
    let (st, _) = other.get(&report).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = admin.get("/admin/import/..%2F..%2Fetc%2Fpasswd").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
