//! One async function per route. Handlers receive requests already parsed by the filters
//! (caller, ids, parameters, bodies), ask the store or the daemon, and build replies; they
//! never parse a request and never write SQL.
//!
//! Auditing: the store audits what it serves or changes on a person's behalf
//! (`read_recording`, `open_file`, notes, holds, deletions, users, the site). Every other
//! read is audited here through [`ApiState::audit`], after the read and before the reply, so
//! nothing is handed out that the log does not show. A request that changes nothing (a hold
//! already set) still leaves its one entry, saying so.

use std::fs::File;
use std::path::Path;

use callrec_model::{RecordingId, Role};
use callrec_store::{Caller, FilePurpose};
use serde::Serialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reject::Rejection;
use warp::reply::{Reply, Response};

use crate::acts::{self, Who};
use crate::audio::{self, AudioHeaders};
use crate::error::{ApiError, reject};
use callrec_model::RecordingAction;

use crate::metrics::{self, StoreFigures};
use crate::models::{
    AudioParams, AuditParams, ChangesParams, DeleteParams, ErasureBody, HoldBody, NoteBody,
    SearchParams, SiteUpdate, UserUpdate, WebhookBody,
};
use crate::openapi;
use crate::replies::{
    Alive, AudioFile, AuditPage, Calls, ChangesPage, ErasureReply, ErrorReply, LiveCall, Liveness,
    Me, Note, Readiness, Ready, Recording, RecordingDetail, SearchPage, Site, Usage, User, Users,
    Webhook, Webhooks,
};
use crate::state::ApiState;

/// Why an admin-only route refuses a user token.
const ADMIN_ONLY: &str = "admin only: a user token gets 403";
/// A recording that does not exist and one the caller may not see look the same.
const NOT_VISIBLE: &str = "no such recording that the caller may see";

/// What a handler returns.
pub type Handled = Result<Response, Rejection>;

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

fn ok<T: Serialize>(value: &T) -> Handled {
    Ok(json(StatusCode::OK, value))
}

pub(crate) fn require_admin(caller: &Caller, what: &str) -> Result<(), Rejection> {
    match caller.role {
        Role::Admin => Ok(()),
        Role::User => Err(reject(ApiError::forbidden(format!(
            "{} may not {what}: admin only",
            caller.actor()
        )))),
    }
}

// ---- recordings ----------------------------------------------------------------------

/// Search recordings, newest first, with keyset pagination
///
/// A user sees their own recordings, an admin their whole site. Filters combine with AND.
#[utoipa::path(
    get,
    path = "/api/v1/recordings",
    operation_id = "searchRecordings",
    tag = "recordings",
    params(SearchParams),
    responses((status = 200, description = "a page", body = SearchPage)),
)]
pub async fn search(state: ApiState, caller: Caller, params: SearchParams) -> Handled {
    let access = caller.access();
    let site = caller.site_id;
    let p = params.clone();
    let page = state
        .store()
        .read(move |v| {
            let tz = v.site_by_id(site)?.settings.timezone;
            v.search(&access, &p.to_query(tz))
        })
        .await
        .map_err(reject)?;
    // A listing hands out each recording's metadata (parties, times, notes count), so the
    // entry names them (SPEC §4.5: every read of a recording's metadata is logged).
    let ids: Vec<&str> = page.items.iter().map(|r| r.id.as_str()).collect();
    state
        .audit(
            &caller,
            "recording.search",
            format!("site:{}", caller.site),
            json!({
                "filters": params.audit_detail(),
                "results": page.items.len(),
                "ids": ids,
            }),
        )
        .await
        .map_err(reject)?;
    ok(&SearchPage::from(page))
}

