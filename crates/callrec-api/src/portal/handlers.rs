//! One async function per page or form. Each answers with HTML (a page, a redirect, or an
//! error page) and never rejects: by the time one runs, the route is known. Stores reads and
//! changes go through the same store calls as the API's, with the session's scope, and are
//! audited the same way.

// The error side of these results is the reply itself (a redirect or an error page), made
// once per request and sent straight back: boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;

use askama::Template;
use callrec_model::{RecordingAction, RecordingId, RecordingMode, RecordingState, Role};
use callrec_store::{Access, SignIn, SignInAttempt, modes_open_to};
use serde_json::json;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::pages::{
    self, CallRow, CallsList, CallsPage, ModeChoice, Nav, NoteRow, RecordingFacts, RecordingPage,
    RecordingRow, RecordingsPage, SegmentRow, SettingsPage, SigninPage, Timeline, UserRow,
    UsersPage,
};
use super::search::SearchForm;
use super::session::{
    Form, Signed, check_csrf, clear_session_cookie, clear_signin_cookie, header_value,
    random_token, same_token, session_cookie, signin_cookie,
};
use crate::acts::{self, Who};
use crate::audio::AudioHeaders;
use crate::error::ApiError;
use crate::models::{AudioParams, QueryParams};
use crate::state::ApiState;

/// What a page handler returns: the reply, whichever way it went.
pub(super) type Page = Result<Response, Infallible>;

/// The signed-in person, or a redirect to the sign-in page (after a form: the form is not
/// carried over).
fn require(signed: Option<Signed>) -> Result<Signed, Response> {
    signed.ok_or_else(|| pages::redirect("/signin"))
}

/// A signed-in person's form: the session, the page's navigation (`tab` marked current) and
/// the form, its CSRF token checked. A failure is the page to answer with.
pub(super) fn signed_form(
    signed: Option<Signed>,
    tab: &'static str,
    body: &[u8],
) -> Result<(Signed, Nav, Form), Response> {
    let signed = require(signed)?;
    let nav = Nav::of(&signed.user, tab);
    let form = Form::parse(body).map_err(|e| pages::error(e, Some(nav.clone())))?;
    check_csrf(&signed.user, &form).map_err(|e| pages::error(e, Some(nav.clone())))?;
    Ok((signed, nav, form))
}

/// The signed-in person, or a redirect to the sign-in page that comes back to `here` (a
/// link to a recording, opened from elsewhere, where the `SameSite=Strict` cookie is not
/// sent).
pub(super) fn require_page(signed: Option<Signed>, here: &str) -> Result<Signed, Response> {
    signed.ok_or_else(|| {
        let next = serde_urlencoded::to_string([("next", here)]).unwrap_or_default();
        pages::redirect_to(format!("/signin?{next}"))
    })
}

/// The `next` of a query or form, if it is a page of this site.
fn next_of(value: &str) -> String {
    super::session::safe_next(value).unwrap_or("").to_owned()
}

pub(super) fn settle(r: Result<Response, Response>) -> Page {
    Ok(r.unwrap_or_else(|e| e))
}

/// Append a `Set-Cookie` header.
fn set_cookie(r: &mut Response, value: String) -> Result<(), ApiError> {
    r.headers_mut()
        .append(header::SET_COOKIE, header_value(value)?);
    Ok(())
}

fn parse_recording_id(raw: &str, nav: &Nav) -> Result<RecordingId, Response> {
    raw.parse::<RecordingId>()
        .map_err(|_| pages::error(ApiError::not_found("no such recording"), Some(nav.clone())))
}

/// Write an audit entry for a read the store does not audit itself.
pub(super) async fn audit(
    state: &ApiState,
    signed: &Signed,
    action: &'static str,
    target: String,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let user = signed.user.clone();
    state
        .store()
        .write(move |s| s.record_portal_event(&user, action, &target, &detail))
        .await?;
    Ok(())
}

// ---- the way in ------------------------------------------------------------------------

pub(crate) async fn home(signed: Option<Signed>) -> Page {
    Ok(match signed {
        Some(_) => pages::redirect("/recordings"),
        None => pages::redirect("/signin"),
    })
}

pub(crate) async fn stylesheet() -> Page {
    let mut r = Response::new(pages::STYLESHEET.into());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    Ok(r)
}

