//! Two whole cores, dpstack against dpstack, over a simulated link.
//!
//! The harness is [`crate::fuzzing::pair`] (shared with the `tcp_pair`
//! fuzz target); this file holds the seeded scenarios.
//!
//! Each core is a complete `Core` on its own heap pool, with its own MAC
//! and address in 198.18.0.0/24 and its own ARP table. What one core puts
//! in its TX queue is an encoded Ethernet frame; the link checks it (it fits
//! the MTU: 1500 bytes of IP, 1514 of Ethernet; Ethernet, IPv4 and TCP
//! parse back with valid checksums), then a seeded PRNG decides its fate:
//! lost, duplicated, delayed by a random jitter (which reorders), or
//! corrupted (one payload byte flipped, which the receiver must drop by
//! checksum and count). Time advances in fixed steps; the cores see only
//! frames and the clock, as they would on a NIC.
//!
//! A scenario passes when every byte came back in order and verified (the
//! `tcp-client` application checks each one), every connection closed on
//! both sides (TIME_WAIT included: its duration is short here), the cores
//! resolved each other by ARP through the link, and every pool buffer came
//! back. A failure names the seed: the run is reproducible from it (the
//! ISN secret is fixed too), and `SIM_TRACE=1` prints every frame and what
//! the link did to it.
//!
//! The simulation found issue 13's B2 (SACK blocks on full-sized segments
//! made 1526-byte frames), B4 (simultaneous open never completed) and an
//! endless exchange of unacceptable ACKs after timeouts on both ends; the
//! cases that showed them run here as regression tests.

use crate::app::{AppFactory, AppSpec};
use crate::fuzzing::pair::{LinkConfig, LinkStats, Pair, RandomLink, CLEAN, MAX_FRAME};
use crate::stats::{Counters, DropReason};
use crate::tcp::TcpConfig;
use crate::time::Duration;

/// The simulation's clock step: the cores' burst and timer period.
const STEP: Duration = Duration::from_micros(250);
/// Simulated time after which a scenario that has not finished fails.
const GIVE_UP: Duration = Duration::from_secs(120);

/// Connections per echo scenario, and bytes each way on each.
const CONNS: u64 = 4;
const BYTES: u64 = 200_000;

/// TCP settings for the simulation: the defaults, with a short TIME_WAIT
/// so that a finished scenario ends with empty tables.
fn sim_tcp() -> TcpConfig {
    TcpConfig {
        time_wait: Duration::from_secs(1),
        ..TcpConfig::default()
    }
}

fn factories(apps: &[&str]) -> Vec<AppFactory> {
    apps.iter()
        .map(|a| a.parse::<AppSpec>().unwrap().factory())
        .collect()
}

/// A [`Pair`] on a seeded [`RandomLink`], stepped every [`STEP`].
struct Sim {
    pair: Pair<RandomLink>,
    seed: u64,
}

impl Sim {
    fn new(seed: u64, link: LinkConfig, apps: [&[&str]; 2], tcp: TcpConfig) -> Sim {
        let apps = apps.map(factories);
        let pair = Pair::new(
            format!("seed {seed}"),
            RandomLink::new(seed, link),
            [&apps[0][..], &apps[1][..]],
            tcp,
        );
        Sim { pair, seed }
    }

    fn stats(&self) -> &LinkStats {
        &self.pair.stats
    }

    fn counters(&self, i: usize) -> &Counters {
        self.pair.counters(i)
    }

    fn app(&self, i: usize, name: &str) -> u64 {
        let apps = self.pair.nodes[i].core.app_counters();
        apps[0].1.iter().find(|(k, _)| *k == name).unwrap().1
    }