/// A recording's metadata with its segments and notes
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{id}",
    operation_id = "getRecording",
    tag = "recordings",
    params(("id" = String, Path, format = Uuid, description = "the recording's id")),
    responses(
        (status = 200, description = "the recording", body = RecordingDetail),
        (status = 404, description = NOT_VISIBLE, body = ErrorReply),
    ),
)]
pub async fn get_recording(state: ApiState, caller: Caller, id: RecordingId) -> Handled {
    let access = caller.access();
    let detail = state
        .store()
        .write(move |s| s.read_recording(&id, &access))
        .await
        .map_err(reject)?;
    ok(&RecordingDetail::from(detail))
}

/// The audio file, streamed, with HTTP Range and ETag
///
/// `Content-Type` follows the recording's format (`audio/wav` for wav). The `ETag` is the
/// file's SHA-256.
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{id}/audio",
    operation_id = "getRecordingAudio",
    tag = "recordings",
    params(
        ("id" = String, Path, format = Uuid, description = "the recording's id"),
        AudioParams,
        AudioHeaders,
    ),
    responses(
        (status = 200, description = "the whole file", content_type = "audio/*", body = AudioFile,
            headers(
                ("ETag" = String, description = "the file's SHA-256, quoted"),
                ("Accept-Ranges" = String, description = "bytes"),
                ("Content-Disposition" = String,
                    description = "with `download`: attachment, with the file name"),
            )),
        (status = 206, description = "one range, or several as multipart/byteranges", content(
            (AudioFile = "audio/*"),
            (AudioFile = "multipart/byteranges"),
        ), headers(
            ("ETag" = String, description = "the file's SHA-256, quoted"),
            ("Content-Range" = String, description = "one range: bytes first-last/length"),
        )),
        (status = 304, description = "the client's copy is current"),
        (status = 404, description = NOT_VISIBLE, body = ErrorReply),
        (status = 409, body = ErrorReply,
            description = "the recording has no file (still recording, discarded, deleted)"),
        (status = 416, body = ErrorReply,
            description = "no requested range lies within the file, or the Range header is \
                           malformed; Content-Range: bytes */length"),
    ),
)]
pub async fn audio(
    state: ApiState,
    caller: Caller,
    id: RecordingId,
    params: AudioParams,
    headers: AudioHeaders,
) -> Handled {
    stream_recording(state, caller.access(), id, params.download, headers).await
}

/// Stream a recording's file to anyone `access` lets see it (a token's caller, or a portal
/// session), audited as a play or a download.
pub(crate) async fn stream_recording(
    state: ApiState,
    access: callrec_store::Access,
    id: RecordingId,
    download: bool,
    headers: AudioHeaders,
) -> Handled {
    let purpose = if download {
        FilePurpose::Download
    } else {
        FilePurpose::Play
    };
    let store_root = state.store().paths().store.clone();
    // The file is opened while the store's writer is still held. A deletion (by an admin,
    // the sweeper or a quota) commits its tombstone under that lock before it removes the
    // file, so here the file is either still there (and the open handle keeps it readable)
    // or the recording already reads as deleted. Opened after the lock, a deletion in
    // between made a 500 that blamed the store.
    // The reply is decided before the audit entry is written, so the entry says what was
    // served: the range asked for and the status (a seek, a 304, a refused range).
    let (stored, (plan, file)) = state
        .store()
        .write(move |s| {
            s.open_file_judged(&id, &access, purpose, |stored| {
                let plan = audio::plan(&headers, stored.size_bytes, &stored.sha256);
                let detail = audio::audit_detail(&headers, stored.size_bytes, &plan);
                let file = open_stored(&store_root, &stored.path, stored.size_bytes);
                ((plan, file), detail)
            })
        })
        .await
        .map_err(reject)?;
    let plan = plan.map_err(reject)?;
    let file = file.map_err(reject)?;
    Ok(audio::respond(&stored, file, download, plan))
}

