//! The inbound Event Socket session (SPEC §3.1): connect, subscribe, receive, reconnect.
//!
//! Two connections to the switch make one session:
//!
//! - the **event connection** subscribes to the channel and recording events and never
//!   sends another command, so its queue can wait for room when the daemon falls behind
//!   (`EventOverflow::BlockFor`) instead of dropping: the ESL crate documents that waiting is
//!   only sound on a connection that issues no commands;
//! - the **command connection** sends every command as `bgapi` (the switch answers with a
//!   Job-UUID at once) and receives only BACKGROUND_JOB and HEARTBEAT, so a slow command never
//!   stalls event handling and a result can never be dropped behind a flood of channel events.
//!
//! The event loop only receives: it parses, updates the call table and decides under the
//! core's lock, then hands commands and store work to their own tasks. Any reported drop is
//! lost state: it is counted, logged and answered with an immediate reconciliation.
//!
//! A session ends when either connection ends; the supervisor reconnects with capped
//! exponential backoff, and stops only on shutdown or on a configuration error (wrong
//! password, ACL), which retrying cannot fix.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use freeswitch_esl_tokio::{
    AuthMethod, ConnectionStatus, DisconnectReason, EslClient, EslConnectOptions, EslError,
    EslEvent, EslEventStream, EventFormat, EventOverflow, HeaderLookup, parse_api_body,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::{Core, Job, QueryError};
use crate::event::{ChannelEvent, EventKind, SUBSCRIBED_EVENTS};

/// How the daemon reaches the switch.
#[derive(Clone)]
pub struct EslSettings {
    /// Host of `mod_event_socket`.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// `user@domain` for `userauth`, or empty for the shared password.
    pub user: String,
    /// The password.
    pub password: String,
    /// TCP connect and auth timeout.
    pub connect_timeout: Duration,
    /// How long a command may go unanswered.
    pub command_timeout: Duration,
    /// Silence after which the connection is declared dead (HEARTBEAT comes every 20 s).
    pub liveness_timeout: Option<Duration>,
    /// Plain or JSON events.
    pub format: EventFormat,
    /// Event queue slots between the socket reader and the event loop.
    pub queue_size: usize,
    /// How long the reader may wait for room before it drops an event.
    pub block_budget: Duration,
    /// First reconnect delay.
    pub reconnect_initial: Duration,
    /// Reconnect delay cap.
    pub reconnect_max: Duration,
}

impl std::fmt::Debug for EslSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EslSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("format", &self.format)
            .field("queue_size", &self.queue_size)
            .finish_non_exhaustive()
    }
}

impl EslSettings {
    fn auth(&self) -> AuthMethod {
        if self.user.is_empty() {
            AuthMethod::password(self.password.clone())
        } else {
            AuthMethod::user(self.user.clone(), self.password.clone())
        }
    }
}

/// A failure that retrying cannot fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EslConfigError {
    /// The switch refused the credentials.
    #[error(
        "FreeSWITCH at {host}:{port} refused the Event Socket credentials ({reason}); check `esl.password`{user_hint} in the config file or CALLREC_ESL_PASSWORD"
    )]
    BadCredentials {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// What the switch said.
        reason: String,
        /// Mentions `esl.user` when it is set.
        user_hint: String,
    },
    /// The switch's ACL refused this host.
    #[error(
        "FreeSWITCH at {host}:{port} refused the connection by ACL ({reason}); allow this host in event_socket.conf.xml (`apply-inbound-acl`) or change `esl.host`"
    )]
    AccessDenied {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// What the switch said.
        reason: String,
    },
}

/// Why a connection attempt failed.
enum ConnectError {
    Config(EslConfigError),
    Retry(EslError),
}

