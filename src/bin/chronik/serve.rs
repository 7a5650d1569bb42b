//! `chronik serve`: runs the store behind the KurrentDB gRPC protocol until SIGINT or SIGTERM,
//! then stops gracefully (calls in progress end, the store shuts down cleanly).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chronik::server::http::{HttpOptions, HttpServer, install_prometheus};
use chronik::server::{Server, ServerOptions};
use chronik::{Config, EventStore};
use clap::Args;
use serde_json::json;

use crate::{Context, Failure, Outcome};

/// Examples shown by `chronik serve --help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  chronik serve --insecure                              plain HTTP/2 on 127.0.0.1:2113, no authentication
  chronik serve --tls-cert node.pem --tls-key node.key  TLS; calls need a user (default admin/changeit)
  chronik serve --insecure --http 127.0.0.1:2114        the admin UI, /metrics and /health on a port of their own
  chronik serve --insecure --no-ui                      /metrics and /health, no admin UI
  chronik --database-url postgres://postgres@127.0.0.1/postgres serve --insecure --listen 0.0.0.0:2113 --advertise node1:2113

Clients connect with kurrentdb://127.0.0.1:2113?tls=false (insecure) or
kurrentdb://admin:changeit@host:2113 (TLS). Users are set in the [server] section of the
configuration file. The admin UI (http://127.0.0.1:2113/ by default) asks for the same users
over TLS.";

/// `chronik serve`'s options; they override the `[server]` section of the configuration.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (default: the configuration's, else 127.0.0.1:2113).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Serve plain HTTP/2 without TLS or authentication.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    insecure: bool,
    /// The server's certificate chain (PEM).
    #[arg(long, value_name = "CERT.pem", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "KEY.pem", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// host:port that gossip gives clients for this server (default: the listen address).
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Where `/metrics`, `/health` and the admin UI listen (default: the protocol's address).
    #[arg(long, value_name = "ADDR", conflicts_with = "no_http")]
    http: Option<SocketAddr>,
    /// No HTTP face: neither `/metrics`, `/health` nor the admin UI.
    #[arg(long)]
    no_http: bool,
    /// `/metrics` and `/health` without the admin UI.
    #[arg(long, conflicts_with = "no_http")]
    no_ui: bool,
    /// How long a subscription may hold events without an ack before `/health` calls the
    /// node unready (default: the configuration's, else 60s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "no_http")]
    stall_after: Option<std::time::Duration>,
    /// Export chronik's spans over OTLP/gRPC to this collector (e.g. http://127.0.0.1:4317).
    #[cfg(feature = "otel")]
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
}

/// The OTLP endpoint `serve` was given, if any.
pub(crate) fn otlp_endpoint(args: &ServeArgs) -> Option<&str> {
    #[cfg(feature = "otel")]
    return args.otlp_endpoint.as_deref();
    #[cfg(not(feature = "otel"))]
    {
        let _ = args;
        None
    }
}

/// The span exporter `serve` runs, if it exports.
#[cfg(feature = "otel")]
pub(crate) type Exporting = Option<opentelemetry_sdk::trace::SdkTracerProvider>;
/// Nothing: built without the `otel` feature.
#[cfg(not(feature = "otel"))]
pub(crate) struct Exporting;

/// The exporter for `otlp` and its layer of the tracing subscriber (none without one).
#[cfg(feature = "otel")]
pub(crate) fn exporting<S>(
    otlp: Option<&str>,
) -> Result<(Exporting, Option<impl tracing_subscriber::Layer<S>>), Failure>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let Some(endpoint) = otlp else { return Ok((None, None)) };
    let provider = chronik::otel::tracer_provider(endpoint, "chronik").map_err(Failure::from)?;
    let layer = chronik::otel::layer(&provider);
    Ok((Some(provider), Some(layer)))
}

/// Nothing to export without the `otel` feature.
#[cfg(not(feature = "otel"))]
pub(crate) fn exporting(
    _otlp: Option<&str>,
) -> Result<(Exporting, Option<tracing_subscriber::layer::Identity>), Failure> {
    Ok((Exporting, None))
}

/// Sends what the exporter still holds.
pub(crate) fn stop_exporting(exporting: Exporting) {
    #[cfg(feature = "otel")]
    if let Some(provider) = exporting
        && let Err(e) = provider.shutdown()
    {
        eprintln!("warning: spans not exported at exit: {e}");
    }
    #[cfg(not(feature = "otel"))]
    let Exporting = exporting;
}

