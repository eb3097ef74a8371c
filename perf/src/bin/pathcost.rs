//! pathcost: the protocol path's work per packet on plain heap buffers (no
//! device), for counting instructions deterministically under callgrind:
//!
//!   valgrind --tool=callgrind pathcost CASE N
//!
//! runs N packets of CASE through a whole core (dpstack::fuzzing::FuzzCore:
//! udp-echo:7, tcp-echo:7, ...) after a fixed setup, each frame as one burst
//! (`FuzzCore::receive`). The bench script counts only inside `receive`
//! (`--toggle-collect`), divides by N, and subtracts the `harness` case (the
//! same frame to another MAC, dropped at the first check: the frame's copy
//! into a heap buffer and the burst's bookkeeping). Cases: udp-echo (a
//! 64-byte frame in, its echo out), icmp-echo, and tcp-data-ack (a 64-byte
//! segment on an established connection, echoed back by tcp-echo, then the
//! peer's ACK of the echo: two segments in, one out; counted per pair).
//! Each output is checked, so a case that stopped doing its work fails
//! instead of looking cheap.
//!
//!   pathcost CASE N WARM
//!
//! runs WARM packets first and prints `allocs=`: the heap allocations the N
//! packets after them made (a counting global allocator; perf/tests/
//! no_alloc.rs asserts 0).

use dpstack::fuzzing::FuzzCore;

const US_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const US: [u8; 4] = [198, 18, 0, 1];
const PEER: [u8; 4] = [198, 18, 0, 2];

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}
fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Ethernet + IPv4 around an L4 payload, checksums filled.
fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(34 + l4.len());
    f.extend_from_slice(&US_MAC);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&PEER);
    ip[16..20].copy_from_slice(&US);
    let c = fold(sum16(&ip, 0));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut l4 = l4.to_vec();
    let ck = match proto {
        1 => 2,
        17 => 6,
        _ => 16,
    };
    l4[ck..ck + 2].fill(0);
    let pseudo = if proto == 1 {
        0
    } else {
        let mut p = sum16(&PEER, 0);
        p = sum16(&US, p);
        p + u32::from(proto) + l4.len() as u32
    };
    let c = fold(sum16(&l4, pseudo));
    l4[ck..ck + 2].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&l4);
    f
}

fn arp_request() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&PEER);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&US);
    f
}

fn udp(payload: usize) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + payload];
    l4[0..2].copy_from_slice(&40000u16.to_be_bytes());
    l4[2..4].copy_from_slice(&7u16.to_be_bytes());
    l4[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    ipv4(17, &l4)
}

fn icmp(payload: usize) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + payload];
    l4[0] = 8;
    l4[4..6].copy_from_slice(&1u16.to_be_bytes());
    ipv4(1, &l4)
}

fn tcp(flags: u8, seq: u32, ack: u32, data: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&40000u16.to_be_bytes());
    l4[2..4].copy_from_slice(&7u16.to_be_bytes());
    l4[4..8].copy_from_slice(&seq.to_be_bytes());
    l4[8..12].copy_from_slice(&ack.to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
    l4.extend_from_slice(data);
    ipv4(6, &l4)
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

fn seq_of(frame: &[u8]) -> (u32, u32, usize) {
    let t = &frame[34..];
    let seq = u32::from_be_bytes(t[4..8].try_into().unwrap());
    let ack = u32::from_be_bytes(t[8..12].try_into().unwrap());
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let hl = usize::from(t[12] >> 4) * 4;
    (seq, ack, total - 20 - hl)
}

/// Counts every heap allocation of the process, so that a run can say how
/// many the measured packets made (the fast path makes none).
struct Counting;

static ALLOCS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map(String::as_str).unwrap_or("udp-echo");
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    // Packets run before the counted ones (the allocation check warms the
    // core up first; the instruction count runs none).
    let warm: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut core = FuzzCore::new();
    // Setup, the same for N = 0: the peer is known by ARP.
    core.feed_and_take(&arp_request());
    let one = move |sent: usize, what: &str| {
        assert_eq!(sent, 1, "{case}: no {what}");
    };
    // One packet (or pair) of the case; its frames are built beforehand, so
    // that only the core's own work runs between the counts.
    let mut step: Box<dyn FnMut(&mut FuzzCore)> = match case {
        "harness" => {
            // The same frame to another station's MAC: dropped at the first
            // check, so this is the harness's own work per frame.
            let mut f = udp(18);
            f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
            Box::new(move |core| assert_eq!(core.receive(&f), 0))
        }
        "udp-echo" => {
            let f = udp(18);
            Box::new(move |core| one(core.receive(&f), "echo"))
        }
        "icmp-echo" => {
            let f = icmp(18);
            Box::new(move |core| one(core.receive(&f), "echo reply"))
        }
        "tcp-data-ack" => {
            let mut seq = 1000u32;
            let out = core.feed_and_take(&tcp(SYN, seq, 0, &[]));
            assert!(!out.is_empty(), "{case}: no SYN-ACK");
            let (iss, _, _) = seq_of(&out[0]);
            seq += 1;
            let mut their = iss.wrapping_add(1);
            core.feed_and_take(&tcp(ACK, seq, their, &[]));
            let data = [0x5au8; 64];
            let mut frames = Vec::with_capacity((warm + n) as usize);
            for _ in 0..warm + n {
                let segment = tcp(ACK | PSH, seq, their, &data);
                seq = seq.wrapping_add(64);
                their = their.wrapping_add(64);
                frames.push((segment, tcp(ACK, seq, their, &[])));
            }
            let mut next = 0;
            Box::new(move |core| {
                let (segment, ack) = &frames[next];
                next += 1;
                one(core.receive(segment), "echo");
                assert_eq!(core.receive(ack), 0, "{case}: an ACK was answered");
            })
        }
        other => {
            eprintln!(
                "pathcost: unknown case {other} (harness, udp-echo, icmp-echo, tcp-data-ack)"
            );
            std::process::exit(2);
        }
    };
    for _ in 0..warm {
        step(&mut core);
    }
    let tx_bytes = core.counters().tcp_tx_bytes;
    let before = ALLOCS.load(std::sync::atomic::Ordering::Relaxed);
    for _ in 0..n {
        step(&mut core);
    }
    let allocs = ALLOCS.load(std::sync::atomic::Ordering::Relaxed) - before;
    if case == "tcp-data-ack" {
        let echoed = core.counters().tcp_tx_bytes - tx_bytes;
        assert_eq!(
            echoed,
            64 * u64::from(n),
            "{case}: not every segment was echoed"
        );
    }
    let c = core.counters();
    println!(
        "{case} n={n} udp_tx={} icmp_echo_replies={} tcp_rx_segments={} drops={} allocs={allocs}",
        c.udp_tx,
        c.icmp_echo_replies,
        c.tcp_rx_segments,
        c.total_drops()
    );
}
