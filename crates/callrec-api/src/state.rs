//! What every handler shares: the store, the daemon, the metrics and the limits.

use std::sync::Arc;
use std::time::Duration;

use callrec_store::{Caller, StoreHandle};

use crate::error::ApiError;
use crate::metrics::ApiMetrics;
use callrec_model::{LiveCalls, TokenId};

/// Limits and settings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The largest request body accepted, in bytes; larger is a 413. The largest legitimate
    /// body is a note of `MAX_NOTE_CHARS` characters of up to 4 bytes each.
    pub max_body_bytes: u64,
    /// After shutdown is asked for, how long requests in flight (a long download to a slow
    /// client) may run before they are cut, so that a stuck client cannot hold the daemon.
    pub shutdown_grace: Duration,
    /// Connections served at once and how long one may idle ([`crate::server`]).
    pub limits: crate::server::Limits,
    /// The web portal's sessions, throttle and cookies.
    pub portal: PortalConfig,
    /// Serve HTTPS with this certificate and key (`[api] tls_cert`, `tls_key`); `None`:
    /// plain HTTP. Under TLS cookies are always `Secure` and replies carry HSTS.
    pub tls: Option<crate::tls::Tls>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`[api] trusted_proxies`).
    pub trusted_proxies: crate::forwarded::TrustedProxies,
    /// Who may read `/metrics` (`[api] metrics_allow`); empty: anyone.
    pub metrics_allow: Vec<ipnet::IpNet>,
}

impl ApiConfig {
    /// Whether the portal's cookies are marked `Secure`: under native TLS always, else as
    /// [`PortalConfig::secure_cookies`] says (a TLS-terminating proxy in front).
    pub fn secure_cookies(&self) -> bool {
        self.tls.is_some() || self.portal.secure_cookies
    }
}

/// Settings of the web portal ([`crate::portal`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortalConfig {
    /// Session expiry and the sign-in throttle.
    pub policy: callrec_store::PortalPolicy,
    /// Mark cookies `Secure` (the browser then sends them over HTTPS only). Set it when the
    /// portal is reached over TLS, e.g. behind a TLS-terminating reverse proxy; a browser
    /// on plain HTTP would drop a `Secure` cookie and never stay signed in.
    pub secure_cookies: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(30),
            limits: crate::server::Limits::default(),
            portal: PortalConfig::default(),
            tls: None,
            trusted_proxies: crate::forwarded::TrustedProxies::default(),
            metrics_allow: Vec::new(),
        }
    }
}

/// The shared state of the API. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    store: StoreHandle,
    daemon: Arc<dyn LiveCalls>,
    metrics: ApiMetrics,
    config: ApiConfig,
    /// When each token's use was last written to the index.
    token_uses: std::sync::Mutex<std::collections::HashMap<TokenId, std::time::Instant>>,
}

/// A token's last use is written to the index at most this often.
pub const TOKEN_USE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// State over `store` and `daemon` with default limits.
    pub fn new(store: StoreHandle, daemon: Arc<dyn LiveCalls>) -> Self {
        ApiState::with_config(store, daemon, ApiConfig::default())
    }

    /// State with given limits.
    pub fn with_config(store: StoreHandle, daemon: Arc<dyn LiveCalls>, config: ApiConfig) -> Self {
        ApiState {
            inner: Arc::new(Inner {
                store,
                daemon,
                metrics: ApiMetrics::new(),
                config,
                token_uses: std::sync::Mutex::default(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &StoreHandle {
        &self.inner.store
    }

    /// The daemon.
    pub fn daemon(&self) -> &dyn LiveCalls {
        self.inner.daemon.as_ref()
    }

    /// The API's metrics.
    pub fn metrics(&self) -> &ApiMetrics {
        &self.inner.metrics
    }

    /// The limits.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// Notes that `token` authenticated a request: its `last_used_at` is written in the
    /// background, at most once a minute per token (`TOKEN_USE_EVERY`), so requests neither wait
    /// for it nor queue on the index's write lock.
    pub fn token_used(&self, token: TokenId) {
        let now = std::time::Instant::now();
        {
            let mut uses = self
                .inner
                .token_uses
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if uses
                .get(&token)
                .is_some_and(|at| now.duration_since(*at) < TOKEN_USE_EVERY)
            {
                return;
            }
            uses.insert(token, now);
        }
        let store = self.store().clone();
        tokio::spawn(async move {
            if let Err(err) = store.write(move |s| s.touch_token(token)).await {
                tracing::debug!(error = %err, %token, "cannot note the token's use");
            }
        });
    }

    /// Write one audit entry for a read that the store does not audit itself (searches,
    /// listings, settings), in the caller's site.
    pub async fn audit(
        &self,
        caller: &Caller,
        action: &'static str,
        target: String,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        let (site, actor) = (caller.site_id, caller.actor());
        self.store()
            .write(move |s| s.record_event(Some(site), &actor, action, &target, &detail))
            .await?;
        Ok(())
    }
}
