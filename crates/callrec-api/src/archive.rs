//! The routes archive clients use beyond the change feed (issue 11): the metadata of many
//! recordings at once, the bulk export of a search as one streamed ZIP, and the run reports
//! clients send and admins read.
//!
//! `GET /recordings/export.zip` takes the filters of `GET /recordings` and streams every
//! match: each recording's audio as it is stored, then `manifest.json` with each one's
//! metadata, segments, notes, SHA-256 and place in the archive. The ZIP is made on a
//! blocking thread ([`crate::zipstream`]) and handed to the connection through a small
//! bounded channel, so a slow client slows the export down rather than filling memory, and
//! a client that goes away stops it. Reading each recording and its file is audited by the
//! store as any read is; the export itself once, with its filters, before the first byte.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use bytes::Bytes;
use callrec_store::{Access, Caller, ErrorKind, FilePurpose, SearchQuery, StoreHandle};
use chrono::Utc;
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Reply;

use crate::acts::Who;
use crate::error::{ApiError, reject};
use crate::handlers::{Handled, require_admin};
use crate::models::{ArchiveRunBody, ExportBody, RecordingIdsBody, SearchParams};
use crate::replies::{ArchiveClients, ArchiveRun, ErrorReply, RecordingDetail, RecordingDetails};
use crate::state::ApiState;
use crate::zipstream::ZipStream;

/// How much of the ZIP is handed to the connection at a time, and how many such chunks may
/// wait for a slow client: the export's memory, whatever its size.
const CHUNK: usize = 256 * 1024;
const CHUNKS_IN_FLIGHT: usize = 4;

/// Stream a ZIP of every recording a search matches, with a manifest
///
/// Takes the filters of `GET /recordings` (but not `limit` or `cursor`: every match is in
/// the archive). A user gets their own recordings, an admin their site's. The archive holds
/// `recordings/<file name>` for each recording with a file, and `manifest.json`:
/// `{generated_at, generated_by, filters, recordings: [...]}`, each recording as
/// `GET /recordings/{id}` gives it (metadata, segments, notes) plus `zip_path`,
/// `zip_sha256` and `zip_size_bytes` (null for a recording without a file). Each file's
/// SHA-256 is checked against the index as it is sent; a mismatch cuts the archive short
/// rather than deliver a wrong file. Streamed: no Content-Length.
#[utoipa::path(
    get,
    path = "/api/v1/recordings/export.zip",
    operation_id = "exportRecordingsZip",
    tag = "recordings",
    params(SearchParams),
    responses(
        (status = 200, description = "the ZIP, streamed", content_type = "application/zip",
            body = crate::replies::AudioFile,
            headers(("Content-Disposition" = String, description = "attachment, with a file name"))),
        (status = 400, description = "`limit` or `cursor` given, or a bad filter", body = ErrorReply),
    ),
)]
pub async fn export_zip(state: ApiState, caller: Caller, params: SearchParams) -> Handled {
    export_search(&state, &Who::from(&caller), params, None)
        .await
        .map_err(reject)
}

/// The ZIP of every recording `params` matches that `who` may see (a user's own, an admin's
/// site), streamed; the export audited once before the first byte (`via` names the way in
/// when it is not the API). The API's `export.zip` and the portal's download both are this.
pub(crate) async fn export_search(
    state: &ApiState,
    who: &Who,
    params: SearchParams,
    via: Option<&'static str>,
) -> Result<warp::reply::Response, ApiError> {
    if params.limit.is_some() || params.cursor.is_some() {
        return Err(ApiError::bad_request(
            "export.zip holds every match: `limit` and `cursor` do not apply",
        ));
    }
    let site = who.site_id;
    let tz = state
        .store()
        .read(move |v| Ok(v.site_by_id(site)?.settings.timezone))
        .await?;
    let filters = params.audit_detail();
    let mut detail = json!({"filters": filters.clone()});
    if let Some(via) = via {
        detail["via"] = json!(via);
    }
    let (site_id, actor) = (who.site_id, who.actor());
    let target = format!("site:{}", who.site);
    state
        .store()
        .write(move |s| s.record_event(Some(site_id), &actor, "recording.export", &target, &detail))
        .await?;
    let now = Utc::now();
    let export = Export {
        store: state.store().clone(),
        access: who.access.clone(),
        query: params.to_query(tz),
        tz,
        head: json!({
            "generated_at": now,
            "generated_by": who.actor(),
            "filters": filters,
        }),
    };
    Ok(stream(
        export,
        &format!(
            "callrec-export-{}",
            now.with_timezone(&tz).format("%Y%m%d%H%M%S")
        ),
    ))
}

