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

/// `(method, full path)` of every route the router mounts under `/api/v1`, read from the
/// sources at test time (`common::mounted_routes`).
fn routes_in_source() -> BTreeSet<(String, String)> {
    common::mounted_routes().into_iter().filter(|r| r.is_api()).map(|r| (r.method, r.path)).collect()
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
    let routes = common::route_src::routes_in(src, "example");
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
