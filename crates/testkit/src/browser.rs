//! Real-browser support for the UI tests: a chromedriver process on a free port, and headless
//! Chromium sessions (each with a fresh profile) driven over W3C WebDriver with `fantoccini`.
//!
//! chromedriver listens on localhost only and speaks plain HTTP, so no TLS stack is involved.
//! Where chromedriver lives: `TOLLGATE_CHROMEDRIVER`, else `/usr/bin/chromedriver`; the
//! Chromium binary: `TOLLGATE_CHROMIUM`, else `/usr/bin/chromium` when it exists, else whatever
//! chromedriver finds itself. Nothing is ever downloaded.

use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::{CmdError, NewSessionError};
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// Where chromedriver is looked for when `TOLLGATE_CHROMEDRIVER` is not set.
pub const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The Chromium binary used when `TOLLGATE_CHROMIUM` is not set (if it exists).
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// How long waits for pages, elements and chromedriver itself may take.
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);
/// Full-page screenshots stop at this height (CSS pixels).
const MAX_SHOT_HEIGHT: u64 = 8_000;

/// Flags every headless Chromium gets (plus a fresh `--user-data-dir` and the window size).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--no-default-browser-check",
    "--force-device-scale-factor=1",
    // Layout must not depend on whether a page is taller than the window (full-page shots).
    "--hide-scrollbars",
    "--lang=en-US",
];

/// Anything that went wrong talking to chromedriver or the browser, as text.
#[derive(Debug)]
pub struct BrowserError(String);

impl BrowserError {
    fn new(msg: impl Into<String>) -> Self {
        BrowserError(msg.into())
    }
}

impl fmt::Display for BrowserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BrowserError {}

impl From<CmdError> for BrowserError {
    fn from(e: CmdError) -> Self {
        BrowserError(format!("webdriver command failed: {e}"))
    }
}

impl From<NewSessionError> for BrowserError {
    fn from(e: NewSessionError) -> Self {
        BrowserError(format!("could not open a browser session: {e}"))
    }
}

impl From<std::io::Error> for BrowserError {
    fn from(e: std::io::Error) -> Self {
        BrowserError(format!("i/o: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, BrowserError>;

/// The chromedriver to use: `TOLLGATE_CHROMEDRIVER`, else [`DEFAULT_CHROMEDRIVER`]; `None` when
/// no such file exists.
pub fn chromedriver_path() -> Option<PathBuf> {
    let p = std::env::var_os("TOLLGATE_CHROMEDRIVER")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMEDRIVER));
    p.is_file().then_some(p)
}

/// The skip-or-fail rule for browser tests: the chromedriver path, or `None` after printing
/// "skipped: …" — except under CI (`CI` set), where a missing chromedriver is a failure.
pub fn chromedriver_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(p) = chromedriver_path() {
        return Some(p);
    }
    let wanted = std::env::var("TOLLGATE_CHROMEDRIVER")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_CHROMEDRIVER.to_string());
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    assert!(
        !ci,
        "{test}: chromedriver not found at {wanted} (set TOLLGATE_CHROMEDRIVER, or `apt-get install chromium chromium-driver`); browser tests may not be skipped under CI"
    );
    println!("skipped: {test}: chromedriver not found at {wanted} (set TOLLGATE_CHROMEDRIVER or install chromium-driver)");
    None
}

fn chromium_binary() -> Option<PathBuf> {
    match std::env::var_os("TOLLGATE_CHROMIUM").filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => Some(PathBuf::from(DEFAULT_CHROMIUM)).filter(|p| p.is_file()),
    }
}

