//! A headless Chromium for the portal's browser tests, driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`): just the commands the tests use, each a plain HTTP call
//! to chromedriver, and failures that show what the page held.
//!
//! [`programs`] finds both programs. Without them a test is skipped outside CI, but fails
//! under `CI=true` (`.ci/run` installs them), so a browser test cannot pass unseen. A
//! [`Driver`] runs chromedriver in a process group of its own, killed with the Chromium it
//! started when dropped, so a failing test leaves no browser behind. Screenshots go to
//! [`screenshots_dir`] (`<target>/screenshots/`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The WebDriver element key (W3C).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a page may take to arrive, or a script's condition to come true.
const PAGE_DEADLINE: Duration = Duration::from_secs(20);

/// chromedriver and the Chromium it drives.
#[derive(Debug, Clone)]
pub struct Programs {
    /// `chromedriver`.
    pub chromedriver: PathBuf,
    /// `chromium` (or `chromium-browser`, `google-chrome`).
    pub chromium: PathBuf,
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// chromedriver and Chromium, or `None` (the caller skips its test, saying so) when they are
/// missing outside CI. Under `CI=true` their absence fails the test.
pub fn programs() -> Option<Programs> {
    let (Some(chromedriver), Some(chromium)) = (
        find_program(&["chromedriver"]),
        find_program(&["chromium", "chromium-browser", "google-chrome"]),
    ) else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the browser tests: install chromium and chromium-driver"
        );
        eprintln!("SKIPPED: no chromium/chromedriver (apt-get install chromium chromium-driver)");
        return None;
    };
    Some(Programs {
        chromedriver,
        chromium,
    })
}

/// Where screenshots are saved: `screenshots/` in the build's target directory.
pub fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("screenshots")
}

/// A free loopback port (bound and released: another process may take it in between, which
/// the start-up of whoever is given it then reports).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A chromedriver process in a process group of its own, with the Chromium it starts: the
/// whole group is killed when dropped.
pub struct Driver {
    child: Child,
    base: String,
    chromium: PathBuf,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it answers.
    pub async fn start(programs: &Programs) -> Driver {
        use std::os::unix::process::CommandExt as _;
        let port = free_port();
        let child = Command::new(&programs.chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            chromium: programs.chromium.clone(),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    /// One WebDriver command; its `value`. A failed command fails the test with the reply.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let r = req.send().await.expect("chromedriver answers");
        let status = r.status();
        let bytes = r.bytes().await.expect("chromedriver's reply");
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(status.is_success(), "WebDriver {path}: {status} {v}");
        v["value"].clone()
    }
}

/// A cookie as WebDriver shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// `HttpOnly`.
    pub http_only: bool,
    /// `SameSite` (`Strict`, `Lax`, `None`).
    pub same_site: String,
}

/// One browser session (a fresh profile: no cookies).
pub struct Browser<'d> {
    driver: &'d Driver,
    id: String,
}

