//! Serving a stored file: the whole of it, one range, or several as `multipart/byteranges`,
//! streamed from disk in chunks and never held in memory whole.
//!
//! Reads are positional (`pread`) on the blocking pool, one chunk at a time with the next one
//! read ahead while the current one is being sent, so a slow client holds a file handle and a
//! couple of buffers, never a thread.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use callrec_store::StoredFile;
use futures_util::Stream;
use tokio::task::JoinHandle;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::error::ApiError;
use crate::range::{self, ByteRange, RangeError, Selection};

/// Bytes read from disk at a time.
pub const CHUNK_BYTES: usize = 512 * 1024;
/// Chunks read ahead of the one being sent.
const READ_AHEAD: usize = 2;

/// The request headers that shape an audio reply. Their doc comments are the document's
/// descriptions.
#[derive(Debug, Clone, Default, PartialEq, Eq, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct AudioHeaders {
    /// `bytes=first-last`, `bytes=first-`, `bytes=-suffix`, or several separated by commas.
    #[param(rename = "Range", value_type = String, required = false)]
    pub range: Option<String>,
    /// The ETag the ranges were computed against: ranges of another version get the whole
    /// file.
    #[param(rename = "If-Range", value_type = String, required = false)]
    pub if_range: Option<String>,
    /// ETags the client holds: 304 when one is current.
    #[param(rename = "If-None-Match", value_type = String, required = false)]
    pub if_none_match: Option<String>,
}

/// What the reply will be, decided from the headers and the file's length and hash alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// 304: the client's copy is current.
    NotModified,
    /// 200 or 206.
    Send(Selection),
}

/// Decide the reply (RFC 9110 §13.2.2: `If-None-Match` first, then `Range` under `If-Range`).
pub fn plan(headers: &AudioHeaders, len: u64, sha256: &str) -> Result<Plan, ApiError> {
    let etag = range::etag(sha256);
    if let Some(inm) = &headers.if_none_match
        && range::none_match(inm, &etag)
    {
        return Ok(Plan::NotModified);
    }
    if !range::if_range_allows(headers.if_range.as_deref(), &etag) {
        return Ok(Plan::Send(Selection::Full));
    }
    match range::select(headers.range.as_deref(), len) {
        Ok(selection) => Ok(Plan::Send(selection)),
        Err(
            e @ (RangeError::Malformed(_) | RangeError::TooMany(_) | RangeError::Unsatisfiable(_)),
        ) => Err(ApiError::unsatisfiable(e.to_string(), len)),
    }
}

/// The audit entry's detail of one read of a file: the status it got, the `Range` asked for
/// (cut to 100 characters) and the bytes of the file sent (`len` for the whole file), e.g. `{"status": 206, "range": "bytes=0-",
/// "bytes": 1024}`.
pub fn audit_detail(
    headers: &AudioHeaders,
    len: u64,
    plan: &Result<Plan, ApiError>,
) -> serde_json::Value {
    let range = headers
        .range
        .as_deref()
        .map(|r| r.chars().take(100).collect::<String>());
    let (status, bytes) = match plan {
        Ok(Plan::NotModified) => (304, 0),
        Ok(Plan::Send(Selection::Full)) => (200, len),
        Ok(Plan::Send(Selection::Ranges(ranges))) => {
            (206, ranges.iter().map(ByteRange::len).sum::<u64>())
        }
        Err(e) => (e.status.as_u16(), 0),
    };
    serde_json::json!({ "status": status, "range": range, "bytes": bytes })
}

/// The `Content-Disposition` file name: the store's name, with anything that is not safe in
/// a quoted header value replaced (store names are digits, letters, `-` and `.` already).
pub fn attachment_name(file_name: &str) -> String {
    let name: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        format!("recording{name}")
    } else {
        name
    }
}

