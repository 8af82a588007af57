//! PostgreSQL values (binary wire format) → JSON text.
//!
//! Every value is written straight into the row's JSON buffer; nothing is
//! built as an intermediate tree. The encoding of each type is documented on
//! `RowBatch` in `proto/pgmcp/v1/worker.proto`. Types this module does not
//! know are converted to their text form by PostgreSQL ([`Outcome::NeedsText`]).

use sqlx::TypeInfo;
use sqlx::postgres::PgTypeInfo;

/// Result of writing one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The value was written.
    Written,
    /// The type has no decoder here; nothing was written. The caller writes
    /// the value's PostgreSQL text form as a JSON string instead.
    NeedsText,
}

/// Appends the JSON encoding of one value (`None` is SQL NULL) to `out`.
pub fn write_value(out: &mut Vec<u8>, ty: &PgTypeInfo, raw: Option<&[u8]>) -> Outcome {
    let Some(raw) = raw else {
        out.extend_from_slice(b"null");
        return Outcome::Written;
    };
    let start = out.len();
    let written = match ty.oid().map(|o| o.0) {
        Some(16) => raw.first().map(|b| out.extend_from_slice(if *b != 0 { b"true" } else { b"false" })),
        Some(21) => <[u8; 2]>::try_from(raw).ok().map(|b| push_display(out, i16::from_be_bytes(b))),
        Some(23) => <[u8; 4]>::try_from(raw).ok().map(|b| push_display(out, i32::from_be_bytes(b))),
        Some(20) => <[u8; 8]>::try_from(raw).ok().map(|b| push_display(out, i64::from_be_bytes(b))),
        Some(25 | 1043 | 1042 | 19) => std::str::from_utf8(raw).ok().map(|s| write_json_string(out, s)),
        Some(114) => std::str::from_utf8(raw).ok().map(|s| out.extend_from_slice(s.trim().as_bytes())),
        Some(3802) => raw.split_first().and_then(|(_, rest)| std::str::from_utf8(rest).ok()).map(|s| out.extend_from_slice(s.as_bytes())),
        _ => None,
    };
    let _ = ty.name();
    match written {
        Some(()) => Outcome::Written,
        None => {
            out.truncate(start);
            Outcome::NeedsText
        }
    }
}

fn push_display(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(out, "{v}");
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is correct and fast; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}
