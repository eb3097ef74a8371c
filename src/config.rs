//! Configuration: the dpstack part of the command line (after `--`) and an
//! optional TOML file. The command line wins over the file.

use crate::app::AppSpec;
use crate::kni::{KniConfig, KniMode};
use crate::tcp::buffer::BUFFER_SIZES;
use crate::tcp::{Keepalive, TcpConfig};
use crate::time::Duration;
use crate::wire::Ipv4Cidr;
use clap::Parser;
use serde::Deserialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// dpstack options, given after EAL's: `dpstack [EAL options] -- [these]`.
#[derive(Parser, Debug, Default, Clone)]
#[command(
    name = "dpstack",
    about = "A user-space TCP/IP stack on DPDK, run to completion per core",
    override_usage = "dpstack [EAL options] -- [OPTIONS]"
)]
pub struct Cli {
    /// Our address and prefix, e.g. 198.18.0.1/24.
    #[arg(long, value_name = "ADDR/PREFIX")]
    pub ip: Option<String>,
    /// The default gateway for off-link destinations.
    #[arg(long, value_name = "ADDR")]
    pub gateway: Option<String>,
    /// A TOML file with any of these options (the command line wins).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print counters every SECS seconds (0: only on exit).
    #[arg(long, value_name = "SECS")]
    pub stats_interval: Option<u64>,
    /// A built-in application: udp-echo:PORT or udp-sink:PORT. Repeatable.
    #[arg(long = "app", value_name = "NAME:PORT")]
    pub apps: Vec<String>,
    /// The DPDK port to use.
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// IP MTU of the link.
    #[arg(long, value_name = "BYTES")]
    pub mtu: Option<u16>,
    /// Mbufs in the pool.
    #[arg(long, value_name = "N")]
    pub mbufs: Option<u32>,
    /// Seconds an ARP entry lives without being confirmed.
    #[arg(long, value_name = "SECS")]
    pub arp_timeout: Option<u64>,
    /// Do not use the NIC's checksum offloads even where it has them.
    #[arg(long)]
    pub no_offload: bool,
    /// TCP connections per core, TIME_WAIT included.
    #[arg(long, value_name = "N")]
    pub tcp_max_conns: Option<usize>,
    /// TCP send and receive buffer, each, per connection, fixed (no
    /// autotuning; in place of --tcp-rmem and --tcp-wmem).
    #[arg(long, value_name = "BYTES")]
    pub tcp_buffer: Option<usize>,
    /// TCP receive buffer per connection: the initial size, and the most
    /// autotuning grows it to (131072,6291456).
    #[arg(long, value_name = "INITIAL,MAX")]
    pub tcp_rmem: Option<String>,
    /// TCP send buffer per connection: the initial size, and the most
    /// autotuning grows it to (131072,4194304).
    #[arg(long, value_name = "INITIAL,MAX")]
    pub tcp_wmem: Option<String>,
    /// TCP buffer memory per core (all connections' send and receive
    /// data together); past it sends are short and data is not stored.
    #[arg(long, value_name = "BYTES")]
    pub tcp_memory: Option<usize>,
    /// TIME_WAIT (2*MSL), in milliseconds.
    #[arg(long, value_name = "MS")]
    pub tcp_time_wait_ms: Option<u64>,
    /// Delayed ACK timeout in milliseconds (0: acknowledge every segment).
    #[arg(long, value_name = "MS")]
    pub tcp_delayed_ack_ms: Option<u64>,
    /// Turn Nagle's algorithm off.
    #[arg(long)]
    pub tcp_nodelay: bool,
    /// Keepalive: idle seconds before probing (0: off).
    #[arg(long, value_name = "SECS")]
    pub tcp_keepalive: Option<u64>,
    /// The smallest retransmission timeout, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub tcp_min_rto_ms: Option<u64>,
    /// Local ports for connections dpstack opens, LO-HI.
    #[arg(long, value_name = "LO-HI")]
    pub tcp_ports: Option<String>,
    /// RFC 5482 user timeout: drop a connection whose data has gone
    /// unacknowledged (or waited behind a zero window) this long, in
    /// milliseconds (0: off, retransmissions are counted instead).
    #[arg(long, value_name = "MS")]
    pub tcp_user_timeout_ms: Option<u64>,
    /// Retransmission timeouts before a connection the application closed
    /// is dropped, as Linux tcp_orphan_retries (0: the default, 8).
    #[arg(long, value_name = "N")]
    pub tcp_orphan_retries: Option<u32>,
    /// Half-open connections each core keeps in its SYN cache (0: none,
    /// every SYN gets a cookie unless cookies are off).
    #[arg(long, value_name = "N")]
    pub tcp_syn_cache: Option<usize>,
    /// Remote addresses each core remembers the RTT of (RFC 9040 5), to
    /// start new connections' RTO from (0: off; 1024 by default).
    #[arg(long, value_name = "N")]
    pub tcp_rtt_cache: Option<u32>,
    /// SYN cookies: auto (when the SYN cache or the connection table has no
    /// room), always, or never.
    #[arg(long, value_name = "MODE")]
    pub tcp_syncookies: Option<String>,
    /// Congestion control of new connections: cubic (RFC 9438, the
    /// default) or newreno (RFC 5681/6582); both with HyStart++ and an
    /// initial window of 10 segments.
    #[arg(long, value_name = "ALGORITHM")]
    pub tcp_cc: Option<String>,
    /// Explicit Congestion Notification (RFC 3168), as Linux's
    /// net.ipv4.tcp_ecn: off (never), on (asked for on connections we
    /// open, accepted on those we accept) or server (accepted when a peer
    /// asks, never asked for: the default).
    #[arg(long, value_name = "MODE")]
    pub tcp_ecn: Option<String>,
    /// The kernel exception path: off, tap[:IFNAME] or virtio-user[:IFNAME]
    /// (IFNAME defaults to dpk0).
    #[arg(long, value_name = "MODE")]
    pub kni: Option<String>,
    /// The core (index) that serves the kernel interface.
    #[arg(long, value_name = "N")]
    pub kni_core: Option<usize>,
    /// Frames per second to the kernel, all cores together.
    #[arg(long, value_name = "PPS")]
    pub kni_rate: Option<u64>,
    /// Each core's queue toward the kernel, in frames.
    #[arg(long, value_name = "N")]
    pub kni_queue: Option<usize>,
    /// Who answers ICMP echo: stack or kernel.
    #[arg(long, value_name = "WHO")]
    pub kni_icmp: Option<String>,
    /// The device's RSS key, for a device that does not report it:
    /// microsoft, symmetric, or 40 bytes in hex.
    #[arg(long, value_name = "KEY")]
    pub rss_key: Option<String>,
    /// The device's redirection table, for a device that does not report
    /// it: uniform:SIZE, or the queue of every entry, comma separated.
    #[arg(long, value_name = "TABLE")]
    pub reta: Option<String>,
    /// Steer a port to a queue with an rte_flow rule, e.g. tcp:8080@1
    /// (repeatable); where the device refuses, RSS and the handoff do.
    #[arg(long = "flow", value_name = "PROTO:PORT@QUEUE")]
    pub flows: Vec<String>,
    /// Keep a record of up to N flows per core (which core handled each
    /// TCP connection and UDP flow, packets and bytes each way); printed
    /// on exit. 0: none.
    #[arg(long, value_name = "N")]
    pub flow_records: Option<usize>,
    /// A core with nothing to do for this many microseconds sleeps this
    /// long before it polls again (0, the default: it always polls). For
    /// cores that share a CPU with other work, as VPP's poll-sleep-usec
    /// and F-Stack's idle_sleep.
    #[arg(long, value_name = "US")]
    pub idle_sleep: Option<u64>,
    /// Serve Prometheus metrics (GET /metrics) on this address of the
    /// kernel's network, e.g. 127.0.0.1:9100.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<String>,
}

