//! Issue 13: a spoofed SYN flood at the http app (hping3 `--rand-source`,
//! as on the internet: nobody answers the SYN-ACKs), during which a Linux
//! client's requests are all served, and after which too.

mod common;

use common::*;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One GET on a new connection (curl's own SYN retries included); true if
/// served.
fn served(net: &TestNet, ip: &str) -> bool {
    let o = net.host(&format!(
        "curl -s --max-time 15 -o /dev/null -w \"%{{http_code}}\" http://{ip}/"
    ));
    String::from_utf8_lossy(&o.stdout).trim() == "200"
}

#[test]
fn clients_are_served_during_and_after_a_spoofed_syn_flood() {
    let _g = serial();
    let net = TestNet::new(Link::Veth);
    // The gateway is the host, which does not forward: the SYN-ACKs to the
    // spoofed sources go nowhere.
    let d = Dpstack::start(
        &net,
        &format!("--app http:80:100 --gateway {}", net.host_ip()),
    );
    let ip = net.stack_ip();
    assert!(served(&net, &ip), "before the flood");

    // The flood: spoofed sources from everywhere, SYNs to port 80, as fast
    // as the host can send (hping3 --flood; here a debug dpstack took about
    // 40k SYNs/s of it and served every request). DPSTACK_FLOOD_INTERVAL
    // sets hping3's -i instead (e.g. u100: 10k SYNs/s).
    let interval = std::env::var("DPSTACK_FLOOD_INTERVAL").unwrap_or_else(|_| "flood".into());
    let rate = if interval == "flood" {
        "--flood".to_string()
    } else {
        format!("-i {interval}")
    };
    let secs = 15;
    let mut flood = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.ns,
            "timeout",
            &secs.to_string(),
            "hping3",
        ])
        .args(rate.split_whitespace())
        .args(["--rand-source", "-S", "-p", "80", "-q", &ip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hping3");
    let start = Instant::now();
    d.wait_for(
        "the flood to be answered with cookies",
        Duration::from_secs(10),
        |b| b.get("tcp_syncookies_sent") > 1000,
    );
    let mut during = 0;
    let mut tried = 0;
    while start.elapsed() < Duration::from_secs(secs - 3) && tried < 20 {
        tried += 1;
        during += served(&net, &ip) as u32;
    }
    let b = d.next_block();
    let _ = flood.wait();
    eprintln!(
        "during the flood: {during} of {tried} served; {:?}",
        b.total
    );
    assert_eq!(during, tried, "every request during the flood is served");
    assert!(tried >= 5, "only {tried} requests in the flood's time");
    // Half-open connections stay within the cache (two cores of 1024), and
    // they hold no connection.
    assert!(b.get("tcp_half_open") <= 2048, "{:?}", b.total);
    assert!(b.get("tcp_connections") <= 40, "{:?}", b.total);
    assert!(b.get("tcp_syn_cache_full") > 0);
    assert!(b.get("tcp_syncookies_ok") > 0, "clients came in by cookie");
    assert_eq!(b.get("tcp_syn_refused"), 0);

    for i in 0..20 {
        assert!(served(&net, &ip), "after the flood, request {i}");
    }
    let e = d.stop();
    assert_clean_exit(&e, Duration::from_secs(1));
}
