//! The `[server]` section: how `chronik serve` listens, and whom it lets in. Plain values,
//! read by the CLI; the server itself takes [`ServerOptions`](crate::server::ServerOptions).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// How long a subscription may hold events without an ack before `/health` calls it stalled.
const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(60);

/// The address `chronik serve` listens on by default: loopback, KurrentDB's port.
const DEFAULT_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 2113);

/// The `[server]` section of the configuration file.
///
/// ```
/// use chronik::Config;
///
/// let config = Config::from_toml_str(r#"
///     [server]
///     listen = "0.0.0.0:2113"
///     advertise = "node1.example.com:2113"
///     tls_cert = "certs/node.pem"
///     tls_key = "certs/node.key"
///     users = [{ name = "admin", password = "changeit" }, { name = "ops", password = "s3cret" }]
///     http_listen = "127.0.0.1:2114"   # /metrics, /health and the admin UI on a port of their own
///     admin_ui = true
/// "#)?;
/// assert_eq!(config.server.listen.port(), 2113);
/// assert_eq!(config.server.users[1].name, "ops");
/// # Ok::<(), chronik::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where the server listens. Default `127.0.0.1:2113`.
    pub listen: SocketAddr,
    /// `host:port` that gossip gives clients for this server (needed when it listens on
    /// `0.0.0.0` or behind a proxy). Default: the address it listens on.
    pub advertise: Option<String>,
    /// Serve plain HTTP/2 without authentication. Default false: TLS is needed (`tls_cert`,
    /// `tls_key`) unless this is set, here or with `--insecure`.
    pub insecure: bool,
    /// The server's certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Who may call the server over TLS (HTTP basic authentication). Default: `admin` with
    /// password `changeit`, KurrentDB's default user; set your own for anything but a trial.
    pub users: Vec<ServerUser>,
    /// Serve the HTTP face (`/metrics`, `/health`, the admin UI). Default true.
    pub http: bool,
    /// Where the HTTP face listens. Default: the protocol's address (one port for both).
    pub http_listen: Option<SocketAddr>,
    /// Serve the admin UI (and its JSON API) in the HTTP face. Default true; false leaves
    /// `/metrics` and `/health`.
    pub admin_ui: bool,
    /// How long a running subscription may hold events (queued or in flight) without an ack
    /// before `/health` calls it stalled and the node unready. Default 60 s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub stall_after: Duration,
}

/// A user of the server.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerUser {
    /// The user name.
    pub name: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for ServerUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerUser").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.into(),
            advertise: None,
            insecure: false,
            tls_cert: None,
            tls_key: None,
            users: Vec::new(),
            http: true,
            http_listen: None,
            admin_ui: true,
            stall_after: DEFAULT_STALL_AFTER,
        }
    }
}

impl ServerConfig {
    /// The advertised address as host and port, if set.
    pub fn advertised(&self) -> Result<Option<(String, u16)>> {
        let Some(advertise) = &self.advertise else { return Ok(None) };
        let invalid = || Error::config("server.advertise", format!("`{advertise}` is not host:port"));
        let (host, port) = advertise.rsplit_once(':').ok_or_else(invalid)?;
        let port = port.parse().map_err(|_| invalid())?;
        if host.is_empty() {
            return Err(invalid());
        }
        Ok(Some((host.to_string(), port)))
    }

    /// Checks the section; the error names the key.
    pub(crate) fn validate(&self) -> Result<()> {
        self.advertised()?;
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return Err(Error::config("server.tls_key", "is missing: tls_cert needs its key")),
            (None, Some(_)) => {
                return Err(Error::config("server.tls_cert", "is missing: tls_key needs its certificate"));
            }
            (Some(_), Some(_)) if self.insecure => {
                return Err(Error::config("server.insecure", "cannot be true with tls_cert and tls_key: choose one"));
            }
            _ => {}
        }
        if !self.http && self.http_listen.is_some() {
            return Err(Error::config(
                "server.http_listen",
                "is set but server.http is false: remove one (http = false turns the HTTP face off)",
            ));
        }
        for (index, user) in self.users.iter().enumerate() {
            if user.name.is_empty() || user.name.contains(':') {
                return Err(Error::config(format!("server.users[{index}].name"), "must be non-empty and without ':'"));
            }
            if user.password.is_empty() {
                return Err(Error::config(format!("server.users[{index}].password"), "must not be empty"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn a_certificate_needs_its_key() {
        let err = Config::from_toml_str("[server]\ntls_cert = \"a.pem\"").unwrap_err().to_string();
        assert!(err.contains("server.tls_key"), "{err}");
    }

    #[test]
    fn insecure_and_tls_exclude_each_other() {
        let text = "[server]\ninsecure = true\ntls_cert = \"a.pem\"\ntls_key = \"a.key\"";
        assert!(Config::from_toml_str(text).unwrap_err().to_string().contains("server.insecure"));
    }

    #[test]
    fn advertise_is_host_and_port() {
        let err = Config::from_toml_str("[server]\nadvertise = \"nowhere\"").unwrap_err().to_string();
        assert!(err.contains("server.advertise"), "{err}");
        let config = Config::from_toml_str("[server]\nadvertise = \"db.example.com:2113\"").unwrap();
        assert_eq!(config.server.advertised().unwrap(), Some(("db.example.com".into(), 2113)));
    }

    #[test]
    fn the_http_face_is_on_by_default_and_its_keys_agree() {
        let config = Config::from_toml_str("[server]\nhttp_listen = \"127.0.0.1:2114\"\nadmin_ui = false").unwrap();
        assert!(config.server.http && !config.server.admin_ui);
        assert_eq!(config.server.http_listen, Some(([127, 0, 0, 1], 2114).into()));
        assert_eq!(config.server.stall_after, std::time::Duration::from_secs(60));
        let config = Config::from_toml_str("[server]\nstall_after = \"5m\"").unwrap();
        assert_eq!(config.server.stall_after, std::time::Duration::from_secs(300));
        let text = "[server]\nhttp = false\nhttp_listen = \"127.0.0.1:2114\"";
        let err = Config::from_toml_str(text).unwrap_err().to_string();
        assert!(err.contains("server.http_listen") && err.contains("http = false"), "{err}");
    }

    #[test]
    fn unknown_server_keys_are_named() {
        let err = Config::from_toml_str("[server]\nlisten_on = \"1.2.3.4:5\"").unwrap_err().to_string();
        assert!(err.contains("server.listen_on") && err.contains("listen"), "{err}");
    }
}
