//! What the store hands in and out: sites, users, recordings, notes, tokens, audit entries.
//!
//! These are plain data, the store's own: what the index holds, not a wire format. The API
//! builds its replies from them (`callrec-api`'s `replies`); the few that derive `Serialize`
//! do so for the CLI's `--json` output (users, tokens) or for audit details (site settings, a
//! user's numbers).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::error::StoreError;
use callrec_model::limits::{MAX_MIN_SECONDS, MAX_PAUSE_SECONDS, MAX_RETENTION_DAYS};
use callrec_model::{
    Direction, PauseBehavior, QuotaPolicy, RecordingId, RecordingMode, RecordingState, Role,
    SegmentKind, SegmentSource, SiteId, TokenId, UserId,
};
use callrec_numbers::{self as numbers, NumberPlan};

/// A site's settings (SPEC §1). `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteSettings {
    /// Whether recording is on for the whole site.
    pub enabled: bool,
    /// The mode new users get.
    pub default_mode: RecordingMode,
    /// Days a recording is kept (unless `legal_hold`).
    pub retention_days: u32,
    /// Keep every recording of the site 7 years.
    pub legal_hold: bool,
    /// How pauses are carried out on the switch.
    pub pause_behavior: PauseBehavior,
    /// Recordings shorter than this are discarded by the switch.
    pub min_seconds: u32,
    /// A recording paused longer than this resumes by itself, and its user hears the
    /// "resumed" prompt (PCI DSS: a forgotten *49 must not leave the rest of a call
    /// unrecorded). 0: off.
    pub max_pause_seconds: u32,
    /// The site's time zone: file names and the dashboard.
    pub timezone: Tz,
    /// Country calling code for number normalisation.
    pub country_code: u16,
    /// National trunk prefix for number normalisation.
    pub national_prefix: String,
    /// Storage quota per user, in bytes.
    pub quota_bytes: u64,
    /// What happens over quota.
    pub quota_policy: QuotaPolicy,
}

impl Default for SiteSettings {
    fn default() -> Self {
        SiteSettings {
            enabled: true,
            default_mode: RecordingMode::AlwaysPausable,
            retention_days: 180,
            legal_hold: false,
            pause_behavior: PauseBehavior::Silence,
            min_seconds: 3,
            max_pause_seconds: 0,
            timezone: Tz::UTC,
            country_code: 44,
            national_prefix: "0".to_owned(),
            quota_bytes: 1 << 30,
            quota_policy: QuotaPolicy::Alert,
        }
    }
}

impl SiteSettings {
    /// How this site writes its numbers.
    pub fn number_plan(&self) -> NumberPlan {
        NumberPlan {
            country_code: self.country_code,
            national_prefix: self.national_prefix.clone(),
        }
    }

    /// Check every value, naming the first bad one.
    pub fn validate(&self) -> Result<(), StoreError> {
        if !(1..=MAX_RETENTION_DAYS).contains(&self.retention_days) {
            return Err(StoreError::invalid(
                "retention_days",
                self.retention_days.to_string(),
                format!("must be between 1 and {MAX_RETENTION_DAYS}"),
            ));
        }
        if self.min_seconds > MAX_MIN_SECONDS {
            return Err(StoreError::invalid(
                "min_seconds",
                self.min_seconds.to_string(),
                format!("must be at most {MAX_MIN_SECONDS}"),
            ));
        }
        if self.max_pause_seconds > MAX_PAUSE_SECONDS {
            return Err(StoreError::invalid(
                "max_pause_seconds",
                self.max_pause_seconds.to_string(),
                format!("must be at most {MAX_PAUSE_SECONDS} (0 turns auto-resume off)"),
            ));
        }
        if self.quota_bytes == 0 || self.quota_bytes > i64::MAX as u64 {
            return Err(StoreError::invalid(
                "quota_bytes",
                self.quota_bytes.to_string(),
                format!("must be between 1 and {} bytes", i64::MAX),
            ));
        }
        Ok(self.number_plan().validate()?)
    }
}

