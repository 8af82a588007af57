//! "Did you mean …?": the closest existing names for a name that does not
//! exist, from the schema cache.
//!
//! [`did_you_mean`] adds them to the hint of an undefined-table (42P01) or
//! undefined-column (42703) error, unless PostgreSQL gave a hint itself;
//! [`hint`] phrases a suggestion for any list of candidate names.

use std::sync::Arc;
use std::time::Duration;

use crate::error::WorkerError;
use crate::names::{qualified, quote_ident};
use crate::schema_cache::Catalog;
use crate::targets::Target;

/// Suggestions offered at most.
const MAX_SUGGESTIONS: usize = 3;
/// Relations whose columns are searched for a missing column, at most.
const MAX_TABLES: usize = 8;
/// Time allowed for reading the catalog to build a hint.
const HINT_TIMEOUT: Duration = Duration::from_secs(3);

/// The candidates closest to `wanted`, best first, as their `shown` form.
/// A candidate is close when its edit distance (ignoring case) is at most a
/// third of the name's length, and at least 1.
pub fn closest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = (&'a str, String)>,
) -> Vec<String> {
    let wanted_lc = wanted.to_lowercase();
    let limit = (wanted.chars().count() / 3).max(1);
    let mut scored: Vec<(usize, String)> = candidates
        .into_iter()
        .filter_map(|(name, shown)| {
            let d = distance(&wanted_lc, &name.to_lowercase());
            (d <= limit).then_some((d, shown))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, s)| s)
        .collect()
}

/// "Did you mean …?" for `wanted` among `candidates` (name, how to write
/// it); empty when nothing is close.
pub fn hint<'a>(wanted: &str, candidates: impl IntoIterator<Item = (&'a str, String)>) -> String {
    phrase(&closest(wanted, candidates))
}

fn phrase(names: &[String]) -> String {
    let mut out = match names {
        [] => return String::new(),
        [one] => format!("Did you mean {one}?"),
        several => format!("Did you mean one of: {}?", several.join(", ")),
    };
    if names.iter().any(|n| n.contains('"')) {
        out.push_str(" Names with capitals or special characters must be written in double quotes, as shown.");
    }
    out
}

/// Adds the closest existing names to the hint of an undefined-table or
/// undefined-column error that came from running `sql` on `target`. Reads
/// the schema cache (and the catalog, when the cache is stale) in a task of
/// its own, so that a slow catalog never leaves a transaction half-done;
/// gives up waiting after a few seconds or on any failure, since the error
/// itself is what matters.
pub async fn did_you_mean(target: &Arc<Target>, sql: &str, err: &mut WorkerError) {
    let code = err.0.sqlstate.clone();
    if !matches!(code.as_str(), "42P01" | "42703") || !err.0.hint.is_empty() {
        return;
    }
    let (t, sql, message) = (target.clone(), sql.to_string(), err.0.message.clone());
    let work = tokio::spawn(async move {
        if code == "42P01" {
            missing_table(&t, &message).await
        } else {
            missing_column(&t, &sql, &message).await
        }
    });
    match tokio::time::timeout(HINT_TIMEOUT, work).await {
        Ok(Ok(Ok(h))) => err.0.hint = h,
        Ok(Ok(Err(e))) => {
            tracing::debug!(target = %target.name, error = %e, "no did-you-mean hint")
        }
        Ok(Err(e)) => tracing::warn!(target = %target.name, error = %e, "did-you-mean task failed"),
        Err(_) => tracing::debug!(target = %target.name, "no did-you-mean hint: catalog too slow"),
    }
}

fn timeout_ms() -> u32 {
    u32::try_from(HINT_TIMEOUT.as_millis()).unwrap_or(u32::MAX)
}

/// `relation "sales.ordrs" does not exist` → tables close to `ordrs`.
async fn missing_table(target: &Target, message: &str) -> Result<String, WorkerError> {
    let Some(name) = first_quoted(message) else {
        return Ok(String::new());
    };
    let catalog = target.schema_cache.catalog(target, timeout_ms()).await?;
    if let Some((schema, table)) = name.split_once('.')
        && catalog.schema(schema).is_some()
    {
        let in_schema = catalog
            .relations
            .iter()
            .filter(|r| r.info.schema == schema)
            .map(|r| (r.info.name.as_str(), qualified(schema, &r.info.name)));
        return Ok(hint(table, in_schema));
    }
    Ok(hint(name, catalog.relation_names()))
}