/// A running chromedriver on a free localhost port. Dropping it kills chromedriver and every
/// browser it started (they share its process group).
pub struct ChromeDriver {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChromeDriver {
    /// Starts the chromedriver at `path` and waits until it reports ready.
    pub async fn start(path: &Path) -> Result<ChromeDriver> {
        let mut last = BrowserError::new("chromedriver did not start");
        // A port picked by binding port 0 can be taken by someone else before chromedriver
        // binds it; try a few times.
        for _ in 0..3 {
            match Self::try_start(path).await {
                Ok(d) => return Ok(d),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn try_start(path: &Path) -> Result<ChromeDriver> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("chromedriver.log");
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group, so dropping it can end the browsers it started too.
            .process_group(0)
            .spawn()
            .map_err(|e| BrowserError::new(format!("cannot run {}: {e}", path.display())))?;
        let mut driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        driver.wait_ready().await?;
        Ok(driver)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| BrowserError::new(e.to_string()))?;
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BrowserError::new(format!(
                    "chromedriver exited ({status}): {}",
                    self.log_text()
                )));
            }
            if let Ok(r) = http.get(format!("{}/status", self.url)).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"].as_bool() == Some(true) {
                        return Ok(());
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
        Err(BrowserError::new(format!(
            "chromedriver at {} was not ready within {WAIT:?}: {}",
            self.url,
            self.log_text()
        )))
    }

    /// What chromedriver printed so far (for error messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Opens a new headless Chromium with a fresh profile and a `width`×`height` window.
    pub async fn open(&self, width: u32, height: u32) -> Result<Browser> {
        Browser::open(self, width, height).await
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole process group (chromedriver and the browsers it launched), by its id.
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{pgid}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cookie as the browser holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserCookie {
    pub name: String,
    pub value: String,
    pub http_only: bool,
    pub secure: bool,
    /// `Strict`, `Lax`, `None`, or empty when the browser did not say.
    pub same_site: String,
}

/// One headless Chromium session with its own fresh profile directory.
pub struct Browser {
    client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Opens a session on `driver`: headless Chromium, a fresh `--user-data-dir`, and a window
    /// whose viewport is `width`×`height` CSS pixels.
    pub async fn open(driver: &ChromeDriver, width: u32, height: u32) -> Result<Browser> {
        let profile = tempfile::tempdir()?;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={width},{height}"));
        let mut chrome = json!({"args": args});
        if let Some(bin) = chromium_binary() {
            chrome["binary"] = json!(bin.display().to_string());
        }
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("pageLoadStrategy".into(), json!("normal"));
        caps.insert("goog:chromeOptions".into(), chrome);
        // Console messages and CSP violations, for `console_log`.
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .map_err(|e| {
                BrowserError::new(format!(
                    "could not open a headless Chromium session: {e}\nchromedriver log:\n{}",
                    driver.log_text()
                ))
            })?;
        let b = Browser {
            client,
            _profile: profile,
        };
        b.set_viewport(width, height).await?;
        Ok(b)
    }

    /// The underlying WebDriver client, for anything not wrapped here.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Makes the viewport (`window.innerWidth`×`innerHeight`) exactly `width`×`height`.
    pub async fn set_viewport(&self, width: u32, height: u32) -> Result<()> {
        // The window size includes whatever frame the browser draws (none when headless, but
        // don't rely on it): measure, and correct the window by the difference.
        let (mut ww, mut wh) = (i64::from(width), i64::from(height));
        let mut got = (0, 0);
        for _ in 0..3 {
            let (w, h) = (
                u32::try_from(ww.max(1)).unwrap_or(width),
                u32::try_from(wh.max(1)).unwrap_or(height),
            );
            self.client.set_window_size(w, h).await?;
            got = self.settled_viewport().await?;
            if got == (i64::from(width), i64::from(height)) {
                return Ok(());
            }
            ww += i64::from(width) - got.0;
            wh += i64::from(height) - got.1;
        }
        Err(BrowserError::new(format!(
            "the viewport is {}x{}, not {width}x{height}",
            got.0, got.1
        )))
    }

    /// The viewport size once a resize has taken effect (two equal readings in a row).
    async fn settled_viewport(&self) -> Result<(i64, i64)> {
        let read = || async {
            let v = self
                .execute("return [window.innerWidth, window.innerHeight];", vec![])
                .await?;
            Ok::<_, BrowserError>((v[0].as_i64().unwrap_or(0), v[1].as_i64().unwrap_or(0)))
        };
        let mut last = read().await?;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let now = read().await?;
            if now == last {
                return Ok(now);
            }
            last = now;
        }
        Ok(last)
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        Ok(self.client.goto(url).await?)
    }

    /// The current URL.
    pub async fn url(&self) -> Result<String> {
        Ok(self.client.current_url().await?.to_string())
    }

    /// The current URL's path (no query).
    pub async fn path(&self) -> Result<String> {
        Ok(self.client.current_url().await?.path().to_string())
    }

    /// The page title.
    pub async fn title(&self) -> Result<String> {
        Ok(self.client.title().await?)
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Result<Element> {
        self.client
            .find(Locator::Css(css))
            .await
            .map_err(|e| BrowserError::new(format!("no element matches `{css}`: {e}")))
    }

    /// Every element matching a CSS selector.
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        Ok(self.client.find_all(Locator::Css(css)).await?)
    }

    /// How many elements match a CSS selector.
    pub async fn count(&self, css: &str) -> Result<usize> {
        Ok(self.find_all(css).await?.len())
    }

    /// Whether any element matches a CSS selector.
    pub async fn exists(&self, css: &str) -> Result<bool> {
        Ok(self.count(css).await? > 0)
    }

    /// Replaces the content of the input matching `css` by typing `text` into it.
    pub async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let e = self.find(css).await?;
        e.clear().await?;
        e.send_keys(text).await?;
        Ok(())
    }

