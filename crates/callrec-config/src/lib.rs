//! callrec's configuration.
//!
//! Owns the TOML file format of SPEC §7: every key defaulted, `CALLREC_<SECTION>_<KEY>`
//! environment overrides, and rejection of an invalid file with the key and the reason.
//! It does not read anything but the file and the environment.
