//! The schema cache: what a target's catalog holds, read once and kept for
//! `--schema-cache-ttl-s`.
//!
//! Two things are cached per target: the [`Catalog`] (schemas, every
//! listable relation with its kind, size, row estimate and comment, and the
//! session's `search_path`), and the [`TableDescription`] of each relation
//! that was described. Both are read in read-only transactions through
//! [`Session`], with names bound as parameters or matched in memory, never
//! spliced into SQL.
//!
//! Entries expire after the TTL (0 disables caching). [`SchemaCache::invalidate`]
//! drops everything at once; call it after any DDL this worker runs on the
//! target (`execute`, `transaction`), so the next introspection call sees
//! the change. A load that was under way when the cache was invalidated is
//! returned to its caller but not kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::{
    CheckConstraint, ColumnInfo, ForeignKey, IndexInfo, KeyConstraint, TableDescription, TableInfo,
    TableKind, TriggerInfo,
};
use sqlx::postgres::types::Oid;
use sqlx::{PgConnection, Row};

use crate::error::WorkerError;
use crate::names::{parse_qualified, qualified};
use crate::session::{Access, Session};
use crate::suggest;
use crate::targets::Target;

/// Schemas that hold PostgreSQL's own catalog.
pub const SYSTEM_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];

/// A target's cached catalog and table descriptions.
pub struct SchemaCache {
    ttl: Duration,
    state: Mutex<State>,
    /// Held while the catalog loads, so concurrent calls wait for one load.
    loading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// Bumped by every invalidation.
    generation: u64,
    catalog: Option<Arc<Catalog>>,
    descriptions: HashMap<u32, (Instant, Arc<TableDescription>)>,
}

/// One schema of the catalog.
#[derive(Debug, Clone)]
pub struct SchemaEntry {
    pub name: String,
    pub owner: String,
    pub comment: String,
    pub system: bool,
}

/// One listable relation: the listing entry plus its OID.
#[derive(Debug, Clone)]
pub struct Relation {
    pub oid: u32,
    pub info: TableInfo,
}

/// A snapshot of a target's schemas and relations.
#[derive(Debug)]
pub struct Catalog {
    pub loaded_at: Instant,
    /// `current_schemas(true)`: where unqualified names are looked up, in order.
    pub search_path: Vec<String>,
    /// Schemas in name order.
    pub schemas: Vec<SchemaEntry>,
    /// Relations in (schema, name) order.
    pub relations: Vec<Relation>,
}

