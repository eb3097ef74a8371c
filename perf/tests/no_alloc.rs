//! The fast path allocates nothing: after a warm-up (the core's vectors and
//! rings reach their working size), 2000 more UDP echoes, ICMP echoes and
//! TCP data segments with their ACKs run through a whole core without one
//! heap allocation (pathcost counts them with a counting global allocator).

use std::process::Command;

/// Heap allocations pathcost saw during 2000 packets of `case` after `warm`.
fn allocations(case: &str, warm: u32) -> u64 {
    let out = Command::new(env!("CARGO_BIN_EXE_pathcost"))
        .args([case, "2000", &warm.to_string()])
        .output()
        .expect("pathcost");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pathcost {case}: {text}");
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("allocs="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no allocs= in {text}"))
}

#[test]
fn udp_icmp_and_tcp_run_without_allocating() {
    for case in ["udp-echo", "icmp-echo", "tcp-data-ack"] {
        assert_eq!(allocations(case, 500), 0, "{case}");
    }
}

#[test]
fn the_count_sees_allocations_when_there_are_some() {
    // Cold (no warm-up), the TCP core still grows its vectors: the counter
    // is live, so the zero above means something.
    assert!(allocations("tcp-data-ack", 0) > 0);
}
