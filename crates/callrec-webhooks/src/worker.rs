//! The delivery loop. Every [`WebhookSettings::poll`] it reads the enabled endpoints and
//! starts a drain for each one that is due and not already draining: the drain sends the
//! endpoint's waiting events oldest first, one at a time, and stops at the first failure,
//! which puts the endpoint back by its backoff. Endpoints never wait for each other, so one
//! that is down or slow (each attempt is bounded by [`WebhookSettings::timeout`]) delays only
//! its own events. Every step's outcome is written to the index before the next, so a
//! restart carries on where this one stopped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use callrec_store::{ActiveEndpoint, DueEvent, StoreError, StoreHandle};
use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff;
use crate::metrics::WebhookMetrics;
use crate::payload::Payload;
use crate::signature;

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The config's `[webhooks] secret`: signs events to the config's endpoints.
    pub config_secret: String,
    /// The longest one attempt may take, connection included.
    pub timeout: Duration,
    /// The wait after an endpoint's first failure; it doubles with each further one.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// An event still undelivered this long after it happened is given up (`expired`, with
    /// a warning); it stays visible in the endpoint's counts.
    pub give_up_after: Duration,
    /// How often the outbox is looked at for new events.
    pub poll: Duration,
    /// Finished events older than this are removed from the outbox.
    pub keep_finished: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            config_secret: String::new(),
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(72 * 3600),
            poll: Duration::from_secs(1),
            keep_finished: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Events read from the outbox per round trip to the index.
const BATCH: u32 = 100;

/// Delivers until `shutdown`. An attempt cut short by shutdown is not recorded as delivered
/// and is sent again after the restart (at least once).
pub async fn run(
    store: StoreHandle,
    settings: WebhookSettings,
    metrics: Arc<WebhookMetrics>,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .user_agent(concat!("callrec/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the webhook client; no webhook is sent");
            return;
        }
    };
    let shared = Arc::new(Shared {
        store,
        settings,
        metrics,
        client,
    });
    let mut draining: HashMap<i64, JoinHandle<()>> = HashMap::new();
    let mut last_prune = None::<tokio::time::Instant>;
    let mut tick = tokio::time::interval(shared.settings.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        draining.retain(|_, task| !task.is_finished());
        let endpoints = match shared.store.read(|v| v.active_webhook_endpoints()).await {
            Ok(endpoints) => endpoints,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the webhook endpoints; trying again");
                continue;
            }
        };
        let now = Utc::now();
        for endpoint in endpoints {
            if draining.contains_key(&endpoint.id) || endpoint.next_attempt_at > now {
                continue;
            }
            let id = endpoint.id;
            let shared = shared.clone();
            let stop = shutdown.clone();
            draining.insert(
                id,
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        result = shared.drain(endpoint) => if let Err(err) = result {
                            tracing::warn!(endpoint = id, error = %err,
                                "webhook delivery stopped by an index error; trying again");
                        }
                    }
                }),
            );
        }
        if last_prune.is_none_or(|t: tokio::time::Instant| t.elapsed() > Duration::from_secs(3600))
        {
            last_prune = Some(tokio::time::Instant::now());
            let before = Utc::now() - shared.settings.keep_finished;
            match shared
                .store
                .write(move |s| s.prune_webhook_events(before))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::debug!(events = n, "pruned finished webhook events"),
                Err(err) => tracing::warn!(error = %err, "cannot prune the webhook outbox"),
            }
        }
    }
    for (_, task) in draining {
        let _ = task.await;
    }
}

struct Shared {
    store: StoreHandle,
    settings: WebhookSettings,
    metrics: Arc<WebhookMetrics>,
    client: reqwest::Client,
}

/// What one attempt came to.
enum Attempt {
    Delivered(u16),
    Failed { status: Option<u16>, error: String },
}

impl Shared {
    /// Sends `endpoint`'s waiting events until none is left or one fails.
    async fn drain(&self, endpoint: ActiveEndpoint) -> Result<(), StoreError> {
        let id = endpoint.id;
        let give_up_before = Utc::now() - self.settings.give_up_after;
        let expired = self
            .store
            .write(move |s| s.expire_webhook_events(id, give_up_before))
            .await?;
        if expired > 0 {
            self.metrics.outcome(id, "expired", expired as u64);
            tracing::warn!(endpoint = id, url = %endpoint.url, events = expired,
                after = ?self.settings.give_up_after,
                "webhook events given up: the endpoint did not accept them in time");
        }
        let mut failures = endpoint.failures;
        loop {
            let due = self
                .store
                .read(move |v| v.due_webhook_events(id, BATCH))
                .await?;
            if due.is_empty() {
                break;
            }
            for event in due {
                match self.attempt(&endpoint, &event).await {
                    Attempt::Delivered(status) => {
                        let seq = event.seq;
                        self.store
                            .write(move |s| s.webhook_delivered(id, seq, status))
                            .await?;
                        self.metrics.outcome(id, "delivered", 1);
                        failures = 0;
                    }
                    Attempt::Failed { status, error } => {
                        failures += 1;
                        let wait = backoff::delay(
                            failures,
                            self.settings.initial_backoff,
                            self.settings.max_backoff,
                            rand::random::<f64>(),
                        );
                        tracing::warn!(endpoint = id, url = %endpoint.url, event = %event.id,
                            kind = %event.kind, attempt = event.attempts + 1, %error,
                            retry_in = ?wait, "webhook delivery failed");
                        let retry_at = Utc::now()
                            + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                        let seq = event.seq;
                        self.store
                            .write(move |s| s.webhook_failed(id, seq, status, &error, retry_at))
                            .await?;
                        self.metrics.outcome(id, "failed", 1);
                        self.report_state(id, failures).await;
                        return Ok(());
                    }
                }
            }
        }
        self.report_state(id, failures).await;
        Ok(())
    }

    async fn report_state(&self, endpoint: i64, failures: u32) {
        if let Ok(pending) = self
            .store
            .read(move |v| v.pending_webhook_events(endpoint))
            .await
        {
            self.metrics.state(endpoint, pending, failures);
        }
    }

    async fn attempt(&self, endpoint: &ActiveEndpoint, event: &DueEvent) -> Attempt {
        let body = Payload::of(event).to_bytes();
        let secret = endpoint
            .secret
            .as_deref()
            .unwrap_or(&self.settings.config_secret);
        let t = Utc::now().timestamp();
        let request = self
            .client
            .post(&endpoint.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                signature::HEADER,
                signature::header_value(secret.as_bytes(), t, &body),
            )
            .header("X-Callrec-Event", &event.kind)
            .header("X-Callrec-Event-Id", &event.id)
            .body(body);
        match request.send().await {
            Ok(reply) if reply.status().is_success() => Attempt::Delivered(reply.status().as_u16()),
            Ok(reply) => Attempt::Failed {
                status: Some(reply.status().as_u16()),
                error: format!("the endpoint answered {}", reply.status()),
            },
            Err(err) => Attempt::Failed {
                status: None,
                error: describe(&err),
            },
        }
    }
}

/// A request error with its causes, e.g. "error sending request: … Connection refused".
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
