//! A recording's life as the daemon and the API see it: sites, users, creation, segments,
//! ingest, reading, notes, hold, deletion, tokens, the directory snapshot.

mod support;

use callrec_model::{RecordingMode, RecordingState, Role, SegmentKind, SegmentSource};
use callrec_store::{
    Access, FilePurpose, IngestJob, IngestOutcome, NewUser, SiteUpdate, Store, StoreError,
    UserUpdate,
};
use chrono::Duration;
use support::{Fixture, NowUtc};

#[test]
fn a_new_index_has_the_default_site_and_opening_again_migrates_nothing() {
    let mut f = Fixture::new();
    let m = f.store.migration();
    assert_eq!((m.from, m.to), (0, callrec_store::SCHEMA_VERSION));
    let site = f.store.view().site("default").unwrap();
    assert_eq!(site.settings, callrec_store::SiteSettings::default());
    f.reopen();
    let m = f.store.migration();
    assert_eq!(m.from, m.to);
}

#[test]
fn new_users_get_the_site_default_mode_and_extensions_are_unique_per_site() {
    let mut f = Fixture::new();
    f.store
        .update_site(
            "default",
            &SiteUpdate {
                default_mode: Some(RecordingMode::OnDemand),
                ..SiteUpdate::default()
            },
            "test",
        )
        .unwrap();
    let u = f.user("1001");
    assert_eq!(u.mode, RecordingMode::OnDemand);
    assert_eq!(u.role, Role::User);
    let err = f
        .store
        .add_user(&NewUser::new("default", "1001"), "test")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "extension 1001 already exists in site default"
    );

    let err = f
        .store
        .set_mode("default", "1009", RecordingMode::Always, "test")
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown user 1009 in site default");

    let u = f
        .store
        .set_mode("default", "1001", RecordingMode::Never, "test")
        .unwrap();
    assert_eq!(u.mode, RecordingMode::Never);
}

#[test]
fn user_numbers_are_normalised_and_belong_to_one_user() {
    let mut f = Fixture::new();
    let mut new = NewUser::new("default", "1001");
    new.numbers = vec!["(01234) 567890".into(), "+44 20 7745 6456".into()];
    let u = f.store.add_user(&new, "test").unwrap();
    let forms: Vec<_> = u.numbers.iter().map(|n| n.normalised.as_str()).collect();
    assert_eq!(forms, ["+441234567890", "+442077456456"]);

    let mut other = NewUser::new("default", "1002");
    other.numbers = vec!["01234567890".into()];
    let err = f.store.add_user(&other, "test").unwrap_err();
    assert_eq!(
        err.to_string(),
        "number +441234567890 already belongs to user 1001 in site default"
    );
    // Nothing of the refused user was written.
    assert!(f.store.view().user("default", "1002").is_err());

    let mut bad = NewUser::new("default", "1003");
    bad.numbers = vec!["call me".into()];
    assert!(matches!(
        f.store.add_user(&bad, "test"),
        Err(StoreError::Invalid {
            field: "number",
            ..
        })
    ));
}

#[test]
fn the_directory_snapshot_and_its_version_follow_every_change_from_any_process() {
    let mut f = Fixture::new();
    let v0 = f.store.view().directory_version().unwrap();
    let mut new = NewUser::new("default", "1001");
    new.numbers = vec!["02920123123".into()];
    f.store.add_user(&new, "test").unwrap();
    let v1 = f.store.view().directory_version().unwrap();
    assert!(v1 > v0);

    // Another process (the CLI) adds a user; this connection sees the version move.
    let mut other = Store::open(f.data_dir()).unwrap();
    other
        .add_user(&NewUser::new("default", "1002"), "cli")
        .unwrap();
    let v2 = f.store.view().directory_version().unwrap();
    assert!(v2 > v1);

    let dir = f.store.view().directory().unwrap();
    assert_eq!(dir.version, v2);
    assert_eq!(dir.users.len(), 2);
    let site = dir.sites[0].id;
    let lookup = dir.lookup();
    assert_eq!(lookup.find(site, "1001").unwrap().extension, "1001");
    assert_eq!(
        lookup.find(site, "+442920123123").unwrap().extension,
        "1001"
    );
    assert_eq!(lookup.find(site, "442920123123").unwrap().extension, "1001");
    assert!(lookup.find(site, "1003").is_none());
}

