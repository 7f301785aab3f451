//! The archive's decisions, as plain functions: what a change of the feed asks for, what to
//! do with one recording given what is on disk, how to write an audio answer, and how far
//! the feed may be marked handled. No network, no disk, no clock: the run ([`crate::run`])
//! gathers the facts and carries out the answer.

use chrono::{DateTime, Utc};

use crate::server::RecordingMeta;

/// What a change of the feed asks of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedAction {
    /// A recording was stored: archive it.
    Fetch,
    /// Anything else (deleted, hold, release, note, failed): the archive keeps what it has.
    /// Deleted on the server is never deleted here.
    Keep,
}

/// What a change asks for. Kinds this client does not know (a newer server) are kept,
/// never acted on: the archive only ever adds files.
pub fn feed_action(kind: &str) -> FeedAction {
    match kind {
        "stored" => FeedAction::Fetch,
        _ => FeedAction::Keep,
    }
}

/// Why a recording is not downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The server no longer has its file (deleted, erased) or no longer shows it.
    Gone,
    /// It started before `--since`.
    BeforeSince,
}

/// What is on disk under a recording's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnDisk {
    /// The final file exists.
    pub complete: bool,
    /// The length of `NAME.part`, if it exists.
    pub part_len: Option<u64>,
}

/// What to do with one recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to fetch.
    Skip(SkipReason),
    /// The file is there: check its hash (a crash between rename and state, or an archive
    /// copied back); a match is kept, anything else is left alone and reported.
    CheckExisting,
    /// Download from this byte (the length of a `.part` from an interrupted run; 0 for a
    /// new file or a `.part` longer than the file, which cannot be a prefix of it).
    Download {
        /// The first byte to ask for.
        from: u64,
    },
}

/// Decide what to do with a recording.
pub fn step(meta: &RecordingMeta, since: Option<DateTime<Utc>>, disk: OnDisk) -> Step {
    let (Some(size), Some(_)) = (meta.size_bytes, meta.sha256.as_ref()) else {
        return Step::Skip(SkipReason::Gone);
    };
    if meta.state != "stored" {
        return Step::Skip(SkipReason::Gone);
    }
    if since.is_some_and(|s| meta.started_at < s) {
        return Step::Skip(SkipReason::BeforeSince);
    }
    if disk.complete {
        return Step::CheckExisting;
    }
    match disk.part_len {
        Some(n) if n <= size => Step::Download { from: n },
        _ => Step::Download { from: 0 },
    }
}

/// How to write an audio answer into `NAME.part`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// The server sent the rest, from the byte asked for: append.
    Append,
    /// The server sent the whole file (it ignored the range, or the file changed): start over.
    Replace,
    /// Nothing is missing: `.part` already holds the whole file (a 416 for a range at its end).
    Complete,
}

/// How to write an answer to a request from byte `from`: its status and, for a 206, the
/// first byte of its `Content-Range`. `None`: the answer cannot be used.
pub fn write_mode(
    from: u64,
    status: u16,
    range_start: Option<u64>,
    size: u64,
) -> Option<WriteMode> {
    match status {
        200 => Some(WriteMode::Replace),
        206 if range_start == Some(from) => Some(WriteMode::Append),
        416 if from == size => Some(WriteMode::Complete),
        _ => None,
    }
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/LEN` header.
pub fn content_range_start(header: &str) -> Option<u64> {
    let rest = header.trim().strip_prefix("bytes ")?;
    rest.split('-').next()?.trim().parse().ok()
}

/// How far the feed is handled: changes are handled in order, and `last_seq` moves past a
/// change only when it and every change before it are resolved (archived, kept, skipped,
/// or failed and queued to retry). A run that stops (a full disk) leaves it at the last
/// resolved change, so the next run starts there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedCursor {
    /// Every change up to here is resolved.
    pub last_seq: i64,
}

impl FeedCursor {
    /// Resolved the change `seq` (changes resolve in order).
    pub fn resolved(&mut self, seq: i64) {
        self.last_seq = self.last_seq.max(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn meta(state: &str) -> RecordingMeta {
        RecordingMeta {
            id: "r1".into(),
            site: "default".into(),
            user: "1001".into(),
            direction: "outbound".into(),
            from: crate::server::Party { raw: "1001".into() },
            to: crate::server::Party {
                raw: "02079460000".into(),
            },
            started_at: Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap(),
            state: state.into(),
            size_bytes: (state == "stored").then_some(1000),
            sha256: (state == "stored").then(|| "ab".repeat(32)),
            format: "wav".into(),
        }
    }

    const NOTHING: OnDisk = OnDisk {
        complete: false,
        part_len: None,
    };

    #[test]
    fn only_a_stored_change_fetches_and_nothing_deletes() {
        assert_eq!(feed_action("stored"), FeedAction::Fetch);
        for kind in [
            "deleted",
            "hold",
            "release",
            "note",
            "failed",
            "purged-in-v9",
        ] {
            assert_eq!(feed_action(kind), FeedAction::Keep, "{kind}");
        }
    }

    #[test]
    fn a_new_recording_is_downloaded_from_the_start_or_from_its_part() {
        let m = meta("stored");
        assert_eq!(step(&m, None, NOTHING), Step::Download { from: 0 });
        let part = OnDisk {
            complete: false,
            part_len: Some(400),
        };
        assert_eq!(step(&m, None, part), Step::Download { from: 400 });
        let whole_part = OnDisk {
            complete: false,
            part_len: Some(1000),
        };
        assert_eq!(step(&m, None, whole_part), Step::Download { from: 1000 });
        let too_long = OnDisk {
            complete: false,
            part_len: Some(1001),
        };
        assert_eq!(step(&m, None, too_long), Step::Download { from: 0 });
    }

    #[test]
    fn an_existing_file_is_checked_not_downloaded_again() {
        let done = OnDisk {
            complete: true,
            part_len: None,
        };
        assert_eq!(step(&meta("stored"), None, done), Step::CheckExisting);
    }

    #[test]
    fn deleted_and_old_recordings_are_skipped() {
        assert_eq!(
            step(&meta("deleted"), None, NOTHING),
            Step::Skip(SkipReason::Gone)
        );
        let since = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
        assert_eq!(
            step(&meta("stored"), Some(since), NOTHING),
            Step::Skip(SkipReason::BeforeSince)
        );
        // A deleted recording already archived is skipped too: its file stays.
        let done = OnDisk {
            complete: true,
            part_len: None,
        };
        assert_eq!(
            step(&meta("deleted"), None, done),
            Step::Skip(SkipReason::Gone)
        );
    }

    #[test]
    fn answers_are_appended_only_when_they_start_where_the_part_ends() {
        assert_eq!(
            write_mode(400, 206, Some(400), 1000),
            Some(WriteMode::Append)
        );
        assert_eq!(write_mode(400, 206, Some(0), 1000), None);
        assert_eq!(write_mode(400, 200, None, 1000), Some(WriteMode::Replace));
        assert_eq!(write_mode(1000, 416, None, 1000), Some(WriteMode::Complete));
        assert_eq!(write_mode(400, 416, None, 1000), None);
        assert_eq!(write_mode(0, 404, None, 1000), None);
        assert_eq!(content_range_start("bytes 400-999/1000"), Some(400));
        assert_eq!(content_range_start("bytes */1000"), None);
    }

    #[test]
    fn the_cursor_only_moves_forward() {
        let mut c = FeedCursor { last_seq: 10 };
        c.resolved(12);
        c.resolved(11);
        assert_eq!(c.last_seq, 12);
    }
}
