//! The library of captured channels and the named segments the call flows replay.
//!
//! Each [`LegId`] is one channel of one capture; its segments are runs of consecutive
//! events, named for what the switch was doing (`create`, `answer`, `hold`, `hangup`...).
//! A segment is located by its event labels, so a capture and the flows that use it can
//! never silently drift apart: a missing run is a [`TemplateError`] at start-up and fails
//! every test.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::capture::files;
use crate::template::{self, LegSource, LegTemplate, Step, TemplateError, Tok};

/// One captured channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum LegId {
    /// `record`: the A leg of `loopback/9999` (parked, recorded, held, killed).
    LoopA,
    /// `record`: the B leg running extension 9999 (answer, tone).
    LoopBTone,
    /// `errors`: the B leg running extension 9998 (answer, park).
    LoopBPark,
    /// `shutdown`: the A leg when the switch shuts down.
    ShutA,
    /// `shutdown`: the B leg (playing the tone) when the switch shuts down.
    ShutBTone,
    /// `sip-hold`: phone 1001 calling 1000.
    SipA,
    /// `sip-hold`: the leg to phone 1000.
    SipB,
    /// `sip-hold`: phone 1001 dialling `*48`.
    SipF,
    /// `sip-hold-feature-code`: the same leg as the socket application sees it.
    SipFOut,
    /// `feature-code-outbound`: the loopback B leg of `*48` as the socket application sees it.
    LoopFOut,
}

const ORIGINATE_VARS: &[&str] = &[
    "origination_caller_id_number",
    "origination_caller_id_name",
    "callrec_user",
];

const REC_CORE: &str = "b1b1e572-b4ce-4a33-bf4e-087efeeca68b";
const SIP_CORE: &str = "77fc460a-d93b-4e63-a0b2-df722cdeb3e3";

const REC_A: &str = "b0121122-8b41-4d85-8be3-48d9a317c792";
const REC_B: &str = "2622a231-8464-4481-95ad-8418d1f467c0";
const ERR_A: &str = "0b6b1ec3-8211-447f-9a3e-a0c2d9fc90f9";
const ERR_B: &str = "125ea140-669c-4c80-a7a0-e89af64eb771";
const SHUT_A: &str = "b2b2d0d4-7123-4e70-999e-509c58724607";
const SHUT_B: &str = "6c52a9bc-5563-4df7-931e-9e398d0a8a1e";
const SIP_A: &str = "002f0cb7-5a36-473a-a9c2-0e375de09811";
const SIP_B: &str = "e9e4219a-ce92-468c-998b-11a45ceb6241";
const SIP_F: &str = "002476ae-c24e-4c8f-8202-0e7f3f2d2133";
const FCO_A: &str = "b73939f1-9c61-40bf-9ffb-1c1c1bc8be23";
const FCO_B: &str = "eb26c01c-a044-4ffd-b123-124ebb43e796";

