//! Load generation and latency measurement for dpstack benchmarks.
//!
//! `udpload` drives UDP echo round trips over many flows with a bounded
//! window per flow and records every round trip in an HDR histogram;
//! `udpecho-kernel` is the Linux-socket echo server the same load is run
//! against in the same benchmark, as the baseline. The benchmark scripts
//! (perf/bench-*.sh) print ratios against that baseline. `impair` is the
//! impairment logic of `dpstack-bridge`, the WAN between two ports that
//! stands in for netem.

pub mod gen;
pub mod impair;

use serde::Serialize;
use std::process::ExitCode;
use std::time::Duration;

/// A DPDK tool's command line: `EAL options -- our options`. Returns EAL's
/// arguments and ours parsed by clap, or the exit code once clap has
/// printed its help (success) or error (failure).
pub fn eal_and_our_args<T: clap::Parser>(args: Vec<String>) -> Result<(Vec<String>, T), ExitCode> {
    let (eal, ours) = dpstack::runtime::split_args(args);
    match T::try_parse_from(&ours) {
        Ok(a) => Ok((eal, a)),
        Err(e) => {
            let _ = e.print();
            Err(if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// The first bytes of every probe: flow, sequence number, send time.
pub const PROBE_HEADER: usize = 20;

/// Encode a probe header into `buf` (at least [`PROBE_HEADER`] bytes).
pub fn encode_probe(buf: &mut [u8], flow: u32, seq: u64, sent_ns: u64) {
    buf[0..4].copy_from_slice(&flow.to_be_bytes());
    buf[4..12].copy_from_slice(&seq.to_be_bytes());
    buf[12..20].copy_from_slice(&sent_ns.to_be_bytes());
}

/// Decode a probe header; None if the buffer is too short.
pub fn decode_probe(buf: &[u8]) -> Option<(u32, u64, u64)> {
    if buf.len() < PROBE_HEADER {
        return None;
    }
    Some((
        u32::from_be_bytes(buf[0..4].try_into().ok()?),
        u64::from_be_bytes(buf[4..12].try_into().ok()?),
        u64::from_be_bytes(buf[12..20].try_into().ok()?),
    ))
}

/// The result of one load run.
#[derive(Debug, Serialize, Clone)]
pub struct LoadReport {
    pub target: String,
    pub flows: usize,
    pub size: usize,
    pub window: usize,
    pub seconds: f64,
    pub sent: u64,
    pub received: u64,
    /// Replies whose bytes differed from the request.
    pub corrupt: u64,
    pub round_trips_per_sec: f64,
    pub rtt_us_p50: f64,
    pub rtt_us_p90: f64,
    pub rtt_us_p99: f64,
    pub rtt_us_p999: f64,
    pub rtt_us_max: f64,
}

/// What a load run was asked to do.
#[derive(Debug, Clone)]
pub struct LoadShape {
    pub target: String,
    pub flows: usize,
    pub size: usize,
    pub window: usize,
}

/// What a load run counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadCounts {
    pub sent: u64,
    pub received: u64,
    pub corrupt: u64,
}

impl LoadReport {
    pub fn from_histogram(
        shape: LoadShape,
        counts: LoadCounts,
        elapsed: Duration,
        h: &hdrhistogram::Histogram<u64>,
    ) -> Self {
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        LoadReport {
            target: shape.target,
            flows: shape.flows,
            size: shape.size,
            window: shape.window,
            seconds: elapsed.as_secs_f64(),
            sent: counts.sent,
            received: counts.received,
            corrupt: counts.corrupt,
            round_trips_per_sec: counts.received as f64 / elapsed.as_secs_f64().max(1e-9),
            rtt_us_p50: us(0.5),
            rtt_us_p90: us(0.9),
            rtt_us_p99: us(0.99),
            rtt_us_p999: us(0.999),
            rtt_us_max: h.max() as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_round_trip() {
        let mut b = [0u8; 64];
        encode_probe(&mut b, 7, 123456789, 42);
        assert_eq!(decode_probe(&b), Some((7, 123456789, 42)));
        assert_eq!(decode_probe(&b[..19]), None);
    }

    #[test]
    fn report_percentiles_come_from_the_histogram() {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let shape = LoadShape {
            target: "t".into(),
            flows: 1,
            size: 64,
            window: 1,
        };
        let counts = LoadCounts {
            sent: 1000,
            received: 1000,
            corrupt: 0,
        };
        let r = LoadReport::from_histogram(shape, counts, Duration::from_secs(2), &h);
        assert!((r.rtt_us_p50 - 500.0).abs() < 2.0);
        assert!((r.rtt_us_p99 - 990.0).abs() < 5.0);
        assert_eq!(r.round_trips_per_sec, 500.0);
    }
}
