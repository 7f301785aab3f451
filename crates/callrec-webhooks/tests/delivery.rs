//! Delivery against a local receiver (`callrec_testkit::hooks`): what is sent, how it is
//! signed (checked by Python's `hmac`, an implementation independent of ours), retries after
//! a 500 and while the receiver is down, nothing lost across a restart, nothing delivered
//! twice once acknowledged, events given up after the give-up age, and site scoping.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use callrec_model::{Direction, NewRecording, RecordingId, RecordingMode, SegmentKind};
use callrec_model::{SegmentSource, SiteId};
use callrec_store::{Access, IngestJob, IngestOutcome, NewUser, Scope, StoreHandle, User};
use callrec_testkit::hooks::{Received, Receiver};
use callrec_testkit::wait::eventually;
use callrec_testkit::wav;
use callrec_webhooks::{WebhookMetrics, WebhookSettings};
use chrono::Utc;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "config-secret-0123456789";

struct World {
    dir: tempfile::TempDir,
    store: StoreHandle,
    spool: PathBuf,
    always: User,
    on_demand: User,
    worker: Option<(CancellationToken, JoinHandle<()>)>,
    metrics: Arc<WebhookMetrics>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        let store = StoreHandle::open(dir.path().join("data")).unwrap();
        let user = |ext: &str, mode| {
            store
                .write_blocking(|s| {
                    let mut new = NewUser::new("default", ext);
                    new.mode = Some(mode);
                    s.add_user(&new, "test")
                })
                .unwrap()
        };
        let always = user("1001", RecordingMode::Always);
        let on_demand = user("1002", RecordingMode::OnDemand);
        World {
            dir,
            store,
            spool,
            always,
            on_demand,
            worker: None,
            metrics: Arc::default(),
        }
    }

    fn config_endpoint(&self, url: &str) {
        self.store
            .write_blocking(|s| s.sync_config_webhooks(&[url.to_owned()]))
            .unwrap();
    }

    fn start_worker(&mut self) {
        let settings = WebhookSettings {
            config_secret: SECRET.to_owned(),
            timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
            poll: Duration::from_millis(20),
            ..WebhookSettings::default()
        };
        self.start_worker_with(settings);
    }

    fn start_worker_with(&mut self, settings: WebhookSettings) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(callrec_webhooks::run(
            self.store.clone(),
            settings,
            self.metrics.clone(),
            stop.clone(),
        ));
        self.worker = Some((stop, task));
    }

    async fn stop_worker(&mut self) {
        if let Some((stop, task)) = self.worker.take() {
            stop.cancel();
            task.await.unwrap();
        }
    }

    fn new_recording(&self, owner: &User) -> (RecordingId, PathBuf) {
        let id = RecordingId::new();
        let spool_path = self.spool.join(format!("{id}.wav"));
        let new = NewRecording {
            id: id.clone(),
            user: owner.id,
            call_uuid: format!("call-{id}"),
            direction: Direction::Inbound,
            from: "02079460000".to_owned(),
            to: owner.extension.clone(),
            started_at: Utc::now(),
            format: "wav".to_owned(),
            spool_path: spool_path.clone(),
        };
        self.store
            .write_blocking(|s| {
                s.create_recording(&new, "daemon")?;
                s.add_segment(
                    &id,
                    SegmentKind::Start,
                    new.started_at,
                    SegmentSource::Policy,
                    "daemon",
                )
            })
            .unwrap();
        (id, spool_path)
    }

    fn stored(&self, owner: &User) -> RecordingId {
        let (id, path) = self.new_recording(owner);
        std::fs::write(&path, wav::noise(1000, 7)).unwrap();
        let job = IngestJob::new(id.clone());
        match self.store.write_blocking(|s| s.ingest(&job)).unwrap() {
            IngestOutcome::Stored { .. } => id,
            other => panic!("expected stored, got {other:?}"),
        }
    }

    fn discarded(&self, owner: &User) -> RecordingId {
        let (id, _) = self.new_recording(owner);
        self.store
            .write_blocking(|s| s.discard(&id, "shorter than min_seconds", Utc::now(), "daemon"))
            .unwrap();
        id
    }

    fn failed(&self, owner: &User) -> RecordingId {
        let (id, _) = self.new_recording(owner);
        self.store
            .write_blocking(|s| s.fail(&id, "the switch refused to start recording", "daemon"))
            .unwrap();
        id
    }

    fn delete(&self, id: &RecordingId) {
        self.store
            .write_blocking(|s| s.delete_recording(id, &Access::system("admin"), "asked"))
            .unwrap();
    }

    /// The endpoint's (only one, or the one with this URL) state as admins see it.
    fn endpoint(&self, url: &str) -> callrec_store::WebhookEndpoint {
        self.store
            .read_blocking(|v| v.webhook_endpoints(&Access::system("test")))
            .unwrap()
            .into_iter()
            .find(|e| e.url == url)
            .expect("the endpoint")
    }
}

