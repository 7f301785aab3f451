//! `callrec export --number N --dest DIR --reason TEXT`: everything held about a phone
//! number, for a subject access request (issue 13): one ZIP with each recording's audio and a
//! `manifest.json` of its metadata, segments, notes and SHA-256.
//!
//! The same set an erasure considers (the number as either party, in any form), held
//! recordings included. Each file is hashed while it is copied and must match the index;
//! the ZIP is written beside its final name and renamed when complete, so a half-written
//! export never looks finished. Reading each recording and its file is audited as any read
//! is, and the export itself once (who, why, which recordings; the number as its SHA-256).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use callrec_store::{Access, FilePurpose, RecordingDetail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::commands::{Session, out};
use crate::exit::Outcome;

/// Writes the ZIP and prints its path.
pub fn run(
    session: &Session,
    site: &str,
    number: &str,
    reason: &str,
    dest: &Path,
) -> anyhow::Result<Outcome> {
    if reason.trim().is_empty() {
        bail!(
            "say why (--reason, the request this export answers): it is written to the audit log"
        );
    }
    let mut store = session.open_store()?;
    let access = Access::system(&session.actor);
    let (normalised, ids) = store
        .find_by_number(site, number, &access)
        .with_context(|| format!("cannot look up the recordings of {number}"))?;
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let stamp = store.now().format("%Y%m%d%H%M%S");
    let digits: String = normalised.chars().filter(char::is_ascii_digit).collect();
    let name = format!("subject-access-{digits}-{stamp}.zip");
    let path = dest.join(&name);
    let part = dest.join(format!("{name}.part"));

    let written = (|| -> anyhow::Result<usize> {
        let file = std::fs::File::create(&part)
            .with_context(|| format!("cannot create {}", part.display()))?;
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        let mut entries = Vec::with_capacity(ids.len());
        for id in &ids {
            let detail = store.read_recording(id, &access)?;
            let audio = match store.open_file(id, &access, FilePurpose::Archive) {
                Ok(file) => {
                    let inside = format!("recordings/{}", file.file_name);
                    zip.start_file(inside.as_str(), options)?;
                    let sha256 = copy_hashed(&file.path, &mut zip)?;
                    if sha256 != file.sha256 {
                        bail!(
                            "{} is not what the index says (SHA-256 {sha256}, expected {}): \
                             run `callrec verify`",
                            file.path.display(),
                            file.sha256
                        );
                    }
                    Some((inside, sha256, file.size_bytes))
                }
                // A failed recording may have no file; its metadata still goes in.
                Err(err) if err.kind() == callrec_store::ErrorKind::Conflict => None,
                Err(err) => return Err(err.into()),
            };
            entries.push(manifest_entry(&detail, audio));
        }
        let manifest = json!({
            "number": normalised,
            "generated_at": store.now().to_rfc3339(),
            "generated_by": session.actor,
            "reason": reason.trim(),
            "recordings": entries,
        });
        zip.start_file("manifest.json", options)?;
        zip.write_all(serde_json::to_string_pretty(&manifest)?.as_bytes())?;
        let mut inner = zip.finish()?;
        inner.flush()?;
        inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(ids.len())
    })();
    let count = match written {
        Ok(count) => count,
        Err(err) => {
            let _ = std::fs::remove_file(&part);
            return Err(err.context(format!("cannot write {}", path.display())));
        }
    };
    std::fs::rename(&part, &path)
        .with_context(|| format!("cannot rename {} to {}", part.display(), path.display()))?;
    store
        .record_subject_export(site, &normalised, reason, &ids, &access)
        .context("cannot audit the export")?;
    out::line(format!("{} ({count} recording(s))", path.display()))?;
    Ok(Outcome::Success)
}

/// Copies a file into `to`, returning its SHA-256 (hex).
fn copy_hashed(from: &PathBuf, to: &mut impl Write) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(from).with_context(|| format!("cannot open {}", from.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// One recording in the manifest: its metadata, segments and notes, and where its audio is
/// in the ZIP with its hash.
fn manifest_entry(detail: &RecordingDetail, audio: Option<(String, String, u64)>) -> Value {
    let r = &detail.recording;
    let (file, sha256, size) = match audio {
        Some((file, sha256, size)) => (Some(file), Some(sha256), Some(size)),
        None => (None, None, None),
    };
    json!({
        "id": r.id,
        "user": r.user,
        "site": r.site,
        "direction": r.direction.as_str(),
        "from": r.from.raw,
        "to": r.to.raw,
        "started_at": r.started_at.to_rfc3339(),
        "ended_at": r.ended_at.map(|t| t.to_rfc3339()),
        "duration_ms": r.duration_ms,
        "paused_ms": r.paused_ms,
        "state": r.state.as_str(),
        "hold": r.hold,
        "file": file,
        "sha256": sha256,
        "size_bytes": size,
        "segments": detail.segments.iter().map(|s| json!({
            "kind": s.kind.as_str(),
            "at": s.at.to_rfc3339(),
            "source": s.source.as_str(),
            "actor": s.actor,
        })).collect::<Vec<_>>(),
        "notes": detail.notes.iter().map(|n| json!({
            "author": n.author,
            "at": n.at.to_rfc3339(),
            "text": n.text,
        })).collect::<Vec<_>>(),
    })
}