fn classify(settings: &EslSettings, err: EslError) -> ConnectError {
    match err {
        EslError::AuthenticationFailed { reason } => {
            ConnectError::Config(EslConfigError::BadCredentials {
                host: settings.host.clone(),
                port: settings.port,
                reason,
                user_hint: if settings.user.is_empty() {
                    String::new()
                } else {
                    " and `esl.user`".to_owned()
                },
            })
        }
        EslError::AccessDenied { reason } => ConnectError::Config(EslConfigError::AccessDenied {
            host: settings.host.clone(),
            port: settings.port,
            reason,
        }),
        other => ConnectError::Retry(other),
    }
}

/// An established, subscribed session.
struct Session {
    events_client: EslClient,
    events: EslEventStream,
    commands_client: EslClient,
    command_events: EslEventStream,
}

async fn connect(settings: &EslSettings) -> Result<Session, ConnectError> {
    let events_options = EslConnectOptions::new()
        .with_event_queue_size(settings.queue_size)
        .with_connect_timeout(settings.connect_timeout)
        .with_event_overflow(EventOverflow::BlockFor(settings.block_budget));
    let (events_client, events) = EslClient::connect_with_auth(
        &settings.host,
        settings.port,
        settings.auth(),
        events_options,
    )
    .await
    .map_err(|e| classify(settings, e))?;
    // Only the channel and recording events: BACKGROUND_JOB belongs to the command
    // connection, HEARTBEAT is asked for on its own so a denial cannot sink the rest.
    let channel_events: Vec<&str> = SUBSCRIBED_EVENTS
        .iter()
        .copied()
        .filter(|e| *e != "BACKGROUND_JOB" && *e != "HEARTBEAT")
        .collect();
    events_client
        .subscribe_events_raw(settings.format, &channel_events.join(" "))
        .await
        .map_err(ConnectError::Retry)?;
    subscribe_heartbeat(&events_client, settings).await?;

    // The command connection's queue only ever holds job results and heartbeats; it is
    // drained by a loop that does nothing else, so dropping is the right overflow here.
    let command_options = EslConnectOptions::new()
        .with_event_queue_size(settings.queue_size.max(1024))
        .with_connect_timeout(settings.connect_timeout);
    let (commands_client, command_events) = EslClient::connect_with_auth(
        &settings.host,
        settings.port,
        settings.auth(),
        command_options,
    )
    .await
    .map_err(|e| classify(settings, e))?;
    commands_client.set_command_timeout(settings.command_timeout);
    commands_client
        .subscribe_events_raw(settings.format, "BACKGROUND_JOB")
        .await
        .map_err(ConnectError::Retry)?;
    subscribe_heartbeat(&commands_client, settings).await?;
    Ok(Session {
        events_client,
        events,
        commands_client,
        command_events,
    })
}

async fn subscribe_heartbeat(
    client: &EslClient,
    settings: &EslSettings,
) -> Result<(), ConnectError> {
    match client
        .subscribe_events_raw(settings.format, "HEARTBEAT")
        .await
    {
        Ok(()) => {
            if let Some(limit) = settings.liveness_timeout {
                client.set_liveness_timeout(limit);
            }
            Ok(())
        }
        Err(e) if e.is_permission_denied() => {
            tracing::warn!(
                "the switch denies HEARTBEAT to this ESL user; an idle connection cannot be checked for liveness"
            );
            Ok(())
        }
        Err(e) => Err(ConnectError::Retry(e)),
    }
}

/// Keeps a session up until shutdown; returns only on shutdown or a configuration error.
pub(crate) async fn supervise(
    core: Arc<Core>,
    settings: EslSettings,
    shutdown: CancellationToken,
) -> Result<(), EslConfigError> {
    let mut backoff = settings.reconnect_initial;
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            attempt = connect(&settings) => attempt,
        };
        match attempt {
            Ok(session) => {
                let started = Instant::now();
                tracing::info!(host = %settings.host, port = settings.port, "connected to FreeSWITCH");
                let reason = run_session(&core, &settings, session, &shutdown).await;
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                tracing::warn!(%reason, "the Event Socket session ended; reconnecting");
                // A session that held for a while was healthy: start the backoff afresh.
                if started.elapsed() >= settings.reconnect_max {
                    backoff = settings.reconnect_initial;
                }
            }
            Err(ConnectError::Config(err)) => return Err(err),
            Err(ConnectError::Retry(err)) => {
                core.metrics.esl_connect_failures.inc();
                tracing::warn!(
                    error = %err,
                    host = %settings.host,
                    port = settings.port,
                    retry_in = ?backoff,
                    "cannot reach FreeSWITCH (esl.host, esl.port)"
                );
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(settings.reconnect_max);
    }
}