impl<'d> Browser<'d> {
    /// A new headless window of 1200×900 that may play audio without a user's gesture.
    pub async fn open(driver: &'d Driver) -> Browser<'d> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": driver.chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1200,900",
                         "--autoplay-policy=no-user-gesture-required"]
            }
        }}});
        let v = driver
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await;
        let id = v["sessionId"].as_str().expect("a session id").to_owned();
        Browser { driver, id }
    }

    /// `POST /session/{id}{path}`.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}{path}", self.id),
                Some(body),
            )
            .await
    }

    /// `GET /session/{id}{path}`.
    pub async fn get(&self, path: &str) -> Value {
        self.driver
            .call(
                reqwest::Method::GET,
                &format!("/session/{}{path}", self.id),
                None,
            )
            .await
    }

    /// Navigate to `url` (WebDriver waits until the page has loaded).
    pub async fn go(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    /// The first element matching `css`; fails the test if there is none.
    pub async fn element(&self, css: &str) -> String {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        v[ELEMENT].as_str().expect("an element").to_owned()
    }

    /// Sign in to the portal at `base` through its form as `account` with `password`, and
    /// wait to land on the recordings.
    pub async fn sign_in(&self, base: &str, account: &str, password: &str) {
        self.go(&format!("{base}/signin")).await;
        self.type_into("#account", account).await;
        self.type_into("#password", password).await;
        self.click("form.signin button").await;
        self.wait_for_url("/recordings").await;
    }

    /// Type `text` into the element matching `css` (after what it holds).
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.post(&format!("/element/{e}/value"), json!({"text": text}))
            .await;
    }

    /// Empty the field matching `css`.
    pub async fn clear(&self, css: &str) {
        let e = self.element(css).await;
        self.post(&format!("/element/{e}/clear"), json!({})).await;
    }

    /// Click the element matching `css`.
    pub async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.post(&format!("/element/{e}/click"), json!({})).await;
    }

    /// Click the element matching `css` and wait until another page has replaced this one,
    /// for a form whose reply comes back to the same address (a refused sign-in, a note added
    /// and redirected back), where [`Browser::wait_for_url`] cannot tell.
    pub async fn click_for_new_page(&self, css: &str) {
        self.script("document.documentElement.dataset.replaced = 'not yet'; return null;")
            .await;
        self.click(css).await;
        self.wait_until(
            "a new page",
            "return document.readyState === 'complete' \
             && document.documentElement.dataset.replaced === undefined",
        )
        .await;
    }

    /// The page's address.
    pub async fn url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Wait until the page's URL holds `part` (a click's navigation may still be under way
    /// when the click returns); fail with the page at the deadline.
    pub async fn wait_for_url(&self, part: &str) {
        let deadline = Instant::now() + PAGE_DEADLINE;
        loop {
            let url = self.url().await;
            if url.contains(part) {
                return;
            }
            if Instant::now() > deadline {
                panic!("still at {url}, not at …{part}…: {}", self.source().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until `script` (a function body) returns `true`; fail with the page at the
    /// deadline, saying what was waited for.
    pub async fn wait_until(&self, what: &str, script: &str) {
        self.wait_until_within(what, script, PAGE_DEADLINE).await;
    }

    /// [`Browser::wait_until`] with a time limit of `limit` (for what takes its own time: a
    /// call that ends when its script says).
    pub async fn wait_until_within(&self, what: &str, script: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.script(script).await == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited in vain for {what} at {}: {}",
                    self.url().await,
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's HTML.
    pub async fn source(&self) -> String {
        self.get("/source")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The text of the first element matching `css`, or `None` when there is none.
    pub async fn text(&self, css: &str) -> Option<String> {
        let v = self
            .post(
                "/execute/sync",
                json!({"script": "const e = document.querySelector(arguments[0]); \
                                  return e ? e.textContent : null;",
                       "args": [css]}),
            )
            .await;
        v.as_str().map(str::to_owned)
    }

    /// Run `script` (a function body) in the page; what it returns.
    pub async fn script(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Run `script` (a function body) in the page with `args`; it ends by calling its last
    /// argument with the result (a promise's, say). What it passed.
    pub async fn script_async(&self, script: &str, args: Value) -> Value {
        self.post("/execute/async", json!({"script": script, "args": args}))
            .await
    }

    /// Every cookie the browser holds for the page's site, `HttpOnly` ones included.
    pub async fn cookies(&self) -> Vec<Cookie> {
        let v = self.get("/cookie").await;
        v.as_array()
            .expect("a list of cookies")
            .iter()
            .map(|c| Cookie {
                name: c["name"].as_str().unwrap_or_default().to_owned(),
                value: c["value"].as_str().unwrap_or_default().to_owned(),
                http_only: c["httpOnly"].as_bool().unwrap_or(false),
                same_site: c["sameSite"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// The cookie `name`, if the browser holds it.
    pub async fn cookie(&self, name: &str) -> Option<Cookie> {
        self.cookies().await.into_iter().find(|c| c.name == name)
    }

    /// Give the browser `cookie` for the page's site (path `/`), as if the site had set it.
    pub async fn add_cookie(&self, cookie: &Cookie) {
        self.post(
            "/cookie",
            json!({"cookie": {
                "name": cookie.name, "value": cookie.value, "path": "/",
                "httpOnly": cookie.http_only, "sameSite": cookie.same_site
            }}),
        )
        .await;
    }

    /// Save the window as `<screenshots_dir>/<name>.png`; its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64 PNG"))
            .expect("valid base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("the screenshots directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is written");
        path
    }

    /// Resize the window (a phone's width, say).
    pub async fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// End the session (its window closes).
    pub async fn close(self) {
        self.driver
            .call(
                reqwest::Method::DELETE,
                &format!("/session/{}", self.id),
                None,
            )
            .await;
    }
}

/// Fetch `url` from inside the page (with the page's cookies, as a link the user clicks
/// would) and return its status, `Content-Type`, `Content-Disposition`, the SHA-256 the page
/// computed of the body (`crypto.subtle`), and the body itself (across WebDriver as base64).
pub async fn fetch_in_page(browser: &Browser<'_>, url: &str) -> Fetched {
    let v = browser
        .script_async(
            "const [url, done] = arguments;
             fetch(url, {credentials: 'same-origin'})
               .then(async r => {
                 const blob = await r.blob();
                 const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
                 const sha256 = Array.from(new Uint8Array(digest))
                   .map(b => b.toString(16).padStart(2, '0')).join('');
                 const data = await new Promise((ok, fail) => {
                   const reader = new FileReader();
                   reader.onload = () => ok(reader.result);
                   reader.onerror = () => fail(reader.error);
                   reader.readAsDataURL(blob);
                 });
                 done({status: r.status,
                       type: r.headers.get('content-type'),
                       disposition: r.headers.get('content-disposition'),
                       sha256,
                       base64: data.slice(data.indexOf(',') + 1)});
               })
               .catch(e => done({error: String(e)}));",
            json!([url]),
        )
        .await;
    assert!(v["error"].is_null(), "fetch {url} in the page: {v}");
    Fetched {
        status: v["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(0),
        content_type: v["type"].as_str().map(str::to_owned),
        disposition: v["disposition"].as_str().map(str::to_owned),
        sha256_in_page: v["sha256"].as_str().unwrap_or_default().to_owned(),
        body: base64::engine::general_purpose::STANDARD
            .decode(v["base64"].as_str().unwrap_or_default())
            .expect("the page sent valid base64"),
    }
}

/// What [`fetch_in_page`] got.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Disposition`.
    pub disposition: Option<String>,
    /// The body's SHA-256 (lower-case hex) as the page's `crypto.subtle` computed it.
    pub sha256_in_page: String,
    /// The body.
    pub body: Vec<u8>,
}
