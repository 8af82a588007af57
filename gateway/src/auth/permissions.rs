//! What a caller may do, and what each tool needs.
//!
//! A caller's [`Permissions`] grant three independent kinds of [`Access`] —
//! `read`, `write` and `dba` — each on every database or on a list of named
//! databases. The same grammar serves static tokens and JWT scopes:
//!
//! | item | grants |
//! |---|---|
//! | `read`, `write`, `dba` | that access on every database |
//! | `read:sales` | read on database `sales` only (repeat for more) |
//! | `all` or `*` | read, write and dba on every database |
//!
//! Every tool declares its [`Requirement`] in its `_meta` (see [`requires`]),
//! so `tools/list` can hide what the caller may not use and `tools/call` can
//! refuse with an error that names the missing permission. A tool that
//! declares nothing is refused to everyone (fail closed).

use std::collections::BTreeSet;
use std::fmt;

use rmcp::model::{JsonObject, MetaObject, Tool};
use serde_json::json;

/// Key under which a tool's requirement sits in its `_meta`.
pub const META_KEY: &str = "io.pgmcp/requires";

/// A kind of access. Each is granted on its own: `write` does not imply `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// Read data and schema (`query`, introspection, `explain` without analyze).
    Read,
    /// Change data or schema (`execute`, `transaction`, `bulk_insert`).
    Write,
    /// The DBA toolset (health, top queries, vacuum, analyze, cache control).
    Dba,
}

impl Access {
    pub const ALL: [Access; 3] = [Access::Read, Access::Write, Access::Dba];

    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Dba => "dba",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Access::Read),
            "write" => Some(Access::Write),
            "dba" => Some(Access::Dba),
            _ => None,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The databases one kind of access is granted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Databases {
    All,
    Only(BTreeSet<String>),
}

/// Everything a caller may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    read: Option<Databases>,
    write: Option<Databases>,
    dba: Option<Databases>,
}

/// Why a call is not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No grant of this access at all.
    Missing(Access),
    /// The access is granted, but not on this database.
    Database(Access, String),
    /// The access is granted on several databases and the call names none.
    NameOne(Access, Vec<String>),
}

impl Permissions {
    /// Every access on every database.
    pub fn all() -> Self {
        Permissions {
            read: Some(Databases::All),
            write: Some(Databases::All),
            dba: Some(Databases::All),
        }
    }

