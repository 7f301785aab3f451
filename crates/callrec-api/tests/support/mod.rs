//! What the API's tests share: a store in a temporary directory with two sites, users and
//! tokens; recordings made the way the daemon makes them (row, file in the spool, ingest);
//! a scripted daemon double; and requests through the routes in-process (`warp::test`).
#![allow(dead_code)]

pub mod portal;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use callrec_api::{ApiConfig, ApiState};
use callrec_model::NewRecording;
use callrec_model::{ActionError, CallRecording, LiveCall, RecordingAction};
use callrec_model::{ActionRequest, BoxFuture, DaemonStatus, LiveCalls};
use callrec_model::{Direction, RecordingId, RecordingMode, Role, SegmentKind, SegmentSource};
use callrec_store::{
    Access, AuditEntry, IngestJob, IngestOutcome, NewUser, Recording, SiteSettings, Store,
    StoreHandle, User,
};
use callrec_testkit::wav;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warp::http::Response;

/// A response read off the wire: status, headers (lower-case names), body.
pub struct Wire {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Wire {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Send raw request bytes and read the response to the end of the connection.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Wire {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_response(&mut s).await
}

pub async fn read_response(s: &mut tokio::net::TcpStream) -> Wire {
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut raw))
        .await
        .expect("the server did not close the connection")
        .unwrap();
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8(raw[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let body = raw[head_end + 4..].to_vec();
    Wire {
        status,
        headers,
        body,
    }
}

/// `callrec_api::serve` on a loopback port of its own, until `stop`.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Asks the server to stop and waits until `serve` has returned.
    pub async fn shut_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(std::time::Duration::from_secs(30), self.server)
            .await
            .expect("serve returned after shutdown")
            .unwrap();
    }
}

/// Serves `w`'s state on a new loopback port.
pub async fn start(w: &World) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(callrec_api::serve(listener, w.state.clone(), async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        server,
    }
}

/// The instant the test recordings start around.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

/// Someone who calls the API.
#[derive(Debug, Clone)]
pub struct Person {
    pub user: User,
    pub token: String,
}

impl Person {
    pub fn actor(&self) -> String {
        format!("{}@{}", self.user.extension, self.user.site)
    }
}

/// A call the fake daemon knows, and its owner's mode.
#[derive(Debug, Clone)]
struct FakeCall {
    call: LiveCall,
    mode: RecordingMode,
}

/// A daemon double: a call table the test sets, the mode rules of the feature codes, and a
/// log of the actions it was asked for.
#[derive(Default)]
pub struct FakeDaemon {
    calls: Mutex<Vec<FakeCall>>,
    pub connected: AtomicBool,
    pub actions: Mutex<Vec<ActionRequest>>,
}

impl FakeDaemon {
    pub fn add_call(&self, call: LiveCall, mode: RecordingMode) {
        self.calls.lock().unwrap().push(FakeCall { call, mode });
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::SeqCst);
    }
}

impl LiveCalls for FakeDaemon {
    fn calls(&self) -> Vec<LiveCall> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.call.clone())
            .collect()
    }

    fn recording_action(
        &self,
        request: ActionRequest,
    ) -> BoxFuture<'_, Result<LiveCall, ActionError>> {
        Box::pin(async move {
            self.actions.lock().unwrap().push(request.clone());
            if !self.connected.load(Ordering::SeqCst) {
                return Err(ActionError::SwitchUnavailable {
                    action: request.action.as_str(),
                });
            }
            let mut calls = self.calls.lock().unwrap();
            let Some(c) = calls
                .iter_mut()
                .find(|c| c.call.call_uuid == request.call_uuid)
            else {
                return Err(ActionError::UnknownCall(request.call_uuid));
            };
            use CallRecording as R;
            use RecordingAction as A;
            let next = match (request.action, c.call.recording) {
                (A::Start, _) if c.mode == RecordingMode::Never => {
                    return Err(ActionError::Refused {
                        action: "start",
                        mode: c.mode,
                    });
                }
                (A::Pause, _) if !c.mode.may_pause() => {
                    return Err(ActionError::Refused {
                        action: "pause",
                        mode: c.mode,
                    });
                }
                (A::Start, R::Off) => R::Recording,
                (A::Pause, R::Recording) => R::Paused,
                (A::Resume, R::Paused) => R::Recording,
                (A::Stop, R::Recording | R::Paused) => R::Off,
                (a, now) => {
                    return Err(ActionError::Conflict {
                        action: a.as_str(),
                        reason: match now {
                            R::Off => "not recording",
                            R::Recording => "recording, not paused",
                            R::Paused => "paused",
                        },
                    });
                }
            };
            c.call.recording = next;
            Ok(c.call.clone())
        })
    }

    fn status(&self) -> DaemonStatus {
        DaemonStatus {
            esl_connected: self.connected.load(Ordering::SeqCst),
        }
    }

    fn metrics_text(&self) -> String {
        let up = u8::from(self.connected.load(Ordering::SeqCst));
        format!(
            "# HELP callrec_esl_connected up\n# TYPE callrec_esl_connected gauge\ncallrec_esl_connected {up}\n# EOF\n"
        )
    }
}

