//! Session hygiene on a read-write target: what `execute` and `transaction`
//! leave on their session (settings, roles, advisory locks, temporary
//! tables, LISTEN, held cursors, prepared statements) is gone before the
//! next call, which the worker — with a pool of exactly one connection —
//! runs on the very same backend.

use anyhow::{Context, Result, bail};
use pgmcp_tests::Stack;
use pgmcp_tests::mcp::{self, is_error, structured, text};
use serde_json::{Value, json};

const SETUP: &str = "CREATE TABLE t (x int PRIMARY KEY);";

/// Run as the superuser: a role the worker's role may `SET ROLE` to.
const ROLES: &str = "CREATE ROLE helper NOLOGIN; GRANT helper TO app; \
                     GRANT SELECT, INSERT ON t TO helper;";

/// Everything about the session that a call could leave behind, read by one
/// statement: the backend first, then settings, identity and objects.
const STATE: &str = "SELECT pg_catalog.pg_backend_pid() AS pid, \
    current_user::text AS current_role, session_user::text AS session_role, \
    pg_catalog.current_setting('work_mem') AS work_mem, \
    pg_catalog.current_setting('search_path') AS search_path, \
    pg_catalog.current_setting('TimeZone') AS time_zone, \
    pg_catalog.current_setting('default_transaction_isolation') AS isolation, \
    pg_catalog.current_setting('default_transaction_read_only') AS read_only, \
    pg_catalog.current_setting('idle_in_transaction_session_timeout') AS idle_timeout, \
    pg_catalog.current_setting('application_name') AS application_name, \
    coalesce(pg_catalog.current_setting('pgmcp_test.flag', true), '') AS custom, \
    (SELECT count(*)::int FROM pg_catalog.pg_locks \
      WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()) AS advisory_locks, \
    (SELECT count(*)::int FROM pg_catalog.pg_class \
      WHERE relnamespace = pg_catalog.pg_my_temp_schema()) AS temp_relations, \
    (SELECT count(*)::int FROM pg_catalog.pg_listening_channels()) AS listening, \
    (SELECT count(*)::int FROM pg_catalog.pg_cursors WHERE is_holdable) AS held_cursors, \
    (SELECT count(*)::int FROM pg_catalog.pg_prepared_statements WHERE from_sql) AS prepared";

/// The session's state as seen by a `query` call (its one row).
async fn state(stack: &Stack) -> Result<Vec<Value>> {
    let res = stack.query(json!({"sql": STATE})).await?;
    if is_error(&res) {
        bail!("the state query failed: {}", text(&res));
    }
    let row = structured(&res)["rows"][0]
        .as_array()
        .cloned()
        .with_context(|| format!("no row in {}", text(&res)))?;
    // The same through `execute`, which runs READ WRITE and commits.
    let res = mcp::call_tool(&stack.client, "execute", json!({"sql": STATE})).await?;
    if is_error(&res) {
        bail!("the state query failed through execute: {}", text(&res));
    }
    let through_execute = structured(&res)["rows"][0].clone();
    if through_execute != Value::Array(row.clone()) {
        bail!("query saw {row:?}, execute saw {through_execute}");
    }
    Ok(row)
}

/// Advisory locks held by anyone in the cluster (seen by the superuser).
async fn advisory_locks(stack: &Stack) -> Result<String> {
    let v = stack
        .pg
        .column(
            "app",
            "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory'",
        )
        .await?;
    Ok(v.into_iter().next().flatten().unwrap_or_default())
}

/// What one call leaves behind, and whether the call itself succeeds.
struct Case {
    what: &'static str,
    tool: &'static str,
    args: Value,
    /// Whether the call succeeds; `None` when that depends on timing.
    ok: Option<bool>,
    /// What becomes of the connection.
    conn: Conn,
}

/// What becomes of the call's connection.
#[derive(PartialEq)]
enum Conn {
    /// Reset and reused.
    Kept,
    /// Closed; the next call gets a new, clean one.
    Replaced,
    /// Either, depending on timing.
    Either,
}

fn execute(what: &'static str, sql: &str, ok: bool) -> Case {
    Case {
        what,
        tool: "execute",
        args: json!({ "sql": sql }),
        ok: Some(ok),
        conn: Conn::Kept,
    }
}

fn transaction(what: &'static str, statements: &[&str], ok: bool) -> Case {
    let statements: Vec<Value> = statements.iter().map(|s| json!({ "sql": s })).collect();
    Case {
        what,
        tool: "transaction",
        args: json!({ "statements": statements }),
        ok: Some(ok),
        conn: Conn::Kept,
    }
}

/// Statements that each leave something on the session that outlives the
/// transaction, unless the worker resets it.
const EVERYTHING: [&str; 9] = [
    "SET statement_timeout = 1234",
    "SELECT set_config('pgmcp_test.flag', 'leaked', false), \
     set_config('search_path', 'pg_catalog', false), \
     set_config('TimeZone', 'Asia/Tokyo', false), \
     set_config('default_transaction_isolation', 'serializable', false)",
    "SET work_mem = '7MB'",
    "SELECT pg_advisory_lock(7), pg_advisory_lock_shared(8)",
    "CREATE TEMP TABLE scratch AS SELECT g FROM generate_series(1, 1000) g",
    "LISTEN pgmcp_channel",
    "DECLARE held CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 3) g",
    "SET application_name = 'leaked'",
    "SET ROLE helper",
];