pub(crate) async fn player_script() -> Page {
    script(pages::PLAYER_SCRIPT)
}

pub(crate) async fn calls_script() -> Page {
    script(pages::CALLS_SCRIPT)
}

/// One of the portal's own scripts, as JavaScript.
fn script(text: &'static str) -> Page {
    let mut r = Response::new(text.into());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(r)
}

pub(crate) async fn signin_form(
    state: ApiState,
    signed: Option<Signed>,
    pairs: Vec<(String, String)>,
) -> Page {
    let next = pairs
        .iter()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| next_of(v))
        .unwrap_or_default();
    if signed.is_some() {
        return Ok(pages::redirect_to(if next.is_empty() {
            "/recordings".to_owned()
        } else {
            next
        }));
    }
    let token = random_token();
    let page = SigninPage {
        nav: None,
        csrf: token.clone(),
        account: String::new(),
        next,
        message: None,
    };
    let mut r = pages::render(StatusCode::OK, &page);
    let secure = state.config().secure_cookies();
    if let Err(e) = set_cookie(&mut r, signin_cookie(&token, secure)) {
        return Ok(pages::error(e, None));
    }
    Ok(r)
}

pub(crate) async fn signin(
    state: ApiState,
    form_cookie: Option<String>,
    old_session: Option<Signed>,
    address: String,
    body: bytes::Bytes,
) -> Page {
    settle(signin_inner(state, form_cookie, old_session, address, body).await)
}

async fn signin_inner(
    state: ApiState,
    form_cookie: Option<String>,
    old_session: Option<Signed>,
    address: String,
    body: bytes::Bytes,
) -> Result<Response, Response> {
    let secure = state.config().secure_cookies();
    let form = Form::parse(&body).map_err(|e| pages::error(e, None))?;
    let token = form_cookie.unwrap_or_default();
    if token.is_empty() || !same_token(&token, form.get("csrf")) {
        return Err(pages::error(
            ApiError::forbidden(
                "the sign-in form expired or did not come from this site: open the sign-in \
                 page again",
            ),
            None,
        ));
    }
    let account = form.get("account").trim().to_owned();
    let next = next_of(form.get("next"));
    let again = |status: StatusCode, message: String| {
        pages::render(
            status,
            &SigninPage {
                nav: None,
                csrf: token.clone(),
                account: account.clone(),
                next: next.clone(),
                message: Some(message),
            },
        )
    };
    if account.is_empty() || form.get("password").is_empty() {
        return Err(again(
            StatusCode::BAD_REQUEST,
            "Enter your extension and your password.".into(),
        ));
    }
    let attempt = SignInAttempt {
        account: account.clone(),
        password: form.get("password").to_owned(),
        address,
    };
    let policy = state.config().portal.policy.clone();
    let outcome = state
        .store()
        .sign_in(attempt, policy)
        .await
        .map_err(|e| pages::error(e.into(), None))?;
    match outcome {
        SignIn::Granted(session) => {
            // A live session the browser already had is ended: one browser, one session,
            // and an id planted before sign-in is never the one that signs in (the new
            // session's id is always new). One that is already over stays as it ended: signing
            // it out would audit a sign-out nobody made.
            if let Some(old) = old_session {
                state
                    .store()
                    .write(move |s| s.sign_out(&old.secret))
                    .await
                    .map_err(|e| pages::error(e.into(), None))?;
            }
            let mut r = pages::redirect_to(if next.is_empty() {
                "/recordings".to_owned()
            } else {
                next.clone()
            });
            set_cookie(&mut r, session_cookie(&session.secret, secure))
                .and_then(|()| set_cookie(&mut r, clear_signin_cookie(secure)))
                .map_err(|e| pages::error(e, None))?;
            Ok(r)
        }
        SignIn::Refused => Err(again(
            StatusCode::UNAUTHORIZED,
            "Wrong extension or password.".into(),
        )),
        SignIn::Throttled { retry_after } => {
            let minutes = (retry_after.num_seconds() + 59) / 60;
            let mut r = again(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed sign-ins for this account or from this address. Try again \
                     in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                ),
            );
            if let Ok(v) = HeaderValue::try_from(retry_after.num_seconds().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Err(r)
        }
    }
}

