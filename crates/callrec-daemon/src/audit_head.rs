//! Saving the audit log's chain head outside the index (`[storage] audit_head_file`, issue 12).
//!
//! The hash chain proves no entry was changed or removed from the middle of the log; entries
//! cut from its end leave a shorter chain that is still intact. A head kept elsewhere closes
//! that gap: `callrec verify --head-file` checks that every saved head is still in the chain.
//! The daemon appends the head (`SEQ HASH`, as `callrec audit head` prints it) whenever it
//! has moved, once a minute and at shutdown, and fsyncs each line.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use callrec_store::{ChainHead, StoreHandle};
use tokio_util::sync::CancellationToken;

/// How often the head is looked at.
pub(crate) const EVERY: Duration = Duration::from_secs(60);

/// Appends the head whenever it moves, until `shutdown`. The last save is the caller's
/// ([`save`] after the store's last write).
pub(crate) async fn save_loop(
    store: StoreHandle,
    path: PathBuf,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => save(&store, &path).await,
        }
    }
}

/// Appends the head if it is not the file's last line; a failure is logged, never fatal.
pub(crate) async fn save(store: &StoreHandle, path: &Path) {
    let head = match store.write(|s| s.audit_head()).await {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the audit log's chain head to save it");
            return;
        }
    };
    let path = path.to_owned();
    let saved =
        tokio::task::spawn_blocking(move || append_if_moved(&path, &head).map_err(|e| (path, e)))
            .await;
    match saved {
        Ok(Ok(_)) => {}
        Ok(Err((path, err))) => tracing::warn!(path = %path.display(), error = %err,
            "cannot save the audit log's chain head (storage.audit_head_file)"),
        Err(_) => {}
    }
}

/// Appends `head` as a line of `path` unless it is already the last one; returns whether it
/// wrote.
pub(crate) fn append_if_moved(path: &Path, head: &ChainHead) -> std::io::Result<bool> {
    let last = match std::fs::read_to_string(path) {
        Ok(text) => text.lines().last().map(str::to_owned),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(err),
    };
    let line = head.to_string();
    if last.as_deref() == Some(line.as_str()) {
        return Ok(false);
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(format!("{line}\n").as_bytes())?;
    file.sync_data()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_appended_once_and_each_move_adds_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heads");
        let a = ChainHead {
            seq: 7,
            hash: "ab".repeat(32),
        };
        let b = ChainHead {
            seq: 9,
            hash: "cd".repeat(32),
        };
        assert!(append_if_moved(&path, &a).unwrap());
        assert!(!append_if_moved(&path, &a).unwrap());
        assert!(append_if_moved(&path, &b).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{a}\n{b}\n"));
        // What `callrec verify --head-file` reads back.
        let parsed: Vec<ChainHead> = text.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(parsed, [a, b]);
    }

    #[test]
    fn an_unwritable_place_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let head = ChainHead {
            seq: 1,
            hash: "00".repeat(32),
        };
        assert!(append_if_moved(&dir.path().join("missing/heads"), &head).is_err());
    }
}
