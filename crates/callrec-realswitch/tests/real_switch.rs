//! callrec against a real FreeSWITCH (issue 9): calls placed on the switch, recordings checked
//! through the API and in the WAV files the switch wrote.
//!
//! Run by `scripts/real-switch.sh` (which builds or reuses the switch and builds `callrec`);
//! only built with `--features real-switch`. Each test has its own switch (own configuration,
//! ports and directories) and its own callrec installation.
//!
//! Calls are loopback originates: `loopback/9999/default` answers and plays a 440 Hz tone
//! (1 s on, 0.5 s off) on the B leg while the A leg parks, with `callrec_user=1001` on the
//! call so that it is 1001's, as an authenticated phone's would be. The switch hangs each
//! call up a set time after answer (`sched_hangup`).

use std::time::Duration;

use callrec_realswitch::{Callrec, Switch, free_addr, segment_kinds, segment_sources};

const SEC: Duration = Duration::from_secs(1);

/// A loopback leg's recording ends about 0.5 s before the call (mod_loopback queues frames;
/// `../shared/freeswitch/README.md`), and starting it after answer costs a little more.
const SHORTFALL: f64 = 1.0;

fn switch_and_callrec(users: &[(&str, &str)]) -> (Switch, Callrec) {
    let switch = Switch::start(free_addr());
    let callrec = Callrec::start(&switch, users);
    (switch, callrec)
}

#[test]
fn an_always_call_is_recorded_once_from_answer_to_hangup() {
    let (switch, callrec) = switch_and_callrec(&[("1001", "always")]);
    let uuid = switch.call("callrec_user=1001", 5);
    let recs = callrec.stored(1, 30 * SEC);
    let rec = &recs[0];
    assert_eq!(rec["user"], "1001");
    let wav = callrec.wav(rec["id"].as_str().unwrap());
    assert_eq!(wav.rate, 8000);
    assert!(
        (5.0 - SHORTFALL..=5.1).contains(&wav.seconds()),
        "a 5 s call gave {:.2} s of audio",
        wav.seconds()
    );
    let duration_ms = rec["duration_ms"].as_f64().unwrap_or(0.0);
    assert!(
        (duration_ms / 1000.0 - wav.seconds()).abs() < 0.05,
        "duration_ms {duration_ms} vs the file's {:.3} s",
        wav.seconds()
    );
    assert!(wav.peak(0.0, 1.0) > 1000, "the tone is in the recording");
    assert!(wav.silences(0.7).is_empty(), "{:?}", wav.silences(0.7));
    assert_eq!(
        segment_kinds(&callrec.recording(rec["id"].as_str().unwrap())),
        ["start", "stop"]
    );
    eprintln!("call {uuid}: recording {rec:#}");
    switch.wait_idle(10 * SEC);
}
