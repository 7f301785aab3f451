//! callrec's REST API (SPEC §5): search, play, download, annotate, hold and delete
//! recordings; the calls in progress and their recording; users, the site, usage and the
//! audit log; health, readiness, metrics and the OpenAPI document.
//!
//! This crate owns HTTP: routing, authentication with bearer tokens, the user/admin scope of
//! every request, parameter and body parsing, the wire format (every reply and body is a type
//! of this crate, built from the store's or the daemon's values), the JSON error shape, the
//! OpenAPI document generated from those types and the routes, HTTP Range and conditional
//! requests, and `/metrics`. It owns no data: recordings, users, tokens and the audit log are
//! the store's (`callrec-store`; handlers never write SQL), and calls in progress are the
//! daemon's, reached through the `callrec_model::LiveCalls` trait. Issuing tokens is the
//! CLI's (`callrec token create`); the API only checks them.
//!
//! # Map
//!
//! | module | what |
//! | --- | --- |
//! | [`filters`] | one filter per route: method, path, caller, parameters, body |
//! | `handlers` | one async function per route, and its OpenAPI operation (`#[utoipa::path]`) |
//! | [`models`] | query parameters and JSON bodies, with their OpenAPI descriptions |
//! | [`replies`] | every JSON reply and its schema, built from the store's records |
//! | [`error`] | [`ApiError`] and the one `recover` that writes every error as JSON |
//! | [`range`], `audio` | Range and conditional requests, streaming a stored file |
//! | [`live`] | who may see a call; [`NoDaemon`] where no daemon runs |
//! | [`metrics`] | the API's and the store's Prometheus metrics |
//! | `openapi` | the OpenAPI 3.1 document, generated; the model's enums' schemas |
//! | `state` | [`ApiState`]: the store, the daemon, metrics and limits |
//! | [`server`], [`tls`] | the accept loop: timeouts, the connection cap, TLS |
//! | [`forwarded`] | the client's address behind trusted reverse proxies |
//! | `archive`, `zipstream` | archive clients: the streamed `export.zip`, run reports |
//! | [`portal`] | the web portal (SPEC §5.1): sign-in, sessions, server-rendered pages |
//!
//! # Running it
//!
//! The daemon binds the listener (so a bad address fails at start, and tests can bind
//! port 0) and passes a shutdown future:
//!
//! ```no_run
//! # async fn run(store: callrec_store::StoreHandle) -> std::io::Result<()> {
//! use std::sync::Arc;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let state = callrec_api::ApiState::new(store, Arc::new(callrec_api::NoDaemon));
//! callrec_api::serve(listener, state, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod acts;
mod archive;
mod audio;
pub mod error;
pub mod filters;
pub mod forwarded;
mod handlers;
pub mod live;
pub mod metrics;
pub mod models;
mod openapi;
pub mod portal;
pub mod range;
pub mod replies;
pub mod server;
mod state;
pub mod tls;
mod zipstream;

use std::convert::Infallible;
use std::future::Future;

use warp::Filter;

pub use audio::CHUNK_BYTES;
pub use error::ApiError;
pub use live::{NoDaemon, visible_to};
pub use state::{ApiConfig, ApiState, PortalConfig};

/// The OpenAPI 3.1 document served at `/openapi.json`, generated from the reply and body
/// types and the routes' `#[utoipa::path]` attributes.
pub fn openapi_document() -> &'static serde_json::Value {
    openapi::document()
}

/// Every route (the API's and the portal's), with errors as JSON and each request counted in the metrics. This is what
/// [`serve`] serves, and what route tests drive with `warp::test`.
pub fn routes(
    state: ApiState,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone + Send + Sync + 'static
{
    let metrics_state = state.clone();
    let https = state.config().tls.is_some();
    warp::path::full()
        .and(
            server::head_within_limits()
                .and(filters::all(&state).or(portal::routes(&state)).unify())
                .recover(error::recover)
                .unify(),
        )
        .map(move |path: warp::path::FullPath, reply| {
            let mut response = warp::Reply::into_response(reply);
            // A 405 says which methods the path takes (RFC 9110 §15.5.6).
            if response.status() == warp::http::StatusCode::METHOD_NOT_ALLOWED
                && let Some(allow) = openapi::allowed_methods(path.as_str())
                && let Ok(value) = warp::http::HeaderValue::from_str(&allow)
            {
                response
                    .headers_mut()
                    .insert(warp::http::header::ALLOW, value);
            }
            harden(response, https)
        })
        .with(warp::log::custom(move |info| {
            metrics_state.metrics().observe_request(
                info.method().as_str(),
                info.status().as_u16(),
                info.elapsed().as_secs_f64(),
            );
            tracing::debug!(
                method = %info.method(),
                path = info.path(),
                status = info.status().as_u16(),
                elapsed_ms = info.elapsed().as_secs_f64() * 1e3,
                "api request"
            );
        }))
}

/// Add the headers that keep a browser from caching, sniffing, framing or referring any
/// reply, errors included. Every reply carries some personal data or leads to it (numbers,
/// notes, audio), and agents open recordings from shared workstations: nothing may stay in a
/// browser's disk cache after the session, and no reply may be rendered as a page or framed
/// by another site. A header a route set itself is left alone (a future dashboard page sets
/// its own `Content-Security-Policy`). Served over TLS ([`ApiConfig::tls`]), every reply also
/// tells the browser to use nothing but HTTPS for this host from now on (HSTS), so a later
/// `http://` link or a downgrading network cannot expose the session cookie. Behind a
/// TLS-terminating proxy, HSTS is the proxy's to send.
fn harden(mut response: warp::reply::Response, https: bool) -> warp::reply::Response {
    use warp::http::{HeaderValue, header};
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    if https {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(HeaderValue::from_static(STRICT_TRANSPORT_SECURITY));
    }
    response
}

/// The `Strict-Transport-Security` of every reply served over TLS: one year, this host only
/// (callrec does not know what else runs under the same domain).
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// Serve the API on an already-bound listener until `shutdown` completes; then stop
/// accepting, let the requests in flight finish for up to [`ApiConfig::shutdown_grace`] (a
/// long download included), and return. Connections still open after the grace period are
/// left to end with the runtime. Connections are limited and timed out as
/// [`ApiConfig::limits`] says (see [`server`]), and served over TLS when [`ApiConfig::tls`]
/// is set.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = state.config().limits.for_process();
    let tls = state.config().tls.clone();
    match listener.local_addr() {
        Ok(addr) => tracing::info!(
            %addr,
            scheme = if tls.is_some() { "https" } else { "http" },
            max_connections = limits.max_connections,
            header_timeout = ?limits.header_timeout,
            "API listening"
        ),
        Err(e) => tracing::warn!(error = %e, "API listening (address unknown)"),
    }
    if limits.max_connections < state.config().limits.max_connections {
        tracing::warn!(
            configured = state.config().limits.max_connections,
            serving = limits.max_connections,
            "api.max_connections lowered to keep file descriptors for recordings; raise the \
             open-files limit (LimitNOFILE in the systemd unit) to serve more"
        );
    }
    let grace = state.config().shutdown_grace;
    server::run(listener, routes(state), limits, tls, grace, shutdown).await;
}
