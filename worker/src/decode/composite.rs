//! Composite values (row types) → JSON objects keyed by field name.
//!
//! Binary (`record_send`): i32 field count, then per field u32 type OID and
//! the value as (i32 length or -1 for NULL, bytes). Named composite types
//! are decoded with the field names and types sqlx resolved; anonymous
//! records (`ROW(1, 'a')`, type `record`) have only the OIDs in the data, so
//! their fields are named "f1", "f2", … (PostgreSQL's own convention, as in
//! `row_to_json`) and each non-NULL field must be of a built-in type.

use sqlx::postgres::PgTypeInfo;

use super::wire::{Reader, push_u64};
use super::{Ty, ty_matches, write_any, write_json_string};

pub(super) fn write_named(
    out: &mut Vec<u8>,
    fields: &[(String, PgTypeInfo)],
    raw: &[u8],
    depth: u32,
) -> Option<()> {
    let mut r = Reader::new(raw);
    if usize::try_from(r.i32()?).ok()? != fields.len() {
        return None;
    }
    out.push(b'{');
    for (i, (name, ty)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if !ty_matches(Ty::Info(ty), r.u32()?) {
            return None;
        }
        write_json_string(out, name);
        out.push(b':');
        write_any(out, Ty::Info(ty), r.value()?, depth + 1)?;
    }
    out.push(b'}');
    r.is_empty().then_some(())
}

pub(super) fn write_anonymous(out: &mut Vec<u8>, raw: &[u8], depth: u32) -> Option<()> {
    let mut r = Reader::new(raw);
    let count = usize::try_from(r.i32()?).ok()?;
    // Each field takes at least 8 bytes (OID and length).
    if count > r.remaining() / 8 {
        return None;
    }
    out.push(b'{');
    for i in 0..count {
        if i > 0 {
            out.push(b',');
        }
        let oid = r.u32()?;
        out.extend_from_slice(b"\"f");
        push_u64(out, (i as u64) + 1);
        out.extend_from_slice(b"\":");
        write_any(out, Ty::Oid(oid), r.value()?, depth + 1)?;
    }
    out.push(b'}');
    r.is_empty().then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(raw: &mut Vec<u8>, oid: u32, value: Option<&[u8]>) {
        raw.extend_from_slice(&oid.to_be_bytes());
        match value {
            Some(v) => {
                raw.extend_from_slice(&i32::try_from(v.len()).unwrap_or_default().to_be_bytes());
                raw.extend_from_slice(v);
            }
            None => raw.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }

    fn run(raw: &[u8]) -> Option<String> {
        let mut out = Vec::new();
        write_anonymous(&mut out, raw, 0)?;
        Some(String::from_utf8(out).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn anonymous_records() {
        let mut raw = 4i32.to_be_bytes().to_vec();
        field(&mut raw, 23, Some(&7i32.to_be_bytes()));
        field(&mut raw, 25, Some(b"a\"b"));
        // A NULL of a type we do not know is still just null.
        field(&mut raw, 99_999, None);
        let mut inner = 1i32.to_be_bytes().to_vec();
        field(&mut inner, 16, Some(&[1]));
        field(&mut raw, 2249, Some(&inner));
        assert_eq!(
            run(&raw),
            Some(r#"{"f1":7,"f2":"a\"b","f3":null,"f4":{"f1":true}}"#.into())
        );
        assert_eq!(run(&0i32.to_be_bytes()), Some("{}".into()));
    }

    #[test]
    fn anonymous_records_give_up_on_unknown_or_malformed_fields() {
        let mut raw = 1i32.to_be_bytes().to_vec();
        field(&mut raw, 99_999, Some(b"x"));
        assert_eq!(run(&raw), None);
        let mut raw = 2i32.to_be_bytes().to_vec();
        field(&mut raw, 23, Some(&7i32.to_be_bytes()));
        assert_eq!(run(&raw), None);
        assert_eq!(run(&i32::MAX.to_be_bytes()), None);
        assert_eq!(run(&(-1i32).to_be_bytes()), None);
        // Records nested deeper than MAX_DEPTH.
        let mut raw = 0i32.to_be_bytes().to_vec();
        for _ in 0..40 {
            let mut outer = 1i32.to_be_bytes().to_vec();
            field(&mut outer, 2249, Some(&raw));
            raw = outer;
        }
        assert_eq!(run(&raw), None);
    }
}
