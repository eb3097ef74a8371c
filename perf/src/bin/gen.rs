//! dpstack-gen: a DPDK load generator.
//!
//!   dpstack-gen [EAL options] -- --mode udp|icmp --src IP --dst IP[:PORT]
//!       [--rate PPS] [--flows N] [--size 64|64,594,1518|imix] [--seconds S]
//!       [--queues N] [--dst-mac MAC] [--json F] [--hdr-log F] [--plot F]
//!   dpstack-gen [EAL options] -- --mode tcp-rr|tcp-crr --src IP/PREFIX
//!       --dst IP:PORT [--conns N] [--path /] [--seconds S] [--stack "..."]
//!   dpstack-gen plot OUT.png "TITLE" LABEL=FILE.hlog ...
//!
//! udp/icmp: one lcore sends probes (UDP datagrams or ICMP echo requests)
//! on the first port, at `--rate` or flat out, over `--flows` flows (UDP
//! source ports or ICMP identifiers), cycling through `--size` frame sizes
//! (CRC included, as pktgen counts), and takes the replies on every queue;
//! each probe carries the TSC it left at. It answers ARP for `--src` and
//! finds `--dst` by ARP unless `--dst-mac` is given.
//! tcp-rr/tcp-crr: dpstack itself, on the given lcores, with an application
//! that keeps `--conns` HTTP/1.1 requests in flight on kept-alive
//! connections, or one request per new connection.
//! Both print one progress line a second on stderr and a JSON report on
//! stdout; `--hdr-log` writes an HdrHistogram interval log, `--plot` a PNG
//! percentile plot. Addresses must be in 198.18.0.0/15.

use clap::Parser;
use dpstack::buf::PacketBuf;
use dpstack::dpdk::{rdtsc, tsc_hz, Eal, Mbuf, Mempool, Port, PortConfig, BURST};
use perf::gen::frames::{self, Endpoints, Proto, CRC, MAX_FRAME, MIN_FRAME};
use perf::gen::record::{self, Counts, Percentiles, Recorder, Report};
use perf::gen::tcp::{Kind, Shared, TcpGen};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Parser, Debug)]
#[command(
    name = "dpstack-gen",
    about = "DPDK load generator for dpstack benchmarks"
)]
struct Args {
    /// udp, icmp, tcp-rr (kept-alive requests) or tcp-crr (a connection per request)
    #[arg(long, default_value = "udp")]
    mode: String,
    /// The generator's address (tcp modes: with a prefix, e.g. 198.18.0.2/24).
    #[arg(long)]
    src: String,
    /// The target, IP[:PORT] (UDP port 7 and TCP port 80 by default).
    #[arg(long)]
    dst: String,
    /// The target's MAC (udp/icmp; otherwise found by ARP).
    #[arg(long)]
    dst_mac: Option<String>,
    /// Packets per second, all flows together (udp/icmp; 0: flat out).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    #[arg(long, default_value_t = 1)]
    flows: u16,
    /// Frame sizes with CRC: one, a list cycled through, or imix.
    #[arg(long, default_value = "64")]
    size: String,
    /// Queues of the port to send on (flow i on queue i % N); replies are
    /// taken from all of them.
    #[arg(long, default_value_t = 1)]
    queues: u16,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// tcp: connections in flight, over all lcores.
    #[arg(long, default_value_t = 16)]
    conns: usize,
    /// tcp: the path requested.
    #[arg(long, default_value = "/")]
    path: String,
    /// tcp: more dpstack options for the generator's own stack.
    #[arg(long, default_value = "")]
    stack: String,
    /// Write the JSON report here too.
    #[arg(long)]
    json: Option<String>,
    /// Write an HdrHistogram interval log (one interval a second).
    #[arg(long)]
    hdr_log: Option<String>,
    /// Write a PNG percentile plot.
    #[arg(long)]
    plot: Option<String>,
    /// The run's name in the plot.
    #[arg(long, default_value = "dpstack-gen")]
    label: String,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("dpstack-gen: {msg}");
    ExitCode::FAILURE
}

