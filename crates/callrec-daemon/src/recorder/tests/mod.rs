//! Decisions on events parsed from the real captures: no socket, no clock.

mod answer;
mod arm;
mod commands;
mod feature;
mod reconcile;
mod waits;

use std::collections::HashMap;

use callrec_model::{
    ActionError, CallRecording, Direction, Micros, NewRecording, PauseBehavior, Prompt,
    RecordingAction, RecordingId, RecordingMode, SegmentKind, SegmentSource, UserId,
};

use super::*;
use crate::directory::testing;
use crate::event::ChannelEvent;
use crate::fixtures::{self, Headers, SPOOL, recorder, recorder_in, recorder_with, site, user};

fn event(h: &Headers) -> ChannelEvent {
    ChannelEvent::from_headers(h, &Settings::default_owner_headers()).expect("well-formed event")
}

/// The switch echoes the recording variables and path the daemon passed; the captures were
/// made with other values, so RECORD_START/STOP are given the ones of the recording the
/// recorder holds on that channel, as the real switch would. The captures' loopback calls
/// were recorded on the A leg, which callrec leaves to the B leg (`waits_for_own_leg`): a
/// RECORD_START/STOP of an A leg without a recording is moved to its B leg when that leg
/// holds one, where the switch would have sent it.
fn echo_recording(rec: &Recorder, h: &Headers) -> Headers {
    let mut h = h.clone();
    let name = h.get("Event-Name").cloned().unwrap_or_default();
    if name == "RECORD_START" || name == "RECORD_STOP" {
        let uuid = h.get("Unique-ID").cloned().unwrap_or_default();
        let peer = h
            .get("variable_other_loopback_leg_uuid")
            .filter(|_| h.get("variable_loopback_leg").map(String::as_str) == Some("A"))
            .cloned();
        // On the channel, or closing after it hung up (its RECORD_STOP still to come).
        let held = |uuid: &str| {
            rec.table()
                .channel(uuid)
                .and_then(|c| c.recording.as_ref())
                .or_else(|| {
                    rec.table()
                        .closing()
                        .find(|c| c.channel == uuid)
                        .map(|c| &c.recording)
                })
                .cloned()
        };
        let target = held(&uuid)
            .map(|r| (uuid.clone(), r))
            .or_else(|| peer.and_then(|p| held(&p).map(|r| (p, r))));
        if let Some((uuid, r)) = target {
            h.insert("Unique-ID".into(), uuid);
            h.insert("Recording-Variable-callrec_id".into(), r.id.to_string());
            h.insert("Record-File-Path".into(), r.path.clone());
        }
    }
    h
}

/// Feeds every event of a capture; the switch answers every command `+OK`.
fn replay(rec: &mut Recorder, file: &str) -> Vec<Effect> {
    replay_until(rec, &fixtures::plain_events(file), |_| false)
}

fn replay_until(
    rec: &mut Recorder,
    events: &[Headers],
    stop: impl Fn(&Headers) -> bool,
) -> Vec<Effect> {
    let mut all = Vec::new();
    for h in events {
        if stop(h) {
            break;
        }
        let h = echo_recording(rec, h);
        let Ok(ev) = ChannelEvent::from_headers(&h, &Settings::default_owner_headers()) else {
            continue;
        };
        let effects = rec.on_event(&ev);
        all.extend(confirm_commands(rec, effects));
    }
    all
}

fn confirm_commands(rec: &mut Recorder, effects: Vec<Effect>) -> Vec<Effect> {
    let mut out = Vec::new();
    for effect in effects {
        if let Effect::Command(cmd) = &effect {
            let more = rec.on_command_result(cmd, CommandOutcome::Ok);
            out.push(effect);
            out.extend(confirm_commands(rec, more));
        } else {
            out.push(effect);
        }
    }
    out
}

fn creates(effects: &[Effect]) -> Vec<&NewRecording> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Store(StoreOp::Create(r)) => Some(r),
            _ => None,
        })
        .collect()
}

fn commands(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Command(c) => Some(c.api_text()),
            _ => None,
        })
        .collect()
}

fn store_ops(effects: &[Effect]) -> Vec<&StoreOp> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Store(op) => Some(op),
            _ => None,
        })
        .collect()
}

/// Whether `h` is event `name` of leg `uuid`.
fn is(h: &Headers, name: &str, uuid: &str) -> bool {
    h.get("Event-Name").map(String::as_str) == Some(name)
        && h.get("Unique-ID").map(String::as_str) == Some(uuid)
}

const RECORD_A_LEG: &str = "b0121122-8b41-4d85-8be3-48d9a317c792";
const RECORD_B_LEG: &str = "2622a231-8464-4481-95ad-8418d1f467c0";
const SIP_A_LEG: &str = "002f0cb7-5a36-473a-a9c2-0e375de09811";
const SIP_B_LEG: &str = "e9e4219a-ce92-468c-998b-11a45ceb6241";
const SIP_FEATURE_LEG: &str = "002476ae-c24e-4c8f-8202-0e7f3f2d2133";

/// The sip-hold capture up to the moment the *48 call reaches the listener.
/// User 1000, the callee, is a user in mode `never`, so the B leg is theirs.
fn sip_call_on_hold(
    users: &[(&str, RecordingMode)],
    pause: PauseBehavior,
) -> (Recorder, ChannelEvent) {
    let mut users = users.to_vec();
    if !users.iter().any(|(e, _)| *e == "1000") {
        users.push(("1000", RecordingMode::Never));
    }
    let mut rec = recorder_with(&users, pause);
    let events = fixtures::plain_events("sip-hold.events-plain.received.esl");
    replay_until(&mut rec, &events, |h| {
        h.get("Unique-ID").map(String::as_str) == Some(SIP_FEATURE_LEG)
            && h.get("Event-Name").map(String::as_str) == Some("CHANNEL_ANSWER")
    });
    let call = event(&fixtures::connect_reply(
        "sip-hold-feature-code.received.esl",
    ));
    (rec, call)
}