    /// Step until `done` holds, both tables are empty and nothing is in
    /// flight; fail with the seed after [`GIVE_UP`].
    fn run_until(&mut self, done: impl Fn(&Sim) -> bool) -> Duration {
        let start = self.pair.now;
        loop {
            self.pair.step_to(self.pair.now.plus(STEP));
            if done(self) && self.pair.quiet() {
                return self.pair.now.since(start);
            }
            if self.pair.now.since(start) > GIVE_UP {
                let n = &self.pair.nodes;
                panic!(
                    "seed {}: not done after {}s of simulated time; link {:?}; \
                     connections {} and {}; apps {:?} {:?}; counters {:?} {:?}",
                    self.seed,
                    GIVE_UP.micros() / 1_000_000,
                    self.pair.stats,
                    n[0].core.tcp_connections(),
                    n[1].core.tcp_connections(),
                    n[0].core.app_counters(),
                    n[1].core.app_counters(),
                    self.pair.moved_counters(0),
                    self.pair.moved_counters(1),
                );
            }
        }
    }

    /// What every scenario must end with: corrupted frames dropped by
    /// checksum and counted, ARP resolved through the link, every buffer
    /// back in its pool.
    fn check_end(mut self) -> LinkStats {
        let seed = self.seed;
        for i in 0..2 {
            let c = self.counters(i);
            assert_eq!(
                c.dropped(DropReason::BadChecksum),
                self.stats().corrupted[i],
                "seed {seed}: node {i} drops every corrupted frame by checksum"
            );
            assert_eq!(c.arp_entries, 1, "seed {seed}: node {i} knows its peer");
            assert_eq!(c.drops[DropReason::NoArp as usize], 0, "seed {seed}");
        }
        if let Err(e) = self.pair.check_buffers() {
            panic!("{e}");
        }
        let requests = self.counters(0).arp_requests_sent + self.counters(1).arp_requests_sent;
        let replies = self.counters(0).arp_replies_sent + self.counters(1).arp_replies_sent;
        assert!(
            requests >= 1 && replies >= 1,
            "seed {seed}: resolved by ARP"
        );
        self.pair.stats
    }
}

/// Node 1 (198.18.0.1) runs `tcp-client` with `conns` connections of
/// `bytes` each to node 2 (198.18.0.2), which runs `tcp-echo`: every byte
/// comes back and is checked. Returns the link's statistics and the
/// simulated time taken.
fn echo_scenario(
    seed: u64,
    link: LinkConfig,
    tcp: TcpConfig,
    conns: u64,
    bytes: u64,
) -> (LinkStats, Duration) {
    let client = format!("tcp-client:198.18.0.2:7:{bytes}:{conns}");
    let mut sim = Sim::new(seed, link, [&[&client], &["tcp-echo:7"]], tcp);
    let took = sim.run_until(|s| s.app(0, "completed") + s.app(0, "failed") == conns);
    let total = conns * bytes;
    let report = format!("seed {seed}, link {link:?}, {:?}", sim.stats());
    assert_eq!(sim.app(0, "connected"), conns, "{report}");
    assert_eq!(sim.app(0, "completed"), conns, "{report}");
    assert_eq!(sim.app(0, "failed"), 0, "{report}");
    assert_eq!(sim.app(0, "mismatches"), 0, "{report}");
    assert_eq!(sim.app(0, "sent"), total, "{report}");
    assert_eq!(sim.app(0, "verified"), total, "every byte, in order");
    assert_eq!(sim.app(1, "accepted"), conns, "{report}");
    assert_eq!(sim.app(1, "bytes"), total, "{report}");
    assert_eq!(sim.app(1, "closed"), conns, "{report}");
    assert_eq!(sim.app(1, "open"), 0, "{report}");
    for i in 0..2 {
        let c = sim.counters(i);
        assert_eq!(c.tcp_timeouts, 0, "{report}");
        // A RST only ever answers a segment for no connection: on a clean
        // link there is none; on a duplicating one, the copy of a final
        // ACK reaches a connection LAST_ACK has just freed (RFC 9293
        // 3.10.7.2: an ACK to a listener is answered with RST).
        assert!(
            c.tcp_rst_sent <= c.dropped(DropReason::TcpNoConnection),
            "{report}"
        );
        if link.loss + link.duplicate == 0 {
            assert_eq!(c.tcp_rst_sent, 0, "{report}");
        }
    }
    (sim.check_end(), took)
}

