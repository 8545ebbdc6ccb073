//! A worker host that dies with its link cut: the server ends its sessions
//! within the keepalive bound, the notification queue its dead LISTEN
//! session held back empties, and NOTIFY keeps working.
//!
//! The worker's real listener (and the pool it sends heartbeats with) runs
//! in a network namespace of its own, joined to the host by a veth pair on a
//! private /30; a private PostgreSQL listens on the host's end. Setting the
//! host's end down makes the client go silent without closing anything:
//! no FIN, no RST, exactly what the server sees of a host that lost power.
//! Needs root (network namespaces); the test fails, never skips, without it.

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use outbox::listener::{self, ListenerConfig};
use sea_orm::sqlx::postgres::{PgConnection, PgListener, PgPool, PgPoolOptions};
use sea_orm::sqlx::{Connection as _, Executor as _};
use service::db::{PoolSettings, connect, connect_options};
use service::{DatabaseArgs, KeepaliveArgs};
use testkit::cluster::TempCluster;
use testkit::eventually;
use tokio_util::sync::CancellationToken;

/// What the test's server has to end: the dead host's LISTEN session and
/// its pooled connection.
const DEAD_APPLICATION: &str = "aplus-worker-listener dead-host";

/// Runs `ip` with these arguments; panics with its output if it fails.
fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip {}`: {e}", args.join(" ")));
    assert!(
        output.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A network namespace joined to the host by a veth pair, removed on drop
/// (even when the test fails half-way).
struct Link {
    namespace: String,
    host_if: String,
    host_addr: String,
    client_addr: String,
}

impl Link {
    fn create() -> Link {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test cuts a network link inside network namespaces it creates, which needs \
             root: run it as root (CI does)"
        );
        assert!(
            Command::new("ip").arg("-V").output().is_ok(),
            "this test needs `ip` from iproute2 (Debian: apt-get install iproute2)"
        );
        // Unique per test and process, so parallel runs never share names or
        // addresses: one /30 of 10.213.0.0/16, used only inside this pair.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let idx = (std::process::id() * 2 + NEXT.fetch_add(1, Ordering::Relaxed)) % 16_384;
        let (third, fourth) = (idx / 64, idx % 64 * 4);
        let tag = format!("{idx:x}");
        let link = Link {
            namespace: format!("aplus-dh-{tag}"),
            host_if: format!("apdh{tag}"),
            host_addr: format!("10.213.{third}.{}", fourth + 1),
            client_addr: format!("10.213.{third}.{}", fourth + 2),
        };
        let peer = format!("apdp{tag}");
        link.remove();
        ip(&["netns", "add", &link.namespace]);
        ip(&[
            "link",
            "add",
            &link.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &link.namespace]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", link.host_addr),
            "dev",
            &link.host_if,
        ]);
        ip(&["link", "set", &link.host_if, "up"]);
        let ns = ["-n", link.namespace.as_str()];
        ip(&[
            ns[0],
            ns[1],
            "addr",
            "add",
            &format!("{}/30", link.client_addr),
            "dev",
            &peer,
        ]);
        ip(&[ns[0], ns[1], "link", "set", &peer, "up"]);
        ip(&[ns[0], ns[1], "link", "set", "lo", "up"]);
        link
    }

    /// The host's end goes down: from now on nothing passes either way, and
    /// neither side is told.
    fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]);
    }

    fn remove(&self) {
        // Deleting one end of a veth pair deletes both; either may be gone.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .output();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The dead host: the worker's listener and its heartbeat pool, on a thread
/// that joined the namespace, so every socket they open is inside it.
struct Host {
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Host {
    fn start(namespace: &str, args: DatabaseArgs) -> Host {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let path = format!("/var/run/netns/{namespace}");
        let thread = std::thread::spawn(move || {
            let netns = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("joining the network namespace");
            // One thread: every task, and so every socket, stays in the namespace.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let db = connect(&args, &PoolSettings::new("aplus-worker dead-host", 2))
                    .expect("pool options");
                let mut settings = PoolSettings::new(DEAD_APPLICATION, 1);
                settings.statement_timeout = None;
                settings.idle_in_transaction_timeout = None;
                let options = connect_options(&args, &settings).expect("listener options");
                let config = ListenerConfig {
                    heartbeat_interval: Duration::from_millis(200),
                    heartbeat_timeout: Duration::from_millis(1_500),
                    ..ListenerConfig::default()
                };
                let (_listener, task) = listener::spawn(options, db, config, token.clone());
                token.cancelled().await;
                let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        Host {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn scalar_f64(conn: &PgPool, sql: &str) -> f64 {
    sea_orm::sqlx::query_scalar::<_, f64>(sea_orm::sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn count(conn: &PgPool, sql: &str) -> i64 {
    sea_orm::sqlx::query_scalar::<_, i64>(sea_orm::sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `n` distinct notifications of about `size` bytes in one transaction
/// (identical ones would be folded into one).
async fn notify_many(conn: &PgPool, n: u32, size: usize) {
    conn.execute(sea_orm::sqlx::AssertSqlSafe(format!(
        "SELECT pg_notify('events', 'filler ' || i || ' ' || repeat('x', {size})) \
         FROM generate_series(1, {n}) AS i"
    )))
    .await
    .expect("notify");
}

/// Runs the scenario with `keepalive` on the dead host's sessions and
/// returns how long after the cut the server had ended all of them.
async fn dead_host_sessions_end_within(keepalive: KeepaliveArgs, bound: Duration) -> Duration {
    let link = Link::create();
    let listen = format!("127.0.0.1,{}", link.host_addr);
    let server = TempCluster::start_with(&[("listen_addresses", &listen)]).expect("cluster");
    let hba = server.cluster.data_dir.join("pg_hba.conf");
    let mut rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    rules.push_str(&format!("host all all {}/32 trust\n", link.client_addr));
    std::fs::write(&hba, rules).expect("writing pg_hba.conf");

    let mut admin = PgConnection::connect(&server.cluster.url("postgres"))
        .await
        .expect("admin connection");
    admin
        .execute("SELECT pg_reload_conf()")
        .await
        .expect("reload");
    admin
        .execute("CREATE DATABASE aplus")
        .await
        .expect("create");
    let local = DatabaseArgs::from_url(server.cluster.url("aplus"));
    let migrate = connect(&local, &PoolSettings::new("aplus-test-migrate", 2)).expect("pool");
    migration::migrate(&migrate).await.expect("migrate");
    migrate.close().await.expect("close");
    let watcher = PgPoolOptions::new()
        .max_connections(2)
        .connect(&server.cluster.url("aplus"))
        .await
        .expect("watcher pool");

    let mut remote = DatabaseArgs::from_url(format!(
        "postgres://postgres@{}:{}/aplus",
        link.host_addr, server.cluster.port
    ));
    remote.keepalive = keepalive.clone();
    let host = Host::start(&link.namespace, remote);

    let from_host = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE client_addr = '{}'",
        link.client_addr
    );
    eventually(
        Duration::from_secs(20),
        "the host's listener to hear its heartbeat and its pool to be connected",
        || {
            let (watcher, from_host) = (watcher.clone(), from_host.clone());
            async move {
                let heard = count(
                    &watcher,
                    &format!(
                        "SELECT count(*) FROM listener_heartbeats h JOIN pg_stat_activity a \
                         ON a.pid = h.pid AND a.backend_start = h.backend_start \
                         WHERE a.application_name = '{DEAD_APPLICATION}' \
                           AND a.query = 'LISTEN \"events\"' \
                           AND h.heard_at > now() - interval '1 second'"
                    ),
                )
                .await;
                let sessions = count(&watcher, &from_host).await;
                (heard == 1 && sessions >= 2).then_some(())
            }
        },
    )
    .await;
    let sessions_before = count(&watcher, &from_host).await;

    link.cut();
    let cut_at = Instant::now();
    // Notifications keep coming while the dead listener is attached: its
    // backend fills its socket's send buffer, blocks, and stops reading
    // the queue, which then holds everything sent from here on.
    notify_many(&watcher, 2_000, 1_000).await;
    let held = scalar_f64(&watcher, "SELECT pg_notification_queue_usage()").await;
    assert!(
        held > 0.0,
        "the dead listener should hold back the notification queue (usage {held})"
    );

    let ended_after = eventually(
        bound + Duration::from_secs(30),
        "the server to end the dead host's sessions",
        || {
            let (watcher, from_host) = (watcher.clone(), from_host.clone());
            async move { (count(&watcher, &from_host).await == 0).then(|| cut_at.elapsed()) }
        },
    )
    .await;
    eprintln!(
        "dead host ({keepalive:?}): {sessions_before} sessions ended {ended_after:?} after the cut \
         (bound {bound:?}); the queue was {held} used"
    );
    assert!(
        ended_after <= bound,
        "the dead host's sessions lived {ended_after:?} after the cut; the bound is {bound:?}"
    );

    // The queue's tail moves when a later NOTIFY crosses a page boundary:
    // keep notifying until it is empty again.
    eventually(
        Duration::from_secs(20),
        "the notification queue to empty",
        || {
            let watcher = watcher.clone();
            async move {
                notify_many(&watcher, 50, 1_000).await;
                (scalar_f64(&watcher, "SELECT pg_notification_queue_usage()").await == 0.0)
                    .then_some(())
            }
        },
    )
    .await;

    // NOTIFY still works: a new listener hears it.
    let mut fresh = PgListener::connect(&server.cluster.url("aplus"))
        .await
        .expect("listener");
    fresh.listen("events").await.expect("listen");
    (&watcher)
        .execute("SELECT pg_notify('events', 'after the dead host')")
        .await
        .expect("notify after");
    let heard = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), fresh.recv())
            .await
            .expect("a notification within 10 s")
            .expect("recv");
        if n.payload() == "after the dead host" {
            break n;
        }
    };
    assert_eq!(heard.channel(), "events");

    drop(host);
    ended_after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_hosts_sessions_end_within_the_keepalive_bound_and_notify_keeps_working() {
    let keepalive = KeepaliveArgs {
        idle: Duration::from_secs(1),
        interval: Duration::from_secs(1),
        count: 3,
        user_timeout: Duration::from_secs(5),
        connection_check_interval: Duration::from_secs(1),
    };
    // tcp_user_timeout, rounded up to the next probe, and a second of polling.
    dead_host_sessions_end_within(keepalive, Duration::from_secs(5 + 1 + 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_settings_a_dead_hosts_sessions_end_within_30_seconds() {
    dead_host_sessions_end_within(KeepaliveArgs::default(), Duration::from_secs(30)).await;
}
