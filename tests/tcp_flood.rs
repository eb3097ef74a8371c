//! Issue 13: a spoofed SYN flood against the http app, during which a
//! Linux client's requests must all be served, as Linux with nginx serves
//! them (`tcp_syncookies=1`: every curl of 20 during and 20 after a
//! hping3 `--rand-source` flood, measured on this machine).
//!
//! dpstack runs `http:80` on 2 lcores over af_packet with a `--gateway`
//! nobody answers: its SYN-ACKs to the spoofed sources wait for ARP that
//! never comes and go nowhere, as on the internet where the spoofed hosts
//! do not exist or stay silent. The flood comes from the test host
//! (tests/tools/synflood.py: random sources inside 198.18.0.0/15 only,
//! never the test's own /24, random ports and ISNs, an MSS option),
//! because hping3's `--rand-source` draws from all of IPv4.
//!
//! Every figure is printed before anything is asserted, so a failing run
//! still reports what it measured.

mod common;

use common::*;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The flood's length and rate: about what hping3 `--flood` sends from a
/// namespace here (70-100k SYN/s), the rate Linux was measured against.
const FLOOD_SECS: u64 = 10;
const FLOOD_PPS: u64 = 100_000;
/// Legitimate requests during the flood, and again after it.
const REQUESTS: usize = 20;

/// One curl on a new connection, in the background. Linux sends its SYN
/// again after 1, 3 and 7 s: an 8 s connect timeout allows three retries
/// (the af_packet ring drops frames when the CPUs are busy: 28% of the
/// flood in one run on a loaded machine, where one curl lost its SYN and
/// both retries within 4 s; the server is the same for every client).
fn curl_bg(net: &TestNet) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &net.ns, "curl", "-s", "-o", "/dev/null"])
        .args(["--connect-timeout", "8", "--max-time", "9"])
        .args(["-w", "%{http_code} %{time_connect} %{time_total}"])
        .arg(format!("http://{}/", net.stack_ip()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl")
}

/// What one curl reported: served (HTTP 200), and its line.
fn curl_result(c: Child) -> (bool, String) {
    let o = c.wait_with_output().expect("curl");
    let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let ok = o.status.success() && line.starts_with("200 ");
    (ok, format!("exit={:?} {line}", o.status.code()))
}

/// `REQUESTS` curls started `gap` apart; their results once all are done.
fn curl_spaced(net: &TestNet, gap: Duration) -> Vec<(bool, String)> {
    let mut running = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        if i > 0 {
            std::thread::sleep(gap);
        }
        running.push(curl_bg(net));
    }
    running.into_iter().map(curl_result).collect()
}

