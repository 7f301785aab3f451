//! The actions the API and the portal share, whichever way the person came in (a bearer
//! token or a portal session): holds, deletions, the calls a person may see and the actions
//! on them, changes to users (mode, role, password) and to the site's settings. Each rule
//! lives here once (or in the store, which these call); the API's handlers and the portal's
//! call these and only shape the reply (JSON or HTML).

use callrec_model::{ActionRequest, LiveCall, RecordingAction, RecordingId, Role, SiteId};
use callrec_store::{Access, Caller, Recording, SessionUser, Site, SiteUpdate, User, UserUpdate};
use serde_json::json;

use crate::error::ApiError;
use crate::live::visible;
use crate::state::ApiState;

/// Who acts: what the shared actions need of a token's caller or a portal session.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    pub site_id: SiteId,
    pub site: String,
    pub extension: String,
    pub role: Role,
    pub access: Access,
}

impl Who {
    /// The name written to the audit log.
    pub fn actor(&self) -> String {
        self.access.actor.clone()
    }
}

impl From<&Caller> for Who {
    fn from(c: &Caller) -> Who {
        Who {
            site_id: c.site_id,
            site: c.site.clone(),
            extension: c.extension.clone(),
            role: c.role,
            access: c.access(),
        }
    }
}

impl From<&SessionUser> for Who {
    fn from(u: &SessionUser) -> Who {
        Who {
            site_id: u.site_id,
            site: u.site.clone(),
            extension: u.extension.clone(),
            role: u.role,
            access: u.access(),
        }
    }
}

/// Refuse a user what only an admin may do.
pub(crate) fn admin_only(who: &Who, what: &str) -> Result<(), ApiError> {
    match who.role {
        Role::Admin => Ok(()),
        Role::User => Err(ApiError::forbidden(format!(
            "{} may not {what}: admin only",
            who.actor()
        ))),
    }
}

/// Set or release a recording's hold (admin). The store audits a change; a request that
/// changes nothing still gets its entry, saying so.
pub(crate) async fn set_hold(
    state: &ApiState,
    who: &Who,
    id: RecordingId,
    hold: bool,
) -> Result<Recording, ApiError> {
    admin_only(who, "set a hold")?;
    let access = who.access.clone();
    let site = who.site_id;
    let rec = state
        .store()
        .write(move |s| {
            let before = s.view().recording(&id, &access)?;
            let after = s.set_hold(&id, &access, hold)?;
            if before.hold == after.hold {
                let action = if hold {
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
        .await?;
    Ok(rec)
}

/// Delete a recording now, leaving a tombstone (admin; 409 if on hold). Audited by the
/// store with `reason`.
pub(crate) async fn delete_recording(
    state: &ApiState,
    who: &Who,
    id: RecordingId,
    reason: String,
) -> Result<Recording, ApiError> {
    admin_only(who, "delete a recording")?;
    let access = who.access.clone();
    let rec = state
        .store()
        .write(move |s| s.delete_recording(&id, &access, &reason))
        .await?;
    Ok(rec)
}

/// The calls in progress `who` may see (their own; an admin's: the site's), newest first.
pub(crate) fn calls_of(state: &ApiState, who: &Who) -> Vec<LiveCall> {
    let mut items: Vec<_> = state
        .daemon()
        .calls()
        .into_iter()
        .filter(|c| visible(c, &who.site, &who.extension, who.role))
        .collect();
    items.sort_by(|a, b| {
        b.answered_at
            .cmp(&a.answered_at)
            .then(a.call_uuid.cmp(&b.call_uuid))
    });
    items
}

/// Start, stop, pause or resume a call's recording through the daemon, which applies the
/// feature codes' mode rules. The audit entry is the daemon's (the recording's segment
/// names `who` as actor), so each action is in the log exactly once.
pub(crate) async fn call_action(
    state: &ApiState,
    who: &Who,
    call_uuid: String,
    action: RecordingAction,
) -> Result<LiveCall, ApiError> {
    let may_see = state
        .daemon()
        .calls()
        .iter()
        .any(|c| c.call_uuid == call_uuid && visible(c, &who.site, &who.extension, who.role));
    if !may_see {
        return Err(ApiError::not_found(format!(
            "no call {call_uuid} in progress"
        )));
    }
    let request = ActionRequest {
        call_uuid,
        action,
        actor: who.actor(),
    };
    Ok(state.daemon().recording_action(request).await?)
}

/// Change a user of the admin's own site: mode, role, name or numbers (admin). The store
/// holds the rules (a site's last admin is not demoted; numbers are normalised and unique)
/// and audits the change (`user.set_mode` or `user.update`, with what changed).
pub(crate) async fn update_user(
    state: &ApiState,
    who: &Who,
    extension: String,
    update: UserUpdate,
) -> Result<User, ApiError> {
    admin_only(who, "change users")?;
    let (site, actor) = (who.site.clone(), who.actor());
    Ok(state
        .store()
        .write(move |s| s.update_user(&site, &extension, &update, &actor))
        .await?)
}

/// Set a new portal password for a user of the admin's own site (admin), as `callrec user
/// passwd` does: checked, stored as Argon2id, every session of theirs ended, audited as
/// `user.password` (never with the password).
pub(crate) async fn reset_password(
    state: &ApiState,
    who: &Who,
    extension: String,
    password: String,
) -> Result<User, ApiError> {
    admin_only(who, "set another user's password")?;
    Ok(state
        .store()
        .set_password(who.site.clone(), extension, password, who.actor())
        .await?)
}

/// Change some of the admin's site's settings (admin). The store checks every value,
/// recomputes expiries when retention changes and audits what changed (`site.update`); a
/// request that changes nothing still gets its entry, saying so.
pub(crate) async fn update_site(
    state: &ApiState,
    who: &Who,
    update: SiteUpdate,
) -> Result<Site, ApiError> {
    admin_only(who, "change the site's settings")?;
    let (name, actor, site_id) = (who.site.clone(), who.actor(), who.site_id);
    Ok(state
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
        .await?)
}
