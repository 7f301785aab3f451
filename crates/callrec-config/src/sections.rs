//! The sections of the config file (SPEC §7), each key with its type, default and check.
//!
//! Every section is declared once with [`section!`], which generates the struct, its
//! `Default`, and the [`Section`] methods the loader uses to set a key by name from any
//! source (file, environment, command line). Adding a key here is all it takes for it to be
//! read from every source, rejected when wrong and printed by `config check`; the example
//! file `examples/callrec.toml` must document it too (a unit test checks that it does).

use std::fmt::Display;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use callrec_model::limits::{MAX_MIN_SECONDS, MAX_PAUSE_SECONDS, MAX_RETENTION_DAYS};
use callrec_model::{EventFormat, Prompt, RecordingAction};
use callrec_model::{PauseBehavior, QuotaPolicy, RecordingMode};
use callrec_numbers::NumberPlan;
use ipnet::IpNet;
use toml::Value;

use crate::value::{AudioFormat, ByteSize, ConfigValue, LogFilter, LogFormat, Secret};

/// Why a key could not be set.
#[derive(Debug)]
pub(crate) enum SetError {
    /// The section has no such key.
    UnknownKey,
    /// The value is wrong; the text says why.
    Invalid(String),
}

/// What the loader needs from every section, whatever its keys.
pub(crate) trait Section {
    /// The section's name in the file: `esl`, `feature_codes`…
    fn name(&self) -> &'static str;
    /// Every key, in the order they are documented.
    fn keys(&self) -> &'static [&'static str];
    /// Sets one key from a TOML value, checking its type and range.
    fn set(&mut self, key: &str, value: &Value) -> Result<(), SetError>;
    /// Every key with its current value, secrets redacted.
    fn entries(&self) -> Vec<(&'static str, Value)>;
}

macro_rules! section {
    (
        $(#[$meta:meta])*
        $name:ident, $section:literal {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $ty:ty = $default:expr $(, check $check:expr)? ;
            )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )+
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )+ }
            }
        }

        impl $name {
            /// The section's name in the config file.
            pub const NAME: &'static str = $section;
            /// Every key of the section.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($field)),+];
        }

        impl Section for $name {
            fn name(&self) -> &'static str {
                Self::NAME
            }

            fn keys(&self) -> &'static [&'static str] {
                Self::KEYS
            }

            fn set(&mut self, key: &str, value: &Value) -> Result<(), SetError> {
                match key {
                    $(
                        stringify!($field) => {
                            let parsed = <$ty as ConfigValue>::from_toml(value)
                                .map_err(SetError::Invalid)?;
                            $( ($check)(&parsed).map_err(SetError::Invalid)?; )?
                            self.$field = parsed;
                            Ok(())
                        }
                    )+
                    _ => Err(SetError::UnknownKey),
                }
            }

            fn entries(&self) -> Vec<(&'static str, Value)> {
                vec![$( (stringify!($field), ConfigValue::to_toml(&self.$field)) ),+]
            }
        }
    };
}

/// A check that an integer lies in `min..=max`, with a message that gives the unit.
fn within<T: PartialOrd + Display + Copy>(
    min: T,
    max: T,
    unit: &'static str,
) -> impl Fn(&T) -> Result<(), String> {
    move |v| {
        if *v < min || *v > max {
            Err(format!("must be between {min} and {max}{unit}, found {v}"))
        } else {
            Ok(())
        }
    }
}

fn host_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!(
            "`{host}` is not a host name or IP address (no spaces, slashes or ports)"
        ));
    }
    Ok(())
}

fn not_empty_secret(secret: &Secret) -> Result<(), String> {
    if secret.is_empty() {
        Err("must not be empty (FreeSWITCH's default is ClueCon)".to_owned())
    } else {
        Ok(())
    }
}

/// A feature code is what a user dials: digits, `*` and `#`.
fn dial_code(code: &str) -> Result<(), String> {
    if code.is_empty()
        || !code
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
    {
        return Err(format!(
            "`{code}` is not a dialable code (expected digits, * and #, e.g. *48)"
        ));
    }
    Ok(())
}

/// The number plan's rules are the store's too (`callrec-numbers`: it refuses a site the
/// config would otherwise accept), so they are asked of that crate rather than repeated here.
fn store_reason(err: callrec_numbers::BadPlan) -> String {
    format!("`{}`: {}", err.value, err.reason)
}

/// The daemon subscribes in plain or JSON; the ESL crate does not parse XML events.
fn plain_or_json(format: &EventFormat) -> Result<(), String> {
    match format {
        EventFormat::Plain | EventFormat::Json => Ok(()),
        EventFormat::Xml => Err("callrec reads `plain` or `json` events, not `xml`".to_owned()),
    }
}