/// One part of a reply body, in order.
#[derive(Debug, Clone)]
enum Piece {
    /// Fixed bytes (multipart headers and delimiters).
    Fixed(Bytes),
    /// A byte range of the file.
    File(ByteRange),
}

/// Build the reply. `file` is the opened stored file, already checked to be `size_bytes` long.
pub fn respond(stored: &StoredFile, file: File, download: bool, plan: Plan) -> Response {
    let etag = range::etag(&stored.sha256);
    let len = stored.size_bytes;
    let content_type = stored.content_type();
    let (status, pieces, body_len, part_type) = match plan {
        Plan::NotModified => {
            let mut r = Response::new(Bytes::new().into());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            common_headers(r.headers_mut(), &etag, stored, download);
            return r;
        }
        Plan::Send(Selection::Full) => {
            let pieces = if len == 0 {
                Vec::new()
            } else {
                vec![Piece::File(ByteRange {
                    first: 0,
                    last: len - 1,
                })]
            };
            (StatusCode::OK, pieces, len, None)
        }
        Plan::Send(Selection::Ranges(ranges)) if ranges.len() == 1 => {
            let r = ranges[0];
            (
                StatusCode::PARTIAL_CONTENT,
                vec![Piece::File(r)],
                r.len(),
                Some(r),
            )
        }
        Plan::Send(Selection::Ranges(ranges)) => {
            let boundary = boundary();
            let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
            let mut total = 0u64;
            for (i, r) in ranges.iter().enumerate() {
                let head = format!(
                    "{}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
                    if i == 0 { "" } else { "\r\n" },
                    r.content_range(len)
                );
                total += head.len() as u64 + r.len();
                pieces.push(Piece::Fixed(Bytes::from(head)));
                pieces.push(Piece::File(*r));
            }
            let tail = format!("\r\n--{boundary}--\r\n");
            total += tail.len() as u64;
            pieces.push(Piece::Fixed(Bytes::from(tail)));
            let mut resp = body_response(file, pieces);
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = resp.headers_mut();
            common_headers(h, &etag, stored, download);
            set(
                h,
                header::CONTENT_TYPE,
                &format!("multipart/byteranges; boundary={boundary}"),
            );
            set(h, header::CONTENT_LENGTH, &total.to_string());
            return resp;
        }
    };
    let mut resp = body_response(file, pieces);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    common_headers(h, &etag, stored, download);
    set(h, header::CONTENT_TYPE, content_type);
    set(h, header::CONTENT_LENGTH, &body_len.to_string());
    if let Some(r) = part_type {
        set(h, header::CONTENT_RANGE, &r.content_range(len));
    }
    resp
}

fn body_response(file: File, pieces: Vec<Piece>) -> Response {
    warp::reply::stream(FileBody::new(file, pieces)).into_response()
}

fn common_headers(h: &mut HeaderMap, etag: &str, stored: &StoredFile, download: bool) {
    set(h, header::ETAG, etag);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // `Cache-Control: no-store` and `nosniff` come with every reply (`harden` in lib.rs): no
    // cache keeps a recording and every play comes back here to be audited; a client that
    // keeps its own copy (the archiver) still revalidates with If-None-Match.
    if download {
        set(
            h,
            header::CONTENT_DISPOSITION,
            &format!(
                "attachment; filename=\"{}\"",
                attachment_name(&stored.file_name)
            ),
        );
    }
}

fn set(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    // Every value here is built from ASCII we control; a failure would be a bug, and dropping
    // the header is safer than a panic in a reply.
    match HeaderValue::from_str(value) {
        Ok(v) => {
            h.insert(name, v);
        }
        Err(_) => tracing::error!(%name, "header value not representable"),
    }
}

