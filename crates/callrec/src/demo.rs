//! `callrec demo`: the whole flow in under a minute, with no FreeSWITCH installed.
//!
//! A simulated switch runs in-process on the wall clock. Four users (one per mode) make a few
//! calls: one paused with *48 and resumed with *49 while on hold, one started on demand with
//! *44, an internal call between a recorded and a never-recorded user, a call in mode
//! `never`. The daemon and the REST API run against it exactly as `callrec serve` would; the
//! demo prints what happens, where the recordings are, an admin's and a user's token and how
//! to query them, and the web portal's address with an admin's and a user's sign-in (demo
//! passwords, random for each run).

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use callrec_config::Config;
use callrec_model::{RecordingMode, RecordingState, Role};
use callrec_sim::{CallSpec, ClockMode, SimConfig, Simulator};
use callrec_store::{Access, NewUser, SearchQuery, StoreHandle};
use tokio::net::TcpListener;

use callrec_daemon::{Daemon, DaemonError, DaemonHandle, Listeners, Options};

use crate::serve::{api_config, bind_api, spawn_api};

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Stop once the scripted calls are stored (for scripts) instead of running until Ctrl-C.
    pub exit_when_done: bool,
    /// Where the demo keeps its index, store and spool (wiped at start).
    pub data_dir: PathBuf,
}

/// The file that marks a directory as the demo's own, so the demo may wipe it.
const DEMO_MARKER: &str = ".callrec-demo";

/// The demo's cast: extension, mode, role.
const USERS: [(&str, RecordingMode, Role); 4] = [
    ("1001", RecordingMode::AlwaysPausable, Role::Admin),
    ("1002", RecordingMode::OnDemand, Role::User),
    ("1003", RecordingMode::Always, Role::User),
    ("1004", RecordingMode::Never, Role::User),
];

fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (piped into `head`) must not stop the demo.
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Runs the demo until the scripted calls are stored and then, unless told to exit, until
/// `shutdown` completes.
pub async fn demo(
    mut config: Config,
    options: DemoOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let data_dir =
        std::path::absolute(&options.data_dir).unwrap_or_else(|_| options.data_dir.clone());
    let dir_err = |what, source| DaemonError::Directory {
        what,
        path: data_dir.clone(),
        source,
    };
    // Wiped only when the demo made it (or it is empty): `--dir` pointed at real recordings by
    // mistake must delete nothing.
    let marker = data_dir.join(DEMO_MARKER);
    if data_dir.exists() {
        let empty = std::fs::read_dir(&data_dir)
            .map_err(|e| dir_err("the demo data dir", e))?
            .next()
            .is_none();
        if !empty && !marker.is_file() {
            return Err(DaemonError::Demo(format!(
                "{} is not empty and was not made by `callrec demo` (no {DEMO_MARKER} in it); \
                 the demo wipes its directory at start, so it leaves this one alone: choose \
                 another --dir, or delete this one yourself",
                data_dir.display()
            )));
        }
        tokio::fs::remove_dir_all(&data_dir)
            .await
            .map_err(|e| dir_err("the demo data dir", e))?;
    }
    let spool = data_dir.join("spool");
    tokio::fs::create_dir_all(&spool)
        .await
        .map_err(|e| dir_err("the demo data dir", e))?;
    tokio::fs::write(
        &marker,
        "made by `callrec demo`, which wipes this directory at start\n",
    )
    .await
    .map_err(|e| dir_err("the demo data dir", e))?;

    // The feature-code socket first, so the simulated dialplan knows where to send *48.
    let feature = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| DaemonError::Listen {
            what: "demo feature-code socket",
            addr: "127.0.0.1:0".into(),
            source,
        })?;
    let feature_addr = feature.local_addr().map_err(|source| DaemonError::Listen {
        what: "demo feature-code socket",
        addr: "127.0.0.1:0".into(),
        source,
    })?;
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.clone(),
        clock: ClockMode::real_time(),
        feature_code_socket: Some(feature_addr.to_string()),
        // The switch as the README installs it: with `dialplan/callrec-arm.xml`.
        dialplan_arming: true,
        ..SimConfig::default()
    })
    .await
    .map_err(|e| DaemonError::Demo(format!("cannot start the simulated switch: {e}")))?;
    let sim = Arc::new(sim);

    let store_dir = data_dir.join("data");
    let store = {
        let dir = store_dir.clone();
        tokio::task::spawn_blocking(move || StoreHandle::open(dir))
            .await
            .map_err(|_| DaemonError::TaskFailed("index open"))?
            .map_err(|source| DaemonError::Store {
                data_dir: store_dir.clone(),
                source,
            })?
    };
    // A token for the site's admin (1001) and one for a plain user (1002), so both views of
    // the API can be tried; and a portal password for each, made for this run and printed
    // once (the demo's data is wiped at the next start).
    let passwords = [demo_password(), demo_password()];
    let demo_passwords = passwords.clone();
    let tokens = store
        .write(move |s| {
            let mut tokens = Vec::new();
            for (ext, mode, role) in USERS {
                let mut user = NewUser::new("default", ext);
                user.mode = Some(mode);
                user.role = role;
                let created = s.add_user(&user, "demo")?;
                if ext == "1001" || ext == "1002" {
                    let token = s.create_token(created.id, "demo", &Access::system("demo"))?;
                    tokens.push(token.secret);
                    let password = if ext == "1001" {
                        &demo_passwords[0]
                    } else {
                        &demo_passwords[1]
                    };
                    s.set_password("default", ext, password, "demo")?;
                }
            }
            Ok(tokens)
        })
        .await
        .map_err(|source| DaemonError::Store {
            data_dir: store_dir.clone(),
            source,
        })?;
    let token = tokens.first().cloned();
    let user_token = tokens.get(1).cloned();

    config.esl.host = "127.0.0.1".into();
    config.esl.port = sim.esl_addr().port();
    config.esl.password = callrec_config::Secret::new(sim.config().password.clone());
    config.storage.data_dir = store_dir.clone();
    config.storage.spool_dir = spool.clone();
    config.storage.spool_scan_secs = 5;
    config.feature_codes.listen = feature_addr;
    // The demo runs on loopback and prints http:// commands to paste: plain HTTP always.
    if config.api.tls_enabled() {
        say(
            "  (the demo serves plain HTTP on loopback: api.tls_cert and api.tls_key are not used)",
        );
    }
    config.api.tls_cert.clear();
    config.api.tls_key.clear();
    let api_config = api_config(&config).map_err(|e| DaemonError::Demo(e.to_string()))?;
    let api_listener = match bind_api(&config).await {
        Ok(l) => l,
        // Something already serves the default port: take any free one.
        Err(_) => {
            config.api.listen = "127.0.0.1:0".parse().unwrap_or(config.api.listen);
            bind_api(&config).await?
        }
    };
    let api_addr = api_listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| config.api.listen.to_string());

    let daemon = Daemon::start(
        config.clone(),
        Listeners {
            feature_codes: feature,
        },
        Options {
            store: Some(store.clone()),
            ..Options::default()
        },
    )
    .await?;
    let handle = daemon.handle();
    let api_task = spawn_api(api_config, api_listener, &handle);
    let run = tokio::spawn(daemon.run(std::future::pending::<()>()));

    say("callrec demo: a simulated FreeSWITCH, the daemon and the REST API, all in this process.");
    say(format!("  data:  {}", data_dir.display()));
    say(format!("  API:   http://{api_addr}/api/v1"));
    say(format!("  portal: http://{api_addr}/"));
    say("  users: 1001 always_pausable (admin), 1002 on_demand, 1003 always, 1004 never");
    say("  (log lines: set CALLREC_LOG_LEVEL=info to see what the daemon logs)");
    tokio::time::timeout(Duration::from_secs(10), handle.wait_connected())
        .await
        .map_err(|_| {
            DaemonError::Demo("the daemon did not connect to the simulated switch".into())
        })?;
    say("  the daemon is connected to the switch");
    say("");

    let script = play_script(&sim, &handle).await;
    let outcome = match script {
        Ok(()) => {
            summary(&store, &api_addr, token.as_deref(), user_token.as_deref()).await;
            say("");
            say(format!(
                "Open the web portal at http://{api_addr}/ and sign in (demo-only passwords, made \
                 for this run):"
            ));
            say(format!(
                "  admin (every recording of the site): 1001  {}",
                passwords[0]
            ));
            say(format!(
                "  user (own recordings only):          1002  {}",
                passwords[1]
            ));
            say("");
            if options.exit_when_done {
                say(
                    "The demo stops now (--exit), and the API with it: run `callrec demo` without --exit to try the commands above.",
                );
            } else {
                say(
                    "The API keeps answering until Ctrl-C: try the commands above in another terminal.",
                );
                shutdown.await;
            }
            Ok(())
        }
        Err(e) => Err(e),
    };
    handle.shutdown();
    let _ = api_task.await;
    let ran = run.await.map_err(|_| DaemonError::TaskFailed("daemon"))?;
    ran.and(outcome)
}

