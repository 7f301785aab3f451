//! What the API answers with: the JSON of every reply, and with it the reply's OpenAPI schema.
//!
//! These are the API's own types. The store's records say what the index holds; a reply
//! says what a client is promised, so each is built here from the store's (or the daemon's)
//! value by a `From`, and a change to the store does not silently change the wire. Each
//! type derives `Serialize` and `ToSchema` side by side, so the document cannot describe a
//! field the reply lacks; `tests/openapi.rs` checks real replies against it.
//!
//! Conventions: `snake_case` names, times in RFC 3339 UTC, and every field is always
//! present. A value that may be unknown is `null`, never absent, and its schema says so
//! (nullable and required).

use callrec_model::{
    CallRecording, Direction, QuotaPolicy, RecordingId, RecordingMode, RecordingState, Role,
    SegmentKind, SegmentSource, SiteId, TokenId, UserId,
};
use callrec_store as store;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi::names;

// ---- recordings ----------------------------------------------------------------------

/// One party of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Party {
    /// As presented by the switch.
    pub raw: String,
    /// Normalised (E.164, or unchanged for an extension).
    pub normalised: String,
}

impl From<store::Party> for Party {
    fn from(p: store::Party) -> Self {
        Party {
            raw: p.raw,
            normalised: p.normalised,
        }
    }
}

/// A recording's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Recording {
    /// Its id (the Call Handler ID).
    #[schema(value_type = String, format = Uuid)]
    pub id: RecordingId,
    /// Its site's name.
    pub site: String,
    /// Its site's id.
    #[schema(value_type = i64)]
    pub site_id: SiteId,
    /// Its user's id.
    #[schema(value_type = i64)]
    pub user_id: UserId,
    /// Its user's extension.
    pub user: String,
    /// The switch's channel uuid.
    pub call_uuid: String,
    /// Direction from the user's side.
    #[schema(value_type = names::Direction)]
    pub direction: Direction,
    /// The calling party.
    pub from: Party,
    /// The called party.
    pub to: Party,
    /// When recording started.
    pub started_at: DateTime<Utc>,
    /// When the switch closed the file; `null` while recording.
    #[schema(required = true)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Length of the audio in the file; `null` until stored.
    #[schema(required = true)]
    pub duration_ms: Option<u64>,
    /// Time spent paused.
    pub paused_ms: u64,
    /// Size of the stored file; `null` until stored.
    #[schema(required = true)]
    pub size_bytes: Option<u64>,
    /// SHA-256 of the stored file, hex; `null` until stored.
    #[schema(required = true)]
    pub sha256: Option<String>,
    /// The audio format (`wav`).
    pub format: String,
    /// The file's name in the store and for downloads.
    pub file_name: String,
    /// Where it is in its life.
    #[schema(value_type = names::RecordingState)]
    pub state: RecordingState,
    /// Why it was discarded, failed or deleted; `null` otherwise.
    #[schema(required = true)]
    pub state_reason: Option<String>,
    /// When retention deletes it; `null` when nothing will (legal hold, not stored).
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether a litigation hold keeps it.
    pub hold: bool,
    /// How many notes it has.
    pub note_count: u32,
    /// When it was deleted (a tombstone); `null` otherwise.
    #[schema(required = true)]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<store::Recording> for Recording {
    fn from(r: store::Recording) -> Self {
        Recording {
            id: r.id,
            site: r.site,
            site_id: r.site_id,
            user_id: r.user_id,
            user: r.user,
            call_uuid: r.call_uuid,
            direction: r.direction,
            from: r.from.into(),
            to: r.to.into(),
            started_at: r.started_at,
            ended_at: r.ended_at,
            duration_ms: r.duration_ms,
            paused_ms: r.paused_ms,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            format: r.format,
            file_name: r.file_name,
            state: r.state,
            state_reason: r.state_reason,
            expires_at: r.expires_at,
            hold: r.hold,
            note_count: r.note_count,
            deleted_at: r.deleted_at,
        }
    }
}

/// One start, pause, resume or stop of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Segment {
    /// What happened.
    #[schema(value_type = names::SegmentKind)]
    pub kind: SegmentKind,
    /// When.
    pub at: DateTime<Utc>,
    /// What caused it.
    #[schema(value_type = names::SegmentSource)]
    pub source: SegmentSource,
    /// Who: an extension, `daemon`, an API caller.
    pub actor: String,
}

impl From<store::Segment> for Segment {
    fn from(s: store::Segment) -> Self {
        Segment {
            kind: s.kind,
            at: s.at,
            source: s.source,
            actor: s.actor,
        }
    }
}

