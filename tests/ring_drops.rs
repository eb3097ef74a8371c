//! Issue 15: frames the kernel drops from net_af_packet's ring before
//! dpstack reads them are counted. DPDK 22.11's PMD reports no `imissed`
//! (the port line says `imissed_reported=false`); dpstack reads the ring's
//! drops from the PMD's sockets itself (`port ring_drops=`).
//!
//! dpstack is stopped with SIGSTOP while a host sends more frames than the
//! ring holds (512 frames by default), so the kernel must drop the rest;
//! after SIGCONT every frame is either one dpstack read or one the ring
//! dropped. The kernel's own interface counters (`ip -s link`) show none of
//! those drops: the veth delivered every frame to the socket.

mod common;

use common::*;
use std::collections::HashMap;
use std::time::Duration;

const SENT: u64 = 5000;

fn words(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn af_packet_ring_drops_while_stopped_are_counted() {
    let _g = serial();
    let net = TestNet::new(Link::Veth);
    let d = Dpstack::start_on(&net, "1", "");
    // [d]: the pattern does not match the shell that runs pgrep.
    let pid = text(&run(&format!("pgrep -f 'file-prefix [d]ps{} '", net.ns)));
    let pid = pid.trim();
    assert!(!pid.is_empty() && !pid.contains('\n'), "pid: {pid:?}");
    run(&format!("kill -STOP {pid}"));
    // Frames the stack drops as soon as it reads them (a bad IPv4 header
    // checksum): each one read shows as one drop_bad_checksum.
    net.send_frames(&d.mac, "ip_bad_cksum", SENT as u32);
    run(&format!("kill -CONT {pid}"));
    std::thread::sleep(Duration::from_millis(1500));
    // Telemetry has the same beside the counters: {"/dpstack/stats": {...,
    // "port_ring_drops": N, ...}}.
    let tool = root().join("tests/tools/telemetry.py");
    let o = try_run(&format!(
        "/usr/bin/python3 {} dps{} /dpstack/stats",
        tool.display(),
        net.ns
    ));
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let telemetry_drops: u64 = t
        .split("\"port_ring_drops\": ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no port_ring_drops in {t}"));
    let e = d.stop();
    let all = e.lines.join("\n");
    let port = e
        .lines
        .iter()
        .find(|l| l.starts_with("final port driver="))
        .unwrap_or_else(|| panic!("no final port line:\n{all}"));
    let port = words(port);
    assert_eq!(port["driver"], "net_af_packet", "{all}");
    assert_eq!(port["imissed_reported"], "false", "{all}");
    let ring = e
        .lines
        .iter()
        .find(|l| l.starts_with("final port ring_drops="))
        .unwrap_or_else(|| panic!("no final ring line:\n{all}"));
    let ring = words(ring);
    let drops: u64 = ring["ring_drops"].parse().unwrap();
    let read = e.final_block.get("drop_bad_checksum");
    assert!(
        read < SENT,
        "the ring held everything ({read} read):\n{all}"
    );
    // Everything sent was read or dropped by the kernel (the ring may have
    // dropped a frame of the host's own too, never fewer).
    assert!(
        drops >= SENT - read,
        "{drops} ring drops, {read} of {SENT} read:\n{all}"
    );
    assert!(drops <= SENT + 20, "{drops} ring drops of {SENT}:\n{all}");
    // Read before the stop, after every frame had arrived.
    assert!(
        telemetry_drops >= SENT - read && telemetry_drops <= drops,
        "telemetry {telemetry_drops}, final {drops}"
    );
}
