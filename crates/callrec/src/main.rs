//! The `callrec` command line (SPEC §6).
//!
//! Thin on purpose: parse the arguments, load the configuration (CLI > env > file > defaults),
//! set up logging, run one command, and turn the result into an exit code (0 success,
//! 1 failure, 2 usage error, 78 configuration error). Every decision lives in the library
//! crates; `commands` only connects them to the terminal.

mod cli;
mod commands;
mod demo;
mod exit;
mod logging;
mod serve;
mod site;

use std::process::ExitCode;

use clap::Parser as _;

/// mimalloc rather than the system allocator: the ESL crate allocates per header, and with it
/// the daemon parses full-size channel events 13–29 % faster (BENCHMARKS.md, Daemon).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits 2.
    let cli = cli::Cli::parse();
    exit::finish(commands::run(cli))
}
