//! The run: the stack on its hosts, the throughput with one, two and three
//! worker hosts, then one host-level fault after another under load, each
//! checked against the simulator's ground truth.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use chaos::checker::{self, FinalState};
use discord_sim::{NewMessage, Sim, SimConfig};
use sea_orm::sqlx::{self, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::hosts::{Database, Kind, Service};
use crate::net::{self, BOTS, Host, RECONCILERS, SIM, WORKERS};

/// Gateway shards, split between the two bot hosts.
const SHARDS: u32 = 4;
/// The worker's lease: a partition must outlast it.
const LEASE: Duration = Duration::from_secs(8);
/// Messages a second during the faults.
const RATE: f64 = 40.0;
/// Messages of each throughput backlog.
const BACKLOG: usize = 20_000;
/// How long the pipeline may take to catch up after a fault.
const DRAIN: Duration = Duration::from_secs(180);

/// Everything running, and what the checker compares against.
struct Stack {
    db: Database,
    sim: Sim,
    channels: Vec<u64>,
    services: Vec<Service>,
    network: NetworkHandle,
}

/// Link changes from inside the `sim` host (the namespaces are global).
struct NetworkHandle;

impl NetworkHandle {
    fn set_link(&self, host: Host, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        net::ip(&["-n", &host.netns(), "link", "set", "eth0", state])
    }
}

impl Stack {
    fn service(&mut self, host: Host) -> &mut Service {
        self.services
            .iter_mut()
            .find(|s| s.host == host)
            .expect("a service on every host")
    }

    /// Kills every process of `host` at once, then takes its link down.
    fn kill_host(&mut self, host: Host) -> Result<()> {
        net::kill_all_in(&host.netns());
        self.service(host).forget();
        self.network.set_link(host, false)
    }

    /// Brings a killed host back: link up, its service started again.
    fn revive_host(&mut self, host: Host) -> Result<()> {
        self.network.set_link(host, true)?;
        self.service(host).start()
    }

    async fn conn(&self) -> Result<PgConnection> {
        self.db.connect("aplus-cluster-checker").await
    }

    async fn state(&self) -> Result<FinalState> {
        let mut conn = self.conn().await?;
        checker::read(&mut conn, &self.sim, &self.channels).await
    }

    async fn scalar(&self, sql: &str) -> Result<i64> {
        let mut conn = self.conn().await?;
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut conn)
            .await?)
    }
}

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

async fn start(binaries: &chaos::Binaries, log_dir: &Path) -> Result<Stack> {
    let db = Database::start()
        .await
        .context("PostgreSQL on the db host")?;
    let sim = Sim::start(SimConfig {
        listen: format!("{}:0", SIM.ip()).parse()?,
        recommended_shards: SHARDS,
        ..SimConfig::default()
    })
    .await
    .context("the simulator on the sim host")?;
    let mut channels = Vec::new();
    for shard in 0..u64::from(SHARDS) {
        let guild = sim.create_guild_with_id((2000 + shard) << 22, &format!("guild-{shard}"))?;
        for i in 0..2 {
            channels.push(sim.create_channel(guild, &format!("aplus-{shard}-{i}"))?);
        }
    }
    let listed = channels
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let common = |host: Host| {
        vec![
            ("DATABASE_URL", db.url()),
            ("NO_PROXY", "10.231.0.0/24".to_owned()),
            ("BOT_HTTP_LISTEN", format!("{}:9101", host.ip())),
            ("WORKER_HTTP_LISTEN", format!("{}:9102", host.ip())),
            ("RECONCILER_HTTP_LISTEN", format!("{}:9103", host.ip())),
        ]
    };
    let mut services = Vec::new();
    for host in RECONCILERS {
        let mut vars = common(host);
        vars.extend([
            ("RECONCILER_SCHEDULE", "*/2 * * * * *".to_owned()),
            ("RECONCILER_ORPHAN_GRACE", "5s".to_owned()),
            ("RECONCILER_INSTANCE", host.name.to_owned()),
        ]);
        services.push(Service::new(
            host,
            Kind::Reconciler,
            &binaries.reconciler,
            env(&vars),
            log_dir,
        ));
    }
    for host in WORKERS {
        let mut vars = common(host);
        vars.extend([
            ("WORKER_NAME", host.name.to_owned()),
            ("WORKER_LEASE", format!("{}s", LEASE.as_secs())),
        ]);
        services.push(Service::new(
            host,
            Kind::Worker,
            &binaries.worker,
            env(&vars),
            log_dir,
        ));
    }
    for (host, range) in BOTS.into_iter().zip(["0..1", "2..3"]) {
        let mut vars = common(host);
        vars.extend([
            ("DISCORD_TOKEN", "cluster-token".to_owned()),
            ("DISCORD_API_URL", sim.api_url()),
            ("APLUS_CHANNELS", listed.clone()),
            ("BOT_SHARDS", SHARDS.to_string()),
            ("BOT_SHARD_RANGE", range.to_owned()),
            ("BOT_RETRY_MAX", "1s".to_owned()),
        ]);
        services.push(Service::new(
            host,
            Kind::Bot,
            &binaries.bot,
            env(&vars),
            log_dir,
        ));
    }
    for service in &mut services {
        service.start()?;
    }
    let stack = Stack {
        db,
        sim,
        channels,
        services,
        network: NetworkHandle,
    };
    stack
        .sim
        .wait_for_sessions("every shard connected", Duration::from_secs(90), |s| {
            s.iter().filter(|s| s.connected).count() == SHARDS as usize
        })
        .await
        .context("the bots' shards did not all connect")?;
    Ok(stack)
}

