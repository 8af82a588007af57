//! `DatabaseHealth`: a fixed list of checks, each one catalog/statistics
//! query returning a JSON document, judged here against fixed thresholds.
//!
//! Everything runs in one `BEGIN READ ONLY … ROLLBACK` transaction on a
//! pooled connection; each check runs under a savepoint so that one failing
//! (for lack of a privilege, say) is reported as `unknown` without spoiling
//! the others. The thresholds are documented in docs/tools.md.
//!
//! No check opens a user table or index: sizes come from `pg_class.relpages`
//! (as of the last VACUUM, ANALYZE or CREATE INDEX), so a check never waits
//! behind a lock; `lock_timeout` guards the few catalog locks taken.

use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{DatabaseHealthResponse, HealthCheck, HealthStatus};
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::error::WorkerError;
use crate::session::{Access, Session};
use crate::targets::Target;

/// One check: its name and the query producing its JSON document (one row,
/// one text column).
struct Check {
    name: &'static str,
    sql: &'static str,
    judge: fn(&Value) -> Judgement,
}

/// What a check concluded.
struct Judgement {
    status: HealthStatus,
    summary: String,
}

fn judged(status: HealthStatus, summary: impl Into<String>) -> Judgement {
    Judgement {
        status,
        summary: summary.into(),
    }
}

/// Runs every check against `target`.
pub async fn run(target: &Target, timeout_ms: u32) -> Result<DatabaseHealthResponse, WorkerError> {
    let mut session = Session::begin(target, Access::ReadOnly, timeout_ms).await?;
    if let Err(e) = sqlx::raw_sql("SET LOCAL lock_timeout = 2000")
        .execute(session.conn())
        .await
    {
        let err = WorkerError::from(e);
        session.end_after(target, Some(&err)).await;
        return Err(err);
    }
    let mut checks = Vec::with_capacity(CHECKS.len());
    for check in CHECKS {
        match run_check(session.conn(), check).await {
            Ok(c) => checks.push(c),
            Err(err) if err.kind() == ErrorKind::Connection => {
                session.lost();
                return Err(err);
            }
            Err(err) => checks.push(HealthCheck {
                name: check.name.to_string(),
                status: HealthStatus::Unknown as i32,
                summary: format!("could not run this check: {}", err.0.message),
                details_json: json!({ "sqlstate": err.0.sqlstate }).to_string(),
            }),
        }
    }
    session.rollback(target).await;
    let status = checks
        .iter()
        .map(|c| c.status())
        .max_by_key(|s| severity(*s))
        .unwrap_or(HealthStatus::Ok);
    Ok(DatabaseHealthResponse {
        database: target.name.clone(),
        status: status as i32,
        checks,
    })
}

/// Order of badness: ok < unknown < warning < critical.
fn severity(s: HealthStatus) -> u8 {
    match s {
        HealthStatus::Ok | HealthStatus::Unspecified => 0,
        HealthStatus::Unknown => 1,
        HealthStatus::Warning => 2,
        HealthStatus::Critical => 3,
    }
}

async fn run_check(conn: &mut PgConnection, check: &Check) -> Result<HealthCheck, WorkerError> {
    sqlx::raw_sql("SAVEPOINT pgmcp_check")
        .execute(&mut *conn)
        .await?;
    let doc = sqlx::query_scalar::<_, Option<String>>(check.sql)
        .fetch_one(&mut *conn)
        .await;
    let doc = match doc {
        Ok(d) => {
            sqlx::raw_sql("RELEASE SAVEPOINT pgmcp_check")
                .execute(&mut *conn)
                .await?;
            d
        }
        Err(e) => {
            let err = WorkerError::from(e);
            if err.kind() != ErrorKind::Connection {
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT pgmcp_check")
                    .execute(&mut *conn)
                    .await?;
            }
            return Err(err);
        }
    };
    let value: Value = doc
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| {
            WorkerError::new(
                ErrorKind::Internal,
                format!("check {} returned malformed JSON: {e}", check.name),
            )
        })?
        .unwrap_or(Value::Null);
    let j = (check.judge)(&value);
    Ok(HealthCheck {
        name: check.name.to_string(),
        status: j.status as i32,
        summary: j.summary,
        details_json: value.to_string(),
    })
}

