//! Retention and quota (SPEC §4.3, §4.4): what is deleted, what is kept, and what a dry run
//! says without doing.

mod support;

use callrec_model::{QuotaPolicy, RecordingState};
use callrec_store::{
    Access, NewUser, SiteSettings, SiteUpdate, StoreError, SweepOptions, SweepReport, VerifyOptions,
};
use chrono::{Duration, Months};
use support::{Fixture, NowUtc, files_under};

fn state(f: &Fixture, id: &callrec_model::RecordingId) -> RecordingState {
    f.store
        .view()
        .recording(id, &Access::system("t"))
        .unwrap()
        .state
}

#[test]
fn expired_recordings_are_deleted_held_ones_kept_and_tombstones_and_audit_entries_written() {
    let mut f = Fixture::new();
    f.store
        .update_site(
            "default",
            &SiteUpdate {
                retention_days: Some(30),
                ..Default::default()
            },
            "t",
        )
        .unwrap();
    let alice = f.user("1001");
    let old = f.recording(&alice, "1001", "02077456456", 300);
    let held = f.recording(&alice, "1001", "02077456456", 300);
    f.clock.advance(Duration::days(20));
    let young = f.recording(&alice, "1001", "02077456456", 300);
    let admin = Access::system("admin");
    f.store.set_hold(&held.id, &admin, true).unwrap();

    f.clock.advance(Duration::days(11)); // old and held are 31 days old, young is 11
    let dry = f
        .store
        .sweep(&SweepOptions {
            dry_run: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(dry.deleted, 1);
    assert_eq!(dry.listed[0].id, old.id);
    assert_eq!(dry.kept_on_hold, 1);
    assert!(dry.listed[0].path.exists(), "a dry run removes nothing");
    assert_eq!(state(&f, &old.id), RecordingState::Stored);
    let audit_before = f.store.view().audit(None, None, 500).unwrap().entries.len();

    let report = f.store.sweep(&SweepOptions::default()).unwrap();
    assert_eq!(report.deleted, 1);
    assert_eq!(report.deleted_bytes, old.size_bytes.unwrap());
    assert!(!report.listed[0].path.exists());
    let tomb = f.store.view().recording(&old.id, &admin).unwrap();
    assert_eq!(tomb.state, RecordingState::Deleted);
    assert_eq!(tomb.state_reason.as_deref(), Some("retention: expired"));
    assert_eq!(tomb.deleted_at, Some(f.clock.now_utc()));
    assert_eq!(state(&f, &held.id), RecordingState::Stored);
    assert_eq!(state(&f, &young.id), RecordingState::Stored);
    let audit = f.store.view().audit(None, None, 500).unwrap().entries;
    assert_eq!(audit.len(), audit_before + 1);
    assert_eq!(audit[0].action, "recording.delete");
    assert_eq!(audit[0].actor, "sweeper");
    assert_eq!(audit[0].target, format!("recording:{}", old.id));

    // Sweeping again finds nothing; the store and index still agree.
    assert_eq!(f.store.sweep(&SweepOptions::default()).unwrap().deleted, 0);
    assert!(
        f.store
            .verify(&VerifyOptions::default())
            .unwrap()
            .is_clean()
    );
}

#[test]
fn a_sweep_can_go_in_steps_so_ingest_is_not_held_up() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    for _ in 0..7 {
        f.recording(&alice, "1001", "02077456456", 100);
    }
    f.clock.advance(Duration::days(181));
    let step = SweepOptions {
        batch: 2,
        max_deletions: Some(3),
        ..Default::default()
    };
    let first = f.store.sweep(&step).unwrap();
    assert_eq!(
        (first.deleted, first.more),
        (4, true),
        "whole batches, then stop"
    );
    let second = f.store.sweep(&step).unwrap();
    assert_eq!((second.deleted, second.more), (3, false));
    assert_eq!(f.store.view().user_usage(alice.id).unwrap().files, 0);
    assert!(files_under(&f.data_dir().join("store")).is_empty());
}

#[test]
fn a_legal_hold_site_keeps_recordings_seven_years_and_retention_changes_recompute_expiry() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let rec = f.recording(&alice, "1001", "02077456456", 300);
    assert_eq!(rec.expires_at, Some(rec.started_at + Duration::days(180)));

    let site = f
        .store
        .update_site(
            "default",
            &SiteUpdate {
                legal_hold: Some(true),
                ..Default::default()
            },
            "admin",
        )
        .unwrap();
    assert!(site.settings.legal_hold);
    let seven_years = rec.started_at.checked_add_months(Months::new(84)).unwrap();
    let rec = f
        .store
        .view()
        .recording(&rec.id, &Access::system("t"))
        .unwrap();
    assert_eq!(rec.expires_at, Some(seven_years));

    // A day short of seven years: kept. A day after: deleted.
    f.clock.set(seven_years - Duration::days(1));
    assert_eq!(f.store.sweep(&SweepOptions::default()).unwrap().deleted, 0);
    f.clock.set(seven_years + Duration::days(1));
    assert_eq!(f.store.sweep(&SweepOptions::default()).unwrap().deleted, 1);

    // Lifting the hold and shortening retention applies to what is still stored.
    let mut g = Fixture::new();
    let bob = g.user("1002");
    let r = g.recording(&bob, "1002", "02077456456", 300);
    g.store
        .update_site(
            "default",
            &SiteUpdate {
                retention_days: Some(7),
                ..Default::default()
            },
            "admin",
        )
        .unwrap();
    let r = g
        .store
        .view()
        .recording(&r.id, &Access::system("t"))
        .unwrap();
    assert_eq!(r.expires_at, Some(r.started_at + Duration::days(7)));
    let entry = &g.store.view().audit(None, None, 1).unwrap().entries[0];
    assert_eq!(entry.action, "site.update");
    assert!(
        entry
            .detail
            .contains("\"retention_days\":{\"from\":180,\"to\":7}"),
        "{}",
        entry.detail
    );
}

