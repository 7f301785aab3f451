//! Load for the benchmarks: calls placed at a set rate stay live as long as they talk, and
//! an event storm delivers complete, parseable calls with unique UUIDs, only the events a
//! listener subscribed to. (How fast is for `benches/emit.rs`, not for tests.)

mod support;

use std::collections::HashSet;
use std::time::Duration;

use callrec_model::EventFormat;
use callrec_sim::load::{LoadSpec, StormSpec};
use callrec_sim::{SimConfig, Simulator};
use freeswitch_esl_tokio::{EslClient, EslEventType};
use support::RawClient;
use support::compare::Ev;

async fn sim() -> (Simulator, tempfile::TempDir) {
    let spool = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.path().into(),
        heartbeat: Duration::ZERO,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    (sim, spool)
}

#[tokio::test]
async fn calls_at_a_set_rate_are_live_together_then_end() {
    let (sim, _spool) = sim().await;
    let mut events = sim.subscribe();
    sim.start_load(LoadSpec {
        calls: 200,
        per_second: 20.0,
        callers: (1000..1050).map(|n| n.to_string()).collect(),
        callees: vec!["02071234567".into(), "1099".into()],
        ring: Duration::from_secs(1),
        talk: Duration::from_secs(60),
    });
    sim.advance(Duration::from_secs(11)).expect("clock");
    assert_eq!(
        sim.channels().len(),
        400,
        "200 calls of two legs each are up"
    );
    sim.advance(Duration::from_secs(60)).expect("clock");
    assert!(
        sim.channels().is_empty(),
        "every call ended after its talk time"
    );
    let mut answered = HashSet::new();
    let mut completed = 0;
    while let Ok(e) = events.try_recv() {
        match e.name() {
            "CHANNEL_ANSWER" => {
                answered.insert(e.unique_id().unwrap_or("").to_string());
            }
            "CHANNEL_HANGUP_COMPLETE" => completed += 1,
            _ => {}
        }
    }
    assert_eq!(answered.len(), 400);
    assert_eq!(completed, 400);
}

#[tokio::test]
async fn a_storm_delivers_complete_calls_with_unique_uuids() {
    let (sim, _spool) = sim().await;
    let mut raw = RawClient::connect(sim.esl_addr(), "ClueCon").await;
    raw.command("event plain ALL").await;
    let calls = 60;
    let reader = tokio::spawn(async move {
        let mut evs = Vec::new();
        // Until the simulator drops the connection after the storm.
        while let Some(f) = raw.next_event(Duration::from_secs(10)).await {
            evs.push(Ev::of(&f));
        }
        evs
    });
    let reports = sim
        .event_storm(StormSpec {
            calls,
            format: EventFormat::Plain,
        })
        .await
        .expect("storm");
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    sim.drop_connections();
    let evs = reader.await.expect("reader");
    assert_eq!(evs.len() as u64, report.events, "every event parsed");
    let per_call = report.events as usize / calls;
    assert!(
        per_call > 100,
        "a full call is over a hundred events ({per_call})"
    );
    let uuids: HashSet<&str> = evs.iter().filter_map(|e| e.uuid.as_deref()).collect();
    assert_eq!(
        uuids.len(),
        2 * calls,
        "two legs per call, each its own UUID"
    );
    let biggest = evs.iter().map(|e| e.names.len()).max().unwrap_or(0);
    assert!(
        biggest > 200,
        "full-size channel events ({biggest} headers)"
    );
    let answers = evs.iter().filter(|e| e.label == "CHANNEL_ANSWER").count();
    assert_eq!(answers, 2 * calls);
}

#[tokio::test]
async fn a_storm_sends_only_what_the_client_subscribed_to_and_the_client_parses_it() {
    let (sim, _spool) = sim().await;
    let addr = sim.esl_addr();
    let (client, mut events) = EslClient::connect(&addr.ip().to_string(), addr.port(), "ClueCon")
        .await
        .expect("connect");
    client
        .subscribe_events(
            freeswitch_esl_tokio::EventFormat::Json,
            [
                EslEventType::ChannelAnswer,
                EslEventType::ChannelHangupComplete,
                EslEventType::RecordStop,
            ],
        )
        .await
        .expect("subscribe");
    let calls = 20;
    let counter = tokio::spawn(async move {
        let mut names = Vec::new();
        while names.len() < calls * 5 {
            match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
                Ok(Some(Ok(ev))) => {
                    names.push(ev.header_str("Event-Name").unwrap_or("").to_string())
                }
                Ok(Some(Err(e))) => panic!("the client rejected a storm event: {e}"),
                _ => break,
            }
        }
        names
    });
    let reports = sim
        .event_storm(StormSpec {
            calls,
            format: EventFormat::Json,
        })
        .await
        .expect("storm");
    assert_eq!(reports[0].events, (calls * 5) as u64);
    let names = counter.await.expect("counter");
    assert_eq!(names.len(), calls * 5);
    assert_eq!(
        names.iter().filter(|n| *n == "CHANNEL_ANSWER").count(),
        2 * calls
    );
    assert_eq!(names.iter().filter(|n| *n == "RECORD_STOP").count(), calls);
}
