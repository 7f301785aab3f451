//! Scripted calls carry what the daemon identifies users by (SPEC §3.2): an authenticated
//! caller's `variable_user_name`, a ringing directory user's `variable_dialed_user`, an
//! exported `callrec_user`; and they end the ways calls end.

use std::sync::Arc;
use std::time::Duration;

use callrec_sim::{CallSpec, Event, Party, Side, SimConfig, Simulator};
use tokio::sync::mpsc::UnboundedReceiver;

async fn sim() -> (Simulator, tempfile::TempDir) {
    let spool = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.path().into(),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    (sim, spool)
}

fn drain(rx: &mut UnboundedReceiver<Arc<Event>>) -> Vec<Arc<Event>> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

fn first<'a>(evs: &'a [Arc<Event>], name: &str, uuid: &str) -> Option<&'a Arc<Event>> {
    evs.iter()
        .find(|e| e.name() == name && e.unique_id() == Some(uuid))
}

#[tokio::test]
async fn internal_call_names_both_directory_users() {
    let (sim, _spool) = sim().await;
    let mut rx = sim.subscribe();
    let call = sim.place_call(CallSpec::internal("1001", "1000").callrec_user("1001"));
    sim.advance(Duration::from_secs(3)).expect("clock");
    let evs = drain(&mut rx);
    let a = first(&evs, "CHANNEL_ANSWER", &call.caller_uuid).expect("caller answered");
    let b = first(&evs, "CHANNEL_ANSWER", &call.callee_uuid).expect("callee answered");
    assert_eq!(a.header("variable_user_name"), Some("1001"));
    assert_eq!(a.header("variable_callrec_user"), Some("1001"));
    assert_eq!(a.header("Caller-Caller-ID-Number"), Some("1001"));
    assert_eq!(a.header("Caller-Destination-Number"), Some("1000"));
    assert_eq!(b.header("variable_dialed_user"), Some("1000"));
    let bridge = first(&evs, "CHANNEL_BRIDGE", &call.caller_uuid).expect("bridged");
    assert_eq!(
        bridge.header("Other-Leg-Unique-ID"),
        Some(call.callee_uuid.as_str())
    );
}

#[tokio::test]
async fn an_outbound_call_rings_no_directory_user() {
    let (sim, _spool) = sim().await;
    let mut rx = sim.subscribe();
    let call = sim.place_call(CallSpec::outbound("1001", "02071234567"));
    sim.advance(Duration::from_secs(3)).expect("clock");
    let evs = drain(&mut rx);
    let a = first(&evs, "CHANNEL_ANSWER", &call.caller_uuid).expect("answered");
    assert_eq!(a.header("variable_user_name"), Some("1001"));
    assert_eq!(a.header("variable_dialed_user"), None);
    assert_eq!(a.header("Caller-Destination-Number"), Some("02071234567"));
    let b = first(&evs, "CHANNEL_ANSWER", &call.callee_uuid).expect("answered");
    assert_eq!(b.header("variable_dialed_user"), None);
}

#[tokio::test]
async fn an_inbound_call_comes_from_no_directory_user() {
    let (sim, _spool) = sim().await;
    let mut rx = sim.subscribe();
    let call = sim.place_call(CallSpec::between(
        Party::external("442920123123").named("Alice"),
        Party::user("1002"),
    ));
    sim.advance(Duration::from_secs(3)).expect("clock");
    let evs = drain(&mut rx);
    let a = first(&evs, "CHANNEL_ANSWER", &call.caller_uuid).expect("answered");
    assert_eq!(a.header("variable_user_name"), None);
    assert_eq!(a.header("Caller-Caller-ID-Number"), Some("442920123123"));
    assert_eq!(a.header("Caller-Caller-ID-Name"), Some("Alice"));
    let b = first(&evs, "CHANNEL_ANSWER", &call.callee_uuid).expect("answered");
    assert_eq!(b.header("variable_dialed_user"), Some("1002"));
}

#[tokio::test]
async fn an_unanswered_call_is_cancelled_after_ringing() {
    let (sim, _spool) = sim().await;
    let mut rx = sim.subscribe();
    let call = sim.place_call(
        CallSpec::internal("1001", "1000")
            .ring(Duration::from_secs(5))
            .unanswered(),
    );
    sim.advance(Duration::from_secs(4)).expect("clock");
    assert_eq!(sim.channels().len(), 2, "still ringing");
    sim.advance(Duration::from_secs(2)).expect("clock");
    let evs = drain(&mut rx);
    assert!(evs.iter().all(|e| e.name() != "CHANNEL_ANSWER"));
    let done = first(&evs, "CHANNEL_HANGUP_COMPLETE", &call.caller_uuid).expect("ended");
    assert_eq!(
        done.header("variable_hangup_cause"),
        Some("ORIGINATOR_CANCEL")
    );
    assert!(sim.channels().is_empty());
}