const CHECKS: &[Check] = &[
    Check {
        name: "cache_hit_ratio",
        sql: "SELECT json_build_object('blocks_hit', blks_hit, 'blocks_read', blks_read, \
                     'stats_reset', stats_reset)::text \
              FROM pg_stat_database WHERE datname = current_database()",
        judge: judge_cache_hit_ratio,
    },
    Check {
        name: "connections",
        sql: "SELECT json_build_object( \
                'max_connections', current_setting('max_connections')::int, \
                'superuser_reserved_connections', current_setting('superuser_reserved_connections')::int, \
                'total', count(*), \
                'this_database', count(*) FILTER (WHERE datname = current_database()), \
                'by_state', coalesce((SELECT json_object_agg(s, n) FROM ( \
                    SELECT coalesce(state, 'hidden') AS s, count(*) AS n FROM pg_stat_activity \
                    WHERE backend_type = 'client backend' GROUP BY 1) x), '{}'::json))::text \
              FROM pg_stat_activity WHERE backend_type = 'client backend'",
        judge: judge_connections,
    },
    Check {
        name: "long_running_queries",
        sql: "SELECT coalesce(json_agg(x ORDER BY x.seconds DESC), '[]'::json)::text FROM ( \
                SELECT pid, usename AS role, datname AS database, application_name, state, \
                       round(extract(epoch FROM clock_timestamp() - \
                           CASE WHEN state = 'active' THEN query_start ELSE state_change END)::numeric, 1) AS seconds, \
                       round(extract(epoch FROM clock_timestamp() - xact_start)::numeric, 1) AS transaction_seconds, \
                       wait_event_type, wait_event, left(query, 200) AS query \
                FROM pg_stat_activity \
                WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
                  AND ((state = 'active' AND query_start < clock_timestamp() - interval '1 minute') \
                    OR (state LIKE 'idle in transaction%' AND state_change < clock_timestamp() - interval '1 minute')) \
                ORDER BY 6 DESC LIMIT 20) x",
        judge: judge_long_running,
    },
    Check {
        name: "blocking_locks",
        sql: "SELECT coalesce(json_agg(x ORDER BY x.seconds DESC), '[]'::json)::text FROM ( \
                SELECT a.pid, a.usename AS role, a.datname AS database, a.wait_event_type, a.wait_event, \
                       round(greatest(extract(epoch FROM clock_timestamp() - a.query_start), 0)::numeric, 1) AS seconds, \
                       left(a.query, 200) AS query, \
                       (SELECT json_agg(json_build_object('pid', b.pid, 'role', b.usename, 'state', b.state, \
                               'transaction_seconds', round(extract(epoch FROM clock_timestamp() - b.xact_start)::numeric, 1), \
                               'query', left(b.query, 200))) \
                        FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(a.pid))) AS blocked_by \
                FROM pg_stat_activity a \
                WHERE a.pid <> pg_backend_pid() AND cardinality(pg_blocking_pids(a.pid)) > 0 \
                LIMIT 20) x",
        judge: judge_blocking,
    },
    Check {
        name: "invalid_indexes",
        sql: "SELECT coalesce(json_agg(x ORDER BY x.index), '[]'::json)::text FROM ( \
                SELECT i.indexrelid::regclass::text AS index, i.indrelid::regclass::text AS table, \
                       c.relpages::bigint * current_setting('block_size')::bigint AS bytes, pg_get_indexdef(i.indexrelid) AS definition \
                FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                JOIN pg_namespace n ON n.oid = c.relnamespace \
                WHERE NOT i.indisvalid \
                  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%') x",
        judge: judge_invalid_indexes,
    },
    Check {
        name: "unused_indexes",
        sql: "SELECT json_build_object( \
                'stats_reset', (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()), \
                'indexes', coalesce(json_agg(x ORDER BY x.bytes DESC, x.index), '[]'::json))::text FROM ( \
                SELECT s.indexrelid::regclass::text AS index, s.relid::regclass::text AS table, \
                       c.relpages::bigint * current_setting('block_size')::bigint AS bytes, s.idx_scan AS scans \
                FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid \
                JOIN pg_class c ON c.oid = s.indexrelid \
                WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid \
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)) x",
        judge: judge_unused_indexes,
    },
    Check {
        name: "duplicate_indexes",
        sql: "WITH idx AS ( \
                SELECT i.indexrelid, i.indrelid, c.relam, c.relpages, i.indnkeyatts AS nkeys, \
                       (string_to_array(i.indkey::text, ' ')::int[])[1:i.indnkeyatts] AS keys, \
                       string_to_array(i.indclass::text, ' ')::oid[] AS classes, \
                       i.indcollation::text AS collations, \
                       coalesce(pg_get_expr(i.indexprs, i.indrelid), '') AS exprs, \
                       coalesce(pg_get_expr(i.indpred, i.indrelid), '') AS pred, \
                       CASE WHEN i.indisprimary THEN 2 WHEN i.indisunique THEN 1 ELSE 0 END AS rank \
                FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                JOIN pg_namespace n ON n.oid = c.relnamespace \
                WHERE i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                  AND n.nspname NOT LIKE 'pg\\_toast%') \
              SELECT coalesce(json_agg(x ORDER BY x.table, x.index), '[]'::json)::text FROM ( \
                SELECT DISTINCT ON (a.indexrelid) \
                       a.indrelid::regclass::text AS table, a.indexrelid::regclass::text AS index, \
                       b.indexrelid::regclass::text AS covered_by, \
                       CASE WHEN a.keys = b.keys THEN 'identical' ELSE 'prefix' END AS kind, \
                       a.relpages::bigint * current_setting('block_size')::bigint AS bytes, pg_get_indexdef(a.indexrelid) AS definition \
                FROM idx a JOIN idx b ON a.indrelid = b.indrelid AND a.indexrelid <> b.indexrelid \
                     AND a.relam = b.relam AND a.pred = b.pred AND a.exprs = b.exprs \
                WHERE (a.keys = b.keys AND a.classes = b.classes AND a.collations = b.collations \
                       AND (a.rank < b.rank OR (a.rank = b.rank AND a.indexrelid > b.indexrelid))) \
                   OR (a.rank = 0 AND a.exprs = '' AND a.nkeys < b.nkeys \
                       AND a.relam = (SELECT oid FROM pg_am WHERE amname = 'btree') \
                       AND b.keys[1:a.nkeys] = a.keys AND b.classes[1:a.nkeys] = a.classes) \
                ORDER BY a.indexrelid, b.rank DESC, b.indexrelid) x",
        judge: judge_duplicate_indexes,
    },
    Check {
        name: "table_bloat",
        sql: "WITH t AS ( \
                SELECT c.oid, c.relpages::bigint AS pages, c.reltuples, current_setting('block_size')::int AS bs, \
                       coalesce((SELECT substring(o FROM 'fillfactor=([0-9]+)')::int \
                                 FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%'), 100) AS ff, \
                       (SELECT sum((1 - s.null_frac) * s.avg_width) FROM pg_stats s \
                        WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND NOT s.inherited) AS width, \
                       (SELECT count(*) FROM pg_stats s \
                        WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND NOT s.inherited) AS stat_cols, \
                       (SELECT count(*) FROM pg_attribute a \
                        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS cols \
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                WHERE c.relkind IN ('r', 'm') AND c.relpages >= 128 \
                  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'), \
              e AS ( \
                SELECT oid, pages, bs, \
                       ceil(reltuples * (24 + 4 + ceil(width / 8) * 8) / ((bs - 24) * ff / 100.0))::bigint AS expected_pages \
                FROM t WHERE reltuples >= 0 AND width IS NOT NULL AND stat_cols = cols) \
              SELECT json_build_object( \
                'tables_considered', (SELECT count(*) FROM t), \
                'tables_without_statistics', (SELECT count(*) FROM t) - (SELECT count(*) FROM e), \
                'tables', coalesce(json_agg(x ORDER BY x.wasted_bytes DESC), '[]'::json))::text FROM ( \
                SELECT oid::regclass::text AS table, pages * bs AS table_bytes, \
                       greatest(pages - expected_pages, 0) * bs AS wasted_bytes, \
                       round(greatest(pages - expected_pages, 0)::numeric / pages, 3) AS bloat_ratio \
                FROM e WHERE pages > expected_pages \
                ORDER BY (pages - expected_pages) DESC LIMIT 20) x",
        judge: judge_bloat,
    },
    Check {
        name: "vacuum_staleness",
        sql: "SELECT json_build_object( \
                'autovacuum', current_setting('autovacuum'), \
                'tables', coalesce(json_agg(x ORDER BY x.dead_tuples DESC), '[]'::json))::text FROM ( \
                SELECT s.relid::regclass::text AS table, s.n_live_tup AS live_tuples, s.n_dead_tup AS dead_tuples, \
                       (current_setting('autovacuum_vacuum_threshold')::float8 \
                        + current_setting('autovacuum_vacuum_scale_factor')::float8 * s.n_live_tup)::bigint AS autovacuum_threshold, \
                       greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum \
                FROM pg_stat_user_tables s \
                WHERE s.n_dead_tup > 2 * (current_setting('autovacuum_vacuum_threshold')::float8 \
                        + current_setting('autovacuum_vacuum_scale_factor')::float8 * s.n_live_tup) \
                ORDER BY s.n_dead_tup DESC LIMIT 20) x",
        judge: judge_vacuum,
    },
    Check {
        name: "analyze_staleness",
        sql: "SELECT json_build_object( \
                'autovacuum', current_setting('autovacuum'), \
                'tables', coalesce(json_agg(x ORDER BY x.modified_since_analyze DESC), '[]'::json))::text FROM ( \
                SELECT s.relid::regclass::text AS table, s.n_live_tup AS live_tuples, \
                       s.n_mod_since_analyze AS modified_since_analyze, \
                       (current_setting('autovacuum_analyze_threshold')::float8 \
                        + current_setting('autovacuum_analyze_scale_factor')::float8 * s.n_live_tup)::bigint AS autoanalyze_threshold, \
                       greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze \
                FROM pg_stat_user_tables s \
                WHERE s.n_mod_since_analyze > 2 * (current_setting('autovacuum_analyze_threshold')::float8 \
                        + current_setting('autovacuum_analyze_scale_factor')::float8 * s.n_live_tup) \
                ORDER BY s.n_mod_since_analyze DESC LIMIT 20) x",
        judge: judge_analyze,
    },
    Check {
        name: "transaction_id_wraparound",
        sql: "SELECT json_build_object( \
                'autovacuum_freeze_max_age', current_setting('autovacuum_freeze_max_age')::bigint, \
                'wraparound_limit', 2147483648, \
                'databases', (SELECT json_agg(d ORDER BY d.xid_age DESC) FROM ( \
                    SELECT datname AS database, age(datfrozenxid) AS xid_age, mxid_age(datminmxid) AS multixact_age \
                    FROM pg_database) d), \
                'oldest_tables', (SELECT coalesce(json_agg(t), '[]'::json) FROM ( \
                    SELECT c.oid::regclass::text AS table, age(c.relfrozenxid) AS xid_age \
                    FROM pg_class c WHERE c.relkind IN ('r', 'm', 't') AND c.relfrozenxid <> '0'::xid \
                    ORDER BY age(c.relfrozenxid) DESC LIMIT 5) t))::text",
        judge: judge_wraparound,
    },
    Check {
        name: "sequences",
        sql: "SELECT coalesce(json_agg(x ORDER BY x.used_ratio DESC), '[]'::json)::text FROM ( \
                SELECT format('%I.%I', s.schemaname, s.sequencename) AS sequence, s.data_type::text AS data_type, \
                       s.last_value, s.increment_by, col.column_name AS column, col.column_type, \
                       CASE WHEN s.increment_by > 0 \
                            THEN least(s.max_value, coalesce(col.column_max, s.max_value)) \
                            ELSE greatest(s.min_value, coalesce(-col.column_max - 1, s.min_value)) END AS limit_value, \
                       round(CASE WHEN s.increment_by > 0 \
                            THEN (s.last_value::numeric - s.min_value) \
                                 / nullif(least(s.max_value, coalesce(col.column_max, s.max_value))::numeric - s.min_value, 0) \
                            ELSE (s.max_value::numeric - s.last_value) \
                                 / nullif(s.max_value::numeric - greatest(s.min_value, coalesce(-col.column_max - 1, s.min_value)), 0) \
                            END, 4) AS used_ratio \
                FROM pg_sequences s \
                JOIN pg_namespace n ON n.nspname = s.schemaname \
                JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename \
                LEFT JOIN LATERAL ( \
                    SELECT format('%s.%I', d.refobjid::regclass, a.attname) AS column_name, \
                           format_type(a.atttypid, a.atttypmod) AS column_type, \
                           CASE a.atttypid WHEN 'int2'::regtype THEN 32767::bigint \
                                           WHEN 'int4'::regtype THEN 2147483647::bigint END AS column_max \
                    FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                      AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i') \
                    LIMIT 1) col ON true \
                WHERE s.last_value IS NOT NULL AND NOT s.cycle \
                ORDER BY used_ratio DESC NULLS LAST LIMIT 10) x",
        judge: judge_sequences,
    },
];

