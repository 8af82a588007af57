//! A bounded, deterministic fuzz run of the decoders of untrusted input
//! (tool arguments, pagination and listing cursors), through the same entry
//! points as the cargo-fuzz targets in `fuzz/`: generated JSON arguments and
//! byte-wise mutations of a seed corpus, from a fixed seed. Nothing may
//! panic, and every refusal must be an error value with a message (the
//! entry points check that). `cargo +nightly fuzz run arguments` explores
//! much further; see docs/security.md.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use pgmcp_gateway::fuzzing;

/// Inputs per entry point.
const RUNS: usize = 15_000;

/// SplitMix64: a small, seeded, reproducible generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Field names the tools know, and a few they do not.
const KEYS: &[&str] = &[
    "sql",
    "params",
    "cursor",
    "page_size",
    "max_rows",
    "timeout_ms",
    "database",
    "statements",
    "queries",
    "analyze",
    "buffers",
    "table",
    "schema",
    "columns",
    "rows",
    "include_system",
    "name_pattern",
    "kinds",
    "limit",
    "order_by",
    "bogus",
    "",
    "SQL",
];

/// Fragments that tend to break parsers.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "null",
    "true",
    "-0",
    "1e999",
    "-1",
    "18446744073709551616",
    "4294967296",
    "0.5",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"[1,\"",
    "\"{}\"",
    "\"[{\\\"sql\\\":1}]\"",
    "[[[[[[[[",
    "]]]]]]]]",
    "\u{feff}",
    "\u{10ffff}",
];

fn value(rng: &mut Rng, depth: usize) -> String {
    let choice = if depth > 6 {
        rng.below(6)
    } else {
        rng.below(10)
    };
    match choice {
        0 => "null".into(),
        1 => rng.pick(&["true", "false"]).to_string(),
        2 => match rng.below(4) {
            0 => (rng.next() as i64).to_string(),
            1 => (rng.next() % 100_000).to_string(),
            2 => format!("{}.{}", rng.below(1000), rng.below(1000)),
            _ => rng
                .pick(&["-1", "0", "1e999", "-0", "4294967296", "1e-400"])
                .to_string(),
        },
        3 | 4 => {
            let s = match rng.below(5) {
                0 => "SELECT $1::int".to_string(),
                1 => "x".repeat(rng.below(300)),
                2 => "[1, 2, \"a\"]".to_string(),
                3 => "{\"sql\": \"SELECT 1\"}".to_string(),
                _ => (0..rng.below(12))
                    .map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('?'))
                    .collect(),
            };
            serde_json::Value::String(s).to_string()
        }
        5 => rng.pick(TOKENS).to_string(),
        6 | 7 => {
            let n = rng.below(4);
            let items: Vec<String> = (0..n).map(|_| value(rng, depth + 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => object(rng, depth + 1),
    }
}

fn object(rng: &mut Rng, depth: usize) -> String {
    let n = rng.below(6);
    let fields: Vec<String> = (0..n)
        .map(|_| format!("\"{}\":{}", rng.pick(KEYS), value(rng, depth)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// One byte-wise mutation of `input` (possibly splicing in `other`).
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 => out.insert(at, rng.next() as u8),
            3 if !out.is_empty() => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            4 => {
                let token = rng.pick(TOKENS).as_bytes();
                out.splice(at..at, token.iter().copied());
            }
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + rng.below(32)).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn run(name: &str, entry: fn(&[u8]) -> fuzzing::Outcome, seeds: &[Vec<u8>], generated: bool) {
    let mut rng = Rng(0x005E_ED0F_9A7E_3A1C);
    let started = Instant::now();
    let mut accepted = 0;
    let mut rejected = 0;
    // Most seeds are valid (some are near misses on purpose): together they
    // must get past the decoders.
    let seeds_accepted: usize = seeds.iter().map(|s| entry(s).accepted).sum();
    assert!(
        seeds_accepted > 0,
        "{name}: no seed is accepted by anything"
    );
    for i in 0..RUNS {
        let input = if generated && i % 2 == 0 {
            object(&mut rng, 0).into_bytes()
        } else {
            let seed = rng.pick(seeds);
            let other = rng.pick(seeds);
            mutate(&mut rng, seed, other)
        };
        match catch_unwind(AssertUnwindSafe(|| entry(&input))) {
            Ok(out) => {
                accepted += out.accepted;
                rejected += out.rejected;
            }
            Err(_) => panic!(
                "{name} panicked on input #{i}: {:?} (bytes {input:?})",
                String::from_utf8_lossy(&input)
            ),
        }
    }
    eprintln!(
        "{name}: {RUNS} inputs, {accepted} decodings accepted, {rejected} refused with an error, {:?}",
        started.elapsed()
    );
    assert!(
        rejected > 0 && accepted > 0,
        "{name}: the inputs did not exercise both outcomes"
    );
}

#[test]
fn tool_arguments_never_panic() {
    run(
        "arguments",
        fuzzing::arguments,
        &fuzzing::argument_seeds(),
        true,
    );
}

#[test]
fn cursors_never_panic() {
    run("cursor", fuzzing::cursor, &fuzzing::cursor_seeds(), false);
}
