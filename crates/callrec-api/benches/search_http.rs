//! Search over HTTP on the store benchmark's 1,000,000-recording index (SPEC §8: p95 ≤ 20 ms
//! over HTTP), beside the in-process figure for the same queries in the same run.
//!
//! Each HTTP request is the whole of what a client sees: the token checked against the
//! index, the parameters parsed, the search, one audit entry written and committed
//! (synchronous = FULL), the page as JSON, over a keep-alive loopback connection.
//!
//! `cargo bench -p callrec-api --bench search_http`; `CALLREC_BENCH_ROWS` (default
//! 1,000,000), `CALLREC_BENCH_QUERIES` per filter (default 2,000), `CALLREC_BENCH_DIR` for
//! the data (set it to the store benchmark's to share its generated index).

#[path = "../../callrec-store/benches/support/mod.rs"]
mod store_support;
mod support;

use std::sync::Arc;
use std::time::Instant;

use callrec_model::Role;
use callrec_store::{Access, NewUser, Scope, SearchQuery, Store, StoreHandle};
use chrono::{DateTime, Duration, SecondsFormat};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use store_support::{
    GENERATED_NOW_MS, Latencies, YEAR_MS, env_usize, generated_index, number_pool,
};
use support::{Client, enc, start_api};

fn main() {
    let rows = env_usize("CALLREC_BENCH_ROWS", 1_000_000);
    let queries = env_usize("CALLREC_BENCH_QUERIES", 2_000);
    let dir = generated_index(rows);
    let mut store = Store::open(&dir).expect("open");
    let site = store.view().site("default").expect("site").id;
    // An admin to search with, and a token for it and for every user.
    let admin = match store.view().user("default", "9000") {
        Ok(u) => u,
        Err(_) => {
            let mut new = NewUser::new("default", "9000");
            new.role = Role::Admin;
            store.add_user(&new, "bench").expect("admin")
        }
    };
    let system = Access::system("bench");
    let admin_token = store
        .create_token(admin.id, "bench", &system)
        .expect("token")
        .secret;
    let users: Vec<_> = store
        .view()
        .users(Some("default"))
        .expect("users")
        .into_iter()
        .filter(|u| u.role == Role::User)
        .take(50)
        .collect();
    let user_tokens: Vec<(callrec_store::User, String)> = users
        .iter()
        .map(|u| {
            let t = store.create_token(u.id, "bench", &system).expect("token");
            (u.clone(), t.secret)
        })
        .collect();
    let handle = StoreHandle::new(store);
    let addr = start_api(callrec_api::ApiState::new(
        handle.clone(),
        Arc::new(callrec_api::NoDaemon),
    ));
    let mut client = Client::connect(addr);
    let pool = number_pool();
    let mut rng = StdRng::seed_from_u64(99);
    let admin_access = Access {
        actor: "bench".into(),
        scope: Scope::Site(site),
    };

    println!(
        "search over {rows} recordings, {queries} queries per filter, first page of 50, one keep-alive client"
    );
    println!(
        "{:<26} {:<60} in-process (ReadView::search)",
        "filter", "HTTP (auth + search + audit + JSON)"
    );
    /// A query as the HTTP client sends it and as the store takes it.
    type Make<'a> = Box<dyn FnMut(&mut StdRng) -> (String, String, Access, SearchQuery) + 'a>;
    let kinds: Vec<(&str, Make)> = vec![
        (
            "number (any form)",
            Box::new(|rng: &mut StdRng| {
                let (raw, norm) = &pool[rng.random_range(0..pool.len())];
                let form = match rng.random_range(0..4) {
                    0 => raw.clone(),
                    1 => norm.clone(),
                    2 => norm.trim_start_matches('+').to_owned(),
                    _ => format!("({}) {}", &raw[..5], &raw[5..]),
                };
                (
                    format!("/api/v1/recordings?number={}", enc(&form)),
                    admin_token.clone(),
                    admin_access.clone(),
                    SearchQuery {
                        number: Some(form),
                        ..Default::default()
                    },
                )
            }),
        ),
        (
            "date range (1 day)",
            Box::new(|rng: &mut StdRng| {
                let start = GENERATED_NOW_MS - rng.random_range(0..YEAR_MS);
                let since = DateTime::from_timestamp_millis(start).expect("time");
                let until = since + Duration::days(1);
                (
                    format!(
                        "/api/v1/recordings?since={}&until={}",
                        enc(&since.to_rfc3339_opts(SecondsFormat::Millis, true)),
                        enc(&until.to_rfc3339_opts(SecondsFormat::Millis, true))
                    ),
                    admin_token.clone(),
                    admin_access.clone(),
                    SearchQuery {
                        since: Some(since),
                        until: Some(until),
                        ..Default::default()
                    },
                )
            }),
        ),
        (
            "user (admin, user=ext)",
            Box::new(|rng: &mut StdRng| {
                let (u, _) = &user_tokens[rng.random_range(0..user_tokens.len())];
                (
                    format!("/api/v1/recordings?user={}", u.extension),
                    admin_token.clone(),
                    admin_access.clone(),
                    SearchQuery {
                        user: Some(u.extension.clone()),
                        ..Default::default()
                    },
                )
            }),
        ),
        (
            "user's own (user token)",
            Box::new(|rng: &mut StdRng| {
                let (u, token) = &user_tokens[rng.random_range(0..user_tokens.len())];
                (
                    "/api/v1/recordings".to_owned(),
                    token.clone(),
                    Access {
                        actor: u.extension.clone(),
                        scope: Scope::User { site, user: u.id },
                    },
                    SearchQuery::default(),
                )
            }),
        ),
    ];
    let mut body = Vec::new();
    for (name, mut make) in kinds {
        let mut http = Latencies(Vec::with_capacity(queries));
        let mut local = Latencies(Vec::with_capacity(queries));
        for i in 0..queries + 100 {
            let (path, token, access, query) = make(&mut rng);
            let t = Instant::now();
            let reply = client.get(&path, Some(&token), &mut body, true);
            let http_t = t.elapsed();
            assert_eq!(
                reply.status,
                200,
                "{path}: {}",
                String::from_utf8_lossy(&body)
            );
            let t = Instant::now();
            let page = handle
                .read_blocking(|v| v.search(&access, &query))
                .expect("search");
            let local_t = t.elapsed();
            let got: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(
                got["items"].as_array().map(Vec::len),
                Some(page.items.len()),
                "{path}: HTTP and in-process disagree"
            );
            if i >= 100 {
                http.0.push(http_t);
                local.0.push(local_t);
            }
        }
        println!("{:<26} {:<60} {}", name, http.summary(), local.summary());
    }
}