fn country_calling_code(code: &u16) -> Result<(), String> {
    NumberPlan {
        country_code: *code,
        national_prefix: String::new(),
    }
    .validate()
    .map_err(store_reason)
}

fn national_prefix(prefix: &str) -> Result<(), String> {
    NumberPlan {
        national_prefix: prefix.to_owned(),
        ..NumberPlan::default()
    }
    .validate()
    .map_err(store_reason)
}

fn header_list(headers: &[String]) -> Result<(), String> {
    if headers.is_empty() {
        return Err("must name at least one header, or no call would ever match a user".to_owned());
    }
    for (i, header) in headers.iter().enumerate() {
        if header.trim().is_empty() {
            return Err(format!("item {} is empty", i + 1));
        }
        if headers[..i].contains(header) {
            return Err(format!("`{header}` is listed twice"));
        }
    }
    Ok(())
}

fn webhook_urls(urls: &[String]) -> Result<(), String> {
    for url in urls {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !url.contains(char::is_whitespace) => {}
            _ => {
                return Err(format!("`{url}` is not an http:// or https:// URL"));
            }
        }
    }
    Ok(())
}

fn at_least_one_byte(size: &ByteSize) -> Result<(), String> {
    if size.bytes() == 0 {
        Err("must be at least 1 byte".to_owned())
    } else {
        Ok(())
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

section! {
    /// `[esl]`: the inbound Event Socket connection to FreeSWITCH (SPEC §3.1).
    EslConfig, "esl" {
        /// Host name or IP address of FreeSWITCH's `mod_event_socket`.
        host: String = "127.0.0.1".to_owned(), check host_name;
        /// Its port.
        port: u16 = 8021, check within(1, 65535, "");
        /// For `userauth` (`user@domain`); empty means plain password auth.
        user: String = String::new();
        /// The Event Socket password.
        password: Secret = Secret::new("ClueCon"), check not_empty_secret;
        /// Upper bound of the exponential reconnect backoff, in seconds.
        reconnect_max_secs: u32 = 10, check within(1, 3600, " seconds");
        /// How long to wait for the TCP connection and auth, in milliseconds.
        connect_timeout_ms: u32 = 2000, check within(1, 600_000, " ms");
        /// How long to wait for the reply to one command, in milliseconds.
        command_timeout_ms: u32 = 5000, check within(1, 600_000, " ms");
        /// Seconds without any traffic (HEARTBEAT comes every ~20 s) before the connection is
        /// declared dead and re-established; 0 turns the check off.
        liveness_timeout_secs: u32 = 60, check within(0, 3600, " seconds");
        /// `plain` or `json` event encoding (`json` measured faster: BENCHMARKS.md, Daemon).
        event_format: EventFormat = EventFormat::Json, check plain_or_json;
        /// Events buffered between the socket reader and callrec before the ESL crate drops.
        event_queue_size: usize = 16_384, check within(1, 1_048_576, " events");
    }
}

impl EslConfig {
    /// The reconnect backoff cap.
    pub fn reconnect_max(&self) -> Duration {
        Duration::from_secs(self.reconnect_max_secs.into())
    }

    /// The connect (and auth) timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.into())
    }

    /// The per-command reply timeout.
    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms.into())
    }

    /// The liveness timeout, or `None` when it is off.
    pub fn liveness_timeout(&self) -> Option<Duration> {
        (self.liveness_timeout_secs > 0)
            .then(|| Duration::from_secs(self.liveness_timeout_secs.into()))
    }
}

section! {
    /// `[feature_codes]`: the outbound socket the dialplan sends *48/*49/*44 to (SPEC §3.5).
    FeatureCodesConfig, "feature_codes" {
        /// Where callrec listens for FreeSWITCH's outbound `socket` connections.
        listen: SocketAddr = loopback(8084);
        /// The code that pauses the held call's recording.
        pause: String = "*48".to_owned(), check dial_code;
        /// The code that resumes it.
        resume: String = "*49".to_owned(), check dial_code;
        /// The code that starts an on-demand recording.
        start: String = "*44".to_owned(), check dial_code;
    }
}

impl FeatureCodesConfig {
    /// Which action a dialled destination asks for, if it is one of the feature codes.
    pub fn action(&self, destination: &str) -> Option<RecordingAction> {
        if destination == self.pause {
            Some(RecordingAction::Pause)
        } else if destination == self.resume {
            Some(RecordingAction::Resume)
        } else if destination == self.start {
            Some(RecordingAction::Start)
        } else {
            None
        }
    }
}

