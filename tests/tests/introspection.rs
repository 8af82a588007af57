//! Introspection end to end: list_schemas, list_tables, describe_table and
//! invalidate_schema_cache through MCP → gateway → gRPC → worker → a real
//! PostgreSQL; the schema cache; did-you-mean hints; stringified-JSON
//! arguments. Every result is checked against the tool's outputSchema.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use pgmcp_tests::Stack;
use pgmcp_tests::mcp::{self, check_output_schema, is_error, structured, text};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

/// A small shop with mixed-case names, every kind of relation, keys in both
/// directions, constraints, indexes, a trigger and partitions.
pub const SHOP: &str = r#"
CREATE SCHEMA "Sales";
COMMENT ON SCHEMA "Sales" IS 'Orders and what is in them';
CREATE TABLE customers (
    id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    email text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    name_upper text GENERATED ALWAYS AS (upper(name)) STORED,
    CONSTRAINT email_has_at CHECK (email LIKE '%@%')
);
COMMENT ON TABLE customers IS 'People who buy';
COMMENT ON COLUMN customers.email IS 'Where receipts go';
CREATE INDEX customers_lower_email ON customers (lower(email));
CREATE TABLE "Sales"."Orders" (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    total numeric(10, 2) NOT NULL CHECK (total >= 0),
    placed_at date
);
CREATE INDEX orders_placed_idx ON "Sales"."Orders" (placed_at DESC);
CREATE TABLE "Sales"."Order Items" (
    order_id bigint REFERENCES "Sales"."Orders" (id),
    line int,
    sku text NOT NULL,
    qty int NOT NULL DEFAULT 1,
    PRIMARY KEY (order_id, line),
    UNIQUE (order_id, sku)
);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE INSERT OR UPDATE ON "Sales"."Orders"
    FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW big_customers AS SELECT id, name FROM customers WHERE id > 100;
