//! How a simulator is set up: where it listens, its password, its clock, where it writes
//! recordings, and the few dialplan facts the scripted calls depend on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::clock::ClockMode;

/// The version string in `HEARTBEAT` (`FreeSWITCH-Version`), as in the captures.
pub const VERSION_TAG: &str = "1.11.3-dev~64bit";

/// Everything a simulator needs to start. [`SimConfig::default`] gives the captured lab
/// switch: `ClueCon`, heartbeat every 20 s, a manual clock, recordings under the system
/// temporary directory.
#[derive(Clone)]
pub struct SimConfig {
    /// Address of the inbound Event Socket. `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// The `auth` password.
    pub password: String,
    /// Interval of `HEARTBEAT` events; zero disables them.
    pub heartbeat: Duration,
    /// Where relative recording paths are resolved (the switch's recordings directory).
    pub spool_dir: PathBuf,
    /// Manual (tests) or real time (demo, bin).
    pub clock: ClockMode,
    /// `FreeSWITCH-Hostname` / `-Switchname`.
    pub hostname: String,
    /// `FreeSWITCH-IPv4`.
    pub ipv4: String,
    /// `FreeSWITCH-IPv6`.
    pub ipv6: String,
    /// Where the dialplan's `socket` application connects for a feature code
    /// (`socket 127.0.0.1:8084 async full`); `None` means feature codes are not routed.
    pub feature_code_socket: Option<String>,
    /// Destinations that the dialplan routes to the feature-code socket.
    pub feature_codes: Vec<String>,
    /// The vanilla configuration's `sleep` before a call proceeds (its default-password
    /// warning). The captures were taken with it at 10 s; the events are the same either way.
    pub dialplan_sleep: Duration,
    /// How long the dialplan's bridge takes from the callee's answer to `CHANNEL_BRIDGE`
    /// (260 ms in the `sip-hold` capture).
    pub bridge_delay: Duration,
    /// Audio a recording's media bug swallows at its start and never writes (480 ms in
    /// every capture: a 1.2 s recording holds 0.72 s of audio). A loopback B leg loses
    /// nothing (measured against the real switch).
    pub record_pre_buffer: Duration,
    /// The shipped `dialplan/callrec-arm.xml` is installed: a leg entering the dialplan whose
    /// `callrec_user` (or, without it, `user_name`) has a `user_<name>` entry in the hash
    /// realm `callrec` is armed to record at answer, as the real switch does with that file.
    pub dialplan_arming: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            password: "ClueCon".to_string(),
            heartbeat: Duration::from_secs(20),
            spool_dir: std::env::temp_dir().join("callrec-sim-recordings"),
            clock: ClockMode::default(),
            hostname: "fs-lab".to_string(),
            ipv4: "192.0.2.2".to_string(),
            ipv6: "2001:db8::2".to_string(),
            feature_code_socket: None,
            feature_codes: vec!["*44".into(), "*48".into(), "*49".into()],
            dialplan_sleep: Duration::ZERO,
            bridge_delay: Duration::from_millis(260),
            record_pre_buffer: Duration::from_millis(480),
            dialplan_arming: false,
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("listen", &self.listen)
            .field("password", &"<redacted>")
            .field("heartbeat", &self.heartbeat)
            .field("spool_dir", &self.spool_dir)
            .field("clock", &self.clock)
            .field("hostname", &self.hostname)
            .field("feature_code_socket", &self.feature_code_socket)
            .field("feature_codes", &self.feature_codes)
            .field("dialplan_sleep", &self.dialplan_sleep)
            .field("bridge_delay", &self.bridge_delay)
            .field("record_pre_buffer", &self.record_pre_buffer)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_show_the_password() {
        let cfg = SimConfig {
            password: "s3cret-pw".into(),
            ..SimConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("s3cret-pw"));
    }
}
