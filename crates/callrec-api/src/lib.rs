//! callrec's REST API.
//!
//! warp filters, handlers and models for SPEC §5. No SQL here: every query goes through the
//! store.