#[test]
fn a_recorded_call_is_stored_with_its_hash_duration_pauses_and_file_name() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let id = f.start(&alice, "442920123123", "02077456456");
    let t0 = f.clock.now_utc();
    f.store
        .add_segment(&id, SegmentKind::Pause, t0, SegmentSource::Handset, "1001")
        .unwrap();
    f.store
        .add_segment(
            &id,
            SegmentKind::Resume,
            t0 + Duration::seconds(2),
            SegmentSource::Handset,
            "1001",
        )
        .unwrap();
    let fixture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/freeswitch/record-pause-mask.wav"
    ))
    .unwrap();
    std::fs::write(f.spool_path(&id), &fixture).unwrap();

    let outcome = f.store.ingest(&IngestJob::new(id.clone())).unwrap();
    let IngestOutcome::Stored {
        path,
        size_bytes,
        duration_ms,
        ..
    } = outcome
    else {
        panic!("not stored: {outcome:?}");
    };
    assert_eq!(size_bytes, fixture.len() as u64);
    assert_eq!(duration_ms, Some(9020));
    assert!(
        !f.spool_path(&id).exists(),
        "the spool file moved into the store"
    );
    assert_eq!(std::fs::read(&path).unwrap(), fixture);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("20240501100000-442920123123-02077456456-1001-"),
        "{name}"
    );
    assert!(path.starts_with(f.data_dir().join("store/default/2024/05/01")));

    let admin = Access::system("admin");
    let detail = f.store.read_recording(&id, &admin).unwrap();
    let rec = &detail.recording;
    assert_eq!(rec.state, RecordingState::Stored);
    assert_eq!(rec.paused_ms, 2000);
    assert_eq!(rec.from.normalised, "+442920123123");
    assert_eq!(rec.to.normalised, "+442077456456");
    assert_eq!(rec.expires_at, Some(rec.started_at + Duration::days(180)));
    let kinds: Vec<_> = detail.segments.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [SegmentKind::Start, SegmentKind::Pause, SegmentKind::Resume]
    );
    assert_eq!(
        f.store.view().user_usage(alice.id).unwrap().bytes,
        fixture.len() as u64
    );

    // Ingesting again changes nothing.
    let again = f.store.ingest(&IngestJob::new(id.clone())).unwrap();
    assert!(matches!(
        again,
        IngestOutcome::AlreadyDone {
            state: RecordingState::Stored,
            ..
        }
    ));
    assert_eq!(f.store.view().user_usage(alice.id).unwrap().files, 1);

    // Reading it was audited.
    let audit = f.store.view().audit(None, None, 10).unwrap();
    assert_eq!(audit.entries[0].action, "recording.read");
    assert_eq!(audit.entries[0].actor, "admin");
}

#[test]
fn a_file_left_without_audio_by_a_killed_switch_is_kept_and_marked_failed() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let id = f.start(&alice, "1001", "9999");
    // What the `crash` fixture describes: a 44-byte header and nothing else.
    std::fs::write(f.spool_path(&id), callrec_testkit::wav::empty()).unwrap();
    let outcome = f.store.ingest(&IngestJob::new(id.clone())).unwrap();
    let IngestOutcome::Failed {
        reason,
        path: Some(path),
        ..
    } = outcome
    else {
        panic!("not failed with a file: {outcome:?}");
    };
    assert!(reason.contains("no audio"), "{reason}");
    assert!(path.exists());
    let rec = f.store.view().recording(&id, &Access::system("t")).unwrap();
    assert_eq!(rec.state, RecordingState::Failed);
    assert_eq!(rec.state_reason.as_deref(), Some(reason.as_str()));
    assert_eq!(rec.size_bytes, Some(44));

    // Garbage is failed too, never a panic.
    let id = f.start(&alice, "1001", "9999");
    std::fs::write(f.spool_path(&id), b"definitely not audio").unwrap();
    let outcome = f.store.ingest(&IngestJob::new(id)).unwrap();
    assert!(matches!(outcome, IngestOutcome::Failed { .. }));

    // No file at all: failed, saying so.
    let id = f.start(&alice, "1001", "9999");
    let outcome = f.store.ingest(&IngestJob::new(id.clone())).unwrap();
    let IngestOutcome::Failed {
        reason, path: None, ..
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(reason.starts_with("no file"), "{reason}");

    // Deleting a recording that never had a file leaves the usage of the others alone.
    let before = f.store.view().user_usage(alice.id).unwrap();
    assert_eq!(before.files, 2);
    f.store
        .delete_recording(&id, &Access::system("admin"), "cleanup")
        .unwrap();
    assert_eq!(f.store.view().user_usage(alice.id).unwrap(), before);
    assert!(f.store.verify(&Default::default()).unwrap().is_clean());
}

