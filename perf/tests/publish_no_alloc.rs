//! The lcore's once-a-second latency publication allocates nothing: handing
//! its histograms to the slot swaps them for the slot's spare, so the core
//! never allocates, copies or frees the 1 MB they take (the copy it made
//! before held the loop for over 100 us every second). Counted with a
//! global allocator that counts the calling thread's allocations only, so
//! tests running beside this one do not add to it.

use dpstack::stats::latency::{LatencySet, TrafficKind};
use dpstack::stats::latency_slot::LatencySlot;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the count is a const-initialized
// thread local (touching it allocates nothing).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

#[test]
fn handing_over_allocates_nothing() {
    let slot = LatencySlot::default();
    let mut recent = LatencySet::default();
    for second in 0..10u64 {
        recent.record(TrafficKind::Udp, 1000 + second, 32);
        recent.record(TrafficKind::Tcp, 5000, 1);
        let n = allocations(|| assert!(slot.hand_over(&mut recent)));
        assert_eq!(n, 0, "second {second}");
        // The reader folds it in (on another thread in dpstack; its
        // allocations are not the core's).
        slot.read(|l| l.histogram(TrafficKind::Udp).len()).unwrap();
    }
    assert_eq!(
        slot.read(|l| l.histogram(TrafficKind::Udp).len()).unwrap(),
        320
    );
}

#[test]
fn the_count_sees_the_copy_the_core_made_before() {
    // What the core did before: copy the set into the slot each second.
    // The counter is live, so the zero above means something.
    let mut recent = LatencySet::default();
    recent.record(TrafficKind::Udp, 1000, 1);
    let mut slot = LatencySet::default();
    assert!(allocations(|| slot.clone_from(&recent)) > 0);
}
