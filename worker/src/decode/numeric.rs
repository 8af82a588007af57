//! Numbers: integers, floats, `numeric` and `money`.

use super::wire::{Reader, exact, push_i64, push_padded, push_u64};

/// Largest integer magnitude a JSON number carries exactly in an IEEE double.
const MAX_SAFE: u64 = 1 << 53;

pub(super) fn int2(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    push_i64(out, i16::from_be_bytes(exact(raw)?).into());
    Some(())
}

pub(super) fn int4(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    push_i64(out, i32::from_be_bytes(exact(raw)?).into());
    Some(())
}

/// `oid` and other unsigned 32-bit integers.
pub(super) fn uint4(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    push_u64(out, u32::from_be_bytes(exact(raw)?).into());
    Some(())
}

/// A number when JSON parsers keep it exact (|v| ≤ 2^53), else a string.
pub(super) fn int8(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let v = i64::from_be_bytes(exact(raw)?);
    if v.unsigned_abs() <= MAX_SAFE {
        push_i64(out, v);
    } else {
        out.push(b'"');
        push_i64(out, v);
        out.push(b'"');
    }
    Some(())
}

pub(super) fn float4(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let v = f32::from_be_bytes(exact(raw)?);
    if v.is_finite() {
        // serde_json prints the shortest representation that round-trips
        // *as an f32*: 1.1::float4 gives 1.1.
        serde_json::to_writer(&mut *out, &v).ok()
    } else {
        non_finite(out, v.is_nan(), v.is_sign_positive());
        Some(())
    }
}

pub(super) fn float8(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let v = f64::from_be_bytes(exact(raw)?);
    if v.is_finite() {
        serde_json::to_writer(&mut *out, &v).ok()
    } else {
        non_finite(out, v.is_nan(), v.is_sign_positive());
        Some(())
    }
}

fn non_finite(out: &mut Vec<u8>, nan: bool, positive: bool) {
    out.extend_from_slice(match (nan, positive) {
        (true, _) => b"\"NaN\"".as_slice(),
        (false, true) => b"\"Infinity\"",
        (false, false) => b"\"-Infinity\"",
    });
}

