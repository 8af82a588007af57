//! Compiles `pgmcp/v1/*.proto` with protox (pure Rust, no system `protoc`) and
//! writes both the generated code and the encoded descriptor set used by
//! gRPC server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(["pgmcp/v1/worker.proto"], ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("pgmcp_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=pgmcp");
    Ok(())
}
