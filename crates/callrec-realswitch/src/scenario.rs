//! Scenarios scripted once as Event Socket commands and run on any switch that speaks ESL:
//! the real FreeSWITCH of [`crate::Switch`] or the simulator (`callrec-sim`), so that what the
//! two do with the same commands can be compared ([`crate::compare`]).
//!
//! A run has two connections, as callrec has: one subscribed to the events a recorder cares
//! about, read by its own thread from the start to the end of the run, and one that sends the
//! scenario's commands. Loopback calls only (`originate ... loopback/<ext>/default &park`):
//! the A leg gets the uuid the scenario gives it (`origination_uuid`); the B leg's uuid is
//! learnt from the events, where the switch ties the legs together by
//! `variable_other_loopback_leg_uuid` alone.

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::esl::{Esl, Frame};

/// The events a run listens to: callrec's own subscription (`SUBSCRIBED_EVENTS` in
/// callrec-daemon, less HEARTBEAT, which no scenario causes) and the rest of a channel's life
/// around them (created, hung up, destroyed, parked, its media bugs).
pub const EVENTS: &[&str] = &[
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_PARK",
    "CHANNEL_HOLD",
    "CHANNEL_UNHOLD",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_DESTROY",
    "RECORD_START",
    "RECORD_STOP",
    "MEDIA_BUG_START",
    "MEDIA_BUG_STOP",
    "BACKGROUND_JOB",
];

/// One leg of a loopback call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Leg {
    /// The leg `originate` creates and parks (its uuid is the scenario's).
    A,
    /// The leg that runs the dialplan's extension.
    B,
}

impl Leg {
    /// `a` or `b`, as the legs are named in reports.
    pub fn name(self) -> &'static str {
        match self {
            Leg::A => "a",
            Leg::B => "b",
        }
    }
}

/// What `uuid_record` is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordAction {
    /// `start <path> 0 {vars}`.
    Start,
    /// `start <path> <limit> {vars}`: stops by itself once the switch's clock reaches the
    /// whole second `limit` after the one it started in.
    StartFor(u32),
    /// `mask <path>`: silence written from now on.
    Mask,
    /// `unmask <path>`.
    Unmask,
    /// `pause <path>`: nothing written from now on.
    Pause,
    /// `resume <path>`.
    Resume,
    /// `stop <path>`.
    Stop,
}

impl RecordAction {
    fn word(self) -> &'static str {
        match self {
            RecordAction::Start | RecordAction::StartFor(_) => "start",
            RecordAction::Mask => "mask",
            RecordAction::Unmask => "unmask",
            RecordAction::Pause => "pause",
            RecordAction::Resume => "resume",
            RecordAction::Stop => "stop",
        }
    }
}

