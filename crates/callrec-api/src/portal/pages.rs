//! What the pages show, and how: the templates' data (already formatted, so templates hold
//! no logic), times in the site's zone with the zone named, durations and sizes for people,
//! and the HTML reply with the portal's security headers. Every value a person typed (notes,
//! names, numbers) reaches the page through askama's HTML escaping; nothing here marks text
//! safe.

use askama::Template;
use callrec_model::{RecordingMode, SegmentKind};
use callrec_store::{Party, Recording, SessionUser};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::search::SearchForm;
use crate::error::ApiError;

/// The portal's Content-Security-Policy: its own stylesheet and media only, no inline
/// script or style, no framing, forms posting only to itself.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; media-src 'self'; \
    style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; \
    base-uri 'none'";

/// The player's script (±10 s, speed), embedded; the page plays without it.
pub(crate) const PLAYER_SCRIPT: &str = include_str!("../../assets/player.js");

/// The calls page's script (the list replaced from server-sent events), embedded; the page
/// refreshes itself without it.
pub(crate) const CALLS_SCRIPT: &str = include_str!("../../assets/calls.js");

/// The stylesheet, embedded.
pub(crate) const STYLESHEET: &str = include_str!("../../assets/portal.css");

/// The header of every signed-in page.
#[derive(Debug, Clone)]
pub(crate) struct Nav {
    pub who: String,
    pub admin: bool,
    pub csrf: String,
    pub current: &'static str,
}

impl Nav {
    pub fn of(user: &SessionUser, current: &'static str) -> Nav {
        let who = match &user.display_name {
            Some(name) => format!("{name} ({})", user.actor()),
            None => user.actor(),
        };
        Nav {
            who,
            admin: user.role == callrec_model::Role::Admin,
            csrf: user.csrf_token.clone(),
            current,
        }
    }
}

#[derive(Template)]
#[template(path = "portal/signin.html")]
pub(crate) struct SigninPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub account: String,
    /// Where to go after signing in ("" for the recordings).
    pub next: String,
    pub message: Option<String>,
}

/// One row of the recordings table.
pub(crate) struct RecordingRow {
    pub id: String,
    pub when: String,
    pub user: String,
    pub from: String,
    pub to: String,
    pub duration: String,
    pub paused: String,
    pub notes: u32,
}

impl RecordingRow {
    pub fn of(r: &Recording, tz: Tz) -> RecordingRow {
        RecordingRow {
            id: r.id.to_string(),
            when: when(r.started_at, tz),
            user: r.user.clone(),
            from: r.from.raw.clone(),
            to: r.to.raw.clone(),
            duration: r.duration_ms.map(duration).unwrap_or_else(|| "–".into()),
            paused: duration(r.paused_ms),
            notes: r.note_count,
        }
    }
}

#[derive(Template)]
#[template(path = "portal/recordings.html")]
pub(crate) struct RecordingsPage {
    pub nav: Option<Nav>,
    pub admin: bool,
    pub site: String,
    pub zone: String,
    /// The search as typed, shown again in the form.
    pub f: SearchForm,
    /// Whether the box or any filter narrows the list.
    pub searched: bool,
    /// Whether a filter of the panel is set (the panel is shown open).
    pub filtered: bool,
    pub message: Option<String>,
    pub rows: Vec<RecordingRow>,
    /// The query string of the next page.
    pub next: Option<String>,
    /// The query string of this search's ZIP download.
    pub zip: String,
}

/// The facts of one recording.
pub(crate) struct RecordingFacts {
    pub id: String,
    pub user: String,
    pub when: String,
    pub direction: String,
    pub from: String,
    pub to: String,
    pub duration: String,
    pub paused: String,
    pub state: String,
}

pub(crate) struct SegmentRow {
    pub kind: String,
    pub when: String,
    pub source: String,
    pub actor: String,
}

pub(crate) struct NoteRow {
    pub text: String,
    pub author: String,
    pub when: String,
}

