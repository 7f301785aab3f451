//! In-switch arming (SPEC §3.3, `dialplan/callrec-arm.xml`): the daemon publishes the users
//! recorded on answer to the switch's hash and keeps it in step with the directory; a leg the
//! dialplan armed from it is recorded from its answer with no command from callrec, under the
//! switch's own file name; an arming callrec's rules disagree with is taken back before
//! the leg answers (or stopped and removed, if callrec first hears of it at the answer); and
//! a file the switch recorded while callrec was away, named by nothing, is counted and kept.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use callrec_model::{RecordingMode, RecordingState};
use callrec_sim::{CallHandle, CallSpec, Side};
use callrec_testkit::wait::eventually;
use support::{Bed, Setup};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The switch's hash realm `callrec`, as the dialplan reads it.
fn published(bed: &Bed) -> BTreeMap<String, String> {
    callrec_daemon::arming::parse_dump(&bed.sim.api("hash_dump db callrec"))
}

async fn wait_published(bed: &Bed, key: &str, present: bool) -> BTreeMap<String, String> {
    eventually(
        &format!(
            "`{key}` to be {} the switch's hash",
            if present { "in" } else { "out of" }
        ),
        || {
            let now = published(bed);
            (now.contains_key(key) == present).then_some(now)
        },
    )
    .await
}

fn caller(bed: &Bed, uuid: &str) -> Option<callrec_sim::ChannelInfo> {
    bed.sim.channels().into_iter().find(|c| c.uuid == uuid)
}

/// The `uuid_record` and `uuid_setvar` commands clients sent the switch from now on.
fn record_commands(bed: &Bed) -> impl FnMut() -> Vec<String> + use<> {
    let mut api = bed.sim.subscribe();
    let mut seen = Vec::new();
    move || {
        while let Ok(ev) = api.try_recv() {
            if ev.name() == "API"
                && let Some(cmd @ ("uuid_record" | "uuid_setvar")) = ev.header("API-Command")
            {
                seen.push(format!(
                    "{cmd} {}",
                    ev.header("API-Command-Argument").unwrap_or_default()
                ));
            }
        }
        seen.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_recorded_on_answer_are_published_and_kept_in_step_with_the_directory() {
    let bed = Bed::start(
        Setup::users(&[
            ("1001", RecordingMode::Always),
            ("1002", RecordingMode::Never),
            ("1003", RecordingMode::AlwaysPausable),
            ("1004", RecordingMode::OnDemand),
        ])
        .min_seconds(4),
    )
    .await;
    let first = wait_published(&bed, "user_1001", true).await;
    assert_eq!(first["user_1001"], "4", "the site's min_seconds");
    assert_eq!(first["user_1003"], "4");
    assert!(!first.contains_key("user_1002") && !first.contains_key("user_1004"));
    assert_eq!(
        first["spool"],
        bed.config.storage.spool_dir.display().to_string()
    );
    assert_eq!(first["format"], "wav");

    bed.store
        .write(|s| s.set_mode("default", "1002", RecordingMode::Always, "test"))
        .await
        .unwrap();
    bed.store
        .write(|s| s.set_mode("default", "1001", RecordingMode::OnDemand, "test"))
        .await
        .unwrap();
    let after = wait_published(&bed, "user_1002", true).await;
    let after = if after.contains_key("user_1001") {
        wait_published(&bed, "user_1001", false).await
    } else {
        after
    };
    assert!(after.contains_key("user_1003"));

    // A stale entry someone left (a previous process's user since removed) is deleted at the
    // next connect.
    assert_eq!(bed.sim.api("hash insert/callrec/user_7777/3"), "+OK\n");
    bed.sim.drop_connections();
    wait_published(&bed, "user_7777", false).await;
    bed.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_the_dialplan_armed_is_recorded_from_its_answer_without_a_command_from_callrec() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)]).dialplan_arming()).await;
    wait_published(&bed, "user_1001", true).await;
    let mut commands = record_commands(&bed);
    // A phone that rings without media: callrec would otherwise arm it over the Event
    // Socket (`uuid_setvar … api_on_answer_callrec`).
    let call = bed.sim.place_call(
        CallSpec::outbound("1001", "02079461111")
            .ring(secs(2.0))
            .talk(secs(6.0), Side::Caller),
    );
    bed.advance(secs(3.0));
    bed.recording_on_switch(1).await;
    bed.advance(secs(7.0));
    let stored = bed.wait_recordings(RecordingState::Stored, 1).await;
    assert_eq!(
        stored[0].id.as_str(),
        call.caller_uuid,
        "the file the dialplan named (<spool>/<leg uuid>.wav) is the recording"
    );
    assert_eq!(bed.recordings().await.len(), 1);
    let seconds = stored[0].duration_ms.unwrap_or(0) as f64 / 1000.0;
    assert!(
        (5.5..=6.5).contains(&seconds),
        "{seconds} s: from the answer"
    );
    assert_eq!(
        commands(),
        Vec::<String>::new(),
        "callrec sent no recording command: the switch armed and started it"
    );
    bed.stop().await.expect("a clean stop");
}

