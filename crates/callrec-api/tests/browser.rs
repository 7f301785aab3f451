//! The portal in a real headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, through `callrec_testkit::browser`): a user signs in through the form,
//! finds their recording, opens it, the `<audio>` element loads the file with the session
//! cookie and plays it to its end, downloads it and the search's ZIP (hashes checked), adds a
//! note and changes their mode; the sign-in is throttled after five wrong passwords; a
//! session ends when idle, too old or signed out; an admin reads the audit log and the
//! archive clients. Each page is saved as a screenshot under `<target>/screenshots/`.
//!
//! Without `chromedriver` on the machine the tests say so and pass only outside CI; CI
//! (`CI=true`, `.ci/run` installs both packages) fails instead, so they cannot pass unseen.
//! (A live call from the simulated switch, paused and resumed in the browser, is in
//! `crates/callrec/tests/portal_live_call.rs`: it runs the real `callrec serve`.)

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use callrec_testkit::browser::{self, Browser, Driver, fetch_in_page};
use serde_json::json;
use support::portal::{PASSWORD, set_password};
use support::{World, t0};

/// Sign in through the form as `account` (with [`PASSWORD`]) and land on the recordings.
async fn sign_in(browser: &Browser<'_>, base: &str, account: &str) {
    browser.sign_in(base, account, PASSWORD).await;
}

