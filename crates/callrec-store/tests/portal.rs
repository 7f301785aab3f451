//! Portal passwords, sessions and the sign-in throttle, against a real index with a clock the
//! tests move.

mod support;

use callrec_model::{RecordingMode, Role};
use callrec_store::{Access, PortalPolicy, SessionUser, SignIn, SignInAttempt, Store};
use chrono::Duration;
use support::{Fixture, NowUtc};

const PASSWORD: &str = "correct horse battery";

fn attempt(account: &str, password: &str, address: &str) -> SignInAttempt {
    SignInAttempt {
        account: account.into(),
        password: password.into(),
        address: address.into(),
    }
}

fn sign_in(store: &mut Store, account: &str, password: &str, address: &str) -> SignIn {
    store
        .sign_in(
            &attempt(account, password, address),
            &PortalPolicy::default(),
        )
        .unwrap()
}

fn granted(outcome: SignIn) -> (String, SessionUser) {
    match outcome {
        SignIn::Granted(s) => (s.secret, s.user),
        other => panic!("expected a session, got {other:?}"),
    }
}

fn actions(store: &Store) -> Vec<String> {
    let page = store.view().audit(None, None, 500).unwrap();
    page.entries.into_iter().rev().map(|e| e.action).collect()
}

#[test]
fn a_user_with_a_password_signs_in_and_the_session_finds_them() {
    let mut f = Fixture::new();
    f.user("1001");
    f.store
        .set_password("default", "1001", PASSWORD, "cli")
        .unwrap();
    let (secret, user) = granted(sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.1"));
    assert_eq!(user.extension, "1001");
    assert_eq!(user.role, Role::User);
    let found = f
        .store
        .session(&secret, &PortalPolicy::default())
        .unwrap()
        .expect("live session");
    assert_eq!(found.user_id, user.user_id);
    assert!(found.csrf_matches(&user.csrf_token));
    assert!(!found.csrf_matches("nope"));
    // `extension@site` names the same account.
    granted(sign_in(&mut f.store, "1001@default", PASSWORD, "192.0.2.1"));
    let log = actions(&f.store);
    assert!(log.contains(&"user.password".to_string()), "{log:?}");
    assert_eq!(log.iter().filter(|a| *a == "session.signin").count(), 2);
}

#[test]
fn a_wrong_password_an_unknown_account_and_no_password_are_refused_and_audited() {
    let mut f = Fixture::new();
    f.user("1001");
    f.user("1002"); // no password set
    f.store
        .set_password("default", "1001", PASSWORD, "cli")
        .unwrap();
    assert!(matches!(
        sign_in(&mut f.store, "1001", "wrong password!", "192.0.2.1"),
        SignIn::Refused
    ));
    assert!(matches!(
        sign_in(&mut f.store, "9999", PASSWORD, "192.0.2.1"),
        SignIn::Refused
    ));
    assert!(matches!(
        sign_in(&mut f.store, "1002", "", "192.0.2.1"),
        SignIn::Refused
    ));
    let page = f.store.view().audit(None, None, 500).unwrap();
    let failures: Vec<_> = page
        .entries
        .iter()
        .filter(|e| e.action == "session.signin_failed")
        .collect();
    assert_eq!(failures.len(), 3);
    assert!(
        failures
            .iter()
            .all(|e| !e.detail.contains("wrong password!"))
    );
}

#[test]
fn five_failures_throttle_the_account_even_for_the_right_password_until_the_window_passes() {
    let mut f = Fixture::new();
    f.user("1001");
    f.store
        .set_password("default", "1001", PASSWORD, "cli")
        .unwrap();
    for i in 0..5 {
        // From different addresses: the account's own budget runs out.
        let addr = format!("198.51.100.{i}");
        assert!(matches!(
            sign_in(&mut f.store, "1001", "guess guess guess", &addr),
            SignIn::Refused
        ));
    }
    match sign_in(&mut f.store, "1001@default", PASSWORD, "203.0.113.9") {
        SignIn::Throttled { retry_after } => {
            assert!(retry_after <= Duration::minutes(15) && retry_after > Duration::zero())
        }
        other => panic!("expected throttled, got {other:?}"),
    }
    assert!(
        actions(&f.store)
            .iter()
            .any(|a| a == "session.signin_failed")
    );
    f.clock.advance(Duration::minutes(15));
    granted(sign_in(&mut f.store, "1001", PASSWORD, "203.0.113.9"));
}

#[test]
fn one_address_guessing_many_accounts_is_throttled() {
    let mut f = Fixture::new();
    f.user("1001");
    f.store
        .set_password("default", "1001", PASSWORD, "cli")
        .unwrap();
    let max = PortalPolicy::default().max_failures_per_address;
    for i in 0..max {
        let account = format!("{}", 2000 + i);
        assert!(matches!(
            sign_in(&mut f.store, &account, PASSWORD, "192.0.2.66"),
            SignIn::Refused
        ));
    }
    assert!(matches!(
        sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.66"),
        SignIn::Throttled { .. }
    ));
    // Another address is not affected.
    granted(sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.67"));
}

#[test]
fn a_session_ends_after_thirty_idle_minutes_or_twelve_hours_of_use() {
    let mut f = Fixture::new();
    f.user("1001");
    f.store
        .set_password("default", "1001", PASSWORD, "cli")
        .unwrap();
    let policy = PortalPolicy::default();
    let (idle, _) = granted(sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.1"));
    f.clock.advance(Duration::minutes(29));
    assert!(f.store.session(&idle, &policy).unwrap().is_some());
    // That use moved the idle deadline on.
    f.clock.advance(Duration::minutes(29));
    assert!(f.store.session(&idle, &policy).unwrap().is_some());
    f.clock.advance(Duration::minutes(30));
    assert!(f.store.session(&idle, &policy).unwrap().is_none());

    let (busy, _) = granted(sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.1"));
    for _ in 0..(12 * 4 - 1) {
        f.clock.advance(Duration::minutes(15));
        assert!(f.store.session(&busy, &policy).unwrap().is_some());
    }
    f.clock.advance(Duration::minutes(15));
    assert!(f.store.session(&busy, &policy).unwrap().is_none());
}

#[test]
fn sign_out_and_a_password_change_end_sessions() {
    let mut f = Fixture::new();
    f.user("1001");
    f.store
        .set_password("default", "1001", PASSWORD, "cli")
        .unwrap();
    let policy = PortalPolicy::default();
    let (a, _) = granted(sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.1"));
    let (b, user) = granted(sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.2"));
    let (c, _) = granted(sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.3"));
    assert_eq!(f.store.live_sessions(user.user_id, &policy).unwrap(), 3);
    assert!(f.store.sign_out(&a).unwrap());
    assert!(
        !f.store.sign_out(&a).unwrap(),
        "second sign-out changes nothing"
    );
    assert!(f.store.session(&a, &policy).unwrap().is_none());
    assert!(f.store.session(&b, &policy).unwrap().is_some());
    f.store
        .set_password("default", "1001", "another long password", "cli")
        .unwrap();
    assert!(f.store.session(&b, &policy).unwrap().is_none());
    assert!(f.store.session(&c, &policy).unwrap().is_none());
    assert!(matches!(
        sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.1"),
        SignIn::Refused
    ));
    granted(sign_in(
        &mut f.store,
        "1001",
        "another long password",
        "192.0.2.1",
    ));
    assert!(actions(&f.store).contains(&"session.signout".to_string()));
}

#[test]
fn an_admin_revokes_a_users_sessions_and_a_user_cannot_revoke_anothers() {
    let mut f = Fixture::new();
    let user = f.user("1001");
    let other = f.user("1002");
    f.admin("1000");
    f.store
        .set_password("default", "1001", PASSWORD, "cli")
        .unwrap();
    let (s, me) = granted(sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.1"));
    let other_access = Access {
        actor: "1002@default".into(),
        scope: callrec_store::Scope::User {
            site: other.site_id,
            user: other.id,
        },
    };
    assert!(f.store.revoke_sessions(user.id, &other_access).is_err());
    assert!(
        f.store
            .session(&s, &PortalPolicy::default())
            .unwrap()
            .is_some()
    );
    let admin = Access {
        actor: "1000@default".into(),
        scope: callrec_store::Scope::Site(me.site_id),
    };
    assert_eq!(f.store.revoke_sessions(user.id, &admin).unwrap(), 1);
    assert!(
        f.store
            .session(&s, &PortalPolicy::default())
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_made_up_or_malformed_cookie_finds_no_one() {
    let mut f = Fixture::new();
    let policy = PortalPolicy::default();
    assert!(
        f.store
            .session(&"ab".repeat(32), &policy)
            .unwrap()
            .is_none()
    );
    assert!(f.store.session("' OR 1=1 --", &policy).unwrap().is_none());
    assert!(f.store.session("", &policy).unwrap().is_none());
}

#[test]
fn passwords_shorter_than_twelve_characters_are_refused() {
    let mut f = Fixture::new();
    f.user("1001");
    let e = f
        .store
        .set_password("default", "1001", "short pass", "cli")
        .unwrap_err();
    assert_eq!(e.kind(), callrec_store::ErrorKind::Invalid);
    assert!(!e.to_string().contains("short pass"));
    assert!(
        !f.store
            .has_password(f.store.view().user("default", "1001").unwrap().id)
            .unwrap()
    );
}

#[test]
fn a_user_chooses_their_own_mode_only_at_or_above_the_sites_default() {
    let mut f = Fixture::new();
    let u = f.user("1001");
    assert_eq!(u.mode, RecordingMode::AlwaysPausable);
    let e = f
        .store
        .set_own_mode(u.id, RecordingMode::Never, "1001@default")
        .unwrap_err();
    assert_eq!(e.kind(), callrec_store::ErrorKind::Invalid);
    let changed = f
        .store
        .set_own_mode(u.id, RecordingMode::Always, "1001@default")
        .unwrap();
    assert_eq!(changed.mode, RecordingMode::Always);
    assert!(actions(&f.store).contains(&"user.set_mode".to_string()));
}

#[test]
fn a_user_with_sessions_can_still_be_removed() {
    let mut f = Fixture::new();
    f.user("1001");
    f.store
        .set_password("default", "1001", PASSWORD, "cli")
        .unwrap();
    granted(sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.1"));
    f.store.remove_user("default", "1001", "cli").unwrap();
}

#[tokio::test]
async fn the_async_handle_finds_sessions_on_a_reader_and_keeps_them_alive_through_the_writer() {
    let mut f = Fixture::new();
    f.user("1001");
    f.store
        .set_password("default", "1001", PASSWORD, "cli")
        .unwrap();
    let (secret, _) = granted(sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.1"));
    let clock = f.clock.clone();
    let Fixture {
        store, dir: _dir, ..
    } = f;
    let handle = callrec_store::StoreHandle::new(store);
    let policy = PortalPolicy::default();
    let live = |h: &callrec_store::StoreHandle| {
        let (h, s, p) = (h.clone(), secret.clone(), policy.clone());
        async move { h.session(s, p).await.unwrap().is_some() }
    };
    // Used every 20 minutes, the session outlives the 30-minute idle limit: each use past
    // the first minute is written down.
    for _ in 0..4 {
        clock.advance(Duration::minutes(20));
        assert!(live(&handle).await);
    }
    clock.advance(Duration::minutes(30));
    assert!(!live(&handle).await);
}

/// Rows of a table of the index, read beside the store.
fn rows(f: &Fixture, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(f.data_dir().join("index.db")).unwrap();
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn the_purge_deletes_sessions_that_are_over_and_failures_past_the_window_and_keeps_the_rest() {
    let mut f = Fixture::new();
    f.user("1001");
    f.store
        .set_password("default", "1001", PASSWORD, "cli")
        .unwrap();
    let policy = PortalPolicy::default();
    let purge = |f: &mut Fixture| f.store.purge_portal_rows(&policy).unwrap();
    let wrong = |f: &mut Fixture| {
        assert!(matches!(
            sign_in(&mut f.store, "nobody", "wrong password!", "192.0.2.9"),
            SignIn::Refused
        ));
    };
    let (signed_out, _) = granted(sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.1"));
    let (idle, _) = granted(sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.2"));
    let (busy, _) = granted(sign_in(&mut f.store, "1001", PASSWORD, "192.0.2.3"));
    assert!(f.store.sign_out(&signed_out).unwrap());
    // Failed sign-ins at minutes 0 and 10 (a new failure prunes only rows already out of
    // the window, so both stay).
    wrong(&mut f);
    f.clock.advance(Duration::minutes(10));
    wrong(&mut f);
    assert_eq!((rows(&f, "sessions"), rows(&f, "signin_failures")), (3, 2));

    // Minute 29: only the signed-out session is over.
    f.clock.advance(Duration::minutes(19));
    assert!(f.store.session(&busy, &policy).unwrap().is_some());
    let done = purge(&mut f);
    assert_eq!((done.sessions, done.signin_failures), (1, 0));
    assert_eq!(rows(&f, "sessions"), 2);

    // Minute 30: the unused one idled out (as the session lookup already says); the used
    // one lives on.
    f.clock.advance(Duration::minutes(1));
    assert!(f.store.session(&idle, &policy).unwrap().is_none());
    assert_eq!(purge(&mut f).sessions, 1);
    assert!(f.store.session(&busy, &policy).unwrap().is_some());
    assert_eq!(rows(&f, "sessions"), 1);

    // A failure goes once it is older than the window (15 min) and the margin (1 h): the
    // one of minute 0 at minute 75, not a second before; the one of minute 10 at 85.
    for step in [15, 15] {
        f.clock.advance(Duration::minutes(step));
        assert!(f.store.session(&busy, &policy).unwrap().is_some());
    }
    f.clock
        .advance(Duration::minutes(15) - Duration::seconds(1));
    assert!(f.store.session(&busy, &policy).unwrap().is_some());
    assert_eq!(purge(&mut f).signin_failures, 0, "74:59 is not past 75 min");
    f.clock.advance(Duration::seconds(1));
    let done = purge(&mut f);
    assert_eq!((done.sessions, done.signin_failures), (0, 1));
    assert_eq!(rows(&f, "signin_failures"), 1);
    f.clock.advance(Duration::minutes(10));
    assert!(f.store.session(&busy, &policy).unwrap().is_some());
    assert_eq!(purge(&mut f).signin_failures, 1);
    assert_eq!(rows(&f, "signin_failures"), 0);

    // Used every 15 minutes, the session still ends at 12 hours, and then it is purged.
    let twelve_hours = support::start_time() + Duration::hours(12);
    while f.clock.now_utc() < twelve_hours - Duration::minutes(15) {
        f.clock.advance(Duration::minutes(15));
        assert!(f.store.session(&busy, &policy).unwrap().is_some());
        assert_eq!(purge(&mut f).sessions, 0);
    }
    f.clock.set(twelve_hours - Duration::seconds(1));
    assert_eq!(purge(&mut f).sessions, 0);
    f.clock.advance(Duration::seconds(1));
    assert!(f.store.session(&busy, &policy).unwrap().is_none());
    assert_eq!(purge(&mut f).sessions, 1);
    assert_eq!(rows(&f, "sessions"), 0);
    // The history stays in the audit log.
    let log = actions(&f.store);
    assert_eq!(log.iter().filter(|a| *a == "session.signin").count(), 3);
    assert_eq!(log.iter().filter(|a| *a == "session.signout").count(), 1);
    assert_eq!(
        log.iter().filter(|a| *a == "session.signin_failed").count(),
        2
    );
}