/// Everything held about a phone number, as one streamed ZIP (admin; a subject access
/// request)
///
/// Every recording of the site with the number as either party, in any form (`0…`, `44…`,
/// `+44…`), held ones included: the set `callrec export` writes and an erasure considers.
/// The archive is that of `GET /recordings/export.zip`, its manifest naming the number (as
/// the site normalises it) and the reason. Audited once before the first byte
/// (`subject_access.export`: who, why, which recordings; the number only as its SHA-256),
/// plus the store's per-file `recording.archive` entries.
#[utoipa::path(
    post,
    path = "/api/v1/exports",
    operation_id = "exportNumber",
    tag = "recordings",
    request_body = ExportBody,
    responses(
        (status = 200, description = "the ZIP, streamed", content_type = "application/zip",
            body = crate::replies::AudioFile,
            headers(("Content-Disposition" = String, description = "attachment, with a file name"))),
        (status = 403, description = "admin only", body = ErrorReply),
        (status = 413, description = "body too large", body = ErrorReply),
        (status = 422, description = "wrong shape, no reason given, or not a number", body = ErrorReply),
    ),
)]
pub async fn export_number(state: ApiState, caller: Caller, body: ExportBody) -> Handled {
    require_admin(&caller, "export recordings by number")?;
    let reason = body.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(reject(ApiError::unprocessable(
            "say why (`reason`, the request this export answers): it is written to the audit log",
        )));
    }
    let (site, access) = (caller.site.clone(), caller.access());
    let number = body.number;
    let (normalised, tz) = state
        .store()
        .write(move |s| {
            let (normalised, ids) = s.find_by_number(&site, &number, &access)?;
            s.record_subject_export(&site, &normalised, &reason, &ids, &access)?;
            Ok((normalised, s.view().site(&site)?.settings.timezone))
        })
        .await
        .map_err(reject)?;
    let now = Utc::now();
    let digits: String = normalised.chars().filter(char::is_ascii_digit).collect();
    let export = Export {
        store: state.store().clone(),
        access: caller.access(),
        query: SearchQuery {
            number: Some(normalised.clone()),
            ..SearchQuery::default()
        },
        tz,
        head: json!({
            "generated_at": now,
            "generated_by": caller.actor(),
            "number": normalised,
            "reason": body.reason.trim(),
        }),
    };
    Ok(stream(
        export,
        &format!(
            "subject-access-{digits}-{}",
            now.with_timezone(&tz).format("%Y%m%d%H%M%S")
        ),
    ))
}

