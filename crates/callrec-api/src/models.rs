//! What requests carry: query parameters and JSON bodies, each with its OpenAPI description
//! (`IntoParams`, `ToSchema`). Replies are [`crate::replies`].
//!
//! Every query string is read strictly: an unknown parameter, a repeated one or a value of
//! the wrong form is a 400 that names the parameter, never a silent default (a misspelt
//! filter must not quietly return every recording). Empty values count as absent, as an
//! HTML form sends them.

use std::collections::BTreeMap;

use callrec_model::{Direction, PauseBehavior, QuotaPolicy, RecordingMode, RecordingState, Role};
use callrec_store::{self as store, MAX_LIMIT, SearchQuery};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::openapi::names;

/// The longest value accepted for a string query parameter.
pub const MAX_PARAM_CHARS: usize = 256;

/// A query string as name → value, read one parameter at a time.
#[derive(Debug, Clone, Default)]
pub struct QueryParams {
    values: BTreeMap<String, String>,
}

impl QueryParams {
    /// Collect decoded pairs, refusing a parameter given twice.
    pub fn new(pairs: Vec<(String, String)>) -> Result<Self, ApiError> {
        let mut values = BTreeMap::new();
        for (name, value) in pairs {
            if values.contains_key(&name) {
                return Err(ApiError::bad_request(format!(
                    "query parameter `{}` is given more than once",
                    clip(&name)
                )));
            }
            values.insert(name, value);
        }
        Ok(QueryParams { values })
    }

    /// Take a parameter's value; `None` when absent or empty.
    fn take(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(value) = self.values.remove(name) else {
            return Ok(None);
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Ok(None);
        }
        if value.chars().any(char::is_control) {
            // No filter legitimately holds one, and some (a NUL) upset the text index.
            return Err(ApiError::bad_request(format!(
                "query parameter `{name}` holds control characters"
            )));
        }
        if value.chars().count() > MAX_PARAM_CHARS {
            return Err(ApiError::bad_request(format!(
                "query parameter `{name}` is longer than {MAX_PARAM_CHARS} characters"
            )));
        }
        Ok(Some(value))
    }

    fn take_parsed<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        match self.take(name)? {
            None => Ok(None),
            Some(v) => parse(&v).map(Some).map_err(|why| {
                ApiError::bad_request(format!("query parameter `{name}` = `{}`: {why}", clip(&v)))
            }),
        }
    }

    /// Refuse whatever parameter was not taken.
    fn finish(self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.values.keys().next() {
            None => Ok(()),
            Some(name) => Err(ApiError::bad_request(format!(
                "unknown query parameter `{}` (this route takes: {})",
                clip(name),
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            ))),
        }
    }
}

/// A route that takes no query parameters refuses any.
pub fn no_params(params: QueryParams) -> Result<(), ApiError> {
    params.finish(&[])
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

fn int_in(lo: u64, hi: u64) -> impl FnOnce(&str) -> Result<u64, String> {
    move |v| {
        v.parse::<u64>()
            .ok()
            .filter(|n| (lo..=hi).contains(n))
            .ok_or_else(|| format!("expected a whole number from {lo} to {hi}"))
    }
}

/// A point in time as a search takes it: an instant, or a calendar day in the site's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// RFC 3339, e.g. `2024-05-01T10:00:00Z`.
    Instant(DateTime<Utc>),
    /// A date, e.g. `2024-05-01`.
    Day(NaiveDate),
}

impl TimeBound {
    /// A date (`2024-05-01`) or an RFC 3339 time.
    pub(crate) fn parse(v: &str) -> Result<TimeBound, String> {
        if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
            return Ok(TimeBound::Day(d));
        }
        // A `+` in a query string that was not percent-encoded arrives as a space.
        for candidate in [v.to_owned(), v.replace(' ', "+")] {
            if let Ok(t) = DateTime::parse_from_rfc3339(&candidate) {
                return Ok(TimeBound::Instant(t.with_timezone(&Utc)));
            }
        }
        Err("expected an RFC 3339 time (2024-05-01T10:00:00Z) or a date (2024-05-01)".to_owned())
    }

    /// As a lower bound: the instant, or the day's first moment in `tz`.
    pub fn since(self, tz: Tz) -> DateTime<Utc> {
        match self {
            TimeBound::Instant(t) => t,
            TimeBound::Day(d) => start_of_day(d, tz),
        }
    }

    /// As an exclusive upper bound: the instant, or the first moment of the next day in `tz`
    /// (so `until=2024-05-01` includes all of that day).
    pub fn until(self, tz: Tz) -> DateTime<Utc> {
        match self {
            TimeBound::Instant(t) => t,
            TimeBound::Day(d) => match d.succ_opt() {
                Some(next) => start_of_day(next, tz),
                None => DateTime::<Utc>::MAX_UTC,
            },
        }
    }
}

