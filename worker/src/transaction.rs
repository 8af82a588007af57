//! `Transaction`: several statements, all or nothing.

use std::sync::Arc;

use pgmcp_proto::v1::{TransactionRequest, TransactionResponse};

use crate::config::Mode;
use crate::error::WorkerError;
use crate::query::Effective;
use crate::session::{Access, Session};
use crate::statement;
use crate::targets::Target;

pub async fn run(
    target: Arc<Target>,
    req: TransactionRequest,
    eff: Effective,
) -> Result<TransactionResponse, WorkerError> {
    let writable = target.mode == Mode::ReadWrite;
    let access = if writable {
        Access::ReadWrite
    } else {
        Access::ReadOnly
    };
    let mut session = Session::begin_tracked(&target, access, eff.timeout_ms).await?;
    let mut results = Vec::with_capacity(req.statements.len());
    for (i, stmt) in req.statements.iter().enumerate() {
        let outcome = async {
            let prepared =
                statement::prepare(&target, session.conn(), &stmt.sql, &stmt.params).await?;
            let result = statement::collect(
                &target,
                session.conn(),
                &stmt.sql,
                prepared,
                eff.max_rows,
                eff.max_bytes,
            )
            .await?;
            // A statement that ended the transaction (COMMIT …) would let the
            // next ones run outside it.
            session.still_ours().await?;
            Ok(result)
        }
        .await;
        match outcome {
            Ok(result) => results.push(result),
            Err(mut err) => {
                session.end_after(&target, Some(&err)).await;
                crate::suggest::did_you_mean(&target, &stmt.sql, &mut err).await;
                let n = req.statements.len();
                err.0.statement_index = u32::try_from(i + 1).unwrap_or(u32::MAX);
                err.0.message = format!(
                    "statement {} of {n} failed, so the whole transaction was rolled back and nothing was committed: {}",
                    i + 1,
                    err.0.message
                );
                return Err(err);
            }
        }
    }
    let mut schema_changed = false;
    if writable {
        session.commit(&target).await.map_err(|mut err| {
            err.0.message = format!("COMMIT failed, nothing was committed: {}", err.0.message);
            err
        })?;
        schema_changed = req
            .statements
            .iter()
            .any(|s| statement::may_change_schema(&s.sql));
        if schema_changed {
            target.schema_cache.invalidate();
        }
    } else {
        session.rollback(&target).await;
    }
    Ok(TransactionResponse {
        results,
        committed: writable,
        schema_changed,
    })
}