/// Streams `export` as the reply: an attachment named `<name>.zip`, made on a blocking
/// thread and handed over through a small bounded channel.
fn stream(export: Export, name: &str) -> warp::reply::Response {
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = export.write(out) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                tracing::info!("export.zip: the client went away");
            } else {
                tracing::error!(error = %e, "export.zip cut short");
                // The status is sent: the connection is cut so the client sees a broken
                // archive, never a complete-looking one.
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = warp::reply::stream(body).into_response();
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.zip\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// One export, made on a blocking thread.
struct Export {
    store: StoreHandle,
    access: Access,
    query: SearchQuery,
    tz: Tz,
    head: serde_json::Value,
}

/// A recording in `manifest.json`: what `GET /recordings/{id}` says, and where its audio is.
#[derive(Serialize)]
struct ManifestEntry {
    #[serde(flatten)]
    recording: RecordingDetail,
    zip_path: Option<String>,
    zip_sha256: Option<String>,
    zip_size_bytes: Option<u64>,
}

fn store_err(e: callrec_store::StoreError) -> io::Error {
    io::Error::other(e.to_string())
}

impl Export {
    fn write(mut self, out: ChannelWriter) -> io::Result<()> {
        let scratch = &self.store.paths().data_dir;
        let central = tempfile::tempfile_in(scratch)?;
        let mut manifest = BufWriter::new(tempfile::tempfile_in(scratch)?);
        let mut zip = ZipStream::new(out, BufStream::new(central));
        let mut buf = vec![0u8; CHUNK];
        let mut first = true;
        self.query.limit = Some(callrec_store::MAX_LIMIT);
        loop {
            let (access, query) = (self.access.clone(), self.query.clone());
            let page = self
                .store
                .read_blocking(move |v| v.search(&access, &query))
                .map_err(store_err)?;
            for rec in page.items {
                let id = rec.id.clone();
                let access = self.access.clone();
                let detail = match self
                    .store
                    .write_blocking(|s| s.read_recording(&id, &access))
                {
                    Ok(d) => d,
                    // Erased since the page was read.
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(store_err(e)),
                };
                // Opened under the store's writer, as `GET .../audio` does: a deletion
                // between the two cannot leave a row without its file.
                let opened = self.store.write_blocking(|s| {
                    let stored = s.open_file(&id, &access, FilePurpose::Archive)?;
                    let file = File::open(&stored.path);
                    Ok((stored, file))
                });
                let (zip_path, zip_sha256, zip_size_bytes) = match opened {
                    Ok((stored, file)) => {
                        let mut file = file?;
                        let path = format!("recordings/{}", stored.file_name);
                        let at = detail.recording.started_at.with_timezone(&self.tz);
                        zip.start_entry(&path, at.naive_local())?;
                        let mut hasher = Sha256::new();
                        let mut size = 0u64;
                        loop {
                            let n = file.read(&mut buf)?;
                            if n == 0 {
                                break;
                            }
                            hasher.update(&buf[..n]);
                            size += n as u64;
                            zip.write_data(&buf[..n])?;
                        }
                        let sha256 = hex::encode(hasher.finalize());
                        if sha256 != stored.sha256 || size != stored.size_bytes {
                            return Err(io::Error::other(format!(
                                "{} is not what the index says (SHA-256 {sha256}, {size} bytes; \
                                 expected {}, {} bytes): run `callrec verify`",
                                stored.path.display(),
                                stored.sha256,
                                stored.size_bytes
                            )));
                        }
                        (Some(path), Some(sha256), Some(size))
                    }
                    // No file (deleted since the page was read, or failed without one): the
                    // metadata still goes in.
                    Err(e) if e.kind() == ErrorKind::Conflict => (None, None, None),
                    Err(e) => return Err(store_err(e)),
                };
                if !first {
                    manifest.write_all(b",\n")?;
                }
                first = false;
                serde_json::to_writer(
                    &mut manifest,
                    &ManifestEntry {
                        recording: detail.into(),
                        zip_path,
                        zip_sha256,
                        zip_size_bytes,
                    },
                )
                .map_err(io::Error::other)?;
            }
            match page.next_cursor {
                Some(c) => self.query.cursor = Some(c),
                None => break,
            }
        }
        let mut manifest = manifest.into_inner().map_err(|e| e.into_error())?;
        manifest.seek(SeekFrom::Start(0))?;
        zip.start_entry(
            "manifest.json",
            Utc::now().with_timezone(&self.tz).naive_local(),
        )?;
        // `head` without its closing brace, then the recordings.
        let head = self.head.to_string();
        let head = head.strip_suffix('}').unwrap_or(&head);
        zip.write_data(head.as_bytes())?;
        zip.write_data(b",\"recordings\":[\n")?;
        let mut manifest = BufReader::new(manifest);
        loop {
            let n = manifest.read(&mut buf)?;
            if n == 0 {
                break;
            }
            zip.write_data(&buf[..n])?;
        }
        zip.write_data(b"\n]}\n")?;
        let mut out = zip.finish()?;
        out.flush()
    }
}

/// The ZIP's bytes, handed to the connection a chunk at a time.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// A buffered scratch file that can be read back: the central directory's spool.
struct BufStream {
    file: BufWriter<File>,
}

impl BufStream {
    fn new(file: File) -> Self {
        BufStream {
            file: BufWriter::new(file),
        }
    }
}

impl Write for BufStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.file.write(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for BufStream {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl Read for BufStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.flush()?;
        self.file.get_mut().read(buf)
    }
}

/// Many recordings' metadata with segments and notes, at once (for archive clients)
///
/// What `GET /recordings/{id}` gives, for 1 to 500 recordings in one request, in the order
/// asked: an archive client reads a page of the change feed, then the metadata of the
/// recordings it names. A user gets their own recordings, an admin their site's; any other
/// id is left out of the reply (as a 404 would answer it). Each recording returned is audited as a
/// read (`recording.read`, one entry each, exactly as the single read writes it), all of
/// them committed together before the reply.
#[utoipa::path(
    post,
    path = "/api/v1/archive/recordings",
    operation_id = "readRecordings",
    tag = "archive",
    request_body = RecordingIdsBody,
    responses(
        (status = 200, description = "the recordings the caller may see", body = RecordingDetails),
        (status = 413, description = "body too large", body = ErrorReply),
        (status = 422, description = "no ids, more than 500, or one that is not a recording id", body = ErrorReply),
    ),
)]
pub async fn read_recordings(state: ApiState, caller: Caller, body: RecordingIdsBody) -> Handled {
    let ids = body.parse().map_err(reject)?;
    let access = caller.access();
    let (found, _not_visible) = state
        .store()
        .write(move |s| s.read_recordings(&ids, &access))
        .await
        .map_err(reject)?;
    Ok(warp::reply::json(&RecordingDetails {
        items: found.into_iter().map(Into::into).collect(),
    })
    .into_response())
}

