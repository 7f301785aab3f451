//! Every read and change through the API leaves exactly one audit entry naming who did what
//! to what: listing, reading metadata, playing and downloading first (SPEC §4.5), then every
//! other route. Health, readiness, metrics and the document leave none. A recording action
//! on a call in progress is the exception that proves it: its one entry is the daemon's.

mod support;

use callrec_model::RecordingMode;
use serde_json::{Value, json};
use support::{Person, World, t0};

/// Send a request and return the audit entries it left.
async fn entries_of(
    w: &World,
    who: &Person,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String, String, String)>) {
    let head = w.audit_head().await;
    let mut req = w.req(who, method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let status = w.send(req).await.status().as_u16();
    let entries = w
        .audit_since(head)
        .await
        .into_iter()
        .map(|e| (e.actor, e.action, e.target, e.detail))
        .collect();
    (status, entries)
}

#[tokio::test]
async fn listing_reading_playing_and_downloading_each_leave_exactly_one_entry() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let (rec, _) = w.record(&alice.user, "1001", "01234567891", t0(), 1000);
    let target = format!("recording:{}", rec.id);

    let (s, e) = entries_of(
        &w,
        &alice,
        "GET",
        "/api/v1/recordings?number=01234567891",
        None,
        &[],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].0.as_str(), e[0].1.as_str(), e[0].2.as_str()),
        ("1001@default", "recording.search", "site:default")
    );
    // The filters are in the entry: who searched for which number.
    assert!(e[0].3.contains("01234567891"), "{}", e[0].3);
    // And so is every recording the reply showed (its parties, times, notes count): a
    // listing reads metadata, and the log must say whose (SPEC §4.5).
    let detail: Value = serde_json::from_str(&e[0].3).unwrap();
    assert_eq!(detail["ids"], json!([rec.id.to_string()]), "{detail}");

    let (s, e) = entries_of(
        &w,
        &alice,
        "GET",
        &format!("/api/v1/recordings/{}", rec.id),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].0.as_str(), e[0].1.as_str(), e[0].2.as_str()),
        ("1001@default", "recording.read", target.as_str())
    );

    let (s, e) = entries_of(
        &w,
        &alice,
        "GET",
        &format!("/api/v1/recordings/{}/audio", rec.id),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].0.as_str(), e[0].1.as_str(), e[0].2.as_str()),
        ("1001@default", "recording.play", target.as_str())
    );
    let size = rec.size_bytes.unwrap();
    let detail: Value = serde_json::from_str(&e[0].3).unwrap();
    assert_eq!(detail, json!({"status": 200, "range": null, "bytes": size}));

    // A seek in the player is a request of its own, and an entry of its own that says so.
    let (s, e) = entries_of(
        &w,
        &alice,
        "GET",
        &format!("/api/v1/recordings/{}/audio", rec.id),
        None,
        &[("range", "bytes=100-")],
    )
    .await;
    assert_eq!(s, 206);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].1, "recording.play");
    let detail: Value = serde_json::from_str(&e[0].3).unwrap();
    assert_eq!(
        detail,
        json!({"status": 206, "range": "bytes=100-", "bytes": size - 100})
    );

    // A refused range is audited as refused: nothing of the file was sent.
    let (s, e) = entries_of(
        &w,
        &alice,
        "GET",
        &format!("/api/v1/recordings/{}/audio", rec.id),
        None,
        &[("range", "bytes=999999999-")],
    )
    .await;
    assert_eq!(s, 416);
    assert_eq!(e.len(), 1);
    let detail: Value = serde_json::from_str(&e[0].3).unwrap();
    assert_eq!(
        detail,
        json!({"status": 416, "range": "bytes=999999999-", "bytes": 0})
    );

    let admin = w.admin.clone();
    let (s, e) = entries_of(
        &w,
        &admin,
        "GET",
        &format!("/api/v1/recordings/{}/audio?download=1", rec.id),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].0.as_str(), e[0].1.as_str(), e[0].2.as_str()),
        ("9000@default", "recording.download", target.as_str())
    );
}

/// (who, method, path, body, expected action, expected target)
type Case<'a> = (
    &'a Person,
    &'static str,
    String,
    Option<Value>,
    &'static str,
    String,
);

