//! With a real-time clock the switch runs by itself: calls ring, answer, talk and end on
//! the wall clock (here sped up), heartbeats come, and orders sent by `sendmsg <uuid>` on
//! an inbound connection run.

mod support;

use std::time::Duration;

use callrec_sim::{CallSpec, ClockMode, Side, SimConfig, Simulator};
use support::RawClient;

#[tokio::test]
async fn calls_play_out_on_the_wall_clock() {
    let spool = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.path().into(),
        clock: ClockMode::RealTime { speed: 20.0 },
        heartbeat: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let mut events = RawClient::connect(sim.esl_addr(), "ClueCon").await;
    events
        .command("event plain CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE HEARTBEAT")
        .await;
    assert!(
        sim.advance(Duration::from_secs(1)).is_err(),
        "a real-time clock cannot be pushed"
    );
    let call = sim.place_call(
        CallSpec::internal("1001", "1000")
            .ring(Duration::from_secs(1))
            .talk(Duration::from_secs(2), Side::Callee),
    );
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|(n, u): &(String, String)| n == "CHANNEL_HANGUP_COMPLETE" && *u == call.caller_uuid)
    {
        let f = events
            .next_event(Duration::from_secs(10))
            .await
            .expect("the call plays out by itself");
        let e = support::compare::Ev::of(&f);
        seen.push((e.label.clone(), e.uuid.clone().unwrap_or_default()));
    }
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"CHANNEL_ANSWER"));
    assert!(names.contains(&"HEARTBEAT"), "{names:?}");
    sim.wait_for(Duration::from_secs(10), "the call is gone", |s| {
        s.channels().is_empty()
    })
    .await
    .expect("ended");
}

#[tokio::test]
async fn sendmsg_by_uuid_hangs_a_channel_up() {
    let spool = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.path().into(),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let call = sim.place_call(CallSpec::internal("1001", "1000"));
    sim.advance(Duration::from_secs(3)).expect("clock");
    let mut c = RawClient::connect(sim.esl_addr(), "ClueCon").await;
    c.send(&format!(
        "sendmsg {}\ncall-command: hangup\nhangup-cause: USER_BUSY",
        call.caller_uuid
    ))
    .await;
    let reply = c.next_reply(Duration::from_secs(5)).await.expect("reply");
    assert_eq!(reply.header("Reply-Text"), Some("+OK"));
    assert!(sim.channels().is_empty());
    let reply = c
        .command("sendmsg 00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(
        reply.header("Reply-Text"),
        Some("-ERR invalid session id [00000000-0000-0000-0000-000000000000]")
    );
}
