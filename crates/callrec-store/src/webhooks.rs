//! The webhook outbox (SPEC §5.2, issue 13): endpoints, and the deliveries the triggers of
//! migration `0004-webhooks.sql` queue for them in the same transaction as each recording's
//! change. This module keeps the endpoints and the delivery state; sending (HTTP, signing,
//! backoff) is the `callrec-webhooks` crate's.
//!
//! Delivery is at least once: an event whose POST succeeded but whose success was not written
//! (a crash in between) is sent again, with the same event id for the receiver to drop.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Event};
use crate::error::StoreError;
use crate::records::{Access, Recording, Scope};
use crate::store::Store;
use crate::view::{ReadView, from_ms, ms, opt_time_col, time_col};
use callrec_model::SiteId;

/// Where an endpoint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointSource {
    /// `[webhooks] urls` in the config file; signed with `[webhooks] secret`.
    Config,
    /// Created by an admin through the API; signed with its own secret.
    Api,
}

impl EndpointSource {
    fn parse(s: &str) -> EndpointSource {
        if s == "config" {
            EndpointSource::Config
        } else {
            EndpointSource::Api
        }
    }
}

/// An endpoint and how delivering to it goes, for admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: i64,
    /// Where events are POSTed.
    pub url: String,
    /// `config` or `api`.
    pub source: EndpointSource,
    /// The site whose events it receives; `None`: every site's.
    pub site: Option<String>,
    /// Whether events are queued for it (a config endpoint removed from the file is not).
    pub enabled: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// Failed attempts since the last success; what its backoff grows with.
    pub failures: u32,
    /// No attempt before this.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last delivery that succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last attempt that failed.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Why it failed.
    pub last_error: Option<String>,
    /// Events waiting for it.
    pub pending: i64,
    /// Events it acknowledged.
    pub delivered: i64,
    /// Events given up on (older than the give-up age) or cancelled with the endpoint.
    pub expired: i64,
}

/// What the delivery worker needs to send to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveEndpoint {
    /// Its id.
    pub id: i64,
    /// Where to POST.
    pub url: String,
    /// Its own secret (`api` endpoints); `None`: sign with the config's.
    pub secret: Option<String>,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// No attempt before this.
    pub next_attempt_at: DateTime<Utc>,
}

/// An event waiting for one endpoint, with the recording as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct DueEvent {
    /// Its place in the outbox.
    pub seq: i64,
    /// Its id: the same on every attempt and for every endpoint; receivers de-duplicate on it.
    pub id: String,
    /// `recording.stored`, `recording.failed`, `recording.discarded`, `recording.deleted` or
    /// `call.not_recorded`.
    pub kind: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Attempts made so far.
    pub attempts: u32,
    /// The recording.
    pub recording: Recording,
}

/// The shortest secret accepted for an endpoint created through the API.
pub const MIN_SECRET_CHARS: usize = 16;

