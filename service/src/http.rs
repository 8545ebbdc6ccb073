//! The small HTTP server every service runs: `/healthz`, `/readyz`, `/metrics`.
//!
//! Services may merge routes of their own (the reconciler's dashboard).

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::Health;

/// Installs the process-wide Prometheus recorder once and returns its handle.
///
/// Call it before anything records a metric: values recorded while no
/// recorder is installed are dropped, and a gauge set once at start would
/// then be missing from `/metrics` until it next changes.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0,
                ])
                // The bucket list is a non-empty constant, the one case in which
                // `set_buckets` fails.
                .expect("bucket list is not empty")
                // The bot's group sizes are counts of writes, not seconds.
                .set_buckets_for_metric(
                    Matcher::Full("aplus_bot_write_group_size".to_owned()),
                    &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0],
                )
                // As above: a non-empty constant.
                .expect("bucket list is not empty");
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is already global (a test harness); keep a
                // private one so `/metrics` still renders something truthful.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
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

async fn render_metrics(State(state): State<AppState>) -> String {
    state.metrics.render()
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
