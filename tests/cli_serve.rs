//! `chronik serve` as a process: it refuses to start without choosing TLS or `--insecure`,
//! serves KurrentDB clients on the address it prints, takes its settings from the `[server]`
//! section, and stops cleanly (exit 0) on SIGTERM and SIGINT. SQLite stores: a file in each
//! test's scratch directory.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::cli::{Cli, describe};
use kurrentdb::{AppendToStreamOptions, Client, ReadStreamOptions, StreamState};

/// The backend of every store in this binary.
const BACKEND: common::Backend = common::Backend::Sqlite;

/// A running `chronik serve` and the address it printed.
struct Serving {
    child: Child,
    address: String,
    /// Where the HTTP face listens, if it serves one.
    http: Option<String>,
}

impl Serving {
    fn start(cli: &Cli, args: &[&str]) -> Serving {
        Self::start_logging(cli, args, Some("warn"))
    }

    /// With `RUST_LOG` set to `log`, or (`None`) unset: `serve`'s own default.
    fn start_logging(cli: &Cli, args: &[&str], log: Option<&str>) -> Serving {
        let mut all = vec!["--json", "serve"];
        all.extend_from_slice(args);
        let mut command = cli.command(&all);
        match log {
            Some(log) => command.env("RUST_LOG", log),
            None => command.env_remove("RUST_LOG"),
        };
        let mut child =
            command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("runs");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("a line");
        let printed: serde_json::Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first:?}"));
        let address = printed["listening"].as_str().expect("the address").to_string();
        let http = printed["http"].as_str().map(str::to_string);
        Serving { child, address, http }
    }

    fn client(&self) -> Client {
        Client::new(format!("kurrentdb://{}?tls=false", self.address).parse().unwrap()).unwrap()
    }

    /// Sends `signal` and returns the exit status and stderr.
    fn stop(mut self, signal: &str) -> (std::process::ExitStatus, String) {
        let sent = Command::new("kill").args([signal, &self.child.id().to_string()]).status().expect("kill runs");
        assert!(sent.success());
        let output =
            std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap()).wait_with_output().unwrap();
        (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn append_and_read(client: &Client, stream: &str) -> Vec<u64> {
    let event = kurrentdb::EventData::json("Ping", &serde_json::json!({ "n": 1 })).unwrap();
    let options = AppendToStreamOptions::default().stream_state(StreamState::NoStream);
    client.append_to_stream(stream, &options, event).await.expect("append");
    let mut read = client.read_stream(stream, &ReadStreamOptions::default()).await.unwrap();
    let mut revisions = Vec::new();
    while let Some(event) = read.next().await.unwrap() {
        revisions.push(event.get_original_event().revision);
    }
    revisions
}

#[test]
fn serve_needs_a_choice_between_tls_and_insecure() {
    let cli = Cli::new();
    let line = cli.fail(&["serve"]);
    assert!(line.contains("--insecure") && line.contains("--tls-cert"), "{line}");
    let out = cli.run(&["serve", "--tls-cert", "cert.pem"]);
    assert_eq!(out.status.code(), Some(2), "a certificate without its key is a usage error: {}", describe(&out));
    let out = cli.run(&["serve", "--insecure", "--tls-cert", "c.pem", "--tls-key", "k.pem"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let line = cli.fail(&["serve", "--tls-cert", "missing.pem", "--tls-key", "missing.key"]);
    assert!(line.contains("missing.pem"), "{line}");
}

#[cfg(unix)]
#[tokio::test]
async fn serve_answers_clients_and_stops_cleanly_on_sigterm() {
    let cli = Cli::new();
    let serving = Serving::start(&cli, &["--insecure", "--listen", "127.0.0.1:0"]);
    assert_eq!(append_and_read(&serving.client(), "cli-1").await, vec![0]);
    let (status, stderr) = serving.stop("-TERM");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("error") && !stderr.contains("panicked"), "{stderr}");
    let out = cli.json(&["info", "cli-1"]);
    assert_eq!(out["stream_version"], 1, "what the client wrote is stored: {out}");
}

#[cfg(unix)]
#[tokio::test]
async fn serve_takes_its_settings_from_the_server_section_and_stops_on_sigint() {
    let cli = Cli::new();
    let config = cli.write_file(
        "chronik.toml",
        "[server]\ninsecure = true\nlisten = \"127.0.0.1:0\"\nadvertise = \"db.example.com:2113\"\n",
    );
    let serving = Serving::start(&cli, &["--config", &config]);
    assert!(serving.address.starts_with("127.0.0.1:"), "{}", serving.address);
    assert_eq!(append_and_read(&serving.client(), "cli-2").await, vec![0]);
    let (status, stderr) = serving.stop("-INT");
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[cfg(unix)]
#[test]
fn a_failed_client_connection_is_logged_once() {
    use std::io::Write;
    let cli = Cli::new();
    let serving = Serving::start_logging(&cli, &["--insecure", "--listen", "127.0.0.1:0", "--no-http"], None);
    assert_eq!(serving.http, None);
    // An HTTP/1.1 request: without the HTTP face, not a protocol this server speaks.
    let mut stranger = std::net::TcpStream::connect(&serving.address).unwrap();
    stranger.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stranger, &mut reply);
    let (status, stderr) = serving.stop("-TERM");
    assert_eq!(status.code(), Some(0), "{stderr}");
    let lines = stderr.lines().filter(|l| l.contains("failed serving connection")).count();
    assert_eq!(lines, 1, "one line for the failed connection: {stderr}");
    assert!(stderr.contains("serving the KurrentDB protocol"), "serve says where it listens: {stderr}");
}

#[test]
fn a_busy_address_is_a_clear_error() {
    let cli = Cli::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let line = cli.fail(&["serve", "--insecure", "--listen", &address]);
    assert!(line.contains(&address), "{line}");
}

/// `GET` of `path` at `address`: the status and the body.
async fn get(address: &str, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{address}{path}")).await.expect("an answer");
    (response.status().as_u16(), response.text().await.expect("a body"))
}

#[tokio::test]
async fn serve_serves_metrics_health_and_the_admin_ui_on_the_protocol_port() {
    let cli = Cli::new();
    let serving = Serving::start(&cli, &["--insecure", "--listen", "127.0.0.1:0"]);
    assert_eq!(serving.http.as_deref(), Some(serving.address.as_str()), "one port for both");
    assert_eq!(append_and_read(&serving.client(), "cli-3").await, vec![0]);
    let (status, metrics) = get(&serving.address, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("chronik_events_appended_total{store=") && metrics.contains("} 1"), "{metrics}");
    assert!(metrics.contains("# TYPE chronik_append_duration_seconds histogram"), "buckets, not a summary: {metrics}");
    let (status, page) = get(&serving.address, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("chronik"));
    let (status, health) = get(&serving.address, "/health").await;
    assert_eq!(status, 200, "{health}");
    let (status, stderr) = serving.stop("-TERM");
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[tokio::test]
async fn serve_puts_the_http_face_on_its_own_port_or_leaves_the_ui_out() {
    let cli = Cli::new();
    let args = ["--insecure", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--no-ui", "--stall-after", "2m"];
    let serving = Serving::start(&cli, &args);
    let http = serving.http.clone().expect("an HTTP address");
    assert_ne!(http, serving.address, "a port of its own");
    assert_eq!(get(&http, "/").await.0, 404, "no UI");
    assert_eq!(get(&http, "/health").await.0, 200);
    assert_eq!(get(&http, "/metrics").await.0, 200);
    assert_eq!(append_and_read(&serving.client(), "cli-4").await, vec![0], "the protocol is where it was");
    let (status, stderr) = serving.stop("-TERM");
    assert_eq!(status.code(), Some(0), "{stderr}");
    let out = cli.run(&["serve", "--insecure", "--no-http", "--http", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2), "a usage error: {}", common::cli::describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-http"));
    let out = cli.run(&["serve", "--insecure", "--stall-after", "soon"]);
    assert_eq!(out.status.code(), Some(2), "a usage error: {}", common::cli::describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stall-after"));
}

/// A signal sent the moment `serve` says it listens stops it gracefully (exit 0, "stopping"
/// logged): the signals are listened for before that line is printed, not after.
#[cfg(unix)]
#[test]
fn a_signal_right_after_the_listening_line_stops_it_gracefully() {
    let cli = Cli::new();
    for signal in ["-TERM", "-INT", "-TERM", "-INT", "-TERM"] {
        let serving = Serving::start_logging(&cli, &["--insecure", "--listen", "127.0.0.1:0", "--no-http"], None);
        let (status, stderr) = serving.stop(signal);
        assert_eq!(status.code(), Some(0), "{signal}: {stderr}");
        assert!(stderr.contains("stopping"), "{signal}: {stderr}");
    }
}
