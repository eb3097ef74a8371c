//! The `dpstack` program as a library: `dpstack [EAL options] -- [dpstack
//! options]`. The binary is `main_with_apps(Vec::new())`; a program with its
//! own applications calls [`main_with_apps`] with their factories, and they
//! run on every core beside the built-ins chosen with `--app`.
//!
//! Parses our options first (so a bad one fails before EAL starts), brings up
//! EAL, the mempool and the port with one RX and one TX queue per lcore,
//! launches one shard per lcore, prints counters, and on SIGINT or SIGTERM
//! stops every lcore, stops and closes the port, prints the final counters
//! and exits 0.

use crate::app::{AppFactory, CoreInfo};
use crate::arp::{ArpConfig, ArpShared};
use crate::config::RetaSpec;
use crate::config::{Cli, Config};
use crate::dpdk::{self, Eal, Mempool, Port, PortConfig};
use crate::kni::{parse_port_range, ranges_overlap, KniMode, KniShared};
use crate::shard::{run_lcore, CoreLimits, IfaceConfig, KniSetup, LcoreSetup, Published, Steering};

/// Frames one core can have waiting for another.
const HANDOFF_QUEUE: usize = 1024;
use crate::stats::cycles::LoopStats;
use crate::stats::flows::FlowLine;
use crate::stats::{metrics, Counters};
use crate::time::Duration;
use clap::Parser;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("dpstack: {msg}");
    ExitCode::from(1)
}

/// Split argv at the first `--`: EAL's part (with argv[0]) and ours
/// (argv[0] and what follows the `--`). dpstack and perf's DPDK tools
/// take their command lines this way.
pub fn split_args(args: Vec<String>) -> (Vec<String>, Vec<String>) {
    let prog = args.first().cloned().unwrap_or_else(|| "dpstack".into());
    match args.iter().position(|a| a == "--") {
        Some(i) => {
            let eal = args[..i].to_vec();
            let mut ours = vec![prog];
            ours.extend_from_slice(&args[i + 1..]);
            (eal, ours)
        }
        None => (args, vec![prog]),
    }
}

fn print_block(
    tag: &str,
    published: &[Arc<Published>],
    pool: Option<&Mempool>,
    port: Option<&Port>,
) {
    if published.is_empty() {
        if let Some(pool) = pool {
            print_mempool(tag, pool);
        }
        return;
    }
    let all: Vec<Counters> = published.iter().map(|p| p.counters.read()).collect();
    for (i, c) in all.iter().enumerate() {
        println!("{tag} core={i} {}", c.format_line());
    }
    println!(
        "{tag} core=total {}",
        Counters::sum(all.iter()).format_line()
    );
    for (i, p) in published.iter().enumerate() {
        if let Ok(apps) = p.apps.lock() {
            for line in apps.iter() {
                println!("{tag} core={i} {line}");
            }
        }
    }
    let cycles: Vec<LoopStats> = published.iter().map(|p| p.cycles.read()).collect();
    for (i, c) in cycles.iter().enumerate() {
        println!("{tag} cycles core={i} {}", c.line());
        println!("{tag} loop core={i} {}", c.histogram_line());
    }
    println!("{tag} cycles core=total {}", LoopStats::sum(&cycles).line());
    for (i, p) in published.iter().enumerate() {
        for line in p.latency.read(|l| l.lines()).unwrap_or_default() {
            println!("{tag} latency core={i} {line}");
        }
    }
    if let Some(port) = port {
        if let Ok(s) = port.stats() {
            // Whether imissed can be believed: 0 from a driver that never
            // counts misses says nothing.
            let reported = match dpdk::ring_drops::imissed_reported(&port.caps().driver) {
                Some(r) => format!(" imissed_reported={r}"),
                None => String::new(),
            };
            println!(
                "{tag} port driver={} ipackets={} opackets={} ierrors={} oerrors={} imissed={}{reported} rx_nombuf={}",
                port.caps().driver, s.ipackets, s.opackets, s.ierrors, s.oerrors, s.imissed, s.rx_nombuf
            );
        }
    }
    if let Some(pool) = pool {
        print_mempool(tag, pool);
    }
}

