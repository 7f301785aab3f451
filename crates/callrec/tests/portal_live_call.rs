//! A call that is real to callrec, paused and resumed in a browser: the simulated FreeSWITCH
//! (in this test, on the wall clock) places a call for a user in mode `always_pausable`, the
//! real `callrec serve` records it, the user pauses and resumes it from Calls in progress in a
//! headless Chromium, and once the call has ended the stored recording's page shows the pause
//! in its segments and on its timeline.
//!
//! Without `chromedriver` on the machine the test says so and passes only outside CI; under
//! `CI=true` it fails instead (see `callrec_testkit::browser`).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callrec_model::SegmentKind;
use callrec_sim::{CallSpec, ClockMode, Side, SimConfig, Simulator};
use callrec_testkit::browser::{self, Browser, Driver, free_port};
use serde_json::json;
use support::{Install, http_status};

const PASSWORD: &str = "correct horse battery";

/// How long the call talks before its caller hangs up: long enough to pause and resume it
/// in the browser and for the recording to pass the site's shortest kept (3 s).
const TALK: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_paused_and_resumed_in_chromium_is_stored_with_the_pause_on_its_timeline() {
    let Some(programs) = browser::programs() else {
        return;
    };
    let install = Install::new();
    install.callrec(["migrate"]).run().success();
    install
        .callrec(["user", "add", "1001", "--mode", "always_pausable"])
        .run()
        .success();
    install
        .callrec(["user", "passwd", "1001"])
        .stdin(format!("{PASSWORD}\n"))
        .run()
        .success();

    // The switch as the README installs it, on the wall clock, sending feature codes to the
    // port the daemon will listen on; the daemon pointed at it.
    let spool = install.root().join("spool");
    let (api_port, feature_port) = (free_port(), free_port());
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.clone(),
        clock: ClockMode::real_time(),
        feature_code_socket: Some(format!("127.0.0.1:{feature_port}")),
        dialplan_arming: true,
        ..SimConfig::default()
    })
    .await
    .expect("the simulated switch starts");
    let mut args: Vec<String> = Vec::new();
    for setting in [
        format!("esl.port={}", sim.esl_addr().port()),
        format!("esl.password={}", sim.config().password),
        format!("api.listen=127.0.0.1:{api_port}"),
        format!("feature_codes.listen=127.0.0.1:{feature_port}"),
        format!("storage.spool_dir={}", spool.display()),
    ] {
        args.extend(["--set".to_owned(), setting]);
    }
    args.push("serve".to_owned());
    let mut daemon = install.callrec(args).start();
    let api = SocketAddr::from(([127, 0, 0, 1], api_port));
    let deadline = Instant::now() + Duration::from_secs(60);
    // Ready: the index open and the ESL session up, as the daemon itself says.
    while http_status(api, "/readyz") != Some(200) {
        daemon.assert_running();
        assert!(Instant::now() < deadline, "callrec serve never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = format!("http://{api}");

    let driver = Driver::start(&programs).await;
    let browser = Browser::open(&driver).await;
    browser.sign_in(&base, "1001", PASSWORD).await;
    browser.click("nav a[href='/calls']").await;
    browser.wait_for_url("/calls").await;

    // 1001 calls out; the open page shows the call, recording, from the server's events.
    let call = sim.place_call(
        CallSpec::outbound("1001", "02079461234")
            .ring(Duration::from_secs(1))
            .talk(TALK, Side::Caller),
    );
    let pause = format!("form[action='/calls/{}/pause'] button", call.caller_uuid);
    browser
        .wait_until(
            "the live call, recording, on the open page",
            &format!("return document.querySelector(\"{pause}\") !== null"),
        )
        .await;
    assert_eq!(
        browser.text("#calls .rec").await.as_deref(),
        Some("Recording")
    );
    let details = browser
        .script("return document.querySelector('#calls a[href^=\"/recordings/\"]').getAttribute('href')")
        .await;
    let recording_page = details
        .as_str()
        .expect("the call's recording is linked")
        .to_owned();

    browser.click(&pause).await;
    browser.wait_for_url("done=pause").await;
    assert_eq!(
        browser.text("p.ok").await.as_deref(),
        Some("Recording paused.")
    );
    assert_eq!(browser.text("#calls .rec").await.as_deref(), Some("Paused"));
    browser.screenshot("calls-live-paused").await;
    // The user keeps it paused for two seconds of the call (the switch's time, not a wait for
    // anything to happen: the pause's length is what the recording must show).
    let paused_at = sim.now();
    while sim.now() - paused_at < chrono::TimeDelta::seconds(2) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resume = format!("form[action='/calls/{}/resume'] button", call.caller_uuid);
    browser.click(&resume).await;
    browser.wait_for_url("done=resume").await;
    assert_eq!(
        browser.text("p.ok").await.as_deref(),
        Some("Recording resumed.")
    );
    assert_eq!(
        browser.text("#calls .rec").await.as_deref(),
        Some("Recording")
    );

    // The caller hangs up when the call's script says: the list empties by itself.
    browser
        .wait_until_within(
            "the call to end on the open page",
            "return document.getElementById('calls').textContent.includes('No calls in progress.')",
            TALK + Duration::from_secs(20),
        )
        .await;

    // The recording the call's row linked to, stored a moment after the hangup: its segments
    // say who paused and resumed it, and its timeline marks the one paused stretch.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        browser.go(&format!("{base}{recording_page}")).await;
        if browser
            .script("return document.querySelector('.timeline') !== null")
            .await
            == json!(true)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the recording was never stored: {}",
            browser.source().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let segments = browser
        .script(
            "return Array.from(document.querySelectorAll('table tbody tr'))
               .map(tr => Array.from(tr.cells).map(td => td.textContent))
               .map(([what, when, from, by]) => [what, from, by]);",
        )
        .await;
    assert_eq!(
        segments,
        json!([
            ["start", "policy", "callrec"],
            ["pause", "api", "1001@default"],
            ["resume", "api", "1001@default"],
            ["stop", "policy", "callrec"]
        ])
    );
    assert_eq!(
        browser
            .script("return document.querySelectorAll('.timeline rect.paused').length")
            .await,
        json!(1)
    );
    assert_eq!(
        browser
            .script("return document.querySelectorAll('.timeline .stretches li').length")
            .await,
        json!(1)
    );
    let paused = browser
        .script(
            "const dt = Array.from(document.querySelectorAll('dl.facts dt'))
               .find(dt => dt.textContent === 'Paused');
             return dt.nextElementSibling.textContent;",
        )
        .await;
    assert!(
        paused
            .as_str()
            .is_some_and(|p| p.starts_with("0:0") && p != "0:00" && p != "0:01"),
        "paused for {paused}"
    );
    browser
        .script(
            "document.querySelector('.timeline').scrollIntoView({block: 'center'}); return null;",
        )
        .await;
    browser.screenshot("recording-live-paused").await;
    browser.close().await;

    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");
    sim.stop().await;

    // The index agrees: one stored recording of 1001, paused and resumed from the portal.
    let mut store = support::open_store(&install);
    let id: callrec_model::RecordingId = recording_page
        .trim_start_matches("/recordings/")
        .parse()
        .expect("a recording id");
    let detail = store
        .read_recording(&id, &callrec_store::Access::system("test"))
        .expect("the recording is in the index");
    assert_eq!(
        detail.recording.state,
        callrec_model::RecordingState::Stored
    );
    assert_eq!(detail.recording.user, "1001");
    let kinds: Vec<SegmentKind> = detail.segments.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SegmentKind::Start,
            SegmentKind::Pause,
            SegmentKind::Resume,
            SegmentKind::Stop
        ]
    );
    assert!(detail.segments[1].at < detail.segments[2].at);
    assert!(
        (2_000..TALK.as_millis() as u64).contains(&detail.recording.paused_ms),
        "{:?}",
        detail.recording
    );
}
