//! The web portal as a browser meets it: signing in and out, cookies, the throttle, CSRF,
//! who sees which recording and its audio, escaping of what people typed, and the headers
//! every page carries. Requests go through the same routes the server serves, in-process.

mod support;

use std::net::SocketAddr;

use callrec_api::server::ClientAddr;
use callrec_model::RecordingMode;
use support::portal::{
    PASSWORD, addr, admin_session, body, cookie_value, cookies, csrf_of, form, get, header, post,
    session, set_password, sign_in_from, sign_in_via,
};
use support::{World, t0};

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_and_shows_my_recordings() {
    let mut w = World::new();
    set_password(&w, &w.alice);
    let alice = w.alice.user.clone();
    let (rec, _) = w.record(&alice, "1001", "01234567890", t0(), 1_000);

    let r = sign_in_from(&w, "1001", PASSWORD, 1).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), Some("/recordings"));
    let set = cookies(&r);
    let session = set
        .iter()
        .find(|c| c.starts_with("callrec_session="))
        .expect("session cookie");
    assert!(session.contains("; HttpOnly"), "{session}");
    assert!(session.contains("; SameSite=Strict"), "{session}");
    assert!(session.contains("; Path=/"), "{session}");
    assert!(
        !session.contains("Secure"),
        "no TLS, so not Secure: {session}"
    );
    let cookie = cookie_value(&r, "callrec_session").unwrap();

    let page = get(&w, &cookie, "/recordings").await;
    assert_eq!(page.status(), 200);
    let html = body(&page);
    assert!(html.contains(&format!("/recordings/{}", rec.id)), "{html}");
    assert!(html.contains("01234567890"));
    assert!(
        html.contains("2024-05-01 10:00:00 UTC"),
        "time in the site's zone, named"
    );
    assert!(html.contains("/audio?download=1"));
    let head = w.audit_head().await;
    assert!(head > 0);
    assert_eq!(get(&w, &cookie, "/").await.status(), 303);
}

#[tokio::test]
async fn a_secure_cookie_is_set_when_the_portal_is_configured_for_tls() {
    let config = callrec_api::ApiConfig {
        portal: callrec_api::PortalConfig {
            secure_cookies: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let w = World::with_config(config);
    set_password(&w, &w.alice);
    let r = sign_in_from(&w, "1001", PASSWORD, 1).await;
    assert!(
        cookies(&r).iter().all(|c| c.contains("; Secure")),
        "{:?}",
        cookies(&r)
    );
}

#[tokio::test]
async fn a_wrong_password_or_unknown_account_is_refused_alike_and_audited() {
    let w = World::new();
    set_password(&w, &w.alice);
    let before = w.audit_head().await;
    for (account, password) in [("1001", "not the password"), ("4711", PASSWORD)] {
        let r = sign_in_from(&w, account, password, 1).await;
        assert_eq!(r.status(), 401);
        assert!(cookie_value(&r, "callrec_session").is_none());
        assert!(body(&r).contains("Wrong extension or password."));
    }
    let failed = w
        .audit_since(before)
        .await
        .into_iter()
        .filter(|e| e.action == "session.signin_failed")
        .count();
    assert_eq!(failed, 2);
}

#[tokio::test]
async fn five_wrong_passwords_throttle_the_account_with_a_clear_message() {
    let w = World::new();
    set_password(&w, &w.alice);
    for i in 0..5 {
        let r = sign_in_from(&w, "1001", "guessing guessing", 10 + i).await;
        assert_eq!(r.status(), 401);
    }
    let r = sign_in_from(&w, "1001@default", PASSWORD, 99).await;
    assert_eq!(r.status(), 429);
    assert!(header(&r, "retry-after").is_some());
    assert!(
        body(&r).contains("Too many failed sign-ins"),
        "{}",
        body(&r)
    );
    assert!(cookie_value(&r, "callrec_session").is_none());
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_address_throttle_counts_the_forwarded_client() {
    let proxy = ClientAddr(SocketAddr::from(([10, 0, 0, 2], 50000)));
    let config = callrec_api::ApiConfig {
        portal: callrec_api::PortalConfig {
            policy: callrec_store::PortalPolicy {
                max_failures_per_address: 3,
                ..Default::default()
            },
            ..Default::default()
        },
        trusted_proxies: callrec_api::forwarded::TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
        ]),
        ..Default::default()
    };
    let w = World::with_config(config);
    set_password(&w, &w.alice);
    let before = w.audit_head().await;

    // A guesser behind the proxy tries three unknown accounts (so no account is throttled),
    // each time making up a different leftmost X-Forwarded-For entry.
    for (i, account) in ["4701", "4702", "4703"].iter().enumerate() {
        let spoofed = format!("198.51.100.{i}, 203.0.113.66");
        let r = sign_in_via(&w, account, "guessing guessing", proxy, Some(&spoofed)).await;
        assert_eq!(r.status(), 401);
    }
    // Their address is throttled, even for a right password and a new made-up entry...
    let r = sign_in_via(
        &w,
        "1001",
        PASSWORD,
        proxy,
        Some("192.0.2.200, 203.0.113.66"),
    )
    .await;
    assert_eq!(r.status(), 429, "{}", body(&r));
    // ...while someone else behind the same proxy signs in.
    let r = sign_in_via(&w, "1001", PASSWORD, proxy, Some("203.0.113.77")).await;
    assert_eq!(r.status(), 303, "{}", body(&r));

    // The audit log names the forwarded client, not the proxy or the made-up entries.
    let failed: Vec<_> = w
        .audit_since(before)
        .await
        .into_iter()
        .filter(|e| e.action == "session.signin_failed")
        .collect();
    assert!(!failed.is_empty());
    for entry in &failed {
        assert!(entry.detail.contains("\"203.0.113.66\""), "{entry:?}");
    }
}

#[tokio::test]
async fn a_client_not_behind_a_trusted_proxy_cannot_dodge_the_throttle_with_forwarded_for() {
    let config = callrec_api::ApiConfig {
        portal: callrec_api::PortalConfig {
            policy: callrec_store::PortalPolicy {
                max_failures_per_address: 3,
                ..Default::default()
            },
            ..Default::default()
        },
        trusted_proxies: callrec_api::forwarded::TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
        ]),
        ..Default::default()
    };
    let w = World::with_config(config);
    set_password(&w, &w.alice);
    for (i, account) in ["4701", "4702", "4703"].iter().enumerate() {
        let made_up = format!("203.0.113.{i}");
        let r = sign_in_via(&w, account, "guessing guessing", addr(7), Some(&made_up)).await;
        assert_eq!(r.status(), 401);
    }
    let r = sign_in_via(&w, "1001", PASSWORD, addr(7), Some("203.0.113.99")).await;
    assert_eq!(
        r.status(),
        429,
        "keyed on the peer, whatever the header says"
    );
}