    /// Picks the option with this value in the `<select>` matching `css`.
    pub async fn select(&self, css: &str, value: &str) -> Result<()> {
        Ok(self.find(css).await?.select_by_value(value).await?)
    }

    /// Clicks the element matching `css` (no waiting for any navigation it causes).
    pub async fn click(&self, css: &str) -> Result<()> {
        Ok(self.find(css).await?.click().await?)
    }

    /// Clicks the element matching `css` and waits until the page it leads to has loaded.
    pub async fn click_and_wait(&self, css: &str) -> Result<()> {
        let e = self.find(css).await?;
        self.mark_page().await?;
        e.click().await?;
        self.wait_for_new_page().await
    }

    /// Runs `script` (which navigates, e.g. submits a form) and waits for the next page.
    pub async fn execute_and_wait(&self, script: &str, args: Vec<Value>) -> Result<()> {
        self.mark_page().await?;
        self.client.execute(script, args).await?;
        self.wait_for_new_page().await
    }

    async fn mark_page(&self) -> Result<()> {
        self.client
            .execute("window.__tollgateOldPage = true;", vec![])
            .await?;
        Ok(())
    }

    async fn wait_for_new_page(&self) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            // Mid-navigation, scripts may fail to run: just poll again.
            let done = self
                .client
                .execute(
                    "return !window.__tollgateOldPage && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if done {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let url = self.url().await.unwrap_or_default();
                return Err(BrowserError::new(format!(
                    "no new page loaded within {WAIT:?} (still at {url})"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until an element matches `css`, and returns it.
    pub async fn wait_for(&self, css: &str) -> Result<Element> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.find_all(css).await?.into_iter().next() {
                return Ok(e);
            }
            if Instant::now() >= deadline {
                return Err(BrowserError::new(format!(
                    "no element matched `{css}` within {WAIT:?} at {}",
                    self.url().await.unwrap_or_default()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the current URL's path is `path`.
    pub async fn wait_for_path(&self, path: &str) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.path().await?;
            if now == path {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BrowserError::new(format!(
                    "expected to arrive at {path} within {WAIT:?}, still at {}",
                    self.url().await.unwrap_or_default()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The rendered text of the element matching `css`.
    pub async fn text(&self, css: &str) -> Result<String> {
        Ok(self.find(css).await?.text().await?)
    }

    /// The rendered text of the whole page.
    pub async fn page_text(&self) -> Result<String> {
        let v = self
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The current `value` of the input matching `css`.
    pub async fn value(&self, css: &str) -> Result<String> {
        Ok(self
            .find(css)
            .await?
            .prop("value")
            .await?
            .unwrap_or_default())
    }

    /// An attribute of the element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Result<Option<String>> {
        Ok(self.find(css).await?.attr(name).await?)
    }

    /// Runs JavaScript in the page (`arguments[i]` are `args`) and returns what it returns.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    /// The HTTP status of the response that produced the current page (0 if unknown).
    pub async fn status(&self) -> Result<u16> {
        let v = self
            .execute(
                "const n = performance.getEntriesByType('navigation')[0]; return n ? (n.responseStatus || 0) : 0;",
                vec![],
            )
            .await?;
        Ok(v.as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(0))
    }

    /// The cookies the browser holds for the current page, HttpOnly ones included.
    pub async fn cookies(&self) -> Result<Vec<BrowserCookie>> {
        let all = self.client.get_all_cookies().await?;
        Ok(all
            .into_iter()
            .map(|c| BrowserCookie {
                name: c.name().to_string(),
                value: c.value().to_string(),
                http_only: c.http_only().unwrap_or(false),
                secure: c.secure().unwrap_or(false),
                same_site: c.same_site().map(|s| s.to_string()).unwrap_or_default(),
            })
            .collect())
    }

    /// The cookie with this name for the current page, if the browser holds one.
    pub async fn cookie(&self, name: &str) -> Result<Option<BrowserCookie>> {
        Ok(self.cookies().await?.into_iter().find(|c| c.name == name))
    }

    /// Writes a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let png = self.client.screenshot().await?;
        write_png(path, &png)
    }

    /// Writes a PNG of the whole page to `path`: the viewport is stretched to the document's
    /// height for the shot (so `100vh` layouts fill it, as a tall window would), then restored.
    pub async fn screenshot_full_page(&self, path: &Path) -> Result<()> {
        let size = self
            .execute(
                "const d = document.documentElement; return [window.innerWidth, window.innerHeight, Math.max(d.scrollHeight, document.body ? document.body.scrollHeight : 0)];",
                vec![],
            )
            .await?;
        let (Some(width), Some(height), Some(full)) =
            (size[0].as_u64(), size[1].as_u64(), size[2].as_u64())
        else {
            return Err(BrowserError::new(format!(
                "cannot measure the page: {size}"
            )));
        };
        let as_u32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let tall = full.min(MAX_SHOT_HEIGHT) > height;
        if tall {
            self.set_viewport(as_u32(width), as_u32(full.min(MAX_SHOT_HEIGHT)))
                .await?;
        }
        let shot = self.client.screenshot().await;
        if tall {
            self.set_viewport(as_u32(width), as_u32(height)).await?;
        }
        write_png(path, &shot?)
    }

    /// The browser console's messages since the last call (errors, CSP violations, logs).
    pub async fn console_log(&self) -> Result<Vec<String>> {
        let v = self
            .client
            .issue_cmd(SessionPost {
                path: "se/log",
                body: json!({"type": "browser"}),
            })
            .await?;
        Ok(v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or_default(),
                            e["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Ends the session (closing the browser).
    pub async fn close(self) -> Result<()> {
        Ok(self.client.close().await?)
    }
}

fn write_png(path: &Path, png: &[u8]) -> Result<()> {
    if !png.starts_with(b"\x89PNG") {
        return Err(BrowserError::new("the screenshot is not a PNG"));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, png)?;
    Ok(())
}

/// A chromedriver-specific POST under the session (`/session/{id}/<path>`).
#[derive(Debug)]
struct SessionPost {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for SessionPost {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}