/// A store with two sites and people in them, the API over it, and a daemon double.
pub struct World {
    pub dir: tempfile::TempDir,
    pub store: StoreHandle,
    pub state: ApiState,
    pub daemon: Arc<FakeDaemon>,
    pub spool: PathBuf,
    /// User 1001 of site `default`.
    pub alice: Person,
    /// User 1002 of site `default`.
    pub bob: Person,
    /// Admin 9000 of site `default`.
    pub admin: Person,
    /// Admin 9000 of site `other` (same extension, other tenant).
    pub stranger: Person,
    seed: u64,
}

impl World {
    pub fn new() -> World {
        World::with_config(ApiConfig::default())
    }

    pub fn with_config(config: ApiConfig) -> World {
        World::with_clock(config, Arc::new(callrec_model::SystemClock))
    }

    /// A world whose store reads the time from `clock` (sessions expire, throttles end,
    /// audit entries are stamped by it).
    pub fn with_clock(config: ApiConfig, clock: Arc<dyn callrec_model::Clock>) -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_with_clock(dir.path().join("data"), clock).unwrap();
        store
            .create_site("other", &SiteSettings::default(), "test")
            .unwrap();
        let mut person = |site: &str, ext: &str, role: Role, numbers: &[&str]| {
            let mut new = NewUser::new(site, ext);
            new.role = role;
            new.numbers = numbers.iter().map(|n| n.to_string()).collect();
            let user = store.add_user(&new, "test").unwrap();
            let token = store
                .create_token(user.id, "test", &Access::system("test"))
                .unwrap()
                .secret;
            Person { user, token }
        };
        let alice = person("default", "1001", Role::User, &["02079460001"]);
        let bob = person("default", "1002", Role::User, &["02079460002"]);
        let admin = person("default", "9000", Role::Admin, &[]);
        let stranger = person("other", "9000", Role::Admin, &[]);
        let store = StoreHandle::new(store);
        let daemon = Arc::new(FakeDaemon::default());
        daemon.set_connected(true);
        let state = ApiState::with_config(store.clone(), daemon.clone(), config);
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        World {
            dir,
            store,
            state,
            daemon,
            spool,
            alice,
            bob,
            admin,
            stranger,
            seed: 0,
        }
    }

    /// A stored recording of `owner`: row created, file written to the spool, ingested.
    /// Returns the recording and the file's bytes.
    pub fn record(
        &mut self,
        owner: &User,
        from: &str,
        to: &str,
        started_at: DateTime<Utc>,
        ms: u32,
    ) -> (Recording, Vec<u8>) {
        self.seed += 1;
        let bytes = wav::noise(ms, self.seed);
        let rec = record_with(
            &self.store,
            &self.spool,
            owner,
            from,
            to,
            started_at,
            &bytes,
            Direction::Outbound,
        );
        (rec, bytes)
    }

    /// Like [`World::record`], with segments (`kind`, milliseconds from the start) marked
    /// after the start and before the file is ingested, as the daemon marks pauses.
    pub fn record_segments(
        &mut self,
        owner: &User,
        started_at: DateTime<Utc>,
        ms: u32,
        marks: &[(SegmentKind, i64)],
    ) -> Recording {
        self.seed += 1;
        let bytes = wav::noise(ms, self.seed);
        let marks: Vec<_> = marks
            .iter()
            .map(|(k, at)| (*k, started_at + Duration::milliseconds(*at)))
            .collect();
        record_full(
            &self.store,
            &self.spool,
            owner,
            ("1001", "01234567890"),
            started_at,
            &bytes,
            Direction::Outbound,
            &marks,
        )
    }

    /// Like [`World::record`] with a direction.
    pub fn record_dir(
        &mut self,
        owner: &User,
        from: &str,
        to: &str,
        started_at: DateTime<Utc>,
        ms: u32,
        direction: Direction,
    ) -> Recording {
        self.seed += 1;
        let bytes = wav::noise(ms, self.seed);
        record_with(
            &self.store,
            &self.spool,
            owner,
            from,
            to,
            started_at,
            &bytes,
            direction,
        )
    }

    /// A request of `person` (with their bearer token).
    pub fn req(&self, person: &Person, method: &str, path: &str) -> warp::test::RequestBuilder {
        warp::test::request()
            .method(method)
            .path(path)
            .header("authorization", format!("Bearer {}", person.token))
    }

    /// A request with no token.
    pub fn anon(&self, method: &str, path: &str) -> warp::test::RequestBuilder {
        warp::test::request().method(method).path(path)
    }

    /// Send a request through the routes.
    pub async fn send(&self, req: warp::test::RequestBuilder) -> Response<Bytes> {
        req.reply(&callrec_api::routes(self.state.clone())).await
    }

    /// Send and read the JSON reply.
    pub async fn json(&self, req: warp::test::RequestBuilder) -> (u16, Value) {
        let resp = self.send(req).await;
        let status = resp.status().as_u16();
        let body = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
        (status, body)
    }

    /// The newest audit sequence number (every site).
    pub async fn audit_head(&self) -> i64 {
        self.store
            .read(|v| v.audit(None, None, 1))
            .await
            .unwrap()
            .entries
            .first()
            .map_or(0, |e| e.seq)
    }

    /// Audit entries written after `seq`, oldest first, from every site.
    pub async fn audit_since(&self, seq: i64) -> Vec<AuditEntry> {
        let mut entries = self
            .store
            .read(|v| v.audit(None, None, 500))
            .await
            .unwrap()
            .entries;
        entries.retain(|e| e.seq > seq);
        entries.reverse();
        entries
    }

    /// A live call of `owner` known to the daemon double.
    pub fn live_call(&self, owner: &User, uuid: &str, mode: RecordingMode) -> LiveCall {
        let call = LiveCall {
            call_uuid: uuid.to_owned(),
            site: owner.site.clone(),
            user: owner.extension.clone(),
            direction: Direction::Outbound,
            from: owner.extension.clone(),
            to: "02079461234".to_owned(),
            answered_at: t0(),
            on_hold: false,
            recording: if mode.records_on_answer() {
                CallRecording::Recording
            } else {
                CallRecording::Off
            },
            recording_id: None,
        };
        self.daemon.add_call(call.clone(), mode);
        call
    }
}