/// One paused stretch of a recording, for its timeline: where it sits (in thousandths of
/// the recording, for the SVG bar) and what it says (for everyone, screen readers included).
pub(crate) struct PausedStretch {
    /// Start, in thousandths of the recording's length (0–1000).
    pub x: u32,
    /// Width, in thousandths (at least 2, so a short pause stays visible).
    pub width: u32,
    /// `Paused from 0:12 to 0:30 (0:18)`, positions from the recording's start.
    pub label: String,
}

/// The timeline under the player, or nothing when the recording's length is unknown.
pub(crate) struct Timeline {
    pub length: String,
    pub stretches: Vec<PausedStretch>,
    /// A one-line summary for the bar's accessible name.
    pub summary: String,
}

/// The paused stretches of a recording, as milliseconds from its start: a pause runs until
/// the next resume, stop or start (the rule the store's `paused_ms` sums), and a pause
/// that is never ended runs to the end. Stretches are clipped to `[0, length_ms]`.
pub(crate) fn paused_stretches(
    segments: &[(SegmentKind, DateTime<Utc>)],
    started_at: DateTime<Utc>,
    length_ms: u64,
) -> Vec<(u64, u64)> {
    let offset = |t: DateTime<Utc>| -> u64 {
        u64::try_from((t - started_at).num_milliseconds())
            .unwrap_or(0)
            .min(length_ms)
    };
    let mut out = Vec::new();
    let mut since: Option<u64> = None;
    for (kind, at) in segments {
        match kind {
            SegmentKind::Pause => {
                since.get_or_insert(offset(*at));
            }
            SegmentKind::Resume | SegmentKind::Stop | SegmentKind::Start => {
                if let Some(from) = since.take() {
                    out.push((from, offset(*at).max(from)));
                }
            }
        }
    }
    if let Some(from) = since {
        out.push((from, length_ms));
    }
    out.retain(|(from, to)| to > from);
    out
}

impl Timeline {
    pub fn of(
        segments: &[(SegmentKind, DateTime<Utc>)],
        started_at: DateTime<Utc>,
        length_ms: u64,
    ) -> Option<Timeline> {
        if length_ms == 0 {
            return None;
        }
        let stretches: Vec<PausedStretch> = paused_stretches(segments, started_at, length_ms)
            .into_iter()
            .map(|(from, to)| {
                let x = (from * 1000 / length_ms) as u32;
                let end = (to * 1000).div_ceil(length_ms) as u32;
                PausedStretch {
                    x: x.min(998),
                    width: end.saturating_sub(x).max(2),
                    label: format!(
                        "Paused from {} to {} ({})",
                        duration(from),
                        duration(to),
                        duration(to - from)
                    ),
                }
            })
            .collect();
        let summary = match stretches.len() {
            0 => format!("Timeline of {}: never paused", duration(length_ms)),
            1 => format!("Timeline of {}: paused once", duration(length_ms)),
            n => format!("Timeline of {}: paused {n} times", duration(length_ms)),
        };
        Some(Timeline {
            length: duration(length_ms),
            stretches,
            summary,
        })
    }
}

#[derive(Template)]
#[template(path = "portal/recording.html")]
pub(crate) struct RecordingPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    /// Whether the hold and delete forms are shown.
    pub admin: bool,
    pub hold: bool,
    pub deleted: bool,
    /// Why an admin's action was not done.
    pub message: Option<String>,
    pub r: RecordingFacts,
    pub playable: bool,
    pub file_name: String,
    pub segments: Vec<SegmentRow>,
    pub notes: Vec<NoteRow>,
    pub timeline: Option<Timeline>,
}

/// One call in progress, with the one action its recording state offers.
pub(crate) struct CallRow {
    pub uuid: String,
    pub user: String,
    pub direction: String,
    pub from: String,
    pub to: String,
    pub since: String,
    pub on_hold: bool,
    /// `Recording`, `Paused` or `Not recording`.
    pub state: &'static str,
    /// The state's CSS class (`recording`, `paused`, `off`).
    pub state_class: &'static str,
    /// The action's path segment and label: `pause`/`Pause`, `resume`/`Resume`,
    /// `start`/`Start`.
    pub action: &'static str,
    pub action_label: &'static str,
    /// The recording's id, once there is one.
    pub recording_id: Option<String>,
}

