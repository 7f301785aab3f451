//! The outbound feature-code protocol against a scripted switch, with the channel data of
//! the real `*48` captures.

use std::sync::Arc;
use std::time::Duration;

use callrec_model::RecordingMode;
use callrec_testkit::wait::Timeout;
use freeswitch_esl_tokio::mock::MockConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;
use crate::core::{Core, Job};
use crate::fixtures::{self, SPOOL};
use crate::metrics::Metrics;
use crate::recorder::Settings;

const WAIT: Timeout = Timeout::secs(10);

fn core(users: &[(&str, RecordingMode)]) -> Arc<Core> {
    let (store, _) = mpsc::unbounded_channel();
    fixtures::core(fixtures::recorder(users), store)
}

fn prompts() -> Prompts {
    Prompts::new(
        "/opt/callrec/prompts".into(),
        [
            (Prompt::Paused, "paused.wav".to_owned()),
            (Prompt::Resumed, "resumed.wav".to_owned()),
            (Prompt::Started, "started.wav".to_owned()),
            (Prompt::NotAllowed, "not_allowed.wav".to_owned()),
            (Prompt::NoCall, "no_call.wav".to_owned()),
        ],
    )
}

/// Starts the listener; returns the switch's side of one feature call.
async fn dial(core: &Arc<Core>) -> MockConnection {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        core.clone(),
        listener,
        FeatureSettings {
            prompts: prompts(),
            format: EventFormat::Plain,
            command_timeout: Duration::from_secs(2),
        },
        CancellationToken::new(),
        TaskTracker::new(),
    ));
    MockConnection::from_stream(TcpStream::connect(addr).await.unwrap())
}

