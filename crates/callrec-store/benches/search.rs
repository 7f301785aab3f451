//! Search over 1,000,000 recordings (SPEC §8: p95 ≤ 10 ms in-process, first page), for the
//! number, date-range and user filters, beside the floor: the same SQL run bare on its own
//! connection (prepared once, rows stepped without decoding), which is what SQLite alone
//! costs.
//!
//! `cargo bench -p callrec-store --bench search`; `CALLREC_BENCH_ROWS` (default 1,000,000),
//! `CALLREC_BENCH_QUERIES` per filter (default 2,000), `CALLREC_BENCH_DIR` for the data.

mod support;

use std::time::Instant;

use callrec_store::{Access, Scope, SearchQuery, Store, StoreHandle};
use chrono::{DateTime, Duration};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{GENERATED_NOW_MS, Latencies, YEAR_MS, env_usize, generated_index, number_pool};

fn main() {
    let rows = env_usize("CALLREC_BENCH_ROWS", 1_000_000);
    let queries = env_usize("CALLREC_BENCH_QUERIES", 2_000);
    let dir = generated_index(rows);
    let store = Store::open(&dir).expect("open");
    let site = store.view().site("default").expect("site").id;
    let users = store.view().users(Some("default")).expect("users");
    let handle = StoreHandle::new(store);
    let admin = Access {
        actor: "bench".into(),
        scope: Scope::Site(site),
    };
    let floor_conn = rusqlite::Connection::open_with_flags(
        dir.join("index.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("floor connection");
    let pool = number_pool();
    let mut rng = StdRng::seed_from_u64(99);

    println!("search over {rows} recordings, {queries} queries per filter, first page of 50");
    println!(
        "{:<28} {:<62} floor (same SQL, bare)",
        "filter", "callrec (ReadView::search)"
    );
    type MakeQuery<'a> = Box<dyn FnMut(&mut StdRng) -> (Access, SearchQuery) + 'a>;
    let kinds: Vec<(&str, MakeQuery)> = vec![
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
                    admin.clone(),
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
                (
                    admin.clone(),
                    SearchQuery {
                        since: Some(since),
                        until: Some(since + Duration::days(1)),
                        ..Default::default()
                    },
                )
            }),
        ),
        (
            "user (admin, user=ext)",
            Box::new(|rng: &mut StdRng| {
                let u = &users[rng.random_range(0..users.len())];
                (
                    admin.clone(),
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
                let u = &users[rng.random_range(0..users.len())];
                let access = Access {
                    actor: u.extension.clone(),
                    scope: Scope::User { site, user: u.id },
                };
                (access, SearchQuery::default())
            }),
        ),
    ];
    for (name, mut make) in kinds {
        let mut ours = Latencies(Vec::with_capacity(queries));
        let mut floor = Latencies(Vec::with_capacity(queries));
        let mut hits = 0usize;
        for i in 0..queries + 100 {
            let (access, query) = make(&mut rng);
            let (sql, args) = handle
                .read_blocking(|v| v.search_sql(&access, &query))
                .expect("sql")
                .expect("a query");
            let t = Instant::now();
            let page = handle
                .read_blocking(|v| v.search(&access, &query))
                .expect("search");
            let ours_t = t.elapsed();
            let t = Instant::now();
            let mut stmt = floor_conn.prepare_cached(&sql).expect("prepare");
            let mut rows = stmt
                .query(rusqlite::params_from_iter(args.iter()))
                .expect("query");
            let mut n = 0;
            while let Some(row) = rows.next().expect("step") {
                let _ = row.get_ref(0).expect("column");
                n += 1;
            }
            let floor_t = t.elapsed();
            assert_eq!(n.min(50), page.items.len(), "floor and search agree");
            if i >= 100 {
                ours.0.push(ours_t);
                floor.0.push(floor_t);
                hits += page.items.len();
            }
        }
        println!(
            "{:<28} {:<62} {}   (avg {:.1} hits/page)",
            name,
            ours.summary(),
            floor.summary(),
            hits as f64 / queries as f64
        );
    }
}
