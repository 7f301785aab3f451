//! [`StoreHandle`]: the store for async code (the daemon, the API).
//!
//! SQLite and file work block, so every call runs on tokio's blocking pool
//! (`spawn_blocking`) and handlers never stall the runtime. Writes share the one [`Store`]
//! behind a std mutex (held only for the duration of one short transaction: the ingest
//! worker releases it during file work). Reads use a small pool of read-only connections: in
//! WAL mode they see the last commit and never wait for the writer.
//!
//! How many blocking threads the handle's async calls hold at once is bounded: one for
//! writes (the writer is one mutex), as many as the idle read connections kept for reads,
//! two for password checks. A burst beyond that waits in async code, holding no thread. It
//! used to start one blocking thread per call: a thousand portal tabs opening their event
//! streams at once (as they do when the daemon restarts and every browser reconnects) made
//! tokio start ~480 threads, each parked on the writer's mutex, and the streams' session
//! checks then kept them alive, ~370 KiB of memory per stream (BENCHMARKS.md, Portal: 1,000
//! SSE clients).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::error::StoreError;
use crate::phases::lock;
use crate::store::{Paths, Store, configure};
use crate::view::ReadView;
use crate::worker::{IngestConfig, IngestWorker};

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// Reads run at once on the blocking pool: no more than there are idle connections to reuse.
const CONCURRENT_READS: usize = MAX_IDLE_READERS;

/// Password checks (Argon2id: tens of milliseconds and 19 MiB each) run at once.
const CONCURRENT_PASSWORD_CHECKS: usize = 2;

struct Readers {
    index: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn take(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = lock(&self.idle).pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.index,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(StoreError::sql("open a read connection"))?;
        configure(&conn)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

/// A cheaply clonable, thread-safe handle on a [`Store`] with async access.
#[derive(Clone)]
pub struct StoreHandle {
    writer: Arc<Mutex<Store>>,
    readers: Arc<Readers>,
    paths: Paths,
    /// The store's clock, for decisions made on a read connection (session expiry).
    clock: Arc<dyn callrec_model::Clock>,
    /// Turns to use the blocking pool (see the module's comment).
    slots: Arc<Slots>,
}

/// The permits that bound the handle's blocking work.
struct Slots {
    /// One: a second writer would only wait for the mutex on a thread of its own.
    write: Semaphore,
    read: Semaphore,
    password: Semaphore,
}

impl Slots {
    fn new() -> Slots {
        Slots {
            write: Semaphore::new(1),
            read: Semaphore::new(CONCURRENT_READS),
            password: Semaphore::new(CONCURRENT_PASSWORD_CHECKS),
        }
    }
}

/// Wait for a turn (the semaphores are never closed, so this only waits).
async fn turn(slots: &Semaphore) -> Result<tokio::sync::SemaphorePermit<'_>, StoreError> {
    slots
        .acquire()
        .await
        .map_err(|e| StoreError::Task(e.to_string()))
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle")
            .field("paths", &self.paths)
            .finish()
    }
}

impl StoreHandle {
    /// Wrap an open store.
    pub fn new(store: Store) -> StoreHandle {
        let paths = store.paths().clone();
        let clock = store.clock.clone();
        StoreHandle {
            clock,
            readers: Arc::new(Readers {
                index: paths.index.clone(),
                idle: Mutex::new(Vec::new()),
            }),
            writer: Arc::new(Mutex::new(store)),
            paths,
            slots: Arc::new(Slots::new()),
        }
    }

    /// Open the store under `data_dir` (blocking: call it at start, or in `spawn_blocking`).
    pub fn open(data_dir: impl AsRef<Path>) -> Result<StoreHandle, StoreError> {
        Ok(StoreHandle::new(Store::open(data_dir)?))
    }

    /// Where the store keeps its files.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The shared writer, for code that runs its own blocking work.
    pub fn writer(&self) -> Arc<Mutex<Store>> {
        self.writer.clone()
    }