/// Open a stored file, refusing one outside the store or whose length is not the index's.
fn open_stored(store_root: &Path, path: &Path, expected: u64) -> Result<File, ApiError> {
    let inside = path.starts_with(store_root)
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if !inside {
        tracing::error!(path = %path.display(), "index points outside the store");
        return Err(ApiError::internal("the index points outside the store"));
    }
    let file = File::open(path).map_err(|e| {
        tracing::error!(path = %path.display(), error = %e, "stored file cannot be opened");
        ApiError::internal("the stored file cannot be opened; `callrec verify` will say more")
    })?;
    let len = file
        .metadata()
        .map_err(|e| ApiError::internal(format!("cannot stat the stored file: {e}")))?
        .len();
    if len != expected {
        tracing::error!(path = %path.display(), len, expected, "stored file length differs from the index");
        return Err(ApiError::internal(
            "the stored file does not match the index; `callrec verify` will say more",
        ));
    }
    Ok(file)
}

/// Add a note (author and time are recorded)
#[utoipa::path(
    post,
    path = "/api/v1/recordings/{id}/notes",
    operation_id = "addNote",
    tag = "recordings",
    params(("id" = String, Path, format = Uuid, description = "the recording's id")),
    request_body = NoteBody,
    responses(
        (status = 201, description = "the note", body = Note),
        (status = 404, description = NOT_VISIBLE, body = ErrorReply),
        (status = 413, description = "body too large", body = ErrorReply),
        (status = 422, description = "empty or too long", body = ErrorReply),
    ),
)]
pub async fn add_note(state: ApiState, caller: Caller, id: RecordingId, body: NoteBody) -> Handled {
    let access = caller.access();
    let note = state
        .store()
        .write(move |s| s.add_note(&id, &access, &body.text))
        .await
        .map_err(reject)?;
    Ok(json(StatusCode::CREATED, &Note::from(note)))
}

/// Set or release a litigation hold (admin)
///
/// A held recording is kept past its retention and cannot be deleted.
#[utoipa::path(
    put,
    path = "/api/v1/recordings/{id}/hold",
    operation_id = "setHold",
    tag = "recordings",
    params(("id" = String, Path, format = Uuid, description = "the recording's id")),
    request_body = HoldBody,
    responses(
        (status = 200, description = "the recording", body = Recording),
        (status = 403, description = ADMIN_ONLY, body = ErrorReply),
        (status = 404, description = "no such recording", body = ErrorReply),
        (status = 409, description = "the recording is deleted", body = ErrorReply),
        (status = 413, description = "body too large", body = ErrorReply),
        (status = 422, description = "wrong shape", body = ErrorReply),
    ),
)]
pub async fn set_hold(state: ApiState, caller: Caller, id: RecordingId, body: HoldBody) -> Handled {
    let rec = acts::set_hold(&state, &Who::from(&caller), id, body.hold)
        .await
        .map_err(reject)?;
    ok(&Recording::from(rec))
}

/// Erase every recording of the site with a number as either party, in any form (admin; a
/// data subject's erasure request). Recordings on hold or under the legal hold are kept and
/// listed with the reason; audited with who, why and what
#[utoipa::path(
    post,
    path = "/api/v1/erasures",
    operation_id = "eraseNumber",
    tag = "recordings",
    request_body = ErasureBody,
    responses(
        (status = 200, description = "what was erased and what was kept", body = ErasureReply),
        (status = 403, description = ADMIN_ONLY, body = ErrorReply),
        (status = 413, description = "body too large", body = ErrorReply),
        (status = 422, description = "wrong shape, no reason given, or not a number", body = ErrorReply),
    ),
)]
pub async fn erase(state: ApiState, caller: Caller, body: ErasureBody) -> Handled {
    require_admin(&caller, "erase recordings by number")?;
    let access = caller.access();
    let site = caller.site.clone();
    let report = state
        .store()
        .write(move |s| s.erase_number(&site, &body.number, &body.reason, &access, body.dry_run))
        .await
        .map_err(reject)?;
    ok(&ErasureReply::from(report))
}

