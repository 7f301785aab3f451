//! The portal in a real headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`): a user signs in through the form, finds their recording, opens it, the
//! `<audio>` element loads the file with the session cookie; then an admin reads the audit
//! log and the archive clients; each page is saved as a screenshot under
//! `<target>/screenshots/`.
//!
//! Without `chromedriver` on the machine the test says so and passes only outside CI; CI
//! (`CI=true`, `.ci/run` installs both packages) fails instead, so it cannot pass unseen.

mod support;

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use support::{World, t0};

const PASSWORD: &str = "correct horse battery";
/// The WebDriver element key (W3C).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("screenshots")
}

/// A chromedriver process in a process group of its own, with the Chromium it starts:
/// the whole group is killed when dropped, so a failing test leaves no browser behind.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        let pid = i32::try_from(self.child.id()).expect("a pid fits an i32");
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(program: PathBuf) -> Driver {
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        use std::os::unix::process::CommandExt as _;
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
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

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let r = req.send().await.expect("chromedriver answers");
        let status = r.status();
        let bytes = r.bytes().await.unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(status.is_success(), "WebDriver {path}: {status} {v}");
        v["value"].clone()
    }
}

/// One browser session.
struct Browser<'d> {
    driver: &'d Driver,
    id: String,
}

impl<'d> Browser<'d> {
    async fn open(driver: &'d Driver, chromium: &std::path::Path) -> Browser<'d> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
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

    async fn post(&self, path: &str, body: Value) -> Value {
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}{path}", self.id),
                Some(body),
            )
            .await
    }

    async fn get(&self, path: &str) -> Value {
        self.driver
            .call(
                reqwest::Method::GET,
                &format!("/session/{}{path}", self.id),
                None,
            )
            .await
    }

    async fn go(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        v[ELEMENT].as_str().expect("an element").to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.post(&format!("/element/{e}/value"), json!({"text": text}))
            .await;
    }

    async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.post(&format!("/element/{e}/click"), json!({})).await;
    }

    async fn url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Wait until the page's URL holds `part` (a click's navigation may still be under way
    /// when the click returns); fail with the page at the deadline.
    async fn wait_for_url(&self, part: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
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

    async fn source(&self) -> String {
        self.get("/source")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn script(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64 PNG"))
            .expect("valid base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    async fn close(self) {
        self.driver
            .call(
                reqwest::Method::DELETE,
                &format!("/session/{}", self.id),
                None,
            )
            .await;
    }
}

/// Wait until the page's audio knows its length, and check it.
async fn wait_for_duration(browser: &Browser<'_>, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = browser
            .script(
                "const a = document.querySelector('audio'); \
                 return a.readyState >= 1 ? a.duration : null;",
            )
            .await;
        if let Some(d) = v.as_f64() {
            assert!((d - want).abs() < 0.05, "duration {d}, not {want}");
            return;
        }
        assert!(Instant::now() < deadline, "the audio never loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until the audio's position is `want` seconds (a seek settles asynchronously).
async fn wait_for_time(browser: &Browser<'_>, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = browser
            .script("return document.querySelector('audio').currentTime")
            .await;
        let t = v.as_f64().unwrap_or(-1.0);
        if (t - want).abs() < 0.05 {
            return;
        }
        assert!(Instant::now() < deadline, "position {t}, not {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// chromedriver and Chromium, or `None` (and the test is skipped) outside CI without them.
fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let (Some(chromedriver), Some(chromium)) = (
        find_program(&["chromedriver"]),
        find_program(&["chromium", "chromium-browser", "google-chrome"]),
    ) else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the browser test: install chromium and chromium-driver"
        );
        eprintln!("SKIPPED: no chromium/chromedriver (apt-get install chromium chromium-driver)");
        return None;
    };
    Some((chromedriver, chromium))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_in_chromium_opens_a_recording_and_its_audio_loads() {
    let Some((chromedriver, chromium)) = browser_programs() else {
        return;
    };

    let mut w = World::new();
    let (site, ext) = (w.alice.user.site.clone(), w.alice.user.extension.clone());
    w.store
        .write_blocking(|s| s.set_password(&site, &ext, PASSWORD, "test"))
        .unwrap();
    let alice = w.alice.user.clone();
    let (older, _) = w.record(&alice, "1001", "02079460123", t0(), 2_000);
    let (rec, _) = w.record(
        &alice,
        "01234567890",
        "1001",
        t0() + chrono::Duration::minutes(5),
        3_000,
    );
    let note = "<script>alert('not run')</script> customer called back";
    let (id, access) = (rec.id.clone(), callrec_store::Access::system("test"));
    w.store
        .write(move |s| s.add_note(&id, &access, note))
        .await
        .unwrap();

    let paused = w.record_segments(
        &alice,
        t0() + chrono::Duration::minutes(10),
        30_000,
        &[
            (callrec_model::SegmentKind::Pause, 8_000),
            (callrec_model::SegmentKind::Resume, 15_000),
        ],
    );
    w.live_call(
        &alice,
        "call-live",
        callrec_model::RecordingMode::AlwaysPausable,
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(callrec_api::serve(listener, w.state.clone(), async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");

    let driver = Driver::start(chromedriver).await;
    let browser = Browser::open(&driver, &chromium).await;

    browser.go(&format!("{base}/")).await;
    browser.wait_for_url("/signin").await;
    browser.type_into("#account", "1001").await;
    browser.type_into("#password", PASSWORD).await;
    browser.screenshot("signin").await;
    browser.click("form.signin button").await;
    browser.wait_for_url("/recordings").await;
    assert!(
        browser.url().await.ends_with("/recordings"),
        "{}",
        browser.url().await
    );
    let list = browser.source().await;
    assert!(list.contains(&rec.id.to_string()) && list.contains(&older.id.to_string()));
    browser.screenshot("recordings").await;

    // Search by the number in another form than it was stored in.
    browser.type_into("#q", "+44 1234 567890").await;
    browser.click("form.search button").await;
    browser.wait_for_url("q=%2B44+1234+567890").await;
    let found = browser.source().await;
    assert!(found.contains(&rec.id.to_string()), "{found}");
    assert!(!found.contains(&older.id.to_string()));

    browser
        .click(&format!("a[href='/recordings/{}']", rec.id))
        .await;
    assert!(
        browser
            .url()
            .await
            .ends_with(&format!("/recordings/{}", rec.id))
    );
    // The note is text on the page, and the script in it never ran.
    let shown = browser
        .script("return document.querySelector('.note-text').textContent")
        .await;
    assert_eq!(shown.as_str(), Some(note));
    // The only script on the page is the player's own file.
    assert_eq!(
        browser
            .script(
                "return Array.from(document.querySelectorAll('script')).map(s => s.getAttribute('src'))"
            )
            .await,
        json!(["/assets/player.js"])
    );
    // The player loads the file's header (a Range request with the session cookie) and
    // knows its length: 3 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    let duration = loop {
        let v = browser
            .script(
                "const a = document.querySelector('audio'); \
                 return a.readyState >= 1 ? a.duration : null;",
            )
            .await;
        if let Some(d) = v.as_f64() {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the audio never loaded its metadata"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!((duration - 3.0).abs() < 0.05, "duration {duration}");
    let shot = browser.screenshot("recording").await;
    eprintln!("screenshots: {}", shot.parent().unwrap().display());

    // A 30 s recording paused from 8 s to 15 s: the timeline marks it, and the player's
    // buttons seek by 10 s and set the speed.
    browser
        .go(&format!("{base}/recordings/{}", paused.id))
        .await;
    wait_for_duration(&browser, 30.0).await;
    assert_eq!(
        browser
            .script("return document.getElementById('player-controls').hidden")
            .await,
        json!(false),
        "the script shows its buttons"
    );
    browser.click("#fwd10").await;
    browser.click("#fwd10").await;
    wait_for_time(&browser, 20.0).await;
    browser.click("#back10").await;
    wait_for_time(&browser, 10.0).await;
    browser.click("#back10").await;
    browser.click("#back10").await;
    wait_for_time(&browser, 0.0).await;
    browser
        .script(
            "const s = document.getElementById('speed'); s.value = '1.5'; \
             s.dispatchEvent(new Event('change')); return null;",
        )
        .await;
    assert_eq!(
        browser
            .script("return document.querySelector('audio').playbackRate")
            .await,
        json!(1.5)
    );
    let paused_blocks = browser
        .script("return document.querySelectorAll('.timeline rect.paused').length")
        .await;
    assert_eq!(paused_blocks, json!(1));
    browser.screenshot("recording-timeline").await;

    // Calls in progress: her live call, paused from the page.
    browser.go(&format!("{base}/calls")).await;
    assert!(browser.source().await.contains("02079461234"));
    browser.screenshot("calls").await;
    browser
        .click("form[action='/calls/call-live/pause'] button")
        .await;
    browser.wait_for_url("done=pause").await;
    assert!(browser.source().await.contains("Recording paused."));
    browser.screenshot("calls-paused").await;
    // Resumed elsewhere (the handset's *49): the open page shows it from the server's
    // events, without reloading.
    use callrec_model::LiveCalls as _;
    w.daemon
        .recording_action(callrec_model::ActionRequest {
            call_uuid: "call-live".into(),
            action: callrec_model::RecordingAction::Resume,
            actor: "1001@default".into(),
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser.source().await.contains("/calls/call-live/pause") {
        assert!(
            Instant::now() < deadline,
            "the list never updated: {}",
            browser.source().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(browser.url().await.contains("done=pause"), "no reload");

    browser.go(&format!("{base}/settings")).await;
    assert!(browser.source().await.contains("Always with Pause/Resume"));
    browser.screenshot("settings").await;

    browser.click("form.signout button").await;
    browser.wait_for_url("/signin").await;
    browser.go(&format!("{base}/recordings")).await;
    browser.wait_for_url("/signin").await;

    // The admin's audit log (alice's visit above is in it, filtered by her extension) and
    // the archive clients with a run one of them reported.
    let (site, ext) = (w.admin.user.site.clone(), w.admin.user.extension.clone());
    w.store
        .write_blocking(|s| s.set_password(&site, &ext, PASSWORD, "test"))
        .unwrap();
    let run = json!({
        "client": "nas-office", "started_at": "2024-05-01T10:00:00Z",
        "finished_at": "2024-05-01T10:02:10Z", "downloaded": 42, "skipped": 3, "failed": 1,
        "bytes": 7_340_032, "last_seq": 318,
        "errors": ["0193a1c2-…: SHA-256 mismatch after download; kept as .part"]
    });
    let (s, _) = w
        .json(w.req(&w.admin, "POST", "/api/v1/archive/runs").json(&run))
        .await;
    assert_eq!(s, 201);
    browser.type_into("#account", "9000@default").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("form.signin button").await;
    browser.wait_for_url("/recordings").await;
    browser.click("nav a[href='/audit']").await;
    browser.wait_for_url("/audit").await;
    assert!(browser.source().await.contains("signed in to the portal"));
    browser.type_into("#actor", "1001").await;
    browser.click("form.search button").await;
    browser.wait_for_url("actor=1001").await;
    let log = browser.source().await;
    assert!(log.contains(">1001@default</td>") && !log.contains(">9000@default</td>"));
    browser.screenshot("audit").await;
    browser.click("nav a[href='/archive']").await;
    browser.wait_for_url("/archive").await;
    assert!(browser.source().await.contains("nas-office"));
    browser.click("td.detail details summary").await;
    browser.screenshot("archive").await;
    browser.close().await;

    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_filters_the_sites_recordings_and_changes_a_user_and_the_site_in_chromium() {
    let Some((chromedriver, chromium)) = browser_programs() else {
        return;
    };
    let mut w = World::new();
    let (site, ext) = (w.admin.user.site.clone(), w.admin.user.extension.clone());
    w.store
        .write_blocking(|s| s.set_password(&site, &ext, PASSWORD, "test"))
        .unwrap();
    let (alice, bob) = (w.alice.user.clone(), w.bob.user.clone());
    use callrec_model::Direction;
    let minute = chrono::Duration::minutes(1);
    let inbound = w.record_dir(
        &alice,
        "01632960100",
        "1001",
        t0(),
        4_000,
        Direction::Inbound,
    );
    let outbound = w.record_dir(
        &alice,
        "1001",
        "02079460123",
        t0() + minute,
        2_000,
        Direction::Outbound,
    );
    let bobs = w.record_dir(
        &bob,
        "01632960100",
        "1002",
        t0() + minute * 2,
        3_000,
        Direction::Inbound,
    );
    let (id, access) = (inbound.id.clone(), callrec_store::Access::system("test"));
    w.store
        .write(move |s| s.add_note(&id, &access, "asked for a call back"))
        .await
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(callrec_api::serve(listener, w.state.clone(), async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    let driver = Driver::start(chromedriver).await;
    let browser = Browser::open(&driver, &chromium).await;

    browser.go(&format!("{base}/signin")).await;
    browser.type_into("#account", "9000@default").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("form.signin button").await;
    browser.wait_for_url("/recordings").await;

    // The filter panel: closed until opened, then filled in and applied.
    assert_eq!(
        browser
            .script("return document.querySelector('details.filters').open")
            .await,
        json!(false)
    );
    browser.click("details.filters summary").await;
    browser.type_into("#user", "1001").await;
    browser
        .script(
            "const d = document.getElementById('direction'); d.value = 'inbound'; \
             document.getElementById('has_notes').value = 'true'; return null;",
        )
        .await;
    browser.type_into("#min_duration", "1").await;
    browser.click("details.filters button[type=submit]").await;
    browser.wait_for_url("direction=inbound").await;
    let found = browser.source().await;
    assert!(found.contains(&inbound.id.to_string()), "{found}");
    assert!(!found.contains(&outbound.id.to_string()) && !found.contains(&bobs.id.to_string()));
    assert_eq!(
        browser
            .script("return document.querySelector('details.filters').open")
            .await,
        json!(true),
        "the panel shows the filters in use"
    );
    let url = browser.url().await;
    for part in [
        "user=1001",
        "direction=inbound",
        "min_duration=1",
        "has_notes=true",
    ] {
        assert!(url.contains(part), "{part} in {url}");
    }
    browser.screenshot("recordings-filters").await;
    // At phone width the panel's fields stack and the page does not scroll sideways.
    browser
        .post("/window/rect", json!({"width": 390, "height": 844}))
        .await;
    let wide = browser
        .script("return document.documentElement.scrollWidth > window.innerWidth + 1")
        .await;
    assert_eq!(
        wide,
        json!(false),
        "no sideways scrolling of the page at 390 px (a wide table scrolls in its own box)"
    );
    browser.screenshot("recordings-filters-phone").await;
    browser
        .post("/window/rect", json!({"width": 1200, "height": 900}))
        .await;

    // A user's page: make alice an admin through the form.
    browser.go(&format!("{base}/users")).await;
    browser.click("a[href='/users/1001']").await;
    browser.wait_for_url("/users/1001").await;
    browser
        .script("document.getElementById('role').value = 'admin'; return null;")
        .await;
    browser.click("form[action='/users/1001'] button").await;
    browser.wait_for_url("done=saved").await;
    assert!(browser.source().await.contains("Saved."));
    let role = w
        .store
        .read(|v| v.user("default", "1001"))
        .await
        .unwrap()
        .role;
    assert_eq!(role, callrec_model::Role::Admin);
    browser.screenshot("user").await;

    // The site's settings: thirty days' retention.
    browser.go(&format!("{base}/site")).await;
    let e = browser.element("#retention_days").await;
    browser
        .post(&format!("/element/{e}/clear"), json!({}))
        .await;
    browser.type_into("#retention_days", "30").await;
    browser
        .click("form[action='/site'] button[type=submit]")
        .await;
    browser.wait_for_url("done=saved").await;
    let days = w
        .store
        .read(|v| Ok(v.site("default")?.settings.retention_days))
        .await
        .unwrap();
    assert_eq!(days, 30);
    browser.screenshot("site").await;
    browser.close().await;

    let _ = stop.send(());
    server.await.unwrap();
}