pub(crate) async fn signout(state: ApiState, signed: Option<Signed>, body: bytes::Bytes) -> Page {
    settle(
        async move {
            let (signed, nav, _) = signed_form(signed, "", &body)?;
            let secret = signed.secret.clone();
            state
                .store()
                .write(move |s| s.sign_out(&secret))
                .await
                .map_err(|e| pages::error(e.into(), Some(nav.clone())))?;
            let mut r = pages::redirect("/signin");
            set_cookie(
                &mut r,
                clear_session_cookie(state.config().secure_cookies()),
            )
            .map_err(|e| pages::error(e, None))?;
            Ok(r)
        }
        .await,
    )
}

// ---- recordings ----------------------------------------------------------------------

pub(crate) async fn recordings(
    state: ApiState,
    signed: Option<Signed>,
    pairs: Vec<(String, String)>,
    here: String,
) -> Page {
    settle(recordings_inner(state, signed, pairs, here).await)
}

async fn recordings_inner(
    state: ApiState,
    signed: Option<Signed>,
    pairs: Vec<(String, String)>,
    here: String,
) -> Result<Response, Response> {
    let signed = require_page(signed, &here)?;
    let nav = Nav::of(&signed.user, "recordings");
    let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
    let admin = signed.user.role == Role::Admin;
    let typed = SearchForm::from_pairs(pairs, admin);
    let site_id = signed.user.site_id;
    let tz = state
        .store()
        .read(move |v| Ok(v.site_by_id(site_id)?.settings.timezone))
        .await
        .map_err(|e| fail(e.into()))?;
    let mut page = RecordingsPage {
        nav: Some(nav.clone()),
        admin,
        site: signed.user.site.clone(),
        zone: pages::zone_name(tz),
        searched: typed.searched(),
        filtered: typed.filtered(),
        message: None,
        rows: Vec::new(),
        next: None,
        zip: typed.zip_query(),
        f: typed.clone(),
    };
    let params = match typed.to_params() {
        Ok(p) => p,
        Err(e) => {
            page.message = Some(e.message);
            return Ok(pages::render(StatusCode::BAD_REQUEST, &page));
        }
    };
    let access = signed.user.access();
    let query = params.to_query(tz);
    let result = state.store().read(move |v| v.search(&access, &query)).await;
    let found = match result {
        Ok(found) => found,
        Err(e) => {
            let e = ApiError::from(e);
            if e.status.is_server_error() {
                return Err(fail(e));
            }
            page.message = Some(e.message);
            return Ok(pages::render(e.status, &page));
        }
    };
    let ids: Vec<&str> = found.items.iter().map(|r| r.id.as_str()).collect();
    audit(
        &state,
        &signed,
        "recording.search",
        format!("site:{}", signed.user.site),
        json!({"filters": params.audit_detail(), "results": ids.len(), "ids": ids, "via": "portal"}),
    )
    .await
    .map_err(fail)?;
    page.rows = found
        .items
        .iter()
        .map(|r| RecordingRow::of(r, tz))
        .collect();
    page.next = found.next_cursor.as_deref().map(|c| typed.page_query(c));
    Ok(pages::render(StatusCode::OK, &page))
}

/// `GET /recordings.zip`: every recording the search matches, as the API's `export.zip`
/// streams it (the same code), scoped to the session's person.
pub(crate) async fn recordings_zip(
    state: ApiState,
    signed: Option<Signed>,
    pairs: Vec<(String, String)>,
    here: String,
) -> Page {
    settle(
        async move {
            let signed = require_page(signed, &here)?;
            let nav = Nav::of(&signed.user, "recordings");
            let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
            let mut typed = SearchForm::from_pairs(pairs, signed.user.role == Role::Admin);
            typed.cursor.clear();
            let params = typed.to_params().map_err(fail)?;
            crate::archive::export_search(&state, &Who::from(&signed.user), params, Some("portal"))
                .await
                .map_err(fail)
        }
        .await,
    )
}

pub(crate) async fn recording(
    raw: String,
    state: ApiState,
    signed: Option<Signed>,
    here: String,
) -> Page {
    settle(
        async move {
            let signed = require_page(signed, &here)?;
            recording_page(&state, &signed, &raw, StatusCode::OK, None).await
        }
        .await,
    )
}