fn benchmark_range(ip: Ipv4Addr) -> Result<Ipv4Addr, String> {
    let o = ip.octets();
    if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Ok(ip)
    } else {
        Err(format!(
            "{ip} is outside 198.18.0.0/15, the benchmarking range"
        ))
    }
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("bad MAC {s}"))?;
    v.try_into().map_err(|_| format!("bad MAC {s}"))
}

fn target(dst: &str, default_port: u16) -> Result<SocketAddrV4, String> {
    let (ip, port) = match dst.split_once(':') {
        Some((i, p)) => (i, p.parse().map_err(|_| format!("bad port in {dst}"))?),
        None => (dst, default_port),
    };
    let ip: Ipv4Addr = ip.parse().map_err(|_| format!("bad address {dst}"))?;
    Ok(SocketAddrV4::new(benchmark_range(ip)?, port))
}

/// What both modes leave behind: report, log and plot.
fn finish(a: &Args, rec: &Recorder, report: Report, started: SystemTime) -> Result<(), String> {
    println!("{}", report.line());
    if let Some(p) = &a.json {
        std::fs::write(p, report.line() + "\n").map_err(|e| format!("{p}: {e}"))?;
    }
    if let Some(p) = &a.hdr_log {
        let mut f = std::fs::File::create(p).map_err(|e| format!("{p}: {e}"))?;
        rec.write_log(&mut f, started)
            .map_err(|e| format!("{p}: {e}"))?;
    }
    if let Some(p) = &a.plot {
        let title = format!("{} {} {}", report.mode, report.target, report.sizes);
        record::plot(p, &title, &[(a.label.clone(), rec.total.clone())])?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let all: Vec<String> = std::env::args().collect();
    if all.get(1).map(String::as_str) == Some("plot") {
        return plot_logs(&all[2..]);
    }
    let (eal_args, a) = match perf::eal_and_our_args::<Args>(all) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let r = match a.mode.as_str() {
        "udp" => raw(&a, eal_args, Proto::Udp),
        "icmp" => raw(&a, eal_args, Proto::Icmp),
        "tcp-rr" => tcp(&a, eal_args, Kind::KeepAlive),
        "tcp-crr" => tcp(&a, eal_args, Kind::NewConnection),
        m => Err(format!("unknown mode {m} (udp, icmp, tcp-rr, tcp-crr)")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// `plot OUT.png TITLE LABEL=FILE.hlog...`: the logs' percentiles on one plot.
fn plot_logs(args: &[String]) -> ExitCode {
    let [out, title, runs @ ..] = args else {
        return fail("usage: dpstack-gen plot OUT.png TITLE LABEL=FILE.hlog ...");
    };
    let mut hs = vec![];
    for r in runs {
        let Some((label, file)) = r.split_once('=') else {
            return fail(format!("{r}: want LABEL=FILE"));
        };
        match std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|b| record::read_log(&b))
        {
            Ok(h) => hs.push((label.to_string(), h)),
            Err(e) => return fail(format!("{file}: {e}")),
        }
    }
    match record::plot(out, title, &hs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// UDP or ICMP probes from one lcore over the first port.
fn raw(a: &Args, eal_args: Vec<String>, proto: Proto) -> Result<(), String> {
    let sizes = record::parse_sizes(&a.size, MIN_FRAME, MAX_FRAME)?;
    let src = benchmark_range(a.src.parse().map_err(|_| format!("bad --src {}", a.src))?)?;
    let dst = target(&a.dst, 7)?;
    if a.flows == 0 || a.queues == 0 {
        return Err("--flows and --queues must be at least 1".into());
    }
    let (_eal, _) = Eal::init(&eal_args).map_err(|e| format!("EAL: {e}"))?;
    if Port::count() == 0 {
        return Err("no port: give one with --vdev".into());
    }
    let pool = Mempool::create("dpsgen", 16383, 256, 2048, dpstack::dpdk::socket_id())
        .map_err(|e| format!("mempool: {e}"))?;
    let cfg = PortConfig {
        rx_queues: a.queues,
        tx_queues: a.queues,
        checksum_offload: false,
        promiscuous: true,
        ..Default::default()
    };
    let mut port = Port::start(0, &cfg, pool).map_err(|e| format!("port: {e}"))?;
    // A memif client's link comes up when it has connected: sending before
    // would measure nothing (with --dst-mac there is no ARP to wait for).
    let up_by = Instant::now() + Duration::from_secs(5);
    while !dpstack::dpdk::link_up(0) && Instant::now() < up_by {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mac = port.mac().0;
    let mut rxq = (0..a.queues)
        .map(|q| port.rx_queue(q))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("port: {e}"))?;
    let mut txq = (0..a.queues)
        .map(|q| port.tx_queue(q))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("port: {e}"))?;
    let hz = tsc_hz();
    let mut ep = Endpoints {
        src_mac: mac,
        dst_mac: [0; 6],
        src_ip: src,
        dst_ip: *dst.ip(),
        dst_port: dst.port(),
        src_port: 10000,
    };
    let mut burst: arrayvec::ArrayVec<Mbuf, BURST> = arrayvec::ArrayVec::new();
    let mut out: arrayvec::ArrayVec<Mbuf, BURST> = arrayvec::ArrayVec::new();

    // Answer ARP for our address; the rest of a received burst is handed
    // to `f`. Returns the MAC of `dst` if an ARP from it went by.
    let send_arp = |txq: &mut dpstack::dpdk::TxQueue, op, dmac, dip| {
        if let Some(mut m) = pool.alloc_mbuf() {
            let mut f = [0u8; 42];
            frames::arp(&mut f, op, mac, src, dmac, dip);
            if m.set_len(60) {
                m.data_mut()[..42].copy_from_slice(&f);
                m.data_mut()[42..].fill(0);
                let mut v: arrayvec::ArrayVec<Mbuf, BURST> = arrayvec::ArrayVec::new();
                v.push(m);
                txq.tx_burst(&mut v);
            }
        }
    };
    let handle_arp = |frame: &[u8], txq: &mut dpstack::dpdk::TxQueue| -> Option<[u8; 6]> {
        let (op, smac, sip, tip) = frames::parse_arp(frame)?;
        if op == 1 && tip == src {
            send_arp(txq, 2, smac, sip);
        }
        (sip == *dst.ip()).then_some(smac)
    };

    if let Some(m) = &a.dst_mac {
        ep.dst_mac = parse_mac(m)?;
    } else {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut next = Instant::now();
        'resolve: loop {
            if Instant::now() >= deadline {
                return Err(format!("no ARP reply from {}", dst.ip()));
            }
            if Instant::now() >= next {
                send_arp(&mut txq[0], 1, [0; 6], *dst.ip());
                next = Instant::now() + Duration::from_millis(200);
            }
            for q in rxq.iter_mut() {
                q.rx_burst(&mut burst);
                for m in burst.drain(..) {
                    if let Some(found) = handle_arp(m.data(), &mut txq[0]) {
                        ep.dst_mac = found;
                        break 'resolve;
                    }
                }
            }
        }
    }
    eprintln!(
        "dpstack-gen: {:?} {} -> {} ({}), {} flows, sizes {}, rate {}",
        proto,
        src,
        dst,
        dpstack::wire::EthernetAddress(ep.dst_mac),
        a.flows,
        a.size,
        if a.rate == 0 {
            "flat out".into()
        } else {
            format!("{}/s", a.rate)
        }
    );

    let mut rec = Recorder::default();
    let mut c = Counts::default();
    let mut last = Counts::default();
    let started = SystemTime::now();
    let t0 = rdtsc();
    let send_ticks = (a.seconds * hz as f64) as u64;
    let drain_ticks = hz / 3;
    let second = hz;
    let mut next_tick = t0 + second;
    let mut seq: u32 = 0;
    let mut size_i = 0usize;
    let ns_per_tick = 1e9 / hz as f64;
    let mut q_next = 0usize;
    let mut flow_cursor = vec![0usize; usize::from(a.queues)];
    loop {
        let now = rdtsc();
        let elapsed = now - t0;
        if elapsed >= send_ticks + drain_ticks {
            break;
        }
        if elapsed < send_ticks {
            let n = record::due(a.rate, hz, t0, now, c.sent + c.tx_full, BURST as u64) as usize;
            // One burst per queue in turn; flow f stays on queue f % queues.
            let q = q_next;
            q_next = (q_next + 1) % usize::from(a.queues);
            let nq = usize::from(a.queues);
            let on_q = (usize::from(a.flows) + nq - 1 - q) / nq;
            for _ in 0..if on_q == 0 { 0 } else { n } {
                let flow = (q + nq * (flow_cursor[q] % on_q)) as u16;
                flow_cursor[q] += 1;
                let Some(mut m) = pool.alloc_mbuf() else {
                    break;
                };
                let size = sizes[size_i];
                size_i = (size_i + 1) % sizes.len();
                if !m.set_len(size - CRC)
                    || !frames::build(proto, &ep, m.data_mut(), flow, seq, rdtsc())
                {
                    break;
                }
                seq = seq.wrapping_add(1);
                out.push(m);
            }
            let len = out.len();
            let sent = txq[q].tx_burst(&mut out);
            c.sent += sent as u64;
            c.tx_full += (len - sent) as u64;
            out.clear();
        }
        for q in 0..rxq.len() {
            rxq[q].rx_burst(&mut burst);
            if burst.is_empty() {
                continue;
            }
            let now = rdtsc();
            for m in burst.drain(..) {
                let f = m.data();
                if let Some(r) = frames::parse(proto, &ep, f) {
                    c.received += 1;
                    c.rx_bytes += (f.len() + CRC) as u64;
                    rec.record((now.saturating_sub(r.tsc) as f64 * ns_per_tick) as u64);
                } else if f.len() >= 14 && f[12..14] == [0x08, 0x06] {
                    handle_arp(f, &mut txq[q]);
                }
            }
        }
        if now >= next_tick {
            let at = Duration::from_secs_f64((now - t0) as f64 / hz as f64);
            let d = c.minus(&last);
            last = c;
            let h = rec.rotate(at);
            if !a.quiet {
                eprintln!(
                    "{}",
                    record::progress(at, Duration::from_secs(1), &d, h, "pkt")
                );
            }
            next_tick += second;
        }
    }
    let at = Duration::from_secs_f64((rdtsc() - t0) as f64 / hz as f64);
    rec.rotate(at);
    // The queues go first: the port stops only once no handle is left.
    drop((rxq, txq));
    port.stop();
    let secs = a.seconds;
    let report = Report {
        mode: a.mode.clone(),
        target: dst.to_string(),
        flows: usize::from(a.flows),
        sizes: a.size.clone(),
        rate: a.rate,
        seconds: secs,
        sent: c.sent,
        received: c.received,
        lost: c.sent.saturating_sub(c.received),
        tx_full: c.tx_full,
        errors: 0,
        tx_pps: c.sent as f64 / secs,
        rx_pps: c.received as f64 / secs,
        rx_mbps: c.rx_bytes as f64 * 8.0 / secs / 1e6,
        latency: Percentiles::of(&rec.total),
    };
    finish(a, &rec, report, started)
}

/// HTTP requests over dpstack's own TCP, on every lcore given.
fn tcp(a: &Args, eal_args: Vec<String>, kind: Kind) -> Result<(), String> {
    let dst = target(&a.dst, 80)?;
    let (ip, _) = a
        .src
        .split_once('/')
        .ok_or("--src wants IP/PREFIX in tcp modes")?;
    benchmark_range(ip.parse().map_err(|_| format!("bad --src {}", a.src))?)?;
    let shared = Arc::new(Shared::default());
    let mut args = eal_args;
    args.extend(["--".into(), "--ip".into(), a.src.clone()]);
    args.extend(a.stack.split_whitespace().map(String::from));
    let total_conns = a.conns;
    let path = a.path.clone();
    let factory_shared = shared.clone();
    let factory: dpstack::app::AppFactory = Arc::new(move |info: &dpstack::app::CoreInfo| {
        // This core's share of the connections.
        let n = total_conns / info.count + usize::from(info.index < total_conns % info.count);
        Box::new(TcpGen::new(
            kind,
            dst,
            &path,
            n,
            factory_shared.clone(),
            rdtsc,
            tsc_hz(),
        )) as Box<dyn dpstack::app::App>
    });

    // The monitor: progress every second, stop after --seconds.
    let m = {
        let shared = shared.clone();
        let seconds = a.seconds;
        let quiet = a.quiet;
        std::thread::spawn(move || {
            while shared.started.load(Ordering::Relaxed) == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            let waited = Instant::now();
            while shared.connected.load(Ordering::Relaxed) == 0
                && waited.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            let t0 = Instant::now();
            let started = SystemTime::now();
            let mut rec = Recorder::default();
            let mut last = Counts::default();
            let read = |s: &Shared| Counts {
                sent: s.sent.load(Ordering::Relaxed),
                received: s.received.load(Ordering::Relaxed),
                rx_bytes: 0,
                tx_full: 0,
                errors: s.errors.load(Ordering::Relaxed),
            };
            let take = |rec: &mut Recorder, s: &Shared| {
                if let Some(h) = s.hist.lock().ok().and_then(|mut h| h.take()) {
                    let _ = rec.current.add(&h);
                }
            };
            let mut next = t0 + Duration::from_secs(1);
            while t0.elapsed().as_secs_f64() < seconds {
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                next += Duration::from_secs(1);
                take(&mut rec, &shared);
                let at = t0.elapsed();
                let c = read(&shared);
                let d = c.minus(&last);
                last = c;
                let h = rec.rotate(at);
                if !quiet {
                    eprintln!(
                        "{}  errors {}",
                        record::progress(at, Duration::from_secs(1), &d, h, "req"),
                        d.errors
                    );
                }
            }
            shared.stop.store(true, Ordering::Relaxed);
            let elapsed = t0.elapsed();
            // Let the last responses in (they are counted, not timed out).
            std::thread::sleep(Duration::from_millis(200));
            take(&mut rec, &shared);
            rec.rotate(t0.elapsed());
            // SAFETY: signals this process; the runtime stops on SIGTERM.
            unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
            (rec, read(&shared), elapsed, started)
        })
    };
    let code = dpstack::runtime::main_with_args(args, vec![factory]);
    if code != ExitCode::SUCCESS {
        shared.started.fetch_add(1, Ordering::Relaxed);
        return Err("the generator's stack failed".into());
    }
    let (rec, c, elapsed, started) = m.join().map_err(|_| "monitor panicked")?;
    let secs = elapsed.as_secs_f64();
    let report = Report {
        mode: a.mode.clone(),
        target: dst.to_string(),
        flows: a.conns,
        sizes: a.path.clone(),
        rate: 0,
        seconds: secs,
        sent: c.sent,
        received: c.received,
        lost: c.sent.saturating_sub(c.received),
        tx_full: 0,
        errors: c.errors,
        tx_pps: c.sent as f64 / secs,
        rx_pps: c.received as f64 / secs,
        rx_mbps: 0.0,
        latency: Percentiles::of(&rec.total),
    };
    finish(a, &rec, report, started)
}
