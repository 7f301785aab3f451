//! The delivery metrics, registered by the daemon beside its own under `callrec_`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Deliveries by endpoint and outcome, and what waits per endpoint.
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    /// Attempts by endpoint id and outcome (`delivered`, `failed`, `expired`).
    pub deliveries: Family<Labels, Counter>,
    /// Events waiting, by endpoint id, as of its last drain.
    pub pending: Family<Labels, Gauge>,
    /// Consecutive failures, by endpoint id: 0 while it is healthy.
    pub failures: Family<Labels, Gauge>,
}

impl WebhookMetrics {
    /// Registers the metrics under the `callrec_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("callrec");
        r.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by endpoint and outcome (delivered, failed, expired)",
            self.deliveries.clone(),
        );
        r.register(
            "webhook_pending",
            "Webhook events waiting for an endpoint",
            self.pending.clone(),
        );
        r.register(
            "webhook_endpoint_failures",
            "Consecutive failed attempts of a webhook endpoint (0: healthy)",
            self.failures.clone(),
        );
    }

    pub(crate) fn outcome(&self, endpoint: i64, outcome: &str, n: u64) {
        self.deliveries
            .get_or_create(&vec![
                ("endpoint".to_owned(), endpoint.to_string()),
                ("outcome".to_owned(), outcome.to_owned()),
            ])
            .inc_by(n);
    }

    pub(crate) fn state(&self, endpoint: i64, pending: i64, failures: u32) {
        let label = vec![("endpoint".to_owned(), endpoint.to_string())];
        self.pending.get_or_create(&label).set(pending);
        self.failures.get_or_create(&label).set(failures.into());
    }
}
