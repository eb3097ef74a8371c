//! Prometheus metrics: the counters, the applications' counters and the
//! latency histograms in the Prometheus text exposition format (0.0.4,
//! written by the `prometheus-client` crate), and the small HTTP server
//! that answers `GET /metrics` (`--metrics ADDR:PORT`).
//!
//! Everything here runs on a plain thread on the kernel's network, off the
//! packet path: a scrape reads what the cores last published (atomics for
//! the counters; the cores only ever `try_lock` their application and
//! latency slots, so holding one of those locks delays a core's hand-over and
//! never stalls it).
//!
//! Names: every counter is exported twice, for the whole stack
//! (`dpstack_rx_packets_total`) and per core
//! (`dpstack_core_rx_packets_total{core="0"}`), so that a `sum()` over
//! either family counts each frame once. Drops are one family labelled by
//! reason; applications' counters are `dpstack_app_<name>{app="..."}`,
//! untyped (an application does not say which of its counters are gauges).
//! Latency is a histogram in seconds, labelled by traffic kind. The
//! loop's figures (src/stats/cycles.rs) are `loop_*` counters, the
//! `cycles_per_packet` gauge, stalls labelled by side work and a histogram
//! of iteration cycles.

use super::cycles::{bucket_bound, stall_name, LoopStats, BUCKETS, STALL_KINDS};
use super::latency::{LatencySet, TrafficKind};
use super::{Counters, DropReason};
use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The latency buckets' upper bounds, in nanoseconds (1 us to 1 s; the
/// `+Inf` bucket holds the rest, up to the histograms' 10 s).
pub const LATENCY_BOUNDS_NS: [u64; 19] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// One histogram folded into Prometheus buckets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyBuckets {
    /// Latencies in each bucket (not cumulative); the last is `+Inf`'s.
    pub counts: [u64; LATENCY_BOUNDS_NS.len() + 1],
    /// Sum of the latencies, in nanoseconds.
    pub sum_ns: f64,
    pub count: u64,
}

impl LatencyBuckets {
    /// Fold `h` into the buckets. HdrHistogram keeps 3 significant digits:
    /// a latency is placed by the lowest value it cannot be told apart
    /// from, and summed as the middle of its range, as HdrHistogram's own
    /// mean does.
    pub fn from_histogram(h: &Histogram<u64>) -> LatencyBuckets {
        let mut b = LatencyBuckets::default();
        for v in h.iter_recorded() {
            let value = v.value_iterated_to();
            let n = v.count_at_value();
            let low = h.lowest_equivalent(value);
            let i = LATENCY_BOUNDS_NS.partition_point(|&bound| bound < low);
            b.counts[i] += n;
            b.sum_ns += h.median_equivalent(value) as f64 * n as f64;
            b.count += n;
        }
        b
    }

    pub fn add(&mut self, other: &LatencyBuckets) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_ns += other.sum_ns;
        self.count += other.count;
    }

    /// `(upper bound in seconds, count)` pairs, `+Inf` last.
    fn prometheus_buckets(&self) -> Vec<(f64, u64)> {
        LATENCY_BOUNDS_NS
            .iter()
            .map(|&ns| ns as f64 / 1e9)
            .chain([f64::INFINITY])
            .zip(self.counts.iter().copied())
            .collect()
    }
}

/// An application's counters, as a core published them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppCounters {
    pub app: String,
    pub counters: Vec<(String, u64)>,
}

