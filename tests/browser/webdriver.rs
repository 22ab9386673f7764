//! A small W3C WebDriver client over `reqwest`, with the chromedriver process it talks to.
//! Plain HTTP to a local chromedriver needs nothing more than this (`fantoccini` without
//! a TLS feature offers no way to build a client).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// Where Debian puts them (`scripts/ensure-browser.sh` installs them).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process on a free port; killed when dropped.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    pub async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{url}/status")).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    /// `…/session/{id}`
    base: String,
    pub shots: PathBuf,
    shot_no: usize,
    _profile: tempfile::TempDir,
}

/// An element of the current page.
#[derive(Clone, Debug)]
pub struct Element(String);

#[derive(Debug)]
pub struct WdError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.error, self.message.lines().next().unwrap_or(""))
    }
}

impl Browser {
    /// A headless Chromium with a fresh profile, logging the console and the network.
    pub async fn open(driver: &Driver, shots: &Path, width: u32, height: u32) -> Browser {
        let profile = tempfile::Builder::new().prefix("zrz-chromium-").tempdir().expect("a profile directory");
        let mut caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "unhandledPromptBehavior": "accept and notify",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"), "--lang=zh-CN", "--no-first-run",
                    "--disable-component-update", "--disable-sync", "--disable-default-apps",
                    "--disable-features=Translate,OptimizationHints,MediaRouter",
                ],
                "prefs": {"intl.accept_languages": "zh-CN,zh"},
            },
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}});
        // Headless windows have a minimum width: a phone's viewport is emulated instead.
        if width < 600 {
            caps["capabilities"]["alwaysMatch"]["goog:chromeOptions"]["mobileEmulation"] = json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0, "mobile": true, "touch": true},
            });
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let resp: Value = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await
            .expect("ask chromedriver for a session")
            .json()
            .await
            .expect("a JSON answer");
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver started no browser: {resp}"))
            .to_owned();
        std::fs::create_dir_all(shots).expect("the screenshot directory");
        Browser {
            http,
            base: format!("{}/session/{session}", driver.url),
            session,
            shots: shots.to_owned(),
            shot_no: 0,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp =
            req.send().await.map_err(|e| WdError { status: 0, error: "transport".into(), message: e.to_string() })?;
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            return Err(WdError {
                status,
                error: v["value"]["error"].as_str().unwrap_or("").to_owned(),
                message: v["value"]["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(v["value"].clone())
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await.unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    async fn get(&self, path: &str) -> Value {
        self.cmd(reqwest::Method::GET, path, None).await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap_or("").to_owned()
    }

    pub async fn source(&self) -> String {
        self.get("/source").await.as_str().unwrap_or("").to_owned()
    }

    pub async fn title(&self) -> String {
        self.get("/title").await.as_str().unwrap_or("").to_owned()
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self.post("/elements", json!({"using": "css selector", "value": css})).await;
        v.as_array()
            .map(|a| a.iter().filter_map(|e| e[ELEMENT].as_str()).map(|s| Element(s.to_owned())).collect())
            .unwrap_or_default()
    }

    pub async fn try_find(&self, css: &str) -> Option<Element> {
        self.find_all(css).await.into_iter().next()
    }

    /// The first element matching `css`, waiting up to ten seconds for it.
    pub async fn find(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            if started.elapsed() > Duration::from_secs(10) {
                panic!("no element {css:?} on {}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element found by an XPath expression (for text from the message catalogue).
    pub async fn find_xpath(&self, xpath: &str) -> Element {
        let started = Instant::now();
        loop {
            let v = self.cmd(reqwest::Method::POST, "/element", Some(json!({"using": "xpath", "value": xpath}))).await;
            if let Ok(v) = v
                && let Some(id) = v[ELEMENT].as_str()
            {
                return Element(id.to_owned());
            }
            if started.elapsed() > Duration::from_secs(10) {
                panic!("nothing matches {xpath:?} on {}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, e: &Element) {
        self.post(&format!("/element/{}/click", e.0), json!({})).await;
    }

    /// Click, and wait until the browser has loaded the page the click leads to.
    pub async fn click_and_wait(&self, e: &Element) {
        let before = self.page_id().await;
        self.click(e).await;
        self.wait_for_new_page(&before).await;
    }

    pub async fn clear(&self, e: &Element) {
        self.post(&format!("/element/{}/clear", e.0), json!({})).await;
    }

    pub async fn type_into(&self, e: &Element, text: &str) {
        self.post(&format!("/element/{}/value", e.0), json!({"text": text})).await;
    }

    pub async fn text(&self, e: &Element) -> String {
        self.get(&format!("/element/{}/text", e.0)).await.as_str().unwrap_or("").to_owned()
    }

    pub async fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.get(&format!("/element/{}/attribute/{name}", e.0)).await.as_str().map(str::to_owned)
    }

    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args})).await
    }

    /// A mark on the current document, to tell when a new one has loaded.
    async fn page_id(&self) -> String {
        let v = self
            .execute(
                "if (!window.__zrzPage) { window.__zrzPage = String(Math.random()); } return window.__zrzPage;",
                vec![],
            )
            .await;
        v.as_str().unwrap_or("").to_owned()
    }

    async fn wait_for_new_page(&self, before: &str) {
        let started = Instant::now();
        loop {
            let state = self
                .cmd(
                    reqwest::Method::POST,
                    "/execute/sync",
                    Some(json!({"script": "return [document.readyState, window.__zrzPage || ''];", "args": []})),
                )
                .await;
            if let Ok(v) = state
                && v[0] == "complete"
                && v[1].as_str() != Some(before)
            {
                return;
            }
            if started.elapsed() > Duration::from_secs(20) {
                panic!("no new page after the click, still on {}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Save a screenshot as `NN-name.png` in the screenshot directory.
    pub async fn shot(&mut self, name: &str) -> PathBuf {
        self.shot_no += 1;
        let png = self.get("/screenshot").await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or("")).expect("a PNG");
        let path = self.shots.join(format!("{:02}-{name}.png", self.shot_no));
        std::fs::write(&path, bytes).expect("write a screenshot");
        path
    }

    /// Chromium's log of one kind (`browser`: the console; `performance`: DevTools
    /// events), drained: each call returns what came since the last.
    pub async fn log(&self, kind: &str) -> Vec<Value> {
        self.cmd(reqwest::Method::POST, "/se/log", Some(json!({"type": kind})))
            .await
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    pub async fn alert_text(&self) -> Option<String> {
        self.cmd(reqwest::Method::GET, "/alert/text", None).await.ok().and_then(|v| v.as_str().map(str::to_owned))
    }

    pub async fn close(self) {
        let _ = self.cmd(reqwest::Method::DELETE, "", None).await;
        let _ = &self.session;
    }
}
