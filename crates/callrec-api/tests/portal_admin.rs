//! The portal's admin side as a browser meets it: the recordings page's filter panel (each
//! filter narrows the list as the API's search does, and survives the page's links), the
//! users page (mode, role, password reset) and the site settings page, each refused to
//! users, to strangers and to forms without the session's CSRF token, and audited as the
//! API and the command line audit the same change.

mod support;

use callrec_model::{Direction, RecordingId, RecordingMode, Role};
use callrec_store::Access;
use support::portal::{
    PASSWORD, admin_session, body, csrf_of, get, header, post, session, set_password, sign_in_from,
};
use support::{World, t0};

/// Three recordings that differ in every filter the panel has.
struct Three {
    /// Alice's, inbound from +44 1632 960100, 5 s, on 1 May, with a note.
    a_in: RecordingId,
    /// Alice's, outbound to 01632 960200, 1 s, on 2 May, on hold.
    a_out: RecordingId,
    /// Bob's, internal from 1002 to 1001, 2 s, on 3 May.
    b_int: RecordingId,
}

fn three(w: &mut World) -> Three {
    let (alice, bob) = (w.alice.user.clone(), w.bob.user.clone());
    let day = chrono::Duration::days(1);
    let a_in = w
        .record_dir(
            &alice,
            "+441632960100",
            "1001",
            t0(),
            5_000,
            Direction::Inbound,
        )
        .id;
    let a_out = w
        .record_dir(
            &alice,
            "1001",
            "01632960200",
            t0() + day,
            1_000,
            Direction::Outbound,
        )
        .id;
    let b_int = w
        .record_dir(
            &bob,
            "1002",
            "1001",
            t0() + day * 2,
            2_000,
            Direction::Internal,
        )
        .id;
    let access = Access::system("test");
    let (note_on, hold_on) = (a_in.clone(), a_out.clone());
    w.store
        .write_blocking(move |s| {
            s.add_note(&note_on, &access, "customer asked for a refund")?;
            s.set_hold(&hold_on, &access, true)
        })
        .unwrap();
    Three { a_in, a_out, b_int }
}

/// Which of `all` the page lists (by the link to each recording's details).
fn listed<'a>(html: &str, all: &[(&'a str, &RecordingId)]) -> Vec<&'a str> {
    all.iter()
        .filter(|(_, id)| html.contains(&format!("href=\"/recordings/{id}\"")))
        .map(|(name, _)| *name)
        .collect()
}

