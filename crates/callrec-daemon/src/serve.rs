//! `callrec serve`: the daemon and the REST API together, until SIGTERM or SIGINT.

use std::future::Future;
use std::sync::Arc;

use callrec_api::{ApiConfig, ApiState};
use callrec_config::Config;
use tokio::net::TcpListener;

use crate::daemon::{Daemon, DaemonError, DaemonHandle, Listeners, Options};

/// Binds the API's listener.
pub(crate) async fn bind_api(config: &Config) -> Result<TcpListener, DaemonError> {
    let addr = config.api.listen;
    TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Listen {
            what: "api.listen",
            addr: addr.to_string(),
            source,
        })
}

/// Serves the API for a running daemon until the daemon stops; returns the task.
pub(crate) fn spawn_api(
    config: &Config,
    listener: TcpListener,
    handle: &DaemonHandle,
) -> tokio::task::JoinHandle<()> {
    let state = ApiState::with_config(
        handle.store().clone(),
        Arc::new(handle.clone()),
        ApiConfig {
            max_body_bytes: config.api.max_body_bytes.bytes(),
            ..ApiConfig::default()
        },
    );
    let token = handle.shutdown_token();
    tokio::spawn(callrec_api::serve(listener, state, async move {
        token.cancelled().await
    }))
}

/// Runs the daemon and the API until `shutdown` completes (SIGTERM/SIGINT in production):
/// stop taking work, let requests and feature calls in flight finish, apply every decided
/// store operation, finish in-flight ingests, close the index.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let listeners = Listeners::bind(&config).await?;
    let api = bind_api(&config).await?;
    let daemon = Daemon::start(config.clone(), listeners, Options::default()).await?;
    let handle = daemon.handle();
    let api_task = spawn_api(&config, api, &handle);
    let result = daemon.run(shutdown).await;
    handle.shutdown();
    let _ = api_task.await;
    result
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch SIGTERM; only Ctrl-C stops the daemon");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