/// Runs one session to its end; returns why it ended.
async fn run_session(
    core: &Arc<Core>,
    settings: &EslSettings,
    session: Session,
    shutdown: &CancellationToken,
) -> String {
    let Session {
        events_client,
        mut events,
        commands_client,
        command_events,
    } = session;
    let (tx, rx) = mpsc::unbounded_channel();
    core.set_command_sender(Some(tx));
    core.metrics.reset_dropped_baseline();
    let stop_commands = CancellationToken::new();
    let command_task = tokio::spawn(command_loop(
        core.clone(),
        commands_client.clone(),
        command_events,
        rx,
        settings.command_timeout,
        stop_commands.clone(),
    ));
    core.metrics.esl_connects.inc();
    core.metrics.esl_connected.set(1);
    core.esl_up.send_replace(true);
    core.metrics.reconciled("connect");
    core.reconcile.notify_one();

    let owner_headers = core.recorder().settings().owner_headers.clone();
    let mut drop_check = tokio::time::interval(Duration::from_millis(250));
    drop_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break "shutdown".to_owned(),
            item = events.recv() => match item {
                Some(Ok(event)) => handle_event(core, &event, &owner_headers),
                Some(Err(EslError::QueueFull)) => note_drops(core, &events_client),
                Some(Err(err)) if err.is_connection_error() => break err.to_string(),
                Some(Err(err)) => {
                    core.metrics.malformed_frames.inc();
                    tracing::warn!(error = %err, "unusable frame from the switch");
                }
                None => {
                    let status = events.status();
                    // The crate ends a connection whose framing it cannot trust (an unknown
                    // content type, a bad Content-Length): that frame was malformed too.
                    if let ConnectionStatus::Disconnected(DisconnectReason::ProtocolError(_)) = &status {
                        core.metrics.malformed_frames.inc();
                    }
                    break format!("{status:?}");
                }
            },
            _ = drop_check.tick() => {
                note_drops(core, &events_client);
                if command_task.is_finished() {
                    break "the command connection closed".to_owned();
                }
            }
        }
    };
    note_drops(core, &events_client);
    core.set_command_sender(None);
    core.esl_up.send_replace(false);
    core.metrics.esl_connected.set(0);
    stop_commands.cancel();
    // The command loop fails whatever it still holds as unanswered before it returns.
    let _ = command_task.await;
    let _ = events_client.disconnect().await;
    let _ = commands_client.disconnect().await;
    reason
}

/// Reads the ESL crate's drop count; any new drop means lost state: reconcile at once.
fn note_drops(core: &Core, client: &EslClient) {
    let new = core.metrics.observe_dropped(client.dropped_event_count());
    if new > 0 {
        tracing::error!(
            dropped = new,
            "the switch's events came faster than they could be handled and some were dropped; reconciling"
        );
        core.metrics.reconciled("dropped_events");
        core.reconcile.notify_one();
    }
}

/// One event: parse, decide, carry out. Never waits on I/O.
pub(crate) fn handle_event(core: &Core, event: &EslEvent, owner_headers: &[String]) {
    let name = event.header_str("Event-Name").unwrap_or("");
    let kind = EventKind::from_name(name);
    core.metrics.event_kind(kind, name);
    if !kind.is_channel_event() {
        return;
    }
    match ChannelEvent::from_headers(event, owner_headers) {
        Ok(ev) => {
            tracing::trace!(event = name, channel = %ev.uuid, "event");
            core.decide(|rec| rec.on_event(&ev))
        }
        Err(err) => {
            core.metrics.malformed_frames.inc();
            tracing::warn!(error = %err, "unusable event from the switch");
        }
    }
}

