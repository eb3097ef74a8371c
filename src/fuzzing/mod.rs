//! A whole core on heap buffers, for the fuzzer (tests/fuzz) and property
//! tests: feed it any bytes as a received frame; it must not panic, and
//! every buffer taken from the pool must be accounted for afterwards.
//! [`oracle`] says what every frame a core sends must satisfy; [`frames`]
//! drives a core with structured, stateful input (the `tcp_frames` target).

pub mod frames;
pub mod oracle;
pub mod pair;

use crate::app::{AppSpec, CoreInfo};
use crate::arp::{ArpConfig, ArpShared};
use crate::buf::HeapPool;
use crate::shard::{Core, CoreLimits, IfaceConfig};
use crate::time::{Duration, Instant};
use crate::wire::EthernetAddress;

pub struct FuzzCore {
    core: Core<HeapPool>,
    pool: HeapPool,
    now: Instant,
}

impl Default for FuzzCore {
    fn default() -> Self {
        Self::new()
    }
}

impl FuzzCore {
    pub fn new() -> Self {
        let limits = CoreLimits {
            arp_pending: 16,
            ..Default::default()
        };
        Self::with(
            limits,
            ArpConfig::default(),
            &["udp-echo:7", "udp-sink:9", "tcp-echo:7", "http:80:100"],
        )
    }

    /// A core with these limits, ARP table and applications (`AppSpec`
    /// strings).
    pub fn with(limits: CoreLimits, arp: ArpConfig, apps: &[&str]) -> Self {
        let iface = IfaceConfig {
            mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            ip: "198.18.0.1/24".parse().expect("valid"),
            gateway: Some("198.18.0.254".parse().expect("valid")),
            mtu: 1500,
            tx_ipv4_cksum: false,
            tx_udp_cksum: false,
            tx_tcp_cksum: false,
        };
        let info = CoreInfo {
            index: 0,
            count: 1,
            lcore: 0,
        };
        let apps = apps
            .iter()
            .map(|a| a.parse::<AppSpec>().expect("valid").factory())
            .collect::<Vec<_>>();
        let pool = HeapPool::new(256);
        let view = pool.share();
        let mut core = Core::new(iface, info, pool, ArpShared::new(arp), true, limits, &apps);
        let now = Instant::from_secs(1);
        core.start(now).expect("apps start");
        FuzzCore {
            core,
            pool: view,
            now,
        }
    }

    /// The started core itself, for tests that drive it their own way.
    pub fn into_core(self) -> Core<HeapPool> {
        self.core
    }

    /// Process `frame` as received, run the timers, drain what was sent.
    /// Panics if a buffer is unaccounted for (a leak).
    pub fn feed(&mut self, frame: &[u8]) {
        self.now = self.now.plus(Duration::from_millis(10));
        let buf = self.pool.buf_from(frame);
        self.core.begin_burst(self.now);
        self.core.process_frame(buf);
        self.core.poll_timers(self.now);
        self.core.tx_queue().clear();
        assert_eq!(
            self.pool.in_use(),
            self.core.held(),
            "a buffer is neither queued nor returned"
        );
    }

    /// As [`feed`](Self::feed), returning the frames the core sent.
    pub fn feed_and_take(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        use crate::buf::PacketBuf;
        self.now = self.now.plus(Duration::from_millis(10));
        let buf = self.pool.buf_from(frame);
        self.core.begin_burst(self.now);
        self.core.process_frame(buf);
        self.core.poll_timers(self.now);
        self.core
            .tx_queue()
            .drain(..)
            .map(|b| b.data().to_vec())
            .collect()
    }

    /// One frame as one burst of the run-to-completion loop, 1 us after the
    /// last, without the timers (they run on the clock, not per frame):
    /// returns how many frames the core sent, and drops them. For counting
    /// the protocol path's work (perf/src/bin/pathcost.rs).
    #[inline(never)]
    pub fn receive(&mut self, frame: &[u8]) -> usize {
        self.now = self.now.plus(Duration::from_micros(1));
        let buf = self.pool.buf_from(frame);
        self.core.begin_burst(self.now);
        self.core.process_frame(buf);
        let q = self.core.tx_queue();
        let n = q.len();
        q.clear();
        n
    }

    /// Advance the clock by `dt`, process `frame` (if any) as received,
    /// run the timers, and return the frames the core sent. Panics if a
    /// buffer is unaccounted for (a leak).
    pub fn run(&mut self, frame: Option<&[u8]>, dt: Duration) -> Vec<Vec<u8>> {
        use crate::buf::PacketBuf;
        self.now = self.now.plus(dt);
        self.core.begin_burst(self.now);
        if let Some(f) = frame {
            let buf = self.pool.buf_from(f);
            self.core.process_frame(buf);
        }
        self.core.poll_timers(self.now);
        let out = self
            .core
            .tx_queue()
            .drain(..)
            .map(|b| b.data().to_vec())
            .collect();
        assert_eq!(
            self.pool.in_use(),
            self.core.held(),
            "oracle: a buffer is neither queued nor returned"
        );
        out
    }

    /// The core, read-only (tables, counters).
    pub fn core(&self) -> &Core<HeapPool> {
        &self.core
    }

    pub fn counters(&self) -> &crate::stats::Counters {
        &self.core.net.counters
    }
}
