//! In-switch arming (SPEC §3.3): what callrec publishes to the switch so that the shipped
//! dialplan (`dialplan/callrec-arm.xml`) arms the recording of an automatically recorded
//! user's own leg itself, to start in the channel's thread as the leg answers.
//!
//! The switch's hash (mod_hash, realm [`REALM`]) holds:
//!
//! - `user_<extension>` → the site's `min_seconds`, for every extension that names (SPEC §3.2,
//!   [`OwnerIndex::find`]) a user whose mode records on answer;
//! - `spool` → the spool directory and `format` → the file extension, so the armed file is
//!   `<spool>/<leg uuid>.<format>`: a path whose stem is a UUID, which callrec reads as the
//!   recording's id ([`crate::recorder::Settings::recording_id_of_path`]).
//!
//! Publishing reads what the switch holds (`hash_dump db callrec`) and sends only the
//! difference, `spool` and `format` before any user, so the dialplan never arms a file into
//! a directory callrec does not watch. Decisions are plain functions ([`entries`],
//! [`parse_dump`], [`changes`]); `publish` only asks and sends.

use std::collections::BTreeMap;

use crate::core::{Core, QueryError};
use crate::directory::{OwnerIndex, UserKey};
use crate::recorder::Settings;

/// The hash realm the dialplan reads.
pub const REALM: &str = "callrec";

/// The entries the dialplan should find, by key.
pub fn entries(owners: &OwnerIndex, settings: &Settings) -> BTreeMap<String, String> {
    let mut wanted = BTreeMap::new();
    wanted.insert(
        "spool".to_owned(),
        settings.spool_dir.trim_end_matches('/').to_owned(),
    );
    wanted.insert("format".to_owned(), settings.format.clone());
    for user in owners.users() {
        let ext = user.extension.as_str();
        // A key cannot hold the hash command's separator; such an extension is armed over
        // the Event Socket as before.
        if ext.is_empty() || ext.contains(['/', ' ']) {
            continue;
        }
        // The user the dialplan's `callrec_user`/`user_name` would name, as callrec reads it.
        let named = owners
            .find(ext)
            .is_some_and(|found| UserKey::of(found) == UserKey::of(user));
        if !named || !user.mode.records_on_answer() {
            continue;
        }
        let Some(site) = owners.site(&user.site) else {
            continue;
        };
        wanted.insert(format!("user_{ext}"), site.settings.min_seconds.to_string());
    }
    wanted
}

/// The entries of [`REALM`] in a `hash_dump db callrec` answer (`D/callrec_<key>/<value>`
/// lines; the dump matches the realm as a substring, so other realms' lines are skipped).
pub fn parse_dump(body: &str) -> BTreeMap<String, String> {
    let prefix = format!("D/{REALM}_");
    body.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| rest.split_once('/'))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// The `hash` commands that turn `current` into `wanted`: inserts first (`spool` and
/// `format` before the users), then deletes.
pub fn changes(
    current: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut inserts: Vec<(&String, &String)> = wanted
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .collect();
    inserts.sort_by_key(|(k, _)| k.starts_with("user_"));
    let deletes = current
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .map(|k| format!("hash delete/{REALM}/{k}"));
    inserts
        .into_iter()
        .map(|(k, v)| format!("hash insert/{REALM}/{k}/{v}"))
        .chain(deletes)
        .collect()
}

/// Brings the switch's hash up to date; returns how many commands that took.
pub(crate) async fn publish(core: &Core) -> Result<usize, QueryError> {
    let wanted = {
        let rec = core.recorder();
        entries(rec.owners(), rec.settings())
    };
    // An empty realm is an empty output (`job_result`).
    let dump = core.query(format!("hash_dump db {REALM}")).await?;
    let current = parse_dump(&dump);
    let commands = changes(&current, &wanted);
    for command in &commands {
        core.query(command.clone()).await?;
    }
    Ok(commands.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::testing::{index, site, user};
    use callrec_model::RecordingMode;
    use callrec_store::{Site, SiteSettings};

    fn settings() -> Settings {
        Settings {
            spool_dir: "/var/spool/callrec/".into(),
            format: "wav".into(),
            owner_headers: Settings::default_owner_headers(),
            feature_codes: callrec_config::FeatureCodesConfig::default(),
            resumed_prompt: String::new(),
        }
    }

    fn site_with(name: &str, min_seconds: u32, enabled: bool) -> Site {
        let mut s = site(
            name,
            SiteSettings {
                min_seconds,
                ..SiteSettings::default()
            },
        );
        s.settings.enabled = enabled;
        s
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn only_users_recorded_on_answer_are_published_with_their_sites_minimum() {
        let (on, off) = (site_with("default", 3, true), site_with("off", 5, false));
        let owners = index(
            vec![on.clone(), off.clone()],
            vec![
                user(&on, "1001", RecordingMode::Always, &[]),
                user(&on, "1002", RecordingMode::AlwaysPausable, &[]),
                user(&on, "1003", RecordingMode::Never, &[]),
                user(&on, "1004", RecordingMode::OnDemand, &[]),
                user(&off, "2001", RecordingMode::Always, &[]),
            ],
        );
        assert_eq!(
            entries(&owners, &settings()),
            map(&[
                ("format", "wav"),
                ("spool", "/var/spool/callrec"),
                ("user_1001", "3"),
                ("user_1002", "3"),
            ])
        );
    }

    #[test]
    fn an_extension_is_published_for_the_user_callrec_would_name_by_it() {
        // Two sites use 1001; callrec names the first site's user by it (never recorded), so
        // the dialplan must not arm 1001 for the second site's user.
        let (a, b) = (site_with("a", 3, true), site_with("b", 3, true));
        let owners = index(
            vec![a.clone(), b.clone()],
            vec![
                user(&a, "1001", RecordingMode::Never, &[]),
                user(&b, "1001", RecordingMode::Always, &[]),
            ],
        );
        assert!(!entries(&owners, &settings()).contains_key("user_1001"));
    }

    #[test]
    fn the_dump_is_read_for_this_realm_only() {
        let dump = "D/callrec_spool//var/spool/callrec\nD/callrec_user_1001/3\n\
                    D/xcallrec_user_9/1\nD/default-last_dial_1001/9999\nL/x/1/1/1/1\n";
        assert_eq!(
            parse_dump(dump),
            map(&[("spool", "/var/spool/callrec"), ("user_1001", "3")])
        );
    }

    #[test]
    fn changes_send_the_difference_with_the_directories_before_the_users() {
        let current = map(&[("user_1001", "3"), ("user_1005", "3")]);
        let wanted = map(&[
            ("format", "wav"),
            ("spool", "/s"),
            ("user_1001", "3"),
            ("user_1002", "4"),
        ]);
        assert_eq!(
            changes(&current, &wanted),
            vec![
                "hash insert/callrec/format/wav",
                "hash insert/callrec/spool//s",
                "hash insert/callrec/user_1002/4",
                "hash delete/callrec/user_1005",
            ]
        );
        assert!(changes(&wanted, &wanted).is_empty());
    }
}
