//! Who owns a channel, as the decisions need it: the store's directory snapshot (sites and
//! users, [`callrec_store::Directory`]) kept in memory and indexed for the ownership lookups
//! of SPEC §3.2.
//!
//! The daemon builds a new [`OwnerIndex`] whenever the store says the directory changed; a
//! decision never waits on the index file. The sites and users are the store's own types:
//! nothing is copied field by field, only the lookups are added.

use std::collections::HashMap;

use callrec_numbers::{NumberPlan, normalise};
use callrec_store::{Directory, Site, User};

/// A user's identity: site and extension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey {
    /// Site name.
    pub site: String,
    /// Extension.
    pub extension: String,
}

impl UserKey {
    /// The key of a user of the directory.
    pub fn of(user: &User) -> UserKey {
        UserKey {
            site: user.site.clone(),
            extension: user.extension.clone(),
        }
    }
}

impl std::fmt::Display for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.extension, self.site)
    }
}

/// The store's directory, indexed by site name, by extension and by normalised number.
#[derive(Debug, Clone)]
pub struct OwnerIndex {
    directory: Directory,
    /// Each site's place in `directory.sites`, by name.
    sites: HashMap<String, usize>,
    /// Each site's number plan, in the order of `directory.sites`: read for every new
    /// channel, so made once here.
    plans: Vec<NumberPlan>,
    by_extension: HashMap<String, Vec<usize>>,
    by_number: HashMap<(String, String), usize>,
    by_key: HashMap<UserKey, usize>,
}

impl OwnerIndex {
    /// Builds the indexes. Users of a site that is not listed are kept but never match.
    pub fn new(directory: Directory) -> OwnerIndex {
        let sites: HashMap<String, usize> = directory
            .sites
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let plans: Vec<NumberPlan> = directory
            .sites
            .iter()
            .map(|s| s.settings.number_plan())
            .collect();
        let mut by_extension: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_number: HashMap<(String, String), usize> = HashMap::new();
        let mut by_key = HashMap::new();
        for (i, user) in directory.users.iter().enumerate() {
            by_key.insert(UserKey::of(user), i);
            by_extension
                .entry(user.extension.clone())
                .or_default()
                .push(i);
            if let Some(&site) = sites.get(&user.site) {
                for number in &user.numbers {
                    // The store's normalisation, once, when the index is built.
                    let e164 = normalise(&number.normalised, &plans[site]);
                    let key = e164.strip_prefix('+').unwrap_or(&e164).to_owned();
                    by_number.entry((user.site.clone(), key)).or_insert(i);
                }
            }
        }
        OwnerIndex {
            directory,
            sites,
            plans,
            by_extension,
            by_number,
            by_key,
        }
    }

    /// The directory snapshot the index was built from.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// A site by name.
    pub fn site(&self, name: &str) -> Option<&Site> {
        self.sites.get(name).map(|&i| &self.directory.sites[i])
    }

    /// A user by key.
    pub fn user(&self, key: &UserKey) -> Option<&User> {
        self.by_key.get(key).map(|&i| &self.directory.users[i])
    }

    /// Every user.
    pub fn users(&self) -> &[User] {
        &self.directory.users
    }

    /// The user of an enabled site whose extension or one of whose numbers is `value`.
    ///
    /// An extension match wins over a number match; among several, the first user listed
    /// (and, for numbers, the first site listed).
    pub fn find(&self, value: &str) -> Option<&User> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        if let Some(found) = self.first_enabled(self.by_extension.get(value)) {
            return Some(found);
        }
        // A number is read with each site's plan: the same digits mean different numbers in
        // different countries, and a site's users dial in its conventions.
        self.directory
            .sites
            .iter()
            .zip(&self.plans)
            .filter(|(site, _)| site.settings.enabled)
            .find_map(|(site, plan)| {
                number_keys(value, plan).into_iter().find_map(|key| {
                    self.by_number
                        .get(&(site.name.clone(), key))
                        .map(|&i| &self.directory.users[i])
                })
            })
    }

    fn first_enabled(&self, idx: Option<&Vec<usize>>) -> Option<&User> {
        idx?.iter()
            .map(|&i| &self.directory.users[i])
            .find(|u| self.site(&u.site).is_some_and(|site| site.settings.enabled))
    }
}

