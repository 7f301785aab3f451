//! The admin's two record-keeping pages: the site's **audit log** (`/audit`: who listened to,
//! downloaded or changed what, newest first, narrowed by actor, action, recording and dates)
//! and the **archive clients** with their last runs (`/archive`, the store query behind
//! `GET /api/v1/archive/runs`). Both read only; reading them is audited as the API's
//! `GET /audit` and `GET /archive/runs` are (`audit.read`, `archive.list`).

#![allow(clippy::result_large_err)] // the error side is the reply itself, as in `handlers`

use askama::Template;
use callrec_model::{RecordingId, Role};
use callrec_store::{ArchiveClient, AuditEntry, AuditFilter};
use chrono_tz::Tz;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::handlers::{Page, audit, require_page, settle, site_zone};
use super::pages::{self, Nav};
use super::session::Signed;
use crate::error::ApiError;
use crate::models::TimeBound;
use crate::state::ApiState;

/// Entries per page of the audit log.
const PAGE_SIZE: u32 = 50;

/// A detail longer than this is shown cut, with the whole of it one click away.
const DETAIL_SHOWN: usize = 120;

/// The actions the log holds, with what each says in words, for the filter's choices and
/// the entries' descriptions. An action not listed (a newer one) still shows and filters by
/// its own name.
const ACTIONS: &[(&str, &str)] = &[
    ("recording.play", "listened to a recording"),
    ("recording.download", "downloaded a recording"),
    ("recording.read", "opened a recording's details"),
    ("recording.search", "searched the recordings"),
    ("recording.export", "exported recordings as a ZIP"),
    ("recording.archive", "archived a recording"),
    ("recording.note", "added a note"),
    ("recording.hold", "put a recording on hold"),
    ("recording.release", "released a recording's hold"),
    ("recording.delete", "deleted a recording"),
    ("recording.create", "started a recording"),
    ("recording.stored", "stored a recording"),
    ("recording.failed", "marked a recording failed"),
    ("call.list", "listed the calls in progress"),
    ("user.add", "added a user"),
    ("user.update", "changed a user"),
    ("user.set_mode", "changed a recording mode"),
    ("user.password", "set a portal password"),
    ("user.remove", "removed a user"),
    ("user.list", "listed the users"),
    ("user.read", "read a user"),
    ("usage.read", "read storage use"),
    ("site.create", "created a site"),
    ("site.update", "changed the site's settings"),
    ("site.read", "read the site's settings"),
    ("token.create", "created an API token"),
    ("token.revoke", "revoked an API token"),
    ("session.signin", "signed in to the portal"),
    ("session.signin_failed", "failed to sign in"),
    ("session.signout", "signed out"),
    ("session.revoke_all", "ended a user's sessions"),
    ("audit.read", "read the audit log"),
    ("archive.run", "reported an archive run"),
    ("archive.list", "listed the archive clients"),
    ("webhook.add", "added a webhook"),
    ("webhook.remove", "removed a webhook"),
    ("subject_access.export", "exported a caller's recordings"),
    ("store.verify", "verified the store"),
];

/// What an action says in words, when it is one we know.
fn action_words(action: &str) -> Option<&'static str> {
    ACTIONS.iter().find(|(a, _)| *a == action).map(|(_, w)| *w)
}

// ---- the audit log ---------------------------------------------------------------------

/// The audit log's filter form as typed, to show it again and to build the pages' links.
#[derive(Debug, Default, Clone)]
struct AuditForm {
    actor: String,
    action: String,
    recording: String,
    since: String,
    until: String,
    before: String,
}

