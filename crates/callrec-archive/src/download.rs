//! Getting one recording's audio onto the disk: into `NAME.part`, resuming with a Range
//! request from what an earlier attempt (or run) left there; then its SHA-256 against the
//! server's ([`fetch`]); then, synced, an atomic rename to `NAME` ([`keep`]). A cut
//! connection is resumed; a file whose hash does not match is deleted and fetched again, and
//! reported if it never matches; a full disk stops everything and keeps the `.part` for the
//! next run. The two steps are apart so that a run can sync and rename one file while the
//! next downloads: fsyncs in flight together cost the disk one journal commit, not one each.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::ArchiveError;
use crate::plan::{self, WriteMode};
use crate::server::{RecordingMeta, Server, is_transient};

/// How many times a file whose hash does not match is fetched before it is reported.
pub const CORRUPT_ATTEMPTS: u32 = 3;

/// How a download ended (other than with an error that stops the run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Whole in `NAME.part`, its hash checked, not yet synced or renamed ([`keep`]).
    /// `received` bytes came over the network.
    Verified {
        /// Bytes received in this run (less than the size after a resume).
        received: u64,
    },
    /// Its hash never matched the server's.
    Corrupt {
        /// How many whole copies were fetched.
        attempts: u32,
        /// The last hash found.
        found: String,
    },
    /// The server no longer has it (404, or 409: deleted since its metadata was read).
    Gone,
}

/// A shared limit on download speed, across concurrent downloads.
#[derive(Debug)]
pub struct RateLimit {
    bytes_per_sec: u64,
    state: Mutex<(Instant, u64)>,
}