/// The first instant of `day` in `tz`. Where a zone skips midnight (a DST change at 00:00),
/// the day starts at the first hour that exists.
fn start_of_day(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    (0..24)
        .filter_map(|h| day.and_hms_opt(h, 0, 0))
        .find_map(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| day.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// The parameters of `GET /recordings`. Their doc comments are the document's descriptions.
#[derive(Debug, Clone, Default, PartialEq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Either party, in any form: 01234567890, 441234567890, +441234567890, (01234) 567890,
    /// or an extension.
    #[param(value_type = String, required = false)]
    pub number: Option<String>,
    /// The calling party, in any form.
    #[param(value_type = String, required = false)]
    pub from: Option<String>,
    /// The called party, in any form.
    #[param(value_type = String, required = false)]
    pub to: Option<String>,
    /// The owner's extension.
    #[param(value_type = String, required = false)]
    pub user: Option<String>,
    /// Started at or after: an RFC 3339 time, or a date (YYYY-MM-DD) in the site's time zone.
    #[param(value_type = String, required = false)]
    pub since: Option<TimeBound>,
    /// Started before: an RFC 3339 time, or a date in the site's time zone (which includes
    /// that whole day).
    #[param(value_type = String, required = false)]
    pub until: Option<TimeBound>,
    /// Direction from the owner's side.
    #[param(value_type = names::Direction, inline, required = false)]
    pub direction: Option<Direction>,
    /// At least this many seconds of audio (e.g. 30 or 2.5; held in milliseconds).
    #[param(rename = "min_duration", value_type = f64, required = false, minimum = 0)]
    pub min_duration_ms: Option<u64>,
    /// With (true) or without (false) notes.
    #[param(value_type = bool, required = false)]
    pub has_notes: Option<bool>,
    /// On hold (true) or not (false).
    #[param(value_type = bool, required = false)]
    pub hold: Option<bool>,
    /// Text in notes, case-insensitive.
    #[param(value_type = String, required = false)]
    pub q: Option<String>,
    /// Only this state (default: `stored` and `failed`, the recordings with a file).
    #[param(value_type = names::RecordingState, inline, required = false)]
    pub state: Option<RecordingState>,
    /// Page size.
    #[param(value_type = u32, required = false, minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = String, required = false)]
    pub cursor: Option<String>,
}

/// The query parameters `GET /recordings` takes.
pub const SEARCH_PARAMS: &[&str] = &[
    "number",
    "from",
    "to",
    "user",
    "since",
    "until",
    "direction",
    "min_duration",
    "has_notes",
    "hold",
    "q",
    "state",
    "limit",
    "cursor",
];

/// The longest `min_duration`, in seconds (a century).
const MAX_MIN_DURATION_S: f64 = 3_155_760_000.0;

impl SearchParams {
    /// Read the search parameters.
    pub fn parse(mut p: QueryParams) -> Result<SearchParams, ApiError> {
        let params = SearchParams {
            number: p.take("number")?,
            from: p.take("from")?,
            to: p.take("to")?,
            user: p.take("user")?,
            since: p.take_parsed("since", TimeBound::parse)?,
            until: p.take_parsed("until", TimeBound::parse)?,
            direction: p.take_parsed("direction", |v| {
                v.parse::<Direction>().map_err(|e| e.to_string())
            })?,
            min_duration_ms: p.take_parsed("min_duration", |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && (0.0..=MAX_MIN_DURATION_S).contains(s))
                    // Whole milliseconds; the bound keeps the product far inside u64.
                    .map(|s| (s * 1000.0).round() as u64)
                    .ok_or_else(|| "expected a number of seconds, e.g. 30 or 2.5".to_owned())
            })?,
            has_notes: p.take_parsed("has_notes", boolean)?,
            hold: p.take_parsed("hold", boolean)?,
            q: p.take("q")?,
            state: p.take_parsed("state", |v| {
                v.parse::<RecordingState>().map_err(|e| e.to_string())
            })?,
            limit: p
                .take_parsed("limit", int_in(1, u64::from(MAX_LIMIT)))?
                .map(|n| n as u32),
            cursor: p.take("cursor")?,
        };
        p.finish(SEARCH_PARAMS)?;
        Ok(params)
    }

    /// The store's query, with dates resolved in the site's time zone.
    pub fn to_query(&self, tz: Tz) -> SearchQuery {
        SearchQuery {
            number: self.number.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            user: self.user.clone(),
            since: self.since.map(|t| t.since(tz)),
            until: self.until.map(|t| t.until(tz)),
            direction: self.direction,
            min_duration_ms: self.min_duration_ms,
            has_notes: self.has_notes,
            hold: self.hold,
            text: self.q.clone(),
            state: self.state,
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }

    /// The filters for the audit log (who searched for what).
    pub fn audit_detail(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), serde_json::Value::String(v));
            }
        };
        put("number", self.number.clone());
        put("from", self.from.clone());
        put("to", self.to.clone());
        put("user", self.user.clone());
        put("since", self.since.map(|t| format!("{t:?}")));
        put("until", self.until.map(|t| format!("{t:?}")));
        put("direction", self.direction.map(|d| d.to_string()));
        put(
            "min_duration_ms",
            self.min_duration_ms.map(|d| d.to_string()),
        );
        put("has_notes", self.has_notes.map(|d| d.to_string()));
        put("hold", self.hold.map(|d| d.to_string()));
        put("q", self.q.clone());
        put("state", self.state.map(|d| d.to_string()));
        put("cursor", self.cursor.clone());
        serde_json::Value::Object(m)
    }
}