/// The same options as a TOML file.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub ip: Option<String>,
    pub gateway: Option<String>,
    pub stats_interval: Option<u64>,
    #[serde(default)]
    pub apps: Vec<String>,
    pub port: Option<u16>,
    pub mtu: Option<u16>,
    pub mbufs: Option<u32>,
    pub arp_timeout: Option<u64>,
    pub no_offload: Option<bool>,
    pub tcp_max_conns: Option<usize>,
    pub tcp_buffer: Option<usize>,
    pub tcp_rmem: Option<String>,
    pub tcp_wmem: Option<String>,
    pub tcp_memory: Option<usize>,
    pub tcp_time_wait_ms: Option<u64>,
    pub tcp_delayed_ack_ms: Option<u64>,
    pub tcp_nodelay: Option<bool>,
    pub tcp_keepalive: Option<u64>,
    pub tcp_min_rto_ms: Option<u64>,
    pub tcp_ports: Option<String>,
    pub tcp_user_timeout_ms: Option<u64>,
    pub tcp_orphan_retries: Option<u32>,
    pub tcp_syn_cache: Option<usize>,
    pub tcp_rtt_cache: Option<u32>,
    pub tcp_syncookies: Option<String>,
    pub tcp_cc: Option<String>,
    pub tcp_ecn: Option<String>,
    pub kni: Option<String>,
    pub kni_core: Option<usize>,
    pub kni_rate: Option<u64>,
    pub kni_queue: Option<usize>,
    pub kni_icmp: Option<String>,
    /// Ethertypes other than IPv4 and ARP go to the kernel (default true).
    pub kni_other_ethertypes: Option<bool>,
    /// IP protocols other than ICMP, UDP and TCP go to the kernel (true).
    pub kni_other_protocols: Option<bool>,
    /// TCP and UDP ports no application owns go to the kernel (true).
    pub kni_unowned_ports: Option<bool>,
    /// The kernel gets a copy of every ARP frame (true).
    pub kni_arp_copy: Option<bool>,
    pub rss_key: Option<String>,
    pub reta: Option<String>,
    #[serde(default)]
    pub flows: Vec<String>,
    pub flow_records: Option<usize>,
    pub idle_sleep: Option<u64>,
    pub metrics: Option<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub ip: Ipv4Cidr,
    pub gateway: Option<Ipv4Addr>,
    pub stats_interval: u64,
    pub apps: Vec<AppSpec>,
    pub port: u16,
    pub mtu: u16,
    pub mbufs: u32,
    pub arp_timeout: u64,
    pub checksum_offload: bool,
    pub tcp: TcpConfig,
    /// TCP buffer memory per core, in bytes.
    pub tcp_memory: usize,
    /// Remote addresses each core remembers the RTT of (0: off).
    pub tcp_rtt_cache: usize,
    pub kni: KniConfig,
    /// A stated RSS key (the device's own, when it reports one, wins).
    pub rss_key: Option<Vec<u8>>,
    /// A stated redirection table; `Uniform(n)` spreads n entries over the
    /// queues round robin.
    pub reta: Option<RetaSpec>,
    pub flows: Vec<FlowRule>,
    /// Flows each core keeps a record of (0: none).
    pub flow_records: usize,
    /// How long an idle core sleeps, once idle that long (zero: never).
    pub idle_sleep: Duration,
    /// Where to serve Prometheus metrics (`--metrics`), if anywhere.
    pub metrics: Option<SocketAddr>,
}

