//! The web portal (SPEC §5.1), served at `/` on the API's listener beside `/api/v1`.
//!
//! Server-rendered HTML (askama templates, checked when the crate compiles, under
//! `templates/portal/`), one embedded stylesheet and one small first-party script (the
//! player's ±10 s and speed, `assets/player.js`): every page reads, and every recording
//! plays, without JavaScript. People sign in with their extension and portal password
//! (`callrec user passwd`) and get a server-side session in a cookie; the portal then asks the
//! store exactly what the API asks it, with the same scope (a user's own recordings, an
//! admin's site) and the same audit entries, and plays audio through the API's own Range
//! streaming.
//!
//! | module | what |
//! | --- | --- |
//! | `session` | the session cookie, the sign-in form's cookie, CSRF checks, client address |
//! | `search` | the recordings page's search box and filter panel, as the API's search |
//! | `pages` | the templates' data, formatting (times in the site's zone), HTML replies |
//! | `handlers` | one async function per page or form |
//! | `admin` | the admin's pages of one user and of the site's settings, and their forms |
//! | `logs` | the admin's audit log and archive clients pages |
//!
//! Every page and form answers with HTML, errors included; only failures before a handler
//! runs (a store that cannot be reached while looking up the session, a body without a
//! length) come back as the API's JSON error.

mod admin;
mod handlers;
mod logs;
mod pages;
mod search;
mod session;

use warp::Filter;

use crate::filters::{Route, audio_headers, with_state};
use crate::state::ApiState;

pub use pages::CONTENT_SECURITY_POLICY;
pub use session::{SESSION_COOKIE, SIGNIN_COOKIE, q_is_number, safe_next};

/// The largest form body accepted (a note of 10,000 characters, percent-encoded).
const FORM_LIMIT: u64 = 128 * 1024;

/// Query pairs, in order.
fn query() -> impl Filter<Extract = (Vec<(String, String)>,), Error = warp::Rejection> + Clone {
    warp::query::<Vec<(String, String)>>()
}

/// A form body of at most [`FORM_LIMIT`] bytes, as raw bytes (the handler decodes it, so a
/// bad one gets an HTML page).
fn form() -> impl Filter<Extract = (bytes::Bytes,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(FORM_LIMIT).and(warp::body::bytes())
}

/// `GET /`: to the recordings when signed in, else to the sign-in page.
pub fn home(state: ApiState) -> Route {
    warp::path::end()
        .and(warp::get())
        .and(session::signed_in(state))
        .and_then(handlers::home)
        .boxed()
}

/// `GET /assets/portal.css`: the stylesheet.
pub fn stylesheet() -> Route {
    warp::path!("assets" / "portal.css")
        .and(warp::get())
        .and_then(handlers::stylesheet)
        .boxed()
}

/// `GET /assets/player.js`: the player's ±10 s and speed controls (the page plays without).
pub fn player_script() -> Route {
    warp::path!("assets" / "player.js")
        .and(warp::get())
        .and_then(handlers::player_script)
        .boxed()
}

/// `GET /signin`: the sign-in form (`?next=` a page of this site to go to afterwards).
pub fn signin_form(state: ApiState) -> Route {
    warp::path!("signin")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(query())
        .and_then(handlers::signin_form)
        .boxed()
}

/// `POST /signin`: sign in (throttled per account and per address). A live session the
/// browser still holds is ended; one that is over (expired, signed out) is left as it is.
pub fn signin(state: ApiState) -> Route {
    warp::path!("signin")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(warp::cookie::optional::<String>(SIGNIN_COOKIE))
        .and(session::signed_in(state.clone()))
        .and(session::client_address(&state))
        .and(form())
        .and_then(handlers::signin)
        .boxed()
}

/// `POST /signout`: end the session.
pub fn signout(state: ApiState) -> Route {
    warp::path!("signout")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(form())
        .and_then(handlers::signout)
        .boxed()
}

/// `GET /recordings`: the caller's recordings (an admin's: the site's), newest first, with
/// one search box (`q`: a number in any form, or note text) and a filter panel (`since`,
/// `until`, `from`, `to`, `direction`, `min_duration`, `has_notes`, `hold`; an admin's also
/// `user`), each the API search parameter of that name.
pub fn recordings(state: ApiState) -> Route {
    warp::path!("recordings")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(query())
        .and(session::here())
        .and_then(handlers::recordings)
        .boxed()
}

/// `GET /recordings.zip`: the search of the recordings page (the box and every filter) as one
/// streamed ZIP with its manifest, as `GET /api/v1/recordings/export.zip` makes it.
pub fn recordings_zip(state: ApiState) -> Route {
    warp::path!("recordings.zip")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(query())
        .and(session::here())
        .and_then(handlers::recordings_zip)
        .boxed()
}

/// `GET /recordings/{id}`: one recording's details, player, segments and notes.
pub fn recording(state: ApiState) -> Route {
    warp::path!("recordings" / String)
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(session::here())
        .and_then(handlers::recording)
        .boxed()
}

/// `POST /recordings/{id}/notes`: add a note.
pub fn add_note(state: ApiState) -> Route {
    warp::path!("recordings" / String / "notes")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(form())
        .and_then(handlers::add_note)
        .boxed()
}

