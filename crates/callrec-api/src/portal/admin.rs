//! The admin's pages beyond the recordings: one user (mode, role, a new portal password) and
//! the site's settings. Every change goes through the action the API uses
//! ([`crate::acts`]), so the rules (the last admin stays an admin, a password's length, each
//! setting's range) and the audit entries are the API's and the command line's; these
//! handlers only read the form and shape the page. Their templates' data lives here too, next
//! to the one place that fills it.

// The error side of these results is the reply itself, as in `handlers`.
#![allow(clippy::result_large_err)]

use askama::Template;
use callrec_model::{PauseBehavior, QuotaPolicy, RecordingMode, Role};
use callrec_store::{SiteSettings, SiteUpdate, User, UserUpdate};
use chrono_tz::Tz;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::handlers::{Page, audit, require_page, settle, signed_form};
use super::pages::{self, ModeChoice, Nav};
use super::session::{Form, Signed};
use crate::acts::{self, Who};
use crate::error::ApiError;
use crate::state::ApiState;

/// The signed-in admin for a page of `tab`, or the page to answer with: the sign-in page for
/// a stranger, 403 for a user.
fn admin_page(
    signed: Option<Signed>,
    here: &str,
    tab: &'static str,
    what: &str,
) -> Result<(Signed, Nav), Response> {
    let signed = require_page(signed, here)?;
    let nav = Nav::of(&signed.user, tab);
    if signed.user.role != Role::Admin {
        return Err(pages::error(
            ApiError::forbidden(format!("only an administrator may {what}")),
            Some(nav),
        ));
    }
    Ok((signed, nav))
}

/// What `?done=` says after a form went through.
fn done_message(pairs: &[(String, String)]) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == "done")
        .and_then(|(_, v)| match v.as_str() {
            "saved" => Some("Saved.".to_owned()),
            "password" => Some("Password set. Their portal sessions were signed out.".to_owned()),
            _ => None,
        })
}

// ---- one user ------------------------------------------------------------------------

pub(crate) struct RoleChoice {
    pub value: &'static str,
    pub label: &'static str,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "portal/user.html")]
pub(crate) struct UserPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub done: Option<String>,
    pub message: Option<String>,
    pub extension: String,
    pub name: String,
    pub site: String,
    pub numbers: String,
    pub mode: &'static str,
    pub role: String,
    /// The admin looking at their own account.
    pub is_self: bool,
    pub modes: Vec<ModeChoice>,
    pub roles: Vec<RoleChoice>,
    pub min_password: usize,
    pub max_password: usize,
}

/// The page of `extension` (a user of the admin's site), with `done` or `message` above it.
async fn user_page(
    state: &ApiState,
    signed: &Signed,
    extension: String,
    status: StatusCode,
    done: Option<String>,
    message: Option<String>,
) -> Result<Response, Response> {
    let nav = Nav::of(&signed.user, "users");
    let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
    let (site, ext) = (signed.user.site.clone(), extension.clone());
    let user: User = state
        .store()
        .read(move |v| v.user(&site, &ext))
        .await
        .map_err(|e| fail(e.into()))?;
    audit(
        state,
        signed,
        "user.read",
        format!("user:{}/{}", signed.user.site, user.extension),
        json!({"via": "portal"}),
    )
    .await
    .map_err(fail)?;
    let page = UserPage {
        nav: Some(nav.clone()),
        csrf: signed.user.csrf_token.clone(),
        done,
        message,
        is_self: user.id == signed.user.user_id,
        name: user.display_name.clone().unwrap_or_default(),
        site: user.site.clone(),
        numbers: user
            .numbers
            .iter()
            .map(|n| n.raw.clone())
            .collect::<Vec<_>>()
            .join(", "),
        mode: pages::mode_label(user.mode),
        role: user.role.to_string(),
        // An admin may give anyone any mode, as through the API.
        modes: RecordingMode::ALL
            .iter()
            .map(|m| ModeChoice {
                value: m.as_str(),
                label: pages::mode_label(*m),
                current: *m == user.mode,
            })
            .collect(),
        roles: Role::ALL
            .iter()
            .map(|r| RoleChoice {
                value: r.as_str(),
                label: match r {
                    Role::User => "User: their own recordings and calls",
                    Role::Admin => "Administrator: the whole site",
                },
                current: *r == user.role,
            })
            .collect(),
        extension: user.extension,
        min_password: callrec_store::MIN_PASSWORD_CHARS,
        max_password: callrec_store::MAX_PASSWORD_CHARS,
    };
    Ok(pages::render(status, &page))
}

