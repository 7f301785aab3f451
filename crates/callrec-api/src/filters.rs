//! One filter per route: path, method, then the caller, then parameters and body, each
//! parsed into a model before the handler runs.
//!
//! The order matters. The whole path is matched first, then the method, so a request that
//! does not belong to a route is turned away by it without a store query, and a known path
//! asked with the wrong method is a 405 while an unknown one is a 404; the token is
//! checked next, so nothing about parameters or bodies is said to a stranger, and no body
//! is read for one.

use std::convert::Infallible;

use bytes::Buf;
use callrec_model::RecordingId;
use callrec_store::{Caller, validate_extension};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reject::Rejection;
use warp::reply::Response;
use warp::{Filter, Reply as _};

use crate::audio::AudioHeaders;
use crate::error::{ApiError, reject};
use crate::handlers;
use crate::models::{
    ArchiveRunBody, AudioParams, AuditParams, ChangesParams, DeleteParams, ErasureBody, ExportBody,
    HoldBody, NoteBody, QueryParams, SearchParams, SiteUpdate, UserUpdate, WebhookBody, no_params,
};
use crate::openapi;
use crate::state::ApiState;
use callrec_model::RecordingAction;

/// The longest bearer token accepted (the store's are 72 characters).
const MAX_TOKEN_CHARS: usize = 256;
/// The longest call uuid accepted.
const MAX_CALL_UUID_CHARS: usize = 128;

/// A route: a filter that answers with a reply or rejects.
pub type Route = BoxedFilter<(Response,)>;

/// The shared state.
pub fn with_state(
    state: ApiState,
) -> impl Filter<Extract = (ApiState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The caller named by `Authorization: Bearer <token>`; 401 without a valid one.
pub fn authenticated(
    state: ApiState,
) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .or_else(|_| async {
            Err::<(Option<String>,), _>(reject(ApiError::unauthorized(
                "the Authorization header is not readable",
            )))
        })
        .and(with_state(state))
        .and_then(|header: Option<String>, state: ApiState| async move {
            let secret = bearer_secret(header.as_deref()).map_err(reject)?;
            let caller = state
                .store()
                .read(move |v| v.authenticate(&secret))
                .await
                .map_err(reject)?;
            let caller =
                caller.ok_or_else(|| reject(ApiError::unauthorized("unknown or revoked token")))?;
            state.token_used(caller.token_id);
            Ok::<_, Rejection>(caller)
        })
}

/// The secret of an `Authorization: Bearer <secret>` header.
pub fn bearer_secret(header: Option<&str>) -> Result<String, ApiError> {
    let header = header
        .ok_or_else(|| {
            ApiError::unauthorized("an `Authorization: Bearer <token>` header is required")
        })?
        .trim();
    let (scheme, secret) = header
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
    let secret = secret.trim();
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized("only the Bearer scheme is accepted"));
    }
    if secret.is_empty()
        || secret.len() > MAX_TOKEN_CHARS
        || !secret.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::unauthorized("unknown or revoked token"));
    }
    Ok(secret.to_owned())
}

/// The query string, one value per name.
fn query_params() -> impl Filter<Extract = (QueryParams,), Error = Rejection> + Clone {
    warp::query::<Vec<(String, String)>>()
        .and_then(|pairs| async move { QueryParams::new(pairs).map_err(reject) })
}

/// No query parameters.
fn no_query() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    query_params()
        .and_then(|p| async move { no_params(p).map_err(reject) })
        .untuple_one()
}

/// A JSON body of at most `limit` bytes: 413 beyond it (whatever `Content-Length` says, and
/// without one), 400 for broken JSON, 422 for JSON of the wrong shape.
fn json_body<T: DeserializeOwned + Send + 'static>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .or_else(|_| async {
            Err::<(Option<u64>,), _>(reject(ApiError::bad_request(
                "Content-Length is not a number",
            )))
        })
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, body| read_json(declared, body, limit))
}

async fn read_json<T, S, B>(declared: Option<u64>, body: S, limit: u64) -> Result<T, Rejection>
where
    T: DeserializeOwned,
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if declared.is_some_and(|n| n > limit) {
        return Err(reject(ApiError::too_large(limit)));
    }
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            reject(ApiError::bad_request(format!(
                "the body cannot be read: {e}"
            )))
        })?;
        if bytes.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(reject(ApiError::too_large(limit)));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            bytes.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    parse_json(&bytes).map_err(reject)
}

/// Decode a JSON body: syntax errors are 400, wrong shapes and values 422.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("a JSON body is required"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::unprocessable(format!("the body does not fit: {e}")),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request(format!("the body is not valid JSON: {e}"))
            }
        }
    })
}

