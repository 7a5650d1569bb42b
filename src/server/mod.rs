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

mod connections;
mod features;
mod gossip;
mod groups;
pub mod http;
mod mapping;
mod metadata_stream;
mod persistent;
/// The protocol's messages, services and clients as generated from `proto/`: for chronik's own
/// benchmarks and protocol-level tests, not a stable API (use a KurrentDB client).
#[doc(hidden)]
pub mod proto;
mod read;
mod streams;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::{Interceptor, Routes, interceptor::InterceptedService};
use tonic::{Request, Status};

use self::http::HttpOptions;
use self::tls::TlsIdentity;
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
    tls: Option<TlsIdentity>,
    users: Vec<(String, String)>,
    advertise: Option<(String, u16)>,
    http: Option<HttpOptions>,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("listen", &self.listen)
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("advertise", &self.advertise)
            .field("http", &self.http)
            .finish()
    }
}

impl ServerOptions {
    /// Plain HTTP/2 on `listen`, without authentication (KurrentDB's `--insecure`): for a
    /// trusted network or a single machine.
    pub fn insecure(listen: SocketAddr) -> Self {
        ServerOptions { listen, tls: None, users: Vec::new(), advertise: None, http: None }
    }

    /// TLS on `listen` with this certificate chain and private key (PEM). Every call but
    /// discovery (gossip, server features) needs HTTP basic credentials of one of the users;
    /// without [`user`](Self::user), the one user is `admin` with password `changeit`.
    pub fn tls(listen: SocketAddr, certificate_pem: impl AsRef<[u8]>, key_pem: impl AsRef<[u8]>) -> Self {
        ServerOptions {
            listen,
            tls: Some(TlsIdentity::from_pem(certificate_pem.as_ref(), key_pem.as_ref())),
            users: Vec::new(),
            advertise: None,
            http: None,
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

    /// Serves the HTTP face ([`http`]: `/metrics`, `/health`, the admin UI) on the protocol's
    /// port too, with its TLS and users. Off unless set.
    #[must_use]
    pub fn http(mut self, http: HttpOptions) -> Self {
        self.http = Some(http);
        self
    }

    /// The same options on another address (how `chronik serve --http ADDR` gives the HTTP
    /// face its own port with the protocol's TLS and users).
    #[must_use]
    pub fn listen_on(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// Whether the HTTP face is served on the protocol's port ([`http`](Self::http)).
    pub fn has_http(&self) -> bool {
        self.http.is_some()
    }

    /// Whether the server uses TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whom the server lets in: nobody is asked without TLS; over TLS, its users (by default
    /// `admin`/`changeit`).
    fn credentials(&self) -> Credentials {
        if self.tls.is_none() {
            return Credentials { users: None };
        }
        let users = if self.users.is_empty() { vec![("admin".into(), "changeit".into())] } else { self.users.clone() };
        Credentials { users: Some(Arc::new(users)) }
    }
}

/// A running server; [`shutdown`](Self::shutdown) stops it gracefully (calls in progress
/// finish, subscriptions end). Dropping it stops it too.
#[derive(Debug)]
pub struct Server {
    /// This server in the store's cluster (gossip lists it while it serves).
    membership: Option<crate::ClusterMembership>,
    serving: Serving,
}

impl Server {
    /// Binds `options.listen` and serves `store` on it until [`shutdown`](Self::shutdown).
    /// The store keeps running its own subscribers beside the remote clients.
    ///
    /// Errors: [`Error::Unavailable`] if the address cannot be bound,
    /// [`Error::InvalidArgument`] for a certificate or key that cannot be used.
    pub async fn start(store: EventStore, options: ServerOptions) -> Result<Server> {
        let serving = Serving::bind(options.listen).await?;
        let local_addr = serving.local_addr;
        let credentials = options.credentials();
        let (host, port) =
            options.advertise.clone().unwrap_or_else(|| (local_addr.ip().to_string(), local_addr.port()));
        let membership = store.join_cluster(host, port).await?;
        let http = options.http.is_some();
        let routes: Routes = match options.http {
            Some(http) => {
                http::router(store.clone(), http, credentials.clone(), serving.clients(), serving.stopping()).into()
            }
            None => Routes::default(),
        };
        let streams = streams::StreamsService::new(store.clone(), serving.stopping());
        let streams = InterceptedService::new(
            StreamsServer::new(streams).max_decoding_message_size(MAX_MESSAGE_BYTES),
            credentials.clone(),
        );
        let persistent = persistent::PersistentService::new(store.clone(), serving.stopping());
        let persistent = PersistentSubscriptionsServer::with_interceptor(persistent, credentials);
        let routes = routes
            .add_service(streams)
            .add_service(persistent)
            .add_service(GossipServer::new(gossip::GossipService { store }))
            .add_service(ServerFeaturesServer::new(features::FeaturesService));
        let serving = match serving.serve(options.tls, http, routes) {
            Ok(serving) => serving,
            Err(e) => {
                membership.leave().await;
                return Err(e);
            }
        };
        tracing::info!(%local_addr, http, "serving the KurrentDB protocol");
        Ok(Server { membership: Some(membership), serving })
    }

    /// The address the server listens on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.serving.local_addr
    }

    /// Stops accepting calls and ends the long ones (subscriptions end with `Unavailable`, as
    /// when a KurrentDB node shuts down; clients reconnect elsewhere), lets the others finish,
    /// and returns once the server has stopped. Connections still open after a grace period
    /// of a few seconds are closed.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(membership) = self.membership.take() {
            membership.leave().await;
        }
        self.serving.shutdown().await
    }
}

