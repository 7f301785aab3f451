//! What the daemon's unit tests share: the events of the captures of a real FreeSWITCH
//! (`tests/fixtures/freeswitch/`, read by `callrec_testkit::capture`) in the form the
//! decisions take them, and the recorder every decision test drives, alone or behind a
//! [`Core`].
//!
//! The recorder is built here rather than in the test kit: it is the daemon's own type, and
//! a kit depending on the daemon would give these tests a second copy of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use callrec_model::{PauseBehavior, RecordingId, RecordingMode};
use callrec_store::{Site, SiteSettings, User};
use callrec_testkit::capture;
use tokio::sync::mpsc;

use crate::core::{Core, StoreWork, system_clock};
use crate::directory::{OwnerIndex, testing};
use crate::metrics::Metrics;
use crate::recorder::{IdSource, Recorder, Settings};

/// One event's headers, values percent-decoded.
pub type Headers = HashMap<String, String>;

/// Every `text/event-plain` event of a capture file, in order, as header maps.
pub fn plain_events(file: &str) -> Vec<Headers> {
    capture::frames_of(file)
        .into_iter()
        .filter(|f| f.content_type() == "text/event-plain")
        .map(|f| f.event_headers().into_iter().collect())
        .collect()
}

/// The channel data an outbound-socket capture starts with (the reply to `connect`).
pub fn connect_reply(file: &str) -> Headers {
    capture::frames_of(file)
        .first()
        .expect("a first frame")
        .decoded_envelope()
        .into_iter()
        .collect()
}

/// The `nth` (from 0) `text/event-plain` event named `name` in a capture file, exactly as the
/// switch sent it.
pub fn event_frame(file: &str, name: &str, nth: usize) -> String {
    let frame = capture::frames_of(file)
        .into_iter()
        .filter(|f| {
            f.content_type() == "text/event-plain"
                && f.event_header("Event-Name").as_deref() == Some(name)
        })
        .nth(nth)
        .unwrap_or_else(|| panic!("{file} has no {name} number {nth}"));
    String::from_utf8(frame.bytes).expect("utf-8 frame")
}

/// Where the test recorders put recordings.
pub const SPOOL: &str = "/var/spool/callrec";

/// Recording ids a test can predict: `01900000-0000-7000-8000-000000000001`, `…002`, ….
fn ids() -> IdSource {
    let mut n = 0u32;
    Box::new(move || {
        n += 1;
        format!("01900000-0000-7000-8000-{n:012}")
            .parse::<RecordingId>()
            .expect("a valid id")
    })
}

/// Site `default` with its default settings, pausing by `pause`.
pub fn site(pause: PauseBehavior) -> Site {
    testing::site(
        "default",
        SiteSettings {
            pause_behavior: pause,
            ..SiteSettings::default()
        },
    )
}

/// User `ext` of site `default`, recorded by `mode`.
pub fn user(ext: &str, mode: RecordingMode) -> User {
    testing::user(&site(PauseBehavior::Silence), ext, mode, &[])
}

/// A recorder over `owners`: recordings under [`SPOOL`] as WAV, the default owner headers
/// and feature codes, predictable ids.
pub fn recorder_in(owners: OwnerIndex) -> Recorder {
    let settings = Settings {
        spool_dir: SPOOL.into(),
        format: "wav".into(),
        owner_headers: Settings::default_owner_headers(),
        feature_codes: callrec_config::FeatureCodesConfig::default(),
        resumed_prompt: "/prompts/resumed.wav".into(),
    };
    Recorder::new(settings, owners, ids())
}

/// A recorder for `users` of site `default`, which pauses with silence.
pub fn recorder(users: &[(&str, RecordingMode)]) -> Recorder {
    recorder_with(users, PauseBehavior::Silence)
}

/// A recorder for `users` of site `default`, which pauses by `pause`.
pub fn recorder_with(users: &[(&str, RecordingMode)], pause: PauseBehavior) -> Recorder {
    let users = users.iter().map(|(e, m)| user(e, *m)).collect();
    recorder_in(testing::index(vec![site(pause)], users))
}

/// `recorder` behind a [`Core`] as the daemon runs it, its store work sent to `store`.
pub fn core(recorder: Recorder, store: mpsc::UnboundedSender<StoreWork>) -> Arc<Core> {
    Arc::new(Core::new(
        recorder,
        Arc::new(Metrics::default()),
        store,
        system_clock(),
        Duration::from_secs(2),
    ))
}
