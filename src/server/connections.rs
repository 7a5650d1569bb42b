//! Counting a server's open client connections (the admin UI's dashboard shows them).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A client's connection, counted in `open` from its accept until it is dropped.
pub(super) struct Counted {
    stream: TcpStream,
    open: Arc<AtomicU64>,
}

impl Counted {
    fn new(stream: TcpStream, open: Arc<AtomicU64>) -> Counted {
        open.fetch_add(1, Ordering::Relaxed);
        Counted { stream, open }
    }
}

/// A connection the listener accepted, counted in `open`, with small messages (an ack, a
/// one-event append) sent at once rather than after the peer's delayed acknowledgement
/// (`TCP_NODELAY`); `None`, logged, when the accept failed.
pub(super) fn accepted(accepted: io::Result<TcpStream>, open: &Arc<AtomicU64>) -> Option<Counted> {
    match accepted.and_then(|stream| stream.set_nodelay(true).map(|()| stream)) {
        Ok(stream) => Some(Counted::new(stream, Arc::clone(open))),
        Err(error) => {
            tracing::warn!(%error, "a connection could not be accepted");
            None
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connected for Counted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
