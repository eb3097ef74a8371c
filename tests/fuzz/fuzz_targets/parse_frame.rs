//! Fuzz the frame parser: no input may panic it.
//!
//! cargo install cargo-fuzz
//! cargo +nightly fuzz run parse_frame --fuzz-dir tests/fuzz -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dpstack::wire::frame::parse_frame(data);
});
