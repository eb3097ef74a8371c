//! What dpstack-gen measures: round trips in an HDR histogram (nanoseconds),
//! one per interval for the HdrHistogram interval log and one for the whole
//! run; the one-line progress, the final report, and the percentile plot.

use base64::Engine;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::{Duration, SystemTime};

pub fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is valid")
}

/// Counts of one run (or one interval of it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub received: u64,
    /// Bytes of the received frames, CRC included.
    pub rx_bytes: u64,
    /// Frames the device did not take (flat out: the TX ring was full).
    pub tx_full: u64,
    /// Requests that failed (TCP: refused, reset or timed out).
    pub errors: u64,
}

impl Counts {
    pub fn minus(&self, o: &Counts) -> Counts {
        Counts {
            sent: self.sent - o.sent,
            received: self.received - o.received,
            rx_bytes: self.rx_bytes - o.rx_bytes,
            tx_full: self.tx_full - o.tx_full,
            errors: self.errors - o.errors,
        }
    }
}

/// Round trips over time: the run's histogram and its intervals.
pub struct Recorder {
    pub total: Histogram<u64>,
    pub current: Histogram<u64>,
    /// (start offset, length, histogram) of each finished interval.
    pub intervals: Vec<(Duration, Duration, Histogram<u64>)>,
    interval_start: Duration,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            total: histogram(),
            current: histogram(),
            intervals: vec![],
            interval_start: Duration::ZERO,
        }
    }
}

impl Recorder {
    #[inline]
    pub fn record(&mut self, ns: u64) {
        // Auto-resizing histograms take any value.
        let _ = self.current.record(ns.max(1));
    }

    /// Close the interval that ends at `at` (time since the run began).
    pub fn rotate(&mut self, at: Duration) -> &Histogram<u64> {
        let h = std::mem::replace(&mut self.current, histogram());
        let _ = self.total.add(&h);
        let start = self.interval_start;
        self.interval_start = at;
        self.intervals.push((start, at.saturating_sub(start), h));
        &self.intervals.last().expect("just pushed").2
    }

    /// The intervals as an HdrHistogram interval log (V2, compressed), as
    /// HdrHistogram's own tools read it.
    pub fn write_log(
        &self,
        out: &mut impl std::io::Write,
        start: SystemTime,
    ) -> std::io::Result<()> {
        let mut ser = V2DeflateSerializer::new();
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment("dpstack-gen round trips, nanoseconds")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1000.0)
            .begin_log_with(out, &mut ser)?;
        for (at, len, h) in &self.intervals {
            w.write_histogram(h, *at, *len, None)
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
        Ok(())
    }
}

/// Sum the histograms of an interval log (as `write_log` writes it).
pub fn read_log(text: &[u8]) -> Result<Histogram<u64>, String> {
    let mut total = histogram();
    let mut de = Deserializer::new();
    let mut n = 0;
    for entry in IntervalLogIterator::new(text) {
        match entry.map_err(|e| format!("{e:?}"))? {
            LogEntry::Interval(i) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .map_err(|e| e.to_string())?;
                let h: Histogram<u64> = de
                    .deserialize(&mut &bytes[..])
                    .map_err(|e| format!("{e:?}"))?;
                total.add(&h).map_err(|e| format!("{e:?}"))?;
                n += 1;
            }
            _ => continue,
        }
    }
    if n == 0 {
        return Err("no intervals in the log".into());
    }
    Ok(total)
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Percentiles {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            p50_us: us(0.5),
            p90_us: us(0.9),
            p99_us: us(0.99),
            p999_us: us(0.999),
            p9999_us: us(0.9999),
            max_us: h.max() as f64 / 1000.0,
        }
    }
}

/// The final report, printed as one JSON line.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub mode: String,
    pub target: String,
    pub flows: usize,
    pub sizes: String,
    /// Offered rate (packets or requests per second; 0: flat out).
    pub rate: u64,
    pub seconds: f64,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub tx_full: u64,
    pub errors: u64,
    pub tx_pps: f64,
    pub rx_pps: f64,
    /// Received bits per second, Ethernet frames with CRC (0 for TCP).
    pub rx_mbps: f64,
    pub latency: Percentiles,
}

impl Report {
    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("a report serializes")
    }
}