/// The SHA-256 of `bytes`, in lower-case hex.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_in_chromium_opens_a_recording_and_its_audio_loads() {
    let Some(programs) = browser::programs() else {
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

    let driver = Driver::start(&programs).await;
    let browser = Browser::open(&driver).await;

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
    let Some(programs) = browser::programs() else {
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
    let driver = Driver::start(&programs).await;
    let browser = Browser::open(&driver).await;

    sign_in(&browser, &base, "9000@default").await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_changes_her_recording_mode_and_adds_a_note_in_chromium() {
    let Some(programs) = browser::programs() else {
        return;
    };
    let mut w = World::new();
    set_password(&w, &w.alice);
    let alice = w.alice.user.clone();
    let (rec, _) = w.record(&alice, "01234567890", "1001", t0(), 3_000);
    let server = support::start(&w).await;
    let base = format!("http://{}", server.addr);
    let driver = Driver::start(&programs).await;
    let browser = Browser::open(&driver).await;
    sign_in(&browser, &base, "1001").await;

    // Voice recording: from the site's default, Always with Pause/Resume, to Always.
    let checked = "return document.querySelector('input[name=mode]:checked').value";
    browser.click("nav a[href='/settings']").await;
    browser.wait_for_url("/settings").await;
    assert_eq!(browser.script(checked).await, json!("always_pausable"));
    browser.click("#mode-always").await;
    browser.click("form[action='/settings/mode'] button").await;
    browser.wait_for_url("/settings?saved=1").await;
    assert_eq!(browser.text("p.ok").await.as_deref(), Some("Saved."));
    assert_eq!(browser.script(checked).await, json!("always"));
    let stored = w.store.read(|v| v.user("default", "1001")).await.unwrap();
    assert_eq!(stored.mode, callrec_model::RecordingMode::Always);
    let (status, me) = w.json(w.req(&w.alice, "GET", "/api/v1/me")).await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["mode"], "always", "{me}");
    browser.screenshot("settings-saved").await;

    // A note through the recording's form: back on the page, shown as the text typed (its
    // markup not made into elements), and in the store under her name.
    let note = "Called back at 14:05: wants the <b>refund</b> & a \"receipt\"";
    browser.go(&format!("{base}/recordings/{}", rec.id)).await;
    assert_eq!(browser.text(".notes").await, None, "no notes yet");
    browser.type_into("#text", note).await;
    browser
        .click_for_new_page(&format!(
            "form[action='/recordings/{}/notes'] button",
            rec.id
        ))
        .await;
    assert!(
        browser
            .url()
            .await
            .ends_with(&format!("/recordings/{}", rec.id)),
        "{}",
        browser.url().await
    );
    assert_eq!(
        browser.text(".notes .note-text").await.as_deref(),
        Some(note)
    );
    let by = browser.text(".notes .hint").await.unwrap_or_default();
    assert!(by.starts_with("1001@default, "), "{by}");
    assert_eq!(
        browser
            .script("return document.querySelectorAll('.notes b').length")
            .await,
        json!(0)
    );
    let id = rec.id.clone();
    let detail = w
        .store
        .write(move |s| s.read_recording(&id, &callrec_store::Access::system("test")))
        .await
        .unwrap();
    let notes: Vec<_> = detail
        .notes
        .iter()
        .map(|n| (n.author.as_str(), n.text.as_str()))
        .collect();
    assert_eq!(notes, [("1001@default", note)]);
    browser
        .script("document.querySelector('.notes').scrollIntoView({block: 'center'}); return null;")
        .await;
    browser.screenshot("recording-note").await;
    browser.close().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_plays_to_its_end_and_downloads_alone_and_in_a_zip_with_its_hashes_in_chromium()
{
    let Some(programs) = browser::programs() else {
        return;
    };
    let mut w = World::new();
    set_password(&w, &w.alice);
    let (alice, bob) = (w.alice.user.clone(), w.bob.user.clone());
    let (short, short_bytes) = w.record(&alice, "01234567890", "1001", t0(), 2_000);
    let (other, other_bytes) = w.record(
        &alice,
        "1001",
        "02079460123",
        t0() + chrono::Duration::minutes(5),
        1_000,
    );
    let (bobs, _) = w.record(&bob, "1002", "01234567890", t0(), 1_000);
    let server = support::start(&w).await;
    let base = format!("http://{}", server.addr);
    let driver = Driver::start(&programs).await;
    let browser = Browser::open(&driver).await;
    sign_in(&browser, &base, "1001").await;

    // Played from the start to its end: the element says it played the whole 2 s and fired
    // `playing` then `ended`.
    browser.go(&format!("{base}/recordings/{}", short.id)).await;
    wait_for_duration(&browser, 2.0).await;
    let started = browser
        .script_async(
            "const done = arguments[0];
             const a = document.querySelector('audio');
             window.heard = [];
             for (const e of ['playing', 'ended']) a.addEventListener(e, () => window.heard.push(e));
             a.play().then(() => done('playing'), e => done('refused: ' + e));",
            json!([]),
        )
        .await;
    assert_eq!(started, json!("playing"));
    browser
        .wait_until(
            "the audio to play to its end",
            "return document.querySelector('audio').ended",
        )
        .await;
    let played = browser
        .script(
            "const a = document.querySelector('audio');
             const ranges = [];
             for (let i = 0; i < a.played.length; i++) ranges.push([a.played.start(i), a.played.end(i)]);
             return {heard: window.heard, ranges, at: a.currentTime, paused: a.paused};",
        )
        .await;
    assert_eq!(played["heard"], json!(["playing", "ended"]), "{played}");
    assert_eq!(played["paused"], json!(true), "{played}");
    let ranges = played["ranges"].as_array().unwrap();
    assert_eq!(
        ranges.len(),
        1,
        "one stretch played, without a gap: {played}"
    );
    let (from, to) = (
        ranges[0][0].as_f64().unwrap(),
        ranges[0][1].as_f64().unwrap(),
    );
    assert!(from < 0.05 && (to - 2.0).abs() < 0.05, "{played}");
    assert!(
        (played["at"].as_f64().unwrap() - 2.0).abs() < 0.05,
        "{played}"
    );
    browser.screenshot("recording-played").await;

    // The page's download link, fetched by the page with its session: the file's bytes, whose
    // SHA-256 (computed in the page) is the one the store holds.
    let link = browser
        .script("return document.querySelector('a[download][href$=\"/audio?download=1\"]').href")
        .await;
    let file = fetch_in_page(&browser, link.as_str().expect("a download link")).await;
    assert_eq!(file.status, 200);
    let disposition = file.disposition.clone().unwrap_or_default();
    assert!(
        disposition.starts_with("attachment") && disposition.contains(&short.file_name),
        "{disposition}"
    );
    assert_eq!(Some(&file.sha256_in_page), short.sha256.as_ref());
    assert_eq!(file.sha256_in_page, sha256_hex(&short_bytes));
    assert!(file.body == short_bytes, "the download is the file's bytes");

    // The search's ZIP link (every recording of hers, none of bob's): each member's bytes hash
    // to the store's SHA-256, which the manifest lists with its path in the ZIP.
    browser.go(&format!("{base}/recordings")).await;
    let link = browser
        .script("return document.querySelector('a[href^=\"/recordings.zip\"]').href")
        .await;
    let zip = fetch_in_page(&browser, link.as_str().expect("a ZIP link")).await;
    assert_eq!(zip.status, 200);
    assert_eq!(zip.content_type.as_deref(), Some("application/zip"));
    assert!(
        zip.disposition
            .as_deref()
            .is_some_and(|d| d.starts_with("attachment")),
        "{:?}",
        zip.disposition
    );
    assert_eq!(zip.sha256_in_page, sha256_hex(&zip.body));
    let (entries, manifest) = support::read_with_python(&zip.body);
    let listed = manifest["recordings"].as_array().expect("a manifest");
    let mut ids: Vec<&str> = listed.iter().filter_map(|r| r["id"].as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![short.id.as_str(), other.id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want, "hers, not bob's {}", bobs.id);
    assert_eq!(
        entries.len(),
        3,
        "two recordings and the manifest: {entries:?}"
    );
    for (rec, bytes) in [(&short, &short_bytes), (&other, &other_bytes)] {
        let item = listed.iter().find(|r| r["id"] == rec.id.as_str()).unwrap();
        let path = item["zip_path"].as_str().expect("the member's path");
        let (size, sha) = &entries[path];
        assert_eq!(Some(sha), rec.sha256.as_ref(), "{path}");
        assert_eq!(*sha, sha256_hex(bytes), "{path}");
        assert_eq!(*size, bytes.len() as u64, "{path}");
        assert_eq!(item["sha256"].as_str(), rec.sha256.as_deref());
    }
    browser.close().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_throttle_the_sign_in_and_then_the_right_one_is_refused_in_chromium() {
    let Some(programs) = browser::programs() else {
        return;
    };
    let w = World::new();
    set_password(&w, &w.alice);
    let server = support::start(&w).await;
    let base = format!("http://{}", server.addr);
    let driver = Driver::start(&programs).await;
    let browser = Browser::open(&driver).await;
    browser.go(&format!("{base}/signin")).await;

    let attempt = |password: String| {
        let browser = &browser;
        async move {
            // A refused sign-in comes back with the account filled in.
            browser.clear("#account").await;
            browser.type_into("#account", "1001").await;
            browser.type_into("#password", &password).await;
            browser.click_for_new_page("form.signin button").await;
            browser
                .text("p.error[role=alert]")
                .await
                .unwrap_or_default()
        }
    };
    for i in 1..=5 {
        let said = attempt(format!("guessing, try {i}")).await;
        assert_eq!(said, "Wrong extension or password.", "attempt {i}");
    }
    let said = attempt(PASSWORD.to_owned()).await;
    assert!(
        said.starts_with("Too many failed sign-ins for this account or from this address."),
        "{said}"
    );
    assert!(browser.url().await.ends_with("/signin"));
    assert_eq!(browser.cookie("callrec_session").await, None);
    browser.screenshot("signin-throttled").await;
    browser.go(&format!("{base}/recordings")).await;
    browser.wait_for_url("/signin?next=%2Frecordings").await;

    let failures: Vec<String> = w
        .audit_since(0)
        .await
        .into_iter()
        .filter(|e| e.action == "session.signin_failed")
        .map(|e| e.detail)
        .collect();
    assert_eq!(failures.len(), 6, "{failures:?}");
    assert!(
        failures[5].contains("\"reason\":\"throttled\""),
        "{failures:?}"
    );
    browser.close().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_idle_or_too_old_and_signing_out_kills_its_cookie_in_chromium() {
    let Some(programs) = browser::programs() else {
        return;
    };
    // The store's clock moves when the test says: half an hour idle, two hours in all.
    let clock = callrec_model::ManualClock::new(chrono::Utc::now());
    let config = callrec_api::ApiConfig {
        portal: callrec_api::PortalConfig {
            policy: callrec_store::PortalPolicy {
                idle_timeout: chrono::TimeDelta::minutes(30),
                absolute_timeout: chrono::TimeDelta::hours(2),
                ..callrec_store::PortalPolicy::default()
            },
            ..callrec_api::PortalConfig::default()
        },
        ..callrec_api::ApiConfig::default()
    };
    let w = World::with_clock(config, Arc::new(clock.clone()));
    set_password(&w, &w.alice);
    let server = support::start(&w).await;
    let base = format!("http://{}", server.addr);
    let driver = Driver::start(&programs).await;
    let browser = Browser::open(&driver).await;

    // Idle: 31 minutes after its last page, the browser's cookie opens nothing.
    sign_in(&browser, &base, "1001").await;
    let first = browser.cookie("callrec_session").await.expect("a session");
    clock.advance(chrono::TimeDelta::minutes(31));
    browser.go(&format!("{base}/settings")).await;
    browser.wait_for_url("/signin?next=%2Fsettings").await;
    assert_eq!(
        browser.cookie("callrec_session").await.as_ref(),
        Some(&first),
        "the browser still sends its cookie: the server ended the session"
    );
    // Signing in again goes back to the page asked for.
    browser.type_into("#account", "1001").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("form.signin button").await;
    browser.wait_for_url("/settings").await;
    assert!(browser.url().await.ends_with("/settings"));

    // Too old: used every 25 minutes, the session still ends two hours after sign-in.
    for step in 1..=4 {
        clock.advance(chrono::TimeDelta::minutes(25));
        browser.go(&format!("{base}/recordings")).await;
        assert!(
            browser.url().await.ends_with("/recordings"),
            "{} minutes in: {}",
            step * 25,
            browser.url().await
        );
    }
    clock.advance(chrono::TimeDelta::minutes(25));
    browser.go(&format!("{base}/recordings")).await;
    browser.wait_for_url("/signin?next=%2Frecordings").await;

    // Sign-out: the cookie the browser had no longer opens anything, whoever sends it.
    sign_in(&browser, &base, "1001").await;
    let cookie = browser.cookie("callrec_session").await.expect("a session");
    assert!(
        cookie.http_only && cookie.same_site == "Strict",
        "{cookie:?}"
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let open_with = |value: String| {
        let http = http.clone();
        let url = format!("{base}/recordings");
        async move {
            let r = http
                .get(url)
                .header("cookie", format!("callrec_session={value}"))
                .send()
                .await
                .unwrap();
            let location = r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned());
            (r.status().as_u16(), location)
        }
    };
    assert_eq!(open_with(cookie.value.clone()).await, (200, None));
    browser.click("form.signout button").await;
    browser.wait_for_url("/signin").await;
    assert_eq!(browser.cookie("callrec_session").await, None);
    let (status, location) = open_with(cookie.value.clone()).await;
    assert_eq!(status, 303);
    assert!(
        location
            .as_deref()
            .is_some_and(|l| l.starts_with("/signin")),
        "{location:?}"
    );
    // Given back to the browser, it is refused there too.
    browser.add_cookie(&cookie).await;
    assert_eq!(
        browser.cookie("callrec_session").await.as_ref(),
        Some(&cookie)
    );
    browser.go(&format!("{base}/recordings")).await;
    browser.wait_for_url("/signin?next=%2Frecordings").await;
    browser.close().await;
    server.shut_down().await;
}
