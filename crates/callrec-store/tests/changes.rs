//! The change feed (issue 11): every stored, failed, deleted, hold, release and note, in a
//! strictly increasing sequence, scoped like the rest of the store.

mod support;

use callrec_store::{Access, StoreError};
use support::Fixture;

fn kinds(page: &callrec_store::ChangesPage) -> Vec<(String, String)> {
    page.changes
        .iter()
        .map(|c| (c.kind.clone(), c.recording_id.to_string()))
        .collect()
}

#[test]
fn every_change_is_in_the_feed_in_order_and_each_follower_sees_only_its_own() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let bob = f.user("1002");
    let a = f.recording(&alice, "1001", "02079460000", 300);
    let b = f.recording(&bob, "1002", "02079460000", 300);
    let admin = Access::system("admin");
    f.store.add_note(&a.id, &admin, "call back").unwrap();
    f.store.set_hold(&b.id, &admin, true).unwrap();
    f.store.set_hold(&b.id, &admin, false).unwrap();
    f.store.delete_recording(&a.id, &admin, "asked").unwrap();

    let all = f.store.view().changes(&admin, 0, 100).unwrap();
    let (a_id, b_id) = (a.id.to_string(), b.id.to_string());
    assert_eq!(
        kinds(&all),
        [
            ("stored".into(), a_id.clone()),
            ("stored".into(), b_id.clone()),
            ("note".into(), a_id.clone()),
            ("hold".into(), b_id.clone()),
            ("release".into(), b_id.clone()),
            ("deleted".into(), a_id.clone()),
        ]
    );
    assert!(all.changes.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(all.last_seq, all.changes.last().unwrap().seq);

    // Paged: after the second entry, two at a time; an empty page keeps the position.
    let page = f
        .store
        .view()
        .changes(&admin, all.changes[1].seq, 2)
        .unwrap();
    assert_eq!(page.changes, all.changes[2..4]);
    let end = f.store.view().changes(&admin, all.last_seq, 10).unwrap();
    assert!(end.changes.is_empty());
    assert_eq!(end.last_seq, all.last_seq);

    // A user follows only their own recordings.
    let token = f.store.create_token(bob.id, "archive", &admin).unwrap();
    let bob_access = f
        .store
        .view()
        .authenticate(&token.secret)
        .unwrap()
        .unwrap()
        .access();
    let mine = f.store.view().changes(&bob_access, 0, 100).unwrap();
    assert_eq!(
        kinds(&mine),
        [
            ("stored".into(), b_id.clone()),
            ("hold".into(), b_id.clone()),
            ("release".into(), b_id),
        ]
    );
    assert!(matches!(
        f.store.view().changes(&admin, 0, 0),
        Err(StoreError::Invalid { .. })
    ));
}

#[test]
fn an_index_from_before_the_feed_starts_it_with_what_it_holds() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let a = f.recording(&alice, "1001", "02079460000", 300);
    let b = f.recording(&alice, "1001", "02079460000", 300);
    let admin = Access::system("admin");
    f.store.delete_recording(&b.id, &admin, "asked").unwrap();
    // The index as the version before the feed left it: migrations 0002 (the feed), 0003
    // (token expiry), 0004 (webhooks), 0005 (archive runs), 0006 (token last use), 0007
    // (portal), 0008 (audit filters) and 0009 (duration index) undone. A later migration
    // must be undone here too.
    assert_eq!(callrec_store::SCHEMA_VERSION, 10);
    let conn = rusqlite::Connection::open(f.data_dir().join("index.db")).unwrap();
    conn.execute_batch(
        "DROP INDEX recordings_site_duration;
         DROP INDEX audit_log_site_actor; DROP INDEX audit_log_site_action;
         DROP INDEX audit_log_site_at;
         DROP TABLE signin_failures; DROP TABLE sessions;
         ALTER TABLE users DROP COLUMN password_hash;
         DROP TABLE archive_runs;
         DROP TRIGGER webhook_events_state; DROP TRIGGER webhook_deliveries_fan_out;
         DROP TABLE webhook_deliveries; DROP TABLE webhook_events; DROP TABLE webhook_endpoints;
         DROP TRIGGER changes_state; DROP TRIGGER changes_hold; DROP TRIGGER changes_note;
         DROP TABLE changes; ALTER TABLE api_tokens DROP COLUMN expires_at;
         ALTER TABLE api_tokens DROP COLUMN last_used_at;
         PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);
    f.reopen();
    let page = f.store.view().changes(&admin, 0, 100).unwrap();
    assert_eq!(
        kinds(&page),
        [
            ("stored".into(), a.id.to_string()),
            ("deleted".into(), b.id.to_string()),
        ]
    );
    // And it follows from there.
    f.store.set_hold(&a.id, &admin, true).unwrap();
    let next = f.store.view().changes(&admin, page.last_seq, 100).unwrap();
    assert_eq!(kinds(&next), [("hold".into(), a.id.to_string())]);
}
