//! `Explain`: the plan of one statement, with a short summary.

use std::sync::Arc;

use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{ExplainRequest, ExplainResponse};
use sqlx::{AssertSqlSafe, Row, ValueRef};

use crate::error::WorkerError;
use crate::query::Effective;
use crate::session::{Access, Session};
use crate::statement;
use crate::targets::Target;

pub async fn run(
    target: Arc<Target>,
    req: ExplainRequest,
    eff: Effective,
) -> Result<ExplainResponse, WorkerError> {
    let stmt = req.statement.unwrap_or_default();
    // Fixed options only; the caller's statement follows unchanged, and the
    // extended protocol allows exactly one statement.
    let mut options = vec!["FORMAT JSON"];
    if req.analyze {
        options.push("ANALYZE");
    }
    if req.buffers {
        options.push("BUFFERS");
    }
    let prefix = format!("EXPLAIN ({}) ", options.join(", "));
    let sql = format!("{prefix}{}", stmt.sql);
    // ANALYZE runs the statement: always read-only and rolled back.
    let mut session = Session::begin(&target, Access::ReadOnly, eff.timeout_ms).await?;
    let outcome = async {
        let prepared = statement::prepare(&target, session.conn(), &sql, &stmt.params).await?;
        let row = sqlx::query_with(AssertSqlSafe(sql.clone()), prepared.args)
            .fetch_one(&mut *session.conn())
            .await?;
        let raw = row.try_get_raw(0)?;
        if raw.is_null() {
            return Err(WorkerError::new(
                ErrorKind::Internal,
                "EXPLAIN returned no plan",
            ));
        }
        let bytes = raw.as_bytes().map_err(|e| {
            WorkerError::new(ErrorKind::Internal, format!("cannot read the plan: {e}"))
        })?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
    .await;
    session.end_after(&target, outcome.as_ref().err()).await;
    // Positions in errors count from the start of the caller's statement.
    let plan_json = match outcome {
        Ok(plan) => plan,
        Err(mut e) => {
            let shift = u32::try_from(prefix.chars().count()).unwrap_or(0);
            e.0.position = e.0.position.saturating_sub(shift);
            crate::suggest::did_you_mean(&target, &stmt.sql, &mut e).await;
            return Err(e);
        }
    };
    Ok(summarize(plan_json, req.analyze))
}

/// Pulls the headline numbers out of the JSON plan.
fn summarize(plan_json: String, analyzed: bool) -> ExplainResponse {
    let v: serde_json::Value = serde_json::from_str(&plan_json).unwrap_or_default();
    let top = &v[0];
    let plan = &top["Plan"];
    let num = |x: &serde_json::Value| x.as_f64().unwrap_or(0.0);
    ExplainResponse {
        node_type: plan["Node Type"].as_str().unwrap_or_default().to_string(),
        total_cost: num(&plan["Total Cost"]),
        plan_rows: num(&plan["Plan Rows"]),
        analyzed,
        actual_total_time_ms: num(&plan["Actual Total Time"]),
        actual_rows: num(&plan["Actual Rows"]),
        planning_time_ms: num(&top["Planning Time"]),
        execution_time_ms: num(&top["Execution Time"]),
        plan_json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_top_node() {
        let json = r#"[{"Plan": {"Node Type": "Seq Scan", "Total Cost": 35.5, "Plan Rows": 2550,
            "Actual Total Time": 0.012, "Actual Rows": 3}, "Planning Time": 0.05, "Execution Time": 0.02}]"#;
        let s = summarize(json.to_string(), true);
        assert_eq!(s.node_type, "Seq Scan");
        assert_eq!(s.total_cost, 35.5);
        assert_eq!(s.plan_rows, 2550.0);
        assert_eq!(s.actual_rows, 3.0);
        assert_eq!(s.execution_time_ms, 0.02);
    }
}
