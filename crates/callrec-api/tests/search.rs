//! `GET /recordings` over HTTP: every filter alone, every pair of filters, all of them at
//! once, each number written every way people write it, and keyset pagination that neither
//! skips nor repeats a row while recordings are being added.
//!
//! The expected results come from a plain model of the fixtures (what each recording is),
//! filtered in the test, so a query is checked against what it means rather than against
//! what the server happened to return before.

mod support;

use std::collections::{BTreeSet, HashSet};

use callrec_model::Direction;
use callrec_store::User;
use callrec_testkit::wait::eventually;
use callrec_testkit::wav;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use support::{World, error_code, record_with, t0};

/// What the test knows of a fixture recording.
#[derive(Debug, Clone)]
struct Known {
    id: String,
    user: String,
    direction: Direction,
    /// E.164 or extension, as the store should normalise them.
    from: String,
    to: String,
    started_at: DateTime<Utc>,
    duration_ms: u64,
    notes: Vec<String>,
    hold: bool,
}

/// External parties, as the switch presents them (four different forms) and normalised.
const EXTERNAL: [(&str, &str); 4] = [
    ("01234567890", "+441234567890"),
    ("+441234567891", "+441234567891"),
    ("441234567892", "+441234567892"),
    ("01234 567893", "+441234567893"),
];

/// 36 recordings over three days, alternating alice and bob, every direction, five
/// durations, some notes, some holds, and pairs that start at the same instant.
async fn fixtures(w: &mut World) -> Vec<Known> {
    let mut known = Vec::new();
    for i in 0..36u32 {
        let owner: User = if i % 2 == 0 {
            w.alice.user.clone()
        } else {
            w.bob.user.clone()
        };
        let other = if i % 2 == 0 { "1002" } else { "1001" };
        let did = if i % 2 == 0 {
            "02079460001"
        } else {
            "02079460002"
        };
        let did_norm = if i % 2 == 0 {
            "+442079460001"
        } else {
            "+442079460002"
        };
        let (ext_raw, ext_norm) = EXTERNAL[(i % 4) as usize];
        let direction =
            [Direction::Inbound, Direction::Outbound, Direction::Internal][(i % 3) as usize];
        let (from, to, from_n, to_n) = match direction {
            Direction::Inbound => (ext_raw, did, ext_norm, did_norm),
            Direction::Outbound => (
                owner.extension.as_str(),
                ext_raw,
                owner.extension.as_str(),
                ext_norm,
            ),
            Direction::Internal => (
                owner.extension.as_str(),
                other,
                owner.extension.as_str(),
                other,
            ),
        };
        // Two recordings per hour slot: pairs share a start instant (the cursor's tie-break).
        let started_at = t0() + Duration::hours(i64::from(i / 2) * 4);
        let duration_ms = u64::from(i % 5 + 1) * 1000;
        let rec = w.record_dir(&owner, from, to, started_at, duration_ms as u32, direction);
        assert_eq!(rec.duration_ms, Some(duration_ms));
        let mut notes = Vec::new();
        if i % 4 == 0 {
            notes.push(format!("callback number {i}"));
        }
        if i % 6 == 1 {
            notes.push("Card payment DECLINED".to_owned());
        }
        for text in &notes {
            let (s, _) = w
                .json(
                    w.req(
                        &w.admin,
                        "POST",
                        &format!("/api/v1/recordings/{}/notes", rec.id),
                    )
                    .json(&json!({ "text": text })),
                )
                .await;
            assert_eq!(s, 201);
        }
        let hold = i % 5 == 0;
        if hold {
            let (s, _) = w
                .json(
                    w.req(
                        &w.admin,
                        "PUT",
                        &format!("/api/v1/recordings/{}/hold", rec.id),
                    )
                    .json(&json!({"hold": true})),
                )
                .await;
            assert_eq!(s, 200);
        }
        known.push(Known {
            id: rec.id.to_string(),
            user: owner.extension.clone(),
            direction,
            from: from_n.to_owned(),
            to: to_n.to_owned(),
            started_at,
            duration_ms,
            notes,
            hold,
        });
    }
    known
}