/// Sends commands as `bgapi` and matches their BACKGROUND_JOB results.
async fn command_loop(
    core: Arc<Core>,
    client: EslClient,
    mut events: EslEventStream,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    timeout: Duration,
    stop: CancellationToken,
) {
    let mut pending: HashMap<String, (Job, Instant)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            item = events.recv() => match item {
                Some(Ok(event)) => {
                    if event.header_str("Event-Name") != Some("BACKGROUND_JOB") {
                        continue;
                    }
                    // Another client's job lands here too: only ours are in `pending`.
                    let Some((job, _)) = event.job_uuid().and_then(|id| pending.remove(id)) else {
                        continue;
                    };
                    let text = job.text();
                    let result = job_result(&core, &text, event.body());
                    core.complete(job, result);
                }
                Some(Err(EslError::QueueFull)) => {
                    tracing::warn!("command results were dropped; the affected commands will time out");
                }
                Some(Err(err)) if err.is_connection_error() => break,
                Some(Err(err)) => {
                    core.metrics.malformed_frames.inc();
                    tracing::warn!(error = %err, "unusable frame on the command connection");
                }
                None => break,
            },
            job = jobs.recv() => {
                let Some(job) = job else { break };
                let text = job.text();
                match client.bgapi(&text).await {
                    Ok(reply) => match reply.into_result() {
                        Ok(reply) => match reply.job_uuid() {
                            Some(id) => {
                                pending.insert(id.to_owned(), (job, Instant::now()));
                            }
                            None => {
                                core.metrics.malformed_frames.inc();
                                core.complete(job, Err(QueryError::Refused {
                                    command: text,
                                    reply: "bgapi reply without a Job-UUID".to_owned(),
                                }));
                            }
                        },
                        Err(err) => core.complete(job, Err(QueryError::Refused {
                            command: text,
                            reply: err.to_string(),
                        })),
                    },
                    Err(err) if err.is_connection_error() => {
                        core.complete(job, Err(QueryError::Disconnected));
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, command = %text, "bgapi got no reply");
                        core.complete(job, Err(QueryError::Timeout(text)));
                    }
                }
            }
            _ = tick.tick() => {
                let expired: Vec<String> = pending
                    .iter()
                    .filter(|(_, (_, sent))| sent.elapsed() > timeout)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in expired {
                    if let Some((job, _)) = pending.remove(&id) {
                        let text = job.text();
                        core.complete(job, Err(QueryError::Timeout(text)));
                    }
                }
            }
        }
    }
    for (_, (job, _)) in pending.drain() {
        core.complete(job, Err(QueryError::Disconnected));
    }
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        core.complete(job, Err(QueryError::Disconnected));
    }
}

/// The result of a BACKGROUND_JOB: its body, or the switch's refusal.
///
/// A command that wrote nothing (`hash_dump` of an empty realm, `uuid_buglist` of a leg
/// with no media bug) is an empty output, not a fault: `api_exec` gives the job an empty
/// body, which `switch_event_serialize` leaves out of a plain event altogether and the
/// JSON one carries as `"_body":""`.
fn job_result(core: &Core, command: &str, body: Option<&str>) -> Result<String, QueryError> {
    let body = body.unwrap_or_default();
    if body.trim_end_matches(['\n', '\r']).is_empty() {
        return Ok(String::new());
    }
    match parse_api_body(body) {
        Ok(text) => Ok(text.to_owned()),
        Err(EslError::CommandFailed { reply_text }) => Err(QueryError::Refused {
            command: command.to_owned(),
            reply: reply_text,
        }),
        Err(err) => {
            core.metrics.malformed_frames.inc();
            Err(QueryError::Refused {
                command: command.to_owned(),
                reply: err.to_string(),
            })
        }
    }
}

#[cfg(test)]
#[path = "esl_tests.rs"]
mod tests;
