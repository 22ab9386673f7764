//! The OpenAPI document (`src/web/api/openapi.json`) against the router: every route the
//! source registers under `/api/v1` is documented with its method, nothing documented is
//! missing from the source, and the server serves the document without a token.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::Value;

const API_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/web/api");
const PREFIX: &str = "/api/v1";
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn document() -> Value {
    let text = std::fs::read_to_string(Path::new(API_DIR).join("openapi.json")).expect("read openapi.json");
    serde_json::from_str(&text).expect("openapi.json is valid JSON")
}

/// `(method, full path)` of every operation the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (key, _) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&key.as_str()) {
                out.insert((key.clone(), path.clone()));
            }
        }
    }
    out
}

/// If a string or char literal starts at byte `i`, the index just past its end.
fn literal_end(s: &str, i: usize) -> Option<usize> {
    let b = s.as_bytes();
    match b[i] {
        b'"' => {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            Some((j + 1).min(b.len()))
        }
        b'\'' if b.get(i + 1) == Some(&b'\\') => s[i + 2..].find('\'').map(|k| i + 2 + k + 1),
        b'\'' => {
            // A char literal ('x'), else a lifetime ('a).
            let ch = s[i + 1..].chars().next()?;
            let after = i + 1 + ch.len_utf8();
            (b.get(after) == Some(&b'\'')).then_some(after + 1)
        }
        _ => None,
    }
}

/// Rust source with comments blanked out (string and char literals kept), so that a
/// commented-out route does not count.
fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if let Some(end) = literal_end(src, i) {
            out.push_str(&src[i..end]);
            i = end;
        } else {
            let ch = src[i..].chars().next().expect("inside the string");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The text of a parenthesised argument list starting just after `(`, up to (not
/// including) the matching `)`; string literals are skipped over.
fn until_close(s: &str) -> &str {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        if let Some(end) = literal_end(s, i) {
            i = end;
            continue;
        }
        match b[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth == 0 => return &s[..i],
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced parentheses in a .route(...) call")
}

/// The HTTP methods of a method router such as `get(a).patch(b)` or
/// `axum::routing::post(c)`: the calls at the top level of the expression.
fn methods_of(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let path = &expr[start..i];
            let name = path.rsplit("::").next().unwrap_or(path);
            let rest = expr[i..].trim_start();
            if let Some(args) = rest.strip_prefix('(') {
                assert!(
                    METHODS.contains(&name),
                    "the route parser knows no method router {name:?} in {expr:?}: teach tests/openapi.rs about it"
                );
                out.push(name.to_owned());
                let inner = until_close(args);
                i = expr.len() - rest.len() + 1 + inner.len() + 1;
            }
        } else {
            i += 1;
        }
    }
    assert!(!out.is_empty(), "no method in the method router {expr:?}");
    out
}

/// Every `.route("PATH", METHODS)` call in one source file, as `(method, PATH)`.
fn routes_in(src: &str, file: &str) -> Vec<(String, String)> {
    let src = strip_comments(src);
    assert!(!src.contains(".nest("), "{file}: nested routers are not understood by tests/openapi.rs");
    assert!(!src.contains(".route_service("), "{file}: route_service is not understood by tests/openapi.rs");
    let mut out = Vec::new();
    let mut rest = src.as_str();
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let args = until_close(rest);
        let args_trimmed = args.trim_start();
        let lit =
            args_trimmed.strip_prefix('"').unwrap_or_else(|| panic!("{file}: a route path is not a literal: {args}"));
        let end = lit.find('"').expect("a closed string literal");
        let path = &lit[..end];
        let expr = lit[end + 1..].trim_start().strip_prefix(',').expect("a method router after the path");
        for m in methods_of(expr) {
            out.push((m, path.to_owned()));
        }
        rest = &rest[args.len()..];
    }
    out
}

/// `(method, full path)` of every route in `src/web/api/*.rs`, read at test time.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(API_DIR)
        .expect("read src/web/api")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    for file in files {
        let src = std::fs::read_to_string(&file).expect("read a source file");
        for (m, p) in routes_in(&src, &file.display().to_string()) {
            assert!(out.insert((m.clone(), format!("{PREFIX}{p}"))), "{m} {p} is registered twice");
        }
    }
    out
}

#[test]
fn the_route_parser_reads_chained_method_routers_and_skips_comments() {
    let src = r#"
        Router::new()
            .route("/a/{id}", get(handlers::one).patch(update))
            // .route("/gone", get(gone))
            .route("/b", axum::routing::post(make_b))
            /* .route("/c", get(c)) */
            .route(
                "/d",
                get(|| async { let _c = ')'; "x(" }),
            )
    "#;
    let routes = routes_in(src, "example");
    assert_eq!(
        routes,
        [("get", "/a/{id}"), ("patch", "/a/{id}"), ("post", "/b"), ("get", "/d")]
            .map(|(m, p)| (m.to_owned(), p.to_owned()))
    );
}

#[test]
fn the_document_is_json_declaring_openapi_3_1_with_bearer_security() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("an openapi version string");
    assert!(version.starts_with("3.1."), "openapi is {version}, not 3.1.x");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_eq!(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
    assert_eq!(doc["security"][0]["bearerAuth"], serde_json::json!([]));
}

#[test]
fn every_route_registered_under_api_v1_is_documented_with_its_method() {
    let source = routes_in_source();
    assert!(source.len() >= 18, "the parser found only {} routes: {source:?}", source.len());
    let doc = documented(&document());
    let missing: Vec<_> = source.difference(&doc).collect();
    assert!(missing.is_empty(), "routes in src/web/api without an entry in openapi.json: {missing:?}");
}

#[test]
fn every_documented_operation_exists_in_the_router() {
    let source = routes_in_source();
    let doc = documented(&document());
    let stale: Vec<_> = doc.difference(&source).collect();
    assert!(stale.is_empty(), "operations in openapi.json that no route implements: {stale:?}");
}

/// Every `$ref` string found under `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_and_every_path_parameter_is_declared() {
    let doc = document();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is not a local reference"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    let resolve = |p: &Value| -> Value {
        match p["$ref"].as_str() {
            Some(r) => doc.pointer(&r[1..]).cloned().expect("resolves"),
            None => p.clone(),
        }
    };
    for (path, item) in doc["paths"].as_object().unwrap() {
        let wanted: BTreeSet<&str> = path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
        for (method, op) in item.as_object().unwrap() {
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().map(resolve).filter(|p| p["in"] == "path").collect::<Vec<_>>())
                .unwrap_or_default()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            let wanted: BTreeSet<String> = wanted.iter().map(|s| s.to_string()).collect();
            assert_eq!(declared, wanted, "{method} {path}: path parameters");
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path}: no responses"));
            assert!(responses.keys().any(|k| k.starts_with('2')), "{method} {path}: no success response");
            let open = op["security"] == serde_json::json!([]);
            assert_eq!(!open, responses.contains_key("401"), "{method} {path}: a guarded operation documents 401");
        }
    }
}

#[tokio::test]
async fn the_server_serves_the_document_as_json_without_a_token() {
    let t = TestApp::spawn_at("2026-02-10T09:00:00+08:00").await;
    let resp = t.http.get(format!("{}/api/v1/openapi.json", t.base)).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(ct.starts_with("application/json"), "content-type is {ct:?}");
    let served: Value = resp.json().await.expect("a JSON body");
    assert_eq!(served, document(), "the server serves src/web/api/openapi.json");
}
