//! What the introspection tools and resources return: the JSON shapes of
//! schemas, table listings and table descriptions (with their JSON
//! Schemas), built from the worker's answers, plus their compact text form
//! for the model and the `schema://` URIs of tables.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use pgmcp_proto::v1;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a relation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Table,
    View,
    MaterializedView,
    ForeignTable,
    PartitionedTable,
}

impl Kind {
    pub fn from_proto(kind: i32) -> Kind {
        match v1::TableKind::try_from(kind).unwrap_or(v1::TableKind::Table) {
            v1::TableKind::View => Kind::View,
            v1::TableKind::MaterializedView => Kind::MaterializedView,
            v1::TableKind::ForeignTable => Kind::ForeignTable,
            v1::TableKind::PartitionedTable => Kind::PartitionedTable,
            v1::TableKind::Table | v1::TableKind::Unspecified => Kind::Table,
        }
    }

    pub fn to_proto(self) -> v1::TableKind {
        match self {
            Kind::Table => v1::TableKind::Table,
            Kind::View => v1::TableKind::View,
            Kind::MaterializedView => v1::TableKind::MaterializedView,
            Kind::ForeignTable => v1::TableKind::ForeignTable,
            Kind::PartitionedTable => v1::TableKind::PartitionedTable,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Table => "table",
            Kind::View => "view",
            Kind::MaterializedView => "materialized view",
            Kind::ForeignTable => "foreign table",
            Kind::PartitionedTable => "partitioned table",
        }
    }
}

/// A schema.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SchemaOut {
    /// Schema name exactly as stored.
    pub name: String,
    /// Role that owns it.
    pub owner: String,
    /// True for `pg_catalog` and `information_schema`.
    pub system: bool,
    /// Number of tables, views, materialized views, foreign and partitioned tables in it.
    pub table_count: u32,
    /// True when its tables can be named without the schema (it is on the `search_path`).
    pub on_search_path: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl From<v1::SchemaInfo> for SchemaOut {
    fn from(s: v1::SchemaInfo) -> Self {
        SchemaOut {
            name: s.name,
            owner: s.owner,
            system: s.system,
            table_count: s.table_count,
            on_search_path: s.on_search_path,
            comment: non_empty(s.comment),
        }
    }
}

/// One entry of a table listing.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TableOut {
    /// Schema name exactly as stored.
    pub schema: String,
    /// Table name exactly as stored.
    pub name: String,
    /// The name as SQL must spell it, schema-qualified and double-quoted where
    /// needed: `public.orders`, `"Sales"."Order Items"`.
    pub sql_name: String,
    pub kind: Kind,
    /// PostgreSQL's row estimate (from the last VACUUM/ANALYZE); absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_rows: Option<i64>,
    /// Size on disk including indexes and TOAST, in bytes; absent for views and foreign tables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// For a partition: its parent table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<String>,
    /// The `schema://` resource that describes this table.
    pub uri: String,
}

impl TableOut {
    pub fn new(database: &str, t: v1::TableInfo) -> Self {
        TableOut {
            sql_name: qualified(&t.schema, &t.name),
            uri: table_uri(database, &t.schema, &t.name),
            kind: Kind::from_proto(t.kind),
            estimated_rows: t.estimated_rows,
            total_bytes: t.total_bytes,
            comment: non_empty(t.comment),
            partition_of: non_empty(t.partition_of),
            schema: t.schema,
            name: t.name,
        }
    }

    /// One line: `public.orders — table, ~1,200 rows, 96 kB — comment`.
    pub fn line(&self) -> String {
        let mut facts = vec![self.kind.as_str().to_string()];
        if let Some(r) = self.estimated_rows {
            facts.push(format!("~{} rows", thousands(r)));
        }
        if let Some(b) = self.total_bytes {
            facts.push(human_bytes(b));
        }
        if let Some(p) = &self.partition_of {
            facts.push(format!("partition of {p}"));
        }
        let mut line = format!("{} — {}", self.sql_name, facts.join(", "));
        if let Some(c) = &self.comment {
            line.push_str(" — ");
            line.push_str(&one_line(c));
        }
        line
    }
}