#[test]
fn a_too_short_recording_is_discarded_with_its_reason() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let id = f.start(&alice, "1001", "9999");
    let rec = f
        .store
        .discard(&id, "input-too-short", f.clock.now_utc(), "daemon")
        .unwrap();
    assert_eq!(rec.state, RecordingState::Discarded);
    assert_eq!(rec.state_reason.as_deref(), Some("input-too-short"));
    let outcome = f.store.ingest(&IngestJob::new(id.clone())).unwrap();
    assert!(matches!(
        outcome,
        IngestOutcome::AlreadyDone {
            state: RecordingState::Discarded,
            ..
        }
    ));
    assert!(matches!(
        f.store.add_segment(
            &id,
            SegmentKind::Pause,
            f.clock.now_utc(),
            SegmentSource::Api,
            "x"
        ),
        Err(StoreError::WrongState { .. })
    ));
}

#[test]
fn the_daemon_finds_the_recordings_still_running() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let running = f.start(&alice, "1001", "9999");
    f.recording(&alice, "1001", "9998", 500);
    let rows = f.store.view().recordings_in_progress().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, running);
    assert_eq!(rows[0].spool_path, f.spool_path(&running));
    assert_eq!(rows[0].call_uuid, format!("call-{running}"));
    assert_eq!(rows[0].paused_since, None);
}

#[test]
fn a_recording_still_running_says_whether_it_was_left_paused() {
    // The daemon restarts while a recording is masked: to carry on from the right state
    // (a *49 must unmask it) it reads the last pause or resume from the index.
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let id = f.start(&alice, "1001", "9999");
    let t0 = f.clock.now_utc();
    let pause = |f: &mut Fixture, kind, at| {
        f.store
            .add_segment(&id, kind, at, SegmentSource::Handset, "1001@default")
            .unwrap();
    };
    pause(&mut f, SegmentKind::Pause, t0);
    let rows = f.store.view().recordings_in_progress().unwrap();
    assert_eq!(rows[0].paused_since, Some(t0));
    pause(&mut f, SegmentKind::Resume, t0 + Duration::seconds(5));
    let rows = f.store.view().recordings_in_progress().unwrap();
    assert_eq!(rows[0].paused_since, None);
    pause(&mut f, SegmentKind::Pause, t0 + Duration::seconds(9));
    let rows = f.store.view().recordings_in_progress().unwrap();
    assert_eq!(rows[0].paused_since, Some(t0 + Duration::seconds(9)));
}

#[test]
fn users_see_only_their_own_recordings_and_admins_their_site() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let bob = f.user("1002");
    let boss = f.admin("1000");
    let a = f.recording(&alice, "1001", "02077456456", 500);
    let b = f.recording(&bob, "1002", "02077456456", 500);

    let t_alice = f
        .store
        .create_token(alice.id, "phone", &Access::system("cli"))
        .unwrap();
    let t_boss = f
        .store
        .create_token(boss.id, "", &Access::system("cli"))
        .unwrap();
    let alice_caller = f
        .store
        .view()
        .authenticate(&t_alice.secret)
        .unwrap()
        .unwrap();
    let boss_caller = f
        .store
        .view()
        .authenticate(&t_boss.secret)
        .unwrap()
        .unwrap();
    let alice_access = alice_caller.access();

    assert!(f.store.read_recording(&a.id, &alice_access).is_ok());
    assert!(matches!(
        f.store.read_recording(&b.id, &alice_access),
        Err(StoreError::UnknownRecording(_))
    ));
    assert!(matches!(
        f.store
            .open_file(&b.id, &alice_access, FilePurpose::Download),
        Err(StoreError::UnknownRecording(_))
    ));
    assert!(matches!(
        f.store.add_note(&b.id, &alice_access, "peek"),
        Err(StoreError::UnknownRecording(_))
    ));
    assert!(matches!(
        f.store.set_hold(&a.id, &alice_access, true),
        Err(StoreError::Forbidden { .. })
    ));
    let mine = f
        .store
        .view()
        .search(&alice_access, &Default::default())
        .unwrap();
    assert_eq!(
        mine.items.iter().map(|r| &r.id).collect::<Vec<_>>(),
        [&a.id]
    );
    // Asking for another user's recordings gives nothing, not an error that confirms them.
    let q = callrec_store::SearchQuery {
        user: Some("1002".into()),
        ..Default::default()
    };
    assert!(
        f.store
            .view()
            .search(&alice_access, &q)
            .unwrap()
            .items
            .is_empty()
    );

    let all = f
        .store
        .view()
        .search(&boss_caller.access(), &Default::default())
        .unwrap();
    assert_eq!(all.items.len(), 2);
    let file = f
        .store
        .open_file(&b.id, &boss_caller.access(), FilePurpose::Play)
        .unwrap();
    assert_eq!(file.sha256, b.sha256.clone().unwrap());
    assert_eq!(file.content_type(), "audio/wav");
    assert!(file.path.starts_with(f.data_dir().join("store")));
}