    /// Parses items of the grammar in the module docs. Unknown items are
    /// errors (a typo must not silently grant less, or more).
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut p = Permissions::default();
        for item in items {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            p.add(item).ok_or_else(|| {
                format!(
                    "unknown permission `{item}`: use read, write, dba (optionally as read:DATABASE), or all"
                )
            })?;
        }
        Ok(p)
    }

    /// Adds one item; `None` when it is not of the grammar.
    pub fn add(&mut self, item: &str) -> Option<()> {
        if item == "all" || item == "*" {
            for a in Access::ALL {
                self.grant(a, None);
            }
            return Some(());
        }
        let (access, database) = match item.split_once(':') {
            Some((a, db)) if !db.is_empty() => (a, Some(db)),
            Some(_) => return None,
            None => (item, None),
        };
        let access = Access::parse(access)?;
        self.grant(access, database);
        Some(())
    }

    /// Grants `access` on `database`, or on every database when `None`.
    pub fn grant(&mut self, access: Access, database: Option<&str>) {
        let slot = self.slot_mut(access);
        match (slot.as_mut(), database) {
            (Some(Databases::All), _) => {}
            (_, None) => *slot = Some(Databases::All),
            (Some(Databases::Only(set)), Some(db)) => {
                set.insert(db.to_string());
            }
            (None, Some(db)) => *slot = Some(Databases::Only(BTreeSet::from([db.to_string()]))),
        }
    }

    fn slot(&self, access: Access) -> &Option<Databases> {
        match access {
            Access::Read => &self.read,
            Access::Write => &self.write,
            Access::Dba => &self.dba,
        }
    }

    fn slot_mut(&mut self, access: Access) -> &mut Option<Databases> {
        match access {
            Access::Read => &mut self.read,
            Access::Write => &mut self.write,
            Access::Dba => &mut self.dba,
        }
    }

    /// True when `access` is granted on at least one database.
    pub fn any(&self, access: Access) -> bool {
        self.slot(access).is_some()
    }

    /// True when `access` is granted on `database`.
    pub fn allows(&self, access: Access, database: &str) -> bool {
        match self.slot(access) {
            Some(Databases::All) => true,
            Some(Databases::Only(set)) => set.contains(database),
            None => false,
        }
    }

    /// Decides a call of a tool needing `access` that names `database` (or
    /// none). `Ok(Some(db))` when the call named none but the caller may use
    /// exactly one database: the call must go to that one.
    pub fn resolve(
        &self,
        access: Access,
        database: Option<&str>,
    ) -> Result<Option<String>, Denied> {
        match (self.slot(access), database) {
            (None, _) => Err(Denied::Missing(access)),
            (Some(Databases::All), _) => Ok(None),
            (Some(Databases::Only(set)), Some(db)) => {
                if set.contains(db) {
                    Ok(None)
                } else {
                    Err(Denied::Database(access, db.to_string()))
                }
            }
            (Some(Databases::Only(set)), None) => match set.iter().next() {
                Some(only) if set.len() == 1 => Ok(Some(only.clone())),
                _ => Err(Denied::NameOne(access, set.iter().cloned().collect())),
            },
        }
    }

    /// The databases `access` is limited to; `None` when it covers all (or
    /// is not granted: check [`Permissions::any`] first).
    pub fn databases(&self, access: Access) -> Option<Vec<String>> {
        match self.slot(access) {
            Some(Databases::Only(set)) => Some(set.iter().cloned().collect()),
            _ => None,
        }
    }

    /// The grants in the grammar of the module docs, e.g. `read, write:sales`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for a in Access::ALL {
            match self.slot(a) {
                Some(Databases::All) => parts.push(a.as_str().to_string()),
                Some(Databases::Only(set)) => {
                    parts.extend(set.iter().map(|db| format!("{a}:{db}")));
                }
                None => {}
            }
        }
        if parts.is_empty() {
            "nothing".to_string()
        } else {
            parts.join(", ")
        }
    }
}

