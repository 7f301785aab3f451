//! The simulated switch core: one mutex-protected state that owns the clock's timers,
//! the channels, the recordings and the event bus.
//!
//! Everything that changes the switch runs as a plain method on [`Switch`] while the lock
//! is held: an API command, a timer (ring time over, scripted hold, heartbeat), a test's
//! `place_call`. Nothing in here awaits; the socket tasks around it only move bytes. That
//! keeps every event's timestamp and sequence number consistent with the order it is
//! fired in, which is what the daemon under test relies on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::channel::Channel;
use crate::clock::{Micros, SimClock, gmt_stamp, local_stamp};
use crate::config::SimConfig;
use crate::event::Event;
use crate::recording::RecordingInfo;
use callrec_model::EventFormat;

/// A unit of work the clock runs when its time comes.
pub(crate) type Task = Box<dyn FnOnce(&mut Switch) + Send>;

/// Who this switch says it is in every event.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `Core-UUID`: changes on every (re)start.
    pub core_uuid: String,
    /// `FreeSWITCH-Hostname` and `FreeSWITCH-Switchname`.
    pub hostname: String,
    /// `FreeSWITCH-IPv4`.
    pub ipv4: String,
    /// `FreeSWITCH-IPv6`.
    pub ipv6: String,
}

/// What a connected listener asked for (`event`, `nixevent`, `filter`, `myevents`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Subscription {
    pub enabled: bool,
    pub format: EventFormat,
    pub all: bool,
    pub names: std::collections::HashSet<String>,
    pub subclasses: std::collections::HashSet<String>,
    pub filters: Vec<(String, String)>,
    /// Set by `myevents`: only events of this channel.
    pub session_uuid: Option<String>,
}

impl Subscription {
    /// Mirrors `event_handler` in `mod_event_socket.c`.
    pub fn wants(&self, ev: &Event) -> bool {
        if !self.enabled {
            return false;
        }
        let name = ev.name();
        let mut send = self.all
            || (self.names.contains(name)
                && (name != "CUSTOM" || ev.subclass().is_none_or(|s| self.subclasses.contains(s))));
        if !send && name == "CUSTOM" {
            send = ev.subclass().is_some_and(|s| self.subclasses.contains(s));
        }
        if send && let Some(uuid) = &self.session_uuid {
            send = ev.unique_id() == Some(uuid.as_str());
        }
        if send && !self.filters.is_empty() {
            send = self.filters_pass(ev);
        }
        send
    }

    fn filters_pass(&self, ev: &Event) -> bool {
        let mut send = false;
        for (header, value) in &self.filters {
            let Some(actual) = ev.header(header) else {
                continue;
            };
            let (positive, wanted) = match value.strip_prefix('-') {
                Some(rest) => (false, rest.trim_start()),
                None => (true, value.strip_prefix('+').unwrap_or(value).trim_start()),
            };
            if send && positive {
                continue;
            }
            if actual.eq_ignore_ascii_case(wanted) {
                if positive {
                    send = true;
                } else {
                    return false;
                }
            }
        }
        send
    }
}

/// One item for a connection's writer, in the order it must reach the socket.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// An event the connection subscribed to.
    Event(Arc<Event>, EventFormat),
    /// A frame that is not an event (an outbound session's linger notice).
    Frame(bytes::Bytes),
    /// Write this notice (if any) after everything queued, then close.
    Close(Option<bytes::Bytes>),
    /// Write a storm of pre-rendered events, then report how it went.
    Storm(
        Arc<crate::load::StormPlan>,
        tokio::sync::oneshot::Sender<crate::load::StormReport>,
    ),
}

pub(crate) struct Listener {
    pub sub: Subscription,
    pub tx: mpsc::UnboundedSender<Outgoing>,
    /// Cancelled to drop the connection at once, with nothing more written.
    pub kill: tokio_util::sync::CancellationToken,
    /// Inbound (`auth`) connections get the shutdown notice; outbound sessions end with
    /// their channel.
    pub inbound: bool,
}