impl ReadView<'_> {
    /// The endpoints `access` may see (an admin: their site's and the config's), with their
    /// delivery counts.
    pub fn webhook_endpoints(&self, access: &Access) -> Result<Vec<WebhookEndpoint>, StoreError> {
        access.require_admin("list webhooks")?;
        let site = match access.scope {
            Scope::All => None,
            Scope::Site(site) | Scope::User { site, .. } => Some(site.0),
        };
        self.conn
            .prepare_cached(
                "SELECT e.id, e.url, e.source, s.name, e.enabled, e.created_at, e.created_by,
                     e.failures, e.next_attempt_at, e.last_success_at, e.last_failure_at,
                     e.last_error,
                     (SELECT count(*) FROM webhook_deliveries d
                      WHERE d.endpoint_id = e.id AND d.state = 'pending'),
                     (SELECT count(*) FROM webhook_deliveries d
                      WHERE d.endpoint_id = e.id AND d.state = 'delivered'),
                     (SELECT count(*) FROM webhook_deliveries d
                      WHERE d.endpoint_id = e.id AND d.state IN ('expired', 'cancelled'))
                 FROM webhook_endpoints e LEFT JOIN sites s ON s.id = e.site_id
                 WHERE ?1 IS NULL OR e.site_id IS NULL OR e.site_id = ?1
                 ORDER BY e.id",
            )
            .and_then(|mut s| {
                s.query_map([site], |r| {
                    Ok(WebhookEndpoint {
                        id: r.get(0)?,
                        url: r.get(1)?,
                        source: EndpointSource::parse(&r.get::<_, String>(2)?),
                        site: r.get(3)?,
                        enabled: r.get(4)?,
                        created_at: time_col(r, 5)?,
                        created_by: r.get(6)?,
                        failures: r.get(7)?,
                        // 0: no backoff, it may be tried now.
                        next_attempt_at: opt_time_col(r, 8)?.filter(|t| t.timestamp_millis() > 0),
                        last_success_at: opt_time_col(r, 9)?,
                        last_failure_at: opt_time_col(r, 10)?,
                        last_error: r.get(11)?,
                        pending: r.get(12)?,
                        delivered: r.get(13)?,
                        expired: r.get(14)?,
                    })
                })?
                .collect()
            })
            .map_err(StoreError::sql("list webhook endpoints"))
    }

    /// The endpoints events are queued for, for the delivery worker.
    pub fn active_webhook_endpoints(&self) -> Result<Vec<ActiveEndpoint>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT id, url, secret, failures, next_attempt_at FROM webhook_endpoints
                 WHERE enabled = 1 ORDER BY id",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, u32>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("list active webhook endpoints"))?
            .into_iter()
            .map(|(id, url, secret, failures, next)| {
                Ok(ActiveEndpoint {
                    id,
                    url,
                    secret,
                    failures,
                    next_attempt_at: from_ms(next)?,
                })
            })
            .collect()
    }

    /// The oldest events waiting for `endpoint`, at most `limit`, in the order they
    /// happened.
    pub fn due_webhook_events(
        &self,
        endpoint: i64,
        limit: u32,
    ) -> Result<Vec<DueEvent>, StoreError> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT ev.seq, ev.id, ev.kind, ev.at, d.attempts, r.id
                 FROM webhook_deliveries d
                 JOIN webhook_events ev ON ev.seq = d.event_seq
                 JOIN recordings r ON r.seq = ev.recording_seq
                 WHERE d.endpoint_id = ?1 AND d.state = 'pending'
                 ORDER BY d.event_seq LIMIT ?2",
            )
            .and_then(|mut s| {
                s.query_map(params![endpoint, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, u32>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("read due webhook events"))?;
        let system = Access::system("webhooks");
        rows.into_iter()
            .map(|(seq, id, kind, at, attempts, recording)| {
                let recording = recording.parse().map_err(|_| {
                    StoreError::invalid("recording id", recording.clone(), "not a recording id")
                })?;
                Ok(DueEvent {
                    seq,
                    id,
                    kind,
                    at: from_ms(at)?,
                    attempts,
                    recording: self.recording(&recording, &system)?,
                })
            })
            .collect()
    }
}

impl Store {
    /// Keeps the `config` endpoints in step with `[webhooks] urls`: a URL listed is enabled
    /// (created if new), one no longer listed is disabled and its waiting events cancelled.
    pub fn sync_config_webhooks(&mut self, urls: &[String]) -> Result<(), StoreError> {
        let now = ms(self.now());
        let tx = self.begin()?;
        for url in urls {
            tx.prepare_cached(
                "INSERT INTO webhook_endpoints (url, source, site_id, created_at, created_by)
                 SELECT ?1, 'config', NULL, ?2, 'config' WHERE NOT EXISTS
                     (SELECT 1 FROM webhook_endpoints WHERE url = ?1 AND source = 'config')",
            )
            .and_then(|mut s| s.execute(params![url, now]))
            .map_err(StoreError::sql("add a config webhook"))?;
        }
        let listed = serde_json::to_string(urls).unwrap_or_default();
        tx.prepare_cached(
            "UPDATE webhook_endpoints
             SET enabled = (url IN (SELECT value FROM json_each(?1)))
             WHERE source = 'config'",
        )
        .and_then(|mut s| s.execute([&listed]))
        .map_err(StoreError::sql("update config webhooks"))?;
        tx.execute(
            "UPDATE webhook_deliveries SET state = 'cancelled', done_at = ?1
             WHERE state = 'pending'
               AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE enabled = 0)",
            [now],
        )
        .map_err(StoreError::sql("cancel deliveries of removed webhooks"))?;
        tx.commit()
            .map_err(StoreError::sql("commit config webhooks"))
    }

    /// An admin adds an endpoint for their site's events (every site's for a system actor);
    /// audited. The secret signs every event to it: at least [`MIN_SECRET_CHARS`] characters.
    pub fn add_webhook(
        &mut self,
        url: &str,
        secret: &str,
        access: &Access,
    ) -> Result<WebhookEndpoint, StoreError> {
        access.require_admin("add a webhook")?;
        validate_url(url)?;
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(StoreError::invalid(
                "secret",
                "<redacted>",
                format!("must be at least {MIN_SECRET_CHARS} characters"),
            ));
        }
        let site: Option<SiteId> = match access.scope {
            Scope::All => None,
            Scope::Site(site) | Scope::User { site, .. } => Some(site),
        };
        let now = self.now();
        let tx = self.begin()?;
        let taken: bool = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM webhook_endpoints
                 WHERE url = ?1 AND source = 'api' AND site_id IS ?2 AND enabled = 1)",
            )
            .and_then(|mut s| s.query_row(params![url, site.map(|s| s.0)], |r| r.get(0)))
            .map_err(StoreError::sql("look for the webhook"))?;
        if taken {
            return Err(StoreError::DuplicateWebhook(url.to_owned()));
        }
        // A URL removed before and added again becomes that endpoint again.
        tx.prepare_cached(
            "INSERT INTO webhook_endpoints (url, source, site_id, secret, created_at, created_by)
             VALUES (?1, 'api', ?2, ?3, ?4, ?5)
             ON CONFLICT (url, source, site_id) DO UPDATE SET
                 secret = excluded.secret, enabled = 1, created_at = excluded.created_at,
                 created_by = excluded.created_by, failures = 0, next_attempt_at = 0,
                 last_error = NULL",
        )
        .and_then(|mut s| {
            s.execute(params![
                url,
                site.map(|s| s.0),
                secret,
                ms(now),
                access.actor
            ])
        })
        .map_err(StoreError::sql("add a webhook"))?;
        let id: i64 = tx
            .prepare_cached(
                "SELECT id FROM webhook_endpoints WHERE url = ?1 AND source = 'api' AND site_id IS ?2",
            )
            .and_then(|mut s| s.query_row(params![url, site.map(|s| s.0)], |r| r.get(0)))
            .map_err(StoreError::sql("read the new webhook"))?;
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site,
                actor: &access.actor,
                action: "webhook.add",
                target: &format!("webhook:{id}"),
                detail: &json!({ "url": url }).to_string(),
            },
        )?;
        let endpoint = find(&ReadView::new(&tx).webhook_endpoints(access)?, id)?;
        tx.commit().map_err(StoreError::sql("commit the webhook"))?;
        Ok(endpoint)
    }

    /// An admin removes an endpoint they added: no event is queued for it from now on, and
    /// those waiting are cancelled; its history stays. Config endpoints are removed from the
    /// config file.
    pub fn remove_webhook(&mut self, id: i64, access: &Access) -> Result<(), StoreError> {
        access.require_admin("remove a webhook")?;
        let now = ms(self.now());
        let tx = self.begin()?;
        let endpoint = find(&ReadView::new(&tx).webhook_endpoints(access)?, id)?;
        if endpoint.source == EndpointSource::Config {
            return Err(StoreError::ConfigWebhook(id));
        }
        tx.execute(
            "UPDATE webhook_endpoints SET enabled = 0 WHERE id = ?1",
            [id],
        )
        .map_err(StoreError::sql("remove a webhook"))?;
        tx.execute(
            "UPDATE webhook_deliveries SET state = 'cancelled', done_at = ?2
             WHERE endpoint_id = ?1 AND state = 'pending'",
            params![id, now],
        )
        .map_err(StoreError::sql("cancel the webhook's deliveries"))?;
        let site = endpoint
            .site
            .as_deref()
            .map(|name| ReadView::new(&tx).site(name).map(|s| s.id))
            .transpose()?;
        audit::append(
            &tx,
            &Event {
                at_ms: now,
                site,
                actor: &access.actor,
                action: "webhook.remove",
                target: &format!("webhook:{id}"),
                detail: &json!({ "url": endpoint.url }).to_string(),
            },
        )?;
        tx.commit()
            .map_err(StoreError::sql("commit the webhook removal"))
    }

    /// The endpoint acknowledged the event (a 2xx).
    pub fn webhook_delivered(
        &mut self,
        endpoint: i64,
        event_seq: i64,
        status: u16,
    ) -> Result<(), StoreError> {
        let now = ms(self.now());
        let tx = self.begin()?;
        tx.prepare_cached(
            "UPDATE webhook_deliveries
             SET state = 'delivered', attempts = attempts + 1, last_status = ?3, done_at = ?4
             WHERE endpoint_id = ?1 AND event_seq = ?2 AND state = 'pending'",
        )
        .and_then(|mut s| s.execute(params![endpoint, event_seq, status, now]))
        .map_err(StoreError::sql("mark a webhook delivered"))?;
        tx.prepare_cached(
            "UPDATE webhook_endpoints SET failures = 0, next_attempt_at = 0, last_success_at = ?2
             WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![endpoint, now]))
        .map_err(StoreError::sql("update the webhook's state"))?;
        tx.commit()
            .map_err(StoreError::sql("commit a webhook delivery"))
    }

    /// An attempt failed (`status`: the endpoint's answer, `None` when there was none): the
    /// endpoint waits until `retry_at` before its next attempt.
    pub fn webhook_failed(
        &mut self,
        endpoint: i64,
        event_seq: i64,
        status: Option<u16>,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ms(self.now());
        let tx = self.begin()?;
        tx.prepare_cached(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?3,
                 last_error = ?4
             WHERE endpoint_id = ?1 AND event_seq = ?2",
        )
        .and_then(|mut s| s.execute(params![endpoint, event_seq, status, error]))
        .map_err(StoreError::sql("record a failed webhook attempt"))?;
        tx.prepare_cached(
            "UPDATE webhook_endpoints SET failures = failures + 1, next_attempt_at = ?2,
                 last_failure_at = ?3, last_error = ?4
             WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![endpoint, ms(retry_at), now, error]))
        .map_err(StoreError::sql("update the webhook's state"))?;
        tx.commit()
            .map_err(StoreError::sql("commit a failed webhook attempt"))
    }

    /// Gives up on the events that happened before `before` and are still waiting for
    /// `endpoint`; returns how many.
    pub fn expire_webhook_events(
        &mut self,
        endpoint: i64,
        before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let now = ms(self.now());
        self.conn
            .prepare_cached(
                "UPDATE webhook_deliveries SET state = 'expired', done_at = ?3
                 WHERE endpoint_id = ?1 AND state = 'pending'
                   AND event_seq IN (SELECT seq FROM webhook_events WHERE at < ?2)",
            )
            .and_then(|mut s| s.execute(params![endpoint, ms(before), now]))
            .map_err(StoreError::sql("expire webhook events"))
    }

    /// Forgets the events finished (delivered, expired or cancelled everywhere) before
    /// `before`, so the outbox does not grow without end; returns how many.
    pub fn prune_webhook_events(&mut self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let tx = self.begin()?;
        let old = "SELECT seq FROM webhook_events ev WHERE ev.at < ?1 AND NOT EXISTS
                   (SELECT 1 FROM webhook_deliveries d
                    WHERE d.event_seq = ev.seq AND d.state = 'pending')";
        tx.execute(
            &format!("DELETE FROM webhook_deliveries WHERE event_seq IN ({old})"),
            [ms(before)],
        )
        .map_err(StoreError::sql("prune webhook deliveries"))?;
        let n = tx
            .execute(
                &format!("DELETE FROM webhook_events WHERE seq IN ({old})"),
                [ms(before)],
            )
            .map_err(StoreError::sql("prune webhook events"))?;
        tx.commit()
            .map_err(StoreError::sql("commit webhook pruning"))?;
        Ok(n)
    }
}

fn find(endpoints: &[WebhookEndpoint], id: i64) -> Result<WebhookEndpoint, StoreError> {
    endpoints
        .iter()
        .find(|e| e.id == id)
        .cloned()
        .ok_or(StoreError::UnknownWebhook(id))
}

/// An endpoint's URL: http or https, a host, no spaces.
fn validate_url(url: &str) -> Result<(), StoreError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty() && !url.contains(char::is_whitespace) && url.len() <= 2000 =>
        {
            Ok(())
        }
        _ => Err(StoreError::invalid(
            "url",
            url,
            "must be an http:// or https:// URL",
        )),
    }
}

impl ReadView<'_> {
    /// How many events wait for `endpoint`.
    pub fn pending_webhook_events(&self, endpoint: i64) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = ?1 AND state = 'pending'",
            )
            .and_then(|mut s| s.query_row([endpoint], |r| r.get(0)))
            .map_err(StoreError::sql("count pending webhook events"))
    }
}