/// Parse one published application line, `app=NAME key=value ...` (the
/// form the cores publish and the printer prints). Words that are not
/// `key=number` are skipped.
pub fn parse_app_line(line: &str) -> Option<AppCounters> {
    let mut words = line.split_whitespace();
    let app = words.next()?.strip_prefix("app=")?.to_string();
    let counters = words
        .filter_map(|w| w.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect();
    Some(AppCounters { app, counters })
}

/// What one core last published.
#[derive(Clone, Debug, Default)]
pub struct CoreSnapshot {
    pub counters: Counters,
    pub apps: Vec<AppCounters>,
    /// One per [`TrafficKind`], in `TrafficKind::ALL`'s order.
    pub latency: Vec<LatencyBuckets>,
    /// Where the core's loop cycles went.
    pub cycles: LoopStats,
}

impl CoreSnapshot {
    /// The latency part from a core's published histograms.
    pub fn latency_of(set: &LatencySet) -> Vec<LatencyBuckets> {
        TrafficKind::ALL
            .iter()
            .map(|&k| LatencyBuckets::from_histogram(set.histogram(k)))
            .collect()
    }
}

/// Every core's last publication: what one scrape exports.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub cores: Vec<CoreSnapshot>,
    /// The port's own counters, when the device could be read.
    pub port: Option<PortFigures>,
}

/// What the device (and, for af_packet, the kernel's ring under it) counted:
/// frames lost before any core read them show here and nowhere else.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortFigures {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_missed: u64,
    pub rx_nombuf: u64,
    /// Whether the driver counts `rx_missed` at all (None: not known for
    /// this driver). A 0 from a driver that never counts says nothing.
    pub missed_reported: Option<bool>,
    /// net_af_packet: frames the kernel's rings dropped before the PMD read
    /// them, and frames they carried (PACKET_STATISTICS).
    pub ring: Option<(u64, u64)>,
}

/// A metric name out of an application's counter name: `[a-zA-Z0-9_]`,
/// anything else becomes `_`.
fn metric_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The loop's iteration histogram as `(upper bound in cycles, count)`
/// pairs (not cumulative: the encoder adds them up), `+Inf` last.
fn cycle_buckets(s: &LoopStats) -> Vec<(f64, u64)> {
    (0..BUCKETS)
        .map(|i| {
            (
                bucket_bound(i).map_or(f64::INFINITY, |b| b as f64),
                s.hist[i],
            )
        })
        .collect()
}

