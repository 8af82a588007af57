//! `transaction`: several statements, all or nothing.

use pgmcp_proto::v1::TransactionRequest;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::errors::GatewayError;
use crate::fleet::Retry;
use crate::server::PgMcp;
use crate::tools::query::check_timeout;
use crate::tools::{
    StatementArg, StatementOut, call_deadline, error_result, parse_args, statement_text,
    structured_result,
};

/// Arguments of `transaction`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionArgs {
    /// The statements, run in order in one transaction.
    pub statements: Vec<StatementArg>,
    /// Returned rows to include per statement at most (default 100).
    pub max_rows: Option<u64>,
    /// Timeout for the whole transaction in milliseconds. Default 30000.
    pub timeout_ms: Option<u32>,
    /// Database to use; needed only when several databases are served.
    pub database: Option<String>,
}

/// Result of `transaction`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TransactionOutput {
    /// True when the changes were committed; false on a read-only database,
    /// where the transaction is always rolled back.
    pub committed: bool,
    /// One result per statement, in order.
    pub results: Vec<StatementOut>,
}

#[tool_router(router = transaction_router, vis = "pub(crate)")]
impl PgMcp {
    #[tool(
        name = "transaction",
        description = "Run several SQL statements atomically in one transaction: either all succeed and are \
committed, or the first failure rolls everything back and nothing is committed (the error says which statement \
failed). Each item is {sql, params}. Use it when changes must happen together (e.g. move stock and record an \
order). On a read-only database the statements run in a read-only transaction that is always rolled back. \
A failed call is never retried automatically.",
        input_schema = schema_for_type::<TransactionArgs>(),
        meta = crate::auth::requires(crate::auth::Access::Write),
        output_schema = crate::tools::output_schema::<TransactionOutput>(),
        annotations(title = "Run statements atomically", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    pub async fn transaction(&self, args: JsonObject) -> CallToolResult {
        let args: TransactionArgs = match parse_args(args) {
            Ok(a) => a,
            Err(e) => return error_result(&e, None),
        };
        let limits = &self.shared.limits;
        if args.statements.is_empty() {
            return error_result(&GatewayError::invalid("give at least one statement"), None);
        }
        if args.statements.len() > limits.max_transaction_statements {
            return error_result(
                &GatewayError::invalid(format!(
                    "{} statements given, over this gateway's limit of {} statements per transaction \
                     (--max-transaction-statements); split the work into several transactions, or an \
                     operator raises --max-transaction-statements",
                    args.statements.len(),
                    limits.max_transaction_statements
                )),
                None,
            );
        }
        for (i, s) in args.statements.iter().enumerate() {
            let item = format!("statement {}", i + 1);
            if let Err(e) =
                crate::limits::check_statement_in(Some(&item), &s.sql, s.params.len(), limits)
            {
                return error_result(&e, None);
            }
        }
        let timeout_ms = match check_timeout(
            args.timeout_ms,
            limits.default_timeout_ms,
            limits.max_timeout_ms,
        ) {
            Ok(t) => t,
            Err(e) => return error_result(&e, None),
        };
        let req = TransactionRequest {
            database: args.database.clone().unwrap_or_default(),
            statements: args.statements.iter().map(StatementArg::to_proto).collect(),
            max_rows: args
                .max_rows
                .unwrap_or(limits.default_max_rows)
                .min(limits.max_rows),
            max_bytes: limits.max_result_bytes,
            timeout_ms,
        };
        let deadline = call_deadline(timeout_ms);
        let outcome = self
            .shared
            .fleet
            .unary(
                Retry::Never,
                req.clone(),
                deadline,
                |mut client, r| async move { client.transaction(r).await },
            )
            .await;
        match outcome {
            Ok(resp) => {
                if resp.schema_changed {
                    self.schema_changed(&req.database).await;
                }
                let mut text = String::new();
                for (i, r) in resp.results.iter().enumerate() {
                    text.push_str(&format!("-- statement {}\n{}\n", i + 1, statement_text(r)));
                }
                text.push_str(if resp.committed {
                    "Committed."
                } else {
                    "Rolled back: the database is read-only, so nothing was changed."
                });
                let output = TransactionOutput {
                    committed: resp.committed,
                    results: resp.results.iter().map(StatementOut::from).collect(),
                };
                structured_result(text, &output)
            }
            Err(e) => {
                let sql = usize::try_from(e.0.statement_index)
                    .ok()
                    .and_then(|i| i.checked_sub(1))
                    .and_then(|i| args.statements.get(i))
                    .map(|s| s.sql.as_str());
                error_result(&e, sql)
            }
        }
    }
}