/// Report a run of an archive client
///
/// The client's own account of one run (counts, bytes, errors, the last change it
/// followed), kept for the site's admins (`GET /archive/runs`). Audited.
#[utoipa::path(
    post,
    path = "/api/v1/archive/runs",
    operation_id = "reportArchiveRun",
    tag = "archive",
    request_body = ArchiveRunBody,
    responses(
        (status = 201, description = "the run as stored", body = ArchiveRun),
        (status = 413, description = "body too large", body = ErrorReply),
        (status = 422, description = "a value is not acceptable", body = ErrorReply),
    ),
)]
pub async fn report_run(state: ApiState, caller: Caller, body: ArchiveRunBody) -> Handled {
    let run = callrec_store::NewArchiveRun::from(body);
    let stored = state
        .store()
        .write(move |s| s.record_archive_run(&caller, &run))
        .await
        .map_err(reject)?;
    Ok(warp::reply::with_status(
        warp::reply::json(&ArchiveRun::from(stored)),
        StatusCode::CREATED,
    )
    .into_response())
}

/// The archive clients of the site and their last runs (admin)
#[utoipa::path(
    get,
    path = "/api/v1/archive/runs",
    operation_id = "listArchiveClients",
    tag = "archive",
    responses(
        (status = 200, description = "the clients", body = ArchiveClients),
        (status = 403, description = "admin only: a user token gets 403", body = ErrorReply),
    ),
)]
pub async fn list_runs(state: ApiState, caller: Caller) -> Handled {
    require_admin(&caller, "list archive clients")?;
    let site = caller.site_id;
    let clients = state
        .store()
        .read(move |v| v.archive_clients(site))
        .await
        .map_err(reject)?;
    state
        .audit(
            &caller,
            "archive.list",
            format!("site:{}", caller.site),
            json!({"clients": clients.len()}),
        )
        .await
        .map_err(reject)?;
    Ok(warp::reply::json(&ArchiveClients::from(clients)).into_response())
}