/// `GET /users/{extension}`: one user of the admin's site, with the forms that change them.
pub(crate) async fn user(
    extension: String,
    state: ApiState,
    signed: Option<Signed>,
    pairs: Vec<(String, String)>,
    here: String,
) -> Page {
    settle(
        async move {
            let (signed, _) = admin_page(signed, &here, "users", "see the site's users")?;
            user_page(
                &state,
                &signed,
                extension,
                StatusCode::OK,
                done_message(&pairs),
                None,
            )
            .await
        }
        .await,
    )
}

/// The mode and role a user form asks for (each left as it is when the form lacks it).
fn user_update(form: &Form) -> Result<UserUpdate, ApiError> {
    let mode = match form.get("mode") {
        "" => None,
        m => Some(
            m.parse::<RecordingMode>()
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        ),
    };
    let role = match form.get("role") {
        "" => None,
        r => Some(
            r.parse::<Role>()
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        ),
    };
    Ok(UserUpdate {
        mode,
        role,
        ..UserUpdate::default()
    })
}

/// `POST /users/{extension}`: set a user's mode and role (admin), as
/// `PUT /api/v1/users/{extension}` does. A refusal the admin can act on (the site's last
/// admin, a bad value) is shown on the user's page with its status.
pub(crate) async fn update_user(
    extension: String,
    state: ApiState,
    signed: Option<Signed>,
    body: bytes::Bytes,
) -> Page {
    settle(
        async move {
            let (signed, nav, form) = signed_form(signed, "users", &body)?;
            let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
            let who = Who::from(&signed.user);
            acts::admin_only(&who, "change users").map_err(fail)?;
            let update = user_update(&form).map_err(fail)?;
            let done = acts::update_user(&state, &who, extension.clone(), update).await;
            user_form_outcome(&state, &signed, extension, done, "saved", "Not saved", fail).await
        }
        .await,
    )
}

/// `POST /users/{extension}/password`: set a user's portal password (admin), as `callrec user
/// passwd` does; `password` and `confirm` must agree. Their sessions end (the admin's own too,
/// when it is their own password).
pub(crate) async fn reset_password(
    extension: String,
    state: ApiState,
    signed: Option<Signed>,
    body: bytes::Bytes,
) -> Page {
    settle(
        async move {
            let (signed, nav, form) = signed_form(signed, "users", &body)?;
            let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
            let who = Who::from(&signed.user);
            acts::admin_only(&who, "set another user's password").map_err(fail)?;
            let (password, confirm) = (form.get("password"), form.get("confirm"));
            let done = if password != confirm {
                Err(ApiError::bad_request(
                    "the two passwords differ: type the same one twice",
                ))
            } else {
                acts::reset_password(&state, &who, extension.clone(), password.to_owned()).await
            };
            user_form_outcome(
                &state,
                &signed,
                extension,
                done,
                "password",
                "Password not set",
                fail,
            )
            .await
        }
        .await,
    )
}

/// Whether an error is one the admin can act on from the same page (a bad value, a conflict),
/// rather than one that needs a page of its own (403, 404, 5xx).
/// What a user form's action came to: back to the user's page saying `done`; a refusal the
/// admin can act on shown on that page under `not_done`; anything else an error page.
async fn user_form_outcome(
    state: &ApiState,
    signed: &Signed,
    extension: String,
    result: Result<callrec_store::User, ApiError>,
    done: &str,
    not_done: &str,
    fail: impl FnOnce(ApiError) -> Response,
) -> Result<Response, Response> {
    match result {
        Ok(user) => Ok(pages::redirect_to(format!(
            "/users/{}?done={done}",
            user.extension
        ))),
        Err(e) if refusal(&e) => {
            let message = format!("{not_done}: {}.", e.message.trim_end_matches('.'));
            user_page(state, signed, extension, e.status, None, Some(message)).await
        }
        Err(e) => Err(fail(e)),
    }
}

fn refusal(e: &ApiError) -> bool {
    matches!(
        e.status,
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY
    )
}

// ---- the site ------------------------------------------------------------------------

/// The units a quota is shown and typed in.
const QUOTA_UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("bytes", 1)];