/// The next command; the switch reads header names case-insensitively and the ESL crate
/// title-cases them, so they are compared in lower case (values untouched).
async fn next_command(switch: &mut MockConnection, what: &str) -> String {
    let command = WAIT.within(what, switch.read_command()).await.unwrap();
    command
        .trim_end()
        .lines()
        .map(|line| match line.split_once(": ") {
            Some((k, v)) => format!("{}: {v}", k.to_ascii_lowercase()),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n\n"
}

/// Plays the switch's side as the capture does; returns the prompt played.
async fn switch_side(mut switch: MockConnection, capture: &str) -> String {
    assert_eq!(
        WAIT.within("connect", switch.read_command()).await.unwrap(),
        "connect\n\n"
    );
    let channel_data = callrec_testkit::capture::frames_of(capture).remove(0);
    switch
        .send_raw(std::str::from_utf8(&channel_data.bytes).unwrap())
        .await
        .unwrap();
    assert_eq!(
        WAIT.within("myevents", switch.read_command())
            .await
            .unwrap(),
        "myevents plain\n\n"
    );
    switch.reply_ok_text("Events Enabled").await.unwrap();
    assert_eq!(
        WAIT.within("linger", switch.read_command()).await.unwrap(),
        "linger\n\n"
    );
    switch.reply_ok_text("will linger").await.unwrap();
    assert_eq!(
        next_command(&mut switch, "answer").await,
        "sendmsg\ncall-command: execute\nexecute-app-name: answer\n\n"
    );
    switch.reply_ok().await.unwrap();
    let playback = next_command(&mut switch, "playback").await;
    let prompt = playback
        .strip_prefix(
            "sendmsg\ncall-command: execute\nexecute-app-name: playback\nexecute-app-arg: ",
        )
        .and_then(|rest| rest.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("not a playback: {playback:?}"))
        .to_owned();
    switch.reply_ok().await.unwrap();
    switch
        .send_event_plain(
            "CHANNEL_EXECUTE_COMPLETE",
            [("Application", "playback"), ("Unique-ID", "x")],
        )
        .await
        .unwrap();
    assert_eq!(
        next_command(&mut switch, "hangup").await,
        "sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n"
    );
    switch.reply_ok().await.unwrap();
    switch.drop_connection().await;
    prompt
}

#[tokio::test]
async fn a_user_with_no_call_hears_no_call() {
    let core = core(&[("1001", RecordingMode::AlwaysPausable)]);
    let switch = dial(&core).await;
    let prompt = switch_side(switch, "feature-code-outbound.received.esl").await;
    assert_eq!(prompt, "/opt/callrec/prompts/no_call.wav");
    assert_eq!(
        Metrics::count(&core.metrics.feature_codes, "prompt", "no_call"),
        1
    );
}

#[tokio::test]
async fn an_unknown_caller_hears_not_allowed() {
    let core = core(&[("2000", RecordingMode::AlwaysPausable)]);
    let switch = dial(&core).await;
    let prompt = switch_side(switch, "feature-code-outbound.received.esl").await;
    assert_eq!(prompt, "/opt/callrec/prompts/not_allowed.wav");
}

#[tokio::test]
async fn pause_on_the_held_sip_call_is_confirmed_once_the_switch_masked() {
    let core = core(&[
        ("1001", RecordingMode::AlwaysPausable),
        ("1000", RecordingMode::Never),
    ]);
    let (tx, mut rx) = mpsc::unbounded_channel();
    core.set_command_sender(Some(tx));
    // The call as the switch reported it, up to the moment *48 was dialled.
    let owner_headers = Settings::default_owner_headers();
    for h in fixtures::plain_events("sip-hold.events-plain.received.esl") {
        if h.get("Unique-ID").map(String::as_str) == Some("002476ae-c24e-4c8f-8202-0e7f3f2d2133")
            && h.get("Event-Name").map(String::as_str) == Some("CHANNEL_ANSWER")
        {
            break;
        }
        let Ok(ev) = crate::event::ChannelEvent::from_headers(&h, &owner_headers) else {
            continue;
        };
        core.decide(|rec| rec.on_event(&ev));
    }
    // The recording start the answer asked for: the switch accepts it.
    let Some(Job::Record(start)) = WAIT.within("the start", rx.recv()).await else {
        panic!("no start")
    };
    assert!(start.api_text().contains(" start "));
    core.complete(Job::Record(start), Ok("Success".into()));

    let switch = dial(&core).await;
    let call = tokio::spawn(switch_side(switch, "sip-hold-feature-code.received.esl"));
    let Some(Job::Record(mask)) = WAIT.within("the mask command", rx.recv()).await else {
        panic!("no mask")
    };
    assert!(
        mask.api_text().starts_with(&format!(
            "uuid_record 002f0cb7-5a36-473a-a9c2-0e375de09811 mask {SPOOL}/"
        )),
        "{}",
        mask.api_text()
    );
    core.complete(Job::Record(mask), Ok("Success".into()));
    let prompt = WAIT.within("the call", call).await.unwrap();
    assert_eq!(prompt, "/opt/callrec/prompts/paused.wav");
}

#[tokio::test]
async fn a_peer_that_connects_and_goes_silent_is_let_go_for_good() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let core = core(&[("1001", RecordingMode::AlwaysPausable)]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        core.clone(),
        listener,
        FeatureSettings {
            prompts: prompts(),
            format: EventFormat::Plain,
            command_timeout: Duration::from_millis(200),
        },
        CancellationToken::new(),
        TaskTracker::new(),
    ));
    // Not the switch: something that connects, never answers `connect`, and keeps the
    // connection open.
    let mut peer = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    WAIT.within("the daemon to give up the call", async {
        while peer.read(&mut buf).await.unwrap() > 0 {}
    })
    .await;
    // The daemon stopped writing; its socket must be closed too, not read on for ever by a
    // task nobody waits for: once it is, the kernel refuses what the peer sends.
    WAIT.within("the daemon to close its socket", async {
        loop {
            let refused = match peer.write_all(b"x").await {
                Err(_) => true,
                Ok(()) => peer.read(&mut buf).await.is_err(),
            };
            if refused {
                break;
            }
            // A byte now and then, so a daemon still reading is not flooded into a
            // protocol error (which would close the socket and hide the leak).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
