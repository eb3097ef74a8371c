//! Issue 6: more cores than CPUs, every flow handled by one core. On
//! net_af_packet the queue a flow lands on cannot be predicted (the kernel's
//! fanout hash, with rollover when a ring is full), so segments that reach a
//! core not owning their connection are handed over and counted.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn four_lcores_on_two_cpus_udp_flows_and_tcp_both_ways() {
    let _g = serial();
    let net = TestNet::new(Link::Veth);
    let tool = root().join("tests/tools/tcp.py");
    let server = Command::new("ip")
        .args(["netns", "exec", &net.ns, "/usr/bin/python3"])
        .arg(&tool)
        .args(["echo-server", "5003", "64"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("echo server");
    std::thread::sleep(Duration::from_millis(500));
    let peer = format!("{}:5003", net.host_ip());
    let d = Dpstack::start_eal(
        &net,
        "--lcores=(0-3)@(0,1)",
        4,
        &format!(
            "--app udp-echo:7 --app tcp-echo:7 --app tcp-client:{peer}:20000:64 --flow tcp:7@1"
        ),
    );
    assert!(d.output().contains("rss prediction off"), "{}", d.output());
    // af_packet has no rte_flow: said once, and the stack goes on.
    assert_eq!(
        d.output().matches("does not take the rules").count(),
        1,
        "{}",
        d.output()
    );
    let ip = net.stack_ip();

    // 64 connections dpstack opens, spread over the 4 cores.
    let app = format!("tcp-client:{peer}");
    let b = d.wait_for("64 outbound connections", Duration::from_secs(60), |b| {
        b.app_total(&app, "completed") + b.app_total(&app, "failed") >= 64
    });
    assert_eq!(b.app_total(&app, "completed"), 64, "{:?}", b.apps);
    assert_eq!(b.app_total(&app, "mismatches"), 0);
    let out = server.wait_with_output().unwrap();
    assert_eq!(
        text(&out).matches("\"bytes\": 20000").count(),
        64,
        "{}",
        text(&out)
    );

    // 256 UDP flows from the host, every datagram answered.
    net.tool("udp.py", &format!("flows {ip} 7 256 5"));
    // 64 inbound TCP connections at once.
    net.tool("tcp.py", &format!("concurrent {ip} 7 64 50000"));

    let b = d.wait_for("inbound counted", Duration::from_secs(10), |b| {
        b.get("tcp_accepted") >= 64 && b.app_total("udp-echo:7", "echoed") >= 256 * 5
    });
    for core in 0..4 {
        assert!(b.core(core, "udp_rx") > 0, "core {core}: no UDP {b:?}");
        assert!(
            b.app_total(&app, "connected") > 0 && b.core(core, "tcp_connected") > 0,
            "core {core} opened no connection: {b:?}"
        );
    }
    // Every segment was processed by its connection's core: none got a
    // RST for lack of a connection, and every handoff arrived.
    assert_eq!(b.get("drop_tcp_no_connection"), 0, "{:?}", b.total);
    assert_eq!(b.get("steer_handoffs_out"), b.get("steer_handoffs_in"));
    assert_eq!(b.get("steer_handoff_dropped"), 0);
    eprintln!(
        "handoffs: {} (af_packet cannot be predicted)",
        b.get("steer_handoffs_out")
    );
    let e = d.stop();
    assert_clean_exit(&e, Duration::from_secs(2));
}

#[test]
fn one_lcore_serves_tcp_and_udp() {
    let _g = serial();
    let net = TestNet::new(Link::Veth);
    let d = Dpstack::start_on(&net, "0", "--app udp-echo:7 --app tcp-echo:7");
    let ip = net.stack_ip();
    net.tool("udp.py", &format!("flows {ip} 7 16 5"));
    net.tool("tcp.py", &format!("concurrent {ip} 7 16 20000"));
    let b = d.wait_for("counted", Duration::from_secs(5), |b| {
        b.get("tcp_accepted") >= 16
    });
    assert_eq!(b.cores.len(), 1);
    assert_eq!(
        b.get("steer_handoffs_out"),
        0,
        "one core: nothing to hand over"
    );
    let e = d.stop();
    assert_clean_exit(&e, Duration::from_secs(1));
}