/// One step of a scenario. Calls and recordings are named by the scenario (`call`, `file`);
/// the run maps the names to uuids and paths.
#[derive(Debug, Clone)]
pub enum Step {
    /// `api originate {origination_uuid=…,<vars>}loopback/<destination>/default &park`:
    /// returns once the call is answered and its A leg parked (see [`Step::AwaitPark`]).
    Call {
        /// The scenario's name for the call.
        call: &'static str,
        /// The extension the B leg runs (`9999` tone, `9998` park).
        destination: &'static str,
        /// Channel variables for the call (`a=1,b=2`), maybe empty.
        vars: &'static str,
    },
    /// The same with `bgapi`: returns at once; the answer is waited for with
    /// [`Step::AwaitPark`].
    CallInBackground {
        /// The scenario's name for the call.
        call: &'static str,
        /// The extension the B leg runs.
        destination: &'static str,
        /// Channel variables for the call, maybe empty.
        vars: &'static str,
    },
    /// Waits until the call's A leg is parked (its CHANNEL_PARK seen). On the real switch
    /// the A leg parks some 20 ms after its CHANNEL_ANSWER, and a command sent in between
    /// finds it in CS_CONSUME_MEDIA with its caller ID not yet swapped; the simulator
    /// answers and parks at once. Scenarios wait for the park so that both runs give the
    /// same events every time.
    AwaitPark {
        /// The call.
        call: &'static str,
    },
    /// `api uuid_record <leg> <action> <file> ...`.
    Record {
        /// The call.
        call: &'static str,
        /// Its leg.
        leg: Leg,
        /// What to do.
        action: RecordAction,
        /// The scenario's name for the file (`<name>.wav` in the run's directory).
        file: &'static str,
        /// Recording variables for a start (`{callrec_id=x}`), else ignored.
        vars: &'static str,
    },
    /// `api uuid_hold [off] <leg>`.
    Hold {
        /// The call.
        call: &'static str,
        /// Its leg.
        leg: Leg,
        /// `false` sends `uuid_hold off`.
        on: bool,
    },
    /// `api uuid_kill <leg>`.
    Kill {
        /// The call.
        call: &'static str,
        /// Its leg.
        leg: Leg,
    },
    /// What callrec publishes for `dialplan/callrec-arm.xml` (`hash insert/callrec/…`):
    /// `user` recorded on answer (`RECORD_MIN_SEC` 3), the run's directory as the spool, WAV.
    /// The switch (or a simulator with the file) then arms the next call's leg that runs the
    /// dialplan as `user`: its file, `<dir>/<leg uuid>.wav`, is named `file` for the comparison
    /// once `call`'s B leg is known.
    Arm {
        /// The call whose B leg the dialplan arms.
        call: &'static str,
        /// The user published.
        user: &'static str,
        /// The scenario's name for the armed file.
        file: &'static str,
    },
    /// Deletes what [`Step::Arm`] published (`hash delete/callrec/…`), so later scenarios on the
    /// same switch are not armed.
    Disarm {
        /// The user published.
        user: &'static str,
    },
    /// Runs a command as `api` and as `bgapi`: the switch answers a command that wrote
    /// nothing differently on each (`-ERR no reply`; a BACKGROUND_JOB with no body).
    Query(&'static str),
    /// Lets the call run.
    Wait(Duration),
    /// Kills the switch (SIGKILL, or the simulator's crash): what the caller of [`run`]
    /// passed as `crash`. Nothing can follow it.
    Crash,
}

/// A named list of steps.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Names the scenario in reports and its files.
    pub name: &'static str,
    /// What to do, in order.
    pub steps: Vec<Step>,
}

/// One event as received: its headers (values percent-encoded, as sent).
pub type Event = BTreeMap<String, String>;