section! {
    /// `[api]`: the REST API (SPEC §5).
    ApiConfig, "api" {
        /// Where the HTTP server listens.
        listen: SocketAddr = loopback(8080);
        /// The largest request body accepted; larger ones get 413.
        max_body_bytes: ByteSize = ByteSize(64 * 1024), check at_least_one_byte;
        /// Connections served at once; more wait in the kernel's accept queue. Lowered at
        /// start, with a warning, to keep a quarter of the open-files limit (at least 64
        /// descriptors) for recordings and the index.
        max_connections: u32 = 512, check within(1, 1_000_000, " connections");
        /// A connection that has not sent a complete request head within this time (a new
        /// one, or a kept-alive one between requests) is closed: idle and slow clients
        /// cannot hold the daemon's sockets.
        header_timeout_secs: u32 = 10, check within(1, 3600, " seconds");
        /// Mark the portal's cookies `Secure` (sent over HTTPS only). Turn it on when the
        /// portal is reached over TLS, e.g. behind a TLS-terminating reverse proxy; over
        /// plain HTTP a browser drops such cookies and cannot stay signed in. With
        /// `tls_cert` set, cookies are `Secure` whatever this says.
        secure_cookies: bool = false;
        /// A PEM certificate chain (the server's certificate first, then intermediates):
        /// serve HTTPS on `listen`. Empty: plain HTTP. Set together with `tls_key`.
        tls_cert: String = String::new();
        /// The PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1). Empty: plain HTTP.
        tls_key: String = String::new();
        /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For` names the
        /// client: the portal's sign-in throttle and the audit log then use the rightmost
        /// address in it that is not one of these. Empty: the connection's peer is the client.
        trusted_proxies: Vec<IpNet> = Vec::new();
        /// Who may read `/metrics` (addresses or CIDR networks, e.g. the Prometheus
        /// server's). Empty: anyone who reaches the listener (SPEC §5), as before. The
        /// metrics say how much is stored, how much disk is free and how many users are over
        /// quota; set this when the listener is reachable from outside.
        metrics_allow: Vec<IpNet> = Vec::new();
    }
}

impl ApiConfig {
    /// Whether the API serves HTTPS itself (`tls_cert` and `tls_key` set).
    pub fn tls_enabled(&self) -> bool {
        !self.tls_cert.is_empty() && !self.tls_key.is_empty()
    }
}

section! {
    /// `[storage]`: where files and the index live (SPEC §2, §4).
    StorageConfig, "storage" {
        /// Holds `index.db` and `store/`.
        data_dir: PathBuf = PathBuf::from("./callrec-data");
        /// Where FreeSWITCH writes recordings (passed in `uuid_record`); defaults to
        /// `<data_dir>/spool`. Best on the same filesystem as `data_dir`.
        spool_dir: PathBuf = PathBuf::from("./callrec-data/spool");
        /// The audio format recordings are written in.
        format: AudioFormat = AudioFormat::Wav;
        /// How often the spool is scanned for closed files whose RECORD_STOP was missed.
        spool_scan_secs: u32 = 60, check within(1, 86_400, " seconds");
        /// How often retention is applied.
        sweep_interval_secs: u32 = 3600, check within(1, 604_800, " seconds");
        /// A file the daemon appends the audit log's chain head to (`SEQ HASH`, as
        /// `callrec audit head` prints it) whenever it has moved, once a minute and at
        /// shutdown; empty: off. Keep it off this disk (another mount, an append-only file),
        /// and check with `callrec verify --head-file`.
        audit_head_file: String = String::new();
    }
}

impl StorageConfig {
    /// The SQLite index file.
    pub fn index_path(&self) -> PathBuf {
        self.data_dir.join("index.db")
    }

    /// The root of the retention-managed store.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// The spool scan period.
    pub fn spool_scan_interval(&self) -> Duration {
        Duration::from_secs(self.spool_scan_secs.into())
    }

    /// The sweep period.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_secs.into())
    }

    /// The spool directory `storage.spool_dir` takes when not set: `<data_dir>/spool`.
    pub(crate) fn default_spool_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("spool")
    }
}

section! {
    /// `[site]`: the settings of the `default` site (SPEC §1). Keys set here (file, env or
    /// command line) are applied to the site at start and win over the API; keys left out
    /// keep whatever the API last set (see `Config::explicit_keys`).
    SiteConfig, "site" {
        /// Whether recording is on for the whole site.
        enabled: bool = true;
        /// The mode new users get.
        default_mode: RecordingMode = RecordingMode::AlwaysPausable;
        /// Days a recording is kept.
        retention_days: u32 = 180, check within(1, MAX_RETENTION_DAYS, " days");
        /// Keep every recording 7 years (the legal-hold add-on).
        legal_hold: bool = false;
        /// `silence` (mask) or `skip` (pause) while paused.
        pause_behavior: PauseBehavior = PauseBehavior::Silence;
        /// Recordings shorter than this are discarded by the switch (`RECORD_MIN_SEC`).
        min_seconds: u32 = 3, check within(0, MAX_MIN_SECONDS, " seconds");
        /// A recording paused longer than this resumes by itself and its user hears the
        /// "resumed" prompt (0: off).
        max_pause_seconds: u32 = 0, check within(0, MAX_PAUSE_SECONDS, " seconds");
        /// IANA time zone for file names and the dashboard.
        timezone: chrono_tz::Tz = chrono_tz::Tz::UTC;
        /// Country calling code used to normalise national numbers to E.164.
        country_code: u16 = 44, check country_calling_code;
        /// The national trunk prefix stripped before adding the country code.
        national_prefix: String = "0".to_owned(), check national_prefix;
    }
}

impl SiteConfig {
    /// The retention period.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.retention_days) * 86_400)
    }
}

section! {
    /// `[quota]`: per-user storage quota (SPEC §4.4).
    QuotaConfig, "quota" {
        /// Bytes each user may keep; an integer or e.g. "1 GiB".
        per_user_bytes: ByteSize = ByteSize(1 << 30), check at_least_one_byte;
        /// `alert` or `evict_oldest`.
        policy: QuotaPolicy = QuotaPolicy::Alert;
    }
}

section! {
    /// `[match]`: which channel headers name the user a channel belongs to (SPEC §3.2).
    MatchConfig, "match" {
        /// Tried in order; the first that names a known user wins.
        headers: Vec<String> = vec![
            "variable_callrec_user".to_owned(),
            "variable_user_name".to_owned(),
            "variable_dialed_user".to_owned(),
            "Caller-Caller-ID-Number".to_owned(),
            "Caller-Destination-Number".to_owned(),
        ], check header_list;
    }
}

section! {
    /// `[prompts]`: the WAV files played after a feature code. Relative file names are
    /// taken from `dir`; a relative `dir` from the working directory.
    PromptsConfig, "prompts" {
        /// Directory holding the prompt files.
        dir: PathBuf = PathBuf::from("prompts");
        /// Played after a successful pause.
        paused: PathBuf = PathBuf::from("paused.wav");
        /// Played after a successful resume.
        resumed: PathBuf = PathBuf::from("resumed.wav");
        /// Played after an on-demand start.
        started: PathBuf = PathBuf::from("started.wav");
        /// Played when the user's mode refuses the code.
        not_allowed: PathBuf = PathBuf::from("not_allowed.wav");
        /// Played when there is no call to act on.
        no_call: PathBuf = PathBuf::from("no_call.wav");
    }
}

impl PromptsConfig {
    /// The file to play for a prompt (an absolute file name is used as it is).
    pub fn path(&self, prompt: Prompt) -> PathBuf {
        let file = match prompt {
            Prompt::Paused => &self.paused,
            Prompt::Resumed => &self.resumed,
            Prompt::Started => &self.started,
            Prompt::NotAllowed => &self.not_allowed,
            Prompt::NoCall => &self.no_call,
        };
        self.dir.join(file)
    }
}

section! {
    /// `[webhooks]`: signed notifications of recordings stored, failed, discarded and
    /// deleted, and of calls that should have been recorded and were not (SPEC §5.2).
    WebhooksConfig, "webhooks" {
        /// Every URL an event is POSTed to (every site's events); admins add their site's
        /// own through the API.
        urls: Vec<String> = Vec::new(), check webhook_urls;
        /// The HMAC-SHA256 signing key; required when `urls` is not empty.
        secret: Secret = Secret::default();
        /// The longest one delivery attempt may take, connecting included.
        timeout_secs: u32 = 10, check within(1, 300, " seconds");
        /// The longest wait between attempts at an endpoint that keeps failing (the wait
        /// starts at 1 s and doubles).
        max_backoff_secs: u32 = 3600, check within(1, 86400, " seconds");
        /// An event an endpoint has not accepted this long after it happened is given up
        /// (counted as expired, logged at WARN).
        give_up_after_hours: u32 = 72, check within(1, 8760, " hours");
    }
}

impl WebhooksConfig {
    /// [`Self::timeout_secs`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.into())
    }

    /// [`Self::max_backoff_secs`] as a duration.
    pub fn max_backoff(&self) -> Duration {
        Duration::from_secs(self.max_backoff_secs.into())
    }

    /// [`Self::give_up_after_hours`] as a duration.
    pub fn give_up_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.give_up_after_hours) * 3600)
    }
}

section! {
    /// `[log]`: what the daemon and the commands write to stderr.
    LogConfig, "log" {
        /// A level (`info`) or an `EnvFilter` directive list (`info,callrec_daemon=debug`).
        level: LogFilter = LogFilter::default();
        /// `human` or `json`.
        format: LogFormat = LogFormat::Human;
    }
}
