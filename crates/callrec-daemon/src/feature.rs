//! The feature-code listener (SPEC §3.5): FreeSWITCH's dialplan sends `*48`, `*49` and `*44`
//! calls here with `socket <listen> async full`, and each call is answered on its own task.
//!
//! Per call, as the `feature-code-outbound` capture shows: `connect` (the reply is the
//! channel data), `myevents`, `linger`; the decision ([`crate::recorder::Recorder::feature_code`])
//! and the action on the target call, waiting for the switch to confirm; then `answer`,
//! `playback` of the prompt, and once the playback completed, `hangup`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use freeswitch_esl_tokio::{
    AppCommand, EslClient, EslError, EslEvent, EslEventStream, EventFormat, HeaderLookup,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core::Core;
use crate::event::ChannelEvent;
use crate::recorder::FeatureDecision;
use callrec_model::Prompt;

/// Longest a prompt may play before the call is hung up anyway.
const PLAYBACK_LIMIT: Duration = Duration::from_secs(30);

/// Accept failures (EMFILE) repeat at once; this keeps the log readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The prompt files, by prompt, as paths the switch can read.
#[derive(Debug, Clone)]
pub struct Prompts {
    files: HashMap<&'static str, PathBuf>,
}

impl Prompts {
    /// Prompts from a directory and a file name per prompt (`paused`, `resumed`, `started`,
    /// `not_allowed`, `no_call`).
    pub fn new(dir: PathBuf, files: impl IntoIterator<Item = (Prompt, String)>) -> Prompts {
        Prompts {
            files: files
                .into_iter()
                .map(|(prompt, file)| (prompt.key(), dir.join(file)))
                .collect(),
        }
    }

    /// The path to play for a prompt; a missing entry plays `<name>.wav` from nowhere,
    /// which the switch reports and the caller hears as silence.
    pub fn path(&self, prompt: Prompt) -> String {
        self.files
            .get(prompt.key())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("{}.wav", prompt.key()))
    }
}

/// What the feature-code side needs to run.
#[derive(Debug, Clone)]
pub(crate) struct FeatureSettings {
    pub prompts: Prompts,
    pub format: EventFormat,
    pub command_timeout: Duration,
}

/// Accepts feature-code calls until shutdown; each runs on `tracker`.
pub(crate) async fn serve(
    core: Arc<Core>,
    listener: TcpListener,
    settings: FeatureSettings,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let settings = Arc::new(settings);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let core = core.clone();
                let settings = settings.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    // The ESL crate's reader task reads until the peer closes, and outlives
                    // the client: a peer that stays connected and silent (not the switch,
                    // or a switch gone astray) would keep it and the socket for ever. A
                    // second handle on the socket lets the call shut it when it is over.
                    let (stream, socket) = match split_off_closer(stream) {
                        Ok(pair) => pair,
                        Err(err) => {
                            tracing::warn!(%peer, error = %err, "cannot take a feature-code connection");
                            return;
                        }
                    };
                    if let Err(err) = answer_call(&core, stream, &settings, &shutdown).await {
                        tracing::warn!(%peer, error = %err, "feature-code call ended early");
                    }
                    // Its reader sees the end of the stream and lets the socket go.
                    let _ = socket.shutdown(std::net::Shutdown::Both);
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot accept a feature-code connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// The stream, and a second handle on the same socket to shut it with.
fn split_off_closer(
    stream: tokio::net::TcpStream,
) -> std::io::Result<(tokio::net::TcpStream, std::net::TcpStream)> {
    let stream = stream.into_std()?;
    let closer = stream.try_clone()?;
    Ok((tokio::net::TcpStream::from_std(stream)?, closer))
}

async fn answer_call(
    core: &Core,
    stream: tokio::net::TcpStream,
    settings: &FeatureSettings,
    shutdown: &CancellationToken,
) -> Result<(), EslError> {
    let (client, mut events) = EslClient::accept_outbound_stream(stream);
    client.set_command_timeout(settings.command_timeout);
    let data = client.connect_session().await?.into_result()?;
    client.myevents(settings.format).await?;
    client.linger(None).await?;

    let owner_headers = core.recorder().settings().owner_headers.clone();
    let prompt = match ChannelEvent::from_headers(&data, &owner_headers) {
        Ok(call) => {
            let decision = core.recorder().feature_code(&call);
            match decision {
                FeatureDecision::Play(prompt) => prompt,
                FeatureDecision::Act { plan, on_success } => match core.run_action(plan).await {
                    Ok(_) => on_success,
                    Err(err) => {
                        tracing::warn!(error = %err, "feature code not carried out");
                        Prompt::NotAllowed
                    }
                },
            }
        }
        Err(err) => {
            core.metrics.malformed_frames.inc();
            tracing::warn!(error = %err, "feature-code call without usable channel data");
            Prompt::NotAllowed
        }
    };
    core.metrics.feature_code(prompt.key());
    tracing::info!(
        caller = data.caller_id_number().unwrap_or("?"),
        code = data.destination_number().unwrap_or("?"),
        prompt = prompt.key(),
        "feature code answered"
    );

    client.send_command(AppCommand::answer()).await?.check()?;
    let path = settings.prompts.path(prompt);
    client
        .send_command(AppCommand::playback(&path))
        .await?
        .check()?;
    // At shutdown the prompt is cut short: the caller is told by the hangup.
    tokio::select! {
        _ = wait_for_playback(&mut events) => {}
        _ = shutdown.cancelled() => {}
    }
    let mut hangup = EslEvent::new();
    hangup.set_header("call-command", "hangup");
    hangup.set_header("hangup-cause", "NORMAL_CLEARING");
    // The caller may have hung up first; the switch then refuses, which is fine.
    let _ = client.sendmsg(None, hangup).await;
    // Lingering: the switch closes the socket after the last events.
    tokio::select! {
        _ = tokio::time::timeout(Duration::from_secs(5), async {
            while events.recv().await.is_some() {}
        }) => {}
        _ = shutdown.cancelled() => {}
    }
    Ok(())
}

/// Until the playback completed, the call hung up, or the limit passed.
async fn wait_for_playback(events: &mut EslEventStream) {
    let _ = tokio::time::timeout(PLAYBACK_LIMIT, async {
        while let Some(item) = events.recv().await {
            let Ok(event) = item else { continue };
            match event.header_str("Event-Name") {
                Some("CHANNEL_EXECUTE_COMPLETE")
                    if event.header_str("Application") == Some("playback") =>
                {
                    return;
                }
                Some("CHANNEL_HANGUP") | Some("CHANNEL_HANGUP_COMPLETE") => return,
                _ => {}
            }
        }
    })
    .await;
}

#[cfg(test)]
#[path = "feature_tests.rs"]
mod tests;