#[test]
fn tokens_are_stored_hashed_shown_once_and_revocable() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let token = f
        .store
        .create_token(alice.id, "laptop", &Access::system("cli"))
        .unwrap();
    assert!(token.secret.starts_with("callrec_"));
    assert!(!format!("{token:?}").contains(&token.secret));
    let index = std::fs::read(f.data_dir().join("index.db")).unwrap();
    let wal = std::fs::read(f.data_dir().join("index.db-wal")).unwrap_or_default();
    let needle = token.secret.as_bytes();
    for bytes in [&index, &wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "secret on disk"
        );
    }
    let caller = f.store.view().authenticate(&token.secret).unwrap().unwrap();
    assert_eq!(
        (caller.extension.as_str(), caller.role),
        ("1001", Role::User)
    );
    assert!(
        f.store
            .view()
            .authenticate("callrec_nope")
            .unwrap()
            .is_none()
    );

    let listed = f.store.view().tokens(None).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].label, "laptop");
    f.store
        .revoke_token(token.id, &Access::system("cli"))
        .unwrap();
    assert!(
        f.store
            .view()
            .authenticate(&token.secret)
            .unwrap()
            .is_none()
    );
    assert!(f.store.view().tokens(None).unwrap()[0].revoked_at.is_some());
}

#[test]
fn notes_holds_and_deletion_follow_the_rules() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let rec = f.recording(&alice, "1001", "02077456456", 500);
    let admin = Access::system("1000@default");

    let note = f
        .store
        .add_note(&rec.id, &admin, "  customer disputes the charge ")
        .unwrap();
    assert_eq!(note.text, "customer disputes the charge");
    assert!(f.store.add_note(&rec.id, &admin, "   ").is_err());
    assert!(f.store.add_note(&rec.id, &admin, "nul\0inside").is_err());
    let long = "x".repeat(callrec_store::MAX_NOTE_CHARS + 1);
    assert!(f.store.add_note(&rec.id, &admin, &long).is_err());

    f.store.set_hold(&rec.id, &admin, true).unwrap();
    let err = f
        .store
        .delete_recording(&rec.id, &admin, "asked")
        .unwrap_err();
    assert!(matches!(err, StoreError::OnHold(_)));
    assert_eq!(err.kind(), callrec_store::ErrorKind::Conflict);

    f.store.set_hold(&rec.id, &admin, false).unwrap();
    let path = f
        .store
        .open_file(&rec.id, &admin, FilePurpose::Play)
        .unwrap()
        .path;
    let gone = f
        .store
        .delete_recording(&rec.id, &admin, "asked by the customer")
        .unwrap();
    assert_eq!(gone.state, RecordingState::Deleted);
    assert!(gone.state_reason.unwrap().contains("asked by the customer"));
    assert!(gone.deleted_at.is_some());
    assert!(!path.exists());
    assert_eq!(f.store.view().user_usage(alice.id).unwrap().bytes, 0);
    let detail = f.store.read_recording(&rec.id, &admin).unwrap();
    assert_eq!(detail.notes.len(), 1, "the tombstone keeps its history");
    let actions: Vec<String> = f
        .store
        .view()
        .audit(None, None, 20)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.action)
        .collect();
    for expected in [
        "recording.note",
        "recording.hold",
        "recording.release",
        "recording.delete",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
}

