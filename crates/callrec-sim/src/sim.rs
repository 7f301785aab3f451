//! The public handle: start a simulator, script it, observe it, break it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::calls::{CallHandle, CallSpec, Side};
use crate::clock::{SimClock, micros};
use crate::config::SimConfig;
use crate::event::Event;
use crate::faults::{MalformedFrame, ReplyRule};
use crate::outbound::{FeatureCallHandle, FeatureCallInfo, OutboundRequest};
use crate::recording::RecordingInfo;
use crate::switch::Switch;

/// Why the simulator could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The Event Socket address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The event templates could not be derived from the embedded captures.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// `wait_for` ran out of time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    /// `advance` on a real-time clock.
    #[error("the clock runs in real time; it cannot be advanced")]
    NotManual,
}

/// State shared by the handle, the clock driver and the socket tasks.
pub(crate) struct Shared {
    switch: Mutex<Switch>,
    pub clock: SimClock,
    pub cfg: Arc<SimConfig>,
    pub version: watch::Receiver<u64>,
    /// Wakes the real-time driver when a timer was added.
    pub wake: Notify,
    /// Cancelled when the simulator stops.
    pub stop: CancellationToken,
    pub tasks: TaskTracker,
    /// The Event Socket's listening socket while the switch is up. It lives here rather
    /// than in the accept task so that a crash or shutdown closes the port before the call
    /// returns: a dead switch's port refuses connections at once, as a killed process's
    /// does, instead of completing handshakes until a task gets round to dropping it.
    esl_listener: Mutex<Option<TcpListener>>,
    /// `true` while the Event Socket should accept connections; every change of
    /// `esl_listener` is announced here to wake the accept task.
    pub listening: watch::Sender<bool>,
    pub esl_addr: SocketAddr,
    /// The runtime the simulator was started on, to register a listener bound from a
    /// synchronous call ([`Simulator::boot`]).
    runtime: tokio::runtime::Handle,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Switch> {
        // A panic while holding the lock is a simulator bug; the state is still the best
        // picture of the switch there is, so keep going with it.
        self.switch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the switch, then every timer that is already due.
    pub fn with<R>(&self, f: impl FnOnce(&mut Switch) -> R) -> R {
        let mut sw = self.lock();
        let r = f(&mut sw);
        let now = self.clock.now();
        run_due(&mut sw, now);
        if std::mem::take(&mut sw.timers_changed) {
            self.wake.notify_one();
        }
        r
    }

    fn listener_slot(&self) -> MutexGuard<'_, Option<TcpListener>> {
        self.esl_listener.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Polls the Event Socket for a connection; pending while the port is closed (the
    /// accept task is woken through `listening` when it opens again).
    pub fn poll_accept(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<tokio::net::TcpStream>> {
        match self.listener_slot().as_ref() {
            Some(l) => l.poll_accept(cx).map_ok(|(stream, _)| stream),
            None => std::task::Poll::Pending,
        }
    }

    /// Closes the Event Socket's port now: connection attempts are refused from here on
    /// and connections not yet accepted are reset.
    pub fn close_port(&self) {
        let closed = self.listener_slot().take();
        drop(closed);
        self.listening.send_replace(false);
    }

    /// Opens the Event Socket's port on the same address. It is bound before this returns
    /// when the address is free; otherwise the accept task keeps trying.
    pub fn open_port(&self) {
        {
            let mut slot = self.listener_slot();
            if slot.is_none() {
                match self.bind_now() {
                    Ok(l) => *slot = Some(l),
                    Err(e) => {
                        tracing::debug!(addr = %self.esl_addr, error = %e, "cannot listen yet; retrying")
                    }
                }
            }
        }
        self.listening.send_replace(true);
    }

    fn bind_now(&self) -> std::io::Result<TcpListener> {
        let l = std::net::TcpListener::bind(self.esl_addr)?;
        l.set_nonblocking(true)?;
        let _runtime = self.runtime.enter();
        TcpListener::from_std(l)
    }

    /// Whether the port should be open but is not (a rebind that has to be retried).
    pub fn port_missing(&self) -> bool {
        *self.listening.borrow() && self.listener_slot().is_none()
    }

    /// Installs a listener bound by the accept task, unless the port was closed meanwhile.
    pub fn install_listener(&self, l: TcpListener) {
        let mut slot = self.listener_slot();
        if *self.listening.borrow() && slot.is_none() {
            *slot = Some(l);
        }
    }
}

/// Runs timers due at or before `limit`, each at its own time on a manual clock.
fn run_due(sw: &mut Switch, limit: crate::clock::Micros) {
    while let Some((at, task)) = sw.pop_due(limit) {
        sw.clock.set(at);
        task(sw);
    }
}

/// A running simulated switch. Dropping it stops every task it started.
pub struct Simulator {
    shared: Arc<Shared>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shared.stop.cancel();
        self.shared.close_port();
    }
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("esl_addr", &self.shared.esl_addr)
            .finish()
    }
}

impl Simulator {
    /// Binds `cfg.listen` and starts the switch.
    pub async fn start(cfg: SimConfig) -> Result<Simulator, SimError> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: cfg.listen,
                source,
            })?;
        Self::start_on(listener, cfg).await
    }

    /// Starts the switch on an already-bound listener.
    pub async fn start_on(listener: TcpListener, cfg: SimConfig) -> Result<Simulator, SimError> {
        crate::scripts::library()?;
        let esl_addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let clock = SimClock::new(&cfg.clock);
        let cfg = Arc::new(cfg);
        let (version_tx, version_rx) = watch::channel(0u64);
        let mut sw = Switch::new(clock.clone(), Arc::clone(&cfg), version_tx);
        let (out_tx, out_rx) = mpsc::unbounded_channel::<OutboundRequest>();
        sw.outbound_requests = Some(out_tx);
        let (listening, _) = watch::channel(true);
        let shared = Arc::new(Shared {
            switch: Mutex::new(sw),
            clock,
            cfg,
            version: version_rx,
            wake: Notify::new(),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            esl_listener: Mutex::new(Some(listener)),
            listening,
            esl_addr,
            runtime: tokio::runtime::Handle::current(),
        });
        let s = Arc::clone(&shared);
        shared.tasks.spawn(crate::inbound::accept_loop(s));
        let s = Arc::clone(&shared);
        shared.tasks.spawn(crate::outbound::spawner(s, out_rx));
        if !shared.clock.is_manual() {
            let s = Arc::clone(&shared);
            shared.tasks.spawn(real_time_driver(s));
        }
        Ok(Simulator { shared })
    }

    /// The address of the inbound Event Socket.
    pub fn esl_addr(&self) -> SocketAddr {
        self.shared.esl_addr
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.cfg
    }

    /// The simulated time as a shareable [`callrec_model::Clock`]: hand it to a daemon under
    /// test so both sides read the same time.
    pub fn clock(&self) -> SimClock {
        self.shared.clock.clone()
    }

    /// The simulated time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.shared.clock.now_utc()
    }

    /// Moves a manual clock forward, running everything due on the way (each at its own
    /// time: ring ends, holds, hangups, heartbeats).
    pub fn advance(&self, by: Duration) -> Result<(), SimError> {
        if !self.shared.clock.is_manual() {
            return Err(SimError::NotManual);
        }
        let target = self.shared.clock.now() + micros(by);
        self.shared.with(|sw| {
            run_due(sw, target);
            sw.clock.set(target);
        });
        Ok(())
    }

    /// Places a scripted call. With a manual clock the caller's leg is created now; the
    /// rest happens as the clock advances.
    pub fn place_call(&self, spec: CallSpec) -> CallHandle {
        self.shared.with(|sw| sw.place_call(spec))
    }

    /// Hangs up a channel (and the rest of its call) as if its phone hung up.
    pub fn hangup(&self, uuid: &str) -> bool {
        self.shared.with(|sw| sw.hangup(uuid, "NORMAL_CLEARING"))
    }

    /// Hangs up one side of a placed call.
    pub fn hangup_call(&self, call: &CallHandle, side: Side) {
        self.shared
            .with(|sw| sw.hangup_call(call.id, side, "NORMAL_CLEARING"));
    }

    /// Puts a channel on hold (a phone's re-INVITE; `uuid_hold` on a loopback leg).
    pub fn hold(&self, uuid: &str) -> bool {
        self.shared.with(|sw| sw.hold(uuid))
    }

    /// Takes a channel off hold.
    pub fn unhold(&self, uuid: &str) -> bool {
        self.shared.with(|sw| sw.unhold(uuid))
    }

    /// Runs an `api` command as a client would and returns its output (an `originate`
    /// returns at once with `+OK <uuid>` of the A leg; its answer follows on the clock).
    pub fn api(&self, command: &str) -> String {
        let (cmd, args) = crate::api::split(command);
        let (cmd, args) = (cmd.to_string(), args.to_string());
        self.shared.with(|sw| {
            let ev = sw.api_event(&cmd, &args);
            let out = match sw.api(&cmd, &args) {
                crate::api::ApiReply::Now(s) => s,
                crate::api::ApiReply::Later(_) => {
                    let a = sw
                        .calls
                        .values()
                        .max_by_key(|c| c.id)
                        .map(|c| c.a.clone())
                        .unwrap_or_default();
                    format!("+OK {a}\n")
                }
                crate::api::ApiReply::NoReply => String::new(),
            };
            sw.fire(ev);
            out
        })
    }

    /// A user's phone dials a feature code (`*48`...): the dialplan routes it to the
    /// `socket` address of the configuration, and the simulator speaks the outbound
    /// protocol to whatever listens there.
    pub fn dial_feature_code(&self, user: &str, code: &str) -> FeatureCallHandle {
        self.shared.with(|sw| sw.dial_feature_code(user, code))
    }

    /// What the feature-code listener did with a call so far.
    pub fn feature_call(&self, call: &FeatureCallHandle) -> Option<FeatureCallInfo> {
        self.shared
            .with(|sw| sw.feature_calls.get(&call.id).map(|r| r.info.clone()))
    }

    /// Live channels, in creation order.
    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.shared.with(|sw| SimState { sw }.channels())
    }

    /// Recordings that stopped (or were abandoned by a crash or restart).
    pub fn recordings(&self) -> Vec<RecordingInfo> {
        self.shared.with(|sw| sw.recordings.clone())
    }

    /// Every event fired from now on (whether or not any listener subscribed).
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<Event>> {
        self.shared.with(|sw| sw.tap())
    }

    /// Waits until `check` holds for the switch's state, re-checking after every change,
    /// for at most `timeout` of wall-clock time.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        check: impl Fn(&SimState<'_>) -> bool,
    ) -> Result<(), SimError> {
        let mut version = self.shared.version.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.shared.with(|sw| check(&SimState { sw })) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, version.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    if self.shared.with(|sw| check(&SimState { sw })) {
                        return Ok(());
                    }
                    return Err(SimError::Timeout(timeout, what.to_string()));
                }
            }
        }
    }

    // ---- faults -------------------------------------------------------------------------

    /// Closes every Event Socket connection at once, with no notice (a network cut).
    /// The switch and its calls carry on.
    pub fn drop_connections(&self) {
        self.shared.with(|sw| sw.kill_listeners());
    }

    /// Makes every `auth` fail (`-ERR invalid`), right password or not.
    pub fn refuse_auth(&self, refuse: bool) {
        self.shared.with(|sw| sw.faults.refuse_auth = refuse);
    }

    /// Delays or withholds the replies of matching commands.
    pub fn add_reply_fault(&self, rule: ReplyRule) {
        self.shared.with(|sw| sw.faults.reply_rules.push(rule));
    }

    /// Removes every reply fault.
    pub fn clear_reply_faults(&self) {
        self.shared.with(|sw| sw.faults.reply_rules.clear());
    }

    /// Sends a frame the real switch never would to every inbound connection.
    pub fn send_malformed_frame(&self, kind: MalformedFrame) {
        self.shared.with(|sw| sw.broadcast_raw(kind.bytes()));
    }

    /// `kill -9`: every socket closes with no notice, recordings in progress are left as
    /// the switch leaves them (the 44-byte header written at their start, RIFF size 8 and
    /// data size 0, then the audio flushed so far in whole 64 KiB blocks: 4.096 s of mono),
    /// and the Event Socket's port is closed before this returns:
    /// connection attempts are refused (and connections not yet accepted reset) until
    /// [`Simulator::boot`]. Nothing more happens until then.
    pub fn crash(&self) {
        // The kernel closes a killed process's sockets, the listening one included.
        self.shared.close_port();
        self.shared.with(|sw| sw.crash());
    }

    /// `fsctl shutdown`: calls hang up (every recording, on any leg, gets its RECORD_STOP
    /// with its file closed), listeners get `The system is being shut down.`, and the
    /// Event Socket's port is closed before this returns.
    pub fn shutdown_switch(&self) {
        self.shared.with(|sw| sw.shutdown());
        self.shared.close_port();
    }

    /// Starts the switch again after a crash or shutdown: a new `Core-UUID`, no channels,
    /// the Event Socket listening on the same address (bound before this returns unless
    /// something else holds the address; then it keeps trying).
    pub fn boot(&self) {
        self.shared.with(|sw| sw.boot());
        self.shared.open_port();
    }

    /// Restarts the switch. With `keep_channels` only the Event Socket restarts (every
    /// connection drops, calls and recordings carry on, events meanwhile are lost);
    /// otherwise it is a crash followed by a boot.
    pub fn restart(&self, keep_channels: bool) {
        if keep_channels {
            self.shared.close_port();
            self.shared.with(|sw| sw.kill_listeners());
            self.shared.open_port();
        } else {
            self.crash();
            self.boot();
        }
    }

    /// Places `spec.calls` calls on the clock, `spec.per_second` per simulated second.
    pub fn start_load(&self, spec: crate::load::LoadSpec) {
        self.shared.with(|sw| {
            let interval = if spec.per_second > 0.0 {
                (1_000_000.0 / spec.per_second) as i64
            } else {
                0
            };
            for n in 0..spec.calls {
                let call = spec.call(n);
                sw.schedule_in(
                    interval * n as i64,
                    Box::new(move |sw: &mut Switch| {
                        sw.place_call(call);
                    }),
                );
            }
        });
    }

    /// Writes `spec.calls` complete calls' worth of full-size channel events to every
    /// inbound connection that listens for events, as fast as each socket takes them, and
    /// reports how fast that was. Only the events a connection subscribed to are sent. The
    /// events are rendered once, before any is written.
    pub async fn event_storm(
        &self,
        spec: crate::load::StormSpec,
    ) -> Result<Vec<crate::load::StormReport>, SimError> {
        let sample = crate::load_sample::sample_call(&self.shared.cfg)?;
        let subs = self.shared.with(|sw| sw.inbound_subscriptions());
        let mut waits = Vec::new();
        for (id, mut sub) in subs {
            sub.format = spec.format;
            let frames: Vec<bytes::Bytes> = sample
                .events
                .iter()
                .filter(|e| sub.wants(e))
                .map(|e| e.frame(spec.format))
                .collect();
            let plan = Arc::new(crate::load::StormPlan::new(
                frames,
                &sample.uuids,
                spec.calls,
            ));
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.shared
                .with(|sw| sw.send_to(id, crate::switch::Outgoing::Storm(plan, tx)));
            waits.push(rx);
        }
        let mut reports = Vec::new();
        for w in waits {
            if let Ok(r) = w.await {
                reports.push(r);
            }
        }
        Ok(reports)
    }

    /// Open Event Socket connections (inbound clients and outbound sessions).
    pub fn connection_count(&self) -> usize {
        self.shared.with(|sw| sw.listener_count())
    }

    /// Stops the simulator's tasks and waits for them.
    pub async fn stop(self) {
        self.shared.stop.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }
}

