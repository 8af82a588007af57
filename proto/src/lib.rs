//! The wire contract between pgmcp gateways and workers.
//!
//! `pgmcp/v1/worker.proto` is the source of truth; this crate holds the code
//! generated from it plus the small helpers that are part of the contract
//! (how errors travel in a gRPC status, how SQL names are spelled, how the
//! secrets both sides share are read).

pub mod error;
pub mod secret;
pub mod sql_names;

/// Generated messages and the `Worker` service (client and server).
pub mod v1 {
    #![allow(clippy::all, missing_docs, unreachable_pub)]
    tonic::include_proto!("pgmcp.v1");
}

/// Encoded `FileDescriptorSet` of the contract, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pgmcp_v1_descriptor.bin"));