/// `money`: an i64 count of cents, written as a string with two decimals.
pub(super) fn money(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let cents = i64::from_be_bytes(exact(raw)?);
    out.push(b'"');
    if cents < 0 {
        out.push(b'-');
    }
    let abs = cents.unsigned_abs();
    push_u64(out, abs / 100);
    out.push(b'.');
    push_padded(out, abs % 100, 2);
    out.push(b'"');
    Some(())
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
const NUMERIC_DSCALE_MAX: u16 = 0x3FFF;
const NBASE: i16 = 10_000;

/// `numeric`: a string with exactly the digits of PostgreSQL's text output.
///
/// Binary: `ndigits`, `weight`, `sign`, `dscale` (all 16-bit), then `ndigits`
/// base-10000 digits. The value is `Σ digit[i] · 10000^(weight − i)`; `dscale`
/// is the number of decimal digits after the point. This follows
/// `get_str_from_var` in PostgreSQL's numeric.c.
pub(super) fn numeric(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let mut r = Reader::new(raw);
    let ndigits = usize::try_from(r.i16()?).ok()?;
    let weight = r.i16()?;
    let sign = r.u16()?;
    let dscale = r.u16()?;
    let digits = r.take(ndigits.checked_mul(2)?)?;
    if !r.is_empty() {
        return None;
    }
    let special: &[u8] = match sign {
        NUMERIC_POS | NUMERIC_NEG => b"",
        NUMERIC_NAN => b"\"NaN\"",
        NUMERIC_PINF => b"\"Infinity\"",
        NUMERIC_NINF => b"\"-Infinity\"",
        _ => return None,
    };
    if !special.is_empty() {
        out.extend_from_slice(special);
        return Some(());
    }
    if dscale > NUMERIC_DSCALE_MAX {
        return None;
    }
    // Digit `d` (0-based from the most significant); zero beyond the stored ones.
    let digit = |d: i32| -> Option<u16> {
        if d < 0 {
            return Some(0);
        }
        let i = usize::try_from(d).ok()?.checked_mul(2)?;
        match digits.get(i..i + 2) {
            Some(&[hi, lo]) => {
                let v = i16::from_be_bytes([hi, lo]);
                if (0..NBASE).contains(&v) {
                    u16::try_from(v).ok()
                } else {
                    None
                }
            }
            _ => Some(0),
        }
    };
    // Reject out-of-range digits up front so we never write a half value.
    for d in 0..ndigits {
        digit(i32::try_from(d).ok()?)?;
    }

    out.push(b'"');
    if sign == NUMERIC_NEG {
        out.push(b'-');
    }
    let weight = i32::from(weight);
    let mut d: i32;
    if weight < 0 {
        d = weight + 1;
        out.push(b'0');
    } else {
        d = 0;
        while d <= weight {
            let dig = digit(d)?;
            if d == 0 {
                // First group: no leading zeros (but at least one digit).
                push_u64(out, dig.into());
            } else {
                push_padded(out, dig.into(), 4);
            }
            d += 1;
        }
    }
    if dscale > 0 {
        out.push(b'.');
        let end = out.len() + usize::from(dscale);
        let mut written = 0;
        while written < dscale {
            push_padded(out, digit(d)?.into(), 4);
            d += 1;
            written += 4;
        }
        out.truncate(end);
    }
    out.push(b'"');
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16)
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    }

    fn run(f: fn(&mut Vec<u8>, &[u8]) -> Option<()>, raw: &[u8]) -> Option<String> {
        let mut out = Vec::new();
        f(&mut out, raw)?;
        Some(String::from_utf8(out).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn numeric_matches_postgres_text() {
        // (text output, numeric_send output) pairs produced by PostgreSQL 15.
        let cases = [
            ("12.50", "0002000000000002000c1388"),
            ("0.001", "0001ffff00000003000a"),
            ("-3", "00010000400000000003"),
            ("NaN", "00000000c0000000"),
            ("Infinity", "00000000d0000020"),
            ("-Infinity", "00000000f0000020"),
            ("0", "0000000000000000"),
            ("0.00", "0000000000000002"),
            (
                "123456789012345678901234567890.123456789012345",
                "000c00070000000f000c0d801ed204d2162e23340d801ed204d2162e23340d7a",
            ),
            ("10000", "00010001000000000001"),
            ("0.00000000000000000001", "0001fffb000000140001"),
            ("-0.0000123", "0001fffe4000000704ce"),
            ("99999999.99990000", "0003000100000008270f270f270f"),
            ("1000000000000000000000000000000", "00010007000000000064"),
            ("10000.0001", "0003000100000004000100000001"),
        ];
        for (text, bin) in cases {
            assert_eq!(
                run(numeric, &hex(bin)),
                Some(format!("\"{text}\"")),
                "{bin}"
            );
        }
    }

    #[test]
    fn numeric_rejects_malformed() {
        assert_eq!(run(numeric, &[]), None);
        assert_eq!(run(numeric, &hex("000100000000")), None); // truncated header
        assert_eq!(run(numeric, &hex("00020000000000000001")), None); // fewer digits than ndigits
        assert_eq!(run(numeric, &hex("0001000000000000271000")), None); // trailing byte
        assert_eq!(run(numeric, &hex("00010000000000002710")), None); // digit 10000
        assert_eq!(run(numeric, &hex("0001000000000000ffff")), None); // negative digit
        assert_eq!(run(numeric, &hex("00010000123400000001")), None); // bad sign
        assert_eq!(run(numeric, &hex("ffff0000000000000001")), None); // negative ndigits
        assert_eq!(run(numeric, &hex("000000000000ffff")), None); // dscale too large
    }

    #[test]
    fn numeric_extreme_weight_does_not_panic() {
        // weight 32767 with one digit: 1 followed by 131068 zeros.
        let got = run(numeric, &hex("00017fff000000000001")).unwrap_or_default();
        assert_eq!(got.len(), 2 + 1 + 32767 * 4);
        // weight -32768, dscale 16383: all zeros after the point.
        let got = run(numeric, &hex("0001800000003fff0001")).unwrap_or_default();
        assert!(
            got.starts_with("\"0.000"),
            "{}",
            got.get(..20).unwrap_or_default()
        );
    }

    #[test]
    fn integers() {
        assert_eq!(run(int2, &(-32768i16).to_be_bytes()), Some("-32768".into()));
        assert_eq!(
            run(int4, &i32::MAX.to_be_bytes()),
            Some("2147483647".into())
        );
        assert_eq!(
            run(uint4, &u32::MAX.to_be_bytes()),
            Some("4294967295".into())
        );
        assert_eq!(
            run(int8, &(1i64 << 53).to_be_bytes()),
            Some("9007199254740992".into())
        );
        assert_eq!(
            run(int8, &(-(1i64 << 53)).to_be_bytes()),
            Some("-9007199254740992".into())
        );
        assert_eq!(
            run(int8, &((1i64 << 53) + 1).to_be_bytes()),
            Some("\"9007199254740993\"".into())
        );
        assert_eq!(
            run(int8, &i64::MIN.to_be_bytes()),
            Some("\"-9223372036854775808\"".into())
        );
        assert_eq!(run(int4, &[0, 0, 1]), None);
        assert_eq!(run(int8, &[0; 9]), None);
    }

    #[test]
    fn floats() {
        assert_eq!(run(float4, &1.1f32.to_be_bytes()), Some("1.1".into()));
        assert_eq!(
            run(float4, &f32::MAX.to_be_bytes()),
            Some("3.4028235e+38".into())
        );
        assert_eq!(run(float8, &0.1f64.to_be_bytes()), Some("0.1".into()));
        assert_eq!(run(float8, &1e300f64.to_be_bytes()), Some("1e+300".into()));
        assert_eq!(run(float8, &3f64.to_be_bytes()), Some("3.0".into()));
        assert_eq!(run(float8, &f64::NAN.to_be_bytes()), Some("\"NaN\"".into()));
        assert_eq!(
            run(float4, &f32::INFINITY.to_be_bytes()),
            Some("\"Infinity\"".into())
        );
        assert_eq!(
            run(float8, &f64::NEG_INFINITY.to_be_bytes()),
            Some("\"-Infinity\"".into())
        );
        assert_eq!(run(float4, &[0; 8]), None);
        // Every float written must parse back to the same value.
        for v in [5e-324f64, 1.7976931348623157e308, -2.5e-7, 123456.789] {
            let s = run(float8, &v.to_be_bytes()).unwrap_or_default();
            assert_eq!(s.parse::<f64>().ok(), Some(v), "{s}");
        }
    }

    #[test]
    fn money_two_decimals() {
        assert_eq!(
            run(money, &(-1234i64).to_be_bytes()),
            Some("\"-12.34\"".into())
        );
        assert_eq!(run(money, &5i64.to_be_bytes()), Some("\"0.05\"".into()));
        assert_eq!(
            run(money, &i64::MIN.to_be_bytes()),
            Some("\"-92233720368547758.08\"".into())
        );
        assert_eq!(run(money, &[1]), None);
    }
}
