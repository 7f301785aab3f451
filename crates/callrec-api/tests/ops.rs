//! Calls in progress and their recording actions (through the daemon seam), health,
//! readiness and metrics, notes, holds, deletion, users and the site.

mod support;

use std::sync::atomic::Ordering;

use callrec_model::RecordingMode;
use serde_json::json;
use support::{World, error_code, t0};

#[tokio::test]
async fn a_user_pauses_and_resumes_their_call_within_the_rules_of_their_mode() {
    let w = World::new();
    let alice = w.alice.user.clone();
    w.live_call(&alice, "call-p", RecordingMode::AlwaysPausable);
    w.live_call(&alice, "call-a", RecordingMode::Always);
    w.live_call(&alice, "call-d", RecordingMode::OnDemand);
    let act = |uuid: &str, action: &str| {
        w.req(
            &w.alice,
            "POST",
            &format!("/api/v1/calls/{uuid}/recording/{action}"),
        )
    };

    let (s, call) = w.json(act("call-p", "pause")).await;
    assert_eq!(s, 200, "{call}");
    assert_eq!(call["recording"], "paused");
    let (s, body) = w.json(act("call-p", "pause")).await;
    assert_eq!((s, error_code(&body)), (409, "wrong_state"));
    let (s, call) = w.json(act("call-p", "resume")).await;
    assert_eq!((s, call["recording"].as_str()), (200, Some("recording")));

    // Mode `always`: pausing is refused.
    let (s, body) = w.json(act("call-a", "pause")).await;
    assert_eq!((s, error_code(&body)), (409, "not_allowed"));
    // On demand: nothing until started, then pausable.
    let (_, calls) = w.json(w.req(&w.alice, "GET", "/api/v1/calls")).await;
    let d = calls["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["call_uuid"] == "call-d")
        .unwrap()
        .clone();
    assert_eq!(d["recording"], "off");
    let (s, call) = w.json(act("call-d", "start")).await;
    assert_eq!((s, call["recording"].as_str()), (200, Some("recording")));
    let (s, call) = w.json(act("call-d", "stop")).await;
    assert_eq!((s, call["recording"].as_str()), (200, Some("off")));

    // The daemon was told who asked.
    let actions = w.daemon.actions.lock().unwrap().clone();
    assert!(actions.iter().all(|a| a.actor == "1001@default"));
    assert_eq!(actions.len(), 6);

    // A call that is not there, and an action that does not exist.
    let (s, body) = w.json(act("call-gone", "pause")).await;
    assert_eq!((s, error_code(&body)), (404, "not_found"));
    let (s, body) = w.json(act("call-p", "rewind")).await;
    assert_eq!((s, error_code(&body)), (400, "bad_request"));

    // The switch is away: the API says so, and it is not the caller's fault.
    w.daemon.set_connected(false);
    let (s, body) = w.json(act("call-p", "pause")).await;
    assert_eq!((s, error_code(&body)), (503, "unavailable"));
}

#[tokio::test]
async fn readiness_follows_the_switch_connection_and_health_does_not() {
    let w = World::new();
    let (s, body) = w.json(w.anon("GET", "/readyz")).await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"status": "ok", "index": true, "esl_connected": true})
    );
    w.daemon.connected.store(false, Ordering::SeqCst);
    let (s, body) = w.json(w.anon("GET", "/readyz")).await;
    assert_eq!(s, 503);
    assert_eq!(body["esl_connected"], false);
    let (s, body) = w.json(w.anon("GET", "/healthz")).await;
    assert_eq!((s, body), (200, json!({"status": "ok"})));
}

#[tokio::test]
async fn metrics_show_the_store_the_daemon_and_the_api_in_one_document() {
    let mut w = World::new();
    let alice = w.alice.user.clone();
    for i in 0..3 {
        w.record(
            &alice,
            "1001",
            "01234567891",
            t0() + chrono::Duration::minutes(i),
            500,
        );
    }
    // A quota of one byte puts alice over it.
    let (s, _) = w
        .json(
            w.req(&w.admin, "PUT", "/api/v1/site")
                .json(&json!({"quota_bytes": 1})),
        )
        .await;
    assert_eq!(s, 200);
    let resp = w.send(w.anon("GET", "/metrics")).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8(resp.body().to_vec()).unwrap();
    let line = |prefix: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .to_owned()
    };
    assert_eq!(
        line("callrec_recordings{state=\"stored\"}"),
        "callrec_recordings{state=\"stored\"} 3"
    );
    assert_eq!(
        line("callrec_users_over_quota "),
        "callrec_users_over_quota 1"
    );
    let used: u64 = line("callrec_store_used_bytes ")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(used, 3 * (44 + 8000));
    assert!(line("callrec_data_filesystem_free_bytes ").ends_with(|c: char| c.is_ascii_digit()));
    assert_eq!(line("callrec_esl_connected "), "callrec_esl_connected 1");
    assert!(line("callrec_api_requests_total{").contains("method=\"PUT\""));
    assert_eq!(text.matches("# EOF").count(), 1);
    assert!(text.ends_with("# EOF\n"));
}

