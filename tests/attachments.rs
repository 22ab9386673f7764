//! Attachments over HTTP: the size limit enforced while streaming, types judged by the
//! bytes, one copy on disk per content, safe names and safe downloads, and no way to reach
//! another organisation's files.

mod common;

use std::path::{Path, PathBuf};

use common::{PageClient, TestApp};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::json;

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0A, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// The start of a Windows program.
const EXE: &[u8] = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00\x00\x00\x00\x00\x00\x00@\x00\x00\x00This program cannot be run in DOS mode.\r\r\n$";

async fn company() -> TestApp {
    let t = TestApp::spawn_at("2026-03-26T10:00:00+08:00").await;
    t.company_tree().await;
    t.install("ideology-company", "2026-01-01", None).await;
    for (login, org, role) in [
        ("zhang", "HX-1", "secretary"),
        ("li", "HGS", "secretary"),
        ("wang", "HX-2", "secretary"),
        ("zhao", "HX-2", "member"),
    ] {
        t.user(login, false).await;
        let (st, body) = t
            .post(&format!("/api/v1/orgs/{org}/roles"), json!({"login": login, "role": role, "from": "2020-01-01"}))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
    }
    t
}

async fn set_limit(t: &TestApp, bytes: i64) {
    let mut conn = t.pool.acquire().await.unwrap();
    zerenzhi::db::settings::store(&mut conn, "attachment_max_bytes", &json!(bytes)).await.unwrap();
    t.app.reload_settings().await.unwrap();
}

async fn post_form(page: &PageClient, path: &str, form: Form) -> (StatusCode, Option<String>, String) {
    let resp = page
        .http
        .post(format!("{}{}?csrf={}", page.base, path, page.csrf))
        .multipart(form)
        .send()
        .await
        .expect("request");
    let st = resp.status();
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (st, location, resp.text().await.unwrap())
}

/// The fields of a good report for HX-1's A8 duty.
fn report(title: &str) -> Form {
    [
        ("rule", "A8"),
        ("period", "2026-Q1"),
        ("occurred_on", "2026-03-20"),
        ("title", title),
        ("body", "汇报正文：本季度情况良好"),
        ("action", "save"),
    ]
    .iter()
    .fold(Form::new(), |f, (k, v)| f.text(k.to_string(), v.to_string()))
}

fn file(name: &str, bytes: &[u8]) -> Part {
    Part::bytes(bytes.to_vec()).file_name(name.to_owned())
}

fn record_id(location: &Option<String>) -> i64 {
    let loc = location.as_deref().expect("a redirect");
    loc.strip_prefix("/records/").unwrap().split('?').next().unwrap().parse().unwrap()
}

/// (id, file name, media type, sha256) of a record's attachments.
async fn attachments_of(t: &TestApp, record: i64) -> Vec<(i64, String, String, String)> {
    sqlx::query_as("select id, file_name, media_type, sha256 from attachment where record_id = $1 order by id")
        .bind(record)
        .fetch_all(&t.pool)
        .await
        .unwrap()
}

