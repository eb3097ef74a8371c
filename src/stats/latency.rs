//! Per-core latency histograms (HdrHistogram): the time from a burst's
//! arrival (after `rx_burst`) to its replies leaving (after `tx_burst`),
//! per traffic kind, in nanoseconds. Recorded once per burst for every
//! frame in it, so the cost is one TSC read per burst.

use hdrhistogram::Histogram;

/// What a frame was, for its histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum TrafficKind {
    Arp,
    Icmp,
    Udp,
    Tcp,
    Other,
}

impl TrafficKind {
    pub const ALL: [TrafficKind; 5] = [
        TrafficKind::Arp,
        TrafficKind::Icmp,
        TrafficKind::Udp,
        TrafficKind::Tcp,
        TrafficKind::Other,
    ];
    pub fn name(self) -> &'static str {
        match self {
            TrafficKind::Arp => "arp",
            TrafficKind::Icmp => "icmp",
            TrafficKind::Udp => "udp",
            TrafficKind::Tcp => "tcp",
            TrafficKind::Other => "other",
        }
    }
}

/// The kind of an Ethernet frame, from two peeks (no VLAN, IPv4 protocol).
#[inline]
pub fn traffic_kind(frame: &[u8]) -> TrafficKind {
    match frame.get(12..14) {
        Some([0x08, 0x06]) => TrafficKind::Arp,
        Some([0x08, 0x00]) => match frame.get(23) {
            Some(1) => TrafficKind::Icmp,
            Some(17) => TrafficKind::Udp,
            Some(6) => TrafficKind::Tcp,
            _ => TrafficKind::Other,
        },
        _ => TrafficKind::Other,
    }
}

/// One histogram per kind: 1 ns to 10 s, 3 significant digits.
#[derive(Clone, Debug)]
pub struct LatencySet {
    hists: Vec<Histogram<u64>>,
}

impl Default for LatencySet {
    fn default() -> Self {
        LatencySet {
            hists: TrafficKind::ALL
                .iter()
                .map(|_| Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds"))
                .collect(),
        }
    }
}

impl LatencySet {
    /// `count` frames of `kind` that took `ns`.
    #[inline]
    pub fn record(&mut self, kind: TrafficKind, ns: u64, count: u64) {
        let _ = self.hists[kind as usize].record_n(ns.clamp(1, 10_000_000_000), count);
    }

    pub fn histogram(&self, kind: TrafficKind) -> &Histogram<u64> {
        &self.hists[kind as usize]
    }

    /// Nothing recorded (one load per kind).
    pub fn is_empty(&self) -> bool {
        self.hists.iter().all(|h| h.is_empty())
    }

    /// Back to empty, keeping the buckets' memory.
    pub fn reset(&mut self) {
        for h in &mut self.hists {
            h.reset();
        }
    }

    /// Add another core's histograms.
    pub fn merge(&mut self, other: &LatencySet) {
        for (a, b) in self.hists.iter_mut().zip(&other.hists) {
            let _ = a.add(b);
        }
    }

    /// `(kind, [count, p50, p90, p99, p99.9, p99.99, max])` for kinds seen.
    pub fn summary(&self) -> Vec<(TrafficKind, [u64; 7])> {
        TrafficKind::ALL
            .iter()
            .filter(|k| !self.hists[**k as usize].is_empty())
            .map(|&k| {
                let h = &self.hists[k as usize];
                (
                    k,
                    [
                        h.len(),
                        h.value_at_quantile(0.5),
                        h.value_at_quantile(0.9),
                        h.value_at_quantile(0.99),
                        h.value_at_quantile(0.999),
                        h.value_at_quantile(0.9999),
                        h.max(),
                    ],
                )
            })
            .collect()
    }

    /// `kind=udp count=.. p50_ns=.. ...` for each kind seen.
    pub fn lines(&self) -> Vec<String> {
        self.summary()
            .into_iter()
            .map(|(k, v)| {
                format!(
                    "kind={} count={} p50_ns={} p90_ns={} p99_ns={} p999_ns={} p9999_ns={} max_ns={}",
                    k.name(),
                    v[0],
                    v[1],
                    v[2],
                    v[3],
                    v[4],
                    v[5],
                    v[6]
                )
            })
            .collect()
    }

    /// The same as telemetry dictionary entries: `lat_udp_p99_ns`, ...
    pub fn pairs(&self) -> Vec<(String, u64)> {
        let names = [
            "count", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns", "max_ns",
        ];
        self.summary()
            .into_iter()
            .flat_map(|(k, v)| {
                names
                    .iter()
                    .zip(v)
                    .map(move |(n, x)| (format!("lat_{}_{n}", k.name()), x))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_frames() {
        let mut f = vec![0u8; 40];
        f[12] = 0x08;
        f[13] = 0x06;
        assert_eq!(traffic_kind(&f), TrafficKind::Arp);
        f[13] = 0x00;
        for (p, k) in [
            (1, TrafficKind::Icmp),
            (17, TrafficKind::Udp),
            (6, TrafficKind::Tcp),
            (47, TrafficKind::Other),
        ] {
            f[23] = p;
            assert_eq!(traffic_kind(&f), k);
        }
        assert_eq!(traffic_kind(&f[..10]), TrafficKind::Other);
        f[12] = 0x86;
        f[13] = 0xdd;
        assert_eq!(traffic_kind(&f), TrafficKind::Other);
    }

    #[test]
    fn percentiles_merge_and_print() {
        let mut a = LatencySet::default();
        a.record(TrafficKind::Udp, 1000, 99);
        a.record(TrafficKind::Udp, 50_000, 1);
        let mut b = LatencySet::default();
        b.record(TrafficKind::Udp, 1000, 100);
        b.record(TrafficKind::Tcp, 2000, 1);
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.len(), 2);
        let (k, v) = s[0];
        assert_eq!(k, TrafficKind::Udp);
        assert_eq!(v[0], 200);
        assert!((999..=1001).contains(&v[1]), "{v:?}");
        assert!(v[6] >= 49_950, "{v:?}");
        assert!(a.lines()[0].starts_with("kind=udp count=200 p50_ns="));
        assert!(a
            .pairs()
            .iter()
            .any(|(k, v)| k == "lat_tcp_count" && *v == 1));
    }
}
