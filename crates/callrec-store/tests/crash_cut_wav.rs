//! A WAV the switch never closed (it was killed mid-call, SPEC §3.3): its header still says
//! what the switch wrote at the start (RIFF size 8, `data` size 0) while the audio it flushed
//! follows. The ingest stores it repaired, so the stored file, its hash, its duration and what
//! the API serves agree, and says so; files that need nothing pass through byte for byte.

mod support;

use callrec_model::{Direction, NewRecording, RecordingId, RecordingState};
use callrec_store::wav::{self as store_wav, HEADER_WINDOW};
use callrec_store::{Access, FilePurpose, HEADER_REPAIRED, IngestJob, IngestOutcome, Recording};
use callrec_testkit::wav;
use sha2::{Digest, Sha256};
use support::{Fixture, NowUtc};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Ingest `bytes` as the switch's file for a new user's recording; returns the outcome, the
/// row, and the bytes the store now holds (as served).
fn ingest(f: &mut Fixture, bytes: &[u8]) -> (IngestOutcome, Recording, Vec<u8>) {
    let alice = f.user("1001");
    let id = f.start(&alice, "1001", "9999");
    std::fs::write(f.spool_path(&id), bytes).unwrap();
    let outcome = f.store.ingest(&IngestJob::new(id.clone())).unwrap();
    let rec = f.store.view().recording(&id, &Access::system("t")).unwrap();
    let served = f
        .store
        .open_file(&id, &Access::system("t"), FilePurpose::Play)
        .map(|file| std::fs::read(&file.path).unwrap())
        .unwrap_or_default();
    (outcome, rec, served)
}

/// What a player reading the header would say: (RIFF size, `data` size, milliseconds).
fn header_says(file: &[u8]) -> (u32, u32, u64) {
    let (riff, data) = wav::sizes(file);
    (riff, data, u64::from(data) / u64::from(wav::BYTES_PER_MS))
}

fn ingest_audit_detail(f: &Fixture, rec: &Recording) -> serde_json::Value {
    let page = f.store.view().audit(None, None, 50).unwrap();
    let entry = page
        .entries
        .iter()
        .find(|e| e.target == format!("recording:{}", rec.id) && e.actor == "ingest")
        .expect("an ingest audit entry");
    serde_json::from_str(&entry.detail).unwrap()
}

#[test]
fn a_wav_cut_by_a_switch_crash_is_stored_with_its_header_repaired() {
    let mut f = Fixture::new();
    // One 64 KiB block flushed before the kill: 4.096 s of 8 kHz mono.
    let cut = wav::cut_by_crash(4096, 11);
    let (outcome, rec, served) = ingest(&mut f, &cut);

    let IngestOutcome::Stored {
        sha256,
        size_bytes,
        duration_ms,
        path,
        ..
    } = outcome
    else {
        panic!("not stored: {outcome:?}");
    };
    // The header now says what is in the file, as if the switch had closed it.
    assert_eq!(served, wav::noise(4096, 11));
    assert_eq!(header_says(&served), (36 + 65_536, 65_536, 4096));
    let info = store_wav::inspect(
        &served[..HEADER_WINDOW.min(served.len())],
        served.len() as u64,
    )
    .unwrap();
    assert!(info.sizes_patched);
    // The file, the index and the player agree.
    assert_eq!(duration_ms, Some(4096));
    assert_eq!(rec.duration_ms, Some(4096));
    assert_eq!(sha256_hex(&served), sha256);
    assert_eq!(rec.sha256.as_deref(), Some(sha256.as_str()));
    assert_eq!(size_bytes, served.len() as u64);
    assert_eq!(rec.size_bytes, Some(served.len() as u64));
    assert_eq!(std::fs::read(&path).unwrap(), served);
    assert_eq!(
        f.store.view().user_usage(rec.user_id).unwrap().bytes,
        served.len() as u64
    );
    // Marked, for users (the row) and auditors (the ingest's audit entry).
    assert_eq!(rec.state, RecordingState::Stored);
    let reason = rec.state_reason.clone().unwrap_or_default();
    assert!(reason.starts_with(HEADER_REPAIRED), "{reason}");
    assert!(
        reason.contains("said 0 bytes of audio, the file held 65536"),
        "{reason}"
    );
    let detail = ingest_audit_detail(&f, &rec);
    assert_eq!(detail["header_repaired"]["data_size_was"], 0);
    assert_eq!(detail["header_repaired"]["riff_size_was"], 8);
    assert_eq!(detail["header_repaired"]["data_size"], 65_536);
    assert_eq!(detail["sha256"], sha256);
    // The spool file, copied rather than renamed, is gone after the commit.
    assert!(!f.spool_path(&rec.id).exists());
    assert!(f.store.verify(&Default::default()).unwrap().is_clean());
}