fn boundary() -> String {
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What is read next.
enum Job {
    Fixed(Bytes),
    Read { offset: u64, len: usize },
}

enum Pending {
    Ready(Bytes),
    Reading(JoinHandle<io::Result<Bytes>>),
}

/// The body stream: the pieces in order, file ranges read in chunks with read-ahead.
struct FileBody {
    file: Arc<File>,
    pieces: VecDeque<Piece>,
    pending: VecDeque<Pending>,
}

impl FileBody {
    fn new(file: File, pieces: Vec<Piece>) -> Self {
        FileBody {
            file: Arc::new(file),
            pieces: pieces.into(),
            pending: VecDeque::new(),
        }
    }

    fn next_job(&mut self) -> Option<Job> {
        match self.pieces.pop_front()? {
            Piece::Fixed(b) => Some(Job::Fixed(b)),
            Piece::File(r) => {
                let len = r.len().min(CHUNK_BYTES as u64);
                if len < r.len() {
                    self.pieces.push_front(Piece::File(ByteRange {
                        first: r.first + len,
                        last: r.last,
                    }));
                }
                Some(Job::Read {
                    offset: r.first,
                    // At most CHUNK_BYTES: fits.
                    len: len as usize,
                })
            }
        }
    }

    fn fill(&mut self) {
        while self.pending.len() <= READ_AHEAD {
            let Some(job) = self.next_job() else {
                return;
            };
            self.pending.push_back(match job {
                Job::Fixed(b) => Pending::Ready(b),
                Job::Read { offset, len } => {
                    let file = self.file.clone();
                    Pending::Reading(tokio::task::spawn_blocking(move || {
                        read_exact_at(&file, offset, len)
                    }))
                }
            });
        }
    }

    fn stop(&mut self) {
        self.pieces.clear();
        for p in self.pending.drain(..) {
            if let Pending::Reading(h) = p {
                h.abort();
            }
        }
    }
}

fn read_exact_at(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stored file is shorter than the index says",
                ));
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Bytes::from(buf))
}

impl Stream for FileBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.fill();
        let result = match self.pending.front_mut() {
            None => return Poll::Ready(None),
            Some(Pending::Ready(b)) => Ok(std::mem::take(b)),
            Some(Pending::Reading(h)) => match Pin::new(h).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(r)) => r,
                Poll::Ready(Err(join)) => Err(io::Error::other(join)),
            },
        };
        self.pending.pop_front();
        if let Err(e) = &result {
            // The length was promised in the headers; the connection is cut, and the next
            // poll ends the stream.
            tracing::error!(error = %e, "reading a stored file failed mid-reply");
            self.stop();
        }
        Poll::Ready(Some(result))
    }
}

impl Drop for FileBody {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_keep_the_seed_convention_and_nothing_else() {
        assert_eq!(
            attachment_name("20201124164249-442920123123-02077456456-1001-7f3a9c.wav"),
            "20201124164249-442920123123-02077456456-1001-7f3a9c.wav"
        );
        assert_eq!(attachment_name("a\"b\r\n.wav"), "a_b__.wav");
        assert_eq!(attachment_name("../x"), "recording.._x");
    }

    #[test]
    fn a_matching_etag_wins_over_a_range() {
        let h = AudioHeaders {
            range: Some("bytes=0-1".into()),
            if_range: None,
            if_none_match: Some("\"abc\"".into()),
        };
        assert_eq!(plan(&h, 10, "abc"), Ok(Plan::NotModified));
    }

    #[test]
    fn a_stale_if_range_sends_the_whole_file() {
        let h = AudioHeaders {
            range: Some("bytes=0-1".into()),
            if_range: Some("\"old\"".into()),
            if_none_match: None,
        };
        assert_eq!(plan(&h, 10, "abc"), Ok(Plan::Send(Selection::Full)));
    }

    #[test]
    fn an_unsatisfiable_range_is_a_416_naming_the_length() {
        let h = AudioHeaders {
            range: Some("bytes=10-".into()),
            ..AudioHeaders::default()
        };
        let e = plan(&h, 10, "abc").unwrap_err();
        assert_eq!(e.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(e.unsatisfiable_len, Some(10));
    }
}
