//! schema:// resources, completions and prompts end to end, through rmcp's
//! MCP client, a real gateway, worker and PostgreSQL.

use anyhow::{Context, Result, bail};
use pgmcp_tests::Stack;
use pgmcp_tests::gateway::InProcessGateway;
use pgmcp_tests::mcp::{self, structured};
use pgmcp_tests::worker::InProcessWorker;
use rmcp::model::{
    CompletionContext, GetPromptRequestParams, PaginatedRequestParams, ReadResourceRequestParams,
};
use serde_json::json;

const SHOP: &str = r#"
CREATE SCHEMA "Sales";
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
COMMENT ON TABLE customers IS 'People who buy';
CREATE TABLE "Sales"."Orders" (id int PRIMARY KEY, customer_id int REFERENCES customers (id));
CREATE TABLE "Sales"."Order Items" (order_id int REFERENCES "Sales"."Orders" (id), sku text);
CREATE VIEW customer_names AS SELECT name FROM customers;
"#;

#[tokio::test]
async fn server_advertises_resources_prompts_and_completions() -> Result<()> {
    let stack = Stack::start("").await?;
    let info = stack.client.peer_info().context("no server info")?;
    let caps = &info.capabilities;
    assert!(caps.tools.is_some());
    assert!(caps.resources.is_some());
    assert!(caps.prompts.is_some());
    assert!(caps.completions.is_some());
    Ok(())
}

#[tokio::test]
async fn resource_templates_list_and_read() -> Result<()> {
    let stack = Stack::start(SHOP).await?;
    let templates = stack.client.list_all_resource_templates().await?;
    let uris: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert_eq!(
        uris,
        [
            "schema://{database}/{table}",
            "schema://{database}/{schema}/{table}"
        ]
    );

    let resources = stack.client.list_all_resources().await?;
    // Beside the tables: query-history://recent and stats://fleet.
    let listed: Vec<&str> = resources
        .iter()
        .map(|r| r.uri.as_str())
        .filter(|u| u.starts_with("schema://"))
        .collect();
    assert_eq!(
        listed,
        [
            "schema://app/Sales/Order%20Items",
            "schema://app/Sales/Orders",
            "schema://app/public/customer_names",
            "schema://app/public/customers",
        ]
    );
    let customers = resources
        .iter()
        .find(|r| r.uri == "schema://app/public/customers")
        .context("customers listed")?;
    assert_eq!(customers.name, "public.customers");
    assert_eq!(customers.mime_type.as_deref(), Some("application/json"));
    assert!(
        customers
            .description
            .as_deref()
            .is_some_and(|d| d.contains("People who buy")),
        "{customers:?}"
    );

    // The resource holds what describe_table returns.
    let described = structured(
        &mcp::call_tool(
            &stack.client,
            "describe_table",
            json!({"table": "\"Sales\".\"Order Items\""}),
        )
        .await?,
    );
    let read = mcp::read_json(&stack.client, "schema://app/Sales/Order%20Items").await?;
    assert_eq!(read, described);
    assert_eq!(
        read["foreign_keys"][0]["referenced_table"],
        "\"Sales\".\"Orders\""
    );
    // The two-part template resolves names like describe_table.
    let read = mcp::read_json(&stack.client, "schema://app/customers").await?;
    assert_eq!(read["sql_name"], "public.customers");
    assert_eq!(read["referenced_by"][0]["table"], "\"Sales\".\"Orders\"");
    let read = mcp::read_json(&stack.client, "schema://app/Sales.Orders").await?;
    assert_eq!(read["sql_name"], "\"Sales\".\"Orders\"");

    // Missing tables and databases are resource-not-found errors with a hint;
    // malformed URIs are invalid params.
    for (uri, needle) in [
        ("schema://app/public/custmers", "Did you mean customers?"),
        ("schema://nope/public/customers", "no database named `nope`"),
        ("schema://app", "is not a table resource"),
        ("file:///etc/passwd", "no resource `file:///etc/passwd`"),
    ] {
        let err = stack
            .client
            .read_resource(ReadResourceRequestParams::new(uri))
            .await
            .err()
            .with_context(|| format!("{uri} was read"))?;
        let msg = format!("{err:?}");
        assert!(msg.contains(needle), "{uri}: {msg}");
    }
    Ok(())
}