/// Make a stored recording in `store` (callable from other threads).
#[allow(clippy::too_many_arguments)]
pub fn record_with(
    store: &StoreHandle,
    spool: &std::path::Path,
    owner: &User,
    from: &str,
    to: &str,
    started_at: DateTime<Utc>,
    bytes: &[u8],
    direction: Direction,
) -> Recording {
    record_full(
        store,
        spool,
        owner,
        (from, to),
        started_at,
        bytes,
        direction,
        &[],
    )
}

/// [`record_with`], with more segments after the start.
#[allow(clippy::too_many_arguments)]
pub fn record_full(
    store: &StoreHandle,
    spool: &std::path::Path,
    owner: &User,
    (from, to): (&str, &str),
    started_at: DateTime<Utc>,
    bytes: &[u8],
    direction: Direction,
    marks: &[(SegmentKind, DateTime<Utc>)],
) -> Recording {
    let id = RecordingId::new();
    let spool_path = spool.join(format!("{id}.wav"));
    let new = NewRecording {
        id: id.clone(),
        user: owner.id,
        call_uuid: format!("call-{id}"),
        direction,
        from: from.to_owned(),
        to: to.to_owned(),
        started_at,
        format: "wav".to_owned(),
        spool_path: spool_path.clone(),
    };
    store
        .write_blocking(|s| {
            s.create_recording(&new, "daemon")?;
            s.add_segment(
                &id,
                SegmentKind::Start,
                started_at,
                SegmentSource::Policy,
                "daemon",
            )?;
            for (kind, at) in marks {
                s.add_segment(&id, *kind, *at, SegmentSource::Api, "1001@default")?;
            }
            Ok(())
        })
        .unwrap();
    std::fs::write(&spool_path, bytes).unwrap();
    let mut job = IngestJob::new(id.clone());
    job.ended_at = Some(started_at + Duration::milliseconds(i64::from(bytes.len() as u32 / 16)));
    match store.write_blocking(|s| s.ingest(&job)).unwrap() {
        IngestOutcome::Stored { .. } => {}
        other => panic!("expected stored, got {other:?}"),
    }
    store
        .read_blocking(|v| v.recording(&id, &Access::system("test")))
        .unwrap()
}

/// The error code of a JSON error reply, asserting the shape.
pub fn error_code(body: &Value) -> &str {
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {body}"
    );
    e["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error reply: {body}"))
}

/// Open `zip` with Python's `zipfile`, check every CRC (`testzip`), and return each entry's
/// name, size and SHA-256, and the manifest.
pub fn read_with_python(zip: &[u8]) -> (std::collections::BTreeMap<String, (u64, String)>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.zip");
    std::fs::write(&path, zip).unwrap();
    let script = r#"
import hashlib, json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
bad = z.testzip()
if bad is not None:
    raise SystemExit("bad CRC in " + bad)
out = {"entries": {}, "manifest": json.loads(z.read("manifest.json"))}
for i in z.infolist():
    data = z.read(i.filename)
    out["entries"][i.filename] = [i.file_size, hashlib.sha256(data).hexdigest()]
print(json.dumps(out))
"#;
    let run = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        run.status.success(),
        "python's zipfile refused the export: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out: Value = serde_json::from_slice(&run.stdout).unwrap();
    let entries = out["entries"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v[0].as_u64().unwrap(), v[1].as_str().unwrap().to_owned()),
            )
        })
        .collect();
    (entries, out["manifest"].clone())
}