/// A listener and, once [`serve`](Self::serve) ran, the task serving it: what [`Server`] and
/// [`http::HttpServer`] share.
#[derive(Debug)]
struct Serving {
    local_addr: SocketAddr,
    listener: Option<TcpListener>,
    /// Open client connections.
    clients: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    stopping: watch::Sender<bool>,
    task: Option<JoinHandle<std::result::Result<(), tonic::transport::Error>>>,
}

impl Serving {
    async fn bind(listen: SocketAddr) -> Result<Serving> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot listen on {listen}: {e}")))?;
        let local_addr = listener.local_addr().map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok(Serving {
            local_addr,
            listener: Some(listener),
            clients: Arc::default(),
            stop: None,
            stopping: watch::Sender::new(false),
            task: None,
        })
    }

    fn clients(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.clients)
    }

    /// Says when the server stops.
    fn stopping(&self) -> Stopping {
        self.stopping.subscribe()
    }

    /// Serves `routes` on the listener, with TLS if given; `http1` lets browsers in (HTTP/1.1
    /// beside HTTP/2, offered by ALPN too over TLS).
    fn serve(mut self, tls: Option<TlsIdentity>, http1: bool, routes: Routes) -> Result<Serving> {
        let Some(listener) = self.listener.take() else { return Ok(self) };
        let router = tonic::transport::Server::builder().accept_http1(http1).add_routes(routes);
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async {
            let _ = stopped.await;
        };
        let task = match tls {
            Some(identity) => {
                let incoming = tls::incoming(listener, identity.acceptor(http1)?, self.clients());
                tokio::spawn(router.serve_with_incoming_shutdown(incoming, stopped))
            }
            None => {
                let clients = self.clients();
                let incoming = TcpListenerStream::new(listener).filter_map(move |stream| {
                    std::future::ready(connections::accepted(stream, &clients).map(Ok::<_, std::io::Error>))
                });
                tokio::spawn(router.serve_with_incoming_shutdown(incoming, stopped))
            }
        };
        self.task = Some(task);
        self.stop = Some(stop);
        Ok(self)
    }

    async fn shutdown(mut self) -> Result<()> {
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

impl Drop for Serving {
    fn drop(&mut self) {
        self.stopping.send_replace(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// HTTP basic authentication of calls and pages, when the server has users (over TLS).
#[derive(Clone)]
pub(crate) struct Credentials {
    users: Option<Arc<Vec<(String, String)>>>,
}

impl Credentials {
    /// Whether an `authorization` header lets a caller in; else why not.
    fn check(&self, header: Option<&str>) -> std::result::Result<(), &'static str> {
        let Some(users) = &self.users else { return Ok(()) };
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return Err("this server needs credentials (HTTP basic authentication)");
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let known = decoded
            .as_deref()
            .and_then(|d| d.split_once(':'))
            .is_some_and(|(name, password)| users.iter().any(|(n, p)| n == name && p == password));
        if known { Ok(()) } else { Err("invalid user name or password") }
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, request: Request<()>) -> std::result::Result<Request<()>, Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        self.check(header).map(|()| request).map_err(Status::unauthenticated)
    }
}