/// The whole simulated switch.
pub(crate) struct Switch {
    pub clock: SimClock,
    pub cfg: Arc<SimConfig>,
    pub identity: Identity,
    seq: u64,
    pub boot_time: Micros,
    timers: BTreeMap<(Micros, u64), Task>,
    timer_seq: u64,
    listeners: HashMap<u64, Listener>,
    next_listener: u64,
    taps: Vec<mpsc::UnboundedSender<Arc<Event>>>,
    pub channels: HashMap<String, Channel>,
    pub channel_order: u64,
    pub sessions_since_startup: u64,
    pub session_peak: usize,
    pub recordings: Vec<RecordingInfo>,
    pub up: bool,
    pub shutting_down: bool,
    version: watch::Sender<u64>,
    /// Calls placed through the scripting API, by their handle id.
    pub calls: HashMap<u64, crate::calls::CallRecord>,
    pub next_call: u64,
    pub feature_calls: HashMap<u64, crate::outbound::FeatureCallRecord>,
    /// What to do when a scripted call is answered (its holds and talk time).
    pub on_answer: HashMap<u64, Task>,
    /// Connections are refused and auth denied while these are set (fault injection).
    pub faults: crate::faults::FaultState,
    /// Set when a timer must wake the real-time driver earlier than it planned.
    pub timers_changed: bool,
    /// Where the dialplan's `socket` application asks for an outbound connection.
    pub outbound_requests: Option<mpsc::UnboundedSender<crate::outbound::OutboundRequest>>,
    /// mod_hash's `db` hash (`hash insert/<realm>/<key>/<value>`), by `<realm>_<key>`.
    pub db_hash: BTreeMap<String, String>,
}

impl Switch {
    pub fn new(clock: SimClock, cfg: Arc<SimConfig>, version: watch::Sender<u64>) -> Switch {
        let boot_time = clock.now();
        let mut core = Switch {
            clock,
            identity: Identity {
                core_uuid: uuid::Uuid::new_v4().to_string(),
                hostname: cfg.hostname.clone(),
                ipv4: cfg.ipv4.clone(),
                ipv6: cfg.ipv6.clone(),
            },
            cfg,
            seq: 500,
            boot_time,
            timers: BTreeMap::new(),
            timer_seq: 0,
            listeners: HashMap::new(),
            next_listener: 1,
            taps: Vec::new(),
            channels: HashMap::new(),
            channel_order: 0,
            sessions_since_startup: 0,
            session_peak: 0,
            recordings: Vec::new(),
            up: true,
            shutting_down: false,
            version,
            calls: HashMap::new(),
            next_call: 1,
            feature_calls: HashMap::new(),
            on_answer: HashMap::new(),
            faults: crate::faults::FaultState::default(),
            timers_changed: false,
            outbound_requests: None,
            db_hash: BTreeMap::new(),
        };
        core.schedule_heartbeat();
        core
    }

    /// Simulated now.
    pub fn now(&self) -> Micros {
        self.clock.now()
    }

    /// Tells `wait_for` callers that something changed.
    pub fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    // ---- timers -------------------------------------------------------------------------