/// Parse an IANA time zone name (`Europe/London`), with an error that names the field.
pub fn parse_timezone(name: &str) -> Result<Tz, StoreError> {
    name.parse::<Tz>().map_err(|_| {
        StoreError::invalid(
            "timezone",
            name,
            "not an IANA time zone name (e.g. Europe/London)",
        )
    })
}

/// A change to some of a site's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteUpdate {
    /// See [`SiteSettings::enabled`].
    pub enabled: Option<bool>,
    /// See [`SiteSettings::default_mode`].
    pub default_mode: Option<RecordingMode>,
    /// See [`SiteSettings::retention_days`].
    pub retention_days: Option<u32>,
    /// See [`SiteSettings::legal_hold`].
    pub legal_hold: Option<bool>,
    /// See [`SiteSettings::pause_behavior`].
    pub pause_behavior: Option<PauseBehavior>,
    /// See [`SiteSettings::min_seconds`].
    pub min_seconds: Option<u32>,
    /// See [`SiteSettings::max_pause_seconds`].
    pub max_pause_seconds: Option<u32>,
    /// See [`SiteSettings::timezone`].
    pub timezone: Option<Tz>,
    /// See [`SiteSettings::country_code`].
    pub country_code: Option<u16>,
    /// See [`SiteSettings::national_prefix`].
    pub national_prefix: Option<String>,
    /// See [`SiteSettings::quota_bytes`].
    pub quota_bytes: Option<u64>,
    /// See [`SiteSettings::quota_policy`].
    pub quota_policy: Option<QuotaPolicy>,
}

impl SiteUpdate {
    /// `settings` with this update applied.
    pub fn apply_to(&self, settings: &SiteSettings) -> SiteSettings {
        let s = settings.clone();
        SiteSettings {
            enabled: self.enabled.unwrap_or(s.enabled),
            default_mode: self.default_mode.unwrap_or(s.default_mode),
            retention_days: self.retention_days.unwrap_or(s.retention_days),
            legal_hold: self.legal_hold.unwrap_or(s.legal_hold),
            pause_behavior: self.pause_behavior.unwrap_or(s.pause_behavior),
            min_seconds: self.min_seconds.unwrap_or(s.min_seconds),
            max_pause_seconds: self.max_pause_seconds.unwrap_or(s.max_pause_seconds),
            timezone: self.timezone.unwrap_or(s.timezone),
            country_code: self.country_code.unwrap_or(s.country_code),
            national_prefix: self.national_prefix.clone().unwrap_or(s.national_prefix),
            quota_bytes: self.quota_bytes.unwrap_or(s.quota_bytes),
            quota_policy: self.quota_policy.unwrap_or(s.quota_policy),
        }
    }

    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == SiteUpdate::default()
    }

    /// Check the values this update sets (against the defaults for the rest).
    pub fn validate(&self) -> Result<(), StoreError> {
        self.apply_to(&SiteSettings::default()).validate()
    }
}

/// A site (tenant) with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Its id in the index.
    pub id: SiteId,
    /// Its name, e.g. `default`; also its directory in the store.
    pub name: String,
    /// Its settings.
    pub settings: SiteSettings,
}

/// A number of a user: as typed, and normalised (SPEC §1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserNumber {
    /// As given.
    pub raw: String,
    /// E.164 (or unchanged for an extension).
    pub normalised: String,
}

/// A user of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Its id in the index.
    pub id: UserId,
    /// Its site's id.
    pub site_id: SiteId,
    /// Its site's name.
    pub site: String,
    /// Its extension, e.g. `1001`.
    pub extension: String,
    /// A name to show, if known.
    pub display_name: Option<String>,
    /// Its recording mode.
    pub mode: RecordingMode,
    /// What it may see and do through the API.
    pub role: Role,
    /// Its extra numbers (DIDs).
    pub numbers: Vec<UserNumber>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// A user to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The site's name.
    pub site: String,
    /// The extension: 1 to 32 letters, digits, `_` or `-`.
    pub extension: String,
    /// A name to show.
    pub display_name: Option<String>,
    /// The mode; `None` gives the site's `default_mode`.
    pub mode: Option<RecordingMode>,
    /// The role.
    pub role: Role,
    /// Extra numbers, in any form.
    pub numbers: Vec<String>,
}

