//! dpstack-bridge: a WAN between two ports, for a machine without netem.
//!
//!   dpstack-bridge [EAL options with two ports] -- [--delay-ms MS] [--loss PCT]
//!       [--ge-p PCT --ge-r PCT [--ge-loss-bad PCT] [--ge-loss-good PCT]]
//!       [--reorder PCT [--reorder-ms MS]] [--duplicate PCT]
//!       [--rate-mbit MBIT [--queue-bytes B] [--burst-bytes B]]
//!       [--limit FRAMES] [--seed N] [--stats-every S] [--seconds S]
//!       [--idle-sleep-us US]
//!
//! Every frame received on port 0 (A) is sent on port 1 (B) and every frame
//! from B on A, through the impairments of `perf::impair` for its direction:
//! loss (random and Gilbert-Elliott), duplication, a rate limit with a
//! tail-dropping queue, a fixed delay and reordering. Each impairment option
//! takes one value for both directions or two, `A_TO_B,B_TO_A`
//! (`--delay-ms 10,30`). One lcore (the main one: pin it with `-l CPU`) polls
//! both ports, and sleeps `--idle-sleep-us` when a poll finds nothing to do
//! (on a shared CPU a thread that never sleeps is preempted for whole time
//! slices, which shows as delay); the bridge never looks into the frames. Counters per direction
//! go to stderr every `--stats-every` seconds and at exit (SIGINT, SIGTERM
//! or after `--seconds`), as `name=value` pairs.

use clap::Parser;
use dpstack::buf::PacketBuf;
use dpstack::dpdk::{rdtsc, tsc_hz, Eal, Mbuf, Mempool, Port, PortConfig, RxQueue, TxQueue, BURST};
use perf::impair::{per_direction, Chance, Counters, Direction, GilbertElliott, Impairment};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "dpstack-bridge",
    about = "Impairment bridge between two DPDK ports: delay, loss, reordering, duplication, rate"
)]
struct Args {
    /// Fixed one-way delay in milliseconds (fractions allowed).
    #[arg(long, default_value = "0")]
    delay_ms: String,
    /// Random loss, percent.
    #[arg(long, default_value = "0")]
    loss: String,
    /// Gilbert-Elliott: chance of going from the good to the bad state, percent per frame.
    #[arg(long, default_value = "0")]
    ge_p: String,
    /// Gilbert-Elliott: chance of going from the bad to the good state, percent per frame.
    #[arg(long, default_value = "100")]
    ge_r: String,
    /// Gilbert-Elliott: loss in the bad state, percent.
    #[arg(long, default_value = "100")]
    ge_loss_bad: String,
    /// Gilbert-Elliott: loss in the good state, percent.
    #[arg(long, default_value = "0")]
    ge_loss_good: String,
    /// Frames given --reorder-ms more delay (so later ones overtake them), percent.
    #[arg(long, default_value = "0")]
    reorder: String,
    /// The extra delay of reordered frames, milliseconds.
    #[arg(long, default_value = "1")]
    reorder_ms: String,
    /// Frames sent twice, percent.
    #[arg(long, default_value = "0")]
    duplicate: String,
    /// Rate limit in Mbit/s, frames without CRC (0: none).
    #[arg(long, default_value = "0")]
    rate_mbit: String,
    /// The rate limit's queue in bytes; frames past it are tail-dropped.
    #[arg(long, default_value = "262144")]
    queue_bytes: String,
    /// Bytes an idle rate limit lets through at once.
    #[arg(long, default_value = "1514")]
    burst_bytes: String,
    /// Frames held per direction (delay lines); past it, dropped as no buffer.
    #[arg(long, default_value = "8192")]
    limit: String,
    /// The seed of the random choices (direction B to A uses seed + 1).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the counters every S seconds (0: only at exit).
    #[arg(long, default_value_t = 5.0)]
    stats_every: f64,
    /// When a poll of both ports finds nothing to do, sleep this long (never
    /// past the next frame's due time): a bridge that busy-polls a shared
    /// CPU is preempted for whole time slices. 0: poll without sleeping;
    /// at most 1 s.
    #[arg(long, default_value_t = 50)]
    idle_sleep_us: u64,
    /// Stop after S seconds (0: at SIGINT or SIGTERM).
    #[arg(long, default_value_t = 0.0)]
    seconds: f64,
}

/// One value for both directions, or `A_TO_B,B_TO_A`.
fn per_dir(name: &str, v: &str) -> Result<[f64; 2], String> {
    per_direction(v).map_err(|e| format!("--{name}: {e}"))
}

