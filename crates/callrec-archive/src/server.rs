//! The callrec server as the archive client sees it: the few routes it uses, over reqwest
//! with rustls, each JSON call retried with capped exponential backoff while the server
//! cannot be reached or answers 5xx, 408 or 429. Downloads are retried by the caller
//! ([`crate::download`]), which resumes from what it already has.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ArchiveError;

/// An API token. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token from its text (surrounding whitespace, e.g. a file's newline, removed).
    pub fn new(secret: &str) -> Result<Token, ArchiveError> {
        let secret = secret.trim();
        if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ArchiveError::Config(
                "the token is empty or holds spaces or control characters".into(),
            ));
        }
        Ok(Token(secret.to_owned()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// How calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The wait after the first failure; doubled after each, up to `max_delay`.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(20));
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Whether a failed request may succeed if sent again.
pub fn is_transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() || e.is_decode()
}

/// Whether a status is worth another try.
pub fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// The most recordings [`Server::recordings`] asks for at once (the server's limit).
pub const MAX_BATCH: usize = 500;

/// `GET /api/v1/me`, the parts the client uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    /// The token's user.
    pub user: MeUser,
    /// The site's time zone.
    pub site_timezone: Tz,
}

/// The user of a token.
#[derive(Debug, Clone, Deserialize)]
pub struct MeUser {
    /// Extension.
    pub extension: String,
    /// Site name.
    pub site: String,
}

impl Me {
    /// `extension@site`: whose recordings the token archives.
    pub fn owner(&self) -> String {
        format!("{}@{}", self.user.extension, self.user.site)
    }
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Change {
    /// Its sequence number.
    pub seq: i64,
    /// What happened.
    pub kind: String,
    /// To which recording.
    pub recording_id: String,
}

/// A page of the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChangesPage {
    /// The changes.
    pub changes: Vec<Change>,
    /// Where the next page starts.
    pub last_seq: i64,
}

/// One party of a call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Party {
    /// As presented by the switch.
    pub raw: String,
}

/// What the client needs of `GET /api/v1/recordings/{id}`; the sidecar keeps the whole reply.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordingMeta {
    /// Its id.
    pub id: String,
    /// Its site.
    pub site: String,
    /// Its owner's extension.
    pub user: String,
    /// Its direction.
    pub direction: String,
    /// Calling party.
    pub from: Party,
    /// Called party.
    pub to: Party,
    /// When recording started.
    pub started_at: DateTime<Utc>,
    /// Its state (`stored`, `deleted`, …).
    pub state: String,
    /// The file's size.
    pub size_bytes: Option<u64>,
    /// The file's SHA-256.
    pub sha256: Option<String>,
    /// Its format.
    pub format: String,
}

/// What one run did, as `POST /api/v1/archive/runs` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// The client's name.
    pub client: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Recordings downloaded and verified.
    pub downloaded: u64,
    /// Recordings not downloaded (already there, before `--since`, gone).
    pub skipped: u64,
    /// Recordings that could not be archived.
    pub failed: u64,
    /// Bytes of audio downloaded.
    pub bytes: u64,
    /// The change feed is handled up to here.
    pub last_seq: i64,
    /// Nothing was written.
    pub dry_run: bool,
    /// What went wrong (the first few).
    pub errors: Vec<String>,
}

/// The callrec server.
#[derive(Debug, Clone)]
pub struct Server {
    http: reqwest::Client,
    base: String,
    token: Token,
    retry: RetryPolicy,
}

