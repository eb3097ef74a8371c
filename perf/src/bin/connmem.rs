//! connmem: what an idle established connection costs in resident memory,
//! a million of them on one core, in process, on heap buffers (no device):
//!
//!   connmem [--conns N] [--exchange] [--max-rss-mb MB] [--json FILE]
//!
//! builds one core's [`TcpTable`] with `max_connections` N (TCP settings as
//! dpstack's defaults otherwise) and a listener on port 80, then opens N
//! connections through the real state machine, as the core does: a SYN
//! from a peer (MSS, window scale, SACK, timestamps: what Linux offers)
//! makes a [`Tcb`] (`Tcb::accept`) that goes into the table, the SYN-ACK it
//! dispatches is checked, and the peer's ACK (taken out, processed, put
//! back) makes it ESTABLISHED. With `--exchange` each connection then does
//! what a kept-alive HTTP connection has done once it idles: the peer sends
//! a 78-byte GET, the application reads it and sends a 100-byte response,
//! the peer acknowledges it. Every connection is left open and idle.
//!
//! Resident memory (VmRSS, RssAnon, and the page tables, VmPTE, which
//! VmRSS leaves out) is read from /proc/self/status before the table is
//! built, once it is built and empty, and once the connections are open.
//! Per connection: (after - before) / N, the table's own slots and index
//! included, and (after - empty table) / N without them.
//!
//! Bounded: with resident memory grown past `--max-rss-mb` (default: half
//! of MemAvailable, at most 10 GiB: a million at 8 KB each fits) it stops
//! opening connections and reports how many it reached; the figure per
//! connection stands, measured over those.
//! Prints one JSON line (also written to FILE).

use dpstack::stats::Counters;
use dpstack::tcp::isn::IsnGenerator;
use dpstack::tcp::{State, Tcb, TcpConfig, TcpTable};
use dpstack::time::Instant;
use dpstack::wire::{TcpFlags, TcpOptions, TcpRepr};
use std::net::{Ipv4Addr, SocketAddrV4};

