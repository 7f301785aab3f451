//! `GET /api/v1/recordings/export.zip` (issue 11): a streamed ZIP of every recording a search
//! matches, with a manifest; opened here by Python's `zipfile`, an independent reader that
//! checks every entry's CRC, and compared with the store.

mod support;

use support::{World, read_with_python, t0};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zip_opens_in_python_with_the_names_sizes_and_hashes_the_store_holds() {
    let mut w = World::new();
    let alice = w.alice.user.clone();
    let bob = w.bob.user.clone();
    let mut alices = Vec::new();
    for i in 0..12 {
        let (rec, bytes) = w.record(
            &alice,
            "02079460001",
            &format!("0163296{:04}", i),
            t0() + chrono::Duration::minutes(i),
            300 + 50 * i as u32,
        );
        alices.push((rec, bytes));
    }
    let (bobs, _) = w.record(&bob, "02079460002", "01632960999", t0(), 400);
    // A note, so the manifest carries notes.
    let (s, _) = w
        .json(
            w.req(
                &w.alice,
                "POST",
                &format!("/api/v1/recordings/{}/notes", alices[0].0.id),
            )
            .json(&serde_json::json!({"text": "called back"})),
        )
        .await;
    assert_eq!(s, 201);
    let before = w.audit_head().await;

    let resp = w
        .send(w.req(&w.alice, "GET", "/api/v1/recordings/export.zip"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let (entries, manifest) = read_with_python(resp.body());

    // Alice's twelve recordings and the manifest; bob's is not hers to export.
    assert_eq!(entries.len(), 13, "{:?}", entries.keys());
    for (rec, bytes) in &alices {
        let name = format!("recordings/{}", rec.file_name);
        let (size, sha) = &entries[&name];
        assert_eq!(*size, bytes.len() as u64);
        assert_eq!(Some(sha), rec.sha256.as_ref());
    }
    assert!(!entries.keys().any(|k| k.contains(&bobs.file_name)));
    let listed = manifest["recordings"].as_array().unwrap();
    assert_eq!(listed.len(), 12);
    for item in listed {
        let (rec, _) = alices
            .iter()
            .find(|(r, _)| r.id.as_str() == item["id"].as_str().unwrap())
            .expect("a listed recording is one of alice's");
        assert_eq!(item["zip_sha256"].as_str(), rec.sha256.as_deref());
        assert_eq!(item["sha256"].as_str(), rec.sha256.as_deref());
        assert_eq!(item["zip_size_bytes"].as_u64(), rec.size_bytes);
        assert_eq!(
            item["zip_path"].as_str().unwrap(),
            format!("recordings/{}", rec.file_name)
        );
        assert!(item["segments"].as_array().is_some_and(|s| !s.is_empty()));
    }
    let noted = listed
        .iter()
        .find(|i| i["id"] == alices[0].0.id.as_str())
        .unwrap();
    assert_eq!(noted["notes"][0]["text"], "called back");
    assert_eq!(manifest["generated_by"], "1001@default");

    // The export is audited once with its filters, and each file read as an archive read.
    let entries = w.audit_since(before).await;
    let exports: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "recording.export")
        .collect();
    assert_eq!(exports.len(), 1);
    let archived = entries
        .iter()
        .filter(|e| e.action == "recording.archive")
        .count();
    assert_eq!(archived, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_filters_choose_what_goes_in() {
    let mut w = World::new();
    let alice = w.alice.user.clone();
    let (first, _) = w.record(&alice, "02079460001", "01632960001", t0(), 300);
    let (_, _) = w.record(
        &alice,
        "02079460001",
        "01632960002",
        t0() + chrono::Duration::days(2),
        300,
    );
    let resp = w
        .send(w.req(
            &w.admin,
            "GET",
            "/api/v1/recordings/export.zip?number=%2B441632960001",
        ))
        .await;
    assert_eq!(resp.status(), 200);
    let (entries, manifest) = read_with_python(resp.body());
    assert_eq!(
        entries.keys().collect::<Vec<_>>(),
        [
            "manifest.json".to_owned(),
            format!("recordings/{}", first.file_name)
        ]
        .iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(manifest["filters"]["number"], "+441632960001");

    // Paging parameters do not apply to an export.
    let (s, body) = w
        .json(w.req(&w.admin, "GET", "/api/v1/recordings/export.zip?limit=5"))
        .await;
    assert_eq!(s, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_access_export_holds_every_recording_of_the_number_in_any_form() {
    let mut w = World::new();
    let alice = w.alice.user.clone();
    let bob = w.bob.user.clone();
    // The caller's number as each call stored it: national, international without and with
    // the plus; as caller and as called; alice's and bob's calls alike.
    let (a, _) = w.record(&alice, "01632960123", "1001", t0(), 400);
    let (b, _) = w.record(&alice, "1001", "441632960123", t0(), 400);
    let (c, _) = w.record(&bob, "+44 1632 960123", "1002", t0(), 400);
    let (other, _) = w.record(&bob, "01632960999", "1002", t0(), 400);
    // A held recording is exported too (it is held, not hidden).
    let (s, _) = w
        .json(
            w.req(
                &w.admin,
                "PUT",
                &format!("/api/v1/recordings/{}/hold", c.id),
            )
            .json(&serde_json::json!({"hold": true})),
        )
        .await;
    assert_eq!(s, 200);
    let before = w.audit_head().await;
    let body = serde_json::json!({"number": "+44 (0)1632 960123", "reason": "SAR-42"});
    let resp = w
        .send(w.req(&w.admin, "POST", "/api/v1/exports").json(&body))
        .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    let disposition = resp.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"subject-access-441632960123-"),
        "{disposition}"
    );
    let (entries, manifest) = read_with_python(resp.body());
    let mut ids: Vec<&str> = manifest["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![a.id.as_str(), b.id.as_str(), c.id.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(!entries.keys().any(|k| k.contains(&other.file_name)));
    for rec in [&a, &b, &c] {
        let (size, sha) = &entries[&format!("recordings/{}", rec.file_name)];
        assert_eq!(
            (Some(*size), Some(sha)),
            (rec.size_bytes, rec.sha256.as_ref())
        );
    }
    assert_eq!(manifest["number"], "+441632960123");
    assert_eq!(manifest["reason"], "SAR-42");
    // Audited once with who, why and which; the number only as its hash.
    let audited = w.audit_since(before).await;
    let export: Vec<_> = audited
        .iter()
        .filter(|e| e.action == "subject_access.export")
        .collect();
    assert_eq!(export.len(), 1, "{audited:?}");
    assert!(
        export[0].target.starts_with("number-sha256:"),
        "{:?}",
        export[0]
    );
    assert!(!export[0].detail.contains("1632960123"), "{:?}", export[0]);
    assert!(export[0].detail.contains("SAR-42"));

    // A user may not; a reason is required.
    let resp = w
        .send(w.req(&w.alice, "POST", "/api/v1/exports").json(&body))
        .await;
    assert_eq!(resp.status(), 403);
    let resp = w
        .send(
            w.req(&w.admin, "POST", "/api/v1/exports")
                .json(&serde_json::json!({"number": "01632960123", "reason": "  "})),
        )
        .await;
    assert_eq!(resp.status(), 422);
}
