//! The HTTP face of a store: `/metrics` (Prometheus' text format), `/health` (liveness and
//! readiness) and the admin UI with the JSON API behind it (`/api/...`).
//!
//! It is served beside the KurrentDB protocol on the same port
//! ([`ServerOptions::http`](super::ServerOptions::http), what `chronik serve` does unless told
//! otherwise: clients speak HTTP/1.1 or HTTP/2 to it, over TLS too), or on an address of its own
//! with [`HttpServer`], which is also how an application that embeds chronik without the
//! protocol shows its store. With TLS and users, the UI and its API ask for the protocol's
//! credentials (HTTP basic); `/metrics` and `/health` answer anyone, as scrapers and load
//! balancers expect.
//!
//! ```no_run
//! use chronik::server::http::{HttpOptions, HttpServer, install_prometheus};
//! use chronik::server::ServerOptions;
//! use chronik::{Config, EventStore};
//! # async fn demo() -> chronik::Result<()> {
//! let prometheus = install_prometheus()?; // before the store starts: it takes its handles then
//! let store = EventStore::start(Config::default()).await?;
//! let listen = "127.0.0.1:8080".parse().unwrap();
//! let http = HttpServer::start(store.clone(), ServerOptions::insecure(listen), HttpOptions::new().prometheus(prometheus)).await?;
//! println!("admin UI at http://{}/", http.local_addr());
//! # Ok(()) }
//! ```
//!
//! One file per part: `api.rs` (the JSON API), `live.rs` (events followed live, as server-sent
//! events), `health.rs`, `assets.rs` (the UI's files, compiled into the binary).

mod api;
mod assets;
mod counting;
mod health;
mod live;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::{Credentials, ServerOptions, Serving, Stopping};
use crate::{Error, EventStore, Result};

/// How often the Prometheus recorder's histograms are folded into their buckets when nobody
/// scrapes (they would grow otherwise).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// A running subscription counts as stalled in `/health` after this long with events waiting
/// (queued or in flight) and none acked.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(60);

/// What the HTTP face serves.
#[derive(Clone)]
pub struct HttpOptions {
    ui: bool,
    prometheus: Option<PrometheusHandle>,
    stall_after: Duration,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("ui", &self.ui)
            .field("prometheus", &self.prometheus.is_some())
            .field("stall_after", &self.stall_after)
            .finish()
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions::new()
    }
}

impl HttpOptions {
    /// `/health`, the admin UI and its API; `/metrics` once a recorder is given
    /// ([`prometheus`](Self::prometheus)).
    pub fn new() -> Self {
        HttpOptions { ui: true, prometheus: None, stall_after: DEFAULT_STALL_AFTER }
    }

    /// Serves this recorder's figures at `/metrics` (see [`install_prometheus`]). Without one,
    /// `/metrics` answers 404 saying so.
    #[must_use]
    pub fn prometheus(mut self, handle: PrometheusHandle) -> Self {
        self.prometheus = Some(handle);
        self
    }

    /// Leaves out the admin UI and its API: `/metrics` and `/health` only.
    #[must_use]
    pub fn without_ui(mut self) -> Self {
        self.ui = false;
        self
    }

    /// How long a running subscription may hold events (queued or in flight) without an ack
    /// before `/health` calls it stalled (default [`DEFAULT_STALL_AFTER`]).
    #[must_use]
    pub fn stall_after(mut self, after: Duration) -> Self {
        self.stall_after = after;
        self
    }
}

/// Installs a Prometheus recorder as the process' metrics recorder and returns its handle for
/// [`HttpOptions::prometheus`]. Call it before [`EventStore::start`]: a store takes its metric
/// handles from the recorder installed when it starts. Latencies get buckets from 100 µs to
/// 10 s, batch sizes from 1 to 5,000.
///
/// Errors: [`Error::InvalidArgument`] if the process already has a recorder.
pub fn install_prometheus() -> Result<PrometheusHandle> {
    const SECONDS: [f64; 16] =
        [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    const COUNTS: [f64; 12] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0];
    let bad = |e: metrics_exporter_prometheus::BuildError| Error::InvalidArgument(format!("{e}"));
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)
        .map_err(bad)?
        .set_buckets_for_metric(Matcher::Prefix("chronik_batch_".into()), &COUNTS)
        .map_err(bad)?
        .install_recorder()
        .map_err(bad)
}

