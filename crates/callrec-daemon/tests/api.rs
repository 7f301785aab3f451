//! The REST API against the real daemon and the simulated switch: what a recording action on
//! a call in progress leaves in the audit log (exactly one entry, naming the token's user).

mod support;

use std::sync::Arc;
use std::time::Duration;

use callrec_api::ApiState;
use callrec_model::RecordingMode;
use callrec_sim::{CallSpec, Side};
use callrec_store::{Access, AuditEntry};
use callrec_testkit::wait::{eventually, eventually_async};
use support::{Bed, Setup};

const S: fn(u64) -> Duration = Duration::from_secs;

struct Api {
    state: ApiState,
    token: String,
}

impl Api {
    async fn for_user(bed: &Bed, extension: &'static str) -> Api {
        let token = bed
            .store
            .write(move |s| {
                let user = s.view().user("default", extension)?;
                s.create_token(user.id, "test", &Access::system("test"))
            })
            .await
            .unwrap()
            .secret;
        Api {
            state: ApiState::new(bed.store.clone(), Arc::new(bed.handle.clone())),
            token,
        }
    }

    async fn post(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = warp::test::request()
            .method("POST")
            .path(path)
            .header("authorization", format!("Bearer {}", self.token))
            .reply(&callrec_api::routes(self.state.clone()))
            .await;
        let body = serde_json::from_slice(resp.body()).unwrap_or(serde_json::Value::Null);
        (resp.status().as_u16(), body)
    }
}

async fn audit_head(bed: &Bed) -> i64 {
    bed.store
        .read(|v| v.audit(None, None, 1))
        .await
        .unwrap()
        .entries
        .first()
        .map_or(0, |e| e.seq)
}

async fn audit_since(bed: &Bed, seq: i64) -> Vec<AuditEntry> {
    let mut entries = bed
        .store
        .read(|v| v.audit(None, None, 500))
        .await
        .unwrap()
        .entries;
    entries.retain(|e| e.seq > seq);
    entries.reverse();
    entries
}

/// `(actor, action, target)` of entries.
fn summary(entries: &[AuditEntry]) -> Vec<(String, String, String)> {
    entries
        .iter()
        .map(|e| (e.actor.clone(), e.action.clone(), e.target.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_recording_action_through_the_api_is_audited_exactly_once_naming_the_user() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::AlwaysPausable)])).await;
    let api = Api::for_user(&bed, "1001").await;
    bed.sim.place_call(
        CallSpec::inbound("02079460000", "1001")
            .ring(S(1))
            .talk(S(60), Side::Caller),
    );
    bed.advance(S(1));
    bed.recording_on_switch(1).await;
    let call = eventually("the call with its recording", || {
        bed.handle
            .live_calls()
            .into_iter()
            .find(|c| c.recording_id.is_some())
    })
    .await;
    let first = call.recording_id.clone().unwrap();
    let target = format!("recording:{first}");
    // The policy's own entries for the answer (row, start segment) are in before we act.
    eventually_async("the policy's start entry", || {
        let (bed, target) = (&bed, &target);
        async move {
            let e = audit_since(bed, 0).await;
            e.iter()
                .any(|e| e.action == "recording.start" && &e.target == target)
                .then_some(())
        }
    })
    .await;

    for action in ["pause", "resume"] {
        let head = audit_head(&bed).await;
        let (status, body) = api
            .post(&format!(
                "/api/v1/calls/{}/recording/{action}",
                call.call_uuid
            ))
            .await;
        assert_eq!(status, 200, "{action}: {body}");
        // Answered once the entry is in: no waiting needed.
        let entries = audit_since(&bed, head).await;
        assert_eq!(
            summary(&entries),
            vec![(
                "1001@default".to_owned(),
                format!("recording.{action}"),
                target.clone()
            )],
            "{action}"
        );
        assert!(
            entries[0].detail.contains("\"api\""),
            "{}",
            entries[0].detail
        );
    }

    // A stop is written when the switch closes the file (RECORD_STOP), with who asked.
    let head = audit_head(&bed).await;
    let (status, body) = api
        .post(&format!("/api/v1/calls/{}/recording/stop", call.call_uuid))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut stop_entries = Vec::new();
    eventually_async("the stop's entry", || {
        let bed = &bed;
        async move {
            let e = audit_since(bed, head).await;
            e.iter().any(|e| e.action == "recording.stop").then_some(e)
        }
    })
    .await
    .into_iter()
    .filter(|e| e.actor == "1001@default")
    .for_each(|e| stop_entries.push(e));
    assert_eq!(
        summary(&stop_entries),
        vec![(
            "1001@default".to_owned(),
            "recording.stop".to_owned(),
            target.clone()
        )]
    );

    // The stopped recording's own end (discarded: it is shorter than `min_seconds`) is
    // written by the store writer after RECORD_STOP; wait for it, so the entries below are
    // the start's alone.
    eventually_async("the stopped recording's end", || {
        let (bed, target) = (&bed, &target);
        async move {
            let e = audit_since(bed, 0).await;
            e.iter()
                .any(|e| {
                    &e.target == target
                        && [
                            "recording.discarded",
                            "recording.stored",
                            "recording.failed",
                        ]
                        .contains(&e.action.as_str())
                })
                .then_some(())
        }
    })
    .await;

    // A start makes a new recording: the index's row is the system's (`recording.create` by
    // callrec, as for every recording), the action is the user's, once.
    let head = audit_head(&bed).await;
    let (status, body) = api
        .post(&format!("/api/v1/calls/{}/recording/start", call.call_uuid))
        .await;
    assert_eq!(status, 200, "{body}");
    let second = body["recording_id"].as_str().unwrap().to_owned();
    assert_ne!(second, first.to_string());
    let entries = audit_since(&bed, head).await;
    let by_user: Vec<_> = entries
        .iter()
        .filter(|e| e.actor == "1001@default")
        .collect();
    assert_eq!(by_user.len(), 1, "{:?}", summary(&entries));
    assert_eq!(
        (by_user[0].action.as_str(), by_user[0].target.as_str()),
        ("recording.start", format!("recording:{second}").as_str())
    );
    assert!(
        entries
            .iter()
            .all(|e| e.actor == "1001@default" || e.action == "recording.create"),
        "{:?}",
        summary(&entries)
    );
    assert!(
        !entries.iter().any(|e| e.action.starts_with("call.")),
        "{:?}",
        summary(&entries)
    );

    bed.advance(S(60));
    bed.stop().await.unwrap();
}