/// A note on a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Note {
    /// Its id.
    pub id: i64,
    /// Who wrote it.
    pub author: String,
    /// When.
    pub at: DateTime<Utc>,
    /// What it says.
    pub text: String,
}

impl From<store::Note> for Note {
    fn from(n: store::Note) -> Self {
        Note {
            id: n.id,
            author: n.author,
            at: n.at,
            text: n.text,
        }
    }
}

/// A recording's metadata with its segments and notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecordingDetail {
    /// The metadata.
    #[serde(flatten)]
    pub recording: Recording,
    /// Every segment, in time order.
    pub segments: Vec<Segment>,
    /// Every note, oldest first.
    pub notes: Vec<Note>,
}

impl From<store::RecordingDetail> for RecordingDetail {
    fn from(d: store::RecordingDetail) -> Self {
        RecordingDetail {
            recording: d.recording.into(),
            segments: d.segments.into_iter().map(Into::into).collect(),
            notes: d.notes.into_iter().map(Into::into).collect(),
        }
    }
}

/// Many recordings' metadata, segments and notes, in the order asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecordingDetails {
    /// Each recording asked for that the caller may see, as `GET /recordings/{id}` gives
    /// it. The others (erased, another user's, never there) are left out, as a 404 would
    /// leave them: an id is not echoed to someone who may not see it.
    pub items: Vec<RecordingDetail>,
}

/// A page of a search, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SearchPage {
    /// The recordings.
    pub items: Vec<Recording>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl From<store::SearchPage> for SearchPage {
    fn from(p: store::SearchPage) -> Self {
        SearchPage {
            items: p.items.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

/// An audio file's bytes, in the recording's format.
// Only its schema is used: the file is streamed from disk, never held whole.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct AudioFile(pub Vec<u8>);

// ---- calls ---------------------------------------------------------------------------

/// A call in progress, as its owner (or their site's admin) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LiveCall {
    /// The owner's leg: the uuid `POST /calls/{uuid}/recording/{action}` acts on.
    pub call_uuid: String,
    /// The owner's site.
    pub site: String,
    /// The owner's extension.
    pub user: String,
    /// Direction from the owner's side.
    #[schema(value_type = names::Direction)]
    pub direction: Direction,
    /// The calling party, as presented by the switch.
    pub from: String,
    /// The called party, as presented by the switch.
    pub to: String,
    /// When the owner's leg was answered.
    pub answered_at: DateTime<Utc>,
    /// The owner's leg is on hold.
    pub on_hold: bool,
    /// The recording's state.
    #[schema(value_type = names::CallRecording)]
    pub recording: CallRecording,
    /// The recording's id while there is one; `null` otherwise.
    #[schema(value_type = Option<String>, format = Uuid, required = true)]
    pub recording_id: Option<RecordingId>,
}

impl From<callrec_model::LiveCall> for LiveCall {
    fn from(c: callrec_model::LiveCall) -> Self {
        LiveCall {
            call_uuid: c.call_uuid,
            site: c.site,
            user: c.user,
            direction: c.direction,
            from: c.from,
            to: c.to,
            answered_at: c.answered_at,
            on_hold: c.on_hold,
            recording: c.recording,
            recording_id: c.recording_id,
        }
    }
}

/// The calls in progress the caller may see, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Calls {
    /// The calls.
    pub items: Vec<LiveCall>,
}

// ---- people and settings -------------------------------------------------------------

/// A number of a user: as typed, and normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserNumber {
    /// As given.
    pub raw: String,
    /// E.164 (or unchanged for an extension).
    pub normalised: String,
}

impl From<store::UserNumber> for UserNumber {
    fn from(n: store::UserNumber) -> Self {
        UserNumber {
            raw: n.raw,
            normalised: n.normalised,
        }
    }
}

/// A user of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct User {
    /// Its id.
    #[schema(value_type = i64)]
    pub id: UserId,
    /// Its site's id.
    #[schema(value_type = i64)]
    pub site_id: SiteId,
    /// Its site's name.
    pub site: String,
    /// Its extension, e.g. `1001`.
    pub extension: String,
    /// A name to show; `null` when none is known.
    #[schema(required = true)]
    pub display_name: Option<String>,
    /// Its recording mode.
    #[schema(value_type = names::RecordingMode)]
    pub mode: RecordingMode,
    /// What it may see and do through the API.
    #[schema(value_type = names::Role)]
    pub role: Role,
    /// Its extra numbers (DIDs).
    pub numbers: Vec<UserNumber>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl From<store::User> for User {
    fn from(u: store::User) -> Self {
        User {
            id: u.id,
            site_id: u.site_id,
            site: u.site,
            extension: u.extension,
            display_name: u.display_name,
            mode: u.mode,
            role: u.role,
            numbers: u.numbers.into_iter().map(Into::into).collect(),
            created_at: u.created_at,
        }
    }
}

