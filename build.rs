//! Compiles the KurrentDB protocol definitions in `proto/` into Rust with protox, a protobuf
//! compiler written in Rust, so a build needs no system `protoc`. The servers are chronik's;
//! the clients serve its own benchmarks and protocol-level tests.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("CARGO_FEATURE_SERVER").is_none() {
        return Ok(());
    }
    let files = ["proto/streams.proto", "proto/persistent.proto", "proto/gossip.proto", "proto/serverfeatures.proto"];
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The protocol's `Empty` carries nothing: Rust's `()` (as for google.protobuf.Empty).
        .extern_path(".event_store.client.Empty", "()")
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
