//! The HTTP server's own loop: what a client may hold of the daemon.
//!
//! warp's built-in server has no header-read or idle timeout and no connection limit, so any
//! client that reaches the port could hold sockets open until the daemon ran out of file
//! descriptors, and ingest (which opens spool files and the index) failed with them
//! (issue 12). Here, as in hyper- and axum-based servers that face the internet:
//!
//! - a connection must send a complete request head within [`Limits::header_timeout`], on a
//!   new connection and again between requests on a kept-alive one (hyper's
//!   `header_read_timeout`, which starts when the connection waits for a head), so idle and
//!   slow (one byte a second) clients are closed;
//! - at most [`Limits::max_connections`] are served at once, and never more than the
//!   descriptors the process may open minus a reserve ([`Limits::for_process`]): the rest
//!   wait in the kernel's accept queue, holding no descriptor of ours;
//! - a descriptor shortage at `accept` is logged once a second at most, not in a busy loop;
//! - with TLS ([`crate::tls`]), the handshake happens inside the connection's slot and its
//!   header timeout: the first request head must arrive within the timeout of the accept,
//!   handshake included, so a client that never handshakes is closed like an idle one;
//! - a client that goes away mid-request is routine (debug), not an error;
//! - HEAD is answered as GET without the body;
//! - a request-target longer than [`MAX_URI_BYTES`] is a 414, and headers larger than
//!   [`MAX_HEADER_BYTES`] or more than [`MAX_HEADERS`] of them a 431, both in the API's JSON
//!   error shape (a filter in front of every route).
//!
//! hyper answers what it cannot parse itself, before any of our code runs, with an empty body
//! and the connection closed: a 400 for a malformed request line or header, an unknown HTTP
//! version, or a bad or conflicting `Content-Length` or `Transfer-Encoding`; a 431 for a head
//! that does not fit its buffer ([`HYPER_MAX_BUF_BYTES`]; checked between reads, so a head
//! that arrives in one read may be up to one read larger) or has more than
//! [`HYPER_MAX_HEADERS`] headers. Its limits are set a little above ours, so the over-limit requests that
//! parse (the common ones) get our JSON, and only heads too large for its buffer get hyper's
//! bare 431. The buffer's size also bounds the memory a client can make a connection hold
//! while it sends a head.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use warp::Filter;

use crate::error::ApiError;
use crate::tls::Tls;
use warp::http::StatusCode;

/// The peer address of the connection a request came on, put in each request's extensions
/// (warp's own is private to warp's server). The portal's sign-in throttle counts failures
/// per address with it; behind a reverse proxy it is the proxy's address, and
/// [`crate::forwarded`] finds the client's in `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// The longest request-target (path and query) served; longer is a 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The largest header section served (each header counted as `name: value` and its line
/// end); larger is a 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// The most header fields served; more is a 431.
pub const MAX_HEADERS: usize = 100;
/// hyper's read buffer: a request head must fit it, or hyper answers 431 itself. Above
/// [`MAX_URI_BYTES`] and [`MAX_HEADER_BYTES`] together, so that a head over our limits that
/// still fits is answered by us, in JSON.
pub const HYPER_MAX_BUF_BYTES: usize = 64 * 1024;
/// The most headers hyper parses before answering 431 itself; above [`MAX_HEADERS`].
pub const HYPER_MAX_HEADERS: usize = 128;

/// Refuses a request whose head is over our limits: a 414 when its request-target is longer
/// than [`MAX_URI_BYTES`], a 431 when its headers are more than [`MAX_HEADERS`] or larger
/// than [`MAX_HEADER_BYTES`]. In front of every route, so these come back in the API's JSON
/// error shape with the usual headers.
pub(crate) fn head_within_limits()
-> impl Filter<Extract = (), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    warp::path::full()
        .and(
            warp::query::raw()
                .or_else(|_| async { Ok::<(String,), warp::Rejection>((String::new(),)) }),
        )
        .and(warp::header::headers_cloned())
        .and_then(
            |path: warp::path::FullPath, query: String, headers: hyper::HeaderMap| async move {
                let uri = path.as_str().len() + if query.is_empty() { 0 } else { query.len() + 1 };
                check_head(uri, &headers).map_err(crate::error::reject)
            },
        )
        .untuple_one()
}

