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
use callrec_store::{Caller, FilePurpose, SiteUpdate, UserUpdate};
use serde::Serialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reject::Rejection;
use warp::reply::{Reply, Response};

use crate::audio::{self, AudioHeaders};
use crate::error::{ApiError, reject};
use callrec_model::RecordingAction;

use callrec_model::ActionRequest;

use crate::live::visible_to;
use crate::metrics::{self, StoreFigures};
use crate::models::{
    AudioParams, AuditParams, Calls, DeleteParams, Health, HoldBody, Items, Me, NoteBody,
    SearchParams,
};
use crate::openapi;
use crate::state::ApiState;

/// What a handler returns.
pub type Handled = Result<Response, Rejection>;

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

fn ok<T: Serialize>(value: &T) -> Handled {
    Ok(json(StatusCode::OK, value))
}

fn require_admin(caller: &Caller, what: &str) -> Result<(), Rejection> {
    match caller.role {
        Role::Admin => Ok(()),
        Role::User => Err(reject(ApiError::forbidden(format!(
            "{} may not {what}: admin only",
            caller.actor()
        )))),
    }
}

// ---- recordings ----------------------------------------------------------------------

/// `GET /api/v1/recordings`
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
    ok(&page)
}

/// `GET /api/v1/recordings/{id}`
pub async fn get_recording(state: ApiState, caller: Caller, id: RecordingId) -> Handled {
    let access = caller.access();
    let detail = state
        .store()
        .write(move |s| s.read_recording(&id, &access))
        .await
        .map_err(reject)?;
    ok(&detail)
}

/// `GET /api/v1/recordings/{id}/audio`
pub async fn audio(
    state: ApiState,
    caller: Caller,
    id: RecordingId,
    params: AudioParams,
    headers: AudioHeaders,
) -> Handled {
    let access = caller.access();
    let purpose = if params.download {
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
    let (stored, file) = state
        .store()
        .write(move |s| {
            let stored = s.open_file(&id, &access, purpose)?;
            let file = open_stored(&store_root, &stored.path, stored.size_bytes);
            Ok((stored, file))
        })
        .await
        .map_err(reject)?;
    let file = file.map_err(reject)?;
    let plan = audio::plan(&headers, stored.size_bytes, &stored.sha256).map_err(reject)?;
    Ok(audio::respond(&stored, file, params.download, plan))
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

/// `POST /api/v1/recordings/{id}/notes`
pub async fn add_note(state: ApiState, caller: Caller, id: RecordingId, body: NoteBody) -> Handled {
    let access = caller.access();
    let note = state
        .store()
        .write(move |s| s.add_note(&id, &access, &body.text))
        .await
        .map_err(reject)?;
    Ok(json(StatusCode::CREATED, &note))
}

/// `PUT /api/v1/recordings/{id}/hold`
pub async fn set_hold(state: ApiState, caller: Caller, id: RecordingId, body: HoldBody) -> Handled {
    require_admin(&caller, "set a hold")?;
    let access = caller.access();
    let site = caller.site_id;
    let rec = state
        .store()
        .write(move |s| {
            let before = s.view().recording(&id, &access)?;
            let after = s.set_hold(&id, &access, body.hold)?;
            if before.hold == after.hold {
                // The store writes nothing for a change to the same value; the request still
                // gets its entry.
                let action = if body.hold {
                    "recording.hold"
                } else {
                    "recording.release"
                };
                s.record_event(
                    Some(site),
                    &access.actor,
                    action,
                    &format!("recording:{id}"),
                    &json!({"unchanged": true}),
                )?;
            }
            Ok(after)
        })
        .await
        .map_err(reject)?;
    ok(&rec)
}

/// `DELETE /api/v1/recordings/{id}`
pub async fn delete_recording(
    state: ApiState,
    caller: Caller,
    id: RecordingId,
    params: DeleteParams,
) -> Handled {
    require_admin(&caller, "delete a recording")?;
    let access = caller.access();
    let reason = params
        .reason
        .unwrap_or_else(|| "deleted through the API".to_owned());
    let rec = state
        .store()
        .write(move |s| s.delete_recording(&id, &access, &reason))
        .await
        .map_err(reject)?;
    ok(&rec)
}

// ---- calls ---------------------------------------------------------------------------

/// `GET /api/v1/calls`
pub async fn list_calls(state: ApiState, caller: Caller) -> Handled {
    let mut items: Vec<_> = state
        .daemon()
        .calls()
        .into_iter()
        .filter(|c| visible_to(c, &caller))
        .collect();
    items.sort_by(|a, b| {
        b.answered_at
            .cmp(&a.answered_at)
            .then(a.call_uuid.cmp(&b.call_uuid))
    });
    state
        .audit(
            &caller,
            "call.list",
            format!("site:{}", caller.site),
            json!({"calls": items.len()}),
        )
        .await
        .map_err(reject)?;
    ok(&Calls { items })
}

/// `POST /api/v1/calls/{uuid}/recording/{action}`
///
/// The audit entry of the action is the daemon's: the recording's segment (`recording.start`,
/// `.pause`, `.resume`, `.stop`) names the caller as actor, with source `api`. The API adds
/// none of its own, so each action is in the log exactly once, next to the handset's and the
/// policy's.
pub async fn call_action(
    state: ApiState,
    caller: Caller,
    call_uuid: String,
    action: RecordingAction,
) -> Handled {
    let visible = state
        .daemon()
        .calls()
        .iter()
        .any(|c| c.call_uuid == call_uuid && visible_to(c, &caller));
    if !visible {
        return Err(reject(ApiError::not_found(format!(
            "no call {call_uuid} in progress"
        ))));
    }
    let request = ActionRequest {
        call_uuid,
        action,
        actor: caller.actor(),
    };
    let call = state
        .daemon()
        .recording_action(request)
        .await
        .map_err(reject)?;
    ok(&call)
}

// ---- people and settings -------------------------------------------------------------

/// `GET /api/v1/me`
pub async fn me(state: ApiState, caller: Caller) -> Handled {
    let user_id = caller.user_id;
    let (user, usage) = state
        .store()
        .read(move |v| Ok((v.user_by_id(user_id)?, v.user_usage(user_id)?)))
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
    ok(&Me::new(&caller, user, usage))
}

/// `GET /api/v1/users`
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
    ok(&Items { items })
}

/// `GET /api/v1/users/{extension}`
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
    ok(&user)
}