impl AuditForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> AuditForm {
        let mut f = AuditForm::default();
        for (name, value) in pairs {
            let value = value.trim().to_owned();
            match name.as_str() {
                "actor" => f.actor = value,
                "action" => f.action = value,
                "recording" => f.recording = value,
                "since" => f.since = value,
                "until" => f.until = value,
                "before" => f.before = value,
                _ => {}
            }
        }
        f
    }

    fn filtered(&self) -> bool {
        [
            &self.actor,
            &self.action,
            &self.recording,
            &self.since,
            &self.until,
        ]
        .iter()
        .any(|v| !v.is_empty())
    }

    /// The query string of this filter's page of entries before `before` ("" for the newest).
    fn query(&self, before: &str) -> String {
        let pairs: Vec<(&str, &str)> = [
            ("actor", self.actor.as_str()),
            ("action", self.action.as_str()),
            ("recording", self.recording.as_str()),
            ("since", self.since.as_str()),
            ("until", self.until.as_str()),
            ("before", before),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// The store's filter, dates read as days in the site's zone (`until` takes in the whole
    /// day). The actor is as the log names it: an extension typed alone is that user of
    /// this site (`1001` → `1001@default`) when the site has one, else taken as typed
    /// (`daemon`, `sweeper`, `portal:192.0.2.7`).
    fn to_filter(
        &self,
        tz: Tz,
        site: &str,
        extension_known: bool,
    ) -> Result<(AuditFilter, Option<i64>), ApiError> {
        let day = |name: &str, v: &str| -> Result<Option<TimeBound>, ApiError> {
            if v.is_empty() {
                return Ok(None);
            }
            TimeBound::parse(v)
                .map(Some)
                .map_err(|e| ApiError::bad_request(format!("`{name}`: {e}")))
        };
        let since = day("From date", &self.since)?.map(|t| t.since(tz));
        let until = day("To date", &self.until)?.map(|t| t.until(tz));
        let target = if self.recording.is_empty() {
            None
        } else {
            let id = self.recording.parse::<RecordingId>().map_err(|_| {
                ApiError::bad_request(format!(
                    "`{}` is not a recording id: copy it from a recording's details \
                     (Call Handler ID)",
                    callrec_model::names::excerpt(&self.recording)
                ))
            })?;
            Some(format!("recording:{id}"))
        };
        let actor = match self.actor.as_str() {
            "" => None,
            a if !a.contains('@') && extension_known => Some(format!("{a}@{site}")),
            a => Some(a.to_owned()),
        };
        let before = match self.before.as_str() {
            "" => None,
            b => Some(
                b.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| ApiError::bad_request("`before` must be a whole number"))?,
            ),
        };
        Ok((
            AuditFilter {
                actor,
                action: (!self.action.is_empty()).then(|| self.action.clone()),
                target,
                since,
                until,
            },
            before,
        ))
    }
}

/// One entry of the log, as the page shows it.
pub(crate) struct AuditRow {
    pub seq: i64,
    pub when: String,
    pub actor: String,
    pub action: String,
    /// The action in words, when known.
    pub words: Option<&'static str>,
    pub target: String,
    /// The recording the entry is about, for a link.
    pub recording: Option<String>,
    /// The detail in words ([`detail_words`]), cut to [`DETAIL_SHOWN`] characters when
    /// longer.
    pub detail_short: String,
    /// The whole detail (JSON, indented), when `detail_short` is cut.
    pub detail_full: Option<String>,
}

/// An entry's detail for people: a JSON object as `key: value` pairs in key order
/// (`bytes: 48044, purpose: play`), strings unquoted, anything nested as compact JSON; any
/// other text as it is.
fn detail_words(detail: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(detail) {
        Ok(serde_json::Value::Object(fields)) => fields
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => detail.to_owned(),
    }
}

impl AuditRow {
    fn of(e: &AuditEntry, tz: Tz) -> AuditRow {
        let words = detail_words(&e.detail);
        let (detail_short, detail_full) = match words.char_indices().nth(DETAIL_SHOWN) {
            None => (words, None),
            Some((cut, _)) => (
                format!("{}…", &words[..cut]),
                // The whole entry, as the log holds it (indented when it is JSON).
                Some(
                    serde_json::from_str::<serde_json::Value>(&e.detail)
                        .ok()
                        .and_then(|v| serde_json::to_string_pretty(&v).ok())
                        .unwrap_or_else(|| e.detail.clone()),
                ),
            ),
        };
        AuditRow {
            seq: e.seq,
            when: pages::when(e.at, tz),
            actor: e.actor.clone(),
            action: e.action.clone(),
            words: action_words(&e.action),
            target: e.target.clone(),
            recording: e
                .target
                .strip_prefix("recording:")
                .filter(|id| id.parse::<RecordingId>().is_ok())
                .map(str::to_owned),
            detail_short,
            detail_full,
        }
    }
}

