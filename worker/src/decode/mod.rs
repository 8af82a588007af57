//! PostgreSQL values (binary wire format) → JSON text.
//!
//! Every value is written straight into the row's JSON buffer; nothing is
//! built as an intermediate tree. The encoding of each type is documented on
//! `RowBatch` in `proto/pgmcp/v1/worker.proto`. Types this module does not
//! know are converted to their text form by PostgreSQL ([`Outcome::NeedsText`]).
//!
//! Map: [`wire`] (reading the binary format, writing digits), [`numeric`]
//! (integers, floats, numeric, money), [`datetime`] (dates, times,
//! intervals), [`net`] (inet, cidr, MAC addresses), [`text`] (strings,
//! bytea, JSON, uuid, bit strings, pg_lsn …), [`array`](mod@array), [`range`]
//! (ranges and multiranges), [`composite`] (row types and anonymous records).
//!
//! Types are recognised in two ways. Built-in types have fixed OIDs (below
//! 10000 in every PostgreSQL), so a table maps those OIDs to decoders
//! ([`builtin`]); this is also all there is to go on inside anonymous
//! records, whose binary form names each field's type only by OID.
//! Everything else (enums, composites, domains, arrays and ranges of user
//! types) is decoded by the shape sqlx resolved for the column
//! ([`PgTypeKind`]). A value whose type, or any nested type, is neither is
//! left to PostgreSQL's text output; so is malformed binary input: decoders
//! never panic, they give up.

mod array;
mod composite;
mod datetime;
mod net;
mod numeric;
mod range;
mod text;
mod wire;

