//! The portal's recordings page over the store benchmark's 1,000,000-recording index (SPEC §8:
//! first page, any filter, p95 ≤ 50 ms server time; page weight ≤ 100 KB without audio).
//!
//! Each request is what a browser sends: the session cookie checked against the index, the
//! filter parsed (one box for a number in any form or note text, a date range), the search,
//! the audit entry written and committed, the page rendered from its template, over a
//! keep-alive loopback connection. The figure is the whole round trip on loopback, so it
//! bounds the server time from above. Page weight is the HTML plus the stylesheet it links.
//!
//! `cargo bench -p callrec-api --bench portal`; `CALLREC_BENCH_ROWS` (default 1,000,000),
//! `CALLREC_BENCH_QUERIES` per filter (default 1,000), `CALLREC_BENCH_DIR` for the data (set
//! it to the store benchmark's to share its generated index).

#[path = "../../callrec-store/benches/support/mod.rs"]
mod store_support;
mod support;

use std::sync::Arc;
use std::time::Instant;

use callrec_model::Role;
use callrec_store::{NewUser, PortalPolicy, SignIn, SignInAttempt, Store, StoreHandle};
use chrono::DateTime;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use store_support::{
    GENERATED_NOW_MS, Latencies, YEAR_MS, env_usize, generated_index, number_pool,
};
use support::{Client, enc, start_api};

const PASSWORD: &str = "bench-password-0123";

/// A session cookie for `extension` (its password set first).
fn session(store: &mut Store, extension: &str) -> String {
    store
        .set_password("default", extension, PASSWORD, "bench")
        .expect("password");
    let attempt = SignInAttempt {
        account: extension.to_owned(),
        password: PASSWORD.to_owned(),
        address: "127.0.0.1".to_owned(),
    };
    match store
        .sign_in(&attempt, &PortalPolicy::default())
        .expect("sign in")
    {
        SignIn::Granted(s) => format!("Cookie: callrec_session={}\r\n", s.secret),
        other => panic!("sign-in refused: {other:?}"),
    }
}

fn main() {
    let rows = env_usize("CALLREC_BENCH_ROWS", 1_000_000);
    let queries = env_usize("CALLREC_BENCH_QUERIES", 1_000);
    let dir = generated_index(rows);
    let mut store = Store::open(&dir).expect("open");
    if store.view().user("default", "9000").is_err() {
        let mut new = NewUser::new("default", "9000");
        new.role = Role::Admin;
        store.add_user(&new, "bench").expect("admin");
    }
    let admin = session(&mut store, "9000");
    let users: Vec<String> = store
        .view()
        .users(Some("default"))
        .expect("users")
        .into_iter()
        .filter(|u| u.role == Role::User)
        .take(20)
        .map(|u| u.extension)
        .collect();
    let user_sessions: Vec<String> = users.iter().map(|u| session(&mut store, u)).collect();
    let handle = StoreHandle::new(store);
    let addr = start_api(callrec_api::ApiState::new(
        handle,
        Arc::new(callrec_api::NoDaemon),
    ));
    let mut client = Client::connect(addr);
    let pool = number_pool();
    let mut rng = StdRng::seed_from_u64(7);
    let mut body = Vec::new();

    // The stylesheet every page links: part of a page's weight (fetched once, then cached).
    let css = client.get_with("/assets/portal.css", "", &mut body, false);
    assert_eq!(css.status, 200, "the stylesheet");
    println!(
        "portal recordings page over {rows} recordings, {queries} requests per filter, one keep-alive client"
    );
    type Make<'a> = Box<dyn FnMut(&mut StdRng) -> (String, &'a str) + 'a>;
    let kinds: Vec<(&str, Make)> = vec![
        (
            "admin, no filter (newest)",
            Box::new(|_: &mut StdRng| ("/recordings".to_owned(), admin.as_str())),
        ),
        (
            "admin, number (any form)",
            Box::new(|rng: &mut StdRng| {
                let (raw, norm) = &pool[rng.random_range(0..pool.len())];
                let form = match rng.random_range(0..3) {
                    0 => raw.clone(),
                    1 => norm.clone(),
                    _ => norm.trim_start_matches('+').to_owned(),
                };
                (format!("/recordings?q={}", enc(&form)), admin.as_str())
            }),
        ),
        (
            "admin, date range (1 day)",
            Box::new(|rng: &mut StdRng| {
                let start = GENERATED_NOW_MS - rng.random_range(0..YEAR_MS);
                let day = DateTime::from_timestamp_millis(start)
                    .expect("time")
                    .date_naive();
                (
                    format!("/recordings?since={day}&until={day}"),
                    admin.as_str(),
                )
            }),
        ),
        (
            "admin, note text",
            Box::new(|rng: &mut StdRng| {
                let words = ["refund", "complaint", "escalated", "callback", "dispute"];
                let word = words[rng.random_range(0..words.len())];
                (format!("/recordings?q={word}"), admin.as_str())
            }),
        ),
        (
            "a user's own",
            Box::new(|rng: &mut StdRng| {
                let s = &user_sessions[rng.random_range(0..user_sessions.len())];
                ("/recordings".to_owned(), s.as_str())
            }),
        ),
    ];
    let mut heaviest = 0;
    for (name, mut make) in kinds {
        let mut times = Latencies(Vec::with_capacity(queries));
        let mut rows_shown = 0usize;
        for i in 0..queries + 50 {
            let (path, cookie) = make(&mut rng);
            let t = Instant::now();
            let reply = client.get_with(&path, cookie, &mut body, true);
            let took = t.elapsed();
            assert_eq!(
                reply.status,
                200,
                "{path}: {}",
                String::from_utf8_lossy(&body)
            );
            heaviest = heaviest.max(reply.len);
            if i >= 50 {
                times.0.push(took);
                rows_shown += String::from_utf8_lossy(&body).matches("<tr").count();
            }
        }
        println!(
            "{name:<28} {}  (rows per page, mean {:.1})",
            times.summary(),
            rows_shown as f64 / queries as f64 - 1.0
        );
    }
    println!(
        "page weight: heaviest page {} B + stylesheet {} B = {:.1} KB (target <= 100 KB)",
        heaviest,
        css.len,
        (heaviest + css.len) as f64 / 1024.0
    );
}