impl SchemaCache {
    /// A cache whose entries live for `ttl` (zero: always read afresh).
    pub fn new(ttl: Duration) -> Self {
        SchemaCache {
            ttl,
            state: Mutex::new(State::default()),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    /// Drops everything cached for this target. Call after DDL on the target
    /// (CREATE/ALTER/DROP/COMMENT …) has committed; the next introspection
    /// call, and the next did-you-mean hint, read the catalog afresh.
    /// Cheap and safe to call at any time from any task.
    pub fn invalidate(&self) {
        let mut st = self.lock();
        st.generation += 1;
        st.catalog = None;
        st.descriptions.clear();
    }

    /// The catalog, from the cache while fresh, else read now on a pooled
    /// connection within `timeout_ms`.
    pub async fn catalog(
        &self,
        target: &Target,
        timeout_ms: u32,
    ) -> Result<Arc<Catalog>, WorkerError> {
        if let Some(c) = self.fresh_catalog() {
            return Ok(c);
        }
        let _loading = self.loading.lock().await;
        if let Some(c) = self.fresh_catalog() {
            return Ok(c);
        }
        let generation = self.lock().generation;
        let catalog = Arc::new(with_session(target, timeout_ms, load_catalog).await?);
        let mut st = self.lock();
        if st.generation == generation && !self.ttl.is_zero() {
            st.catalog = Some(catalog.clone());
        }
        Ok(catalog)
    }

    /// The description of relation `oid`, from the cache while fresh.
    /// `None` when the relation no longer exists.
    pub async fn description(
        &self,
        target: &Target,
        oid: u32,
        timeout_ms: u32,
    ) -> Result<Option<Arc<TableDescription>>, WorkerError> {
        let generation = {
            let st = self.lock();
            if let Some((at, d)) = st.descriptions.get(&oid)
                && at.elapsed() < self.ttl
            {
                return Ok(Some(d.clone()));
            }
            st.generation
        };
        let loaded = with_session(target, timeout_ms, |conn| {
            Box::pin(load_description(conn, oid))
        })
        .await?;
        let Some(d) = loaded else { return Ok(None) };
        let d = Arc::new(d);
        let mut st = self.lock();
        if st.generation == generation && !self.ttl.is_zero() {
            st.descriptions.insert(oid, (Instant::now(), d.clone()));
        }
        Ok(Some(d))
    }

    /// Resolves a relation name (see [`Catalog::resolve`]) and describes it.
    /// A relation dropped since the catalog was read is looked up again in a
    /// fresh catalog before the name is reported missing.
    pub async fn describe(
        &self,
        target: &Target,
        schema: Option<&str>,
        table: &str,
        timeout_ms: u32,
    ) -> Result<Arc<TableDescription>, WorkerError> {
        for attempt in 0..2 {
            let catalog = self.catalog(target, timeout_ms).await?;
            let oid = catalog.resolve(schema, table)?.oid;
            if let Some(d) = self.description(target, oid, timeout_ms).await? {
                return Ok(d);
            }
            if attempt == 0 {
                self.invalidate();
            }
        }
        Err(WorkerError::new(
            ErrorKind::UndefinedObject,
            format!("table \"{table}\" was dropped while it was being described"),
        ))
    }

    fn fresh_catalog(&self) -> Option<Arc<Catalog>> {
        let st = self.lock();
        st.catalog
            .as_ref()
            .filter(|c| c.loaded_at.elapsed() < self.ttl)
            .cloned()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is replaced wholesale; a panic cannot leave it half-done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Runs `f` on a connection inside a read-only transaction that is rolled
/// back afterwards.
async fn with_session<T>(
    target: &Target,
    timeout_ms: u32,
    f: impl for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, WorkerError>>,
) -> Result<T, WorkerError> {
    let mut session = Session::begin(target, Access::ReadOnly, timeout_ms).await?;
    let out = f(session.conn()).await;
    session.end_after(target, out.as_ref().err()).await;
    out
}

impl Catalog {
    /// True when `schema` is on the search path.
    pub fn on_search_path(&self, schema: &str) -> bool {
        self.search_path.iter().any(|s| s == schema)
    }

    pub fn schema(&self, name: &str) -> Option<&SchemaEntry> {
        self.schemas.iter().find(|s| s.name == name)
    }

    /// Finds a schema by exact name, else by reading `name` as a SQL
    /// identifier (`"Sales"`, `SALES` → `sales`).
    pub fn resolve_schema(&self, name: &str) -> Result<&SchemaEntry, WorkerError> {
        if let Some(s) = self.schema(name) {
            return Ok(s);
        }
        if let Some([part]) = parse_qualified(name).as_deref()
            && let Some(s) = self.schema(part)
        {
            return Ok(s);
        }
        let mut err = WorkerError::new(
            ErrorKind::UndefinedObject,
            format!("schema \"{name}\" does not exist"),
        );
        err.0.schema_name = name.to_string();
        err.0.hint = suggest::hint(
            name,
            self.schemas
                .iter()
                .map(|s| (s.name.as_str(), crate::names::quote_ident(&s.name))),
        );
        Err(err)
    }

    /// Resolves a relation name. With `schema`, both names are matched
    /// exactly, then as SQL identifiers. Without, `table` is tried as an
    /// exact name, then as a SQL name that may be qualified and quoted
    /// (`public.users`, `"Sales"."Order Items"`), then split at its first
    /// `.` into exact schema and table names. Unqualified names are looked
    /// up along the search path, else must be unique.
    pub fn resolve(&self, schema: Option<&str>, table: &str) -> Result<&Relation, WorkerError> {
        let found = match schema.filter(|s| !s.is_empty()) {
            Some(schema) => {
                let schema = &self.resolve_schema(schema)?.name;
                exact_then_ident(table)
                    .iter()
                    .find_map(|t| self.qualified(schema, t))
            }
            None => match self.unqualified(table)? {
                Some(r) => Some(r),
                None => match parse_qualified(table).as_deref() {
                    Some([name]) => self.unqualified(name)?,
                    Some([schema, name]) => self.qualified(schema, name),
                    _ => None,
                }
                .or_else(|| {
                    table
                        .split_once('.')
                        .and_then(|(s, t)| self.qualified(s, t))
                }),
            },
        };
        found.ok_or_else(|| self.not_found(schema, table))
    }

    fn qualified(&self, schema: &str, name: &str) -> Option<&Relation> {
        self.relations
            .iter()
            .find(|r| r.info.schema == schema && r.info.name == name)
    }

    /// An unqualified name: the first match along the search path, else the
    /// only match anywhere; several matches off the path are ambiguous.
    fn unqualified(&self, name: &str) -> Result<Option<&Relation>, WorkerError> {
        let matches: Vec<&Relation> = self
            .relations
            .iter()
            .filter(|r| r.info.name == name)
            .collect();
        for schema in &self.search_path {
            if let Some(r) = matches.iter().find(|r| &r.info.schema == schema) {
                return Ok(Some(r));
            }
        }
        match matches.as_slice() {
            [] => Ok(None),
            [only] => Ok(Some(only)),
            several => Err(WorkerError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "the name \"{name}\" is ambiguous: it exists in schemas {}; give the schema",
                    several
                        .iter()
                        .map(|r| format!("\"{}\"", r.info.schema))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    fn not_found(&self, schema: Option<&str>, table: &str) -> WorkerError {
        let shown = match schema.filter(|s| !s.is_empty()) {
            Some(s) => format!("{s}.{table}"),
            None => table.to_string(),
        };
        let mut err = WorkerError::new(
            ErrorKind::UndefinedObject,
            format!("table \"{shown}\" does not exist"),
        );
        err.0.table_name = table.to_string();
        if let Some(s) = schema {
            err.0.schema_name = s.to_string();
        }
        // Compare the table part of what was asked with every relation.
        let wanted = match schema {
            Some(_) => table.to_string(),
            None => parse_qualified(table)
                .and_then(|p| p.last().cloned())
                .or_else(|| table.split_once('.').map(|(_, t)| t.to_string()))
                .unwrap_or_else(|| table.to_string()),
        };
        err.0.hint = suggest::hint(&wanted, self.relation_names());
        err
    }

    /// (name, how to write it) for every relation: bare when its schema is on
    /// the search path, else qualified.
    pub fn relation_names(&self) -> impl Iterator<Item = (&str, String)> {
        self.relations.iter().map(|r| {
            let shown = if self.on_search_path(&r.info.schema) {
                crate::names::quote_ident(&r.info.name)
            } else {
                qualified(&r.info.schema, &r.info.name)
            };
            (r.info.name.as_str(), shown)
        })
    }
}

/// `name` exactly, then read as a single SQL identifier when that differs.
fn exact_then_ident(name: &str) -> Vec<String> {
    let mut out = vec![name.to_string()];
    if let Some([ident]) = parse_qualified(name).as_deref()
        && ident != name
    {
        out.push(ident.clone());
    }
    out
}

fn load_catalog(conn: &mut PgConnection) -> BoxFuture<'_, Result<Catalog, WorkerError>> {
    Box::pin(async move {
        let search_path: Vec<String> = sqlx::query("SELECT current_schemas(true)::text[]")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let schema_rows = sqlx::query(
            "SELECT n.nspname::text, pg_catalog.pg_get_userbyid(n.nspowner)::text, \
                    coalesce(d.description, '') \
             FROM pg_catalog.pg_namespace n \
             LEFT JOIN pg_catalog.pg_description d \
                    ON d.objoid = n.oid AND d.classoid = 'pg_catalog.pg_namespace'::regclass \
                   AND d.objsubid = 0 \
             WHERE n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut schemas = Vec::with_capacity(schema_rows.len());
        for row in schema_rows {
            let name: String = row.try_get(0)?;
            schemas.push(SchemaEntry {
                system: SYSTEM_SCHEMAS.contains(&name.as_str()),
                owner: row.try_get(1)?,
                comment: row.try_get(2)?,
                name,
            });
        }
        schemas.sort_by(|a, b| a.name.cmp(&b.name));

        let rel_rows = sqlx::query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, \
               CASE WHEN c.relkind = 'p' THEN \
                      (SELECT sum(pc.reltuples) FILTER (WHERE pc.reltuples >= 0)::int8 \
                       FROM pg_catalog.pg_partition_tree(c.oid) t \
                       JOIN pg_catalog.pg_class pc ON pc.oid = t.relid WHERE t.isleaf) \
                    WHEN c.relkind IN ('r', 'm') AND c.reltuples >= 0 THEN c.reltuples::int8 \
               END, \
               CASE WHEN c.relkind = 'p' THEN \
                      (SELECT sum(pg_catalog.pg_total_relation_size(t.relid))::int8 \
                       FROM pg_catalog.pg_partition_tree(c.oid) t) \
                    WHEN c.relkind IN ('r', 'm') THEN pg_catalog.pg_total_relation_size(c.oid) \
               END, \
               coalesce(d.description, ''), \
               CASE WHEN c.relispartition THEN coalesce( \
                      (SELECT format('%I.%I', pn.nspname, pc.relname) \
                       FROM pg_catalog.pg_inherits i \
                       JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent \
                       JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace \
                       WHERE i.inhrelid = c.oid LIMIT 1), '') ELSE '' END \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_catalog.pg_description d \
                    ON d.objoid = c.oid AND d.classoid = 'pg_catalog.pg_class'::regclass \
                   AND d.objsubid = 0 \
             WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p') \
               AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut relations = Vec::with_capacity(rel_rows.len());
        for row in rel_rows {
            let oid: Oid = row.try_get(0)?;
            let schema: String = row.try_get(1)?;
            let kind: String = row.try_get(3)?;
            relations.push(Relation {
                oid: oid.0,
                info: TableInfo {
                    on_search_path: search_path.contains(&schema),
                    schema,
                    name: row.try_get(2)?,
                    kind: kind_of(&kind) as i32,
                    estimated_rows: row.try_get(4)?,
                    total_bytes: row.try_get(5)?,
                    comment: row.try_get(6)?,
                    partition_of: row.try_get(7)?,
                },
            });
        }
        relations
            .sort_by(|a, b| (&a.info.schema, &a.info.name).cmp(&(&b.info.schema, &b.info.name)));
        Ok(Catalog {
            loaded_at: Instant::now(),
            search_path,
            schemas,
            relations,
        })
    })
}

/// `pg_class.relkind` → kind.
fn kind_of(relkind: &str) -> TableKind {
    match relkind {
        "r" => TableKind::Table,
        "v" => TableKind::View,
        "m" => TableKind::MaterializedView,
        "f" => TableKind::ForeignTable,
        "p" => TableKind::PartitionedTable,
        _ => TableKind::Unspecified,
    }
}

/// Reads everything about relation `oid`; `None` when it does not exist.
async fn load_description(
    conn: &mut PgConnection,
    oid: u32,
) -> Result<Option<TableDescription>, WorkerError> {
    let oid = Oid(oid);
    let Some(head) = sqlx::query(
        "SELECT n.nspname::text, c.relname::text, c.relkind::text, \
                pg_catalog.pg_get_userbyid(c.relowner)::text, \
                coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), ''), \
                CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid, true) ELSE '' END, \
                CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) ELSE '' END, \
                CASE WHEN c.relispartition \
                     THEN coalesce(pg_catalog.pg_get_expr(c.relpartbound, c.oid), '') ELSE '' END, \
                CASE WHEN c.relispartition THEN coalesce( \
                       (SELECT format('%I.%I', pn.nspname, pc.relname) \
                        FROM pg_catalog.pg_inherits i \
                        JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent \
                        JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace \
                        WHERE i.inhrelid = c.oid LIMIT 1), '') ELSE '' END, \
                CASE WHEN c.relkind = 'p' THEN \
                       (SELECT sum(pc.reltuples) FILTER (WHERE pc.reltuples >= 0)::int8 \
                        FROM pg_catalog.pg_partition_tree(c.oid) t \
                        JOIN pg_catalog.pg_class pc ON pc.oid = t.relid WHERE t.isleaf) \
                     WHEN c.relkind IN ('r', 'm') AND c.reltuples >= 0 THEN c.reltuples::int8 \
                END, \
                CASE WHEN c.relkind = 'p' THEN \
                       (SELECT sum(pg_catalog.pg_total_relation_size(t.relid))::int8 \
                        FROM pg_catalog.pg_partition_tree(c.oid) t) \
                     WHEN c.relkind IN ('r', 'm') THEN pg_catalog.pg_total_relation_size(c.oid) \
                END \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = $1",
    )
    .bind(oid)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let kind: String = head.try_get(2)?;
    let mut d = TableDescription {
        schema: head.try_get(0)?,
        name: head.try_get(1)?,
        kind: kind_of(&kind) as i32,
        owner: head.try_get(3)?,
        comment: head.try_get(4)?,
        view_definition: head.try_get::<Option<String>, _>(5)?.unwrap_or_default(),
        partition_key: head.try_get::<Option<String>, _>(6)?.unwrap_or_default(),
        partition_bound: head.try_get(7)?,
        partition_of: head.try_get(8)?,
        estimated_rows: head.try_get(9)?,
        total_bytes: head.try_get(10)?,
        ..TableDescription::default()
    };

    let columns = sqlx::query(
        "SELECT a.attname::text, a.attnum::int4, \
                pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, \
                CASE WHEN a.attgenerated = '' \
                     THEN coalesce(pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), '') ELSE '' END, \
                a.attidentity::text, \
                CASE WHEN a.attgenerated <> '' \
                     THEN coalesce(pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), '') ELSE '' END, \
                coalesce(pg_catalog.col_description(a.attrelid, a.attnum), '') \
         FROM pg_catalog.pg_attribute a \
         LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
         WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await?;
    for row in columns {
        let identity: String = row.try_get(5)?;
        d.columns.push(ColumnInfo {
            name: row.try_get(0)?,
            position: u32::try_from(row.try_get::<i32, _>(1)?).unwrap_or(0),
            r#type: row.try_get(2)?,
            nullable: row.try_get(3)?,
            default: row.try_get(4)?,
            identity: match identity.as_str() {
                "a" => "always",
                "d" => "by default",
                _ => "",
            }
            .to_string(),
            generated: row.try_get(6)?,
            comment: row.try_get(7)?,
        });
    }

    let constraints = sqlx::query(
        "SELECT con.conname::text, con.contype::text, pg_catalog.pg_get_constraintdef(con.oid, true), \
                ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, ord) \
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n \
                      ORDER BY k.ord), \
                n.nspname::text, c.relname::text, \
                coalesce(fn.nspname::text, ''), coalesce(fc.relname::text, ''), \
                ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, ord) \
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n \
                      ORDER BY k.ord), \
                con.confupdtype::text, con.confdeltype::text, \
                con.conrelid = $1, con.confrelid = $1 \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid \
         LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace \
         WHERE con.conrelid = $1 OR (con.confrelid = $1 AND con.contype = 'f') \
         ORDER BY con.conname, n.nspname, c.relname",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await?;
    for row in constraints {
        let name: String = row.try_get(0)?;
        let contype: String = row.try_get(1)?;
        let definition: String = row.try_get(2)?;
        let columns: Vec<String> = row.try_get(3)?;
        let own: bool = row.try_get(11)?;
        let references_this: bool = row.try_get(12)?;
        match contype.as_str() {
            "f" => {
                let fk = ForeignKey {
                    name,
                    schema: row.try_get(4)?,
                    table: row.try_get(5)?,
                    columns,
                    referenced_schema: row.try_get(6)?,
                    referenced_table: row.try_get(7)?,
                    referenced_columns: row.try_get(8)?,
                    on_update: action(&row.try_get::<String, _>(9)?).to_string(),
                    on_delete: action(&row.try_get::<String, _>(10)?).to_string(),
                    definition,
                };
                if references_this {
                    d.referenced_by.push(fk.clone());
                }
                if own {
                    d.foreign_keys.push(fk);
                }
            }
            "p" if own => {
                d.primary_key = Some(KeyConstraint {
                    name,
                    columns,
                    definition,
                })
            }
            "u" if own => d.unique_constraints.push(KeyConstraint {
                name,
                columns,
                definition,
            }),
            "c" if own => d.check_constraints.push(CheckConstraint {
                name,
                definition,
                columns,
            }),
            "x" if own => d.exclusion_constraints.push(CheckConstraint {
                name,
                definition,
                columns,
            }),
            _ => {}
        }
    }

    let indexes = sqlx::query(
        "SELECT ic.relname::text, pg_catalog.pg_get_indexdef(i.indexrelid), am.amname::text, \
                i.indisunique, i.indisprimary, i.indisvalid, \
                ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid, k, true) \
                      FROM generate_series(1, i.indnkeyatts::int) k), \
                pg_catalog.pg_relation_size(i.indexrelid) \
         FROM pg_catalog.pg_index i \
         JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
         JOIN pg_catalog.pg_am am ON am.oid = ic.relam \
         WHERE i.indrelid = $1 ORDER BY ic.relname",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await?;
    for row in indexes {
        d.indexes.push(IndexInfo {
            name: row.try_get(0)?,
            definition: row.try_get(1)?,
            method: row.try_get(2)?,
            unique: row.try_get(3)?,
            primary: row.try_get(4)?,
            valid: row.try_get(5)?,
            columns: row.try_get(6)?,
            size_bytes: row.try_get(7)?,
        });
    }

    let triggers = sqlx::query(
        "SELECT t.tgname::text, pg_catalog.pg_get_triggerdef(t.oid, true), t.tgtype::int4, \
                t.tgfoid::regproc::text, t.tgenabled::text \
         FROM pg_catalog.pg_trigger t \
         WHERE t.tgrelid = $1 AND NOT t.tgisinternal ORDER BY t.tgname",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await?;
    for row in triggers {
        let tgtype: i32 = row.try_get(2)?;
        let enabled: String = row.try_get(4)?;
        d.triggers.push(TriggerInfo {
            name: row.try_get(0)?,
            definition: row.try_get(1)?,
            timing: trigger_timing(tgtype).to_string(),
            events: trigger_events(tgtype),
            level: if tgtype & 1 != 0 { "row" } else { "statement" }.to_string(),
            function: row.try_get(3)?,
            enabled: enabled != "D",
        });
    }
    Ok(Some(d))
}

/// `pg_constraint.confupdtype`/`confdeltype` → action.
fn action(code: &str) -> &'static str {
    match code {
        "r" => "restrict",
        "c" => "cascade",
        "n" => "set null",
        "d" => "set default",
        _ => "no action",
    }
}

// Bits of `pg_trigger.tgtype` (src/include/catalog/pg_trigger.h).
const TRIGGER_TYPE_BEFORE: i32 = 1 << 1;
const TRIGGER_TYPE_INSERT: i32 = 1 << 2;
const TRIGGER_TYPE_DELETE: i32 = 1 << 3;
const TRIGGER_TYPE_UPDATE: i32 = 1 << 4;
const TRIGGER_TYPE_TRUNCATE: i32 = 1 << 5;
const TRIGGER_TYPE_INSTEAD: i32 = 1 << 6;

fn trigger_timing(tgtype: i32) -> &'static str {
    if tgtype & TRIGGER_TYPE_INSTEAD != 0 {
        "instead of"
    } else if tgtype & TRIGGER_TYPE_BEFORE != 0 {
        "before"
    } else {
        "after"
    }
}

fn trigger_events(tgtype: i32) -> Vec<String> {
    [
        (TRIGGER_TYPE_INSERT, "insert"),
        (TRIGGER_TYPE_UPDATE, "update"),
        (TRIGGER_TYPE_DELETE, "delete"),
        (TRIGGER_TYPE_TRUNCATE, "truncate"),
    ]
    .iter()
    .filter(|(bit, _)| tgtype & bit != 0)
    .map(|(_, name)| name.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(oid: u32, schema: &str, name: &str, on_path: bool) -> Relation {
        Relation {
            oid,
            info: TableInfo {
                schema: schema.into(),
                name: name.into(),
                on_search_path: on_path,
                ..TableInfo::default()
            },
        }
    }

    fn catalog() -> Catalog {
        Catalog {
            loaded_at: Instant::now(),
            search_path: vec!["pg_catalog".into(), "public".into()],
            schemas: ["a", "archive", "b", "pg_catalog", "public", "Sales"]
                .into_iter()
                .map(|name| SchemaEntry {
                    name: name.into(),
                    owner: "postgres".into(),
                    comment: String::new(),
                    system: name == "pg_catalog",
                })
                .collect(),
            relations: vec![
                rel(1, "public", "users", true),
                rel(2, "Sales", "Order Items", false),
                rel(3, "public", "Users", true),
                rel(4, "a", "dup", false),
                rel(5, "b", "dup", false),
                rel(6, "archive", "users", false),
            ],
        }
    }

    fn oid(c: &Catalog, schema: Option<&str>, table: &str) -> Option<u32> {
        c.resolve(schema, table).ok().map(|r| r.oid)
    }

    #[test]
    fn resolves_names() {
        let c = catalog();
        assert_eq!(oid(&c, None, "users"), Some(1));
        assert_eq!(oid(&c, None, "Users"), Some(3));
        assert_eq!(oid(&c, None, "USERS"), Some(1));
        assert_eq!(oid(&c, None, "public.users"), Some(1));
        assert_eq!(oid(&c, None, "archive.users"), Some(6));
        assert_eq!(oid(&c, None, r#""Sales"."Order Items""#), Some(2));
        assert_eq!(oid(&c, None, "Order Items"), Some(2));
        assert_eq!(oid(&c, None, "Sales.Order Items"), Some(2));
        assert_eq!(oid(&c, Some("Sales"), "Order Items"), Some(2));
        assert_eq!(oid(&c, Some("\"Sales\""), "\"Order Items\""), Some(2));
        assert_eq!(oid(&c, Some("PUBLIC"), "USERS"), Some(1));
        assert_eq!(oid(&c, Some("public"), "Users"), Some(3));
        assert_eq!(oid(&c, None, "users; DROP TABLE x"), None);
        assert_eq!(oid(&c, None, "nope.users"), None);
    }

    #[test]
    fn ambiguous_and_missing_names_explain_themselves() {
        let c = catalog();
        let err = c.resolve(None, "dup").err().map(|e| e.0.message);
        assert!(
            err.as_deref().is_some_and(|m| m.contains("ambiguous")),
            "{err:?}"
        );
        let err = c.resolve(None, "user").err();
        let hint = err.map(|e| e.0.hint).unwrap_or_default();
        assert!(hint.contains("users"), "{hint}");
    }

    #[test]
    fn trigger_bits() {
        // BEFORE INSERT OR UPDATE FOR EACH ROW
        let t = 1 | TRIGGER_TYPE_BEFORE | TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE;
        assert_eq!(trigger_timing(t), "before");
        assert_eq!(trigger_events(t), vec!["insert", "update"]);
        assert_eq!(trigger_timing(TRIGGER_TYPE_INSTEAD), "instead of");
        assert_eq!(trigger_timing(TRIGGER_TYPE_DELETE), "after");
    }
}