/// 1002, mode `never`, calls out while the switch's hash says 1002 is recorded (a stale
/// entry): the dialplan arms the call, callrec's rules do not. Returns the bed, the call and
/// the recording commands sent from the moment before it was placed.
async fn never_user_calls_with_a_stale_arming(
    early_media: bool,
) -> (Bed, CallHandle, impl FnMut() -> Vec<String>) {
    let bed = Bed::start(Setup::users(&[("1002", RecordingMode::Never)]).dialplan_arming()).await;
    wait_published(&bed, "format", true).await;
    assert_eq!(bed.sim.api("hash insert/callrec/user_1002/3"), "+OK\n");
    let commands = record_commands(&bed);
    let mut spec = CallSpec::outbound("1002", "02079461111")
        .ring(secs(2.0))
        .talk(secs(6.0), Side::Caller);
    if early_media {
        spec = spec.with_early_media();
    }
    let call = bed.sim.place_call(spec);
    (bed, call, commands)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arming_callrecs_rules_do_not_make_is_taken_back_before_the_answer() {
    // Early media: callrec hears of the leg (CHANNEL_PROGRESS_MEDIA) before its answer.
    let (bed, call, mut commands) = never_user_calls_with_a_stale_arming(true).await;
    bed.advance(secs(1.0));
    eventually("callrec to unset the dialplan's arming", || {
        commands()
            .iter()
            .any(|c| c == &format!("uuid_setvar {} api_on_answer_callrec", call.caller_uuid))
            .then_some(())
    })
    .await;
    bed.advance(secs(2.0));
    eventually("the call to be answered", || {
        caller(&bed, &call.caller_uuid)
            .is_some_and(|c| c.answered)
            .then_some(())
    })
    .await;
    assert!(
        caller(&bed, &call.caller_uuid).is_some_and(|c| c.recording.is_empty()),
        "nothing records 1002's call"
    );
    bed.advance(secs(7.0));
    eventually("the call to end", || {
        bed.sim.channels().is_empty().then_some(())
    })
    .await;
    assert!(bed.recordings().await.is_empty());
    let left: Vec<_> = std::fs::read_dir(&bed.spool)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "no file in the spool: {left:?}");
    bed.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arming_callrec_first_hears_of_at_the_answer_is_stopped_and_its_file_removed() {
    // Ringing without media: the calling leg's first event callrec hears is its answer, by
    // which time the switch has started the armed recording.
    let (bed, call, mut commands) = never_user_calls_with_a_stale_arming(false).await;
    bed.advance(secs(3.0));
    eventually("callrec to stop the recording the dialplan armed", || {
        commands()
            .iter()
            .any(|c| c.starts_with(&format!("uuid_record {} stop", call.caller_uuid)))
            .then_some(())
    })
    .await;
    eventually("the switch to stop recording the call", || {
        caller(&bed, &call.caller_uuid)
            .is_some_and(|c| c.recording.is_empty())
            .then_some(())
    })
    .await;
    bed.advance(secs(7.0));
    eventually("the call to end", || {
        bed.sim.channels().is_empty().then_some(())
    })
    .await;
    eventually("the stopped file to be removed", || {
        let left: Vec<_> = std::fs::read_dir(&bed.spool)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        left.is_empty().then_some(())
    })
    .await;
    assert!(bed.recordings().await.is_empty(), "never indexed");
    bed.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_the_switch_made_while_callrec_was_away_is_counted_and_kept() {
    // What a call that started and ended while callrec was down leaves when the dialplan
    // armed it: `<spool>/<leg uuid>.wav`, named by no row.
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    let path = bed
        .spool
        .join(format!("{}.wav", callrec_model::RecordingId::new()));
    std::fs::create_dir_all(&bed.spool).unwrap();
    let file = std::fs::File::create(&path).unwrap();
    std::io::Write::write_all(&mut &file, &callrec_testkit::wav::noise(1000, 7)).unwrap();
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(600))
        .unwrap();
    eventually("the spool scan to count the unnamed file", || {
        bed.handle
            .metrics_text()
            .contains("callrec_spool_unnamed_files 1")
            .then_some(())
    })
    .await;
    assert!(path.exists(), "kept for an operator");
    assert!(bed.recordings().await.is_empty());
    bed.stop().await.expect("a clean stop");
}