#[test]
fn a_leap_day_recording_under_legal_hold_is_kept_until_the_first_of_march_seven_years_on() {
    // 2031 has no 29 February. Seven years from 29 February 2024 end on 1 March 2031, not on
    // 28 February (a day short: 2,556 days is less than seven years of 365.25 days).
    let mut f = Fixture::new();
    f.store
        .update_site(
            "default",
            &SiteUpdate {
                legal_hold: Some(true),
                ..Default::default()
            },
            "admin",
        )
        .unwrap();
    let leap_day = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2024, 2, 29, 10, 0, 0).unwrap();
    f.clock.set(leap_day);
    let alice = f.user("1001");
    let rec = f.recording(&alice, "1001", "02077456456", 300);
    let first_of_march =
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2031, 3, 1, 10, 0, 0).unwrap();
    assert_eq!(rec.expires_at, Some(first_of_march));

    f.clock.set(first_of_march - Duration::hours(1));
    assert_eq!(f.store.sweep(&SweepOptions::default()).unwrap().deleted, 0);
    assert_eq!(state(&f, &rec.id), RecordingState::Stored);
    f.clock.set(first_of_march);
    assert_eq!(f.store.sweep(&SweepOptions::default()).unwrap().deleted, 1);
}

#[test]
fn over_quota_users_are_flagged_under_alert_and_trimmed_oldest_first_under_evict_oldest() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let r1 = f.recording(&alice, "1001", "02077456456", 1000); // 16 KB each
    let size = r1.size_bytes.unwrap();
    f.store
        .update_site(
            "default",
            &SiteUpdate {
                quota_bytes: Some(size * 2 + size / 2),
                ..Default::default()
            },
            "admin",
        )
        .unwrap();
    let r2 = f.recording(&alice, "1001", "02077456456", 1000);
    let r3 = f.recording(&alice, "1001", "02077456456", 1000);
    let usage = f.store.view().user_usage(alice.id).unwrap();
    assert_eq!(usage.files, 3);
    assert!(usage.over_quota, "alert keeps recording and flags the user");
    assert_eq!(usage.quota_policy, QuotaPolicy::Alert);

    f.store
        .update_site(
            "default",
            &SiteUpdate {
                quota_policy: Some(QuotaPolicy::EvictOldest),
                ..Default::default()
            },
            "admin",
        )
        .unwrap();
    f.store
        .set_hold(&r1.id, &Access::system("admin"), true)
        .unwrap();
    let r4 = f.recording(&alice, "1001", "02077456456", 1000);
    // Four recordings, room for two: the oldest not on hold (r2, r3) go, r1 is held, r4 new.
    assert_eq!(state(&f, &r1.id), RecordingState::Stored);
    assert_eq!(state(&f, &r2.id), RecordingState::Deleted);
    assert_eq!(state(&f, &r3.id), RecordingState::Deleted);
    assert_eq!(state(&f, &r4.id), RecordingState::Stored);
    let usage = f.store.view().user_usage(alice.id).unwrap();
    assert_eq!((usage.files, usage.bytes), (2, size * 2));
    assert!(!usage.over_quota);
    let files = files_under(&f.data_dir().join("store"));
    assert_eq!(files.len(), 2, "{files:?}");
    let reason = f
        .store
        .view()
        .recording(&r2.id, &Access::system("t"))
        .unwrap()
        .state_reason
        .unwrap();
    assert!(reason.starts_with("quota:"), "{reason}");
}