/// The webhook endpoints and their delivery state (admin)
///
/// The site's own endpoints and the config file's (which receive every site's events), with
/// what waits for each, what it acknowledged, and why its last attempt failed.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    operation_id = "listWebhooks",
    tag = "people and settings",
    responses(
        (status = 200, description = "the endpoints", body = Webhooks),
        (status = 403, description = ADMIN_ONLY, body = ErrorReply),
    ),
)]
pub async fn list_webhooks(state: ApiState, caller: Caller) -> Handled {
    require_admin(&caller, "list webhooks")?;
    let access = caller.access();
    let items = state
        .store()
        .read(move |v| v.webhook_endpoints(&access))
        .await
        .map_err(reject)?;
    ok(&Webhooks {
        items: items.into_iter().map(Webhook::from).collect(),
    })
}

/// Add a webhook endpoint for the site's events (admin)
///
/// Every recording of the site stored, failed, discarded or deleted from now on, and every
/// call that should have been recorded and was not, is POSTed to it, signed with the secret
/// (`X-Callrec-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`). Audited.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    operation_id = "addWebhook",
    tag = "people and settings",
    request_body = WebhookBody,
    responses(
        (status = 201, description = "the endpoint", body = Webhook),
        (status = 403, description = ADMIN_ONLY, body = ErrorReply),
        (status = 409, description = "an endpoint with this URL exists already", body = ErrorReply),
        (status = 413, description = "body too large", body = ErrorReply),
        (status = 422, description = "wrong shape, not an http(s) URL, or a short secret", body = ErrorReply),
    ),
)]
pub async fn add_webhook(state: ApiState, caller: Caller, body: WebhookBody) -> Handled {
    require_admin(&caller, "add a webhook")?;
    let access = caller.access();
    let endpoint = state
        .store()
        .write(move |s| s.add_webhook(&body.url, &body.secret, &access))
        .await
        .map_err(reject)?;
    Ok(json(StatusCode::CREATED, &Webhook::from(endpoint)))
}

/// Remove a webhook endpoint added through the API (admin)
///
/// Nothing more is queued for it and what waits is cancelled; its history stays. An endpoint
/// of the config file is removed there.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    operation_id = "removeWebhook",
    tag = "people and settings",
    params(("id" = i64, Path, description = "the endpoint's id")),
    responses(
        (status = 204, description = "removed"),
        (status = 403, description = ADMIN_ONLY, body = ErrorReply),
        (status = 404, description = "no such endpoint on the caller's site", body = ErrorReply),
        (status = 409, description = "the endpoint is the config file's", body = ErrorReply),
    ),
)]
pub async fn remove_webhook(state: ApiState, caller: Caller, id: i64) -> Handled {
    require_admin(&caller, "remove a webhook")?;
    let access = caller.access();
    state
        .store()
        .write(move |s| s.remove_webhook(id, &access))
        .await
        .map_err(reject)?;
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

/// Delete a recording now, leaving a tombstone (admin)
#[utoipa::path(
    delete,
    path = "/api/v1/recordings/{id}",
    operation_id = "deleteRecording",
    tag = "recordings",
    params(
        ("id" = String, Path, format = Uuid, description = "the recording's id"),
        DeleteParams,
    ),
    responses(
        (status = 200, description = "the tombstone", body = Recording),
        (status = 403, description = ADMIN_ONLY, body = ErrorReply),
        (status = 404, description = "no such recording", body = ErrorReply),
        (status = 409, body = ErrorReply,
            description = "on hold, its site under legal hold (kept seven years), or in a \
                           state without a file"),
    ),
)]
pub async fn delete_recording(
    state: ApiState,
    caller: Caller,
    id: RecordingId,
    params: DeleteParams,
) -> Handled {
    let reason = params
        .reason
        .unwrap_or_else(|| "deleted through the API".to_owned());
    let rec = acts::delete_recording(&state, &Who::from(&caller), id, reason)
        .await
        .map_err(reject)?;
    ok(&Recording::from(rec))
}

// ---- calls ---------------------------------------------------------------------------

