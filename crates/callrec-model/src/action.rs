//! Why a recording action (pause, resume, start, stop) was not carried out.
//!
//! The daemon decides and returns these; the API turns each into a status and the handset
//! into a prompt. One typed error, so neither has to read a message to know what happened.

use crate::names::RecordingMode;

/// Why an action was not carried out. The API maps these to HTTP statuses (in brackets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No call in progress has this id (404).
    #[error("no call {0} in progress")]
    UnknownCall(String),
    /// The call belongs to no known user of an enabled site, or is a feature-code call (409,
    /// `not_allowed`).
    #[error("call {0} belongs to no recorded user")]
    NoOwner(String),
    /// The user's mode forbids it (409, `not_allowed`).
    #[error("{action} is not allowed in mode {mode}")]
    Refused {
        /// The action asked for.
        action: &'static str,
        /// The user's mode.
        mode: RecordingMode,
    },
    /// The recording is not in a state where this makes sense (409, `wrong_state`).
    #[error("cannot {action}: {reason}")]
    Conflict {
        /// The action asked for.
        action: &'static str,
        /// The state that prevents it.
        reason: &'static str,
    },
    /// The switch refused the command, twice (502).
    #[error("the switch refused {action}: {reply}")]
    SwitchRefused {
        /// The action asked for.
        action: &'static str,
        /// The switch's reply.
        reply: String,
    },
    /// The switch is not connected, or the connection was lost before it answered (503).
    #[error("{action}: the switch did not answer (connection lost)")]
    SwitchUnavailable {
        /// The action asked for.
        action: &'static str,
    },
}
