//! The dialplan's `socket <addr> async full`: the switch connects out to a listener (callrec's
//! feature-code handler) and takes its orders over the outbound Event Socket protocol.
//!
//! What the captures show (`feature-code-outbound`, `sip-hold-feature-code`): `connect` is
//! answered with the whole channel data; `myevents` subscribes to the session's own channel
//! events; `linger` keeps the socket after hangup, which is announced with a
//! `Content-Disposition: linger` notice; `sendmsg` queues `execute` (answer, playback, sleep,
//! hangup...) and `hangup` orders that the channel runs one after another.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::channel::{Extras, LegKind};
use crate::clock::micros;
use crate::inbound::{Conn, Next, common_command, reply, write_outgoing};
use crate::scripts::LegId;
use crate::sim::Shared;
use crate::switch::{Outgoing, Switch};
use crate::wire::{self, ClientCommand, CommandReader};

/// A feature-code call placed with [`crate::Simulator::dial_feature_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCallHandle {
    /// Identifies the call.
    pub id: u64,
    /// `Unique-ID` of the leg that dialled the code.
    pub uuid: String,
}

/// What the feature-code listener did with a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureCallInfo {
    /// The dialling user.
    pub user: String,
    /// The code dialled (`*48`).
    pub code: String,
    /// The switch reached the listener.
    pub connected: bool,
    /// Why it could not, if it could not.
    pub connect_error: Option<String>,
    /// The listener answered the call.
    pub answered: bool,
    /// What it played, in order (`execute-app-arg` of each `playback`).
    pub prompts: Vec<String>,
    /// The call hung up.
    pub hung_up: bool,
    /// With this cause.
    pub hangup_cause: Option<String>,
    /// Every command the listener sent, first line only (`connect`, `sendmsg`...).
    pub commands: Vec<String>,
    /// The call is over and the session closed or lingering.
    pub ended: bool,
}

pub(crate) struct FeatureCallRecord {
    pub info: FeatureCallInfo,
}

/// Asks the simulator to open an outbound session for a channel.
#[derive(Debug)]
pub(crate) struct OutboundRequest {
    pub uuid: String,
    pub addr: String,
    pub feature_call: Option<u64>,
}

/// An order queued on a channel by `sendmsg`.
#[derive(Debug, Clone)]
pub(crate) enum AppOrder {
    Execute {
        app: String,
        arg: String,
        command: Vec<(String, String)>,
    },
    Hangup {
        cause: String,
        command: Vec<(String, String)>,
    },
}

/// Events of its own channel an outbound session gets after `myevents` (the list in
/// `mod_event_socket.c`; CODEC, CALLSTATE, PRESENCE_IN and PLAYBACK_* are not on it, as the
/// captures confirm).
pub(crate) const MYEVENTS: &[&str] = &[
    "CHANNEL_ANSWER",
    "CHANNEL_APPLICATION",
    "CHANNEL_BRIDGE",
    "CHANNEL_CREATE",
    "CHANNEL_DATA",
    "CHANNEL_DESTROY",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_ORIGINATE",
    "CHANNEL_UUID",
    "CHANNEL_OUTGOING",
    "CHANNEL_PARK",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_STATE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_UNPARK",
    "DETECTED_SPEECH",
    "DTMF",
    "REQUEST_PARAMS",
];

/// Opens the sessions the switch asks for.
pub(crate) async fn spawner(
    shared: Arc<Shared>,
    mut requests: mpsc::UnboundedReceiver<OutboundRequest>,
) {
    loop {
        let req = tokio::select! {
            _ = shared.stop.cancelled() => return,
            r = requests.recv() => match r { Some(r) => r, None => return },
        };
        let s = Arc::clone(&shared);
        shared.tasks.spawn(session(s, req));
    }
}

