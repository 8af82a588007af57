//! Arrays → JSON arrays, nested for multi-dimensional arrays.
//!
//! Binary (`array_send`): i32 number of dimensions, i32 has-NULL flag, u32
//! element type OID, then per dimension (i32 length, i32 lower bound), then
//! the elements in row-major order, each an i32 length (-1 for NULL) and
//! that many bytes. A zero-dimensional array (PostgreSQL's only empty
//! array) is `[]`. Lower bounds are not represented: `'[0:1]={1,2}'::int[]`
//! is `[1,2]`, like `'{1,2}'`.

use super::wire::Reader;
use super::{Ty, ty_matches, write_any};

/// PostgreSQL's limit on array dimensions (MAXDIM).
const MAX_DIMS: usize = 6;

pub(super) fn write(out: &mut Vec<u8>, elem: Ty<'_>, raw: &[u8], depth: u32) -> Option<()> {
    let mut r = Reader::new(raw);
    let ndim = usize::try_from(r.i32()?).ok()?;
    let _has_null = r.i32()?;
    let elem_oid = r.u32()?;
    if ndim == 0 {
        out.extend_from_slice(b"[]");
        return r.is_empty().then_some(());
    }
    if ndim > MAX_DIMS || !ty_matches(elem, elem_oid) {
        return None;
    }
    let mut dims = [0usize; MAX_DIMS];
    let mut total: usize = 1;
    for dim in dims.iter_mut().take(ndim) {
        let len = r.i32()?;
        let _lower_bound = r.i32()?;
        // PostgreSQL never sends a dimension of length 0 (such arrays have
        // no dimensions at all).
        *dim = usize::try_from(len).ok().filter(|&n| n > 0)?;
        total = total.checked_mul(*dim)?;
    }
    // Each element takes at least its 4-byte length: reject impossible
    // shapes before writing anything.
    if total > r.remaining() / 4 {
        return None;
    }
    write_dims(out, elem, dims.get(..ndim)?, &mut r, depth)?;
    r.is_empty().then_some(())
}

fn write_dims(
    out: &mut Vec<u8>,
    elem: Ty<'_>,
    dims: &[usize],
    r: &mut Reader<'_>,
    depth: u32,
) -> Option<()> {
    let (&len, inner) = dims.split_first()?;
    out.push(b'[');
    for i in 0..len {
        if i > 0 {
            out.push(b',');
        }
        if inner.is_empty() {
            write_any(out, elem, r.value()?, depth + 1)?;
        } else {
            write_dims(out, elem, inner, r, depth)?;
        }
    }
    out.push(b']');
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An array_send image of int4 elements (`None` = NULL).
    fn int4_array(dims: &[(i32, i32)], elems: &[Option<i32>]) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&i32::try_from(dims.len()).unwrap_or_default().to_be_bytes());
        raw.extend_from_slice(&i32::from(elems.iter().any(Option::is_none)).to_be_bytes());
        raw.extend_from_slice(&23u32.to_be_bytes());
        for (len, lb) in dims {
            raw.extend_from_slice(&len.to_be_bytes());
            raw.extend_from_slice(&lb.to_be_bytes());
        }
        for e in elems {
            match e {
                Some(v) => {
                    raw.extend_from_slice(&4i32.to_be_bytes());
                    raw.extend_from_slice(&v.to_be_bytes());
                }
                None => raw.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        raw
    }

    fn run(raw: &[u8]) -> Option<String> {
        let mut out = Vec::new();
        write(&mut out, Ty::Oid(23), raw, 0)?;
        Some(String::from_utf8(out).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn shapes() {
        assert_eq!(run(&int4_array(&[], &[])), Some("[]".into()));
        assert_eq!(
            run(&int4_array(&[(3, 1)], &[Some(1), None, Some(-3)])),
            Some("[1,null,-3]".into())
        );
        assert_eq!(
            run(&int4_array(
                &[(2, 1), (3, 1)],
                &[Some(1), Some(2), Some(3), Some(4), Some(5), None]
            )),
            Some("[[1,2,3],[4,5,null]]".into())
        );
        assert_eq!(
            run(&int4_array(
                &[(2, 1), (1, 1), (2, 1)],
                &[Some(1), Some(2), Some(3), Some(4)]
            )),
            Some("[[[1,2]],[[3,4]]]".into())
        );
        // Lower bounds other than 1 are ignored.
        assert_eq!(
            run(&int4_array(&[(2, -5)], &[Some(1), Some(2)])),
            Some("[1,2]".into())
        );
    }

    #[test]
    fn malformed() {
        // Too few / too many elements for the dimensions.
        assert_eq!(run(&int4_array(&[(3, 1)], &[Some(1), Some(2)])), None);
        assert_eq!(run(&int4_array(&[(1, 1)], &[Some(1), Some(2)])), None);
        // Zero and negative lengths, absurd dimensions.
        assert_eq!(run(&int4_array(&[(0, 1)], &[])), None);
        assert_eq!(run(&int4_array(&[(-1, 1)], &[])), None);
        assert_eq!(
            run(&int4_array(&[(i32::MAX, 1), (i32::MAX, 1)], &[Some(1)])),
            None
        );
        assert_eq!(run(&int4_array(&[(1, 1); 7], &[Some(1)])), None);
        // Wrong element type.
        let mut raw = int4_array(&[(1, 1)], &[Some(1)]);
        if let Some(b) = raw.get_mut(11) {
            *b = 20;
        }
        assert_eq!(run(&raw), None);
        // Element of the wrong size for int4.
        let mut raw = int4_array(&[(1, 1)], &[]);
        raw.extend_from_slice(&[0, 0, 0, 2, 0, 1]);
        assert_eq!(run(&raw), None);
        // Truncated header.
        assert_eq!(run(&[0, 0, 0, 1, 0, 0]), None);
        // Empty array with trailing bytes.
        let mut raw = int4_array(&[], &[]);
        raw.push(0);
        assert_eq!(run(&raw), None);
    }
}