/// The site's users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Users {
    /// The users, by extension.
    pub items: Vec<User>,
}

/// Storage used by a user against the site's quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserUsage {
    /// The user.
    #[schema(value_type = i64)]
    pub user_id: UserId,
    /// The user's site.
    pub site: String,
    /// The user's extension.
    pub extension: String,
    /// Bytes of stored recordings.
    pub bytes: u64,
    /// Number of stored recordings.
    pub files: u64,
    /// The site's quota per user, in bytes.
    pub quota_bytes: u64,
    /// What the site does over quota.
    #[schema(value_type = names::QuotaPolicy)]
    pub quota_policy: QuotaPolicy,
    /// Whether `bytes` is over `quota_bytes`.
    pub over_quota: bool,
}

impl From<store::UserUsage> for UserUsage {
    fn from(u: store::UserUsage) -> Self {
        UserUsage {
            user_id: u.user_id,
            site: u.site,
            extension: u.extension,
            bytes: u.bytes,
            files: u.files,
            quota_bytes: u.quota_bytes,
            quota_policy: u.quota_policy,
            over_quota: u.over_quota,
        }
    }
}

/// Storage used per user: the caller's own, or every user of an admin's site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Usage {
    /// One entry per user.
    pub items: Vec<UserUsage>,
}

/// Who the token stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Me {
    /// The user.
    pub user: User,
    /// Its role (also in `user`; here for clients that only look at the top).
    #[schema(value_type = names::Role)]
    pub role: Role,
    /// The token used.
    #[schema(value_type = i64)]
    pub token_id: TokenId,
    /// Storage used against the quota.
    pub usage: UserUsage,
    /// The site's time zone (IANA name): archive clients name files in it.
    #[schema(value_type = String)]
    pub site_timezone: Tz,
}

impl Me {
    /// From the caller and what the store knows of them.
    pub fn new(
        caller: &store::Caller,
        user: store::User,
        usage: store::UserUsage,
        site_timezone: Tz,
    ) -> Self {
        Me {
            role: caller.role,
            token_id: caller.token_id,
            user: user.into(),
            usage: usage.into(),
            site_timezone,
        }
    }
}

/// A site's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SiteSettings {
    /// Whether recording is on for the whole site.
    pub enabled: bool,
    /// The mode new users get.
    #[schema(value_type = names::RecordingMode)]
    pub default_mode: RecordingMode,
    /// Days a recording is kept (unless `legal_hold`).
    pub retention_days: u32,
    /// Keep every recording of the site seven years.
    pub legal_hold: bool,
    /// How pauses are carried out on the switch.
    #[schema(value_type = names::PauseBehavior)]
    pub pause_behavior: callrec_model::PauseBehavior,
    /// Recordings shorter than this many seconds are discarded by the switch.
    pub min_seconds: u32,
    /// A recording paused longer than this many seconds resumes by itself and its user hears
    /// the "resumed" prompt; 0: off.
    pub max_pause_seconds: u32,
    /// The site's time zone (IANA name, e.g. `Europe/London`): file names and the portal.
    #[schema(value_type = String)]
    pub timezone: Tz,
    /// Country calling code for number normalisation.
    pub country_code: u16,
    /// National trunk prefix for number normalisation.
    pub national_prefix: String,
    /// Storage quota per user, in bytes.
    pub quota_bytes: u64,
    /// What happens over quota.
    #[schema(value_type = names::QuotaPolicy)]
    pub quota_policy: QuotaPolicy,
}

impl From<store::SiteSettings> for SiteSettings {
    fn from(s: store::SiteSettings) -> Self {
        SiteSettings {
            enabled: s.enabled,
            default_mode: s.default_mode,
            retention_days: s.retention_days,
            legal_hold: s.legal_hold,
            pause_behavior: s.pause_behavior,
            min_seconds: s.min_seconds,
            max_pause_seconds: s.max_pause_seconds,
            timezone: s.timezone,
            country_code: s.country_code,
            national_prefix: s.national_prefix,
            quota_bytes: s.quota_bytes,
            quota_policy: s.quota_policy,
        }
    }
}