/// `POST /recordings/{id}/hold`: admin, set (`hold=1`) or release (`hold=0`) the hold.
pub fn set_hold(state: ApiState) -> Route {
    warp::path!("recordings" / String / "hold")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(form())
        .and_then(handlers::set_hold)
        .boxed()
}

/// `POST /recordings/{id}/delete`: admin, delete now with a `reason` (409 if on hold).
pub fn delete(state: ApiState) -> Route {
    warp::path!("recordings" / String / "delete")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(form())
        .and_then(handlers::delete)
        .boxed()
}

/// `GET /recordings/{id}/audio`: the audio with the session's cookie, HTTP Range and
/// `?download=1`, streamed by the API's own code.
pub fn audio(state: ApiState) -> Route {
    warp::path!("recordings" / String / "audio")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(query())
        .and(audio_headers())
        .and_then(handlers::audio)
        .boxed()
}

/// `GET /calls`: the caller's calls in progress (an admin's: the site's) with their recording
/// state and the action each offers; updated by `/calls/events`, or a refresh without
/// JavaScript.
pub fn calls(state: ApiState) -> Route {
    warp::path!("calls")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(query())
        .and(session::here())
        .and_then(handlers::calls)
        .boxed()
}

/// `GET /calls/events`: the calls list as server-sent events.
pub fn calls_events(state: ApiState) -> Route {
    warp::path!("calls" / "events")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and_then(handlers::calls_events)
        .boxed()
}

/// `POST /calls/{uuid}/{start|pause|resume}`: act on a call's recording.
pub fn call_action(state: ApiState) -> Route {
    warp::path!("calls" / String / String)
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(form())
        .and_then(handlers::call_action)
        .boxed()
}

/// `GET /assets/calls.js`: replaces the calls list from `/calls/events`.
pub fn calls_script() -> Route {
    warp::path!("assets" / "calls.js")
        .and(warp::get())
        .and_then(handlers::calls_script)
        .boxed()
}

/// `GET /settings`: the caller's voice recording mode, the site's retention and quota, and
/// their storage used.
pub fn settings(state: ApiState) -> Route {
    warp::path!("settings")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(query())
        .and(session::here())
        .and_then(handlers::settings)
        .boxed()
}

/// `POST /settings/mode`: choose one's own recording mode (within what the site allows).
pub fn set_mode(state: ApiState) -> Route {
    warp::path!("settings" / "mode")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(form())
        .and_then(handlers::set_mode)
        .boxed()
}

/// `GET /users`: admin, the site's users and their modes.
pub fn users(state: ApiState) -> Route {
    warp::path!("users")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(session::here())
        .and_then(handlers::users)
        .boxed()
}

/// `GET /users/{extension}`: admin, one user of the site with the forms that change them.
pub fn user(state: ApiState) -> Route {
    warp::path!("users" / String)
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(query())
        .and(session::here())
        .and_then(admin::user)
        .boxed()
}

/// `POST /users/{extension}`: admin, set a user's `mode` and `role`.
pub fn update_user(state: ApiState) -> Route {
    warp::path!("users" / String)
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(form())
        .and_then(admin::update_user)
        .boxed()
}

/// `POST /users/{extension}/password`: admin, set a user's portal `password` (and `confirm`).
pub fn reset_password(state: ApiState) -> Route {
    warp::path!("users" / String / "password")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(form())
        .and_then(admin::reset_password)
        .boxed()
}

/// `GET /site`: admin, the site's settings in one form.
pub fn site(state: ApiState) -> Route {
    warp::path!("site")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(query())
        .and(session::here())
        .and_then(admin::site)
        .boxed()
}

/// `POST /site`: admin, change the site's settings (the fields `PUT /api/v1/site` takes).
pub fn update_site(state: ApiState) -> Route {
    warp::path!("site")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(form())
        .and_then(admin::update_site)
        .boxed()
}

/// `GET /audit`: admin, the site's audit log, newest first (`actor`, `action`, `recording`,
/// `since`, `until` narrow it; `before` pages back).
pub fn audit_log(state: ApiState) -> Route {
    warp::path!("audit")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(query())
        .and(session::here())
        .and_then(logs::audit_log)
        .boxed()
}

/// `GET /archive`: admin, the site's archive clients and their last runs.
pub fn archive_clients(state: ApiState) -> Route {
    warp::path!("archive")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session::signed_in(state))
        .and(session::here())
        .and_then(logs::archive_clients)
        .boxed()
}

/// Every portal route.
pub fn routes(state: &ApiState) -> Route {
    [
        home(state.clone()),
        stylesheet(),
        player_script(),
        calls_script(),
        calls(state.clone()),
        calls_events(state.clone()),
        call_action(state.clone()),
        signin_form(state.clone()),
        signin(state.clone()),
        signout(state.clone()),
        recordings(state.clone()),
        recordings_zip(state.clone()),
        recording(state.clone()),
        add_note(state.clone()),
        set_hold(state.clone()),
        delete(state.clone()),
        audio(state.clone()),
        settings(state.clone()),
        set_mode(state.clone()),
        users(state.clone()),
        user(state.clone()),
        update_user(state.clone()),
        reset_password(state.clone()),
        site(state.clone()),
        update_site(state.clone()),
        audit_log(state.clone()),
        archive_clients(state.clone()),
    ]
    .into_iter()
    .reduce(|acc, route| acc.or(route).unify().boxed())
    .unwrap_or_else(stylesheet)
}