pub(crate) fn recording_id(raw: &str) -> Result<RecordingId, Rejection> {
    if raw == "export.zip" {
        // `/recordings/export.zip` is a route of its own: another method there is its 405,
        // not a bad id.
        return Err(warp::reject::not_found());
    }
    raw.parse::<RecordingId>()
        .map_err(|e| reject(ApiError::bad_request(e.to_string())))
}

fn extension(raw: &str) -> Result<String, Rejection> {
    validate_extension(raw)
        .map(|()| raw.to_owned())
        .map_err(|e| reject(ApiError::bad_request(e.to_string())))
}

fn call_uuid(raw: &str) -> Result<String, Rejection> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_CALL_UUID_CHARS
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !raw.starts_with('.');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(reject(ApiError::bad_request(format!(
            "`{}` is not a call uuid",
            raw.chars().take(64).collect::<String>()
        ))))
    }
}

fn action(raw: &str) -> Result<RecordingAction, Rejection> {
    raw.parse::<RecordingAction>()
        .map_err(|e| reject(ApiError::bad_request(e.to_string())))
}

/// The headers of an audio request.
pub(crate) fn audio_headers() -> impl Filter<Extract = (AudioHeaders,), Error = Rejection> + Clone {
    let header = |name: &'static str| {
        warp::header::optional::<String>(name).or_else(move |_| async move {
            Err::<(Option<String>,), _>(reject(ApiError::bad_request(format!(
                "header {name} is not readable text"
            ))))
        })
    };
    header("range")
        .and(header("if-range"))
        .and(header("if-none-match"))
        .map(|range, if_range, if_none_match| AudioHeaders {
            range,
            if_range,
            if_none_match,
        })
}

// ---- routes --------------------------------------------------------------------------

/// `GET /api/v1/recordings`: search.
pub fn search(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "recordings")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(query_params().and_then(|p| async move { SearchParams::parse(p).map_err(reject) }))
        .and_then(handlers::search)
        .boxed()
}

/// `GET /api/v1/recordings/{id}`: metadata with segments and notes.
pub fn get_recording(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "recordings" / String)
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and_then(|raw: String, state: ApiState, caller: Caller| async move {
            let id = recording_id(&raw)?;
            Ok::<_, Rejection>((state, caller, id))
        })
        .untuple_one()
        .and(no_query())
        .and_then(handlers::get_recording)
        .boxed()
}

/// `GET /api/v1/recordings/{id}/audio`: the audio, with Range and `?download=1`.
pub fn audio(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "recordings" / String / "audio")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and_then(|raw: String, state: ApiState, caller: Caller| async move {
            let id = recording_id(&raw)?;
            Ok::<_, Rejection>((state, caller, id))
        })
        .untuple_one()
        .and(query_params().and_then(|p| async move { AudioParams::parse(p).map_err(reject) }))
        .and(audio_headers())
        .and_then(handlers::audio)
        .boxed()
}

/// `POST /api/v1/recordings/{id}/notes`: add a note.
pub fn add_note(state: ApiState) -> Route {
    let limit = state.config().max_body_bytes;
    warp::path!("api" / "v1" / "recordings" / String / "notes")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and_then(|raw: String, state: ApiState, caller: Caller| async move {
            let id = recording_id(&raw)?;
            Ok::<_, Rejection>((state, caller, id))
        })
        .untuple_one()
        .and(no_query())
        .and(json_body::<NoteBody>(limit))
        .and_then(handlers::add_note)
        .boxed()
}

/// `PUT /api/v1/recordings/{id}/hold`: admin, set or release a hold.
pub fn set_hold(state: ApiState) -> Route {
    let limit = state.config().max_body_bytes;
    warp::path!("api" / "v1" / "recordings" / String / "hold")
        .and(warp::put())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and_then(|raw: String, state: ApiState, caller: Caller| async move {
            let id = recording_id(&raw)?;
            Ok::<_, Rejection>((state, caller, id))
        })
        .untuple_one()
        .and(no_query())
        .and(json_body::<HoldBody>(limit))
        .and_then(handlers::set_hold)
        .boxed()
}

/// `DELETE /api/v1/recordings/{id}`: admin, delete now (409 while on hold).
pub fn delete_recording(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "recordings" / String)
        .and(warp::delete())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and_then(|raw: String, state: ApiState, caller: Caller| async move {
            let id = recording_id(&raw)?;
            Ok::<_, Rejection>((state, caller, id))
        })
        .untuple_one()
        .and(query_params().and_then(|p| async move { DeleteParams::parse(p).map_err(reject) }))
        .and_then(handlers::delete_recording)
        .boxed()
}

/// `GET /api/v1/calls`: calls in progress.
pub fn list_calls(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "calls")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(no_query())
        .and_then(handlers::list_calls)
        .boxed()
}