/// A site with its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Site {
    /// Its id.
    #[schema(value_type = i64)]
    pub id: SiteId,
    /// Its name, e.g. `default`.
    pub name: String,
    /// Its settings.
    #[serde(flatten)]
    pub settings: SiteSettings,
}

impl From<store::Site> for Site {
    fn from(s: store::Site) -> Self {
        Site {
            id: s.id,
            name: s.name,
            settings: s.settings.into(),
        }
    }
}

// ---- the audit log -------------------------------------------------------------------

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Its position in the log.
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// The site concerned; `null` for an entry about no site.
    #[schema(value_type = Option<i64>, required = true)]
    pub site_id: Option<SiteId>,
    /// Who did it.
    pub actor: String,
    /// What, e.g. `recording.read`, `user.set_mode`.
    pub action: String,
    /// To what, e.g. `recording:<id>`, `user:default/1001`.
    pub target: String,
    /// Details, as JSON text.
    pub detail: String,
    /// This entry's chain hash, hex.
    pub hash: String,
}

impl From<store::AuditEntry> for AuditEntry {
    fn from(e: store::AuditEntry) -> Self {
        AuditEntry {
            seq: e.seq,
            at: e.at,
            site_id: e.site_id,
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: e.detail,
            hash: e.hash,
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `null` at the start of the log.
    #[schema(required = true)]
    pub next_before: Option<i64>,
}

impl From<store::AuditPage> for AuditPage {
    fn from(p: store::AuditPage) -> Self {
        AuditPage {
            entries: p.entries.into_iter().map(Into::into).collect(),
            next_before: p.next_before,
        }
    }
}

// ---- operations ----------------------------------------------------------------------

/// `GET /healthz`: the process answers. It says nothing more (readiness is `/readyz`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: Alive,
}

/// The one state `/healthz` reports: whoever gets an answer gets this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Alive {
    /// The process answers.
    Ok,
}

/// `GET /readyz`: whether the daemon can record and serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` when both checks below hold, else `unavailable`.
    pub status: Ready,
    /// The index answered a query.
    pub index: bool,
    /// The daemon's Event Socket session is up.
    pub esl_connected: bool,
}

/// Whether `/readyz` found the daemon ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    /// Ready: the index answers and the switch is connected (200).
    Ok,
    /// Not ready (503).
    Unavailable,
}

impl Readiness {
    /// From what was checked.
    pub fn new(index: bool, esl_connected: bool) -> Self {
        let status = if index && esl_connected {
            Ready::Ok
        } else {
            Ready::Unavailable
        };
        Readiness {
            status,
            index,
            esl_connected,
        }
    }
}

// ---- errors --------------------------------------------------------------------------

/// Every error reply: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorReply {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error of an [`ErrorReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code clients branch on, e.g. `not_found`, `on_hold`, `bad_request`.
    pub code: String,
    /// What went wrong, in words.
    pub message: String,
}

/// A recording an erasure kept, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErasureRefusal {
    /// The recording.
    pub id: String,
    /// Why it is kept (`on hold`, the legal hold and its date).
    pub reason: String,
}

/// What an erasure did (or, `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErasureReply {
    /// The number as searched, normalised with the site's number plan.
    pub number: String,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Recordings erased (file removed; the tombstone keeps neither number nor notes).
    pub erased: Vec<String>,
    /// Recordings kept, with the reason.
    pub refused: Vec<ErasureRefusal>,
}

impl From<store::ErasureReport> for ErasureReply {
    fn from(r: store::ErasureReport) -> Self {
        ErasureReply {
            number: r.number,
            dry_run: r.dry_run,
            erased: r.erased.iter().map(ToString::to_string).collect(),
            refused: r
                .refused
                .into_iter()
                .map(|x| ErasureRefusal {
                    id: x.id.to_string(),
                    reason: x.reason,
                })
                .collect(),
        }
    }
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Change {
    /// Its place in the feed: strictly increasing, never reused.
    pub seq: i64,
    /// What happened: `stored`, `failed`, `deleted`, `hold`, `release` or `note`.
    pub kind: String,
    /// The recording it happened to (`GET /api/v1/recordings/{id}` for the rest).
    pub recording_id: String,
}

/// A page of the change feed, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChangesPage {
    /// The changes after the one asked for.
    pub changes: Vec<Change>,
    /// Pass as `after` for the next page (the last change returned, or the `after` asked
    /// for when there was none).
    pub last_seq: i64,
}