/// The E.164 digits (no `+`) a number from the switch may stand for under a plan.
///
/// The same reading as the store's normalisation (SPEC §1.1: `+44…`, `0044…`, `44…` and the
/// national `0…` form are one number; six digits or fewer without `+` is an extension), done
/// with string operations only: it runs for every new channel, and most of those numbers are
/// outside parties that match no user, so the numbering database the store consults when a
/// number is saved is too slow for this path.
pub fn number_keys(raw: &str, plan: &NumberPlan) -> Vec<String> {
    let trimmed = raw.trim();
    let plus = trimmed.starts_with('+');
    if !trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        // Not a number (`anonymous`, a SIP URI): the store keeps such text as it is.
        return vec![trimmed.to_owned()];
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return Vec::new();
    }
    if plus {
        return vec![digits];
    }
    if digits.len() <= callrec_numbers::EXTENSION_MAX_DIGITS {
        return vec![digits];
    }
    let cc = plan.country_code.to_string();
    let np = plan.national_prefix.as_str();
    if let Some(rest) = digits.strip_prefix("00") {
        return vec![rest.to_owned()];
    }
    if plan.country_code == 1
        && let Some(rest) = digits.strip_prefix("011")
    {
        return vec![rest.to_owned()];
    }
    if !np.is_empty()
        && let Some(rest) = digits.strip_prefix(np)
    {
        return vec![format!("{cc}{rest}")];
    }
    // Already international without the `+`, or a national number without its prefix.
    vec![digits.clone(), format!("{cc}{digits}")]
}

/// How tests build an [`OwnerIndex`]: sites and users as the store would list them, without
/// a store. A user's id is their extension read as a number ([`testing::id_of`]), so a test
/// can name the owner of a recording row.
#[cfg(test)]
pub(crate) mod testing {
    use callrec_model::{RecordingMode, Role, SiteId, UserId};
    use callrec_numbers::normalise;
    use callrec_store::{Directory, Site, SiteSettings, User, UserNumber};
    use chrono::DateTime;

    use super::OwnerIndex;

    /// The id [`user`] gives the user with this (numeric) extension.
    pub fn id_of(extension: &str) -> UserId {
        UserId(extension.parse().expect("test extensions are numbers"))
    }

    /// A site, with the given settings.
    pub fn site(name: &str, settings: SiteSettings) -> Site {
        Site {
            id: SiteId(1),
            name: name.to_owned(),
            settings,
        }
    }

    /// A user of `site`, with extra numbers (DIDs) in any form.
    pub fn user(site: &Site, extension: &str, mode: RecordingMode, numbers: &[&str]) -> User {
        let plan = site.settings.number_plan();
        User {
            id: id_of(extension),
            site_id: site.id,
            site: site.name.clone(),
            extension: extension.to_owned(),
            display_name: None,
            mode,
            role: Role::User,
            numbers: numbers
                .iter()
                .map(|raw| UserNumber {
                    raw: (*raw).to_owned(),
                    normalised: normalise(raw, &plan),
                })
                .collect(),
            created_at: DateTime::UNIX_EPOCH,
        }
    }

    /// The index of these sites and users.
    pub fn index(sites: Vec<Site>, users: Vec<User>) -> OwnerIndex {
        OwnerIndex::new(Directory {
            version: 0,
            sites,
            users,
        })
    }
}

#[cfg(test)]
mod tests {
    use callrec_model::RecordingMode;
    use callrec_store::SiteSettings;

    use super::testing::{index, site, user};
    use super::*;

    fn directory() -> OwnerIndex {
        let default = site("default", SiteSettings::default());
        index(
            vec![default.clone()],
            vec![
                user(
                    &default,
                    "1001",
                    RecordingMode::AlwaysPausable,
                    &["+44 20 7745 6456"],
                ),
                user(&default, "1000", RecordingMode::Always, &[]),
            ],
        )
    }

    #[test]
    fn a_did_in_any_form_finds_its_user() {
        let dir = directory();
        for form in [
            "02077456456",
            "442077456456",
            "+442077456456",
            "0044 20 7745 6456",
        ] {
            assert_eq!(
                dir.find(form).map(|u| u.extension.as_str()),
                Some("1001"),
                "{form}"
            );
        }
        assert_eq!(dir.find("1000").map(|u| u.extension.as_str()), Some("1000"));
        assert!(dir.find("1002").is_none());
        assert!(dir.find("442920123123").is_none());
    }

    #[test]
    fn the_fast_reading_of_a_number_agrees_with_the_stores_normalisation() {
        let plan = NumberPlan::default();
        for raw in [
            "02077456456",
            "442077456456",
            "+442077456456",
            "0044 20 7745 6456",
            "(020) 7745 6456",
            "+1 212 555 0100",
            "0012125550100",
            "1001",
            "anonymous",
        ] {
            let e164 = normalise(raw, &plan);
            let key = e164.strip_prefix('+').unwrap_or(&e164).to_owned();
            assert!(
                number_keys(raw, &plan).contains(&key),
                "{raw}: store says {e164}, fast reading {:?}",
                number_keys(raw, &plan)
            );
        }
    }

    #[test]
    fn users_of_a_disabled_site_own_nothing() {
        let mut disabled = site("default", SiteSettings::default());
        disabled.settings.enabled = false;
        let dir = index(vec![disabled], directory().users().to_vec());
        assert!(dir.find("1001").is_none());
        assert!(dir.find("02077456456").is_none());
    }
}
