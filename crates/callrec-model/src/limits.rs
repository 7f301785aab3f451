//! Bounds on site settings that both the configuration and the store check.

/// The longest retention a site may ask for (100 years), so expiry arithmetic stays sane.
pub const MAX_RETENTION_DAYS: u32 = 36_525;
/// The largest `min_seconds` accepted (one hour).
pub const MAX_MIN_SECONDS: u32 = 3_600;
/// The largest `max_pause_seconds` accepted (one day); 0 turns auto-resume off.
pub const MAX_PAUSE_SECONDS: u32 = 86_400;