impl Denied {
    /// The caller-facing explanation, naming the missing permission.
    pub fn explain(&self, tool: &str, principal: &str, perms: &Permissions) -> String {
        let has = perms.describe();
        match self {
            Denied::Missing(a) => format!(
                "tool `{tool}` needs the `{a}` permission, which principal `{principal}` does not have \
                 (granted: {has}). Ask for a token or scope granting `{a}` (JWT scope `pgmcp:{a}`)."
            ),
            Denied::Database(a, db) => format!(
                "tool `{tool}` needs the `{a}` permission on database `{db}`, which principal `{principal}` \
                 does not have (granted: {has}). Use a database you may access, or ask for `{a}:{db}` \
                 (JWT scope `pgmcp:{a}:{db}`)."
            ),
            Denied::NameOne(a, dbs) => format!(
                "principal `{principal}` has `{a}` only on databases {}, so `{tool}` must name one with `database`.",
                dbs.iter()
                    .map(|d| format!("`{d}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Whether a tool works on one database or on the fleet as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The tool takes an optional `database` argument and touches only that
    /// database (the worker's only one when omitted).
    Database,
    /// The tool spans every database (e.g. `list_databases`, `fleet_status`);
    /// it is available to anyone holding its access on at least one database
    /// and must itself leave out what the caller may not see
    /// ([`crate::call::current`] gives the caller).
    Fleet,
}

/// What a tool needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    pub access: Access,
    pub scope: Scope,
}

/// `_meta` declaring that a tool needs `access` on the database it is
/// called for: `#[tool(meta = crate::auth::requires(Access::Read), …)]`.
pub fn requires(access: Access) -> MetaObject {
    meta(access, Scope::Database)
}

/// `_meta` declaring that a fleet-wide tool needs `access` on at least one
/// database.
pub fn requires_fleet(access: Access) -> MetaObject {
    meta(access, Scope::Fleet)
}

fn meta(access: Access, scope: Scope) -> MetaObject {
    let scope = match scope {
        Scope::Database => "database",
        Scope::Fleet => "fleet",
    };
    let mut m = MetaObject::new();
    m.insert(
        META_KEY.to_string(),
        json!({ "access": access.as_str(), "scope": scope }),
    );
    m
}

impl Requirement {
    /// The requirement `tool` declares; `None` when it declares none (or an
    /// unreadable one), in which case nobody may call it.
    pub fn of(tool: &Tool) -> Option<Requirement> {
        let v = tool.meta.as_ref()?.get(META_KEY)?;
        let access = Access::parse(v.get("access")?.as_str()?)?;
        let scope = match v.get("scope")?.as_str()? {
            "database" => Scope::Database,
            "fleet" => Scope::Fleet,
            _ => return None,
        };
        Some(Requirement { access, scope })
    }
}

/// Decides whether `principal` may call `tool` with `arguments`. A call
/// that names no database, by a caller limited to exactly one database, is
/// pointed at that database (its `database` argument is filled in), so it
/// cannot fall through to a worker's default target. The error names the
/// missing permission.
pub fn authorize(
    tool: &Tool,
    principal: &super::Principal,
    arguments: &mut Option<JsonObject>,
) -> Result<(), String> {
    let Some(req) = Requirement::of(tool) else {
        return Err(format!(
            "tool `{}` declares no permission requirement, so nobody may call it (a fault in pgmcp)",
            tool.name
        ));
    };
    let perms = &principal.permissions;
    match req.scope {
        Scope::Fleet if perms.any(req.access) => Ok(()),
        Scope::Fleet => {
            Err(Denied::Missing(req.access).explain(&tool.name, &principal.name, perms))
        }
        Scope::Database => {
            let named = arguments
                .as_ref()
                .and_then(|a| a.get("database"))
                .and_then(|d| d.as_str())
                .filter(|d| !d.is_empty());
            match perms.resolve(req.access, named) {
                Ok(None) => Ok(()),
                Ok(Some(only)) => {
                    arguments
                        .get_or_insert_with(JsonObject::new)
                        .insert("database".into(), serde_json::Value::String(only));
                    Ok(())
                }
                Err(denied) => Err(denied.explain(&tool.name, &principal.name, perms)),
            }
        }
    }
}

/// True when `principal` may see `tool` in `tools/list`.
pub fn visible(tool: &Tool, principal: &super::Principal) -> bool {
    Requirement::of(tool).is_some_and(|r| principal.permissions.any(r.access))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Principal;

    #[test]
    fn grammar() -> Result<(), String> {
        let p = Permissions::parse(["read", "write:sales", "write:hr"])?;
        assert!(p.allows(Access::Read, "anything"));
        assert!(p.allows(Access::Write, "sales"));
        assert!(!p.allows(Access::Write, "other"));
        assert!(!p.any(Access::Dba));
        assert_eq!(p.describe(), "read, write:hr, write:sales");
        assert_eq!(Permissions::parse(["*"])?, Permissions::all());
        assert!(Permissions::parse(["reed"]).is_err());
        assert!(Permissions::parse(["read:"]).is_err());
        // A grant on all databases absorbs narrower ones.
        let p = Permissions::parse(["read:a", "read"])?;
        assert_eq!(p.describe(), "read");
        Ok(())
    }

    #[test]
    fn resolving_the_database_of_a_call() -> Result<(), String> {
        let p = Permissions::parse(["read:sales"])?;
        assert_eq!(p.resolve(Access::Read, None), Ok(Some("sales".into())));
        assert_eq!(p.resolve(Access::Read, Some("sales")), Ok(None));
        assert_eq!(
            p.resolve(Access::Read, Some("hr")),
            Err(Denied::Database(Access::Read, "hr".into()))
        );
        assert_eq!(
            p.resolve(Access::Write, Some("sales")),
            Err(Denied::Missing(Access::Write))
        );
        let p = Permissions::parse(["read:a", "read:b"])?;
        assert!(matches!(
            p.resolve(Access::Read, None),
            Err(Denied::NameOne(..))
        ));
        let p = Permissions::parse(["read"])?;
        assert_eq!(p.resolve(Access::Read, None), Ok(None));
        Ok(())
    }

    #[test]
    fn denial_names_the_missing_permission() -> Result<(), String> {
        let p = Permissions::parse(["read:sales"])?;
        let msg = Denied::Database(Access::Read, "hr".into()).explain("query", "alice", &p);
        assert!(msg.contains("`read` permission on database `hr`"), "{msg}");
        assert!(msg.contains("read:sales"), "{msg}");
        let msg = Denied::Missing(Access::Write).explain("execute", "alice", &p);
        assert!(msg.contains("needs the `write` permission"), "{msg}");
        Ok(())
    }

    #[test]
    fn requirements_round_trip_through_meta() {
        let input = std::sync::Arc::new(serde_json::Map::new());
        let tool = Tool::new("t", "d", input).with_meta(requires(Access::Write));
        assert_eq!(
            Requirement::of(&tool),
            Some(Requirement {
                access: Access::Write,
                scope: Scope::Database
            })
        );
        let tool = tool.with_meta(requires_fleet(Access::Dba));
        assert_eq!(Requirement::of(&tool).map(|r| r.scope), Some(Scope::Fleet));
        let bare = Tool::new("t", "d", std::sync::Arc::new(serde_json::Map::new()));
        assert_eq!(Requirement::of(&bare), None);
    }

    fn tool(name: &'static str, meta: Option<MetaObject>) -> Tool {
        let t = Tool::new(name, "d", std::sync::Arc::new(JsonObject::new()));
        match meta {
            Some(m) => t.with_meta(m),
            None => t,
        }
    }

    #[test]
    fn each_tool_is_checked_against_its_own_requirement() -> Result<(), String> {
        let read = tool("reader", Some(requires(Access::Read)));
        let write = tool("writer", Some(requires(Access::Write)));
        let dba = tool("health", Some(requires_fleet(Access::Dba)));
        let undeclared = tool("mystery", None);
        let alice = Principal::token("alice", Permissions::parse(["read"])?);

        assert!(authorize(&read, &alice, &mut None).is_ok());
        let err = authorize(&write, &alice, &mut None)
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("tool `writer` needs the `write` permission"),
            "{err}"
        );
        let err = authorize(&dba, &alice, &mut None).err().unwrap_or_default();
        assert!(err.contains("`dba` permission"), "{err}");
        let err = authorize(&undeclared, &alice, &mut None)
            .err()
            .unwrap_or_default();
        assert!(err.contains("declares no permission"), "{err}");
        assert!(visible(&read, &alice));
        assert!(!visible(&write, &alice));
        assert!(!visible(&dba, &alice));
        assert!(!visible(&undeclared, &alice));

        let admin = Principal::token("root", Permissions::all());
        assert!(authorize(&write, &admin, &mut None).is_ok());
        assert!(authorize(&dba, &admin, &mut None).is_ok());
        assert!(authorize(&undeclared, &admin, &mut None).is_err());
        Ok(())
    }

    #[test]
    fn a_caller_limited_to_one_database_is_pinned_to_it() -> Result<(), String> {
        let read = tool("reader", Some(requires(Access::Read)));
        let bob = Principal::token("bob", Permissions::parse(["read:sales"])?);
        let mut args = None;
        authorize(&read, &bob, &mut args)?;
        assert_eq!(
            args.and_then(|a| a.get("database").cloned()),
            Some(serde_json::json!("sales"))
        );
        let mut args = Some(
            serde_json::json!({"database": "hr"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let err = authorize(&read, &bob, &mut args).err().unwrap_or_default();
        assert!(err.contains("on database `hr`"), "{err}");
        Ok(())
    }
}