/// Echo scenarios for each seed; prints what the link did (visible with
/// `--nocapture`).
fn echo_seeds(seeds: &[u64], link: LinkConfig, tcp: TcpConfig) -> Vec<LinkStats> {
    seeds
        .iter()
        .map(|&seed| {
            let (stats, took) = echo_scenario(seed, link, tcp, CONNS, BYTES);
            println!(
                "seed {seed}: {}ms simulated, {:?}",
                took.micros() / 1000,
                stats
            );
            stats
        })
        .collect()
}

/// 1% of frames lost.
const LOSS_1: LinkConfig = LinkConfig { loss: 10, ..CLEAN };

/// 5% lost, 2% duplicated, up to 2 ms of jitter on 1 ms (reordering).
const LOSS_5_REORDER_DUP: LinkConfig = LinkConfig {
    loss: 50,
    duplicate: 20,
    corrupt: 0,
    latency: Duration::from_millis(1),
    jitter: Duration::from_millis(2),
};

/// 1% lost, 1% duplicated, 2% of data segments corrupted, some reordering.
const CORRUPTING: LinkConfig = LinkConfig {
    loss: 10,
    duplicate: 10,
    corrupt: 20,
    latency: Duration::from_millis(1),
    jitter: Duration::from_millis(1),
};

/// Without SACK (RFC 2018): no data segment carries SACK blocks, so bug
/// B2 (blocks added on top of a full-sized segment) cannot show, and loss
/// recovery is NewReno's alone.
fn without_sack() -> TcpConfig {
    TcpConfig {
        sack: false,
        ..sim_tcp()
    }
}

#[test]
fn sim_echo_over_a_clean_link() {
    let stats = echo_seeds(&[1, 2], CLEAN, sim_tcp());
    for s in &stats {
        assert_eq!(s.lost + s.duplicated + s.reordered, 0);
        // Nothing lost, nothing out of order: no SACK block is ever sent,
        // and full-sized segments fill the MTU exactly.
        assert_eq!(s.data_with_sack, 0);
        assert_eq!(s.largest_frame, MAX_FRAME);
    }
}

// With SACK (the default), any loss soon has a full-sized data segment
// carry SACK blocks on top of its payload (bug B2): the link's MTU check
// fails within the first 15 ms of simulated time for every seed below.
// The same scenarios without SACK follow, and pass.

#[test]
fn sim_echo_at_1_percent_loss() {
    let stats = echo_seeds(&[11, 12, 13], LOSS_1, sim_tcp());
    assert!(stats.iter().all(|s| s.lost > 0 && s.data_with_sack > 0));
}

#[test]
fn sim_echo_at_5_percent_loss_reordering_and_duplication() {
    let stats = echo_seeds(&[21, 22, 23], LOSS_5_REORDER_DUP, sim_tcp());
    assert!(stats
        .iter()
        .all(|s| s.lost > 0 && s.duplicated > 0 && s.reordered > 0 && s.data_with_sack > 0));
}

#[test]
fn sim_echo_with_corrupted_frames() {
    let stats = echo_seeds(&[31, 32], CORRUPTING, sim_tcp());
    // check_end compared each node's checksum drops with what it got.
    assert!(stats
        .iter()
        .all(|s| s.corrupted[0] > 0 && s.corrupted[1] > 0));
}

#[test]
fn sim_echo_without_sack_at_1_percent_loss() {
    let stats = echo_seeds(&[11, 12, 13], LOSS_1, without_sack());
    for s in &stats {
        assert!(s.lost > 0);
        assert_eq!(s.data_with_sack, 0);
        assert_eq!(s.largest_frame, MAX_FRAME);
    }
}

#[test]
fn sim_echo_without_sack_at_5_percent_loss_reordering_and_duplication() {
    let stats = echo_seeds(&[21, 22, 23], LOSS_5_REORDER_DUP, without_sack());
    for s in &stats {
        assert!(s.lost > 0 && s.duplicated > 0 && s.reordered > 0);
        assert_eq!(s.largest_frame, MAX_FRAME);
    }
}

