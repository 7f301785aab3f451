//! `callrec serve` and `callrec demo`: the start-up checks (data-dir lock, writable spool,
//! the config's site settings), the runtime and the signal; `crate::serve` and
//! `crate::demo` compose the daemon with the API (and the simulator).

use std::fs::{File, TryLockError};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::Session;
use crate::exit::{Misconfigured, Outcome};

/// The runtime, and the signal that stops the daemon, watched from now on (a signal during
/// start-up is kept, not fatal).
fn runtime_and_stop() -> anyhow::Result<(
    tokio::runtime::Runtime,
    impl std::future::Future<Output = ()>,
)> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let stop = {
        let _entered = runtime.enter();
        crate::serve::termination_signal().context("cannot watch SIGTERM and SIGINT")?
    };
    Ok((runtime, stop))
}

/// `callrec serve`.
pub fn serve(session: &Session) -> anyhow::Result<Outcome> {
    let (runtime, stop) = runtime_and_stop()?;
    // The config's explicit [site]/[quota] keys win over what the API last set.
    let mut store = session.create_store()?;
    // Held until this function returns (the daemon has stopped); the kernel drops it if the
    // process dies, so a crash leaves no stale lock behind.
    let _lock = lock_data_dir(&session.config.storage.data_dir)?;
    check_spool_writable(&session.config.storage.spool_dir)?;
    session.apply_site_config(&mut store)?;
    drop(store);
    let config = session.config.clone();
    runtime.block_on(crate::serve::serve(config, stop))?;
    Ok(Outcome::Success)
}

/// The file in the data dir whose lock says a daemon is using it.
const LOCK_FILE: &str = "serve.lock";

/// Takes the data dir for this daemon alone. Two daemons on one data dir would both record
/// every call of the switch (two recordings per user per call) and both ingest, reconcile and
/// sweep the same files, so a second one is refused. The file holds the holder's pid, for the
/// message.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<File> {
    let path = data_dir.join(LOCK_FILE);
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                pid if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) => {
                    format!(" (pid {pid})")
                }
                _ => String::new(),
            };
            bail!(
                "another callrec daemon{holder} is already running on the data dir {} (it holds \
                 {}): stop it first, or give this one its own storage.data_dir",
                data_dir.display(),
                path.display()
            );
        }
        Err(TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    // Only informative: a failure to write the pid does not stop the daemon.
    let _ = file
        .set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(file)
}

/// `callrec demo [--exit]`.
pub fn demo(session: &Session, exit: bool, dir: PathBuf) -> anyhow::Result<Outcome> {
    let options = crate::demo::DemoOptions {
        exit_when_done: exit,
        data_dir: dir,
    };
    let config = session.config.clone();
    let (runtime, stop) = runtime_and_stop()?;
    runtime.block_on(crate::demo::demo(config, options, stop))?;
    Ok(Outcome::Success)
}

/// FreeSWITCH writes into the spool and callrec moves every finished file out of it (a rename
/// or a copy and unlink, both needing write permission on the directory). A spool callrec may
/// not write in (FreeSWITCH's recordings directory left at mode 0755, a read-only mount) would
/// leave every recording there, each ingest failing after its call: refused at start instead.
/// A spool that does not exist yet is the daemon's to create (and to report).
fn check_spool_writable(spool: &Path) -> anyhow::Result<()> {
    if !spool.is_dir() {
        return Ok(());
    }
    let probe = spool.join(format!(".callrec-probe-{}", std::process::id()));
    match File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(err) => Err(Misconfigured(format!(
            "storage.spool_dir {} is not writable by callrec ({err}): callrec moves every \
             finished recording out of it, so none could be stored. Make it writable by \
             callrec's user or group (e.g. chmod g+w, with callrec in FreeSWITCH's group)",
            spool.display()
        ))
        .into()),
    }
}