impl RateLimit {
    /// At most `bytes_per_sec` on average.
    pub fn new(bytes_per_sec: u64) -> Self {
        RateLimit {
            bytes_per_sec: bytes_per_sec.max(1),
            state: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Account for `n` bytes, waiting as long as they put the average over the limit.
    pub async fn take(&self, n: u64) {
        let wait = {
            let mut s = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            s.1 += n;
            let due = s.0 + Duration::from_secs_f64(s.1 as f64 / self.bytes_per_sec as f64);
            due.saturating_duration_since(Instant::now())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Read a rate: bytes per second, with an optional `k`, `m` or `g` (1024-based, as curl's
/// `--limit-rate`), e.g. `500k`, `2M`.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (
            &t[..i],
            match c.to_ascii_lowercase() {
                'k' => 1u64 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                _ => return Err(format!("`{t}`: the unit is k, m or g (e.g. 500k)")),
            },
        ),
        _ => (t, 1),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{t}` is not a rate in bytes per second (e.g. 500k, 2m)"))?;
    let rate = n.saturating_mul(mult);
    if rate < 1024 {
        return Err(format!("`{t}` is below 1k per second"));
    }
    Ok(rate)
}

/// `NAME.part` beside `NAME`.
pub fn part_path(final_path: &Path) -> PathBuf {
    let mut s = final_path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// The length and SHA-256 of a file, read on the blocking pool.
pub async fn hash_file(path: &Path) -> Result<(u64, String), ArchiveError> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(&p)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut len = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            len += n as u64;
        }
        Ok::<_, std::io::Error>((len, hex::encode(h.finalize())))
    })
    .await
    .map_err(|e| ArchiveError::Protocol(format!("hashing task failed: {e}")))?
    .map_err(|e| ArchiveError::io("read", path, e))
}

/// The SHA-256 state and length of what a `.part` already holds, so a resumed download
/// hashes only what it receives.
async fn hash_prefix(path: &Path) -> Result<(Sha256, u64), ArchiveError> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(&p)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut len = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            len += n as u64;
        }
        Ok::<_, std::io::Error>((h, len))
    })
    .await
    .map_err(|e| ArchiveError::Protocol(format!("hashing task failed: {e}")))?
    .map_err(|e| ArchiveError::io("read", path, e))
}

/// Download `meta`'s audio into `NAME.part` beside `final_path` and check it; [`keep`] puts
/// it in place. `on_bytes` is told of every chunk received (the progress bar).
pub async fn fetch(
    server: &Server,
    meta: &RecordingMeta,
    final_path: &Path,
    limit: Option<&RateLimit>,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<Fetched, ArchiveError> {
    let (Some(size), Some(sha256)) = (meta.size_bytes, meta.sha256.as_deref()) else {
        return Ok(Fetched::Gone);
    };
    let part = part_path(final_path);
    let retry = server.retry();
    let mut failures = 0u32;
    let mut corrupt = 0u32;
    let mut received = 0u64;
    // The hash of what `.part` holds, kept up to date as bytes arrive; `None` until it is
    // known (a `.part` from an earlier run is read once).
    let mut hashed: Option<(Sha256, u64)> = None;
    loop {
        let mut from = match tokio::fs::metadata(&part).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(ArchiveError::io("read the size of", &part, e)),
        };
        if from > size {
            remove(&part).await?;
            from = 0;
        }
        let mut state = match hashed.take() {
            Some((h, len)) if len == from => (h, len),
            _ if from == 0 => (Sha256::new(), 0),
            _ => hash_prefix(&part).await?,
        };
        if from < size {
            let attempt = attempt_download(
                server, meta, &part, from, size, sha256, limit, on_bytes, &mut state,
            )
            .await?;
            match attempt {
                Attempt::Done(n) => received += n,
                Attempt::Gone => return Ok(Fetched::Gone),
                Attempt::Cut { got, error } => {
                    received += got;
                    hashed = Some(state);
                    // Progress resets the count: a slow, flaky link still gets there.
                    failures = if got > 0 { 1 } else { failures + 1 };
                    if failures >= retry.attempts.max(1) {
                        return Err(ArchiveError::Network {
                            op: "download a recording",
                            url: format!("{}/api/v1/recordings/{}/audio", server.base(), meta.id),
                            attempts: failures,
                            source: error,
                        });
                    }
                    tracing::warn!(id = %meta.id, error = %error, got, "download cut; resuming");
                    tokio::time::sleep(retry.delay(failures)).await;
                    continue;
                }
            }
        }
        let (hasher, len) = state;
        let found = hex::encode(hasher.finalize());
        if len == size && found == sha256 {
            return Ok(Fetched::Verified { received });
        }
        corrupt += 1;
        tracing::warn!(id = %meta.id, expected = sha256, found, len, size, "SHA-256 mismatch; fetching again");
        remove(&part).await?;
        if corrupt >= CORRUPT_ATTEMPTS {
            return Ok(Fetched::Corrupt {
                attempts: corrupt,
                found,
            });
        }
    }
}

/// Put a verified `NAME.part` in place: synced, then renamed to `NAME`, so the name only
/// ever holds the whole file, even after a crash. The folder is synced by the run before the
/// state counts on the file.
pub async fn keep(final_path: &Path) -> Result<(), ArchiveError> {
    let part = part_path(final_path);
    let target = final_path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::File::open(&part)
            .and_then(|f| f.sync_all())
            .map_err(|e| ArchiveError::io("sync", &part, e))?;
        std::fs::rename(&part, &target)
            .map_err(|e| ArchiveError::io("rename into place", &target, e))
    })
    .await
    .map_err(|e| ArchiveError::Protocol(format!("sync task failed: {e}")))?
}

async fn remove(path: &Path) -> Result<(), ArchiveError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ArchiveError::io("remove", path, e)),
    }
}

enum Attempt {
    /// The answer was written whole (`n` bytes received).
    Done(u64),
    /// The server no longer has the file.
    Gone,
    /// The connection failed after `got` bytes.
    Cut { got: u64, error: reqwest::Error },
}

#[allow(clippy::too_many_arguments)]
async fn attempt_download(
    server: &Server,
    meta: &RecordingMeta,
    part: &Path,
    from: u64,
    size: u64,
    sha256: &str,
    limit: Option<&RateLimit>,
    on_bytes: &(dyn Fn(u64) + Sync),
    hashed: &mut (Sha256, u64),
) -> Result<Attempt, ArchiveError> {
    let resp = match server.audio(&meta.id, from, sha256).await {
        Ok(r) => r,
        Err(error) if is_transient(&error) => return Ok(Attempt::Cut { got: 0, error }),
        Err(source) => {
            return Err(ArchiveError::Network {
                op: "download a recording",
                url: format!("{}/api/v1/recordings/{}/audio", server.base(), meta.id),
                attempts: 1,
                source,
            });
        }
    };
    let status = resp.status().as_u16();
    if matches!(status, 404 | 409) {
        return Ok(Attempt::Gone);
    }
    let range_start = resp
        .headers()
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(plan::content_range_start);
    let mode = match plan::write_mode(from, status, range_start, size) {
        Some(m) => m,
        None if crate::server::is_transient_status(resp.status()) => {
            // A 5xx mid-run: treated as a cut, and retried.
            let error = match resp.error_for_status() {
                Err(e) => e,
                Ok(_) => return Err(ArchiveError::Protocol(format!("status {status}"))),
            };
            return Ok(Attempt::Cut { got: 0, error });
        }
        None => return Err(server.audio_error(resp).await),
    };
    let mut file = match mode {
        WriteMode::Complete => return Ok(Attempt::Done(0)),
        WriteMode::Append => tokio::fs::OpenOptions::new().append(true).open(part).await,
        WriteMode::Replace => {
            *hashed = (Sha256::new(), 0);
            tokio::fs::File::create(part).await
        }
    }
    .map_err(|e| ArchiveError::io("open", part, e))?;
    let mut body = resp.bytes_stream();
    let mut got = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(error) => {
                // Keep what arrived: the next attempt resumes after it.
                file.flush()
                    .await
                    .map_err(|e| ArchiveError::io("write", part, e))?;
                return Ok(Attempt::Cut { got, error });
            }
        };
        file.write_all(&chunk)
            .await
            .map_err(|e| ArchiveError::io("write", part, e))?;
        hashed.0.update(&chunk);
        hashed.1 += chunk.len() as u64;
        got += chunk.len() as u64;
        on_bytes(chunk.len() as u64);
        if let Some(limit) = limit {
            limit.take(chunk.len() as u64).await;
        }
    }
    // tokio's File reports a failed write (a full disk) only at the next write or flush.
    // The sync comes before the rename ([`keep`]).
    file.flush()
        .await
        .map_err(|e| ArchiveError::io("write", part, e))?;
    Ok(Attempt::Done(got))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_bytes_per_second_with_binary_units() {
        assert_eq!(parse_rate("500k"), Ok(500 * 1024));
        assert_eq!(parse_rate("2M"), Ok(2 << 20));
        assert_eq!(parse_rate("4096"), Ok(4096));
        for bad in ["", "fast", "10", "5x", "-1k"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_part_file_sits_beside_its_final_name() {
        assert_eq!(
            part_path(Path::new("a/b/c.wav")),
            PathBuf::from("a/b/c.wav.part")
        );
    }
}
