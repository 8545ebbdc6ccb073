//! The small HTTP server every service runs: `/healthz`, `/readyz`, `/metrics`.
//!
//! Services may merge routes of their own (the reconciler's dashboard), and
//! may serve `/metrics` alone on a second listener ([`metrics_router`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::Health;

/// The process-wide Prometheus recorder's handle.
///
/// Services install theirs first with [`crate::metrics::install`], which
/// gives every metric its help text, buckets and starting series; this
/// installs one with only the common metrics when none was.
pub fn metrics_handle() -> PrometheusHandle {
    crate::metrics::handle()
}

#[derive(Clone)]
struct AppState {
    health: Health,
    metrics: PrometheusHandle,
}

/// The health and metrics routes, to be merged with a service's own.
pub fn router(health: Health) -> Router {
    let state = AppState {
        health,
        metrics: metrics_handle(),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> Response {
    let checks = state.health.snapshot();
    let ready = checks.values().all(|c| c.ready);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "ready": ready, "checks": checks });
    (status, Json(body)).into_response()
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    crate::metrics::refresh_process_metrics();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Only `/metrics`, for a listener of its own: exposing the metrics then
/// exposes nothing else a service serves (the reconciler's dashboard).
pub fn metrics_router() -> Router {
    let state = AppState {
        health: Health::new(),
        metrics: metrics_handle(),
    };
    Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(state)
}

/// Binds `addr` and serves `app` until `shutdown` fires. Returns the bound
/// address (useful with port 0) and the server task.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "health and metrics endpoints listening");
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "http server stopped");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readyz_reports_503_until_every_check_is_ready() {
        let health = Health::new();
        health.set("database", false, "unreachable");
        let shutdown = CancellationToken::new();
        let (addr, task) = serve(
            "127.0.0.1:0".parse().expect("literal address"),
            router(health.clone()),
            shutdown.clone(),
        )
        .await
        .expect("bind loopback");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let url = format!("http://{addr}/readyz");
        let response = client.get(&url).send().await.expect("request");
        assert_eq!(response.status(), 503);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["checks"]["database"]["detail"], "unreachable");

        health.set("database", true, "answering");
        let response = client.get(&url).send().await.expect("request");
        assert_eq!(response.status(), 200);

        let metrics = client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("request");
        assert_eq!(metrics.status(), 200);
        shutdown.cancel();
        task.await.expect("server task");
    }
}
