//! callrec's recording store.
//!
//! Owns the SQLite index (`<data_dir>/index.db`) and the files under `<data_dir>/store/`:
//! schema and migrations, crash-safe ingest, retention, quota and integrity checks.
//! It knows nothing of FreeSWITCH or HTTP.
