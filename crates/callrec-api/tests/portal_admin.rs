//! The portal's admin side as a browser meets it: the recordings page's filter panel (each
//! filter narrows the list as the API's search does, and survives the page's links), the
//! users page (mode, role, password reset) and the site settings page, each refused to
//! users, to strangers and to forms without the session's CSRF token, and audited as the
//! API and the command line audit the same change.

mod support;

use callrec_model::{Direction, RecordingId};
use callrec_store::Access;
use support::portal::{admin_session, body, get, header, session, set_password};
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