/// The parameters of `GET /recordings/{id}/audio`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AudioParams {
    /// `true` or `1`: `Content-Disposition: attachment` with the file's name.
    #[param(required = false)]
    pub download: bool,
}

impl AudioParams {
    /// Read them.
    pub fn parse(mut p: QueryParams) -> Result<AudioParams, ApiError> {
        let download = p.take_parsed("download", boolean)?.unwrap_or(false);
        p.finish(&["download"])?;
        Ok(AudioParams { download })
    }
}

/// The parameters of `DELETE /recordings/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Why, for the tombstone and the audit log.
    #[param(value_type = String, required = false)]
    pub reason: Option<String>,
}

impl DeleteParams {
    /// Read them.
    pub fn parse(mut p: QueryParams) -> Result<DeleteParams, ApiError> {
        let reason = p.take("reason")?;
        p.finish(&["reason"])?;
        Ok(DeleteParams { reason })
    }
}

/// The parameters of `GET /audit`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries before this sequence number (the previous page's `next_before`).
    #[param(value_type = i64, required = false, minimum = 1)]
    pub before: Option<i64>,
    /// Page size.
    #[param(required = false, minimum = 1, maximum = 500, default = 100)]
    pub limit: u32,
}

impl AuditParams {
    /// Read them.
    pub fn parse(mut p: QueryParams) -> Result<AuditParams, ApiError> {
        let before = p
            .take_parsed("before", int_in(1, i64::MAX as u64))?
            .map(|n| n as i64);
        let limit = p
            .take_parsed("limit", int_in(1, 500))?
            .map_or(100, |n| n as u32);
        p.finish(&["before", "limit"])?;
        Ok(AuditParams { before, limit })
    }
}

/// The parameters of `GET /changes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesParams {
    /// Changes after this sequence number (the previous page's `last_seq`; 0 or absent: from
    /// the start).
    #[param(value_type = i64, required = false, minimum = 0, default = 0)]
    pub after: i64,
    /// Page size.
    #[param(required = false, minimum = 1, maximum = 1000, default = 500)]
    pub limit: u32,
}

impl ChangesParams {
    /// Read them.
    pub fn parse(mut p: QueryParams) -> Result<ChangesParams, ApiError> {
        let after = p
            .take_parsed("after", int_in(0, i64::MAX as u64))?
            .map_or(0, |n| n as i64);
        let limit = p
            .take_parsed("limit", int_in(1, 1000))?
            .map_or(500, |n| n as u32);
        p.finish(&["after", "limit"])?;
        Ok(ChangesParams { after, limit })
    }
}

/// `POST /recordings/{id}/notes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// The note.
    #[schema(min_length = 1, max_length = 10000)]
    pub text: String,
}

/// `PUT /recordings/{id}/hold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// Hold (true) or release (false).
    pub hold: bool,
}