    /// Runs `task` at simulated time `at` (immediately on the next tick if it is past).
    pub fn schedule_at(&mut self, at: Micros, task: Task) {
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), task);
        self.timers_changed = true;
    }

    /// Runs `task` `after` microseconds from now.
    pub fn schedule_in(&mut self, after: Micros, task: Task) {
        let at = self.now() + after.max(0);
        self.schedule_at(at, task);
    }

    /// When the next timer is due.
    pub fn next_due(&self) -> Option<Micros> {
        self.timers.keys().next().map(|(t, _)| *t)
    }

    /// Pops the earliest timer if it is due at or before `limit`.
    pub fn pop_due(&mut self, limit: Micros) -> Option<(Micros, Task)> {
        let key = *self.timers.keys().next()?;
        if key.0 > limit {
            return None;
        }
        self.timers.remove(&key).map(|t| (key.0, t))
    }

    /// Forgets every pending timer (crash, restart).
    pub fn clear_timers(&mut self) {
        self.timers.clear();
    }

    fn schedule_heartbeat(&mut self) {
        let every = crate::clock::micros(self.cfg.heartbeat);
        if every <= 0 {
            return;
        }
        self.schedule_in(every, Box::new(|sw: &mut Switch| sw.heartbeat()));
    }

    fn heartbeat(&mut self) {
        if !self.up {
            return;
        }
        let now = self.now();
        let uptime = now - self.boot_time;
        let mut ev = self.new_event("HEARTBEAT", "switch_core.c", "send_heartbeat", 95);
        ev.push("Event-Info", "System Ready");
        ev.push("Up-Time", uptime_text(uptime));
        ev.push("FreeSWITCH-Version", crate::config::VERSION_TAG);
        ev.push("Uptime-msec", (uptime / 1000).to_string());
        ev.push("Session-Count", self.channels.len().to_string());
        ev.push("Max-Sessions", "1000");
        ev.push("Session-Per-Sec", "30");
        ev.push("Session-Per-Sec-Last", "0");
        ev.push("Session-Per-Sec-Max", "2");
        ev.push("Session-Per-Sec-FiveMin", "2");
        ev.push(
            "Session-Since-Startup",
            self.sessions_since_startup.to_string(),
        );
        ev.push("Session-Peak-Max", self.session_peak.to_string());
        ev.push("Session-Peak-FiveMin", self.session_peak.to_string());
        ev.push("Idle-CPU", "99.433333");
        self.fire(ev);
        let every = crate::clock::micros(self.cfg.heartbeat);
        let mut re = self.new_event(
            "RE_SCHEDULE",
            "switch_scheduler.c",
            "switch_scheduler_execute",
            73,
        );
        re.push("Task-ID", "1");
        re.push("Task-Desc", "heartbeat");
        re.push("Task-Group", "core");
        re.push("Task-Runtime", ((now + every) / 1_000_000).to_string());
        self.fire(re);
        self.schedule_heartbeat();
    }

    // ---- events -------------------------------------------------------------------------

    /// An event with the thirteen standard headers every capture starts with.
    pub fn new_event(&mut self, name: &str, file: &str, func: &str, line: u32) -> Event {
        let now = self.now();
        let mut ev = Event::new();
        self.push_core_headers(&mut ev, name, file, func, line, now);
        ev
    }

    /// Appends the standard headers at `now` (used by templates that place them mid-event).
    pub fn push_core_headers(
        &mut self,
        ev: &mut Event,
        name: &str,
        file: &str,
        func: &str,
        line: u32,
        now: Micros,
    ) {
        for header in CORE_HEADERS {
            let value = self.core_header(header, name, file, func, line, now);
            ev.push(*header, value);
        }
    }

    /// The value of one standard header (the sequence number advances on `Event-Sequence`).
    pub fn core_header(
        &mut self,
        header: &str,
        name: &str,
        file: &str,
        func: &str,
        line: u32,
        now: Micros,
    ) -> String {
        match header {
            "Event-Name" => name.to_string(),
            "Core-UUID" => self.identity.core_uuid.clone(),
            "FreeSWITCH-Hostname" | "FreeSWITCH-Switchname" => self.identity.hostname.clone(),
            "FreeSWITCH-IPv4" => self.identity.ipv4.clone(),
            "FreeSWITCH-IPv6" => self.identity.ipv6.clone(),
            "Event-Date-Local" => local_stamp(now),
            "Event-Date-GMT" => gmt_stamp(now),
            "Event-Date-Timestamp" => now.to_string(),
            "Event-Calling-File" => file.to_string(),
            "Event-Calling-Function" => func.to_string(),
            "Event-Calling-Line-Number" => line.to_string(),
            "Event-Sequence" => {
                self.seq += 1;
                self.seq.to_string()
            }
            _ => String::new(),
        }
    }

    /// Delivers an event to every listener that wants it, and to the test taps.
    pub fn fire(&mut self, ev: Event) {
        if !self.up {
            return;
        }
        let ev = Arc::new(ev);
        for listener in self.listeners.values() {
            if listener.sub.wants(&ev) {
                // A closed receiver means the connection is going away; it unregisters itself.
                let _ = listener
                    .tx
                    .send(Outgoing::Event(Arc::clone(&ev), listener.sub.format));
            }
        }
        self.taps.retain(|tap| tap.send(Arc::clone(&ev)).is_ok());
        self.bump();
    }

    /// Registers a connection's queue; events reach it once it subscribes.
    pub fn add_listener(
        &mut self,
        tx: mpsc::UnboundedSender<Outgoing>,
        kill: tokio_util::sync::CancellationToken,
        inbound: bool,
    ) -> u64 {
        let id = self.next_listener;
        self.next_listener += 1;
        self.listeners.insert(
            id,
            Listener {
                sub: Subscription::default(),
                tx,
                kill,
                inbound,
            },
        );
        id
    }

    /// Queues a frame for one connection.
    pub fn send_to(&self, id: u64, item: Outgoing) {
        if let Some(l) = self.listeners.get(&id) {
            let _ = l.tx.send(item);
        }
    }

    /// Ends every inbound connection: after what is queued, with `notice` if given.
    pub fn close_listeners(&mut self, notice: Option<&str>) {
        for l in self.listeners.values().filter(|l| l.inbound) {
            let frame = notice.map(crate::wire::disconnect_notice);
            let _ = l.tx.send(Outgoing::Close(frame));
        }
    }

    /// Drops every connection at once, writing nothing more (a dead switch, a cut cable).
    pub fn kill_listeners(&mut self) {
        for l in self.listeners.values() {
            l.kill.cancel();
        }
        self.listeners.clear();
    }

    /// Writes raw bytes to every inbound connection (malformed-frame faults).
    pub fn broadcast_raw(&self, bytes: &'static [u8]) {
        for l in self.listeners.values().filter(|l| l.inbound) {
            let _ = l.tx.send(Outgoing::Frame(bytes::Bytes::from_static(bytes)));
        }
    }

    /// `kill -9`: sockets close with no notice, timers and channels vanish, files stay as
    /// they are (a recording in progress keeps only its header).
    pub fn crash(&mut self) {
        self.kill_listeners();
        self.clear_timers();
        self.on_answer.clear();
        let uuids: Vec<String> = self.channels.keys().cloned().collect();
        for u in uuids {
            self.remove_channel(&u);
        }
        for c in self.calls.values_mut() {
            c.phase = crate::calls::Phase::Ended;
            c.originate_reply = None;
        }
        for f in self.feature_calls.values_mut() {
            f.info.ended = true;
        }
        self.up = false;
        self.bump();
    }

    /// Starts again after a crash or shutdown: new `Core-UUID`, empty, heartbeats again.
    pub fn boot(&mut self) {
        if self.up {
            return;
        }
        self.kill_listeners();
        self.clear_timers();
        self.channels.clear();
        self.identity.core_uuid = uuid::Uuid::new_v4().to_string();
        self.boot_time = self.now();
        self.seq = 500;
        self.sessions_since_startup = 0;
        self.session_peak = 0;
        self.up = true;
        self.shutting_down = false;
        self.schedule_heartbeat();
        self.bump();
    }

    /// Subscriptions of the inbound connections that listen for events.
    pub fn inbound_subscriptions(&self) -> Vec<(u64, Subscription)> {
        self.listeners
            .iter()
            .filter(|(_, l)| l.inbound && l.sub.enabled)
            .map(|(id, l)| (*id, l.sub.clone()))
            .collect()
    }

    /// Inbound connections currently open.
    pub fn inbound_count(&self) -> usize {
        self.listeners.values().filter(|l| l.inbound).count()
    }

    /// Removes a connection.
    pub fn remove_listener(&mut self, id: u64) {
        self.listeners.remove(&id);
    }

    /// The subscription of a connection, to change it.
    pub fn subscription(&mut self, id: u64) -> Option<&mut Subscription> {
        self.listeners.get_mut(&id).map(|l| &mut l.sub)
    }

    /// Connections currently registered (inbound and outbound).
    pub fn listener_count(&self) -> usize {
        self.listeners.len()
    }

    /// A copy of every event fired from now on.
    pub fn tap(&mut self) -> mpsc::UnboundedReceiver<Arc<Event>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.taps.push(tx);
        rx
    }

    /// Channels in creation order.
    pub fn channels_in_order(&self) -> Vec<&Channel> {
        let mut v: Vec<&Channel> = self.channels.values().collect();
        v.sort_by_key(|c| c.order);
        v
    }
}