/// What every core last published, for one Prometheus scrape. Reads the
/// counters' atomics and holds each core's application and latency slot
/// only while it folds them: the cores `try_lock` those slots and skip a
/// publication rather than wait.
fn metrics_snapshot(
    published: &[Arc<Published>],
    port: &PortView,
    ring: &Mutex<Option<dpdk::ring_drops::RingDrops>>,
) -> metrics::Snapshot {
    let cores = published
        .iter()
        .map(|p| metrics::CoreSnapshot {
            counters: p.counters.read(),
            apps: p.apps.lock().map_or_else(
                |_| Vec::new(),
                |lines| {
                    lines
                        .iter()
                        .filter_map(|l| metrics::parse_app_line(l))
                        .collect()
                },
            ),
            latency: p
                .latency
                .read(metrics::CoreSnapshot::latency_of)
                .unwrap_or_else(|| metrics::CoreSnapshot::latency_of(&Default::default())),
            cycles: p.cycles.read(),
        })
        .collect();
    let port = port.reader.read().map(|s| metrics::PortFigures {
        rx_packets: s.ipackets,
        tx_packets: s.opackets,
        rx_errors: s.ierrors,
        tx_errors: s.oerrors,
        rx_missed: s.imissed,
        rx_nombuf: s.rx_nombuf,
        missed_reported: dpdk::ring_drops::imissed_reported(&port.driver),
        ring: poll_ring_drops(ring),
    });
    metrics::Snapshot { cores, port }
}

/// A thread that is not an lcore, named so that `top -H` and /proc tell it
/// from the lcores.
fn spawn_side<F: FnOnce() + Send + 'static>(name: &str, f: F) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .unwrap_or_else(|e| panic!("cannot start thread {name}: {e}"))
}

/// The port as the metrics thread sees it.
struct PortView {
    reader: dpdk::PortStatsReader,
    driver: String,
}

/// Every core's flow records, one line a flow, sorted (`--flow-records`).
fn print_flows(tag: &str, published: &[Arc<Published>]) {
    for (i, p) in published.iter().enumerate() {
        if let Ok(mut flows) = p.flows.lock() {
            flows.sort_unstable_by_key(|(id, _)| *id);
            for (id, r) in flows.iter() {
                println!("{tag} flow core={i} {}", FlowLine(id, r));
            }
        }
    }
}

/// The kernel's af_packet ring drops, when the port is net_af_packet and
/// its sockets were found (src/dpdk/ring_drops.rs).
fn print_ring_drops(tag: &str, ring: &Mutex<Option<dpdk::ring_drops::RingDrops>>) {
    let sockets = ring
        .lock()
        .ok()
        .and_then(|g| g.as_ref().map(|r| r.sockets()));
    if let (Some((drops, packets)), Some(sockets)) = (poll_ring_drops(ring), sockets) {
        println!("{tag} port ring_drops={drops} ring_packets={packets} ring_sockets={sockets}");
    }
}

/// `(drops, packets)` of the af_packet rings since start, brought up to
/// date (every reader polls: the kernel resets its counts on each read, the
/// totals live here).
fn poll_ring_drops(ring: &Mutex<Option<dpdk::ring_drops::RingDrops>>) -> Option<(u64, u64)> {
    let mut guard = ring.lock().ok()?;
    let r = guard.as_mut()?;
    r.poll();
    Some((r.drops, r.packets))
}

fn print_mempool(tag: &str, pool: &Mempool) {
    println!(
        "{tag} mempool in_use={} avail={}",
        pool.in_use_count(),
        pool.avail_count()
    );
}