impl From<store::ChangesPage> for ChangesPage {
    fn from(p: store::ChangesPage) -> Self {
        ChangesPage {
            changes: p
                .changes
                .into_iter()
                .map(|c| Change {
                    seq: c.seq,
                    kind: c.kind,
                    recording_id: c.recording_id.to_string(),
                })
                .collect(),
            last_seq: p.last_seq,
        }
    }
}

// ---- webhooks --------------------------------------------------------------------------

/// A webhook endpoint and how delivering to it goes. Its secret is never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Webhook {
    /// Its id.
    pub id: i64,
    /// Where events are POSTed.
    pub url: String,
    /// `config` (from `[webhooks] urls`: every site's events) or `api` (an admin's).
    pub source: String,
    /// The site whose events it receives; `null`: every site's.
    #[schema(required = true)]
    pub site: Option<String>,
    /// Whether events are queued for it.
    pub enabled: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// Failed attempts since the last success (0: healthy).
    pub failures: u32,
    /// No attempt before this (backoff after failures); `null` when it may be tried now.
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last delivery it acknowledged.
    #[schema(required = true)]
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last attempt that failed.
    #[schema(required = true)]
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Why the last failed attempt failed.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// Events waiting for it.
    pub pending: i64,
    /// Events it acknowledged.
    pub delivered: i64,
    /// Events given up (too old) or cancelled when it was removed.
    pub expired: i64,
}

impl From<store::WebhookEndpoint> for Webhook {
    fn from(e: store::WebhookEndpoint) -> Self {
        Webhook {
            id: e.id,
            url: e.url,
            source: match e.source {
                store::EndpointSource::Config => "config",
                store::EndpointSource::Api => "api",
            }
            .to_owned(),
            site: e.site,
            enabled: e.enabled,
            created_at: e.created_at,
            created_by: e.created_by,
            failures: e.failures,
            next_attempt_at: e.next_attempt_at,
            last_success_at: e.last_success_at,
            last_failure_at: e.last_failure_at,
            last_error: e.last_error,
            pending: e.pending,
            delivered: e.delivered,
            expired: e.expired,
        }
    }
}

/// The webhook endpoints an admin sees: their site's and the config's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Webhooks {
    /// The endpoints, oldest first.
    pub items: Vec<Webhook>,
}

// ---- archive clients -----------------------------------------------------------------

/// One run of an archive client, as it reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ArchiveRun {
    /// Its id.
    pub id: i64,
    /// The client's name.
    pub client: String,
    /// Whose token reported it (`extension@site`).
    pub actor: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// When the server received the report.
    pub reported_at: DateTime<Utc>,
    /// Recordings downloaded and verified.
    pub downloaded: u64,
    /// Recordings seen and not downloaded.
    pub skipped: u64,
    /// Recordings that could not be archived.
    pub failed: u64,
    /// Bytes of audio downloaded.
    pub bytes: u64,
    /// The last change of the feed the client has fully handled.
    pub last_seq: i64,
    /// A dry run.
    pub dry_run: bool,
    /// What went wrong.
    pub errors: Vec<String>,
}

impl From<store::ArchiveRun> for ArchiveRun {
    fn from(r: store::ArchiveRun) -> Self {
        ArchiveRun {
            id: r.id,
            client: r.client,
            actor: r.actor,
            started_at: r.started_at,
            finished_at: r.finished_at,
            reported_at: r.reported_at,
            downloaded: r.downloaded,
            skipped: r.skipped,
            failed: r.failed,
            bytes: r.bytes,
            last_seq: r.last_seq,
            dry_run: r.dry_run,
            errors: r.errors,
        }
    }
}

/// An archive client of the site and its last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ArchiveClient {
    /// The client's name.
    pub client: String,
    /// Whose token it uses (`extension@site`).
    pub actor: String,
    /// How many runs it has reported.
    pub runs: u64,
    /// Its last run.
    pub last_run: ArchiveRun,
}

/// The archive clients of the site, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ArchiveClients {
    /// The clients.
    pub items: Vec<ArchiveClient>,
}

impl From<Vec<store::ArchiveClient>> for ArchiveClients {
    fn from(v: Vec<store::ArchiveClient>) -> Self {
        ArchiveClients {
            items: v
                .into_iter()
                .map(|c| ArchiveClient {
                    client: c.client,
                    actor: c.actor,
                    runs: c.runs,
                    last_run: c.last_run.into(),
                })
                .collect(),
        }
    }
}
