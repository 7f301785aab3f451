//! Webhook delivery (SPEC §5.2, issue 13): POSTs every event of the index's outbox to its
//! endpoints, signed, in order, with capped exponential backoff.
//!
//! The events themselves are written by the store (triggers of migration `0004-webhooks.sql`,
//! in the same transaction as each recording's change), so recording never waits for a
//! receiver and a restart loses nothing: this crate only reads the outbox and writes back
//! what each attempt did.
//!
//! | module | what |
//! | --- | --- |
//! | [`signature`] | the `X-Callrec-Signature` header: HMAC-SHA256 of `<t>.<body>` |
//! | [`payload`] | the JSON body of an event |
//! | [`backoff`] | when to try an endpoint again |
//! | [`worker`] | the delivery loop, one drain per endpoint |
//! | [`metrics`] | deliveries by endpoint and outcome |
//!
//! Delivery is at least once: a receiver de-duplicates on the event's `id` (also sent as
//! `X-Callrec-Event-Id`).

#![deny(missing_docs)]

pub mod backoff;
pub mod metrics;
pub mod payload;
pub mod signature;
pub mod worker;

pub use metrics::WebhookMetrics;
pub use worker::{WebhookSettings, run};