/// Whether the device hashes TCP and UDP over IPv4 with their ports, from
/// the hash types it reports (`rss_hf`, tested against the
/// `RTE_ETH_RSS_NONFRAG_IPV4_TCP` and `_UDP` bits); unreported: both.
fn l4_port_hashing(rss_hf: Option<u64>, tcp_bit: u64, udp_bit: u64) -> (bool, bool) {
    match rss_hf {
        Some(hf) => (hf & tcp_bit != 0, hf & udp_bit != 0),
        None => (true, true),
    }
}

/// Run dpstack with the process's command line; `apps` run on every core
/// beside those chosen with `--app`.
pub fn main_with_apps(apps: Vec<AppFactory>) -> ExitCode {
    main_with_args(std::env::args().collect(), apps)
}

/// As [`main_with_apps`], with the command line given (program name first,
/// EAL options, `--`, dpstack's options): for a binary that takes options
/// of its own, such as perf's dpstack-gen.
pub fn main_with_args(args: Vec<String>, apps: Vec<AppFactory>) -> ExitCode {
    let (eal_args, our_args) = split_args(args);
    let cli = match Cli::try_parse_from(&our_args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            return fail(format!(
                "{} (see dpstack -- --help)",
                first.trim_start_matches("error: ")
            ));
        }
    };
    let cfg = match Config::from_cli(&cli) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("DPSTACK_LOG"))
        .with_writer(std::io::stderr)
        .init();

    // Stop on SIGINT/SIGTERM from here on; EAL must not install its own.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            return fail(format!("cannot handle signal {sig}: {e}"));
        }
    }

    let (eal, _consumed) = match Eal::init(&eal_args) {
        Ok(e) => e,
        Err(e) => return fail(format!("EAL initialisation failed: {e}")),
    };
    // Buffers as long as the frames the device hands over (af_packet's
    // framesz), so that one holding a datagram the kernel reassembled fits.
    let rx_frame = dpdk::af_packet_max_frame(&eal_args).unwrap_or(0);
    match run(&eal, &cfg, apps, stop, rx_frame) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn run(
    eal: &Eal,
    cfg: &Config,
    apps: Vec<AppFactory>,
    stop: Arc<AtomicBool>,
    rx_frame: usize,
) -> Result<(), String> {
    let lcores = eal.lcores();
    let n = lcores.len();
    // Bound before anything starts, so that a taken port fails the start.
    let metrics_listener = cfg
        .metrics
        .map(|addr| {
            std::net::TcpListener::bind(addr)
                .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))
        })
        .transpose()?;
    // Capture by dpdk-dumpcap: costs nothing until a capture starts.
    let _pdump = match dpdk::Pdump::init() {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("dpstack: capture: {e} (dpdk-dumpcap cannot capture this run)");
            None
        }
    };
    // Ethernet header, one VLAN tag and the IP MTU fit one segment, and so
    // does the longest frame the device hands over.
    let max_frame = (cfg.mtu as usize + 18).max(rx_frame);
    let pool = Mempool::create(
        "dpstack_mbufs",
        cfg.mbufs,
        256,
        max_frame,
        dpdk::socket_id(),
    )
    .map_err(|e| format!("cannot create the mbuf pool ({} mbufs): {e}", cfg.mbufs))?;
    let port_cfg = PortConfig {
        rx_queues: n as u16,
        tx_queues: n as u16,
        checksum_offload: cfg.checksum_offload,
        mtu: cfg.mtu,
        ..Default::default()
    };
    let mut port = Port::start(cfg.port, &port_cfg, pool)
        .map_err(|e| format!("port {} failed to start: {e}", cfg.port))?;
    let caps = port.caps().clone();
    // What the kernel dropped from af_packet's rings: the PMD does not say.
    let ring_drops = Arc::new(Mutex::new(if caps.driver == "net_af_packet" {
        dpdk::ring_drops::RingDrops::find(caps.if_index)
            .map_err(|e| eprintln!("dpstack: af_packet ring drops unreadable: {e}"))
            .ok()
            .flatten()
    } else {
        None
    }));
    let rss = match (&caps.rss_key, &caps.reta) {
        _ if !caps.rss => "off".to_string(),
        (Some(k), Some(r)) => format!(
            "on (key {} B, reta {} {}read back)",
            k.len(),
            r.len(),
            if caps.reta_programmed {
                "programmed and "
            } else {
                ""
            }
        ),
        (None, Some(r)) => format!("on (reta {} read back, key not reported)", r.len()),
        _ => "on (key and reta not reported)".to_string(),
    };
    println!(
        "dpstack: {} port {} ({}, {}) mac {} lcores {:?} queues {} rss {} tx-cksum ipv4={} udp={} rx-cksum {}",
        dpdk::version(),
        port.id(),
        caps.name,
        caps.driver,
        port.mac(),
        lcores,
        n,
        rss,
        caps.tx_ipv4_cksum,
        caps.tx_udp_cksum,
        if caps.rx_cksum != 0 { "on" } else { "off" },
    );

    // The kernel exception path: a second port that is a Linux interface.
    let kni_mode = &cfg.kni.mode;
    let mut kernel_port = None;
    if let Some(ifname) = kni_mode.ifname() {
        if cfg.kni.core >= n {
            return Err(format!(
                "--kni-core {} is not one of the {n} cores",
                cfg.kni.core
            ));
        }
        // Replies to the kernel's own connections must reach the kernel:
        // its ephemeral ports and ours must not overlap.
        let path = "/proc/sys/net/ipv4/ip_local_port_range";
        let kernel = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| parse_port_range(&s))
            .ok_or_else(|| format!("cannot read {path}"))?;
        if ranges_overlap(kernel, cfg.tcp.ephemeral) {
            return Err(format!(
                "the kernel's ephemeral ports {}-{} overlap dpstack's {}-{} (--tcp-ports); \
                 set {path} or --tcp-ports so that they do not",
                kernel.0, kernel.1, cfg.tcp.ephemeral.0, cfg.tcp.ephemeral.1
            ));
        }
        let (name, args) = kni_mode
            .vdev(&port.mac().to_string(), 1024)
            .expect("a mode with an interface");
        let id = dpdk::hotplug_vdev(&name, &args)
            .map_err(|e| format!("cannot create the kernel interface {ifname}: {e}"))?;
        let kcfg = PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            checksum_offload: false,
            promiscuous: true,
            mtu: cfg.mtu,
            ..Default::default()
        };
        let kport = Port::start(id, &kcfg, pool)
            .map_err(|e| format!("kernel interface {ifname} failed to start: {e}"))?;
        println!(
            "dpstack: kernel interface {ifname} ({}, port {id}) served by core {}, {} frames/s, queues {}",
            match kni_mode {
                KniMode::VirtioUser(_) => "virtio-user",
                _ => "tap",
            },
            cfg.kni.core,
            cfg.kni.rate,
            cfg.kni.queue
        );
        kernel_port = Some(kport);
    }
    let kni_shared = kernel_port
        .as_ref()
        .map(|_| Arc::new(KniShared::<dpdk::Mbuf>::new(n, cfg.kni.queue)));

    let iface = IfaceConfig {
        mac: port.mac(),
        ip: cfg.ip,
        gateway: cfg.gateway,
        mtu: cfg.mtu as usize,
        tx_ipv4_cksum: caps.tx_ipv4_cksum,
        tx_udp_cksum: caps.tx_udp_cksum,
        tx_tcp_cksum: caps.tx_tcp_cksum,
    };
    let arp = ArpShared::new(ArpConfig {
        timeout: Duration::from_secs(cfg.arp_timeout),
        refresh: Duration::from_secs((cfg.arp_timeout / 10).max(1)),
        ..Default::default()
    });
    let mut factories: Vec<AppFactory> = cfg.apps.iter().map(|a| a.factory()).collect();
    factories.extend(apps);
    let published: Vec<Arc<Published>> = (0..n).map(|_| Arc::new(Published::default())).collect();
    let started = Arc::new(AtomicUsize::new(0));
    let tsc_zero = dpdk::rdtsc();
    // One ISN secret for every core (RFC 6528).
    let limits = CoreLimits {
        tcp: cfg.tcp,
        flow_records: cfg.flow_records,
        tcp_memory: cfg.tcp_memory,
        tcp_rtt_cache: cfg.tcp_rtt_cache,
        ..CoreLimits::default()
    };
    // rte_flow rules, where the device takes them.
    let mut flows = Vec::new();
    for rule in &cfg.flows {
        if usize::from(rule.queue) >= n {
            return Err(format!(
                "--flow {:?}: queue {} does not exist ({n} queues)",
                rule, rule.queue
            ));
        }
        match dpdk::flow::install(port.id(), rule, cfg.ip.address()) {
            Ok(f) => {
                println!(
                    "dpstack: rte_flow: {:?} port {} -> queue {}",
                    rule.l4, rule.dst_port, rule.queue
                );
                flows.push(f);
            }
            Err(e) => {
                println!(
                    "dpstack: rte_flow: port {} does not take the rules ({e}); RSS and the handoff between cores steer instead",
                    port.id()
                );
                break;
            }
        }
    }

    // RSS prediction for active opens: the device's key and table where it
    // reports them, what the user stated where it does not.
    let key = caps.rss_key.clone().or_else(|| cfg.rss_key.clone());
    let reta = caps.reta.clone().or_else(|| match &cfg.reta {
        Some(RetaSpec::Uniform(size)) => Some((0..*size).map(|i| (i % n) as u16).collect()),
        Some(RetaSpec::Entries(e)) => Some(e.clone()),
        None => None,
    });
    let predictor = match (key, reta) {
        (Some(k), Some(r)) if n > 1 => {
            if let Some(bad) = r.iter().find(|&&q| usize::from(q) >= n) {
                return Err(format!(
                    "the redirection table names queue {bad}, but there are {n} queues"
                ));
            }
            let key = rss::ToeplitzKey::new(&k).map_err(|e| format!("RSS key: {e}"))?;
            let table = rss::RetaTable::from_entries(r).map_err(|e| format!("RETA: {e}"))?;
            // Which transports the device hashes with their ports, as it
            // reports; a device that does not report is taken to hash the
            // 4-tuple (what --rss-key and --reta state).
            let (tcp, udp) = l4_port_hashing(
                caps.rss_hf,
                crate::ffi::flags::rte_eth_rss_nonfrag_ipv4_tcp(),
                crate::ffi::flags::rte_eth_rss_nonfrag_ipv4_udp(),
            );
            Some(Arc::new(
                rss::QueuePredictor::new(&key, table).with_ports(tcp, udp),
            ))
        }
        _ => None,
    };
    if n > 1 {
        let hashed = match &predictor {
            Some(p) => format!(
                "; ports hashed: tcp {}, udp {}",
                if p.hashes_ports(rss::L4::Tcp) {
                    "yes"
                } else {
                    "no"
                },
                if p.hashes_ports(rss::L4::Udp) {
                    "yes"
                } else {
                    "no"
                }
            ),
            None => String::new(),
        };
        println!(
            "dpstack: rss prediction {} ({}{hashed})",
            if predictor.is_some() { "on" } else { "off" },
            if predictor.is_some() {
                "connections dpstack opens take ports whose replies reach their core"
            } else {
                "key or table unknown: segments reaching the wrong core are handed over"
            }
        );
    }
    // Several cores: TCP segments that reach a core not owning their
    // connection are handed over (no device here lets us predict RSS yet).
    let steering = (n > 1).then(|| {
        Arc::new(Steering::<dpdk::Mbuf>::new(
            n,
            (cfg.tcp.max_connections + cfg.tcp.syn_cache) * n,
            HANDOFF_QUEUE,
        ))
    });
    // Each core's queue pair, taken from the port once, in core order.
    let mut queues = (0..n as u16)
        .map(|q| Ok((port.rx_queue(q)?, port.tx_queue(q)?)))
        .collect::<dpdk::Result<Vec<_>>>()
        .map_err(|e| e.to_string())?
        .into_iter();
    let mut kernel_queues = kernel_port
        .as_ref()
        .map(|k| Ok::<_, dpdk::DpdkError>((k.id(), k.rx_queue(0)?, k.tx_queue(0)?)))
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut setup = |i: usize, (rx, tx): (dpdk::RxQueue, dpdk::TxQueue)| LcoreSetup {
        info: CoreInfo {
            index: i,
            count: n,
            lcore: lcores[i],
        },
        iface,
        pool,
        rx,
        tx,
        arp: arp.clone(),
        arp_writer: i == 0,
        limits,
        apps: factories.clone(),
        stop: stop.clone(),
        published: published[i].clone(),
        started: started.clone(),
        tsc_zero,
        steering: steering.clone(),
        kni: kni_shared.as_ref().map(|shared| KniSetup {
            shared: shared.clone(),
            policy: cfg.kni.policy,
            rate: (cfg.kni.rate / n as u64).max(1),
            port: if i == cfg.kni.core {
                kernel_queues.take()
            } else {
                None
            },
        }),
        rss: predictor.clone(),
        idle_sleep: cfg.idle_sleep,
    };
    {
        let published = published.clone();
        let ring_drops = ring_drops.clone();
        let provider: dpdk::StatsProvider = Box::new(move |param: &str| {
            let all: Vec<Counters> = published.iter().map(|p| p.counters.read()).collect();
            let (c, lat, cycles) = if param.is_empty() {
                let mut lat = crate::stats::latency::LatencySet::default();
                for p in published.iter() {
                    p.latency.read(|l| lat.merge(l));
                }
                let cycles: Vec<LoopStats> = published.iter().map(|p| p.cycles.read()).collect();
                (Counters::sum(all.iter()), lat, LoopStats::sum(&cycles))
            } else {
                let i = param.parse::<usize>().ok()?;
                let p = published.get(i)?;
                let lat = p.latency.read(|l| l.clone())?;
                (all.get(i)?.clone(), lat, p.cycles.read())
            };
            let mut pairs = c.pairs();
            pairs.extend(lat.pairs());
            pairs.extend(cycles.pairs());
            if param.is_empty() {
                // The port's, not a core's: with the whole stack only.
                if let Some((drops, packets)) = poll_ring_drops(&ring_drops) {
                    pairs.push(("port_ring_drops".into(), drops));
                    pairs.push(("port_ring_packets".into(), packets));
                }
            }
            Some(pairs)
        });
        if let Err(e) = dpdk::register_stats(provider) {
            eprintln!("dpstack: telemetry: {e} (continuing without /dpstack/stats)");
        }
    }
    // The connections view: pages of each core's published snapshot.
    for (name, udp, help) in [
        ("/dpstack/tcp/conns", false, "TCP listeners and connections, a page at a time. Parameters: [*|core[,cursor]] or *,core,cursor (the reply's next)"),
        ("/dpstack/udp/sockets", true, "UDP sockets, a page at a time. Parameters: [*|core[,cursor]] or *,core,cursor (the reply's next)"),
    ] {
        let published = published.clone();
        let provider: dpdk::ReplyProvider = Box::new(move |param: &str| {
            let slots: Vec<&crate::shard::ConnsSlot> = published.iter().map(|p| &p.conns).collect();
            crate::shard::listing_page(&slots, param, udp)
        });
        if let Err(e) = dpdk::register_reply(name, help, provider) {
            eprintln!("dpstack: telemetry: {e} (continuing without {name})");
        }
    }
    let core0_queues = queues.next().ok_or("the port has no queue")?;
    for ((i, &lcore), q) in lcores.iter().enumerate().skip(1).zip(queues) {
        let s = setup(i, q);
        if let Err(e) = eal.launch(lcore, Box::new(move || run_lcore(s))) {
            stop.store(true, Ordering::Relaxed);
            eal.wait_all();
            return Err(format!("cannot launch lcore {lcore}: {e}"));
        }
    }

    // Threads that are not lcores run off the lcores' CPUs where there is
    // room (spawned from the main lcore, they would share its CPU).
    let control_cpus = eal.control_cpus();

    // The printer: a plain thread that sleeps; lcores never print.
    let printer = {
        let control_cpus = control_cpus.clone();
        let stop = stop.clone();
        let published = published.clone();
        let started = started.clone();
        let interval = cfg.stats_interval;
        let ip = cfg.ip;
        let ring_drops = ring_drops.clone();
        spawn_side("dps-printer", move || {
            let pinned = dpdk::pin_current_thread(&control_cpus);
            while started.load(Ordering::Acquire) < n && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            if !stop.load(Ordering::Relaxed) {
                println!("dpstack: ready ip {ip} on {n} lcores");
                let cpus = dpdk::current_thread_cpus();
                println!(
                    "dpstack: side threads on CPUs {cpus:?}{}",
                    if pinned {
                        ""
                    } else {
                        " (could not move them off the lcores)"
                    }
                );
            }
            let mut last = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(20));
                if interval > 0 && last.elapsed().as_secs() >= interval {
                    last = std::time::Instant::now();
                    print_block("stats", &published, Some(&pool), None);
                    print_ring_drops("stats", &ring_drops);
                }
            }
        })
    };

    // Prometheus metrics: a plain thread on the kernel's network.
    let metrics_server = metrics_listener.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            println!("dpstack: metrics on http://{addr}/metrics");
        }
        let stop = stop.clone();
        let published = published.clone();
        let ring_drops = ring_drops.clone();
        let view = PortView {
            reader: port.stats_reader(),
            driver: port.caps().driver.clone(),
        };
        let control_cpus = control_cpus.clone();
        spawn_side("dps-metrics", move || {
            dpdk::pin_current_thread(&control_cpus);
            metrics::serve(listener, &stop, &|| {
                metrics_snapshot(&published, &view, &ring_drops).encode()
            })
        })
    });

    // The main lcore runs core 0.
    let code0 = run_lcore(setup(0, core0_queues));
    stop.store(true, Ordering::Relaxed);
    let failed: Vec<u32> = lcores[1..]
        .iter()
        .copied()
        .filter(|&l| eal.wait_lcore(l) != 0)
        .collect();
    let _ = printer.join();
    if let Some(server) = metrics_server {
        let _ = server.join();
    }
    // Frames still in handoff or kernel queues go back to the pool.
    drop(steering);
    drop(kni_shared);
    println!("dpstack: stopping");
    print_block("final", &published, None, Some(&port));
    print_ring_drops("final", &ring_drops);
    print_flows("final", &published);
    drop(flows);
    port.stop();
    drop(port);
    drop(kernel_port);
    print_block("final", &[], Some(&pool), None);
    if code0 != 0 {
        return Err(format!("lcore {} failed", lcores[0]));
    }
    if !failed.is_empty() {
        return Err(format!("lcores {failed:?} failed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_types_say_which_ports_count() {
        let (tcp, udp) = (1 << 4, 1 << 5);
        assert_eq!(l4_port_hashing(None, tcp, udp), (true, true));
        assert_eq!(l4_port_hashing(Some(0), tcp, udp), (false, false));
        assert_eq!(l4_port_hashing(Some(tcp | 1), tcp, udp), (true, false));
        assert_eq!(l4_port_hashing(Some(tcp | udp), tcp, udp), (true, true));
    }
}