/// What one run of a scenario saw.
#[derive(Debug)]
pub struct Run {
    /// The scenario's name.
    pub scenario: &'static str,
    /// Every event received, in order.
    pub events: Vec<Event>,
    /// When each event arrived (from the start of the run).
    pub arrivals: Vec<Duration>,
    /// Each call's leg uuids, by the scenario's names.
    pub legs: BTreeMap<(&'static str, Leg), String>,
    /// Each command sent (uuids and paths as the scenario names them) and the switch's reply
    /// (first line, uuids named the same way).
    pub replies: Vec<(String, String)>,
    /// When each reply arrived (from the start of the run).
    pub replied: Vec<Duration>,
    started: Instant,
    /// Each recording file by the scenario's name.
    pub files: BTreeMap<&'static str, PathBuf>,
}

impl Run {
    /// Replaces every uuid and path of this run in `text` by the scenario's names for them
    /// (`<call.a>`, `<file>`), so that two runs' texts can be compared.
    pub fn named(&self, text: &str) -> String {
        // Files first: a file the dialplan armed is named after its leg's uuid.
        let mut out = text.to_owned();
        for (name, path) in &self.files {
            out = out.replace(&path.display().to_string(), &format!("<{name}>"));
        }
        for ((call, leg), uuid) in &self.legs {
            out = out.replace(uuid, &format!("<{call}.{}>", leg.name()));
        }
        out
    }
}

/// How long a run waits for the switch: an answer, a B leg to show, the calls to end.
const PATIENCE: Duration = Duration::from_secs(30);

/// The event connection, read by its own thread into a channel.
struct Listener {
    frames: mpsc::Receiver<(Instant, Frame)>,
    socket: TcpStream,
    reader: Option<JoinHandle<()>>,
    seen: Vec<Event>,
    arrivals: Vec<Instant>,
}

impl Listener {
    fn start(port: u16, password: &str) -> Listener {
        let mut esl = Esl::connect(port, password)
            .unwrap_or_else(|e| panic!("event connection to 127.0.0.1:{port}: {e}"));
        let reply = esl
            .command(&format!("event plain {}", EVENTS.join(" ")))
            .expect("event subscription");
        assert!(reply.starts_with("+OK"), "event subscription: {reply}");
        let socket = esl.socket().expect("the event socket's handle");
        let (tx, frames) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            while let Ok(frame) = esl.read_frame() {
                if frame.header("Content-Type") == Some("text/event-plain")
                    && tx.send((Instant::now(), frame)).is_err()
                {
                    return;
                }
            }
        });
        Listener {
            frames,
            socket,
            reader: Some(reader),
            seen: Vec::new(),
            arrivals: Vec::new(),
        }
    }

    /// Takes what has arrived.
    fn drain(&mut self) {
        while let Ok(arrived) = self.frames.try_recv() {
            self.take(arrived);
        }
    }

    fn take(&mut self, (at, frame): (Instant, Frame)) {
        self.seen.push(frame.event());
        self.arrivals.push(at);
    }

    /// Waits until `check` finds what it looks for in the events so far.
    fn wait_for<T>(&mut self, what: &str, mut check: impl FnMut(&[Event]) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.drain();
            if let Some(v) = check(&self.seen) {
                return v;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {PATIENCE:?} waiting for {what}"
            );
            if let Ok(arrived) = self
                .frames
                .recv_timeout(left.min(Duration::from_millis(50)))
            {
                self.take(arrived);
            }
        }
    }

    /// Ends the connection and returns every event; after a crash, what the switch sent
    /// before its socket closed.
    fn stop(mut self, crashed: bool) -> (Vec<Event>, Vec<Instant>) {
        if !crashed {
            let _ = self.socket.shutdown(Shutdown::Both);
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.drain();
        (self.seen, self.arrivals)
    }
}

fn header<'e>(event: &'e Event, name: &str) -> Option<&'e str> {
    event.get(name).map(String::as_str)
}