impl CallRow {
    pub fn of(c: &callrec_model::LiveCall, tz: Tz) -> CallRow {
        use callrec_model::CallRecording as R;
        let (state, state_class, action, action_label) = match c.recording {
            R::Recording => ("Recording", "recording", "pause", "Pause"),
            R::Paused => ("Paused", "paused", "resume", "Resume"),
            R::Off => ("Not recording", "off", "start", "Start"),
        };
        CallRow {
            uuid: c.call_uuid.clone(),
            user: c.user.clone(),
            direction: c.direction.to_string(),
            from: c.from.clone(),
            to: c.to.clone(),
            since: when(c.answered_at, tz),
            on_hold: c.on_hold,
            state,
            state_class,
            action,
            action_label,
            recording_id: c.recording_id.as_ref().map(ToString::to_string),
        }
    }
}

/// The list of calls: the page's body and, on its own, each server-sent event.
#[derive(Template)]
#[template(path = "portal/calls_list.html")]
pub(crate) struct CallsList {
    pub admin: bool,
    pub csrf: String,
    pub calls: Vec<CallRow>,
}

#[derive(Template)]
#[template(path = "portal/calls.html")]
pub(crate) struct CallsPage {
    pub nav: Option<Nav>,
    pub admin: bool,
    pub zone: String,
    /// What the last action did, or why it was not done.
    pub done: Option<String>,
    pub message: Option<String>,
    /// [`CallsList`], rendered (and so escaped) by its own template.
    pub list: String,
}

pub(crate) struct ModeChoice {
    pub value: &'static str,
    pub label: &'static str,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "portal/settings.html")]
pub(crate) struct SettingsPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub saved: bool,
    pub message: Option<String>,
    pub modes: Vec<ModeChoice>,
    pub current_offered: bool,
    pub current_label: &'static str,
    pub retention: String,
    pub quota: String,
    pub used: String,
    pub files: u64,
    pub over_quota: bool,
    pub zone: String,
}

pub(crate) struct UserRow {
    pub extension: String,
    pub name: String,
    pub mode: &'static str,
    pub role: String,
}

#[derive(Template)]
#[template(path = "portal/users.html")]
pub(crate) struct UsersPage {
    pub nav: Option<Nav>,
    pub site: String,
    pub users: Vec<UserRow>,
}

#[derive(Template)]
#[template(path = "portal/error.html")]
pub(crate) struct ErrorPage {
    pub nav: Option<Nav>,
    pub title: &'static str,
    pub message: String,
}

/// A time in the site's zone, with the zone's abbreviation (`2024-05-01 11:00:00 BST`).
pub(crate) fn when(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// The zone as people know it: its IANA name.
pub(crate) fn zone_name(tz: Tz) -> String {
    tz.name().to_owned()
}

/// A duration as `m:ss`, or `h:mm:ss` from an hour.
pub(crate) fn duration(ms: u64) -> String {
    let s = (ms + 500) / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// A size in bytes for people (binary units, as the quota is set).
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A party as presented, with its normalised form when that differs.
pub(crate) fn party(p: &Party) -> String {
    if p.raw == p.normalised || p.normalised.is_empty() {
        p.raw.clone()
    } else {
        format!("{} ({})", p.raw, p.normalised)
    }
}

/// The name the source article gives each mode.
pub(crate) fn mode_label(mode: RecordingMode) -> &'static str {
    match mode {
        RecordingMode::Never => "Never",
        RecordingMode::Always => "Always",
        RecordingMode::AlwaysPausable => "Always with Pause/Resume",
        RecordingMode::OnDemand => "On Demand with User Initiated Start",
    }
}

/// An HTML reply with the portal's headers.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Render a template as a reply with `status`.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "a portal page failed to render");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>This page could not be shown.</p>"
                    .to_owned(),
            )
        }
    }
}