/// A choice of the action filter.
pub(crate) struct ActionChoice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "portal/audit.html")]
pub(crate) struct AuditLogPage {
    pub nav: Option<Nav>,
    pub site: String,
    pub zone: String,
    pub actor: String,
    pub actions: Vec<ActionChoice>,
    pub recording: String,
    pub since: String,
    pub until: String,
    pub filtered: bool,
    /// Whether this is a later page (a link back to the newest is shown).
    pub older: bool,
    pub message: Option<String>,
    pub rows: Vec<AuditRow>,
    /// The query string of the next (older) page.
    pub next: Option<String>,
    /// The query string of this filter's first page.
    pub first: String,
}

fn action_choices(current: &str) -> Vec<ActionChoice> {
    let mut choices = vec![ActionChoice {
        value: String::new(),
        label: "Any".to_owned(),
        selected: current.is_empty(),
    }];
    if !current.is_empty() && action_words(current).is_none() {
        choices.push(ActionChoice {
            value: current.to_owned(),
            label: current.to_owned(),
            selected: true,
        });
    }
    let mut known: Vec<&(&str, &str)> = ACTIONS.iter().collect();
    known.sort_by_key(|(a, _)| *a);
    choices.extend(known.into_iter().map(|(a, words)| ActionChoice {
        value: (*a).to_owned(),
        label: format!("{a} ({words})"),
        selected: *a == current,
    }));
    choices
}

/// `GET /audit`: admin, the site's audit log.
pub(crate) async fn audit_log(
    state: ApiState,
    signed: Option<Signed>,
    pairs: Vec<(String, String)>,
    here: String,
) -> Page {
    settle(audit_log_inner(state, signed, pairs, here).await)
}

async fn audit_log_inner(
    state: ApiState,
    signed: Option<Signed>,
    pairs: Vec<(String, String)>,
    here: String,
) -> Result<Response, Response> {
    let signed = require_page(signed, &here)?;
    let nav = Nav::of(&signed.user, "audit");
    let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
    if signed.user.role != Role::Admin {
        return Err(fail(ApiError::forbidden(
            "only an administrator may read the audit log",
        )));
    }
    let form = AuditForm::from_pairs(pairs);
    let tz = site_zone(&state, &signed).await.map_err(fail)?;
    let site = signed.user.site.clone();
    let extension_known = if form.actor.is_empty() || form.actor.contains('@') {
        false
    } else {
        let (s, ext) = (site.clone(), form.actor.clone());
        state
            .store()
            .read(move |v| Ok(v.user(&s, &ext).is_ok()))
            .await
            .map_err(|e| fail(e.into()))?
    };
    let mut page = AuditLogPage {
        nav: Some(nav.clone()),
        site: site.clone(),
        zone: pages::zone_name(tz),
        actor: form.actor.clone(),
        actions: action_choices(&form.action),
        recording: form.recording.clone(),
        since: form.since.clone(),
        until: form.until.clone(),
        filtered: form.filtered(),
        older: !form.before.is_empty(),
        message: None,
        rows: Vec::new(),
        next: None,
        first: form.query(""),
    };
    let (filter, before) = match form.to_filter(tz, &site, extension_known) {
        Ok(f) => f,
        Err(e) => {
            page.message = Some(e.message);
            return Ok(pages::render(StatusCode::BAD_REQUEST, &page));
        }
    };
    let site_id = signed.user.site_id;
    let read = filter.clone();
    let found = state
        .store()
        .read(move |v| v.audit_page(site_id, &read, before, PAGE_SIZE))
        .await
        .map_err(|e| fail(e.into()))?;
    audit(
        &state,
        &signed,
        "audit.read",
        format!("site:{site}"),
        json!({
            "before": before,
            "entries": found.entries.len(),
            "filters": {
                "actor": filter.actor,
                "action": filter.action,
                "target": filter.target,
                "since": filter.since,
                "until": filter.until,
            },
            "via": "portal",
        }),
    )
    .await
    .map_err(fail)?;
    page.rows = found.entries.iter().map(|e| AuditRow::of(e, tz)).collect();
    page.next = found
        .next_before
        .map(|before| form.query(&before.to_string()));
    Ok(pages::render(StatusCode::OK, &page))
}

