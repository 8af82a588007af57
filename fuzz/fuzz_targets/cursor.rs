//! Arbitrary bytes as a signed pagination cursor, as the payload of a
//! correctly signed one, and as a listing cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pgmcp_gateway::fuzzing::cursor(data);
});