/// TCP buffer memory per core unless `--tcp-memory` says otherwise: 1 GiB,
/// four thousand connections' worth of full 256 KiB buffers (idle ones
/// hold none).
pub const DEFAULT_TCP_MEMORY: usize = 1 << 30;
/// At least a few hundred chunks: below that, a handful of busy
/// connections would starve the rest.
const MIN_TCP_MEMORY: usize = 4 << 20;
/// 1 TiB: a guard against a mistyped unit, not a real bound.
const MAX_TCP_MEMORY: usize = 1 << 40;

/// The longest RFC 5482 user timeout: Linux's (`TCP_USER_TIMEOUT` is an
/// int of milliseconds), about 24.8 days.
pub const MAX_TCP_USER_TIMEOUT_MS: u64 = i32::MAX as u64;
/// The longest `--idle-sleep`: 10 ms, a hundred timer periods (the
/// timers run late by up to the sleep).
pub const MAX_IDLE_SLEEP_US: u64 = 10_000;

/// Linux `tcp_orphan_retries`: 0 stands for this.
const DEFAULT_TCP_ORPHAN_RETRIES: u32 = 8;

/// A redirection table as the user states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetaSpec {
    Uniform(usize),
    Entries(Vec<u16>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--ip is required (e.g. --ip 198.18.0.1/24)")]
    MissingIp,
    #[error("--flow-records {0}: must be 0..=1000000")]
    BadFlowRecords(usize),
    #[error("--idle-sleep {0}: must be 0..={MAX_IDLE_SLEEP_US} microseconds")]
    BadIdleSleep(u64),
    #[error("bad --ip '{0}': expected ADDR/PREFIX, e.g. 198.18.0.1/24")]
    BadIp(String),
    #[error("bad --gateway '{0}': expected an IPv4 address")]
    BadGateway(String),
    #[error("--gateway {0} is not on the local network {1}")]
    GatewayOffLink(Ipv4Addr, Ipv4Cidr),
    #[error("bad --app '{0}': {1}")]
    BadApp(String, String),
    #[error("bad --mtu {0}: must be between 576 and 9000")]
    BadMtu(u16),
    #[error("bad --mbufs {0}: must be at least 1024")]
    BadMbufs(u32),
    #[error("bad TCP option: {0}")]
    BadTcp(String),
    #[error("bad kernel-path option: {0}")]
    BadKni(String),
    #[error("bad RSS option: {0}")]
    BadRss(String),
    #[error("bad --metrics '{0}': expected ADDR:PORT, e.g. 127.0.0.1:9100")]
    BadMetrics(String),
    #[error("cannot read config file {0}: {1}")]
    File(String, String),
}

impl Config {
    /// Merge the command line over the file (if `--config` names one).
    pub fn from_cli(cli: &Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::File(path.display().to_string(), e.to_string()))?;
                toml::from_str::<FileConfig>(&text).map_err(|e| {
                    ConfigError::File(
                        path.display().to_string(),
                        e.message().replace('\n', " ").to_string(),
                    )
                })?
            }
            None => FileConfig::default(),
        };
        Self::merge(cli, &file)
    }

    pub fn merge(cli: &Cli, file: &FileConfig) -> Result<Config, ConfigError> {
        let ip_text = cli
            .ip
            .clone()
            .or_else(|| file.ip.clone())
            .ok_or(ConfigError::MissingIp)?;
        let ip: Ipv4Cidr = ip_text
            .parse()
            .map_err(|_| ConfigError::BadIp(ip_text.clone()))?;
        if ip.prefix_len() == 0 || ip.prefix_len() > 30 || ip.address().is_unspecified() {
            return Err(ConfigError::BadIp(ip_text));
        }
        let gateway = match cli.gateway.clone().or_else(|| file.gateway.clone()) {
            Some(g) => {
                let a: Ipv4Addr = g.parse().map_err(|_| ConfigError::BadGateway(g.clone()))?;
                if !ip.contains_addr(&a) {
                    return Err(ConfigError::GatewayOffLink(a, ip));
                }
                Some(a)
            }
            None => None,
        };
        let app_texts = if cli.apps.is_empty() {
            &file.apps
        } else {
            &cli.apps
        };
        let apps = app_texts
            .iter()
            .map(|s| s.parse().map_err(|e| ConfigError::BadApp(s.clone(), e)))
            .collect::<Result<Vec<AppSpec>, _>>()?;
        let mtu = cli.mtu.or(file.mtu).unwrap_or(1500);
        if !(576..=9000).contains(&mtu) {
            return Err(ConfigError::BadMtu(mtu));
        }
        let mbufs = cli.mbufs.or(file.mbufs).unwrap_or(8191);
        if mbufs < 1024 {
            return Err(ConfigError::BadMbufs(mbufs));
        }
        let tcp = tcp_config(cli, file, mtu)?;
        let tcp_rtt_cache = cli
            .tcp_rtt_cache
            .or(file.tcp_rtt_cache)
            .unwrap_or(crate::tcp::rtt_cache::DEFAULT_ENTRIES as u32);
        if tcp_rtt_cache > 1_000_000 {
            return Err(ConfigError::BadTcp(format!(
                "--tcp-rtt-cache {tcp_rtt_cache}: at most 1000000"
            )));
        }
        let tcp_rtt_cache = tcp_rtt_cache as usize;
        let tcp_memory = cli
            .tcp_memory
            .or(file.tcp_memory)
            .unwrap_or(DEFAULT_TCP_MEMORY);
        if !(MIN_TCP_MEMORY..=MAX_TCP_MEMORY).contains(&tcp_memory) {
            return Err(ConfigError::BadTcp(format!(
                "--tcp-memory {tcp_memory}: must be {MIN_TCP_MEMORY}..={MAX_TCP_MEMORY}"
            )));
        }
        let kni = kni_config(cli, file)?;
        let rss_key = match cli.rss_key.clone().or_else(|| file.rss_key.clone()) {
            None => None,
            Some(k) => Some(parse_rss_key(&k).map_err(ConfigError::BadRss)?),
        };
        let reta = match cli.reta.clone().or_else(|| file.reta.clone()) {
            None => None,
            Some(r) => Some(parse_reta(&r).map_err(ConfigError::BadRss)?),
        };
        let flow_texts = if cli.flows.is_empty() {
            &file.flows
        } else {
            &cli.flows
        };
        let flows = flow_texts
            .iter()
            .map(|f| f.parse::<FlowRule>().map_err(ConfigError::BadRss))
            .collect::<Result<Vec<_>, _>>()?;
        let flow_records = cli.flow_records.or(file.flow_records).unwrap_or(0);
        if flow_records > 1_000_000 {
            return Err(ConfigError::BadFlowRecords(flow_records));
        }
        let idle_sleep = cli.idle_sleep.or(file.idle_sleep).unwrap_or(0);
        if idle_sleep > MAX_IDLE_SLEEP_US {
            return Err(ConfigError::BadIdleSleep(idle_sleep));
        }
        let idle_sleep = Duration::from_micros(idle_sleep);
        let metrics = match cli.metrics.clone().or_else(|| file.metrics.clone()) {
            None => None,
            Some(m) => Some(m.parse().map_err(|_| ConfigError::BadMetrics(m))?),
        };
        Ok(Config {
            metrics,
            flows,
            flow_records,
            idle_sleep,
            rss_key,
            reta,
            tcp,
            tcp_memory,
            tcp_rtt_cache,
            kni,
            ip,
            gateway,
            stats_interval: cli.stats_interval.or(file.stats_interval).unwrap_or(0),
            apps,
            port: cli.port.or(file.port).unwrap_or(0),
            mtu,
            mbufs,
            arp_timeout: cli.arp_timeout.or(file.arp_timeout).unwrap_or(300),
            checksum_offload: !(cli.no_offload || file.no_offload.unwrap_or(false)),
        })
    }
}

