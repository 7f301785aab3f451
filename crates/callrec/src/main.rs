//! The `callrec` command line.

use clap::Parser;

/// Call-recording manager for FreeSWITCH.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