/// A random demo password: 20 characters from an alphabet without look-alikes, so it can be
/// typed from the terminal.
fn demo_password() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let chars: String = (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("demo-{chars}")
}

/// Polls `check` until it holds or the demo gives up.
async fn until(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<(), DaemonError> {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        if tokio::time::Instant::now() >= deadline {
            return Err(DaemonError::Demo(format!("gave up waiting for {what}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn dial(sim: &Simulator, user: &str, code: &str, meaning: &str) -> Result<(), DaemonError> {
    say(format!(
        "  {user} dials {code} ({meaning}) while the call is on hold"
    ));
    let call = sim.dial_feature_code(user, code);
    let mut prompt = None;
    until("a feature-code prompt", secs(10.0), || {
        prompt = sim
            .feature_call(&call)
            .and_then(|i| i.prompts.first().cloned());
        prompt.is_some()
    })
    .await?;
    let played = prompt
        .as_deref()
        .and_then(|p| std::path::Path::new(p).file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    say(format!("    callrec answers and plays \"{played}\""));
    Ok(())
}

async fn play_script(sim: &Simulator, handle: &DaemonHandle) -> Result<(), DaemonError> {
    say("Call 1: +44 20 7946 0000 calls 1001 (always_pausable): recorded from the answer.");
    sim.place_call(
        CallSpec::inbound("02079460000", "1001")
            .ring(secs(1.0))
            .hold(callrec_sim::Side::Callee, secs(2.0), secs(3.0))
            .hold(callrec_sim::Side::Callee, secs(8.0), secs(3.0))
            .talk(secs(14.0), callrec_sim::Side::Caller),
    );
    say("Call 2: 1002 (on_demand) calls 020 7946 1111: not recorded until *44.");
    sim.place_call(
        CallSpec::outbound("1002", "02079461111")
            .ring(secs(1.0))
            .hold(callrec_sim::Side::Caller, secs(4.0), secs(3.0))
            .talk(secs(13.0), callrec_sim::Side::Caller),
    );
    say("Call 3: 1003 (always) calls 1004 (never): one recording, 1003's.");
    sim.place_call(
        CallSpec::internal("1003", "1004")
            .ring(secs(1.5))
            .talk(secs(6.0), callrec_sim::Side::Callee),
    );
    until("the calls to be answered", secs(10.0), || {
        handle.live_calls().len() >= 3
    })
    .await?;
    say("");
    say("Calls in progress (GET /api/v1/calls):");
    for call in handle.live_calls() {
        say(format!(
            "  {:<5} {:<9} {} -> {}  recording: {}",
            call.user,
            call.direction.as_str(),
            call.from,
            call.to,
            call.recording.as_str()
        ));
    }
    say("");
    let held = |user: &str| {
        handle
            .live_calls()
            .iter()
            .any(|c| c.user == user && c.on_hold)
    };
    until("1001's call on hold", secs(10.0), || held("1001")).await?;
    dial(sim, "1001", "*48", "pause").await?;
    until("1002's call on hold", secs(10.0), || held("1002")).await?;
    dial(sim, "1002", "*44", "start recording").await?;
    until("1001's call off hold", secs(15.0), || !held("1001")).await?;
    say("  1001 takes the call off hold: the recording goes on, silent while paused");
    until("1001's call on hold again", secs(15.0), || held("1001")).await?;
    dial(sim, "1001", "*49", "resume").await?;
    say("");
    say("Waiting for the calls to end and the recordings to be stored...");
    until("every call to end", secs(30.0), || {
        handle.live_calls().is_empty()
    })
    .await?;
    Ok(())
}

async fn summary(store: &StoreHandle, api: &str, token: Option<&str>, user_token: Option<&str>) {
    // The files reach the store moments after the last hangup.
    let mut rows = Vec::new();
    for _ in 0..100 {
        let query = SearchQuery {
            limit: Some(50),
            ..SearchQuery::default()
        };
        rows = store
            .read(move |v| v.search(&Access::system("demo"), &query))
            .await
            .map(|p| p.items)
            .unwrap_or_default();
        let pending = store
            .read(|v| v.recordings_in_progress())
            .await
            .map(|r| r.len())
            .unwrap_or(0);
        if rows.len() >= 3 && pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let root = store.paths().store.clone();
    let files = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || files_under(&root))
            .await
            .unwrap_or_default()
    };
    say("");
    say("Recordings (GET /api/v1/recordings):");
    for r in &rows {
        let mut line = String::new();
        let _ = write!(
            line,
            "  {} {:<5} {:<9} {:>5.1} s of audio, paused {:>4.1} s",
            r.state.as_str(),
            r.user,
            r.direction.as_str(),
            r.duration_ms.unwrap_or(0) as f64 / 1000.0,
            r.paused_ms as f64 / 1000.0,
        );
        if r.state != RecordingState::Stored {
            let _ = write!(line, "  ({})", r.state_reason.as_deref().unwrap_or(""));
        }
        say(line);
        let path = files
            .iter()
            .find(|p| p.file_name().is_some_and(|n| n == r.file_name.as_str()))
            .map_or_else(|| root.join("…").join(&r.file_name), Clone::clone);
        say(format!("      {}", path.display()));
    }
    say("  Audio is what the file holds: a call on hold sends none, so hold time is not in it.");
    say("  Paused is the time from *48 to *49; off hold it is in the file as silence (the site's");
    say("  pause_behavior; \"skip\" would leave it out).");
    say(format!("  Index: {}", store.paths().index.display()));
    say("");
    say("Query them with the REST API (1001 is the site's admin: its token sees every recording):");
    let token = token.unwrap_or("<token>");
    say(format!("  export CALLREC_TOKEN={token}"));
    let auth = "-H \"Authorization: Bearer $CALLREC_TOKEN\"";
    say(format!("  curl -s {auth} http://{api}/api/v1/recordings"));
    // The paused one shows the most: its segments say who paused and resumed, and when.
    let example = rows
        .iter()
        .find(|r| r.paused_ms > 0 && r.state == RecordingState::Stored)
        .or_else(|| rows.iter().find(|r| r.state == RecordingState::Stored));
    if let Some(r) = example {
        say(format!(
            "  curl -s {auth} http://{api}/api/v1/recordings/{}        # with its segments",
            r.id
        ));
        say(format!(
            "  curl -s {auth} -o call.wav http://{api}/api/v1/recordings/{}/audio",
            r.id
        ));
    }
    say(format!(
        "  curl -s {auth} --get --data-urlencode \"number=+44 20 7946 0000\" http://{api}/api/v1/recordings   # a number in any form"
    ));
    say(format!(
        "  curl -s {auth} http://{api}/api/v1/audit        # who did what, newest first"
    ));
    if let Some(user_token) = user_token {
        say("A plain user's token (1002): the same calls show only 1002's own recordings:");
        say(format!("  export CALLREC_USER_TOKEN={user_token}"));
        say(format!(
            "  curl -s -H \"Authorization: Bearer $CALLREC_USER_TOKEN\" http://{api}/api/v1/recordings"
        ));
    }
    say("  (the answers are JSON: pipe them into `jq` or `python3 -m json.tool` to read them)");
}

/// Every file under `dir`, recursively (the demo's store is small).
fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}
