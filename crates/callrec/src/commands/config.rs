//! `callrec config check` and `callrec config example`.

use std::path::Path;

use callrec_config::{Config, EXAMPLE_TOML};
use callrec_model::Prompt;

use crate::commands::out;
use crate::exit::Outcome;

/// Prints the effective settings (secrets redacted, each non-default value with where it
/// came from) on stdout, and a one-line verdict on stderr. Reaching here means the
/// configuration loaded, so it is valid; the TLS certificate and key, when set, are read as
/// `serve` reads them, and one that `serve` would refuse fails the check the same way (78).
pub fn check(config: &Config, file: Option<&Path>) -> anyhow::Result<Outcome> {
    out::print(&config.effective_toml())?;
    for warning in warnings(config, &Disk) {
        eprintln!("warning: {warning}");
    }
    let api = crate::serve::api_config(config)?;
    match &api.tls {
        Some(tls) => eprintln!(
            "api: TLS on: HTTPS on {} with {} ({} certificate{} in the chain)",
            config.api.listen,
            tls.cert_path().display(),
            tls.chain_len(),
            if tls.chain_len() == 1 { "" } else { "s" }
        ),
        None => eprintln!(
            "api: TLS off: plain HTTP on {}{}",
            config.api.listen,
            if config.api.secure_cookies {
                " (secure_cookies: a TLS-terminating proxy in front)"
            } else {
                ""
            }
        ),
    }
    match file {
        Some(path) => eprintln!("configuration OK: {}", path.display()),
        None => eprintln!("configuration OK: no config file (defaults and environment)"),
    }
    Ok(Outcome::Success)
}

/// Prints the example config file, ready to be saved and edited.
pub fn example() -> anyhow::Result<Outcome> {
    out::print(EXAMPLE_TOML)?;
    Ok(Outcome::Success)
}

/// What `config check` needs to know about the disk, so the rules can be tested without one.
trait Filesystem {
    /// Whether `path` is an existing regular file.
    fn is_file(&self, path: &Path) -> bool;
    /// The id of the filesystem holding `path`, when it exists.
    fn device(&self, path: &Path) -> Option<u64>;
}

/// The real disk.
struct Disk;

impl Filesystem for Disk {
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn device(&self, path: &Path) -> Option<u64> {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(path).ok().map(|m| m.dev())
    }
}

/// Things that are valid configuration but will hurt at run time: a prompt that cannot be
/// played, a spool that forces ingest to copy instead of rename.
fn warnings(config: &Config, disk: &impl Filesystem) -> Vec<String> {
    let mut warnings = Vec::new();
    for prompt in Prompt::ALL {
        let path = config.prompts.path(prompt);
        if !disk.is_file(&path) {
            // A relative path is the daemon's working directory's (systemd: the unit's
            // WorkingDirectory), not necessarily the one this check runs in.
            let relative = if path.is_relative() {
                " (relative to the working directory; give `prompts.dir` as an absolute path)"
            } else {
                ""
            };
            warnings.push(format!(
                "prompts.{}: {} is not a file{relative}; callers will hear nothing after that \
                 feature code",
                prompt.key(),
                path.display()
            ));
        }
    }
    let storage = &config.storage;
    if let (Some(spool), Some(data)) = (
        disk.device(&storage.spool_dir),
        disk.device(&storage.data_dir),
    ) && spool != data
    {
        warnings.push(format!(
            "storage.spool_dir: {} is on another filesystem than {}; finished recordings \
             will be copied and fsynced instead of renamed (slower, needs twice the space \
             for a moment)",
            storage.spool_dir.display(),
            storage.data_dir.display()
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;

    #[derive(Default)]
    struct FakeDisk {
        files: Vec<PathBuf>,
        devices: HashMap<PathBuf, u64>,
    }

    impl Filesystem for FakeDisk {
        fn is_file(&self, path: &Path) -> bool {
            self.files.iter().any(|f| f == path)
        }

        fn device(&self, path: &Path) -> Option<u64> {
            self.devices.get(path).copied()
        }
    }

    fn all_prompts(config: &Config) -> Vec<PathBuf> {
        Prompt::ALL
            .iter()
            .map(|p| config.prompts.path(*p))
            .collect()
    }

    #[test]
    fn a_missing_prompt_is_named_by_its_key_and_path() {
        let config = Config::default();
        let mut disk = FakeDisk {
            files: all_prompts(&config),
            ..FakeDisk::default()
        };
        assert!(warnings(&config, &disk).is_empty());

        disk.files.retain(|f| !f.ends_with("no_call.wav"));
        assert_eq!(
            warnings(&config, &disk),
            [
                "prompts.no_call: prompts/no_call.wav is not a file (relative to the working directory; \
                 give `prompts.dir` as an absolute path); callers will hear nothing after that \
                 feature code"
            ]
        );
    }

    #[test]
    fn a_spool_on_another_filesystem_is_flagged() {
        let config = Config::default();
        let mut disk = FakeDisk {
            files: all_prompts(&config),
            ..FakeDisk::default()
        };
        disk.devices.insert(config.storage.data_dir.clone(), 1);
        disk.devices.insert(config.storage.spool_dir.clone(), 1);
        assert!(warnings(&config, &disk).is_empty());

        disk.devices.insert(config.storage.spool_dir.clone(), 2);
        let found = warnings(&config, &disk);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("storage.spool_dir: "), "{found:?}");
    }
}
