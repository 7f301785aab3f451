//! Log lines to stderr, set up from `[log]`: readable lines or JSON objects, filtered by the
//! configured level (an `EnvFilter` directive list).

use anyhow::Context as _;
use callrec_config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Called once, after the configuration is loaded (so a bad
/// config is reported plainly, before any logging exists).
pub fn init(log: &LogConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(log.level.as_str())
        .with_context(|| format!("log.level `{}` is not a valid filter", log.level.as_str()))?;
    // Colours only for a person at a terminal: the journal, a log file or a pipe get plain
    // text, not escape sequences.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let installed = match log.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