async fn session(shared: Arc<Shared>, req: OutboundRequest) {
    let connected =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&req.addr)).await;
    let stream = match connected {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return connect_failed(&shared, &req, e.to_string()),
        Err(_) => return connect_failed(&shared, &req, "connect timed out".into()),
    };
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let kill = CancellationToken::new();
    let id = shared.with(|sw| {
        let id = sw.add_listener(tx, kill.clone(), false);
        if let Some(sub) = sw.subscription(id) {
            sub.session_uuid = Some(req.uuid.clone());
        }
        if let Some(ch) = sw.channels.get_mut(&req.uuid) {
            ch.outbound_session = Some(id);
        }
        if let Some(f) = req.feature_call.and_then(|f| sw.feature_calls.get_mut(&f)) {
            f.info.connected = true;
        }
        sw.bump();
        id
    });
    let mut conn = Conn {
        id,
        authed: true,
        writer,
    };
    let mut commands = CommandReader::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            biased;
            _ = kill.cancelled() => break,
            _ = shared.stop.cancelled() => break,
            item = rx.recv() => {
                let Some(item) = item else { break };
                if !write_outgoing(&mut conn, item).await {
                    break;
                }
            }
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                commands.push(&buf[..n]);
                let mut close: Option<Option<Bytes>> = None;
                while let Ok(Some(cmd)) = commands.next_command() {
                    match handle(&shared, &mut conn, &kill, &req, cmd).await {
                        Next::Continue => {}
                        Next::Close(f) => {
                            close = Some(f);
                            break;
                        }
                    }
                }
                if let Some(frame) = close {
                    while let Ok(item) = rx.try_recv() {
                        if !write_outgoing(&mut conn, item).await {
                            break;
                        }
                    }
                    if let Some(f) = frame {
                        let _ = conn.write(&f).await;
                    }
                    break;
                }
            }
        }
    }
    shared.with(|sw| {
        sw.remove_listener(id);
        if let Some(ch) = sw.channels.get_mut(&req.uuid) {
            ch.outbound_session = None;
        }
        if let Some(f) = req.feature_call.and_then(|f| sw.feature_calls.get_mut(&f)) {
            f.info.ended = true;
        }
        // The listener went away: the socket application ends and the dialplan with it.
        let live = sw.channels.get(&req.uuid).is_some_and(|c| !c.hungup);
        if live {
            sw.hangup(&req.uuid, "NORMAL_CLEARING");
        }
        sw.bump();
    });
}

fn connect_failed(shared: &Shared, req: &OutboundRequest, error: String) {
    tracing::debug!(addr = %req.addr, %error, "socket application cannot connect");
    shared.with(|sw| {
        if let Some(f) = req.feature_call.and_then(|f| sw.feature_calls.get_mut(&f)) {
            f.info.connect_error = Some(error);
        }
        sw.hangup(&req.uuid, "NORMAL_CLEARING");
        sw.bump();
    });
}

async fn handle(
    shared: &Arc<Shared>,
    conn: &mut Conn,
    kill: &CancellationToken,
    req: &OutboundRequest,
    cmd: ClientCommand,
) -> Next {
    let line = cmd.line.trim().to_string();
    shared.with(|sw| {
        if let Some(f) = req.feature_call.and_then(|f| sw.feature_calls.get_mut(&f)) {
            f.info.commands.push(line.clone());
        }
    });
    let (word, rest) = match line.split_once(' ') {
        Some((w, r)) => (w, r.trim()),
        None => (line.as_str(), ""),
    };
    let text = match word {
        "connect" => {
            let frame = shared.with(|sw| sw.channel_data_reply(&req.uuid));
            let Some(f) = frame else {
                return Next::Close(None);
            };
            return if reply(shared, conn, &line, f).await {
                Next::Continue
            } else {
                Next::Close(None)
            };
        }
        "myevents" => shared.with(|sw| {
            let format = crate::event::parse_format(rest).unwrap_or_default();
            if let Some(sub) = sw.subscription(conn.id) {
                sub.enabled = true;
                sub.format = format;
                sub.names.extend(MYEVENTS.iter().map(|s| s.to_string()));
                sub.session_uuid = Some(req.uuid.clone());
            }
            "+OK Events Enabled".to_string()
        }),
        "linger" => shared.with(|sw| {
            if let Some(ch) = sw.channels.get_mut(&req.uuid) {
                ch.linger = true;
            }
            "+OK will linger".to_string()
        }),
        "nolinger" => shared.with(|sw| {
            if let Some(ch) = sw.channels.get_mut(&req.uuid) {
                ch.linger = false;
            }
            "+OK will not linger".to_string()
        }),
        "resume" => "+OK".into(),
        "sendmsg" => {
            // The order is queued on the channel before the reply is written; what it sets
            // off is queued behind the reply, as on the switch.
            if let Some(order) = parse_sendmsg(&line, &cmd) {
                let uuid = if rest.is_empty() {
                    req.uuid.clone()
                } else {
                    rest.to_string()
                };
                shared.with(|sw| sw.queue_app(&uuid, order));
            }
            let ok = reply(shared, conn, &line, wire::command_reply("+OK", &[])).await;
            return if ok {
                Next::Continue
            } else {
                Next::Close(None)
            };
        }
        _ => return common_command(shared, conn, kill, &line, &cmd).await,
    };
    if reply(shared, conn, &line, wire::command_reply(&text, &[])).await {
        Next::Continue
    } else {
        Next::Close(None)
    }
}