impl NewUser {
    /// A plain user of site `site` with extension `extension`, the site's default mode and no
    /// extra numbers.
    pub fn new(site: impl Into<String>, extension: impl Into<String>) -> Self {
        NewUser {
            site: site.into(),
            extension: extension.into(),
            display_name: None,
            mode: None,
            role: Role::User,
            numbers: Vec::new(),
        }
    }
}

/// A change to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// A new recording mode.
    pub mode: Option<RecordingMode>,
    /// A new role.
    pub role: Option<Role>,
    /// A new display name (`Some(None)` clears it).
    pub display_name: Option<Option<String>>,
    /// A new set of extra numbers, replacing the old one.
    pub numbers: Option<Vec<String>>,
}

/// Everything the daemon needs to decide who owns a channel, in memory (SPEC §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    /// The directory version this snapshot was taken at; see
    /// [`crate::ReadView::directory_version`].
    pub version: u64,
    /// Every site.
    pub sites: Vec<Site>,
    /// Every user of every site.
    pub users: Vec<User>,
}

impl Directory {
    /// A site by id.
    pub fn site(&self, id: SiteId) -> Option<&Site> {
        self.sites.iter().find(|s| s.id == id)
    }

    /// An index from (site, extension or normalised number) to user, for matching channels.
    /// A number typed in any form is found after normalising it with the site's plan.
    pub fn lookup(&self) -> DirectoryLookup<'_> {
        let mut by_key = HashMap::new();
        for user in &self.users {
            by_key.insert((user.site_id, user.extension.clone()), user);
            for n in &user.numbers {
                by_key
                    .entry((user.site_id, n.normalised.clone()))
                    .or_insert(user);
            }
        }
        DirectoryLookup {
            directory: self,
            by_key,
        }
    }
}

/// See [`Directory::lookup`].
#[derive(Debug)]
pub struct DirectoryLookup<'a> {
    directory: &'a Directory,
    by_key: HashMap<(SiteId, String), &'a User>,
}

impl<'a> DirectoryLookup<'a> {
    /// The user of `site` whose extension or number is `number` (any form).
    pub fn find(&self, site: SiteId, number: &str) -> Option<&'a User> {
        let trimmed = number.trim();
        if let Some(user) = self.by_key.get(&(site, trimmed.to_owned())) {
            return Some(user);
        }
        let plan = self.directory.site(site)?.settings.number_plan();
        self.by_key
            .get(&(site, numbers::normalise(trimmed, &plan)))
            .copied()
    }

    /// A user named by extension in any site (the first site by id that has it).
    pub fn find_extension(&self, extension: &str) -> Option<&'a User> {
        let mut sites: Vec<SiteId> = self.directory.sites.iter().map(|s| s.id).collect();
        sites.sort();
        sites
            .into_iter()
            .find_map(|s| self.by_key.get(&(s, extension.to_owned())).copied())
            .filter(|u| u.extension == extension)
    }
}

/// One party of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// As presented by the switch.
    pub raw: String,
    /// Normalised (SPEC §1.1).
    pub normalised: String,
}

