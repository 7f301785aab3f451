//! callrec's recording store.
//!
//! Owns the SQLite index (`<data_dir>/index.db`) and the files under `<data_dir>/store/`:
//! schema and migrations, sites and users, recordings from the moment the daemon starts one
//! to its deletion, crash-safe ingest, search, retention, quota, API tokens, the hash-chained
//! audit log and integrity checks. It knows nothing of FreeSWITCH or HTTP: the daemon tells
//! it what happened on the switch, the API what people ask for.
//!
//! # Map
//!
//! | module | what |
//! | --- | --- |
//! | [`records`] | the data handed in and out (sites, users, recordings, tokens…) |
//! | `store` | [`Store`]: owns the write connection and every change, each with its audit entry |
//! | `view` | [`ReadView`]: reads that change nothing (directory, usage, audit, tokens) |
//! | `search` | [`ReadView::search`]: every filter of SPEC §5 on an index, keyset pages |
//! | `ingest` | spool file → hash → fsync → rename → fsync dirs → one transaction (a WAV the switch never closed: a repaired copy) |
//! | `phases` | the one driver of ingest's three phases, for [`Store::ingest`] and the worker |
//! | `worker` | [`IngestWorker`]: ingest off the runtime, batched, retrying transient failures |
//! | `retention` | [`Store::sweep`], quota eviction, deletion (tombstones first, files after) |
//! | `reconcile` | [`Store::reconcile`]: finish what a crash interrupted |
//! | `verify` | [`Store::verify`]: re-hash files, walk the audit chain |
//! | `handle` | [`StoreHandle`]: async access (`spawn_blocking`), pooled read connections |
//! | [`wav`] | how much audio a WAV file holds, which header sizes a crash left wrong; never panicking on a bad one |
//! | `files` | every file operation (the one module a remote object store would replace) |
//! | `archive_runs` | [`Store::record_archive_run`], [`ReadView::archive_clients`]: archive clients' run reports |
//! | `passwords` | portal passwords (Argon2id), sign-in and its throttle |
//! | `sessions` | portal sessions: created, found, kept alive, ended |
//! | `own_mode` | which recording modes a person may choose for themselves |
//! | `audit`, `migrate`, `naming` | the hash chain, schema upgrades, paths |
//!
//! # Times and ids
//!
//! Times are `chrono::DateTime<Utc>` in the API and milliseconds since the epoch in the index.
//! Recordings are named by [`callrec_model::RecordingId`] (UUIDv7); sites, users and tokens by integer ids.
//!
//! # Concurrency
//!
//! A [`Store`] is one connection: use it from one thread (the CLI), or share it through a
//! [`StoreHandle`] (the daemon and the API). Several processes may open the same data dir
//! (the daemon and a CLI command): SQLite serialises their writes (each waits up to 10 s).

#![deny(missing_docs)]

mod archive_runs;
mod audit;
mod changes;
mod erasure;
mod error;
mod files;
mod handle;
mod ingest;
mod migrate;
mod naming;
mod own_mode;
mod passwords;
mod phases;
mod reconcile;
pub mod records;
mod retention;
mod search;
mod sessions;
mod store;
mod verify;
mod view;
pub mod wav;
mod webhooks;
mod worker;

pub use archive_runs::{
    ArchiveClient, ArchiveRun, MAX_CLIENT_CHARS, MAX_ERROR_CHARS, MAX_RUN_ERRORS, NewArchiveRun,
};
pub use audit::{ChainBreak, ChainHead};
pub use changes::{Change, ChangesPage, MAX_CHANGES};
pub use erasure::{ErasureReport, Refusal};
pub use error::{ErrorKind, StoreError};
pub use handle::StoreHandle;
pub use ingest::{HEADER_REPAIRED, IngestJob, IngestOutcome};
pub use migrate::{Migration, SCHEMA_VERSION};
pub use naming::{validate_extension, validate_format, validate_site_name};
pub use own_mode::modes_open_to;
pub use passwords::{
    MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, SignIn, SignInAttempt, SignInCheck, check_new_password,
    hash_password, throttle, verify_password,
};
pub use reconcile::{ReconcileOptions, RepairReport};
pub use records::{
    Access, AuditEntry, AuditFilter, AuditPage, Caller, Directory, DirectoryLookup, FilePurpose,
    InProgress, NewToken, NewUser, Note, Party, Recording, RecordingDetail, Scope, Segment, Site,
    SiteSettings, SiteUpdate, StoredFile, TokenInfo, User, UserNumber, UserUpdate, UserUsage,
    parse_timezone,
};
pub use retention::{SweepOptions, SweepReport, Swept};
pub use search::{DEFAULT_LIMIT, MAX_LIMIT, SearchPage, SearchQuery};
pub use sessions::{
    Liveness, NewSession, PortalPolicy, PortalPurge, SIGNIN_FAILURES_MARGIN, SessionUser, liveness,
    well_formed_secret,
};
pub use store::{MAX_BATCH_READ, MAX_NOTE_CHARS, Paths, Store, expires_at};
pub use verify::{FileProblem, VerifyOptions, VerifyReport};
pub use view::ReadView;
pub use webhooks::{ActiveEndpoint, DueEvent, EndpointSource, MIN_SECRET_CHARS, WebhookEndpoint};
pub use worker::{IngestConfig, IngestQueue, IngestResult, IngestStats, IngestWorker};