#[tokio::test]
async fn when_the_callee_hangs_up_the_caller_leg_ends_too_and_its_recording_stops() {
    let (sim, spool) = sim().await;
    let mut rx = sim.subscribe();
    let call = sim.place_call(
        CallSpec::internal("1001", "1000")
            .ring(Duration::from_secs(1))
            .talk(Duration::from_secs(5), Side::Callee),
    );
    sim.advance(Duration::from_secs(1)).expect("clock");
    let path = spool.path().join("callee-hangup.wav");
    let reply = sim.api(&format!(
        "uuid_record {} start {}",
        call.caller_uuid,
        path.display()
    ));
    assert_eq!(reply, "+OK Success\n");
    sim.advance(Duration::from_secs(6)).expect("clock");
    let evs = drain(&mut rx);
    let hangups: Vec<&str> = evs
        .iter()
        .filter(|e| e.name() == "CHANNEL_HANGUP")
        .filter_map(|e| e.unique_id())
        .collect();
    assert_eq!(
        hangups,
        vec![call.callee_uuid.as_str(), call.caller_uuid.as_str()]
    );
    assert!(first(&evs, "RECORD_STOP", &call.caller_uuid).is_some());
    assert!(path.exists());
    assert!(sim.channels().is_empty());
}

#[tokio::test]
async fn a_hold_from_either_side_is_that_legs_hold() {
    let (sim, _spool) = sim().await;
    let mut rx = sim.subscribe();
    let call = sim.place_call(
        CallSpec::internal("1001", "1000")
            .ring(Duration::from_secs(1))
            .hold(Side::Callee, Duration::from_secs(2), Duration::from_secs(3)),
    );
    sim.advance(Duration::from_secs(4)).expect("clock");
    assert!(
        sim.channels()
            .iter()
            .any(|c| c.uuid == call.callee_uuid && c.held)
    );
    sim.advance(Duration::from_secs(2)).expect("clock");
    let evs = drain(&mut rx);
    assert!(first(&evs, "CHANNEL_HOLD", &call.callee_uuid).is_some());
    assert!(first(&evs, "CHANNEL_UNHOLD", &call.callee_uuid).is_some());
    assert!(first(&evs, "CHANNEL_HOLD", &call.caller_uuid).is_none());
    // The API can hold and release a SIP leg too.
    assert_eq!(
        sim.api(&format!("uuid_hold {}", call.caller_uuid)),
        "+OK Success\n"
    );
    assert_eq!(
        sim.api(&format!("uuid_hold off {}", call.caller_uuid)),
        "+OK Success\n"
    );
    assert_eq!(
        sim.api(&format!("uuid_hold off {}", call.caller_uuid)),
        "-ERR Operation failed\n",
        "not held any more"
    );
}

#[tokio::test]
async fn show_channels_and_getvar_see_the_live_call() {
    let (sim, _spool) = sim().await;
    let call = sim.place_call(CallSpec::internal("1001", "1000").callrec_user("1001"));
    sim.advance(Duration::from_secs(3)).expect("clock");
    let rows: serde_json::Value =
        serde_json::from_str(&sim.api("show channels as json")).expect("json");
    assert_eq!(rows["row_count"], 2);
    assert_eq!(rows["rows"][0]["uuid"], call.caller_uuid.as_str());
    assert_eq!(rows["rows"][0]["callstate"], "ACTIVE");
    let calls: serde_json::Value =
        serde_json::from_str(&sim.api("show calls as json")).expect("json");
    assert_eq!(calls["row_count"], 1, "a bridged pair is one call");
    assert_eq!(calls["rows"][0]["b_uuid"], call.callee_uuid.as_str());
    assert_eq!(
        sim.api(&format!("uuid_getvar {} callrec_user", call.caller_uuid)),
        "1001"
    );
    assert_eq!(
        sim.api(&format!("uuid_getvar {} no_such_var", call.caller_uuid)),
        "_undef_"
    );
    assert_eq!(
        sim.api(&format!("uuid_exists {}", call.callee_uuid)),
        "true"
    );
    assert_eq!(sim.api(&format!("uuid_kill {}", call.callee_uuid)), "+OK\n");
    assert_eq!(
        sim.api(&format!("uuid_exists {}", call.callee_uuid)),
        "false"
    );
    assert_eq!(sim.api("show channels as json"), "{\"row_count\":0}");
}

#[tokio::test]
async fn an_originate_names_its_a_leg_with_origination_uuid_and_both_legs_carry_its_variables() {
    let (sim, _spool) = sim().await;
    let mut rx = sim.subscribe();
    let a = "0b8e3f0c-5b7e-4b8e-9d4a-1f2e3d4c5b6a";
    assert_eq!(
        sim.api(&format!(
            "originate {{origination_uuid={a},callrec_user=1001}}loopback/9999/default &park"
        )),
        format!("+OK {a}\n")
    );
    sim.advance(Duration::from_secs(1)).expect("clock");
    let evs = drain(&mut rx);
    let answer = first(&evs, "CHANNEL_ANSWER", a).expect("the A leg has the given uuid");
    let b = answer
        .header("variable_other_loopback_leg_uuid")
        .expect("the legs are tied by variable_other_loopback_leg_uuid")
        .to_owned();
    let b_answer = first(&evs, "CHANNEL_ANSWER", &b).expect("the B leg answered");
    assert_eq!(b_answer.header("variable_callrec_user"), Some("1001"));
    sim.api(&format!("uuid_kill {a}"));
    let evs = drain(&mut rx);
    // No caller ID name was given: the switch's `caller_id` is the number alone.
    let end = first(&evs, "CHANNEL_HANGUP_COMPLETE", &b).expect("the B leg ended");
    assert_eq!(end.header("variable_caller_id"), Some("0000000000"));
}