    /// Run `f` with the writer, blocking the calling thread.
    pub fn write_blocking<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&mut lock(&self.writer))
    }

    /// Run `f` over a pooled read connection, blocking the calling thread.
    pub fn read_blocking<T>(
        &self,
        f: impl FnOnce(ReadView<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.readers.take()?;
        let result = f(ReadView::new(&conn));
        self.readers.give_back(conn);
        result
    }

    /// Run `f` with the writer on the blocking pool. Every change, and every audited read
    /// (`read_recording`, `open_file`), goes through here:
    ///
    /// ```no_run
    /// # async fn f(store: callrec_store::StoreHandle, id: callrec_model::RecordingId,
    /// #            caller: callrec_store::Caller) -> Result<(), callrec_store::StoreError> {
    /// let access = caller.access();
    /// let note = store.write(move |s| s.add_note(&id, &access, "called back")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let _turn = turn(&self.slots.write).await?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_blocking(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Run `f` over a pooled read connection on the blocking pool (search, directory,
    /// usage, audit, tokens, authenticate):
    ///
    /// ```no_run
    /// # async fn f(store: callrec_store::StoreHandle, caller: callrec_store::Caller)
    /// #   -> Result<(), callrec_store::StoreError> {
    /// let access = caller.access();
    /// let query = callrec_store::SearchQuery { number: Some("01234 567890".into()), ..Default::default() };
    /// let page = store.read(move |v| v.search(&access, &query)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(ReadView<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let _turn = turn(&self.slots.read).await?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read_blocking(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// The person behind a portal session cookie, if the session lives. Found on a read
    /// connection; the writer is only taken when the session's use is due to be written
    /// down (once a minute per session), so pages do not queue behind ingest.
    pub async fn session(
        &self,
        secret: String,
        policy: crate::PortalPolicy,
    ) -> Result<Option<crate::SessionUser>, StoreError> {
        let now = self.clock.now();
        let (lookup, p) = (secret.clone(), policy.clone());
        match self.read(move |v| v.session_at(&lookup, now, &p)).await? {
            None => Ok(None),
            Some((user, false)) => Ok(Some(user)),
            // Checked again under the writer: it may have been revoked since.
            Some((_, true)) => self.write(move |s| s.session(&secret, &policy)).await,
        }
    }

    /// Sign in to the portal: the account and the throttle are read under the writer, the
    /// password is checked on the blocking pool without it (Argon2 takes tens of
    /// milliseconds, which ingest must not wait for), and the outcome is written under it.
    pub async fn sign_in(
        &self,
        attempt: crate::SignInAttempt,
        policy: crate::PortalPolicy,
    ) -> Result<crate::SignIn, StoreError> {
        let (account, address, p) = (
            attempt.account.clone(),
            attempt.address.clone(),
            policy.clone(),
        );
        let check = self
            .write(move |s| s.sign_in_check(&account, &address, &p))
            .await?;
        let verified = if check.throttled.is_none() {
            let _turn = turn(&self.slots.password).await?;
            let hash = check.hash.clone();
            tokio::task::spawn_blocking(move || {
                crate::verify_password(hash.as_deref(), &attempt.password)
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
        } else {
            false
        };
        let (account, address) = (attempt.account, attempt.address);
        self.write(move |s| s.finish_sign_in(&account, &address, check, verified, &policy))
            .await
    }

    /// Set (or replace) a user's portal password, as [`Store::set_password`] does (checked,
    /// Argon2id, every session of theirs revoked, audited as `user.password`), with the hash
    /// made on the blocking pool before the writer is taken: Argon2 takes tens of
    /// milliseconds, which ingest must not wait for. An unknown user is refused before any
    /// hashing.
    pub async fn set_password(
        &self,
        site: String,
        extension: String,
        password: String,
        actor: String,
    ) -> Result<crate::User, StoreError> {
        crate::check_new_password(&password)?;
        let (s, e) = (site.clone(), extension.clone());
        self.read(move |v| v.user(&s, &e)).await?;
        let hash = tokio::task::spawn_blocking(move || crate::hash_password(&password))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        self.write(move |s| s.set_password_hash(&site, &extension, &hash, &actor))
            .await
    }

    /// Start an ingest worker on this store.
    pub fn start_ingest_worker(&self, config: IngestConfig) -> Result<IngestWorker, StoreError> {
        IngestWorker::start(self.writer.clone(), config)
    }
}
