//! `chronik serve`: the store behind the KurrentDB (EventStoreDB) v1 gRPC protocol, so the
//! KurrentDB clients of every language work against it unchanged.
//!
//! This layer translates and owns nothing else: each call becomes calls of [`EventStore`] (no
//! SQL here, no second copy of the subscription machinery), and the protocol's facts
//! (revisions from 0, commit/prepare positions, error trailers) are mapped in `mapping.rs`.
//! One file per service: `streams.rs` (writes) with `read.rs` (reads and catch-up
//! subscriptions) and `metadata_stream.rs` (`$$<stream>`), `persistent.rs` (persistent
//! subscription groups, with `groups.rs` for their settings and figures), `gossip.rs` (the
//! store's cluster members), `features.rs`.
//!
//! ```no_run
//! use chronik::{Config, EventStore};
//! use chronik::server::{Server, ServerOptions};
//! # async fn demo() -> chronik::Result<()> {
//! let store = EventStore::start(Config::default()).await?;
//! // An application exposes its own store: remote clients beside its own subscribers.
//! let server = Server::start(store.clone(), ServerOptions::insecure("127.0.0.1:2113".parse().unwrap())).await?;
//! println!("KurrentDB clients connect to kurrentdb://{}?tls=false", server.local_addr());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

mod features;
mod gossip;
mod groups;
mod mapping;
mod metadata_stream;
mod persistent;
/// The protocol's messages, services and clients as generated from `proto/`: for chronik's own
/// benchmarks and protocol-level tests, not a stable API (use a KurrentDB client).
#[doc(hidden)]
pub mod proto;
mod read;
mod streams;

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use std::time::Duration;
use tokio::net::TcpListener;

use futures::StreamExt;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::{Interceptor, interceptor::InterceptedService};
use tonic::transport::{Identity, ServerTlsConfig};
use tonic::{Request, Status};

use crate::{Error, EventStore, Result};
use proto::gossip::gossip_server::GossipServer;
use proto::persistent::persistent_subscriptions_server::PersistentSubscriptionsServer;
use proto::server_features::server_features_server::ServerFeaturesServer;
use proto::streams::streams_server::StreamsServer;

/// How long [`Server::shutdown`] waits for connections to close once every call has ended,
/// before it closes them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Says when the server stops: long calls (subscriptions) end when it turns true.
pub(crate) type Stopping = watch::Receiver<bool>;

/// Returns once the server stops.
pub(crate) async fn stopped(stopping: &mut Stopping) {
    // An error means the server is gone, which is stopped too.
    let _ = stopping.wait_for(|stopping| *stopping).await;
}

/// The largest message a client may send (KurrentDB's default largest append is 16 MiB; a
/// message carries some framing besides the events).
const MAX_MESSAGE_BYTES: usize = 17 * 1024 * 1024;

/// How a [`Server`] listens and whom it lets in.
#[derive(Clone)]
pub struct ServerOptions {
    listen: SocketAddr,
    tls: Option<Identity>,
    users: Vec<(String, String)>,
    advertise: Option<(String, u16)>,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("listen", &self.listen)
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("advertise", &self.advertise)
            .finish()
    }
}

impl ServerOptions {
    /// Plain HTTP/2 on `listen`, without authentication (KurrentDB's `--insecure`): for a
    /// trusted network or a single machine.
    pub fn insecure(listen: SocketAddr) -> Self {
        ServerOptions { listen, tls: None, users: Vec::new(), advertise: None }
    }

    /// TLS on `listen` with this certificate chain and private key (PEM). Every call but
    /// discovery (gossip, server features) needs HTTP basic credentials of one of the users;
    /// without [`user`](Self::user), the one user is `admin` with password `changeit`.
    pub fn tls(listen: SocketAddr, certificate_pem: impl AsRef<[u8]>, key_pem: impl AsRef<[u8]>) -> Self {
        ServerOptions {
            listen,
            tls: Some(Identity::from_pem(certificate_pem, key_pem)),
            users: Vec::new(),
            advertise: None,
        }
    }

    /// Adds a user that may call the server over TLS.
    #[must_use]
    pub fn user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }

    /// The address gossip gives clients for this server (default: the address it listens on).
    #[must_use]
    pub fn advertise(mut self, host: impl Into<String>, port: u16) -> Self {
        self.advertise = Some((host.into(), port));
        self
    }
}

/// A running server; [`shutdown`](Self::shutdown) stops it gracefully (calls in progress
/// finish, subscriptions end). Dropping it stops it too.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    /// This server in the store's cluster (gossip lists it while it serves).
    membership: Option<crate::ClusterMembership>,
    stop: Option<oneshot::Sender<()>>,
    stopping: watch::Sender<bool>,
    task: Option<JoinHandle<std::result::Result<(), tonic::transport::Error>>>,
}

