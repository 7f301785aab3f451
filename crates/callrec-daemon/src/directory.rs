//! Who the users are, as the decisions need them: an in-memory copy of the store's
//! directory (sites and users), indexed for the ownership lookups of SPEC §3.2.
//!
//! The daemon rebuilds it whenever the store says the directory changed; a decision never
//! waits on the index.

use std::collections::HashMap;

use callrec_store::{PauseBehavior, RecordingMode};

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
    /// Country calling code for number normalisation, e.g. `44`.
    pub country_code: String,
    /// National trunk prefix, e.g. `0`.
    pub national_prefix: String,
}

impl SiteRules {
    /// The settings of a site with SPEC §1's defaults.
    pub fn with_defaults(name: &str) -> SiteRules {
        SiteRules {
            name: name.to_owned(),
            enabled: true,
            pause_behavior: PauseBehavior::Silence,
            min_seconds: 3,
            country_code: "44".to_owned(),
            national_prefix: "0".to_owned(),
        }
    }
}

/// One user as the decisions see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The site the user belongs to.
    pub site: String,
    /// The user's extension, e.g. `1001`.
    pub extension: String,
    /// The user's recording mode.
    pub mode: RecordingMode,
    /// Extra numbers (DIDs), as entered.
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
    by_number: HashMap<String, Vec<usize>>,
    by_key: HashMap<UserKey, usize>,
}

impl Directory {
    /// Builds the indexes. Users of a site that is not listed are kept but never match.
    pub fn new(sites: Vec<SiteRules>, users: Vec<DirectoryUser>) -> Directory {
        let sites: HashMap<String, SiteRules> =
            sites.into_iter().map(|s| (s.name.clone(), s)).collect();
        let mut by_extension: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_number: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_key = HashMap::new();
        for (i, user) in users.iter().enumerate() {
            by_key.insert(user.key(), i);
            by_extension
                .entry(user.extension.clone())
                .or_default()
                .push(i);
            if let Some(site) = sites.get(&user.site) {
                for number in &user.numbers {
                    if let Some(n) = normalise(number, site) {
                        by_number.entry(n).or_default().push(i);
                    }
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
        // A number is normalised with each site's rules: the same digits mean different
        // numbers in different countries, and a site's users dial in its conventions.
        for site in self.sites.values().filter(|s| s.enabled) {
            if let Some(n) = normalise(value, site) {
                let hit = self.by_number.get(&n).and_then(|idx| {
                    idx.iter()
                        .map(|&i| &self.users[i])
                        .find(|u| u.site == site.name)
                });
                if hit.is_some() {
                    return hit;
                }
            }
        }
        None
    }

    fn first_enabled(&self, idx: Option<&Vec<usize>>) -> Option<&DirectoryUser> {
        idx?.iter()
            .map(|&i| &self.users[i])
            .find(|u| self.sites.get(&u.site).is_some_and(|site| site.enabled))
    }
}

/// A number in E.164 digits (no `+`) under a site's rules, or `None` if it holds no digits.
///
/// `+44 20…`, `0044 20…`, `44 20…` and `020…` all give `4420…`; anything short (an extension)
/// stays as its digits.
pub fn normalise(raw: &str, site: &SiteRules) -> Option<String> {
    let trimmed = raw.trim();
    let international = trimmed.starts_with('+');
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    if international {
        return Some(digits);
    }
    if let Some(rest) = digits.strip_prefix("00") {
        return Some(rest.to_owned());
    }
    // Short numbers are extensions or service codes, never national numbers.
    if digits.len() <= 6 {
        return Some(digits);
    }
    if !site.national_prefix.is_empty()
        && let Some(rest) = digits.strip_prefix(site.national_prefix.as_str())
    {
        return Some(format!("{}{}", site.country_code, rest));
    }
    Some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> Directory {
        Directory::new(
            vec![SiteRules::with_defaults("default")],
            vec![
                DirectoryUser {
                    site: "default".into(),
                    extension: "1001".into(),
                    mode: RecordingMode::AlwaysPausable,
                    numbers: vec!["+44 20 7745 6456".into()],
                },
                DirectoryUser {
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
    fn users_of_a_disabled_site_own_nothing() {
        let mut site = SiteRules::with_defaults("default");
        site.enabled = false;
        let dir = Directory::new(vec![site], directory().users().to_vec());
        assert!(dir.find("1001").is_none());
        assert!(dir.find("02077456456").is_none());
    }
}