pub(crate) fn parse_sendmsg(line: &str, cmd: &ClientCommand) -> Option<AppOrder> {
    let mut command = vec![("Command".to_string(), {
        let mut raw = format!("{line}\n");
        for (n, v) in &cmd.headers {
            raw.push_str(&format!("{n}: {v}\n"));
        }
        raw.push('\n');
        raw
    })];
    command.extend(cmd.headers.iter().cloned());
    match cmd.header("call-command")?.to_ascii_lowercase().as_str() {
        "execute" => Some(AppOrder::Execute {
            app: cmd.header("execute-app-name")?.to_string(),
            arg: cmd
                .header("execute-app-arg")
                .map(str::to_string)
                .or_else(|| cmd.body.clone())
                .unwrap_or_default(),
            command,
        }),
        "hangup" => Some(AppOrder::Hangup {
            cause: cmd
                .header("hangup-cause")
                .unwrap_or("NORMAL_CLEARING")
                .to_string(),
            command,
        }),
        _ => None,
    }
}

/// How long a `playback` of `arg` lasts: a WAV file's length, a tone stream's cadence.
fn playback_length(arg: &str) -> Duration {
    if let Some(spec) = arg.strip_prefix("tone_stream://") {
        let loops = spec
            .split(';')
            .find_map(|p| p.strip_prefix("loops="))
            .and_then(|l| l.parse::<u64>().ok())
            .unwrap_or(1);
        let cadence: u64 = spec
            .split(';')
            .next()
            .and_then(|s| s.strip_prefix("%("))
            .and_then(|s| s.split(')').next())
            .map(|s| {
                s.split(',')
                    .take(2)
                    .filter_map(|n| n.trim().parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(1000);
        return Duration::from_millis(cadence.max(1) * loops.max(1));
    }
    if let Ok(info) = crate::wav::WavInfo::read(std::path::Path::new(arg)) {
        return info.duration();
    }
    Duration::from_secs(1)
}

impl Switch {
    /// The `command/reply` to `connect`: the channel data as headers.
    pub(crate) fn channel_data_reply(&mut self, uuid: &str) -> Option<Bytes> {
        let kind = self.channels.get(uuid)?.kind;
        let leg = if kind == LegKind::LoopB {
            LegId::LoopFOut
        } else {
            LegId::SipFOut
        };
        let ev = self.render_step_silently(uuid, leg, "data")?;
        let mut out = String::new();
        for (n, v) in ev.headers() {
            out.push_str(n);
            out.push_str(": ");
            out.push_str(&wire::url_encode(v));
            out.push('\n');
        }
        out.push_str("Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n");
        Some(Bytes::from(out))
    }

    /// A phone dials a feature code (the `sip-hold-feature-code` capture).
    pub(crate) fn dial_feature_code(&mut self, user: &str, code: &str) -> FeatureCallHandle {
        let id = self.next_call;
        self.next_call += 1;
        let uuid = uuid::Uuid::new_v4().to_string();
        self.feature_calls.insert(
            id,
            FeatureCallRecord {
                info: FeatureCallInfo {
                    user: user.to_string(),
                    code: code.to_string(),
                    ..FeatureCallInfo::default()
                },
            },
        );
        self.new_channel(uuid.clone(), LegKind::SipFeature, LegId::SipF);
        if let Some(ch) = self.channels.get_mut(&uuid) {
            ch.feature_call = Some(id);
            ch.idents.a_user = user.to_string();
            ch.idents.a_name = format!("Extension {user}");
            ch.idents.dest = code.to_string();
            ch.idents.call_id = format!("{:016x}", crate::calls::rand_u64());
            ch.presence_id = format!("{user}@127.0.0.1");
            let p = &mut ch.profile;
            p.direction = "inbound".into();
            p.logical_direction = "inbound".into();
            p.username = user.to_string();
            p.dialplan = "XML".into();
            p.caller_id_name = user.to_string();
            p.caller_id_number = user.to_string();
            p.orig_caller_id_name = user.to_string();
            p.orig_caller_id_number = user.to_string();
            p.network_addr = "127.0.0.1".into();
            p.ani = user.to_string();
            p.destination_number = code.to_string();
            p.source = "mod_sofia".into();
            p.context = "default".into();
            p.channel_name = format!("sofia/internal/{user}@127.0.0.1");
        }
        let none = Extras::default();
        self.play(&uuid, LegId::SipF, "create", &none);
        let sleep = micros(self.cfg.dialplan_sleep);
        self.play(
            &uuid,
            LegId::SipF,
            "prelude",
            &Extras {
                overrides: vec![("Application-Data", Some((sleep / 1000).to_string()))],
                ..Extras::default()
            },
        );
        let u = uuid.clone();
        self.schedule_in(
            sleep,
            Box::new(move |sw: &mut Switch| {
                if sw.channels.get(&u).is_none_or(|c| c.hungup) {
                    return;
                }
                sw.play(&u, LegId::SipF, "dialplan", &Extras::default());
                sw.run_socket(&u, Some(id));
            }),
        );
        self.bump();
        FeatureCallHandle { id, uuid }
    }

    /// The `socket` application: connect to the configured address (or hang up when the
    /// dialplan has none).
    fn run_socket(&mut self, uuid: &str, feature_call: Option<u64>) {
        let Some(addr) = self.cfg.feature_code_socket.clone() else {
            if let Some(f) = feature_call.and_then(|f| self.feature_calls.get_mut(&f)) {
                f.info.connect_error = Some("no feature-code socket configured".into());
            }
            self.hangup(uuid, "NORMAL_CLEARING");
            return;
        };
        let data = format!("{addr} async full");
        let host = addr.split(':').next().unwrap_or("").to_string();
        let kind = self.channels.get(uuid).map(|c| c.kind);
        let extras = Extras {
            overrides: vec![
                ("Application", Some("socket".into())),
                ("Application-Data", Some(data.clone())),
            ],
            ..Extras::default()
        };
        if kind == Some(LegKind::LoopB) {
            // No capture shows a loopback leg entering the socket application; the B leg's
            // park steps stand in for it, with the socket's variables.
            if let Some(ch) = self.channels.get_mut(uuid) {
                ch.set_var("current_application_data", data.clone());
                ch.set_var("current_application", "socket");
                ch.set_var("socket_host", host);
            }
            let t = self
                .channels
                .get(uuid)
                .map(|c| c.template)
                .unwrap_or(LegId::LoopBPark);
            self.play(uuid, t, "app", &extras);
        } else {
            self.play(uuid, LegId::SipF, "socket", &extras);
        }
        if let Some(tx) = &self.outbound_requests {
            let _ = tx.send(OutboundRequest {
                uuid: uuid.to_string(),
                addr,
                feature_call,
            });
        }
    }

    /// A loopback B leg that reached a feature code: open the session; its A leg stays
    /// ringing until the listener answers.
    pub(crate) fn loop_socket(&mut self, id: u64) {
        let Some(b) = self.calls.get(&id).map(|c| c.b.clone()) else {
            return;
        };
        self.run_socket(&b, None);
    }

    /// Queues a `sendmsg` order and runs it if the channel is idle.
    pub(crate) fn queue_app(&mut self, uuid: &str, order: AppOrder) {
        let Some(ch) = self.channels.get_mut(uuid) else {
            return;
        };
        ch.app_queue.push_back(order);
        if !ch.app_busy {
            self.next_app(uuid);
        }
    }

    fn next_app(&mut self, uuid: &str) {
        let Some(ch) = self.channels.get_mut(uuid) else {
            return;
        };
        if ch.hungup {
            ch.app_queue.clear();
            return;
        }
        let Some(order) = ch.app_queue.pop_front() else {
            ch.app_busy = false;
            return;
        };
        ch.app_busy = true;
        let kind = ch.kind;
        let feature = ch.feature_call;
        match order {
            AppOrder::Hangup { cause, command } => {
                if let Some(ch) = self.channels.get_mut(uuid) {
                    ch.private_command = command;
                }
                self.hangup(uuid, &cause);
            }
            AppOrder::Execute { app, arg, command } => {
                if let Some(ch) = self.channels.get_mut(uuid) {
                    ch.private_command = command.clone();
                }
                self.execute_app(uuid, kind, feature, &app, &arg, command);
            }
        }
    }

    fn app_done(&mut self, uuid: &str) {
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.app_busy = false;
        }
        self.next_app(uuid);
    }

    fn execute_app(
        &mut self,
        uuid: &str,
        kind: LegKind,
        feature: Option<u64>,
        app: &str,
        arg: &str,
        command: Vec<(String, String)>,
    ) {
        let loopback = kind == LegKind::LoopB;
        match app {
            "answer" | "pre_answer" => {
                let already = self.channels.get(uuid).is_some_and(|c| c.answered);
                if !already {
                    if loopback {
                        if let Some(id) = self.channels.get(uuid).and_then(|c| c.call_handle) {
                            self.loop_answer(id);
                        }
                    } else {
                        self.play(uuid, LegId::SipF, "answer", &Extras::default());
                    }
                }
                if let Some(f) = feature.and_then(|f| self.feature_calls.get_mut(&f)) {
                    f.info.answered = true;
                }
                self.app_done(uuid);
            }
            "playback" => {
                let extras = Extras {
                    overrides: vec![
                        ("Application-Data", Some(arg.to_string())),
                        ("Playback-File-Path", Some(arg.to_string())),
                    ],
                    ..Extras::default()
                };
                let leg = if loopback {
                    LegId::LoopFOut
                } else {
                    LegId::SipF
                };
                if let Some(ch) = self.channels.get_mut(uuid) {
                    ch.set_var("current_application_data", arg.to_string());
                }
                self.play(uuid, leg, "playback", &extras);
                if let Some(f) = feature.and_then(|f| self.feature_calls.get_mut(&f)) {
                    f.info.prompts.push(arg.to_string());
                }
                let length = micros(playback_length(arg));
                let (u, arg) = (uuid.to_string(), arg.to_string());
                self.schedule_in(
                    length,
                    Box::new(move |sw: &mut Switch| {
                        if sw.channels.get(&u).is_none_or(|c| c.hungup) {
                            return;
                        }
                        let extras = Extras {
                            overrides: vec![
                                ("Application-Data", Some(arg.clone())),
                                ("Playback-File-Path", Some(arg.clone())),
                            ],
                            leading: Some(command.clone()),
                            ..Extras::default()
                        };
                        sw.play(&u, leg, "playback_done", &extras);
                        sw.app_done(&u);
                    }),
                );
            }
            "sleep" => {
                let ms: i64 = arg.trim().parse().unwrap_or(0);
                let u = uuid.to_string();
                self.schedule_in(
                    ms.max(0) * 1000,
                    Box::new(move |sw: &mut Switch| sw.app_done(&u)),
                );
            }
            "hangup" => {
                let cause = if arg.is_empty() {
                    "NORMAL_CLEARING"
                } else {
                    arg
                };
                self.hangup(uuid, cause);
            }
            _ => {
                // Applications the simulator does not model complete at once.
                self.app_done(uuid);
            }
        }
        self.bump();
    }

    /// The feature-code leg hangs up: its captured teardown, then the session notice.
    pub(crate) fn feature_hangup(&mut self, uuid: &str) {
        let command = self
            .channels
            .get(uuid)
            .map(|c| c.private_command.clone())
            .unwrap_or_default();
        let extras = Extras {
            leading: (!command.is_empty()).then_some(command),
            ..Extras::default()
        };
        self.play(uuid, LegId::SipF, "hangup", &extras);
        if let Some(f) = self
            .channels
            .get(uuid)
            .and_then(|c| c.feature_call)
            .and_then(|f| self.feature_calls.get_mut(&f))
        {
            f.info.hung_up = true;
            f.info.hangup_cause = self.channels.get(uuid).map(|c| c.hangup_cause.clone());
        }
        self.end_outbound_session(uuid);
        self.play(uuid, LegId::SipF, "destroy", &Extras::default());
        self.remove_channel(uuid);
    }

    /// Ends the outbound session of a channel that hung up: the linger notice if the
    /// listener asked to linger, else the disconnect notice and close.
    pub(crate) fn end_outbound_session(&mut self, uuid: &str) {
        let Some(ch) = self.channels.get(uuid) else {
            return;
        };
        let Some(session) = ch.outbound_session else {
            return;
        };
        let name = ch.profile.channel_name.clone();
        // The session is detached from its channel: no event follows the notice.
        if let Some(sub) = self.subscription(session) {
            sub.enabled = false;
        }
        let Some(ch) = self.channels.get(uuid) else {
            return;
        };
        let frame = if ch.linger {
            Outgoing::Frame(wire::linger_notice(uuid, &name))
        } else {
            Outgoing::Close(Some(wire::session_disconnect_notice(uuid, wire::GOODBYE)))
        };
        self.send_to(session, frame);
        if let Some(f) = ch.feature_call.and_then(|f| self.feature_calls.get_mut(&f)) {
            f.info.hung_up = true;
        }
        self.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_streams_last_their_cadence() {
        assert_eq!(
            playback_length("tone_stream://%(500,0,800)"),
            Duration::from_millis(500)
        );
        assert_eq!(
            playback_length("tone_stream://%(1000,0,440);loops=60"),
            Duration::from_secs(60)
        );
        assert_eq!(playback_length("/no/such/file.wav"), Duration::from_secs(1));
    }
}