/// What every handler shares.
pub(crate) struct Shared {
    pub(crate) store: EventStore,
    pub(crate) options: HttpOptions,
    /// Open client connections of the server serving this face.
    pub(crate) clients: Arc<AtomicU64>,
    pub(crate) stopping: Stopping,
    /// The overview's stream count, kept while counting is dear.
    pub(crate) streams: counting::StreamCount,
}

impl Shared {
    pub(crate) fn clients(&self) -> u64 {
        self.clients.load(Ordering::Relaxed)
    }
}

/// The HTTP face's routes; `credentials` guard the UI and its API.
pub(crate) fn router(
    store: EventStore,
    options: HttpOptions,
    credentials: Credentials,
    clients: Arc<AtomicU64>,
    stopping: Stopping,
) -> Router {
    if let Some(handle) = options.prometheus.clone() {
        tokio::spawn(upkeep(handle, stopping.clone()));
    }
    let ui = options.ui;
    let shared = Arc::new(Shared { store, options, clients, stopping, streams: Default::default() });
    let open = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health::ready))
        .route("/health/ready", get(health::ready))
        .route("/health/live", get(health::live));
    let open = if ui {
        let guarded = api::routes().merge(assets::routes()).layer(middleware::from_fn_with_state(credentials, guard));
        open.merge(guarded)
    } else {
        open
    };
    open.fallback(not_found).with_state(shared)
}

/// Runs the recorder's upkeep until the server stops.
async fn upkeep(handle: PrometheusHandle, mut stopping: Stopping) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => handle.run_upkeep(),
            () = super::stopped(&mut stopping) => return,
        }
    }
}

/// `GET /metrics`.
async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    match &shared.options.prometheus {
        Some(handle) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            "no Prometheus recorder: start the HTTP face with HttpOptions::prometheus(install_prometheus()?)\n",
        )
            .into_response(),
    }
}

/// Lets a request through if the server has no users, or it carries one's credentials; else
/// asks the browser for them.
async fn guard(State(credentials): State<Credentials>, request: Request, next: Next) -> Response {
    let header = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match credentials.check(header) {
        Ok(()) => next.run(request).await,
        Err(message) => {
            let mut response = (StatusCode::UNAUTHORIZED, message).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"chronik\""));
            response
        }
    }
}

/// Anything else.
async fn not_found(request: Request) -> Response {
    api::failure(StatusCode::NOT_FOUND, "not_found", format!("nothing at {}", request.uri().path()))
}

/// The HTTP face on an address of its own (see the [module](self)). [`shutdown`](Self::shutdown)
/// stops it; dropping it stops it too.
#[derive(Debug)]
pub struct HttpServer {
    serving: Serving,
}

impl HttpServer {
    /// Binds `server.listen` and serves `http` for `store` there, with `server`'s TLS and users
    /// (its `advertise` is not used: this is no protocol node).
    ///
    /// Errors: [`Error::Unavailable`] if the address cannot be bound,
    /// [`Error::InvalidArgument`] for a certificate or key that cannot be used.
    pub async fn start(store: EventStore, server: ServerOptions, http: HttpOptions) -> Result<HttpServer> {
        let serving = Serving::bind(server.listen).await?;
        let credentials = server.credentials();
        let routes = router(store, http, credentials, serving.clients(), serving.stopping()).into();
        Ok(HttpServer { serving: serving.serve(server.tls, true, routes)? })
    }

    /// The address it listens on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.serving.local_addr
    }

    /// Stops accepting requests, ends live follows, lets the others finish and returns once
    /// it has stopped.
    pub async fn shutdown(self) -> Result<()> {
        self.serving.shutdown().await
    }
}