#[tokio::test]
async fn resources_list_pages_across_databases() -> Result<()> {
    let pg = pgmcp_tests::Pg::start()?;
    let mut urls = Vec::new();
    for (db, n) in [("alpha", 130), ("beta", 80)] {
        let url = pg.create_db(db).await?;
        let mut setup = String::new();
        for i in 0..n {
            setup.push_str(&format!("CREATE TABLE t{i:03} (id int);"));
        }
        pg.exec(db, &setup).await?;
        urls.push(format!("{db}={url}"));
    }
    let worker = InProcessWorker::start(&["--database", &urls[0], "--database", &urls[1]]).await?;
    let gateway = InProcessGateway::start(&[worker.url()], &[]).await?;
    let client = mcp::http_client(&gateway.mcp_url()).await?;

    let mut uris = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        pages += 1;
        if pages > 10 {
            bail!("too many pages");
        }
        let page = client
            .list_resources(Some(PaginatedRequestParams::default().with_cursor(cursor)))
            .await?;
        // A page holds up to 100 tables; the first also lists the two fixed
        // resources (query-history://recent, stats://fleet).
        assert!(page.resources.len() <= 102);
        uris.extend(
            page.resources
                .into_iter()
                .map(|r| r.uri)
                .filter(|u| u.starts_with("schema://")),
        );
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let mut want: Vec<String> = (0..130)
        .map(|i| format!("schema://alpha/public/t{i:03}"))
        .collect();
    want.extend((0..80).map(|i| format!("schema://beta/public/t{i:03}")));
    assert_eq!(uris, want);

    let err = client
        .list_resources(Some(
            PaginatedRequestParams::default().with_cursor(Some("garbage".into())),
        ))
        .await
        .err()
        .context("a garbage cursor was accepted")?;
    assert!(
        format!("{err:?}").contains("cursor is malformed"),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn completions_for_database_schema_and_table() -> Result<()> {
    let stack = Stack::start(SHOP).await?;
    let c = &stack.client;
    let three = "schema://{database}/{schema}/{table}";
    let two = "schema://{database}/{table}";
    assert_eq!(
        c.complete_resource_simple(three, "database", "a").await?,
        ["app"]
    );
    assert!(
        c.complete_resource_simple(three, "database", "x")
            .await?
            .is_empty()
    );
    assert_eq!(
        c.complete_resource_simple(three, "schema", "s").await?,
        ["Sales"]
    );
    let ctx = |pairs: &[(&str, &str)]| {
        Some(CompletionContext::with_arguments(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    };
    let info = c
        .complete_resource_argument(
            three,
            "table",
            "Ord",
            ctx(&[("database", "app"), ("schema", "Sales")]),
        )
        .await?;
    assert_eq!(info.values, ["Order Items", "Orders"]);
    assert_eq!(info.has_more, Some(false));
    assert_eq!(
        c.complete_resource_argument(two, "table", "cust", ctx(&[("database", "app")]))
            .await?
            .values,
        ["customer_names", "customers"]
    );
    // Off the search path, names come qualified; `schema.` narrows to a schema.
    assert_eq!(
        c.complete_resource_simple(two, "table", "Order ").await?,
        ["Sales.Order Items"]
    );
    assert_eq!(
        c.complete_resource_simple(two, "table", "Sales.").await?,
        ["Sales.Order Items", "Sales.Orders"]
    );
    // LIKE wildcards typed by the user are literal.
    assert!(
        c.complete_resource_simple(two, "table", "%")
            .await?
            .is_empty()
    );
    // Prompt arguments.
    assert_eq!(
        c.complete_prompt_simple("explore_database", "database", "")
            .await?,
        ["app"]
    );
    // Unknown databases and arguments complete to nothing.
    assert!(
        c.complete_resource_argument(three, "table", "", ctx(&[("database", "nope")]))
            .await?
            .values
            .is_empty()
    );
    assert!(
        c.complete_resource_simple(three, "bogus", "")
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn prompts_guide_a_model_through_the_database() -> Result<()> {
    let stack = Stack::start(SHOP).await?;
    let prompts = stack.client.list_all_prompts().await?;
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["explore_database", "write_query", "optimize_query"]);
    let optimize = &prompts[2];
    let args = optimize.arguments.as_ref().context("no arguments")?;
    assert_eq!(args[0].name, "sql");
    assert_eq!(args[0].required, Some(true));

    let text_of = |r: &rmcp::model::GetPromptResult| -> String {
        r.messages
            .iter()
            .filter_map(|m| m.content.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let explore = stack
        .client
        .get_prompt(GetPromptRequestParams::new("explore_database"))
        .await?;
    let t = text_of(&explore);
    assert!(t.contains("Database app"), "{t}");
    assert!(t.contains("public.customers — table"), "{t}");
    assert!(t.contains("\"Sales\".\"Order Items\""), "{t}");
    assert!(t.contains("describe_table"), "{t}");

    let mut args = serde_json::Map::new();
    args.insert(
        "sql".into(),
        json!("SELECT * FROM customers WHERE lower(name) = 'x'"),
    );
    args.insert("database".into(), json!("app"));
    let mut req = GetPromptRequestParams::new("optimize_query");
    req.arguments = Some(args);
    let t = text_of(&stack.client.get_prompt(req).await?);
    assert!(
        t.contains("SELECT * FROM customers WHERE lower(name) = 'x'"),
        "{t}"
    );
    assert!(t.contains("explain"), "{t}");
    assert!(t.contains("database=\"app\""), "{t}");

    let mut args = serde_json::Map::new();
    args.insert("question".into(), json!("Who ordered most?"));
    let mut req = GetPromptRequestParams::new("write_query");
    req.arguments = Some(args);
    let t = text_of(&stack.client.get_prompt(req).await?);
    assert!(
        t.contains("Who ordered most?") && t.contains("list_tables"),
        "{t}"
    );

    let err = stack
        .client
        .get_prompt(GetPromptRequestParams::new("optimize_query"))
        .await
        .err()
        .context("a prompt without its required argument was served")?;
    assert!(
        format!("{err:?}").contains("needs the argument `sql`"),
        "{err:?}"
    );
    let err = stack
        .client
        .get_prompt(GetPromptRequestParams::new("nope"))
        .await
        .err()
        .context("an unknown prompt was served")?;
    assert!(format!("{err:?}").contains("no prompt named"), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn older_protocol_versions_get_the_same_surface() -> Result<()> {
    use rmcp::model::ProtocolVersion;
    let stack = Stack::start(SHOP).await?;
    for version in [ProtocolVersion::V_2025_06_18, ProtocolVersion::V_2025_11_25] {
        let client =
            mcp::http_client_with_version(&stack.gateway.mcp_url(), version.clone()).await?;
        let tools = client.list_all_tools().await?;
        let describe = tools
            .iter()
            .find(|t| t.name == "describe_table")
            .with_context(|| format!("{version}: no describe_table"))?;
        assert!(
            describe.output_schema.is_some(),
            "{version}: outputSchema dropped"
        );
        let res = mcp::call_tool(&client, "describe_table", json!({"table": "customers"})).await?;
        mcp::check_output_schema(&client, "describe_table", &res).await?;
        assert_eq!(structured(&res)["sql_name"], "public.customers");
        // Four tables plus query-history://recent and stats://fleet.
        assert_eq!(client.list_all_resources().await?.len(), 6, "{version}");
        assert_eq!(client.list_all_prompts().await?.len(), 3, "{version}");
        assert_eq!(
            client
                .complete_resource_simple("schema://{database}/{schema}/{table}", "schema", "S")
                .await?,
            ["Sales"],
            "{version}"
        );
    }
    Ok(())
}
