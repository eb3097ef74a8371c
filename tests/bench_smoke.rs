//! The short version of `make bench`: every benchmark of perf/bench.sh runs
//! for one second and every number of docs/benchmarks.md must be produced
//! (bench_report.py exits non-zero on a missing or zero figure). No ratio is
//! asserted here: on two shared CPUs that is what `make bench` reports.

mod common;

use common::{root, serial, text};
use std::process::Command;

#[test]
fn every_benchmark_produces_its_numbers() {
    let _g = serial();
    let out = std::env::temp_dir().join(format!("dpstack-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new("bash")
        .arg(root().join("perf/bench.sh"))
        .arg("--smoke")
        .arg(&out)
        .output()
        .expect("bash");
    let log = text(&run);
    assert!(run.status.success(), "perf/bench.sh --smoke failed:\n{log}");
    assert!(log.contains("every number produced"), "{log}");
    let doc = std::fs::read_to_string(out.join("benchmarks.md")).expect("benchmarks.md");
    for section in [
        "## 1. UDP and ICMP echo over net_memif",
        "## 2. UDP echo over veth",
        "## 3. HTTP",
        "## 4. Instructions per packet",
        "## 5. Memory per idle connection",
        "## 6. TCP against Linux over a WAN",
        "### 6.3 Four flows through one bottleneck",
        "### 6.4 Echo under loss on a plain veth",
        "## 7. Cycles per packet over net_memif",
        "## Targets",
    ] {
        assert!(doc.contains(section), "no {section:?} in\n{doc}");
    }
    // Every target line carries a measured figure, met or not.
    let targets: Vec<&str> = doc.lines().filter(|l| l.starts_with("- ")).collect();
    assert!(targets.len() >= 6, "targets: {targets:?}");
    for png in [
        "memif-udp-half-load.png",
        "veth-udp-half-load.png",
        "memif-tcp.png",
        "wan-bulk-goodput.png",
        "wan-bulk-cwnd.png",
        "wan-fair-mixed-goodput.png",
        "wan-fair-mixed-cwnd.png",
    ] {
        let len = std::fs::metadata(out.join(png))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 1000, "{png}: {len} bytes");
    }
    // Connection memory: every connection held, a figure for each server
    // and for the in-process table (no size asserted: `make bench` reports).
    for (name, held) in [("connmem-dpstack", "held"), ("connmem-nginx", "held")] {
        let j = std::fs::read_to_string(out.join(format!("{name}.json"))).expect(name);
        let v: serde_json::Value = serde_json::from_str(&j).expect("json");
        assert_eq!(v[held], v["conns"], "{name}: {j}");
        assert!(
            v["bytes_per_conn"].as_f64().unwrap_or(0.0) > 0.0,
            "{name}: {j}"
        );
    }
    for name in ["connmem-inproc", "connmem-inproc-exchange"] {
        let j = std::fs::read_to_string(out.join(format!("{name}.json"))).expect(name);
        let v: serde_json::Value = serde_json::from_str(&j).expect("json");
        assert_eq!(v["conns"], v["target"], "{name}: {j}");
        assert!(
            v["bytes_per_conn"].as_f64().unwrap_or(0.0) > 0.0,
            "{name}: {j}"
        );
    }
    // The WAN rows: every one measured something (bench_report.py checks
    // each row's figures); the mixed run had flows of both stacks.
    let wan = std::fs::read_to_string(out.join("wan/wan.jsonl")).expect("wan.jsonl");
    let rows: Vec<serde_json::Value> = wan
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    for row in ["bulk", "fct", "fair", "echo"] {
        assert!(
            rows.iter().any(|r| r["row"] == row),
            "no {row} row in {wan}"
        );
    }
    let mixed = rows
        .iter()
        .find(|r| r["row"] == "fair" && r["stack"] == "mixed")
        .expect("mixed");
    assert_eq!(mixed["dpstack_flows"], 2, "{mixed}");
    assert_eq!(mixed["linux_flows"], 2, "{mixed}");
    // Cycles per packet: every row of both targets measured one
    // (bench_report.py refuses a missing one; the ratio is not asserted).
    let cycles = std::fs::read_to_string(out.join("cycles.jsonl")).expect("cycles.jsonl");
    let rows: Vec<serde_json::Value> = cycles
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    for name in ["udp-dpstack", "udp-testpmd", "icmp-dpstack", "icmp-testpmd"] {
        let r = rows
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {cycles}"));
        assert!(
            r["cycles_per_packet"].as_f64().unwrap_or(0.0) > 0.0,
            "{name}: {r}"
        );
    }
    // Instruction counts are figures, not blanks.
    for case in ["udp-echo", "icmp-echo", "tcp-data-ack"] {
        let j = std::fs::read_to_string(out.join(format!("instr-{case}.json"))).expect(case);
        let v: serde_json::Value = serde_json::from_str(&j).expect("json");
        let n = v["instructions"].as_f64().unwrap_or(0.0);
        assert!(n > 100.0, "{case}: {n} instructions");
    }
    let _ = std::fs::remove_dir_all(&out);
}
