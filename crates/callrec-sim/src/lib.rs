//! A simulated FreeSWITCH.
//!
//! An Event Socket peer whose framing, header names and reply texts match captures of a real
//! switch (`tests/fixtures/freeswitch/`). It exists for callrec's tests, `callrec demo` and
//! the benchmarks; it is not a media server.
