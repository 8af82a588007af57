//! The DBA operations behind the gateway's `dba` toolset: read-only health
//! checks ([`health`]), pg_stat_statements ([`top_queries`]), and ANALYZE /
//! VACUUM of one table ([`maintenance`]).

pub mod health;
pub mod maintenance;
pub mod top_queries;

use std::time::Duration;

use crate::config::Limits;

/// The statement timeout of a DBA call: what it asked for (or the default),
/// capped by the worker's maximum and the remaining gRPC deadline.
pub fn timeout_ms(asked: u32, limits: &Limits, deadline: Option<Duration>) -> u32 {
    let mut t = if asked == 0 {
        limits.default_timeout_ms
    } else {
        asked.min(limits.max_timeout_ms)
    };
    if let Some(d) = deadline {
        t = t.min(u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1));
    }
    t
}
