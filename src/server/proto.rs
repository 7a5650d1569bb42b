//! The KurrentDB v1 protocol as Rust types and service traits, generated at build time from
//! `proto/` (see `build.rs`). The modules mirror the protobuf packages, because the generated
//! code refers to other packages by relative paths.
// Generated code: every message of the definitions is here, also those chronik never sends.
#![allow(missing_docs, dead_code, clippy::all, clippy::pedantic)]

pub mod event_store {
    pub mod client {
        tonic::include_proto!("event_store.client");

        pub mod streams {
            tonic::include_proto!("event_store.client.streams");
        }
        pub mod persistent_subscriptions {
            tonic::include_proto!("event_store.client.persistent_subscriptions");
        }
        pub mod gossip {
            tonic::include_proto!("event_store.client.gossip");
        }
        pub mod server_features {
            tonic::include_proto!("event_store.client.server_features");
        }
    }
}

pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

pub use event_store::client::{AllStreamPosition, StreamIdentifier, Uuid as ProtoUuid};
pub use event_store::client::{gossip, persistent_subscriptions as persistent, server_features, streams};
