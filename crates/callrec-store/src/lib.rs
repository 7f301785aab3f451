//! callrec's recording store.
//!
//! Owns the SQLite index (`<data_dir>/index.db`) and the files under `<data_dir>/store/`:
//! schema and migrations, crash-safe ingest, retention, quota and integrity checks.
//! It knows nothing of FreeSWITCH or HTTP.

pub mod model;

pub use model::{
    Direction, PauseBehavior, QuotaPolicy, RecordingId, RecordingMode, RecordingState, Role,
    SegmentKind, SegmentSource, UnknownName,
};