impl Server {
    /// Binds `options.listen` and serves `store` on it until [`shutdown`](Self::shutdown).
    /// The store keeps running its own subscribers beside the remote clients.
    ///
    /// Errors: [`Error::Unavailable`] if the address cannot be bound,
    /// [`Error::InvalidArgument`] for a certificate or key that cannot be used.
    pub async fn start(store: EventStore, options: ServerOptions) -> Result<Server> {
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot listen on {}: {e}", options.listen)))?;
        let local_addr = listener.local_addr().map_err(|e| Error::Unavailable(e.to_string()))?;
        let mut builder = tonic::transport::Server::builder();
        let auth = match options.tls {
            Some(identity) => {
                // rustls takes its crypto from the process; a process that links two choices
                // (ring and aws-lc-rs, through other libraries) has none until one is
                // installed. Install aws-lc-rs, tonic's here, unless the application chose.
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                builder = builder
                    .tls_config(ServerTlsConfig::new().identity(identity))
                    .map_err(|e| Error::InvalidArgument(format!("the TLS certificate or key cannot be used: {e}")))?;
                let users =
                    if options.users.is_empty() { vec![("admin".into(), "changeit".into())] } else { options.users };
                Authenticate { users: Some(Arc::new(users)) }
            }
            None => Authenticate { users: None },
        };
        let (host, port) = options.advertise.unwrap_or_else(|| (local_addr.ip().to_string(), local_addr.port()));
        let membership = store.join_cluster(host, port).await?;
        let stopping = watch::Sender::new(false);
        let streams = streams::StreamsService::new(store.clone(), stopping.subscribe());
        let streams = InterceptedService::new(
            StreamsServer::new(streams).max_decoding_message_size(MAX_MESSAGE_BYTES),
            auth.clone(),
        );
        let store_for_gossip = store.clone();
        let persistent = persistent::PersistentService::new(store, stopping.subscribe());
        let persistent = PersistentSubscriptionsServer::with_interceptor(persistent, auth);
        let router = builder
            .add_service(streams)
            .add_service(persistent)
            .add_service(GossipServer::new(gossip::GossipService { store: store_for_gossip }))
            .add_service(ServerFeaturesServer::new(features::FeaturesService));
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = TcpListenerStream::new(listener).filter_map(|accepted| async move {
            match accepted.and_then(|stream| stream.set_nodelay(true).map(|()| stream)) {
                // Small messages (an ack, a one-event append) go out at once, not after the
                // peer's delayed acknowledgement.
                Ok(stream) => Some(Ok::<_, std::io::Error>(stream)),
                Err(error) => {
                    tracing::warn!(%error, "a connection could not be accepted");
                    None
                }
            }
        });
        let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        }));
        tracing::info!(%local_addr, "serving the KurrentDB protocol");
        Ok(Server { local_addr, membership: Some(membership), stop: Some(stop), stopping, task: Some(task) })
    }

    /// The address the server listens on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting calls and ends the long ones (subscriptions end with `Unavailable`, as
    /// when a KurrentDB node shuts down; clients reconnect elsewhere), lets the others finish,
    /// and returns once the server has stopped. Connections still open after a grace period
    /// of a few seconds are closed.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(membership) = self.membership.take() {
            membership.leave().await;
        }
        self.stopping.send_replace(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut task) = self.task.take() else { return Ok(()) };
        let finished = match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(finished) => finished,
            Err(_) => {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; closing them");
                task.abort();
                return Ok(());
            }
        };
        match finished {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Unavailable(format!("the server failed: {e}"))),
            Err(e) => Err(Error::Unavailable(format!("the server task failed: {e}"))),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stopping.send_replace(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// HTTP basic authentication of calls, when the server has users (over TLS).
#[derive(Clone)]
struct Authenticate {
    users: Option<Arc<Vec<(String, String)>>>,
}

impl Interceptor for Authenticate {
    fn call(&mut self, request: Request<()>) -> std::result::Result<Request<()>, Status> {
        let Some(users) = &self.users else { return Ok(request) };
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return Err(Status::unauthenticated("this server needs credentials (HTTP basic authentication)"));
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let known = decoded
            .as_deref()
            .and_then(|d| d.split_once(':'))
            .is_some_and(|(name, password)| users.iter().any(|(n, p)| n == name && p == password));
        if known { Ok(request) } else { Err(Status::unauthenticated("invalid user name or password")) }
    }
}
