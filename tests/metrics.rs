//! Issue 16: Prometheus metrics (`--metrics`). dpstack serves its counters,
//! its applications' counters and its latency histograms on 127.0.0.1;
//! curl scrapes them while a Linux host pings and sends UDP through the
//! echo application, prometheus_client's parser reads the exposition, and
//! once the traffic is over the scraped totals equal the final counters
//! printed at exit. Bad requests get 400, 404 and 405.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One parsed sample: (name, labels) -> value.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// GET `url` with curl: (status line, headers, body).
fn curl(url: &str) -> (String, String, String) {
    let out = run(&format!("curl -sS --max-time 5 -D - {url}"));
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_string(), body.to_string())
}

/// The exposition parsed by tests/tools/prom.py (prometheus_client's
/// parser, and its histogram checks).
fn parse(body: &str) -> Samples {
    let mut child = Command::new("/usr/bin/python3")
        .arg(root().join("tests/tools/prom.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "prom.py: {}\n{body}", text(&out));
    let v: Vec<(String, HashMap<String, String>, f64)> =
        serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter()
        .map(|(name, labels, value)| {
            let mut labels: Vec<_> = labels.into_iter().collect();
            labels.sort();
            ((name, labels), value)
        })
        .collect()
}

fn sample(s: &Samples, name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    let v = *s
        .get(&(name.to_string(), l))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    assert!(v >= 0.0 && v.fract() == 0.0, "{name}: {v}");
    v as u64
}

/// A printed counter's sample: `drop_<reason>` is the drops family; a
/// gauge keeps its name, an event counter gains `_total`.
fn counter_sample(s: &Samples, prefix: &str, name: &str, core: Option<&str>) -> u64 {
    let mut labels = Vec::new();
    if let Some(c) = core {
        labels.push(("core", c));
    }
    if let Some(reason) = name.strip_prefix("drop_") {
        labels.push(("reason", reason));
        return sample(s, &format!("dpstack_{prefix}drops_total"), &labels);
    }
    let gauge = format!("dpstack_{prefix}{name}");
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    if s.contains_key(&(gauge.clone(), l)) {
        sample(s, &gauge, &labels)
    } else {
        sample(s, &format!("{gauge}_total"), &labels)
    }
}

/// Send raw bytes, return the status line of the answer.
fn raw_status(port: u16, req: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or("").to_string()
}

#[test]
fn metrics_endpoint_matches_the_final_counters() {
    let _g = serial();
    let net = TestNet::new(Link::Veth);
    // No IPv6 chatter (router solicitations, MLD) on either end: nothing
    // but the test's traffic may arrive between the last scrape and exit.
    run(&format!(
        "sysctl -qw net.ipv6.conf.{}.disable_ipv6=1",
        net.dp_if
    ));
    net.host(&format!(
        "sysctl -qw net.ipv6.conf.{}.disable_ipv6=1",
        net.host_if
    ));
    let port = free_port();
    let d = Dpstack::start(
        &net,
        &format!("--app udp-echo:7 --metrics 127.0.0.1:{port}"),
    );
    let url = format!("http://127.0.0.1:{port}/metrics");
    assert!(
        d.output()
            .contains(&format!("metrics on http://127.0.0.1:{port}/metrics")),
        "{}",
        d.output()
    );

    // Traffic: pings, and UDP datagrams the echo application answers.
    let ip = net.stack_ip();
    let ping = net.host(&format!("ping -c 20 -w 10 -i 0.01 -W 1 {ip}"));
    assert!(ping.status.success(), "{}", text(&ping));
    let udp = net.host(&format!(
        "/usr/bin/python3 {} flows {ip} 7 8 10",
        root().join("tests/tools/udp.py").display()
    ));
    assert!(udp.status.success(), "{}", text(&udp));

    // Scrape until two scrapes half a second apart agree: the traffic
    // is over and the cores have published it.
    let (status, headers, body) = curl(&url);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{headers}"
    );
    // The loop's iteration counts, cycles and histogram move while the
    // core idles: everything else settles once the traffic is over.
    let still = |s: Samples| -> Samples {
        s.into_iter()
            .filter(|((name, _), _)| !name.contains("loop_") || name.contains("loop_busy_"))
            .collect()
    };
    let mut last = still(parse(&body));
    let mut settled = false;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        let now = still(parse(&curl(&url).2));
        if now == last {
            settled = true;
            break;
        }
        last = now;
    }
    assert!(settled, "the counters never settled");
    let s = last;
    assert!(sample(&s, "dpstack_icmp_echo_replies_total", &[]) >= 20);
    assert_eq!(
        sample(&s, "dpstack_app_echoed", &[("app", "udp-echo:7")]),
        80
    );

    // Everything else is refused.
    let code = |args: &str| {
        let o = run(&format!(
            "curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 {args}"
        ));
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(code(&format!("http://127.0.0.1:{port}/")), "404");
    assert_eq!(code(&format!("http://127.0.0.1:{port}/metrics/x")), "404");
    assert_eq!(
        code(&format!("-X POST http://127.0.0.1:{port}/metrics")),
        "405"
    );
    assert!(raw_status(port, b"NONSENSE\r\n\r\n").starts_with("HTTP/1.1 400 "));
    assert!(raw_status(port, b"GET /metrics HTTP/9\r\n\r\n").starts_with("HTTP/1.1 400 "));

    let e = d.stop();
    assert_clean_exit(&e, Duration::from_secs(2));
    let f = &e.final_block;

    // Every printed counter, total and per core, equals its sample.
    assert!(f.total.len() > 100, "{f:?}");
    for (name, &v) in &f.total {
        assert_eq!(counter_sample(&s, "", name, None), v, "total {name}");
    }
    for (i, core) in f.cores.iter().enumerate() {
        let c = i.to_string();
        for (name, &v) in core {
            assert_eq!(
                counter_sample(&s, "core_", name, Some(&c)),
                v,
                "core {i} {name}"
            );
        }
    }
    // The applications' counters.
    for (core, app, counters) in &f.apps {
        let c = core.to_string();
        for (name, &v) in counters {
            assert_eq!(
                sample(
                    &s,
                    &format!("dpstack_core_app_{name}"),
                    &[("core", &c), ("app", app)]
                ),
                v,
                "core {core} {app} {name}"
            );
        }
    }
    assert_eq!(f.app_total("udp-echo:7", "echoed"), 80);
    // The port's own counters and the kernel ring's, as printed at exit.
    let port_line = |prefix: &str| -> Vec<(String, u64)> {
        let l = e
            .lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line"));
        l.split_whitespace()
            .filter_map(|w| w.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect()
    };
    let get =
        |pairs: &[(String, u64)], k: &str| pairs.iter().find(|(n, _)| n == k).map(|p| p.1).unwrap();
    let dev = port_line("final port driver=");
    assert!(get(&dev, "ipackets") >= 80 + 20);
    for (key, series) in [
        ("ipackets", "dpstack_port_rx_packets_total"),
        ("opackets", "dpstack_port_tx_packets_total"),
        ("imissed", "dpstack_port_rx_missed_total"),
        ("rx_nombuf", "dpstack_port_rx_nombuf_total"),
    ] {
        assert_eq!(sample(&s, series, &[]), get(&dev, key), "{series}");
    }
    // af_packet never counts imissed: the series says so.
    assert_eq!(sample(&s, "dpstack_port_rx_missed_reported", &[]), 0);
    let ring = port_line("final port ring_drops=");
    let ring_drops = e
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("final port ring_drops="))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .expect("ring drops");
    assert_eq!(sample(&s, "dpstack_port_ring_drops_total", &[]), ring_drops);
    assert_eq!(
        sample(&s, "dpstack_port_ring_packets_total", &[]),
        get(&ring, "ring_packets")
    );
    // The loop's busy packets, as printed in the final `cycles` line: the
    // echoes and pings were carried by busy iterations.
    let printed_busy: u64 = e
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("final cycles core=total "))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("busy_packets="))
                .and_then(|v| v.parse().ok())
        })
        .expect("a final cycles line");
    assert!(printed_busy >= 80 + 20, "{printed_busy}");
    assert_eq!(
        sample(&s, "dpstack_loop_busy_packets_total", &[]),
        printed_busy
    );
    // The histograms count what the printed latency lines count.
    for kind in ["arp", "icmp", "udp"] {
        let printed: u64 = e
            .lines
            .iter()
            .filter(|l| {
                l.starts_with("final latency core=") && l.contains(&format!(" kind={kind} "))
            })
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("count="))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .sum();
        assert!(printed > 0, "no {kind} latency printed");
        assert_eq!(
            sample(&s, "dpstack_latency_seconds_count", &[("kind", kind)]),
            printed,
            "{kind}"
        );
    }
}

