//! An independent listener on `events`: which event ids were announced,
//! and when. It tells which events never had a NOTIFY (the bot died between
//! commit and NOTIFY) and whether a reconciler re-fired an event twice at once.
//!
//! It is an observer, not a consumer: it reads notifications and nothing else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::timeline::Timeline;

/// The channel the pipeline NOTIFYs on.
const CHANNEL: &str = "events";

/// What the listener heard.
#[derive(Debug, Default, Clone)]
pub struct Heard {
    /// Per event id, every time it was announced.
    pub events: HashMap<Uuid, Vec<Duration>>,
    /// When the listener's connection was lost (anything sent around then
    /// may have been missed by the listener itself).
    pub gaps: Vec<Duration>,
}

impl Heard {
    /// Event ids announced at least twice within `window` of each other.
    pub fn announced_twice_within(&self, window: Duration) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .events
            .iter()
            .filter(|(_, times)| {
                times
                    .windows(2)
                    .any(|pair| pair[1].saturating_sub(pair[0]) < window)
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// The running listener.
#[derive(Debug)]
pub struct NotificationLog {
    heard: Arc<Mutex<Heard>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl NotificationLog {
    /// Starts listening on the database at `url`.
    pub fn start(url: &str, timeline: Timeline) -> Self {
        let heard = Arc::new(Mutex::new(Heard::default()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(listen(
            url.to_owned(),
            timeline,
            Arc::clone(&heard),
            stop.clone(),
        ));
        Self { heard, stop, task }
    }

    /// Stops and returns what was heard.
    pub async fn finish(self) -> Heard {
        self.stop.cancel();
        // The loop exits on cancellation; a panic in it leaves what was
        // recorded so far, which is still worth reporting.
        let _ = self.task.await;
        lock(&self.heard).clone()
    }
}

fn lock(heard: &Mutex<Heard>) -> MutexGuard<'_, Heard> {
    // Updates are single inserts; a poisoned lock still guards consistent data.
    heard.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn listen(
    url: String,
    timeline: Timeline,
    heard: Arc<Mutex<Heard>>,
    stop: CancellationToken,
) {
    loop {
        if stop.is_cancelled() {
            return;
        }
        let mut listener = match connect(&url).await {
            Ok(listener) => listener,
            Err(_) => {
                // The database may be down on purpose; try again shortly.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(notification)) => {
                    // Heartbeats and forged payloads are not event ids.
                    if let Ok(id) = notification.payload().parse::<Uuid>() {
                        lock(&heard)
                            .events
                            .entry(id)
                            .or_default()
                            .push(timeline.now());
                    }
                }
                // The connection was lost; `try_recv` reconnects on the next call.
                Ok(None) => lock(&heard).gaps.push(timeline.now()),
                Err(_) => {
                    lock(&heard).gaps.push(timeline.now());
                    break;
                }
            }
        }
    }
}

async fn connect(url: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()?
        .application_name("aplus-chaos-listener");
    // A pool of its own, so a dropped listener closes its connection.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options);
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
