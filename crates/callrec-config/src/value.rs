//! The typed values a config key can hold, and how each is read from TOML and shown again.
//!
//! Every key's type implements [`ConfigValue`]: reading a TOML value either yields the typed
//! value or a one-line reason that names what was expected and what was found, so the loader
//! can prefix it with the key and where it came from. Domain ranges (port 0, zero retention)
//! are checked by the section definitions, not here.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use callrec_model::{EventFormat, PauseBehavior, QuotaPolicy, RecordingMode};
use toml::Value;

/// A type a config key can hold.
pub trait ConfigValue: Sized {
    /// Reads the value, or says in one line why it cannot be one.
    fn from_toml(value: &Value) -> Result<Self, String>;

    /// The value as TOML, for printing the effective settings. Secrets come out redacted.
    fn to_toml(&self) -> Value;
}

/// What a TOML value is, for "expected X, found Y" messages.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("the string {s:?}"),
        Value::Integer(i) => format!("the integer {i}"),
        Value::Float(f) => format!("the float {f}"),
        Value::Boolean(b) => format!("the boolean {b}"),
        Value::Datetime(d) => format!("the datetime {d}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Table(_) => "a table".to_owned(),
    }
}

fn expected(what: &str, value: &Value) -> String {
    format!("expected {what}, found {}", describe(value))
}

fn string_of<'v>(value: &'v Value, what: &str) -> Result<&'v str, String> {
    value.as_str().ok_or_else(|| expected(what, value))
}

impl ConfigValue for String {
    fn from_toml(value: &Value) -> Result<Self, String> {
        string_of(value, "a string").map(str::to_owned)
    }

    fn to_toml(&self) -> Value {
        Value::String(self.clone())
    }
}

impl ConfigValue for bool {
    fn from_toml(value: &Value) -> Result<Self, String> {
        value
            .as_bool()
            .ok_or_else(|| expected("true or false", value))
    }

    fn to_toml(&self) -> Value {
        Value::Boolean(*self)
    }
}

macro_rules! integer_value {
    ($($ty:ty),+) => {$(
        impl ConfigValue for $ty {
            fn from_toml(value: &Value) -> Result<Self, String> {
                let Some(i) = value.as_integer() else {
                    return Err(expected("an integer", value));
                };
                <$ty>::try_from(i).map_err(|_| {
                    format!("{i} is out of range (expected {} to {})", <$ty>::MIN, <$ty>::MAX)
                })
            }

            fn to_toml(&self) -> Value {
                // Every integer key is bounded well below i64::MAX by its section's check.
                Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )+};
}

integer_value!(u16, u32, u64, usize);

impl ConfigValue for PathBuf {
    fn from_toml(value: &Value) -> Result<Self, String> {
        let s = string_of(value, "a path (a string)")?;
        if s.is_empty() {
            return Err("a path must not be empty".to_owned());
        }
        Ok(PathBuf::from(s))
    }

    fn to_toml(&self) -> Value {
        Value::String(self.display().to_string())
    }
}

impl ConfigValue for Vec<String> {
    fn from_toml(value: &Value) -> Result<Self, String> {
        let Some(items) = value.as_array() else {
            return Err(expected(r#"an array of strings, e.g. ["a", "b"]"#, value));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("item {}: {}", i + 1, expected("a string", item)))
            })
            .collect()
    }

    fn to_toml(&self) -> Value {
        Value::Array(self.iter().cloned().map(Value::String).collect())
    }
}

/// Networks such as `[api] trusted_proxies`: each an address (`127.0.0.1`, `::1`) or a CIDR
/// network (`10.0.0.0/8`, `fd00::/8`). Host bits under the prefix are dropped
/// (`10.1.2.3/8` is `10.0.0.0/8`).
impl ConfigValue for Vec<ipnet::IpNet> {
    fn from_toml(value: &Value) -> Result<Self, String> {
        let Some(items) = value.as_array() else {
            return Err(expected(
                r#"an array of addresses or networks, e.g. ["127.0.0.1", "10.0.0.0/8"]"#,
                value,
            ));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let text = item
                    .as_str()
                    .ok_or_else(|| format!("item {}: {}", i + 1, expected("a string", item)))?;
                network(text).ok_or_else(|| {
                    format!(
                        "item {}: `{text}` is not an IP address or a CIDR network (e.g. \
                         127.0.0.1, 10.0.0.0/8, ::1, fd00::/8)",
                        i + 1
                    )
                })
            })
            .collect()
    }

    fn to_toml(&self) -> Value {
        Value::Array(self.iter().map(|n| Value::String(n.to_string())).collect())
    }
}

/// An address (a network of one) or a CIDR network.
fn network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    match text.parse::<ipnet::IpNet>() {
        Ok(net) => Some(net.trunc()),
        Err(_) => text
            .parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from),
    }
}

