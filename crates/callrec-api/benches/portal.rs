//! The portal's recordings page over the store benchmark's 1,000,000-recording index (SPEC §8:
//! first page, any filter, p95 ≤ 50 ms server time; page weight ≤ 100 KB without audio).
//!
//! Each request is what a browser sends: the session cookie checked against the index, the
//! form parsed (the one search bar for a number in any form or note text, and each filter of
//! the admin's panel: date range, From, To, user, direction, minimum duration, has notes, on
//! hold), the search, the audit entry written and committed, the page rendered from its
//! template, over a keep-alive loopback connection. The figure is the whole round trip on
//! loopback, so it bounds the server time from above. Page weight is the HTML plus the
//! stylesheet it links.
//!
//! Every filter is measured alone, with a value that matches a realistic share of the index
//! and with one that matches few rows or none: the worst case for a first page, when the
//! search has to look far to fill its 50 rows (or to show there are none). Each case prints
//! the share of the index its values match (counted with plain SQL before it runs).
//!
//! `cargo bench -p callrec-api --bench portal`; `CALLREC_BENCH_ROWS` (default 1,000,000),
//! `CALLREC_BENCH_QUERIES` per case (default 1,000), `CALLREC_BENCH_CASE_SECS` the most time
//! one case may take (default 30; a slow case stops early, with at least 20 requests timed),
//! `CALLREC_BENCH_ONLY` to run only the cases whose name contains it, `CALLREC_BENCH_DIR` for
//! the data (set it to the store benchmark's to share its generated index).

#[path = "../../callrec-store/benches/support/mod.rs"]
mod store_support;
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callrec_model::Role;
use callrec_store::{NewUser, PortalPolicy, SignIn, SignInAttempt, Store, StoreHandle};
use chrono::DateTime;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use store_support::{
    GENERATED_NOW_MS, Latencies, USERS, YEAR_MS, env_usize, generated_index, load_average, ms,
    number_pool,
};
use support::{Client, enc, start_api};

const PASSWORD: &str = "bench-password-0123";
/// Requests of each case before the timed ones (or fewer, when they take this long).
const WARM_UP: usize = 50;
const WARM_UP_TIME: Duration = Duration::from_secs(3);
/// Timed requests a slow case gets at least, whatever its time budget.
const MIN_TIMED: usize = 20;
/// Values a case's share of the index is counted over (the first of its requests).
const SHARE_SAMPLES: usize = 10;

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

/// One request of a case: the page's path, the session it is sent with, and the SQL
/// condition on `recordings r` that says which recordings it matches (for the share).
struct Request {
    path: String,
    cookie: usize,
    matches: String,
}

/// A filter (or combination) measured over `requests`, sent in turn.
struct Case {
    name: &'static str,
    requests: Vec<Request>,
}

/// Who sends a request: the admin, or one of the users (their own page).
struct Sessions {
    admin: String,
    users: Vec<(i64, String)>,
}

const ADMIN: usize = usize::MAX;

impl Sessions {
    fn cookie(&self, who: usize) -> &str {
        if who == ADMIN {
            &self.admin
        } else {
            &self.users[who].1
        }
    }
}

/// The day `at` falls on (UTC, the generated site's zone).
fn day(at: i64) -> chrono::NaiveDate {
    DateTime::from_timestamp_millis(at)
        .expect("time")
        .date_naive()
}

fn day_start_ms(d: chrono::NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_millis()
}