use sqlx::TypeInfo;
use sqlx::postgres::{PgTypeInfo, PgTypeKind};

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
///
/// On [`Outcome::NeedsText`] `out` is left exactly as it was.
pub fn write_value(out: &mut Vec<u8>, ty: &PgTypeInfo, raw: Option<&[u8]>) -> Outcome {
    let start = out.len();
    match write_any(out, Ty::Info(ty), raw, 0) {
        Some(()) => Outcome::Written,
        None => {
            out.truncate(start);
            Outcome::NeedsText
        }
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is correct and fast; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A decoder for one built-in scalar type. `None` means "cannot decode"
/// (malformed input); the caller then discards whatever was appended.
type ScalarFn = fn(&mut Vec<u8>, &[u8]) -> Option<()>;

/// The type of a value being decoded: what sqlx resolved for a column (or
/// nested in it), or a bare OID from the data itself (anonymous records).
#[derive(Clone, Copy)]
enum Ty<'a> {
    Info(&'a PgTypeInfo),
    Oid(u32),
}

/// How deep values may nest (arrays of composites of ranges …) before we
/// give up and let PostgreSQL print the value.
const MAX_DEPTH: u32 = 32;

/// Writes one value of type `ty`; `None` when it cannot (the caller rolls
/// `out` back).
fn write_any(out: &mut Vec<u8>, ty: Ty<'_>, raw: Option<&[u8]>, depth: u32) -> Option<()> {
    let Some(raw) = raw else {
        out.extend_from_slice(b"null");
        return Some(());
    };
    if depth > MAX_DEPTH {
        return None;
    }
    let oid = match ty {
        Ty::Info(info) => info.oid()?.0,
        Ty::Oid(oid) => oid,
    };
    if let Some(b) = builtin(oid) {
        return match b {
            Builtin::Scalar(f) => f(out, raw),
            Builtin::Array(elem) => array::write(out, Ty::Oid(elem), raw, depth),
            Builtin::Range(sub) => range::write(out, Ty::Oid(sub), raw, depth),
            Builtin::Multirange(rng) => range::write_multi(out, Ty::Oid(rng), raw, depth),
            Builtin::Record => composite::write_anonymous(out, raw, depth),
        };
    }
    let Ty::Info(info) = ty else {
        return None;
    };
    match kind_of(info)? {
        PgTypeKind::Domain(base) => write_any(out, Ty::Info(base), Some(raw), depth + 1),
        PgTypeKind::Enum(_) => text::text(out, raw),
        PgTypeKind::Composite(fields) => composite::write_named(out, fields, raw, depth),
        PgTypeKind::Array(elem) => array::write(out, Ty::Info(elem), raw, depth),
        PgTypeKind::Range(sub) => range::write(out, Ty::Info(sub), raw, depth),
        PgTypeKind::Simple if is_citext(info) => text::text(out, raw),
        PgTypeKind::Simple | PgTypeKind::Pseudo => None,
    }
}

/// `info.kind()`, except for type declarations sqlx never resolved, on which
/// `kind()` panics: those without an OID, and those known only by OID (whose
/// name is "?"; a real type of that name would be shown quoted, `"?"`).
fn kind_of(info: &PgTypeInfo) -> Option<&PgTypeKind> {
    if info.oid().is_none() || info.name() == "?" {
        return None;
    }
    Some(info.kind())
}

/// The `citext` extension's type: binary form is its text.
fn is_citext(info: &PgTypeInfo) -> bool {
    let name = info.name();
    name == "citext" || name.ends_with(".citext")
}

/// Whether a value tagged with `oid` in the binary data (array element type,
/// record field type) is of type `ty`.
fn ty_matches(ty: Ty<'_>, oid: u32) -> bool {
    match ty {
        Ty::Oid(o) => o == oid,
        Ty::Info(info) => match info.oid() {
            Some(o) if o.0 == oid => true,
            Some(_) => {
                matches!(kind_of(info), Some(PgTypeKind::Domain(base)) if ty_matches(Ty::Info(base), oid))
            }
            None => false,
        },
    }
}

/// Decoders for built-in types, by OID.
#[derive(Clone, Copy)]
enum Builtin {
    Scalar(ScalarFn),
    /// An array with this element type.
    Array(u32),
    /// A range over this subtype.
    Range(u32),
    /// A multirange of this range type.
    Multirange(u32),
    /// `record`: an anonymous row whose fields carry their own OIDs.
    Record,
}

/// The built-in types with a decoder here (OIDs from PostgreSQL's
/// `pg_type.dat`, the same in every version since they were introduced).
fn builtin(oid: u32) -> Option<Builtin> {
    use Builtin::{Array, Multirange, Range, Record, Scalar};
    Some(match oid {
        16 => Scalar(text::boolean),
        17 => Scalar(text::bytea),
        18 => Scalar(text::pg_char),
        // name, text, xml, unknown, bpchar, varchar
        19 | 25 | 142 | 705 | 1042 | 1043 => Scalar(text::text),
        20 => Scalar(numeric::int8),
        21 => Scalar(numeric::int2),
        22 => Array(21), // int2vector
        23 => Scalar(numeric::int4),
        26 => Scalar(numeric::uint4), // oid
        27 => Scalar(text::tid),
        28 | 29 | 5069 => Scalar(text::xid), // xid, cid, xid8
        30 => Array(26),                     // oidvector
        114 => Scalar(text::json),
        650 => Scalar(net::cidr),
        700 => Scalar(numeric::float4),
        701 => Scalar(numeric::float8),
        774 => Scalar(net::macaddr8),
        790 => Scalar(numeric::money),
        829 => Scalar(net::macaddr),
        869 => Scalar(net::inet),
        1082 => Scalar(datetime::date),
        1083 => Scalar(datetime::time),
        1114 => Scalar(datetime::timestamp),
        1184 => Scalar(datetime::timestamptz),
        1186 => Scalar(datetime::interval),
        1266 => Scalar(datetime::timetz),
        1560 | 1562 => Scalar(text::bits),
        1700 => Scalar(numeric::numeric),
        2249 => Record,
        2950 => Scalar(text::uuid),
        3220 => Scalar(text::pg_lsn),
        3802 => Scalar(text::jsonb),
        4072 => Scalar(text::jsonpath),

        3904 => Range(23),   // int4range
        3906 => Range(1700), // numrange
        3908 => Range(1114), // tsrange
        3910 => Range(1184), // tstzrange
        3912 => Range(1082), // daterange
        3926 => Range(20),   // int8range

        4451 => Multirange(3904), // int4multirange
        4532 => Multirange(3906), // nummultirange
        4533 => Multirange(3908), // tsmultirange
        4534 => Multirange(3910), // tstzmultirange
        4535 => Multirange(3912), // datemultirange
        4536 => Multirange(3926), // int8multirange

        // Arrays of all of the above.
        1000 => Array(16),
        1001 => Array(17),
        1002 => Array(18),
        1003 => Array(19),
        1005 => Array(21),
        1006 => Array(22),
        1007 => Array(23),
        1009 => Array(25),
        1010 => Array(27),
        1011 => Array(28),
        1012 => Array(29),
        1013 => Array(30),
        1014 => Array(1042),
        1015 => Array(1043),
        1016 => Array(20),
        1021 => Array(700),
        1022 => Array(701),
        1028 => Array(26),
        1040 => Array(829),
        1041 => Array(869),
        1115 => Array(1114),
        1182 => Array(1082),
        1183 => Array(1083),
        1185 => Array(1184),
        1187 => Array(1186),
        1231 => Array(1700),
        1270 => Array(1266),
        1561 => Array(1560),
        1563 => Array(1562),
        143 => Array(142),
        199 => Array(114),
        271 => Array(5069),
        651 => Array(650),
        775 => Array(774),
        791 => Array(790),
        2287 => Array(2249),
        2951 => Array(2950),
        3221 => Array(3220),
        3807 => Array(3802),
        4073 => Array(4072),
        3905 => Array(3904),
        3907 => Array(3906),
        3909 => Array(3908),
        3911 => Array(3910),
        3913 => Array(3912),
        3927 => Array(3926),
        6150 => Array(4451),
        6151 => Array(4532),
        6152 => Array(4533),
        6153 => Array(4534),
        6155 => Array(4535),
        6157 => Array(4536),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::postgres::types::Oid;

    fn write(oid: u32, raw: Option<&[u8]>) -> (Outcome, String) {
        let mut out = b"[1,".to_vec();
        let outcome = write_value(&mut out, &PgTypeInfo::with_oid(Oid(oid)), raw);
        (
            outcome,
            String::from_utf8(out).unwrap_or_else(|e| panic!("{e}")),
        )
    }

    #[test]
    fn null_is_null_for_any_type() {
        assert_eq!(write(23, None), (Outcome::Written, "[1,null".into()));
        assert_eq!(write(3614, None), (Outcome::Written, "[1,null".into()));
    }

    #[test]
    fn unknown_and_malformed_leave_out_untouched() {
        // tsvector, point: no decoder.
        assert_eq!(
            write(3614, Some(b"\0\0\0\0")),
            (Outcome::NeedsText, "[1,".into())
        );
        assert_eq!(
            write(600, Some(&[0; 16])),
            (Outcome::NeedsText, "[1,".into())
        );
        // A user type known only by OID (never resolved): no kind to go on.
        assert_eq!(
            write(16_500, Some(b"x")),
            (Outcome::NeedsText, "[1,".into())
        );
        // Malformed values of known types.
        for (oid, raw) in [
            (23, &[0u8, 1][..]),
            (1700, &[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10][..]),
            (25, &[0xc3, 0x28][..]),
            (3802, &[2, b'{', b'}'][..]),
            // int4[] claiming 2 elements but holding one
            (
                1007,
                &[
                    0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0,
                    0, 7,
                ][..],
            ),
        ] {
            assert_eq!(
                write(oid, Some(raw)),
                (Outcome::NeedsText, "[1,".into()),
                "oid {oid}"
            );
        }
    }

    #[test]
    fn builtins_by_oid() {
        assert_eq!(
            write(20, Some(&9_007_199_254_740_993i64.to_be_bytes())).1,
            r#"[1,"9007199254740993""#
        );
        assert_eq!(write(700, Some(&1.1f32.to_be_bytes())).1, "[1,1.1");
        assert_eq!(write(18, Some(b"x")).1, r#"[1,"x""#);
        assert_eq!(
            write(3220, Some(&0x16_B374_D848u64.to_be_bytes())).1,
            r#"[1,"16/B374D848""#
        );
        // int2vector "1 2": an array with lower bound 0.
        let raw = [
            0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 21, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0,
            2, 0, 2,
        ];
        assert_eq!(write(22, Some(&raw)).1, "[1,[1,2]");
    }

    /// Random and truncated inputs for every built-in decoder: never a
    /// panic; either valid JSON or `NeedsText` with `out` untouched.
    #[test]
    fn garbage_never_panics_and_never_writes_bad_json() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Valid images to truncate and to flip bits in.
        let int4_array = [
            0u8, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 23, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 7,
            0xff, 0xff, 0xff, 0xff,
        ];
        let record = [0u8, 0, 0, 1, 0, 0, 0, 23, 0, 0, 0, 4, 0, 0, 0, 9];
        let range = [2u8, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 5];
        let seeds: [&[u8]; 3] = [&int4_array, &record, &range];
        for oid in 0..10_000u32 {
            if builtin(oid).is_none() {
                continue;
            }
            // json and jsonb are spliced as PostgreSQL sent them (it
            // validated them); only check they do not panic.
            let spliced = matches!(oid, 114 | 199 | 3802 | 3807);
            let mut inputs: Vec<Vec<u8>> = Vec::new();
            for len in [0usize, 1, 2, 4, 5, 6, 8, 12, 16, 17, 24, 40] {
                inputs.push((0..len).map(|_| next() as u8).collect());
            }
            for s in seeds {
                for cut in 0..=s.len() {
                    inputs.push(s.get(..cut).unwrap_or_default().to_vec());
                }
                let mut flipped = s.to_vec();
                for _ in 0..8 {
                    let i = (next() as usize) % flipped.len();
                    if let Some(b) = flipped.get_mut(i) {
                        *b ^= 1 << (next() % 8);
                    }
                    inputs.push(flipped.clone());
                }
            }
            for raw in inputs {
                let mut out = b"[".to_vec();
                match write_value(&mut out, &PgTypeInfo::with_oid(Oid(oid)), Some(&raw)) {
                    Outcome::NeedsText => assert_eq!(out, b"["),
                    Outcome::Written if spliced => {}
                    Outcome::Written => {
                        out.push(b']');
                        assert!(
                            serde_json::from_slice::<serde_json::Value>(&out).is_ok(),
                            "oid {oid}, input {raw:02x?}: {}",
                            String::from_utf8_lossy(&out)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_builtin_array_points_at_a_decodable_element() {
        for oid in 0..10_000 {
            let elem = match builtin(oid) {
                Some(Builtin::Array(elem)) => elem,
                Some(Builtin::Multirange(rng)) => rng,
                _ => continue,
            };
            assert!(builtin(elem).is_some(), "{oid} → {elem}");
        }
    }
}
