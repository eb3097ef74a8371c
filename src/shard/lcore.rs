//! The loop one lcore runs. It owns one RX and one TX queue and its
//! [`Core`]; nothing in it is shared but the stop flag (one relaxed load per
//! iteration) and the slots it publishes its counters into.

use super::ctx::{Core, CoreLimits, IfaceConfig};
use super::steer::Steering;
use super::tx::{flush, TxBurst};
use crate::app::{AppFactory, CoreInfo};
use crate::arp::ArpShared;
use crate::dpdk::{rdtsc, tsc_hz, Mbuf, Mempool, RxQueue, TxQueue, BURST};
use crate::kni::{KniPolicy, KniShared};
use crate::stats::cycles::{LoopCycles, PublishedCycles, SideWork};
use crate::stats::flow_snapshot::FlowSnapshot;
use crate::stats::flows::{FlowId, FlowRecord};
use crate::stats::latency::{traffic_kind, LatencySet, TrafficKind};
use crate::stats::latency_slot::LatencySlot;
use crate::stats::{Counters, DropReason, PublishedCounters};
use crate::time::{Duration, Instant};
use arrayvec::ArrayVec;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What a core publishes for the printer: its counters (every 100 ms and
/// on exit) and its applications' counters, as text (every second and on exit).
#[derive(Debug, Default)]
pub struct Published {
    pub counters: PublishedCounters,
    pub apps: Mutex<Vec<String>>,
    /// Set when the core has left its loop and published its final counters.
    pub done: AtomicBool,
    /// RX-to-TX latency histograms, per traffic kind (handed over every
    /// second and on exit, without a copy on the lcore).
    pub latency: LatencySlot,
    /// The core's flow records, when it keeps them (every second and on exit).
    pub flows: Mutex<Vec<(FlowId, FlowRecord)>>,
    /// Where the loop's cycles go (with the counters).
    pub cycles: PublishedCycles,
    /// Its connections and sockets (every second and when asked).
    pub conns: super::ConnsSlot,
}

/// Everything a core needs, moved onto its lcore.
pub struct LcoreSetup {
    pub info: CoreInfo,
    pub iface: IfaceConfig,
    pub pool: Mempool,
    pub rx: RxQueue,
    pub tx: TxQueue,
    pub arp: Arc<ArpShared>,
    pub arp_writer: bool,
    pub limits: CoreLimits,
    pub apps: Vec<AppFactory>,
    pub stop: Arc<AtomicBool>,
    pub published: Arc<Published>,
    /// Set by the core once its applications are started.
    pub started: Arc<std::sync::atomic::AtomicUsize>,
    /// The TSC value that is time zero for every core.
    pub tsc_zero: u64,
    /// Flow steering between cores (more than one core).
    pub steering: Option<Arc<Steering<Mbuf>>>,
    /// The kernel exception path, when configured.
    pub kni: Option<KniSetup>,
    /// `--idle-sleep`: a loop that moved no frame for this long sleeps
    /// this long (zero: it always polls).
    pub idle_sleep: crate::time::Duration,
    /// The device's RSS, when it can be predicted.
    pub rss: Option<Arc<rss::QueuePredictor>>,
}

/// A core's part of the exception path.
pub struct KniSetup {
    pub shared: Arc<KniShared<Mbuf>>,
    pub policy: KniPolicy,
    /// Frames per second this core may send to the kernel.
    pub rate: u64,
    /// On the designated core: the kernel port (id, its RX and TX queue).
    pub port: Option<(u16, RxQueue, TxQueue)>,
}

/// The designated core's work for the kernel port: drain every core's
/// queue into it, and send what the kernel sent on our NIC TX queue.
/// Returns whether any frame moved.
fn serve_kernel(
    core: &mut Core<Mempool>,
    shared: &KniShared<Mbuf>,
    rx: &mut RxQueue,
    tx: &mut TxQueue,
    burst: &mut ArrayVec<Mbuf, BURST>,
) -> bool {
    for c in 0..shared.cores() {
        while !burst.is_full() {
            match shared.pop(c) {
                Some(m) => burst.push(m),
                None => break,
            }
        }
    }
    let to_kernel = !burst.is_empty();
    if to_kernel {
        let n = burst.len();
        let sent = tx.tx_burst(burst);
        let counters = &mut core.net.counters;
        counters.kni_kernel_rx += sent as u64;
        if sent < n {
            counters.kni_kernel_rx_dropped += (n - sent) as u64;
            counters.drops[DropReason::QueueFull as usize] += (n - sent) as u64;
            burst.clear();
        }
    }
    rx.rx_burst(burst);
    let from_kernel = !burst.is_empty();
    for m in burst.drain(..) {
        core.transmit_from_kernel(m);
    }
    to_kernel || from_kernel
}

/// Microseconds since `zero` from the TSC.
struct Clock {
    zero: u64,
    per_us: u64,
}

impl Clock {
    #[inline]
    fn now(&self, tsc: u64) -> Instant {
        Instant(tsc.saturating_sub(self.zero) / self.per_us)
    }
}

impl TxBurst<Mbuf> for TxQueue {
    #[inline]
    fn tx_burst(&mut self, pkts: &mut ArrayVec<Mbuf, BURST>) -> usize {
        TxQueue::tx_burst(self, pkts)
    }
}

/// Run one core until the stop flag is set. Returns the lcore's exit code.
pub fn run_lcore(s: LcoreSetup) -> i32 {
    let LcoreSetup {
        info,
        iface,
        pool,
        mut rx,
        mut tx,
        arp,
        arp_writer,
        limits,
        apps,
        stop,
        published,
        started,
        tsc_zero,
        steering,
        kni,
        rss,
        idle_sleep,
    } = s;
    let hz = tsc_hz();
    let clock = Clock {
        zero: tsc_zero,
        per_us: (hz / 1_000_000).max(1),
    };
    let timer_period = hz / 10_000; // 100 us
                                    // The stack's counters and the applications' together, so that a
                                    // printed block is one moment's view.
    let publish_period = hz / 10; // 100 ms
    let latency_period = hz;

    let mut core = Core::new(iface, info, pool, arp, arp_writer, limits, &apps);
    if let Some(p) = rss {
        core.set_rss(p);
    }
    let steered = steering.is_some();
    if let Some(s) = steering {
        core.set_steering(s);
    }
    let mut kernel_port = None;
    let mut kni_shared = None;
    if let Some(k) = kni {
        core.set_kni(k.shared.clone(), k.policy, k.rate);
        if k.port.is_some() {
            kni_shared = Some(k.shared);
            kernel_port = k.port;
        }
    }
    let mut kburst: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    let mut latency = LatencySet::default();
    let mut kinds = [0u64; TrafficKind::ALL.len()];
    let ns_per_tick = 1e9 / hz as f64;
    let mut next_link_check = 0u64;
    if let Err((name, e)) = core.start(clock.now(rdtsc())) {
        eprintln!(
            "dpstack: core {}: application {name} failed to start: {e}",
            info.index
        );
        stop.store(true, Ordering::Relaxed);
        published.done.store(true, Ordering::Release);
        started.fetch_add(1, Ordering::AcqRel);
        return 1;
    }
    started.fetch_add(1, Ordering::AcqRel);

    let mut burst: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    let mut conns = super::ConnsPublisher::default();
    let mut flow_snapshot = FlowSnapshot::default();
    let mut tsc = rdtsc();
    let mut next_timer = tsc;
    let mut next_publish = tsc;
    let mut next_latency = tsc;
    // An iteration over 100 us (a timer period) is a stall.
    let mut cycles = LoopCycles::new(tsc, hz, timer_period);
    // When the receive ring was last seen empty (a burst short of BURST):
    // the frames read since may have waited in it from then on.
    let mut rx_drained = tsc;
    // `--idle-sleep`: when the loop last moved a frame, and how long it
    // must have moved none before it sleeps (0: never).
    let idle_ticks = idle_sleep.micros() * clock.per_us;
    let mut last_busy = tsc;
    if idle_ticks != 0 {
        // The kernel's default timer slack (50 us) would stretch every
        // sleep by up to that: 1 us.
        crate::dpdk::set_timer_slack(1000);
    }
    while !stop.load(Ordering::Relaxed) {
        core.begin_burst(clock.now(tsc));
        if steered {
            core.poll_handoffs();
        }
        rx.rx_burst(&mut burst);
        let t_rx = if burst.is_empty() { 0 } else { rdtsc() };
        if t_rx != 0 {
            // The frames' time is now, not the end of the last iteration.
            core.set_now(clock.now(t_rx));
            core.set_rx_wait(Duration::from_micros(
                t_rx.saturating_sub(rx_drained) / clock.per_us,
            ));
        }
        if burst.len() < BURST {
            rx_drained = if t_rx != 0 { t_rx } else { tsc };
        }
        for m in burst.drain(..) {
            kinds[traffic_kind(crate::buf::PacketBuf::data(&m)) as usize] += 1;
            core.process_frame(m);
            if core.tx_queue().len() >= BURST {
                let (txv, counters) = split(&mut core);
                flush(&mut tx, txv, counters);
            }
        }
        if steered {
            core.flush_handoffs();
        }
        if let (Some((port_id, krx, ktx)), Some(shared)) =
            (kernel_port.as_mut(), kni_shared.as_ref())
        {
            let t0 = rdtsc();
            if serve_kernel(&mut core, shared, krx, ktx, &mut kburst) {
                cycles.side_work(SideWork::Kernel, t0, rdtsc());
            }
            if tsc >= next_link_check {
                let t0 = rdtsc();
                shared.set_link_up(crate::dpdk::link_up(*port_id));
                cycles.side_work(SideWork::LinkCheck, t0, rdtsc());
                next_link_check = tsc + publish_period;
            }
        }
        // The burst's replies go to the NIC before the clock is read: one
        // reading ends the iteration (its frames in and out counted
        // together) and the burst's latency.
        if !core.tx_queue().is_empty() {
            let (txv, counters) = split(&mut core);
            flush(&mut tx, txv, counters);
        }
        tsc = rdtsc();
        let c = &core.net.counters;
        if cycles.end_iteration(tsc, c.rx_packets + c.steer_handoffs_in, c.tx_packets) {
            last_busy = tsc;
        }
        if tsc >= next_timer {
            let now = clock.now(tsc);
            core.poll_timers(now);
            // The connections view: a step of a walk, if one is due.
            conns.poll(&core, now, &published.conns);
            if let Some(log) = core.net.flow_log() {
                flow_snapshot.step(log, &published.flows);
            }
            // What the timers sent (retransmissions, ARP, probes) goes now.
            if !core.tx_queue().is_empty() {
                let (txv, counters) = split(&mut core);
                flush(&mut tx, txv, counters);
            }
            cycles.side_work(SideWork::Timers, tsc, rdtsc());
            next_timer = tsc + timer_period;
        }
        if t_rx != 0 {
            // From the burst's arrival to its replies handed to the NIC.
            let ns = (tsc.saturating_sub(t_rx) as f64 * ns_per_tick) as u64;
            for (k, n) in kinds.iter_mut().enumerate() {
                if *n > 0 {
                    latency.record(TrafficKind::ALL[k], ns, *n);
                    *n = 0;
                }
            }
        }
        if tsc >= next_publish {
            let t0 = rdtsc();
            published.counters.publish(&core.net.counters);
            published.cycles.publish(cycles.stats());
            publish_apps(&core, &published);
            cycles.side_work(SideWork::Publish, t0, rdtsc());
            next_publish = tsc + publish_period;
        }
        if tsc >= next_latency {
            // What was recorded since the last hand-over, swapped for the
            // slot's empty spare: readers fold it in on their own thread.
            let t0 = rdtsc();
            published.latency.hand_over(&mut latency);
            // Flow records: copied a slice per timer tick from now on.
            flow_snapshot.start();
            cycles.side_work(SideWork::Snapshot, t0, rdtsc());
            next_latency = tsc + latency_period;
        }
        if idle_ticks != 0 && tsc.saturating_sub(last_busy) >= idle_ticks {
            // Idle for a sleep's length: give the CPU away for one. What
            // arrives meanwhile waits in the ring; the timers run late by
            // up to the sleep.
            std::thread::sleep(std::time::Duration::from_micros(idle_sleep.micros()));
            tsc = rdtsc();
            cycles.slept(tsc);
        }
    }
    let (txv, counters) = split(&mut core);
    flush(&mut tx, txv, counters);
    core.clear();
    published.counters.publish(&core.net.counters);
    published.cycles.publish(cycles.stats());
    publish_apps(&core, &published);
    published.latency.hand_over_last(&latency);
    if let (Some(log), Ok(mut slot)) = (core.net.flow_log(), published.flows.lock()) {
        log.snapshot_into(&mut slot);
    }
    drop(core);
    published.done.store(true, Ordering::Release);
    0
}

fn split(core: &mut Core<Mempool>) -> (&mut Vec<Mbuf>, &mut Counters) {
    core.split_tx()
}

fn publish_apps(core: &Core<Mempool>, published: &Published) {
    let lines = core
        .app_counters()
        .into_iter()
        .map(|(name, cs)| {
            let mut s = format!("app={name}");
            for (k, v) in cs {
                s.push_str(&format!(" {k}={v}"));
            }
            s
        })
        .collect();
    if let Ok(mut slot) = published.apps.try_lock() {
        *slot = lines;
    }
}
