//! Issue 16: the connections view. A connection curl opened to the http
//! application (held open between two requests by curl's `--rate`) and one
//! dpstack opened itself (tcp-client to a Linux listener that holds its
//! echo back) are listed by `/dpstack/tcp/conns` with their state and
//! byte counts equal to what went over them; dpstack's connection goes
//! through TIME-WAIT (`--tcp-time-wait-ms`) and then out of the listing,
//! and curl's leaves it once curl is done. `/dpstack/udp/sockets` lists
//! the echo application's bound sockets and a connected one (udp-client).
//! `dpstack-ss` prints the same, with its filters.

mod common;

use common::*;
use serde_json::{Map, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type Record = Map<String, Value>;

const SENT: u64 = 100_000;
const TIME_WAIT_MS: u64 = 5000;

/// The records of one page of each of `cmds` (each `/dpstack/...,CORE`),
/// through telemetry as any client reads it (tests/tools/telemetry.py, in
/// one go: a python client takes most of a second here while dpstack
/// busy-polls both CPUs, so the waits below read through dpstack-ss).
fn telemetry_pages(prefix: &str, cmds: &[String]) -> Vec<(Value, Vec<Record>)> {
    let tool = root().join("tests/tools/telemetry.py");
    let quoted: Vec<String> = cmds.iter().map(|c| format!("'{c}'")).collect();
    let o = run(&format!(
        "/usr/bin/python3 {} {prefix} {}",
        tool.display(),
        quoted.join(" ")
    ));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    cmds.iter()
        .map(|full| {
            let name = full.split(',').next().unwrap();
            let page = v[full][name].clone();
            assert!(page.is_object(), "{full}: {v}");
            let mut recs: Vec<(usize, Record)> = page
                .as_object()
                .unwrap()
                .iter()
                .filter_map(|(k, r)| Some((k.parse().ok()?, r.as_object()?.clone())))
                .collect();
            assert_eq!(recs.len() as u64, page["shown"].as_u64().unwrap(), "{page}");
            recs.sort_by_key(|r| r.0);
            (page, recs.into_iter().map(|r| r.1).collect())
        })
        .collect()
}

/// Every TCP (or, `udp`, UDP) record, as `dpstack-ss -a --json` prints
/// them.
fn listing(prefix: &str, udp: bool) -> Vec<Record> {
    let out = ss(prefix, if udp { "-u -a --json" } else { "-a --json" });
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect()
}

fn s<'a>(r: &'a Record, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or("")
}

fn n(r: &Record, k: &str) -> u64 {
    r.get(k)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no {k} in {r:?}"))
}

/// The one record whose remote address is `remote` (None if there is
/// none), asserting there is at most one.
fn by_remote<'a>(recs: &'a [Record], remote: &str) -> Option<&'a Record> {
    let m: Vec<&Record> = recs.iter().filter(|r| s(r, "remote") == remote).collect();
    assert!(m.len() <= 1, "{remote}: {m:?}");
    m.first().copied()
}