/// Threads that are not lcores (the printer, the metrics server) run off
/// the lcores' CPUs: with one lcore on CPU 1 of two, on CPU 0.
#[test]
fn side_threads_leave_the_lcore_its_cpu() {
    let _g = serial();
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("one CPU: nothing to leave");
        return;
    }
    let net = TestNet::new(Link::Veth);
    let port = free_port();
    let d = Dpstack::start_on(
        &net,
        "1",
        &format!("--app udp-echo:7 --metrics 127.0.0.1:{port}"),
    );
    // Printed right after "ready".
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !d.output().contains("side threads on CPUs") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        d.output().contains("side threads on CPUs [0]"),
        "{}",
        d.output()
    );
    let mut seen = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{}/task", d.pid())).unwrap() {
        let t = t.unwrap().path();
        let comm = std::fs::read_to_string(t.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(t.join("status")).unwrap_or_default();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim()
            .to_string();
        seen.push((comm.trim().to_string(), cpus));
    }
    for name in ["dps-printer", "dps-metrics"] {
        let cpus = seen
            .iter()
            .find(|(c, _)| c == name)
            .map(|(_, c)| c.as_str());
        assert_eq!(cpus, Some("0"), "{name}: {seen:?}");
    }
    // The lcore itself (the main thread) stays on CPU 1.
    assert!(
        seen.iter().any(|(c, cpus)| c == "dpstack" && cpus == "1"),
        "{seen:?}"
    );
    let e = d.stop();
    assert_clean_exit(&e, Duration::from_secs(2));
}
