//! Reconciliation (SPEC §3.6): after every (re)connect, after any dropped event, and at
//! start, rebuild the view of live calls from the switch itself.
//!
//! ESL does not replay what was missed, so the switch is asked: `show channels as json` for
//! the channels that exist, `uuid_getvar` for the ownership variables of channels we never
//! saw answered, `uuid_buglist` for the files their media bugs write. Decisions are the
//! recorder's ([`crate::recorder::Recorder::reconcile_plan`] and friends); this module only asks
//! and parses.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use callrec_model::RecordingId;
use serde::Deserialize;

use crate::core::{Core, QueryError};
use crate::event::{ChannelEvent, EventKind};
use crate::recorder::{InProgressRow, SwitchChannel};

/// How long a recording whose channel hung up waits for its RECORD_STOP (µs of switch time)
/// before reconciliation or the spool scan takes its file as closed.
pub const CLOSING_GRACE: i64 = 5_000_000;

/// How long an answered leg may wait for its user's own leg to answer (µs of switch time)
/// before the spool scan records it anyway (see `Recorder::expire_waits`). The own leg of a
/// bridged call answers within milliseconds of the far leg.
pub const WAIT_GRACE: i64 = 2_000_000;

/// How old a spool file no recording names must be before it is reported: a recording the
/// switch starts (armed by the dialplan) is named by the leg's events within this time.
pub const UNNAMED_GRACE: Duration = Duration::from_secs(60);

/// Audio files in `spool` (`<id>.<format>`, the names callrec and the shipped arming dialplan
/// give), last written more than `min_age` ago, sorted by name: the candidates for files the
/// switch wrote that nothing will ingest. With the shipped `dialplan/callrec-arm.xml` the
/// switch arms calls by itself, so a call that starts and ends while callrec is down or cut
/// off from the switch leaves its recording here with no row, and callrec cannot tell whose
/// it is. Only reads the directory: the caller checks which of them a recording names.
pub fn old_spool_files(
    spool: &Path,
    format: &str,
    min_age: Duration,
    now: SystemTime,
) -> Vec<(RecordingId, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(spool) else {
        return Vec::new();
    };
    let suffix = format!(".{format}");
    let mut found: Vec<(RecordingId, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            let id: RecordingId = path
                .file_name()?
                .to_str()?
                .strip_suffix(&suffix)?
                .parse()
                .ok()?;
            let modified = entry.metadata().ok()?.modified().ok()?;
            let old = now.duration_since(modified).is_ok_and(|age| age >= min_age);
            old.then_some((id, path))
        })
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
}

/// What rebuilding the call table from the switch's channel list found and did (the store's
/// own reconcile pass, finishing what a crash left on disk, reports a
/// [`callrec_store::RepairReport`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResyncReport {
    /// Channels the switch listed.
    pub switch_channels: usize,
    /// Tracked channels that had gone.
    pub gone: usize,
    /// Answered channels taken in.
    pub adopted: usize,
    /// Ringing channels taken in (armed again, or armed now).
    pub ringing: usize,
    /// Recordings whose start was checked.
    pub checked: usize,
    /// Index rows handed to ingest because no channel carries them any more.
    pub orphans: usize,
}

/// Why a `show channels` answer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The switch did not answer.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The answer was not the JSON the switch sends.
    #[error("`show channels as json` answered something else: {0}")]
    BadListing(String),
}

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    rows: Vec<ListedChannel>,
}

#[derive(Deserialize)]
struct ListedChannel {
    uuid: String,
    #[serde(default)]
    direction: String,
    #[serde(default)]
    cid_num: String,
    #[serde(default)]
    dest: String,
    #[serde(default)]
    callstate: String,
    #[serde(default)]
    call_uuid: String,
}

/// Parses the body of `show channels as json`.
pub fn parse_channels(body: &str) -> Result<Vec<SwitchChannel>, ReconcileError> {
    let listing: Listing = serde_json::from_str(body.trim())
        .map_err(|e| ReconcileError::BadListing(format!("{e}")))?;
    Ok(listing
        .rows
        .into_iter()
        .map(|row| SwitchChannel {
            // UNHELD: taken off hold, until its next audio frame makes it ACTIVE again.
            answered: matches!(row.callstate.as_str(), "ACTIVE" | "HELD" | "UNHELD"),
            held: row.callstate == "HELD",
            early_media: row.callstate == "EARLY",
            call_uuid: (!row.call_uuid.is_empty() && row.call_uuid != row.uuid)
                .then_some(row.call_uuid),
            uuid: row.uuid,
            direction: row.direction,
            cid_num: row.cid_num,
            dest: row.dest,
        })
        .collect())
}