#[test]
fn bad_site_settings_are_refused_with_the_field_named_and_nothing_changes() {
    let mut f = Fixture::new();
    let err = f
        .store
        .update_site(
            "default",
            &SiteUpdate {
                retention_days: Some(0),
                ..SiteUpdate::default()
            },
            "test",
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid retention_days `0`: must be between 1 and 36525"
    );
    let err = callrec_store::parse_timezone("Mars/Olympus").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid timezone `Mars/Olympus`")
    );
    let err = f
        .store
        .update_site(
            "default",
            &SiteUpdate {
                country_code: Some(999),
                ..SiteUpdate::default()
            },
            "test",
        )
        .unwrap_err();
    assert!(err.to_string().contains("country_code"));
    assert_eq!(
        f.store.view().site("default").unwrap().settings,
        callrec_store::SiteSettings::default()
    );
    // An update that changes nothing writes nothing.
    let before = f.store.view().audit(None, None, 500).unwrap().entries.len();
    f.store
        .update_site("default", &SiteUpdate::default(), "test")
        .unwrap();
    assert_eq!(
        f.store.view().audit(None, None, 500).unwrap().entries.len(),
        before
    );
}

#[test]
fn changing_the_number_plan_renormalises_user_numbers() {
    let mut f = Fixture::new();
    let mut new = NewUser::new("default", "1001");
    new.numbers = vec!["2125551234".into()];
    let u = f.store.add_user(&new, "test").unwrap();
    assert_eq!(u.numbers[0].normalised, "+442125551234");
    f.store
        .update_site(
            "default",
            &SiteUpdate {
                country_code: Some(1),
                national_prefix: Some("1".into()),
                ..SiteUpdate::default()
            },
            "test",
        )
        .unwrap();
    let u = f.store.view().user("default", "1001").unwrap();
    assert_eq!(u.numbers[0].normalised, "+12125551234");
    let u = f
        .store
        .update_user(
            "default",
            "1001",
            &UserUpdate {
                numbers: Some(vec![]),
                role: Some(Role::Admin),
                ..UserUpdate::default()
            },
            "test",
        )
        .unwrap();
    assert!(u.numbers.is_empty());
    assert_eq!(u.role, Role::Admin);
}