/// A recording's details page, with `message` (why an admin's action did not happen) shown
/// above it and answered with `status`.
async fn recording_page(
    state: &ApiState,
    signed: &Signed,
    raw: &str,
    status: StatusCode,
    message: Option<String>,
) -> Result<Response, Response> {
    let nav = Nav::of(&signed.user, "recordings");
    let id = parse_recording_id(raw, &nav)?;
    let access = signed.user.access();
    let (detail, tz) = state
        .store()
        .write(move |s| {
            let detail = s.read_recording(&id, &access)?;
            let tz = s.view().site_by_id(detail.recording.site_id)?;
            Ok((detail, tz.settings.timezone))
        })
        .await
        .map_err(|e| pages::error(e.into(), Some(nav.clone())))?;
    let r = &detail.recording;
    let page = RecordingPage {
        nav: Some(nav.clone()),
        csrf: signed.user.csrf_token.clone(),
        admin: signed.user.role == Role::Admin,
        hold: r.hold,
        deleted: r.state == RecordingState::Deleted,
        message,
        r: RecordingFacts {
            id: r.id.to_string(),
            user: r.user.clone(),
            when: pages::when(r.started_at, tz),
            direction: r.direction.to_string(),
            from: pages::party(&r.from),
            to: pages::party(&r.to),
            duration: r
                .duration_ms
                .map(pages::duration)
                .unwrap_or_else(|| "–".into()),
            paused: pages::duration(r.paused_ms),
            state: match &r.state_reason {
                Some(why) => format!("{} ({why})", r.state),
                None => r.state.to_string(),
            },
        },
        playable: matches!(r.state, RecordingState::Stored | RecordingState::Failed)
            && r.sha256.is_some(),
        file_name: r.file_name.clone(),
        segments: detail
            .segments
            .iter()
            .map(|s| SegmentRow {
                kind: s.kind.to_string(),
                when: pages::when(s.at, tz),
                source: s.source.to_string(),
                actor: s.actor.clone(),
            })
            .collect(),
        notes: detail
            .notes
            .iter()
            .map(|n| NoteRow {
                text: n.text.clone(),
                author: n.author.clone(),
                when: pages::when(n.at, tz),
            })
            .collect(),
        timeline: r.duration_ms.and_then(|length| {
            let marks: Vec<_> = detail.segments.iter().map(|s| (s.kind, s.at)).collect();
            Timeline::of(&marks, r.started_at, length)
        }),
    };
    Ok(pages::render(status, &page))
}

/// What an admin's form on a recording asks for.
enum AdminAct {
    Hold,
    Delete,
}

/// `POST /recordings/{id}/hold` (`hold` = `1` or `0`) and `POST /recordings/{id}/delete`
/// (`reason`): the API's hold and delete, admin only. A refusal the admin can act on (on
/// hold, legal hold, no file: 409; no reason: 400) is shown on the recording's page.
async fn admin_act(
    act: AdminAct,
    raw: String,
    state: ApiState,
    signed: Option<Signed>,
    body: bytes::Bytes,
) -> Page {
    settle(
        async move {
            let (signed, nav, form) = signed_form(signed, "recordings", &body)?;
            let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
            let id = parse_recording_id(&raw, &nav)?;
            let who = Who::from(&signed.user);
            let done = match act {
                AdminAct::Hold => {
                    let hold = match form.get("hold") {
                        "1" => true,
                        "0" => false,
                        _ => return Err(fail(ApiError::bad_request("`hold` must be 1 or 0"))),
                    };
                    acts::set_hold(&state, &who, id.clone(), hold).await
                }
                AdminAct::Delete => {
                    let reason = form.get("reason").trim().to_owned();
                    if reason.is_empty() {
                        acts::admin_only(&who, "delete a recording").map_err(fail)?;
                        return recording_page(
                            &state,
                            &signed,
                            &raw,
                            StatusCode::BAD_REQUEST,
                            Some("Say why this recording is deleted: the reason is written to the audit log.".into()),
                        )
                        .await;
                    }
                    acts::delete_recording(&state, &who, id.clone(), reason).await
                }
            };
            match done {
                Ok(_) => Ok(pages::redirect_to(format!("/recordings/{id}"))),
                Err(e) if e.status == StatusCode::CONFLICT || e.status == StatusCode::BAD_REQUEST => {
                    let message = format!("Not done: {}.", e.message.trim_end_matches('.'));
                    recording_page(&state, &signed, &raw, e.status, Some(message)).await
                }
                Err(e) => Err(fail(e)),
            }
        }
        .await,
    )
}

