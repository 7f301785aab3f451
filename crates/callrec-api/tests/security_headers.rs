//! The headers a browser needs to keep recordings and their metadata safe, on every reply:
//! nothing about a call (audio, numbers, notes) is written to a browser's or a proxy's disk
//! cache, no reply is sniffed into something executable, framed by another site, or names
//! its URL to the next site in a `Referer`. Regulated customers open the API from shared
//! agent workstations; these headers are what keeps a recording from outliving the session.

mod support;

use bytes::Bytes;
use support::{World, t0};
use warp::http::Response;

fn header<'a>(r: &'a Response<Bytes>, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header (status {})", r.status()))
        .to_str()
        .unwrap()
}

/// What every reply must carry, whatever route or error produced it.
fn assert_hardened(what: &str, r: &Response<Bytes>) {
    assert_eq!(header(r, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(r, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(r, "referrer-policy"), "no-referrer", "{what}");
    let csp = header(r, "content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
}

/// Personal data: never stored by any cache, the browser's own included.
fn assert_not_stored(what: &str, r: &Response<Bytes>) {
    let cc = header(r, "cache-control");
    assert!(
        cc.split(',')
            .any(|d| d.trim().eq_ignore_ascii_case("no-store")),
        "{what}: Cache-Control is {cc:?}"
    );
}

#[tokio::test]
async fn recording_metadata_search_and_notes_are_never_cached_and_never_framed() {
    let mut w = World::new();
    let alice = w.alice.user.clone();
    let (rec, _) = w.record(&alice, "02079460001", "01632960001", t0(), 300);
    let id = rec.id.to_string();

    let note = w.req(&w.alice, "POST", &format!("/api/v1/recordings/{id}/notes"));
    let r = w
        .send(note.json(&serde_json::json!({"text": "card read out"})))
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.body());
    assert_hardened("add a note", &r);
    assert_not_stored("add a note", &r);

    for path in [
        format!("/api/v1/recordings/{id}"),
        "/api/v1/recordings?number=02079460001".to_owned(),
        "/api/v1/me".to_owned(),
        "/api/v1/calls".to_owned(),
        "/api/v1/usage".to_owned(),
    ] {
        let r = w.send(w.req(&w.alice, "GET", &path)).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_hardened(&path, &r);
        assert_not_stored(&path, &r);
    }
}

#[tokio::test]
async fn audio_played_ranged_revalidated_or_downloaded_is_never_stored() {
    let mut w = World::new();
    let alice = w.alice.user.clone();
    let (rec, _) = w.record(&alice, "02079460001", "01632960001", t0(), 300);
    let audio = format!("/api/v1/recordings/{}/audio", rec.id);
    let etag = format!("\"{}\"", rec.sha256.unwrap());

    let plain: &[(&str, &str)] = &[];
    let cases = [
        ("play", audio.clone(), plain, 200),
        ("range", audio.clone(), &[("range", "bytes=0-9")][..], 206),
        (
            "revalidate",
            audio.clone(),
            &[("if-none-match", etag.as_str())][..],
            304,
        ),
        ("download", format!("{audio}?download=1"), plain, 200),
    ];
    for (what, path, extra, status) in cases {
        let mut req = w.req(&w.alice, "GET", &path);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let r = w.send(req).await;
        assert_eq!(r.status(), status, "{what}");
        assert_hardened(what, &r);
        assert_not_stored(what, &r);
    }
}

#[tokio::test]
async fn errors_and_the_unauthenticated_routes_are_hardened_too() {
    let w = World::new();
    let cases = [
        ("no token", w.anon("GET", "/api/v1/recordings"), 401),
        ("unknown route", w.anon("GET", "/nowhere"), 404),
        (
            "bad input echoed back",
            w.req(&w.alice, "GET", "/api/v1/recordings?since=%3Cscript%3E"),
            400,
        ),
        ("liveness", w.anon("GET", "/healthz"), 200),
        ("openapi", w.anon("GET", "/openapi.json"), 200),
    ];
    for (what, req, status) in cases {
        let r = w.send(req).await;
        assert_eq!(r.status(), status, "{what}");
        assert_hardened(what, &r);
        assert_not_stored(what, &r);
    }
}

#[tokio::test]
async fn error_messages_that_echo_input_are_json_never_html() {
    // A message built from the request (here a bad date) goes back as JSON text; with
    // nosniff above, no browser renders it as a page.
    let w = World::new();
    let r = w
        .send(w.req(
            &w.alice,
            "GET",
            "/api/v1/recordings?since=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
        ))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "content-type"), "application/json");
}