/// One line of live progress for an interval.
pub fn progress(at: Duration, len: Duration, c: &Counts, h: &Histogram<u64>, unit: &str) -> String {
    let s = len.as_secs_f64().max(1e-9);
    let p = Percentiles::of(h);
    format!(
        "gen: {:6.1}s  tx {:>10.0} {unit}/s  rx {:>10.0} {unit}/s  {:>8.1} Mbit/s  p50 {:.1} us  p99 {:.1} us  max {:.1} us  lost {}",
        at.as_secs_f64(),
        c.sent as f64 / s,
        c.received as f64 / s,
        c.rx_bytes as f64 * 8.0 / s / 1e6,
        p.p50_us,
        p.p99_us,
        p.max_us,
        c.sent.saturating_sub(c.received)
    )
}

/// Frame sizes to cycle through: "64", "64,594,1518" or "imix" (7:4:1 of
/// 64, 594 and 1518 bytes). Each within [min, max].
pub fn parse_sizes(s: &str, min: usize, max: usize) -> Result<Vec<usize>, String> {
    let list: Vec<usize> = if s == "imix" {
        [64; 7].into_iter().chain([594; 4]).chain([1518]).collect()
    } else {
        s.split(',')
            .map(|x| x.trim().parse().map_err(|_| format!("bad size {x:?}")))
            .collect::<Result<_, _>>()?
    };
    if list.is_empty() {
        return Err("no sizes".into());
    }
    if let Some(bad) = list.iter().find(|&&n| n < min || n > max) {
        return Err(format!("size {bad} is outside {min}..={max}"));
    }
    Ok(list)
}

/// How many packets may go now at `rate` per second (0: flat out, capped
/// by `burst`), having sent `sent` since `start` (all in TSC ticks).
#[inline]
pub fn due(rate: u64, hz: u64, start: u64, now: u64, sent: u64, burst: u64) -> u64 {
    if rate == 0 {
        return burst;
    }
    let allowed =
        (u128::from(now.saturating_sub(start)) * u128::from(rate) / u128::from(hz)) as u64;
    allowed.saturating_sub(sent).min(burst)
}

/// A percentile plot (latency against percentile, the x axis stretched
/// towards the tail as HdrHistogram's plotter does) of labelled runs.
/// The plots' one font, registered once.
fn load_font() -> Result<(), String> {
    use plotters::prelude::*;
    static FONT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    FONT.get_or_init(|| {
        let bytes = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or("no font: install fonts-dejavu-core")?;
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            Box::leak(bytes.into_boxed_slice()),
        )
        .map_err(|_| "font did not load".to_string())
    })
    .clone()
}

pub fn plot(path: &str, title: &str, runs: &[(String, Histogram<u64>)]) -> Result<(), String> {
    use plotters::prelude::*;
    load_font()?;
    let e = |x: &dyn std::fmt::Debug| format!("plot {path}: {x:?}");
    // x = 1/(1-q): 2 at p50, 10 at p90, 100 at p99 ...
    let max_x = 1e5f64;
    let mut max_us = 1.0f64;
    let series: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(label, h)| {
            let mut pts = vec![];
            for v in h.iter_quantiles(4) {
                let q = v.quantile_iterated_to();
                let x = if q >= 1.0 {
                    max_x
                } else {
                    (1.0 / (1.0 - q)).min(max_x)
                };
                let y = v.value_iterated_to() as f64 / 1000.0;
                max_us = max_us.max(y);
                pts.push((x.max(1.0), y));
            }
            (label.clone(), pts)
        })
        .collect();
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1f64..max_x).log_scale(), 0f64..max_us * 1.1)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("round trip (us)")
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 1.0 / x);
            format!("{}%", (p * 1000.0).round() / 1000.0)
        })
        .draw()
        .map_err(|x| e(&x))?;
    for (i, (label, pts)) in series.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// Named series of (x, y) points.
pub type Series = Vec<(String, Vec<(f64, f64)>)>;

/// Series from CSV lines `LABEL,X,Y`, in the order labels first appear.
/// Blank lines, `#` comments and a header line (whose X is not a number)
/// are skipped.
pub fn parse_series_csv(text: &str) -> Result<Series, String> {
    let mut out: Series = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let [label, x, y] = f[..] else {
            return Err(format!("line {}: want LABEL,X,Y: {line}", i + 1));
        };
        let Ok(x) = x.parse::<f64>() else {
            if out.is_empty() {
                continue;
            }
            return Err(format!("line {}: bad X: {line}", i + 1));
        };
        let y: f64 = y
            .parse()
            .map_err(|_| format!("line {}: bad Y: {line}", i + 1))?;
        match out.iter_mut().find(|(l, _)| l == label) {
            Some((_, pts)) => pts.push((x, y)),
            None => out.push((label.to_string(), vec![(x, y)])),
        }
    }
    Ok(out)
}

