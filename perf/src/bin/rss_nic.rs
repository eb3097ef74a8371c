//! rss-nic: an RSS NIC emulated in software, for devices that have none.
//!
//! Two DPDK ports: a `net_memif` server with N queue pairs (dpstack connects
//! to it as a memif client, one queue per lcore) and a `net_tap` whose
//! kernel side is the wire (a test host in a namespace). Every frame from
//! the wire is hashed the way an RSS NIC does (Toeplitz over IPv4 addresses
//! and TCP/UDP ports, with the configured key and redirection table) and
//! enqueued on the memif queue the table names; whatever dpstack sends, on
//! any queue, goes to the wire. So dpstack's RSS prediction can be checked
//! end to end: connections it opens must come back to the opening core.
//!
//! Usage: rss-nic [EAL options with --vdev=net_memif0,role=server,... and
//! --vdev=net_tap0,iface=...] -- --queues N [--key microsoft] [--reta-size 128]
//! [--seconds S]. Prints one JSON line of per-queue counts at the end.

use dpstack::buf::PacketBuf;
use dpstack::dpdk::{port_by_name, Eal, Mbuf, Mempool, Port, PortConfig, BURST};
use rss::{QueuePredictor, RetaTable, ToeplitzKey};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The RSS queue of an Ethernet frame: IPv4 with TCP/UDP ports (unless a
/// fragment), IPv4 addresses only otherwise, queue 0 for the rest.
fn classify(p: &QueuePredictor, f: &[u8]) -> u16 {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return 0;
    }
    let ip = &f[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    if (ip[9] == 6 || ip[9] == 17) && !frag && ip.len() >= ihl + 4 {
        let l4 = &ip[ihl..];
        let sport = u16::from_be_bytes([l4[0], l4[1]]);
        let dport = u16::from_be_bytes([l4[2], l4[3]]);
        p.queue_for_ipv4_l4(src, dst, sport, dport)
    } else {
        p.queue_for_ipv4(src, dst)
    }
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let all: Vec<String> = std::env::args().collect();
    let split = all.iter().position(|a| a == "--").unwrap_or(all.len());
    let (eal_args, ours) = (all[..split].to_vec(), all[split.min(all.len())..].to_vec());
    let queues: u16 = arg(&ours, "--queues", 2);
    let reta_size: usize = arg(&ours, "--reta-size", 128);
    let seconds: f64 = arg(&ours, "--seconds", 60.0);
    let key = match arg(&ours, "--key", "microsoft".to_string()).as_str() {
        "symmetric" => ToeplitzKey::SYMMETRIC,
        _ => ToeplitzKey::MICROSOFT,
    };
    let predictor = QueuePredictor::new(
        &key,
        RetaTable::uniform(reta_size, queues).expect("a valid table"),
    );
    let (_eal, _) = Eal::init(&eal_args).expect("EAL");
    let pool =
        Mempool::create("rssnic", 8191, 256, 2048, dpstack::dpdk::socket_id()).expect("mempool");
    let memif_id = port_by_name("net_memif0").expect("--vdev=net_memif0,role=server,...");
    let tap_id = port_by_name("net_tap0").expect("--vdev=net_tap0,iface=...");
    let cfg = |q| PortConfig {
        rx_queues: q,
        tx_queues: q,
        checksum_offload: false,
        promiscuous: true,
        ..Default::default()
    };
    let memif = Port::start(memif_id, &cfg(queues), pool).expect("memif port");
    let tap = Port::start(tap_id, &cfg(1), pool).expect("tap port");
    println!("rss-nic: ready, {queues} queues, mac {}", tap.mac());
    let mut tap_rx = tap.rx_queue(0).expect("tap RX queue");
    let mut tap_tx = tap.tx_queue(0).expect("tap TX queue");
    let mut mrx: Vec<_> = (0..queues)
        .map(|q| memif.rx_queue(q).expect("memif RX queue"))
        .collect();
    let mut mtx: Vec<_> = (0..queues)
        .map(|q| memif.tx_queue(q).expect("memif TX queue"))
        .collect();
    let mut to_queue = vec![0u64; usize::from(queues)];
    let mut from_queue = vec![0u64; usize::from(queues)];
    let mut dropped = 0u64;
    let mut burst: arrayvec::ArrayVec<Mbuf, BURST> = arrayvec::ArrayVec::new();
    let mut per_q: Vec<arrayvec::ArrayVec<Mbuf, BURST>> =
        (0..queues).map(|_| arrayvec::ArrayVec::new()).collect();
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut n = 0u64;
    loop {
        n += 1;
        if n.is_multiple_of(4096) && Instant::now() >= end {
            break;
        }
        // Wire -> the queue the hash names.
        tap_rx.rx_burst(&mut burst);
        for m in burst.drain(..) {
            let q = usize::from(classify(&predictor, m.data()));
            per_q[q].push(m);
        }
        for (q, b) in per_q.iter_mut().enumerate() {
            if b.is_empty() {
                continue;
            }
            let len = b.len();
            let sent = mtx[q].tx_burst(b);
            to_queue[q] += sent as u64;
            dropped += (len - sent) as u64;
            b.clear();
        }
        // dpstack -> wire.
        for (q, rx) in mrx.iter_mut().enumerate() {
            rx.rx_burst(&mut burst);
            let len = burst.len();
            from_queue[q] += len as u64;
            if len > 0 {
                let sent = tap_tx.tx_burst(&mut burst);
                dropped += (len - sent) as u64;
                burst.clear();
            }
        }
    }
    println!(
        "{{\"to_queue\": {to_queue:?}, \"from_queue\": {from_queue:?}, \"dropped\": {dropped}}}"
    );
    drop(memif);
    drop(tap);
}
