//! How the switch encodes the events it sends over the Event Socket.

crate::named_enum! {
    /// The encoding a client asks for with `event plain|json|xml …`: the simulator answers in
    /// it, the daemon subscribes in it (`[esl] event_format`, plain or json).
    #[derive(Default)]
    EventFormat, "event format" {
        /// `text/event-plain`: percent-encoded `Name: value` lines.
        #[default]
        Plain => "plain",
        /// `text/event-json`: one JSON object per event.
        Json => "json",
        /// `text/event-xml`.
        Xml => "xml",
    }
}