/// `column "nme" does not exist`, `column c.nme does not exist`,
/// `column "nme" of relation "t" does not exist` → columns close to `nme`
/// of the tables the statement names.
async fn missing_column(target: &Target, sql: &str, message: &str) -> Result<String, WorkerError> {
    let Some(column) = missing_column_name(message) else {
        return Ok(String::new());
    };
    let catalog = target.schema_cache.catalog(target, timeout_ms()).await?;
    let relations = match of_relation(message) {
        Some(rel) => catalog
            .resolve(None, rel)
            .map(|r| vec![r.oid])
            .unwrap_or_default(),
        None => tables_named_in(&catalog, sql),
    };
    let mut candidates: Vec<(String, String)> = Vec::new();
    let several = relations.len() > 1;
    for oid in relations {
        let Some(d) = target
            .schema_cache
            .description(target, oid, timeout_ms())
            .await?
        else {
            continue;
        };
        for c in &d.columns {
            let shown = if several {
                format!("{}.{}", quote_ident(&d.name), quote_ident(&c.name))
            } else {
                quote_ident(&c.name)
            };
            candidates.push((c.name.clone(), shown));
        }
    }
    Ok(hint(
        &column,
        candidates.iter().map(|(n, s)| (n.as_str(), s.clone())),
    ))
}

/// The relations whose names appear as identifiers in `sql`, at most
/// [`MAX_TABLES`], preferring those on the search path.
fn tables_named_in(catalog: &Catalog, sql: &str) -> Vec<u32> {
    let idents = identifiers(sql);
    let mut found: Vec<(bool, u32)> = catalog
        .relations
        .iter()
        .filter(|r| idents.contains(&r.info.name))
        .map(|r| (!r.info.on_search_path, r.oid))
        .collect();
    found.sort();
    found.into_iter().take(MAX_TABLES).map(|(_, o)| o).collect()
}

/// The text between the first pair of double quotes.
fn first_quoted(message: &str) -> Option<&str> {
    let start = message.find('"')? + 1;
    let len = message[start..].find('"')?;
    Some(&message[start..start + len])
}

/// The column of a 42703 message.
fn missing_column_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("column ")?;
    if rest.starts_with('"') {
        return first_quoted(rest).map(str::to_string);
    }
    let reference = rest.split(" does not exist").next()?;
    Some(
        reference
            .rsplit('.')
            .next()
            .unwrap_or(reference)
            .to_string(),
    )
}

/// The relation of `… of relation "t" does not exist`.
fn of_relation(message: &str) -> Option<&str> {
    let at = message.find(" of relation \"")? + " of relation ".len();
    first_quoted(&message[at..])
}

/// Identifiers in `sql` as PostgreSQL reads them: unquoted ones folded to
/// lower case, quoted ones exact. String literals and comments are skipped.
fn identifiers(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                // '' inside a literal reads as the end and start of two literals.
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' => {
                let mut ident = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' if chars.next_if_eq(&'"').is_some() => ident.push('"'),
                        '"' => break,
                        c => ident.push(c),
                    }
                }
                out.push(ident);
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut ident = String::from(c.to_ascii_lowercase());
                while let Some(c) = chars.next_if(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
                {
                    ident.push(c.to_ascii_lowercase());
                }
                out.push(ident);
            }
            _ => {}
        }
    }
    out
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&'static str]) -> Vec<(&'static str, String)> {
        list.iter().map(|n| (*n, quote_ident(n))).collect()
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance("ordrs", "orders"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_close_names_only() {
        let c = names(&["orders", "order_items", "customers", "Orders"]);
        assert_eq!(closest("ordrs", c.clone()), vec!["\"Orders\"", "orders"]);
        assert_eq!(closest("custmers", c.clone()), vec!["customers"]);
        assert!(closest("users; DROP TABLE x", c.clone()).is_empty());
        assert_eq!(hint("zzz", c.clone()), "");
        let h = hint("ORDERS", names(&["Orders"]));
        assert!(h.starts_with("Did you mean \"Orders\"?"), "{h}");
        assert!(h.contains("double quotes"), "{h}");
    }

    #[test]
    fn reads_postgres_messages() {
        assert_eq!(
            first_quoted("relation \"public.ordrs\" does not exist"),
            Some("public.ordrs")
        );
        assert_eq!(
            missing_column_name("column \"nme\" does not exist").as_deref(),
            Some("nme")
        );
        assert_eq!(
            missing_column_name("column c.nme does not exist").as_deref(),
            Some("nme")
        );
        let m = "column \"nme\" of relation \"customers\" does not exist";
        assert_eq!(missing_column_name(m).as_deref(), Some("nme"));
        assert_eq!(of_relation(m), Some("customers"));
    }

    #[test]
    fn finds_identifiers() {
        let ids = identifiers(
            "SELECT c.Name, 'orders' FROM \"Order Items\" oi -- customers\n JOIN Customers c /* x */ ON true",
        );
        assert!(ids.contains(&"Order Items".to_string()));
        assert!(ids.contains(&"customers".to_string()));
        assert!(ids.contains(&"name".to_string()));
        assert!(!ids.contains(&"orders".to_string()));
        assert!(!ids.contains(&"x".to_string()));
    }
}
