//! What the store's tests share: a store in a temporary directory with a clock the test
//! moves, users, and recordings made the way the daemon makes them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use callrec_model::NewRecording;
use callrec_model::{Direction, ManualClock, RecordingId, Role, SegmentKind, SegmentSource};
use callrec_store::{IngestJob, IngestOutcome, NewUser, Recording, Store, User};
use callrec_testkit::wav;
use chrono::{DateTime, Duration, TimeZone, Utc};

/// The instant every test starts at.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub store: Store,
    pub spool: PathBuf,
    seed: u64,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(start_time());
        let store =
            Store::open_with_clock(dir.path().join("data"), Arc::new(clock.clone())).unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        Fixture {
            dir,
            clock,
            store,
            spool,
            seed: 0,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Open the same data dir again (as a restarted process would).
    pub fn reopen(&mut self) {
        self.store = Store::open_with_clock(self.data_dir(), Arc::new(self.clock.clone())).unwrap();
    }

    pub fn user(&mut self, extension: &str) -> User {
        self.store
            .add_user(&NewUser::new("default", extension), "test")
            .unwrap()
    }

    pub fn admin(&mut self, extension: &str) -> User {
        let mut u = NewUser::new("default", extension);
        u.role = Role::Admin;
        self.store.add_user(&u, "test").unwrap()
    }

    /// Start a recording now, as the daemon does on CHANNEL_ANSWER; the clock then moves on
    /// a minute so recordings sort by creation.
    pub fn start(&mut self, user: &User, from: &str, to: &str) -> RecordingId {
        let id = RecordingId::new();
        let new = NewRecording {
            id: id.clone(),
            user: user.id,
            call_uuid: format!("call-{id}"),
            direction: Direction::Outbound,
            from: from.to_owned(),
            to: to.to_owned(),
            started_at: self.clock.now_utc(),
            format: "wav".to_owned(),
            spool_path: self.spool.join(format!("{id}.wav")),
        };
        self.store.create_recording(&new, "daemon").unwrap();
        self.store
            .add_segment(
                &id,
                SegmentKind::Start,
                self.clock.now_utc(),
                SegmentSource::Policy,
                "daemon",
            )
            .unwrap();
        self.clock.advance(Duration::minutes(1));
        id
    }

    pub fn spool_path(&self, id: &RecordingId) -> PathBuf {
        self.spool.join(format!("{id}.wav"))
    }

    /// The switch writes the file.
    pub fn write_spool(&mut self, id: &RecordingId, ms: u32) -> Vec<u8> {
        self.seed += 1;
        let bytes = wav::noise(ms, self.seed);
        std::fs::write(self.spool_path(id), &bytes).unwrap();
        bytes
    }

    /// A whole recording: started, written, stopped, ingested.
    pub fn recording(&mut self, user: &User, from: &str, to: &str, ms: u32) -> Recording {
        let id = self.start(user, from, to);
        self.write_spool(&id, ms);
        match self.store.ingest(&IngestJob::new(id.clone())).unwrap() {
            IngestOutcome::Stored { .. } => {}
            other => panic!("expected stored, got {other:?}"),
        }
        self.store
            .view()
            .recording(&id, &callrec_store::Access::system("test"))
            .unwrap()
    }

    pub fn store_file(&self, rec: &Recording) -> PathBuf {
        let rel = Path::new(&rec.site).join(
            rec.started_at
                .with_timezone(&chrono_tz::UTC)
                .format("%Y/%m/%d")
                .to_string(),
        );
        self.data_dir().join("store").join(rel).join(&rec.file_name)
    }
}

pub trait NowUtc {
    fn now_utc(&self) -> DateTime<Utc>;
}

impl NowUtc for ManualClock {
    fn now_utc(&self) -> DateTime<Utc> {
        use callrec_model::Clock;
        self.now()
    }
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn go(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                go(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    go(dir, dir, &mut out);
    out.sort();
    out
}
