//! The sample call a storm replays: rendered once, through the real templates, on a
//! private switch with no listeners.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::calls::{CallSpec, Side};
use crate::clock::{ClockMode, SimClock};
use crate::config::SimConfig;
use crate::event::Event;
use crate::switch::Switch;

/// One complete call's events and the UUIDs in them.
pub(crate) struct Sample {
    pub events: Vec<Arc<Event>>,
    pub uuids: Vec<String>,
}

/// 1001 calls 1000: ring, answer, record, hold, unhold, hang up.
pub(crate) fn sample_call(cfg: &SimConfig) -> Result<Sample, crate::template::TemplateError> {
    crate::scripts::library()?;
    let scratch = std::env::temp_dir().join(format!("callrec-sim-storm-{}", uuid::Uuid::new_v4()));
    let cfg = Arc::new(SimConfig {
        spool_dir: scratch.clone(),
        heartbeat: Duration::ZERO,
        clock: ClockMode::manual(),
        ..cfg.clone()
    });
    let clock = SimClock::new(&cfg.clock);
    let (tx, _rx) = watch::channel(0);
    let mut sw = Switch::new(clock.clone(), cfg, tx);
    let mut tap = sw.tap();
    let call = sw.place_call(
        CallSpec::internal("1001", "1000")
            .ring(Duration::from_secs(2))
            .hold(
                Side::Caller,
                Duration::from_secs(10),
                Duration::from_secs(5),
            )
            .talk(Duration::from_secs(30), Side::Caller),
    );
    let run_until = |sw: &mut Switch, t: i64| {
        while let Some((at, task)) = sw.pop_due(t) {
            sw.clock.set(at);
            task(sw);
        }
        sw.clock.set(t);
    };
    let start = clock.now();
    run_until(&mut sw, start + 3_000_000);
    let path = scratch.join("storm.wav");
    let _ = sw.record_start(
        &call.caller_uuid,
        &path.display().to_string(),
        0,
        vec![("callrec_id".into(), "storm".into())],
    );
    run_until(&mut sw, start + 60_000_000);
    let _ = std::fs::remove_dir_all(&scratch);
    let mut events = Vec::new();
    while let Ok(e) = tap.try_recv() {
        events.push(e);
    }
    Ok(Sample {
        events,
        uuids: vec![call.caller_uuid, call.callee_uuid],
    })
}
