//! Text-like values, JSON, and small fixed-format types (bool, bytea, uuid,
//! bit strings, pg_lsn, tid, xid8).

use super::wire::{Reader, exact, push_hex, push_hex_byte, push_u64};
use super::write_json_string;

pub(super) fn boolean(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    out.extend_from_slice(match exact::<1>(raw)? {
        [0] => b"false".as_slice(),
        _ => b"true",
    });
    Some(())
}

/// text, varchar, bpchar, name, xml, enum labels, citext …: the bytes are the
/// text (the connection's client encoding is UTF-8).
pub(super) fn text(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    write_json_string(out, std::str::from_utf8(raw).ok()?);
    Some(())
}

/// `"char"`: one byte. PostgreSQL prints bytes with the high bit set as an
/// octal escape (`\ooo`) and the zero byte as the empty string.
pub(super) fn pg_char(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    match raw {
        [] | [0] => out.extend_from_slice(b"\"\""),
        &[b] if b < 0x80 => {
            let mut buf = [0u8; 4];
            write_json_string(out, char::from(b).encode_utf8(&mut buf));
        }
        &[b] => {
            out.extend_from_slice(b"\"\\\\");
            for shift in [6, 3, 0] {
                out.push(b'0' + ((b >> shift) & 7));
            }
            out.push(b'"');
        }
        _ => return None,
    }
    Some(())
}

/// `bytea`: "\x" and lowercase hex (PostgreSQL's hex output format).
pub(super) fn bytea(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    out.reserve(raw.len() * 2 + 5);
    out.extend_from_slice(b"\"\\\\x");
    for b in raw {
        push_hex_byte(out, *b);
    }
    out.push(b'"');
    Some(())
}

/// `json`: the document itself, spliced into the row (PostgreSQL validated it).
pub(super) fn json(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let text = std::str::from_utf8(raw)
        .ok()?
        .trim_matches([' ', '\t', '\n', '\r']);
    if text.is_empty() {
        return None;
    }
    out.extend_from_slice(text.as_bytes());
    Some(())
}

/// `jsonb`: a version byte (1), then the document as text.
pub(super) fn jsonb(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    match raw.split_first()? {
        (1, doc) => json(out, doc),
        _ => None,
    }
}

/// `jsonpath`: a version byte (1), then the path's text, written as a string.
pub(super) fn jsonpath(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    match raw.split_first()? {
        (1, path) => text(out, path),
        _ => None,
    }
}

/// `uuid`: lowercase, hyphenated.
pub(super) fn uuid(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let bytes = exact::<16>(raw)?;
    out.push(b'"');
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        push_hex_byte(out, *b);
    }
    out.push(b'"');
    Some(())
}

/// `bit`, `varbit`: a string of 0s and 1s. Binary: i32 bit count, then the
/// bits, most significant first, padded to whole bytes.
pub(super) fn bits(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let mut r = Reader::new(raw);
    let len = usize::try_from(r.i32()?).ok()?;
    if r.remaining() != len.div_ceil(8) {
        return None;
    }
    let bytes = r.take(len.div_ceil(8))?;
    out.reserve(len + 2);
    out.push(b'"');
    for i in 0..len {
        let byte = bytes.get(i / 8)?;
        out.push(if byte & (0x80 >> (i % 8)) != 0 {
            b'1'
        } else {
            b'0'
        });
    }
    out.push(b'"');
    Some(())
}

/// `pg_lsn`: "16/B374D848", the two 32-bit halves in uppercase hex.
pub(super) fn pg_lsn(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let v = u64::from_be_bytes(exact(raw)?);
    out.push(b'"');
    push_hex(out, v >> 32, true);
    out.push(b'/');
    push_hex(out, v & 0xffff_ffff, true);
    out.push(b'"');
    Some(())
}