/// The site form's fields as text, from the settings or as an admin typed them, so a refused
/// form comes back as it was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SiteForm {
    pub enabled: bool,
    pub default_mode: String,
    pub min_seconds: String,
    pub pause_behavior: String,
    pub max_pause_seconds: String,
    pub retention_days: String,
    pub legal_hold: bool,
    pub quota: String,
    pub quota_unit: String,
    pub quota_policy: String,
    pub timezone: String,
    pub country_code: String,
    pub national_prefix: String,
}

impl SiteForm {
    /// The form filled in with `s`; the quota in the largest unit that holds it whole.
    pub fn of(s: &SiteSettings) -> SiteForm {
        let (unit, size) = QUOTA_UNITS
            .iter()
            .copied()
            .find(|(_, size)| s.quota_bytes.is_multiple_of(*size))
            .unwrap_or(("bytes", 1));
        SiteForm {
            enabled: s.enabled,
            default_mode: s.default_mode.as_str().to_owned(),
            min_seconds: s.min_seconds.to_string(),
            pause_behavior: s.pause_behavior.as_str().to_owned(),
            max_pause_seconds: s.max_pause_seconds.to_string(),
            retention_days: s.retention_days.to_string(),
            legal_hold: s.legal_hold,
            quota: (s.quota_bytes / size).to_string(),
            quota_unit: unit.to_owned(),
            quota_policy: s.quota_policy.as_str().to_owned(),
            timezone: s.timezone.name().to_owned(),
            country_code: s.country_code.to_string(),
            national_prefix: s.national_prefix.clone(),
        }
    }

    /// The form as sent, shown again after a refusal.
    pub fn typed(form: &Form, current: &SiteSettings) -> SiteForm {
        let was = SiteForm::of(current);
        let text = |name: &str, was: &str| {
            if form.has(name) {
                form.get(name).trim().to_owned()
            } else {
                was.to_owned()
            }
        };
        let flag = |name: &str, was: bool| match form.get(name) {
            "1" => true,
            "0" => false,
            _ => was,
        };
        SiteForm {
            enabled: flag("enabled", was.enabled),
            default_mode: text("default_mode", &was.default_mode),
            min_seconds: text("min_seconds", &was.min_seconds),
            pause_behavior: text("pause_behavior", &was.pause_behavior),
            max_pause_seconds: text("max_pause_seconds", &was.max_pause_seconds),
            retention_days: text("retention_days", &was.retention_days),
            legal_hold: flag("legal_hold", was.legal_hold),
            quota: text("quota", &was.quota),
            quota_unit: text("quota_unit", &was.quota_unit),
            quota_policy: text("quota_policy", &was.quota_policy),
            timezone: text("timezone", &was.timezone),
            country_code: text("country_code", &was.country_code),
            national_prefix: text("national_prefix", &was.national_prefix),
        }
    }
}

