//! `ServerFeatures.GetSupportedMethods`: what this server implements. Clients ask when they
//! connect and use optional calls (batch appends, persistent subscriptions to `$all`, ...) only
//! when they are listed, so the list must hold exactly what the services here serve.

use tonic::{Request, Response, Status};

use super::proto::server_features::{SupportedMethod, SupportedMethods, server_features_server};

/// The KurrentDB server version whose protocol chronik speaks, reported to clients (they gate
/// features on it); chronik's own version is `chronik --version`.
pub(crate) const PROTOCOL_VERSION: &str = "24.10.0";

/// Each service's methods, as (service, method, features).
const METHODS: &[(&str, &str, &[&str])] = &[
    ("event_store.client.streams.streams", "read", &["position", "events", "filters"]),
    ("event_store.client.streams.streams", "append", &[]),
    ("event_store.client.streams.streams", "batchappend", &[]),
    ("event_store.client.streams.streams", "delete", &[]),
    ("event_store.client.streams.streams", "tombstone", &[]),
    ("event_store.client.persistent_subscriptions.persistentsubscriptions", "create", &["stream", "all"]),
    ("event_store.client.persistent_subscriptions.persistentsubscriptions", "update", &["stream", "all"]),
    ("event_store.client.persistent_subscriptions.persistentsubscriptions", "delete", &["stream", "all"]),
    ("event_store.client.persistent_subscriptions.persistentsubscriptions", "read", &["stream", "all"]),
    ("event_store.client.persistent_subscriptions.persistentsubscriptions", "getinfo", &["stream", "all"]),
    ("event_store.client.persistent_subscriptions.persistentsubscriptions", "replayparked", &["stream", "all"]),
    ("event_store.client.persistent_subscriptions.persistentsubscriptions", "list", &["stream", "all"]),
    ("event_store.client.persistent_subscriptions.persistentsubscriptions", "restartsubsystem", &[]),
    ("event_store.client.gossip.gossip", "read", &[]),
    ("event_store.client.server_features.serverfeatures", "getsupportedmethods", &[]),
];

/// The `ServerFeatures` service.
pub(crate) struct FeaturesService;

#[tonic::async_trait]
impl server_features_server::ServerFeatures for FeaturesService {
    async fn get_supported_methods(&self, _request: Request<()>) -> Result<Response<SupportedMethods>, Status> {
        let methods = METHODS
            .iter()
            .map(|(service, method, features)| SupportedMethod {
                method_name: (*method).to_string(),
                service_name: (*service).to_string(),
                features: features.iter().map(|f| (*f).to_string()).collect(),
            })
            .collect();
        Ok(Response::new(SupportedMethods { methods, event_store_server_version: PROTOCOL_VERSION.to_string() }))
    }
}