pub(crate) use crate::event::CORE_HEADERS;

/// `0 years, 0 days, 0 hours, 1 minute, 19 seconds, 522 milliseconds, 940 microseconds`.
pub(crate) fn uptime_text(us: Micros) -> String {
    let us = us.max(0);
    let micro = us % 1000;
    let milli = (us / 1000) % 1000;
    let secs = us / 1_000_000;
    let sec = secs % 60;
    let min = (secs / 60) % 60;
    let hour = (secs / 3600) % 24;
    let day = (secs / 86_400) % 365;
    let year = secs / (86_400 * 365);
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    [
        plural(year, "year"),
        plural(day, "day"),
        plural(hour, "hour"),
        plural(min, "minute"),
        plural(sec, "second"),
        plural(milli, "millisecond"),
        plural(micro, "microsecond"),
    ]
    .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_like_the_heartbeat() {
        assert_eq!(
            uptime_text(79_522_940),
            "0 years, 0 days, 0 hours, 1 minute, 19 seconds, 522 milliseconds, 940 microseconds"
        );
    }

    fn event(name: &str, uuid: Option<&str>) -> Event {
        let mut e = Event::new();
        e.push("Event-Name", name);
        if let Some(u) = uuid {
            e.push("Unique-ID", u);
        }
        e
    }

    #[test]
    fn subscription_matches_names_all_and_sessions() {
        let mut sub = Subscription {
            enabled: true,
            ..Subscription::default()
        };
        sub.names.insert("CHANNEL_ANSWER".into());
        assert!(sub.wants(&event("CHANNEL_ANSWER", Some("a"))));
        assert!(!sub.wants(&event("CHANNEL_HANGUP", Some("a"))));
        sub.all = true;
        assert!(sub.wants(&event("CHANNEL_HANGUP", Some("a"))));
        sub.session_uuid = Some("b".into());
        assert!(!sub.wants(&event("CHANNEL_HANGUP", Some("a"))));
        assert!(sub.wants(&event("CHANNEL_HANGUP", Some("b"))));
    }

    #[test]
    fn filters_let_through_only_matching_events() {
        let mut sub = Subscription {
            enabled: true,
            all: true,
            ..Subscription::default()
        };
        sub.filters.push(("Unique-ID".into(), "a".into()));
        assert!(sub.wants(&event("CHANNEL_ANSWER", Some("a"))));
        assert!(!sub.wants(&event("CHANNEL_ANSWER", Some("b"))));
        assert!(!sub.wants(&event("HEARTBEAT", None)));
    }
}
