//! Erasure by phone number (issue 13): every form of the number, both parties; holds and the
//! legal hold refused and kept; a dry run changes nothing; verify clean afterwards; audited.

mod support;

use callrec_model::RecordingState;
use callrec_store::{Access, NewUser, SearchQuery, SiteSettings, StoreError, VerifyOptions};
use support::Fixture;

#[test]
fn a_number_is_erased_in_every_form_except_where_a_hold_keeps_it() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    // The caller's number as three systems wrote it, as either party.
    let national = f.recording(&alice, "01632960123", "1001", 300);
    let international = f.recording(&alice, "1001", "441632960123", 300);
    let e164 = f.recording(&alice, "+44 1632 960123", "1001", 300);
    let held = f.recording(&alice, "1001", "01632960123", 300);
    let other = f.recording(&alice, "1001", "02079460000", 300);
    let admin = Access::system("dpo");
    f.store
        .add_note(&national.id, &admin, "called about 01632960123's account")
        .unwrap();
    f.store.set_hold(&held.id, &admin, true).unwrap();
    let files: Vec<_> = [&national, &international, &e164]
        .iter()
        .map(|r| f.store_file(r))
        .collect();

    // Dry run: the same answer, nothing changed, nothing audited.
    let audit_before = f
        .store
        .view()
        .audit(None, None, 1000)
        .unwrap()
        .entries
        .len();
    let dry = f
        .store
        .erase_number("default", "0044 1632 960123", "SAR-17", &admin, true)
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.number, "+441632960123");
    let mut want = vec![
        national.id.clone(),
        international.id.clone(),
        e164.id.clone(),
    ];
    want.sort();
    let mut got = dry.erased.clone();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(dry.refused.len(), 1);
    assert_eq!(dry.refused[0].id, held.id);
    assert_eq!(dry.refused[0].reason, "on hold");
    assert!(files.iter().all(|p| p.is_file()));
    assert_eq!(
        f.store
            .view()
            .audit(None, None, 1000)
            .unwrap()
            .entries
            .len(),
        audit_before
    );

    // A reason is required.
    assert!(matches!(
        f.store
            .erase_number("default", "01632960123", "  ", &admin, false),
        Err(StoreError::Invalid { .. })
    ));

    let done = f
        .store
        .erase_number("default", "01632960123", "SAR-17", &admin, false)
        .unwrap();
    assert_eq!(done.erased.len(), 3);
    assert!(files.iter().all(|p| !p.exists()), "files removed");
    for id in &done.erased {
        let rec = f.store.view().recording(id, &admin).unwrap();
        assert_eq!(rec.state, RecordingState::Deleted);
        for party in [
            &rec.from.raw,
            &rec.from.normalised,
            &rec.to.raw,
            &rec.to.normalised,
        ] {
            assert_eq!(party, "", "{rec:?}");
        }
        assert_eq!(rec.note_count, 0);
        assert!(!rec.file_name.contains("1632960123"), "{}", rec.file_name);
    }
    // The number finds only what was kept; the other call is untouched.
    let found = f
        .store
        .view()
        .search(
            &admin,
            &SearchQuery {
                number: Some("+441632960123".into()),
                ..SearchQuery::default()
            },
        )
        .unwrap();
    let ids: Vec<_> = found.items.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, vec![held.id.clone()]);
    assert_eq!(
        f.store.view().recording(&other.id, &admin).unwrap().state,
        RecordingState::Stored
    );
    let report = f.store.verify(&VerifyOptions::default()).unwrap();
    assert!(report.is_clean(), "{report}");

    // Audited: who, why, what; the number only as a hash.
    let audit = f.store.view().audit(None, None, 1000).unwrap().entries;
    let erasure = audit
        .iter()
        .find(|e| e.action == "erasure")
        .expect("an erasure entry");
    assert_eq!(erasure.actor, "dpo");
    assert!(erasure.detail.contains("SAR-17"), "{}", erasure.detail);
    assert!(
        erasure.detail.contains(&held.id.to_string()),
        "{}",
        erasure.detail
    );
    assert!(!erasure.target.contains("1632960123"), "{}", erasure.target);
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "recording.delete")
            .count(),
        3
    );
}

#[test]
fn the_legal_hold_keeps_recordings_from_erasure_and_users_may_not_erase() {
    let mut f = Fixture::new();
    f.store
        .create_site(
            "bank",
            &SiteSettings {
                legal_hold: true,
                ..SiteSettings::default()
            },
            "test",
        )
        .unwrap();
    let teller = f
        .store
        .add_user(&NewUser::new("bank", "2001"), "test")
        .unwrap();
    let kept = f.recording(&teller, "01632960123", "2001", 300);
    let report = f
        .store
        .erase_number(
            "bank",
            "+441632960123",
            "SAR-18",
            &Access::system("dpo"),
            false,
        )
        .unwrap();
    assert!(report.erased.is_empty());
    assert_eq!(report.refused.len(), 1);
    assert!(
        report.refused[0].reason.contains("legal hold"),
        "{:?}",
        report.refused
    );
    assert!(f.store_file(&kept).is_file());

    let token = f
        .store
        .create_token(teller.id, "t", &Access::system("test"))
        .unwrap();
    let user = f
        .store
        .view()
        .authenticate(&token.secret)
        .unwrap()
        .unwrap()
        .access();
    assert!(matches!(
        f.store
            .erase_number("bank", "01632960123", "x", &user, false),
        Err(StoreError::Forbidden { .. })
    ));
}
