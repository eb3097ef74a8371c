//! Issue 5: the kernel exception path. dpstack's wire is a TAP device in the
//! test host's namespace (so the root namespace's kernel sees nothing but
//! what dpstack hands it), and its kernel interface `dpkN` lives in the root
//! namespace with dpstack's own address.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// dpstack with a kernel interface, the interface given our address.
fn start(net: &TestNet, opts: &str) -> (Dpstack, String) {
    let kif = format!("dpk{}", net.subnet);
    let d = Dpstack::start(net, &format!("--kni tap:{kif} {opts}"));
    assert!(
        d.output().contains(&format!("kernel interface {kif}")),
        "{}",
        d.output()
    );
    run(&format!(
        "ip addr add {}/24 dev {kif} && ip link set {kif} up",
        net.stack_ip()
    ));
    (d, kif)
}

/// (rx_packets, tx_packets) of a kernel interface.
fn link_packets(ifname: &str) -> (u64, u64) {
    let o = run(&format!("ip -s -j link show {ifname}"));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("ip -j");
    let s = &v[0]["stats64"];
    (
        s["rx"]["packets"].as_u64().unwrap(),
        s["tx"]["packets"].as_u64().unwrap(),
    )
}

struct Bg(Child);
impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bg(cmd: &str) -> Bg {
    Bg(Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn"))
}

#[test]
fn the_kernel_serves_what_dpstack_does_not_own() {
    let _g = serial();
    let net = TestNet::new(Link::Tap);
    let (d, kif) = start(&net, "--app http:80:100");
    let ip = net.stack_ip();
    let host = net.host_ip();

    // A TCP service run by Linux on the kernel interface, on a port no
    // dpstack application owns; dpstack's own http app beside it.
    let _srv = bg(&format!(
        "cd /tmp && exec /usr/bin/python3 -m http.server 8080 --bind {ip}"
    ));
    std::thread::sleep(Duration::from_millis(700));
    let o = net.host(&format!(
        "curl -s -m 5 -o /dev/null -w %{{http_code}} http://{ip}:8080/"
    ));
    assert_eq!(text(&o), "200", "kernel's http.server through dpstack");
    let o = net.host(&format!(
        "curl -s -m 5 -o /dev/null -w %{{http_code}} http://{ip}/"
    ));
    assert_eq!(text(&o), "200", "dpstack's own http app");

    // ICMP echo: dpstack answers (the default).
    let o = net.host(&format!("ping -c 3 -w 10 -i 0.2 -W 1 {ip}"));
    assert!(o.status.success(), "{}", text(&o));

    // IPv6: neighbour discovery and echo through the exception path, to
    // the kernel interface's link-local address (once duplicate address
    // detection is over on both ends).
    for _ in 0..50 {
        let a = text(&run(&format!("ip -6 -o addr show dev {kif} scope link")));
        let b = text(&net.host(&format!(
            "ip -6 -o addr show dev {} scope link",
            net.host_if
        )));
        if a.contains("fe80")
            && !a.contains("tentative")
            && b.contains("fe80")
            && !b.contains("tentative")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = run(&format!("ip -6 -o addr show dev {kif} scope link"));
    let ll = text(&o)
        .split_whitespace()
        .find(|w| w.starts_with("fe80"))
        .map(|w| w.split('/').next().unwrap().to_string())
        .expect("a link-local address");
    let o = net.host(&format!("ping -6 -c 3 -i 0.2 -w 5 {ll}%{}", net.host_if));
    assert!(
        o.status.success(),
        "IPv6 ping: {}\n{}\n{}\nhost neighbours: {}\n{:?}",
        text(&o),
        text(&run(&format!(
            "ip -6 addr show dev {kif}; ip link show {kif}"
        ))),
        text(&net.host(&format!("ip link show {}", net.host_if))),
        text(&net.host("ip -6 neigh")),
        d.latest().map(|b| b.total)
    );

    // Linux-originated traffic out of the kernel interface: a ping, and a
    // TCP connection to a listener on the host.
    let o = try_run(&format!("ping -c 3 -w 10 -i 0.2 -W 1 -I {kif} {host}"));
    assert!(o.status.success(), "ping from the kernel: {}", text(&o));
    let tool = root().join("tests/tools/tcp.py");
    let _echo = bg(&format!(
        "exec ip netns exec {} /usr/bin/python3 {} echo-server 5002 1",
        net.ns,
        tool.display()
    ));
    std::thread::sleep(Duration::from_millis(500));
    let o = try_run(&format!(
        "/usr/bin/python3 -c \"import socket; s=socket.create_connection(('{host}',5002),timeout=5); \
         s.sendall(b'x'*100000); s.shutdown(1); n=0\nwhile True:\n  b=s.recv(65536)\n  if not b: break\n  n+=len(b)\nprint(n)\""
    ));
    assert_eq!(
        text(&o).trim(),
        "100000",
        "kernel's TCP client: {}",
        text(&o)
    );

    // The kernel's own counters agree with dpstack's.
    let b1 = d.next_block();
    let (rx, tx) = link_packets(&kif);
    let b2 = d.next_block();
    assert!(
        b1.get("kni_kernel_rx") <= rx && rx <= b2.get("kni_kernel_rx"),
        "kernel rx {rx} vs dpstack {} .. {}",
        b1.get("kni_kernel_rx"),
        b2.get("kni_kernel_rx")
    );
    assert!(
        b1.get("kni_from_kernel") <= tx && tx <= b2.get("kni_from_kernel"),
        "kernel tx {tx} vs dpstack {} .. {}",
        b1.get("kni_from_kernel"),
        b2.get("kni_from_kernel")
    );
    assert!(b2.get("icmp_echo_replies") >= 3);
    assert_eq!(b2.get("kni_queue_full") + b2.get("kni_rate_limited"), 0);
    // Only the designated core (0) talks to the kernel interface.
    assert_eq!(b2.core(1, "kni_kernel_rx"), 0);

    let e = d.stop();
    assert_clean_exit(&e, Duration::from_secs(1));
}

#[test]
fn icmp_by_the_kernel_floods_are_limited_and_a_down_interface_drops() {
    let _g = serial();
    let net = TestNet::new(Link::Tap);
    let (d, kif) = start(
        &net,
        "--app udp-echo:7 --kni-icmp kernel --kni-rate 2000 --kni-queue 256 --kni-core 1",
    );
    let ip = net.stack_ip();

    let o = net.host(&format!("ping -c 3 -w 10 -i 0.2 -W 1 {ip}"));
    assert!(o.status.success(), "{}", text(&o));
    let b = d.next_block();
    assert_eq!(b.get("icmp_echo_replies"), 0, "the kernel answers");
    assert!(b.get("kni_to_kernel") >= 3);
    // Core 1 was named to serve the kernel interface: it alone reads what
    // the kernel sends (the echo replies) and puts it on the wire.
    assert!(b.core(1, "kni_kernel_rx") >= 3, "{:?}", b.cores);
    assert_eq!(b.core(0, "kni_kernel_rx"), 0, "{:?}", b.cores);

    // A flood toward the kernel (a UDP port nobody owns) while dpstack's own
    // echo keeps answering every datagram.
    let flood = format!(
        "/usr/bin/python3 -c \"import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); \
         t=time.time()\nwhile time.time()-t<3: s.sendto(b'f'*64,('{ip}',9999))\""
    );
    let _f = bg(&format!("exec ip netns exec {} {flood}", net.ns));
    std::thread::sleep(Duration::from_millis(300));
    let o = net.tool("udp.py", &format!("sizes {ip} 7 0 300"));
    assert!(o.status.success());
    std::thread::sleep(Duration::from_secs(3));
    let b = d.next_block();
    assert!(b.get("kni_rate_limited") > 0, "{:?}", b.total);
    // 2000/s in all: about 6000 in 3 s, plus the bursts.
    assert!(b.get("kni_to_kernel") < 10_000, "{:?}", b.total);
    assert!(b.app_total("udp-echo:7", "echoed") >= 301);

    // The kernel interface down: dropped and counted, nothing waits.
    run(&format!("ip link set {kif} down"));
    std::thread::sleep(Duration::from_millis(300));
    let before = d.next_block().get("kni_link_down");
    net.host(&format!(
        "/usr/bin/python3 -c \"import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); [s.sendto(b'x',('{ip}',9999)) for _ in range(50)]\""
    ));
    let b = d.wait_for("link-down drops", Duration::from_secs(5), |b| {
        b.get("kni_link_down") >= before + 50
    });
    assert!(b.get("drop_kernel") > 0);

    let e = d.stop();
    assert_clean_exit(&e, Duration::from_secs(1));
}

#[test]
fn ephemeral_ports_overlapping_the_kernels_are_refused() {
    let _g = serial();
    let net = TestNet::new(Link::Veth);
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut it = range.split_whitespace();
    let (lo, hi) = (it.next().unwrap(), it.next().unwrap());
    let o = try_run(&format!(
        "timeout 20 {} -l 0 --no-pci {} --log-level=lib.eal:warning --vdev=net_af_packet0,iface={} \
         -- --ip {}/24 --kni tap:dpkx{} --tcp-ports {lo}-{hi}",
        dpstack_bin(),
        eal_memory("dpsov"),
        net.dp_if,
        net.stack_ip(),
        net.subnet
    ));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("overlap"), "{}", text(&o));
}

/// Issue 15, fix 1: a datagram that arrives in fragments meets the kernel
/// policy after reassembly, as a whole one does. A 3000-byte UDP datagram
/// to a port no application owns reaches the kernel's socket (it was
/// answered with port unreachable), and the fragmented echo reply to the
/// kernel's own `ping -s 3000` reaches the kernel (it was dropped).
#[test]
fn fragmented_datagrams_reach_the_kernel_after_reassembly() {
    let _g = serial();
    let net = TestNet::new(Link::Tap);
    let (d, kif) = start(&net, "--app udp-echo:7");
    let ip = net.stack_ip();
    let host = net.host_ip();
    let got = std::env::temp_dir().join(format!("dpstack-kni-frag-{}", std::process::id()));
    let _ = std::fs::remove_file(&got);
    // The kernel's listener, on dpstack's address through the kernel
    // interface; it writes the length of each datagram it gets.
    let _srv = bg(&format!(
        "exec /usr/bin/python3 -c \"import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); \
         s.bind(('{ip}',9999)); f=open('{}','a')\nwhile True:\n  b,a=s.recvfrom(65535); f.write('%d\\n' % len(b)); f.flush()\"",
        got.display()
    ));
    std::thread::sleep(Duration::from_millis(500));
    // A few tries: the first may wait on ARP at either end.
    let mut lens = String::new();
    for _ in 0..10 {
        net.host(&format!(
            "/usr/bin/python3 -c \"import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); \
             s.sendto(b'k'*3000,('{ip}',9999))\""
        ));
        std::thread::sleep(Duration::from_millis(300));
        lens = std::fs::read_to_string(&got).unwrap_or_default();
        if !lens.is_empty() {
            break;
        }
    }
    let b = d.next_block();
    assert!(
        lens.lines().any(|l| l == "3000"),
        "the kernel's socket got {lens:?}; dpstack: reassembled {} icmp errors {} to kernel {}",
        b.get("ipv4_reassembled"),
        b.get("icmp_errors_sent"),
        b.get("kni_to_kernel")
    );
    assert!(b.get("ipv4_reassembled") >= 1, "{:?}", b.total);
    assert_eq!(b.get("icmp_errors_sent"), 0, "no port unreachable");

    // The kernel's own large ping: its request leaves in fragments, the
    // host's reply comes back in fragments and must reach the kernel.
    let o = try_run(&format!(
        "ping -c 3 -w 10 -i 0.3 -W 2 -s 3000 -I {kif} {host}"
    ));
    assert!(
        o.status.success(),
        "ping -s 3000 from the kernel: {}",
        text(&o)
    );
    // dpstack's own echo still answers a fragmented datagram itself.
    let o = net.tool("udp.py", &format!("sizes {ip} 7 3000 3000"));
    assert!(o.status.success(), "{}", text(&o));

    let _ = std::fs::remove_file(&got);
    let e = d.stop();
    assert_clean_exit(&e, Duration::from_secs(1));
}
