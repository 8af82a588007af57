//! Arbitrary bytes as the JSON arguments of every tool, through the
//! gateway's argument parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pgmcp_gateway::fuzzing::arguments(data);
});