fn ss(prefix: &str, args: &str) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_dpstack-ss"))
        .arg("--file-prefix")
        .arg(prefix)
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(o.status.success(), "dpstack-ss {args}: {}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// The socket lines of dpstack-ss's output (not the heading, not the
/// indented internals), as columns.
fn ss_lines(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .skip(1)
        .filter(|l| !l.starts_with('\t'))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

/// Wait until `pred` holds for the TCP listing.
fn wait_listing(
    prefix: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let deadline = Instant::now() + timeout;
    loop {
        let l = listing(prefix, false);
        if pred(&l) {
            return l;
        }
        let brief: Vec<String> = l
            .iter()
            .map(|r| format!("{} {} {}", s(r, "state"), s(r, "local"), s(r, "remote")))
            .collect();
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {} records: {brief:?}",
            l.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn connections_and_sockets_are_listed_with_their_counters() {
    let _g = serial();
    let net = TestNet::new(Link::Veth);
    let (ip, host) = (net.stack_ip(), net.host_ip());
    let prefix = format!("dps{}", net.ns);
    // Linux must not send its FIN twice. A second copy that reaches
    // dpstack in TIME-WAIT draws an ACK (RFC 9293 3.10.7.4, TIME-WAIT: a
    // retransmitted FIN is acknowledged), which Linux, closed by the ACK
    // of the first copy, answers with a RST at exactly RCV.NXT, and that
    // RST ends TIME-WAIT (src/tcp/timewait.rs, as Linux's own TIME-WAIT
    // with tcp_rfc1337=0): the connection left the listing within a
    // millisecond. On a loaded machine dpstack's ACKs can come 10 to 140 ms
    // late, after Linux's tail loss probe (two SRTTs) has resent the FIN
    // (captures of the failures: the FIN twice, then the RST, every time;
    // never in a run that passed). So no probe (tcp_early_retrans=0) and
    // no retransmission towards dpstack before 2 s.
    run(&format!(
        "ip netns exec {ns} sysctl -qw net.ipv4.tcp_early_retrans=0 && \
         ip -n {ns} route add {ip}/32 dev {dev} rto_min 2s",
        ns = net.ns,
        dev = net.host_if
    ));
    // A Linux listener that takes dpstack's 100 kB and its FIN, and sends
    // them back 10 s later: meanwhile dpstack's connection waits in
    // FIN-WAIT-2 with everything sent and acknowledged.
    let listener = Command::new("ip")
        .args(["netns", "exec", &net.ns, "/usr/bin/python3"])
        .arg(root().join("tests/tools/tcp.py"))
        .args(["echo-later", "5001", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut udp_echo = udp_echo_server(&net, 7007, 60);
    std::thread::sleep(Duration::from_millis(500));
    let d = Dpstack::start(
        &net,
        &format!(
            "--app http:80:5000 --app udp-echo:7 --app tcp-client:{host}:5001:{SENT}:1 \
             --app udp-client:{host}:7007:100000000:1 --tcp-time-wait-ms {TIME_WAIT_MS}"
        ),
    );

    // What curl sends and receives for one GET, from a first run.
    let o = net.host(&format!(
        "curl -s --max-time 5 -o /dev/null -w \"%{{size_request}} %{{size_header}} %{{size_download}}\" http://{ip}/"
    ));
    assert!(o.status.success(), "{}", text(&o));
    let sizes: Vec<u64> = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let (request, response) = (sizes[0], sizes[1] + sizes[2]);
    assert_eq!(sizes[2], 5000);
    // Two GETs on one connection, 15 s apart (4 a minute): it stays open
    // between them, past dpstack's TIME-WAIT below.
    let mut curl = Command::new("ip")
        .args(["netns", "exec", &net.ns, "curl", "-s", "--max-time", "30"])
        .args(["--rate", "4/m", "-o", "/dev/null", "-o", "/dev/null"])
        .arg(format!("http://{ip}/"))
        .arg(format!("http://{ip}/"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // curl's connection, idle after its first response; dpstack's own,
    // everything sent and acknowledged, the peer's FIN yet to come.
    let client_peer = format!("{host}:5001");
    let l = wait_listing(&prefix, "both connections", Duration::from_secs(5), |l| {
        let curl_in = l.iter().any(|r| {
            s(r, "state") == "ESTABLISHED"
                && s(r, "local") == format!("{ip}:80")
                && r.get("bytes_acked").and_then(Value::as_u64) == Some(response)
        });
        let ours = by_remote(l, &client_peer).is_some_and(|r| s(r, "state") == "FIN-WAIT-2");
        curl_in && ours
    });
    let listeners: Vec<&Record> = l.iter().filter(|r| s(r, "state") == "LISTEN").collect();
    assert_eq!(listeners.len(), 2, "one http listener per core: {l:?}");
    assert!(listeners
        .iter()
        .all(|r| s(r, "local") == format!("{ip}:80") && s(r, "app") == "http:80"));
    let c = l
        .iter()
        .find(|r| s(r, "state") == "ESTABLISHED" && s(r, "local") == format!("{ip}:80"))
        .unwrap();
    assert!(s(c, "remote").starts_with(&format!("{host}:")), "{c:?}");
    assert_eq!(s(c, "app"), "http:80");
    assert_eq!(n(c, "passive"), 1);
    assert_eq!(n(c, "bytes_received"), request, "{c:?}");
    assert_eq!(n(c, "bytes_acked"), response, "{c:?}");
    assert_eq!(
        n(c, "bytes_sent") - n(c, "bytes_retrans"),
        response,
        "{c:?}"
    );
    assert_eq!(n(c, "send_queued") + n(c, "recv_queued"), 0, "{c:?}");
    // The handshake's ACK and the request at least; the response at least.
    assert!(n(c, "segs_in") >= 2 && n(c, "segs_out") >= 4, "{c:?}");
    assert!(n(c, "srtt_us") > 0 && n(c, "rto_us") >= 200_000, "{c:?}");
    assert!(n(c, "snd_wnd") > 0 && n(c, "rcv_wnd") > 0 && n(c, "cwnd") > 0);
    assert_eq!(s(c, "cc"), "cubic");
    assert!(n(c, "age_ms") > 0, "{c:?}");
    let core = n(c, "core");

    let ours = by_remote(&l, &client_peer).unwrap();
    assert!(s(ours, "app").starts_with("tcp-client:"), "{ours:?}");
    assert_eq!(n(ours, "passive"), 0);
    assert_eq!(n(ours, "bytes_acked"), SENT, "{ours:?}");
    assert_eq!(n(ours, "bytes_sent") - n(ours, "bytes_retrans"), SENT);
    assert_eq!(n(ours, "bytes_received"), 0);
    assert_eq!(n(ours, "send_queued"), 0);
    // Its SYN, 100 kB in segments of at most 1448, its FIN.
    assert!(n(ours, "segs_out") >= 2 + SENT / 1448, "{ours:?}");
    // SND.UNA is past the FIN: the sequence space says what was sent.
    assert_eq!(n(ours, "snd_una"), n(ours, "snd_nxt"));

    // dpstack-ss shows the same.
    let out = ss(&prefix, "");
    assert!(out.starts_with("State"), "{out}");
    let lines = ss_lines(&out);
    let row = lines
        .iter()
        .find(|c| c[3] == format!("{ip}:80"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(&row[..3], ["ESTAB", "0", "0"], "{out}");
    assert_eq!(row[4], s(c, "remote"));
    assert_eq!(row[5], format!("core:{core}"));
    assert!(
        out.contains(&format!("bytes_acked:{response} "))
            && out.contains(&format!("bytes_received:{request} ")),
        "{out}"
    );
    assert!(out.contains("\t ts sack cubic wscale:"), "{out}");
    let out = ss(&prefix, "state fin-wait-2 dport = :5001");
    let lines = ss_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0][0], "FIN-WAIT-2");
    assert_eq!(lines[0][4], client_peer);
    assert!(out.contains(&format!("bytes_acked:{SENT} ")), "{out}");
    assert!(ss_lines(&ss(&prefix, "state established dport = :5001")).is_empty());
    assert!(ss_lines(&ss(&prefix, "sport != :80 dport != :5001")).is_empty());
    let out = ss(&prefix, "-l");
    assert_eq!(
        ss_lines(&out)
            .iter()
            .filter(|c| c[0] == "LISTEN" && c[3] == format!("{ip}:80"))
            .count(),
        2,
        "{out}"
    );
    // Telemetry as any client reads it: the same records; one core's
    // page, all of it (no `next`).
    let pages = telemetry_pages(
        &prefix,
        &[
            format!("/dpstack/tcp/conns,{core}"),
            "/dpstack/udp/sockets".to_string(),
        ],
    );
    let (page, t) = &pages[0];
    assert_eq!(page["core"], core);
    assert_eq!(page["cores"], 2);
    assert!(page.get("next").is_none(), "{page}");
    assert_eq!(page["total"].as_u64(), Some(t.len() as u64), "{page}");
    let tc = by_remote(t, s(c, "remote")).unwrap();
    assert_eq!(n(tc, "bytes_acked"), response);
    assert_eq!(n(tc, "bytes_received"), request);
    let (page, t) = &pages[1];
    assert_eq!(page["next"], "*,1,0", "{page}");
    assert!(t
        .iter()
        .any(|r| s(r, "state") == "UNCONN" && s(r, "local") == format!("{ip}:7")));

    // UDP: the echo application's port on each core, and udp-client's
    // connected socket.
    let u = listing(&prefix, true);
    let bound: Vec<&Record> = u
        .iter()
        .filter(|r| s(r, "local") == format!("{ip}:7"))
        .collect();
    assert_eq!(bound.len(), 2, "{u:?}");
    assert!(bound.iter().all(|r| s(r, "state") == "UNCONN"
        && s(r, "remote") == "*"
        && s(r, "app") == "udp-echo:7"));
    let conn = by_remote(&u, &format!("{host}:7007")).unwrap_or_else(|| panic!("{u:?}"));
    assert_eq!(s(conn, "state"), "ESTAB");
    assert!(s(conn, "app").starts_with("udp-client:"));
    assert!(n(conn, "rx_datagrams") >= 1 && n(conn, "tx_datagrams") >= n(conn, "rx_datagrams"));
    let out = ss(&prefix, "-u -a");
    let rows = ss_lines(&out);
    assert!(
        rows.iter()
            .any(|c| c[0] == "ESTAB" && c[4] == format!("{host}:7007")),
        "{out}"
    );
    assert_eq!(rows.iter().filter(|c| c[0] == "UNCONN").count(), 2, "{out}");
    assert!(out.contains("\t rx_datagrams:"), "{out}");

    // The listener echoes and closes: dpstack's connection takes the data
    // and the FIN, closes, and waits in TIME-WAIT (it closed first).
    let l = wait_listing(&prefix, "TIME-WAIT", Duration::from_secs(15), |l| {
        by_remote(l, &client_peer).is_some_and(|r| s(r, "state") == "TIME-WAIT")
    });
    let tw = by_remote(&l, &client_peer).unwrap();
    assert!(n(tw, "timewait_ms") <= TIME_WAIT_MS, "{tw:?}");
    assert!(ss(&prefix, "state time-wait").contains("timer:(timewait,"));
    let seen_tw = Instant::now();
    wait_listing(
        &prefix,
        "the end of TIME-WAIT",
        Duration::from_secs(8),
        |l| by_remote(l, &client_peer).is_none(),
    );
    assert!(seen_tw.elapsed() <= Duration::from_millis(TIME_WAIT_MS + 1500));
    let out = listener.wait_with_output().unwrap();
    assert!(
        text(&out).contains(&format!("\"bytes\": {SENT}")),
        "{}",
        text(&out)
    );

    // curl's second GET, then curl closes: its connection goes.
    assert!(curl.wait().unwrap().success());
    wait_listing(
        &prefix,
        "curl's connection to go",
        Duration::from_secs(10),
        |l| {
            !l.iter()
                .any(|r| s(r, "local") == format!("{ip}:80") && s(r, "state") != "LISTEN")
        },
    );

    let e = d.stop();
    assert_clean_exit(&e, Duration::from_secs(2));
    let completed: u64 = e
        .final_block
        .apps
        .iter()
        .filter(|(_, a, _)| a.starts_with("tcp-client:"))
        .map(|(_, _, c)| c.get("completed").copied().unwrap_or(0))
        .sum();
    assert_eq!(completed, 1, "{:?}", e.final_block.apps);
    let _ = udp_echo.kill();
    let _ = udp_echo.wait();
}

/// More connections than one telemetry reply holds (DPDK caps a reply at
/// 16 KiB of JSON, about 17 connections): every page is whole JSON with
/// as many records as it says, and the pages together list each
/// connection once.
#[test]
fn many_connections_are_listed_in_whole_pages() {
    let _g = serial();
    let net = TestNet::new(Link::Veth);
    let ip = net.stack_ip();
    let prefix = format!("dps{}", net.ns);
    let d = Dpstack::start(&net, "--app http:80:100");
    const N: usize = 60;
    let mut holder = Command::new("ip")
        .args(["netns", "exec", &net.ns, "/usr/bin/python3", "-c"])
        .arg(format!(
            "import socket, time\n\
             s = [socket.create_connection(('{ip}', 80)) for _ in range({N})]\n\
             print('open', flush=True)\n\
             time.sleep(20)"
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let l = wait_listing(&prefix, "every connection", Duration::from_secs(10), |l| {
        l.iter().filter(|r| s(r, "state") == "ESTABLISHED").count() == N
    });
    assert_eq!(l.len(), N + 2, "{l:?}");
    let mut remotes: Vec<&str> = l.iter().map(|r| s(r, "remote")).collect();
    remotes.sort_unstable();
    remotes.dedup();
    // The two listeners' `*` and one per connection.
    assert_eq!(remotes.len(), N + 1);
    // Raw pages, core by core following `next`: each whole JSON under
    // DPDK's 16 KiB, several for a core, each connection once.
    let core0 = l.iter().filter(|r| n(r, "core") == 0).count();
    let mut cmds = vec![
        "/dpstack/tcp/conns,0".to_string(),
        "/dpstack/tcp/conns,1".to_string(),
    ];
    let (mut seen, mut pages) = (Vec::new(), 0);
    while !cmds.is_empty() {
        let mut next = Vec::new();
        for (page, recs) in telemetry_pages(&prefix, &cmds) {
            pages += 1;
            assert!(serde_json::to_string(&page).unwrap().len() < 16384);
            let core = page["core"].as_u64().unwrap();
            let want = if core == 0 { core0 } else { l.len() - core0 };
            assert_eq!(page["total"].as_u64(), Some(want as u64), "{page}");
            seen.extend(recs.iter().map(|r| s(r, "remote").to_string()));
            if let Some(n) = page.get("next").and_then(Value::as_str) {
                next.push(format!("/dpstack/tcp/conns,{n}"));
            }
        }
        cmds = next;
    }
    assert!(pages > 2, "{N} connections fit one page per core?");
    assert_eq!(seen.len(), N + 2);
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), N + 1);
    let _ = holder.kill();
    let _ = holder.wait();
    let e = d.stop();
    assert_clean_exit(&e, Duration::from_secs(2));
}