#[test]
fn a_recording_that_failed_without_a_file_expires_like_the_others() {
    // Its row still names the call's parties and times: the sweep tombstones it at the end of
    // the site's retention like any recording, rather than keeping it for ever.
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let id = f.start(&alice, "1001", "02077456456");
    let failed = f
        .store
        .fail(&id, "the switch never wrote a file", "daemon")
        .unwrap();
    assert_eq!(failed.state, RecordingState::Failed);
    assert_eq!(
        failed.expires_at,
        Some(failed.started_at + Duration::days(180))
    );

    f.clock.advance(Duration::days(181));
    let report = f.store.sweep(&SweepOptions::default()).unwrap();
    assert_eq!(report.deleted, 1);
    assert_eq!(state(&f, &id), RecordingState::Deleted);
}

#[test]
fn an_admin_cannot_delete_a_recording_a_legal_hold_keeps() {
    let mut f = Fixture::new();
    f.store
        .update_site(
            "default",
            &SiteUpdate {
                legal_hold: Some(true),
                ..Default::default()
            },
            "admin",
        )
        .unwrap();
    let alice = f.user("1001");
    let rec = f.recording(&alice, "1001", "02077456456", 300);
    let admin = Access::system("admin");
    f.clock.advance(Duration::days(365));

    let err = f
        .store
        .delete_recording(&rec.id, &admin, "asked")
        .unwrap_err();
    assert!(matches!(err, StoreError::UnderLegalHold { .. }), "{err:?}");
    assert_eq!(err.kind(), callrec_store::ErrorKind::Conflict);
    assert_eq!(state(&f, &rec.id), RecordingState::Stored);
    assert!(f.store_file(&rec).exists());

    // Once the seven years are over, an admin may delete it before the sweep does.
    f.clock.set(rec.expires_at.unwrap());
    f.store.delete_recording(&rec.id, &admin, "asked").unwrap();
    assert_eq!(state(&f, &rec.id), RecordingState::Deleted);
}