/// `PUT /api/v1/users/{extension}`
pub async fn put_user(
    state: ApiState,
    caller: Caller,
    extension: String,
    update: UserUpdate,
) -> Handled {
    require_admin(&caller, "change users")?;
    let (site, actor) = (caller.site.clone(), caller.actor());
    let user = state
        .store()
        .write(move |s| s.update_user(&site, &extension, &update, &actor))
        .await
        .map_err(reject)?;
    ok(&user)
}

/// `GET /api/v1/site`
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
    ok(&site)
}

/// `PUT /api/v1/site`
pub async fn put_site(state: ApiState, caller: Caller, update: SiteUpdate) -> Handled {
    require_admin(&caller, "change the site's settings")?;
    let (name, actor, site_id) = (caller.site.clone(), caller.actor(), caller.site_id);
    let site = state
        .store()
        .write(move |s| {
            let before = s.view().site_by_id(site_id)?;
            let after = s.update_site(&name, &update, &actor)?;
            if before == after {
                s.record_event(
                    Some(site_id),
                    &actor,
                    "site.update",
                    &format!("site:{name}"),
                    &json!({"unchanged": true}),
                )?;
            }
            Ok(after)
        })
        .await
        .map_err(reject)?;
    ok(&site)
}

/// `GET /api/v1/usage`
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
    ok(&Items { items })
}

/// `GET /api/v1/audit`
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
    ok(&page)
}

// ---- operations ----------------------------------------------------------------------

/// `GET /healthz`
pub async fn healthz() -> Handled {
    ok(&Health {
        status: "ok",
        index: None,
        esl_connected: None,
    })
}

/// `GET /readyz`
pub async fn readyz(state: ApiState) -> Handled {
    let index = match state.store().read(|v| v.directory_version()).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the index does not answer");
            false
        }
    };
    let esl = state.daemon().status().esl_connected;
    let ready = index && esl;
    let body = Health {
        status: if ready { "ok" } else { "unavailable" },
        index: Some(index),
        esl_connected: Some(esl),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json(status, &body))
}

/// `GET /metrics`
pub async fn metrics(state: ApiState) -> Handled {
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

/// `GET /openapi.json`
pub async fn openapi() -> Handled {
    ok(openapi::document())
}
