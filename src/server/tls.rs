//! TLS on the server's port: rustls with the process's crypto (aws-lc-rs unless the application
//! chose), handshakes run side by side, each within a time limit.
//!
//! chronik runs its own acceptor rather than tonic's because tonic's offers only `h2` by ALPN:
//! a client that speaks only HTTP/1.1 (Python's `requests`, Kubernetes' HTTPS probes,
//! `curl --http1.1`) could not reach `/health`, `/metrics` or the admin UI over TLS. When the
//! HTTP face shares the port, this acceptor offers `h2` and `http/1.1`; gRPC clients ask for
//! `h2` and get it.

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use super::connections::{self, Counted};
use crate::{Error, Result};

/// How long a client has to finish its TLS handshake before its connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections whose handshake has finished, waiting for the server to take them.
const READY_CONNECTIONS: usize = 64;

/// A certificate chain and private key, as PEM.
#[derive(Clone)]
pub(super) struct TlsIdentity {
    certificate_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl TlsIdentity {
    pub(super) fn from_pem(certificate_pem: &[u8], key_pem: &[u8]) -> TlsIdentity {
        TlsIdentity { certificate_pem: certificate_pem.to_vec(), key_pem: key_pem.to_vec() }
    }

    /// The acceptor for this identity; `http1` offers HTTP/1.1 beside HTTP/2 by ALPN.
    ///
    /// Errors: [`Error::InvalidArgument`] naming what cannot be read or used.
    pub(super) fn acceptor(&self, http1: bool) -> Result<TlsAcceptor> {
        let unusable = |what: &str, e: &dyn std::fmt::Display| {
            Error::InvalidArgument(format!("the TLS certificate or key cannot be used: {what}: {e}"))
        };
        let chain = CertificateDer::pem_slice_iter(&self.certificate_pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| unusable("the certificate PEM", &e))?;
        if chain.is_empty() {
            return Err(unusable("the certificate PEM", &"it holds no certificate"));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| unusable("the private key PEM", &e))?;
        // rustls takes its crypto from the process; a process that links two choices (ring and
        // aws-lc-rs, through other libraries) has none until one is installed. Install
        // aws-lc-rs, the one chronik builds with, unless the application chose.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| unusable("the certificate and key together", &e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        if http1 {
            config.alpn_protocols.push(b"http/1.1".to_vec());
        }
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// The connections `listener` accepts, once their handshake is done, counted in `clients`.
///
/// A task accepts and starts one handshake task per connection, so a client that stalls in its
/// handshake holds up no one. The task ends when the returned stream is dropped (the server
/// stopped), which closes the listener.
pub(super) fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    clients: Arc<AtomicU64>,
) -> ReceiverStream<io::Result<TlsStream<Counted>>> {
    let (ready, taken) = mpsc::channel(READY_CONNECTIONS);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = ready.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let Some(stream) = connections::accepted(accepted.map(|(stream, _)| stream), &clients) else {
                // Out of file descriptors, say: give the others time to close some.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let (acceptor, ready) = (acceptor.clone(), ready.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        // Refused only once the server has stopped: the connection closes.
                        let _ = ready.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%error, "a TLS handshake failed"),
                    Err(_) => tracing::debug!(timeout = ?HANDSHAKE_TIMEOUT, "a TLS handshake took too long"),
                }
            });
        }
    });
    ReceiverStream::new(taken)
}