/// A recording's metadata (SPEC §1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// Its id.
    pub id: RecordingId,
    /// Its site's name.
    pub site: String,
    /// Its site's id.
    pub site_id: SiteId,
    /// Its user's id.
    pub user_id: UserId,
    /// Its user's extension.
    pub user: String,
    /// The switch's channel uuid.
    pub call_uuid: String,
    /// Direction from the user's side.
    pub direction: Direction,
    /// The calling party.
    pub from: Party,
    /// The called party.
    pub to: Party,
    /// When recording started.
    pub started_at: DateTime<Utc>,
    /// When the switch closed the file.
    pub ended_at: Option<DateTime<Utc>>,
    /// Length of the audio in the file.
    pub duration_ms: Option<u64>,
    /// Time spent paused.
    pub paused_ms: u64,
    /// Size of the stored file.
    pub size_bytes: Option<u64>,
    /// SHA-256 of the stored file, hex.
    pub sha256: Option<String>,
    /// The audio format (`wav`).
    pub format: String,
    /// The file's name in the store (and for downloads).
    pub file_name: String,
    /// Where it is in its life.
    pub state: RecordingState,
    /// Why it was discarded, failed or deleted; on a stored recording, that the switch left
    /// its WAV header unfinished and the ingest repaired it ([`crate::HEADER_REPAIRED`]).
    pub state_reason: Option<String>,
    /// When retention deletes it.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether a litigation hold keeps it.
    pub hold: bool,
    /// How many notes it has.
    pub note_count: u32,
    /// When it was deleted (a tombstone).
    pub deleted_at: Option<DateTime<Utc>>,
}

/// One pause, resume, start or stop of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// What happened.
    pub kind: SegmentKind,
    /// When.
    pub at: DateTime<Utc>,
    /// What caused it.
    pub source: SegmentSource,
    /// Who: an extension, `daemon`, an API caller.
    pub actor: String,
}

/// A note on a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A recording with its segments and notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingDetail {
    /// The metadata.
    pub recording: Recording,
    /// Every segment, in time order.
    pub segments: Vec<Segment>,
    /// Every note, oldest first.
    pub notes: Vec<Note>,
}

/// A stored file, opened for a reader: played, downloaded or archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// The recording.
    pub id: RecordingId,
    /// The absolute path of the file, inside the store.
    pub path: PathBuf,
    /// SHA-256, hex (an `ETag`).
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Audio format (`wav`).
    pub format: String,
    /// The file name, for `Content-Disposition`.
    pub file_name: String,
}

impl StoredFile {
    /// The MIME type for the format.
    pub fn content_type(&self) -> &'static str {
        content_type(&self.format)
    }
}

/// The MIME type of an audio format name.
pub fn content_type(format: &str) -> &'static str {
    match format {
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        "ogg" | "opus" => "audio/ogg",
        "flac" => "audio/flac",
        _ => "application/octet-stream",
    }
}

/// Why a stored file is being opened (for the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilePurpose {
    /// Played in a browser or player.
    Play,
    /// Downloaded as an attachment.
    Download,
    /// Exported by an archive client.
    Archive,
}

impl FilePurpose {
    pub(crate) fn action(self) -> &'static str {
        match self {
            FilePurpose::Play => "recording.play",
            FilePurpose::Download => "recording.download",
            FilePurpose::Archive => "recording.archive",
        }
    }
}

/// A recording the switch may still be writing (state `recording`), for reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProgress {
    /// The recording.
    pub id: RecordingId,
    /// The switch's channel uuid.
    pub call_uuid: String,
    /// Whose.
    pub user_id: UserId,
    /// Where the switch writes it.
    pub spool_path: PathBuf,
    /// When recording started.
    pub started_at: DateTime<Utc>,
    /// Set once an ingest was asked for (the switch had closed the file).
    pub ended_at: Option<DateTime<Utc>>,
    /// When it was paused, if its last pause has no resume after it: a recording the daemon
    /// takes back after a restart carries on paused (masked), as the switch holds it.
    pub paused_since: Option<DateTime<Utc>>,
}