#[tokio::test]
async fn nothing_a_write_call_leaves_on_its_session_reaches_the_next_call() -> Result<()> {
    let stack = Stack::start_full(
        SETUP,
        ROLES,
        &[
            "--mode",
            "read-write",
            "--pool-max-connections",
            "1",
            "--pool-min-connections",
            "1",
        ],
        &[],
    )
    .await?;
    let mut clean = state(&stack).await?;
    assert_eq!(clean[1], "app", "{clean:?}");
    assert_eq!(clean[15], 0, "{clean:?}");

    let mut cases = vec![
        execute(
            "a session statement_timeout",
            "SET statement_timeout = 1234",
            true,
        ),
        execute("a session work_mem", "SET work_mem = '7MB'", true),
        execute("settings through set_config(…, false)", EVERYTHING[1], true),
        execute(
            "read-only as the session default",
            "SET default_transaction_read_only = on",
            true,
        ),
        execute("a role", "SET ROLE helper", true),
        // Only a superuser may change the session user: refused, and the
        // refusal leaves nothing either.
        execute(
            "a session authorization",
            "SET SESSION AUTHORIZATION helper",
            false,
        ),
        execute("an advisory lock", "SELECT pg_advisory_lock(42)", true),
        execute(
            "a shared advisory lock",
            "SELECT pg_advisory_lock_shared(43)",
            true,
        ),
        // Session-level advisory locks survive a ROLLBACK too.
        execute(
            "an advisory lock taken by a failing statement",
            "SELECT pg_advisory_lock(44), 1/0",
            false,
        ),
        execute(
            "a temporary table",
            "CREATE TEMP TABLE scratch (x int)",
            true,
        ),
        execute("LISTEN", "LISTEN pgmcp_channel", true),
        execute(
            "a cursor WITH HOLD",
            "DECLARE held CURSOR WITH HOLD FOR SELECT 1",
            true,
        ),
        execute("application_name", "SET application_name = 'leaked'", true),
        transaction("all of it in one transaction", &EVERYTHING, true),
        // The same, rolled back by a failing last statement: what survives
        // a ROLLBACK (the advisory locks) is released as well.
        transaction(
            "all of it in a transaction that fails",
            &[&EVERYTHING[..], &["SELECT 1/0"][..]].concat(),
            false,
        ),
        // The timeouts the caller set must not cut off the reset after the
        // COMMIT (nor turn a committed call into a reported failure).
        // Should the reset after the COMMIT be cut off all the same, the call
        // still reports its commit and the connection is replaced.
        {
            let mut tiny = transaction(
                "a 1 ms statement_timeout and lock_timeout with much to reset",
                &[
                    "CREATE TEMP TABLE scratch1 AS SELECT g FROM generate_series(1, 100000) g",
                    "CREATE TEMP TABLE scratch2 AS SELECT g FROM generate_series(1, 100000) g",
                    "DECLARE held CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 3) g",
                    "LISTEN pgmcp_channel",
                    "SELECT pg_advisory_lock(g) FROM generate_series(1, 1000) g",
                    "INSERT INTO t VALUES (1)",
                    "SET ROLE helper",
                    "SET lock_timeout = 1",
                    "SET statement_timeout = 1",
                ],
                true,
            );
            // The 1 ms apply to the rest of the call's own transaction as
            // well, its COMMIT included, which they may cancel: then
            // nothing was committed, and the call must say so.
            tiny.ok = None;
            tiny.conn = Conn::Either;
            tiny
        },
    ];
    // SQL-level prepared statements cannot be removed without the driver's
    // own: the worker closes that connection and opens a clean one.
    let mut prepare = execute(
        "a prepared statement",
        "PREPARE leaked_stmt AS SELECT 1",
        true,
    );
    prepare.conn = Conn::Replaced;
    cases.push(prepare);
    let mut prepare = transaction(
        "a prepared statement in a transaction",
        &["PREPARE leaked_stmt2 AS SELECT 2", "SET ROLE helper"],
        true,
    );
    prepare.conn = Conn::Replaced;
    cases.push(prepare);

    let mut committed_insert = false;
    for case in &cases {
        let res = mcp::call_tool(&stack.client, case.tool, case.args.clone()).await?;
        match case.ok {
            Some(ok) => assert_eq!(
                !is_error(&res),
                ok,
                "{} through {}: {}",
                case.what,
                case.tool,
                text(&res)
            ),
            None if is_error(&res) => assert!(
                text(&res).contains("nothing was committed"),
                "{}: {}",
                case.what,
                text(&res)
            ),
            None => committed_insert = true,
        }
        let now = state(&stack).await?;
        let replaced = now[0] != clean[0];
        if case.conn == Conn::Replaced || (case.conn == Conn::Either && replaced) {
            assert_ne!(
                now[0], clean[0],
                "{}: the connection was kept: {now:?}",
                case.what
            );
            assert_eq!(
                now[1..],
                clean[1..],
                "{}: the new connection is not clean",
                case.what
            );
            clean = now;
        } else {
            assert_eq!(
                now, clean,
                "{} through {} left state behind (or the connection was replaced)",
                case.what, case.tool
            );
        }
        assert_eq!(advisory_locks(&stack).await?, "0", "{}", case.what);
    }
    // The call with the 1 ms timeouts committed if and only if it said so.
    let rows = stack.pg.column("app", "SELECT x::text FROM t").await?;
    let expected = if committed_insert {
        vec![Some("1".to_string())]
    } else {
        vec![]
    };
    assert_eq!(rows, expected);
    Ok(())
}