/// An error as a page. Messages of 4xx errors are shown (they say what to change); a 5xx
/// says only that something failed (the log has the details).
pub(crate) fn error(e: ApiError, nav: Option<Nav>) -> Response {
    let title = match e.status.as_u16() {
        400 | 422 => "That did not work",
        401 => "Please sign in",
        403 => "Not allowed",
        404 => "Not found",
        409 => "Not possible now",
        429 => "Too many attempts",
        _ => "Something went wrong",
    };
    let message = if e.status.is_server_error() {
        "The portal could not do this just now. Try again later; if it keeps happening, tell \
         your administrator."
            .to_owned()
    } else {
        e.message.clone()
    };
    render(
        e.status,
        &ErrorPage {
            nav,
            title,
            message,
        },
    )
}

/// A `303 See Other` to `to` (after a form, and to send strangers to the sign-in page).
pub(crate) fn redirect(to: &'static str) -> Response {
    redirect_to(to.to_owned())
}

/// [`redirect`] to a computed path (always one of ours, starting with `/`).
pub(crate) fn redirect_to(to: String) -> Response {
    let mut r = Response::new(bytes::Bytes::new().into());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::try_from(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_clock() {
        assert_eq!(duration(0), "0:00");
        assert_eq!(duration(65_400), "1:05");
        assert_eq!(duration(3_723_000), "1:02:03");
    }

    #[test]
    fn times_are_shown_in_the_sites_zone_with_its_summer_name() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            when(t, chrono_tz::Europe::London),
            "2024-05-01 11:00:00 BST"
        );
        let winter = DateTime::parse_from_rfc3339("2024-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            when(winter, chrono_tz::Europe::London),
            "2024-12-01 10:00:00 GMT"
        );
    }

    #[test]
    fn a_pause_runs_to_its_resume_and_an_unended_one_to_the_end() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let s = |ms: i64| t + chrono::TimeDelta::milliseconds(ms);
        let segs = [
            (SegmentKind::Start, s(0)),
            (SegmentKind::Pause, s(10_000)),
            (SegmentKind::Pause, s(12_000)),
            (SegmentKind::Resume, s(30_000)),
            (SegmentKind::Pause, s(50_000)),
        ];
        assert_eq!(
            paused_stretches(&segs, t, 60_000),
            vec![(10_000, 30_000), (50_000, 60_000)]
        );
        let tl = Timeline::of(&segs, t, 60_000).unwrap();
        assert_eq!(tl.stretches[0].x, 166);
        assert_eq!(tl.stretches[0].width, 334);
        assert_eq!(tl.stretches[0].label, "Paused from 0:10 to 0:30 (0:20)");
        assert_eq!(tl.stretches[1].x, 833);
        assert_eq!(tl.stretches[1].x + tl.stretches[1].width, 1000);
        assert!(Timeline::of(&segs, t, 0).is_none());
        assert!(
            paused_stretches(&segs[..2], t, 5_000).is_empty(),
            "clipped to the end"
        );
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(1024 * 1024 * 1024), "1.0 GiB");
        assert_eq!(size(1536), "1.5 KiB");
    }

    #[test]
    fn a_note_with_markup_is_escaped_in_the_page() {
        let page = RecordingPage {
            nav: None,
            csrf: "t".into(),
            admin: true,
            hold: false,
            deleted: false,
            message: Some("<b>".into()),
            r: RecordingFacts {
                id: "x".into(),
                user: "1001".into(),
                when: "w".into(),
                direction: "inbound".into(),
                from: "\"><img src=x onerror=alert(1)>".into(),
                to: "2".into(),
                duration: "0:01".into(),
                paused: "0:00".into(),
                state: "stored".into(),
            },
            playable: false,
            file_name: "f.wav".into(),
            segments: vec![],
            notes: vec![NoteRow {
                text: "<script>alert(1)</script>".into(),
                author: "1001@default".into(),
                when: "w".into(),
            }],
            timeline: None,
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert(1)</script>"));
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img src=x"));
    }
}
