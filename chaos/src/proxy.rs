//! A TCP proxy in front of PostgreSQL that can make the connections through
//! it half-open: they stay open at both ends, but nothing passes any more,
//! as when a NAT or firewall on the way forgets them. Connections opened
//! afterwards pass normally, so a client that notices and reconnects recovers.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    local: SocketAddr,
    /// Connections of a generation below this value are frozen.
    frozen_below: watch::Sender<u64>,
    generation: Arc<AtomicU64>,
    open: Arc<AtomicUsize>,
    stop: CancellationToken,
    _task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?;
        let (frozen_below, _) = watch::channel(0);
        let generation = Arc::new(AtomicU64::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept(
            listener,
            upstream,
            frozen_below.clone(),
            Arc::clone(&generation),
            Arc::clone(&open),
            stop.clone(),
        ));
        Ok(Self {
            local,
            frozen_below,
            generation,
            open,
            stop,
            _task: task,
        })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.local.port()
    }

    /// Stops forwarding on every connection open now, without closing any.
    /// Returns how many connections were open (and are now frozen).
    pub fn freeze_existing(&self) -> usize {
        let next = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.frozen_below.send_replace(next);
        self.open.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    /// Stops accepting and closes every connection, frozen or not.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    frozen_below: watch::Sender<u64>,
    generation: Arc<AtomicU64>,
    open: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    loop {
        let (client, _) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // A failed accept (out of descriptors) affects one client only.
                Err(_) => continue,
            },
        };
        let mine = generation.load(Ordering::SeqCst);
        let frozen = frozen_below.subscribe();
        let open = Arc::clone(&open);
        let stop = stop.clone();
        tokio::spawn(async move {
            open.fetch_add(1, Ordering::SeqCst);
            relay(client, upstream, mine, frozen, stop).await;
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Forwards one connection until either side closes, or until it is frozen;
/// a frozen connection is held open, silent, until the proxy stops.
async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    generation: u64,
    mut frozen: watch::Receiver<u64>,
    stop: CancellationToken,
) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let froze = async {
        // The sender lives as long as the proxy; if it is gone, never freeze.
        if frozen.wait_for(|below| generation < *below).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
        _ = froze => {}
    }
    // Half-open: both sockets stay open and nothing is read or written.
    stop.cancelled().await;
    drop((client, server));
}
