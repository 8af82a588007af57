//! The pgmcp launcher: `pgmcp up` runs PostgreSQL, workers and gateways on
//! this machine. [`cluster`] is also the test kit's throwaway PostgreSQL.

pub mod cluster;
