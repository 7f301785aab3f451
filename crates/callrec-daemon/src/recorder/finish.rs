//! A recording ends: RECORD_STOP says whether the switch kept or discarded the file; a
//! hangup whose RECORD_STOP never comes is closed after a grace period.

use callrec_model::{RecordingId, SegmentKind, SegmentSource};

use super::{Effect, POLICY_ACTOR, Recorder, StoreOp};
use crate::calls::LiveRecording;
use crate::event::{ChannelEvent, EventKind, Micros};

impl Recorder {
    /// The channel carrying the recording a RECORD_START/STOP is about, if it is ours.
    pub(super) fn recording_channel(&self, ev: &ChannelEvent) -> Option<String> {
        if let Some(id) = ev.callrec_id.as_deref().and_then(|s| s.parse().ok())
            && let Some(uuid) = self.table.channel_of_recording(&id)
        {
            return Some(uuid.to_owned());
        }
        let ch = self.table.channel(&ev.uuid)?;
        let rec = ch.recording.as_ref()?;
        (ev.record_path.as_deref() == Some(rec.path.as_str())).then(|| ch.uuid.clone())
    }

    /// RECORD_STOP of a recording whose channel already hung up.
    pub(super) fn finish_closing(&mut self, ev: &ChannelEvent) -> Vec<Effect> {
        let id = ev
            .callrec_id
            .as_deref()
            .and_then(|s| s.parse::<RecordingId>().ok())
            .filter(|id| self.table.knows_recording(id))
            .or_else(|| {
                ev.record_path
                    .as_deref()
                    .and_then(|p| self.table.closing_by_path(p))
            });
        match id.and_then(|id| self.table.take_closing(&id)) {
            Some(closing) => self.finished(closing.recording, ev),
            None => Vec::new(),
        }
    }

    /// Recordings whose channel hung up more than `grace` before `now` and whose RECORD_STOP
    /// never came (it was lost): the file is closed, so it goes to the store, which keeps it
    /// or reports it missing.
    pub fn expire_closing(&mut self, now: Micros, grace: Micros) -> Vec<Effect> {
        let due: Vec<RecordingId> = self
            .table
            .closing()
            .filter(|c| c.since.saturating_add(grace) <= now)
            .map(|c| c.recording.id.clone())
            .collect();
        let mut effects = Vec::new();
        for id in due {
            if let Some(closing) = self.table.take_closing(&id) {
                let ev = ChannelEvent {
                    kind: EventKind::RecordStop,
                    uuid: closing.channel.clone(),
                    at: closing.since,
                    ..ChannelEvent::empty()
                };
                effects.extend(self.finished(closing.recording, &ev));
            }
        }
        effects
    }

    /// The switch closed a recording's file: stop segment, then ingest or discard.
    pub(super) fn finish_recording(&mut self, uuid: &str, ev: &ChannelEvent) -> Vec<Effect> {
        let Some(rec) = self.table.channel(uuid).and_then(|c| c.recording.clone()) else {
            return Vec::new();
        };
        self.table.set_recording(uuid, None);
        self.finished(rec, ev)
    }

    pub(super) fn finished(&mut self, rec: LiveRecording, ev: &ChannelEvent) -> Vec<Effect> {
        let (source, actor) = match &rec.stop_requested {
            Some(req) => (req.source, req.actor.clone()),
            None => (SegmentSource::Policy, POLICY_ACTOR.to_owned()),
        };
        let mut effects = vec![Effect::Store(StoreOp::Segment {
            id: rec.id.clone(),
            kind: SegmentKind::Stop,
            at: ev.at,
            source,
            actor,
        })];
        let too_short = ev.completion_cause.as_deref() == Some("input-too-short");
        if too_short || ev.record_discarded {
            effects.push(Effect::Store(StoreOp::Discard {
                id: rec.id,
                reason: ev
                    .completion_cause
                    .clone()
                    .unwrap_or_else(|| "input-too-short".to_owned()),
                at: ev.at,
                spool_path: rec.path,
            }));
        } else {
            effects.push(Effect::Store(StoreOp::Ingest {
                id: rec.id,
                spool_path: rec.path,
                ended_at: ev.at,
            }));
        }
        effects
    }
}
