//! Issue 16: packet capture with DPDK's own dpdk-dumpcap. dpstack runs as
//! a primary process with EAL's shared configuration (hugepages, a file
//! prefix, no --in-memory), dpdk-dumpcap attaches as a secondary and
//! captures the port's RX and TX through a BPF filter while a Linux host
//! pings; tcpdump reads the pcapng back and sees each echo request and its
//! reply, and no ARP (the filter kept it out).

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Debian's dpdk-dumpcap and a primary disagree on mempool ops unless the
/// dpaa mempool driver is loaded first (../shared/FIELDNOTES.md).
const DUMPCAP_PRELOAD: &str = "/usr/lib/x86_64-linux-gnu/librte_mempool_dpaa.so.23";

fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Removes what a primary without --in-memory leaves in /dev/hugepages.
struct HugepageFiles(String);

impl Drop for HugepageFiles {
    fn drop(&mut self) {
        let _ = try_run(&format!("rm -f /dev/hugepages/{}map_*", self.0));
    }
}

#[test]
fn dumpcap_captures_a_ping_with_a_filter() {
    let _g = serial();
    assert!(
        free_hugepages() >= 128,
        "capture needs EAL's shared memory: reserve hugepages (see docs/operations.md)"
    );
    let net = TestNet::new(Link::Veth);
    let prefix = format!("cap{}", net.ns);
    let _files = HugepageFiles(prefix.clone());
    let d = Dpstack::spawn(&format!(
        "-l 0-1 --no-pci --file-prefix {prefix} --log-level=lib.eal:warning \
         --vdev=net_af_packet0,iface={},qpairs=2 -- --ip {}/24",
        net.dp_if,
        net.stack_ip()
    ));
    let pcap = std::env::temp_dir().join(format!("{prefix}.pcapng"));
    let _ = std::fs::remove_file(&pcap);
    let log = std::env::temp_dir().join(format!("{prefix}.dumpcap"));
    let out = std::fs::File::create(&log).unwrap();
    let mut dumpcap = Command::new("timeout")
        // Line-buffered, so that "Capturing on" shows when it happens.
        .args(["30", "stdbuf", "-oL", "dpdk-dumpcap"])
        .arg(format!("--file-prefix={prefix}"))
        .args(["-i", "net_af_packet0", "-f", "icmp", "-c", "10", "-w"])
        .arg(&pcap)
        .env("LD_PRELOAD", DUMPCAP_PRELOAD)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("dpdk-dumpcap");
    // Wait until it captures: it says so once the primary enabled it.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("Capturing on")
    {
        if let Some(status) = dumpcap.try_wait().unwrap() {
            panic!(
                "dpdk-dumpcap exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "dpdk-dumpcap never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));

    let ping = net.host(&format!("ping -c 5 -w 10 -i 0.2 -W 1 {}", net.stack_ip()));
    assert!(ping.status.success(), "{}", text(&ping));
    let status = dumpcap.wait().unwrap();
    let dumped = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "dpdk-dumpcap: {status}: {dumped}");

    let read = run(&format!("tcpdump -nr {} 2>/dev/null", pcap.display()));
    let lines = String::from_utf8(read.stdout).unwrap();
    let (host, stack) = (net.host_ip(), net.stack_ip());
    let requests = lines
        .lines()
        .filter(|l| l.contains(&format!("{host} > {stack}: ICMP echo request")))
        .count();
    let replies = lines
        .lines()
        .filter(|l| l.contains(&format!("{stack} > {host}: ICMP echo reply")))
        .count();
    assert_eq!((requests, replies), (5, 5), "{lines}\n{dumped}");
    assert!(
        !lines.contains("ARP"),
        "the filter let ARP through: {lines}"
    );
    let _ = std::fs::remove_file(&pcap);
    let _ = std::fs::remove_file(&log);

    let e = d.stop();
    assert_clean_exit(&e, Duration::from_secs(2));
    assert!(
        !e.lines.iter().any(|l| l.contains("dpstack: capture:")),
        "{}",
        e.lines.join("\n")
    );
}