#[test]
fn a_file_the_sweep_could_not_remove_is_removed_by_the_next_sweep() {
    // A long-running daemon (or `callrec sweep`) does not restart between sweeps: the file of
    // a recording deleted at its expiry must not stay on disk until the next start.
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let rec = f.recording(&alice, "1001", "02077456456", 300);
    let path = f.store_file(&rec);
    let audio = std::fs::read(&path).unwrap();
    // Something holds the path so the removal fails (a directory cannot be unlinked).
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();

    f.clock.advance(Duration::days(181));
    let first = f.store.sweep(&SweepOptions::default()).unwrap();
    assert_eq!((first.deleted, first.files_not_removed), (1, 1));
    assert_eq!(state(&f, &rec.id), RecordingState::Deleted);

    // The obstacle goes; the file is still there.
    std::fs::remove_dir(&path).unwrap();
    std::fs::write(&path, &audio).unwrap();
    let second = f.store.sweep(&SweepOptions::default()).unwrap();
    assert_eq!((second.deleted, second.files_not_removed), (0, 0));
    assert!(!path.exists(), "the deleted recording's file is gone");
    let conn = rusqlite::Connection::open(f.data_dir().join("index.db")).unwrap();
    let pending: i64 = conn
        .query_row("SELECT COUNT(*) FROM pending_removals", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 0);
}

#[test]
fn quota_eviction_never_deletes_a_recording_of_a_legal_hold_site() {
    // The legal hold keeps every recording of the site seven years (SPEC §1): a full quota
    // under evict_oldest flags the user instead of deleting what the regulator says to keep.
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let r1 = f.recording(&alice, "1001", "02077456456", 1000);
    let size = r1.size_bytes.unwrap();
    f.store
        .update_site(
            "default",
            &SiteUpdate {
                legal_hold: Some(true),
                quota_bytes: Some(size + size / 2),
                quota_policy: Some(QuotaPolicy::EvictOldest),
                ..Default::default()
            },
            "admin",
        )
        .unwrap();
    let r2 = f.recording(&alice, "1001", "02077456456", 1000);
    assert_eq!(state(&f, &r1.id), RecordingState::Stored);
    assert_eq!(state(&f, &r2.id), RecordingState::Stored);
    let usage = f.store.view().user_usage(alice.id).unwrap();
    assert_eq!(usage.files, 2);
    assert!(usage.over_quota, "the user is flagged instead");
    assert_eq!(files_under(&f.data_dir().join("store")).len(), 2);
}

#[test]
fn quota_eviction_deletes_nothing_when_deleting_cannot_bring_the_user_within_the_quota() {
    // A held recording alone exceeds the quota: evicting the others would delete them all and
    // leave the user over it anyway, so they are kept and the user is flagged.
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let held = f.recording(&alice, "1001", "02077456456", 1000);
    let size = held.size_bytes.unwrap();
    f.store
        .set_hold(&held.id, &Access::system("admin"), true)
        .unwrap();
    let r2 = f.recording(&alice, "1001", "02077456456", 1000);
    f.store
        .update_site(
            "default",
            &SiteUpdate {
                quota_bytes: Some(size / 2),
                quota_policy: Some(QuotaPolicy::EvictOldest),
                ..Default::default()
            },
            "admin",
        )
        .unwrap();
    let r3 = f.recording(&alice, "1001", "02077456456", 1000);
    for id in [&held.id, &r2.id, &r3.id] {
        assert_eq!(state(&f, id), RecordingState::Stored);
    }
    let usage = f.store.view().user_usage(alice.id).unwrap();
    assert_eq!(usage.files, 3);
    assert!(usage.over_quota, "the user is flagged instead");
}