/// `POST /erasures`: erase every recording with a number as either party (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureBody {
    /// The number, in any form (`01632 960123`, `441632960123`, `+44 1632 960123`).
    pub number: String,
    /// Why: the request it answers (written to the audit log; required).
    pub reason: String,
    /// List what would be erased and kept; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /webhooks`: an endpoint for the admin's site's events (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// Where events are POSTed: an `http://` or `https://` URL.
    pub url: String,
    /// The HMAC-SHA256 key that signs every event to it (at least 16 characters); never
    /// shown again.
    #[schema(min_length = 16)]
    pub secret: String,
}

/// `POST /exports`: everything held about a number, for a subject access request (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportBody {
    /// The number, in any form (`01632 960123`, `441632960123`, `+44 1632 960123`).
    pub number: String,
    /// Why: the request it answers (written to the audit log; required).
    pub reason: String,
}

/// `PUT /site`: a change to some of the site's settings. An absent (or `null`) setting is
/// left as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SiteUpdate {
    /// Whether recording is on for the whole site.
    pub enabled: Option<bool>,
    /// The mode new users get.
    #[schema(value_type = Option<names::RecordingMode>)]
    pub default_mode: Option<RecordingMode>,
    /// Days a recording is kept (unless `legal_hold`).
    #[schema(minimum = 1, maximum = 36525)]
    pub retention_days: Option<u32>,
    /// Keep every recording of the site seven years.
    pub legal_hold: Option<bool>,
    /// How pauses are carried out on the switch.
    #[schema(value_type = Option<names::PauseBehavior>)]
    pub pause_behavior: Option<PauseBehavior>,
    /// Recordings shorter than this many seconds are discarded by the switch.
    #[schema(maximum = 3600)]
    pub min_seconds: Option<u32>,
    /// A recording paused longer than this many seconds resumes by itself and its user hears
    /// the "resumed" prompt; 0 turns it off.
    #[schema(maximum = 86400)]
    pub max_pause_seconds: Option<u32>,
    /// The site's time zone: an IANA name, e.g. `Europe/London`.
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Tz>,
    /// Country calling code for number normalisation.
    #[schema(minimum = 1, maximum = 999)]
    pub country_code: Option<u16>,
    /// National trunk prefix for number normalisation: up to 4 digits.
    #[schema(max_length = 4)]
    pub national_prefix: Option<String>,
    /// Storage quota per user, in bytes.
    #[schema(minimum = 1)]
    pub quota_bytes: Option<u64>,
    /// What happens over quota.
    #[schema(value_type = Option<names::QuotaPolicy>)]
    pub quota_policy: Option<QuotaPolicy>,
}

impl From<SiteUpdate> for store::SiteUpdate {
    fn from(u: SiteUpdate) -> Self {
        store::SiteUpdate {
            enabled: u.enabled,
            default_mode: u.default_mode,
            retention_days: u.retention_days,
            legal_hold: u.legal_hold,
            pause_behavior: u.pause_behavior,
            min_seconds: u.min_seconds,
            max_pause_seconds: u.max_pause_seconds,
            timezone: u.timezone,
            country_code: u.country_code,
            national_prefix: u.national_prefix,
            quota_bytes: u.quota_bytes,
            quota_policy: u.quota_policy,
        }
    }
}

/// `PUT /users/{extension}`: a change to a user. An absent field is left as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UserUpdate {
    /// A new recording mode.
    #[schema(value_type = Option<names::RecordingMode>)]
    pub mode: Option<RecordingMode>,
    /// A new role.
    #[schema(value_type = Option<names::Role>)]
    pub role: Option<Role>,
    /// A new display name; `null` clears it.
    #[serde(deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    /// A new set of extra numbers, in any form, replacing the old one.
    pub numbers: Option<Vec<String>>,
}

/// A field that is present, `null` included (`Some(None)`); an absent one is `None` through
/// `#[serde(default)]`. Plain `Option<Option<T>>` reads `null` as absent.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl From<UserUpdate> for store::UserUpdate {
    fn from(u: UserUpdate) -> Self {
        store::UserUpdate {
            mode: u.mode,
            role: u.role,
            display_name: u.display_name,
            numbers: u.numbers,
        }
    }
}

/// `POST /archive/runs`: what an archive client did in one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveRunBody {
    /// The client's name (its host, or what the client was told to call itself).
    #[schema(min_length = 1, max_length = 100)]
    pub client: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Recordings downloaded and verified.
    pub downloaded: u64,
    /// Recordings seen and not downloaded (already archived, before `--since`, gone).
    pub skipped: u64,
    /// Recordings that could not be archived.
    pub failed: u64,
    /// Bytes of audio downloaded.
    pub bytes: u64,
    /// The last change of the feed the client has fully handled.
    #[schema(minimum = 0)]
    pub last_seq: i64,
    /// A dry run: nothing was written.
    #[serde(default)]
    pub dry_run: bool,
    /// What went wrong, one line each (at most 100).
    #[serde(default)]
    pub errors: Vec<String>,
}

