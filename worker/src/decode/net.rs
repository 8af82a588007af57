//! Network addresses: `inet`, `cidr`, `macaddr`, `macaddr8`, in PostgreSQL's
//! text format (`inet_net_ntop` in PostgreSQL's inet_net_ntop.c).

use super::wire::{Reader, exact, push_hex, push_hex_byte, push_u64};

const PGSQL_AF_INET: u8 = 2;
const PGSQL_AF_INET6: u8 = 3;

/// `inet`: the prefix length is printed only when it is not the full width.
pub(super) fn inet(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    address(out, raw, false)
}

/// `cidr`: the prefix length is always printed.
pub(super) fn cidr(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    address(out, raw, true)
}

/// Binary: family, prefix bits, is-cidr flag, address length, address bytes.
fn address(out: &mut Vec<u8>, raw: &[u8], is_cidr: bool) -> Option<()> {
    let mut r = Reader::new(raw);
    let family = r.u8()?;
    let bits = r.u8()?;
    let _is_cidr_flag = r.u8()?;
    let len = r.u8()?;
    let addr = r.take(len.into())?;
    if !r.is_empty() {
        return None;
    }
    out.push(b'"');
    let max_bits = match family {
        PGSQL_AF_INET => {
            let [a, b, c, d] = exact::<4>(addr)?;
            for (i, octet) in [a, b, c, d].into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, octet.into());
            }
            32
        }
        PGSQL_AF_INET6 => {
            ipv6(out, &exact::<16>(addr)?);
            128
        }
        _ => return None,
    };
    if bits > max_bits {
        return None;
    }
    if bits != max_bits || is_cidr {
        out.push(b'/');
        push_u64(out, bits.into());
    }
    out.push(b'"');
    Some(())
}

/// IPv6 as PostgreSQL prints it: the first longest run of two or more zero
/// groups becomes "::", lowercase hex without leading zeros, and the last 32
/// bits in dotted decimal for IPv4-compatible ("::1.2.3.4") and IPv4-mapped
/// ("::ffff:1.2.3.4") addresses.
fn ipv6(out: &mut Vec<u8>, src: &[u8; 16]) {
    let mut words = [0u16; 8];
    for (w, pair) in words.iter_mut().zip(src.chunks_exact(2)) {
        if let [hi, lo] = pair {
            *w = u16::from_be_bytes([*hi, *lo]);
        }
    }
    // Longest run of zero words (the first one on ties); runs of one don't count.
    let mut best: Option<(usize, usize)> = None;
    let mut cur: Option<(usize, usize)> = None;
    for (i, &w) in words.iter().enumerate() {
        if w == 0 {
            cur = Some(cur.map_or((i, 1), |(base, len)| (base, len + 1)));
        } else if let Some(run) = cur.take()
            && best.is_none_or(|b| run.1 > b.1)
        {
            best = Some(run);
        }
    }
    if let Some(run) = cur
        && best.is_none_or(|b| run.1 > b.1)
    {
        best = Some(run);
    }
    let best = best.filter(|b| b.1 >= 2);

    for (i, &w) in words.iter().enumerate() {
        if let Some((base, len)) = best
            && i >= base
            && i < base + len
        {
            if i == base {
                out.push(b':');
            }
            continue;
        }
        if i != 0 {
            out.push(b':');
        }
        let embedded_v4 = i == 6
            && best.is_some_and(|(base, len)| {
                base == 0
                    && (len == 6 || (len == 7 && words[7] != 1) || (len == 5 && words[5] == 0xffff))
            });
        if embedded_v4 {
            let [.., a, b, c, d] = *src;
            for (j, octet) in [a, b, c, d].into_iter().enumerate() {
                if j > 0 {
                    out.push(b'.');
                }
                push_u64(out, octet.into());
            }
            break;
        }
        push_hex(out, w.into(), false);
    }
    if best.is_some_and(|(base, len)| base + len == 8) {
        out.push(b':');
    }
}

fn mac(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        push_hex_byte(out, *b);
    }
    out.push(b'"');
}

/// `macaddr`: "08:00:2b:01:02:03".
pub(super) fn macaddr(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    mac(out, &exact::<6>(raw)?);
    Some(())
}

/// `macaddr8`: "08:00:2b:01:02:03:04:05".
pub(super) fn macaddr8(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    mac(out, &exact::<8>(raw)?);
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
    fn inet_matches_postgres() {
        // (output function text, inet_send output) from PostgreSQL 15.
        let cases = [
            ("192.168.0.1/24", "02180004c0a80001"),
            ("10.0.0.1", "022000040a000001"),
            ("::1", "0380001000000000000000000000000000000001"),
            ("::", "0380001000000000000000000000000000000000"),
            ("2001:db8::1/64", "0340001020010db8000000000000000000000001"),
            ("::ffff:1.2.3.4", "0380001000000000000000000000ffff01020304"),
            ("::1.2.3.4", "0380001000000000000000000000000001020304"),
            ("1:0:0:1::1", "0380001000010000000000010000000000000001"),
            ("1::1:0:0:1:1", "0380001000010000000000010000000000010001"),
            ("fe80::1:0:0:0", "03800010fe800000000000000001000000000000"),
            ("::1:0:0", "0380001000000000000000000000000100000000"),
            ("::2", "0380001000000000000000000000000000000002"),
            ("::0.1.0.1", "0380001000000000000000000000000000010001"),
            ("::ffff:0.0.0.0", "0380001000000000000000000000ffff00000000"),
        ];
        for (text, bin) in cases {
            assert_eq!(run(inet, &hex(bin)), Some(format!("\"{text}\"")), "{bin}");
        }
        assert_eq!(
            run(inet, &hex("0380001000010002000300040005000600070008")),
            Some("\"1:2:3:4:5:6:7:8\"".into())
        );
    }

    #[test]
    fn cidr_always_has_prefix() {
        let cases = [
            ("10.0.0.0/8", "020801040a000000"),
            ("10.1.2.3/32", "022001040a010203"),
            ("2001:db8::/32", "0320011020010db8000000000000000000000000"),
            ("::/0", "0300011000000000000000000000000000000000"),
        ];
        for (text, bin) in cases {
            assert_eq!(run(cidr, &hex(bin)), Some(format!("\"{text}\"")), "{bin}");
        }
    }

    #[test]
    fn malformed_addresses() {
        assert_eq!(run(inet, &hex("02210004c0a80001")), None); // /33
        assert_eq!(run(inet, &hex("02180005c0a8000100")), None); // IPv4 with 5 bytes
        assert_eq!(run(inet, &hex("07180004c0a80001")), None); // unknown family
        assert_eq!(run(inet, &hex("02180004c0a800")), None); // short
        assert_eq!(run(inet, &[]), None);
    }

    #[test]
    fn macs() {
        assert_eq!(
            run(macaddr, &hex("08002b010203")),
            Some("\"08:00:2b:01:02:03\"".into())
        );
        assert_eq!(
            run(macaddr8, &hex("08002b01020304ff")),
            Some("\"08:00:2b:01:02:03:04:ff\"".into())
        );
        assert_eq!(run(macaddr, &hex("08002b0102")), None);
    }
}
