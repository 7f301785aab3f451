//! Webhooks from the running daemon (SPEC §5.2, issue 13): recording carries on while every
//! endpoint is down and the events arrive once one is back; a call that should have been
//! recorded and was not raises the alert (webhook, metric).

mod support;

use std::time::Duration;

use callrec_model::{RecordingMode, RecordingState};
use callrec_sim::{CallSpec, Side};
use callrec_store::Access;
use callrec_testkit::hooks::Receiver;
use callrec_testkit::wait::eventually;
use serde_json::Value;
use support::{Bed, Setup, WEBHOOK_SECRET};

const S: fn(u64) -> Duration = Duration::from_secs;

fn endpoint(bed: &Bed, url: &str) -> callrec_store::WebhookEndpoint {
    bed.store
        .read_blocking(|v| v.webhook_endpoints(&Access::system("test")))
        .unwrap()
        .into_iter()
        .find(|e| e.url == url)
        .expect("the config's endpoint")
}

fn delivered(receiver: &Receiver) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| {
            assert!(callrec_webhooks::signature::verify(
                WEBHOOK_SECRET.as_bytes(),
                r.header("x-callrec-signature").unwrap(),
                &r.body,
                chrono::Utc::now().timestamp(),
            ));
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_recorded_while_every_endpoint_is_down_and_the_events_follow_when_one_returns() {
    let mut receiver = Receiver::down().await;
    let url = receiver.url("/callrec");
    let bed = Bed::start(
        Setup::users(&[("1001", RecordingMode::Always)]).webhooks(std::slice::from_ref(&url)),
    )
    .await;
    for _ in 0..3 {
        bed.sim.place_call(
            CallSpec::inbound("02079460000", "1001")
                .ring(S(1))
                .talk(S(5), Side::Caller),
        );
    }
    bed.advance(S(1));
    bed.recording_on_switch(3).await;
    bed.advance(S(5));
    let stored = bed.wait_recordings(RecordingState::Stored, 3).await;
    assert!(
        stored.iter().all(|r| r.duration_ms.unwrap_or(0) >= 4_000),
        "{stored:?}"
    );
    eventually("the endpoint tried and refused", || {
        let e = endpoint(&bed, &url);
        e.failures >= 1 && e.pending == 3
    })
    .await;

    receiver.up().await;
    let got = eventually("three events after the endpoint came back", || {
        let got = delivered(&receiver);
        (got.len() == 3).then_some(got)
    })
    .await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|b| {
            assert_eq!(b["type"], "recording.stored", "{b}");
            b["recording"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut expected: Vec<String> = stored.iter().map(|r| r.id.to_string()).collect();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected);
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_should_have_been_recorded_and_was_not_raises_the_alert() {
    let receiver = Receiver::start().await;
    let url = receiver.url("/callrec");
    let bed = Bed::start(
        Setup::users(&[("1001", RecordingMode::Always)]).webhooks(std::slice::from_ref(&url)),
    )
    .await;
    // The switch cannot write its file: the spool directory is gone, a file in its place.
    std::fs::remove_dir_all(&bed.spool).unwrap();
    std::fs::write(&bed.spool, b"not a directory").unwrap();
    bed.sim.place_call(
        CallSpec::inbound("02079460000", "1001")
            .ring(S(1))
            .talk(S(5), Side::Caller),
    );
    bed.advance(S(1));
    let failed = bed.wait_recordings(RecordingState::Failed, 1).await;
    assert!(
        failed[0]
            .state_reason
            .as_deref()
            .is_some_and(|r| r.contains("Cannot record session")),
        "{failed:?}"
    );
    let got = eventually("the failure and the alert", || {
        let got = delivered(&receiver);
        (got.len() == 2).then_some(got)
    })
    .await;
    let kinds: Vec<&str> = got.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["recording.failed", "call.not_recorded"]);
    assert_eq!(got[1]["recording"]["id"], failed[0].id.to_string());
    assert_eq!(got[1]["recording"]["user"], "1001");
    assert_eq!(got[1]["recording"]["call_uuid"], failed[0].call_uuid);
    let text = bed.handle.metrics_text();
    assert!(
        text.lines()
            .any(|l| l == "callrec_calls_not_recorded_total 1"),
        "{text}"
    );
    bed.sim.place_call(
        CallSpec::inbound("02079460000", "1002")
            .ring(S(1))
            .talk(S(5), Side::Caller),
    );
    bed.advance(S(6));
    bed.stop().await.unwrap();
}
