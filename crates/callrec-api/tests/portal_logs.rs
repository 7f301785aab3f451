//! The admin's record-keeping pages of the portal: the audit log (`/audit`) and the archive
//! clients (`/archive`). Who may open them, what they show (escaped), and the audit log's
//! filters and pages, through the same routes the server serves, in-process.

mod support;

use bytes::Bytes;
use callrec_store::{PortalPolicy, SignIn, SignInAttempt};
use serde_json::json;
use support::{Person, World, t0};
use warp::http::Response;

const PASSWORD: &str = "correct horse battery";

/// A session cookie of `who` (password set, signed in through the store, as the sign-in
/// form does).
async fn session(w: &World, who: &Person) -> String {
    let (site, ext) = (who.user.site.clone(), who.user.extension.clone());
    let outcome = w
        .store
        .write(move |s| {
            s.set_password(&site, &ext, PASSWORD, "test")?;
            s.sign_in(
                &SignInAttempt {
                    account: format!("{ext}@{site}"),
                    password: PASSWORD.into(),
                    address: "192.0.2.1".into(),
                },
                &PortalPolicy::default(),
            )
        })
        .await
        .unwrap();
    match outcome {
        SignIn::Granted(s) => s.secret,
        other => panic!("sign-in refused: {other:?}"),
    }
}

async fn get(w: &World, cookie: &str, path: &str) -> Response<Bytes> {
    w.send(
        w.anon("GET", path)
            .header("cookie", format!("callrec_session={cookie}")),
    )
    .await
}

fn body(r: &Response<Bytes>) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