pub(crate) async fn set_hold(
    raw: String,
    state: ApiState,
    signed: Option<Signed>,
    body: bytes::Bytes,
) -> Page {
    admin_act(AdminAct::Hold, raw, state, signed, body).await
}

pub(crate) async fn delete(
    raw: String,
    state: ApiState,
    signed: Option<Signed>,
    body: bytes::Bytes,
) -> Page {
    admin_act(AdminAct::Delete, raw, state, signed, body).await
}

pub(crate) async fn add_note(
    raw: String,
    state: ApiState,
    signed: Option<Signed>,
    body: bytes::Bytes,
) -> Page {
    settle(
        async move {
            let (signed, nav, form) = signed_form(signed, "recordings", &body)?;
            let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
            let id = parse_recording_id(&raw, &nav)?;
            let access = signed.user.access();
            let text = form.get("text").to_owned();
            let target = id.clone();
            state
                .store()
                .write(move |s| s.add_note(&target, &access, &text))
                .await
                .map_err(|e| fail(e.into()))?;
            Ok(pages::redirect_to(format!("/recordings/{id}")))
        }
        .await,
    )
}

pub(crate) async fn audio(
    raw: String,
    state: ApiState,
    signed: Option<Signed>,
    pairs: Vec<(String, String)>,
    headers: AudioHeaders,
) -> Page {
    let Some(signed) = signed else {
        return Ok(
            ApiError::unauthorized("sign in to the portal to play recordings").into_response(),
        );
    };
    let id = match raw.parse::<RecordingId>() {
        Ok(id) => id,
        Err(_) => return Ok(ApiError::not_found("no such recording").into_response()),
    };
    let params = match QueryParams::new(pairs).and_then(AudioParams::parse) {
        Ok(p) => p,
        Err(e) => return Ok(e.into_response()),
    };
    let access: Access = signed.user.access();
    Ok(
        match crate::handlers::stream_recording(state, access, id, params.download, headers).await {
            Ok(r) => r,
            Err(rejection) => crate::error::classify(&rejection).into_response(),
        },
    )
}

// ---- calls in progress --------------------------------------------------------------

/// The calls `signed` may see, rendered as the list the page and each event show.
fn calls_list(state: &ApiState, signed: &Signed, tz: chrono_tz::Tz) -> (usize, String) {
    let calls = acts::calls_of(state, &Who::from(&signed.user));
    let list = CallsList {
        admin: signed.user.role == Role::Admin,
        csrf: signed.user.csrf_token.clone(),
        calls: calls.iter().map(|c| CallRow::of(c, tz)).collect(),
    };
    let html = list.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the calls list failed to render");
        "<p>The calls cannot be shown just now.</p>".to_owned()
    });
    (calls.len(), html)
}

pub(super) async fn site_zone(
    state: &ApiState,
    signed: &Signed,
) -> Result<chrono_tz::Tz, ApiError> {
    let site_id = signed.user.site_id;
    Ok(state
        .store()
        .read(move |v| Ok(v.site_by_id(site_id)?.settings.timezone))
        .await?)
}

/// The calls page, with what the last action did or why it was not done.
async fn calls_page(
    state: &ApiState,
    signed: &Signed,
    status: StatusCode,
    done: Option<String>,
    message: Option<String>,
) -> Result<Response, Response> {
    let nav = Nav::of(&signed.user, "calls");
    let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
    let tz = site_zone(state, signed).await.map_err(fail)?;
    let (count, list) = calls_list(state, signed, tz);
    audit(
        state,
        signed,
        "call.list",
        format!("site:{}", signed.user.site),
        json!({"calls": count, "via": "portal"}),
    )
    .await
    .map_err(fail)?;
    let page = CallsPage {
        nav: Some(nav.clone()),
        admin: signed.user.role == Role::Admin,
        zone: pages::zone_name(tz),
        done,
        message,
        list,
    };
    Ok(pages::render(status, &page))
}