fn percent(name: &str, v: &str) -> Result<[Chance; 2], String> {
    let p = per_dir(name, v)?;
    if p.iter().any(|x| *x > 100.0) {
        return Err(format!("--{name}: a percentage is at most 100"));
    }
    Ok(p.map(Chance::percent))
}

/// The two directions' impairments from the command line.
fn impairments(a: &Args) -> Result<[Impairment; 2], String> {
    let ms = |name, v| per_dir(name, v).map(|d| d.map(|x| (x * 1e6) as u64));
    let int = |name, v| per_dir(name, v).map(|d| d.map(|x| x as u64));
    let delay = ms("delay-ms", &a.delay_ms)?;
    let reorder_extra = ms("reorder-ms", &a.reorder_ms)?;
    let loss = percent("loss", &a.loss)?;
    let ge_p = percent("ge-p", &a.ge_p)?;
    let ge_r = percent("ge-r", &a.ge_r)?;
    let ge_bad = percent("ge-loss-bad", &a.ge_loss_bad)?;
    let ge_good = percent("ge-loss-good", &a.ge_loss_good)?;
    let reorder = percent("reorder", &a.reorder)?;
    let duplicate = percent("duplicate", &a.duplicate)?;
    let rate = per_dir("rate-mbit", &a.rate_mbit)?.map(|x| (x * 1e6) as u64);
    let queue = int("queue-bytes", &a.queue_bytes)?;
    let burst = int("burst-bytes", &a.burst_bytes)?;
    let limit = int("limit", &a.limit)?;
    let mut out = [Impairment::default(); 2];
    for (d, imp) in out.iter_mut().enumerate() {
        if limit[d] == 0 || limit[d] > 1 << 20 {
            return Err("--limit: 1 to 1048576 frames".into());
        }
        // The chain is off unless it can enter the bad state (p > 0).
        let burst_loss = if ge_p[d] == Chance::Never {
            GilbertElliott::OFF
        } else {
            GilbertElliott {
                p: ge_p[d],
                r: ge_r[d],
                loss_good: ge_good[d],
                loss_bad: ge_bad[d],
            }
        };
        *imp = Impairment {
            delay_ns: delay[d],
            loss: loss[d],
            burst: burst_loss,
            reorder: reorder[d],
            reorder_extra_ns: reorder_extra[d],
            duplicate: duplicate[d],
            rate_bps: rate[d],
            queue_bytes: queue[d],
            burst_bytes: burst[d],
            limit: limit[d] as usize,
        };
    }
    Ok(out)
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("dpstack-bridge: {msg}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let all: Vec<String> = std::env::args().collect();
    let (eal_args, a) = match perf::eal_and_our_args::<Args>(all) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    match run(&a, eal_args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// One direction: where frames come from, what is done to them, where they go.
struct Path {
    name: &'static str,
    rx: RxQueue,
    tx: TxQueue,
    dir: Direction<Mbuf>,
    /// Frames released but not yet taken by the TX queue, retried first.
    out: arrayvec::ArrayVec<Mbuf, BURST>,
    last: Counters,
}

/// A copy of `m` in a fresh mbuf (None: the pool is empty).
fn copy(pool: &Mempool, m: &Mbuf) -> Option<Mbuf> {
    let mut c = pool.alloc_mbuf()?;
    let src = m.data();
    if !c.set_len(src.len()) {
        return None;
    }
    c.data_mut().copy_from_slice(src);
    Some(c)
}

/// Nanoseconds this thread has run and has waited for a CPU
/// (`/proc/thread-self/schedstat`); None where the kernel does not say.
fn schedstat() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut f = s.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some((f.next()??, f.next()??))
}

fn run(a: &Args, eal_args: Vec<String>) -> Result<(), String> {
    let imp = impairments(a)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("cannot handle signal {sig}: {e}"))?;
    }
    let (_eal, _) = Eal::init(&eal_args).map_err(|e| format!("EAL: {e}"))?;
    if Port::count() < 2 {
        return Err(format!(
            "{} port(s) found, two wanted: give two --vdev (A first, then B)",
            Port::count()
        ));
    }
    // Every frame held, both ways, plus the RX rings, the TX rings and the
    // bursts in between.
    let held: usize = imp.iter().map(|i| i.limit).sum();
    let n = (held + 4 * 1024 + 4 * BURST + 1024).min(u32::MAX as usize) as u32;
    let pool = Mempool::create("bridge", n, 256, 2048, dpstack::dpdk::socket_id())
        .map_err(|e| format!("mempool of {n} mbufs: {e}"))?;
    let cfg = PortConfig {
        checksum_offload: false,
        promiscuous: true,
        ..Default::default()
    };
    let pa = Port::start(0, &cfg, pool).map_err(|e| format!("port A: {e}"))?;
    let pb = Port::start(1, &cfg, pool).map_err(|e| format!("port B: {e}"))?;
    let hz = tsc_hz();
    eprintln!(
        "dpstack-bridge: A={} B={}, TSC {} MHz, seed {}",
        pa.caps().name,
        pb.caps().name,
        hz / 1_000_000,
        a.seed
    );
    for (name, i) in [("A->B", &imp[0]), ("B->A", &imp[1])] {
        eprintln!("dpstack-bridge: {name} {i:?}");
    }
    let mut paths = [
        Path {
            name: "A->B",
            rx: pa.rx_queue(0).map_err(|e| format!("port A: {e}"))?,
            tx: pb.tx_queue(0).map_err(|e| format!("port B: {e}"))?,
            dir: Direction::new(imp[0], hz, a.seed),
            out: arrayvec::ArrayVec::new(),
            last: Counters::default(),
        },
        Path {
            name: "B->A",
            rx: pb.rx_queue(0).map_err(|e| format!("port B: {e}"))?,
            tx: pa.tx_queue(0).map_err(|e| format!("port A: {e}"))?,
            dir: Direction::new(imp[1], hz, a.seed.wrapping_add(1)),
            out: arrayvec::ArrayVec::new(),
            last: Counters::default(),
        },
    ];

    let sched0 = schedstat();
    let t0 = rdtsc();
    let end = (a.seconds > 0.0).then(|| t0 + (a.seconds * hz as f64) as u64);
    let every = (a.stats_every > 0.0).then_some((a.stats_every * hz as f64) as u64);
    let mut next_stats = every.map(|e| t0 + e);
    let mut burst: arrayvec::ArrayVec<Mbuf, BURST> = arrayvec::ArrayVec::new();
    let idle_ticks = a.idle_sleep_us.min(1_000_000) * hz / 1_000_000;
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        for p in paths.iter_mut() {
            p.rx.rx_burst(&mut burst);
            if !burst.is_empty() {
                idle = false;
                let now = rdtsc();
                for m in burst.drain(..) {
                    let len = m.data().len();
                    p.dir.admit(now, len, m, |m| copy(&pool, m));
                }
            }
            // Release what is due into the room the TX burst has left.
            let now = rdtsc();
            while !p.out.is_full() {
                match p.dir.release(now, |m| m.data().len()) {
                    Some(m) => p.out.push(m),
                    None => break,
                }
            }
            idle &= p.out.is_empty();
            p.tx.tx_burst(&mut p.out);
        }
        let now = rdtsc();
        if idle && idle_ticks > 0 {
            // Nothing came in and nothing went out: sleep, but not past the
            // next frame's due time.
            let due = paths
                .iter()
                .filter_map(|p| p.dir.next_due())
                .min()
                .map_or(idle_ticks, |d| d.saturating_sub(now));
            let ticks = due.min(idle_ticks);
            if ticks > 0 {
                std::thread::sleep(std::time::Duration::from_nanos(ticks * 1_000_000_000 / hz));
            }
        }
        if end.is_some_and(|e| now >= e) {
            break;
        }
        if let (Some(at), Some(e)) = (next_stats, every) {
            if now >= at {
                let secs = (now - t0) as f64 / hz as f64;
                for p in paths.iter_mut() {
                    let c = p.dir.counters;
                    let d = c.minus(&p.last);
                    p.last = c;
                    eprintln!(
                        "dpstack-bridge: {secs:.1}s {} last {:.1}s: {} ({:.1} Mbit/s)",
                        p.name,
                        a.stats_every,
                        d.line(),
                        d.forwarded_bytes as f64 * 8.0 / a.stats_every / 1e6
                    );
                }
                next_stats = Some(at + e);
            }
        }
    }
    let secs = (rdtsc() - t0) as f64 / hz as f64;
    for p in paths.iter() {
        // Frames still held or waiting for TX are freed with the paths.
        println!(
            "dpstack-bridge: total {secs:.1}s {}: {} tx_pending={}",
            p.name,
            p.dir.counters.line(),
            p.out.len()
        );
    }
    // A bridge that waits for its CPU holds frames past their due time and
    // leaves the rate limit's link idle: say how much it waited.
    if let (Some((r0, w0)), Some((r1, w1))) = (sched0, schedstat()) {
        println!(
            "dpstack-bridge: total {secs:.1}s ran {:.3}s, waited for its CPU {:.3}s",
            r1.saturating_sub(r0) as f64 / 1e9,
            w1.saturating_sub(w0) as f64 / 1e9
        );
    }
    drop(paths);
    drop(pa);
    drop(pb);
    Ok(())
}