#[test]
fn a_sweep_of_many_batches_leaves_one_tombstone_and_one_audit_entry_per_recording() {
    // Enough recordings, over several users and sizes, that a sweep in batches of 20 goes
    // through every part of the batched path: the set statements, usage summed per user, the
    // threaded removal of a batch's files, and pending removals forgotten a batch later.
    let mut f = Fixture::new();
    let users = [f.user("1001"), f.user("1002"), f.user("1003")];
    let mut old = Vec::new();
    for i in 0..45u32 {
        let user = &users[i as usize % 3];
        old.push(f.recording(user, &user.extension, "02077456456", 100 + 37 * i));
    }
    f.clock.advance(Duration::days(170));
    let young: Vec<_> = (0..4u32)
        .map(|i| {
            let user = &users[i as usize % 3];
            f.recording(user, &user.extension, "02077456456", 500 + i)
        })
        .collect();
    let admin = Access::system("admin");
    f.store.set_hold(&old[7].id, &admin, true).unwrap();
    f.clock.advance(Duration::days(11)); // the 45 are 181 days old, the 4 are 11

    let report = f
        .store
        .sweep(&SweepOptions {
            batch: 20,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(report.deleted, 44);
    assert_eq!(report.kept_on_hold, 1);
    assert_eq!(report.files_not_removed, 0);
    let expected_bytes: u64 = old
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 7)
        .map(|(_, r)| r.size_bytes.unwrap())
        .sum();
    assert_eq!(report.deleted_bytes, expected_bytes);

    let audit = f.store.view().audit(None, None, 1000).unwrap().entries;
    for (i, rec) in old.iter().enumerate() {
        let deletions = audit
            .iter()
            .filter(|e| {
                e.action == "recording.delete" && e.target == format!("recording:{}", rec.id)
            })
            .count();
        let now = f.store.view().recording(&rec.id, &admin).unwrap();
        if i == 7 {
            assert_eq!(now.state, RecordingState::Stored, "held");
            assert_eq!(deletions, 0);
        } else {
            assert_eq!(now.state, RecordingState::Deleted, "recording {i}");
            assert_eq!(now.state_reason.as_deref(), Some("retention: expired"));
            assert_eq!(now.deleted_at, Some(f.clock.now_utc()));
            assert_eq!(deletions, 1, "one audit entry for recording {i}");
            assert!(!f.store_file(rec).exists(), "file of recording {i}");
        }
    }

    // Usage is exactly what is left: the held one and the young ones.
    let survivors: Vec<_> = young.iter().chain([&old[7]]).collect();
    for user in &users {
        let left: Vec<_> = survivors.iter().filter(|r| r.user_id == user.id).collect();
        let usage = f.store.view().user_usage(user.id).unwrap();
        assert_eq!(
            (usage.files, usage.bytes),
            (
                left.len() as u64,
                left.iter().map(|r| r.size_bytes.unwrap()).sum::<u64>()
            ),
            "usage of {}",
            user.extension
        );
    }
    assert_eq!(
        files_under(&f.data_dir().join("store")).len(),
        survivors.len()
    );
    // The chain of 44 entries appended a batch at a time verifies, and nothing is pending.
    let verify = f.store.verify(&VerifyOptions::default()).unwrap();
    assert!(verify.is_clean(), "{verify}");
    assert_eq!(f.store.sweep(&SweepOptions::default()).unwrap().deleted, 0);
}

#[test]
fn a_dry_run_previews_settings_not_yet_in_force_and_the_real_sweep_then_agrees() {
    let mut f = Fixture::new();
    let branch = SiteSettings {
        retention_days: 30,
        ..SiteSettings::default()
    };
    f.store.create_site("branch", &branch, "t").unwrap();
    let alice = f.user("1001");
    let bob = f
        .store
        .add_user(&NewUser::new("branch", "2001"), "t")
        .unwrap();
    let a = f.recording(&alice, "1001", "02077456456", 300);
    let held = f.recording(&alice, "1001", "02077456456", 300);
    let d = f.recording(&bob, "2001", "02077456456", 300);
    f.clock.advance(Duration::days(30));
    let b = f.recording(&alice, "1001", "02077456456", 300);
    f.clock.advance(Duration::days(10));
    let admin = Access::system("admin");
    f.store.set_hold(&held.id, &admin, true).unwrap();
    // a, held and d are 40 days old, b 10. Site default keeps 180 days, branch 30.
    let audit_before = f.store.view().audit(None, None, 500).unwrap().entries;
    let dry = |f: &mut Fixture, overrides: &[(&str, SiteSettings)]| {
        f.store
            .sweep(&SweepOptions {
                dry_run: true,
                site_overrides: overrides
                    .iter()
                    .map(|(n, s)| (n.to_string(), s.clone()))
                    .collect(),
                ..Default::default()
            })
            .unwrap()
    };
    let ids = |r: &SweepReport| r.listed.iter().map(|s| s.id.clone()).collect::<Vec<_>>();

    let as_is = dry(&mut f, &[]);
    assert_eq!(
        ids(&as_is),
        std::slice::from_ref(&d.id),
        "only branch's 30 days have passed"
    );
    assert_eq!(as_is.kept_on_hold, 0);

    // Default at 7 days: a, b and the held one expire there too, merged with branch's by
    // expiry: a (33 days ago), d (10 days ago), b (3 days ago).
    let seven = SiteSettings {
        retention_days: 7,
        ..SiteSettings::default()
    };
    let preview = dry(&mut f, &[("default", seven.clone())]);
    assert_eq!(ids(&preview), [a.id.clone(), d.id.clone(), b.id.clone()]);
    assert_eq!(preview.deleted, 3);
    assert_eq!(
        preview.deleted_bytes,
        [&a, &b, &d]
            .iter()
            .map(|r| r.size_bytes.unwrap())
            .sum::<u64>()
    );
    assert_eq!(preview.kept_on_hold, 1);
    let first_two = f
        .store
        .sweep(&SweepOptions {
            dry_run: true,
            list_limit: 2,
            site_overrides: [("default".to_string(), seven.clone())].into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        ids(&first_two),
        [a.id.clone(), d.id.clone()],
        "the earliest two"
    );
    assert_eq!(first_two.deleted, 3, "all counted");
    assert_eq!(
        preview.listed[0].expires_at,
        a.started_at + Duration::days(7),
        "the expiry the new settings give"
    );
    // A legal hold keeps everything of default for seven years, whatever the retention.
    let legal = SiteSettings {
        legal_hold: true,
        ..seven.clone()
    };
    assert_eq!(
        ids(&dry(&mut f, &[("default", legal)])),
        std::slice::from_ref(&d.id)
    );
    // Settings that leave retention alone change nothing in the preview.
    let other_quota = SiteSettings {
        quota_bytes: 1,
        ..SiteSettings::default()
    };
    assert_eq!(dry(&mut f, &[("default", other_quota)]), as_is);

    // None of that wrote anything.
    assert_eq!(
        f.store.view().audit(None, None, 500).unwrap().entries,
        audit_before
    );
    assert_eq!(
        f.store
            .view()
            .site("default")
            .unwrap()
            .settings
            .retention_days,
        180
    );
    let stored = f.store.view().recording(&a.id, &admin).unwrap();
    assert_eq!(stored.state, RecordingState::Stored);
    assert_eq!(stored.expires_at, Some(a.started_at + Duration::days(180)));

    // Overrides are for previews only, and must name a real site with valid settings.
    let real_with_overrides = f.store.sweep(&SweepOptions {
        site_overrides: [("default".to_string(), seven.clone())].into(),
        ..Default::default()
    });
    assert!(
        matches!(
            real_with_overrides,
            Err(StoreError::Invalid {
                field: "site_overrides",
                ..
            })
        ),
        "{real_with_overrides:?}"
    );
    assert_eq!(state(&f, &a.id), RecordingState::Stored);
    let bad = SweepOptions {
        dry_run: true,
        site_overrides: [(
            "default".to_string(),
            SiteSettings {
                retention_days: 0,
                ..SiteSettings::default()
            },
        )]
        .into(),
        ..Default::default()
    };
    assert!(f.store.sweep(&bad).is_err());
    let unknown = SweepOptions {
        dry_run: true,
        site_overrides: [("nowhere".to_string(), seven.clone())].into(),
        ..Default::default()
    };
    assert!(f.store.sweep(&unknown).is_err());

    // Put the settings in force: the real sweep deletes exactly what the preview listed.
    f.store
        .update_site(
            "default",
            &SiteUpdate {
                retention_days: Some(7),
                ..Default::default()
            },
            "admin",
        )
        .unwrap();
    let real = f.store.sweep(&SweepOptions::default()).unwrap();
    assert_eq!(ids(&real), ids(&preview));
    assert_eq!(
        (real.deleted, real.deleted_bytes, real.kept_on_hold),
        (preview.deleted, preview.deleted_bytes, preview.kept_on_hold)
    );
}