#[tokio::test]
async fn a_batch_read_leaves_one_read_entry_per_recording_shown_and_shows_what_a_single_read_does()
{
    let mut w = World::new();
    let alice = w.alice.clone();
    let bob = w.bob.clone();
    let (mine, _) = w.record(&alice.user, "1001", "01234567891", t0(), 1000);
    let (also_mine, _) = w.record(
        &alice.user,
        "1001",
        "01234567892",
        t0() + chrono::Duration::minutes(1),
        1000,
    );
    let (bobs, _) = w.record(
        &bob.user,
        "1002",
        "01234567893",
        t0() + chrono::Duration::minutes(2),
        1000,
    );
    let ids = json!({"ids": [also_mine.id.to_string(), bobs.id.to_string(), mine.id.to_string()]});

    let head = w.audit_head().await;
    let (s, batch) = w
        .json(
            w.req(&alice, "POST", "/api/v1/archive/recordings")
                .json(&ids),
        )
        .await;
    assert_eq!(s, 200, "{batch}");
    let entries: Vec<(String, String, String)> = w
        .audit_since(head)
        .await
        .into_iter()
        .map(|e| (e.actor, e.action, e.target))
        .collect();
    let read = |id: &callrec_model::RecordingId| {
        (
            "1001@default".to_owned(),
            "recording.read".to_owned(),
            format!("recording:{id}"),
        )
    };
    // Hers, in the order asked, each as `GET /recordings/{id}` gives it; bob's left out,
    // and neither read nor echoed.
    assert_eq!(entries, [read(&also_mine.id), read(&mine.id)]);
    let (_, single) = w
        .json(w.req(&alice, "GET", &format!("/api/v1/recordings/{}", mine.id)))
        .await;
    assert_eq!(batch["items"][1], single);
    assert_eq!(batch["items"].as_array().map(Vec::len), Some(2));
    assert!(!batch.to_string().contains(&bobs.id.to_string()), "{batch}");

    // None, too many, or a bad id: 422, and nothing read.
    let head = w.audit_head().await;
    let too_many: Vec<String> = (0..=callrec_store::MAX_BATCH_READ)
        .map(|_| mine.id.to_string())
        .collect();
    for body in [
        json!({"ids": []}),
        json!({"ids": too_many}),
        json!({"ids": [mine.id.to_string(), "not-an-id"]}),
    ] {
        let (s, e) = w
            .json(
                w.req(&alice, "POST", "/api/v1/archive/recordings")
                    .json(&body),
            )
            .await;
        assert_eq!(s, 422, "{e}");
    }
    assert!(w.audit_since(head).await.is_empty());
}

