//! The pgmcp test kit: a throwaway PostgreSQL, workers and gateways on real
//! sockets (in-process or as processes), MCP clients, and an in-process
//! OTLP receiver ([`otlp::Collector`]) for trace assertions.
//!
//! Every test gets its own PostgreSQL cluster ([`Pg::start`]), so tests run
//! in parallel without sharing state; nothing is mocked.

pub mod bins;
pub mod certs;
pub mod fleet;
pub mod gateway;
pub mod jwt;
pub mod kube;
pub mod mcp;
pub mod otlp;
pub mod pg;
pub mod procs;
pub mod stack;
pub mod types_fixture;
pub mod worker;

pub use pg::Pg;
pub use stack::Stack;