pub(crate) async fn calls(
    state: ApiState,
    signed: Option<Signed>,
    pairs: Vec<(String, String)>,
    here: String,
) -> Page {
    settle(
        async move {
            let signed = require_page(signed, &here)?;
            let done =
                pairs
                    .iter()
                    .find(|(k, _)| k == "done")
                    .and_then(|(_, v)| match v.as_str() {
                        "start" => Some("Recording started.".to_owned()),
                        "pause" => Some("Recording paused.".to_owned()),
                        "resume" => Some("Recording resumed.".to_owned()),
                        _ => None,
                    });
            calls_page(&state, &signed, StatusCode::OK, done, None).await
        }
        .await,
    )
}

/// `POST /calls/{uuid}/{start|pause|resume}`: the API's action on a call (the daemon applies
/// the feature codes' mode rules and writes the segment, with the caller as actor). A
/// refusal is shown on the calls page with its status.
pub(crate) async fn call_action(
    uuid: String,
    action: String,
    state: ApiState,
    signed: Option<Signed>,
    body: bytes::Bytes,
) -> Page {
    settle(
        async move {
            let (signed, nav, _) = signed_form(signed, "calls", &body)?;
            let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
            let action = match action.parse::<RecordingAction>() {
                Ok(
                    a @ (RecordingAction::Start | RecordingAction::Pause | RecordingAction::Resume),
                ) => a,
                _ => return Err(fail(ApiError::not_found("no such action on a call"))),
            };
            match acts::call_action(&state, &Who::from(&signed.user), uuid, action).await {
                Ok(_) => Ok(pages::redirect_to(format!(
                    "/calls?done={}",
                    action.as_str()
                ))),
                Err(e)
                    if e.status.is_client_error()
                        || e.status == StatusCode::SERVICE_UNAVAILABLE
                        || e.status == StatusCode::BAD_GATEWAY =>
                {
                    let message = format!("Not done: {}.", e.message.trim_end_matches('.'));
                    calls_page(&state, &signed, e.status, None, Some(message)).await
                }
                Err(e) => Err(fail(e)),
            }
        }
        .await,
    )
}

/// How often the events re-read the calls, and how many of those reads between checks that
/// the session is still alive (ended at sign-out or expiry: the stream ends too).
const CALLS_TICK: std::time::Duration = std::time::Duration::from_secs(1);
const SESSION_CHECK_TICKS: u32 = 10;

/// `GET /calls/events`: the calls list as server-sent events (`event: calls`, the list's
/// HTML), sent at once and again whenever it changes; a keep-alive comment otherwise.
pub(crate) async fn calls_events(state: ApiState, signed: Option<Signed>) -> Page {
    let Some(signed) = signed else {
        return Ok(ApiError::unauthorized("sign in to the portal to follow calls").into_response());
    };
    let tz = match site_zone(&state, &signed).await {
        Ok(tz) => tz,
        Err(e) => return Ok(e.into_response()),
    };
    let (count, _) = calls_list(&state, &signed, tz);
    if let Err(e) = audit(
        &state,
        &signed,
        "call.list",
        format!("site:{}", signed.user.site),
        json!({"calls": count, "via": "portal", "live": true}),
    )
    .await
    {
        return Ok(e.into_response());
    }
    struct Follow {
        state: ApiState,
        signed: Signed,
        tz: chrono_tz::Tz,
        last: Option<String>,
        ticks: u32,
        interval: tokio::time::Interval,
    }
    let follow = Follow {
        state,
        signed,
        tz,
        last: None,
        ticks: 0,
        interval: tokio::time::interval(CALLS_TICK),
    };
    let events = futures_util::stream::unfold(follow, |mut f| async move {
        loop {
            f.interval.tick().await;
            f.ticks += 1;
            if f.ticks % SESSION_CHECK_TICKS == 0 {
                let policy = f.state.config().portal.policy.clone();
                match f
                    .state
                    .store()
                    .session(f.signed.secret.clone(), policy)
                    .await
                {
                    Ok(Some(_)) => {}
                    _ => return None,
                }
            }
            let (_, html) = calls_list(&f.state, &f.signed, f.tz);
            if f.last.as_deref() != Some(html.as_str()) {
                f.last = Some(html.clone());
                let event = warp::sse::Event::default().event("calls").data(html);
                return Some((Ok::<_, Infallible>(event), f));
            }
        }
    });
    let mut r =
        warp::reply::Reply::into_response(warp::sse::reply(warp::sse::keep_alive().stream(events)));
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(pages::CONTENT_SECURITY_POLICY),
    );
    Ok(r)
}

