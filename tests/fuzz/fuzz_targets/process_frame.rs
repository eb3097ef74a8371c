//! Fuzz a whole core's receive path on heap buffers: no input may panic it
//! and every buffer must come back to the pool.
//!
//! cargo +nightly fuzz run process_frame --fuzz-dir tests/fuzz -- -max_total_time=60
#![no_main]

use dpstack::fuzzing::FuzzCore;
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

thread_local! {
    static CORE: RefCell<FuzzCore> = RefCell::new(FuzzCore::new());
}

fuzz_target!(|data: &[u8]| {
    CORE.with(|c| c.borrow_mut().feed(data));
});