/// Runs timers on the wall clock.
async fn real_time_driver(shared: Arc<Shared>) {
    loop {
        let next = shared.with(|sw| sw.next_due());
        let sleep = match next {
            Some(at) => {
                let ahead = (at - shared.clock.now()).max(0) as u64;
                shared.clock.wall_duration(Duration::from_micros(ahead))
            }
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
        shared.with(|_| {});
    }
}

/// A read-only view of the switch for [`Simulator::wait_for`].
pub struct SimState<'a> {
    sw: &'a Switch,
}

impl SimState<'_> {
    /// Live channels in creation order.
    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.sw
            .channels_in_order()
            .into_iter()
            .map(ChannelInfo::of)
            .collect()
    }

    /// One live channel.
    pub fn channel(&self, uuid: &str) -> Option<ChannelInfo> {
        self.sw.channels.get(uuid).map(ChannelInfo::of)
    }

    /// Stopped recordings.
    pub fn recordings(&self) -> &[RecordingInfo] {
        &self.sw.recordings
    }

    /// Open Event Socket connections (inbound and outbound).
    pub fn connections(&self) -> usize {
        self.sw.listener_count()
    }

    /// Open inbound (`auth`) connections.
    pub fn inbound_connections(&self) -> usize {
        self.sw.inbound_count()
    }

    /// A feature-code call's progress.
    pub fn feature_call(&self, call: &FeatureCallHandle) -> Option<FeatureCallInfo> {
        self.sw.feature_calls.get(&call.id).map(|r| r.info.clone())
    }

    /// Whether the switch is up (not crashed or shut down).
    pub fn is_up(&self) -> bool {
        self.sw.up
    }
}