fn body(r: &Received) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn acknowledged(receiver: &Receiver) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .filter(|r| r.status == 200)
        .map(body)
        .collect()
}

/// Python's `hmac` checks the signature of `r` under `secret`; returns its verdict.
fn python_verifies(dir: &Path, secret: &str, r: &Received) -> bool {
    let body_path = dir.join("body.json");
    std::fs::write(&body_path, &r.body).unwrap();
    let script = r#"
import hashlib, hmac, sys
secret, header, path = sys.argv[1], sys.argv[2], sys.argv[3]
fields = dict(part.split("=", 1) for part in header.split(","))
body = open(path, "rb").read()
mac = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256)
print("ok" if hmac.compare_digest(mac.hexdigest(), fields["v1"]) else "bad")
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            secret,
            r.header("x-callrec-signature").expect("signed"),
            body_path.to_str().unwrap(),
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "ok"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_event_is_sent_in_order_and_signed_as_pythons_hmac_computes_it() {
    let mut w = World::new();
    let receiver = Receiver::start().await;
    let url = receiver.url("/hook");
    w.config_endpoint(&url);
    let stored = w.stored(&w.always);
    let discarded = w.discarded(&w.always);
    let failed = w.failed(&w.always);
    // A failed recording of an on-demand user is a failure, not a call that went unrecorded.
    let failed_on_demand = w.failed(&w.on_demand);
    w.delete(&stored);
    w.start_worker();

    let got = eventually("six events delivered", || {
        let got = receiver.received();
        (got.len() >= 6).then_some(got)
    })
    .await;
    let kinds: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let b = body(r);
            (
                b["type"].as_str().unwrap().to_owned(),
                b["recording"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("recording.stored", &stored),
        ("recording.discarded", &discarded),
        ("recording.failed", &failed),
        ("call.not_recorded", &failed),
        ("recording.failed", &failed_on_demand),
        ("recording.deleted", &stored),
    ];
    assert_eq!(
        kinds,
        expected
            .iter()
            .map(|(k, id)| (k.to_string(), id.to_string()))
            .collect::<Vec<_>>()
    );
    let mut ids = std::collections::HashSet::new();
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hook");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let b = body(r);
        assert_eq!(r.header("x-callrec-event-id"), b["id"].as_str());
        assert_eq!(r.header("x-callrec-event"), b["type"].as_str());
        assert!(
            ids.insert(b["id"].as_str().unwrap().to_owned()),
            "ids are unique"
        );
        assert!(python_verifies(w.dir.path(), SECRET, r), "{r:?}");
        assert!(!python_verifies(w.dir.path(), "another secret", r));
        // And our own check, which a receiver written in Rust would use.
        let t = Utc::now().timestamp();
        assert!(callrec_webhooks::signature::verify(
            SECRET.as_bytes(),
            r.header("x-callrec-signature").unwrap(),
            &r.body,
            t
        ));
    }
    // The recording as the API shows it: a stored one carries its hash.
    let first = body(&got[0]);
    assert_eq!(first["recording"]["user"], "1001");
    assert!(
        first["recording"]["sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64)
    );
    // A body tampered with does not verify.
    let mut tampered = got[0].clone();
    tampered.body[10] ^= 1;
    assert!(!python_verifies(w.dir.path(), SECRET, &tampered));
    // The receiver answers before the worker writes the outcome down.
    eventually("six recorded as delivered", || {
        w.endpoint(&url).delivered == 6
    })
    .await;
    let e = w.endpoint(&url);
    assert_eq!((e.pending, e.delivered, e.failures), (0, 6, 0), "{e:?}");
    w.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_with_backoff_and_an_acknowledged_event_is_never_sent_again() {
    let mut w = World::new();
    let receiver = Receiver::start().await;
    let url = receiver.url("/hook");
    w.config_endpoint(&url);
    receiver.script(&[500, 503, 500]);
    let first = w.stored(&w.always);
    let second = w.stored(&w.always);
    w.start_worker();
    eventually("both events acknowledged", || {
        acknowledged(&receiver).len() == 2
    })
    .await;
    let got = receiver.received();
    // The first event three times refused, then accepted; the second after it, once: order
    // is kept while an endpoint fails.
    let statuses: Vec<(u16, String)> = got
        .iter()
        .map(|r| {
            (
                r.status,
                body(r)["recording"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (500, first.to_string()),
            (503, first.to_string()),
            (500, first.to_string()),
            (200, first.to_string()),
            (200, second.to_string()),
        ]
    );
    // The same event id on every attempt.
    let ids: std::collections::HashSet<_> = got[..4]
        .iter()
        .map(|r| body(r)["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1);
    // A later event is delivered; the acknowledged ones are not sent again.
    let third = w.stored(&w.always);
    eventually("the third event", || acknowledged(&receiver).len() == 3).await;
    let all = receiver.received();
    assert_eq!(
        all.len(),
        6,
        "nothing sent twice once acknowledged: {all:?}"
    );
    assert_eq!(body(&all[5])["recording"]["id"], third.to_string());
    eventually("three recorded as delivered", || {
        w.endpoint(&url).delivered == 3
    })
    .await;
    let e = w.endpoint(&url);
    assert_eq!((e.pending, e.delivered, e.failures), (0, 3, 0), "{e:?}");
    assert!(
        e.last_error.as_deref().is_some_and(|m| m.contains("500")),
        "{e:?}"
    );
    let text = metrics_text(&w.metrics);
    assert!(
        text.contains(&format!(
            "callrec_webhook_deliveries_total{{endpoint=\"{}\",outcome=\"failed\"}} 3",
            e.id
        )),
        "{text}"
    );
    w.stop_worker().await;
}

fn metrics_text(metrics: &WebhookMetrics) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_while_the_receiver_is_down_and_arrive_when_it_comes_back() {
    let mut w = World::new();
    let mut receiver = Receiver::down().await;
    let url = receiver.url("/hook");
    w.config_endpoint(&url);
    let id = w.stored(&w.always);
    w.start_worker();
    eventually("attempts refused", || {
        let e = w.endpoint(&url);
        e.failures >= 2 && e.pending == 1
    })
    .await;
    let e = w.endpoint(&url);
    assert!(
        e.last_error.is_some() && e.last_failure_at.is_some(),
        "{e:?}"
    );
    assert!(e.next_attempt_at.is_some(), "{e:?}");
    receiver.up().await;
    eventually("delivered after the receiver came back", || {
        acknowledged(&receiver).len() == 1
    })
    .await;
    assert_eq!(
        acknowledged(&receiver)[0]["recording"]["id"],
        id.to_string()
    );
    eventually("the endpoint healthy again", || {
        w.endpoint(&url).failures == 0
    })
    .await;
    w.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_queued_before_a_restart_are_delivered_after_it_once_each() {
    let mut w = World::new();
    let mut receiver = Receiver::down().await;
    let url = receiver.url("/hook");
    w.config_endpoint(&url);
    w.start_worker();
    let ids = [
        w.stored(&w.always),
        w.stored(&w.always),
        w.failed(&w.always),
    ];
    eventually("an attempt refused", || w.endpoint(&url).failures >= 1).await;
    // The daemon stops, and the index is opened afresh by the next start.
    w.stop_worker().await;
    let data = w.dir.path().join("data");
    w.store = StoreHandle::open(&data).unwrap();
    receiver.up().await;
    w.start_worker();
    eventually("four events delivered", || {
        acknowledged(&receiver).len() == 4
    })
    .await;
    let got: Vec<(String, String)> = acknowledged(&receiver)
        .iter()
        .map(|b| {
            (
                b["type"].as_str().unwrap().to_owned(),
                b["recording"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("recording.stored".to_owned(), ids[0].to_string()),
            ("recording.stored".to_owned(), ids[1].to_string()),
            ("recording.failed".to_owned(), ids[2].to_string()),
            ("call.not_recorded".to_owned(), ids[2].to_string()),
        ]
    );
    eventually("four recorded as delivered", || {
        w.endpoint(&url).delivered == 4
    })
    .await;
    let e = w.endpoint(&url);
    assert_eq!((e.pending, e.delivered), (0, 4), "{e:?}");
    w.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_not_accepted_within_the_give_up_age_is_expired_and_counted() {
    let mut w = World::new();
    let receiver = Receiver::down().await;
    let url = receiver.url("/hook");
    w.config_endpoint(&url);
    w.stored(&w.always);
    w.start_worker_with(WebhookSettings {
        config_secret: SECRET.to_owned(),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(100),
        poll: Duration::from_millis(20),
        give_up_after: Duration::from_millis(500),
        ..WebhookSettings::default()
    });
    eventually("the event given up", || {
        let e = w.endpoint(&url);
        e.expired == 1 && e.pending == 0
    })
    .await;
    assert!(w.endpoint(&url).failures >= 1);
    // The metric is counted right after the index says so.
    eventually("the expiry counted", || {
        metrics_text(&w.metrics).contains("outcome=\"expired\"} 1")
    })
    .await;
    w.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_endpoint_gets_its_own_sites_events_only_and_removal_cancels_what_waits() {
    let mut w = World::new();
    let ours = Receiver::start().await;
    let theirs = Receiver::start().await;
    let other = w
        .store
        .write_blocking(|s| s.create_site("other", &callrec_store::SiteSettings::default(), "test"))
        .unwrap();
    let admin_of = |site: SiteId| Access {
        actor: "admin".to_owned(),
        scope: Scope::Site(site),
    };
    let default_site = w.always.site_id;
    let mine = w
        .store
        .write_blocking(|s| {
            s.add_webhook(
                &ours.url("/a"),
                "secret-of-default-site",
                &admin_of(default_site),
            )
        })
        .unwrap();
    w.store
        .write_blocking(|s| {
            s.add_webhook(
                &theirs.url("/b"),
                "secret-of-other-site!",
                &admin_of(other.id),
            )
        })
        .unwrap();
    // An admin sees their site's endpoints, not the other site's.
    let seen = w
        .store
        .read_blocking(|v| v.webhook_endpoints(&admin_of(default_site)))
        .unwrap();
    assert_eq!(seen.iter().map(|e| e.id).collect::<Vec<_>>(), vec![mine.id]);
    let id = w.stored(&w.always);
    w.start_worker();
    eventually("our site's event", || acknowledged(&ours).len() == 1).await;
    eventually("recorded as delivered", || {
        w.endpoint(&ours.url("/a")).delivered == 1
    })
    .await;
    let r = &ours.received()[0];
    assert!(callrec_webhooks::signature::verify(
        b"secret-of-default-site",
        r.header("x-callrec-signature").unwrap(),
        &r.body,
        Utc::now().timestamp()
    ));
    assert_eq!(body(r)["recording"]["id"], id.to_string());
    w.stop_worker().await;
    assert!(
        theirs.received().is_empty(),
        "another site's endpoint got our event"
    );

    // Removed: what waits is cancelled and nothing more is queued.
    w.stored(&w.always);
    w.store
        .write_blocking(|s| s.remove_webhook(mine.id, &admin_of(default_site)))
        .unwrap();
    w.stored(&w.always);
    let e = w.endpoint(&ours.url("/a"));
    assert_eq!(
        (e.enabled, e.pending, e.delivered, e.expired),
        (false, 0, 1, 1),
        "{e:?}"
    );
    let refused = w
        .store
        .write_blocking(|s| s.remove_webhook(mine.id, &admin_of(other.id)));
    assert!(
        matches!(refused, Err(callrec_store::StoreError::UnknownWebhook(_))),
        "{refused:?}"
    );
}
