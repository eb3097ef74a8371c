//! Fuzz one whole core with structured, stateful input: sequences of
//! frames described by their fields (TCP sequence and ACK numbers relative
//! to what the core sent) and clock advances, the oracles checked after
//! every step (src/fuzzing/frames.rs, src/fuzzing/oracle.rs).
//!
//! cargo +nightly fuzz run tcp_frames --fuzz-dir tests/fuzz -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dpstack::fuzzing::frames::run_bytes(data);
});
