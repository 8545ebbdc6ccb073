//! The bot's own Discord REST client, for history pages and channel lookups.
//!
//! serenity's `Http` turns a 429 into an error without its `Retry-After`
//! (its proxy mode runs without the rate limiter that would otherwise read
//! it), so a backfill built on it could only guess how long to wait. This
//! client reads the wait from the answer itself, the larger of the
//! `Retry-After` header, the body's `retry_after` and
//! `X-RateLimit-Reset-After`, and waits exactly that before retrying. A
//! global 429 holds back every request of the client until it has passed. It
//! also respects an exhausted bucket (`X-RateLimit-Remaining: 0`) before the
//! next call on the same route, retries 5xx answers and network errors with
//! exponential backoff and jitter, and never writes the token anywhere but
//! the `Authorization` header (marked sensitive).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use outbox::Backoff;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::error_chain;
use crate::stats::Stats;

/// Attempts at one call that fail with a 5xx or a network error.
const MAX_ATTEMPTS: u32 = 6;
/// 429 answers waited out for one call before giving up.
const MAX_RATE_LIMITS: u32 = 20;
/// Wait when a 429 says nothing about how long (it always does on Discord).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Discord's error code for a message that does not exist.
const UNKNOWN_MESSAGE: u64 = 10008;
/// A single request, connection included, never takes longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a REST call failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// Discord answered with a client error other than 429: retrying the same
    /// call cannot help (401 bad token, 403 no access, 404 unknown channel).
    #[error("{path} answered {status}: {message}")]
    Refused {
        path: String,
        status: u16,
        message: String,
        /// Discord's JSON error code (10003 unknown channel, 10008 unknown
        /// message, ...), when the body had one.
        code: Option<u64>,
    },
    /// 5xx answers, network errors or 429s went on past the retry limit.
    #[error("{path} still failing after {attempts} attempts: {last}")]
    Exhausted {
        path: String,
        attempts: u32,
        last: String,
    },
    /// The answer was not the JSON expected.
    #[error("{path} answered with unreadable JSON: {detail}")]
    Decode { path: String, detail: String },
    /// The service is shutting down.
    #[error("cancelled by shutdown")]
    Cancelled,
}

impl RestError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            RestError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether retrying later might succeed (as opposed to a refusal).
    pub fn is_transient(&self) -> bool {
        matches!(self, RestError::Exhausted { .. })
    }
}

/// The parts of a channel object the bot uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub id: u64,
    pub guild_id: Option<u64>,
    /// For a thread: its parent channel.
    pub parent_id: Option<u64>,
    /// Discord channel type (0 text, 1 DM, 5 announcement, 10-12 threads).
    pub kind: u64,
    pub name: Option<String>,
}

impl ChannelInfo {
    /// Whether the channel is a thread (types 10, 11 and 12).
    pub fn is_thread(&self) -> bool {
        matches!(self.kind, 10..=12)
    }

    fn from_json(value: &Value) -> Option<ChannelInfo> {
        let snowflake = |key: &str| value.get(key)?.as_str()?.parse::<u64>().ok();
        Some(ChannelInfo {
            id: snowflake("id")?,
            guild_id: snowflake("guild_id"),
            parent_id: snowflake("parent_id"),
            kind: value.get("type").and_then(Value::as_u64).unwrap_or(0),
            name: value.get("name").and_then(Value::as_str).map(str::to_owned),
        })
    }
}

/// A Discord REST client (see the module documentation).
#[derive(Debug, Clone)]
pub struct Rest {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    base: String,
    authorization: HeaderValue,
    stats: Arc<Stats>,
    retry: Backoff,
    cancel: CancellationToken,
    /// Until when a global rate limit holds every request back.
    global_until: Mutex<Option<Instant>>,
    /// Per route: until when its bucket is exhausted.
    route_until: Mutex<HashMap<String, Instant>>,
}

/// Building the client failed.
#[derive(Debug, thiserror::Error)]
pub enum RestSetupError {
    /// The API base URL does not parse.
    #[error("DISCORD_API_URL `{0}` is not a URL")]
    BadUrl(String),
    /// The token cannot be put in an `Authorization` header.
    #[error("DISCORD_TOKEN holds characters that cannot be sent in an HTTP header")]
    BadToken,
    /// reqwest could not build its client (TLS set-up).
    #[error("building the HTTP client: {0}")]
    Client(String),
}

/// Whether requests to `base` should bypass any proxy from the environment:
/// a proxy elsewhere can never reach this machine's loopback.
pub fn is_loopback(base: &str) -> bool {
    Url::parse(base)
        .ok()
        .and_then(|url| {
            url.host_str().map(|host| {
                host == "localhost"
                    || host
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            })
        })
        .unwrap_or(false)
}

/// A reqwest client for the Discord API at `base`.
pub fn http_client(base: &str) -> Result<reqwest::Client, RestSetupError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!(
            "DiscordBot (https://discord.com/developers, ",
            env!("CARGO_PKG_VERSION"),
            ")"
        ))
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10));
    if is_loopback(base) {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|e| RestSetupError::Client(e.to_string()))
}