fn sources() -> Vec<(LegId, LegSource)> {
    vec![
        (
            LegId::LoopA,
            LegSource {
                capture: "record",
                data: files::RECORD,
                uuid: REC_A,
                literals: &[
                    (REC_A, Tok::Uuid),
                    (REC_B, Tok::Peer),
                    (REC_CORE, Tok::CoreUuid),
                    ("442920123123", Tok::CidNum),
                    ("Alice", Tok::CidName),
                    ("9999", Tok::Dest),
                ],
                runtime_vars: ORIGINATE_VARS,
                with_channel_data: false,
            },
        ),
        (
            LegId::LoopBTone,
            LegSource {
                capture: "record",
                data: files::RECORD,
                uuid: REC_B,
                literals: &[
                    (REC_B, Tok::Uuid),
                    (REC_A, Tok::Peer),
                    (REC_CORE, Tok::CoreUuid),
                    ("442920123123", Tok::CidNum),
                    ("Alice", Tok::CidName),
                    ("9999", Tok::Dest),
                ],
                runtime_vars: ORIGINATE_VARS,
                with_channel_data: false,
            },
        ),
        (
            LegId::LoopBPark,
            LegSource {
                capture: "errors",
                data: files::ERRORS,
                uuid: ERR_B,
                literals: &[
                    (ERR_B, Tok::Uuid),
                    (ERR_A, Tok::Peer),
                    (REC_CORE, Tok::CoreUuid),
                    ("1002", Tok::CidNum),
                    ("9998", Tok::Dest),
                ],
                runtime_vars: ORIGINATE_VARS,
                with_channel_data: false,
            },
        ),
        (
            LegId::ShutA,
            LegSource {
                capture: "shutdown",
                data: files::SHUTDOWN,
                uuid: SHUT_A,
                literals: &[
                    (SHUT_A, Tok::Uuid),
                    (SHUT_B, Tok::Peer),
                    (REC_CORE, Tok::CoreUuid),
                    ("1001", Tok::CidNum),
                    ("9999", Tok::Dest),
                ],
                runtime_vars: ORIGINATE_VARS,
                with_channel_data: false,
            },
        ),
        (
            LegId::ShutBTone,
            LegSource {
                capture: "shutdown",
                data: files::SHUTDOWN,
                uuid: SHUT_B,
                literals: &[
                    (SHUT_B, Tok::Uuid),
                    (SHUT_A, Tok::Peer),
                    (REC_CORE, Tok::CoreUuid),
                    ("1001", Tok::CidNum),
                    ("9999", Tok::Dest),
                ],
                runtime_vars: ORIGINATE_VARS,
                with_channel_data: false,
            },
        ),
        (
            LegId::SipA,
            LegSource {
                capture: "sip-hold",
                data: files::SIP_HOLD,
                uuid: SIP_A,
                literals: &[
                    (SIP_A, Tok::Uuid),
                    (SIP_B, Tok::Peer),
                    (SIP_CORE, Tok::CoreUuid),
                    ("e4606ff3e8c1e4ae", Tok::CallId),
                    ("Extension 1001", Tok::AName),
                    ("Extension 1000", Tok::BName),
                    ("1001", Tok::AUser),
                    ("1000", Tok::BUser),
                ],
                runtime_vars: &[],
                with_channel_data: false,
            },
        ),
        (
            LegId::SipB,
            LegSource {
                capture: "sip-hold",
                data: files::SIP_HOLD,
                uuid: SIP_B,
                literals: &[
                    (SIP_B, Tok::Uuid),
                    (SIP_A, Tok::Peer),
                    (SIP_CORE, Tok::CoreUuid),
                    ("4f4db4fc-62bf-1240-8d84-f22f561e572a", Tok::CallId),
                    ("Extension 1001", Tok::AName),
                    ("Extension 1000", Tok::BName),
                    ("1001", Tok::AUser),
                    ("1000", Tok::BUser),
                ],
                runtime_vars: &[],
                with_channel_data: false,
            },
        ),
        (
            LegId::SipF,
            LegSource {
                capture: "sip-hold",
                data: files::SIP_HOLD,
                uuid: SIP_F,
                literals: SIP_F_LITERALS,
                runtime_vars: &[],
                with_channel_data: false,
            },
        ),
        (
            LegId::SipFOut,
            LegSource {
                capture: "sip-hold-feature-code",
                data: files::SIP_FEATURE_OUTBOUND,
                uuid: SIP_F,
                literals: SIP_F_LITERALS,
                runtime_vars: &[],
                with_channel_data: true,
            },
        ),
        (
            LegId::LoopFOut,
            LegSource {
                capture: "feature-code-outbound",
                data: files::FEATURE_OUTBOUND,
                uuid: FCO_B,
                literals: &[
                    (FCO_B, Tok::Uuid),
                    (FCO_A, Tok::Peer),
                    (REC_CORE, Tok::CoreUuid),
                    ("1001", Tok::CidNum),
                    ("*48", Tok::Dest),
                ],
                runtime_vars: ORIGINATE_VARS,
                with_channel_data: true,
            },
        ),
    ]
}

const SIP_F_LITERALS: &[(&str, Tok)] = &[
    (SIP_F, Tok::Uuid),
    (SIP_CORE, Tok::CoreUuid),
    ("e669acc6f7b3b5aa", Tok::CallId),
    ("Extension 1001", Tok::AName),
    ("1001", Tok::AUser),
    ("*48", Tok::Dest),
];

