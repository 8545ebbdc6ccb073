//! The service: dashboard and health endpoints while passes run on the
//! schedule, and a clean stop when shutdown is requested.

use std::time::Duration;

use crate::common::*;
use reconciler::{Reconciler, Schedule, ServiceConfig};
use testkit::{TestDb, eventually};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn the_service_repairs_on_schedule_serves_the_dashboard_and_stops_cleanly() {
    let t = TestDb::new().await;
    insert_bare_messages(&t, 1, 7).await;
    let port = testkit::cluster::free_port().expect("a free port");
    let metrics_port = testkit::cluster::free_port().expect("a free port");
    let config = ServiceConfig {
        pass: config("rec-dashboard"),
        schedule: Schedule::parse("* * * * * *").expect("every second"),
        http_listen: format!("127.0.0.1:{port}").parse().expect("address"),
        metrics_listen: Some(
            format!("127.0.0.1:{metrics_port}")
                .parse()
                .expect("address"),
        ),
        migrate: true,
        thresholds: Default::default(),
    };
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(
        Reconciler::build(t.db.clone(), config)
            .expect("valid settings")
            .run(shutdown.clone()),
    );
    // The pass writes the events, then records itself: wait for both.
    eventually(
        Duration::from_secs(20),
        "the missing events to be written and the pass recorded",
        || async {
            (t.scalar("SELECT count(*) FROM events").await == 7
                && t.scalar("SELECT count(*) FROM reconciler_runs").await >= 1)
                .then_some(())
        },
    )
    .await;

    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client");
    let base = format!("http://127.0.0.1:{port}");
    let get = |path: &str| client.get(format!("{base}{path}")).send();

    let page = get("/").await.expect("dashboard");
    // Nothing processes these events and no worker listens: degraded, not down.
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/html"))
    );
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "no script is allowed: {csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.expect("html");
    assert!(html.contains("<h2>Last 24 hours</h2>"), "{html}");
    assert_eq!(html.matches("<svg").count(), 4, "{html}");
    assert!(html.contains("<h1 class=\"degraded\">Degraded: "), "{html}");
    assert!(html.contains("Recent reconciler passes"), "{html}");
    assert!(html.contains("rec-dashboard"), "{html}");
    assert!(html.contains("http-equiv=\"refresh\""));

    let api = get("/api/health").await.expect("api");
    assert_eq!(api.status(), 200);
    let v: serde_json::Value = api.json().await.expect("json");
    assert_eq!(v["verdict"], "degraded");
    assert_eq!(v["snapshot"]["messages_1h"], 7);

    assert_eq!(get("/healthz").await.expect("healthz").status(), 200);
    let ready = get("/readyz").await.expect("readyz");
    assert_eq!(ready.status(), 200);
    let metrics = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("aplus_reconciler_missing_events_created_total"),
        "{metrics}"
    );

    // The metrics listener serves the metrics and nothing else.
    let alone = |path: &str| {
        client
            .get(format!("http://127.0.0.1:{metrics_port}{path}"))
            .send()
    };
    let scraped = alone("/metrics").await.expect("metrics alone");
    assert_eq!(scraped.status(), 200);
    assert!(
        scraped
            .text()
            .await
            .expect("text")
            .contains("# HELP aplus_reconciler_backlog")
    );
    assert_eq!(alone("/").await.expect("page").status(), 404);
    assert_eq!(alone("/api/health").await.expect("api").status(), 404);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), service)
        .await
        .expect("the service stops promptly")
        .expect("service task")
        .expect("no error");
    assert!(get("/healthz").await.is_err(), "the server is gone");
}
