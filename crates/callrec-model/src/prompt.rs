//! What a feature-code caller hears (SPEC §3.5): the daemon decides which, the configuration
//! says which file.

/// A message played after a feature code (SPEC §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// The recording is now paused.
    Paused,
    /// The recording is recording again.
    Resumed,
    /// An on-demand recording started.
    Started,
    /// The user's mode does not allow this.
    NotAllowed,
    /// There is no call to act on.
    NoCall,
}

impl Prompt {
    /// Its key in `[prompts]`.
    pub fn key(self) -> &'static str {
        match self {
            Prompt::Paused => "paused",
            Prompt::Resumed => "resumed",
            Prompt::Started => "started",
            Prompt::NotAllowed => "not_allowed",
            Prompt::NoCall => "no_call",
        }
    }

    /// Every prompt.
    pub const ALL: [Prompt; 5] = [
        Prompt::Paused,
        Prompt::Resumed,
        Prompt::Started,
        Prompt::NotAllowed,
        Prompt::NoCall,
    ];
}