/// Every id of a search, following pages, and checking order as it goes.
async fn search(w: &World, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut last: Option<DateTime<Utc>> = None;
    for _ in 0..1000 {
        let mut path = format!("/api/v1/recordings?{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, page) = w.json(w.req(&w.admin, "GET", &path)).await;
        assert_eq!(s, 200, "{path}: {page}");
        for item in page["items"].as_array().unwrap() {
            let at: DateTime<Utc> = item["started_at"].as_str().unwrap().parse().unwrap();
            assert!(last.is_none_or(|l| at <= l), "{path}: not newest first");
            last = Some(at);
            ids.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
    panic!("{query}: pagination does not end");
}

/// The model's answer, newest first (ties: later-made first, as the index breaks them).
fn expect(known: &[Known], keep: impl Fn(&Known) -> bool) -> Vec<String> {
    let mut v: Vec<(DateTime<Utc>, usize, String)> = known
        .iter()
        .enumerate()
        .filter(|(_, k)| keep(k))
        .map(|(i, k)| (k.started_at, i, k.id.clone()))
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    v.into_iter().map(|(_, _, id)| id).collect()
}

/// One filter: its query text and what it means.
struct Filter {
    query: String,
    keep: Box<dyn Fn(&Known) -> bool>,
}

fn filter(query: impl Into<String>, keep: impl Fn(&Known) -> bool + 'static) -> Filter {
    Filter {
        query: query.into(),
        keep: Box::new(keep),
    }
}

fn enc(s: &str) -> String {
    s.replace('+', "%2B")
        .replace(' ', "%20")
        .replace('(', "%28")
        .replace(')', "%29")
        .replace(':', "%3A")
}

fn filters() -> Vec<Filter> {
    let day2: DateTime<Utc> = "2024-05-02T00:00:00Z".parse().unwrap();
    let since_instant = t0() + Duration::hours(30);
    vec![
        filter("number=01234567891", |k| {
            k.from == "+441234567891" || k.to == "+441234567891"
        }),
        filter(format!("from={}", enc("+441234567892")), |k| {
            k.from == "+441234567892"
        }),
        filter(format!("to={}", enc("(01234) 567893")), |k| {
            k.to == "+441234567893"
        }),
        filter("user=1002", |k| k.user == "1002"),
        filter("since=2024-05-02", move |k| k.started_at >= day2),
        filter("until=2024-05-02", move |k| {
            k.started_at < day2 + Duration::days(1)
        }),
        filter(
            format!("since={}", enc(&since_instant.to_rfc3339())),
            move |k| k.started_at >= since_instant,
        ),
        filter("direction=inbound", |k| k.direction == Direction::Inbound),
        filter("min_duration=3", |k| k.duration_ms >= 3000),
        filter("has_notes=true", |k| !k.notes.is_empty()),
        filter("has_notes=false", |k| k.notes.is_empty()),
        filter("hold=true", |k| k.hold),
        filter("hold=false", |k| !k.hold),
        filter("q=declined", |k| {
            k.notes
                .iter()
                .any(|n| n.to_lowercase().contains("declined"))
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_alone_in_pairs_and_all_together_finds_what_it_means() {
    let mut w = World::new();
    let known = fixtures(&mut w).await;
    assert_eq!(search(&w, "limit=500").await, expect(&known, |_| true));

    let fs = filters();
    for f in &fs {
        let got = search(&w, &f.query).await;
        let want = expect(&known, &f.keep);
        assert!(
            !want.is_empty(),
            "{}: the fixtures should match something",
            f.query
        );
        assert_eq!(got, want, "{}", f.query);
    }
    let mut nonempty_pairs = 0;
    for (i, a) in fs.iter().enumerate() {
        for b in &fs[i + 1..] {
            let name = |f: &Filter| f.query.split('=').next().unwrap().to_owned();
            if name(a) == name(b) {
                // One value per parameter (a repeated one is a 400, tested below).
                continue;
            }
            let query = format!("{}&{}", a.query, b.query);
            let want = expect(&known, |k| (a.keep)(k) && (b.keep)(k));
            nonempty_pairs += usize::from(!want.is_empty());
            assert_eq!(search(&w, &query).await, want, "{query}");
        }
    }
    assert!(nonempty_pairs > 40, "pairs should mostly match something");

    // Everything at once, with small pages.
    let query = format!(
        "number={}&user=1001&since=2024-05-01&until=2024-05-03&direction=outbound&min_duration=1&has_notes=true&hold=false&q=callback&limit=1",
        enc("+44 (0)1234 567890")
    );
    let want = expect(&known, |k| {
        (k.from == "+441234567890" || k.to == "+441234567890")
            && k.user == "1001"
            && k.direction == Direction::Outbound
            && !k.hold
            && k.notes.iter().any(|n| n.contains("callback"))
    });
    assert!(!want.is_empty());
    assert_eq!(search(&w, &query).await, want);
}

#[tokio::test]
async fn every_way_of_writing_a_number_finds_the_same_recordings() {
    let mut w = World::new();
    let known = fixtures(&mut w).await;
    let want = expect(&known, |k| {
        k.from == "+441234567891" || k.to == "+441234567891"
    });
    assert!(want.len() >= 4);
    for form in [
        "01234567891",
        "441234567891",
        "+441234567891",
        "(01234) 567891",
        "01234 567891",
        "0044 1234 567891",
        "+44 (0)1234 567891",
        "01234-567-891",
    ] {
        assert_eq!(
            search(&w, &format!("number={}", enc(form))).await,
            want,
            "number={form}"
        );
    }
    // The from and to filters too, and the switch's own forms on the stored side.
    let want_to = expect(&known, |k| k.to == "+441234567893");
    for form in [
        "01234567893",
        "441234567893",
        "+441234567893",
        "(01234) 567893",
    ] {
        assert_eq!(
            search(&w, &format!("to={}", enc(form))).await,
            want_to,
            "to={form}"
        );
    }
    // An extension stays an extension.
    let want_ext = expect(&known, |k| k.from == "1001" || k.to == "1001");
    assert!(!want_ext.is_empty());
    assert_eq!(search(&w, "number=1001").await, want_ext);
    // A number nobody called: nothing.
    assert!(search(&w, "number=07700900999").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_while_recordings_are_added_neither_skips_nor_repeats() {
    let mut w = World::new();
    let alice = w.alice.user.clone();
    // 60 recordings, three to each start instant, so pages end inside groups of ties.
    let mut before: Vec<(DateTime<Utc>, String)> = Vec::new();
    for i in 0..60i64 {
        let at = t0() + Duration::minutes((i / 3) * 10);
        let (rec, _) = w.record(&alice, "1001", "01234567891", at, 200);
        before.push((at, rec.id.to_string()));
    }
    let newest = before.last().unwrap().0;

    // A writer adds recordings the whole time, at instants newer than everything, inside
    // the range already paged, and inside the range not yet paged.
    let store = w.store.clone();
    let spool = w.spool.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count2 = count.clone();
    let owner = alice.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut added = Vec::new();
        let mut n = 0i64;
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) && n < 200 {
            let at = match n % 3 {
                0 => newest + Duration::minutes(n + 1),
                1 => t0() + Duration::minutes(5 + 10 * (n % 20)),
                _ => t0() + Duration::minutes(10 * (n % 20)),
            };
            let rec = record_with(
                &store,
                &spool,
                &owner,
                "1001",
                "01234567899",
                at,
                &wav::noise(100, 1000 + n as u64),
                Direction::Outbound,
            );
            added.push((at, rec.id.to_string()));
            count2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            n += 1;
        }
        added
    });

    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/api/v1/recordings?limit=4".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, page) = w.json(w.req(&w.admin, "GET", &path)).await;
        assert_eq!(s, 200);
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        // At least one recording is added between any two pages.
        let added_so_far = count.load(std::sync::atomic::Ordering::SeqCst);
        eventually("the writer to add a recording", || {
            count.load(std::sync::atomic::Ordering::SeqCst) != added_so_far
        })
        .await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 500, "pagination does not end");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let added = writer.await.unwrap();
    assert!(!added.is_empty(), "the writer added nothing while paging");

    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a row was repeated");
    let seen_set: BTreeSet<&String> = seen.iter().collect();
    for (_, id) in &before {
        assert!(
            seen_set.contains(id),
            "row {id} that existed before paging was skipped"
        );
    }
    // Whatever was seen is a recording that exists; rows added behind the cursor were found
    // by later pages.
    let all: HashSet<&String> = before
        .iter()
        .chain(added.iter())
        .map(|(_, id)| id)
        .collect();
    assert!(seen.iter().all(|id| all.contains(id)));
    assert!(
        added.iter().any(|(_, id)| seen_set.contains(id)),
        "no row added during paging was reached by a later page"
    );
    assert!(pages >= 15, "{pages} pages");
}

#[tokio::test]
async fn a_bad_cursor_or_limit_is_a_400_not_an_empty_page() {
    let w = World::new();
    for q in [
        "cursor=not-a-cursor",
        "cursor=3a",
        "limit=0",
        "limit=501",
        "limit=ten",
        "since=2024-13-01",
        "until=tomorrow",
        "direction=up",
        "min_duration=-3",
        "hold=perhaps",
        "number=1&number=2",
        "colour=blue",
    ] {
        let (s, body) = w
            .json(w.req(&w.admin, "GET", &format!("/api/v1/recordings?{q}")))
            .await;
        assert_eq!(s, 400, "{q}: {body}");
        let code = error_code(&body);
        assert!(code == "bad_request" || code == "bad_cursor", "{q}: {code}");
    }
}

#[tokio::test]
async fn tombstones_are_found_by_state_and_dates_use_the_site_time_zone() {
    let mut w = World::new();
    let alice = w.alice.user.clone();
    // 23:30 UTC on 1 May is 00:30 on 2 May in London (BST).
    let late = t0() + Duration::minutes(13 * 60 + 30);
    let (rec, _) = w.record(&alice, "1001", "01234567891", late, 300);
    let (s, _) = w
        .json(
            w.req(&w.admin, "PUT", "/api/v1/site")
                .json(&json!({"timezone": "Europe/London"})),
        )
        .await;
    assert_eq!(s, 200);
    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, page) = w
        .json(w.req(&w.admin, "GET", "/api/v1/recordings?since=2024-05-02"))
        .await;
    assert_eq!(ids(&page), [rec.id.to_string()]);
    let (_, page) = w
        .json(w.req(&w.admin, "GET", "/api/v1/recordings?until=2024-05-01"))
        .await;
    assert!(ids(&page).is_empty());

    let (s, _) = w
        .json(w.req(
            &w.admin,
            "DELETE",
            &format!("/api/v1/recordings/{}?reason=test", rec.id),
        ))
        .await;
    assert_eq!(s, 200);
    let (_, page) = w.json(w.req(&w.admin, "GET", "/api/v1/recordings")).await;
    assert!(
        ids(&page).is_empty(),
        "a deleted recording is not listed by default"
    );
    let (_, page) = w
        .json(w.req(&w.admin, "GET", "/api/v1/recordings?state=deleted"))
        .await;
    assert_eq!(ids(&page), [rec.id.to_string()]);
    assert_eq!(page["items"][0]["state"], "deleted");
}