impl Server {
    /// A client of the server at `base` (`http://host:8080` or `https://…`).
    pub fn new(base: &str, token: Token, retry: RetryPolicy) -> Result<Server, ArchiveError> {
        let base = base.trim().trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base)
            .map_err(|e| ArchiveError::Config(format!("--server `{base}` is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ArchiveError::Config(format!(
                "--server `{base}` must be http://HOST[:PORT] or https://HOST[:PORT]"
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("callrec-archive/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ArchiveError::Config(format!("cannot set up HTTPS: {e}")))?;
        Ok(Server {
            http,
            base,
            token,
            retry,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The retry policy.
    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Send a request built by `build`, retrying while the server cannot be reached or
    /// answers a transient status; any other answer is returned.
    async fn send(
        &self,
        op: &'static str,
        path: &str,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ArchiveError> {
        let url = self.url(path);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = build(&self.http, &url)
                .bearer_auth(&self.token.0)
                .send()
                .await;
            let last = attempt >= self.retry.attempts.max(1);
            match sent {
                Ok(resp) if is_transient_status(resp.status()) && !last => {
                    tracing::warn!(op, status = resp.status().as_u16(), attempt, "retrying");
                }
                Ok(resp) => return Ok(resp),
                Err(e) if is_transient(&e) && !last => {
                    tracing::warn!(op, error = %e, attempt, "cannot reach the server; retrying");
                }
                Err(source) => {
                    return Err(ArchiveError::Network {
                        op,
                        url,
                        attempts: attempt,
                        source,
                    });
                }
            }
            tokio::time::sleep(self.retry.delay(attempt)).await;
        }
    }

    /// Turn an error status into an error, with the server's message.
    async fn check(
        &self,
        op: &'static str,
        resp: reqwest::Response,
    ) -> Result<reqwest::Response, ArchiveError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| body.chars().take(200).collect());
        if status == StatusCode::UNAUTHORIZED {
            return Err(ArchiveError::Unauthorized {
                server: self.base.clone(),
                message,
            });
        }
        Err(ArchiveError::Server {
            op,
            status: status.as_u16(),
            message,
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
    ) -> Result<T, ArchiveError> {
        let resp = self.send(op, path, |c, u| c.get(u)).await?;
        let resp = self.check(op, resp).await?;
        let bytes = resp.bytes().await.map_err(|source| ArchiveError::Network {
            op,
            url: self.url(path),
            attempts: 1,
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ArchiveError::Protocol(format!("{op}: {e}")))
    }

    /// Who the token is, and the site's time zone.
    pub async fn me(&self) -> Result<Me, ArchiveError> {
        self.get_json("read /api/v1/me", "/api/v1/me").await
    }

    /// The changes after `after`.
    pub async fn changes(&self, after: i64, limit: u32) -> Result<ChangesPage, ArchiveError> {
        self.get_json(
            "read the change feed",
            &format!("/api/v1/changes?after={after}&limit={limit}"),
        )
        .await
    }

    /// A recording's metadata, and the whole reply for the sidecar; `None` when the server
    /// no longer shows it (404). A run reads many at once ([`Server::recordings`]).
    pub async fn recording(
        &self,
        id: &str,
    ) -> Result<Option<(RecordingMeta, Value)>, ArchiveError> {
        let op = "read a recording's metadata";
        let path = format!("/api/v1/recordings/{id}");
        let resp = self.send(op, &path, |c, u| c.get(u)).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = self.check(op, resp).await?;
        let bytes = resp.bytes().await.map_err(|source| ArchiveError::Network {
            op,
            url: self.url(&path),
            attempts: 1,
            source,
        })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ArchiveError::Protocol(format!("{op}: {e}")))?;
        let meta: RecordingMeta = serde_json::from_value(value.clone())
            .map_err(|e| ArchiveError::Protocol(format!("{op}: {e}")))?;
        if meta.id != id {
            return Err(ArchiveError::Protocol(format!(
                "asked for recording {id}, got {}",
                meta.id
            )));
        }
        Ok(Some((meta, value)))
    }

    /// The metadata of many recordings at once (at most [`MAX_BATCH`]), each with the whole
    /// reply for its sidecar, in the order asked; the ids the server no longer shows are
    /// left out. One request, which the server audits as one read of each.
    pub async fn recordings(
        &self,
        ids: &[String],
    ) -> Result<Vec<(RecordingMeta, Value)>, ArchiveError> {
        #[derive(Deserialize)]
        struct Details {
            items: Vec<Value>,
        }
        let op = "read recordings' metadata";
        let path = "/api/v1/archive/recordings";
        let body = serde_json::to_vec(&serde_json::json!({ "ids": ids }))
            .map_err(|e| ArchiveError::Protocol(format!("{op}: {e}")))?;
        let resp = self
            .send(op, path, |c, u| {
                c.post(u)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await?;
        let resp = self.check(op, resp).await?;
        let bytes = resp.bytes().await.map_err(|source| ArchiveError::Network {
            op,
            url: self.url(path),
            attempts: 1,
            source,
        })?;
        let details: Details = serde_json::from_slice(&bytes)
            .map_err(|e| ArchiveError::Protocol(format!("{op}: {e}")))?;
        let mut found = Vec::with_capacity(details.items.len());
        for value in details.items {
            let meta: RecordingMeta = serde_json::from_value(value.clone())
                .map_err(|e| ArchiveError::Protocol(format!("{op}: {e}")))?;
            found.push((meta, value));
        }
        // Only recordings asked for, each once.
        let asked: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut answered = std::collections::HashSet::new();
        if let Some((meta, _)) = found
            .iter()
            .find(|(m, _)| !asked.contains(m.id.as_str()) || !answered.insert(m.id.as_str()))
        {
            return Err(ArchiveError::Protocol(format!(
                "{op}: the server answered recording {} twice or unasked",
                meta.id
            )));
        }
        Ok(found)
    }

    /// Start the audio of a recording from byte `from` (a Range request with `If-Range` on
    /// the hash, so a changed file comes whole). One attempt: the caller retries, resuming.
    pub async fn audio(
        &self,
        id: &str,
        from: u64,
        sha256: &str,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut req = self
            .http
            .get(self.url(&format!("/api/v1/recordings/{id}/audio?download=1")))
            .bearer_auth(&self.token.0);
        if from > 0 {
            req = req
                .header(reqwest::header::RANGE, format!("bytes={from}-"))
                .header(reqwest::header::IF_RANGE, format!("\"{sha256}\""));
        }
        req.send().await
    }

    /// An error for an audio answer that is neither 200 nor 206.
    pub async fn audio_error(&self, resp: reqwest::Response) -> ArchiveError {
        match self.check("download a recording", resp).await {
            Err(e) => e,
            Ok(r) => ArchiveError::Protocol(format!(
                "download a recording: unexpected status {}",
                r.status()
            )),
        }
    }

    /// Report a run.
    pub async fn report(&self, report: &RunReport) -> Result<(), ArchiveError> {
        let op = "report the run";
        let body =
            serde_json::to_vec(report).map_err(|e| ArchiveError::Protocol(format!("{op}: {e}")))?;
        let resp = self
            .send(op, "/api/v1/archive/runs", |c, u| {
                c.post(u)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await?;
        self.check(op, resp).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = RetryPolicy {
            attempts: 10,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(4),
        };
        let delays: Vec<_> = (1..=6).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 4000, 4000]);
    }

    #[test]
    fn a_token_never_shows_in_debug_and_must_be_printable() {
        let t = Token::new("  callrec_secret\n").unwrap();
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        assert!(Token::new("").is_err());
        assert!(Token::new("a b").is_err());
    }

    #[test]
    fn only_http_urls_with_a_host_are_servers() {
        let t = Token::new("x").unwrap();
        assert!(Server::new("http://127.0.0.1:8080/", t.clone(), RetryPolicy::default()).is_ok());
        for bad in ["127.0.0.1:8080", "ftp://h", "http://", "not a url"] {
            let e = Server::new(bad, t.clone(), RetryPolicy::default()).unwrap_err();
            assert!(e.is_config(), "{bad}: {e}");
        }
    }
}