/// Segments of each captured channel: runs of event labels.
fn segment_defs(leg: LegId) -> Vec<(&'static str, &'static [&'static str])> {
    const DIALPLAN_PRELUDE: &[&str] = &[
        "CHANNEL_EXECUTE:set",
        "CHANNEL_EXECUTE_COMPLETE:set",
        "CHANNEL_EXECUTE:log",
        "CHANNEL_EXECUTE_COMPLETE:log",
        "CHANNEL_EXECUTE:log",
        "CHANNEL_EXECUTE_COMPLETE:log",
        "CHANNEL_EXECUTE:log",
        "CHANNEL_EXECUTE_COMPLETE:log",
        "CHANNEL_EXECUTE:log",
        "CHANNEL_EXECUTE_COMPLETE:log",
        "CHANNEL_EXECUTE:sleep",
    ];
    const LOOP_B_HEAD: &[(&str, &[&str])] = &[
        ("create1", &["CODEC", "CODEC"]),
        (
            "create2",
            &[
                "CHANNEL_STATE",
                "CHANNEL_CREATE",
                "CHANNEL_CALLSTATE",
                "CHANNEL_STATE",
                "CHANNEL_STATE",
            ],
        ),
        ("prelude", DIALPLAN_PRELUDE),
        ("sleep_done", &["CHANNEL_EXECUTE_COMPLETE:sleep"]),
        ("answer1", &["CHANNEL_EXECUTE:answer"]),
        (
            "answer2",
            &[
                "CHANNEL_ANSWER",
                "CHANNEL_CALLSTATE",
                "CHANNEL_EXECUTE_COMPLETE:answer",
            ],
        ),
    ];
    const DESTROY: (&str, &[&str]) = ("destroy", &["CHANNEL_DESTROY", "CHANNEL_STATE"]);
    let loop_b = |tail: &[(&'static str, &'static [&'static str])]| {
        let mut v = LOOP_B_HEAD.to_vec();
        v.extend_from_slice(tail);
        v.push(DESTROY);
        v
    };
    match leg {
        LegId::LoopA => vec![
            (
                "create1",
                &["CODEC", "CODEC", "CHANNEL_OUTGOING", "CHANNEL_STATE"],
            ),
            (
                "create2",
                &[
                    "CHANNEL_CREATE",
                    "CHANNEL_ORIGINATE",
                    "CHANNEL_STATE",
                    "CHANNEL_STATE",
                ],
            ),
            ("answer", &["CHANNEL_ANSWER", "CHANNEL_CALLSTATE"]),
            (
                "park",
                &[
                    "CALL_UPDATE",
                    "CHANNEL_STATE",
                    "CHANNEL_EXECUTE:park",
                    "CHANNEL_PARK",
                ],
            ),
            ("record_start", &["RECORD_START", "MEDIA_BUG_START"]),
            ("hold", &["CHANNEL_HOLD"]),
            (
                "hangup1",
                &[
                    "CHANNEL_HANGUP",
                    "CHANNEL_UNPARK",
                    "CHANNEL_EXECUTE_COMPLETE:park",
                    "CHANNEL_STATE",
                ],
            ),
            ("record_stop", &["RECORD_STOP", "MEDIA_BUG_STOP"]),
            (
                "hangup2",
                &[
                    "CHANNEL_CALLSTATE",
                    "CHANNEL_STATE",
                    "CHANNEL_HANGUP_COMPLETE",
                ],
            ),
            ("destroy", &["CHANNEL_DESTROY", "CHANNEL_STATE"]),
        ],
        LegId::LoopBTone => {
            const S: &[(&str, &[&str])] = &[
                ("app", &["CHANNEL_EXECUTE:playback", "PLAYBACK_START"]),
                (
                    "peer_hangup",
                    &[
                        "PLAYBACK_STOP",
                        "CHANNEL_EXECUTE_COMPLETE:playback",
                        "CHANNEL_EXECUTE:hangup",
                        "CHANNEL_HANGUP",
                        "CHANNEL_EXECUTE_COMPLETE:hangup",
                        "CHANNEL_STATE",
                        "CHANNEL_CALLSTATE",
                        "CHANNEL_STATE",
                        "CHANNEL_HANGUP_COMPLETE",
                    ],
                ),
            ];
            loop_b(S)
        }
        LegId::LoopBPark => {
            const S: &[(&str, &[&str])] = &[
                ("app", &["CHANNEL_EXECUTE:park", "CHANNEL_PARK"]),
                (
                    "peer_hangup",
                    &[
                        "CHANNEL_HANGUP",
                        "CHANNEL_UNPARK",
                        "CHANNEL_EXECUTE_COMPLETE:park",
                        "CHANNEL_STATE",
                        "CHANNEL_CALLSTATE",
                        "CHANNEL_STATE",
                        "CHANNEL_HANGUP_COMPLETE",
                    ],
                ),
            ];
            loop_b(S)
        }
        LegId::ShutA => vec![
            ("hangup", &["CHANNEL_HANGUP"]),
            (
                "rest1",
                &[
                    "CHANNEL_UNPARK",
                    "CHANNEL_EXECUTE_COMPLETE:park",
                    "CHANNEL_STATE",
                ],
            ),
            ("record_stop", &["RECORD_STOP", "MEDIA_BUG_STOP"]),
            (
                "rest2",
                &[
                    "CHANNEL_CALLSTATE",
                    "CHANNEL_STATE",
                    "CHANNEL_HANGUP_COMPLETE",
                ],
            ),
            ("destroy", &["CHANNEL_DESTROY", "CHANNEL_STATE"]),
        ],
        LegId::ShutBTone => vec![
            ("hangup", &["CHANNEL_HANGUP"]),
            (
                "rest",
                &[
                    "PLAYBACK_STOP",
                    "CHANNEL_EXECUTE_COMPLETE:playback",
                    "CHANNEL_STATE",
                    "CHANNEL_CALLSTATE",
                    "CHANNEL_STATE",
                    "CHANNEL_HANGUP_COMPLETE",
                ],
            ),
            ("destroy", &["CHANNEL_DESTROY", "CHANNEL_STATE"]),
        ],
        LegId::SipA => vec![
            (
                "create",
                &[
                    "CHANNEL_STATE",
                    "CHANNEL_STATE",
                    "CHANNEL_CREATE",
                    "CHANNEL_CALLSTATE",
                    "CHANNEL_STATE",
                    "PRESENCE_IN",
                    "CHANNEL_STATE",
                ],
            ),
            ("prelude", DIALPLAN_PRELUDE),
            (
                "early",
                &[
                    "CODEC",
                    "CODEC",
                    "CHANNEL_PROGRESS_MEDIA",
                    "CHANNEL_CALLSTATE",
                ],
            ),
            ("record_start", &["RECORD_START", "MEDIA_BUG_START"]),
            (
                "dialplan",
                &[
                    "CHANNEL_EXECUTE_COMPLETE:sleep",
                    "CHANNEL_EXECUTE:hash",
                    "CHANNEL_EXECUTE_COMPLETE:hash",
                    "CHANNEL_EXECUTE:hash",
                    "CHANNEL_EXECUTE_COMPLETE:hash",
                    "CHANNEL_EXECUTE:hash",
                    "CHANNEL_EXECUTE_COMPLETE:hash",
                    "CHANNEL_EXECUTE:export",
                    "CHANNEL_EXECUTE_COMPLETE:export",
                    "CHANNEL_EXECUTE:export",
                    "CHANNEL_EXECUTE_COMPLETE:export",
                    "CHANNEL_EXECUTE:bind_meta_app",
                    "CHANNEL_EXECUTE_COMPLETE:bind_meta_app",
                    "CHANNEL_EXECUTE:bind_meta_app",
                    "CHANNEL_EXECUTE_COMPLETE:bind_meta_app",
                    "CHANNEL_EXECUTE:bind_meta_app",
                    "CHANNEL_EXECUTE_COMPLETE:bind_meta_app",
                    "CHANNEL_EXECUTE:bind_meta_app",
                    "CHANNEL_EXECUTE_COMPLETE:bind_meta_app",
                    "CHANNEL_EXECUTE:set",
                    "CHANNEL_EXECUTE_COMPLETE:set",
                    "CHANNEL_EXECUTE:set",
                    "CHANNEL_EXECUTE_COMPLETE:set",
                    "CHANNEL_EXECUTE:set",
                    "CHANNEL_EXECUTE_COMPLETE:set",
                    "CHANNEL_EXECUTE:set",
                    "CHANNEL_EXECUTE_COMPLETE:set",
                    "CHANNEL_EXECUTE:set",
                    "CHANNEL_EXECUTE_COMPLETE:set",
                    "CHANNEL_EXECUTE:hash",
                    "CHANNEL_EXECUTE_COMPLETE:hash",
                    "CHANNEL_EXECUTE:hash",
                    "CHANNEL_EXECUTE_COMPLETE:hash",
                    "CHANNEL_EXECUTE:set",
                    "CHANNEL_EXECUTE_COMPLETE:set",
                    "CHANNEL_EXECUTE:hash",
                    "CHANNEL_EXECUTE_COMPLETE:hash",
                    "CHANNEL_EXECUTE:hash",
                    "CHANNEL_EXECUTE_COMPLETE:hash",
                    "CHANNEL_EXECUTE:hash",
                    "CHANNEL_EXECUTE_COMPLETE:hash",
                    "CHANNEL_EXECUTE:bridge",
                ],
            ),
            (
                "answer",
                &[
                    "CODEC",
                    "CODEC",
                    "CHANNEL_ANSWER",
                    "PRESENCE_IN",
                    "CHANNEL_CALLSTATE",
                ],
            ),
            (
                "hold",
                &[
                    "CHANNEL_CALLSTATE",
                    "CHANNEL_HOLD",
                    "PRESENCE_IN",
                    "CUSTOM:sofia::reinvite",
                    "CHANNEL_CALLSTATE",
                ],
            ),
            ("bridge", &["CHANNEL_BRIDGE"]),
            ("call_update", &["CALL_UPDATE"]),
            (
                "unhold",
                &[
                    "CHANNEL_CALLSTATE",
                    "CHANNEL_UNHOLD",
                    "PRESENCE_IN",
                    "CUSTOM:sofia::reinvite",
                    "CHANNEL_CALLSTATE",
                ],
            ),
            ("hangup", &["CHANNEL_HANGUP"]),
            ("unbridge", &["CHANNEL_UNBRIDGE"]),
            (
                "hangup_rest1",
                &["CHANNEL_EXECUTE_COMPLETE:bridge", "CHANNEL_STATE"],
            ),
            ("record_stop", &["RECORD_STOP", "MEDIA_BUG_STOP"]),
            (
                "hangup_rest2",
                &[
                    "CHANNEL_CALLSTATE",
                    "PRESENCE_IN",
                    "CHANNEL_STATE",
                    "CHANNEL_HANGUP_COMPLETE",
                ],
            ),
            ("destroy", &["CHANNEL_DESTROY", "CHANNEL_STATE"]),
        ],
        LegId::SipB => vec![
            (
                "create",
                &[
                    "CHANNEL_OUTGOING",
                    "CHANNEL_STATE",
                    "CHANNEL_CREATE",
                    "CHANNEL_ORIGINATE",
                    "CHANNEL_STATE",
                    "PRESENCE_IN",
                    "CHANNEL_STATE",
                    "CHANNEL_PROGRESS",
                    "CHANNEL_CALLSTATE",
                ],
            ),
            (
                "answer",
                &[
                    "CODEC",
                    "CODEC",
                    "CHANNEL_ANSWER",
                    "PRESENCE_IN",
                    "CHANNEL_CALLSTATE",
                ],
            ),
            ("outgoing2", &["CHANNEL_OUTGOING"]),
            (
                "moh",
                &[
                    "CHANNEL_EXECUTE:playback",
                    "CHANNEL_EXECUTE_COMPLETE:playback",
                    "PRIVATE_COMMAND",
                ],
            ),
            ("bridged", &["CHANNEL_STATE", "CALL_UPDATE"]),
            (
                "hangup",
                &[
                    "CHANNEL_HANGUP",
                    "CHANNEL_STATE",
                    "CHANNEL_CALLSTATE",
                    "PRESENCE_IN",
                    "CHANNEL_STATE",
                    "CHANNEL_HANGUP_COMPLETE",
                ],
            ),
            ("destroy", &["CHANNEL_DESTROY", "CHANNEL_STATE"]),
        ],
        LegId::SipF => vec![
            (
                "create",
                &[
                    "CHANNEL_STATE",
                    "CHANNEL_STATE",
                    "CHANNEL_CREATE",
                    "CHANNEL_CALLSTATE",
                    "CHANNEL_STATE",
                    "PRESENCE_IN",
                    "CHANNEL_STATE",
                ],
            ),
            ("prelude", DIALPLAN_PRELUDE),
            (
                "dialplan",
                &[
                    "CHANNEL_EXECUTE_COMPLETE:sleep",
                    "CHANNEL_EXECUTE:hash",
                    "CHANNEL_EXECUTE_COMPLETE:hash",
                    "CHANNEL_EXECUTE:hash",
                    "CHANNEL_EXECUTE_COMPLETE:hash",
                    "CHANNEL_EXECUTE:hash",
                    "CHANNEL_EXECUTE_COMPLETE:hash",
                    "CHANNEL_EXECUTE:export",
                    "CHANNEL_EXECUTE_COMPLETE:export",
                ],
            ),
            ("socket", &["CHANNEL_EXECUTE:socket", "CHANNEL_PARK"]),
            (
                "answer",
                &[
                    "CHANNEL_EXECUTE:answer",
                    "CODEC",
                    "CODEC",
                    "CHANNEL_PROGRESS_MEDIA",
                    "CHANNEL_CALLSTATE",
                    "CHANNEL_ANSWER",
                    "PRESENCE_IN",
                    "CHANNEL_CALLSTATE",
                    "CHANNEL_EXECUTE_COMPLETE:answer",
                ],
            ),
            ("playback", &["CHANNEL_EXECUTE:playback", "PLAYBACK_START"]),
            (
                "playback_done",
                &[
                    "PLAYBACK_STOP",
                    "CHANNEL_EXECUTE_COMPLETE:playback",
                    "PRIVATE_COMMAND",
                ],
            ),
            (
                "hangup",
                &[
                    "CHANNEL_HANGUP",
                    "PRIVATE_COMMAND",
                    "CHANNEL_UNPARK",
                    "CHANNEL_EXECUTE_COMPLETE:socket",
                    "CHANNEL_STATE",
                    "CHANNEL_CALLSTATE",
                    "PRESENCE_IN",
                    "CHANNEL_STATE",
                    "CHANNEL_HANGUP_COMPLETE",
                ],
            ),
            ("destroy", &["CHANNEL_DESTROY", "CHANNEL_STATE"]),
        ],
        LegId::SipFOut => vec![("data", &["CHANNEL_DATA"])],
        LegId::LoopFOut => vec![
            ("data", &["CHANNEL_DATA"]),
            (
                "answer",
                &[
                    "CHANNEL_EXECUTE:answer",
                    "CHANNEL_ANSWER",
                    "CHANNEL_EXECUTE_COMPLETE:answer",
                ],
            ),
            ("playback", &["CHANNEL_EXECUTE:playback"]),
            ("playback_done", &["CHANNEL_EXECUTE_COMPLETE:playback"]),
            (
                "hangup",
                &[
                    "CHANNEL_HANGUP",
                    "CHANNEL_UNPARK",
                    "CHANNEL_EXECUTE_COMPLETE:socket",
                    "CHANNEL_STATE",
                    "CHANNEL_STATE",
                    "CHANNEL_HANGUP_COMPLETE",
                ],
            ),
        ],
    }
}

/// Segments whose steps may be skipped or played out of order; their variable changes
/// are applied when a later step of the template is played (see `Switch::play`).
const DYNAMIC_SEGMENTS: &[&str] = &[
    "early",
    "record_start",
    "record_stop",
    "hold",
    "unhold",
    "moh",
];

/// One captured channel with its segments resolved to step indices.
#[derive(Debug)]
pub(crate) struct Leg {
    pub tpl: LegTemplate,
    segments: HashMap<&'static str, Vec<usize>>,
    /// Per step: may be skipped (its variable changes are caught up later).
    pub skippable: Vec<bool>,
}

impl Leg {
    /// The step indices of a segment (empty if the leg has no such segment).
    pub fn segment(&self, name: &str) -> &[usize] {
        self.segments.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn step(&self, i: usize) -> &Step {
        &self.tpl.steps[i]
    }
}

/// Every captured channel, parsed once.
#[derive(Debug)]
pub(crate) struct Library {
    legs: HashMap<LegId, Leg>,
    /// The MODULE_UNLOAD events of `fsctl shutdown`, in order.
    pub module_unloads: Vec<Step>,
}

impl Library {
    pub fn leg(&self, id: LegId) -> &Leg {
        // Every LegId is loaded by `build` or the library fails to build.
        &self.legs[&id]
    }
}

fn build() -> Result<Library, TemplateError> {
    let mut legs = HashMap::new();
    for (id, src) in sources() {
        let tpl = template::extract(&src)?;
        let mut segments = HashMap::new();
        let mut skippable = vec![false; tpl.steps.len()];
        let labels: Vec<String> = tpl.steps.iter().map(Step::label).collect();
        let mut search_from = 0;
        for (name, run) in segment_defs(id) {
            let name: &'static str = name;
            let start = find_run(&labels, run, search_from).ok_or_else(|| {
                TemplateError(format!(
                    "{}: segment {name} ({}) not found after step {search_from}",
                    src.capture,
                    run.join(" ")
                ))
            })?;
            let idx: Vec<usize> = (start..start + run.len()).collect();
            if DYNAMIC_SEGMENTS.contains(&name) {
                for i in &idx {
                    skippable[*i] = true;
                }
            }
            search_from = start + run.len();
            segments.insert(name, idx);
        }
        legs.insert(
            id,
            Leg {
                tpl,
                segments,
                skippable,
            },
        );
    }
    let module_unloads = module_unload_steps()?;
    Ok(Library {
        legs,
        module_unloads,
    })
}

fn find_run(labels: &[String], run: &[&str], from: usize) -> Option<usize> {
    (from..=labels.len().saturating_sub(run.len())).find(|&s| {
        run.iter()
            .enumerate()
            .all(|(k, l)| labels.get(s + k).is_some_and(|x| x == l))
    })
}

fn module_unload_steps() -> Result<Vec<Step>, TemplateError> {
    let frames = crate::capture::frames("shutdown", files::SHUTDOWN)?;
    let src = LegSource {
        capture: "shutdown",
        data: files::SHUTDOWN,
        uuid: "",
        literals: &[(REC_CORE, Tok::CoreUuid)],
        runtime_vars: &[],
        with_channel_data: false,
    };
    let mut out = Vec::new();
    for f in frames
        .iter()
        .filter(|f| f.content_type() == "text/event-plain")
    {
        let headers = f.event_headers();
        if headers.first().is_some_and(|(_, v)| v == "MODULE_UNLOAD") {
            out.push(template::step_from_headers(&src, &headers)?);
        }
    }
    if out.is_empty() {
        return Err(TemplateError("shutdown: no MODULE_UNLOAD events".into()));
    }
    Ok(out)
}

/// The library, built on first use.
pub(crate) fn library() -> Result<&'static Library, TemplateError> {
    static LIB: OnceLock<Result<Library, String>> = OnceLock::new();
    LIB.get_or_init(|| build().map_err(|e| e.0))
        .as_ref()
        .map_err(|e| TemplateError(e.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_segment_is_found_in_its_capture() {
        let lib = library().expect("templates build from the embedded captures");
        assert!(!lib.leg(LegId::SipA).segment("hold").is_empty());
        assert_eq!(lib.module_unloads.len(), 38);
    }
}