// ---------------------------------------------------------------------------
// Judgements. Thresholds here are documented in docs/tools.md.

fn num(v: &Value, key: &str) -> f64 {
    match v.get(key) {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn names(items: &[Value], key: &str, max: usize) -> String {
    let mut out: Vec<String> = items
        .iter()
        .take(max)
        .filter_map(|i| i.get(key).and_then(Value::as_str).map(str::to_string))
        .collect();
    if items.len() > max {
        out.push(format!("and {} more", items.len() - max));
    }
    out.join(", ")
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

fn since_reset(v: &Value) -> String {
    match v.get("stats_reset").and_then(Value::as_str) {
        Some(t) => format!("since statistics were reset at {t}"),
        None => "since statistics collection began".into(),
    }
}

/// Below 99 % warning, below 90 % critical; ignored under 10 000 block reads.
fn judge_cache_hit_ratio(v: &Value) -> Judgement {
    let hit = num(v, "blocks_hit");
    let read = num(v, "blocks_read");
    let total = hit + read;
    if total < 10_000.0 {
        return judged(
            HealthStatus::Ok,
            format!(
                "too little activity to judge ({total:.0} block requests {})",
                since_reset(v)
            ),
        );
    }
    let ratio = hit / total;
    let status = if ratio < 0.90 {
        HealthStatus::Critical
    } else if ratio < 0.99 {
        HealthStatus::Warning
    } else {
        HealthStatus::Ok
    };
    let advice = if status == HealthStatus::Ok {
        ""
    } else {
        "; the working set does not fit in shared_buffers: look at top_queries for large scans, add indexes, or raise shared_buffers"
    };
    judged(
        status,
        format!(
            "{:.2}% of block requests served from shared buffers ({} {}){advice}",
            ratio * 100.0,
            total as u64,
            since_reset(v)
        ),
    )
}

/// Client backends vs (max_connections − superuser_reserved_connections):
/// 75 % warning, 90 % critical.
fn judge_connections(v: &Value) -> Judgement {
    let max = num(v, "max_connections");
    let reserved = num(v, "superuser_reserved_connections");
    let usable = (max - reserved).max(1.0);
    let total = num(v, "total");
    let ratio = total / usable;
    let idle_tx = v
        .get("by_state")
        .map(|s| num(s, "idle in transaction") + num(s, "idle in transaction (aborted)"))
        .unwrap_or(0.0);
    let status = if ratio >= 0.90 {
        HealthStatus::Critical
    } else if ratio >= 0.75 {
        HealthStatus::Warning
    } else {
        HealthStatus::Ok
    };
    let mut s = format!(
        "{total:.0} of {usable:.0} usable connections in use ({:.0}%; max_connections {max:.0}, {reserved:.0} reserved for superusers)",
        ratio * 100.0
    );
    if idle_tx > 0.0 {
        s.push_str(&format!("; {idle_tx:.0} idle in transaction"));
    }
    if status != HealthStatus::Ok {
        s.push_str("; close idle clients or put a connection pooler in front");
    }
    judged(status, s)
}

/// Any statement active, or transaction idle, for over a minute: warning;
/// over an hour: critical.
fn judge_long_running(v: &Value) -> Judgement {
    let items = list(v);
    if items.is_empty() {
        return judged(
            HealthStatus::Ok,
            "no statement running and no transaction idle for over a minute",
        );
    }
    let longest = items.iter().map(|i| num(i, "seconds")).fold(0.0, f64::max);
    let status = if longest >= 3600.0 {
        HealthStatus::Critical
    } else {
        HealthStatus::Warning
    };
    judged(
        status,
        format!(
            "{} session(s) running or idle in transaction for over a minute, the longest {longest:.0} s; \
             long transactions hold locks and keep VACUUM from removing dead rows (pg_cancel_backend / pg_terminate_backend end them)",
            items.len()
        ),
    )
}

/// Any backend waiting on another's lock: warning; for over a minute: critical.
fn judge_blocking(v: &Value) -> Judgement {
    let items = list(v);
    if items.is_empty() {
        return judged(HealthStatus::Ok, "no session is waiting for a lock");
    }
    let longest = items.iter().map(|i| num(i, "seconds")).fold(0.0, f64::max);
    let status = if longest >= 60.0 {
        HealthStatus::Critical
    } else {
        HealthStatus::Warning
    };
    judged(
        status,
        format!(
            "{} session(s) blocked by another session's locks, the longest for {longest:.0} s; see `blocked_by` for the sessions holding them",
            items.len()
        ),
    )
}

/// Any invalid index: warning.
fn judge_invalid_indexes(v: &Value) -> Judgement {
    let items = list(v);
    if items.is_empty() {
        return judged(HealthStatus::Ok, "no invalid index");
    }
    judged(
        HealthStatus::Warning,
        format!(
            "{} invalid index(es) ({}): left by a failed CREATE INDEX CONCURRENTLY (or one still running); \
             they cost writes and serve no query — REINDEX INDEX CONCURRENTLY, or DROP INDEX CONCURRENTLY",
            items.len(),
            names(items, "index", 5)
        ),
    )
}

/// Any never-scanned non-unique index: warning.
fn judge_unused_indexes(v: &Value) -> Judgement {
    let items = v.get("indexes").map(list).unwrap_or(&[]);
    if items.is_empty() {
        return judged(
            HealthStatus::Ok,
            format!("every non-unique index has been used {}", since_reset(v)),
        );
    }
    let bytes: f64 = items.iter().map(|i| num(i, "bytes")).sum();
    judged(
        HealthStatus::Warning,
        format!(
            "{} index(es) never scanned {} ({}, {} in all); unused indexes slow writes — check replicas too (usage is counted per server) before dropping",
            items.len(),
            since_reset(v),
            names(items, "index", 5),
            mib(bytes)
        ),
    )
}

/// Any index made redundant by another: warning.
fn judge_duplicate_indexes(v: &Value) -> Judgement {
    let items = list(v);
    if items.is_empty() {
        return judged(HealthStatus::Ok, "no duplicate or redundant index");
    }
    let bytes: f64 = items.iter().map(|i| num(i, "bytes")).sum();
    judged(
        HealthStatus::Warning,
        format!(
            "{} index(es) duplicate or are a prefix of another index on the same table ({}; {} in all); the other index serves the same queries, so these can usually be dropped",
            items.len(),
            names(items, "index", 5),
            mib(bytes)
        ),
    )
}

/// Estimated bloat of tables of 1 MiB or more: 40 % (and ≥ 1 MiB wasted)
/// warning, 80 % (and ≥ 100 MiB wasted) critical.
fn judge_bloat(v: &Value) -> Judgement {
    let items = v.get("tables").map(list).unwrap_or(&[]);
    let bloated: Vec<&Value> = items
        .iter()
        .filter(|t| num(t, "bloat_ratio") >= 0.4 && num(t, "wasted_bytes") >= 1_048_576.0)
        .collect();
    let considered = num(v, "tables_considered");
    let unknown = num(v, "tables_without_statistics");
    let note = if unknown > 0.0 {
        format!(" ({unknown:.0} table(s) without statistics skipped: ANALYZE them)")
    } else {
        String::new()
    };
    if bloated.is_empty() {
        return judged(
            HealthStatus::Ok,
            format!(
                "no table of 1 MiB or more is estimated over 40% bloated ({considered:.0} checked){note}"
            ),
        );
    }
    let critical = bloated
        .iter()
        .any(|t| num(t, "bloat_ratio") >= 0.8 && num(t, "wasted_bytes") >= 100.0 * 1_048_576.0);
    let wasted: f64 = bloated.iter().map(|t| num(t, "wasted_bytes")).sum();
    let list: Vec<Value> = bloated.iter().map(|t| (*t).clone()).collect();
    judged(
        if critical {
            HealthStatus::Critical
        } else {
            HealthStatus::Warning
        },
        format!(
            "{} table(s) estimated over 40% bloated ({}; about {} reclaimable){note}; an estimate from \
             pg_class and pg_stats — VACUUM makes the space reusable, VACUUM FULL or pg_repack returns it",
            bloated.len(),
            names(&list, "table", 5),
            mib(wasted)
        ),
    )
}

/// Dead rows over twice autovacuum's trigger point: warning; autovacuum
/// off: warning.
fn judge_vacuum(v: &Value) -> Judgement {
    let items = v.get("tables").map(list).unwrap_or(&[]);
    let autovacuum_on = v.get("autovacuum").and_then(Value::as_str) == Some("on");
    if items.is_empty() && autovacuum_on {
        return judged(
            HealthStatus::Ok,
            "autovacuum is on and keeping up: no table has more than twice the dead rows that trigger it",
        );
    }
    let mut s = String::new();
    if !autovacuum_on {
        s.push_str("autovacuum is off; ");
    }
    if items.is_empty() {
        s.push_str("no table has many dead rows yet");
    } else {
        s.push_str(&format!(
            "{} table(s) have more than twice the dead rows that trigger autovacuum ({}); \
             autovacuum is falling behind or blocked by long transactions — VACUUM them (vacuum_table)",
            items.len(),
            names(items, "table", 5)
        ));
    }
    judged(HealthStatus::Warning, s)
}

/// Rows changed since the last ANALYZE over twice autoanalyze's trigger
/// point: warning.
fn judge_analyze(v: &Value) -> Judgement {
    let items = v.get("tables").map(list).unwrap_or(&[]);
    if items.is_empty() {
        return judged(
            HealthStatus::Ok,
            "planner statistics are fresh: no table has changed more than twice autoanalyze's trigger since its last ANALYZE",
        );
    }
    judged(
        HealthStatus::Warning,
        format!(
            "{} table(s) changed a lot since their last ANALYZE ({}); stale statistics lead to bad plans — ANALYZE them (analyze_table)",
            items.len(),
            names(items, "table", 5)
        ),
    )
}

/// Oldest unfrozen transaction id (or multixact) of any database as a share
/// of the 2^31 wraparound limit: 50 % warning, 75 % critical.
fn judge_wraparound(v: &Value) -> Judgement {
    let limit = num(v, "wraparound_limit").max(1.0);
    let dbs = v.get("databases").map(list).unwrap_or(&[]);
    let (worst_db, worst_age) = dbs
        .iter()
        .map(|d| {
            (
                d.get("database").and_then(Value::as_str).unwrap_or("?"),
                num(d, "xid_age").max(num(d, "multixact_age")),
            )
        })
        .fold(("?", 0.0), |acc, x| if x.1 > acc.1 { x } else { acc });
    let ratio = worst_age / limit;
    let status = if ratio >= 0.75 {
        HealthStatus::Critical
    } else if ratio >= 0.5 {
        HealthStatus::Warning
    } else {
        HealthStatus::Ok
    };
    let mut s = format!(
        "oldest unfrozen transaction is {worst_age:.0} transactions old (database {worst_db}), {:.1}% of the way to wraparound",
        ratio * 100.0
    );
    if status != HealthStatus::Ok {
        s.push_str(
            "; anti-wraparound VACUUM is falling behind: find what holds it back (long transactions, \
             abandoned replication slots or prepared transactions) and VACUUM (FREEZE) the oldest tables",
        );
    }
    judged(status, s)
}

/// Sequences (within their column's type) 75 % used: warning; 90 %: critical.
fn judge_sequences(v: &Value) -> Judgement {
    let items = list(v);
    let worst = items
        .iter()
        .map(|i| num(i, "used_ratio"))
        .fold(0.0, f64::max);
    let near: Vec<Value> = items
        .iter()
        .filter(|i| num(i, "used_ratio") >= 0.75)
        .cloned()
        .collect();
    if near.is_empty() {
        return judged(
            HealthStatus::Ok,
            format!(
                "no sequence is near its maximum (the most used is at {:.1}%)",
                worst * 100.0
            ),
        );
    }
    judged(
        if worst >= 0.9 {
            HealthStatus::Critical
        } else {
            HealthStatus::Warning
        },
        format!(
            "{} sequence(s) over 75% of their maximum ({}; the worst at {:.1}%); once exhausted, inserts fail — \
             widen the column and sequence to bigint (ALTER … TYPE bigint, ALTER SEQUENCE … AS bigint)",
            near.len(),
            names(&near, "sequence", 5),
            worst * 100.0
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_ratio_thresholds() {
        let j = judge_cache_hit_ratio(&json!({"blocks_hit": 95_000, "blocks_read": 5_000}));
        assert_eq!(j.status, HealthStatus::Warning);
        assert!(j.summary.starts_with("95.00%"), "{}", j.summary);
        let j = judge_cache_hit_ratio(&json!({"blocks_hit": 10, "blocks_read": 5}));
        assert_eq!(j.status, HealthStatus::Ok);
    }

    #[test]
    fn connection_thresholds() {
        let v = json!({"max_connections": 100, "superuser_reserved_connections": 3, "total": 90,
                       "by_state": {"active": 10, "idle": 79, "idle in transaction": 1}});
        let j = judge_connections(&v);
        assert_eq!(j.status, HealthStatus::Critical);
        assert!(j.summary.contains("1 idle in transaction"), "{}", j.summary);
    }

    #[test]
    fn sequence_thresholds() {
        let v = json!([{"sequence": "public.s", "used_ratio": 0.97}]);
        assert_eq!(judge_sequences(&v).status, HealthStatus::Critical);
        assert_eq!(judge_sequences(&json!([])).status, HealthStatus::Ok);
    }

    #[test]
    fn worst_status_wins() {
        assert!(severity(HealthStatus::Critical) > severity(HealthStatus::Warning));
        assert!(severity(HealthStatus::Warning) > severity(HealthStatus::Unknown));
    }
}