#[test]
fn an_unwritable_data_dir_is_a_clear_error_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    // Tests run as root, for whom permission bits mean nothing: a file in the way is the
    // portable way to make a directory impossible to create.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let data = blocker.join("data");
    let err = Store::open(&data).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("data dir {} is not writable: ", data.display())),
        "{msg}"
    );
    assert!(!data.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_start_time_at_the_end_of_the_calendar_is_stored_not_a_panic() {
    // The start time comes from the switch's Event-Date-Timestamp: a corrupt or hostile one
    // can name the last days chrono can represent. Ingest adds the retention to it; that
    // must not panic the ingest thread (which would stop every later ingest).
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let id = callrec_model::RecordingId::new();
    let started_at = chrono::DateTime::<chrono::Utc>::MAX_UTC - Duration::days(1);
    let new = callrec_model::NewRecording {
        id: id.clone(),
        user: alice.id,
        call_uuid: "call-far-future".to_owned(),
        direction: callrec_model::Direction::Outbound,
        from: "1001".to_owned(),
        to: "02077456456".to_owned(),
        started_at,
        format: "wav".to_owned(),
        spool_path: f.spool_path(&id),
    };
    f.store.create_recording(&new, "daemon").unwrap();
    f.write_spool(&id, 1000);
    let outcome = f.store.ingest(&IngestJob::new(id.clone())).unwrap();
    assert!(
        matches!(outcome, IngestOutcome::Stored { .. }),
        "{outcome:?}"
    );
    let rec = f
        .store
        .view()
        .recording(&id, &Access::system("test"))
        .unwrap();
    assert_eq!(rec.state, RecordingState::Stored);
    assert!(rec.expires_at.is_some_and(|e| e >= started_at));
}

#[test]
fn a_retention_change_keeps_a_recording_at_the_end_of_the_calendar_readable() {
    // Ingest saturates such a recording's expiry at the last representable time; changing
    // the site's retention recomputes it and must saturate the same way, or the row holds a
    // time no reader can parse and every listing that reaches it fails.
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let id = callrec_model::RecordingId::new();
    let started_at = chrono::DateTime::<chrono::Utc>::MAX_UTC - Duration::days(1);
    let new = callrec_model::NewRecording {
        id: id.clone(),
        user: alice.id,
        call_uuid: "call-far-future".to_owned(),
        direction: callrec_model::Direction::Outbound,
        from: "1001".to_owned(),
        to: "02077456456".to_owned(),
        started_at,
        format: "wav".to_owned(),
        spool_path: f.spool_path(&id),
    };
    f.store.create_recording(&new, "daemon").unwrap();
    f.write_spool(&id, 1000);
    f.store.ingest(&IngestJob::new(id.clone())).unwrap();
    let saturated = f
        .store
        .view()
        .recording(&id, &Access::system("test"))
        .unwrap()
        .expires_at;

    f.store
        .update_site(
            "default",
            &SiteUpdate {
                retention_days: Some(365),
                ..Default::default()
            },
            "admin",
        )
        .unwrap();
    let rec = f
        .store
        .view()
        .recording(&id, &Access::system("test"))
        .unwrap();
    assert_eq!(rec.state, RecordingState::Stored);
    assert_eq!(rec.expires_at, saturated);
    assert!(rec.expires_at.is_some_and(|e| e > started_at));
}

#[test]
fn a_token_past_its_expiry_no_longer_authenticates() {
    // Issue 12: tokens had no expiry. Expiry is checked against the system clock.
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let admin = Access::system("t");
    let now = chrono::Utc::now();
    let lasting = f
        .store
        .create_token_until(
            alice.id,
            "ci",
            &admin,
            Some(now + chrono::Duration::days(30)),
        )
        .unwrap();
    let expired = f
        .store
        .create_token_until(
            alice.id,
            "old",
            &admin,
            Some(now - chrono::Duration::minutes(1)),
        )
        .unwrap();
    let forever = f.store.create_token(alice.id, "portal", &admin).unwrap();
    let view = f.store.view();
    assert!(view.authenticate(&lasting.secret).unwrap().is_some());
    assert!(view.authenticate(&forever.secret).unwrap().is_some());
    assert!(view.authenticate(&expired.secret).unwrap().is_none());
    let listed = view.tokens(None).unwrap();
    let old = listed.iter().find(|t| t.id == expired.id).unwrap();
    assert!(old.expires_at.is_some_and(|t| t < now));
    assert!(
        listed
            .iter()
            .find(|t| t.id == forever.id)
            .unwrap()
            .expires_at
            .is_none()
    );
}

#[test]
fn a_batch_read_returns_what_the_caller_may_see_in_order_and_audits_each_read() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let bob = f.user("1002");
    let a1 = f.recording(&alice, "1001", "02077456456", 500);
    let b = f.recording(&bob, "1002", "02077456456", 500);
    let a2 = f.recording(&alice, "1001", "02077456457", 500);
    f.store
        .add_note(&a2.id, &Access::system("cli"), "call back")
        .unwrap();
    let token = f
        .store
        .create_token(alice.id, "nas", &Access::system("cli"))
        .unwrap();
    let alice_access = f
        .store
        .view()
        .authenticate(&token.secret)
        .unwrap()
        .unwrap()
        .access();
    let unknown = callrec_model::RecordingId::new();
    let before = f.store.view().audit(None, None, 500).unwrap().entries.len();

    let (found, missing) = f
        .store
        .read_recordings(
            &[a2.id.clone(), b.id.clone(), unknown.clone(), a1.id.clone()],
            &alice_access,
        )
        .unwrap();

    // Alice's two, in the order asked, each as the single read gives it.
    assert_eq!(
        found.iter().map(|d| &d.recording.id).collect::<Vec<_>>(),
        [&a2.id, &a1.id]
    );
    assert_eq!(
        found[0],
        f.store.read_recording(&a2.id, &alice_access).unwrap()
    );
    assert_eq!(found[0].notes.len(), 1);
    // Bob's is as unknown to her as an id that never existed.
    assert_eq!(missing, [b.id.clone(), unknown]);
    // One `recording.read` entry per recording returned (and one for the single read
    // above), none for the others; the chain still verifies.
    let log = f.store.view().audit(None, None, 500).unwrap().entries;
    let reads: Vec<&str> = log[..log.len() - before]
        .iter()
        .rev()
        .map(|e| {
            assert_eq!(e.action, "recording.read");
            assert_eq!(e.actor, alice_access.actor);
            e.target.as_str()
        })
        .collect();
    let target = |id: &callrec_model::RecordingId| format!("recording:{id}");
    assert_eq!(reads, [target(&a2.id), target(&a1.id), target(&a2.id)]);
    let report = f
        .store
        .verify(&callrec_store::VerifyOptions::default())
        .unwrap();
    assert!(report.audit_breaks.is_empty(), "{:?}", report.audit_breaks);

    // Nothing, or more than the limit, is refused.
    assert!(matches!(
        f.store.read_recordings(&[], &alice_access),
        Err(StoreError::Invalid { .. })
    ));
    let many = vec![a1.id.clone(); callrec_store::MAX_BATCH_READ + 1];
    assert!(matches!(
        f.store.read_recordings(&many, &alice_access),
        Err(StoreError::Invalid { .. })
    ));
}
