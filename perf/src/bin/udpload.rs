//! UDP echo load: `flows` sockets (one source port each), each keeping up to
//! `window` probes in flight, for `seconds`; every reply is checked byte for
//! byte and its round trip recorded. Prints one JSON report.
//!
//! Addresses must be in 198.18.0.0/15 (benchmarking range): anything else
//! is refused.

use clap::Parser;
use perf::{decode_probe, encode_probe, LoadCounts, LoadReport, LoadShape, PROBE_HEADER};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The echo server, e.g. 198.18.0.1:7
    #[arg(long)]
    target: SocketAddrV4,
    #[arg(long, default_value_t = 8)]
    flows: usize,
    /// Payload bytes per probe (>= 20).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Probes in flight per flow.
    #[arg(long, default_value_t = 4)]
    window: usize,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// A probe not answered within this many milliseconds counts as lost
    /// and its slot is reused.
    #[arg(long, default_value_t = 200)]
    timeout_ms: u64,
}

fn in_benchmark_range(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 198 && (o[1] == 18 || o[1] == 19)
}

struct Flow {
    sock: UdpSocket,
    /// Send time of each in-flight probe, by sequence number.
    inflight: Vec<(u64, Instant)>,
    next_seq: u64,
}

fn fill(buf: &mut [u8], flow: u32, seq: u64) {
    for (i, b) in buf.iter_mut().enumerate().skip(PROBE_HEADER) {
        *b = (i as u64 ^ seq ^ u64::from(flow)) as u8;
    }
}

fn main() -> std::io::Result<()> {
    let a = Args::parse();
    if !in_benchmark_range(*a.target.ip()) {
        eprintln!(
            "udpload: refusing target {} outside 198.18.0.0/15",
            a.target
        );
        std::process::exit(2);
    }
    let size = a.size.max(PROBE_HEADER);
    let start = Instant::now();
    let mut flows: Vec<Flow> = (0..a.flows)
        .map(|_| {
            let sock = UdpSocket::bind("0.0.0.0:0")?;
            sock.connect(a.target)?;
            sock.set_nonblocking(true)?;
            Ok(Flow {
                sock,
                inflight: Vec::with_capacity(a.window),
                next_seq: 0,
            })
        })
        .collect::<std::io::Result<_>>()?;
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    let (mut sent, mut received, mut corrupt) = (0u64, 0u64, 0u64);
    let mut out = vec![0u8; size];
    let mut inb = vec![0u8; 65536];
    let mut expect = vec![0u8; size];
    let end = start + Duration::from_secs_f64(a.seconds);
    let timeout = Duration::from_millis(a.timeout_ms);
    while Instant::now() < end {
        let mut progressed = false;
        for (fi, f) in flows.iter_mut().enumerate() {
            let now = Instant::now();
            f.inflight.retain(|(_, t)| now.duration_since(*t) < timeout);
            while f.inflight.len() < a.window {
                let seq = f.next_seq;
                f.next_seq += 1;
                let ns = start.elapsed().as_nanos() as u64;
                encode_probe(&mut out, fi as u32, seq, ns);
                fill(&mut out, fi as u32, seq);
                match f.sock.send(&out) {
                    Ok(_) => {
                        f.inflight.push((seq, Instant::now()));
                        sent += 1;
                        progressed = true;
                    }
                    Err(_) => break,
                }
            }
            while let Ok(n) = f.sock.recv(&mut inb) {
                progressed = true;
                let Some((flow, seq, sent_ns)) = decode_probe(&inb[..n]) else {
                    corrupt += 1;
                    continue;
                };
                encode_probe(&mut expect, flow, seq, sent_ns);
                fill(&mut expect, flow, seq);
                if n != size || flow as usize != fi || inb[..n] != expect[..] {
                    corrupt += 1;
                    continue;
                }
                if let Some(pos) = f.inflight.iter().position(|(s, _)| *s == seq) {
                    f.inflight.swap_remove(pos);
                    received += 1;
                    let rtt = (start.elapsed().as_nanos() as u64).saturating_sub(sent_ns);
                    let _ = h.record(rtt.max(1));
                }
            }
        }
        if !progressed {
            std::hint::spin_loop();
        }
    }
    let shape = LoadShape {
        target: a.target.to_string(),
        flows: a.flows,
        size,
        window: a.window,
    };
    let counts = LoadCounts {
        sent,
        received,
        corrupt,
    };
    let report = LoadReport::from_histogram(shape, counts, start.elapsed(), &h);
    println!("{}", serde_json::to_string(&report).unwrap());
    Ok(())
}
