//! Every PostgreSQL type the worker decodes, through the real worker gRPC
//! server against a real PostgreSQL: the JSON of each value must be exactly
//! what `proto/pgmcp/v1/worker.proto` promises (see `types_fixture`), and
//! where the proto promises PostgreSQL's own text format, PostgreSQL must
//! agree.

use anyhow::{Context, Result, anyhow};
use pgmcp_proto::v1::worker_client::WorkerClient;
use pgmcp_tests::Pg;
use pgmcp_tests::types_fixture::{
    MULTIRANGE_SQL, SELECT_SQL, SETUP_SQL, TEXT_CROSS_CHECKS, columns, edge_values, expected_rows,
};
use pgmcp_tests::worker::{InProcessWorker, QueryResult, query, sql};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection, Row};
use tonic::transport::Channel;

/// A cluster with the fixture loaded in database "types", and a worker
/// serving it.
async fn start() -> Result<(Pg, InProcessWorker, String)> {
    let pg = Pg::start()?;
    let url = pg.create_db("types").await?;
    pg.exec("types", SETUP_SQL).await?;
    let worker = InProcessWorker::start(&["--database-url", &url]).await?;
    Ok((pg, worker, url))
}

/// Runs `sql` through the worker.
async fn run(client: &mut WorkerClient<Channel>, text: &str) -> Result<QueryResult> {
    query(client, sql(text))
        .await
        .map_err(|e| anyhow!("query failed: {e:?}\n{text}"))
}

