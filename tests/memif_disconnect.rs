//! A memif peer that comes and goes while dpstack's lcores poll: net_memif
//! maps and unmaps the peer's shared memory on EAL's interrupt thread
//! while an lcore may be inside a burst on it, and dpstack died of SIGSEGV
//! (`make bench`, 2 lcores; here about one run in ten). dpstack must live
//! through any number of peers connecting and leaving, answer each and
//! stop cleanly (src/ffi/burst_gate.c).

mod common;

use common::{assert_clean_exit, eal_memory, root, run, serial, Dpstack};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The release builds of dpstack and dpstack-gen (built here if need be,
/// as perf/bench.sh does): the race needs an lcore that spends its time
/// inside the driver's bursts, as an optimized one does; a debug build
/// spends it in its own code and rarely loses the race.
fn release_bins() -> (PathBuf, PathBuf) {
    run(&format!(
        "cd {} && cargo build --release -q -p dpstack --bin dpstack -p perf --bin dpstack-gen",
        root().display()
    ));
    let dir = root().join("target/release");
    (dir.join("dpstack"), dir.join("dpstack-gen"))
}

#[test]
fn two_lcores_live_through_peers_leaving_under_load() {
    let _g = serial();
    let sock = format!("/tmp/dps-memifdisc-{}.sock", std::process::id());
    let _ = std::fs::remove_file(&sock);
    // The interrupt thread shares CPU 0 with lcore 0, as in `make bench`:
    // it preempts that lcore, inside a burst as often as not. Fresh
    // servers (a first connect) and peers that come again (reconnects).
    let (dpstack, gen) = release_bins();
    let json = std::env::temp_dir().join(format!("dps-memifdisc-{}.json", std::process::id()));
    for server in 0..8 {
        let mut d = Dpstack::spawn_bin(
            &dpstack,
            &format!(
                "--lcores=0@0,1@1 --no-pci {} --log-level=lib.eal:warning \
                 --log-level=pmd.net.memif:error --vdev=net_memif0,role=server,socket={sock} \
                 -- --ip 198.18.63.1/24 --app udp-echo:7 --stats-interval 1",
                eal_memory("dpsmdisc")
            ),
        );
        for peer in 0..3 {
            let _ = std::fs::remove_file(&json);
            let out = Command::new(&gen)
                .args(
                    format!(
                        "--lcores=0@0 --no-pci {} --log-level=lib.eal:warning \
                         --log-level=pmd.net.memif:error --vdev=net_memif0,role=client,socket={sock} \
                         -- --mode udp --src 198.18.63.2 --dst 198.18.63.1:7 --flows 8 --queues 2 \
                         --rate 0 --seconds 1 --quiet --json {}",
                        eal_memory("dpsmdiscgen"),
                        json.display()
                    )
                    .split_whitespace(),
                )
                .output()
                .expect("dpstack-gen");
            // The disconnect is handled on dpstack's interrupt thread
            // after the generator has gone: give it that moment.
            std::thread::sleep(Duration::from_millis(200));
            if let Some(status) = d.exited() {
                panic!(
                    "server {server}: dpstack died with peer {peer} ({status}):\n{}",
                    d.output()
                );
            }
            assert!(
                out.status.success(),
                "server {server}, peer {peer}: dpstack-gen failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let report = std::fs::read_to_string(&json).expect("the generator's report");
            let rx: f64 = report
                .split("\"rx_pps\":")
                .nth(1)
                .and_then(|r| r.split([',', '}']).next())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no rx_pps in {report}"));
            assert!(
                rx > 0.0,
                "server {server}, peer {peer}: nothing came back: {report}"
            );
        }
        let e = d.stop();
        assert_clean_exit(&e, Duration::from_secs(5));
    }
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&sock);
}