/// The request counter's `method` label takes a few known values only: an unauthenticated
/// client inventing method names must not grow the metrics without bound.
#[tokio::test]
async fn invented_methods_are_counted_together_not_one_series_each() {
    let w = World::new();
    for i in 0..20 {
        let resp = w.send(w.anon(&format!("INVENTED{i}"), "/healthz")).await;
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let resp = w.send(w.anon("GET", "/metrics")).await;
    let text = String::from_utf8(resp.body().to_vec()).unwrap();
    assert!(!text.contains("INVENTED"), "{text}");
    let other: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("callrec_api_requests_total{") && l.contains("method=\"other\""))
        .collect();
    assert_eq!(other.len(), 1, "{text}");
    assert!(other[0].ends_with(" 20"), "{}", other[0]);
}

#[tokio::test]
async fn notes_holds_and_deletion_behave_as_an_archive_should() {
    let mut w = World::new();
    let alice = w.alice.user.clone();
    let (rec, _) = w.record(&alice, "1001", "01234567891", t0(), 500);
    let path = format!("/api/v1/recordings/{}", rec.id);

    let (s, note) = w
        .json(
            w.req(&w.alice, "POST", &format!("{path}/notes"))
                .json(&json!({"text": "  called back  "})),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(note["author"], "1001@default");
    assert_eq!(note["text"], "called back");

    let (s, _) = w
        .json(
            w.req(&w.admin, "PUT", &format!("{path}/hold"))
                .json(&json!({"hold": true})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, body) = w.json(w.req(&w.admin, "DELETE", &path)).await;
    assert_eq!((s, error_code(&body)), (409, "on_hold"));
    let (s, _) = w
        .json(
            w.req(&w.admin, "PUT", &format!("{path}/hold"))
                .json(&json!({"hold": false})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, tomb) = w
        .json(w.req(
            &w.admin,
            "DELETE",
            &format!("{path}?reason=asked%20by%20customer"),
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(tomb["state"], "deleted");
    assert!(
        tomb["state_reason"]
            .as_str()
            .unwrap()
            .contains("asked by customer")
    );

    let (s, detail) = w.json(w.req(&w.alice, "GET", &path)).await;
    assert_eq!(s, 200);
    assert_eq!(detail["notes"][0]["text"], "called back");
    assert_eq!(detail["segments"][0]["kind"], "start");
    let (s, body) = w
        .json(w.req(&w.alice, "GET", &format!("{path}/audio")))
        .await;
    assert_eq!((s, error_code(&body)), (409, "wrong_state"));
    let (s, body) = w.json(w.req(&w.admin, "DELETE", &path)).await;
    assert_eq!((s, error_code(&body)), (409, "wrong_state"));
}

#[tokio::test]
async fn an_admin_changes_a_users_mode_and_the_sites_settings() {
    let w = World::new();
    let (s, user) = w
        .json(
            w.req(&w.admin, "PUT", "/api/v1/users/1002")
                .json(&json!({"mode": "never", "numbers": ["+44 20 7946 0777"]})),
        )
        .await;
    assert_eq!(s, 200, "{user}");
    assert_eq!(user["mode"], "never");
    assert_eq!(user["numbers"][0]["normalised"], "+442079460777");
    let (_, me) = w.json(w.req(&w.bob, "GET", "/api/v1/me")).await;
    assert_eq!(me["user"]["mode"], "never");
    assert_eq!(me["role"], "user");
    assert_eq!(me["usage"]["bytes"], 0);

    let (s, site) = w
        .json(w.req(&w.admin, "PUT", "/api/v1/site").json(
            &json!({"retention_days": 30, "timezone": "Europe/London", "pause_behavior": "skip"}),
        ))
        .await;
    assert_eq!(s, 200, "{site}");
    let (_, site) = w.json(w.req(&w.admin, "GET", "/api/v1/site")).await;
    assert_eq!(site["retention_days"], 30);
    assert_eq!(site["timezone"], "Europe/London");
    assert_eq!(site["pause_behavior"], "skip");
    assert_eq!(site["name"], "default");
    // The other site is untouched.
    let (_, other) = w.json(w.req(&w.stranger, "GET", "/api/v1/site")).await;
    assert_eq!(other["retention_days"], 180);
}

/// `display_name` is a string or null (the OpenAPI document says so): a name sets it, null
/// clears it, and leaving it out keeps it.
#[tokio::test]
async fn an_admin_names_a_user_and_clears_the_name_with_null() {
    let w = World::new();
    let put = |body: serde_json::Value| w.req(&w.admin, "PUT", "/api/v1/users/1002").json(&body);
    let (s, user) = w.json(put(json!({"display_name": "Bob Jones"}))).await;
    assert_eq!(s, 200, "{user}");
    assert_eq!(user["display_name"], "Bob Jones");
    let (s, user) = w.json(put(json!({"mode": "never"}))).await;
    assert_eq!(s, 200, "{user}");
    assert_eq!(user["display_name"], "Bob Jones");
    let (s, user) = w.json(put(json!({"display_name": null}))).await;
    assert_eq!(s, 200, "{user}");
    assert_eq!(user["display_name"], serde_json::Value::Null, "{user}");
    let (_, me) = w.json(w.req(&w.bob, "GET", "/api/v1/me")).await;
    assert_eq!(me["user"]["display_name"], serde_json::Value::Null, "{me}");
}

/// A new number plan that would give two users the same number is refused with a 409 naming
/// it, and changes nothing: before, one of the two numbers silently left the directory, and
/// the calls on it stopped being that user's (so stopped being recorded).
#[tokio::test]
async fn a_number_plan_that_would_merge_two_users_numbers_is_refused() {
    let w = World::new();
    // Alice has 02079460001: +442079460001 in the UK. Bob gets +1 207 946 0001 (Maine).
    let (s, bob) = w
        .json(
            w.req(&w.admin, "PUT", "/api/v1/users/1002")
                .json(&json!({"numbers": ["+12079460001"]})),
        )
        .await;
    assert_eq!(s, 200, "{bob}");
    // Under country code 1, alice's 0 2079460001 would become +12079460001 too.
    let (s, body) = w
        .json(
            w.req(&w.admin, "PUT", "/api/v1/site")
                .json(&json!({"country_code": 1})),
        )
        .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(error_code(&body), "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("+12079460001"),
        "{body}"
    );
    let (_, site) = w.json(w.req(&w.admin, "GET", "/api/v1/site")).await;
    assert_eq!(site["country_code"], 44);
    for (ext, number) in [("1001", "+442079460001"), ("1002", "+12079460001")] {
        let (_, user) = w
            .json(w.req(&w.admin, "GET", &format!("/api/v1/users/{ext}")))
            .await;
        assert_eq!(user["numbers"][0]["normalised"], number, "{user}");
    }
}

#[tokio::test]
async fn the_last_admin_of_a_site_cannot_demote_itself_but_can_once_another_is_made() {
    // The adversarial trial: `PUT /users/9000 {"role":"user"}` left a site with no admin.
    let w = World::new();
    let demote = json!({"role": "user"});
    let (s, body) = w
        .json(w.req(&w.admin, "PUT", "/api/v1/users/9000").json(&demote))
        .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(error_code(&body), "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last admin"),
        "{body}"
    );
    let (_, me) = w.json(w.req(&w.admin, "GET", "/api/v1/me")).await;
    assert_eq!(me["role"], "admin");

    let (s, _) = w
        .json(
            w.req(&w.admin, "PUT", "/api/v1/users/1002")
                .json(&json!({"role": "admin"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, user) = w
        .json(w.req(&w.admin, "PUT", "/api/v1/users/9000").json(&demote))
        .await;
    assert_eq!(s, 200, "{user}");
    assert_eq!(user["role"], "user");
}

#[tokio::test]
async fn a_quota_too_large_for_the_index_says_what_range_is_allowed() {
    let w = World::new();
    for quota in [json!(0), json!(u64::MAX)] {
        let (s, body) = w
            .json(
                w.req(&w.admin, "PUT", "/api/v1/site")
                    .json(&json!({"quota_bytes": quota})),
            )
            .await;
        assert!(s == 400 || s == 422, "{s} {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("between 1 and 9223372036854775807"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn max_pause_seconds_is_a_site_setting_off_by_default_and_bounded() {
    let w = World::new();
    let (_, site) = w.json(w.req(&w.admin, "GET", "/api/v1/site")).await;
    assert_eq!(site["max_pause_seconds"], 0, "{site}");
    let put = |v: serde_json::Value| {
        w.req(&w.admin, "PUT", "/api/v1/site")
            .json(&json!({ "max_pause_seconds": v }))
    };
    let (s, body) = w.json(put(json!(300))).await;
    assert_eq!(s, 200, "{body}");
    let (_, site) = w.json(w.req(&w.admin, "GET", "/api/v1/site")).await;
    assert_eq!(site["max_pause_seconds"], 300);
    let (s, body) = w.json(put(json!(86_401))).await;
    assert!(s == 400 || s == 422, "{s} {body}");
    let (s, _) = w
        .json(
            w.req(&w.alice, "PUT", "/api/v1/site")
                .json(&json!({"max_pause_seconds": 0})),
        )
        .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn an_admin_erases_a_number_through_the_api_and_held_recordings_stay() {
    let mut w = World::new();
    let alice = w.alice.user.clone();
    let (gone, _) = w.record(&alice, "01632960123", "1001", t0(), 1000);
    let (kept, _) = w.record(&alice, "1001", "+44 1632 960123", t0(), 1000);
    let (s, _) = w
        .json(
            w.req(
                &w.admin,
                "PUT",
                &format!("/api/v1/recordings/{}/hold", kept.id),
            )
            .json(&json!({"hold": true})),
        )
        .await;
    assert_eq!(s, 200);
    let erase = |body: serde_json::Value| w.req(&w.admin, "POST", "/api/v1/erasures").json(&body);
    let (s, body) = w
        .json(erase(json!({"number": "01632960123", "reason": ""})))
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(body.to_string().contains("reason"), "{body}");
    let (s, report) = w
        .json(erase(json!({"number": "441632960123", "reason": "SAR-9"})))
        .await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["number"], "+441632960123");
    assert_eq!(report["erased"], json!([gone.id.to_string()]));
    assert_eq!(report["refused"][0]["id"], kept.id.to_string());
    assert_eq!(report["refused"][0]["reason"], "on hold");
    let (s, _) = w
        .json(w.req(
            &w.admin,
            "GET",
            &format!("/api/v1/recordings/{}/audio", gone.id),
        ))
        .await;
    assert_eq!(s, 409, "the erased recording has no audio any more");
    let (_, detail) = w
        .json(w.req(&w.admin, "GET", &format!("/api/v1/recordings/{}", gone.id)))
        .await;
    assert_eq!(detail["state"], "deleted", "{detail}");
    assert!(!detail.to_string().contains("1632960123"), "{detail}");
    let (_, audit) = w.json(w.req(&w.admin, "GET", "/api/v1/audit")).await;
    assert!(audit.to_string().contains("SAR-9"), "{audit}");
}

#[tokio::test]
async fn the_change_feed_is_followed_page_by_page_and_scoped_to_the_caller() {
    let mut w = World::new();
    let (alice, bob) = (w.alice.user.clone(), w.bob.user.clone());
    let (a, _) = w.record(&alice, "1001", "02079460000", t0(), 1000);
    let (b, _) = w.record(&bob, "1002", "02079460000", t0(), 1000);
    let (s, _) = w
        .json(
            w.req(
                &w.alice,
                "POST",
                &format!("/api/v1/recordings/{}/notes", a.id),
            )
            .json(&json!({"text": "follow up"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, page) = w
        .json(w.req(&w.admin, "GET", "/api/v1/changes?limit=2"))
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["changes"][0]["kind"], "stored");
    assert_eq!(page["changes"][0]["recording_id"], a.id.to_string());
    assert_eq!(page["changes"][1]["recording_id"], b.id.to_string());
    let after = page["last_seq"].as_i64().unwrap();
    let (_, next) = w
        .json(w.req(&w.admin, "GET", &format!("/api/v1/changes?after={after}")))
        .await;
    assert_eq!(next["changes"].as_array().unwrap().len(), 1, "{next}");
    assert_eq!(next["changes"][0]["kind"], "note");
    let (_, mine) = w.json(w.req(&w.bob, "GET", "/api/v1/changes")).await;
    let ids: Vec<&str> = mine["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["recording_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.id.to_string()]);
    let (s, body) = w
        .json(w.req(&w.admin, "GET", "/api/v1/changes?limit=0"))
        .await;
    assert_eq!(s, 400, "{body}");
}