#[tokio::test]
async fn each_filter_of_the_panel_narrows_the_admins_list_as_the_api_search_does() {
    let mut w = World::new();
    set_password(&w, &w.admin);
    let t = three(&mut w);
    let all = [("a_in", &t.a_in), ("a_out", &t.a_out), ("b_int", &t.b_int)];
    let admin = admin_session(&w).await;

    let html = body(&get(&w, &admin, "/recordings").await);
    assert_eq!(listed(&html, &all), ["a_in", "a_out", "b_int"]);
    assert!(
        !html.contains("<details class=\"filters\" open"),
        "closed when unused"
    );

    for (query, want) in [
        // Numbers in another form than they were stored in.
        ("from=01632960100", &["a_in"][..]),
        ("from=%2B44+1632+960100", &["a_in"]),
        ("to=%2B441632960200", &["a_out"]),
        ("to=1001", &["a_in", "b_int"]),
        ("user=1002", &["b_int"]),
        ("user=1001", &["a_in", "a_out"]),
        ("direction=inbound", &["a_in"]),
        ("direction=outbound", &["a_out"]),
        ("direction=internal", &["b_int"]),
        ("min_duration=4", &["a_in"]),
        ("min_duration=1.5", &["a_in", "b_int"]),
        ("has_notes=true", &["a_in"]),
        ("has_notes=false", &["a_out", "b_int"]),
        ("hold=true", &["a_out"]),
        ("hold=false", &["a_in", "b_int"]),
        ("since=2024-05-02", &["a_out", "b_int"]),
        ("until=2024-05-01", &["a_in"]),
        ("since=2024-05-02&until=2024-05-02", &["a_out"]),
        // Filters combine, with the search box too.
        ("user=1001&direction=outbound", &["a_out"]),
        ("q=refund&user=1001", &["a_in"]),
        ("q=refund&user=1002", &[]),
        // Empty fields, as the form sends them, filter nothing.
        (
            "from=&to=&user=&direction=&min_duration=&has_notes=&hold=",
            &["a_in", "a_out", "b_int"],
        ),
    ] {
        let r = get(&w, &admin, &format!("/recordings?{query}")).await;
        assert_eq!(r.status(), 200, "{query}: {}", body(&r));
        let html = body(&r);
        assert_eq!(listed(&html, &all), want, "{query}");
    }

    // The panel shows what it filters by, open.
    let html = body(
        &get(
            &w,
            &admin,
            "/recordings?user=1001&direction=outbound&has_notes=false&hold=true&min_duration=0.5",
        )
        .await,
    );
    assert!(html.contains("<details class=\"filters\" open"), "{html}");
    assert!(html.contains("id=\"user\" name=\"user\" type=\"text\" inputmode=\"numeric\" autocomplete=\"off\" value=\"1001\""));
    assert!(html.contains("<option value=\"outbound\" selected>"));
    assert!(html.contains("<option value=\"false\" selected>Without notes"));
    assert!(html.contains("<option value=\"true\" selected>On hold"));
    assert!(html.contains("value=\"0.5\""));

    // A bad filter is a 400 naming it, on the page, with the form kept.
    for (query, name) in [
        ("direction=sideways", "direction"),
        ("min_duration=-1", "min_duration"),
        ("hold=maybe", "hold"),
    ] {
        let r = get(&w, &admin, &format!("/recordings?{query}")).await;
        assert_eq!(r.status(), 400, "{query}");
        let html = body(&r);
        assert!(
            html.contains("role=\"alert\"") && html.contains(name),
            "{html}"
        );
        assert!(html.contains("<details class=\"filters\" open"));
    }
}

#[tokio::test]
async fn every_filter_label_names_its_input_and_a_user_has_no_user_filter() {
    let mut w = World::new();
    set_password(&w, &w.alice);
    set_password(&w, &w.admin);
    let t = three(&mut w);
    let all = [("a_in", &t.a_in), ("a_out", &t.a_out), ("b_int", &t.b_int)];

    let admin = body(&get(&w, &admin_session(&w).await, "/recordings").await);
    for id in [
        "q",
        "since",
        "until",
        "from",
        "to",
        "user",
        "direction",
        "min_duration",
        "has_notes",
        "hold",
    ] {
        assert!(
            admin.contains(&format!("<label for=\"{id}\">")),
            "label of {id}"
        );
        assert!(
            admin.contains(&format!("id=\"{id}\" name=\"{id}\"")),
            "input {id}"
        );
    }

    let alice = session(&w, &w.alice).await;
    let html = body(&get(&w, &alice, "/recordings").await);
    assert!(!html.contains("name=\"user\""), "no user filter for a user");
    assert!(html.contains("name=\"direction\"") && html.contains("name=\"hold\""));
    // Asking for bob's anyway changes nothing: hers only, and the links drop it.
    let html = body(&get(&w, &alice, "/recordings?user=1002&direction=outbound").await);
    assert_eq!(listed(&html, &all), ["a_out"]);
    assert!(
        html.contains("href=\"/recordings.zip?direction=outbound\""),
        "{html}"
    );
    let html = body(&get(&w, &alice, "/recordings?user=1002").await);
    assert_eq!(listed(&html, &all), ["a_in", "a_out"]);
}