/// `microsoft`, `symmetric`, or 40 bytes as 80 hex digits.
pub fn parse_rss_key(s: &str) -> Result<Vec<u8>, String> {
    match s {
        "microsoft" => return Ok(rss::ToeplitzKey::MICROSOFT.as_bytes().to_vec()),
        "symmetric" => return Ok(rss::ToeplitzKey::SYMMETRIC.as_bytes().to_vec()),
        _ => {}
    }
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if hex.len() != 80 {
        return Err(format!(
            "--rss-key: expected microsoft, symmetric or 40 bytes of hex, got {} digits",
            hex.len()
        ));
    }
    (0..40)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| "--rss-key: not hex".to_string())
}

/// `uniform:SIZE` or `q,q,q,...`.
pub fn parse_reta(s: &str) -> Result<RetaSpec, String> {
    if let Some(n) = s.strip_prefix("uniform:") {
        let n: usize = n.parse().map_err(|_| format!("--reta '{s}': bad size"))?;
        if !(1..=4096).contains(&n) {
            return Err(format!("--reta '{s}': size must be 1..=4096"));
        }
        return Ok(RetaSpec::Uniform(n));
    }
    let entries = s
        .split(',')
        .map(|q| q.trim().parse::<u16>())
        .collect::<Result<Vec<u16>, _>>()
        .map_err(|_| format!("--reta '{s}': expected uniform:SIZE or queue numbers"))?;
    if entries.is_empty() || entries.len() > 4096 {
        return Err(format!("--reta '{s}': 1..=4096 entries"));
    }
    Ok(RetaSpec::Entries(entries))
}

fn kni_config(cli: &Cli, file: &FileConfig) -> Result<KniConfig, ConfigError> {
    let mut k = KniConfig::default();
    if let Some(m) = cli.kni.clone().or_else(|| file.kni.clone()) {
        k.mode = m.parse::<KniMode>().map_err(ConfigError::BadKni)?;
    }
    if let Some(c) = cli.kni_core.or(file.kni_core) {
        k.core = c;
    }
    if let Some(r) = cli.kni_rate.or(file.kni_rate) {
        if r == 0 {
            return Err(ConfigError::BadKni("--kni-rate must be at least 1".into()));
        }
        k.rate = r;
    }
    if let Some(q) = cli.kni_queue.or(file.kni_queue) {
        if !(1..=65536).contains(&q) {
            return Err(ConfigError::BadKni(format!("--kni-queue {q}: 1..=65536")));
        }
        k.queue = q;
    }
    match cli
        .kni_icmp
        .clone()
        .or_else(|| file.kni_icmp.clone())
        .as_deref()
    {
        None | Some("stack") => {}
        Some("kernel") => k.policy.icmp_to_kernel = true,
        Some(o) => {
            return Err(ConfigError::BadKni(format!(
                "--kni-icmp '{o}': expected stack or kernel"
            )))
        }
    }
    let p = &mut k.policy;
    p.other_ethertypes = file.kni_other_ethertypes.unwrap_or(p.other_ethertypes);
    p.other_protocols = file.kni_other_protocols.unwrap_or(p.other_protocols);
    p.unowned_ports = file.kni_unowned_ports.unwrap_or(p.unowned_ports);
    p.arp_copy = file.kni_arp_copy.unwrap_or(p.arp_copy);
    Ok(k)
}

