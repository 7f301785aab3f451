//! Faults a test can inject: the things a real switch or network does to a client at the
//! worst moment.

use std::time::Duration;

/// What happens to the reply of a matching command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyFault {
    /// The reply is written this long (wall-clock) after the command ran; events queued
    /// meanwhile wait behind it, as they do behind a slow `api` on the real switch.
    Delay(Duration),
    /// The command runs but its reply is never written.
    Withhold,
}

/// A reply fault and the commands it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRule {
    /// Applies to commands starting with this text (`api uuid_record`, `bgapi`, `event`);
    /// `None` matches every command.
    pub command_prefix: Option<String>,
    /// What to do.
    pub fault: ReplyFault,
    /// How many more commands it applies to; `None` means until cleared.
    pub remaining: Option<u32>,
}

impl ReplyRule {
    /// Matches one command, consuming one use.
    pub(crate) fn take(&mut self, command: &str) -> Option<ReplyFault> {
        if self.remaining == Some(0) {
            return None;
        }
        let matches = self
            .command_prefix
            .as_deref()
            .is_none_or(|p| command.starts_with(p));
        if !matches {
            return None;
        }
        if let Some(n) = &mut self.remaining {
            *n -= 1;
        }
        Some(self.fault.clone())
    }
}

/// A frame the switch would never send, for testing a client's parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedFrame {
    /// `Content-Length: abc`.
    BadContentLength,
    /// A `Content-Length` larger than anything that follows, then the socket stays open.
    TruncatedBody,
    /// A header block with an unknown `Content-Type`.
    UnknownContentType,
    /// An event body that is not `Name: value` lines.
    GarbageEvent,
}

impl MalformedFrame {
    pub(crate) fn bytes(self) -> &'static [u8] {
        match self {
            MalformedFrame::BadContentLength => {
                b"Content-Type: api/response\nContent-Length: abc\n\n+OK\n"
            }
            MalformedFrame::TruncatedBody => {
                b"Content-Length: 4096\nContent-Type: text/event-plain\n\nEvent-Name: HEARTBEAT\n"
            }
            MalformedFrame::UnknownContentType => b"Content-Type: text/surprise\n\n",
            MalformedFrame::GarbageEvent => {
                b"Content-Length: 22\nContent-Type: text/event-json\n\n{not json at all!!!!!}"
            }
        }
    }
}

/// The fault switches held by the switch core.
#[derive(Debug, Default, Clone)]
pub(crate) struct FaultState {
    /// Deny every `auth`, even with the right password.
    pub refuse_auth: bool,
    /// Reply rules, first match wins.
    pub reply_rules: Vec<ReplyRule>,
}

impl FaultState {
    pub(crate) fn reply_fault(&mut self, command: &str) -> Option<ReplyFault> {
        self.reply_rules.iter_mut().find_map(|r| r.take(command))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_rule_runs_out() {
        let mut f = FaultState::default();
        f.reply_rules.push(ReplyRule {
            command_prefix: Some("api uuid_record".into()),
            fault: ReplyFault::Withhold,
            remaining: Some(1),
        });
        assert_eq!(f.reply_fault("api status"), None);
        assert_eq!(
            f.reply_fault("api uuid_record x start y"),
            Some(ReplyFault::Withhold)
        );
        assert_eq!(f.reply_fault("api uuid_record x start y"), None);
    }
}
