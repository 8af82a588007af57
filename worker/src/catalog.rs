//! Type names as the catalog spells them, cached per target.
//!
//! Result columns report `pg_type.typname` ("int4", "bpchar", "mood"), with
//! `[]` after the element's name for arrays ("text[]"). Names are looked up
//! once per type and target, on the call's own connection.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::PgConnection;
use sqlx::Row;
use sqlx::postgres::PgTypeInfo;

use crate::error::WorkerError;

/// OID → display name.
#[derive(Default)]
pub struct TypeNames {
    names: Mutex<HashMap<u32, String>>,
}

impl TypeNames {
    /// Names for `types`, fetching the ones not seen before.
    pub async fn names(
        &self,
        conn: &mut PgConnection,
        types: &[PgTypeInfo],
    ) -> Result<Vec<String>, WorkerError> {
        let oids: Vec<u32> = types.iter().map(|t| t.oid().map_or(0, |o| o.0)).collect();
        let missing: Vec<i64> = {
            let names = self.lock();
            let mut m: Vec<i64> = oids
                .iter()
                .filter(|o| **o != 0 && !names.contains_key(o))
                .map(|o| i64::from(*o))
                .collect();
            m.sort_unstable();
            m.dedup();
            m
        };
        if !missing.is_empty() {
            let rows = sqlx::query(
                "SELECT t.oid::int8, (CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 \
                 THEN e.typname || '[]' ELSE t.typname END)::text \
                 FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem \
                 WHERE t.oid::int8 = ANY($1)",
            )
            .bind(&missing)
            .fetch_all(&mut *conn)
            .await?;
            let mut names = self.lock();
            for row in rows {
                let oid: i64 = row.try_get(0)?;
                let name: String = row.try_get(1)?;
                names.insert(u32::try_from(oid).unwrap_or(0), name);
            }
        }
        let names = self.lock();
        Ok(types
            .iter()
            .zip(&oids)
            .map(|(ty, oid)| {
                names
                    .get(oid)
                    .cloned()
                    .unwrap_or_else(|| sqlx::TypeInfo::name(ty).to_string())
            })
            .collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, String>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }
}
