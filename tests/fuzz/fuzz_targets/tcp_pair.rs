//! Two whole dpstack cores against each other over a fuzz-controlled link
//! (drop, duplicate, delay, corrupt) with fuzz-controlled applications on
//! both sides (open, send, shut down, close, abort, stop reading, set
//! options). At the end, after time enough for every timer to run out:
//! every byte sent was read in order by the other side, or an error
//! excuses it; every buffer came back; no connection is left. See
//! src/fuzzing/pair.rs and docs/fuzzing.md.
//!
//! cargo +nightly fuzz run tcp_pair --fuzz-dir tests/fuzz -- -max_total_time=60
#![no_main]

use dpstack::fuzzing::pair::{run_script, Script};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|script: Script| {
    if let Err(v) = run_script(&script) {
        panic!("{v}\n{script:?}");
    }
});