/// Every file in the store, as paths relative to its root.
fn stored_files(t: &TestApp) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p: PathBuf = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let root = t.data_dir.join("files");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// The first value of `name="keep"` checkboxes in a page.
fn kept_tokens(html: &str) -> Vec<String> {
    html.match_indices("name=\"keep\" value=\"")
        .map(|(i, m)| html[i + m.len()..].split('"').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_file_one_byte_over_the_limit_is_refused_and_nothing_else_is_lost() {
    let t = company().await;
    set_limit(&t, 1000).await;
    let zhang = t.sign_in("zhang").await;
    let (_, html) = zhang.get("/orgs/HX-1/records/new?rule=A8&period=2026-Q1").await;
    assert!(html.contains("每个不超过 1 KB"), "the form shows the configured limit");

    let mut big = PDF.to_vec();
    big.resize(1001, b' ');
    let form = report("超限附件的汇报").part("files", file("扫描件.pdf", &big)).part("files", file("照片.png", PNG));
    let (st, _, html) = post_form(&zhang, "/orgs/HX-1/records", form).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(html.contains("“扫描件.pdf”超过 1 KB，没有上传"), "{html}");
    assert!(html.contains("value=\"超限附件的汇报\"") && html.contains("汇报正文：本季度情况良好"), "the text is kept");
    assert!(html.contains("value=\"2026-03-20\""));
    assert!(html.contains("照片.png"), "the good file of the same submission is kept");
    let tokens = kept_tokens(&html);
    assert_eq!(tokens.len(), 1);
    assert_eq!(sqlx::query_scalar::<_, i64>("select count(*) from record").fetch_one(&t.pool).await.unwrap(), 0);
    assert!(stored_files(&t).iter().all(|p| !p.starts_with("tmp")), "no partial upload is left behind");

    // Sent again with the kept file and a file exactly at the limit: both are attached.
    let mut exact = PDF.to_vec();
    exact.resize(1000, b' ');
    let form = report("超限附件的汇报").text("keep", tokens[0].clone()).part("files", file("扫描件.pdf", &exact));
    let (st, location, html) = post_form(&zhang, "/orgs/HX-1/records", form).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{html}");
    let files = attachments_of(&t, record_id(&location)).await;
    let names: Vec<&str> = files.iter().map(|f| f.1.as_str()).collect();
    assert_eq!(names, vec!["照片.png", "扫描件.pdf"]);

    // A forged keep token attaches nothing.
    let form = report("伪造").text("keep", format!("{}.99.eA.eA.bm9wZQ", "a".repeat(64)));
    let (st, _, html) = post_form(&zhang, "/orgs/HX-1/records", form).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("有一个先前上传的文件无法确认"));
}

#[tokio::test]
async fn a_program_renamed_to_pdf_is_refused_by_its_bytes() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;
    for (name, bytes) in [
        ("会议记录.pdf", EXE),
        ("page.txt", &b"<!DOCTYPE html><script>alert(1)</script>"[..]),
        ("图.png", &b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>"[..]),
        ("run.docx", &b"#!/bin/sh\necho hi\n"[..]),
    ] {
        let form = report("带可疑附件").part("files", file(name, bytes));
        let (st, _, html) = post_form(&zhang, "/orgs/HX-1/records", form).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(html.contains(&format!("“{name}”不是可接受的文件类型")), "{name}: {html}");
        assert!(html.contains("value=\"带可疑附件\""));
    }
    assert_eq!(sqlx::query_scalar::<_, i64>("select count(*) from attachment").fetch_one(&t.pool).await.unwrap(), 0);
    assert!(stored_files(&t).is_empty(), "nothing refused stays on disk: {:?}", stored_files(&t));
}

#[tokio::test]
async fn a_pdf_and_a_png_are_stored_and_served_with_their_own_types() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;
    let csv = "姓名,原因\n赵六,出差\n".as_bytes();
    let form = report("带附件的汇报")
        .part("files", file("汇报.pdf", PDF))
        .part("files", file("签到表.jpg", PNG))
        .part("files", file("名单.csv", csv));
    let (st, location, html) = post_form(&zhang, "/orgs/HX-1/records", form).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{html}");
    let id = record_id(&location);
    let files = attachments_of(&t, id).await;
    let types: Vec<&str> = files.iter().map(|f| f.2.as_str()).collect();
    assert_eq!(
        types,
        vec!["application/pdf", "image/png", "text/csv; charset=utf-8"],
        "the bytes decide, not the name"
    );

    let (_, html) = zhang.get(&format!("/records/{id}")).await;
    assert!(html.contains(&format!("src=\"/attachments/{}?inline=1\"", files[1].0)), "the image is shown");

    let get = |path: String| {
        let c = zhang.http.clone();
        let base = zhang.base.clone();
        async move { c.get(format!("{base}{path}")).send().await.unwrap() }
    };
    let resp = get(format!("/attachments/{}", files[0].0)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let cd = resp.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert_eq!(cd, "attachment; filename=\"attachment.pdf\"; filename*=UTF-8''%E6%B1%87%E6%8A%A5.pdf");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), PDF);

    let resp = get(format!("/attachments/{}?inline=1", files[1].0)).await;
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("inline;"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), PNG);
    let resp = get(format!("/attachments/{}?inline=1", files[0].0)).await;
    assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"), "only images inline");
    let resp = get(format!("/attachments/{}", files[2].0)).await;
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn the_same_file_is_stored_once_on_disk() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;
    let form = report("第一份").part("files", file("a.pdf", PDF)).part("files", file("同一个文件.pdf", PDF));
    let (st, first, _) = post_form(&zhang, "/orgs/HX-1/records", form).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let form = report("第二份").part("files", file("b.pdf", PDF));
    let (st, second, _) = post_form(&zhang, "/orgs/HX-1/records", form).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let a = attachments_of(&t, record_id(&first)).await;
    let b = attachments_of(&t, record_id(&second)).await;
    assert_eq!(a.len() + b.len(), 3, "three attachments");
    assert!(a.iter().chain(b.iter()).all(|f| f.3 == a[0].3), "one content");
    let on_disk = stored_files(&t);
    let sha = &a[0].3;
    assert_eq!(on_disk, vec![format!("{}/{}/{sha}", &sha[0..2], &sha[2..4])], "stored once, by its hash");
}