const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 100, 1), 80);
const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: 198.18.100.1\r\nUser-Agent: connmem\r\nAccept: */*\r\n\r\n\r\n";
const RESPONSE: usize = 100;
/// Source ports per peer address: N connections come from N / PORTS + 1
/// addresses of 198.18.101.0/24 and on (inside 198.18.0.0/15).
const PORTS: u32 = 60000;

/// Memory figures of this process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
struct Mem {
    rss: u64,
    anon: u64,
    pte: u64,
}

fn mem() -> Mem {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Mem {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
        pte: field("VmPTE:"),
    }
}

fn mem_available_kb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The one segment a connection sent, as the peer saw it.
#[derive(Clone, Copy, Default)]
struct Sent {
    count: u32,
    flags: TcpFlags,
    seq: u32,
    ack: u32,
    ts: Option<(u32, u32)>,
    len: usize,
}

/// The peer of connection `i`: its address and what it last saw of us.
struct Peer {
    remote: SocketAddrV4,
    /// Its next sequence number and timestamp value.
    seq: u32,
    tsval: u32,
}

impl Peer {
    fn new(i: u32) -> Peer {
        let host = 1 + i / PORTS;
        let ip = Ipv4Addr::new(198, 18, 101 + (host / 250) as u8, 1 + (host % 250) as u8);
        Peer {
            remote: SocketAddrV4::new(ip, 1024 + (i % PORTS) as u16),
            seq: 0x1000_0000u32.wrapping_add(i.wrapping_mul(2654435761)),
            tsval: 1000 + i,
        }
    }

    fn segment(&mut self, flags: TcpFlags, ack: u32, tsecr: u32, len: usize) -> TcpRepr {
        let mut options = TcpOptions {
            timestamps: Some((self.tsval, tsecr)),
            ..Default::default()
        };
        if flags.syn() {
            options.mss = Some(1460);
            options.window_scale = Some(7);
            options.sack_permitted = true;
        }
        let r = TcpRepr {
            src_port: self.remote.port(),
            dst_port: LOCAL.port(),
            seq_number: self.seq,
            ack_number: ack,
            flags,
            window_len: if flags.syn() { 64240 } else { 502 },
            urgent_at: 0,
            options,
        };
        self.seq = self.seq.wrapping_add(len as u32 + u32::from(flags.syn()));
        self.tsval = self.tsval.wrapping_add(1);
        r
    }
}

/// Run `tcb`'s output once; what it sent (only the last segment is kept).
fn dispatch(tcb: &mut Tcb, now: Instant) -> Sent {
    let mut s = Sent::default();
    tcb.dispatch(now, &mut |r: &TcpRepr, a: &[u8], b: &[u8]| {
        s = Sent {
            count: s.count + 1,
            flags: r.flags,
            seq: r.seq_number,
            ack: r.ack_number,
            ts: r.options.timestamps,
            len: a.len() + b.len(),
        };
        true
    });
    s
}

/// Open connection `i` in `table` (and exchange one request and response
/// with `exchange`); an error says which step did not go as a real
/// handshake goes.
fn open(
    table: &mut TcpTable,
    cfg: &TcpConfig,
    now: Instant,
    i: u32,
    exchange: bool,
    c: &mut Counters,
) -> Result<(), String> {
    let mut peer = Peer::new(i);
    let syn = peer.segment(TcpFlags::SYN, 0, 0, 0);
    let iss = table.isn.isn(now, LOCAL, peer.remote);
    let mut tcb = Tcb::accept(cfg, now, LOCAL, peer.remote, iss, 0, &syn);
    let synack = dispatch(&mut tcb, now);
    if synack.count != 1 || synack.flags != (TcpFlags::SYN | TcpFlags::ACK) || synack.seq != iss {
        return Err(format!("connection {i}: no SYN-ACK"));
    }
    let id = table
        .insert(now, Box::new(tcb))
        .ok_or_else(|| format!("connection {i}: the table is full"))?;
    let mut ours = synack.seq.wrapping_add(1);
    let mut ecr = synack.ts.map_or(0, |t| t.0);

    let mut tcb = table.take(id.index).ok_or("taken")?;
    let ack = peer.segment(TcpFlags::ACK, ours, ecr, 0);
    tcb.process(now, &ack, &[], c);
    if tcb.state != State::Established {
        return Err(format!("connection {i}: {:?} after the ACK", tcb.state));
    }
    let quiet = dispatch(&mut tcb, now);
    if quiet.count != 0 {
        return Err(format!(
            "connection {i}: sent a segment after the handshake"
        ));
    }
    if exchange {
        let get = peer.segment(TcpFlags::ACK | TcpFlags::PSH, ours, ecr, REQUEST.len());
        tcb.process(now, &get, REQUEST, c);
        let mut buf = [0u8; 128];
        if tcb.recv(&mut buf) != REQUEST.len() {
            return Err(format!("connection {i}: the request was not delivered"));
        }
        if tcb.send(&[b'x'; RESPONSE]) != RESPONSE {
            return Err(format!("connection {i}: the response was not taken"));
        }
        let resp = dispatch(&mut tcb, now);
        if resp.len != RESPONSE || resp.seq != ours || resp.ack != peer.seq {
            return Err(format!("connection {i}: no response segment"));
        }
        ours = ours.wrapping_add(RESPONSE as u32);
        ecr = resp.ts.map_or(0, |t| t.0);
        let ack = peer.segment(TcpFlags::ACK, ours, ecr, 0);
        tcb.process(now, &ack, &[], c);
        dispatch(&mut tcb, now);
        if tcb.unsent_or_unacked() != 0 || tcb.recv_len() != 0 {
            return Err(format!("connection {i}: not idle after the exchange"));
        }
    }
    tcb.take_events();
    // An established connection stays in its slot: no application to tell.
    if table.put(now, id.index, tcb).is_some() {
        return Err(format!("connection {i}: left ESTABLISHED when put back"));
    }
    Ok(())
}

fn main() {
    // On a thread of its own, as a core runs on an lcore thread: the
    // allocator serves such a thread from an arena of its own (glibc), and
    // what a connection costs depends on it.
    let run = std::thread::Builder::new()
        .name("lcore".into())
        .spawn(run)
        .expect("thread");
    if run.join().is_err() {
        std::process::exit(1);
    }
}

fn run() {
    let mut conns: u32 = 1_000_000;
    let mut exchange = false;
    let mut max_rss_kb = (mem_available_kb() / 2).min(10 << 20);
    let mut json = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&a));
        match a.as_str() {
            "--conns" => conns = value().parse().unwrap_or_else(|_| usage("--conns")),
            "--exchange" => exchange = true,
            "--max-rss-mb" => {
                max_rss_kb = value()
                    .parse::<u64>()
                    .unwrap_or_else(|_| usage("--max-rss-mb"))
                    * 1024
            }
            "--json" => json = Some(value()),
            _ => usage(&a),
        }
    }
    let cfg = TcpConfig {
        max_connections: conns as usize,
        ..Default::default()
    };
    let now = Instant::from_secs(1);
    let mut c = Counters::default();

    let before = mem();
    let mut table = TcpTable::new(cfg, IsnGenerator::new(), now);
    table.listen(80, 0).expect("listen");
    let empty = mem();
    let start = std::time::Instant::now();
    let mut opened = 0u32;
    let mut stopped = None;
    for i in 0..conns {
        if let Err(e) = open(&mut table, &cfg, now, i, exchange, &mut c) {
            eprintln!("connmem: {e}");
            std::process::exit(1);
        }
        opened += 1;
        if i % 4096 == 4095 && mem().rss.saturating_sub(before.rss) > max_rss_kb {
            stopped = Some(format!("resident memory past {} MB", max_rss_kb / 1024));
            break;
        }
    }
    let took = start.elapsed().as_secs_f64();
    let after = mem();
    let established = table.count_state(State::Established);
    assert_eq!(established, opened as usize, "connections established");
    assert_eq!(table.len(), opened as usize, "connections in the table");

    let per = |a: u64, b: u64| (a.saturating_sub(b) as f64) * 1024.0 / f64::from(opened.max(1));
    let line = format!(
        concat!(
            "{{\"conns\": {}, \"target\": {}, \"exchange\": {}, \"stopped\": {}, ",
            "\"seconds\": {:.2}, \"tcb_bytes\": {}, ",
            "\"rss_before_kb\": {}, \"rss_empty_table_kb\": {}, \"rss_after_kb\": {}, ",
            "\"anon_after_kb\": {}, \"pte_after_kb\": {}, ",
            "\"bytes_per_conn\": {:.0}, \"bytes_per_conn_without_table\": {:.0}, ",
            "\"anon_bytes_per_conn\": {:.0}, \"pte_bytes_per_conn\": {:.0}}}"
        ),
        opened,
        conns,
        exchange,
        stopped
            .as_ref()
            .map_or("null".to_string(), |s| format!("\"{s}\"")),
        took,
        std::mem::size_of::<Tcb>(),
        before.rss,
        empty.rss,
        after.rss,
        after.anon,
        after.pte,
        per(after.rss, before.rss),
        per(after.rss, empty.rss),
        per(after.anon, before.anon),
        per(after.pte, before.pte),
    );
    println!("{line}");
    eprintln!(
        "connmem: {opened} idle connections{} in {took:.1} s: {:.2} KB resident each \
         ({:.2} KB without the table's slots and index; page tables {:.2} KB more){}",
        if exchange {
            " (one request and response each)"
        } else {
            ""
        },
        per(after.rss, before.rss) / 1024.0,
        per(after.rss, empty.rss) / 1024.0,
        per(after.pte, before.pte) / 1024.0,
        stopped.map_or(String::new(), |s| format!("; stopped early: {s}")),
    );
    if let Some(f) = json {
        std::fs::write(&f, format!("{line}\n")).expect("--json");
    }
}

fn usage(what: &str) -> ! {
    eprintln!(
        "connmem: bad argument {what:?}\nusage: connmem [--conns N] [--exchange] [--max-rss-mb MB] [--json FILE]"
    );
    std::process::exit(2);
}