// ---- settings and users --------------------------------------------------------------

pub(crate) async fn settings(
    state: ApiState,
    signed: Option<Signed>,
    pairs: Vec<(String, String)>,
    here: String,
) -> Page {
    settle(
        async move {
            let signed = require_page(signed, &here)?;
            let nav = Nav::of(&signed.user, "settings");
            let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
            let (user_id, site_id) = (signed.user.user_id, signed.user.site_id);
            let (me, site, usage) = state
                .store()
                .read(move |v| {
                    Ok((
                        v.user_by_id(user_id)?,
                        v.site_by_id(site_id)?,
                        v.user_usage(user_id)?,
                    ))
                })
                .await
                .map_err(|e| fail(e.into()))?;
            audit(
                &state,
                &signed,
                "usage.read",
                format!("site:{}", signed.user.site),
                json!({"users": 1, "via": "portal"}),
            )
            .await
            .map_err(fail)?;
            let open = modes_open_to(me.role, &site.settings);
            let s = &site.settings;
            let page = SettingsPage {
                nav: Some(nav.clone()),
                csrf: signed.user.csrf_token.clone(),
                saved: pairs.iter().any(|(k, v)| k == "saved" && v == "1"),
                message: None,
                modes: open
                    .iter()
                    .map(|m| ModeChoice {
                        value: m.as_str(),
                        label: pages::mode_label(*m),
                        current: *m == me.mode,
                    })
                    .collect(),
                current_offered: open.contains(&me.mode),
                current_label: pages::mode_label(me.mode),
                retention: if s.legal_hold {
                    "7 years (legal hold)".to_owned()
                } else {
                    format!("{} days", s.retention_days)
                },
                quota: pages::size(usage.quota_bytes),
                used: pages::size(usage.bytes),
                files: usage.files,
                over_quota: usage.over_quota,
                zone: pages::zone_name(s.timezone),
            };
            Ok(pages::render(StatusCode::OK, &page))
        }
        .await,
    )
}

pub(crate) async fn set_mode(state: ApiState, signed: Option<Signed>, body: bytes::Bytes) -> Page {
    settle(
        async move {
            let (signed, nav, form) = signed_form(signed, "settings", &body)?;
            let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
            let mode = form
                .get("mode")
                .parse::<RecordingMode>()
                .map_err(|e| fail(ApiError::bad_request(e.to_string())))?;
            let (user, actor) = (signed.user.user_id, signed.user.actor());
            state
                .store()
                .write(move |s| s.set_own_mode(user, mode, &actor))
                .await
                .map_err(|e| fail(e.into()))?;
            Ok(pages::redirect("/settings?saved=1"))
        }
        .await,
    )
}

pub(crate) async fn users(state: ApiState, signed: Option<Signed>, here: String) -> Page {
    settle(
        async move {
            let signed = require_page(signed, &here)?;
            let nav = Nav::of(&signed.user, "users");
            let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
            if signed.user.role != Role::Admin {
                return Err(fail(ApiError::forbidden(
                    "only an administrator may see the site's users",
                )));
            }
            let site = signed.user.site.clone();
            let users = state
                .store()
                .read(move |v| v.users(Some(&site)))
                .await
                .map_err(|e| fail(e.into()))?;
            audit(
                &state,
                &signed,
                "user.list",
                format!("site:{}", signed.user.site),
                json!({"users": users.len(), "via": "portal"}),
            )
            .await
            .map_err(fail)?;
            let page = UsersPage {
                nav: Some(nav.clone()),
                site: signed.user.site.clone(),
                users: users
                    .iter()
                    .map(|u| UserRow {
                        extension: u.extension.clone(),
                        name: u.display_name.clone().unwrap_or_default(),
                        mode: pages::mode_label(u.mode),
                        role: u.role.to_string(),
                    })
                    .collect(),
            };
            Ok(pages::render(StatusCode::OK, &page))
        }
        .await,
    )
}