/// Runs `scenario` against the Event Socket on 127.0.0.1:`port`, with recordings written
/// under `dir`; `crash` kills that switch for a [`Step::Crash`]. Returns once every leg it
/// created has been destroyed, or the killed switch's socket has closed.
pub fn run(
    port: u16,
    password: &str,
    scenario: &Scenario,
    dir: &Path,
    crash: &mut dyn FnMut(),
) -> Run {
    std::fs::create_dir_all(dir)
        .unwrap_or_else(|e| panic!("the recordings' directory {}: {e}", dir.display()));
    let mut listener = Listener::start(port, password);
    let mut esl = Esl::connect(port, password)
        .unwrap_or_else(|e| panic!("command connection to 127.0.0.1:{port}: {e}"));
    start_on_the_quarter_second();
    let mut run = Run {
        scenario: scenario.name,
        events: Vec::new(),
        arrivals: Vec::new(),
        legs: BTreeMap::new(),
        replies: Vec::new(),
        replied: Vec::new(),
        started: Instant::now(),
        files: BTreeMap::new(),
    };
    let mut jobs: Vec<String> = Vec::new();
    let mut crashed = false;
    // Files the dialplan armed, by call, to be named once the call's B leg is known.
    let mut armed: Vec<(&'static str, &'static str)> = Vec::new();
    for step in &scenario.steps {
        match step {
            Step::Call {
                call,
                destination,
                vars,
            }
            | Step::CallInBackground {
                call,
                destination,
                vars,
            } => {
                let a = uuid::Uuid::new_v4().to_string();
                run.legs.insert((call, Leg::A), a.clone());
                let vars = if vars.is_empty() {
                    format!("origination_uuid={a}")
                } else {
                    format!("origination_uuid={a},{vars}")
                };
                let command = format!("originate {{{vars}}}loopback/{destination}/default &park");
                if matches!(step, Step::Call { .. }) {
                    let reply = api(&mut esl, &command);
                    run.reply(&command, &reply);
                    await_park(&mut listener, &mut run, call);
                } else {
                    jobs.push(bgapi(&mut esl, &mut run, &command));
                }
            }
            Step::AwaitPark { call } => await_park(&mut listener, &mut run, call),
            Step::Record {
                call,
                leg,
                action,
                file,
                vars,
            } => {
                let uuid = run.legs[&(*call, *leg)].clone();
                let path = dir.join(format!("{}-{file}.wav", scenario.name));
                run.files.insert(file, path.clone());
                let mut command =
                    format!("uuid_record {uuid} {} {}", action.word(), path.display());
                let limit = match action {
                    RecordAction::Start => Some(0),
                    RecordAction::StartFor(secs) => Some(*secs),
                    _ => None,
                };
                if let Some(limit) = limit {
                    command.push_str(&format!(" {limit}"));
                    if !vars.is_empty() {
                        command.push(' ');
                        command.push_str(vars);
                    }
                }
                let reply = api(&mut esl, &command);
                run.reply(&command, &reply);
            }
            Step::Hold { call, leg, on } => {
                let uuid = &run.legs[&(*call, *leg)];
                let command = if *on {
                    format!("uuid_hold {uuid}")
                } else {
                    format!("uuid_hold off {uuid}")
                };
                let reply = api(&mut esl, &command);
                run.reply(&command, &reply);
            }
            Step::Kill { call, leg } => {
                let command = format!("uuid_kill {}", run.legs[&(*call, *leg)]);
                let reply = api(&mut esl, &command);
                run.reply(&command, &reply);
            }
            Step::Arm { call, user, file } => {
                for command in [
                    format!("hash insert/callrec/spool/{}", dir.display()),
                    "hash insert/callrec/format/wav".to_owned(),
                    format!("hash insert/callrec/user_{user}/3"),
                ] {
                    let reply = api(&mut esl, &command);
                    run.reply(&command, &reply);
                }
                armed.push((*call, *file));
            }
            Step::Disarm { user } => {
                for key in ["spool", "format", &format!("user_{user}")] {
                    let command = format!("hash delete/callrec/{key}");
                    let reply = api(&mut esl, &command);
                    run.reply(&command, &reply);
                }
            }
            Step::Query(command) => {
                let reply = api(&mut esl, command);
                run.reply(command, &reply);
                jobs.push(bgapi(&mut esl, &mut run, command));
            }
            Step::Wait(d) => std::thread::sleep(*d),
            Step::Crash => {
                crash();
                crashed = true;
                break;
            }
        }
    }
    for (call, file) in armed {
        if let Some(b) = run.legs.get(&(call, Leg::B)) {
            let path = dir.join(format!("{b}.wav"));
            run.files.insert(file, path);
        }
    }
    let legs: Vec<String> = run.legs.values().cloned().collect();
    let ended = |seen: &[Event]| {
        let destroyed = legs.iter().all(|u| {
            seen.iter().any(|e| {
                header(e, "Event-Name") == Some("CHANNEL_DESTROY")
                    && header(e, "Unique-ID") == Some(u.as_str())
            })
        });
        let jobs_done = jobs.iter().all(|j| {
            seen.iter().any(|e| {
                header(e, "Event-Name") == Some("BACKGROUND_JOB")
                    && header(e, "Job-UUID") == Some(j.as_str())
            })
        });
        (destroyed && jobs_done).then_some(())
    };
    if !crashed {
        listener.wait_for("every leg to be destroyed and every job to end", ended);
        // Whatever the switch sends after the last CHANNEL_DESTROY (nothing, so far) is
        // part of the run too: there is nothing to wait for but time.
        std::thread::sleep(Duration::from_millis(500));
    }
    let (events, arrivals) = listener.stop(crashed);
    run.events = events;
    run.arrivals = arrivals
        .into_iter()
        .map(|at| at.saturating_duration_since(run.started))
        .collect();
    for (i, job) in jobs.iter().enumerate() {
        for e in &mut run.events {
            if header(e, "Job-UUID") == Some(job.as_str()) {
                e.insert("Job-UUID".into(), format!("<job{i}>"));
            }
        }
    }
    run
}