/// The files a `uuid_buglist` answer names (its `<target>` elements).
pub fn parse_bug_targets(body: &str) -> Vec<String> {
    body.split("<target>")
        .skip(1)
        .filter_map(|rest| {
            rest.split_once("</target>")
                .map(|(t, _)| t.trim().to_owned())
        })
        .collect()
}

/// The media-bug targets of a channel; none when it has none (an empty output) or is gone.
async fn bug_targets(core: &Core, uuid: &str) -> Result<Vec<String>, QueryError> {
    match core.query(format!("uuid_buglist {uuid}")).await {
        Ok(body) => Ok(parse_bug_targets(&body)),
        Err(QueryError::Refused { .. }) => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

/// A channel variable, `None` when unset (`_undef_`) or the channel is gone.
async fn getvar(core: &Core, uuid: &str, name: &str) -> Result<Option<String>, QueryError> {
    match core.query(format!("uuid_getvar {uuid} {name}")).await {
        Ok(value) if value.is_empty() || value == "_undef_" => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(QueryError::Refused { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Builds the event reconciliation decides on for a channel it never saw answered
/// (`EventKind::Answer`) or never heard ring (`EventKind::Progress`).
async fn describe(
    core: &Core,
    sc: &SwitchChannel,
    kind: EventKind,
    owner_headers: &[String],
    at: i64,
) -> Result<ChannelEvent, QueryError> {
    let mut values = Vec::with_capacity(owner_headers.len());
    for header in owner_headers {
        let value = if let Some(var) = header.strip_prefix("variable_") {
            getvar(core, &sc.uuid, var).await?
        } else if header.eq_ignore_ascii_case("Caller-Caller-ID-Number") {
            Some(sc.cid_num.clone())
        } else if header.eq_ignore_ascii_case("Caller-Destination-Number") {
            Some(sc.dest.clone())
        } else {
            None
        };
        values.push(value.filter(|v| !v.is_empty()));
    }
    Ok(ChannelEvent {
        kind,
        uuid: sc.uuid.clone(),
        at,
        loopback_peer: getvar(core, &sc.uuid, "other_loopback_leg_uuid").await?,
        loopback_a: getvar(core, &sc.uuid, "loopback_leg").await?.as_deref() == Some("A"),
        early_media: sc.early_media,
        other_leg: match getvar(core, &sc.uuid, "bridge_uuid").await? {
            Some(peer) => Some(peer),
            None => getvar(core, &sc.uuid, "signal_bond").await?,
        },
        call_uuid: sc.call_uuid.clone(),
        call_direction: Some(sc.direction.clone()),
        caller_number: Some(sc.cid_num.clone()).filter(|v| !v.is_empty()),
        destination: Some(sc.dest.clone()).filter(|v| !v.is_empty()),
        dialed_user: getvar(core, &sc.uuid, "dialed_user").await?,
        owner_headers: values,
        ..ChannelEvent::empty()
    })
}

/// One reconciliation pass. `rows` are the index's recordings still `recording`.
pub(crate) async fn reconcile(
    core: &Core,
    rows: &[InProgressRow],
) -> Result<ResyncReport, ReconcileError> {
    let asked_at = core.recorder().event_seq();
    let body = core.query("show channels as json").await?;
    let switch = parse_channels(&body)?;
    let now = core.clock.now_micros();
    let (plan, owner_headers) = {
        let rec = core.recorder();
        (
            rec.reconcile_plan(&switch, asked_at),
            rec.settings().owner_headers.clone(),
        )
    };
    let mut report = ResyncReport {
        switch_channels: switch.len(),
        gone: plan.gone.len(),
        ..ResyncReport::default()
    };
    for uuid in &plan.gone {
        tracing::info!(channel = %uuid, "channel hung up while the daemon was not looking");
        core.decide(|rec| rec.channel_gone(uuid, now));
    }
    let mut described = Vec::with_capacity(plan.unknown.len());
    for sc in &plan.unknown {
        let ev = describe(core, sc, EventKind::Answer, &owner_headers, now).await?;
        let targets = bug_targets(core, &sc.uuid).await?;
        described.push((sc, ev, targets));
    }
    // Legs that carry a recording of ours first: a call whose recording runs on one leg must
    // not get a second one started on its other leg just because that leg came first. Then
    // the users' own legs before legs that only carry a user's number, so a recording started
    // now goes on the user's own leg (see `Recorder::waits_for_own_leg`).
    let rank = |ev: &ChannelEvent| {
        core.recorder()
            .owner_of(ev)
            .map_or(usize::MAX, |owner| owner.rank)
    };
    let mut described: Vec<_> = described
        .into_iter()
        .map(|(sc, ev, targets)| ((targets.is_empty(), rank(&ev)), sc, ev, targets))
        .collect();
    described.sort_by_key(|(key, ..)| *key);
    for (_, sc, ev, targets) in &described {
        report.adopted += 1;
        tracing::debug!(channel = %sc.uuid, owner = ?ev.owner_headers, "taking in an answered channel");
        core.decide(|rec| rec.adopt_channel(ev, sc.held, targets, rows));
    }
    // Ringing legs: one armed before a restart is known again before its answer comes.
    for sc in &plan.ringing {
        let ev = describe(core, sc, EventKind::Progress, &owner_headers, now).await?;
        let targets = bug_targets(core, &sc.uuid).await?;
        report.ringing += 1;
        tracing::debug!(channel = %sc.uuid, owner = ?ev.owner_headers, "taking in a ringing channel");
        core.decide(|rec| rec.adopt_ringing(&ev, &targets));
    }
    for uuid in &plan.unconfirmed {
        let targets = bug_targets(core, uuid).await?;
        report.checked += 1;
        core.decide(|rec| rec.check_recording(uuid, &targets, now));
    }
    // A RECORD_STOP lost with the old connection never comes: recordings whose channel hung
    // up a while ago are closed files now.
    core.decide(|rec| rec.expire_closing(now, CLOSING_GRACE));
    let orphans = core.recorder().orphaned_rows(rows, now);
    report.orphans = orphans.len();
    core.apply(orphans);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    use callrec_testkit::capture;

    #[test]
    fn spool_files_no_recording_names_are_found_once_old_enough() {
        let dir = tempfile::tempdir().unwrap();
        let (named, first, second) = (RecordingId::new(), RecordingId::new(), RecordingId::new());
        for id in [&named, &first, &second] {
            std::fs::write(dir.path().join(format!("{id}.wav")), b"RIFF").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        std::fs::write(dir.path().join("not-a-uuid.wav"), b"x").unwrap();
        let later = SystemTime::now() + Duration::from_secs(120);
        let known = |id: &RecordingId| id == &named;
        let found = old_spool_files(dir.path(), "wav", UNNAMED_GRACE, later);
        let ids: Vec<&RecordingId> = found
            .iter()
            .map(|(id, _)| id)
            .filter(|id| !known(id))
            .collect();
        let mut want = vec![&first, &second];
        want.sort_by_key(|id| id.to_string());
        assert_eq!(ids, want);
        // Written just now: not yet.
        let now = SystemTime::now();
        assert!(old_spool_files(dir.path(), "wav", UNNAMED_GRACE, now).is_empty());
    }

    fn api_bodies(file: &str) -> Vec<String> {
        capture::frames_of(file)
            .into_iter()
            .filter(|f| f.content_type() == "api/response")
            .map(|f| String::from_utf8_lossy(&f.body).into_owned())
            .collect()
    }

    #[test]
    fn the_captured_channel_listing_parses() {
        let bodies = api_bodies("errors.commands.received.esl");
        let listing = bodies
            .iter()
            .find(|b| b.starts_with("{\"row_count\":4"))
            .unwrap();
        let channels = parse_channels(listing).unwrap();
        assert_eq!(channels.len(), 4);
        assert!(channels.iter().all(|c| c.answered && !c.held));
        assert_eq!(channels[0].uuid, "8a863e42-4452-4364-9a92-3ef47610dcba");
        assert_eq!(channels[1].cid_num, "1001");
        assert_eq!(channels[0].call_uuid, None, "its own uuid is no peer");
        assert!(parse_channels("{\"row_count\":0}").unwrap().is_empty());
        assert!(parse_channels("-ERR whatever").is_err());
    }

    #[test]
    fn a_channel_just_taken_off_hold_counts_as_answered() {
        // The switch lists a channel taken off hold as UNHELD until its next audio frame
        // (switch_core_io.c sets ACTIVE then); it is answered all the same.
        let body = r#"{"row_count":2,"rows":[
            {"uuid":"a","callstate":"UNHELD","direction":"inbound"},
            {"uuid":"b","callstate":"RING_WAIT","direction":"outbound"}]}"#;
        let channels = parse_channels(body).unwrap();
        assert!(channels[0].answered && !channels[0].held);
        assert!(!channels[1].answered, "ringing is not answered");
    }

    #[test]
    fn the_captured_bug_list_names_the_recording() {
        let bodies = api_bodies("record.commands.received.esl");
        let bugs = bodies
            .iter()
            .find(|b| b.starts_with("<media-bugs>"))
            .unwrap();
        assert_eq!(
            parse_bug_targets(bugs),
            vec!["/usr/local/freeswitch/var/lib/freeswitch/recordings/test1.wav".to_owned()]
        );
        assert!(parse_bug_targets("-ERR no reply\n").is_empty());
    }
}
