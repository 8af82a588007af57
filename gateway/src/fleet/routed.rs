//! Requests that name the database they are for, so the fleet can route
//! them to a worker serving it.

use pgmcp_proto::v1::{
    BulkInsertRequest, DatabaseHealthRequest, DescribeTableRequest, ExecuteRequest, ExplainRequest,
    ListSchemasRequest, ListTablesRequest, MaintainTableRequest, QueryRequest, TopQueriesRequest,
    TransactionRequest,
};

/// A request for one database (empty: the fleet's only one).
pub trait Routed {
    fn database(&self) -> &str;
    fn set_database(&mut self, database: String);
}

macro_rules! routed {
    ($($t:ty),* $(,)?) => {$(
        impl Routed for $t {
            fn database(&self) -> &str {
                &self.database
            }
            fn set_database(&mut self, database: String) {
                self.database = database;
            }
        }
    )*};
}

routed!(
    QueryRequest,
    ExecuteRequest,
    TransactionRequest,
    ExplainRequest,
    BulkInsertRequest,
    ListSchemasRequest,
    ListTablesRequest,
    DescribeTableRequest,
    DatabaseHealthRequest,
    TopQueriesRequest,
    MaintainTableRequest,
);