/// Calls in progress with their recording state
///
/// A user sees their own calls, an admin every call of their site; newest first.
#[utoipa::path(
    get,
    path = "/api/v1/calls",
    operation_id = "listCalls",
    tag = "calls",
    responses((status = 200, description = "the calls the caller may see", body = Calls)),
)]
pub async fn list_calls(state: ApiState, caller: Caller) -> Handled {
    let items = acts::calls_of(&state, &Who::from(&caller));
    state
        .audit(
            &caller,
            "call.list",
            format!("site:{}", caller.site),
            json!({"calls": items.len()}),
        )
        .await
        .map_err(reject)?;
    ok(&Calls {
        items: items.into_iter().map(LiveCall::from).collect(),
    })
}

/// Start, stop, pause or resume a call's recording, with the mode rules of the feature codes
#[utoipa::path(
    post,
    path = "/api/v1/calls/{uuid}/recording/{action}",
    operation_id = "recordingAction",
    tag = "calls",
    params(
        ("uuid" = String, Path, description = "the call (the owner's leg)"),
        ("action" = inline(openapi::names::RecordingAction), Path, description = "what to do"),
    ),
    responses(
        (status = 200, description = "the call after the action", body = LiveCall),
        (status = 404, description = "no such call that the caller may see", body = ErrorReply),
        (status = 409, body = ErrorReply,
            description = "the mode forbids it, or the recording is not in a state it applies to"),
        (status = 502, description = "the switch refused", body = ErrorReply),
        (status = 503, description = "the switch is not connected", body = ErrorReply),
    ),
)]
pub async fn call_action(
    state: ApiState,
    caller: Caller,
    call_uuid: String,
    action: RecordingAction,
) -> Handled {
    // The audit entry of the action is the daemon's (see [`acts::call_action`]), with
    // source `api`; the API adds none of its own.
    let call = acts::call_action(&state, &Who::from(&caller), call_uuid, action)
        .await
        .map_err(reject)?;
    ok(&LiveCall::from(call))
}

// ---- people and settings -------------------------------------------------------------

/// The caller: user, role, token and storage used
#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "getMe",
    tag = "people and settings",
    responses((status = 200, description = "the caller", body = Me)),
)]
pub async fn me(state: ApiState, caller: Caller) -> Handled {
    let (user_id, site_id) = (caller.user_id, caller.site_id);
    let (user, usage, tz) = state
        .store()
        .read(move |v| {
            let tz = v.site_by_id(site_id)?.settings.timezone;
            Ok((v.user_by_id(user_id)?, v.user_usage(user_id)?, tz))
        })
        .await
        .map_err(reject)?;
    state
        .audit(
            &caller,
            "user.read",
            format!("user:{}/{}", caller.site, caller.extension),
            json!({"self": true}),
        )
        .await
        .map_err(reject)?;
    ok(&Me::new(&caller, user, usage, tz))
}

/// The site's users and their modes (admin)
#[utoipa::path(
    get,
    path = "/api/v1/users",
    operation_id = "listUsers",
    tag = "people and settings",
    responses(
        (status = 200, description = "the users", body = Users),
        (status = 403, description = ADMIN_ONLY, body = ErrorReply),
    ),
)]
pub async fn list_users(state: ApiState, caller: Caller) -> Handled {
    require_admin(&caller, "list users")?;
    let site = caller.site.clone();
    let items = state
        .store()
        .read(move |v| v.users(Some(&site)))
        .await
        .map_err(reject)?;
    state
        .audit(
            &caller,
            "user.list",
            format!("site:{}", caller.site),
            json!({"users": items.len()}),
        )
        .await
        .map_err(reject)?;
    ok(&Users {
        items: items.into_iter().map(User::from).collect(),
    })
}