impl Rest {
    /// A client for the API at `base` (`https://discord.com` or a simulator).
    pub fn new(
        base: &str,
        token: &SecretString,
        stats: Arc<Stats>,
        cancel: CancellationToken,
    ) -> Result<Rest, RestSetupError> {
        Url::parse(base).map_err(|_| RestSetupError::BadUrl(base.to_owned()))?;
        let mut authorization = HeaderValue::from_str(&format!("Bot {}", token.expose_secret()))
            .map_err(|_| RestSetupError::BadToken)?;
        authorization.set_sensitive(true);
        Ok(Rest {
            inner: Arc::new(Inner {
                client: http_client(base)?,
                base: base.trim_end_matches('/').to_owned(),
                authorization,
                stats,
                retry: Backoff::new(Duration::from_millis(250), Duration::from_secs(10)),
                cancel,
                global_until: Mutex::new(None),
                route_until: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// `GET /gateway`: the gateway URL handed out.
    pub async fn gateway(&self) -> Result<String, RestError> {
        let path = "/api/v10/gateway";
        let value = self.get(path, "").await?;
        value
            .get("url")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| RestError::Decode {
                path: path.to_owned(),
                detail: "no url".to_owned(),
            })
    }

    /// `GET /channels/{id}`.
    pub async fn channel(&self, channel_id: u64) -> Result<ChannelInfo, RestError> {
        let path = format!("/api/v10/channels/{channel_id}");
        let value = self.get(&path, "").await?;
        ChannelInfo::from_json(&value).ok_or_else(|| RestError::Decode {
            path,
            detail: "no channel id".to_owned(),
        })
    }

    /// `GET /channels/{id}/messages?after={after}&limit={limit}`: the `limit`
    /// messages right after `after`, newest first, as raw JSON objects.
    pub async fn messages_after(
        &self,
        channel_id: u64,
        after: u64,
        limit: u8,
    ) -> Result<Vec<Value>, RestError> {
        self.messages(channel_id, &format!("after={after}&limit={limit}"))
            .await
    }

    /// `GET /channels/{id}/messages/{message_id}`: one message as raw JSON,
    /// or `None` when Discord says it does not exist (deleted).
    pub async fn message(
        &self,
        channel_id: u64,
        message_id: u64,
    ) -> Result<Option<Value>, RestError> {
        let path = format!("/api/v10/channels/{channel_id}/messages/{message_id}");
        match self.get(&path, "").await {
            Ok(message) => Ok(Some(message)),
            Err(RestError::Refused {
                code: Some(UNKNOWN_MESSAGE),
                ..
            }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `GET /channels/{id}/messages?limit=1`: proves the token may read history.
    pub async fn latest_message(&self, channel_id: u64) -> Result<Vec<Value>, RestError> {
        self.messages(channel_id, "limit=1").await
    }

    async fn messages(&self, channel_id: u64, query: &str) -> Result<Vec<Value>, RestError> {
        let path = format!("/api/v10/channels/{channel_id}/messages");
        match self.get(&path, query).await? {
            Value::Array(messages) => Ok(messages),
            other => Err(RestError::Decode {
                path,
                detail: format!("expected a list, got {}", kind_of(&other)),
            }),
        }
    }

    /// A GET with the retry policy of this module.
    async fn get(&self, path: &str, query: &str) -> Result<Value, RestError> {
        let inner = &self.inner;
        let url = if query.is_empty() {
            format!("{}{path}", inner.base)
        } else {
            format!("{}{path}?{query}", inner.base)
        };
        let mut failures = 0u32;
        let mut rate_limits = 0u32;
        loop {
            self.wait_for_buckets(path).await?;
            let started = Instant::now();
            let result = inner
                .client
                .get(&url)
                .header(AUTHORIZATION, inner.authorization.clone())
                .send()
                .await;
            let response = match result {
                Ok(response) => response,
                Err(error) => {
                    failures += 1;
                    inner.stats.rest_network_error();
                    let last = error_chain(&error);
                    tracing::debug!(path, query, attempt = failures, error = %last, "rest call failed");
                    if failures >= MAX_ATTEMPTS {
                        return Err(RestError::Exhausted {
                            path: path.to_owned(),
                            attempts: failures,
                            last,
                        });
                    }
                    self.sleep(inner.retry.delay(failures)).await?;
                    continue;
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            tracing::debug!(
                path,
                query,
                status = status.as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "rest call"
            );
            self.note_bucket(path, &headers);
            if status.is_success() {
                let body = response.bytes().await.map_err(|e| RestError::Decode {
                    path: path.to_owned(),
                    detail: error_chain(&e),
                })?;
                return serde_json::from_slice(&body).map_err(|e| RestError::Decode {
                    path: path.to_owned(),
                    detail: e.to_string(),
                });
            }
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status == StatusCode::TOO_MANY_REQUESTS {
                rate_limits += 1;
                let wait = retry_after(&headers, &body);
                let global = body.get("global").and_then(Value::as_bool).unwrap_or(false)
                    || headers
                        .get("x-ratelimit-global")
                        .is_some_and(|v| v.as_bytes() == b"true");
                tracing::info!(
                    path,
                    retry_after_ms = wait.as_millis() as u64,
                    global,
                    "rate limited by Discord; waiting as asked"
                );
                if rate_limits > MAX_RATE_LIMITS {
                    return Err(RestError::Exhausted {
                        path: path.to_owned(),
                        attempts: rate_limits,
                        last: "429 Too Many Requests".to_owned(),
                    });
                }
                if global {
                    let until = Instant::now() + wait;
                    let mut global_until = inner
                        .global_until
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    *global_until = Some(global_until.map_or(until, |u| u.max(until)));
                }
                self.sleep(wait).await?;
                inner.stats.rest_rate_limited(wait);
                continue;
            }
            let message = body
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"))
                .to_owned();
            if status.is_server_error() {
                failures += 1;
                inner.stats.rest_server_error();
                tracing::debug!(
                    path,
                    query,
                    status = status.as_u16(),
                    attempt = failures,
                    "server error; retrying"
                );
                if failures >= MAX_ATTEMPTS {
                    return Err(RestError::Exhausted {
                        path: path.to_owned(),
                        attempts: failures,
                        last: format!("{}: {message}", status.as_u16()),
                    });
                }
                self.sleep(inner.retry.delay(failures)).await?;
                continue;
            }
            return Err(RestError::Refused {
                path: path.to_owned(),
                status: status.as_u16(),
                message,
                code: body.get("code").and_then(Value::as_u64),
            });
        }
    }

    /// Waits out a global rate limit and this route's exhausted bucket.
    async fn wait_for_buckets(&self, route: &str) -> Result<(), RestError> {
        let now = Instant::now();
        let global = *self
            .inner
            .global_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let route_until = self
            .inner
            .route_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .copied();
        let until = global.into_iter().chain(route_until).max();
        match until {
            Some(until) if until > now => self.sleep(until - now).await,
            _ => Ok(()),
        }
    }

    /// Remembers an exhausted bucket, so the next call on the route waits for it.
    fn note_bucket(&self, route: &str, headers: &HeaderMap) {
        let exhausted = header_f64(headers, "x-ratelimit-remaining") == Some(0.0);
        let mut routes = self
            .inner
            .route_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match header_f64(headers, "x-ratelimit-reset-after") {
            Some(secs) if exhausted && secs.is_finite() && secs > 0.0 => {
                routes.insert(
                    route.to_owned(),
                    Instant::now() + Duration::from_secs_f64(secs.min(3600.0)),
                );
            }
            _ => {
                routes.remove(route);
            }
        }
    }

    async fn sleep(&self, duration: Duration) -> Result<(), RestError> {
        tokio::select! {
            _ = self.inner.cancel.cancelled() => Err(RestError::Cancelled),
            _ = tokio::time::sleep(duration) => Ok(()),
        }
    }
}

/// How long a 429 asks to wait: the largest of `Retry-After` (seconds), the
/// body's `retry_after` and `X-RateLimit-Reset-After`, so that none of them
/// is cut short.
fn retry_after(headers: &HeaderMap, body: &Value) -> Duration {
    let header = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok());
    let body = body.get("retry_after").and_then(Value::as_f64);
    let reset = header_f64(headers, "x-ratelimit-reset-after");
    [header, body, reset]
        .into_iter()
        .flatten()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(24.0 * 3600.0)))
        .max()
        .unwrap_or(DEFAULT_RETRY_AFTER)
}

fn header_f64(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_of_the_rate_limit_hints_is_honoured() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        headers.insert("x-ratelimit-reset-after", HeaderValue::from_static("2.500"));
        let body = serde_json::json!({"retry_after": 2.5, "global": false});
        assert_eq!(retry_after(&headers, &body), Duration::from_secs(3));
        assert_eq!(
            retry_after(&HeaderMap::new(), &serde_json::json!({"retry_after": 0.25})),
            Duration::from_millis(250)
        );
        assert_eq!(
            retry_after(&HeaderMap::new(), &Value::Null),
            DEFAULT_RETRY_AFTER
        );
    }

    #[test]
    fn loopback_simulators_bypass_environment_proxies() {
        assert!(is_loopback("http://127.0.0.1:7878"));
        assert!(is_loopback("http://localhost:7878"));
        assert!(is_loopback("http://[::1]:7878"));
        assert!(!is_loopback("https://discord.com"));
    }

    #[test]
    fn channel_objects_yield_their_parent_and_guild() {
        let thread = serde_json::json!({"id": "30", "type": 11, "guild_id": "1", "parent_id": "20", "name": "t"});
        let info = ChannelInfo::from_json(&thread).expect("a channel");
        assert_eq!(info.parent_id, Some(20));
        assert_eq!(info.guild_id, Some(1));
        assert!(info.is_thread());
        let dm = serde_json::json!({"id": "40", "type": 1});
        assert!(!ChannelInfo::from_json(&dm).expect("a channel").is_thread());
    }
}