/// The decision of [`head_within_limits`]: a request-target of `uri` bytes with `headers`.
pub(crate) fn check_head(uri: usize, headers: &hyper::HeaderMap) -> Result<(), ApiError> {
    if uri > MAX_URI_BYTES {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request's URI is {uri} bytes long; at most {MAX_URI_BYTES} are accepted"),
        ));
    }
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request has {} header fields; at most {MAX_HEADERS} are accepted",
                headers.len()
            ),
        ));
    }
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request's headers are {size} bytes; at most {MAX_HEADER_BYTES} are accepted"
            ),
        ));
    }
    Ok(())
}

/// What one client may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a connection may take to send a request head, or stay idle between requests.
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Descriptors kept for everything but API connections (the index, spool and store files,
/// the Event Socket, the feature-code listener, logs): a quarter of the limit, at least 64.
pub fn descriptor_reserve(nofile: u64) -> u64 {
    (nofile / 4).max(64)
}

impl Limits {
    /// These limits, with `max_connections` lowered so that API connections can never take
    /// the descriptors the rest of the daemon needs (`RLIMIT_NOFILE` minus
    /// [`descriptor_reserve`]); at least one connection is always served.
    pub fn for_process(self) -> Limits {
        match open_files_limit() {
            Some(nofile) => self.within(nofile),
            None => self,
        }
    }

    /// These limits under a descriptor limit of `nofile`.
    pub fn within(self, nofile: u64) -> Limits {
        let room = nofile.saturating_sub(descriptor_reserve(nofile)).max(1);
        let max = (self.max_connections as u64).min(room);
        Limits {
            max_connections: usize::try_from(max).unwrap_or(usize::MAX),
            ..self
        }
    }
}

/// The process's soft `RLIMIT_NOFILE`, if it has one.
fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given and nothing else.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
        (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Serves `filter` on `listener` (over TLS when `tls` is given) until `shutdown` completes;
/// then stops accepting and lets the connections in flight finish for up to `grace`.
pub(crate) async fn run<F>(
    listener: tokio::net::TcpListener,
    filter: F,
    limits: Limits,
    tls: Option<Tls>,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let acceptor = tls.as_ref().map(Tls::acceptor);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // EMFILE/ENFILE and the like: the connection stays queued; try again shortly
                // rather than spin, and say so at most once a second.
                if last_accept_error.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %err, "the API cannot accept a connection; retrying");
                    last_accept_error = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // A reply's head and its body go out in separate writes; with Nagle's algorithm the
        // body waits for the client's delayed ACK of the head (40 ms on Linux), which held
        // every small download (and every JSON reply) to about 25 per second per connection
        // (BENCHMARKS.md, Archive).
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY on an API connection");
        }
        // The connection's first request head (after the TLS handshake, if any) must arrive
        // within the header timeout of the accept, so a client that opens a connection and
        // never finishes the handshake is closed like an idle one.
        let first_head_by = tokio::time::Instant::now() + limits.header_timeout;
        // Taken now, before any handshake, so that a shutdown that comes during the handshake
        // still waits for this connection and then closes it gracefully.
        let watcher = graceful.watcher();
        let service = RequestService {
            filter: filter.clone(),
            peer,
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let served = match acceptor {
                None => serve_connection(stream, service, limits, watcher, first_head_by).await,
                Some(acceptor) => match handshake(stream, &acceptor, first_head_by).await {
                    Some(stream) => {
                        serve_connection(stream, service, limits, watcher, first_head_by).await
                    }
                    None => Ok(()),
                },
            };
            if let Err(err) = served {
                // Header timeouts, clients hanging up mid-request or mid-download, bad
                // framing: the client's doing, answered by closing; nothing for an operator.
                tracing::debug!(error = %err, "API connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("API stopped"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "API stopped with requests still in flight after the grace period");
        }
    }
}

/// What every request of one connection goes through before warp: the peer's address is put
/// in its extensions, and HEAD is answered as GET without the body (hyper leaves the body out
/// of the reply to a HEAD request), so a browser or download manager asking a file's size and
/// type gets what GET would say, instead of a 405.
#[derive(Clone)]
struct RequestService<F> {
    filter: F,
    peer: SocketAddr,
}

/// The TLS handshake on a new connection, by `deadline`. `None` when it failed or timed out
/// (logged at debug: it is the client's doing). A client that speaks plain HTTP to the TLS
/// port gets a 400 in the API's JSON error shape saying to use `https://`, not a silent close.
async fn handshake(
    stream: TcpStream,
    acceptor: &tokio_rustls::TlsAcceptor,
    deadline: tokio::time::Instant,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let attempt = async {
        let mut first = [0u8; 1];
        let seen = stream.peek(&mut first).await?;
        // Every TLS connection opens with a handshake record (content type 22); a letter is
        // an HTTP method.
        if seen == 1 && first[0].is_ascii_alphabetic() {
            return Ok(Err(stream));
        }
        acceptor.accept(stream).await.map(Ok)
    };
    match tokio::time::timeout_at(deadline, attempt).await {
        Ok(Ok(Ok(tls))) => Some(tls),
        Ok(Ok(Err(mut plain))) => {
            tracing::debug!("plain HTTP on the API's TLS port; answered 400");
            let _ = tokio::time::timeout_at(deadline, plain_http_refused(&mut plain)).await;
            None
        }
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "API TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("no TLS handshake within the header timeout; connection closed");
            None
        }
    }
}