#[tokio::test]
async fn sched_hangup_on_answer_ends_the_call_on_the_switchs_whole_second_tick() {
    let (sim, _spool) = sim().await;
    let mut rx = sim.subscribe();
    // Half a second after the switch's own second boundary, as a real call answers anywhere
    // within a second.
    sim.advance(Duration::from_millis(500)).expect("clock");
    let a = "5d1b1c1e-8f0a-4d7e-9a3b-2c4d6e8f0a1b";
    sim.api(&format!(
        "originate {{origination_uuid={a},execute_on_answer='sched_hangup +3 normal_clearing'}}\
         loopback/9999/default &park"
    ));
    sim.advance(Duration::from_millis(2400)).expect("clock");
    let evs = drain(&mut rx);
    let answer = first(&evs, "CHANNEL_ANSWER", a).expect("answered");
    assert_eq!(
        answer.header("variable_execute_on_answer"),
        Some("sched_hangup +3 normal_clearing")
    );
    assert!(
        first(&evs, "CHANNEL_HANGUP", a).is_none(),
        "still up at 2.4 s"
    );
    sim.advance(Duration::from_millis(200)).expect("clock");
    let evs = drain(&mut rx);
    let hangup = first(&evs, "CHANNEL_HANGUP", a).expect("hung up at the 3 s tick: 2.5 s of talk");
    assert_eq!(hangup.header("Hangup-Cause"), Some("NORMAL_CLEARING"));
}

#[tokio::test]
async fn with_the_arming_dialplan_a_published_users_leg_is_recorded_from_its_answer() {
    let spool = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.path().into(),
        dialplan_arming: true,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let dir = spool.path().display().to_string();
    for command in [
        format!("hash insert/callrec/spool/{dir}"),
        "hash insert/callrec/format/wav".to_owned(),
        "hash insert/callrec/user_1001/3".to_owned(),
    ] {
        assert_eq!(sim.api(&command), "+OK\n", "{command}");
    }
    assert_eq!(sim.api("hash select/callrec/user_1001"), "3");
    assert_eq!(
        sim.api("hash_dump db callrec"),
        format!("D/callrec_format/wav\nD/callrec_spool/{dir}\nD/callrec_user_1001/3\n")
    );
    let mut rx = sim.subscribe();
    let a = "1c9e3f0c-5b7e-4b8e-9d4a-1f2e3d4c5b6a";
    sim.api(&format!(
        "originate {{origination_uuid={a},callrec_user=1001}}loopback/9999/default &park"
    ));
    sim.advance(Duration::from_secs(1)).expect("clock");
    let evs = drain(&mut rx);
    let b = first(&evs, "CHANNEL_ANSWER", a)
        .and_then(|e| e.header("variable_other_loopback_leg_uuid"))
        .expect("the B leg")
        .to_owned();
    // The B leg ran the dialplan as 1001: armed, and started by the switch at its answer.
    let path = format!("{dir}/{b}.wav");
    let answer = first(&evs, "CHANNEL_ANSWER", &b).expect("the B leg answered");
    assert_eq!(answer.header("variable_callrec_armed"), Some(path.as_str()));
    let start = first(&evs, "RECORD_START", &b).expect("recorded from its answer");
    assert_eq!(start.header("Record-File-Path"), Some(path.as_str()));
    assert_eq!(
        start.header("Recording-Variable-callrec_id"),
        Some(b.as_str())
    );
    assert_eq!(
        start.header("variable_endpoint_disposition"),
        Some("ANSWER")
    );
    assert!(
        first(&evs, "RECORD_START", a).is_none(),
        "the A leg runs no dialplan"
    );

    // Not published: nothing armed.
    assert_eq!(sim.api("hash delete/callrec/user_1001"), "+OK\n");
    assert_eq!(sim.api("hash delete/callrec/user_1001"), "-ERR Not found\n");
    let other = "2c9e3f0c-5b7e-4b8e-9d4a-1f2e3d4c5b6a";
    sim.api(&format!(
        "originate {{origination_uuid={other},callrec_user=1001}}loopback/9999/default &park"
    ));
    sim.advance(Duration::from_secs(1)).expect("clock");
    let evs = drain(&mut rx);
    assert!(
        !evs.iter()
            .any(|e| e.name() == "RECORD_START" && e.header("variable_callrec_armed").is_some()),
        "no arming without the user in the hash"
    );
}