/// A multipart body written by hand, so that names reach the server exactly as given.
async fn post_raw(page: &PageClient, path: &str, filename_bytes: &[u8], content: &[u8]) -> (StatusCode, String) {
    let boundary = "----zrzBoundary7MA4YWxkTrZu0gW";
    let mut body: Vec<u8> = Vec::new();
    for (k, v) in [
        ("rule", "A8"),
        ("period", "2026-Q1"),
        ("occurred_on", "2026-03-20"),
        ("title", "文件名测试"),
        ("action", "save"),
    ] {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"").as_bytes(),
    );
    body.extend_from_slice(filename_bytes);
    body.extend_from_slice(b"\"\r\nContent-Type: application/pdf\r\n\r\n");
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = page
        .http
        .post(format!("{}{}?csrf={}", page.base, path, page.csrf))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let st = resp.status();
    (st, resp.text().await.unwrap())
}

#[tokio::test]
async fn hostile_file_names_are_kept_for_display_only_and_sent_back_safely() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;

    // Paths, a tab, a direction override and an escaped quote survive the form's parser.
    let (st, html) = post_raw(&zhang, "/orgs/HX-1/records", "../../etc/pass\twd\u{202e}fdp.pdf".as_bytes(), PDF).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{html}");
    let (st, html) = post_raw(&zhang, "/orgs/HX-1/records", br#"C:\fakepath\a\";b.pdf"#, PDF).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{html}");
    // CR/LF and NUL cannot travel inside a part's header: the form is refused whole or
    // the name is lost, never a 500 and never a stored name with them.
    for raw in [&b"evil\r\nContent-Type: text/html\r\n.pdf"[..], &b"nul\x00byte.pdf"[..]] {
        let (st, _) = post_raw(&zhang, "/orgs/HX-1/records", raw, PDF).await;
        assert!(st.is_client_error() || st == StatusCode::SEE_OTHER, "{st}");
    }
    // reqwest writes such a name raw (backslash-escaped): the form comes back, typed text kept.
    let form = report("编码的文件名").part("files", file("../..\\x\r\n\0.pdf", PDF));
    let (st, _, html) = post_form(&zhang, "/orgs/HX-1/records", form).await;
    assert!(st.is_client_error() || st == StatusCode::SEE_OTHER, "{st}");
    if st.is_client_error() {
        assert!(html.contains("value=\"编码的文件名\""), "the text typed before the file is kept");
    }

    let rows: Vec<(i64, String)> =
        sqlx::query_as("select id, file_name from attachment order by id").fetch_all(&t.pool).await.unwrap();
    assert!(rows.len() >= 2, "{rows:?}");
    assert_eq!(rows[0].1, "passwdfdp.pdf");
    assert_eq!(rows[1].1, "a\";b.pdf");
    for (_, name) in &rows {
        assert!(!name.contains(['/', '\\', '\r', '\n', '\0', '\t', '\u{202e}']), "{name:?}");
    }
    let on_disk = stored_files(&t);
    assert!(on_disk.iter().all(|p| p.len() == 2 + 1 + 2 + 1 + 64), "only hash paths on disk: {on_disk:?}");

    let resp = zhang.http.get(format!("{}/attachments/{}", zhang.base, rows[1].0)).send().await.unwrap();
    let cd = resp.headers()["content-disposition"].to_str().unwrap();
    assert_eq!(cd, "attachment; filename=\"a__b.pdf\"; filename*=UTF-8''a%22%3Bb.pdf");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn nobody_outside_the_record_reaches_its_files() {
    let t = company().await;
    let zhang = t.sign_in("zhang").await;
    let form = report("带附件").part("files", file("内部材料.pdf", PDF));
    let (_, location, _) = post_form(&zhang, "/orgs/HX-1/records", form).await;
    let files = attachments_of(&t, record_id(&location)).await;
    let url = format!("/attachments/{}", files[0].0);

    for login in ["wang", "zhao"] {
        let other = t.sign_in(login).await;
        let (st, body) = other.get(&url).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{login}");
        assert!(!body.contains("%PDF"));
        let (st, _) = other.get("/attachments/999999").await;
        assert_eq!(st, StatusCode::NOT_FOUND, "an unknown file looks the same");
    }
    let li = t.sign_in("li").await;
    assert_eq!(li.get(&url).await.0, StatusCode::OK, "the superior sees the branch's files");
    assert_eq!(zhang.get(&url).await.0, StatusCode::OK);
    assert_eq!(t.anonymous().get(&url).await.0, StatusCode::SEE_OTHER, "a visitor signs in first");
    assert_eq!(zhang.get("/attachments/abc").await.0, StatusCode::NOT_FOUND);

    // Uploading to someone else's organisation stores nothing.
    let wang = t.sign_in("wang").await;
    let before = stored_files(&t);
    let form = report("越权").part("files", file("x.pdf", b"%PDF-1.4 other content"));
    let (st, _, _) = post_form(&wang, "/orgs/HX-1/records", form).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(stored_files(&t), before);
}