#[tokio::test]
async fn every_other_route_leaves_one_entry_and_the_operational_ones_none() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let admin = w.admin.clone();
    let (rec, _) = w.record(&alice.user, "1001", "01234567891", t0(), 500);
    let (rec2, _) = w.record(&alice.user, "1001", "01234567892", t0(), 500);
    let r = |id: &callrec_model::RecordingId| format!("recording:{id}");

    let cases: Vec<Case> = vec![
        (
            &alice,
            "POST",
            format!("/api/v1/recordings/{}/notes", rec.id),
            Some(json!({"text": "called back"})),
            "recording.note",
            r(&rec.id),
        ),
        (
            &admin,
            "PUT",
            format!("/api/v1/recordings/{}/hold", rec.id),
            Some(json!({"hold": true})),
            "recording.hold",
            r(&rec.id),
        ),
        // The same hold again changes nothing, and still says so once.
        (
            &admin,
            "PUT",
            format!("/api/v1/recordings/{}/hold", rec.id),
            Some(json!({"hold": true})),
            "recording.hold",
            r(&rec.id),
        ),
        (
            &admin,
            "PUT",
            format!("/api/v1/recordings/{}/hold", rec.id),
            Some(json!({"hold": false})),
            "recording.release",
            r(&rec.id),
        ),
        (
            &admin,
            "DELETE",
            format!("/api/v1/recordings/{}?reason=duplicate", rec2.id),
            None,
            "recording.delete",
            r(&rec2.id),
        ),
        (
            &alice,
            "GET",
            "/api/v1/calls".into(),
            None,
            "call.list",
            "site:default".into(),
        ),
        (
            &alice,
            "GET",
            "/api/v1/me".into(),
            None,
            "user.read",
            "user:default/1001".into(),
        ),
        (
            &admin,
            "GET",
            "/api/v1/users".into(),
            None,
            "user.list",
            "site:default".into(),
        ),
        (
            &admin,
            "GET",
            "/api/v1/users/1001".into(),
            None,
            "user.read",
            "user:default/1001".into(),
        ),
        (
            &admin,
            "PUT",
            "/api/v1/users/1001".into(),
            Some(json!({"mode": "on_demand"})),
            "user.set_mode",
            "user:default/1001".into(),
        ),
        (
            &admin,
            "GET",
            "/api/v1/site".into(),
            None,
            "site.read",
            "site:default".into(),
        ),
        (
            &admin,
            "PUT",
            "/api/v1/site".into(),
            Some(json!({"retention_days": 90})),
            "site.update",
            "site:default".into(),
        ),
        (
            &admin,
            "PUT",
            "/api/v1/site".into(),
            Some(json!({"retention_days": 90})),
            "site.update",
            "site:default".into(),
        ),
        (
            &alice,
            "GET",
            "/api/v1/usage".into(),
            None,
            "usage.read",
            "site:default".into(),
        ),
        (
            &admin,
            "GET",
            "/api/v1/audit".into(),
            None,
            "audit.read",
            "site:default".into(),
        ),
    ];
    for (who, method, path, body, action, target) in cases {
        let (s, e) = entries_of(&w, who, method, &path, body, &[]).await;
        assert!(s < 300, "{method} {path}: {s}");
        assert_eq!(e.len(), 1, "{method} {path}: {e:?}");
        assert_eq!(e[0].0, who.actor(), "{method} {path}");
        assert_eq!(e[0].1, action, "{method} {path}");
        assert_eq!(e[0].2, target, "{method} {path}");
    }

    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let (s, e) = entries_of(&w, &alice, "GET", path, None, &[]).await;
        assert_eq!(s, 200);
        assert!(e.is_empty(), "{path}: {e:?}");
    }
}

#[tokio::test]
async fn a_recording_action_is_audited_by_the_daemon_not_twice_by_the_api() {
    // The daemon writes the action's entry with the recording's segment (`recording.pause`
    // by `1001@default`, source `api`: the daemon crate's tests check it against the real
    // daemon). The API only hands it the caller as actor, and adds no entry of its own.
    let w = World::new();
    let alice = w.alice.clone();
    w.live_call(&alice.user, "call-1", RecordingMode::AlwaysPausable);
    for action in ["pause", "resume", "stop", "start"] {
        let path = format!("/api/v1/calls/call-1/recording/{action}");
        let (s, e) = entries_of(&w, &alice, "POST", &path, None, &[]).await;
        assert_eq!(s, 200, "{path}");
        assert!(e.is_empty(), "{path}: {e:?}");
    }
    let asked = w.daemon.actions.lock().unwrap().clone();
    assert_eq!(asked.len(), 4);
    assert!(asked.iter().all(|a| a.actor == alice.actor()), "{asked:?}");
}

#[tokio::test]
async fn the_audit_log_pages_backwards_and_shows_only_the_admins_site() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let (rec, _) = w.record(&alice.user, "1001", "01234567891", t0(), 300);
    for _ in 0..5 {
        let (s, _) = w
            .json(w.req(&alice, "GET", &format!("/api/v1/recordings/{}", rec.id)))
            .await;
        assert_eq!(s, 200);
    }
    let mut seqs = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/v1/audit?limit=3&before={b}"),
            None => "/api/v1/audit?limit=3".to_owned(),
        };
        let (s, page) = w.json(w.req(&w.admin, "GET", &path)).await;
        assert_eq!(s, 200, "{page}");
        for e in page["entries"].as_array().unwrap() {
            seqs.push(e["seq"].as_i64().unwrap());
            assert_ne!(e["site_id"], json!(w.stranger.user.site_id.0));
        }
        match page["next_before"].as_i64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert!(
        seqs.windows(2).all(|p| p[0] > p[1]),
        "newest first, no repeats: {seqs:?}"
    );
    // The other site's admin sees none of it.
    let (_, page) = w
        .json(w.req(&w.stranger, "GET", "/api/v1/audit?limit=500"))
        .await;
    let text = page.to_string();
    assert!(!text.contains("1001@default"), "{text}");
}