/// The entries of an audit page, by their `<tr id="entry-N">`.
fn entries(html: &str) -> Vec<i64> {
    html.match_indices("<tr id=\"entry-")
        .map(|(at, m)| {
            let rest = &html[at + m.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

/// The href of the link whose text is `text`.
fn link(html: &str, text: &str) -> Option<String> {
    let end = html.find(&format!("\">{text}</a>"))?;
    let start = html[..end].rfind("href=\"")? + "href=\"".len();
    Some(html[start..end].replace("&amp;", "&").replace("&#38;", "&"))
}

#[tokio::test]
async fn only_an_admin_opens_the_audit_log_and_archive_pages_and_strangers_sign_in_first() {
    let w = World::new();
    let alice = session(&w, &w.alice).await;
    let admin = session(&w, &w.admin).await;
    for path in ["/audit", "/archive"] {
        let r = w.send(w.anon("GET", path)).await;
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(
            r.headers()["location"],
            format!("/signin?next=%2F{}", &path[1..]),
            "back to {path} after signing in"
        );
        let r = get(&w, "0".repeat(64).as_str(), path).await;
        assert_eq!(r.status(), 303, "a made-up session: {path}");
        let r = get(&w, &alice, path).await;
        assert_eq!(r.status(), 403, "{path}");
        assert!(body(&r).contains("only an administrator"), "{path}");
        assert!(!body(&r).contains("<table"), "{path}: nothing listed");
        let r = get(&w, &admin, path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers()["content-security-policy"],
            callrec_api::portal::CONTENT_SECURITY_POLICY
        );
    }
    // The admin's navigation links both pages; a user's does not.
    let html = body(&get(&w, &admin, "/recordings").await);
    assert!(html.contains("href=\"/audit\"") && html.contains("href=\"/archive\""));
    let html = body(&get(&w, &alice, "/recordings").await);
    assert!(!html.contains("href=\"/audit\"") && !html.contains("href=\"/archive\""));
}

#[tokio::test]
async fn the_audit_log_shows_who_listened_downloaded_and_changed_what_on_this_site_only() {
    let mut w = World::new();
    let (rec, _) = w.record(&w.alice.user.clone(), "1001", "01234567890", t0(), 1_000);
    let (other_rec, _) = w.record(&w.stranger.user.clone(), "9000", "01632960000", t0(), 1_000);
    let id = rec.id.to_string();
    // Alice plays and downloads her recording and notes it; the other site's admin reads
    // their own.
    for path in [
        format!("/api/v1/recordings/{id}/audio"),
        format!("/api/v1/recordings/{id}/audio?download=1"),
    ] {
        assert_eq!(w.send(w.req(&w.alice, "GET", &path)).await.status(), 200);
    }
    let (s, _) = w
        .json(
            w.req(&w.alice, "POST", &format!("/api/v1/recordings/{id}/notes"))
                .json(&json!({"text": "<script>alert('note')</script> called back"})),
        )
        .await;
    assert_eq!(s, 201);
    let other_path = format!("/api/v1/recordings/{}", other_rec.id);
    assert_eq!(
        w.send(w.req(&w.stranger, "GET", &other_path))
            .await
            .status(),
        200
    );

    let admin = session(&w, &w.admin).await;
    let r = get(&w, &admin, "/audit").await;
    assert_eq!(r.status(), 200);
    let html = body(&r);
    assert!(html.contains("listened to a recording"), "{html}");
    assert!(html.contains("downloaded a recording"));
    assert!(html.contains("added a note"));
    assert!(html.contains(">1001@default</td>"), "{html}");
    assert!(html.contains(&format!("<a href=\"/recordings/{id}\">{id}</a>")));
    assert!(html.contains("Times are in UTC"));
    // The note's text is in the entry's detail, as text.
    assert!(!html.contains("<script>alert('note')"), "{html}");
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
    // Nothing of the other site.
    assert!(!html.contains(&other_rec.id.to_string()));
    assert!(!html.contains("@other"));
    // Newest first.
    let seqs = entries(&html);
    assert!(seqs.windows(2).all(|p| p[0] > p[1]), "{seqs:?}");

    // Reading the log is itself in the log.
    let seen = w.audit_since(0).await;
    let read = seen.last().unwrap();
    assert_eq!(
        (read.action.as_str(), read.actor.as_str()),
        ("audit.read", "9000@default")
    );
    assert!(
        read.detail.contains("\"via\":\"portal\""),
        "{}",
        read.detail
    );
}

#[tokio::test]
async fn the_audit_log_filters_by_who_action_recording_and_dates_and_pages_back() {
    let mut w = World::new();
    let alice_user = w.alice.user.clone();
    let bob_user = w.bob.user.clone();
    let (a, _) = w.record(&alice_user, "1001", "01234567890", t0(), 1_000);
    let (b, _) = w.record(&bob_user, "1002", "01234567891", t0(), 1_000);
    for _ in 0..3 {
        let path = format!("/api/v1/recordings/{}/audio", a.id);
        assert_eq!(w.send(w.req(&w.alice, "GET", &path)).await.status(), 200);
    }
    let path = format!("/api/v1/recordings/{}/audio?download=1", b.id);
    assert_eq!(w.send(w.req(&w.bob, "GET", &path)).await.status(), 200);
    let admin = session(&w, &w.admin).await;
    let all = w.audit_since(0).await;
    let of = |pred: &dyn Fn(&callrec_store::AuditEntry) -> bool| -> Vec<i64> {
        let mut v: Vec<i64> = all.iter().filter(|e| pred(e)).map(|e| e.seq).collect();
        v.reverse();
        v
    };

    // Who: an extension alone is this site's user.
    let html = body(&get(&w, &admin, "/audit?actor=1002").await);
    assert_eq!(entries(&html), of(&|e| e.actor == "1002@default"), "{html}");
    assert!(!entries(&html).is_empty());
    // Action.
    let html = body(&get(&w, &admin, "/audit?action=recording.play").await);
    assert_eq!(entries(&html), of(&|e| e.action == "recording.play"));
    assert_eq!(entries(&html).len(), 3);
    assert!(html.contains("<option value=\"recording.play\" selected>"));
    // Recording: everything about b (its creation, storing, bob's download).
    let html = body(&get(&w, &admin, &format!("/audit?recording={}", b.id)).await);
    let about_b = of(&|e| e.target == format!("recording:{}", b.id));
    assert_eq!(entries(&html), about_b);
    assert!(about_b.len() >= 2);
    // Combined.
    let html = body(
        &get(
            &w,
            &admin,
            &format!("/audit?actor=1001&action=recording.play&recording={}", b.id),
        )
        .await,
    );
    assert!(entries(&html).is_empty());
    assert!(html.contains("No entries match this filter."));
    // Dates, as days of the site's zone: today's entries are all of them; none tomorrow.
    let today = chrono::Utc::now().date_naive();
    let (yesterday, tomorrow) = (today.pred_opt().unwrap(), today.succ_opt().unwrap());
    let html = body(
        &get(
            &w,
            &admin,
            &format!("/audit?since={yesterday}&until={tomorrow}&action=recording.play"),
        )
        .await,
    );
    assert_eq!(entries(&html).len(), 3);
    let html = body(&get(&w, &admin, &format!("/audit?since={tomorrow}")).await);
    assert!(entries(&html).is_empty());
    // A bad filter says what is wrong and lists nothing.
    let r = get(&w, &admin, "/audit?recording=..%2Fetc%2Fpasswd").await;
    assert_eq!(r.status(), 400);
    assert!(body(&r).contains("is not a recording id"));
    let r = get(&w, &admin, "/audit?since=yesterday").await;
    assert_eq!(r.status(), 400);

    // Pages: 50 entries each, "Older entries" until the first.
    for _ in 0..60 {
        let path = format!("/api/v1/recordings/{}", a.id);
        assert_eq!(w.send(w.req(&w.alice, "GET", &path)).await.status(), 200);
    }
    let want = {
        let mut v: Vec<i64> = w
            .audit_since(0)
            .await
            .into_iter()
            .filter(|e| e.action == "recording.read" && e.site_id == Some(alice_user.site_id))
            .map(|e| e.seq)
            .collect();
        v.reverse();
        v
    };
    assert_eq!(want.len(), 60);
    let first = body(&get(&w, &admin, "/audit?action=recording.read").await);
    assert_eq!(entries(&first), want[..50]);
    let next = link(&first, "Older entries").expect("a link to older entries");
    assert!(next.contains("action=recording.read"), "{next}");
    let second = body(&get(&w, &admin, &next).await);
    assert_eq!(entries(&second), want[50..]);
    assert!(link(&second, "Older entries").is_none());
    assert_eq!(
        link(&second, "Newest entries").as_deref(),
        Some("/audit?action=recording.read")
    );
}

#[tokio::test]
async fn the_archive_page_lists_each_clients_last_run_with_its_errors_as_text() {
    let w = World::new();
    let admin = session(&w, &w.admin).await;
    let html = body(&get(&w, &admin, "/archive").await);
    assert!(html.contains("No archive client has reported a run yet."));

    let run = |client: &str, downloaded: u64, failed: u64, errors: Vec<&str>, minute: u32| {
        json!({
            "client": client,
            "started_at": format!("2024-05-01T10:{minute:02}:00Z"),
            "finished_at": format!("2024-05-01T10:{:02}:30Z", minute),
            "downloaded": downloaded, "skipped": 4, "failed": failed,
            "bytes": 3 * 1024 * 1024, "last_seq": 40 + minute, "errors": errors,
        })
    };
    for body in [
        run("nas-1", 10, 0, vec![], 0),
        run("nas-1", 7, 1, vec!["<b>hash mismatch</b> for 0193…"], 5),
        run("<img src=x onerror=alert(1)>", 1, 0, vec![], 7),
    ] {
        let (s, _) = w
            .json(w.req(&w.admin, "POST", "/api/v1/archive/runs").json(&body))
            .await;
        assert_eq!(s, 201);
    }
    // The other site's client is not this site's.
    let (s, _) = w
        .json(
            w.req(&w.stranger, "POST", "/api/v1/archive/runs")
                .json(&run("elsewhere", 1, 0, vec![], 1)),
        )
        .await;
    assert_eq!(s, 201);

    let html = body(&get(&w, &admin, "/archive").await);
    // nas-1's last run: 7 downloaded, 1 failed with its error, 3.0 MiB, change 45, 2 runs.
    assert!(html.contains("<td>nas-1</td>"), "{html}");
    assert!(html.contains("<td>7</td>") && html.contains("<td>45</td>"));
    assert!(html.contains("<td>2</td>"), "two runs");
    assert!(html.contains("3.0 MiB"));
    assert!(
        html.contains("2024-05-01 10:05:30 UTC"),
        "finished, in the site's zone"
    );
    assert!(html.contains("1 error"));
    assert!(!html.contains("<b>hash mismatch</b>") && html.contains("hash mismatch"));
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(!html.contains("elsewhere"));
    let log = w.audit_since(0).await;
    let listed = log.last().unwrap();
    assert_eq!(listed.action, "archive.list");
    assert!(listed.detail.contains("\"clients\":2"), "{}", listed.detail);
}