/// A doc comment as one line of help text.
fn help(doc: &str) -> String {
    doc.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Snapshot {
    /// The Prometheus text exposition of this snapshot.
    pub fn encode(self) -> String {
        let mut registry = Registry::with_prefix("dpstack");
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }

    fn total(&self) -> Counters {
        Counters::sum(self.cores.iter().map(|c| &c.counters))
    }
}

fn encode_value(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    gauge: bool,
    series: &[(Vec<(&'static str, String)>, u64)],
) -> Result<(), std::fmt::Error> {
    let kind = if gauge {
        MetricType::Gauge
    } else {
        MetricType::Counter
    };
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in series {
        let m = family.encode_family(labels)?;
        if gauge {
            ConstGauge::new(*v).encode(m)?;
        } else {
            ConstCounter::new(*v).encode(m)?;
        }
    }
    Ok(())
}

/// A loop figure: name, help, whether a gauge, and how to read it.
type LoopValue = (&'static str, &'static str, bool, fn(&LoopStats) -> u64);

impl Snapshot {
    /// The loop's figures, all cores and per core.
    fn encode_loop(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let total = LoopStats::sum(self.cores.iter().map(|c| &c.cycles));
        let core_label = |i: usize| vec![("core", i.to_string())];
        let values: [LoopValue; 10] = [
            ("loop_busy_cycles", "TSC cycles of poll-loop iterations that received or sent frames", false, |s| s.busy_cycles),
            ("loop_busy_packets", "Packets those iterations carried: per iteration, the larger of frames received and frames sent", false, |s| s.busy_packets),
            ("loop_busy_iterations", "Poll-loop iterations that received or sent frames", false, |s| s.busy_iterations),
            (
                "loop_stalled_busy_cycles",
                "Of the busy cycles, those of iterations longer than 100 us",
                false,
                |s| s.stalled_busy_cycles,
            ),
            (
                "loop_stalled_busy_packets",
                "Of the busy packets, those of iterations longer than 100 us",
                false,
                |s| s.stalled_busy_packets,
            ),
            ("loop_iterations", "Poll-loop iterations", false, |s| s.iterations),
            ("loop_cycles", "TSC cycles of every poll-loop iteration", false, |s| s.cycles),
            ("loop_max_iteration_cycles", "The longest poll-loop iteration, in TSC cycles", true, |s| s.max_cycles),
            ("loop_sleeps", "Sleeps of an idle core (--idle-sleep)", false, |s| s.sleeps),
            ("loop_sleep_cycles", "TSC cycles an idle core slept (--idle-sleep), in no iteration", false, |s| s.sleep_cycles),
        ];
        for (name, help, gauge, get) in values {
            encode_value(encoder, name, help, gauge, &[(vec![], get(&total))])?;
            let per_core: Vec<_> = self
                .cores
                .iter()
                .enumerate()
                .map(|(c, s)| (core_label(c), get(&s.cycles)))
                .collect();
            encode_value(encoder, &format!("core_{name}"), help, gauge, &per_core)?;
        }

        let help = "Busy loop cycles per packet carried (cumulative since start; rate(loop_busy_cycles) / rate(loop_busy_packets) over a window)";
        let mut family =
            encoder.encode_descriptor("cycles_per_packet", help, None, MetricType::Gauge)?;
        ConstGauge::new(total.cycles_per_packet()).encode(family.encode_family(&Vec::<(
            &str,
            String,
        )>::new(
        ))?)?;
        let mut family =
            encoder.encode_descriptor("core_cycles_per_packet", help, None, MetricType::Gauge)?;
        for (c, s) in self.cores.iter().enumerate() {
            ConstGauge::new(s.cycles.cycles_per_packet())
                .encode(family.encode_family(&core_label(c))?)?;
        }

        let help = "Busy loop cycles per packet carried, iterations longer than 100 us left out (cumulative since start)";
        let mut family = encoder.encode_descriptor(
            "cycles_per_packet_unstalled",
            help,
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(total.cycles_per_packet_unstalled())
            .encode(family.encode_family(&Vec::<(&str, String)>::new())?)?;
        let mut family = encoder.encode_descriptor(
            "core_cycles_per_packet_unstalled",
            help,
            None,
            MetricType::Gauge,
        )?;
        for (c, s) in self.cores.iter().enumerate() {
            ConstGauge::new(s.cycles.cycles_per_packet_unstalled())
                .encode(family.encode_family(&core_label(c))?)?;
        }

        let help = "Poll-loop iterations longer than 100 us, by the side work that ran in them (other: none did)";
        let work = |i: usize| ("work", stall_name(i).to_string());
        let stalls: Vec<_> = (0..STALL_KINDS)
            .map(|i| (vec![work(i)], total.stalls[i]))
            .collect();
        encode_value(encoder, "loop_stalls", help, false, &stalls)?;
        let mut per_core = Vec::new();
        for (c, s) in self.cores.iter().enumerate() {
            for i in 0..STALL_KINDS {
                per_core.push((vec![("core", c.to_string()), work(i)], s.cycles.stalls[i]));
            }
        }
        encode_value(encoder, "core_loop_stalls", help, false, &per_core)?;

        let help = "TSC cycles of each poll-loop iteration";
        let mut family = encoder.encode_descriptor(
            "loop_iteration_cycles",
            help,
            None,
            MetricType::Histogram,
        )?;
        family
            .encode_family(&Vec::<(&str, String)>::new())?
            .encode_histogram::<Vec<(&str, String)>>(
                total.cycles as f64,
                total.iterations,
                &cycle_buckets(&total),
                None,
            )?;
        let mut family = encoder.encode_descriptor(
            "core_loop_iteration_cycles",
            help,
            None,
            MetricType::Histogram,
        )?;
        for (c, s) in self.cores.iter().enumerate() {
            family
                .encode_family(&core_label(c))?
                .encode_histogram::<Vec<(&str, String)>>(
                    s.cycles.cycles as f64,
                    s.cycles.iterations,
                    &cycle_buckets(&s.cycles),
                    None,
                )?;
        }
        Ok(())
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let total = self.total();
        let core_label = |i: usize| vec![("core", i.to_string())];
        let per_core_values: Vec<Vec<u64>> = self
            .cores
            .iter()
            .map(|s| s.counters.events().map(|e| e.2).collect())
            .collect();
        for (i, (name, doc, v)) in total.events().enumerate() {
            let gauge = Counters::is_gauge(name);
            let help = help(doc);
            encode_value(&mut encoder, name, &help, gauge, &[(vec![], v)])?;
            let per_core: Vec<_> = per_core_values
                .iter()
                .enumerate()
                .map(|(c, values)| (core_label(c), values[i]))
                .collect();
            let name = format!("core_{name}");
            encode_value(&mut encoder, &name, &help, gauge, &per_core)?;
        }

        let reason = |r: DropReason| ("reason", r.name().to_string());
        let drops: Vec<_> = DropReason::ALL
            .iter()
            .map(|&r| (vec![reason(r)], total.dropped(r)))
            .collect();
        let help = "Frames and datagrams dropped, by reason";
        encode_value(&mut encoder, "drops", help, false, &drops)?;
        let mut per_core = Vec::new();
        for (c, s) in self.cores.iter().enumerate() {
            for &r in DropReason::ALL.iter() {
                let labels = vec![("core", c.to_string()), reason(r)];
                per_core.push((labels, s.counters.dropped(r)));
            }
        }
        encode_value(&mut encoder, "core_drops", help, false, &per_core)?;

        // Applications: one family per counter name, a series per app and
        // core, and the stack's total per app.
        let mut apps: BTreeMap<String, BTreeMap<(String, usize), u64>> = BTreeMap::new();
        for (c, s) in self.cores.iter().enumerate() {
            for a in &s.apps {
                for (k, v) in &a.counters {
                    let series = apps.entry(metric_name(k)).or_default();
                    *series.entry((a.app.clone(), c)).or_default() += v;
                }
            }
        }
        for (name, series) in &apps {
            let help = format!("The applications' counter {name}, all cores");
            let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
            for ((app, _), v) in series {
                *totals.entry(app).or_default() += v;
            }
            let name_total = format!("app_{name}");
            let mut family =
                encoder.encode_descriptor(&name_total, &help, None, MetricType::Unknown)?;
            for (app, v) in totals {
                let labels = vec![("app", app.to_string())];
                ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
            }
            let help = format!("The applications' counter {name}, per core");
            let name_core = format!("core_app_{name}");
            let mut family =
                encoder.encode_descriptor(&name_core, &help, None, MetricType::Unknown)?;
            for ((app, c), v) in series {
                let labels = vec![("core", c.to_string()), ("app", app.clone())];
                ConstGauge::new(*v).encode(family.encode_family(&labels)?)?;
            }
        }

        self.encode_loop(&mut encoder)?;
        if let Some(port) = &self.port {
            port.encode(&mut encoder)?;
        }

        // Latency histograms, all cores and per core.
        let help = "Time from a burst's arrival to its replies handed to the NIC, per frame";
        let kind = |k: TrafficKind| ("kind", k.name().to_string());
        let mut family =
            encoder.encode_descriptor("latency_seconds", help, None, MetricType::Histogram)?;
        for (k, &tk) in TrafficKind::ALL.iter().enumerate() {
            let mut sum = LatencyBuckets::default();
            for s in &self.cores {
                if let Some(b) = s.latency.get(k) {
                    sum.add(b);
                }
            }
            let labels = vec![kind(tk)];
            let mut m = family.encode_family(&labels)?;
            m.encode_histogram::<Vec<(&str, String)>>(
                sum.sum_ns / 1e9,
                sum.count,
                &sum.prometheus_buckets(),
                None,
            )?;
        }
        let mut family =
            encoder.encode_descriptor("core_latency_seconds", help, None, MetricType::Histogram)?;
        for (c, s) in self.cores.iter().enumerate() {
            for (b, &tk) in s.latency.iter().zip(TrafficKind::ALL.iter()) {
                let labels = vec![("core", c.to_string()), kind(tk)];
                let mut m = family.encode_family(&labels)?;
                m.encode_histogram::<Vec<(&str, String)>>(
                    b.sum_ns / 1e9,
                    b.count,
                    &b.prometheus_buckets(),
                    None,
                )?;
            }
        }
        Ok(())
    }
}

impl PortFigures {
    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let values = [
            ("port_rx_packets", "Frames the device received (its own counter)", self.rx_packets),
            ("port_tx_packets", "Frames the device sent (its own counter)", self.tx_packets),
            ("port_rx_errors", "Erroneous frames the device received", self.rx_errors),
            ("port_tx_errors", "Frames the device failed to send", self.tx_errors),
            (
                "port_rx_missed",
                "Frames the device dropped because no core read them in time (see port_rx_missed_reported)",
                self.rx_missed,
            ),
            ("port_rx_nombuf", "Receive buffer allocation failures in the device", self.rx_nombuf),
        ];
        for (name, help, v) in values {
            encode_value(encoder, name, help, false, &[(vec![], v)])?;
        }
        if let Some(r) = self.missed_reported {
            let help = "1 if this driver counts port_rx_missed, 0 if it never does";
            encode_value(
                encoder,
                "port_rx_missed_reported",
                help,
                true,
                &[(vec![], u64::from(r))],
            )?;
        }
        if let Some((drops, packets)) = self.ring {
            let help = "Frames the kernel's af_packet rings dropped before dpstack read them";
            encode_value(encoder, "port_ring_drops", help, false, &[(vec![], drops)])?;
            let help = "Frames the kernel's af_packet rings carried (drops included)";
            encode_value(
                encoder,
                "port_ring_packets",
                help,
                false,
                &[(vec![], packets)],
            )?;
        }
        Ok(())
    }
}

/// The Content-Type of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// The most a request's head may take, request line and headers.
pub const MAX_REQUEST: usize = 8192;
/// How long a client has to send its whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What a request asks for, or why it is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics` (`head`: `HEAD /metrics`, the same without a body).
    Metrics {
        head: bool,
    },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Route a complete request head (`\r\n\r\n` or `\n\n` included or not).
pub fn route(head: &[u8]) -> Route {
    let Ok(text) = std::str::from_utf8(head) else {
        return Route::BadRequest;
    };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let Some(request_line) = lines.next() else {
        return Route::BadRequest;
    };
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Route::BadRequest;
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic());
    if !token(method)
        || !target.starts_with('/')
        || !matches!(version, "HTTP/1.0" | "HTTP/1.1")
        || target.bytes().any(|b| b <= b' ' || b == 0x7f)
    {
        return Route::BadRequest;
    }
    // Header lines are `name: value`, the name one token; the head ends
    // at the first empty line.
    for line in lines {
        if line.is_empty() {
            break;
        }
        match line.split_once(':') {
            Some((name, _)) if !name.is_empty() && !name.contains([' ', '\t']) => {}
            _ => return Route::BadRequest,
        }
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != "/metrics" {
        return Route::NotFound;
    }
    match method {
        "GET" => Route::Metrics { head: false },
        "HEAD" => Route::Metrics { head: true },
        _ => Route::MethodNotAllowed,
    }
}

/// Where a request head ends (just past its empty line), if it does.
fn head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// The whole response to a request head.
pub fn respond(head: &[u8], metrics: impl FnOnce() -> String) -> Vec<u8> {
    let (status, extra, body, send_body) = match route(head) {
        Route::Metrics { head } => ("200 OK", "", metrics(), !head),
        Route::NotFound => (
            "404 Not Found",
            "",
            "not found: try /metrics\n".into(),
            true,
        ),
        Route::MethodNotAllowed => (
            "405 Method Not Allowed",
            "Allow: GET, HEAD\r\n",
            "method not allowed\n".into(),
            true,
        ),
        Route::BadRequest => ("400 Bad Request", "", "bad request\n".into(), true),
    };
    let content_type = if status.starts_with("200") {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if send_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

fn simple(status: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Read one request head within [`REQUEST_TIMEOUT`] and [`MAX_REQUEST`]
/// bytes, and answer it.
fn serve_one(mut stream: TcpStream, metrics: &dyn Fn() -> String) {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let answer = loop {
        match head_end(&buf) {
            Some(end) if end <= MAX_REQUEST => break respond(&buf[..end], metrics),
            _ if buf.len() >= MAX_REQUEST => break respond(b"", metrics),
            _ => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break simple("408 Request Timeout");
        }
        match stream.read(&mut chunk) {
            // The client closed before its head was complete.
            Ok(0) => break respond(b"", metrics),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break simple("408 Request Timeout"),
        }
    };
    let _ = stream.write_all(&answer);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Answer requests on `listener` until `stop` is set, one at a time (a
/// client has [`REQUEST_TIMEOUT`] to send its request). `metrics` makes
/// the exposition for each scrape.
pub fn serve(listener: TcpListener, stop: &AtomicBool, metrics: &dyn Fn() -> String) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(false).is_ok() {
                    serve_one(stream, metrics);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    }

    #[test]
    fn buckets_place_latencies_by_bound() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
        h.record_n(1_000, 3).unwrap(); // exactly on the first bound
        h.record_n(1_001, 2).unwrap(); // just over it
        h.record(40_000).unwrap();
        h.record(2_000_000_000).unwrap(); // past every bound
        let b = LatencyBuckets::from_histogram(&h);
        assert_eq!(b.count, 7);
        assert_eq!(b.counts[0], 3);
        assert_eq!(b.counts[1], 2);
        assert_eq!(b.counts[5], 1, "40 us is under 50 us: {b:?}");
        assert_eq!(b.counts[LATENCY_BOUNDS_NS.len()], 1);
        assert_eq!(b.counts.iter().sum::<u64>(), 7);
        let exact = 3.0 * 1000.0 + 2.0 * 1001.0 + 40_000.0 + 2e9;
        assert!((b.sum_ns - exact).abs() / exact < 1e-3, "{b:?}");
    }

    fn snapshot() -> Snapshot {
        let mut cores = Vec::new();
        for i in 0..2u64 {
            let mut c = Counters {
                rx_packets: 3 + i,
                tcp_connections: 10 * (i + 1),
                ..Default::default()
            };
            c.drop(DropReason::NoSocket);
            let mut lat = LatencySet::default();
            lat.record(TrafficKind::Icmp, 2_000 * (i + 1), 5);
            // Core i: one idle iteration of 100 cycles, one of 3200 that
            // echoed 32 frames, and for core 1 a 1 ms stall in the timers.
            let mut l = crate::stats::cycles::LoopCycles::new(0, 1_000_000_000, 100_000);
            l.end_iteration(100, 0, 0);
            l.end_iteration(3300, 32, 32);
            if i == 1 {
                l.side_work(crate::stats::cycles::SideWork::Timers, 3300, 1_003_000);
                l.end_iteration(1_003_300, 32, 32);
            }
            let cycles = l.stats().clone();
            cores.push(CoreSnapshot {
                counters: c,
                apps: vec![
                    parse_app_line(&format!("app=udp-echo:7 echoed={} bytes=9", i + 1)).unwrap(),
                ],
                latency: CoreSnapshot::latency_of(&lat),
                cycles,
            });
        }
        Snapshot { cores, port: None }
    }

    #[test]
    fn exposition_has_totals_cores_apps_and_histograms() {
        let text = snapshot().encode();
        assert!(
            text.contains("# TYPE dpstack_rx_packets_total counter\n"),
            "{text}"
        );
        assert_eq!(value(&text, "dpstack_rx_packets_total"), 7.0);
        assert_eq!(
            value(&text, "dpstack_core_rx_packets_total{core=\"1\"}"),
            4.0
        );
        assert!(text.contains("# TYPE dpstack_tcp_connections gauge\n"));
        assert!(
            text.contains("\ndpstack_tcp_connections 30\n"),
            "gauges are integers"
        );
        assert!(
            text.contains("# HELP dpstack_rx_packets_total Frames received from the RX queue.\n")
        );
        assert_eq!(
            value(&text, "dpstack_drops_total{reason=\"no_socket\"}"),
            2.0
        );
        assert_eq!(
            value(
                &text,
                "dpstack_core_drops_total{core=\"0\",reason=\"no_socket\"}"
            ),
            1.0
        );
        assert_eq!(value(&text, "dpstack_app_echoed{app=\"udp-echo:7\"}"), 3.0);
        assert_eq!(
            value(
                &text,
                "dpstack_core_app_bytes{core=\"1\",app=\"udp-echo:7\"}"
            ),
            9.0
        );
        // Cumulative buckets: core 0's 2 us under 2.5 us, core 1's 4 us
        // under 5 us; all ten by +Inf.
        assert!(text.contains("# TYPE dpstack_latency_seconds histogram\n"));
        let b = |le: &str| {
            value(
                &text,
                &format!("dpstack_latency_seconds_bucket{{kind=\"icmp\",le=\"{le}\"}}"),
            )
        };
        assert_eq!(b("1e-06"), 0.0);
        assert_eq!(b("2.5e-06"), 5.0);
        assert_eq!(b("5e-06"), 10.0);
        assert_eq!(b("+Inf"), 10.0);
        assert_eq!(
            value(&text, "dpstack_latency_seconds_count{kind=\"icmp\"}"),
            10.0
        );
        let sum = value(&text, "dpstack_latency_seconds_sum{kind=\"icmp\"}");
        assert!((sum - 30e-6).abs() < 30e-9, "{sum}");
        assert_eq!(
            value(
                &text,
                "dpstack_core_latency_seconds_count{core=\"1\",kind=\"icmp\"}"
            ),
            5.0
        );
        assert_eq!(
            value(&text, "dpstack_latency_seconds_count{kind=\"udp\"}"),
            0.0
        );
        // The loop: busy cycles and packets add up, cycles per packet is
        // their ratio, stalls carry their side work, iterations their bucket.
        assert_eq!(value(&text, "dpstack_loop_busy_cycles_total"), 6400.0);
        assert_eq!(value(&text, "dpstack_loop_busy_packets_total"), 64.0);
        assert_eq!(value(&text, "dpstack_cycles_per_packet"), 100.0);
        assert_eq!(
            value(&text, "dpstack_core_cycles_per_packet{core=\"1\"}"),
            100.0
        );
        assert_eq!(value(&text, "dpstack_loop_iterations_total"), 5.0);
        // Core 1's stall carried no frames: nothing is left out.
        assert_eq!(value(&text, "dpstack_cycles_per_packet_unstalled"), 100.0);
        assert_eq!(value(&text, "dpstack_loop_stalled_busy_cycles_total"), 0.0);
        assert_eq!(
            value(&text, "dpstack_loop_stalls_total{work=\"timers\"}"),
            1.0
        );
        assert_eq!(
            value(
                &text,
                "dpstack_core_loop_stalls_total{core=\"0\",work=\"timers\"}"
            ),
            0.0
        );
        assert_eq!(value(&text, "dpstack_loop_max_iteration_cycles"), 1e6);
        assert!(text.contains("# TYPE dpstack_loop_iteration_cycles histogram\n"));
        let b = |le: &str| {
            value(
                &text,
                &format!("dpstack_loop_iteration_cycles_bucket{{le=\"{le}\"}}"),
            )
        };
        assert_eq!(b("64"), 0.0);
        assert_eq!(b("128"), 2.0);
        assert_eq!(b("4096"), 4.0);
        assert_eq!(b("+Inf"), 5.0);
        assert_eq!(
            value(&text, "dpstack_loop_iteration_cycles_sum"),
            (3300 * 2 + 1_000_000) as f64
        );
    }

    #[test]
    fn port_figures_are_exported_only_when_read() {
        let text = snapshot().encode();
        assert!(!text.contains("dpstack_port_"), "no port read: {text}");
        let mut s = snapshot();
        s.port = Some(PortFigures {
            rx_packets: 100,
            tx_packets: 90,
            rx_missed: 0,
            missed_reported: Some(false),
            ring: Some((7, 107)),
            ..Default::default()
        });
        let text = s.clone().encode();
        assert_eq!(value(&text, "dpstack_port_rx_packets_total"), 100.0);
        assert_eq!(value(&text, "dpstack_port_tx_packets_total"), 90.0);
        assert_eq!(value(&text, "dpstack_port_rx_missed_total"), 0.0);
        assert_eq!(value(&text, "dpstack_port_rx_missed_reported"), 0.0);
        assert_eq!(value(&text, "dpstack_port_ring_drops_total"), 7.0);
        assert_eq!(value(&text, "dpstack_port_ring_packets_total"), 107.0);
        // A driver of unknown habits, not af_packet: neither series.
        s.port = Some(PortFigures::default());
        let text = s.encode();
        assert!(!text.contains("dpstack_port_rx_missed_reported"), "{text}");
        assert!(!text.contains("dpstack_port_ring_drops"), "{text}");
        assert_eq!(value(&text, "dpstack_port_rx_nombuf_total"), 0.0);
    }

    #[test]
    fn app_lines_parse_and_odd_names_are_sanitised() {
        let a = parse_app_line("app=udp-sink:9 datagrams=5 bytes=500 junk").unwrap();
        assert_eq!(a.app, "udp-sink:9");
        assert_eq!(
            a.counters,
            vec![("datagrams".into(), 5), ("bytes".into(), 500)]
        );
        assert_eq!(parse_app_line("core=0 x=1"), None);
        assert_eq!(metric_name("rx-bytes.v4"), "rx_bytes_v4");
    }

    #[test]
    fn requests_are_routed_or_refused() {
        let ok = Route::Metrics { head: false };
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), ok);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\n\n"), ok);
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Route::Metrics { head: true }
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        for bad in [
            &b""[..],
            b"GET\r\n\r\n",
            b"GET /metrics\r\n\r\n",
            b"GET /metrics HTTP/2\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"G=T /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET /met\xffrics HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                route(bad),
                Route::BadRequest,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let r = String::from_utf8(respond(b"POST /metrics HTTP/1.1\r\n\r\n", String::new)).unwrap();
        assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
        assert!(r.contains("\r\nAllow: GET, HEAD\r\n"));
        let r = String::from_utf8(respond(b"GET /metrics HTTP/1.1\r\n\r\n", || "x 1\n".into()))
            .unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")));
        assert!(r.ends_with("\r\n\r\nx 1\n"));
        let r = String::from_utf8(respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", || {
            "x 1\n".into()
        }))
        .unwrap();
        assert!(
            r.contains("Content-Length: 4\r\n") && r.ends_with("\r\n\r\n"),
            "{r}"
        );
    }

    /// A real loopback server: answers, refuses an oversize head, and a
    /// client that stalls is cut off after the timeout while the next one
    /// is served.
    #[test]
    fn server_answers_and_bounds_clients() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            std::thread::spawn(move || serve(listener, &stop, &|| "m 1\n".to_string()))
        };
        let exchange = |req: &[u8]| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(req).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let r = exchange(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 200 OK") && r.ends_with("m 1\n"),
            "{r}"
        );
        assert!(exchange(b"GET /x HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(exchange(b"BLAH\r\n\r\n").starts_with("HTTP/1.1 400 "));
        let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
        while big.len() <= MAX_REQUEST {
            big.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        big.extend_from_slice(b"\r\n");
        assert!(exchange(&big).starts_with("HTTP/1.1 400 "));
        let start = Instant::now();
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        let r = exchange(b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        let waited = start.elapsed();
        let mut out = String::new();
        slow.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
        assert!(
            waited >= REQUEST_TIMEOUT / 2 && waited < REQUEST_TIMEOUT * 2,
            "{waited:?}"
        );
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap();
    }
}
