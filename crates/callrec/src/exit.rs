//! How a run ends: the exit codes of SPEC §6 and the one-paragraph error report on stderr.

use std::process::ExitCode;

use callrec_config::ConfigError;

/// Exit code of a configuration error (`EX_CONFIG` of sysexits.h).
pub const EX_CONFIG: u8 = 78;

/// A setting that is valid on paper but cannot work on this machine (a spool callrec may not
/// write in): a configuration error, exit 78, so systemd does not restart into it.
#[derive(Debug)]
pub struct Misconfigured(pub String);

impl std::fmt::Display for Misconfigured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Misconfigured {}

/// How a command that ran to its end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything as asked.
    Success,
    /// The command ran, and found problems it has already reported (e.g. `verify` found a
    /// missing file): exit 1.
    ProblemsFound,
}

/// The exit code of a run.
pub fn code(result: &anyhow::Result<Outcome>) -> u8 {
    match result {
        Ok(Outcome::Success) => 0,
        Ok(Outcome::ProblemsFound) => 1,
        Err(err) if is_configuration_error(err) => EX_CONFIG,
        Err(_) => 1,
    }
}

fn is_configuration_error(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.is::<ConfigError>()
            || cause.is::<Misconfigured>()
            || cause
                .downcast_ref::<callrec_daemon::DaemonError>()
                .is_some_and(|e| e.exit_code() == i32::from(EX_CONFIG))
    })
}

/// What to print on stderr for a failed run: the error and its causes, one per line; a
/// configuration with several problems lists each.
pub fn describe(err: &anyhow::Error) -> String {
    if let Some(ConfigError::Invalid { problems }) = err.downcast_ref::<ConfigError>() {
        let mut text = String::from("error: invalid configuration:");
        for problem in problems {
            text.push_str("\n  ");
            text.push_str(&problem.to_string());
        }
        return text;
    }
    let mut text = format!("error: {err}");
    let mut above = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        // Most errors already end with their cause ("cannot read X: Permission denied"):
        // saying it again on its own line only adds noise.
        if !above.ends_with(&cause) {
            text.push_str(&format!("\n  caused by: {cause}"));
        }
        above = cause;
    }
    text
}

/// Prints the report of a failed run and turns the result into the process's exit code.
pub fn finish(result: anyhow::Result<Outcome>) -> ExitCode {
    if let Err(err) = &result {
        eprintln!("{}", describe(err));
    }
    ExitCode::from(code(&result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;
    use callrec_config::{Config, Sources};

    fn config_error(text: &str) -> ConfigError {
        Config::load(&Sources::new().file_text("c.toml", text)).unwrap_err()
    }

    #[test]
    fn a_bad_config_exits_78_even_under_context() {
        let err = anyhow::Error::new(config_error("[esl]\nport = 0\n"));
        assert_eq!(code(&Err(err)), EX_CONFIG);
        let wrapped = Err::<(), _>(config_error("[esl]\nport = 0\n"))
            .context("loading the configuration")
            .unwrap_err();
        assert_eq!(code(&Err(wrapped)), EX_CONFIG);
    }

    #[test]
    fn other_failures_exit_1_and_success_exits_0() {
        assert_eq!(code(&Err(anyhow::anyhow!("disk full"))), 1);
        assert_eq!(code(&Ok(Outcome::ProblemsFound)), 1);
        assert_eq!(code(&Ok(Outcome::Success)), 0);
    }

    #[test]
    fn every_config_problem_gets_its_own_line() {
        let err = anyhow::Error::new(config_error(
            "[esl]\nport = 0\n[site]\nretention_days = 0\n",
        ));
        let text = describe(&err);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("\n  c.toml:2:8: esl.port: "), "{text}");
    }

    #[test]
    fn a_cause_the_message_already_ends_with_is_not_repeated() {
        let err = anyhow::Error::new(
            Config::load(&Sources::new().file("/nonexistent/callrec.toml")).unwrap_err(),
        );
        assert_eq!(
            describe(&err),
            "error: cannot read config file /nonexistent/callrec.toml: No such file or \
             directory (os error 2)"
        );
        let wrapped = Err::<(), _>(err)
            .context("loading the configuration")
            .unwrap_err();
        assert_eq!(
            describe(&wrapped),
            "error: loading the configuration\n  caused by: cannot read config file \
             /nonexistent/callrec.toml: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn causes_are_listed_under_the_error() {
        let err = Err::<(), _>(std::io::Error::other("read-only file system"))
            .context("cannot create /data/index.db")
            .unwrap_err();
        assert_eq!(
            describe(&err),
            "error: cannot create /data/index.db\n  caused by: read-only file system"
        );
    }
}