impl Run {
    fn reply(&mut self, command: &str, reply: &str) {
        let first = reply.lines().next().unwrap_or_default().to_owned();
        let entry = (self.named(command), self.named(&first));
        self.replies.push(entry);
        self.replied.push(self.started.elapsed());
    }

    /// For each `uuid_record … start`, how long after its reply the RECORD_START arrived on
    /// the event connection (ms; negative when it came first).
    pub fn record_start_lags(&self) -> Vec<f64> {
        let starts: Vec<Duration> = self
            .events
            .iter()
            .zip(&self.arrivals)
            .filter(|(e, _)| header(e, "Event-Name") == Some("RECORD_START"))
            .map(|(_, at)| *at)
            .collect();
        self.replies
            .iter()
            .zip(&self.replied)
            .filter(|((command, _), _)| {
                command.starts_with("uuid_record ") && command.contains(" start ")
            })
            .zip(&starts)
            .map(|((_, replied), at)| (at.as_secs_f64() - replied.as_secs_f64()) * 1000.0)
            .collect()
    }
}

/// Waits until a quarter of a second into a second of the wall clock. The switch does some
/// things on its clock's whole seconds (a recording's limit, `sched_hangup`): starting every
/// run at the same point of a second makes them fall at the same point of two runs.
fn start_on_the_quarter_second() {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0);
    let quarter = 250_000;
    let wait = (quarter + 1_000_000 - into) % 1_000_000;
    std::thread::sleep(Duration::from_micros(u64::from(wait)));
}

#[track_caller]
fn api(esl: &mut Esl, command: &str) -> String {
    esl.api(command)
        .unwrap_or_else(|e| panic!("api {command}: {e}"))
}

/// `bgapi <command>`: notes its reply (the job's uuid named `<job>`) and returns the job.
fn bgapi(esl: &mut Esl, run: &mut Run, command: &str) -> String {
    let reply = esl
        .command(&format!("bgapi {command}"))
        .unwrap_or_else(|e| panic!("bgapi {command}: {e}"));
    let job = reply
        .strip_prefix("+OK Job-UUID: ")
        .unwrap_or_else(|| panic!("bgapi {command}: {reply}"))
        .trim()
        .to_owned();
    run.reply(&format!("bgapi {command}"), &reply.replace(&job, "<job>"));
    job
}

/// Waits for the A leg of `call` to park, and learns its B leg.
fn await_park(listener: &mut Listener, run: &mut Run, call: &'static str) {
    let a = run.legs[&(call, Leg::A)].clone();
    listener.wait_for(&format!("{call} to be parked"), |seen| {
        seen.iter()
            .any(|e| {
                header(e, "Event-Name") == Some("CHANNEL_PARK")
                    && header(e, "Unique-ID") == Some(a.as_str())
            })
            .then_some(())
    });
    learn_b_leg(listener, run, call);
}

/// Finds the B leg of `call`: the leg whose `variable_other_loopback_leg_uuid` is the A leg,
/// or the one the A leg's names.
fn learn_b_leg(listener: &mut Listener, run: &mut Run, call: &'static str) {
    let a = run.legs[&(call, Leg::A)].clone();
    let b = listener.wait_for(&format!("the B leg of {call}"), |seen| {
        seen.iter().find_map(|e| {
            let uuid = header(e, "Unique-ID")?;
            let other = header(e, "variable_other_loopback_leg_uuid")?;
            if other == a && uuid != a {
                Some(uuid.to_owned())
            } else if uuid == a && other != a {
                Some(other.to_owned())
            } else {
                None
            }
        })
    });
    run.legs.insert((call, Leg::B), b);
}