#[test]
fn sim_echo_without_sack_with_corrupted_frames() {
    let stats = echo_seeds(&[31, 32], CORRUPTING, without_sack());
    // check_end compared each node's checksum drops with what it got.
    assert!(stats
        .iter()
        .all(|s| s.corrupted[0] > 0 && s.corrupted[1] > 0));
}

#[test]
fn sim_runs_are_reproducible_from_their_seed() {
    let run = || echo_scenario(32, CORRUPTING, without_sack(), 2, 50_000);
    let (a, b) = (run(), run());
    // The same frames, byte for byte (sequence numbers included: the ISN
    // secret is fixed), in the same order, the same simulated time.
    assert_eq!(a, b);
    assert!(a.0.lost > 0 && a.0.reordered > 0);
}

/// Seeds where both ends went back to SND.UNA after a timeout while the
/// other had already received more: each end's pure ACKs carry its rewound
/// SND.NXT, below the other's RCV.NXT, so each is unacceptable (RFC 9293
/// 3.10.7.4), never has its ACK field read, and is answered by an ACK just
/// as unacceptable: an endless ACK exchange, one connection stuck (seed
/// 106 from 4 s on). FreeBSD's tcp_output sends SND.MAX in pure ACKs.
#[test]
fn sim_echo_without_sack_after_timeouts_on_both_ends() {
    let stats = echo_seeds(&[106, 110, 112], LOSS_5_REORDER_DUP, without_sack());
    assert!(stats.iter().all(|s| s.lost > 0));
}

/// Both nodes `connect` from port 5000 to the other's port 5000 at the same
/// time, with no listener (RFC 9293 3.5, figure 8: simultaneous open). The
/// application API cannot choose a local port; an ephemeral range of one
/// port, 5000, makes `tcp_connect` pick it. Each side runs `tcp-client`,
/// which sends a known pattern and checks what it receives: the peer sends
/// the same pattern, so each verifies the other's bytes. Both connect on
/// their first poll and their SYNs wait for the same ARP exchange, so on a
/// clean link the two SYNs cross; on a lossy one, a lost SYN can make it an
/// ordinary open with one side in SYN-RECEIVED.
fn simultaneous_open(seed: u64, link: LinkConfig, tcp: TcpConfig) -> LinkStats {
    let tcp = TcpConfig {
        ephemeral: (5000, 5000),
        ..tcp
    };
    let bytes = 50_000;
    let apps = [
        format!("tcp-client:198.18.0.2:5000:{bytes}:1"),
        format!("tcp-client:198.18.0.1:5000:{bytes}:1"),
    ];
    let mut sim = Sim::new(seed, link, [&[&apps[0]], &[&apps[1]]], tcp);
    sim.run_until(|s| (0..2).all(|i| s.app(i, "completed") + s.app(i, "failed") == 1));
    for i in 0..2 {
        let report = format!("seed {seed}, node {i}: {:?}", sim.stats());
        assert_eq!(sim.app(i, "connected"), 1, "{report}");
        assert_eq!(sim.app(i, "completed"), 1, "{report}");
        assert_eq!(sim.app(i, "verified"), bytes, "{report}");
        let c = sim.counters(i);
        assert_eq!(
            (c.tcp_connected, c.tcp_accepted),
            (1, 0),
            "{report}: an active open is counted as connected, never as accepted"
        );
    }
    sim.check_end()
}

#[test]
fn sim_simultaneous_open() {
    let s = simultaneous_open(41, CLEAN, sim_tcp());
    assert_eq!(s.lost + s.duplicated + s.reordered, 0);
}

#[test]
fn sim_simultaneous_open_at_5_percent_loss() {
    for seed in [42, 43, 44] {
        simultaneous_open(seed, LOSS_5_REORDER_DUP, sim_tcp());
    }
}

#[test]
fn sim_simultaneous_open_without_sack_at_5_percent_loss() {
    for seed in [42, 43, 44] {
        simultaneous_open(seed, LOSS_5_REORDER_DUP, without_sack());
    }
}
