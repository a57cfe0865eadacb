//! A minimal W3C WebDriver client over reqwest, and a chromedriver + headless Chromium
//! session on loopback: only the commands the approvals page test needs (navigate, find,
//! click, text, source, cookies, execute, screenshot).
//!
//! chromedriver is started on an ephemeral loopback port (`--port=0`; the port is read from
//! its "started successfully on port N" line), Chromium headless with a fresh profile
//! directory. Both are stopped when the [`Browser`] is dropped, even when the test fails.

#![allow(clippy::expect_used, clippy::panic, unreachable_pub)]

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The element reference key of the W3C WebDriver protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where chromedriver is: `GUARDRAIL_CHROMEDRIVER`, else `chromedriver` on `PATH`.
pub fn find_chromedriver() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GUARDRAIL_CHROMEDRIVER") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("chromedriver"))
        .find(|p| p.is_file())
}

/// True when running under CI (`CI` set to anything but empty, `false` or `0`).
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok(v) if !v.is_empty() && v != "false" && v != "0")
}

/// chromedriver, or `None` after a visible notice; under CI a missing driver fails the test.
pub fn chromedriver_or_skip(test: &str) -> Option<PathBuf> {
    let found = find_chromedriver();
    if found.is_none() {
        assert!(
            !in_ci(),
            "{test}: chromedriver is not installed under CI; the browser test must run \
             (apt-get install chromium chromium-driver, or set GUARDRAIL_CHROMEDRIVER)"
        );
        // Straight to stderr: libtest does not capture it, so the notice shows on a pass.
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE: {test} SKIPPED: chromedriver not found (install Debian's chromium and \
             chromium-driver, or set GUARDRAIL_CHROMEDRIVER), so the headless browser test \
             did not run"
        );
    }
    found
}

/// Where test artifacts go: `$CARGO_TARGET_DIR/test-artifacts`, else the workspace's
/// `target/test-artifacts`.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("test-artifacts")
}

/// A chromedriver process and one headless Chromium session in it.
pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium; then the driver goes. Blocking is fine here:
        // a dropped test is over. A plain thread, since this may run inside a runtime.
        let session = self.session.clone();
        let _ = std::thread::spawn(move || {
            let _ = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map(|c| c.delete(session).send());
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Reads chromedriver's stdout until it names its port (at most 30 s).
fn driver_port(child: &mut Child) -> u16 {
    let stdout = child.stdout.take().expect("chromedriver stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                let port = rest.trim_end_matches('.').trim().parse::<u16>().ok();
                let _ = tx.send(port);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(port)) => port,
        other => panic!("chromedriver did not report its port: {other:?}"),
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start(chromedriver: &Path) -> Browser {
        let mut driver = Command::new(chromedriver)
            .args(["--port=0", "--allowed-ips=127.0.0.1", "--log-level=WARNING"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let port = driver_port(&mut driver);
        let profile = tempfile::tempdir().expect("a fresh profile directory");
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1100,1400",
        ]
        .map(str::to_owned)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut options = json!({ "args": args });
        if let Some(bin) = std::env::var_os("GUARDRAIL_CHROMIUM") {
            options["binary"] = json!(PathBuf::from(bin));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&json!({
                "capabilities": { "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": options,
                }}
            }))
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("new session answer");
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Browser {
            driver,
            session: format!("{base}/session/{id}"),
            http,
            _profile: profile,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let answer: Value = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        if answer["value"]["error"].is_string() {
            panic!("{method} {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    /// Loads `url` (waits for the page to load).
    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The element matching `css`, waiting up to 10 s for it to appear (after a click that
    /// navigates, the next page may still be loading).
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer: Value = self
                .http
                .post(format!("{}/element", self.session))
                .json(&json!({ "using": "css selector", "value": css }))
                .send()
                .await
                .expect("find element")
                .json()
                .await
                .expect("find element answer");
            if let Some(id) = answer["value"][ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no element `{css}` on the page: {}",
                answer["value"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The rendered text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        let v = self
            .command(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await;
        v.as_str().expect("text").to_owned()
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// The page's HTML source.
    pub async fn source(&self) -> String {
        let v = self.command(reqwest::Method::GET, "/source", None).await;
        v.as_str().expect("source").to_owned()
    }

    /// Runs `script` in the page (as a user with the developer tools could).
    pub async fn execute(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Sets a cookie for the current page's origin.
    pub async fn add_cookie(&self, name: &str, value: &str) {
        self.command(
            reqwest::Method::POST,
            "/cookie",
            Some(json!({ "cookie": { "name": name, "value": value, "path": "/" } })),
        )
        .await;
    }

    /// The value of cookie `name` as the browser holds it, if it does.
    pub async fn cookie(&self, name: &str) -> Option<Value> {
        let all = self.command(reqwest::Method::GET, "/cookie", None).await;
        all.as_array()?.iter().find(|c| c["name"] == name).cloned()
    }

    /// Forgets every cookie of the current origin (a sign-out).
    pub async fn clear_cookies(&self) {
        self.command(reqwest::Method::DELETE, "/cookie", None).await;
    }

    /// A PNG of the viewport, written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 screenshot"))
            .expect("a base64 screenshot");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("artifact directory");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }
}
