//! Writing results to stdout. A reader that goes away early (`callrec user list | head -1`)
//! is not an error: the rest of the output is dropped quietly instead of panicking the way
//! `println!` does on a closed pipe.

use std::io::{self, Write as _};

/// Writes `text` to stdout as it is.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        written => Ok(written?),
    }
}

/// Writes `text` and a newline to stdout.
pub fn line(text: impl std::fmt::Display) -> anyhow::Result<()> {
    print(&format!("{text}\n"))
}

/// Writes `value` as pretty JSON and a newline to stdout.
pub fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    line(serde_json::to_string_pretty(value)?)
}