/// `POST /api/v1/calls/{uuid}/recording/{action}`: start, stop, pause or resume.
pub fn call_action(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "calls" / String / "recording" / String)
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and_then(
            |raw_uuid: String, raw_action: String, state: ApiState, caller: Caller| async move {
                let uuid = call_uuid(&raw_uuid)?;
                let action = action(&raw_action)?;
                Ok::<_, Rejection>((state, caller, uuid, action))
            },
        )
        .untuple_one()
        .and(no_query())
        .and_then(handlers::call_action)
        .boxed()
}

/// `GET /api/v1/me`: the caller.
pub fn me(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "me")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(no_query())
        .and_then(handlers::me)
        .boxed()
}

/// `GET /api/v1/users`: admin, the site's users and their modes.
pub fn list_users(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "users")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(no_query())
        .and_then(handlers::list_users)
        .boxed()
}

/// `GET /api/v1/users/{extension}`: admin, one user.
pub fn get_user(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "users" / String)
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and_then(|raw: String, state: ApiState, caller: Caller| async move {
            let ext = extension(&raw)?;
            Ok::<_, Rejection>((state, caller, ext))
        })
        .untuple_one()
        .and(no_query())
        .and_then(handlers::get_user)
        .boxed()
}

/// `PUT /api/v1/users/{extension}`: admin, change a user's mode, role, name or numbers.
pub fn put_user(state: ApiState) -> Route {
    let limit = state.config().max_body_bytes;
    warp::path!("api" / "v1" / "users" / String)
        .and(warp::put())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and_then(|raw: String, state: ApiState, caller: Caller| async move {
            let ext = extension(&raw)?;
            Ok::<_, Rejection>((state, caller, ext))
        })
        .untuple_one()
        .and(no_query())
        .and(json_body::<UserUpdate>(limit))
        .and_then(handlers::put_user)
        .boxed()
}

/// `GET /api/v1/site`: admin, the site's settings.
pub fn get_site(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "site")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(no_query())
        .and_then(handlers::get_site)
        .boxed()
}

/// `PUT /api/v1/site`: admin, change the site's settings.
pub fn put_site(state: ApiState) -> Route {
    let limit = state.config().max_body_bytes;
    warp::path!("api" / "v1" / "site")
        .and(warp::put())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(no_query())
        .and(json_body::<SiteUpdate>(limit))
        .and_then(handlers::put_site)
        .boxed()
}

/// `GET /api/v1/usage`: storage used against the quota.
pub fn usage(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "usage")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(no_query())
        .and_then(handlers::usage)
        .boxed()
}

/// `GET /api/v1/audit`: admin, the audit log, newest first.
pub fn audit_log(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "audit")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(query_params().and_then(|p| async move { AuditParams::parse(p).map_err(reject) }))
        .and_then(handlers::audit_log)
        .boxed()
}

/// `GET /api/v1/changes`: the change feed, scoped to the caller.
pub fn changes(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "changes")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(query_params().and_then(|p| async move { ChangesParams::parse(p).map_err(reject) }))
        .and_then(handlers::changes)
        .boxed()
}

/// `GET /api/v1/recordings/export.zip`: every recording a search matches, as one streamed
/// ZIP with a manifest.
pub fn export_zip(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "recordings" / "export.zip")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(query_params().and_then(|p| async move { SearchParams::parse(p).map_err(reject) }))
        .and_then(crate::archive::export_zip)
        .boxed()
}

/// `POST /api/v1/archive/runs`: an archive client reports a run.
pub fn report_archive_run(state: ApiState) -> Route {
    let limit = state.config().max_body_bytes;
    warp::path!("api" / "v1" / "archive" / "runs")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(no_query())
        .and(json_body::<ArchiveRunBody>(limit))
        .and_then(crate::archive::report_run)
        .boxed()
}

/// `GET /api/v1/archive/runs`: admin, the site's archive clients and their last runs.
pub fn list_archive_runs(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "archive" / "runs")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(no_query())
        .and_then(crate::archive::list_runs)
        .boxed()
}

/// `GET /healthz`: liveness, no auth.
pub fn healthz() -> Route {
    warp::path!("healthz")
        .and(warp::get())
        .and_then(handlers::healthz)
        .boxed()
}

/// `GET /readyz`: readiness (index open, ESL connected), no auth.
pub fn readyz(state: ApiState) -> Route {
    warp::path!("readyz")
        .and(warp::get())
        .and(with_state(state))
        .and_then(handlers::readyz)
        .boxed()
}