/// Compares rows column by column; reports every mismatch, not just the first.
fn assert_rows(names: &[String], got: &[Value], want: &[Value]) {
    assert_eq!(got.len(), want.len(), "row count: got {got:#?}");
    let mut problems = Vec::new();
    for (r, (got_row, want_row)) in got.iter().zip(want).enumerate() {
        let (Some(got_row), Some(want_row)) = (got_row.as_array(), want_row.as_array()) else {
            panic!("row {r} is not an array: got {got_row}, want {want_row}");
        };
        assert_eq!(
            got_row.len(),
            want_row.len(),
            "row {r} width: got {got_row:?}"
        );
        for (c, (g, w)) in got_row.iter().zip(want_row).enumerate() {
            if g != w {
                let name = names.get(c).map_or("?", String::as_str);
                problems.push(format!(
                    "row {}, column {name}:\n     got: {g}\n  expect: {w}",
                    r + 1
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} mismatches:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test]
async fn all_types_decode_exactly() -> Result<()> {
    let (_pg, worker, url) = start().await?;
    let mut client = worker.client().await?;
    let res = run(&mut client, SELECT_SQL).await?;

    let names: Vec<String> = res.columns.iter().map(|(n, _)| n.clone()).collect();
    let want_names: Vec<String> = columns().into_iter().map(String::from).collect();
    assert_eq!(names, want_names, "column names");
    assert_rows(&names, &res.rows, &expected_rows());
    assert_eq!(res.summary.row_count, 2);

    // Where the proto promises PostgreSQL's text (or JSON) format, ask
    // PostgreSQL for it directly and compare with what the worker sent.
    let decoded = res
        .rows
        .first()
        .and_then(Value::as_array)
        .context("no row 1")?;
    let mut conn = PgConnection::connect(&url).await?;
    conn.execute("SET intervalstyle = iso_8601; SET timezone = 'UTC'")
        .await?;
    let exprs: Vec<String> = TEXT_CROSS_CHECKS
        .iter()
        .map(|(_, expr)| format!("to_json({expr})::text"))
        .collect();
    let check_sql = format!("SELECT {} FROM all_types WHERE id = 1", exprs.join(", "));
    let row = sqlx::query(sqlx::AssertSqlSafe(check_sql))
        .fetch_one(&mut conn)
        .await?;
    let mut problems = Vec::new();
    for (i, (column, expr)) in TEXT_CROSS_CHECKS.iter().enumerate() {
        let text: String = row.try_get(i)?;
        let postgres: Value =
            serde_json::from_str(&text).with_context(|| format!("{expr} gave {text}"))?;
        let at = names
            .iter()
            .position(|n| n == column)
            .with_context(|| format!("no column {column}"))?;
        let worker = decoded.get(at).context("short row")?;
        if *worker != postgres {
            problems.push(format!(
                "column {column}:\n    worker: {worker}\n  postgres: {postgres}  ({expr})"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "worker and PostgreSQL disagree:\n{}",
        problems.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn edge_values_decode_exactly() -> Result<()> {
    let (_pg, worker, _url) = start().await?;
    let mut client = worker.client().await?;
    let cases = edge_values();
    let select: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (expr, _))| format!("{expr} AS c{}", i + 1))
        .collect();
    let res = run(&mut client, &format!("SELECT {}", select.join(", "))).await?;
    let names: Vec<String> = cases.iter().map(|(expr, _)| (*expr).to_string()).collect();
    let want = Value::Array(cases.into_iter().map(|(_, v)| v).collect());
    assert_rows(&names, &res.rows, &[want]);
    Ok(())
}

/// Every scalar column again, as the first element of a one-dimensional
/// array built by PostgreSQL (`ARRAY[col, NULL]`): the array decoder must
/// give exactly the scalar's JSON for its elements.
#[tokio::test]
async fn arrays_of_every_type_match_their_elements() -> Result<()> {
    let (_pg, worker, _url) = start().await?;
    let mut client = worker.client().await?;
    let names = columns();
    let row_one = expected_rows()
        .into_iter()
        .next()
        .context("no expected row")?;
    let row_one = row_one.as_array().context("row is an array")?.clone();
    // Not: the id, array columns (already arrays; ARRAY[arr, NULL] is not a
    // valid 2-D array), types with no decoder (text fallback) and the record.
    let skip = ["id", "c_tsvector", "c_point", "c_record"];
    let picked: Vec<(&str, Value)> = names
        .iter()
        .zip(row_one)
        .filter(|(n, v)| !skip.contains(*n) && !v.is_array())
        .map(|(n, v)| (*n, v))
        .collect();
    let select: Vec<String> = picked
        .iter()
        .map(|(n, _)| format!("ARRAY[{n}, NULL] AS {n}"))
        .collect();
    let res = run(
        &mut client,
        &format!("SELECT {} FROM all_types WHERE id = 1", select.join(", ")),
    )
    .await?;
    let got_names: Vec<String> = picked.iter().map(|(n, _)| (*n).to_string()).collect();
    let want = Value::Array(
        picked
            .into_iter()
            .map(|(_, v)| Value::Array(vec![v, Value::Null]))
            .collect(),
    );
    assert_rows(&got_names, &res.rows, &[want]);
    Ok(())
}

/// The text fallback works the first time a connection meets a type the
/// driver does not know (it looks the type up between Parse and Bind).
#[tokio::test]
async fn text_fallback_works_on_first_use() -> Result<()> {
    let (_pg, worker, _url) = start().await?;
    let mut client = worker.client().await?;
    let res = query(
        &mut client,
        sql("SELECT 'a fat cat'::tsvector AS t, point(1, 2) AS p"),
    )
    .await
    .map_err(|e| anyhow!("{e:?}"))?;
    assert_eq!(
        res.rows,
        vec![serde_json::json!(["'a' 'cat' 'fat'", "(1,2)"])]
    );
    Ok(())
}

/// Multiranges decode to arrays of ranges (unit-tested in the decoder), but
/// sqlx 0.9 cannot describe a statement returning one (`pg_type.typtype =
/// 'm'`), so the worker says how to get the value instead; cast to text or
/// unnested, it comes back.
#[tokio::test]
async fn multiranges_get_an_actionable_error_and_work_as_text() -> Result<()> {
    let (_pg, worker, _url) = start().await?;
    let mut client = worker.client().await?;
    let err = query(&mut client, sql(MULTIRANGE_SQL))
        .await
        .err()
        .ok_or_else(|| anyhow!("multirange query unexpectedly succeeded"))?;
    assert_eq!(
        err.kind(),
        pgmcp_proto::error::ErrorKind::Statement,
        "{err:?}"
    );
    assert!(err.message.contains("cast it to text"), "{}", err.message);
    let res = run(&mut client, "SELECT '{[1,3), [5,7)}'::int4multirange::text AS m, r FROM unnest('{[1,3), [5,7)}'::int4multirange) r").await?;
    assert_eq!(
        res.rows,
        vec![
            serde_json::json!(["{[1,3),[5,7)}", {"lower": 1, "upper": 3, "lower_inc": true, "upper_inc": false}]),
            serde_json::json!(["{[1,3),[5,7)}", {"lower": 5, "upper": 7, "lower_inc": true, "upper_inc": false}]),
        ]
    );
    Ok(())
}

/// An anonymous record holding a value of a user type: the decoder has only
/// the field's OID and PostgreSQL cannot take an anonymous record back as a
/// parameter for the text fallback, so the worker explains the way around.
#[tokio::test]
async fn user_type_inside_anonymous_record_is_explained() -> Result<()> {
    let (_pg, worker, _url) = start().await?;
    let mut client = worker.client().await?;
    let err = query(&mut client, sql("SELECT ROW('happy'::mood, 1) AS r"))
        .await
        .err()
        .ok_or_else(|| anyhow!("expected an error"))?;
    assert!(
        err.message.contains("cast the value to text"),
        "{}",
        err.message
    );
    let res = run(
        &mut client,
        "SELECT ROW('happy'::mood, 1)::text AS r, ROW('sad'::text, 2) AS plain",
    )
    .await?;
    assert_eq!(
        res.rows,
        vec![serde_json::json!(["(happy,1)", {"f1": "sad", "f2": 2}])]
    );
    Ok(())
}