/// Storage used by a user against the site's quota (SPEC §4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUsage {
    /// The user.
    pub user_id: UserId,
    /// The user's site.
    pub site: String,
    /// The user's extension.
    pub extension: String,
    /// Bytes of stored recordings.
    pub bytes: u64,
    /// Number of stored recordings.
    pub files: u64,
    /// The site's quota per user.
    pub quota_bytes: u64,
    /// The site's policy.
    pub quota_policy: QuotaPolicy,
    /// Whether `bytes > quota_bytes`.
    pub over_quota: bool,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its position in the log.
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// The site concerned, if any.
    pub site_id: Option<SiteId>,
    /// Who did it.
    pub actor: String,
    /// What, e.g. `recording.read`, `user.set_mode`.
    pub action: String,
    /// To what, e.g. `recording:<id>`, `user:default/1001`.
    pub target: String,
    /// Details (JSON).
    pub detail: String,
    /// This entry's chain hash, hex.
    pub hash: String,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` to get the next (older) page; `None` at the start of the log.
    pub next_before: Option<i64>,
}

/// Which entries of a site's audit log to list: every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries by this actor, as the log names them: `1001@default`, `daemon`,
    /// `portal:192.0.2.1`.
    pub actor: Option<String>,
    /// Entries of this action, e.g. `recording.play`.
    pub action: Option<String>,
    /// Entries about this target, e.g. `recording:<id>`.
    pub target: Option<String>,
    /// Entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Entries before this time.
    pub until: Option<DateTime<Utc>>,
}

/// An API token as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// Its id.
    pub id: TokenId,
    /// Its user.
    pub user_id: UserId,
    /// Its user's site.
    pub site: String,
    /// Its user's extension.
    pub extension: String,
    /// A free label.
    pub label: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it stops working, if it does.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used, to the minute; `None`: never (or not since this was kept).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A token just created: the only time its secret is known.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Its id.
    pub id: TokenId,
    /// The secret to give to the user (`Authorization: Bearer <secret>`).
    pub secret: String,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Who is calling the API: what a valid token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token used.
    pub token_id: TokenId,
    /// The user.
    pub user_id: UserId,
    /// The user's site.
    pub site_id: SiteId,
    /// The user's site's name.
    pub site: String,
    /// The user's extension.
    pub extension: String,
    /// The user's role.
    pub role: Role,
}

impl Caller {
    /// The name written to the audit log for this caller.
    pub fn actor(&self) -> String {
        format!("{}@{}", self.extension, self.site)
    }

    /// What this caller may see: its own recordings, or its whole site for an admin.
    pub fn access(&self) -> Access {
        let scope = match self.role {
            Role::Admin => Scope::Site(self.site_id),
            Role::User => Scope::User {
                site: self.site_id,
                user: self.user_id,
            },
        };
        Access {
            actor: self.actor(),
            scope,
        }
    }
}

/// Which recordings an operation may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every site: the daemon, the CLI, the sweeper.
    All,
    /// One site: an admin.
    Site(SiteId),
    /// One user's recordings: a user.
    User {
        /// The user's site.
        site: SiteId,
        /// The user.
        user: UserId,
    },
}

/// Who is acting (for the audit log) and what they may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The name written to the audit log.
    pub actor: String,
    /// What they may see.
    pub scope: Scope,
}

impl Access {
    /// A trusted local actor (`daemon`, `cli`, `sweeper`) who sees everything.
    pub fn system(actor: impl Into<String>) -> Self {
        Access {
            actor: actor.into(),
            scope: Scope::All,
        }
    }

    /// Whether the actor may administer (hold, delete): not a plain user.
    pub fn is_admin(&self) -> bool {
        !matches!(self.scope, Scope::User { .. })
    }

    pub(crate) fn may_see_site(&self, site: SiteId) -> bool {
        match self.scope {
            Scope::All => true,
            Scope::Site(s) | Scope::User { site: s, .. } => s == site,
        }
    }

    pub(crate) fn may_see(&self, site: SiteId, user: UserId) -> bool {
        match self.scope {
            Scope::All => true,
            Scope::Site(s) => s == site,
            Scope::User { site: s, user: u } => s == site && u == user,
        }
    }

    pub(crate) fn require_admin(&self, op: &'static str) -> Result<(), StoreError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(StoreError::Forbidden {
                actor: self.actor.clone(),
                op,
            })
        }
    }
}