/// `GET /metrics`: Prometheus (OpenMetrics) text, no auth; only to `[api] metrics_allow`
/// when that is set.
pub fn metrics(state: ApiState) -> Route {
    let trusted = state.config().trusted_proxies.clone();
    warp::path!("metrics")
        .and(warp::get())
        .and(crate::forwarded::client_ip(trusted))
        .and(with_state(state))
        .and_then(handlers::metrics)
        .boxed()
}

/// `POST /api/v1/erasures`: erase recordings by number (admin).
pub fn erase(state: ApiState) -> Route {
    let limit = state.config().max_body_bytes;
    warp::path!("api" / "v1" / "erasures")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(no_query())
        .and(json_body::<ErasureBody>(limit))
        .and_then(handlers::erase)
        .boxed()
}

/// `POST /api/v1/exports`: a subject access export of a number, as a streamed ZIP (admin).
pub fn export_number(state: ApiState) -> Route {
    let limit = state.config().max_body_bytes;
    warp::path!("api" / "v1" / "exports")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(no_query())
        .and(json_body::<ExportBody>(limit))
        .and_then(crate::archive::export_number)
        .boxed()
}

/// `GET /api/v1/webhooks`: the webhook endpoints and their delivery state (admin).
pub fn list_webhooks(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "webhooks")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(no_query())
        .and_then(handlers::list_webhooks)
        .boxed()
}

/// `POST /api/v1/webhooks`: add an endpoint for the site's events (admin).
pub fn add_webhook(state: ApiState) -> Route {
    let limit = state.config().max_body_bytes;
    warp::path!("api" / "v1" / "webhooks")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and(no_query())
        .and(json_body::<WebhookBody>(limit))
        .and_then(handlers::add_webhook)
        .boxed()
}

/// `DELETE /api/v1/webhooks/{id}`: remove an endpoint added through the API (admin).
pub fn remove_webhook(state: ApiState) -> Route {
    warp::path!("api" / "v1" / "webhooks" / String)
        .and(warp::delete())
        .and(with_state(state.clone()))
        .and(authenticated(state))
        .and_then(|raw: String, state: ApiState, caller: Caller| async move {
            let id = raw
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| {
                    reject(ApiError::bad_request(format!(
                        "`{}` is not a webhook id (a positive integer)",
                        callrec_model::names::excerpt(&raw)
                    )))
                })?;
            Ok::<_, Rejection>((state, caller, id))
        })
        .untuple_one()
        .and(no_query())
        .and_then(handlers::remove_webhook)
        .boxed()
}

/// `OPTIONS` on any documented path, no auth: 204 with the `Allow` header (no CORS: the
/// portal is served from the same origin).
pub fn options() -> Route {
    // The method is looked at inside: `warp::options()` would reject every other request
    // as "method not allowed", which warp ranks above "not found" for unknown paths.
    warp::method()
        .and(warp::path::full())
        .and_then(
            |method: warp::http::Method, path: warp::path::FullPath| async move {
                match openapi::allowed_methods(path.as_str()) {
                    Some(allow) if method == warp::http::Method::OPTIONS => {
                        let mut reply =
                            warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT)
                                .into_response();
                        if let Ok(value) = HeaderValue::from_str(&allow) {
                            reply.headers_mut().insert(header::ALLOW, value);
                        }
                        Ok(reply)
                    }
                    _ => Err(warp::reject::not_found()),
                }
            },
        )
        .boxed()
}

/// `GET /openapi.json`: the OpenAPI 3 document, no auth.
pub fn openapi() -> Route {
    warp::path!("openapi.json")
        .and(warp::get())
        .and_then(handlers::openapi)
        .boxed()
}

/// Every route, without error recovery.
pub fn all(state: &ApiState) -> Route {
    let routes = [
        options(),
        search(state.clone()),
        // Before `get_recording`, whose `{id}` would refuse `export.zip` as a bad id.
        export_zip(state.clone()),
        get_recording(state.clone()),
        audio(state.clone()),
        add_note(state.clone()),
        set_hold(state.clone()),
        delete_recording(state.clone()),
        erase(state.clone()),
        export_number(state.clone()),
        list_webhooks(state.clone()),
        add_webhook(state.clone()),
        remove_webhook(state.clone()),
        list_calls(state.clone()),
        call_action(state.clone()),
        me(state.clone()),
        list_users(state.clone()),
        get_user(state.clone()),
        put_user(state.clone()),
        get_site(state.clone()),
        put_site(state.clone()),
        usage(state.clone()),
        audit_log(state.clone()),
        changes(state.clone()),
        report_archive_run(state.clone()),
        list_archive_runs(state.clone()),
        healthz(),
        readyz(state.clone()),
        metrics(state.clone()),
        openapi(),
    ];
    routes
        .into_iter()
        .reduce(|acc, route| acc.or(route).unify().boxed())
        .unwrap_or_else(healthz)
}