/// Lines over time (or any x): each series as a line, from x = 0 to the
/// last point of any series, y from 0.
pub fn plot_series(
    path: &str,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &Series,
) -> Result<(), String> {
    use plotters::prelude::*;
    load_font()?;
    let e = |x: &dyn std::fmt::Debug| format!("plot {path}: {x:?}");
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let max_x = pts.clone().map(|p| p.0).fold(0f64, f64::max).max(1e-9);
    let max_y = pts.map(|p| p.1).fold(0f64, f64::max).max(1e-9);
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_x, 0f64..max_y * 1.1)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(|x| e(&x))?;
    for (i, (label, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_csv_groups_points_by_label_in_order() {
        let s = parse_series_csv(
            "series,t,mbit\n# a comment\ndpstack,0.1,10\nlinux,0.1,20\n\ndpstack,0.2,30.5\n",
        )
        .unwrap();
        assert_eq!(
            s,
            vec![
                ("dpstack".to_string(), vec![(0.1, 10.0), (0.2, 30.5)]),
                ("linux".to_string(), vec![(0.1, 20.0)]),
            ]
        );
        assert!(parse_series_csv("a,1\n").is_err());
        assert!(parse_series_csv("a,1,2\na,x,2\n").is_err());
        assert!(parse_series_csv("a,1,y\n").is_err());
        assert_eq!(parse_series_csv("").unwrap(), vec![]);
    }

    #[test]
    fn interval_log_round_trips_and_totals_add_up() {
        let mut r = Recorder::default();
        for v in 1..=1000u64 {
            r.record(v * 1000);
        }
        r.rotate(Duration::from_secs(1));
        for v in 1..=1000u64 {
            r.record(v * 2000);
        }
        r.rotate(Duration::from_secs(2));
        assert_eq!(r.intervals.len(), 2);
        assert_eq!(r.total.len(), 2000);
        let mut log = vec![];
        r.write_log(&mut log, SystemTime::now()).unwrap();
        let text = String::from_utf8(log.clone()).unwrap();
        assert!(text.contains("#[StartTime:"), "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.starts_with('"'))
                .count(),
            2
        );
        let back = read_log(&log).unwrap();
        assert_eq!(back.len(), 2000);
        assert_eq!(back.max(), r.total.max());
        assert_eq!(back.value_at_quantile(0.5), r.total.value_at_quantile(0.5));
        assert!(read_log(b"#nothing\n").is_err());
    }

    #[test]
    fn percentiles_and_pacing() {
        let mut h = histogram();
        for v in 1..=10_000u64 {
            h.record(v * 100).unwrap();
        }
        let p = Percentiles::of(&h);
        assert!((p.p50_us - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99_us - 990.0).abs() < 1.0, "{p:?}");
        assert!(p.p9999_us <= p.max_us && p.p999_us <= p.p9999_us);
        assert_eq!(Percentiles::of(&histogram()).max_us, 0.0);
        // 1000 per second, 1 GHz clock: after 10 ms, 10 are due.
        assert_eq!(due(1000, 1_000_000_000, 0, 10_000_000, 0, 32), 10);
        assert_eq!(due(1000, 1_000_000_000, 0, 10_000_000, 8, 32), 2);
        assert_eq!(due(1000, 1_000_000_000, 0, 10_000_000, 12, 32), 0);
        assert_eq!(due(10_000_000, 1_000_000_000, 0, 10_000_000, 0, 32), 32);
        assert_eq!(due(0, 1, 0, 0, 1 << 40, 32), 32);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_sizes("64", 64, 1518).unwrap(), vec![64]);
        assert_eq!(parse_sizes("64, 128", 64, 1518).unwrap(), vec![64, 128]);
        let imix = parse_sizes("imix", 64, 1518).unwrap();
        assert_eq!(imix.len(), 12);
        assert_eq!(imix.iter().sum::<usize>(), 7 * 64 + 4 * 594 + 1518);
        assert!(parse_sizes("63", 64, 1518).is_err());
        assert!(parse_sizes("2000", 64, 1518).is_err());
        assert!(parse_sizes("x", 64, 1518).is_err());
    }

    #[test]
    fn the_plot_is_a_png() {
        if std::fs::metadata("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").is_err() {
            panic!("fonts-dejavu-core is needed (make deps installs it)");
        }
        let mut a = histogram();
        let mut b = histogram();
        for v in 1..=5000u64 {
            a.record(v * 10).unwrap();
            b.record(v * 20).unwrap();
        }
        let path = std::env::temp_dir().join(format!("dpsgen-plot-{}.png", std::process::id()));
        let p = path.to_str().unwrap();
        plot(p, "test", &[("a".into(), a), ("b".into(), b)]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 5000);
    }
}
