//! Ranges → `{"lower": v|null, "upper": v|null, "lower_inc": bool,
//! "upper_inc": bool}` or `{"empty": true}`; multiranges → arrays of those.
//!
//! Range binary (`range_send`): one flags byte, then each bound that is
//! present as (i32 length, bytes of the subtype). An infinite (or NULL)
//! bound is absent and written as `null`. Multirange binary
//! (`multirange_send`): i32 count, then each range as (i32 length, range bytes).

use super::wire::Reader;
use super::{Ty, write_any};

const RANGE_EMPTY: u8 = 0x01;
const RANGE_LB_INC: u8 = 0x02;
const RANGE_UB_INC: u8 = 0x04;
const RANGE_LB_INF: u8 = 0x08;
const RANGE_UB_INF: u8 = 0x10;
const RANGE_LB_NULL: u8 = 0x20;
const RANGE_UB_NULL: u8 = 0x40;

pub(super) fn write(out: &mut Vec<u8>, sub: Ty<'_>, raw: &[u8], depth: u32) -> Option<()> {
    let mut r = Reader::new(raw);
    let flags = r.u8()?;
    if flags & RANGE_EMPTY != 0 {
        out.extend_from_slice(b"{\"empty\":true}");
        return r.is_empty().then_some(());
    }
    out.extend_from_slice(b"{\"lower\":");
    bound(
        out,
        sub,
        &mut r,
        flags & (RANGE_LB_INF | RANGE_LB_NULL) == 0,
        depth,
    )?;
    out.extend_from_slice(b",\"upper\":");
    bound(
        out,
        sub,
        &mut r,
        flags & (RANGE_UB_INF | RANGE_UB_NULL) == 0,
        depth,
    )?;
    out.extend_from_slice(b",\"lower_inc\":");
    out.extend_from_slice(if flags & RANGE_LB_INC != 0 {
        b"true"
    } else {
        b"false"
    });
    out.extend_from_slice(b",\"upper_inc\":");
    out.extend_from_slice(if flags & RANGE_UB_INC != 0 {
        b"true"
    } else {
        b"false"
    });
    out.push(b'}');
    r.is_empty().then_some(())
}

fn bound(
    out: &mut Vec<u8>,
    sub: Ty<'_>,
    r: &mut Reader<'_>,
    present: bool,
    depth: u32,
) -> Option<()> {
    if present {
        // A present bound is never NULL.
        let value = r.value()??;
        write_any(out, sub, Some(value), depth + 1)
    } else {
        out.extend_from_slice(b"null");
        Some(())
    }
}

/// A multirange whose ranges are of type `range`.
pub(super) fn write_multi(out: &mut Vec<u8>, range: Ty<'_>, raw: &[u8], depth: u32) -> Option<()> {
    let mut r = Reader::new(raw);
    let count = usize::try_from(r.i32()?).ok()?;
    // Each range takes at least its length and flags byte.
    if count > r.remaining() / 5 {
        return None;
    }
    out.push(b'[');
    for i in 0..count {
        if i > 0 {
            out.push(b',');
        }
        write_any(out, range, Some(r.value()??), depth + 1)?;
    }
    out.push(b']');
    r.is_empty().then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An int4range image: flags, then optional bounds.
    fn int4range(flags: u8, lower: Option<i32>, upper: Option<i32>) -> Vec<u8> {
        let mut raw = vec![flags];
        for v in [lower, upper].into_iter().flatten() {
            raw.extend_from_slice(&4i32.to_be_bytes());
            raw.extend_from_slice(&v.to_be_bytes());
        }
        raw
    }

    fn run(raw: &[u8]) -> Option<String> {
        let mut out = Vec::new();
        write(&mut out, Ty::Oid(23), raw, 0)?;
        Some(String::from_utf8(out).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn ranges() {
        assert_eq!(run(&[RANGE_EMPTY]), Some(r#"{"empty":true}"#.into()));
        assert_eq!(
            run(&int4range(RANGE_LB_INC, Some(1), Some(10))),
            Some(r#"{"lower":1,"upper":10,"lower_inc":true,"upper_inc":false}"#.into())
        );
        assert_eq!(
            run(&int4range(RANGE_LB_INF | RANGE_UB_INC, None, Some(5))),
            Some(r#"{"lower":null,"upper":5,"lower_inc":false,"upper_inc":true}"#.into())
        );
        assert_eq!(
            run(&int4range(RANGE_LB_INF | RANGE_UB_INF, None, None)),
            Some(r#"{"lower":null,"upper":null,"lower_inc":false,"upper_inc":false}"#.into())
        );
    }

    #[test]
    fn malformed_ranges() {
        assert_eq!(run(&[]), None);
        assert_eq!(run(&int4range(RANGE_LB_INC, Some(1), None)), None); // missing upper
        assert_eq!(
            run(&int4range(RANGE_LB_INF | RANGE_UB_INF, Some(1), None)),
            None
        ); // extra bytes
        assert_eq!(run(&[RANGE_EMPTY, 0]), None);
        // A NULL bound where one must be present.
        assert_eq!(run(&[RANGE_LB_INF, 0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn multiranges() {
        let run_multi = |raw: &[u8]| {
            let mut out = Vec::new();
            write_multi(&mut out, Ty::Oid(3904), raw, 0)?;
            Some(String::from_utf8(out).unwrap_or_else(|e| panic!("{e}")))
        };
        let mut raw = 2i32.to_be_bytes().to_vec();
        for range in [
            int4range(RANGE_LB_INC, Some(1), Some(3)),
            int4range(RANGE_LB_INC, Some(5), Some(7)),
        ] {
            raw.extend_from_slice(&i32::try_from(range.len()).unwrap_or_default().to_be_bytes());
            raw.extend_from_slice(&range);
        }
        assert_eq!(
            run_multi(&raw),
            Some(
                r#"[{"lower":1,"upper":3,"lower_inc":true,"upper_inc":false},{"lower":5,"upper":7,"lower_inc":true,"upper_inc":false}]"#
                    .into()
            )
        );
        assert_eq!(run_multi(&0i32.to_be_bytes()), Some("[]".into()));
        assert_eq!(run_multi(&i32::MAX.to_be_bytes()), None);
        raw.pop();
        assert_eq!(run_multi(&raw), None);
    }
}