fn tcp_config(cli: &Cli, file: &FileConfig, mtu: u16) -> Result<TcpConfig, ConfigError> {
    let mut t = TcpConfig {
        mss: usize::from(mtu) - 40,
        ..TcpConfig::default()
    };
    let bad = |s: String| Err(ConfigError::BadTcp(s));
    if let Some(n) = cli.tcp_max_conns.or(file.tcp_max_conns) {
        if !(1..=1_000_000).contains(&n) {
            return bad(format!("--tcp-max-conns {n}: must be 1..=1000000"));
        }
        t.max_connections = n;
    }
    let rmem = cli.tcp_rmem.clone().or_else(|| file.tcp_rmem.clone());
    let wmem = cli.tcp_wmem.clone().or_else(|| file.tcp_wmem.clone());
    if let Some(n) = cli.tcp_buffer.or(file.tcp_buffer) {
        if !BUFFER_SIZES.contains(&n) {
            return bad(format!("--tcp-buffer {n}: must be 4096..=67108864"));
        }
        if rmem.is_some() || wmem.is_some() {
            return bad(format!(
                "--tcp-buffer {n} fixes both buffers: not with --tcp-rmem or --tcp-wmem"
            ));
        }
        (t.rx_buffer, t.rx_buffer_max) = (n, n);
        (t.tx_buffer, t.tx_buffer_max) = (n, n);
    }
    if let Some(s) = rmem {
        (t.rx_buffer, t.rx_buffer_max) = buffer_sizes("--tcp-rmem", &s)?;
    }
    if let Some(s) = wmem {
        (t.tx_buffer, t.tx_buffer_max) = buffer_sizes("--tcp-wmem", &s)?;
    }
    if let Some(ms) = cli.tcp_time_wait_ms.or(file.tcp_time_wait_ms) {
        t.time_wait = Duration::from_millis(ms);
    }
    if let Some(ms) = cli.tcp_delayed_ack_ms.or(file.tcp_delayed_ack_ms) {
        if ms > 500 {
            return bad(format!("--tcp-delayed-ack-ms {ms}: at most 500 (RFC 1122)"));
        }
        t.delayed_ack = (ms > 0).then(|| Duration::from_millis(ms));
    }
    if cli.tcp_nodelay || file.tcp_nodelay.unwrap_or(false) {
        t.nagle = false;
    }
    if let Some(secs) = cli.tcp_keepalive.or(file.tcp_keepalive) {
        t.keepalive = (secs > 0).then(|| Keepalive {
            idle: Duration::from_secs(secs),
            interval: Duration::from_secs((secs / 10).clamp(1, 75)),
            probes: 9,
        });
    }
    if let Some(ms) = cli.tcp_min_rto_ms.or(file.tcp_min_rto_ms) {
        if !(1..=60_000).contains(&ms) {
            return bad(format!("--tcp-min-rto-ms {ms}: must be 1..=60000"));
        }
        t.rto_min = Duration::from_millis(ms);
    }
    if let Some(ms) = cli.tcp_user_timeout_ms.or(file.tcp_user_timeout_ms) {
        if ms > MAX_TCP_USER_TIMEOUT_MS {
            return bad(format!(
                "--tcp-user-timeout-ms {ms}: at most {MAX_TCP_USER_TIMEOUT_MS} (as Linux)"
            ));
        }
        t.user_timeout = (ms > 0).then(|| Duration::from_millis(ms));
    }
    if let Some(n) = cli.tcp_orphan_retries.or(file.tcp_orphan_retries) {
        // An orphan is also bound by `max_retries`: more would change
        // nothing. 0 means 8, as in Linux (`tcp_orphan_retries()`), not
        // "give up at the first timeout".
        if n > t.max_retries {
            return bad(format!(
                "--tcp-orphan-retries {n}: must be 0..={} (0: {DEFAULT_TCP_ORPHAN_RETRIES})",
                t.max_retries
            ));
        }
        t.orphan_retries = if n == 0 {
            DEFAULT_TCP_ORPHAN_RETRIES
        } else {
            n
        };
    }
    if let Some(r) = cli.tcp_ports.clone().or_else(|| file.tcp_ports.clone()) {
        let parsed = r
            .split_once('-')
            .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)));
        match parsed {
            Some((lo, hi)) if lo >= 1024 && lo <= hi => t.ephemeral = (lo, hi),
            _ => {
                return bad(format!(
                    "--tcp-ports '{r}': expected LO-HI, 1024 <= LO <= HI"
                ))
            }
        }
    }
    if let Some(n) = cli.tcp_syn_cache.or(file.tcp_syn_cache) {
        if n > 1_000_000 {
            return bad(format!("--tcp-syn-cache {n}: at most 1000000"));
        }
        t.syn_cache = n;
    }
    if let Some(m) = cli
        .tcp_syncookies
        .clone()
        .or_else(|| file.tcp_syncookies.clone())
    {
        t.syncookies = m
            .parse()
            .map_err(|e| ConfigError::BadTcp(format!("--tcp-syncookies {e}")))?;
    }
    if let Some(a) = cli.tcp_cc.clone().or_else(|| file.tcp_cc.clone()) {
        t.cc = a
            .parse()
            .map_err(|e| ConfigError::BadTcp(format!("--tcp-cc {e}")))?;
    }
    if let Some(m) = cli.tcp_ecn.clone().or_else(|| file.tcp_ecn.clone()) {
        t.ecn = m
            .parse()
            .map_err(|e| ConfigError::BadTcp(format!("--tcp-ecn {e}")))?;
    }
    if t.syn_cache == 0 && t.syncookies == crate::tcp::SynCookieMode::Never {
        return bad(
            "--tcp-syn-cache 0 with --tcp-syncookies never: no SYN would be answered".into(),
        );
    }
    Ok(t)
}

/// `INITIAL,MAX` of `--tcp-rmem` or `--tcp-wmem`: both in
/// [`BUFFER_SIZES`], the initial size at most the maximum (equal: fixed).
/// Linux's triples have a minimum too, the size a socket keeps under
/// memory pressure; here a buffer never shrinks and holds memory only
/// while it holds data, so there is no minimum to keep.
fn buffer_sizes(option: &str, s: &str) -> Result<(usize, usize), ConfigError> {
    let parsed = s
        .split_once(',')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    match parsed {
        Some((initial, max))
            if BUFFER_SIZES.contains(&initial) && BUFFER_SIZES.contains(&max) && initial <= max =>
        {
            Ok((initial, max))
        }
        _ => Err(ConfigError::BadTcp(format!(
            "{option} '{s}': expected INITIAL,MAX in bytes, 4096 <= INITIAL <= MAX <= 67108864"
        ))),
    }
}

