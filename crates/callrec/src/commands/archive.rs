//! `callrec archive`: the archive client (`callrec-archive`) on the command line. Reads the
//! token (CALLREC_TOKEN or --token-file, never an argument), runs once or on the schedule
//! until Ctrl-C or SIGTERM, and prints each run's summary.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use callrec_archive::{
    ArchiveConfig, ArchiveError, RunSummary, Schedule, SystemTimer, Token, run_scheduled,
};
use tokio_util::sync::CancellationToken;

use crate::cli::ArchiveArgs;
use crate::commands::out;
use crate::exit::{Misconfigured, Outcome};

/// The environment variable that holds the token.
const TOKEN_VAR: &str = "CALLREC_TOKEN";

/// Runs the archive as asked.
pub fn run(args: ArchiveArgs) -> anyhow::Result<Outcome> {
    let token = token(&args)?;
    let schedule = match (args.every, args.at) {
        (Some(every), _) => Schedule::Every(every),
        (None, Some(at)) => Schedule::DailyAt(at),
        (None, None) => Schedule::Once,
    };
    let mut config = ArchiveConfig::new(&args.server, token, &args.dest);
    config.since = args.since;
    config.name = args.name;
    config.schedule = schedule;
    config.dry_run = args.dry_run;
    config.limit_rate = args.limit_rate;
    config.progress = !args.no_progress && std::io::stderr().is_terminal();
    config.concurrency = usize::from(args.parallel);
    if let Some(name) = args.client_name {
        config.client_name = name;
    }

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let watcher = shutdown.clone();
        tokio::spawn(async move {
            stop_signal().await;
            watcher.cancel();
        });
        run_scheduled(&config, &SystemTimer, shutdown, |r| {
            if let Ok(summary) = r
                && let Err(e) = print_summary(summary, &config)
            {
                tracing::warn!(error = %e, "cannot print the summary");
            }
        })
        .await
    });
    match result {
        // Once: exit 1 if any recording could not be archived. On a schedule, a run's
        // failures are printed and the next run tries again.
        Ok(Some(summary)) if !summary.failed.is_empty() => Ok(Outcome::ProblemsFound),
        Ok(_) => Ok(Outcome::Success),
        Err(e) if e.is_config() => Err(Misconfigured(e.to_string()).into()),
        Err(e @ ArchiveError::DiskFull { .. }) => Err(e.into()),
        Err(e) => Err(anyhow::Error::new(e).context("the archive run stopped")),
    }
}

/// The token: from `--token-file`, else `CALLREC_TOKEN`.
fn token(args: &ArchiveArgs) -> anyhow::Result<Token> {
    let text = match &args.token_file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            Misconfigured(format!(
                "cannot read the token file {}: {e}",
                path.display()
            ))
        })?,
        None => std::env::var(TOKEN_VAR).map_err(|_| {
            Misconfigured(format!(
                "no token: set {TOKEN_VAR} or give --token-file FILE (a token is never taken \
                 on the command line, where other users could read it)"
            ))
        })?,
    };
    Token::new(&text).map_err(|e| Misconfigured(e.to_string()).into())
}

fn print_summary(s: &RunSummary, config: &ArchiveConfig) -> anyhow::Result<()> {
    if s.dry_run {
        for f in &s.downloaded {
            out::line(format!(
                "would download {} ({} bytes)",
                f.name, f.size_bytes
            ))?;
        }
        out::line(format!(
            "dry run: {} to download, {} already archived, {} gone from the server, {} before \
             --since; nothing written",
            s.downloaded.len(),
            s.already_archived,
            s.gone,
            s.before_since
        ))?;
        return Ok(());
    }
    out::line(format!(
        "archived {} recording(s) ({} bytes) into {}; {} already there, {} gone from the \
         server, {} before --since, {} failed; change feed at {}",
        s.downloaded.len(),
        s.bytes,
        config.dest.display(),
        s.already_archived,
        s.gone,
        s.before_since,
        s.failed.len(),
        s.last_seq
    ))?;
    for f in &s.failed {
        out::line(format!("failed: {}: {}", f.id, f.error))?;
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM where there is one.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