/// What a test can see of a live channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// `Unique-ID`.
    pub uuid: String,
    /// `Channel-Name`.
    pub name: String,
    /// `inbound` or `outbound` (seen from the switch).
    pub direction: String,
    /// `Caller-Caller-ID-Number`.
    pub caller_number: String,
    /// `Caller-Caller-ID-Name`.
    pub caller_name: String,
    /// `Caller-Destination-Number`.
    pub destination: String,
    /// `Channel-State` of its last event (`CS_EXECUTE`...).
    pub state: String,
    /// `Channel-Call-State` of its last event (`RINGING`, `ACTIVE`, `HELD`...).
    pub call_state: String,
    /// Answered.
    pub answered: bool,
    /// On hold.
    pub held: bool,
    /// Hung up (but not yet destroyed).
    pub hung_up: bool,
    /// The other leg, if any.
    pub peer: Option<String>,
    /// Paths being recorded.
    pub recording: Vec<String>,
    /// Files played to it by `uuid_broadcast`, in order.
    pub broadcasts: Vec<String>,
    /// Channel variables.
    pub variables: Vec<(String, String)>,
}

impl ChannelInfo {
    fn of(c: &crate::channel::Channel) -> ChannelInfo {
        ChannelInfo {
            uuid: c.uuid.clone(),
            name: c.profile.channel_name.clone(),
            direction: c.profile.direction.clone(),
            caller_number: c.profile.caller_id_number.clone(),
            caller_name: c.profile.caller_id_name.clone(),
            destination: c.profile.destination_number.clone(),
            state: c.channel_state.clone(),
            call_state: c.call_state.clone(),
            answered: c.answered,
            held: c.held,
            hung_up: c.hungup,
            peer: c.peer.clone(),
            recording: c.recordings.iter().map(|r| r.path.clone()).collect(),
            broadcasts: c.broadcasts.clone(),
            variables: c.vars.clone(),
        }
    }

    /// A channel variable.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}
