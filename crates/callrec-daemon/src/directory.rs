//! Who the users are, as the decisions need them: an in-memory copy of the store's
//! directory (sites and users), indexed for the ownership lookups of SPEC §3.2.
//!
//! The daemon rebuilds it whenever the store says the directory changed; a decision never
//! waits on the index.

use std::collections::HashMap;

use callrec_model::{PauseBehavior, RecordingMode, UserId};
use callrec_numbers::{NumberPlan, normalise};

/// A site's settings that recording decisions depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRules {
    /// Site name, e.g. `default`.
    pub name: String,
    /// Recording on or off for the whole site.
    pub enabled: bool,
    /// How a pause is carried out.
    pub pause_behavior: PauseBehavior,
    /// Recordings shorter than this are discarded by the switch (`RECORD_MIN_SEC`).
    pub min_seconds: u32,
    /// How the site writes numbers (normalisation, SPEC §1.1).
    pub plan: NumberPlan,
}

impl SiteRules {
    /// The settings of a site with SPEC §1's defaults.
    pub fn with_defaults(name: &str) -> SiteRules {
        SiteRules {
            name: name.to_owned(),
            enabled: true,
            pause_behavior: PauseBehavior::Silence,
            min_seconds: 3,
            plan: NumberPlan::default(),
        }
    }
}

/// One user as the decisions see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The user's id in the index, when the directory came from it.
    pub id: Option<UserId>,
    /// The site the user belongs to.
    pub site: String,
    /// The user's extension, e.g. `1001`.
    pub extension: String,
    /// The user's recording mode.
    pub mode: RecordingMode,
    /// Extra numbers (DIDs), in any form (normalised with the site's plan when indexed).
    pub numbers: Vec<String>,
}

/// A user's identity: site and extension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey {
    /// Site name.
    pub site: String,
    /// Extension.
    pub extension: String,
}

impl std::fmt::Display for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.extension, self.site)
    }
}

impl DirectoryUser {
    /// This user's key.
    pub fn key(&self) -> UserKey {
        UserKey {
            site: self.site.clone(),
            extension: self.extension.clone(),
        }
    }
}

/// Sites and users, indexed by extension and by normalised number.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    sites: HashMap<String, SiteRules>,
    users: Vec<DirectoryUser>,
    by_extension: HashMap<String, Vec<usize>>,
    by_number: HashMap<(String, String), usize>,
    by_key: HashMap<UserKey, usize>,
}

impl Directory {
    /// Builds the indexes. Users of a site that is not listed are kept but never match.
    pub fn new(sites: Vec<SiteRules>, users: Vec<DirectoryUser>) -> Directory {
        let sites: HashMap<String, SiteRules> =
            sites.into_iter().map(|s| (s.name.clone(), s)).collect();
        let mut by_extension: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_number: HashMap<(String, String), usize> = HashMap::new();
        let mut by_key = HashMap::new();
        for (i, user) in users.iter().enumerate() {
            by_key.insert(user.key(), i);
            by_extension
                .entry(user.extension.clone())
                .or_default()
                .push(i);
            if let Some(site) = sites.get(&user.site) {
                for number in &user.numbers {
                    // The store's normalisation, once, when the directory is built.
                    let e164 = normalise(number, &site.plan);
                    let key = e164.strip_prefix('+').unwrap_or(&e164).to_owned();
                    by_number.entry((site.name.clone(), key)).or_insert(i);
                }
            }
        }
        Directory {
            sites,
            users,
            by_extension,
            by_number,
            by_key,
        }
    }

    /// A site's rules.
    pub fn site(&self, name: &str) -> Option<&SiteRules> {
        self.sites.get(name)
    }

    /// A user by key.
    pub fn user(&self, key: &UserKey) -> Option<&DirectoryUser> {
        self.by_key.get(key).map(|&i| &self.users[i])
    }

    /// Every user.
    pub fn users(&self) -> &[DirectoryUser] {
        &self.users
    }

    /// The user of an enabled site whose extension or one of whose numbers is `value`.
    ///
    /// An extension match wins over a number match; among several, the first user listed.
    pub fn find(&self, value: &str) -> Option<&DirectoryUser> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        if let Some(found) = self.first_enabled(self.by_extension.get(value)) {
            return Some(found);
        }
        // A number is read with each site's plan: the same digits mean different numbers in
        // different countries, and a site's users dial in its conventions.
        self.sites
            .values()
            .filter(|site| site.enabled)
            .find_map(|site| {
                number_keys(value, &site.plan).into_iter().find_map(|key| {
                    self.by_number
                        .get(&(site.name.clone(), key))
                        .map(|&i| &self.users[i])
                })
            })
    }

    fn first_enabled(&self, idx: Option<&Vec<usize>>) -> Option<&DirectoryUser> {
        idx?.iter()
            .map(|&i| &self.users[i])
            .find(|u| self.sites.get(&u.site).is_some_and(|site| site.enabled))
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

/// The directory as the store keeps it, for the daemon's decisions.
pub fn from_store(dir: &callrec_store::Directory) -> Directory {
    let sites = dir
        .sites
        .iter()
        .map(|site| SiteRules {
            name: site.name.clone(),
            enabled: site.settings.enabled,
            pause_behavior: site.settings.pause_behavior,
            min_seconds: site.settings.min_seconds,
            plan: site.settings.number_plan(),
        })
        .collect();
    let users = dir
        .users
        .iter()
        .map(|user| DirectoryUser {
            id: Some(user.id),
            site: user.site.clone(),
            extension: user.extension.clone(),
            mode: user.mode,
            numbers: user.numbers.iter().map(|n| n.normalised.clone()).collect(),
        })
        .collect();
    Directory::new(sites, users)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> Directory {
        Directory::new(
            vec![SiteRules::with_defaults("default")],
            vec![
                DirectoryUser {
                    id: None,
                    site: "default".into(),
                    extension: "1001".into(),
                    mode: RecordingMode::AlwaysPausable,
                    numbers: vec!["+44 20 7745 6456".into()],
                },
                DirectoryUser {
                    id: None,
                    site: "default".into(),
                    extension: "1000".into(),
                    mode: RecordingMode::Always,
                    numbers: vec![],
                },
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
        let mut site = SiteRules::with_defaults("default");
        site.enabled = false;
        let dir = Directory::new(vec![site], directory().users().to_vec());
        assert!(dir.find("1001").is_none());
        assert!(dir.find("02077456456").is_none());
    }
}