/// One user (admin)
#[utoipa::path(
    get,
    path = "/api/v1/users/{extension}",
    operation_id = "getUser",
    tag = "people and settings",
    params(("extension" = String, Path, description = "the user's extension")),
    responses(
        (status = 200, description = "the user", body = User),
        (status = 403, description = ADMIN_ONLY, body = ErrorReply),
        (status = 404, description = "no such user in the site", body = ErrorReply),
    ),
)]
pub async fn get_user(state: ApiState, caller: Caller, extension: String) -> Handled {
    require_admin(&caller, "read users")?;
    let (site, ext) = (caller.site.clone(), extension.clone());
    let user = state
        .store()
        .read(move |v| v.user(&site, &ext))
        .await
        .map_err(reject)?;
    state
        .audit(
            &caller,
            "user.read",
            format!("user:{}/{}", caller.site, extension),
            json!({}),
        )
        .await
        .map_err(reject)?;
    ok(&User::from(user))
}

/// Change a user's mode, role, name or numbers (admin)
#[utoipa::path(
    put,
    path = "/api/v1/users/{extension}",
    operation_id = "updateUser",
    tag = "people and settings",
    params(("extension" = String, Path, description = "the user's extension")),
    request_body = UserUpdate,
    responses(
        (status = 200, description = "the user", body = User),
        (status = 403, description = ADMIN_ONLY, body = ErrorReply),
        (status = 404, description = "no such user in the site", body = ErrorReply),
        (status = 409, description = "a number belongs to another user", body = ErrorReply),
        (status = 413, description = "body too large", body = ErrorReply),
        (status = 422, description = "a value is not acceptable", body = ErrorReply),
    ),
)]
pub async fn put_user(
    state: ApiState,
    caller: Caller,
    extension: String,
    update: UserUpdate,
) -> Handled {
    require_admin(&caller, "change users")?;
    let update = callrec_store::UserUpdate::from(update);
    let user = acts::update_user(&state, &Who::from(&caller), extension, update)
        .await
        .map_err(reject)?;
    ok(&User::from(user))
}

/// The site's settings (admin)
#[utoipa::path(
    get,
    path = "/api/v1/site",
    operation_id = "getSite",
    tag = "people and settings",
    responses(
        (status = 200, description = "the site", body = Site),
        (status = 403, description = ADMIN_ONLY, body = ErrorReply),
    ),
)]
pub async fn get_site(state: ApiState, caller: Caller) -> Handled {
    require_admin(&caller, "read the site's settings")?;
    let site_id = caller.site_id;
    let site = state
        .store()
        .read(move |v| v.site_by_id(site_id))
        .await
        .map_err(reject)?;
    state
        .audit(
            &caller,
            "site.read",
            format!("site:{}", caller.site),
            json!({}),
        )
        .await
        .map_err(reject)?;
    ok(&Site::from(site))
}

/// Change some of the site's settings (admin)
#[utoipa::path(
    put,
    path = "/api/v1/site",
    operation_id = "updateSite",
    tag = "people and settings",
    request_body = SiteUpdate,
    responses(
        (status = 200, description = "the site", body = Site),
        (status = 403, description = ADMIN_ONLY, body = ErrorReply),
        (status = 413, description = "body too large", body = ErrorReply),
        (status = 422, description = "a value is not acceptable", body = ErrorReply),
    ),
)]
pub async fn put_site(state: ApiState, caller: Caller, update: SiteUpdate) -> Handled {
    require_admin(&caller, "change the site's settings")?;
    let update = callrec_store::SiteUpdate::from(update);
    let site = acts::update_site(&state, &Who::from(&caller), update)
        .await
        .map_err(reject)?;
    ok(&Site::from(site))
}

/// Storage used per user against the quota (a user sees their own)
#[utoipa::path(
    get,
    path = "/api/v1/usage",
    operation_id = "getUsage",
    tag = "people and settings",
    responses((status = 200, description = "usage", body = Usage)),
)]
pub async fn usage(state: ApiState, caller: Caller) -> Handled {
    let (role, user, site) = (caller.role, caller.user_id, caller.site_id);
    let items = state
        .store()
        .read(move |v| match role {
            Role::Admin => v.usage(Some(site)),
            Role::User => Ok(vec![v.user_usage(user)?]),
        })
        .await
        .map_err(reject)?;
    state
        .audit(
            &caller,
            "usage.read",
            format!("site:{}", caller.site),
            json!({"users": items.len()}),
        )
        .await
        .map_err(reject)?;
    ok(&Usage {
        items: items.into_iter().map(Into::into).collect(),
    })
}