/// The change a site form asks for: each field it carries, read and named when it is not
/// understood; a field it lacks is left as it is. The values' ranges are the store's to check
/// (as for `PUT /api/v1/site`).
pub(crate) fn site_update(form: &Form) -> Result<SiteUpdate, ApiError> {
    fn field<T>(
        form: &Form,
        name: &str,
        label: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        if !form.has(name) {
            return Ok(None);
        }
        let value = form.get(name).trim();
        if value.is_empty() {
            return Err(ApiError::bad_request(format!("{label} is required")));
        }
        parse(value)
            .map(Some)
            .map_err(|why| ApiError::bad_request(format!("{label}: {why}")))
    }
    fn whole<T: std::str::FromStr>(v: &str) -> Result<T, String> {
        v.parse::<T>()
            .map_err(|_| format!("`{}` is not a whole number in range", clip(v)))
    }
    fn named<T: std::str::FromStr<Err = callrec_model::UnknownName>>(v: &str) -> Result<T, String> {
        v.parse::<T>().map_err(|e| e.to_string())
    }
    fn flag(v: &str) -> Result<bool, String> {
        match v {
            "1" => Ok(true),
            "0" => Ok(false),
            _ => Err("expected 1 or 0".to_owned()),
        }
    }
    let quota_bytes = match field(form, "quota", "Storage quota", |v| {
        v.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| format!("`{}` is not a size", clip(v)))
    })? {
        None => None,
        Some(n) => {
            let unit = form.get("quota_unit");
            let size = QUOTA_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, size)| *size)
                .ok_or_else(|| ApiError::bad_request("Storage quota: choose GiB, MiB or bytes"))?;
            let bytes = (n * size as f64).round();
            if bytes > i64::MAX as f64 {
                return Err(ApiError::bad_request("Storage quota: too large"));
            }
            Some(bytes as u64)
        }
    };
    Ok(SiteUpdate {
        enabled: field(form, "enabled", "Recording", flag)?,
        default_mode: field(
            form,
            "default_mode",
            "Mode of new users",
            named::<RecordingMode>,
        )?,
        retention_days: field(form, "retention_days", "Days kept", whole::<u32>)?,
        legal_hold: field(form, "legal_hold", "Legal hold", flag)?,
        pause_behavior: field(form, "pause_behavior", "Pauses", named::<PauseBehavior>)?,
        min_seconds: field(form, "min_seconds", "Shortest recording kept", whole::<u32>)?,
        max_pause_seconds: field(form, "max_pause_seconds", "Longest pause", whole::<u32>)?,
        timezone: field(form, "timezone", "Time zone", |v| {
            v.parse::<Tz>()
                .map_err(|_| format!("`{}` is not an IANA time zone name", clip(v)))
        })?,
        country_code: field(form, "country_code", "Country code", whole::<u16>)?,
        // The one field that may be empty: a number plan without a trunk prefix.
        national_prefix: form
            .has("national_prefix")
            .then(|| form.get("national_prefix").trim().to_owned()),
        quota_bytes,
        quota_policy: field(form, "quota_policy", "Over quota", named::<QuotaPolicy>)?,
    })
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

pub(crate) struct Choice {
    pub value: &'static str,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "portal/site.html")]
pub(crate) struct SitePage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub site: String,
    pub done: Option<String>,
    pub message: Option<String>,
    pub f: SiteForm,
    pub modes: Vec<Choice>,
    pub pause_behaviors: Vec<Choice>,
    pub quota_policies: Vec<Choice>,
    pub units: Vec<&'static str>,
}

impl SitePage {
    fn new(
        signed: &Signed,
        nav: Nav,
        f: SiteForm,
        done: Option<String>,
        message: Option<String>,
    ) -> SitePage {
        SitePage {
            nav: Some(nav),
            csrf: signed.user.csrf_token.clone(),
            site: signed.user.site.clone(),
            done,
            message,
            f,
            modes: RecordingMode::ALL
                .iter()
                .map(|m| Choice {
                    value: m.as_str(),
                    label: pages::mode_label(*m),
                })
                .collect(),
            pause_behaviors: PauseBehavior::ALL
                .iter()
                .map(|p| Choice {
                    value: p.as_str(),
                    label: match p {
                        PauseBehavior::Silence => {
                            "Silence: the pause is kept as silence, so the recording's \
                             timeline matches the call"
                        }
                        PauseBehavior::Skip => {
                            "Skip: nothing is written while paused, so the recording is shorter"
                        }
                    },
                })
                .collect(),
            quota_policies: QuotaPolicy::ALL
                .iter()
                .map(|p| Choice {
                    value: p.as_str(),
                    label: match p {
                        QuotaPolicy::Alert => "Keep recording and flag the user as over quota",
                        QuotaPolicy::EvictOldest => {
                            "Delete the user's oldest recordings not on hold until it fits"
                        }
                    },
                })
                .collect(),
            units: QUOTA_UNITS.iter().map(|(name, _)| *name).collect(),
        }
    }
}

async fn site_settings(state: &ApiState, signed: &Signed) -> Result<SiteSettings, ApiError> {
    let site_id = signed.user.site_id;
    Ok(state
        .store()
        .read(move |v| Ok(v.site_by_id(site_id)?.settings))
        .await?)
}

/// `GET /site`: the site's settings, in one form (admin).
pub(crate) async fn site(
    state: ApiState,
    signed: Option<Signed>,
    pairs: Vec<(String, String)>,
    here: String,
) -> Page {
    settle(
        async move {
            let (signed, nav) = admin_page(signed, &here, "site", "see the site's settings")?;
            let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
            let settings = site_settings(&state, &signed).await.map_err(fail)?;
            audit(
                &state,
                &signed,
                "site.read",
                format!("site:{}", signed.user.site),
                json!({"via": "portal"}),
            )
            .await
            .map_err(fail)?;
            let page = SitePage::new(
                &signed,
                nav.clone(),
                SiteForm::of(&settings),
                done_message(&pairs),
                None,
            );
            Ok(pages::render(StatusCode::OK, &page))
        }
        .await,
    )
}

