//! The REST API under `/api/v10`, plus the gateway's WebSocket endpoint at `/`.
//!
//! Only what a capture bot uses is implemented: gateway discovery, the current user, channel
//! lookup, message history and single messages, and posting a message. Every call goes through
//! [`guard`], which records it, checks the token and serves injected faults.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, Path, RawQuery, Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;
use tracing::{debug, info};

use crate::faults::RestFault;
use crate::gateway;
use crate::message::NewMessage;
use crate::payload;
use crate::rest_log::RestCall;
use crate::shared::Shared;
use crate::snowflake;
use crate::state::{Access, Page, bare_token};

/// Discord's default and maximum page sizes for message history.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;

/// Builds the whole HTTP app.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/gateway", get(get_gateway))
        .route("/gateway/bot", get(get_gateway_bot))
        .route("/users/@me", get(get_current_user))
        .route("/channels/{channel_id}", get(get_channel))
        .route(
            "/channels/{channel_id}/messages",
            get(list_messages).post(create_message),
        )
        .route(
            "/channels/{channel_id}/messages/{message_id}",
            get(get_message),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), guard));
    Router::new()
        .route("/", get(gateway::upgrade))
        .nest("/api/v10", api)
        .fallback(not_found)
        .with_state(shared)
}

fn json_error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(payload::error_body(code, message))).into_response()
}

async fn not_found(request: Request) -> Response {
    info!(method = %request.method(), path = request.uri().path(), "no such route");
    json_error(StatusCode::NOT_FOUND, 0, "404: Not Found")
}

/// Records every API call, enforces the token and serves injected faults.
///
/// Gateway discovery (`/gateway`, `/gateway/bot`) is never faulted or refused: serenity falls
/// back to the real Discord gateway when that call fails, which a test must never reach.
async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    // Inside `nest` the URI lost its `/api/v10` prefix; log the path the client asked for.
    let uri = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().clone(), |original| original.0.clone());
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(|value| bare_token(value).to_owned());
    let discovery = path.ends_with("/gateway") || path.ends_with("/gateway/bot");
    let (fault, bad_token) = shared.with(|s| {
        s.stats.rest_requests += 1;
        let fault = if discovery {
            None
        } else {
            s.take_rest_fault(&path)
        };
        (fault, token.as_deref().is_some_and(|t| s.bad_token(t)))
    });
    let unauthorized = !discovery && (token.is_none() || bad_token);
    let (response, faulted) = if unauthorized {
        (
            json_error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized"),
            false,
        )
    } else {
        match fault {
            None => (next.run(request).await, false),
            Some(RestFault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                (next.run(request).await, true)
            }
            Some(RestFault::RateLimited {
                retry_after,
                global,
            }) => (rate_limited(retry_after, global), true),
            Some(RestFault::Status(code)) => (status_fault(code), true),
        }
    };
    let status = response.status().as_u16();
    debug!(method, path, query, status, faulted, "rest call");
    let call = RestCall {
        method,
        path,
        query,
        token,
        status,
        faulted,
    };
    shared.with(|s| {
        if faulted {
            s.stats.rest_faults_served += 1;
        }
        s.log_rest_call(call);
    });
    response
}

/// A 429 exactly as Discord sends it.
fn rate_limited(retry_after: f64, global: bool) -> Response {
    let retry_after = retry_after.max(0.0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(payload::rate_limit_body(retry_after, global)),
    )
        .into_response();
    let headers = response.headers_mut();
    // `Retry-After` is whole seconds; Discord rounds up.
    let whole_seconds = retry_after.ceil().to_string();
    let pairs: [(&str, String); 6] = [
        ("x-ratelimit-limit", "5".to_owned()),
        ("x-ratelimit-remaining", "0".to_owned()),
        ("x-ratelimit-reset", format!("{:.3}", now + retry_after)),
        ("x-ratelimit-reset-after", format!("{retry_after:.3}")),
        ("x-ratelimit-bucket", "discord-sim".to_owned()),
        (
            "x-ratelimit-scope",
            if global { "global" } else { "user" }.to_owned(),
        ),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&whole_seconds) {
        headers.insert(RETRY_AFTER, value);
    }
    if global {
        headers.insert(
            HeaderName::from_static("x-ratelimit-global"),
            HeaderValue::from_static("true"),
        );
    }
    response
}

fn status_fault(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!(
        "{}: {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Injected Fault")
    );
    json_error(status, 0, &message)
}

async fn get_gateway(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(payload::gateway(&shared.gateway_url))
}

async fn get_gateway_bot(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(payload::gateway_bot(
        &shared.gateway_url,
        shared.recommended_shards,
        shared.max_concurrency,
    ))
}

async fn get_current_user(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(shared.read(|s| payload::current_user(&s.settings.bot)))
}

/// A client error answered in Discord's JSON shape.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ApiError {
    /// 400 Invalid Form Body for one field.
    BadField {
        field: &'static str,
        problem: String,
    },
    /// 404 Unknown Channel or 403 Missing Access.
    Channel(Access),
    /// 404 Unknown Message.
    UnknownMessage,
}