#[tokio::test]
async fn the_filters_ride_along_to_the_older_page_and_into_the_zip() {
    let mut w = World::new();
    set_password(&w, &w.admin);
    let (alice, bob) = (w.alice.user.clone(), w.bob.user.clone());
    let mut wanted = Vec::new();
    for i in 0..51 {
        let start = t0() + chrono::Duration::minutes(i);
        wanted.push(
            w.record_dir(
                &alice,
                "01632960100",
                "1001",
                start,
                300,
                Direction::Inbound,
            )
            .id,
        );
        if i % 10 == 0 {
            // Near misses, one filter each, interleaved in time.
            w.record_dir(
                &alice,
                "01632960100",
                "1001",
                start,
                300,
                Direction::Outbound,
            );
            w.record_dir(&bob, "01632960100", "1002", start, 300, Direction::Inbound);
            w.record_dir(
                &alice,
                "01632960999",
                "1001",
                start,
                300,
                Direction::Inbound,
            );
        }
    }
    let admin = admin_session(&w).await;
    let query = "from=%2B441632960100&user=1001&direction=inbound&min_duration=0.1\
                 &has_notes=false&hold=false&since=2024-05-01&until=2024-05-01";
    let html = body(&get(&w, &admin, &format!("/recordings?{query}")).await);
    assert_eq!(
        html.matches("/audio?download=1").count(),
        50,
        "a full first page"
    );
    let zip = format!("href=\"/recordings.zip?{}\"", query.replace('&', "&#38;"));
    assert!(html.contains(&zip), "{zip} in {html}");

    let at = html
        .find("<a href=\"/recordings?")
        .expect("a link to the older ones");
    let href = &html[at + "<a href=\"".len()..];
    let href = href[..href.find('"').unwrap()].replace("&#38;", "&");
    let (path, next) = href.split_once('?').unwrap();
    assert_eq!(path, "/recordings");
    let next: Vec<(String, String)> = serde_urlencoded::from_str(next).unwrap();
    let asked: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    for pair in &asked {
        assert!(next.contains(pair), "{pair:?} kept in {href}");
    }
    assert!(next.iter().any(|(k, _)| k == "cursor"));
    let older = body(&get(&w, &admin, &href).await);
    assert_eq!(older.matches("/audio?download=1").count(), 1, "{older}");
    assert!(older.contains(&format!("href=\"/recordings/{}\"", wanted[0])));

    // The ZIP of the search holds the 51 and nothing else.
    let r = get(&w, &admin, &format!("/recordings.zip?{query}")).await;
    assert_eq!(r.status(), 200);
    let (_, manifest) = support::read_with_python(r.body());
    let mut ids: Vec<String> = manifest["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut want: Vec<String> = wanted.iter().map(ToString::to_string).collect();
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(manifest["filters"]["user"], "1001");
    assert_eq!(manifest["filters"]["direction"], "inbound");
}

#[tokio::test]
async fn what_is_typed_into_the_filters_comes_back_as_text() {
    let w = World::new();
    set_password(&w, &w.admin);
    let admin = admin_session(&w).await;
    let r = get(
        &w,
        &admin,
        "/recordings?from=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E&user=%3Cb%3E",
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = body(&r);
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(
        html.contains("&#34;&#62;&#60;script&#62;") || html.contains("&quot;&gt;&lt;script&gt;"),
        "{html}"
    );
    assert!(header(&r, "content-security-policy").is_some());
}

// ---- users -----------------------------------------------------------------------------

/// An audit entry's detail, read.
fn detail(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// The user as the store now holds them.
async fn user(w: &World, ext: &str) -> callrec_store::User {
    let ext = ext.to_owned();
    w.store
        .read(move |v| v.user("default", &ext))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_changes_a_users_mode_and_role_and_it_is_audited_as_through_the_api() {
    let w = World::new();
    set_password(&w, &w.admin);
    let admin = admin_session(&w).await;
    let list = body(&get(&w, &admin, "/users").await);
    assert!(list.contains("href=\"/users/1001\""), "{list}");

    let head = w.audit_head().await;
    let page = get(&w, &admin, "/users/1001").await;
    assert_eq!(page.status(), 200);
    let html = body(&page);
    assert!(
        html.contains("action=\"/users/1001\"") && html.contains("action=\"/users/1001/password\"")
    );
    assert!(html.contains("<label for=\"mode\">") && html.contains("<label for=\"role\">"));
    assert!(
        html.contains("<option value=\"always_pausable\" selected>"),
        "{html}"
    );
    let csrf = csrf_of(&html);
    let read = w.audit_since(head).await;
    assert!(
        read.iter()
            .any(|e| e.action == "user.read" && e.target == "user:default/1001")
    );

    let head = w.audit_head().await;
    let r = post(
        &w,
        &admin,
        "/users/1001",
        &[("mode", "always"), ("role", "admin"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", body(&r));
    assert_eq!(header(&r, "location"), Some("/users/1001?done=saved"));
    let alice = user(&w, "1001").await;
    assert_eq!(
        (alice.mode, alice.role),
        (RecordingMode::Always, Role::Admin)
    );
    let changes = w.audit_since(head).await;
    let entry = changes
        .iter()
        .find(|e| e.action == "user.update")
        .expect("the change is audited");
    assert_eq!(entry.actor, "9000@default");
    assert_eq!(entry.target, "user:default/1001");
    assert_eq!(detail(&entry.detail)["mode"]["from"], "always_pausable");
    assert_eq!(detail(&entry.detail)["mode"]["to"], "always");
    assert_eq!(detail(&entry.detail)["role"]["to"], "admin");
    let html = body(&get(&w, &admin, "/users/1001?done=saved").await);
    assert!(html.contains("role=\"status\">Saved."), "{html}");

    // The API sees the same user: one path, one rule.
    let (status, api) = w.json(w.req(&w.admin, "GET", "/api/v1/users/1001")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (api["mode"].as_str(), api["role"].as_str()),
        (Some("always"), Some("admin"))
    );

    // A bad value is refused on the page, naming the allowed ones; nothing changes.
    let r = post(
        &w,
        &admin,
        "/users/1001",
        &[("mode", "sometimes"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(body(&r).contains("always_pausable"), "{}", body(&r));
    assert_eq!(user(&w, "1001").await.mode, RecordingMode::Always);
}

#[tokio::test]
async fn the_last_admin_cannot_stop_being_one_and_a_demoted_admin_loses_the_admin_pages() {
    let w = World::new();
    set_password(&w, &w.admin);
    let admin = admin_session(&w).await;
    let csrf = csrf_of(&body(&get(&w, &admin, "/users/9000").await));
    let head = w.audit_head().await;
    let r = post(
        &w,
        &admin,
        "/users/9000",
        &[("mode", "always"), ("role", "user"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 409);
    let html = body(&r);
    assert!(
        html.contains("role=\"alert\"") && html.contains("last admin"),
        "{html}"
    );
    assert!(
        html.contains("action=\"/users/9000\""),
        "the page, to try again"
    );
    let me = user(&w, "9000").await;
    assert_eq!(
        (me.role, me.mode),
        (Role::Admin, RecordingMode::AlwaysPausable),
        "nothing changed"
    );
    assert!(
        !w.audit_since(head)
            .await
            .iter()
            .any(|e| e.action.starts_with("user.update"))
    );

    // With another admin, the demotion goes through and takes effect at once.
    let r = post(
        &w,
        &admin,
        "/users/1001",
        &[("role", "admin"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let r = post(
        &w,
        &admin,
        "/users/9000",
        &[("role", "user"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", body(&r));
    assert_eq!(user(&w, "9000").await.role, Role::User);
    assert_eq!(get(&w, &admin, "/users").await.status(), 403);
    assert_eq!(get(&w, &admin, "/site").await.status(), 403);
    let r = post(
        &w,
        &admin,
        "/users/1001",
        &[("role", "user"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(user(&w, "1001").await.role, Role::Admin);
}

#[tokio::test]
async fn an_admin_sets_a_new_password_the_old_sessions_die_and_it_is_audited() {
    let w = World::new();
    set_password(&w, &w.admin);
    set_password(&w, &w.alice);
    let alice = session(&w, &w.alice).await;
    assert_eq!(get(&w, &alice, "/recordings").await.status(), 200);
    let admin = admin_session(&w).await;
    let csrf = csrf_of(&body(&get(&w, &admin, "/users/1001").await));
    let new = "a brand new passphrase";

    // Typed differently twice, or too short: refused on the page, nothing changes.
    let r = post(
        &w,
        &admin,
        "/users/1001/password",
        &[
            ("password", new),
            ("confirm", "a brand new passphrasE"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(
        body(&r).contains("the two passwords differ"),
        "{}",
        body(&r)
    );
    let r = post(
        &w,
        &admin,
        "/users/1001/password",
        &[("password", "short"), ("confirm", "short"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(body(&r).contains("at least 12 characters"), "{}", body(&r));
    assert_eq!(
        get(&w, &alice, "/recordings").await.status(),
        200,
        "still signed in"
    );

    let head = w.audit_head().await;
    let r = post(
        &w,
        &admin,
        "/users/1001/password",
        &[("password", new), ("confirm", new), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", body(&r));
    assert_eq!(header(&r, "location"), Some("/users/1001?done=password"));
    assert!(body(&get(&w, &admin, "/users/1001?done=password").await).contains("Password set."));

    // Her session is gone; the old password no longer opens one, the new one does.
    let r = get(&w, &alice, "/recordings").await;
    assert_eq!(r.status(), 303);
    assert!(header(&r, "location").unwrap().starts_with("/signin"));
    assert_eq!(sign_in_from(&w, "1001", PASSWORD, 2).await.status(), 401);
    assert_eq!(sign_in_from(&w, "1001", new, 3).await.status(), 303);

    let entries = w.audit_since(head).await;
    let entry = entries
        .iter()
        .find(|e| e.action == "user.password")
        .expect("audited as `callrec user passwd` is");
    assert_eq!(entry.actor, "9000@default");
    assert_eq!(entry.target, "user:default/1001");
    assert_eq!(detail(&entry.detail)["sessions_revoked"], 1);
    assert!(
        !entries.iter().any(|e| e.detail.contains(new)),
        "the password is never written down"
    );
    // Stored as Argon2id.
    let hash: String = rusqlite::Connection::open(w.dir.path().join("data/index.db"))
        .unwrap()
        .query_row("SELECT password_hash FROM users WHERE extension = '1001' AND site_id = (SELECT id FROM sites WHERE name = 'default')", [], |r| r.get(0))
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

#[tokio::test]
async fn a_users_name_is_shown_as_text_on_the_admin_pages() {
    let w = World::new();
    set_password(&w, &w.admin);
    let update = callrec_store::UserUpdate {
        display_name: Some(Some("<img src=x onerror=alert(1)> Bob".to_owned())),
        ..Default::default()
    };
    w.store
        .write_blocking(move |s| s.update_user("default", "1002", &update, "test"))
        .unwrap();
    let admin = admin_session(&w).await;
    for path in ["/users", "/users/1002"] {
        let html = body(&get(&w, &admin, path).await);
        assert!(!html.contains("<img src=x"), "{path}: {html}");
        assert!(
            html.contains("&#60;img src=x onerror=alert(1)&#62; Bob"),
            "{path}: {html}"
        );
    }
}

// ---- the site ------------------------------------------------------------------------

/// The site form as the page fills it in, with `changes` on top.
fn site_form<'a>(csrf: &'a str, changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("csrf", csrf),
        ("enabled", "0"),
        ("enabled", "1"),
        ("default_mode", "always_pausable"),
        ("min_seconds", "3"),
        ("pause_behavior", "silence"),
        ("max_pause_seconds", "0"),
        ("retention_days", "180"),
        ("legal_hold", "0"),
        ("quota", "1"),
        ("quota_unit", "GiB"),
        ("quota_policy", "alert"),
        ("timezone", "UTC"),
        ("country_code", "44"),
        ("national_prefix", "0"),
    ];
    for (name, value) in changes {
        fields.retain(|(n, _)| n != name);
        fields.push((name, value));
    }
    fields
}

async fn settings(w: &World) -> callrec_store::SiteSettings {
    w.store
        .read(|v| Ok(v.site("default")?.settings))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_changes_the_site_settings_through_the_apis_rules_and_audit() {
    let mut w = World::new();
    set_password(&w, &w.admin);
    let alice = w.alice.user.clone();
    let (rec, _) = w.record(&alice, "1001", "01234567890", t0(), 1_000);
    let admin = admin_session(&w).await;
    let head = w.audit_head().await;
    let page = get(&w, &admin, "/site").await;
    assert_eq!(page.status(), 200);
    let html = body(&page);
    let csrf = csrf_of(&html);
    assert!(
        html.contains("id=\"retention_days\" name=\"retention_days\"")
            && html.contains("value=\"180\"")
    );
    assert!(html.contains("<option value=\"GiB\" selected>"), "{html}");
    assert!(
        html.contains(
            "id=\"pause_behavior-silence\" name=\"pause_behavior\" value=\"silence\" checked"
        ),
        "{html}"
    );
    assert!(
        w.audit_since(head)
            .await
            .iter()
            .any(|e| e.action == "site.read")
    );

    // The page's own form, unchanged, changes nothing (and says so in the log).
    let head = w.audit_head().await;
    let r = post(&w, &admin, "/site", &site_form(&csrf, &[])).await;
    assert_eq!(r.status(), 303, "{}", body(&r));
    assert_eq!(settings(&w).await, callrec_store::SiteSettings::default());
    let entries = w.audit_since(head).await;
    assert!(
        entries
            .iter()
            .any(|e| e.action == "site.update" && detail(&e.detail)["unchanged"] == true),
        "{entries:?}"
    );

    let head = w.audit_head().await;
    let form = site_form(
        &csrf,
        &[
            ("retention_days", "30"),
            ("legal_hold", "1"),
            ("pause_behavior", "skip"),
            ("max_pause_seconds", "120"),
            ("quota", "512"),
            ("quota_unit", "MiB"),
            ("quota_policy", "evict_oldest"),
            ("timezone", "Europe/London"),
        ],
    );
    // The checked box's `1` comes after its hidden `0`, as a browser sends them.
    let mut form = form;
    form.insert(8, ("legal_hold", "0"));
    let r = post(&w, &admin, "/site", &form).await;
    assert_eq!(r.status(), 303, "{}", body(&r));
    assert_eq!(header(&r, "location"), Some("/site?done=saved"));
    let s = settings(&w).await;
    assert_eq!(s.retention_days, 30);
    assert!(s.legal_hold);
    assert_eq!(s.pause_behavior, callrec_model::PauseBehavior::Skip);
    assert_eq!(s.max_pause_seconds, 120);
    assert_eq!(s.quota_bytes, 512 << 20);
    assert_eq!(s.quota_policy, callrec_model::QuotaPolicy::EvictOldest);
    assert_eq!(s.timezone, chrono_tz::Europe::London);
    assert!(s.enabled);
    let entry = w
        .audit_since(head)
        .await
        .into_iter()
        .find(|e| e.action == "site.update")
        .expect("audited");
    assert_eq!(entry.actor, "9000@default");
    assert_eq!(detail(&entry.detail)["retention_days"]["from"], 180);
    assert_eq!(detail(&entry.detail)["retention_days"]["to"], 30);
    assert_eq!(detail(&entry.detail)["legal_hold"]["to"], true);
    // The store's rule that goes with it: expiries follow the legal hold (seven years).
    let expires = w
        .store
        .read(move |v| v.recording(&rec.id, &Access::system("test")))
        .await
        .unwrap()
        .expires_at
        .unwrap();
    assert!(
        expires > t0() + chrono::Duration::days(365 * 6),
        "{expires}"
    );
    let html = body(&get(&w, &admin, "/site?done=saved").await);
    assert!(html.contains("role=\"status\">Saved."));
    assert!(html.contains("value=\"512\"") && html.contains("<option value=\"MiB\" selected>"));
    // The API reads the same settings.
    let (_, api) = w.json(w.req(&w.admin, "GET", "/api/v1/site")).await;
    assert_eq!(api["retention_days"], 30);
    assert_eq!(api["pause_behavior"], "skip");
}

#[tokio::test]
async fn a_refused_site_setting_changes_nothing_and_comes_back_as_typed() {
    let w = World::new();
    set_password(&w, &w.admin);
    let admin = admin_session(&w).await;
    let csrf = csrf_of(&body(&get(&w, &admin, "/site").await));
    for (changes, status, says) in [
        (&[("retention_days", "0")][..], 422, "retention_days"),
        (&[("retention_days", "40000")], 422, "retention_days"),
        (&[("max_pause_seconds", "999999")], 422, "max_pause_seconds"),
        (&[("timezone", "Mars/Olympus")], 400, "Time zone"),
        (&[("national_prefix", "<b>x")], 422, "national_prefix"),
        (&[("quota", "0")], 422, "quota_bytes"),
    ] {
        let head = w.audit_head().await;
        let mut changes = changes.to_vec();
        changes.push(("pause_behavior", "skip"));
        let r = post(&w, &admin, "/site", &site_form(&csrf, &changes)).await;
        assert_eq!(r.status(), status, "{changes:?}: {}", body(&r));
        let html = body(&r);
        assert!(
            html.contains("role=\"alert\"") && html.contains(says),
            "{says}: {html}"
        );
        assert!(
            html.contains("value=\"skip\" checked"),
            "the form as it was sent: {html}"
        );
        assert!(!html.contains("<b>x"), "typed text is escaped");
        assert_eq!(settings(&w).await, callrec_store::SiteSettings::default());
        assert!(
            !w.audit_since(head)
                .await
                .iter()
                .any(|e| e.action == "site.update")
        );
    }
}

// ---- who may ---------------------------------------------------------------------------

/// An admin page or form: method, path, form fields, and the status for nobody, user A,
/// user B and the admin.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, [u16; 4]);

/// Each admin page and form, asked by a stranger (no session), user A, user B and the admin:
/// strangers go to the sign-in page, users get 403 and change nothing, the admin gets the
/// page or the change. Forms carry the asker's own CSRF token.
#[tokio::test]
async fn every_admin_page_and_form_answers_each_person_as_their_role_allows() {
    let w = World::new();
    for p in [&w.alice, &w.bob, &w.admin] {
        set_password(&w, p);
    }
    let alice = session(&w, &w.alice).await;
    let bob = session(&w, &w.bob).await;
    let admin = admin_session(&w).await;
    let new = "another good passphrase";
    let cases: [Case; 7] = [
        ("GET", "/users", vec![], [303, 403, 403, 200]),
        ("GET", "/users/1001", vec![], [303, 403, 403, 200]),
        ("GET", "/users/1002", vec![], [303, 403, 403, 200]),
        (
            "POST",
            "/users/1002",
            vec![("mode", "always")],
            [303, 403, 403, 303],
        ),
        ("GET", "/site", vec![], [303, 403, 403, 200]),
        (
            "POST",
            "/site",
            vec![("retention_days", "90")],
            [303, 403, 403, 303],
        ),
        // Last: it ends bob's session.
        (
            "POST",
            "/users/1002/password",
            vec![("password", new), ("confirm", new)],
            [303, 403, 403, 303],
        ),
    ];
    for (method, path, fields, expect) in cases {
        for (i, cookie) in [None, Some(&alice), Some(&bob), Some(&admin)]
            .into_iter()
            .enumerate()
        {
            let before = (settings(&w).await, user(&w, "1002").await);
            let r = match (method, cookie) {
                ("GET", Some(c)) => get(&w, c, path).await,
                ("GET", None) => w.send(w.anon("GET", path)).await,
                (_, None) => {
                    w.send(
                        w.anon("POST", path)
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(serde_urlencoded::to_string(&fields).unwrap()),
                    )
                    .await
                }
                (_, Some(c)) => {
                    let csrf = csrf_of(&body(&get(&w, c, "/settings").await));
                    let mut fields = fields.clone();
                    fields.push(("csrf", &csrf));
                    post(&w, c, path, &fields).await
                }
            };
            assert_eq!(
                r.status(),
                expect[i],
                "{method} {path} as #{i}: {}",
                body(&r)
            );
            if expect[i] == 303 && i == 0 {
                assert!(
                    header(&r, "location").unwrap().starts_with("/signin"),
                    "{method} {path}"
                );
            }
            if i < 3 {
                assert_eq!(
                    (settings(&w).await, user(&w, "1002").await),
                    before,
                    "{method} {path} as #{i}"
                );
            }
        }
    }
    // What the admin's forms did.
    assert_eq!(settings(&w).await.retention_days, 90);
    assert_eq!(user(&w, "1002").await.mode, RecordingMode::Always);
    assert_eq!(sign_in_from(&w, "1002", new, 7).await.status(), 303);
    // The admin of another site sees and changes none of this site's users.
    set_password(&w, &w.stranger);
    let r = sign_in_from(&w, "9000@other", PASSWORD, 8).await;
    let stranger = support::portal::cookie_value(&r, "callrec_session").unwrap();
    assert_eq!(get(&w, &stranger, "/users/1001").await.status(), 404);
    let csrf = csrf_of(&body(&get(&w, &stranger, "/settings").await));
    let r = post(
        &w,
        &stranger,
        "/users/1001",
        &[("role", "admin"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = post(
        &w,
        &stranger,
        "/users/1001/password",
        &[("password", new), ("confirm", new), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(user(&w, "1001").await.role, Role::User);
    assert_eq!(sign_in_from(&w, "1001", PASSWORD, 9).await.status(), 303);
}

/// No admin form works without the session's own CSRF token, even for the admin.
#[tokio::test]
async fn no_admin_form_works_without_the_sessions_csrf_token() {
    let w = World::new();
    set_password(&w, &w.admin);
    set_password(&w, &w.alice);
    let admin = admin_session(&w).await;
    let alice = session(&w, &w.alice).await;
    let alices_token = csrf_of(&body(&get(&w, &alice, "/settings").await));
    let new = "another good passphrase";
    for token in [None, Some("0000"), Some(alices_token.as_str())] {
        for (path, fields) in [
            ("/users/1001", vec![("role", "admin")]),
            (
                "/users/1001/password",
                vec![("password", new), ("confirm", new)],
            ),
            ("/site", vec![("retention_days", "90")]),
        ] {
            let mut fields = fields;
            if let Some(t) = token {
                fields.push(("csrf", t));
            }
            let r = post(&w, &admin, path, &fields).await;
            assert_eq!(r.status(), 403, "{path} with {token:?}");
            assert!(body(&r).contains("did not come from your portal session"));
        }
    }
    assert_eq!(user(&w, "1001").await.role, Role::User);
    assert_eq!(settings(&w).await.retention_days, 180);
    assert_eq!(
        get(&w, &alice, "/recordings").await.status(),
        200,
        "her password stands"
    );
}
