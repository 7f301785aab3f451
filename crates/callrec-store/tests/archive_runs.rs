//! Archive clients' run reports (issue 11): each run stored as reported and audited; a
//! site's admins list each client with its last run; reports of the wrong shape refused.

mod support;

use callrec_store::{Access, ErrorKind, NewArchiveRun};
use chrono::Duration;
use support::{Fixture, start_time};

fn run(client: &str, downloaded: u64, last_seq: i64) -> NewArchiveRun {
    NewArchiveRun {
        client: client.to_owned(),
        started_at: start_time(),
        finished_at: start_time() + Duration::seconds(5),
        downloaded,
        skipped: 1,
        failed: 0,
        bytes: downloaded * 1000,
        last_seq,
        dry_run: false,
        errors: vec![],
    }
}

#[test]
fn each_client_is_listed_with_its_last_run_and_how_many_it_reported() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let admin = f.admin("9000");
    let caller = |f: &mut Fixture, user: &callrec_store::User| {
        let token = f
            .store
            .create_token(user.id, "archive", &Access::system("test"))
            .unwrap();
        f.store.view().authenticate(&token.secret).unwrap().unwrap()
    };
    let alice_c = caller(&mut f, &alice);
    let admin_c = caller(&mut f, &admin);

    f.store
        .record_archive_run(&alice_c, &run("laptop", 10, 12))
        .unwrap();
    let mut second = run("laptop", 3, 15);
    second.failed = 1;
    second.errors = vec!["hash mismatch".to_owned()];
    f.store.record_archive_run(&alice_c, &second).unwrap();
    f.store
        .record_archive_run(&admin_c, &run("nas", 100, 200))
        .unwrap();

    let clients = f.store.view().archive_clients(alice.site_id).unwrap();
    assert_eq!(clients.len(), 2, "{clients:?}");
    assert_eq!(clients[0].client, "laptop");
    assert_eq!(clients[0].actor, "1001@default");
    assert_eq!(clients[0].runs, 2);
    assert_eq!(clients[0].last_run.downloaded, 3);
    assert_eq!(clients[0].last_run.failed, 1);
    assert_eq!(clients[0].last_run.last_seq, 15);
    assert_eq!(clients[0].last_run.errors, ["hash mismatch"]);
    assert_eq!(clients[1].client, "nas");
    assert_eq!(clients[1].runs, 1);

    let audit = f.store.view().audit(None, None, 10).unwrap();
    let runs: Vec<_> = audit
        .entries
        .iter()
        .filter(|e| e.action == "archive.run")
        .collect();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].actor, "9000@default");
}

#[test]
fn a_report_of_the_wrong_shape_is_refused() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let token = f
        .store
        .create_token(alice.id, "archive", &Access::system("test"))
        .unwrap();
    let caller = f.store.view().authenticate(&token.secret).unwrap().unwrap();
    let mut bad = vec![];
    let mut r = run("", 1, 1);
    bad.push(r.clone());
    r.client = "x\u{1}".into();
    bad.push(r.clone());
    r = run("ok", 1, -1);
    bad.push(r.clone());
    r = run("ok", 1, 1);
    r.finished_at = r.started_at - Duration::seconds(1);
    bad.push(r.clone());
    r = run("ok", 1, 1);
    r.errors = vec!["e".into(); 101];
    bad.push(r.clone());
    r = run("ok", 1, 1);
    r.bytes = u64::MAX;
    bad.push(r);
    for r in bad {
        let e = f.store.record_archive_run(&caller, &r).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{r:?}: {e}");
    }
    assert!(
        f.store
            .view()
            .archive_clients(alice.site_id)
            .unwrap()
            .is_empty()
    );
}