#[test]
fn a_header_claiming_more_audio_than_the_file_holds_is_repaired() {
    let mut f = Fixture::new();
    let mut short = wav::noise(2000, 12);
    short.truncate(44 + 16_000); // the header says 2 s, the file holds 1 s
    let (outcome, rec, served) = ingest(&mut f, &short);
    assert!(
        matches!(outcome, IngestOutcome::Stored { .. }),
        "{outcome:?}"
    );
    assert_eq!(header_says(&served), (36 + 16_000, 16_000, 1000));
    assert_eq!(served[44..], short[44..]);
    assert_eq!(rec.duration_ms, Some(1000));
    assert_eq!(rec.sha256, Some(sha256_hex(&served)));
    let reason = rec.state_reason.unwrap_or_default();
    assert!(
        reason.contains("said 32000 bytes of audio, the file held 16000"),
        "{reason}"
    );
}

#[test]
fn a_well_formed_wav_is_stored_byte_for_byte() {
    let mut f = Fixture::new();
    let whole = wav::noise(3000, 13);
    let (outcome, rec, served) = ingest(&mut f, &whole);
    assert!(
        matches!(outcome, IngestOutcome::Stored { .. }),
        "{outcome:?}"
    );
    assert!(
        served == whole,
        "the stored file is the switch's, untouched"
    );
    assert_eq!(rec.sha256, Some(sha256_hex(&whole)));
    assert_eq!(rec.duration_ms, Some(3000));
    assert_eq!(rec.state_reason, None);
    let detail = ingest_audit_detail(&f, &rec);
    assert!(detail.get("header_repaired").is_none(), "{detail}");
}

#[test]
fn a_torn_last_sample_is_cut_when_the_header_is_repaired() {
    let mut f = Fixture::new();
    let mut cut = wav::cut_by_crash(1000, 14);
    cut.push(0x42); // the first byte of a sample the switch never finished
    let (outcome, rec, served) = ingest(&mut f, &cut);
    assert!(
        matches!(outcome, IngestOutcome::Stored { .. }),
        "{outcome:?}"
    );
    assert_eq!(served, wav::noise(1000, 14));
    assert_eq!(rec.size_bytes, Some(44 + 16_000));
    assert_eq!(rec.duration_ms, Some(1000));
    assert_eq!(rec.sha256, Some(sha256_hex(&served)));
    let reason = rec.state_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("a torn last frame of 1 bytes was cut"),
        "{reason}"
    );
    assert_eq!(
        ingest_audit_detail(&f, &rec)["header_repaired"]["cut_bytes"],
        1
    );
}

#[test]
fn a_header_followed_by_less_than_one_sample_still_fails_and_is_kept_as_it_was() {
    let mut f = Fixture::new();
    let mut cut = wav::empty();
    cut.push(0x42);
    let (outcome, rec, _) = ingest(&mut f, &cut);
    let IngestOutcome::Failed {
        reason,
        path: Some(path),
        ..
    } = outcome
    else {
        panic!("not failed with a file: {outcome:?}");
    };
    assert!(reason.contains("no audio"), "{reason}");
    assert_eq!(std::fs::read(path).unwrap(), cut);
    assert_eq!(rec.state, RecordingState::Failed);
    assert_eq!(rec.sha256, Some(sha256_hex(&cut)));
}

#[test]
fn a_file_in_another_format_is_never_rewritten() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let id = RecordingId::new();
    let spool_path = f.spool.join(format!("{id}.mp3"));
    f.store
        .create_recording(
            &NewRecording {
                id: id.clone(),
                user: alice.id,
                call_uuid: format!("call-{id}"),
                direction: Direction::Outbound,
                from: "1001".into(),
                to: "9999".into(),
                started_at: f.clock.now_utc(),
                format: "mp3".into(),
                spool_path: spool_path.clone(),
            },
            "daemon",
        )
        .unwrap();
    // Bytes that would be repaired were they a WAV.
    let bytes = wav::cut_by_crash(500, 15);
    std::fs::write(&spool_path, &bytes).unwrap();
    let outcome = f.store.ingest(&IngestJob::new(id.clone())).unwrap();
    let IngestOutcome::Stored { path, sha256, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(std::fs::read(path).unwrap() == bytes);
    assert_eq!(sha256, sha256_hex(&bytes));
    let rec = f.store.view().recording(&id, &Access::system("t")).unwrap();
    assert_eq!(rec.state_reason, None);
}