/// The cases: each filter of the panel alone, the search bar, a few combinations, a user's
/// own page. Values are drawn with `rng`; `n` requests per case (cycled when timed).
fn cases(rng: &mut StdRng, n: usize, users: &[(i64, String)]) -> Vec<Case> {
    let pool = number_pool();
    let number = |rng: &mut StdRng| pool[rng.random_range(0..pool.len())].clone();
    let ext = |rng: &mut StdRng| (1000 + rng.random_range(0..USERS)).to_string();
    let admin = |path: String, matches: String| Request {
        path,
        cookie: ADMIN,
        matches,
    };
    let fixed = |path: &str, matches: &str| vec![admin(path.to_owned(), matches.to_owned())];
    let mut many =
        |f: &mut dyn FnMut(&mut StdRng) -> Request| (0..n).map(|_| f(rng)).collect::<Vec<_>>();
    let range = |rng: &mut StdRng, days: i64| {
        let first = day(GENERATED_NOW_MS - rng.random_range(days * 86_400_000..YEAR_MS));
        let last = first + chrono::Duration::days(days - 1);
        let (a, b) = (day_start_ms(first), day_start_ms(last) + 86_400_000);
        (
            format!("since={first}&until={last}"),
            format!("r.started_at >= {a} AND r.started_at < {b}"),
        )
    };
    let user_id = |e: &str| format!("(SELECT id FROM users WHERE extension = '{e}')");
    let note = |text: &str| {
        format!("r.seq IN (SELECT recording_seq FROM notes WHERE text LIKE '%{text}%')")
    };
    let words = ["refund", "complaint", "escalated", "callback", "dispute"];

    let mut out = vec![Case {
        name: "no filter (newest first)",
        requests: fixed("/recordings", "1"),
    }];
    out.push(Case {
        name: "since+until, 1 day",
        requests: many(&mut |rng| {
            let (q, m) = range(rng, 1);
            admin(format!("/recordings?{q}"), m)
        }),
    });
    out.push(Case {
        name: "since+until, 30 days",
        requests: many(&mut |rng| {
            let (q, m) = range(rng, 30);
            admin(format!("/recordings?{q}"), m)
        }),
    });
    out.push(Case {
        name: "since+until, a year before the index",
        requests: fixed(
            "/recordings?since=2023-01-01&until=2023-12-31",
            "r.started_at < 1704067200000",
        ),
    });
    out.push(Case {
        name: "from, outside number as +44",
        requests: many(&mut |rng| {
            let (_, norm) = number(rng);
            admin(
                format!("/recordings?from={}", enc(&norm)),
                format!("r.from_norm = '{norm}'"),
            )
        }),
    });
    out.push(Case {
        name: "from, an extension",
        requests: many(&mut |rng| {
            let e = ext(rng);
            admin(
                format!("/recordings?from={e}"),
                format!("r.from_norm = '{e}'"),
            )
        }),
    });
    out.push(Case {
        name: "from, a number never seen",
        requests: fixed(
            "/recordings?from=01999000111",
            "r.from_norm = '+441999000111'",
        ),
    });
    out.push(Case {
        name: "to, outside number as 44…",
        requests: many(&mut |rng| {
            let (_, norm) = number(rng);
            admin(
                format!("/recordings?to={}", &norm[1..]),
                format!("r.to_norm = '{norm}'"),
            )
        }),
    });
    out.push(Case {
        name: "to, an extension",
        requests: many(&mut |rng| {
            let e = ext(rng);
            admin(format!("/recordings?to={e}"), format!("r.to_norm = '{e}'"))
        }),
    });
    out.push(Case {
        name: "user, an extension",
        requests: many(&mut |rng| {
            let e = ext(rng);
            admin(
                format!("/recordings?user={e}"),
                format!("r.user_id = {}", user_id(&e)),
            )
        }),
    });
    out.push(Case {
        name: "user with no recordings",
        requests: fixed(
            "/recordings?user=9000",
            &format!("r.user_id = {}", user_id("9000")),
        ),
    });
    for d in ["inbound", "outbound", "internal"] {
        out.push(Case {
            name: match d {
                "inbound" => "direction inbound",
                "outbound" => "direction outbound",
                _ => "direction internal",
            },
            requests: fixed(
                &format!("/recordings?direction={d}"),
                &format!("r.direction = '{d}'"),
            ),
        });
    }
    for (name, secs) in [
        ("min duration 60 s", 60),
        ("min duration 540 s", 540),
        ("min duration 599 s", 599),
        ("min duration 3600 s", 3600),
    ] {
        out.push(Case {
            name,
            requests: fixed(
                &format!("/recordings?min_duration={secs}"),
                &format!("r.duration_ms >= {}", secs * 1000),
            ),
        });
    }
    out.push(Case {
        name: "has notes",
        requests: fixed("/recordings?has_notes=true", "r.note_count > 0"),
    });
    out.push(Case {
        name: "without notes",
        requests: fixed("/recordings?has_notes=false", "r.note_count = 0"),
    });
    out.push(Case {
        name: "on hold",
        requests: fixed("/recordings?hold=true", "r.hold = 1"),
    });
    out.push(Case {
        name: "not on hold",
        requests: fixed("/recordings?hold=false", "r.hold = 0"),
    });
    out.push(Case {
        name: "bar: number as 44… (stored 0…)",
        requests: many(&mut |rng| {
            let (_, norm) = number(rng);
            admin(
                format!("/recordings?q={}", &norm[1..]),
                format!("(r.from_norm = '{norm}' OR r.to_norm = '{norm}')"),
            )
        }),
    });
    out.push(Case {
        name: "bar: number as +44 1234 567890",
        requests: many(&mut |rng| {
            let (_, norm) = number(rng);
            let spaced = format!("{} {} {}", &norm[..3], &norm[3..7], &norm[7..]);
            admin(
                format!("/recordings?q={}", enc(&spaced)),
                format!("(r.from_norm = '{norm}' OR r.to_norm = '{norm}')"),
            )
        }),
    });
    out.push(Case {
        name: "bar: an extension",
        requests: many(&mut |rng| {
            let e = ext(rng);
            admin(
                format!("/recordings?q={e}"),
                format!("(r.from_norm = '{e}' OR r.to_norm = '{e}')"),
            )
        }),
    });
    out.push(Case {
        name: "bar: a word of note text",
        requests: many(&mut |rng| {
            let w = words[rng.random_range(0..words.len())];
            admin(format!("/recordings?q={w}"), note(w))
        }),
    });
    out.push(Case {
        name: "bar: text in every note",
        requests: fixed("/recordings?q=about", &note("about")),
    });
    out.push(Case {
        name: "bar: text in few notes",
        requests: many(&mut |rng| {
            let n = rng.random_range(10_000..100_000);
            admin(format!("/recordings?q={n}"), note(&n.to_string()))
        }),
    });
    out.push(Case {
        name: "bar: text in no note",
        requests: fixed("/recordings?q=voicemail", &note("voicemail")),
    });
    out.push(Case {
        name: "user + outbound + 30 days",
        requests: many(&mut |rng| {
            let e = ext(rng);
            let (q, m) = range(rng, 30);
            admin(
                format!("/recordings?user={e}&direction=outbound&{q}"),
                format!(
                    "r.user_id = {} AND r.direction = 'outbound' AND {m}",
                    user_id(&e)
                ),
            )
        }),
    });
    out.push(Case {
        name: "internal + has notes + min 300 s",
        requests: fixed(
            "/recordings?direction=internal&has_notes=true&min_duration=300",
            "r.direction = 'internal' AND r.note_count > 0 AND r.duration_ms >= 300000",
        ),
    });
    out.push(Case {
        name: "on hold + has notes",
        requests: fixed(
            "/recordings?hold=true&has_notes=true",
            "r.hold = 1 AND r.note_count > 0",
        ),
    });
    out.push(Case {
        name: "inbound + min 3600 s",
        requests: fixed(
            "/recordings?direction=inbound&min_duration=3600",
            "r.direction = 'inbound' AND r.duration_ms >= 3600000",
        ),
    });
    out.push(Case {
        name: "from +44 + 30 days + min 60 s",
        requests: many(&mut |rng| {
            let (_, norm) = number(rng);
            let (q, m) = range(rng, 30);
            admin(
                format!("/recordings?from={}&{q}&min_duration=60", enc(&norm)),
                format!("r.from_norm = '{norm}' AND {m} AND r.duration_ms >= 60000"),
            )
        }),
    });
    let own = |rng: &mut StdRng, query: &str, cond: &str| {
        let who = rng.random_range(0..users.len());
        Request {
            path: format!("/recordings{query}"),
            cookie: who,
            matches: format!("r.user_id = {} AND {cond}", users[who].0),
        }
    };
    out.push(Case {
        name: "user's own, no filter",
        requests: many(&mut |rng| own(rng, "", "1")),
    });
    out.push(Case {
        name: "user's own, min 3600 s",
        requests: many(&mut |rng| own(rng, "?min_duration=3600", "r.duration_ms >= 3600000")),
    });
    out.push(Case {
        name: "user's own, a word of note text",
        requests: many(&mut |rng| {
            let w = words[rng.random_range(0..words.len())];
            own(rng, &format!("?q={w}"), &note(w))
        }),
    });
    out
}

