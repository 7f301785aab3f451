//! The callrec daemon.
//!
//! Holds the Event Socket session with FreeSWITCH, tracks live calls, decides what to record
//! and answers the handset feature codes; hands finished files to the store.
