//! `Execute`: one statement that may write, committed.

use std::sync::Arc;

use pgmcp_proto::v1::{ExecuteRequest, ExecuteResponse};

use crate::error::WorkerError;
use crate::query::Effective;
use crate::session::{Access, Session};
use crate::statement;
use crate::targets::Target;

pub async fn run(
    target: Arc<Target>,
    req: ExecuteRequest,
    eff: Effective,
) -> Result<ExecuteResponse, WorkerError> {
    statement::require_writable(&target)?;
    let stmt = req.statement.unwrap_or_default();
    let mut session = Session::begin(&target, Access::ReadWrite, eff.timeout_ms).await?;
    let outcome = async {
        let prepared = statement::prepare(&target, session.conn(), &stmt.sql, &stmt.params).await?;
        statement::collect(
            &target,
            session.conn(),
            &stmt.sql,
            prepared,
            eff.max_rows,
            eff.max_bytes,
        )
        .await
    }
    .await;
    match outcome {
        Ok(result) => {
            session.commit(&target).await?;
            let schema_changed = statement::may_change_schema(&stmt.sql);
            if schema_changed {
                target.schema_cache.invalidate();
            }
            Ok(ExecuteResponse {
                result: Some(result),
                schema_changed,
            })
        }
        Err(mut err) => {
            session.end_after(&target, Some(&err)).await;
            crate::suggest::did_you_mean(&target, &stmt.sql, &mut err).await;
            Err(err)
        }
    }
}