/// The mean share of the index (in %) the first requests of `case` match, as plain SQL
/// counts it (recordings with a file, as the search lists them).
fn share(index: &Path, case: &Case) -> f64 {
    let conn =
        rusqlite::Connection::open_with_flags(index, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open index");
    let total: f64 = conn
        .query_row(
            "SELECT COUNT(*) FROM recordings WHERE state IN ('stored', 'failed')",
            [],
            |r| r.get::<_, i64>(0),
        )
        .expect("count") as f64;
    let samples = &case.requests[..case.requests.len().min(SHARE_SAMPLES)];
    let matched: i64 = samples
        .iter()
        .map(|r| {
            conn.query_row(
                &format!(
                    "SELECT COUNT(*) FROM recordings r WHERE r.state IN ('stored', 'failed') \
                     AND ({})",
                    r.matches
                ),
                [],
                |row| row.get::<_, i64>(0),
            )
            .expect("count matches")
        })
        .sum();
    100.0 * matched as f64 / samples.len() as f64 / total
}

fn main() {
    let rows = env_usize("CALLREC_BENCH_ROWS", 1_000_000);
    let queries = env_usize("CALLREC_BENCH_QUERIES", 1_000);
    let budget = Duration::from_secs(env_usize("CALLREC_BENCH_CASE_SECS", 30) as u64);
    let only = std::env::var("CALLREC_BENCH_ONLY").unwrap_or_default();
    let dir = generated_index(rows);
    let mut store = Store::open(&dir).expect("open");
    if store.view().user("default", "9000").is_err() {
        let mut new = NewUser::new("default", "9000");
        new.role = Role::Admin;
        store.add_user(&new, "bench").expect("admin");
    }
    let admin = session(&mut store, "9000");
    let user_list: Vec<(i64, String)> = store
        .view()
        .users(Some("default"))
        .expect("users")
        .into_iter()
        .filter(|u| u.role == Role::User)
        .take(20)
        .map(|u| (u.id.0, u.extension))
        .collect();
    let users: Vec<(i64, String)> = user_list
        .iter()
        .map(|(id, ext)| (*id, session(&mut store, ext)))
        .collect();
    let sessions = Sessions { admin, users };
    let handle = StoreHandle::new(store);
    let addr = start_api(callrec_api::ApiState::new(
        handle,
        Arc::new(callrec_api::NoDaemon),
    ));
    let mut client = Client::connect(addr);
    let mut rng = StdRng::seed_from_u64(7);
    let mut body = Vec::new();

    // The stylesheet every page links: part of a page's weight (fetched once, then cached).
    let css = client.get_with("/assets/portal.css", "", &mut body, false);
    assert_eq!(css.status, 200, "the stylesheet");
    println!(
        "portal recordings page over {rows} recordings, up to {queries} requests per case \
         (at most {} s each), one keep-alive client; load average {}",
        budget.as_secs(),
        load_average()
    );
    println!(
        "{:<38} {:>8}  {:>8} {:>8} {:>8} {:>8}  {:>5}  rows/page",
        "case", "share %", "p50 ms", "p95 ms", "p99 ms", "max ms", "n"
    );
    let mut heaviest = 0;
    let index = dir.join("index.db");
    let mut over = Vec::new();
    for case in cases(&mut rng, queries, &sessions.users) {
        if !case.name.contains(only.as_str()) {
            continue;
        }
        let share = share(&index, &case);
        let mut times = Latencies(Vec::with_capacity(queries));
        let mut rows_shown = 0usize;
        let started = Instant::now();
        let mut timed_from = None;
        for i in 0.. {
            let warm = timed_from.is_none();
            if warm && (i >= WARM_UP || started.elapsed() > WARM_UP_TIME) {
                timed_from = Some(Instant::now());
            }
            let timed = times.0.len();
            if timed >= queries
                || timed >= MIN_TIMED && timed_from.is_some_and(|t| t.elapsed() > budget)
            {
                break;
            }
            let r = &case.requests[rng.random_range(0..case.requests.len())];
            let t = Instant::now();
            let reply = client.get_with(&r.path, sessions.cookie(r.cookie), &mut body, true);
            let took = t.elapsed();
            assert_eq!(
                reply.status,
                200,
                "{}: {}",
                r.path,
                String::from_utf8_lossy(&body)
            );
            heaviest = heaviest.max(reply.len);
            if timed_from.is_some() {
                times.0.push(took);
                rows_shown += String::from_utf8_lossy(&body)
                    .matches("<td><a href=\"/recordings/")
                    .count();
            }
        }
        let n = times.0.len();
        let p95 = ms(times.percentile(0.95));
        if p95 > 50.0 {
            over.push(case.name);
        }
        println!(
            "{:<38} {:>8.4}  {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {:>5}  {:.1}",
            case.name,
            share,
            ms(times.percentile(0.50)),
            p95,
            ms(times.percentile(0.99)),
            ms(times.percentile(1.0)),
            n,
            rows_shown as f64 / n as f64
        );
    }
    println!(
        "page weight: heaviest page {} B + stylesheet {} B = {:.1} KB (target <= 100 KB)",
        heaviest,
        css.len,
        (heaviest + css.len) as f64 / 1024.0
    );
    println!(
        "over 50 ms p95: {}; load average {}",
        if over.is_empty() {
            "none".to_owned()
        } else {
            over.join(", ")
        },
        load_average()
    );
}