/// The change feed: what happened to the caller's recordings (a user's own; an admin's
/// site's), oldest first, in a strictly increasing sequence; follow it with `after`
#[utoipa::path(
    get,
    path = "/api/v1/changes",
    operation_id = "getChanges",
    tag = "recordings",
    params(ChangesParams),
    responses((status = 200, description = "a page", body = ChangesPage)),
)]
pub async fn changes(state: ApiState, caller: Caller, params: ChangesParams) -> Handled {
    let access = caller.access();
    let page = state
        .store()
        .read(move |v| v.changes(&access, params.after, params.limit))
        .await
        .map_err(reject)?;
    ok(&ChangesPage::from(page))
}

/// The site's audit log, newest first (admin)
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    operation_id = "getAudit",
    tag = "people and settings",
    params(AuditParams),
    responses(
        (status = 200, description = "a page", body = AuditPage),
        (status = 403, description = ADMIN_ONLY, body = ErrorReply),
    ),
)]
pub async fn audit_log(state: ApiState, caller: Caller, params: AuditParams) -> Handled {
    require_admin(&caller, "read the audit log")?;
    let site = caller.site_id;
    let page = state
        .store()
        .read(move |v| v.audit(Some(site), params.before, params.limit))
        .await
        .map_err(reject)?;
    state
        .audit(
            &caller,
            "audit.read",
            format!("site:{}", caller.site),
            json!({"before": params.before, "entries": page.entries.len()}),
        )
        .await
        .map_err(reject)?;
    ok(&AuditPage::from(page))
}

// ---- operations ----------------------------------------------------------------------

/// Liveness: the process answers
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    security(()),
    responses((status = 200, description = "alive", body = Liveness)),
)]
pub async fn healthz() -> Handled {
    ok(&Liveness { status: Alive::Ok })
}

/// Readiness: the index answers and the switch is connected
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "not ready", body = Readiness),
    ),
)]
pub async fn readyz(state: ApiState) -> Handled {
    let index = match state.store().read(|v| v.directory_version()).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the index does not answer");
            false
        }
    };
    let esl = state.daemon().status().esl_connected;
    let body = Readiness::new(index, esl);
    let status = if body.status == Ready::Ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json(status, &body))
}

/// Prometheus metrics (OpenMetrics text)
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    security(()),
    responses((status = 200, description = "metrics", body = String,
        content_type = "application/openmetrics-text"),
        (status = 403, description = "`[api] metrics_allow` is set and does not list the client", body = ErrorReply)),
)]
pub async fn metrics(client: Option<std::net::IpAddr>, state: ApiState) -> Handled {
    let allow = &state.config().metrics_allow;
    if !allow.is_empty()
        && !client.is_some_and(|ip| allow.iter().any(|n| n.contains(&ip.to_canonical())))
    {
        return Err(crate::error::reject(ApiError::forbidden(
            "/metrics is served only to the addresses in [api] metrics_allow",
        )));
    }
    let figures = state
        .store()
        .read(|v| {
            Ok(StoreFigures {
                by_state: v.state_counts()?,
                usage: v.usage(None)?,
            })
        })
        .await;
    match figures {
        Ok(f) => state
            .metrics()
            .set_store(&f, &state.store().paths().data_dir),
        Err(e) => tracing::warn!(error = %e, "metrics: the store's figures cannot be read"),
    }
    let text = state.metrics().encode_with(&state.daemon().metrics_text());
    Ok(warp::reply::with_header(text, "content-type", metrics::CONTENT_TYPE).into_response())
}

/// This document
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)),
)]
pub async fn openapi() -> Handled {
    ok(openapi::document())
}