CREATE MATERIALIZED VIEW customer_counts AS SELECT count(*) AS n FROM customers;
CREATE TABLE events (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE users (id int PRIMARY KEY, nick text);
INSERT INTO users VALUES (1, 'ada');
INSERT INTO customers (name, email) SELECT 'c' || g, 'c' || g || '@x' FROM generate_series(1, 50) g;
INSERT INTO events SELECT g, '2026-03-01' FROM generate_series(1, 10) g;
ANALYZE;
"#;

/// The part of the shop only the superuser may create (file_fdw is not a
/// trusted extension); the foreign table is handed to the owner role.
const SHOP_FOREIGN: &str = r#"
CREATE EXTENSION file_fdw;
CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE ext_log (line text) SERVER files OPTIONS (filename '/dev/null');
ALTER FOREIGN TABLE ext_log OWNER TO app;
"#;

/// A stack serving the shop.
async fn shop_stack(worker_flags: &[&str], gateway_flags: &[&str]) -> Result<Stack> {
    Stack::start_full(SHOP, SHOP_FOREIGN, worker_flags, gateway_flags).await
}

/// Calls `tool` and checks the result against its outputSchema.
async fn call(stack: &Stack, tool: &str, args: Value) -> Result<CallToolResult> {
    let res = mcp::call_tool(&stack.client, tool, args).await?;
    check_output_schema(&stack.client, tool, &res).await?;
    Ok(res)
}

/// Calls `tool` and fails unless it succeeded; returns `structuredContent`.
async fn ok(stack: &Stack, tool: &str, args: Value) -> Result<Value> {
    let res = call(stack, tool, args.clone()).await?;
    if is_error(&res) {
        bail!("{tool} {args} failed: {}", text(&res));
    }
    Ok(structured(&res))
}

fn names(tables: &Value) -> Vec<String> {
    tables
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["sql_name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> Result<&'a Value> {
    list.as_array()
        .and_then(|a| a.iter().find(|x| x[key] == value))
        .with_context(|| format!("no {key}={value} in {list}"))
}

#[tokio::test]
async fn tools_are_listed_with_annotations_and_output_schemas() -> Result<()> {
    let stack = Stack::start_with("", &[], &["--toolsets", "all"]).await?;
    let tools = stack.client.list_all_tools().await?;
    for name in [
        "list_schemas",
        "list_tables",
        "describe_table",
        "invalidate_schema_cache",
    ] {
        let tool = tools
            .iter()
            .find(|t| t.name == name)
            .with_context(|| format!("{name} missing"))?;
        let ann = tool.annotations.as_ref().context("no annotations")?;
        assert_eq!(ann.read_only_hint, Some(true), "{name}");
        assert_eq!(ann.destructive_hint, Some(false), "{name}");
        assert_eq!(ann.idempotent_hint, Some(true), "{name}");
        assert_eq!(ann.open_world_hint, Some(false), "{name}");
        let schema = tool.output_schema.as_ref().context("no outputSchema")?;
        assert_eq!(schema.get("type"), Some(&json!("object")), "{name}");
        assert!(
            tool.description.as_deref().is_some_and(|d| d.len() > 200),
            "{name}: description too thin"
        );
    }
    Ok(())
}

#[tokio::test]
async fn list_schemas_shows_user_schemas_and_system_ones_on_request() -> Result<()> {
    let stack = shop_stack(&[], &[]).await?;
    let s = ok(&stack, "list_schemas", json!({})).await?;
    assert_eq!(s["database"], "app");
    let schemas = &s["schemas"];
    let list: Vec<&str> = schemas
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(list, ["Sales", "public"], "{s}");
    let sales = find(schemas, "name", "Sales")?;
    assert_eq!(sales["table_count"], 2);
    assert_eq!(sales["comment"], "Orders and what is in them");
    assert_eq!(sales["on_search_path"], false);
    assert_eq!(find(schemas, "name", "public")?["on_search_path"], true);

    let s = ok(&stack, "list_schemas", json!({"include_system": true})).await?;
    let catalog = find(&s["schemas"], "name", "pg_catalog")?;
    assert_eq!(catalog["system"], true);
    assert!(find(&s["schemas"], "name", "information_schema").is_ok());
    Ok(())
}

#[tokio::test]
async fn list_tables_filters_by_schema_pattern_and_kind() -> Result<()> {
    let stack = shop_stack(&[], &[]).await?;
    let s = ok(&stack, "list_tables", json!({})).await?;
    assert_eq!(
        names(&s["tables"]),
        [
            "\"Sales\".\"Order Items\"",
            "\"Sales\".\"Orders\"",
            "public.big_customers",
            "public.customer_counts",
            "public.customers",
            "public.events",
            "public.events_2026",
            "public.ext_log",
            "public.users",
        ],
        "{s}"
    );
    assert_eq!(s["total"], 9);
    assert!(s.get("next_cursor").is_none());
    let customers = find(&s["tables"], "name", "customers")?;
    assert_eq!(customers["kind"], "table");
    assert_eq!(customers["estimated_rows"], 50);
    assert!(customers["total_bytes"].as_i64().is_some_and(|b| b > 0));
    assert_eq!(customers["comment"], "People who buy");
    assert_eq!(customers["uri"], "schema://app/public/customers");
    let events = find(&s["tables"], "name", "events")?;
    assert_eq!(events["kind"], "partitioned_table");
    assert_eq!(events["estimated_rows"], 10);
    assert_eq!(
        find(&s["tables"], "name", "events_2026")?["partition_of"],
        "public.events"
    );
    assert_eq!(find(&s["tables"], "name", "big_customers")?["kind"], "view");
    assert!(
        find(&s["tables"], "name", "big_customers")?
            .get("total_bytes")
            .is_none()
    );
    assert_eq!(
        find(&s["tables"], "name", "ext_log")?["kind"],
        "foreign_table"
    );
    assert_eq!(
        find(&s["tables"], "name", "Order Items")?["uri"],
        "schema://app/Sales/Order%20Items"
    );
    let t = text(&mcp::call_tool(&stack.client, "list_tables", json!({})).await?);
    assert!(
        t.contains("public.customers — table, ~50 rows") && t.contains("People who buy"),
        "{t}"
    );

    let s = ok(&stack, "list_tables", json!({"schema": "Sales"})).await?;
    assert_eq!(
        names(&s["tables"]),
        ["\"Sales\".\"Order Items\"", "\"Sales\".\"Orders\""]
    );
    let s = ok(&stack, "list_tables", json!({"name_pattern": "ORDER"})).await?;
    assert_eq!(s["total"], 2, "{s}");
    let s = ok(&stack, "list_tables", json!({"name_pattern": "cust%"})).await?;
    assert_eq!(
        names(&s["tables"]),
        ["public.customer_counts", "public.customers"]
    );
    let s = ok(
        &stack,
        "list_tables",
        json!({"kinds": ["view", "materialized_view"]}),
    )
    .await?;
    assert_eq!(
        names(&s["tables"]),
        ["public.big_customers", "public.customer_counts"]
    );
    let s = ok(
        &stack,
        "list_tables",
        json!({"schema": "information_schema", "name_pattern": "columns"}),
    )
    .await?;
    let found = names(&s["tables"]);
    assert!(
        found.contains(&"information_schema.columns".to_string())
            && found.iter().all(|n| n.starts_with("information_schema.")),
        "{found:?}"
    );
    let s = ok(
        &stack,
        "list_tables",
        json!({"include_system": true, "name_pattern": "pg_class"}),
    )
    .await?;
    assert_eq!(names(&s["tables"]), ["pg_catalog.pg_class"]);

    // A schema that does not exist is an error that suggests the closest one.
    let res = call(&stack, "list_tables", json!({"schema": "sales"})).await?;
    mcp::assert_tool_error(&res, "undefined_object", "\"Sales\"");
    Ok(())
}

#[tokio::test]
async fn list_tables_pages_with_a_cursor() -> Result<()> {
    let mut setup = String::from("CREATE SCHEMA many;");
    for i in 0..250 {
        setup.push_str(&format!("CREATE TABLE many.t{i:03} (id int);"));
    }
    let stack = Stack::start(&setup).await?;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        if page > 10 {
            bail!("too many pages");
        }
        let mut args = json!({"schema": "many", "page_size": 100});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let s = ok(&stack, "list_tables", args).await?;
        assert_eq!(s["total"], 250);
        seen.extend(names(&s["tables"]));
        cursor = s["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            assert_eq!(page, 2, "three pages of 100, 100 and 50");
            break;
        }
        if page == 0 {
            // Tables created between pages do not shift the listing.
            stack
                .pg
                .exec("app", "CREATE TABLE many.a_first (id int)")
                .await?;
        }
    }
    let want: Vec<String> = (0..250).map(|i| format!("many.t{i:03}")).collect();
    assert_eq!(seen, want);

    // A tampered cursor, and a cursor used with other arguments, are refused.
    let s = ok(
        &stack,
        "list_tables",
        json!({"schema": "many", "page_size": 10}),
    )
    .await?;
    let c = s["next_cursor"].as_str().context("no cursor")?.to_string();
    let res = call(
        &stack,
        "list_tables",
        json!({"schema": "many", "cursor": format!("x{c}")}),
    )
    .await?;
    assert!(is_error(&res));
    assert!(text(&res).contains("cursor is malformed"), "{}", text(&res));
    let res = call(
        &stack,
        "list_tables",
        json!({"schema": "public", "cursor": c}),
    )
    .await?;
    assert!(is_error(&res));
    assert!(text(&res).contains("other arguments"), "{}", text(&res));
    let res = call(&stack, "list_tables", json!({"page_size": 5000})).await?;
    assert!(is_error(&res));
    assert!(text(&res).contains("page_size"), "{}", text(&res));
    Ok(())
}

#[tokio::test]
async fn describe_table_reports_columns_keys_constraints_indexes_and_triggers() -> Result<()> {
    let stack = shop_stack(&[], &[]).await?;
    let d = ok(&stack, "describe_table", json!({"table": "customers"})).await?;
    assert_eq!(d["database"], "app");
    assert_eq!(d["sql_name"], "public.customers");
    assert_eq!(d["kind"], "table");
    assert_eq!(d["comment"], "People who buy");
    assert_eq!(d["estimated_rows"], 50);
    let cols = &d["columns"];
    let id = find(cols, "name", "id")?;
    assert_eq!(id["type"], "integer");
    assert_eq!(id["nullable"], false);
    assert_eq!(id["identity"], "always");
    assert!(id.get("default").is_none());
    let created = find(cols, "name", "created_at")?;
    assert_eq!(created["type"], "timestamp with time zone");
    assert_eq!(created["default"], "now()");
    assert_eq!(find(cols, "name", "email")?["comment"], "Where receipts go");
    assert_eq!(find(cols, "name", "email")?["nullable"], true);
    assert_eq!(
        find(cols, "name", "name_upper")?["generated"],
        "upper(name)"
    );
    assert_eq!(d["primary_key"]["columns"], json!(["id"]));
    assert_eq!(d["unique_constraints"][0]["columns"], json!(["email"]));
    let check = find(&d["check_constraints"], "name", "email_has_at")?;
    assert_eq!(check["definition"], "CHECK (email ~~ '%@%'::text)");
    let idx = find(&d["indexes"], "name", "customers_lower_email")?;
    assert_eq!(
        idx["definition"],
        "CREATE INDEX customers_lower_email ON public.customers USING btree (lower(email))"
    );
    assert_eq!(idx["columns"], json!(["lower(email)"]));
    assert_eq!(idx["method"], "btree");
    assert_eq!(
        find(&d["indexes"], "name", "customers_pkey")?["primary"],
        true
    );
    let incoming = &d["referenced_by"][0];
    assert_eq!(incoming["table"], "\"Sales\".\"Orders\"");
    assert_eq!(incoming["columns"], json!(["customer_id"]));
    assert_eq!(incoming["referenced_columns"], json!(["id"]));
    assert_eq!(incoming["on_delete"], "cascade");
    assert_eq!(d["foreign_keys"], json!([]));
    let t = text(
        &mcp::call_tool(
            &stack.client,
            "describe_table",
            json!({"table": "customers"}),
        )
        .await?,
    );
    for needle in [
        "public.customers (table, ~50 rows",
        "id integer NOT NULL GENERATED ALWAYS AS IDENTITY",
        "created_at timestamp with time zone NOT NULL DEFAULT now()",
        "email text -- Where receipts go",
        "Primary key: customers_pkey (id)",
        "Referenced by:\n  \"Sales\".\"Orders\"(customer_id) → public.customers(id) ON DELETE CASCADE",
    ] {
        assert!(t.contains(needle), "`{needle}` missing from:\n{t}");
    }

    let d = ok(
        &stack,
        "describe_table",
        json!({"table": "\"Sales\".\"Orders\""}),
    )
    .await?;
    let fk = &d["foreign_keys"][0];
    assert_eq!(fk["referenced_table"], "public.customers");
    assert_eq!(fk["on_delete"], "cascade");
    assert_eq!(fk["on_update"], "no action");
    assert_eq!(
        find(&d["columns"], "name", "id")?["default"],
        "nextval('\"Sales\".\"Orders_id_seq\"'::regclass)"
    );
    assert_eq!(
        find(&d["columns"], "name", "total")?["type"],
        "numeric(10,2)"
    );
    let trigger = find(&d["triggers"], "name", "orders_touch")?;
    assert_eq!(trigger["timing"], "before");
    assert_eq!(trigger["events"], json!(["insert", "update"]));
    assert_eq!(trigger["level"], "row");
    assert_eq!(trigger["function"], "touch");
    assert_eq!(trigger["enabled"], true);
    assert_eq!(
        find(&d["indexes"], "name", "orders_placed_idx")?["columns"],
        json!(["placed_at"])
    );
    assert!(
        find(&d["indexes"], "name", "orders_placed_idx")?["definition"]
            .as_str()
            .is_some_and(|def| def.ends_with("(placed_at DESC)")),
        "{d}"
    );
    assert_eq!(d["referenced_by"][0]["table"], "\"Sales\".\"Order Items\"");

    let d = ok(
        &stack,
        "describe_table",
        json!({"schema": "Sales", "table": "Order Items"}),
    )
    .await?;
    assert_eq!(d["primary_key"]["columns"], json!(["order_id", "line"]));
    assert_eq!(
        d["unique_constraints"][0]["columns"],
        json!(["order_id", "sku"])
    );
    assert_eq!(find(&d["columns"], "name", "qty")?["default"], "1");

    let d = ok(&stack, "describe_table", json!({"table": "big_customers"})).await?;
    assert_eq!(d["kind"], "view");
    assert!(
        d["view_definition"]
            .as_str()
            .is_some_and(|v| v.contains("WHERE customers.id > 100")),
        "{d}"
    );
    let d = ok(&stack, "describe_table", json!({"table": "events"})).await?;
    assert_eq!(d["partition_key"], "RANGE (at)");
    let d = ok(&stack, "describe_table", json!({"table": "events_2026"})).await?;
    assert_eq!(d["partition_of"], "public.events");
    assert_eq!(
        d["partition_bound"],
        "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
    );
    let d = ok(
        &stack,
        "describe_table",
        json!({"table": "pg_catalog.pg_class"}),
    )
    .await?;
    assert!(find(&d["columns"], "name", "relname").is_ok());
    Ok(())
}

#[tokio::test]
async fn describe_table_accepts_quoted_qualified_and_mixed_case_names() -> Result<()> {
    let stack = shop_stack(&[], &[]).await?;
    let spellings = [
        json!({"table": "\"Sales\".\"Order Items\""}),
        json!({"table": "Sales.Order Items"}),
        json!({"table": "Order Items"}),
        json!({"table": "Order Items", "schema": "Sales"}),
        json!({"table": "\"Order Items\"", "schema": "\"Sales\""}),
    ];
    for args in spellings {
        let d = ok(&stack, "describe_table", args.clone()).await?;
        assert_eq!(d["sql_name"], "\"Sales\".\"Order Items\"", "{args}");
    }
    for args in [
        json!({"table": "users"}),
        json!({"table": "public.users"}),
        json!({"table": "PUBLIC.USERS"}),
        json!({"table": "Users", "schema": "public"}),
        json!({"table": " public . users "}),
    ] {
        let d = ok(&stack, "describe_table", args.clone()).await?;
        assert_eq!(d["sql_name"], "public.users", "{args}");
    }
    // Mixed case is exact when quoted: "sales" is not "Sales".
    let res = call(
        &stack,
        "describe_table",
        json!({"table": "\"sales\".\"Orders\""}),
    )
    .await?;
    assert!(is_error(&res));
    assert!(text(&res).contains("Did you mean"), "{}", text(&res));
    Ok(())
}

#[tokio::test]
async fn injection_attempts_are_names_that_do_not_exist() -> Result<()> {
    let stack = shop_stack(&[], &[]).await?;
    for args in [
        json!({"table": "users; DROP TABLE x"}),
        json!({"table": "users; DROP TABLE users"}),
        json!({"table": "users\"; DROP TABLE users; --"}),
        json!({"table": "users", "schema": "public; DROP TABLE users"}),
        json!({"table": "x') OR 1=1 --"}),
    ] {
        let res = call(&stack, "describe_table", args.clone()).await?;
        assert!(is_error(&res), "{args}: {}", text(&res));
        let s = structured(&res);
        assert_eq!(s["error"]["kind"], "undefined_object", "{args}: {s}");
        assert!(text(&res).contains("does not exist"), "{}", text(&res));
    }
    let res = call(
        &stack,
        "describe_table",
        json!({"table": "users; DROP TABLE x"}),
    )
    .await?;
    assert!(
        text(&res).starts_with("Undefined object: table \"users; DROP TABLE x\" does not exist"),
        "{}",
        text(&res)
    );
    let users = stack
        .pg
        .column("app", "SELECT count(*)::text FROM users")
        .await?;
    assert_eq!(users, vec![Some("1".to_string())]);

    // Same through list_tables' filters and the resource.
    let s = ok(
        &stack,
        "list_tables",
        json!({"name_pattern": "'; DROP TABLE users; --"}),
    )
    .await?;
    assert_eq!(s["total"], 0);
    let err = stack
        .client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "schema://app/users%3B%20DROP%20TABLE%20x",
        ))
        .await;
    assert!(err.is_err());
    let users = stack
        .pg
        .column("app", "SELECT count(*)::text FROM users")
        .await?;
    assert_eq!(users, vec![Some("1".to_string())]);
    Ok(())
}