/// The transport a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp,
    Udp,
}

/// `PROTO:PORT@QUEUE`, e.g. `tcp:8080@1`: segments to that local port go
/// to that queue (the core of the same index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRule {
    pub l4: L4,
    pub dst_port: u16,
    pub queue: u16,
}

impl FromStr for FlowRule {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("bad flow rule '{s}': expected tcp:PORT@QUEUE or udp:PORT@QUEUE");
        let (proto, rest) = s.split_once(':').ok_or_else(bad)?;
        let (port, queue) = rest.split_once('@').ok_or_else(bad)?;
        let l4 = match proto {
            "tcp" => L4::Tcp,
            "udp" => L4::Udp,
            _ => return Err(bad()),
        };
        let dst_port: u16 = port.parse().map_err(|_| bad())?;
        let queue: u16 = queue.parse().map_err(|_| bad())?;
        if dst_port == 0 {
            return Err(bad());
        }
        Ok(FlowRule {
            l4,
            dst_port,
            queue,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse() {
        assert_eq!(
            "tcp:8080@1".parse(),
            Ok(FlowRule {
                l4: L4::Tcp,
                dst_port: 8080,
                queue: 1
            })
        );
        assert!("udp:53@0".parse::<FlowRule>().is_ok());
        for bad in ["tcp:8080", "sctp:1@0", "tcp:0@1", "tcp:x@1", "tcp:80@q"] {
            assert!(bad.parse::<FlowRule>().is_err(), "{bad}");
        }
    }

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("dpstack").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn buffer_sizes_are_autotuned_unless_fixed() {
        let ip = ["--ip", "198.18.0.1/24"];
        let f = FileConfig::default();
        let tcp = |args: &[&str]| {
            let a: Vec<&str> = ip.iter().chain(args).copied().collect();
            let t = Config::merge(&cli(&a), &f).unwrap().tcp;
            (t.rx_buffer, t.rx_buffer_max, t.tx_buffer, t.tx_buffer_max)
        };
        // Linux's defaults: small to start, megabytes at most.
        assert_eq!(tcp(&[]), (128 << 10, 6 << 20, 128 << 10, 4 << 20));
        // --tcp-buffer fixes both, as it always did.
        assert_eq!(
            tcp(&["--tcp-buffer", "4194304"]),
            (4 << 20, 4 << 20, 4 << 20, 4 << 20)
        );
        assert_eq!(
            tcp(&["--tcp-rmem", "65536,16777216", "--tcp-wmem", "32768, 32768"]),
            (64 << 10, 16 << 20, 32 << 10, 32 << 10)
        );
        let file: FileConfig = toml::from_str("tcp-rmem = \"4096,1048576\"\n").unwrap();
        let t = Config::merge(&cli(&ip), &file).unwrap().tcp;
        assert_eq!((t.rx_buffer, t.rx_buffer_max), (4096, 1 << 20));
    }

    #[test]
    fn metrics_address_from_file_or_command_line() {
        let ip = ["--ip", "198.18.0.1/24"];
        let none = FileConfig::default();
        assert_eq!(Config::merge(&cli(&ip), &none).unwrap().metrics, None);
        let file: FileConfig = toml::from_str("metrics = \"127.0.0.1:9100\"\n").unwrap();
        let c = Config::merge(&cli(&ip), &file).unwrap();
        assert_eq!(c.metrics, Some("127.0.0.1:9100".parse().unwrap()));
        let a: Vec<&str> = ip
            .iter()
            .copied()
            .chain(["--metrics", "0.0.0.0:9200"])
            .collect();
        let c = Config::merge(&cli(&a), &file).unwrap();
        assert_eq!(c.metrics, Some("0.0.0.0:9200".parse().unwrap()));
        for bad in ["9100", "localhost", "127.0.0.1:99999", "127.0.0.1"] {
            let a: Vec<&str> = ip.iter().copied().chain(["--metrics", bad]).collect();
            assert_eq!(
                Config::merge(&cli(&a), &none),
                Err(ConfigError::BadMetrics(bad.into()))
            );
        }
    }

    #[test]
    fn command_line_wins_over_file() {
        let file: FileConfig = toml::from_str(
            "ip = \"198.18.0.1/24\"\nstats-interval = 5\nmtu = 1400\napps = [\"udp-sink:9\"]\n",
        )
        .unwrap();
        let c = Config::merge(&cli(&["--ip", "198.18.1.1/16", "--mtu", "1500"]), &file).unwrap();
        assert_eq!(c.ip.to_string(), "198.18.1.1/16");
        assert_eq!(c.mtu, 1500);
        assert_eq!(c.stats_interval, 5);
        assert_eq!(c.apps.len(), 1);
        assert_eq!(c.tcp.mss, 1460);
        assert_eq!(c.flow_records, 0, "off unless asked for");
        let file: FileConfig = toml::from_str("flow-records = 64\n").unwrap();
        let c = Config::merge(&cli(&["--ip", "198.18.0.1/24"]), &file).unwrap();
        assert_eq!(c.flow_records, 64);
        assert_eq!(
            c.idle_sleep,
            Duration::default(),
            "always polls unless asked"
        );
        let c = Config::merge(
            &cli(&["--ip", "198.18.0.1/24", "--idle-sleep", "50"]),
            &file,
        )
        .unwrap();
        assert_eq!(c.idle_sleep, Duration::from_micros(50));
        let file: FileConfig = toml::from_str("idle-sleep = 200\n").unwrap();
        let c = Config::merge(&cli(&["--ip", "198.18.0.1/24"]), &file).unwrap();
        assert_eq!(c.idle_sleep, Duration::from_micros(200));
        assert!(matches!(
            Config::merge(
                &cli(&["--ip", "198.18.0.1/24", "--idle-sleep", "10001"]),
                &file
            ),
            Err(ConfigError::BadIdleSleep(10_001))
        ));
        assert_eq!(c.tcp_memory, DEFAULT_TCP_MEMORY);
        let file: FileConfig = toml::from_str(
            "tcp-memory = 67108864
",
        )
        .unwrap();
        let c = Config::merge(&cli(&["--ip", "198.18.0.1/24"]), &file).unwrap();
        assert_eq!(c.tcp_memory, 64 << 20);
        let c = Config::merge(
            &cli(&["--ip", "198.18.0.1/24", "--tcp-memory", "8388608"]),
            &file,
        );
        assert_eq!(c.unwrap().tcp_memory, 8 << 20);
        let t = Config::merge(
            &cli(&[
                "--ip",
                "198.18.0.1/24",
                "--tcp-ports",
                "50000-50100",
                "--tcp-delayed-ack-ms",
                "0",
                "--tcp-nodelay",
                "--tcp-time-wait-ms",
                "500",
                "--tcp-syn-cache",
                "64",
                "--tcp-syncookies",
                "always",
                "--tcp-rtt-cache",
                "0",
            ]),
            &FileConfig::default(),
        )
        .unwrap();
        assert_eq!(t.tcp_rtt_cache, 0);
        let t = t.tcp;
        assert_eq!(t.ephemeral, (50000, 50100));
        assert_eq!(t.delayed_ack, None);
        assert!(!t.nagle);
        assert_eq!(t.time_wait, Duration::from_millis(500));
        assert_eq!(t.syn_cache, 64);
        assert_eq!(t.syncookies, crate::tcp::SynCookieMode::Always);
        let file: FileConfig =
            toml::from_str("tcp-syn-cache = 16\ntcp-syncookies = \"never\"\ntcp-rtt-cache = 64\n")
                .unwrap();
        let c = Config::merge(&cli(&["--ip", "198.18.0.1/24"]), &file).unwrap();
        assert_eq!(c.tcp_rtt_cache, 64);
        let t = c.tcp;
        assert_eq!(t.syn_cache, 16);
        assert_eq!(t.syncookies, crate::tcp::SynCookieMode::Never);
        let d = TcpConfig::default();
        assert_eq!(
            (d.syn_cache, d.syncookies),
            (1024, crate::tcp::SynCookieMode::Auto)
        );
        let c = Config::merge(&cli(&["--ip", "198.18.0.1/24"]), &FileConfig::default());
        assert_eq!(c.unwrap().tcp_rtt_cache, 1024);
    }

    #[test]
    fn user_timeout_and_orphan_retries() {
        let ip = ["--ip", "198.18.0.1/24"];
        let none = FileConfig::default();
        let d = Config::merge(&cli(&ip), &none).unwrap().tcp;
        assert_eq!((d.user_timeout, d.orphan_retries), (None, 8));
        let mut a = ip.to_vec();
        a.extend([
            "--tcp-user-timeout-ms",
            "30000",
            "--tcp-orphan-retries",
            "3",
        ]);
        let t = Config::merge(&cli(&a), &none).unwrap().tcp;
        assert_eq!(t.user_timeout, Some(Duration::from_millis(30_000)));
        assert_eq!(t.orphan_retries, 3);
        // The file, and the command line over it; 0 turns the user timeout
        // off and gives the orphans Linux's 8.
        let file: FileConfig =
            toml::from_str("tcp-user-timeout-ms = 5000\ntcp-orphan-retries = 2\n").unwrap();
        let t = Config::merge(&cli(&ip), &file).unwrap().tcp;
        assert_eq!(t.user_timeout, Some(Duration::from_millis(5000)));
        assert_eq!(t.orphan_retries, 2);
        let mut a = ip.to_vec();
        a.extend(["--tcp-user-timeout-ms", "0", "--tcp-orphan-retries", "0"]);
        let t = Config::merge(&cli(&a), &file).unwrap().tcp;
        assert_eq!((t.user_timeout, t.orphan_retries), (None, 8));
        let mut a = ip.to_vec();
        a.extend([
            "--tcp-user-timeout-ms",
            "2147483647",
            "--tcp-orphan-retries",
            "15",
        ]);
        let t = Config::merge(&cli(&a), &none).unwrap().tcp;
        assert_eq!(t.user_timeout, Some(Duration::from_millis(2_147_483_647)));
        assert_eq!(t.orphan_retries, 15);
    }

    #[test]
    fn bad_values_are_one_clear_error() {
        let f = FileConfig::default();
        assert_eq!(Config::merge(&cli(&[]), &f), Err(ConfigError::MissingIp));
        assert!(matches!(
            Config::merge(&cli(&["--ip", "198.18.0.300/24"]), &f),
            Err(ConfigError::BadIp(_))
        ));
        assert!(matches!(
            Config::merge(&cli(&["--ip", "198.18.0.1"]), &f),
            Err(ConfigError::BadIp(_))
        ));
        assert!(matches!(
            Config::merge(
                &cli(&["--ip", "198.18.0.1/24", "--gateway", "198.19.0.1"]),
                &f
            ),
            Err(ConfigError::GatewayOffLink(..))
        ));
        assert!(matches!(
            Config::merge(&cli(&["--ip", "198.18.0.1/24", "--app", "udp-echo:x"]), &f),
            Err(ConfigError::BadApp(..))
        ));
        assert!(Cli::try_parse_from(["dpstack", "--bogus"]).is_err());
        assert_eq!(
            Config::merge(
                &cli(&["--ip", "198.18.0.1/24", "--flow-records", "2000000"]),
                &f
            ),
            Err(ConfigError::BadFlowRecords(2_000_000))
        );
        for bad in [
            &["--tcp-ports", "70-60"][..],
            &["--tcp-ports", "x"],
            &["--tcp-buffer", "10"],
            &["--tcp-rmem", "65536"],
            &["--tcp-rmem", "131072,65536"],
            &["--tcp-wmem", "1024,65536"],
            &["--tcp-wmem", "65536,134217728"],
            &["--tcp-wmem", "a,b"],
            &["--tcp-buffer", "65536", "--tcp-rmem", "65536,1048576"],
            &["--tcp-delayed-ack-ms", "900"],
            &["--tcp-max-conns", "0"],
            &["--tcp-syncookies", "sometimes"],
            &["--tcp-syn-cache", "2000000"],
            &["--tcp-rtt-cache", "2000000"],
            &["--tcp-syn-cache", "0", "--tcp-syncookies", "never"],
            &["--tcp-memory", "1000"],
            &["--tcp-memory", "2000000000000"],
            &["--tcp-user-timeout-ms", "2147483648"],
            &["--tcp-orphan-retries", "16"],
            &["--tcp-cc", "bbr"],
            &["--tcp-cc", "CUBIC"],
            &["--tcp-ecn", "1"],
        ] {
            let mut a = vec!["--ip", "198.18.0.1/24"];
            a.extend_from_slice(bad);
            assert!(
                matches!(Config::merge(&cli(&a), &f), Err(ConfigError::BadTcp(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn congestion_control_option() {
        use crate::tcp::CcAlgorithm;
        let merge = |args: &[&str], file: &FileConfig| {
            let mut a = vec!["--ip", "198.18.0.1/24"];
            a.extend_from_slice(args);
            Config::merge(&cli(&a), file).unwrap().tcp.cc
        };
        let none = FileConfig::default();
        assert_eq!(merge(&[], &none), CcAlgorithm::Cubic);
        assert_eq!(merge(&["--tcp-cc", "newreno"], &none), CcAlgorithm::NewReno);
        assert_eq!(merge(&["--tcp-cc", "cubic"], &none), CcAlgorithm::Cubic);
        let file: FileConfig = toml::from_str("tcp-cc = \"newreno\"\n").unwrap();
        assert_eq!(merge(&[], &file), CcAlgorithm::NewReno);
        // The command line wins.
        assert_eq!(merge(&["--tcp-cc", "cubic"], &file), CcAlgorithm::Cubic);
    }

    #[test]
    fn ecn_option() {
        use crate::tcp::EcnMode;
        let merge = |args: &[&str], file: &FileConfig| {
            let mut a = vec!["--ip", "198.18.0.1/24"];
            a.extend_from_slice(args);
            Config::merge(&cli(&a), file).unwrap().tcp.ecn
        };
        let none = FileConfig::default();
        // Linux's default, tcp_ecn = 2.
        assert_eq!(merge(&[], &none), EcnMode::Server);
        assert_eq!(merge(&["--tcp-ecn", "on"], &none), EcnMode::On);
        assert_eq!(merge(&["--tcp-ecn", "off"], &none), EcnMode::Off);
        let file: FileConfig = toml::from_str("tcp-ecn = \"on\"\n").unwrap();
        assert_eq!(merge(&[], &file), EcnMode::On);
        // The command line wins.
        assert_eq!(merge(&["--tcp-ecn", "server"], &file), EcnMode::Server);
    }

    #[test]
    fn kernel_path_options() {
        let f: FileConfig =
            toml::from_str("kni = \"tap:k9\"\nkni-unowned-ports = false\nkni-icmp = \"kernel\"\n")
                .unwrap();
        let c = Config::merge(&cli(&["--ip", "198.18.0.1/24", "--kni-rate", "50"]), &f).unwrap();
        assert_eq!(c.kni.mode, KniMode::Tap("k9".into()));
        assert!(!c.kni.policy.unowned_ports);
        assert!(c.kni.policy.icmp_to_kernel);
        assert_eq!(c.kni.rate, 50);
        let d = Config::merge(&cli(&["--ip", "198.18.0.1/24"]), &FileConfig::default()).unwrap();
        assert_eq!(d.kni.mode, KniMode::Off);
        for bad in [
            &["--kni", "kni"][..],
            &["--kni-icmp", "x"],
            &["--kni-rate", "0"],
        ] {
            let mut a = vec!["--ip", "198.18.0.1/24"];
            a.extend_from_slice(bad);
            assert!(matches!(
                Config::merge(&cli(&a), &FileConfig::default()),
                Err(ConfigError::BadKni(_))
            ));
        }
    }

    #[test]
    fn rss_options() {
        assert_eq!(parse_rss_key("microsoft").unwrap()[0], 0x6d);
        assert_eq!(parse_rss_key(&"6d5a".repeat(20)).unwrap().len(), 40);
        assert!(parse_rss_key("abc").is_err());
        assert!(parse_rss_key(&"zz".repeat(40)).is_err());
        assert_eq!(parse_reta("uniform:128"), Ok(RetaSpec::Uniform(128)));
        assert_eq!(
            parse_reta("0,1,1,0"),
            Ok(RetaSpec::Entries(vec![0, 1, 1, 0]))
        );
        assert!(parse_reta("uniform:0").is_err());
        assert!(parse_reta("a,b").is_err());
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("ipp = \"x\"").is_err());
        for bad in ["tcp-user-timeout-ms = -1", "tcp-orphan-retries = \"8\""] {
            assert!(toml::from_str::<FileConfig>(bad).is_err(), "{bad}");
        }
        let file: FileConfig = toml::from_str("tcp-orphan-retries = 99\n").unwrap();
        assert!(matches!(
            Config::merge(&cli(&["--ip", "198.18.0.1/24"]), &file),
            Err(ConfigError::BadTcp(_))
        ));
    }
}