/// Everything about one table.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TableDescriptionOut {
    /// The database (target) it lives in.
    pub database: String,
    pub schema: String,
    pub name: String,
    /// The name as SQL must spell it (qualified, quoted where needed).
    pub sql_name: String,
    pub kind: Kind,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_rows: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<i64>,
    /// Columns in table order.
    pub columns: Vec<ColumnOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<KeyOut>,
    /// Foreign keys of this table: the tables it references.
    pub foreign_keys: Vec<ForeignKeyOut>,
    /// Foreign keys of other tables that reference this one.
    pub referenced_by: Vec<ForeignKeyOut>,
    pub unique_constraints: Vec<KeyOut>,
    pub check_constraints: Vec<ConstraintOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclusion_constraints: Vec<ConstraintOut>,
    pub indexes: Vec<IndexOut>,
    pub triggers: Vec<TriggerOut>,
    /// For views and materialized views: the defining query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_definition: Option<String>,
    /// For partitioned tables: the partition key, e.g. `RANGE (created_at)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// For partitions: the parent table and the partition's bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_bound: Option<String>,
    /// The `schema://` resource of this description.
    pub uri: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ColumnOut {
    pub name: String,
    /// 1-based position in the table.
    pub position: u32,
    /// Type as SQL spells it: `integer`, `character varying(20)`, `numeric(10,2)`, `text[]`.
    pub r#type: String,
    pub nullable: bool,
    /// Default expression, e.g. `now()`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// `always` or `by default` for identity columns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The expression of a generated column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A primary key or unique constraint.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KeyOut {
    pub name: String,
    pub columns: Vec<String>,
    pub definition: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ForeignKeyOut {
    /// Constraint name.
    pub name: String,
    /// The referencing table (SQL name) and its columns.
    pub table: String,
    pub columns: Vec<String>,
    /// The referenced table (SQL name) and its columns, pairwise with `columns`.
    pub referenced_table: String,
    pub referenced_columns: Vec<String>,
    /// `no action`, `restrict`, `cascade`, `set null` or `set default`.
    pub on_update: String,
    pub on_delete: String,
    pub definition: String,
}

/// A check or exclusion constraint.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ConstraintOut {
    pub name: String,
    pub definition: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct IndexOut {
    pub name: String,
    /// The complete CREATE INDEX statement.
    pub definition: String,
    /// `btree`, `hash`, `gin`, `gist`, `brin`, …
    pub method: String,
    pub unique: bool,
    pub primary: bool,
    /// False for an index left invalid by a failed CREATE INDEX CONCURRENTLY.
    pub valid: bool,
    /// Key columns (or expressions) in order; sort options such as DESC are in `definition`.
    pub columns: Vec<String>,
    pub size_bytes: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TriggerOut {
    pub name: String,
    /// The complete CREATE TRIGGER statement.
    pub definition: String,
    /// `before`, `after` or `instead of`.
    pub timing: String,
    /// `insert`, `update`, `delete`, `truncate`.
    pub events: Vec<String>,
    /// `row` or `statement`.
    pub level: String,
    pub function: String,
    pub enabled: bool,
}

impl TableDescriptionOut {
    pub fn new(database: &str, d: v1::TableDescription) -> Self {
        let fk = |f: v1::ForeignKey| ForeignKeyOut {
            table: qualified(&f.schema, &f.table),
            referenced_table: qualified(&f.referenced_schema, &f.referenced_table),
            name: f.name,
            columns: f.columns,
            referenced_columns: f.referenced_columns,
            on_update: f.on_update,
            on_delete: f.on_delete,
            definition: f.definition,
        };
        let key = |k: v1::KeyConstraint| KeyOut {
            name: k.name,
            columns: k.columns,
            definition: k.definition,
        };
        let constraint = |c: v1::CheckConstraint| ConstraintOut {
            name: c.name,
            definition: c.definition,
            columns: c.columns,
        };
        TableDescriptionOut {
            database: database.to_string(),
            sql_name: qualified(&d.schema, &d.name),
            uri: table_uri(database, &d.schema, &d.name),
            kind: Kind::from_proto(d.kind),
            owner: d.owner,
            comment: non_empty(d.comment),
            estimated_rows: d.estimated_rows,
            total_bytes: d.total_bytes,
            columns: d
                .columns
                .into_iter()
                .map(|c| ColumnOut {
                    name: c.name,
                    position: c.position,
                    r#type: c.r#type,
                    nullable: c.nullable,
                    default: non_empty(c.default),
                    identity: non_empty(c.identity),
                    generated: non_empty(c.generated),
                    comment: non_empty(c.comment),
                })
                .collect(),
            primary_key: d.primary_key.map(key),
            foreign_keys: d.foreign_keys.into_iter().map(fk).collect(),
            referenced_by: d.referenced_by.into_iter().map(fk).collect(),
            unique_constraints: d.unique_constraints.into_iter().map(key).collect(),
            check_constraints: d.check_constraints.into_iter().map(constraint).collect(),
            exclusion_constraints: d
                .exclusion_constraints
                .into_iter()
                .map(constraint)
                .collect(),
            indexes: d
                .indexes
                .into_iter()
                .map(|i| IndexOut {
                    name: i.name,
                    definition: i.definition,
                    method: i.method,
                    unique: i.unique,
                    primary: i.primary,
                    valid: i.valid,
                    columns: i.columns,
                    size_bytes: i.size_bytes,
                })
                .collect(),
            triggers: d
                .triggers
                .into_iter()
                .map(|t| TriggerOut {
                    name: t.name,
                    definition: t.definition,
                    timing: t.timing,
                    events: t.events,
                    level: t.level,
                    function: t.function,
                    enabled: t.enabled,
                })
                .collect(),
            view_definition: non_empty(d.view_definition),
            partition_key: non_empty(d.partition_key),
            partition_of: non_empty(d.partition_of),
            partition_bound: non_empty(d.partition_bound),
            schema: d.schema,
            name: d.name,
        }
    }

    /// Compact text for the model.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut facts = vec![self.kind.as_str().to_string()];
        if let Some(r) = self.estimated_rows {
            facts.push(format!("~{} rows", thousands(r)));
        }
        if let Some(b) = self.total_bytes {
            facts.push(human_bytes(b));
        }
        out.push_str(&format!(
            "{} ({}) in database {}",
            self.sql_name,
            facts.join(", "),
            self.database
        ));
        if let Some(c) = &self.comment {
            out.push_str(&format!("\nComment: {}", one_line(c)));
        }
        out.push_str("\nColumns:");
        for c in &self.columns {
            out.push_str(&format!("\n  {} {}", quote_ident(&c.name), c.r#type));
            if !c.nullable {
                out.push_str(" NOT NULL");
            }
            if let Some(d) = &c.default {
                out.push_str(&format!(" DEFAULT {d}"));
            }
            if let Some(i) = &c.identity {
                out.push_str(&format!(" GENERATED {} AS IDENTITY", i.to_uppercase()));
            }
            if let Some(g) = &c.generated {
                out.push_str(&format!(" GENERATED ALWAYS AS ({g}) STORED"));
            }
            if let Some(cm) = &c.comment {
                out.push_str(&format!(" -- {}", one_line(cm)));
            }
        }
        if let Some(pk) = &self.primary_key {
            out.push_str(&format!(
                "\nPrimary key: {} ({})",
                pk.name,
                pk.columns.join(", ")
            ));
        }
        let fk_line = |f: &ForeignKeyOut| {
            format!(
                "{}({}) → {}({}){}{}",
                f.table,
                f.columns.join(", "),
                f.referenced_table,
                f.referenced_columns.join(", "),
                if f.on_delete == "no action" {
                    String::new()
                } else {
                    format!(" ON DELETE {}", f.on_delete.to_uppercase())
                },
                if f.on_update == "no action" {
                    String::new()
                } else {
                    format!(" ON UPDATE {}", f.on_update.to_uppercase())
                },
            )
        };
        section(
            &mut out,
            "Foreign keys",
            self.foreign_keys.iter().map(fk_line),
        );
        section(
            &mut out,
            "Referenced by",
            self.referenced_by.iter().map(fk_line),
        );
        section(
            &mut out,
            "Unique constraints",
            self.unique_constraints
                .iter()
                .map(|k| format!("{} ({})", k.name, k.columns.join(", "))),
        );
        section(
            &mut out,
            "Check constraints",
            self.check_constraints
                .iter()
                .map(|c| format!("{}: {}", c.name, c.definition)),
        );
        section(
            &mut out,
            "Exclusion constraints",
            self.exclusion_constraints
                .iter()
                .map(|c| format!("{}: {}", c.name, c.definition)),
        );
        section(
            &mut out,
            "Indexes",
            self.indexes.iter().map(|i| {
                let mut s = i.definition.clone();
                if !i.valid {
                    s.push_str(" -- INVALID");
                }
                s
            }),
        );
        section(
            &mut out,
            "Triggers",
            self.triggers.iter().map(|t| {
                format!(
                    "{}: {} {} FOR EACH {} EXECUTE {}{}",
                    t.name,
                    t.timing.to_uppercase(),
                    t.events.join(" OR ").to_uppercase(),
                    t.level.to_uppercase(),
                    t.function,
                    if t.enabled { "" } else { " (disabled)" }
                )
            }),
        );
        if let Some(p) = &self.partition_key {
            out.push_str(&format!("\nPartitioned by: {p}"));
        }
        if let Some(p) = &self.partition_of {
            out.push_str(&format!(
                "\nPartition of: {p} {}",
                self.partition_bound.as_deref().unwrap_or("")
            ));
        }
        if let Some(v) = &self.view_definition {
            out.push_str(&format!("\nDefinition:\n{}", v.trim_end()));
        }
        out
    }
}

fn section(out: &mut String, title: &str, lines: impl Iterator<Item = String>) {
    let lines: Vec<String> = lines.collect();
    if lines.is_empty() {
        return;
    }
    out.push_str(&format!("\n{title}:"));
    for l in lines {
        out.push_str("\n  ");
        out.push_str(&l);
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `98304` → `96 kB`.
pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

pub use pgmcp_proto::sql_names::{qualified, quote_ident};

/// Characters kept as they are in a `schema://` URI segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one URI path segment.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// `schema://{database}/{schema}/{table}`, each part percent-encoded.
pub fn table_uri(database: &str, schema: &str, table: &str) -> String {
    format!(
        "schema://{}/{}/{}",
        encode_segment(database),
        encode_segment(schema),
        encode_segment(table)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uris() {
        assert_eq!(qualified("public", "orders"), "public.orders");
        assert_eq!(
            qualified("Sales", "Order Items"),
            "\"Sales\".\"Order Items\""
        );
        assert_eq!(
            table_uri("app", "Sales", "Order Items"),
            "schema://app/Sales/Order%20Items"
        );
        assert_eq!(table_uri("a/b", "s", "t?"), "schema://a%2Fb/s/t%3F");
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(human_bytes(8192), "8.0 kB");
        assert_eq!(human_bytes(98304), "96 kB");
        assert_eq!(human_bytes(10), "10 bytes");
    }
}