impl From<ArchiveRunBody> for store::NewArchiveRun {
    fn from(b: ArchiveRunBody) -> Self {
        store::NewArchiveRun {
            client: b.client,
            started_at: b.started_at,
            finished_at: b.finished_at,
            downloaded: b.downloaded,
            skipped: b.skipped,
            failed: b.failed,
            bytes: b.bytes,
            last_seq: b.last_seq,
            dry_run: b.dry_run,
            errors: b.errors,
        }
    }
}

/// `POST /archive/recordings`: the recordings whose metadata an archive client needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingIdsBody {
    /// Recording ids (UUIDs), 1 to 500.
    #[schema(min_items = 1, max_items = 500)]
    pub ids: Vec<String>,
}

impl RecordingIdsBody {
    /// The ids, each checked; a bad one, none or too many is a 422.
    pub fn parse(self) -> Result<Vec<callrec_model::RecordingId>, ApiError> {
        if self.ids.is_empty() || self.ids.len() > store::MAX_BATCH_READ {
            return Err(ApiError::unprocessable(format!(
                "`ids` must name 1 to {} recordings (got {})",
                store::MAX_BATCH_READ,
                self.ids.len()
            )));
        }
        self.ids
            .iter()
            .map(|raw| {
                raw.parse()
                    .map_err(|e| ApiError::unprocessable(format!("`ids`: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &[(&str, &str)]) -> QueryParams {
        QueryParams::new(
            q.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn every_search_parameter_is_read() {
        let p = SearchParams::parse(params(&[
            ("number", "01234 567890"),
            ("from", "1001"),
            ("to", "+442079460000"),
            ("user", "1001"),
            ("since", "2024-05-01"),
            ("until", "2024-05-02T10:00:00 01:00"),
            ("direction", "inbound"),
            ("min_duration", "2.5"),
            ("has_notes", "true"),
            ("hold", "0"),
            ("q", "called back"),
            ("state", "stored"),
            ("limit", "500"),
            ("cursor", "abc"),
        ]))
        .unwrap();
        assert_eq!(p.min_duration_ms, Some(2500));
        assert_eq!(p.hold, Some(false));
        let q = p.to_query(Tz::Europe__London);
        // Midnight in London in May is 23:00 UTC the day before.
        assert_eq!(q.since.unwrap().to_rfc3339(), "2024-04-30T23:00:00+00:00");
        assert_eq!(q.until.unwrap().to_rfc3339(), "2024-05-02T09:00:00+00:00");
        assert_eq!(q.limit, Some(500));
    }

    #[test]
    fn a_date_until_includes_that_whole_day() {
        let day = TimeBound::parse("2024-05-01").unwrap();
        assert_eq!(day.until(Tz::UTC).to_rfc3339(), "2024-05-02T00:00:00+00:00");
    }

    #[test]
    fn unknown_repeated_and_malformed_parameters_are_refused_by_name() {
        let e = SearchParams::parse(params(&[("nubmer", "1")])).unwrap_err();
        assert!(e.message.contains("nubmer"), "{}", e.message);
        let e =
            QueryParams::new(vec![("a".into(), "1".into()), ("a".into(), "2".into())]).unwrap_err();
        assert!(e.message.contains("more than once"));
        for (k, v) in [
            ("limit", "0"),
            ("limit", "501"),
            ("limit", "-1"),
            ("limit", "1e3"),
            ("since", "yesterday"),
            ("direction", "sideways"),
            ("min_duration", "-1"),
            ("min_duration", "NaN"),
            ("min_duration", "1e300"),
            ("hold", "maybe"),
            ("state", "' OR 1=1 --"),
            ("q", "a\u{0}b"),
            ("number", "10\n01"),
        ] {
            let e = SearchParams::parse(params(&[(k, v)])).unwrap_err();
            assert_eq!(e.status, warp::http::StatusCode::BAD_REQUEST);
            assert!(e.message.contains(k), "{k}: {}", e.message);
        }
    }

    #[test]
    fn empty_values_are_absent() {
        let p = SearchParams::parse(params(&[("number", ""), ("limit", " ")])).unwrap();
        assert_eq!(p, SearchParams::default());
    }
}