/// Serves the store until a signal asks it to stop.
pub(crate) async fn serve(config: Config, args: ServeArgs, json: bool) -> Outcome {
    let signals = StopSignals::listen();
    let (mut options, http) = options(&config, args)?;
    let tls = options.is_tls();
    // The recorder goes in before the store starts: the store takes its handles then.
    let (own_port, http) = match http {
        Some((at, http)) => {
            let prometheus = install_prometheus().context(|| "cannot install the metrics recorder".into())?;
            (at, Some(http.prometheus(prometheus)))
        }
        None => (None, None),
    };
    let store = EventStore::start(config).await.context(|| "cannot open the store".into())?;
    let mut beside = None;
    match (own_port, http) {
        (Some(at), Some(http)) => beside = Some((at, http)),
        (None, Some(http)) => options = options.http(http),
        _ => {}
    }
    let shared_port = options.has_http();
    let server = match Server::start(store.clone(), options.clone()).await {
        Ok(server) => server,
        Err(e) => {
            let _ = store.shutdown().await;
            return Err(Failure::from(e));
        }
    };
    let http_server = match beside {
        Some((at, http)) => match HttpServer::start(store.clone(), options.listen_on(at), http).await {
            Ok(http_server) => Some(http_server),
            Err(e) => {
                let _ = server.shutdown().await;
                let _ = store.shutdown().await;
                return Err(Failure::from(e));
            }
        },
        None => None,
    };
    let address = server.local_addr();
    let http_address = http_server.as_ref().map(HttpServer::local_addr).or(shared_port.then_some(address));
    if json {
        println!("{}", json!({ "listening": address.to_string(), "http": http_address.map(|a| a.to_string()) }));
    } else {
        println!("chronik serves the KurrentDB protocol on {address}; Ctrl-C stops it");
        if let Some(http_address) = http_address {
            let scheme = if tls { "https" } else { "http" };
            println!("admin UI, /metrics and /health at {scheme}://{http_address}/");
        }
    }
    let signal = signals.wait().await;
    tracing::info!(signal, "stopping");
    let http_stopped = match http_server {
        Some(http_server) => http_server.shutdown().await,
        None => Ok(()),
    };
    let stopped = server.shutdown().await;
    let closed = store.shutdown().await;
    stopped.context(|| "the server did not stop cleanly".into())?;
    http_stopped.context(|| "the HTTP face did not stop cleanly".into())?;
    closed.context(|| "cannot close the store cleanly".into())?;
    Ok(ExitCode::SUCCESS)
}

/// Where the HTTP face listens (`None`: on the protocol's port) and what it serves, unless
/// it is off.
type HttpChoice = Option<(Option<SocketAddr>, HttpOptions)>;

/// The server's options and the HTTP face's: the command line over the configuration's
/// `[server]` section.
fn options(config: &Config, args: ServeArgs) -> Result<(ServerOptions, HttpChoice), Failure> {
    let server = &config.server;
    let listen = args.listen.unwrap_or(server.listen);
    let http = if args.no_http || (!server.http && args.http.is_none()) {
        None
    } else {
        let ui = server.admin_ui && !args.no_ui;
        let options = HttpOptions::new().stall_after(args.stall_after.unwrap_or(server.stall_after));
        let options = if ui { options } else { options.without_ui() };
        // The protocol's own address means its port; port 0 always asks for a port of its own.
        let at = args.http.or(server.http_listen).filter(|at| *at != listen || at.port() == 0);
        Some((at, options))
    };
    let (cert, key) = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => (Some(cert), Some(key)),
        _ if args.insecure => (None, None),
        _ => (server.tls_cert.clone(), server.tls_key.clone()),
    };
    let mut options = match (cert, key) {
        (Some(cert), Some(key)) => {
            let read = |path: &PathBuf, what: &str| {
                std::fs::read(path)
                    .map_err(|e| Failure::new(format!("cannot read the TLS {what} {}: {e}", path.display())))
            };
            let mut options = ServerOptions::tls(listen, read(&cert, "certificate")?, read(&key, "key")?);
            for user in &server.users {
                options = options.user(&user.name, &user.password);
            }
            options
        }
        _ if args.insecure || server.insecure => ServerOptions::insecure(listen),
        _ => {
            return Err(Failure::new(
                "choose --insecure (plain HTTP/2, no authentication) or --tls-cert CERT.pem --tls-key KEY.pem \
                 (or set them in the [server] section of the configuration)",
            ));
        }
    };
    let mut server = server.clone();
    if args.advertise.is_some() {
        server.advertise = args.advertise;
    }
    if let Some((host, port)) = server.advertised()? {
        options = options.advertise(host, port);
    }
    Ok((options, http))
}

/// SIGINT (Ctrl-C) and, on Unix, SIGTERM, listened for from the moment this is made: made before
/// `serve` says it listens, so a signal sent right after that line (by a supervisor, a test)
/// stops it gracefully instead of killing it with the signal's default action.
struct StopSignals {
    #[cfg(unix)]
    listeners: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    fn listen() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listeners = signal(SignalKind::interrupt()).and_then(|i| Ok((i, signal(SignalKind::terminate())?)));
            StopSignals { listeners: listeners.ok() }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// Waits for one of the signals; says which came.
    async fn wait(self) -> &'static str {
        #[cfg(unix)]
        if let Some((mut interrupt, mut terminate)) = self.listeners {
            tokio::select! {
                _ = interrupt.recv() => return "SIGINT",
                _ = terminate.recv() => return "SIGTERM",
            }
        }
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