// ---- archive clients -------------------------------------------------------------------

/// One archive client and its last run, as the page shows it.
pub(crate) struct ArchiveRow {
    pub client: String,
    pub actor: String,
    pub runs: u64,
    pub started: String,
    pub finished: String,
    pub took: String,
    pub reported: String,
    pub downloaded: u64,
    pub skipped: u64,
    pub failed: u64,
    pub bytes: String,
    pub last_seq: i64,
    pub dry_run: bool,
    pub errors: Vec<String>,
}

impl ArchiveRow {
    fn of(c: &ArchiveClient, tz: Tz) -> ArchiveRow {
        let r = &c.last_run;
        ArchiveRow {
            client: c.client.clone(),
            actor: c.actor.clone(),
            runs: c.runs,
            started: pages::when(r.started_at, tz),
            finished: pages::when(r.finished_at, tz),
            took: pages::duration(
                u64::try_from((r.finished_at - r.started_at).num_milliseconds()).unwrap_or(0),
            ),
            reported: pages::when(r.reported_at, tz),
            downloaded: r.downloaded,
            skipped: r.skipped,
            failed: r.failed,
            bytes: pages::size(r.bytes),
            last_seq: r.last_seq,
            dry_run: r.dry_run,
            errors: r.errors.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "portal/archive.html")]
pub(crate) struct ArchivePage {
    pub nav: Option<Nav>,
    pub site: String,
    pub zone: String,
    pub clients: Vec<ArchiveRow>,
}

/// `GET /archive`: admin, the site's archive clients and their last runs.
pub(crate) async fn archive_clients(state: ApiState, signed: Option<Signed>, here: String) -> Page {
    settle(
        async move {
            let signed = require_page(signed, &here)?;
            let nav = Nav::of(&signed.user, "archive");
            let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
            if signed.user.role != Role::Admin {
                return Err(fail(ApiError::forbidden(
                    "only an administrator may see the archive clients",
                )));
            }
            let tz = site_zone(&state, &signed).await.map_err(fail)?;
            let site_id = signed.user.site_id;
            let clients = state
                .store()
                .read(move |v| v.archive_clients(site_id))
                .await
                .map_err(|e| fail(e.into()))?;
            audit(
                &state,
                &signed,
                "archive.list",
                format!("site:{}", signed.user.site),
                json!({"clients": clients.len(), "via": "portal"}),
            )
            .await
            .map_err(fail)?;
            let page = ArchivePage {
                nav: Some(nav.clone()),
                site: signed.user.site.clone(),
                zone: pages::zone_name(tz),
                clients: clients.iter().map(|c| ArchiveRow::of(c, tz)).collect(),
            };
            Ok(pages::render(StatusCode::OK, &page))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use callrec_model::SiteId;
    use chrono::{DateTime, Utc};

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn typed_markup_in_an_entry_is_shown_as_text() {
        let entry = AuditEntry {
            seq: 7,
            at: at(),
            site_id: Some(SiteId(1)),
            actor: "portal:<b>1.2.3.4</b>".into(),
            action: "session.signin_failed".into(),
            target: "account:<img src=x onerror=alert(1)>".into(),
            detail: r#"{"reason":"<script>alert(1)</script>"}"#.into(),
            hash: "h".into(),
        };
        let page = AuditLogPage {
            nav: None,
            site: "default".into(),
            zone: "Europe/London".into(),
            actor: "\"><script>alert(2)</script>".into(),
            actions: action_choices("<i>x</i>"),
            recording: String::new(),
            since: String::new(),
            until: String::new(),
            filtered: true,
            older: false,
            message: None,
            rows: vec![AuditRow::of(&entry, chrono_tz::Europe::London)],
            next: None,
            first: String::new(),
        };
        let html = page.render().unwrap();
        for raw in [
            "<b>1.2.3.4",
            "<img src=x",
            "<script>alert(1)",
            "<script>alert(2)",
            "<i>x</i>",
        ] {
            assert!(!html.contains(raw), "{raw} reached the page as markup");
        }
        assert!(html.contains("2024-05-01 11:00:00 BST"), "{html}");
        assert!(html.contains("failed to sign in"));
    }

    #[test]
    fn a_long_detail_is_cut_with_the_whole_kept_and_a_recording_target_links() {
        let id = RecordingId::new();
        let entry = AuditEntry {
            seq: 1,
            at: at(),
            site_id: Some(SiteId(1)),
            actor: "1001@default".into(),
            action: "recording.play".into(),
            target: format!("recording:{id}"),
            detail: format!(r#"{{"ids":"{}"}}"#, "x".repeat(300)),
            hash: "h".into(),
        };
        let row = AuditRow::of(&entry, chrono_tz::UTC);
        assert_eq!(row.recording, Some(id.to_string()));
        assert_eq!(row.detail_short.chars().count(), DETAIL_SHOWN + 1);
        assert!(
            row.detail_short.starts_with("ids: xxx"),
            "{}",
            row.detail_short
        );
        assert!(row.detail_full.unwrap().contains(&"x".repeat(300)));
        assert_eq!(row.words, Some("listened to a recording"));
        let empty = AuditRow::of(
            &AuditEntry {
                detail: "{}".into(),
                target: "recording:not-an-id".into(),
                ..entry
            },
            chrono_tz::UTC,
        );
        assert_eq!((empty.detail_short.as_str(), empty.recording), ("", None));
    }

    #[test]
    fn a_detail_reads_as_words() {
        assert_eq!(
            detail_words(r#"{"purpose":"play","bytes":48044,"ids":["a","b"],"x":null}"#),
            r#"bytes: 48044, ids: ["a","b"], purpose: play, x: null"#,
            "keys in order, strings unquoted, the rest as JSON"
        );
        assert_eq!(detail_words("{}"), "");
        assert_eq!(detail_words("not json <b>"), "not json <b>");
    }

    #[test]
    fn the_filter_reads_days_in_the_sites_zone_and_an_extension_as_this_sites_user() {
        let form = AuditForm {
            actor: "1001".into(),
            since: "2024-05-01".into(),
            until: "2024-05-01".into(),
            ..Default::default()
        };
        let (f, before) = form
            .to_filter(chrono_tz::Europe::London, "default", true)
            .unwrap();
        assert_eq!(f.actor.as_deref(), Some("1001@default"));
        assert_eq!(f.since.unwrap().to_rfc3339(), "2024-04-30T23:00:00+00:00");
        assert_eq!(f.until.unwrap().to_rfc3339(), "2024-05-01T23:00:00+00:00");
        assert_eq!(before, None);
        let (f, _) = AuditForm {
            actor: "daemon".into(),
            ..Default::default()
        }
        .to_filter(chrono_tz::UTC, "default", false)
        .unwrap();
        assert_eq!(f.actor.as_deref(), Some("daemon"));
        for bad in [
            AuditForm {
                recording: "../etc".into(),
                ..Default::default()
            },
            AuditForm {
                since: "yesterday".into(),
                ..Default::default()
            },
            AuditForm {
                before: "-3".into(),
                ..Default::default()
            },
        ] {
            assert_eq!(
                bad.to_filter(chrono_tz::UTC, "default", false)
                    .unwrap_err()
                    .status,
                StatusCode::BAD_REQUEST
            );
        }
    }
}