impl From<Access> for ApiError {
    fn from(access: Access) -> Self {
        Self::Channel(access)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadField { field, problem } => (
                StatusCode::BAD_REQUEST,
                Json(payload::invalid_form_body(field, &problem)),
            )
                .into_response(),
            Self::Channel(Access::Unknown) => {
                json_error(StatusCode::NOT_FOUND, 10003, "Unknown Channel")
            }
            Self::Channel(Access::Forbidden) => {
                json_error(StatusCode::FORBIDDEN, 50001, "Missing Access")
            }
            Self::UnknownMessage => json_error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
        }
    }
}

/// Parses a snowflake from a path or query value, answering Discord's 400 when it is not one.
fn snowflake_param(field: &'static str, raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| ApiError::BadField {
        field,
        problem: format!("Value \"{raw}\" is not snowflake."),
    })
}

async fn get_channel(
    State(shared): State<Arc<Shared>>,
    Path(channel_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let channel_id = snowflake_param("channel_id", &channel_id)?;
    let channel = shared.read(|s| {
        s.channel_access(channel_id)
            .map(|c| payload::channel(c, snowflake::timestamp_of(c.id)))
    })?;
    Ok(Json(channel))
}

/// `GET /channels/{id}/messages` with Discord's paging rules: newest first; `around`, then
/// `before`, then `after` decides the anchor when several are given; `limit` 1..=100,
/// default 50.
async fn list_messages(
    State(shared): State<Arc<Shared>>,
    Path(channel_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<Value>>, ApiError> {
    let channel_id = snowflake_param("channel_id", &channel_id)?;
    let (page, limit) = parse_history_query(query.as_deref().unwrap_or_default())?;
    let messages = shared.read(|s| {
        s.channel_access(channel_id)?;
        Ok::<_, ApiError>(s.history(channel_id, page, limit))
    })?;
    Ok(Json(messages))
}

fn parse_history_query(query: &str) -> Result<(Page, usize), ApiError> {
    let mut limit = DEFAULT_LIMIT;
    let (mut around, mut before, mut after) = (None, None, None);
    // serenity writes `?&limit=100&after=9`; empty pieces are skipped.
    for (key, value) in query.split('&').filter_map(|pair| pair.split_once('=')) {
        match key {
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| ApiError::BadField {
                        field: "limit",
                        problem: format!("Value \"{value}\" must be between 1 and 100."),
                    })?;
            }
            "around" => around = Some(snowflake_param("around", value)?),
            "before" => before = Some(snowflake_param("before", value)?),
            "after" => after = Some(snowflake_param("after", value)?),
            _ => {}
        }
    }
    let page = match (around, before, after) {
        (Some(id), _, _) => Page::Around(id),
        (None, Some(id), _) => Page::Before(id),
        (None, None, Some(id)) => Page::After(id),
        (None, None, None) => Page::Latest,
    };
    Ok((page, limit))
}

async fn get_message(
    State(shared): State<Arc<Shared>>,
    Path((channel_id, message_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let channel_id = snowflake_param("channel_id", &channel_id)?;
    let message_id = snowflake_param("message_id", &message_id)?;
    let channel_text = channel_id.to_string();
    let message = shared.read(|s| {
        s.channel_access(channel_id)?;
        s.stored_message(message_id)
            .filter(|m| m["channel_id"].as_str() == Some(channel_text.as_str()))
            .cloned()
            .ok_or(ApiError::UnknownMessage)
    })?;
    Ok(Json(message))
}

/// The part of a create-message body the simulator honours.
#[derive(Debug, Default, Deserialize)]
struct CreateMessageBody {
    #[serde(default)]
    content: String,
    #[serde(default)]
    embeds: Vec<Value>,
}

/// `POST /channels/{id}/messages`: the bot posts; the message is stored and dispatched (the
/// bot receives its own MESSAGE_CREATE, as on Discord).
async fn create_message(
    State(shared): State<Arc<Shared>>,
    Path(channel_id): Path<String>,
    body: Option<Json<CreateMessageBody>>,
) -> Result<Json<Value>, ApiError> {
    let channel_id = snowflake_param("channel_id", &channel_id)?;
    let Json(body) = body.unwrap_or_default();
    let message = shared.with(|s| {
        s.channel_access(channel_id)?;
        let mut spec = NewMessage::text(channel_id, body.content).author(s.settings.bot.clone());
        spec.embeds = body.embeds;
        // The id is fresh and the channel exists, so inserting cannot fail; map it anyway.
        let id = s
            .insert_message(&spec, true)
            .map_err(|_| ApiError::UnknownMessage)?;
        s.stored_message(id)
            .cloned()
            .ok_or(ApiError::UnknownMessage)
    })?;
    Ok(Json(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serenity_style_queries_are_parsed() {
        let (page, limit) = parse_history_query("&limit=100&after=9").expect("valid query");
        assert_eq!(page, Page::After(9));
        assert_eq!(limit, 100);
        assert_eq!(
            parse_history_query("").expect("valid query"),
            (Page::Latest, 50)
        );
        assert_eq!(
            parse_history_query("before=5&around=7")
                .expect("valid query")
                .0,
            Page::Around(7)
        );
    }

    #[test]
    fn out_of_range_limits_and_bad_snowflakes_are_rejected() {
        assert!(parse_history_query("limit=0").is_err());
        assert!(parse_history_query("limit=101").is_err());
        assert!(parse_history_query("after=abc").is_err());
    }
}