impl ConfigValue for SocketAddr {
    fn from_toml(value: &Value) -> Result<Self, String> {
        let s = string_of(value, "an address such as \"127.0.0.1:8080\"")?;
        s.parse().map_err(|_| {
            format!("`{s}` is not a listen address (expected IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8080)")
        })
    }

    fn to_toml(&self) -> Value {
        Value::String(self.to_string())
    }
}

impl ConfigValue for chrono_tz::Tz {
    fn from_toml(value: &Value) -> Result<Self, String> {
        let s = string_of(value, "an IANA time zone name such as \"Europe/London\"")?;
        s.parse().map_err(|_| {
            format!("unknown time zone `{s}` (expected an IANA name such as UTC, Europe/London or America/New_York)")
        })
    }

    fn to_toml(&self) -> Value {
        Value::String(self.name().to_owned())
    }
}

/// Values spelled as one of a fixed set of names (the domain enums).
macro_rules! named_value {
    ($($ty:ty),+) => {$(
        impl ConfigValue for $ty {
            fn from_toml(value: &Value) -> Result<Self, String> {
                let s = string_of(value, "a name (a string)")?;
                s.parse().map_err(|e: callrec_model::UnknownName| e.to_string())
            }

            fn to_toml(&self) -> Value {
                Value::String(self.as_str().to_owned())
            }
        }
    )+};
}

named_value!(
    RecordingMode,
    PauseBehavior,
    QuotaPolicy,
    EventFormat,
    LogFormat,
    AudioFormat
);

callrec_model::named_enum! {
    /// How log lines are written to stderr.
    LogFormat, "log format" {
        /// One readable line per event, for people.
        Human => "human",
        /// One JSON object per line, for log shippers.
        Json => "json",
    }
}

callrec_model::named_enum! {
    /// The audio container FreeSWITCH writes recordings in (the file extension).
    AudioFormat, "audio format" {
        /// RIFF WAV, written by mod_sndfile, always available.
        Wav => "wav",
        /// MP3, written by mod_shout (must be loaded in FreeSWITCH).
        Mp3 => "mp3",
    }
}

impl AudioFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        self.as_str()
    }

    /// The HTTP `Content-Type` of files in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Mp3 => "audio/mpeg",
        }
    }
}

/// A password or signing key. Shown as `<redacted>` by `Debug`, `Display` and the effective
/// settings; only [`Secret::expose`] gives the text, so a stray `{:?}` never leaks it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// What is printed instead of a secret that is set.
    pub const REDACTED: &'static str = "<redacted>";

    /// Wraps a secret.
    pub fn new(text: impl Into<String>) -> Self {
        Secret(text.into())
    }

    /// The secret text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no secret is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What to print: `<redacted>`, or the empty string when unset (that it is unset is
    /// useful to an operator and reveals nothing).
    fn shown(&self) -> &'static str {
        if self.0.is_empty() {
            ""
        } else {
            Self::REDACTED
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({:?})", self.shown())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.shown())
    }
}

impl ConfigValue for Secret {
    fn from_toml(value: &Value) -> Result<Self, String> {
        // Never echo the value: a password typed as a number would otherwise end up in logs.
        match value.as_str() {
            Some(s) => Ok(Secret::new(s)),
            None => Err(format!("expected a string, found {}", value.type_str())),
        }
    }

    fn to_toml(&self) -> Value {
        Value::String(self.shown().to_owned())
    }
}

/// A number of bytes, written either as an integer or as a string with a unit:
/// `1073741824`, `"1 GiB"`, `"512MiB"`, `"2G"` (binary units: K, M, G, T = 1024ⁿ; KB, MB,
/// GB, TB = 1000ⁿ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The number of bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{} {unit}", self.0 / size);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "`{text}` is not a size (expected bytes as an integer, or e.g. \"1 GiB\", \"500 MB\")"
            )
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let number: u64 = digits.parse().map_err(|_| bad())?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            _ => return Err(bad()),
        };
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl ConfigValue for ByteSize {
    fn from_toml(value: &Value) -> Result<Self, String> {
        match value {
            Value::Integer(i) => u64::try_from(*i)
                .map(ByteSize)
                .map_err(|_| format!("a size cannot be negative, found {i}")),
            Value::String(s) => s.parse(),
            other => Err(expected(
                "a size (an integer or a string such as \"1 GiB\")",
                other,
            )),
        }
    }

    fn to_toml(&self) -> Value {
        Value::Integer(i64::try_from(self.0).unwrap_or(i64::MAX))
    }
}

