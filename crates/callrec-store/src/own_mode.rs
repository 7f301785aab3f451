//! A person choosing their own recording mode in the portal (SPEC §5.1: "their mode,
//! limited to what the site allows").
//!
//! The site's `default_mode` is its recording policy, so it is the floor a user may choose
//! from: any mode that records at least as much as the site's default. With the default
//! `always_pausable`, a user may pick `always_pausable` or `always`, never `on_demand` or
//! `never`; a site whose default is `on_demand` lets users pick anything but `never`. An
//! admin may pick any mode (they can set anyone's through the API anyway). A mode an admin
//! set below the floor stays until the user raises it.

use callrec_model::{RecordingMode, Role, UserId};

use crate::error::StoreError;
use crate::records::{SiteSettings, User, UserUpdate};
use crate::store::Store;
use crate::view::ReadView;

/// How much of a user's calls a mode records, least first.
fn coverage(mode: RecordingMode) -> u8 {
    match mode {
        RecordingMode::Never => 0,
        RecordingMode::OnDemand => 1,
        RecordingMode::AlwaysPausable => 2,
        RecordingMode::Always => 3,
    }
}

/// The modes a person of `role` may choose for themselves in a site with `settings`, in the
/// model's order.
pub fn modes_open_to(role: Role, settings: &SiteSettings) -> Vec<RecordingMode> {
    RecordingMode::ALL
        .iter()
        .copied()
        .filter(|m| role == Role::Admin || coverage(*m) >= coverage(settings.default_mode))
        .collect()
}

impl Store {
    /// Set the caller's own recording mode, within [`modes_open_to`]. Audited like any mode
    /// change (`user.set_mode`), with the user as the actor.
    pub fn set_own_mode(
        &mut self,
        user: UserId,
        mode: RecordingMode,
        actor: &str,
    ) -> Result<User, StoreError> {
        let view = ReadView::new(&self.conn);
        let me = view.user_by_id(user)?;
        let site = view.site_by_id(me.site_id)?;
        let open = modes_open_to(me.role, &site.settings);
        if !open.contains(&mode) {
            let names: Vec<&str> = open.iter().map(|m| m.as_str()).collect();
            return Err(StoreError::invalid(
                "mode",
                mode.as_str(),
                format!(
                    "records less than the site's default ({}); choose one of: {}",
                    site.settings.default_mode.as_str(),
                    names.join(", ")
                ),
            ));
        }
        let update = UserUpdate {
            mode: Some(mode),
            ..UserUpdate::default()
        };
        self.update_user(&site.name, &me.extension, &update, actor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(default_mode: RecordingMode) -> SiteSettings {
        SiteSettings {
            default_mode,
            ..SiteSettings::default()
        }
    }

    #[test]
    fn a_user_may_only_choose_modes_that_record_at_least_the_sites_default() {
        use RecordingMode::*;
        let open = modes_open_to(Role::User, &site(AlwaysPausable));
        assert!(open.contains(&Always) && open.contains(&AlwaysPausable));
        assert!(!open.contains(&OnDemand) && !open.contains(&Never));
        let open = modes_open_to(Role::User, &site(OnDemand));
        assert_eq!(open.len(), 3);
        assert!(!open.contains(&Never));
        assert_eq!(modes_open_to(Role::User, &site(Never)).len(), 4);
    }

    #[test]
    fn an_admin_may_choose_any_mode() {
        assert_eq!(
            modes_open_to(Role::Admin, &site(RecordingMode::Always)).len(),
            RecordingMode::ALL.len()
        );
    }
}
