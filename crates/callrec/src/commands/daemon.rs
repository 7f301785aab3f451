//! `callrec serve` and `callrec demo`: both are library calls into `callrec-daemon`; this
//! only applies the config's site settings, starts the runtime and waits for a signal.

use std::path::PathBuf;

use anyhow::Context as _;

use super::Session;
use crate::exit::Outcome;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

/// `callrec serve`.
pub fn serve(session: &Session) -> anyhow::Result<Outcome> {
    // The config's explicit [site]/[quota] keys win over what the API last set.
    let mut store = session.create_store()?;
    session.apply_site_config(&mut store)?;
    drop(store);
    let config = session.config.clone();
    runtime()?.block_on(callrec_daemon::serve(
        config,
        callrec_daemon::termination_signal(),
    ))?;
    Ok(Outcome::Success)
}

/// `callrec demo [--exit]`.
pub fn demo(session: &Session, exit: bool, dir: PathBuf) -> anyhow::Result<Outcome> {
    let options = callrec_daemon::DemoOptions {
        exit_when_done: exit,
        data_dir: dir,
    };
    let config = session.config.clone();
    runtime()?.block_on(callrec_daemon::demo(
        config,
        options,
        callrec_daemon::termination_signal(),
    ))?;
    Ok(Outcome::Success)
}