/// Posts live messages round the channels at `rate` a second until `stop`.
fn load(
    sim: Sim,
    channels: Vec<u64>,
    rate: f64,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return n,
                _ = ticker.tick() => {}
            }
            let channel = channels[(n as usize) % channels.len()];
            if sim
                .post(NewMessage::text(channel, format!("load message #{n}")))
                .is_ok()
            {
                n += 1;
            }
        }
    })
}

/// Waits until every message is stored and every event processed; returns
/// how long it took and the checker's state. The full comparison with the
/// ground truth reads every message, so it runs only once the counts have
/// settled (nothing waiting, nothing new stored for half a second).
async fn drain(stack: &Stack) -> Result<(Option<Duration>, FinalState)> {
    let started = Instant::now();
    let mut previous: Option<i64> = None;
    loop {
        let settled = match stack.conn().await {
            Ok(mut conn) => match chaos::invariants::read(&mut conn).await {
                Ok(counts) => {
                    let quiet = counts.unprocessed == 0 && counts.failed == 0;
                    let settled = quiet && previous == Some(counts.messages);
                    previous = quiet.then_some(counts.messages);
                    settled
                }
                Err(_) => false,
            },
            Err(_) => false,
        };
        if settled || started.elapsed() > DRAIN {
            let state = stack.state().await?;
            if state.is_drained() {
                return Ok((Some(started.elapsed()), state));
            }
            if started.elapsed() > DRAIN {
                return Ok((None, state));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One fault's verdict line, in the chaos suite's words.
fn verdict(name: &str, drained: Option<Duration>, state: &FinalState, note: &str) -> bool {
    let c = &state.comparison;
    let passed = drained.is_some()
        && c.is_exact()
        && state.effects.applied_twice == 0
        && state.counts.unprocessed == 0;
    println!(
        "{name:<38} lost {}  duplicated {}  unexpected {}  effects twice {}  unprocessed {}  recovery {}  {} {note}",
        c.lost.len(),
        c.duplicated.len(),
        c.unexpected.len(),
        state.effects.applied_twice,
        state.counts.unprocessed,
        drained.map_or("none (not drained)".to_owned(), |d| format!(
            "{:.1}s",
            d.as_secs_f64()
        )),
        if passed { "PASS" } else { "FAIL" },
    );
    passed
}

/// Events a second the workers of `hosts` drain from a backlog of [`BACKLOG`].
async fn throughput(stack: &mut Stack, hosts: usize) -> Result<f64> {
    for host in WORKERS {
        stack.service(host).forget();
    }
    let before = stack.scalar("SELECT count(*) FROM messages").await?;
    for n in 0..BACKLOG {
        let channel = stack.channels[n % stack.channels.len()];
        stack
            .sim
            .post(NewMessage::text(channel, format!("backlog {hosts} #{n}")))?;
    }
    let expected = before + BACKLOG as i64;
    let started = Instant::now();
    while stack.scalar("SELECT count(*) FROM messages").await? < expected {
        if started.elapsed() > DRAIN {
            bail!("the bots did not store the backlog");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    for host in WORKERS.into_iter().take(hosts) {
        stack.service(host).start()?;
    }
    loop {
        let state = stack.state().await?;
        if state.counts.unprocessed == 0 && state.counts.failed == 0 {
            break;
        }
        if started.elapsed() > DRAIN {
            bail!("{hosts} worker hosts did not drain the backlog");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(BACKLOG as f64 / started.elapsed().as_secs_f64())
}

/// Runs everything; true when every fault passed.
pub async fn run(
    binaries: &chaos::Binaries,
    log_dir: &Path,
    cancel: &CancellationToken,
) -> Result<bool> {
    let mut stack = start(binaries, log_dir).await?;
    println!(
        "cluster: PostgreSQL on {}, simulator on {}, bots (shards 0..1, 2..3 of {SHARDS}) on {} and {}, workers on {}, {} and {}, reconcilers on {} and {}",
        net::DB.ip(),
        SIM.ip(),
        BOTS[0].ip(),
        BOTS[1].ip(),
        WORKERS[0].ip(),
        WORKERS[1].ip(),
        WORKERS[2].ip(),
        RECONCILERS[0].ip(),
        RECONCILERS[1].ip()
    );

    let mut rates = Vec::new();
    for hosts in 1..=3 {
        if cancel.is_cancelled() {
            return Ok(false);
        }
        let rate = throughput(&mut stack, hosts).await?;
        println!(
            "throughput  {hosts} worker host{}  {rate:>7.0} events/s  ({BACKLOG} events)",
            if hosts == 1 { " " } else { "s" }
        );
        rates.push(rate);
    }
    println!(
        "scaling     2 hosts {:.2}x, 3 hosts {:.2}x of 1 host",
        rates[1] / rates[0],
        rates[2] / rates[0]
    );

    let mut passed = true;
    let faults: [(&str, Fault); 4] = [
        ("a worker host killed", Fault::KillWorkerHost),
        (
            "a bot host killed during a burst",
            Fault::KillBotHostInBurst,
        ),
        (
            "a worker host cut off past its lease",
            Fault::PartitionWorker,
        ),
        (
            "the lock-holding reconciler cut off",
            Fault::PartitionLockHolder,
        ),
    ];
    for (name, fault) in faults {
        if cancel.is_cancelled() {
            return Ok(false);
        }
        let recovered_before = stack.state().await?.recovered;
        let note = inject(&mut stack, fault)
            .await
            .with_context(|| format!("fault: {name}"))?;
        let (drained, state) = drain(&stack).await?;
        let note = format!(
            "{note} {} recovered from history",
            state.recovered.saturating_sub(recovered_before)
        );
        passed &= verdict(name, drained, &state, note.trim());
        // Heal whatever the fault left broken before the next one.
        for host in net::hosts() {
            stack.network.set_link(host, true)?;
        }
        for service in &mut stack.services {
            if !service.running() {
                service.start()?;
            }
        }
    }
    Ok(passed)
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillWorkerHost,
    KillBotHostInBurst,
    PartitionWorker,
    PartitionLockHolder,
}

/// Injects one fault under load; returns a note for its verdict line.
async fn inject(stack: &mut Stack, fault: Fault) -> Result<String> {
    let stop = CancellationToken::new();
    let posting = load(
        stack.sim.clone(),
        stack.channels.clone(),
        RATE,
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let note = match fault {
        Fault::KillWorkerHost => {
            stack.kill_host(WORKERS[0])?;
            tokio::time::sleep(Duration::from_secs(15)).await;
            String::new()
        }
        Fault::KillBotHostInBurst => {
            let sim = stack.sim.clone();
            let channels = stack.channels.clone();
            // 2,000 messages over about 4 s; the host dies 1 s in.
            let burst = tokio::spawn(async move {
                let mut ticker = tokio::time::interval(Duration::from_millis(10));
                for n in 0..2000usize {
                    if n % 5 == 0 {
                        ticker.tick().await;
                    }
                    let channel = channels[n % channels.len()];
                    let _ = sim.post(NewMessage::text(channel, format!("burst #{n}")));
                }
            });
            tokio::time::sleep(Duration::from_secs(1)).await;
            stack.kill_host(BOTS[1])?;
            burst.await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            stack.revive_host(BOTS[1])?;
            format!(
                "({} killed 1 s into a 2,000-message burst, back 6 s later)",
                BOTS[1].name
            )
        }
        Fault::PartitionWorker => {
            stack.network.set_link(WORKERS[1], false)?;
            tokio::time::sleep(LEASE * 2 + Duration::from_secs(4)).await;
            stack.network.set_link(WORKERS[1], true)?;
            format!(
                "(cut {}s, lease {}s)",
                (LEASE * 2).as_secs() + 4,
                LEASE.as_secs()
            )
        }
        Fault::PartitionLockHolder => partition_lock_holder(stack).await?,
    };
    stop.cancel();
    posting.await?;
    Ok(note)
}

/// Cuts off the reconciler that holds the lock in the middle of a pass and
/// measures how long until the other one completes a pass.
async fn partition_lock_holder(stack: &mut Stack) -> Result<String> {
    let mut conn = stack.conn().await?;
    let started = Instant::now();
    let holder = loop {
        let holder: Option<String> = sqlx::query_scalar(
            "SELECT host(a.client_addr) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted \
               AND a.application_name LIKE 'aplus-reconciler%' LIMIT 1",
        )
        .fetch_optional(&mut conn)
        .await?;
        if let Some(addr) = holder
            && let Some(host) = RECONCILERS.into_iter().find(|h| h.ip() == addr)
        {
            break host;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("no reconciler was seen holding the lock");
        }
    };
    stack.network.set_link(holder, false)?;
    let cut_at: String = sqlx::query_scalar("SELECT now()::text")
        .fetch_one(&mut conn)
        .await?;
    let other = RECONCILERS
        .into_iter()
        .find(|h| *h != holder)
        .expect("two reconcilers");
    let cut = Instant::now();
    let took_over = loop {
        let passes: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM reconciler_runs WHERE instance = $1 AND finished_at > $2::timestamptz",
        )
        .bind(other.name)
        .bind(&cut_at)
        .fetch_one(&mut conn)
        .await?;
        if passes > 0 {
            break cut.elapsed();
        }
        if cut.elapsed() > Duration::from_secs(120) {
            bail!(
                "{} never completed a pass while {} was cut off",
                other.name,
                holder.name
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.network.set_link(holder, true)?;
    Ok(format!(
        "({} cut off holding the lock; {} took over after {:.1}s)",
        holder.name,
        other.name,
        took_over.as_secs_f64()
    ))
}