/// `tid` (e.g. `ctid`): "(block,offset)".
pub(super) fn tid(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let mut r = Reader::new(raw);
    let block = r.u32()?;
    let offset = r.u16()?;
    if !r.is_empty() {
        return None;
    }
    out.extend_from_slice(b"\"(");
    push_u64(out, block.into());
    out.push(b',');
    push_u64(out, offset.into());
    out.extend_from_slice(b")\"");
    Some(())
}

/// `xid`, `cid` (unsigned 32-bit) and `xid8` (unsigned 64-bit): the decimal
/// number as a string, as their text output is.
pub(super) fn xid(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let v: u64 = match raw.len() {
        4 => u32::from_be_bytes(exact(raw)?).into(),
        8 => u64::from_be_bytes(exact(raw)?),
        _ => return None,
    };
    out.push(b'"');
    push_u64(out, v);
    out.push(b'"');
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: fn(&mut Vec<u8>, &[u8]) -> Option<()>, raw: &[u8]) -> Option<String> {
        let mut out = Vec::new();
        f(&mut out, raw)?;
        Some(String::from_utf8(out).unwrap_or_else(|e| panic!("{e}")))
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn strings() {
        assert_eq!(
            run(text, "a\"b\\c\nd€😀".as_bytes()),
            s(r#""a\"b\\c\nd€😀""#)
        );
        assert_eq!(run(text, b"\x00\x1f"), s(r#""\u0000\u001f""#));
        assert_eq!(run(text, &[0xff, 0xfe]), None);
        assert_eq!(run(pg_char, b"a"), s(r#""a""#));
        assert_eq!(run(pg_char, b"\""), s(r#""\"""#));
        assert_eq!(run(pg_char, &[0]), s(r#""""#));
        assert_eq!(run(pg_char, &[0xe9]), s(r#""\\351""#));
        assert_eq!(run(pg_char, b"ab"), None);
    }

    #[test]
    fn small_types() {
        assert_eq!(run(boolean, &[1]), s("true"));
        assert_eq!(run(boolean, &[0]), s("false"));
        assert_eq!(run(boolean, &[]), None);
        assert_eq!(run(bytea, &[0x00, 0xff, 0x10]), s(r#""\\x00ff10""#));
        assert_eq!(run(bytea, &[]), s(r#""\\x""#));
        assert_eq!(
            run(
                uuid,
                &[
                    0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd,
                    0x38, 0x0a, 0x11
                ]
            ),
            s(r#""a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11""#)
        );
        assert_eq!(run(uuid, &[0; 15]), None);
        assert_eq!(run(bits, &[0, 0, 0, 5, 0b1010_1000]), s(r#""10101""#));
        assert_eq!(run(bits, &[0, 0, 0, 0]), s(r#""""#));
        assert_eq!(run(bits, &[0, 0, 0, 9, 0xff]), None);
        assert_eq!(run(bits, &[0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(
            run(pg_lsn, &0x16_B374_D848u64.to_be_bytes()),
            s(r#""16/B374D848""#)
        );
        assert_eq!(run(pg_lsn, &0u64.to_be_bytes()), s(r#""0/0""#));
        assert_eq!(run(tid, &[0, 0, 0, 1, 0, 2]), s(r#""(1,2)""#));
        assert_eq!(run(xid, &u32::MAX.to_be_bytes()), s(r#""4294967295""#));
        assert_eq!(
            run(xid, &u64::MAX.to_be_bytes()),
            s(r#""18446744073709551615""#)
        );
    }

    #[test]
    fn json_spliced() {
        assert_eq!(
            run(json, b" {\"a\": [1, null]}\n"),
            s(r#"{"a": [1, null]}"#)
        );
        assert_eq!(run(jsonb, b"\x01{\"a\": 1}"), s(r#"{"a": 1}"#));
        assert_eq!(run(jsonb, b"\x02{}"), None);
        assert_eq!(run(jsonb, b""), None);
        assert_eq!(run(json, b"  "), None);
        assert_eq!(run(jsonpath, b"\x01$.\"a\""), s(r#""$.\"a\"""#));
    }
}
