//! `callrec serve`: the daemon and the REST API composed, until SIGTERM or SIGINT. The daemon
//! library takes its listeners; binding them (and the API's) happens here, once, for
//! `serve` and `demo` alike.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use callrec_api::forwarded::TrustedProxies;
use callrec_api::tls::Tls;
use callrec_api::{ApiConfig, ApiState};
use callrec_config::Config;
use tokio::net::TcpListener;

use callrec_daemon::{Daemon, DaemonError, DaemonHandle, Listeners, Options};

use crate::exit::Misconfigured;

/// Binds the API's listener.
pub async fn bind_api(config: &Config) -> Result<TcpListener, DaemonError> {
    let addr = config.api.listen;
    TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Listen {
            what: "api.listen",
            addr: addr.to_string(),
            source,
        })
}

/// The API's settings from the config, with the TLS certificate and key read (so a missing
/// or broken file stops the start, before the daemon records anything, as a configuration
/// error naming the file).
pub fn api_config(config: &Config) -> Result<ApiConfig, Misconfigured> {
    let tls = if config.api.tls_enabled() {
        let tls = Tls::load(
            Path::new(&config.api.tls_cert),
            Path::new(&config.api.tls_key),
        )
        .map_err(|e| Misconfigured(e.to_string()))?;
        Some(tls)
    } else {
        None
    };
    Ok(ApiConfig {
        max_body_bytes: config.api.max_body_bytes.bytes(),
        limits: callrec_api::server::Limits {
            max_connections: config.api.max_connections as usize,
            header_timeout: std::time::Duration::from_secs(config.api.header_timeout_secs.into()),
        },
        portal: callrec_api::PortalConfig {
            secure_cookies: config.api.secure_cookies,
            ..callrec_api::PortalConfig::default()
        },
        tls,
        trusted_proxies: TrustedProxies::new(config.api.trusted_proxies.clone()),
        metrics_allow: config.api.metrics_allow.clone(),
        ..ApiConfig::default()
    })
}

/// Serves the API for a running daemon until the daemon stops; returns the task.
pub fn spawn_api(
    api: ApiConfig,
    listener: TcpListener,
    handle: &DaemonHandle,
) -> tokio::task::JoinHandle<()> {
    let state = ApiState::with_config(handle.store().clone(), Arc::new(handle.clone()), api);
    let token = handle.shutdown_token();
    tokio::spawn(callrec_api::serve(listener, state, async move {
        token.cancelled().await
    }))
}

/// Runs the daemon and the API until `shutdown` completes (SIGTERM/SIGINT in production):
/// stop taking work, let requests and feature calls in flight finish, apply every decided
/// store operation, finish in-flight ingests, close the index.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let api_config = api_config(&config)?;
    let listeners = Listeners::bind(&config).await?;
    let api = bind_api(&config).await?;
    let daemon = Daemon::start(config.clone(), listeners, Options::default()).await?;
    let handle = daemon.handle();
    let api_task = spawn_api(api_config, api, &handle);
    let result = daemon.run(shutdown).await;
    handle.shutdown();
    let _ = api_task.await;
    Ok(result?)
}

/// Completes on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is called,
/// not when the future is first polled, so a signal that comes while the daemon is still
/// starting (opening or migrating the index, finishing what a crash left) is kept and stops
/// the daemon cleanly once it runs, instead of killing the process half-way. Call it with the
/// runtime entered.
#[cfg(unix)]
pub fn termination_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tracing::debug!("watching SIGTERM and SIGINT");
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
pub fn termination_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