#[tokio::test]
async fn a_sign_in_form_not_from_our_page_is_refused() {
    let w = World::new();
    set_password(&w, &w.alice);
    let fields = form(&[("csrf", "x"), ("account", "1001"), ("password", PASSWORD)]);
    let r = w
        .send(
            w.anon("POST", "/signin")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(fields.clone()),
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = w
        .send(
            w.anon("POST", "/signin")
                .header("cookie", "callrec_signin=y")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(fields),
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(cookie_value(&r, "callrec_session").is_none());
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_changes_nothing() {
    let mut w = World::new();
    set_password(&w, &w.alice);
    let alice = w.alice.user.clone();
    let (rec, _) = w.record(&alice, "1001", "01234567890", t0(), 1_000);
    let cookie = session(&w, &w.alice).await;
    let path = format!("/recordings/{}/notes", rec.id);

    let r = post(&w, &cookie, &path, &[("text", "no token")]).await;
    assert_eq!(r.status(), 403);
    let r = post(
        &w,
        &cookie,
        &path,
        &[("text", "wrong token"), ("csrf", "0000")],
    )
    .await;
    assert_eq!(r.status(), 403);
    let page = get(&w, &cookie, &format!("/recordings/{}", rec.id)).await;
    let html = body(&page);
    assert!(!html.contains("no token") && !html.contains("wrong token"));

    let csrf = csrf_of(&html);
    let r = post(
        &w,
        &cookie,
        &path,
        &[("text", "called back"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let page = get(&w, &cookie, &format!("/recordings/{}", rec.id)).await;
    assert!(body(&page).contains("called back"));
    // Sign-out and the mode form check it too.
    assert_eq!(post(&w, &cookie, "/signout", &[]).await.status(), 403);
    assert_eq!(
        post(&w, &cookie, "/settings/mode", &[("mode", "always")])
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn a_user_cannot_open_another_users_recording_or_audio_and_an_admin_can() {
    let mut w = World::new();
    set_password(&w, &w.alice);
    set_password(&w, &w.admin);
    set_password(&w, &w.stranger);
    let bob = w.bob.user.clone();
    let (rec, bytes) = w.record(&bob, "1002", "01234567890", t0(), 1_000);
    let page = format!("/recordings/{}", rec.id);
    let audio = format!("/recordings/{}/audio", rec.id);

    let alice = session(&w, &w.alice).await;
    assert_eq!(get(&w, &alice, &page).await.status(), 404);
    assert_eq!(get(&w, &alice, &audio).await.status(), 404);
    assert!(!body(&get(&w, &alice, "/recordings").await).contains(&rec.id.to_string()));

    // The other site's admin (same extension 9000) signs in as 9000@other.
    let r = sign_in_from(&w, "9000@other", PASSWORD, 2).await;
    let stranger = cookie_value(&r, "callrec_session").expect("stranger signs in");
    assert_eq!(get(&w, &stranger, &page).await.status(), 404);

    let r = sign_in_from(&w, "9000@default", PASSWORD, 3).await;
    let admin = cookie_value(&r, "callrec_session").expect("admin signs in");
    let p = get(&w, &admin, &page).await;
    assert_eq!(p.status(), 200);
    let html = body(&p);
    assert!(html.contains(&format!(
        "<audio controls preload=\"metadata\" src=\"{audio}\""
    )));
    assert!(html.contains("Call Handler ID"));
    let r = w
        .send(
            w.anon("GET", &audio)
                .header("cookie", format!("callrec_session={admin}"))
                .header("range", "bytes=0-99"),
        )
        .await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.body().as_ref(), &bytes[..100]);
    assert_eq!(
        header(&r, "content-range"),
        Some(format!("bytes 0-99/{}", bytes.len()).as_str())
    );
    let d = get(&w, &admin, &format!("{audio}?download=1")).await;
    assert_eq!(d.status(), 200);
    assert!(
        header(&d, "content-disposition")
            .unwrap()
            .contains("attachment")
    );
    assert_eq!(d.body().as_ref(), &bytes[..]);
    // Without a session: no audio.
    assert_eq!(w.send(w.anon("GET", &audio)).await.status(), 401);
    // A bearer token is not a portal session.
    assert_eq!(w.send(w.req(&w.admin, "GET", &page)).await.status(), 303);
}

#[tokio::test]
async fn what_people_typed_is_shown_as_text_never_as_markup() {
    let mut w = World::new();
    set_password(&w, &w.alice);
    let alice = w.alice.user.clone();
    let (rec, _) = w.record(
        &alice,
        "\"><img src=x onerror=alert(1)>",
        "01234567890",
        t0(),
        1_000,
    );
    let cookie = session(&w, &w.alice).await;
    let path = format!("/recordings/{}", rec.id);
    let csrf = csrf_of(&body(&get(&w, &cookie, &path).await));
    let note = "<script>alert('x')</script> & \"quoted\"";
    let r = post(
        &w,
        &cookie,
        &format!("{path}/notes"),
        &[("text", note), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let html = body(&get(&w, &cookie, &path).await);
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(
        html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
        "{html}"
    );
    let list = body(&get(&w, &cookie, "/recordings").await);
    assert!(!list.contains("<img src=x"));
}

#[tokio::test]
async fn every_page_carries_a_strict_csp_and_nosniff() {
    let mut w = World::new();
    set_password(&w, &w.admin);
    let admin = w.admin.user.clone();
    let (rec, _) = w.record(&admin, "9000", "01234567890", t0(), 1_000);
    let r = sign_in_from(&w, "9000@default", PASSWORD, 1).await;
    let cookie = cookie_value(&r, "callrec_session").unwrap();
    let mut pages = vec![w.send(w.anon("GET", "/signin")).await];
    for path in [
        "/recordings".to_owned(),
        format!("/recordings/{}", rec.id),
        "/recordings/not-an-id".to_owned(),
        "/settings".to_owned(),
        "/users".to_owned(),
    ] {
        pages.push(get(&w, &cookie, &path).await);
    }
    for p in &pages {
        assert!(header(p, "content-type").unwrap().starts_with("text/html"));
        let csp = header(p, "content-security-policy").unwrap();
        for part in [
            "default-src 'self'",
            "media-src 'self'",
            "style-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{csp}");
        }
        assert_eq!(header(p, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(p, "cache-control"), Some("no-store"));
        // No inline script: the only one is the player's own file.
        let html = body(p);
        for (at, _) in html.match_indices("<script") {
            assert!(
                html[at..].starts_with("<script src=\"/assets/player.js\" defer></script>"),
                "only the first-party player script: {}",
                &html[at..(at + 80).min(html.len())]
            );
        }
    }
    let css = w.send(w.anon("GET", "/assets/portal.css")).await;
    assert_eq!(css.status(), 200);
    assert!(
        header(&css, "content-type")
            .unwrap()
            .starts_with("text/css")
    );
}

#[tokio::test]
async fn signing_out_kills_the_session_and_strangers_go_to_the_sign_in_page() {
    let w = World::new();
    set_password(&w, &w.alice);
    let r = w.send(w.anon("GET", "/")).await;
    assert_eq!(header(&r, "location"), Some("/signin"));
    for path in ["/recordings", "/settings", "/users"] {
        let r = w.send(w.anon("GET", path)).await;
        assert_eq!(r.status(), 303, "{path}");
        let to = format!("/signin?next=%2F{}", &path[1..]);
        assert_eq!(header(&r, "location"), Some(to.as_str()), "{path}");
    }
    let cookie = session(&w, &w.alice).await;
    let csrf = csrf_of(&body(&get(&w, &cookie, "/recordings").await));
    let r = post(&w, &cookie, "/signout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), Some("/signin"));
    assert!(
        cookies(&r)
            .iter()
            .any(|c| c.starts_with("callrec_session=;") && c.contains("Max-Age=0"))
    );
    let after = get(&w, &cookie, "/recordings").await;
    assert_eq!(after.status(), 303);
    assert!(header(&after, "location").unwrap().starts_with("/signin"));
}

/// Alice signs in through the form from a browser that still holds the session cookie `held`.
async fn sign_in_holding(w: &World, held: &str) -> warp::http::Response<bytes::Bytes> {
    let page = w.send(w.anon("GET", "/signin")).await;
    let token = cookie_value(&page, "callrec_signin").unwrap();
    w.send(
        w.anon("POST", "/signin")
            .header(
                "cookie",
                format!("callrec_signin={token}; callrec_session={held}"),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("csrf", &token),
                ("account", "1001"),
                ("password", PASSWORD),
            ])),
    )
    .await
}

#[tokio::test]
async fn a_new_sign_in_never_keeps_a_session_id_the_browser_already_had() {
    let w = World::new();
    set_password(&w, &w.alice);
    let first = session(&w, &w.alice).await;
    let page = w
        .send(
            w.anon("GET", "/signin")
                .header("cookie", format!("callrec_session={first}")),
        )
        .await;
    assert_eq!(page.status(), 303, "already signed in");
    // Signing in again from a browser holding `first` ends `first`.
    let r = sign_in_holding(&w, &first).await;
    assert_eq!(r.status(), 303);
    let second = cookie_value(&r, "callrec_session").unwrap();
    assert_ne!(first, second);
    assert_eq!(get(&w, &first, "/recordings").await.status(), 303);
    assert_eq!(get(&w, &second, "/recordings").await.status(), 200);
}

/// A session that ended by itself (idle) is over: signing in again from the browser that still
/// holds its cookie opens a new session and audits that sign-in only, not a sign-out of the
/// old one, which nobody did (and which would put a sign-out in the log half an hour after the
/// person had left).
#[tokio::test]
async fn signing_in_after_a_session_expired_audits_no_sign_out_that_never_happened() {
    let clock = callrec_model::ManualClock::new(chrono::Utc::now());
    let w = World::with_clock(
        callrec_api::ApiConfig::default(),
        std::sync::Arc::new(clock.clone()),
    );
    set_password(&w, &w.alice);
    let old = session(&w, &w.alice).await;
    clock.advance(chrono::TimeDelta::minutes(31));
    assert_eq!(get(&w, &old, "/recordings").await.status(), 303, "idle");
    let head = w.audit_head().await;
    let r = sign_in_holding(&w, &old).await;
    assert_eq!(r.status(), 303);
    let new = cookie_value(&r, "callrec_session").unwrap();
    assert_ne!(new, old);
    assert_eq!(get(&w, &new, "/recordings").await.status(), 200);
    assert_eq!(get(&w, &old, "/recordings").await.status(), 303);
    let actions: Vec<String> = w
        .audit_since(head)
        .await
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a.starts_with("session."))
        .collect();
    assert_eq!(actions, ["session.signin"]);
}

#[tokio::test]
async fn the_search_box_finds_a_number_in_any_form_and_note_text() {
    let mut w = World::new();
    set_password(&w, &w.admin);
    let alice = w.alice.user.clone();
    let bob = w.bob.user.clone();
    let (wanted, _) = w.record(&alice, "1001", "01234567890", t0(), 1_000);
    let (other, _) = w.record(&bob, "1002", "02070000000", t0(), 1_000);
    let r = sign_in_from(&w, "9000@default", PASSWORD, 1).await;
    let admin = cookie_value(&r, "callrec_session").unwrap();
    let all = body(&get(&w, &admin, "/recordings").await);
    assert!(all.contains(&wanted.id.to_string()) && all.contains(&other.id.to_string()));
    for q in ["441234567890", "%2B44+1234+567890", "01234567890"] {
        let html = body(&get(&w, &admin, &format!("/recordings?q={q}")).await);
        assert!(html.contains(&wanted.id.to_string()), "{q}");
        assert!(!html.contains(&other.id.to_string()), "{q}");
    }
    let access = callrec_store::Access::system("test");
    let id = other.id.clone();
    w.store
        .write(move |s| s.add_note(&id, &access, "customer asked for a refund"))
        .await
        .unwrap();
    let html = body(&get(&w, &admin, "/recordings?q=refund").await);
    assert!(html.contains(&other.id.to_string()) && !html.contains(&wanted.id.to_string()));
    // Dates: a day with no recordings finds none; a bad date is a clear 400 on the page.
    let html = body(&get(&w, &admin, "/recordings?since=2024-05-02").await);
    assert!(!html.contains(&wanted.id.to_string()));
    let r = get(&w, &admin, "/recordings?since=yesterday").await;
    assert_eq!(r.status(), 400);
    assert!(body(&r).contains("since"));
}

#[tokio::test]
async fn a_user_changes_their_mode_only_within_what_the_site_allows() {
    let w = World::new();
    set_password(&w, &w.alice);
    let cookie = session(&w, &w.alice).await;
    let page = get(&w, &cookie, "/settings").await;
    assert_eq!(page.status(), 200);
    let html = body(&page);
    assert!(html.contains("Always with Pause/Resume"));
    assert!(!html.contains("value=\"never\""), "never is not offered");
    assert!(
        html.contains("180 days") && html.contains("1.0 GiB"),
        "{html}"
    );
    let csrf = csrf_of(&html);
    let r = post(
        &w,
        &cookie,
        "/settings/mode",
        &[("mode", "never"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = post(
        &w,
        &cookie,
        "/settings/mode",
        &[("mode", "always"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let me = w.store.read(|v| v.user("default", "1001")).await.unwrap();
    assert_eq!(me.mode, RecordingMode::Always);
}

#[tokio::test]
async fn only_an_admin_sees_the_users_page() {
    let w = World::new();
    set_password(&w, &w.alice);
    set_password(&w, &w.admin);
    let alice = session(&w, &w.alice).await;
    assert_eq!(get(&w, &alice, "/users").await.status(), 403);
    let r = sign_in_from(&w, "9000@default", PASSWORD, 1).await;
    let admin = cookie_value(&r, "callrec_session").unwrap();
    let html = body(&get(&w, &admin, "/users").await);
    assert!(html.contains("<td>1001</td>") && html.contains("<td>1002</td>"));
    // 1001, 1002 and 9000 of this site; not 9000 of site `other`.
    assert_eq!(html.matches("<tr><td>").count(), 3, "{html}");
}

#[tokio::test]
async fn a_full_page_of_recordings_weighs_under_100_kb_and_links_to_the_older_ones() {
    let mut w = World::new();
    set_password(&w, &w.admin);
    let alice = w.alice.user.clone();
    for i in 0..51 {
        w.record(
            &alice,
            "+44 (0) 1234 567890",
            "02079460123",
            t0() + chrono::Duration::minutes(i),
            200,
        );
    }
    let r = sign_in_from(&w, "9000@default", PASSWORD, 1).await;
    let admin = cookie_value(&r, "callrec_session").unwrap();
    let page = get(&w, &admin, "/recordings").await;
    assert_eq!(page.status(), 200);
    let rows = body(&page).matches("/audio?download=1").count();
    assert_eq!(rows, 50, "the first page is full");
    let css = w.send(w.anon("GET", "/assets/portal.css")).await;
    let weight = page.body().len() + css.body().len();
    assert!(weight <= 100 * 1024, "SPEC §8: page weight {weight} bytes");

    let html = body(&page);
    let at = html
        .find("<a href=\"/recordings?cursor=")
        .expect("a link to older ones");
    let href = &html[at + "<a href=\"".len()..];
    let href = href[..href.find('"').unwrap()]
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let older = body(&get(&w, &admin, &href).await);
    assert_eq!(older.matches("/audio?download=1").count(), 1, "{href}");
    assert!(!older.contains("Older recordings"));
}

#[tokio::test]
async fn a_link_to_a_recording_opened_signed_out_comes_back_to_it_after_sign_in() {
    let mut w = World::new();
    set_password(&w, &w.alice);
    let alice = w.alice.user.clone();
    let (rec, _) = w.record(&alice, "1001", "01234567890", t0(), 1_000);
    let path = format!("/recordings/{}", rec.id);
    let r = w.send(w.anon("GET", &path)).await;
    let to = header(&r, "location").unwrap().to_owned();
    assert!(to.starts_with("/signin?next="), "{to}");

    let sign_in_via = |signin: String| {
        let w = &w;
        async move {
            let page = w.send(w.anon("GET", &signin)).await;
            let token = cookie_value(&page, "callrec_signin").unwrap();
            let html = body(&page);
            let next = html
                .split("name=\"next\" value=\"")
                .nth(1)
                .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
                .unwrap_or_default();
            w.send(
                w.anon("POST", "/signin")
                    .header("cookie", format!("callrec_signin={token}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&[
                        ("csrf", &token),
                        ("account", "1001"),
                        ("password", PASSWORD),
                        ("next", &next),
                    ])),
            )
            .await
        }
    };
    let r = sign_in_via(to).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), Some(path.as_str()));
    // A `next` that leaves the site is dropped.
    let r = sign_in_via("/signin?next=%2F%2Fevil.example%2F".to_owned()).await;
    assert_eq!(header(&r, "location"), Some("/recordings"));
}

/// The recording as the store now holds it.
fn stored(w: &World, id: &callrec_model::RecordingId) -> callrec_store::Recording {
    let id = id.clone();
    w.store
        .read_blocking(move |v| v.recording(&id, &callrec_store::Access::system("test")))
        .unwrap()
}

#[tokio::test]
async fn an_admin_holds_releases_and_deletes_from_the_recordings_page_with_the_apis_audit() {
    let mut w = World::new();
    set_password(&w, &w.admin);
    let alice = w.alice.user.clone();
    let (rec, _) = w.record(&alice, "1001", "01234567890", t0(), 1_000);
    let cookie = admin_session(&w).await;
    let page_path = format!("/recordings/{}", rec.id);
    let html = body(&get(&w, &cookie, &page_path).await);
    assert!(
        html.contains(&format!("action=\"/recordings/{}/hold\"", rec.id)),
        "{html}"
    );
    assert!(html.contains("name=\"reason\""));
    let csrf = csrf_of(&html);
    let hold_path = format!("/recordings/{}/hold", rec.id);
    let delete_path = format!("/recordings/{}/delete", rec.id);

    let head = w.audit_head().await;
    let r = post(&w, &cookie, &hold_path, &[("hold", "1"), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), 303, "{}", body(&r));
    assert_eq!(header(&r, "location"), Some(page_path.as_str()));
    assert!(stored(&w, &rec.id).hold);
    let entries = w.audit_since(head).await;
    assert!(
        entries
            .iter()
            .any(|e| e.action == "recording.hold" && e.actor == "9000@default"),
        "{entries:?}"
    );
    assert!(body(&get(&w, &cookie, &page_path).await).contains("Release the hold"));

    // On hold: deleting is refused with the reason on the page, and nothing is deleted.
    let r = post(
        &w,
        &cookie,
        &delete_path,
        &[("reason", "asked by the caller"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 409);
    let html = body(&r);
    assert!(html.contains("role=\"alert\""), "{html}");
    assert!(html.to_lowercase().contains("hold"), "{html}");
    assert_ne!(
        stored(&w, &rec.id).state,
        callrec_model::RecordingState::Deleted
    );

    // No reason: not deleted either.
    let r = post(&w, &cookie, &hold_path, &[("hold", "0"), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), 303);
    assert!(!stored(&w, &rec.id).hold);
    let r = post(
        &w,
        &cookie,
        &delete_path,
        &[("reason", "  "), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_ne!(
        stored(&w, &rec.id).state,
        callrec_model::RecordingState::Deleted
    );

    let head = w.audit_head().await;
    let r = post(
        &w,
        &cookie,
        &delete_path,
        &[("reason", "asked by the caller"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", body(&r));
    let after = stored(&w, &rec.id);
    assert_eq!(after.state, callrec_model::RecordingState::Deleted);
    assert!(
        after
            .state_reason
            .as_deref()
            .is_some_and(|why| why.contains("asked by the caller")),
        "{after:?}"
    );
    let entries = w.audit_since(head).await;
    assert!(
        entries.iter().any(|e| e.action == "recording.delete"),
        "{entries:?}"
    );
    let html = body(&get(&w, &cookie, &page_path).await);
    assert!(
        !html.contains("Delete now"),
        "no delete form on a deleted recording"
    );
}

#[tokio::test]
async fn a_user_cannot_hold_or_delete_and_no_form_works_without_the_csrf_token() {
    let mut w = World::new();
    set_password(&w, &w.alice);
    set_password(&w, &w.admin);
    let alice = w.alice.user.clone();
    let (rec, _) = w.record(&alice, "1001", "01234567890", t0(), 1_000);
    let hold_path = format!("/recordings/{}/hold", rec.id);
    let delete_path = format!("/recordings/{}/delete", rec.id);

    let user = session(&w, &w.alice).await;
    let html = body(&get(&w, &user, &format!("/recordings/{}", rec.id)).await);
    assert!(!html.contains("/hold\""), "a user sees no hold form");
    let csrf = csrf_of(&html);
    let r = post(&w, &user, &hold_path, &[("hold", "1"), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), 403);
    let r = post(
        &w,
        &user,
        &delete_path,
        &[("reason", "mine"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = post(&w, &user, &delete_path, &[("reason", ""), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), 403);

    let admin = admin_session(&w).await;
    let r = post(&w, &admin, &hold_path, &[("hold", "1")]).await;
    assert_eq!(r.status(), 403);
    let r = post(
        &w,
        &admin,
        &delete_path,
        &[("reason", "x"), ("csrf", "0000")],
    )
    .await;
    assert_eq!(r.status(), 403);
    let now = stored(&w, &rec.id);
    assert!(!now.hold);
    assert_ne!(now.state, callrec_model::RecordingState::Deleted);
}

/// Each entry's SHA-256 by name, and the manifest, as Python's `zipfile` reads them.
fn open_zip(
    zip: &[u8],
) -> (
    std::collections::BTreeMap<String, String>,
    serde_json::Value,
) {
    let (entries, manifest) = support::read_with_python(zip);
    let hashes = entries.into_iter().map(|(k, (_, sha))| (k, sha)).collect();
    (hashes, manifest)
}

#[tokio::test]
async fn the_search_downloads_as_a_zip_of_the_sessions_own_recordings() {
    let mut w = World::new();
    set_password(&w, &w.alice);
    let (alice, bob) = (w.alice.user.clone(), w.bob.user.clone());
    let (a1, a1_bytes) = w.record(&alice, "1001", "01234567890", t0(), 1_000);
    let (a2, _) = w.record(
        &alice,
        "1001",
        "02079460999",
        t0() + chrono::Duration::minutes(5),
        1_000,
    );
    let (b1, _) = w.record(&bob, "1002", "01234567890", t0(), 1_000);
    let cookie = session(&w, &w.alice).await;

    let html = body(&get(&w, &cookie, "/recordings?q=441234567890").await);
    assert!(
        html.contains("href=\"/recordings.zip?q=441234567890\""),
        "{html}"
    );

    let head = w.audit_head().await;
    let r = get(&w, &cookie, "/recordings.zip?q=441234567890").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), Some("application/zip"));
    assert!(header(&r, "content-disposition").is_some_and(|d| d.starts_with("attachment")));
    let (entries, manifest) = open_zip(r.body());
    let ids: Vec<&str> = manifest["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![a1.id.to_string()],
        "only alice's match, not bob's"
    );
    assert_eq!(manifest["generated_by"], "1001@default");
    let a1_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&a1_bytes));
    assert!(
        entries.values().any(|h| *h == a1_hash),
        "{entries:?} holds the file's bytes"
    );
    let exported = w.audit_since(head).await;
    assert!(
        exported
            .iter()
            .any(|e| e.action == "recording.export" && e.actor == "1001@default"),
        "{exported:?}"
    );

    // Without a search: every recording of hers, none of bob's.
    let r = get(&w, &cookie, "/recordings.zip").await;
    let (_, manifest) = open_zip(r.body());
    let mut ids: Vec<String> = manifest["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut want = vec![a1.id.to_string(), a2.id.to_string()];
    want.sort();
    assert_eq!(ids, want);
    assert!(!ids.contains(&b1.id.to_string()));

    // Signed out: to the sign-in page, no ZIP.
    let r = w.send(w.anon("GET", "/recordings.zip")).await;
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn the_timeline_marks_the_paused_stretches_and_says_them_in_words() {
    use callrec_model::SegmentKind::{Pause, Resume};
    let mut w = World::new();
    set_password(&w, &w.alice);
    let alice = w.alice.user.clone();
    // 20 s: paused from 4 s to 9 s, and again from 15 s to the end.
    let rec = w.record_segments(
        &alice,
        t0(),
        20_000,
        &[(Pause, 4_000), (Resume, 9_000), (Pause, 15_000)],
    );
    let plain = w.record_segments(&alice, t0() + chrono::Duration::hours(1), 20_000, &[]);
    let cookie = session(&w, &w.alice).await;

    let html = body(&get(&w, &cookie, &format!("/recordings/{}", rec.id)).await);
    assert!(
        html.contains("<rect class=\"paused\" x=\"200\" y=\"0\" width=\"250\""),
        "4–9 s of 20 s: {html}"
    );
    assert!(
        html.contains("<rect class=\"paused\" x=\"750\" y=\"0\" width=\"250\""),
        "15 s to the end: {html}"
    );
    assert!(
        html.contains("<li>Paused from 0:04 to 0:09 (0:05)</li>"),
        "{html}"
    );
    assert!(
        html.contains("<li>Paused from 0:15 to 0:20 (0:05)</li>"),
        "{html}"
    );
    assert!(html.contains("paused 2 times"), "{html}");
    // Without JavaScript the audio element still plays; the script only adds buttons.
    assert!(html.contains("<audio controls"));
    assert!(html.contains("<script src=\"/assets/player.js\" defer></script>"));
    assert!(html.contains("id=\"player-controls\" hidden"));

    let html = body(&get(&w, &cookie, &format!("/recordings/{}", plain.id)).await);
    assert!(!html.contains("class=\"paused\" x="), "{html}");
    assert!(html.contains("never paused"));
}

#[tokio::test]
async fn the_player_script_is_served_as_javascript_and_the_csp_allows_it() {
    let w = World::new();
    let r = w.send(w.anon("GET", "/assets/player.js")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
    assert!(body(&r).contains("playbackRate"));
    assert!(callrec_api::portal::CONTENT_SECURITY_POLICY.contains("script-src 'self'"));
}

#[tokio::test]
async fn the_calls_page_lists_my_live_calls_and_pause_goes_through_the_daemon() {
    let w = World::new();
    set_password(&w, &w.alice);
    set_password(&w, &w.admin);
    let (alice, bob) = (w.alice.user.clone(), w.bob.user.clone());
    w.live_call(&alice, "call-alice", RecordingMode::AlwaysPausable);
    w.live_call(&bob, "call-bob", RecordingMode::AlwaysPausable);
    let cookie = session(&w, &w.alice).await;

    let r = get(&w, &cookie, "/calls").await;
    assert_eq!(r.status(), 200);
    let html = body(&r);
    assert!(
        html.contains("action=\"/calls/call-alice/pause\""),
        "{html}"
    );
    assert!(
        !html.contains("call-bob"),
        "a user sees only their own calls"
    );
    assert!(html.contains("Recording</span>"));
    assert!(html.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"));
    let csrf = csrf_of(&html);

    // Without the token nothing reaches the daemon.
    let r = post(&w, &cookie, "/calls/call-alice/pause", &[]).await;
    assert_eq!(r.status(), 403);
    assert!(w.daemon.actions.lock().unwrap().is_empty());
    // Another user's call is not there for her.
    let r = post(&w, &cookie, "/calls/call-bob/pause", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 404);
    assert!(w.daemon.actions.lock().unwrap().is_empty());

    let r = post(&w, &cookie, "/calls/call-alice/pause", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 303, "{}", body(&r));
    assert_eq!(header(&r, "location"), Some("/calls?done=pause"));
    {
        let asked = w.daemon.actions.lock().unwrap();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].call_uuid, "call-alice");
        assert_eq!(asked[0].action, callrec_model::RecordingAction::Pause);
        assert_eq!(asked[0].actor, "1001@default");
    }
    let html = body(&get(&w, &cookie, "/calls?done=pause").await);
    assert!(html.contains("Recording paused."), "{html}");
    assert!(
        html.contains("action=\"/calls/call-alice/resume\""),
        "{html}"
    );

    // The admin sees the site's calls.
    let admin = admin_session(&w).await;
    let html = body(&get(&w, &admin, "/calls").await);
    assert!(
        html.contains("call-alice") && html.contains("call-bob"),
        "{html}"
    );
}

#[tokio::test]
async fn pausing_in_mode_always_is_refused_with_the_reason_on_the_page() {
    let w = World::new();
    set_password(&w, &w.alice);
    let alice = w.alice.user.clone();
    w.live_call(&alice, "call-always", RecordingMode::Always);
    let cookie = session(&w, &w.alice).await;
    let csrf = csrf_of(&body(&get(&w, &cookie, "/calls").await));

    let r = post(&w, &cookie, "/calls/call-always/pause", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 409);
    let html = body(&r);
    assert!(html.contains("role=\"alert\""), "{html}");
    assert!(html.contains("Not done:"), "{html}");
    assert!(html.contains("always"), "the mode is named: {html}");
    // Still recording: the page offers Pause again, not Resume.
    assert!(
        html.contains("action=\"/calls/call-always/pause\""),
        "{html}"
    );
}

#[tokio::test]
async fn the_calls_events_send_the_list_at_once_and_strangers_get_none() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = World::new();
    set_password(&w, &w.alice);
    let alice = w.alice.user.clone();
    w.live_call(&alice, "call-live", RecordingMode::AlwaysPausable);
    let cookie = session(&w, &w.alice).await;

    let r = w.send(w.anon("GET", "/calls/events")).await;
    assert_eq!(r.status(), 401);

    // The stream never ends by itself, so it is read from a real socket.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(callrec_api::serve(
        listener,
        w.state.clone(),
        std::future::pending::<()>(),
    ));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET /calls/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\
             Cookie: callrec_session={cookie}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the stream closed");
            got.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&got).contains("call-live/pause") {
                break;
            }
        }
    })
    .await;
    server.abort();
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(read.is_ok(), "no event within 10 s: {text}");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{text}"
    );
    assert!(text.contains("event:calls"), "{text}");
    assert!(text.contains("data:"), "{text}");
}
