//! A TCP listener whose connections can be reset on demand.
//!
//! Dropping a WebSocket closes its TCP connection politely (FIN). To also simulate a connection
//! reset (RST), as a crashed load balancer would cause, each accepted stream carries a flag
//! that, when set, makes dropping it close with `SO_LINGER` 0. The flag reaches handlers through
//! axum's `ConnectInfo<PeerInfo>`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The peer of an accepted connection and the switch that makes closing it a reset.
#[derive(Debug, Clone)]
pub(crate) struct PeerInfo {
    pub addr: SocketAddr,
    reset_on_drop: Arc<AtomicBool>,
}

impl PeerInfo {
    /// Makes the connection close with RST instead of FIN when it is dropped.
    pub fn reset_on_drop(&self) {
        self.reset_on_drop.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, SimListener>> for PeerInfo {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// The simulator's listener.
#[derive(Debug)]
pub(crate) struct SimListener {
    inner: TcpListener,
}

impl SimListener {
    pub fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl Listener for SimListener {
    type Io = SimStream;
    type Addr = PeerInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    // Small frames (heartbeats, ACKs) must not wait for Nagle.
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "could not set TCP_NODELAY");
                    }
                    let reset_on_drop = Arc::new(AtomicBool::new(false));
                    let peer = PeerInfo {
                        addr,
                        reset_on_drop: Arc::clone(&reset_on_drop),
                    };
                    return (
                        SimStream {
                            inner: stream,
                            reset_on_drop,
                        },
                        peer,
                    );
                }
                Err(error) => {
                    // Accept errors (e.g. too many open files) are transient; back off a bit
                    // rather than spin, as axum's own TcpListener does.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(PeerInfo {
            addr: self.inner.local_addr()?,
            reset_on_drop: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// An accepted TCP stream that can be reset when dropped.
#[derive(Debug)]
pub(crate) struct SimStream {
    inner: TcpStream,
    reset_on_drop: Arc<AtomicBool>,
}

impl Drop for SimStream {
    fn drop(&mut self) {
        if self.reset_on_drop.load(Ordering::SeqCst)
            && let Err(error) = self.inner.set_zero_linger()
        {
            tracing::debug!(%error, "could not arm the connection reset");
        }
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