/// A log filter: a level (`error`, `warn`, `info`, `debug`, `trace`, `off`), optionally
/// followed by per-module directives, e.g. `info,callrec_daemon=debug` (the syntax of
/// `tracing_subscriber::EnvFilter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter(String);

impl LogFilter {
    /// The filter text, as `EnvFilter` takes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for LogFilter {
    /// `info`.
    fn default() -> Self {
        LogFilter("info".to_owned())
    }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

impl FromStr for LogFilter {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().is_empty() {
            return Err(format!(
                "a log level must not be empty (expected one of: {})",
                LEVELS.join(", ")
            ));
        }
        for directive in text.split(',').map(str::trim) {
            // `target=level` or a bare level; span filters (`target[span]=level`) keep their
            // `=` inside brackets, so the level is whatever follows the last `=`.
            let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
            if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "`{directive}` is not a log level or directive (expected one of: {}, or target=level)",
                    LEVELS.join(", ")
                ));
            }
        }
        Ok(LogFilter(text.to_owned()))
    }
}

impl ConfigValue for LogFilter {
    fn from_toml(value: &Value) -> Result<Self, String> {
        string_of(value, "a log level such as \"info\"")?.parse()
    }

    fn to_toml(&self) -> Value {
        Value::String(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_integers_or_with_units() {
        assert_eq!(
            ByteSize::from_toml(&Value::Integer(1024)),
            Ok(ByteSize(1024))
        );
        assert_eq!("1 GiB".parse(), Ok(ByteSize(1 << 30)));
        assert_eq!("512MiB".parse(), Ok(ByteSize(512 << 20)));
        assert_eq!("2g".parse(), Ok(ByteSize(2 << 30)));
        assert_eq!("5 MB".parse(), Ok(ByteSize(5_000_000)));
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("1 GiBs".parse::<ByteSize>().is_err());
        assert!("99999999999 TiB".parse::<ByteSize>().is_err());
        assert!(ByteSize::from_toml(&Value::Integer(-1)).is_err());
        assert_eq!(ByteSize(1 << 30).to_string(), "1 GiB");
        assert_eq!(ByteSize(1000).to_string(), "1000 bytes");
    }

    #[test]
    fn log_filters_accept_levels_and_directives_only() {
        assert!("info".parse::<LogFilter>().is_ok());
        assert!("warn,callrec_daemon=debug".parse::<LogFilter>().is_ok());
        assert!("INFO".parse::<LogFilter>().is_ok());
        let err = "loud".parse::<LogFilter>().unwrap_err();
        assert!(err.contains("`loud`"), "{err}");
        assert!("".parse::<LogFilter>().is_err());
    }

    #[test]
    fn a_secret_never_shows_its_text() {
        let secret = Secret::new("ClueCon");
        assert_eq!(format!("{secret:?}"), "Secret(\"<redacted>\")");
        assert_eq!(secret.to_string(), "<redacted>");
        assert_eq!(secret.to_toml(), Value::String("<redacted>".into()));
        assert_eq!(secret.expose(), "ClueCon");
        assert_eq!(Secret::default().to_string(), "");
    }

    #[test]
    fn wrong_types_say_what_was_expected_and_found() {
        assert_eq!(
            u16::from_toml(&Value::String("8021".into())),
            Err("expected an integer, found the string \"8021\"".to_owned())
        );
        assert_eq!(
            u16::from_toml(&Value::Integer(70000)),
            Err("70000 is out of range (expected 0 to 65535)".to_owned())
        );
        assert_eq!(
            RecordingMode::from_toml(&Value::String("sometimes".into())),
            Err("unknown recording mode `sometimes` (expected one of: never, always, always_pausable, on_demand)".to_owned())
        );
        let secret_err = Secret::from_toml(&Value::Integer(1234)).unwrap_err();
        assert!(!secret_err.contains("1234"), "{secret_err}");
    }
}