/// tests/tools/synflood.py from the test host at `dst_mac`/`dst_ip`:80,
/// `FLOOD_SECS` at `FLOOD_PPS`, never from the test's own /24.
fn start_flood(net: &TestNet, dst_mac: &str, dst_ip: &str) -> Child {
    let exclude = format!("198.18.{}.0", net.subnet);
    Command::new("ip")
        .args(["netns", "exec", &net.ns, "/usr/bin/python3"])
        .arg(root().join("tests/tools/synflood.py"))
        .args([&net.host_if, dst_mac, dst_ip, "80"])
        .args([FLOOD_SECS.to_string(), exclude, FLOOD_PPS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("synflood.py")
}

/// The SYNs synflood.py reports it sent.
fn syns_sent(report: &str) -> u64 {
    report
        .split("\"sent\": ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Print what each request did; the number served.
fn report(what: &str, results: &[(bool, String)]) -> usize {
    for (i, (_, l)) in results.iter().enumerate() {
        eprintln!("  {what} {i:2}: {l}");
    }
    results.iter().filter(|x| x.0).count()
}

fn counter(b: &Block, name: &str) -> Option<u64> {
    b.total.get(name).copied()
}

fn show(b: &Block, name: &str) -> String {
    counter(b, name).map_or_else(|| format!("{name}=absent"), |v| format!("{name}={v}"))
}

#[test]
fn legitimate_clients_are_served_during_and_after_a_spoofed_syn_flood() {
    let _g = serial();
    let started = Instant::now();
    let net = TestNet::new(Link::Veth);
    // An address on the link that nobody holds: ARP for it is never
    // answered, so nothing dpstack sends to the spoofed sources leaves.
    let gateway = net.host_ip_n(254);
    let d = Dpstack::start(&net, &format!("--app http:80 --gateway {gateway}"));

    // The harness works: one request before the flood.
    let (ok, line) = curl_result(curl_bg(&net));
    assert!(ok, "no request served before the flood: {line}");
    let before = d.next_block();

    let flood = start_flood(&net, &d.mac, &net.stack_ip());
    let flood_start = Instant::now();
    // Let the flood fill whatever it fills before the first request.
    std::thread::sleep(Duration::from_millis(1000));
    // 20 requests over the next ~9.5 s (each may take up to 5 s).
    let during = curl_spaced(&net, Duration::from_millis(450));
    let flood_out = flood.wait_with_output().expect("synflood.py");
    let flood_took = flood_start.elapsed();
    let flood_line = text(&flood_out);
    let at_flood_end = d.next_block();

    let after = curl_spaced(&net, Duration::from_millis(250));
    let e = d.stop();
    let fin = &e.final_block;

    // Every figure first.
    let sent = syns_sent(&flood_line);
    eprintln!(
        "flood: {} ({:.1} s including startup)",
        flood_line.trim(),
        flood_took.as_secs_f64()
    );
    let (served_during, served_after) = (report("during", &during), report("after ", &after));
    eprintln!(
        "served during the flood: {served_during}/{REQUESTS}; after it: {served_after}/{REQUESTS}"
    );
    let delta = |k: &str| {
        counter(&at_flood_end, k)
            .zip(counter(&before, k))
            .map_or(0, |(a, b)| a.saturating_sub(b))
    };
    eprintln!(
        "during the flood: rx_packets +{} tcp_rx_segments +{} tcp_tx_segments +{} tcp_rst_sent +{} tcp_syn_refused +{}",
        delta("rx_packets"),
        delta("tcp_rx_segments"),
        delta("tcp_tx_segments"),
        delta("tcp_rst_sent"),
        delta("tcp_syn_refused"),
    );
    // The half-open gauge at its highest in the blocks printed meanwhile.
    let peak_half_open = parse_blocks(&e.lines, "stats")
        .iter()
        .filter_map(|b| counter(b, "tcp_half_open"))
        .max();
    eprintln!("tcp_half_open peak over the run: {peak_half_open:?}");
    let names = [
        "tcp_syncookies_sent",
        "tcp_syncookies_ok",
        "tcp_syncookies_failed",
        "tcp_half_open",
        "tcp_accepted",
        "tcp_syn_refused",
        "tcp_rst_sent",
        "tcp_connections",
        "tcp_time_wait_recycled",
        "tcp_mem_bytes",
        "tcp_mem_peak",
        "arp_requests_sent",
        "drop_no_arp",
        "drop_queue_full",
        "rx_packets",
    ];
    let finals: Vec<String> = names.iter().map(|n| show(fin, n)).collect();
    eprintln!("final counters: {}", finals.join(" "));
    eprintln!("test took {:.1} s", started.elapsed().as_secs_f64());

    // The flood happened and reached dpstack.
    assert!(
        sent >= FLOOD_SECS * FLOOD_PPS / 4,
        "the flood sent only {sent} SYNs: {flood_line}"
    );
    // (af_packet's ring drops much of it before dpstack polls: a debug
    // build saw about a quarter here.)
    assert!(
        delta("tcp_rx_segments") >= sent / 10,
        "dpstack saw {} TCP segments of {sent} SYNs",
        delta("tcp_rx_segments")
    );
    // Every legitimate request served, during and after.
    assert_eq!(served_during, REQUESTS, "served during the flood");
    assert_eq!(served_after, REQUESTS, "served after the flood");
    // The flood engaged SYN cookies.
    let cookies_sent = counter(fin, "tcp_syncookies_sent");
    assert!(
        cookies_sent.is_some_and(|n| n > 0),
        "tcp_syncookies_sent: {cookies_sent:?}"
    );
    // A cookie validates only on the third segment of a real handshake:
    // the spoofed sources never send one, so at most the legitimate
    // clients' connections (1 + 40) came through cookies (those the SYN
    // cache served did not). None failed that was not forged.
    let legit = (1 + 2 * REQUESTS) as u64;
    let ok = counter(fin, "tcp_syncookies_ok");
    assert!(
        ok.is_some_and(|n| n <= legit),
        "tcp_syncookies_ok: {ok:?} (at most {legit})"
    );
    assert!(
        counter(fin, "tcp_syncookies_failed").is_some(),
        "no tcp_syncookies_failed counter"
    );
    assert!(
        fin.get("tcp_accepted") >= legit,
        "accepted {} of {legit} legitimate connections",
        fin.get("tcp_accepted")
    );
    assert_clean_exit(&e, Duration::from_secs(2));
}

/// The control: the same flood and the same requests against Linux with
/// nginx (`tcp_syncookies=1`) on the other end of the same kind of veth,
/// its default route through a gateway nobody answers. It shows that the
/// flood and the client's schedule leave a stack that defends itself able
/// to serve every request, so that a failure of the test above is
/// dpstack's. Linux's `TcpExtSyncookiesSent` must rise.
#[test]
fn linux_with_nginx_serves_every_request_through_the_same_flood() {
    let _g = serial();
    let started = Instant::now();
    let net = TestNet::new(Link::Veth);
    let srv = format!("{}s", net.ns);
    let _ = try_run(&format!("ip netns del {srv} 2>/dev/null"));
    run(&format!(
        "ip netns add {srv} && ip link set {a} netns {srv} && ip -n {srv} link set lo up && \
         ip -n {srv} addr add {ip}/24 dev {a} && ip -n {srv} link set {a} up && \
         ip netns exec {srv} ethtool -K {a} tx off >/dev/null && \
         ip -n {srv} route add default via {gw} && \
         ip netns exec {srv} sysctl -qw net.ipv4.tcp_syncookies=1",
        a = net.dp_if,
        ip = net.stack_ip(),
        gw = net.host_ip_n(254)
    ));
    let dir = std::env::temp_dir().join(format!("dpstack-flood-nginx-{}", net.ns));
    let _ = std::fs::create_dir_all(&dir);
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; server {{ listen {ip}:80; location / {{ return 200 \"ok\\n\"; }} }} }}\n",
            d = dir.display(),
            ip = net.stack_ip()
        ),
    )
    .unwrap();
    let mut nginx = Command::new("ip")
        .args(["netns", "exec", &srv, "nginx", "-c"])
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx");
    let mac = text(&run(&format!(
        "ip netns exec {srv} cat /sys/class/net/{}/address",
        net.dp_if
    )))
    .trim()
    .to_string();
    let nstat = |name: &str| -> u64 {
        let o = try_run(&format!("ip netns exec {srv} nstat -az {name}"));
        text(&o)
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // nginx is up once it answers.
    let mut up = false;
    for _ in 0..50 {
        if curl_result(curl_bg(&net)).0 {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let flood = start_flood(&net, &mac, &net.stack_ip());
    std::thread::sleep(Duration::from_millis(1000));
    let during = curl_spaced(&net, Duration::from_millis(450));
    let flood_line = text(&flood.wait_with_output().expect("synflood.py"));
    let after = curl_spaced(&net, Duration::from_millis(250));
    let (sent_c, ok_c, failed_c) = (
        nstat("TcpExtSyncookiesSent"),
        nstat("TcpExtSyncookiesRecv"),
        nstat("TcpExtSyncookiesFailed"),
    );
    // SIGTERM: the master stops its worker too (SIGKILL would orphan it).
    let _ = try_run(&format!("kill -TERM {}", nginx.id()));
    let deadline = Instant::now() + Duration::from_secs(3);
    while nginx.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = nginx.kill();
    let _ = nginx.wait();
    let _ = try_run(&format!("ip netns del {srv}"));
    let _ = std::fs::remove_dir_all(&dir);

    eprintln!("flood: {}", flood_line.trim());
    let (served_during, served_after) = (report("during", &during), report("after ", &after));
    eprintln!(
        "Linux + nginx: served during the flood: {served_during}/{REQUESTS}; after it: \
         {served_after}/{REQUESTS}; TcpExtSyncookiesSent={sent_c} \
         TcpExtSyncookiesRecv={ok_c} TcpExtSyncookiesFailed={failed_c}"
    );
    eprintln!("test took {:.1} s", started.elapsed().as_secs_f64());
    assert!(up, "nginx did not answer before the flood");
    assert!(
        syns_sent(&flood_line) >= FLOOD_SECS * FLOOD_PPS / 4,
        "{flood_line}"
    );
    assert_eq!(served_during, REQUESTS, "served during the flood");
    assert_eq!(served_after, REQUESTS, "served after the flood");
    assert!(sent_c > 0, "Linux sent no SYN cookie");
}
