//! What the archive client's tests share: a real API server on `127.0.0.1:0` over a store
//! seeded the way the daemon fills it (row, spool file, ingest), and a TCP proxy between the
//! client and the server that can cut a download or flip a byte of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callrec_archive::{ArchiveConfig, RetryPolicy, Token};
use callrec_model::{Direction, NewRecording, RecordingId, Role, SegmentKind, SegmentSource};
use callrec_store::{
    Access, IngestJob, IngestOutcome, NewUser, Recording, SiteUpdate, Store, StoreHandle, User,
};
use callrec_testkit::wav;
use chrono::{DateTime, TimeZone, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The instant the seeded recordings start from.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

/// A user and their token.
#[derive(Debug, Clone)]
pub struct Person {
    pub user: User,
    pub token: String,
}

/// A callrec server in this process, with users alice (1001), bob (1002) and an admin
/// (9000) in site `default`, whose time zone is Europe/London.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub store: StoreHandle,
    pub spool: PathBuf,
    pub alice: Person,
    pub bob: Person,
    pub admin: Person,
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    seed: u64,
}

impl Site {
    pub async fn start() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("data")).unwrap();
        store
            .update_site(
                "default",
                &SiteUpdate {
                    timezone: Some(chrono_tz::Tz::Europe__London),
                    ..SiteUpdate::default()
                },
                "test",
            )
            .unwrap();
        let mut person = |ext: &str, role: Role| {
            let mut new = NewUser::new("default", ext);
            new.role = role;
            let user = store.add_user(&new, "test").unwrap();
            let token = store
                .create_token(user.id, "archive", &Access::system("test"))
                .unwrap()
                .secret;
            Person { user, token }
        };
        let alice = person("1001", Role::User);
        let bob = person("1002", Role::User);
        let admin = person("9000", Role::Admin);
        let store = StoreHandle::new(store);
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = callrec_api::ApiState::new(store.clone(), Arc::new(callrec_api::NoDaemon));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(callrec_api::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Site {
            dir,
            store,
            spool,
            alice,
            bob,
            admin,
            addr,
            stop: Some(stop),
            seed: 0,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `n` stored recordings of `owner`, a minute apart from `start`, each `ms` of audio.
    pub fn record(
        &mut self,
        owner: &User,
        n: usize,
        start: DateTime<Utc>,
        ms: u32,
    ) -> Vec<Recording> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            self.seed += 1;
            let bytes = wav::noise(ms, self.seed);
            let to = format!("0163296{:04}", i % 10_000);
            let at = start + chrono::Duration::minutes(i as i64);
            out.push(tokio::task::block_in_place(|| {
                record_with(&self.store, &self.spool, owner, &to, at, &bytes)
            }));
        }
        out
    }

    /// The bytes of a stored recording, from the store.
    pub fn stored_bytes(&self, rec: &Recording) -> Vec<u8> {
        let id = rec.id.clone();
        let file = self
            .store
            .write_blocking(|s| {
                s.open_file(
                    &id,
                    &Access::system("test"),
                    callrec_store::FilePurpose::Archive,
                )
            })
            .unwrap();
        std::fs::read(file.path).unwrap()
    }

    /// An archive configuration for `person` into `dest`, against `server` (the site or a
    /// proxy), with quick retries.
    pub fn config(&self, person: &Person, server: &str, dest: &Path) -> ArchiveConfig {
        let mut c = ArchiveConfig::new(server, Token::new(&person.token).unwrap(), dest);
        c.client_name = "test-archive".into();
        c.retry = RetryPolicy {
            attempts: 4,
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        };
        c
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Make a stored recording the way the daemon does: the row, the file in the spool, ingest.
pub fn record_with(
    store: &StoreHandle,
    spool: &Path,
    owner: &User,
    to: &str,
    started_at: DateTime<Utc>,
    bytes: &[u8],
) -> Recording {
    let id = RecordingId::new();
    let spool_path = spool.join(format!("{id}.wav"));
    let new = NewRecording {
        id: id.clone(),
        user: owner.id,
        call_uuid: format!("call-{id}"),
        direction: Direction::Outbound,
        from: owner.extension.clone(),
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
            )
        })
        .unwrap();
    std::fs::write(&spool_path, bytes).unwrap();
    let mut job = IngestJob::new(id.clone());
    job.ended_at = Some(started_at + chrono::Duration::seconds(5));
    match store.write_blocking(|s| s.ingest(&job)).unwrap() {
        IngestOutcome::Stored { .. } => {}
        other => panic!("expected stored, got {other:?}"),
    }
    store
        .read_blocking(|v| v.recording(&id, &Access::system("test")))
        .unwrap()
}

