//! `callrec-sim`: run a simulated FreeSWITCH on a port (work in progress).

fn main() {}