#[tokio::test]
async fn unknown_names_get_did_you_mean_hints() -> Result<()> {
    let stack = shop_stack(&[], &[]).await?;
    // describe_table
    let res = call(&stack, "describe_table", json!({"table": "custmers"})).await?;
    assert!(is_error(&res));
    let s = structured(&res);
    assert_eq!(s["error"]["kind"], "undefined_object");
    assert_eq!(s["error"]["hint"], "Did you mean customers?", "{s}");
    assert!(text(&res).contains("list_tables"), "{}", text(&res));

    // query: an undefined table.
    let res = stack
        .query(json!({"sql": "SELECT * FROM custmers"}))
        .await?;
    let s = structured(&res);
    assert_eq!(s["error"]["sqlstate"], "42P01", "{s}");
    assert_eq!(s["error"]["hint"], "Did you mean customers?", "{s}");
    assert!(
        text(&res).contains("Hint: Did you mean customers?"),
        "{}",
        text(&res)
    );
    // A mixed-case table written without quotes.
    let res = stack
        .query(json!({"sql": "SELECT * FROM \"Sales\".orders"}))
        .await?;
    let hint = structured(&res)["error"]["hint"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        hint.starts_with("Did you mean \"Sales\".\"Orders\"?") && hint.contains("double quotes"),
        "{hint}"
    );
    // An undefined column where PostgreSQL has no hint of its own.
    let res = stack
        .query(json!({"sql": "INSERT INTO users (id, nik) VALUES (2, 'x')"}))
        .await?;
    let s = structured(&res);
    assert_eq!(s["error"]["sqlstate"], "42703", "{s}");
    assert_eq!(s["error"]["hint"], "Did you mean nick?", "{s}");
    // Columns of the tables the statement names.
    let res = stack
        .query(json!({"sql": "SELECT * FROM customers JOIN users USING (nme)"}))
        .await?;
    let s = structured(&res);
    assert_eq!(s["error"]["sqlstate"], "42703", "{s}");
    assert!(
        s["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("customers.name")),
        "{s}"
    );
    // PostgreSQL's own hint is kept.
    let res = stack
        .query(json!({"sql": "SELECT emial FROM customers"}))
        .await?;
    let s = structured(&res);
    assert!(
        s["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("Perhaps you meant to reference the column")),
        "{s}"
    );
    // Nothing close: no hint.
    let res = stack.query(json!({"sql": "SELECT * FROM zzzzzz"})).await?;
    assert!(structured(&res)["error"].get("hint").is_none());
    Ok(())
}

#[tokio::test]
async fn ddl_shows_after_invalidate_schema_cache() -> Result<()> {
    let stack = shop_stack(&[], &["--toolsets", "all"]).await?;
    let before = ok(&stack, "list_tables", json!({"name_pattern": "fresh"})).await?;
    assert_eq!(before["total"], 0);
    let d = ok(&stack, "describe_table", json!({"table": "users"})).await?;
    assert_eq!(d["columns"].as_array().map(Vec::len), Some(2));

    // DDL straight against PostgreSQL, as a migration would.
    stack
        .pg
        .exec(
            "app",
            "CREATE TABLE fresh (id int); ALTER TABLE users ADD COLUMN joined date; \
             COMMENT ON TABLE users IS 'Accounts'",
        )
        .await?;
    // Still the cached catalog (default TTL 60 s).
    let cached = ok(&stack, "list_tables", json!({"name_pattern": "fresh"})).await?;
    assert_eq!(cached["total"], 0);
    let d = ok(&stack, "describe_table", json!({"table": "users"})).await?;
    assert_eq!(d["columns"].as_array().map(Vec::len), Some(2));

    let res = call(&stack, "invalidate_schema_cache", json!({})).await?;
    assert!(!is_error(&res), "{}", text(&res));
    let s = structured(&res);
    assert_eq!(s["databases"], json!(["app"]));
    assert_eq!(s["workers"][0]["databases"], json!(["app"]));

    let after = ok(&stack, "list_tables", json!({"name_pattern": "fresh"})).await?;
    assert_eq!(names(&after["tables"]), ["public.fresh"]);
    let d = ok(&stack, "describe_table", json!({"table": "users"})).await?;
    assert!(find(&d["columns"], "name", "joined").is_ok(), "{d}");
    assert_eq!(d["comment"], "Accounts");

    // A dropped table disappears too; naming a database is allowed.
    stack.pg.exec("app", "DROP TABLE fresh").await?;
    ok(
        &stack,
        "invalidate_schema_cache",
        json!({"database": "app"}),
    )
    .await?;
    let res = call(&stack, "describe_table", json!({"table": "fresh"})).await?;
    assert!(is_error(&res));
    let res = call(
        &stack,
        "invalidate_schema_cache",
        json!({"database": "nope"}),
    )
    .await?;
    assert!(is_error(&res));
    assert_eq!(structured(&res)["error"]["kind"], "unknown_database");
    Ok(())
}

/// DDL that passes through `execute` or `transaction` refreshes the schema
/// cache at once, even with a TTL of an hour and no
/// invalidate_schema_cache: new tables and columns show in list_tables and
/// describe_table on the next call. `SELECT … INTO` creates a table too.
#[tokio::test]
async fn ddl_through_execute_and_transaction_shows_at_once() -> Result<()> {
    let stack = shop_stack(
        &["--mode", "read-write", "--schema-cache-ttl-s", "3600"],
        &[],
    )
    .await?;
    let columns = |d: &Value| -> Vec<String> {
        d["columns"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let tables = |pattern: &'static str| {
        let stack = &stack;
        async move {
            let s = ok(stack, "list_tables", json!({"name_pattern": pattern})).await?;
            Ok::<_, anyhow::Error>(names(&s["tables"]))
        }
    };
    // Warm the cache.
    assert!(tables("via_%").await?.is_empty());
    let d = ok(&stack, "describe_table", json!({"table": "users"})).await?;
    assert_eq!(columns(&d), ["id", "nick"]);

    // Through execute: a new column, a new table, SELECT … INTO; each
    // seen by the very next call.
    let execute = |sql: &'static str| {
        let stack = &stack;
        async move {
            let res = call(stack, "execute", json!({"sql": sql})).await?;
            if is_error(&res) {
                bail!("{sql}: {}", text(&res));
            }
            Ok(())
        }
    };
    execute("ALTER TABLE users ADD COLUMN joined date").await?;
    let d = ok(&stack, "describe_table", json!({"table": "users"})).await?;
    assert_eq!(columns(&d), ["id", "nick", "joined"]);
    execute("CREATE TABLE via_execute (id int)").await?;
    assert_eq!(tables("via_%").await?, ["public.via_execute"]);
    execute("SELECT id, nick INTO via_select_into FROM users").await?;
    assert_eq!(
        tables("via_%").await?,
        ["public.via_execute", "public.via_select_into"]
    );
    let d = ok(
        &stack,
        "describe_table",
        json!({"table": "via_select_into"}),
    )
    .await?;
    assert_eq!(columns(&d), ["id", "nick"]);

    // Through transaction: DDL among other statements.
    let res = call(
        &stack,
        "transaction",
        json!({"statements": [
            {"sql": "INSERT INTO users VALUES (2, 'bob')"},
            {"sql": "CREATE TABLE via_transaction (id int REFERENCES users (id))"},
            {"sql": "ALTER TABLE users ADD COLUMN score int"},
        ]}),
    )
    .await?;
    assert_eq!(structured(&res)["committed"], true, "{}", text(&res));
    let d = ok(&stack, "describe_table", json!({"table": "users"})).await?;
    assert_eq!(columns(&d), ["id", "nick", "joined", "score"]);
    assert_eq!(d["referenced_by"][0]["table"], "public.via_transaction");
    assert_eq!(
        tables("via_%").await?,
        [
            "public.via_execute",
            "public.via_select_into",
            "public.via_transaction"
        ]
    );

    // A dropped table is gone at once too.
    let res = call(&stack, "execute", json!({"sql": "DROP TABLE via_execute"})).await?;
    assert!(!is_error(&res), "{}", text(&res));
    let res = call(&stack, "describe_table", json!({"table": "via_execute"})).await?;
    mcp::assert_tool_error(&res, "undefined_object", "does not exist");

    // A failed transaction changed nothing, so the listing stays as it was.
    let res = call(
        &stack,
        "transaction",
        json!({"statements": [
            {"sql": "CREATE TABLE via_rolled_back (id int)"},
            {"sql": "INSERT INTO missing VALUES (1)"},
        ]}),
    )
    .await?;
    assert!(is_error(&res), "{}", text(&res));
    assert_eq!(
        tables("via_%").await?,
        ["public.via_select_into", "public.via_transaction"]
    );
    Ok(())
}

#[tokio::test]
async fn schema_cache_expires_after_its_ttl() -> Result<()> {
    let stack = shop_stack(&["--schema-cache-ttl-s", "1"], &[]).await?;
    let s = ok(&stack, "list_tables", json!({"name_pattern": "later"})).await?;
    assert_eq!(s["total"], 0);
    stack.pg.exec("app", "CREATE TABLE later (id int)").await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let s = ok(&stack, "list_tables", json!({"name_pattern": "later"})).await?;
        if s["total"] == 1 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the new table never showed: {s}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[tokio::test]
async fn object_and_array_arguments_may_arrive_as_json_strings() -> Result<()> {
    let stack = shop_stack(&[], &[]).await?;
    let s = ok(
        &stack,
        "list_tables",
        json!({"kinds": "[\"view\", \"materialized_view\"]"}),
    )
    .await?;
    assert_eq!(
        names(&s["tables"]),
        ["public.big_customers", "public.customer_counts"]
    );
    let res = stack
        .query(json!({"sql": "SELECT nick FROM users WHERE id = $1", "params": "[1]"}))
        .await?;
    assert!(!is_error(&res), "{}", text(&res));
    assert_eq!(structured(&res)["rows"], json!([["ada"]]));

    // Wrong types and unknown fields show the expected shape.
    let res = call(&stack, "list_tables", json!({"kinds": "views"})).await?;
    assert!(is_error(&res));
    let t = text(&res);
    assert!(t.contains("invalid arguments"), "{t}");
    assert!(
        t.contains("kinds: array of \"table\" | \"view\" | \"materialized_view\""),
        "{t}"
    );
    let res = call(&stack, "describe_table", json!({"name": "users"})).await?;
    let t = text(&res);
    assert!(t.contains("unknown field `name`"), "{t}");
    assert!(
        t.contains("Expected arguments: {table: string (required)"),
        "{t}"
    );
    let res = call(&stack, "list_schemas", json!({"include_system": "yes"})).await?;
    assert!(
        text(&res).contains("include_system: boolean"),
        "{}",
        text(&res)
    );
    Ok(())
}

#[tokio::test]
async fn invalidation_reaches_every_worker() -> Result<()> {
    use pgmcp_tests::gateway::InProcessGateway;
    use pgmcp_tests::worker::InProcessWorker;
    let pg = pgmcp_tests::Pg::start()?;
    let url = pg.create_db("app").await?;
    let a = InProcessWorker::start(&["--database-url", &url, "--name", "a"]).await?;
    let b = InProcessWorker::start(&["--database-url", &url, "--name", "b"]).await?;
    let gateway = InProcessGateway::start(&[a.url(), b.url()], &["--toolsets", "all"]).await?;
    let client = mcp::http_client(&gateway.mcp_url()).await?;
    // Warm both workers' caches (calls alternate between them).
    for _ in 0..4 {
        assert_eq!(total_tables(&client).await?, 0);
    }
    pg.exec("app", "CREATE TABLE t (id int)").await?;
    let res = mcp::call_tool(&client, "invalidate_schema_cache", json!({})).await?;
    check_output_schema(&client, "invalidate_schema_cache", &res).await?;
    let s = structured(&res);
    assert_eq!(s["workers"].as_array().map(Vec::len), Some(2), "{s}");
    for w in s["workers"].as_array().into_iter().flatten() {
        assert_eq!(w["databases"], json!(["app"]), "{s}");
    }
    for _ in 0..4 {
        assert_eq!(total_tables(&client).await?, 1);
    }
    Ok(())
}

async fn total_tables(client: &mcp::Client) -> Result<u64> {
    let res = mcp::call_tool(client, "list_tables", json!({})).await?;
    structured(&res)["total"]
        .as_u64()
        .with_context(|| text(&res))
}