/// `POST /site`: change the site's settings (admin), as `PUT /api/v1/site` does. A refused
/// value comes back on the page, the form as it was sent, with its status.
pub(crate) async fn update_site(
    state: ApiState,
    signed: Option<Signed>,
    body: bytes::Bytes,
) -> Page {
    settle(
        async move {
            let (signed, nav, form) = signed_form(signed, "site", &body)?;
            let fail = |e: ApiError| pages::error(e, Some(nav.clone()));
            let who = Who::from(&signed.user);
            acts::admin_only(&who, "change the site's settings").map_err(fail)?;
            let done = match site_update(&form) {
                Ok(update) => acts::update_site(&state, &who, update).await,
                Err(e) => Err(e),
            };
            match done {
                Ok(_) => Ok(pages::redirect("/site?done=saved")),
                Err(e) if refusal(&e) => {
                    let current = site_settings(&state, &signed).await.map_err(fail)?;
                    let message = format!("Not saved: {}.", e.message.trim_end_matches('.'));
                    let page = SitePage::new(
                        &signed,
                        nav.clone(),
                        SiteForm::typed(&form, &current),
                        None,
                        Some(message),
                    );
                    Ok(pages::render(e.status, &page))
                }
                Err(e) => Err(fail(e)),
            }
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(q: &str) -> Form {
        Form::parse(q.as_bytes()).unwrap()
    }

    #[test]
    fn the_site_form_of_the_settings_reads_back_as_no_change() {
        let s = SiteSettings {
            quota_bytes: 512 << 20,
            national_prefix: String::new(),
            ..SiteSettings::default()
        };
        let f = SiteForm::of(&s);
        assert_eq!((f.quota.as_str(), f.quota_unit.as_str()), ("512", "MiB"));
        let q = serde_urlencoded::to_string([
            ("enabled", if f.enabled { "1" } else { "0" }),
            ("default_mode", &f.default_mode),
            ("min_seconds", &f.min_seconds),
            ("pause_behavior", &f.pause_behavior),
            ("max_pause_seconds", &f.max_pause_seconds),
            ("retention_days", &f.retention_days),
            ("legal_hold", if f.legal_hold { "1" } else { "0" }),
            ("quota", &f.quota),
            ("quota_unit", &f.quota_unit),
            ("quota_policy", &f.quota_policy),
            ("timezone", &f.timezone),
            ("country_code", &f.country_code),
            ("national_prefix", &f.national_prefix),
        ])
        .unwrap();
        let update = site_update(&form(&q)).unwrap();
        assert_eq!(update.apply_to(&s), s);
        assert_eq!(update.national_prefix.as_deref(), Some(""));
    }

    #[test]
    fn a_checked_box_wins_over_its_hidden_zero_and_an_absent_field_is_left_alone() {
        let u = site_update(&form("legal_hold=0&legal_hold=1&enabled=0")).unwrap();
        assert_eq!(u.legal_hold, Some(true));
        assert_eq!(u.enabled, Some(false));
        assert_eq!(u.retention_days, None);
        assert_eq!(u.quota_bytes, None);
        assert_eq!(
            site_update(&form("quota=1.5&quota_unit=GiB"))
                .unwrap()
                .quota_bytes,
            Some(3 << 29)
        );
    }

    #[test]
    fn a_bad_site_field_is_refused_by_its_label() {
        for (q, label) in [
            ("retention_days=", "Days kept"),
            ("retention_days=-1", "Days kept"),
            ("pause_behavior=loud", "Pauses"),
            ("timezone=Mars%2FOlympus", "Time zone"),
            ("quota=lots&quota_unit=GiB", "Storage quota"),
            ("quota=1&quota_unit=TB", "Storage quota"),
            ("legal_hold=yes", "Legal hold"),
        ] {
            let e = site_update(&form(q)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.starts_with(label), "{q}: {}", e.message);
        }
    }

    #[test]
    fn a_user_form_changes_only_what_it_carries() {
        let u = user_update(&form("mode=always")).unwrap();
        assert_eq!(u.mode, Some(RecordingMode::Always));
        assert_eq!(u.role, None);
        assert!(user_update(&form("role=owner")).is_err());
    }
}