/// Every file under `dir` (relative, `/`-separated), the client's own folder left out.
pub fn archived_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel.starts_with(".callrec-archive") || rel == "filler" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// What the proxy does to a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Pass this many bytes of the body, then close the connection.
    CutAfter(usize),
    /// Invert the body's byte at this offset.
    FlipByte(usize),
}

#[derive(Debug)]
struct Rule {
    path: String,
    fault: Fault,
    times: usize,
}

/// A TCP proxy in front of the server, logging each request's first line and Range header,
/// and applying a fault to the responses of requests whose line contains a given text.
#[derive(Clone)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    rules: Arc<Mutex<Vec<Rule>>>,
    requests: Arc<Mutex<Vec<String>>>,
    faults_applied: Arc<Mutex<usize>>,
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = FaultProxy {
            addr: listener.local_addr().unwrap(),
            rules: Arc::default(),
            requests: Arc::default(),
            faults_applied: Arc::default(),
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let p = p.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        p.relay(client, server).await;
                    }
                });
            }
        });
        proxy
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Apply `fault` to the next `times` responses to requests whose line contains `path`.
    pub fn add_fault(&self, path: &str, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            path: path.to_owned(),
            fault,
            times,
        });
    }

    /// Damage nothing from now on.
    pub fn clear_faults(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// The requests seen: first line, and ` | range: …` when it had one.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    pub fn clear_requests(&self) {
        self.requests.lock().unwrap().clear();
    }

    /// How many responses were damaged.
    pub fn faults_applied(&self) -> usize {
        *self.faults_applied.lock().unwrap()
    }

    async fn relay(&self, client: TcpStream, server: TcpStream) {
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let armed: Arc<Mutex<Option<Fault>>> = Arc::default();
        let up = {
            let armed = armed.clone();
            let this = self.clone();
            async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut pending = String::new();
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    pending.push_str(&String::from_utf8_lossy(&buf[..n]));
                    while let Some(end) = pending.find("\r\n\r\n") {
                        let head: String = pending.drain(..end + 4).collect();
                        this.saw_request(&head, &armed);
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        };
        let down = {
            let armed = armed.clone();
            let this = self.clone();
            async move {
                let mut buf = vec![0u8; 64 * 1024];
                // The fault of the response being relayed: what, whether its head is
                // through, and how many body bytes have passed.
                let mut active: Option<(Fault, Vec<u8>, bool, usize)> = None;
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if active.is_none()
                        && let Some(f) = armed.lock().unwrap().take()
                    {
                        active = Some((f, Vec::new(), false, 0));
                    }
                    let Some((fault, head, head_done, body)) = active.as_mut() else {
                        if cw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                        continue;
                    };
                    let mut chunk = buf[..n].to_vec();
                    let mut body_from = 0;
                    if !*head_done {
                        head.extend_from_slice(&chunk);
                        match head.windows(4).position(|w| w == b"\r\n\r\n") {
                            Some(p) => {
                                *head_done = true;
                                body_from = chunk.len() - (head.len() - (p + 4));
                            }
                            None => body_from = chunk.len(),
                        }
                    }
                    let body_here = chunk.len() - body_from;
                    match *fault {
                        Fault::CutAfter(limit) if *head_done && *body + body_here >= limit => {
                            let keep = body_from + (limit - *body);
                            let _ = cw.write_all(&chunk[..keep]).await;
                            let _ = cw.flush().await;
                            *this.faults_applied.lock().unwrap() += 1;
                            return;
                        }
                        Fault::FlipByte(at) if *head_done && *body + body_here > at => {
                            chunk[body_from + (at - *body)] ^= 0xff;
                            *this.faults_applied.lock().unwrap() += 1;
                            active = None;
                        }
                        _ => *body += body_here,
                    }
                    if cw.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            }
        };
        // Whichever side ends first closes both: a cut is seen by the client at once.
        tokio::select! {
            () = up => {}
            () = down => {}
        }
    }

    fn saw_request(&self, head: &str, armed: &Mutex<Option<Fault>>) {
        let line = head
            .lines()
            .find(|l| l.contains(" HTTP/"))
            .unwrap_or("")
            .to_owned();
        let range = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("range:"))
            .map(|r| format!(" | {}", r.to_ascii_lowercase()));
        self.requests
            .lock()
            .unwrap()
            .push(format!("{line}{}", range.unwrap_or_default()));
        let mut rules = self.rules.lock().unwrap();
        if let Some(rule) = rules
            .iter_mut()
            .find(|r| r.times > 0 && line.contains(&r.path))
        {
            rule.times -= 1;
            *armed.lock().unwrap() = Some(rule.fault);
        }
    }
}
