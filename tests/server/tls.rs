//! `chronik serve` over TLS: a KurrentDB client that trusts the server's certificate and gives
//! a known user's credentials gets in; wrong or missing credentials are refused as KurrentDB
//! refuses them (the client's `AccessDenied`), and a client without TLS cannot talk to it.

use std::time::Duration;

use chronik::server::{Server, ServerOptions};
use kurrentdb::{AppendToStreamOptions, Client, Error, ReadStreamOptions};

use crate::common::TestStore;
use crate::served::{all_of, json_event, ns};

/// A self-signed certificate for 127.0.0.1, written where the client can read it.
struct Certificate {
    dir: std::path::PathBuf,
    cert_pem: String,
    key_pem: String,
}

impl Certificate {
    fn new() -> Certificate {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("a certificate");
        let dir = std::env::temp_dir().join(format!("chronik-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        Certificate { dir, cert_pem: cert.pem(), key_pem: signing_key.serialize_pem() }
    }

    fn client(&self, server: &Server, credentials: &str) -> Client {
        let url = format!(
            "kurrentdb://{credentials}{}?tls=true&tlsCaFile={}",
            server.local_addr(),
            self.dir.join("ca.pem").display()
        );
        Client::new(url.parse().expect("a valid connection string")).expect("a client")
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn tls_server(store: &TestStore, certificate: &Certificate, users: &[(&str, &str)]) -> Server {
    let mut options = ServerOptions::tls(([127, 0, 0, 1], 0).into(), &certificate.cert_pem, &certificate.key_pem);
    for (name, password) in users {
        options = options.user(*name, *password);
    }
    Server::start(store.store.clone(), options).await.expect("the TLS server starts")
}

async fn append(client: &Client, n: u64) -> kurrentdb::Result<kurrentdb::WriteResult> {
    let options = AppendToStreamOptions::default();
    let appending = client.append_to_stream("secure-1", &options, json_event("E", n));
    tokio::time::timeout(Duration::from_secs(20), appending).await.expect("answered in time")
}

#[tokio::test]
async fn the_default_user_gets_in_over_tls_and_others_are_refused() {
    let store = TestStore::start().await;
    let certificate = Certificate::new();
    let server = tls_server(&store, &certificate, &[]).await;

    let admin = certificate.client(&server, "admin:changeit@");
    append(&admin, 1).await.expect("admin/changeit is the default user");
    let read = all_of(admin.read_stream("secure-1", &ReadStreamOptions::default()).await.unwrap()).await;
    assert_eq!(ns(&read), vec![1]);

    let wrong = certificate.client(&server, "admin:wrong@");
    assert!(matches!(append(&wrong, 2).await, Err(Error::AccessDenied)));
    let anonymous = certificate.client(&server, "");
    assert!(matches!(append(&anonymous, 3).await, Err(Error::AccessDenied)));
    assert_eq!(store.stream_info("secure-1").await.unwrap().stream_version, 1, "refused calls wrote nothing");
}

#[tokio::test]
async fn configured_users_replace_the_default_one() {
    let store = TestStore::start().await;
    let certificate = Certificate::new();
    let server = tls_server(&store, &certificate, &[("ops", "s3cret")]).await;

    append(&certificate.client(&server, "ops:s3cret@"), 1).await.expect("a configured user gets in");
    let admin = certificate.client(&server, "admin:changeit@");
    assert!(matches!(append(&admin, 2).await, Err(Error::AccessDenied)), "the default user is gone");
}

#[tokio::test]
async fn a_client_without_tls_cannot_talk_to_a_tls_server() {
    let store = TestStore::start().await;
    let certificate = Certificate::new();
    let server = tls_server(&store, &certificate, &[]).await;
    let url = format!("kurrentdb://admin:changeit@{}?tls=false&maxDiscoverAttempts=2", server.local_addr());
    let plain = Client::new(url.parse().unwrap()).unwrap();
    assert!(append(&plain, 1).await.is_err());
    assert!(store.stream_info("secure-1").await.is_err(), "nothing was written");
}

/// The admin UI beside the protocol over TLS asks for the protocol's users (HTTP basic, so a
/// browser prompts); `/health` answers anyone; gRPC calls go on working on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_ui_asks_for_the_servers_users() {
    use chronik::server::http::HttpOptions;
    let store = TestStore::start().await;
    let certificate = Certificate::new();
    let options = ServerOptions::tls(([127, 0, 0, 1], 0).into(), &certificate.cert_pem, &certificate.key_pem)
        .user("ops", "s3cret")
        .http(HttpOptions::new());
    let server = Server::start(store.store.clone(), options).await.expect("the TLS server starts");
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(certificate.cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = |path: &str| format!("https://{}{path}", server.local_addr());

    let anonymous = https.get(url("/")).send().await.expect("an answer over TLS");
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Basic realm=\"chronik\"", "a browser asks for a user");
    let wrong = https.get(url("/api/overview")).basic_auth("ops", Some("guess")).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let page = https.get(url("/")).basic_auth("ops", Some("s3cret")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("app.js"));
    let overview = https.get(url("/api/overview")).basic_auth("ops", Some("s3cret")).send().await.unwrap();
    assert_eq!(overview.status().as_u16(), 200);
    let health = https.get(url("/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200, "load balancers need no user");

    let client = certificate.client(&server, "ops:s3cret@");
    append(&client, 1).await.expect("gRPC on the same port");
    let stats = https.get(url("/api/overview")).basic_auth("ops", Some("s3cret")).send().await.unwrap();
    let stats: serde_json::Value = stats.json().await.unwrap();
    assert_eq!(stats["events_appended"], 1, "{stats}");
    server.shutdown().await.expect("stops");
}

/// A client that speaks only HTTP/1.1 over TLS (Python's `requests`, Kubernetes' probes) reaches
/// the HTTP face: the server offers `http/1.1` beside `h2` by ALPN when the face shares the
/// port, and only `h2` when it does not. gRPC clients still get HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_1_clients_reach_the_http_face_over_tls() {
    use chronik::server::http::HttpOptions;
    let store = TestStore::start().await;
    let certificate = Certificate::new();
    let trusting = |builder: reqwest::ClientBuilder| {
        builder
            .add_root_certificate(reqwest::Certificate::from_pem(certificate.cert_pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    };
    let http1 = trusting(reqwest::Client::builder().http1_only());
    let either = trusting(reqwest::Client::builder());
    let options = ServerOptions::tls(([127, 0, 0, 1], 0).into(), &certificate.cert_pem, &certificate.key_pem)
        .user("ops", "s3cret");
    let with_face = Server::start(store.store.clone(), options.clone().http(HttpOptions::new())).await.unwrap();
    let url = |server: &Server, path: &str| format!("https://{}{path}", server.local_addr());

    let health = http1.get(url(&with_face, "/health")).send().await.expect("an HTTP/1.1 answer over TLS");
    assert_eq!((health.status().as_u16(), health.version()), (200, reqwest::Version::HTTP_11));
    let page = http1.get(url(&with_face, "/api/overview")).basic_auth("ops", Some("s3cret")).send().await.unwrap();
    assert_eq!((page.status().as_u16(), page.version()), (200, reqwest::Version::HTTP_11));
    let live = either.get(url(&with_face, "/health/live")).send().await.unwrap();
    assert_eq!((live.status().as_u16(), live.version()), (200, reqwest::Version::HTTP_2), "h2 comes first");
    append(&certificate.client(&with_face, "ops:s3cret@"), 1).await.expect("gRPC on the same port");

    let without_face = Server::start(store.store.clone(), options).await.unwrap();
    let refused = http1.get(url(&without_face, "/health")).send().await;
    assert!(refused.is_err(), "without the HTTP face only h2 is offered: {refused:?}");
    append(&certificate.client(&without_face, "ops:s3cret@"), 2).await.expect("gRPC without the HTTP face");
    with_face.shutdown().await.expect("stops");
    without_face.shutdown().await.expect("stops");
}

/// Clients that connect and never start their TLS handshake hold up nobody: each handshake runs
/// on its own (and is given up after a time limit), so others are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_holds_up_no_one() {
    let store = TestStore::start().await;
    let certificate = Certificate::new();
    let server = tls_server(&store, &certificate, &[]).await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(tokio::net::TcpStream::connect(server.local_addr()).await.expect("a TCP connection"));
    }
    append(&certificate.client(&server, "admin:changeit@"), 1).await.expect("served beside the silent connections");
    drop(silent);
    server.shutdown().await.expect("stops");
}

/// A certificate or key that cannot be used stops the server from starting, naming which.
#[tokio::test]
async fn an_unusable_certificate_or_key_is_named() {
    let store = TestStore::start().await;
    let certificate = Certificate::new();
    let other = Certificate::new();
    let at = || std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let cases = [
        (ServerOptions::tls(at(), "not a certificate", &certificate.key_pem), "holds no certificate"),
        (ServerOptions::tls(at(), &certificate.cert_pem, "not a key"), "the private key PEM"),
        (ServerOptions::tls(at(), &certificate.cert_pem, &other.key_pem), "together"),
    ];
    for (options, named) in cases {
        match Server::start(store.store.clone(), options).await {
            Err(chronik::Error::InvalidArgument(message)) => {
                assert!(message.contains("TLS certificate or key") && message.contains(named), "{message}")
            }
            other => panic!("expected InvalidArgument naming {named:?}, got {other:?}"),
        }
    }
}
