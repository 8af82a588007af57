//! Reading PostgreSQL's binary wire format and writing digits, without
//! panicking on short or malformed input and without allocating.

/// A cursor over a binary value. Every read checks the length first and
/// returns `None` when the input is too short.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes not read yet.
    pub(super) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.buf.split_at_checked(n)?;
        self.buf = tail;
        Some(head)
    }

    pub(super) fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        self.bytes::<1>().map(|[b]| b)
    }

    pub(super) fn i16(&mut self) -> Option<i16> {
        self.bytes().map(i16::from_be_bytes)
    }

    pub(super) fn u16(&mut self) -> Option<u16> {
        self.bytes().map(u16::from_be_bytes)
    }

    pub(super) fn i32(&mut self) -> Option<i32> {
        self.bytes().map(i32::from_be_bytes)
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        self.bytes().map(u32::from_be_bytes)
    }

    pub(super) fn i64(&mut self) -> Option<i64> {
        self.bytes().map(i64::from_be_bytes)
    }

    /// A length-prefixed value as arrays, records and ranges embed them:
    /// `i32` length (-1 for NULL) followed by that many bytes.
    /// `Some(None)` is NULL; `None` is malformed input.
    pub(super) fn value(&mut self) -> Option<Option<&'a [u8]>> {
        match self.i32()? {
            -1 => Some(None),
            len => Some(Some(self.take(usize::try_from(len).ok()?)?)),
        }
    }
}

/// `raw` as a fixed-size array, when it has exactly that size.
pub(super) fn exact<const N: usize>(raw: &[u8]) -> Option<[u8; N]> {
    raw.try_into().ok()
}

/// Appends the decimal digits of `v`.
pub(super) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
        start -= 1;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(start..).unwrap_or_default());
}

/// Appends `v` in decimal, with a leading `-` when negative.
pub(super) fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Appends `v` in decimal, left-padded with zeros to at least `width` digits.
pub(super) fn push_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut digits = 1;
    let mut rest = v / 10;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    for _ in digits..width {
        out.push(b'0');
    }
    push_u64(out, v);
}

/// Appends `.ffffff` for a microsecond fraction (`us` < 1_000_000), trailing
/// zeros trimmed; nothing when `us` is zero (PostgreSQL's convention).
pub(super) fn push_micros(out: &mut Vec<u8>, us: u64) {
    if us == 0 {
        return;
    }
    let mut digits: usize = 6;
    let mut v = us;
    while v.is_multiple_of(10) {
        v /= 10;
        digits = digits.saturating_sub(1);
    }
    out.push(b'.');
    push_padded(out, v, digits);
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `b` as two lowercase hex digits.
pub(super) fn push_hex_byte(out: &mut Vec<u8>, b: u8) {
    out.push(HEX_LOWER[usize::from(b >> 4)]);
    out.push(HEX_LOWER[usize::from(b & 0xf)]);
}

/// Appends `v` in hex (lowercase, or uppercase when `upper`), no leading zeros.
pub(super) fn push_hex(out: &mut Vec<u8>, v: u64, upper: bool) {
    let table = if upper { HEX_UPPER } else { HEX_LOWER };
    let mut started = false;
    for shift in (0..16).rev() {
        let nibble = ((v >> (shift * 4)) & 0xf) as usize;
        if nibble != 0 || started || shift == 0 {
            started = true;
            out.push(table[nibble]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn digits() {
        assert_eq!(s(|o| push_u64(o, 0)), "0");
        assert_eq!(s(|o| push_u64(o, u64::MAX)), "18446744073709551615");
        assert_eq!(s(|o| push_i64(o, i64::MIN)), "-9223372036854775808");
        assert_eq!(s(|o| push_padded(o, 7, 4)), "0007");
        assert_eq!(s(|o| push_padded(o, 12345, 4)), "12345");
        assert_eq!(s(|o| push_padded(o, 0, 2)), "00");
        assert_eq!(s(|o| push_micros(o, 0)), "");
        assert_eq!(s(|o| push_micros(o, 500_000)), ".5");
        assert_eq!(s(|o| push_micros(o, 1)), ".000001");
        assert_eq!(s(|o| push_micros(o, 123_450)), ".12345");
        assert_eq!(s(|o| push_hex(o, 0, true)), "0");
        assert_eq!(s(|o| push_hex(o, 0xB374D848, true)), "B374D848");
        assert_eq!(s(|o| push_hex(o, 0x0db8, false)), "db8");
    }

    #[test]
    fn reader_never_panics() {
        let mut r = Reader::new(&[0, 0, 0, 5, 1, 2]);
        assert_eq!(r.value(), None);
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(r.value(), None);
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 9]);
        assert_eq!(r.value(), Some(None));
        assert_eq!(r.value(), Some(Some(&[9u8][..])));
        assert!(r.is_empty());
        assert_eq!(r.i64(), None);
    }
}