/// The reply to plain HTTP on the TLS port: the request is not read (it may never end), so
/// the connection closes after it.
async fn plain_http_refused(stream: &mut TcpStream) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    const BODY: &str = "{\"error\":{\"code\":\"https_required\",\"message\":\"this port \
                        speaks HTTPS only: use an https:// URL\"}}";
    let reply = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\ncache-control: no-store\r\n\r\n{BODY}",
        BODY.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

/// Serves one connection's requests with hyper, under the header timeout and graceful
/// shutdown; the first request head must come by `first_head_by`.
async fn serve_connection<I, F>(
    io: I,
    service: RequestService<F>,
    limits: Limits,
    watcher: Watcher,
    first_head_by: tokio::time::Instant,
) -> Result<(), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let first_head = Arc::new(tokio::sync::Notify::new());
    let seen = first_head.clone();
    let RequestService { filter, peer } = service;
    let inner = TowerToHyperService::new(warp::service(filter));
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        seen.notify_one();
        req.extensions_mut().insert(ClientAddr(peer));
        if req.method() == hyper::Method::HEAD {
            *req.method_mut() = hyper::Method::GET;
        }
        hyper::service::Service::call(&inner, req)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(HYPER_MAX_BUF_BYTES)
        .max_headers(HYPER_MAX_HEADERS)
        .serve_connection(TokioIo::new(io), service);
    let connection = watcher.watch(connection);
    let late = async {
        tokio::select! {
            () = first_head.notified() => std::future::pending::<()>().await,
            () = tokio::time::sleep_until(first_head_by) => {},
        }
    };
    tokio::select! {
        served = connection => served,
        () = late => {
            tracing::debug!("no request head within the header timeout; connection closed");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_over_our_limits_are_414_or_431_and_hypers_limits_are_above_ours() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("host", "x".parse().unwrap());
        assert_eq!(check_head(MAX_URI_BYTES, &headers), Ok(()));
        let long = check_head(MAX_URI_BYTES + 1, &headers).unwrap_err();
        assert_eq!((long.status.as_u16(), long.code), (414, "uri_too_long"));

        for i in 0..MAX_HEADERS - 1 {
            headers.insert(
                hyper::header::HeaderName::try_from(format!("x-h{i}")).unwrap(),
                "1".parse().unwrap(),
            );
        }
        assert_eq!(check_head(1, &headers), Ok(()));
        headers.insert("x-one-more", "1".parse().unwrap());
        let many = check_head(1, &headers).unwrap_err();
        assert_eq!(
            (many.status.as_u16(), many.code),
            (431, "headers_too_large")
        );

        let mut big = hyper::HeaderMap::new();
        big.insert("cookie", "a".repeat(MAX_HEADER_BYTES).parse().unwrap());
        let large = check_head(1, &big).unwrap_err();
        assert_eq!(large.status.as_u16(), 431);

        // A head at our limits (request line and headers) still fits hyper's buffer.
        const { assert!(MAX_URI_BYTES + MAX_HEADER_BYTES + 64 < HYPER_MAX_BUF_BYTES) };
        const { assert!(MAX_HEADERS < HYPER_MAX_HEADERS) };
    }

    #[test]
    fn connections_never_take_the_descriptors_the_daemon_keeps() {
        let limits = Limits::default();
        assert_eq!(limits.within(1_048_576).max_connections, 512);
        assert_eq!(limits.within(1024).max_connections, 512);
        assert_eq!(limits.within(512).max_connections, 384);
        assert_eq!(limits.within(128).max_connections, 64);
        assert_eq!(limits.within(64).max_connections, 1);
        assert_eq!(limits.within(0).max_connections, 1);
    }
}
