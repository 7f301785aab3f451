//! The authorisation matrix: every endpoint asked by no token, a made-up token, a revoked
//! token, user A (alice), user B (bob), the admin of another site (stranger) and the admin of
//! A's site, with the status each must get; and nothing of A's ever in a reply to B or to
//! the stranger.

mod support;

use callrec_model::RecordingMode;
use callrec_store::Access;
use serde_json::{Value, json};
use support::{World, error_code, t0};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Nobody,
    BadToken,
    Revoked,
    Alice,
    Bob,
    Stranger,
    Admin,
}

const EVERYONE: [Who; 7] = [
    Who::Nobody,
    Who::BadToken,
    Who::Revoked,
    Who::Alice,
    Who::Bob,
    Who::Stranger,
    Who::Admin,
];

struct Case {
    method: &'static str,
    /// The path; `{who}` cases may differ per caller (e.g. which action).
    path: fn(&Ids, Who) -> String,
    body: Option<Value>,
    /// Expected status for each of [`EVERYONE`], in order.
    expect: [u16; 7],
}

struct Ids {
    alice_rec: String,
    alice_rec_to_delete: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_each_caller_as_its_role_allows_and_never_leaks_a_to_b() {
    let mut w = World::new();
    let (alice_rec, _) = w.record(
        &w.alice.user.clone(),
        "02079460001",
        "01632960001",
        t0(),
        1000,
    );
    let (alice_del, _) = w.record(
        &w.alice.user.clone(),
        "02079460001",
        "01632960011",
        t0() + chrono::Duration::minutes(1),
        1000,
    );
    let (bob_rec, _) = w.record(
        &w.bob.user.clone(),
        "02079460002",
        "01632960002",
        t0() + chrono::Duration::minutes(2),
        1000,
    );
    let seeded = w
        .store
        .write_blocking(|s| {
            s.add_webhook(
                "https://hooks.example/seeded",
                "0123456789abcdef",
                &callrec_store::Access {
                    actor: "admin".into(),
                    scope: callrec_store::Scope::Site(w.admin.user.site_id),
                },
            )
        })
        .unwrap();
    assert_eq!(seeded.id, 1);
    let alice_note = "alice-secret-note about a card number";
    let (s, _) = w
        .json(
            w.req(
                &w.alice,
                "POST",
                &format!("/api/v1/recordings/{}/notes", alice_rec.id),
            )
            .json(&json!({"text": alice_note})),
        )
        .await;
    assert_eq!(s, 201);
    w.live_call(
        &w.alice.user.clone(),
        "call-alice",
        RecordingMode::AlwaysPausable,
    );
    w.live_call(
        &w.bob.user.clone(),
        "call-bob",
        RecordingMode::AlwaysPausable,
    );

    // A revoked token of alice's.
    let alice_id = w.alice.user.id;
    let revoked = w
        .store
        .write(move |s| {
            let t = s.create_token(alice_id, "old laptop", &Access::system("test"))?;
            s.revoke_token(t.id, &Access::system("test"))?;
            Ok(t.secret)
        })
        .await
        .unwrap();

    let ids = Ids {
        alice_rec: alice_rec.id.to_string(),
        alice_rec_to_delete: alice_del.id.to_string(),
    };
    // Everything of alice's that must never reach bob or the stranger.
    let alice_marks: Vec<String> = vec![
        alice_rec.id.to_string(),
        alice_del.id.to_string(),
        alice_rec.sha256.clone().unwrap(),
        alice_rec.file_name.clone(),
        "+442079460001".into(),
        "02079460001".into(),
        "+441632960001".into(),
        alice_note.into(),
        "call-alice".into(),
    ];
    let bob_marks: Vec<String> = vec![
        bob_rec.id.to_string(),
        "+442079460002".into(),
        "call-bob".into(),
    ];

    const N: u16 = 401;
    let cases: Vec<Case> = vec![
        Case {
            method: "GET",
            path: |_, _| "/api/v1/recordings".into(),
            body: None,
            expect: [N, N, N, 200, 200, 200, 200],
        },
        Case {
            method: "GET",
            path: |i, _| format!("/api/v1/recordings/{}", i.alice_rec),
            body: None,
            expect: [N, N, N, 200, 404, 404, 200],
        },
        Case {
            method: "GET",
            path: |i, _| format!("/api/v1/recordings/{}/audio", i.alice_rec),
            body: None,
            expect: [N, N, N, 200, 404, 404, 200],
        },
        Case {
            method: "GET",
            path: |i, _| format!("/api/v1/recordings/{}/audio?download=1", i.alice_rec),
            body: None,
            expect: [N, N, N, 200, 404, 404, 200],
        },
        Case {
            method: "POST",
            path: |i, _| format!("/api/v1/recordings/{}/notes", i.alice_rec),
            body: Some(json!({"text": "called back"})),
            expect: [N, N, N, 201, 404, 404, 201],
        },
        Case {
            method: "PUT",
            path: |i, _| format!("/api/v1/recordings/{}/hold", i.alice_rec),
            body: Some(json!({"hold": true})),
            expect: [N, N, N, 403, 403, 404, 200],
        },
        Case {
            // A dry run: an admin sees what their site holds; the other site's admin finds
            // nothing of alice's in theirs.
            method: "POST",
            path: |_, _| "/api/v1/erasures".into(),
            body: Some(json!({"number": "01632960011", "reason": "SAR", "dry_run": true})),
            expect: [N, N, N, 403, 403, 200, 200],
        },
        Case {
            method: "DELETE",
            path: |i, _| format!("/api/v1/recordings/{}", i.alice_rec_to_delete),
            body: None,
            expect: [N, N, N, 403, 403, 404, 200],
        },
        Case {
            method: "GET",
            path: |_, _| "/api/v1/calls".into(),
            body: None,
            expect: [N, N, N, 200, 200, 200, 200],
        },
        Case {
            method: "POST",
            // Alice pauses her call; the admin then resumes it; the others try to resume.
            path: |_, who| {
                let action = if who == Who::Alice { "pause" } else { "resume" };
                format!("/api/v1/calls/call-alice/recording/{action}")
            },
            body: None,
            expect: [N, N, N, 200, 404, 404, 200],
        },
        Case {
            method: "GET",
            path: |_, _| "/api/v1/me".into(),
            body: None,
            expect: [N, N, N, 200, 200, 200, 200],
        },
        Case {
            method: "GET",
            path: |_, _| "/api/v1/users".into(),
            body: None,
            expect: [N, N, N, 403, 403, 200, 200],
        },
        Case {
            method: "GET",
            path: |_, _| "/api/v1/users/1001".into(),
            body: None,
            expect: [N, N, N, 403, 403, 404, 200],
        },
        Case {
            method: "PUT",
            path: |_, _| "/api/v1/users/1001".into(),
            body: Some(json!({"mode": "on_demand"})),
            expect: [N, N, N, 403, 403, 404, 200],
        },
        Case {
            method: "GET",
            path: |_, _| "/api/v1/site".into(),
            body: None,
            expect: [N, N, N, 403, 403, 200, 200],
        },
        Case {
            method: "PUT",
            path: |_, _| "/api/v1/site".into(),
            body: Some(json!({"retention_days": 365})),
            expect: [N, N, N, 403, 403, 200, 200],
        },
        Case {
            method: "GET",
            path: |_, _| "/api/v1/usage".into(),
            body: None,
            expect: [N, N, N, 200, 200, 200, 200],
        },
        Case {
            // The feed carries recording ids: each follower sees its own only.
            method: "GET",
            path: |_, _| "/api/v1/changes".into(),
            body: None,
            expect: [N, N, N, 200, 200, 200, 200],
        },
        Case {
            // The ZIP holds each caller's own recordings (the scan below reads it).
            method: "GET",
            path: |_, _| "/api/v1/recordings/export.zip".into(),
            body: None,
            expect: [N, N, N, 200, 200, 200, 200],
        },
        Case {
            method: "POST",
            path: |_, _| "/api/v1/archive/runs".into(),
            body: Some(json!({
                "client": "nas", "started_at": "2024-05-01T10:00:00Z",
                "finished_at": "2024-05-01T10:01:00Z", "downloaded": 1, "skipped": 0,
                "failed": 0, "bytes": 1000, "last_seq": 3
            })),
            expect: [N, N, N, 201, 201, 201, 201],
        },
        Case {
            // Alice's recording, asked for by each: bob and the stranger get an empty list
            // (the id is not echoed back), alice and her admin the recording.
            method: "POST",
            path: |_, _| "/api/v1/archive/recordings".into(),
            body: Some(json!({"ids": [ids.alice_rec.clone()]})),
            expect: [N, N, N, 200, 200, 200, 200],
        },
        Case {
            method: "GET",
            path: |_, _| "/api/v1/archive/runs".into(),
            body: None,
            expect: [N, N, N, 403, 403, 200, 200],
        },
        Case {
            // A subject access export: each admin gets what their own site holds.
            method: "POST",
            path: |_, _| "/api/v1/exports".into(),
            body: Some(json!({"number": "01632960011", "reason": "SAR"})),
            expect: [N, N, N, 403, 403, 200, 200],
        },
        Case {
            method: "GET",
            path: |_, _| "/api/v1/webhooks".into(),
            body: None,
            expect: [N, N, N, 403, 403, 200, 200],
        },
        Case {
            // Each site's admin adds the same URL for their own site.
            method: "POST",
            path: |_, _| "/api/v1/webhooks".into(),
            body: Some(json!({"url": "https://hooks.example/x", "secret": "0123456789abcdef"})),
            expect: [N, N, N, 403, 403, 201, 201],
        },
        Case {
            // The default site's endpoint (seeded): the other site's admin cannot see it.
            method: "DELETE",
            path: |_, _| "/api/v1/webhooks/1".into(),
            body: None,
            expect: [N, N, N, 403, 403, 404, 204],
        },
        Case {
            method: "GET",
            path: |_, _| "/api/v1/audit".into(),
            body: None,
            expect: [N, N, N, 403, 403, 200, 200],
        },
        Case {
            method: "GET",
            path: |_, _| "/healthz".into(),
            body: None,
            expect: [200; 7],
        },
        Case {
            method: "GET",
            path: |_, _| "/readyz".into(),
            body: None,
            expect: [200; 7],
        },
        Case {
            method: "GET",
            path: |_, _| "/metrics".into(),
            body: None,
            expect: [200; 7],
        },
        Case {
            method: "GET",
            path: |_, _| "/openapi.json".into(),
            body: None,
            expect: [200; 7],
        },
    ];

    // Every route of the OpenAPI document is in the matrix.
    let doc = callrec_api::openapi_document();
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    let mut covered: Vec<String> = cases
        .iter()
        .map(|c| {
            let p = (c.path)(&ids, Who::Admin);
            let p = p.split('?').next().unwrap().to_owned();
            let p = p
                .replace(&ids.alice_rec, "{id}")
                .replace(&ids.alice_rec_to_delete, "{id}")
                .replace("call-alice", "{uuid}")
                .replace("/resume", "/{action}")
                .replace("/1001", "/{extension}")
                .replace("/webhooks/1", "/webhooks/{id}");
            format!("{} {p}", c.method)
        })
        .collect();
    covered.sort();
    covered.dedup();
    assert_eq!(
        covered, documented,
        "the matrix must cover every documented route"
    );

    let mut failures = Vec::new();
    let mut to_bob = String::new();
    let mut to_stranger = String::new();
    for case in &cases {
        for (i, who) in EVERYONE.iter().enumerate() {
            let path = (case.path)(&ids, *who);
            let mut req = match who {
                Who::Nobody => w.anon(case.method, &path),
                Who::BadToken => w
                    .anon(case.method, &path)
                    .header("authorization", "Bearer callrec_0000000000000000"),
                Who::Revoked => w
                    .anon(case.method, &path)
                    .header("authorization", format!("Bearer {revoked}")),
                Who::Alice => w.req(&w.alice, case.method, &path),
                Who::Bob => w.req(&w.bob, case.method, &path),
                Who::Stranger => w.req(&w.stranger, case.method, &path),
                Who::Admin => w.req(&w.admin, case.method, &path),
            };
            if let Some(body) = &case.body {
                req = req.json(body);
            }
            let resp = w.send(req).await;
            let status = resp.status().as_u16();
            let text = String::from_utf8_lossy(resp.body()).into_owned();
            // An error may echo what the caller asked for (an id in the path); that is not
            // a leak, so it is blanked before the scan.
            let mut scanned = text.clone();
            for mark in alice_marks.iter().filter(|m| path.contains(m.as_str())) {
                scanned = scanned.replace(mark.as_str(), "<asked>");
            }
            if status != case.expect[i] {
                failures.push(format!(
                    "{} {path} as {who:?}: {status} (expected {}) {}",
                    case.method,
                    case.expect[i],
                    text.chars().take(200).collect::<String>()
                ));
            }
            if status >= 400 {
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                error_code(&body);
            }
            if status == 401 {
                assert_eq!(resp.headers()["www-authenticate"], "Bearer");
            }
            match who {
                Who::Bob => to_bob.push_str(&scanned),
                Who::Stranger => to_stranger.push_str(&scanned),
                _ => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    for mark in &alice_marks {
        assert!(
            !to_bob.contains(mark.as_str()),
            "bob was shown alice's {mark}"
        );
        assert!(
            !to_stranger.contains(mark.as_str()),
            "the other site's admin was shown {mark}"
        );
    }
    for mark in &bob_marks {
        assert!(
            !to_stranger.contains(mark.as_str()),
            "the other site's admin was shown {mark}"
        );
    }
    // And bob did see his own, so the replies scanned were real ones.
    assert!(to_bob.contains(&bob_rec.id.to_string()));
    assert!(to_bob.contains("call-bob"));
}

#[tokio::test]
async fn a_user_sees_only_their_own_recordings_calls_and_usage_and_an_admin_the_site() {
    let mut w = World::new();
    let (a, _) = w.record(&w.alice.user.clone(), "1001", "01632960001", t0(), 500);
    let (b, _) = w.record(
        &w.bob.user.clone(),
        "1002",
        "01632960002",
        t0() + chrono::Duration::seconds(1),
        500,
    );
    w.live_call(&w.alice.user.clone(), "call-a", RecordingMode::Always);
    w.live_call(&w.bob.user.clone(), "call-b", RecordingMode::Always);

    let ids = |v: &Value, key: &str| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i[key].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, page) = w.json(w.req(&w.alice, "GET", "/api/v1/recordings")).await;
    assert_eq!(ids(&page, "id"), [a.id.to_string()]);
    // Asking for bob's recordings by name does not widen a user's scope.
    let (_, page) = w
        .json(w.req(&w.alice, "GET", "/api/v1/recordings?user=1002"))
        .await;
    assert_eq!(ids(&page, "id"), Vec::<String>::new());
    let (_, page) = w.json(w.req(&w.admin, "GET", "/api/v1/recordings")).await;
    assert_eq!(ids(&page, "id"), [b.id.to_string(), a.id.to_string()]);
    let (_, page) = w
        .json(w.req(&w.stranger, "GET", "/api/v1/recordings"))
        .await;
    assert_eq!(ids(&page, "id"), Vec::<String>::new());

    let (_, calls) = w.json(w.req(&w.bob, "GET", "/api/v1/calls")).await;
    assert_eq!(ids(&calls, "call_uuid"), ["call-b"]);
    let (_, calls) = w.json(w.req(&w.admin, "GET", "/api/v1/calls")).await;
    let mut all = ids(&calls, "call_uuid");
    all.sort();
    assert_eq!(all, ["call-a", "call-b"]);

    let (_, usage) = w.json(w.req(&w.bob, "GET", "/api/v1/usage")).await;
    assert_eq!(ids(&usage, "extension"), ["1002"]);
    let (_, usage) = w.json(w.req(&w.admin, "GET", "/api/v1/usage")).await;
    assert_eq!(ids(&usage, "extension"), ["1001", "1002", "9000"]);
    let (_, users) = w.json(w.req(&w.stranger, "GET", "/api/v1/users")).await;
    assert_eq!(ids(&users, "extension"), ["9000"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokens_last_use_is_kept_and_a_refused_token_notes_nothing() {
    let w = World::new();
    let tokens = || {
        w.store
            .read_blocking(|v| v.tokens(None))
            .unwrap()
            .into_iter()
            .map(|t| (t.extension, t.site, t.last_used_at))
            .collect::<Vec<_>>()
    };
    assert!(tokens().iter().all(|(_, _, used)| used.is_none()));
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let resp = w.send(w.req(&w.alice, "GET", "/api/v1/me")).await;
    assert_eq!(resp.status(), 200);
    // A bad token authenticates nobody and notes nothing.
    let resp = w
        .send(
            w.anon("GET", "/api/v1/me")
                .header("authorization", "Bearer callrec_0000000000000000"),
        )
        .await;
    assert_eq!(resp.status(), 401);
    // Written in the background, off the request's path.
    let used = callrec_testkit::wait::eventually("alice's token noted as used", || {
        tokens()
            .into_iter()
            .find(|(ext, site, used)| ext == "1001" && site == "default" && used.is_some())
            .and_then(|(_, _, used)| used)
    })
    .await;
    assert!(used >= before, "{used}");
    let unused: Vec<_> = tokens()
        .into_iter()
        .filter(|(ext, _, used)| ext != "1001" && used.is_some())
        .collect();
    assert!(unused.is_empty(), "{unused:?}");
}
