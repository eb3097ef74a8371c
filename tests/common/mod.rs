//! The integration-test harness: a Linux test host in a network namespace,
//! joined to dpstack by a veth pair (net_af_packet) or a TAP device
//! (net_tap), and a running dpstack whose counters the tests read.
//!
//! Addresses: 198.18.X.0/24 only, X unique per test. Tests in one binary
//! run one at a time (each dpstack busy-polls both CPUs).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Hold for the whole test: one dpstack at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command's stdout and stderr, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A tool of tests/tools started in the background in the test host, its
/// output piped; given `settle` to start listening.
fn host_tool_bg(net: &TestNet, script: &str, args: &[&str], settle: Duration) -> Child {
    let child = Command::new("ip")
        .args(["netns", "exec", &net.ns, "/usr/bin/python3"])
        .arg(root().join("tests/tools").join(script))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(script);
    std::thread::sleep(settle);
    child
}

/// A Linux TCP echo listener on `port` in the test host (tests/tools/tcp.py
/// echo-server): serves `count` connections, then prints what it saw.
pub fn echo_server(net: &TestNet, port: u16, count: u32) -> Child {
    let (port, count) = (port.to_string(), count.to_string());
    host_tool_bg(
        net,
        "tcp.py",
        &["echo-server", &port, &count],
        Duration::from_millis(500),
    )
}

/// A Linux UDP echo server on the test host's `port` (tests/tools/udp.py
/// echo-server) for `seconds`; prints how many datagrams and peers it saw.
pub fn udp_echo_server(net: &TestNet, port: u16, seconds: u32) -> Child {
    udp_echo_server_held(net, port, seconds, 0)
}

/// As `udp_echo_server`, but each request is held up to `hold_ms` and the
/// held ones answered in one burst.
pub fn udp_echo_server_held(net: &TestNet, port: u16, seconds: u32, hold_ms: u32) -> Child {
    let (ip, port) = (net.host_ip(), port.to_string());
    let (seconds, hold) = (seconds.to_string(), hold_ms.to_string());
    host_tool_bg(
        net,
        "udp.py",
        &["echo-server", &ip, &port, &seconds, &hold],
        Duration::from_millis(300),
    )
}

/// Run a command, panic with its output if it fails.
pub fn run(cmd: &str) -> Output {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(
        out.status.success(),
        "command failed: {cmd}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run a command, return its output whatever its status.
pub fn try_run(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

fn unique() -> u32 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (std::process::id() % 35) * 6 + n % 6
}

/// How dpstack reaches the test host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// A veth pair; dpstack runs net_af_packet on its end (qpairs=2).
    Veth,
    /// A TAP device created by dpstack's net_tap and moved into the host's
    /// namespace once dpstack runs (raw frames: no kernel defragmentation).
    Tap,
    /// Like Veth, but through a Linux bridge in a third namespace, where
    /// loss and rate limits can be injected that neither end sees coming
    /// (a drop on the sender's own output is reported to its TCP, which
    /// then just sends again: that is not loss).
    Bridged,
}

/// A test host: a namespace and its link to dpstack.
pub struct TestNet {
    pub ns: String,
    /// dpstack's side (veth end, or the TAP's name).
    pub dp_if: String,
    /// The host's interface inside the namespace.
    pub host_if: String,
    pub subnet: u32,
    pub link: Link,
}

impl TestNet {
    pub fn new(link: Link) -> TestNet {
        Self::with_mtu(link, 1500)
    }

    /// `mtu` is set on both link ends (the stack keeps its own MTU, 1500):
    /// a larger one lets the host send oversize frames.
    pub fn with_mtu(link: Link, mtu: u32) -> TestNet {
        let u = unique();
        let subnet = 20 + u;
        let tag = format!("{}{}", std::process::id() % 10000, u);
        let ns = format!("dps{tag}");
        let (dp_if, host_if) = match link {
            Link::Veth | Link::Bridged => (format!("dpa{tag}"), format!("dpb{tag}")),
            Link::Tap => (format!("dpt{tag}"), format!("dpt{tag}")),
        };
        let net = TestNet {
            ns,
            dp_if,
            host_if,
            subnet,
            link,
        };
        net.cleanup();
        run(&format!("ip netns add {}", net.ns));
        if link == Link::Bridged {
            run(&format!(
                "ip netns add {br} && ip -n {br} link set lo up && \
                 ip link add {a} mtu {mtu} type veth peer name bra mtu {mtu} && ip link set bra netns {br} && \
                 ip -n {br} link add brb mtu {mtu} type veth peer name {b} mtu {mtu} netns {ns} && \
                 ip -n {br} link add br0 type bridge && ip -n {br} link set bra master br0 && \
                 ip -n {br} link set brb master br0 && ip -n {br} link set bra up && \
                 ip -n {br} link set brb up && ip -n {br} link set br0 up && \
                 ip link set {a} up && ethtool -K {a} tx off >/dev/null",
                br = net.bridge_ns(),
                a = net.dp_if,
                b = net.host_if,
                ns = net.ns
            ));
            net.configure_host(mtu);
        }
        run(&format!("ip -n {} link set lo up", net.ns));
        if link == Link::Veth {
            run(&format!(
                "ip link add {a} mtu {mtu} type veth peer name {b} mtu {mtu} && ip link set {b} netns {ns} \
                 && ip link set {a} up && ethtool -K {a} tx off >/dev/null",
                a = net.dp_if,
                b = net.host_if,
                ns = net.ns
            ));
            net.configure_host(mtu);
        }
        net
    }

    fn configure_host(&self, mtu: u32) {
        run(&format!(
            "ip -n {ns} link set {b} mtu {mtu} && ip -n {ns} addr add {ip}/24 dev {b} && ip -n {ns} link set {b} up \
             && ip netns exec {ns} ethtool -K {b} tx off >/dev/null",
            ns = self.ns,
            b = self.host_if,
            ip = self.host_ip()
        ));
    }

    /// For a TAP link: move dpstack's TAP into the namespace and address it.
    pub fn adopt_tap(&self) {
        assert_eq!(self.link, Link::Tap);
        run(&format!("ip link set {} netns {}", self.dp_if, self.ns));
        // The TAP's kernel side starts with the port's own MAC; a host is
        // another station, with its own (and its own IPv6 link-local).
        run(&format!(
            "ip -n {} link set {} address 02:00:00:00:{:02x}:02",
            self.ns, self.dp_if, self.subnet
        ));
        self.configure_host(1500);
    }

    pub fn stack_ip(&self) -> String {
        format!("198.18.{}.1", self.subnet)
    }
    pub fn host_ip(&self) -> String {
        format!("198.18.{}.2", self.subnet)
    }
    /// Another address of the host (n in 3..250).
    pub fn host_ip_n(&self, n: u32) -> String {
        format!("198.18.{}.{}", self.subnet, n)
    }

    /// A shell command inside the test host.
    pub fn host(&self, cmd: &str) -> Output {
        try_run(&format!(
            "ip netns exec {} sh -c '{}'",
            self.ns,
            cmd.replace('\'', "'\\''")
        ))
    }

    /// A python tool from tests/tools inside the test host.
    pub fn tool(&self, script: &str, args: &str) -> Output {
        let path = root().join("tests/tools").join(script);
        let out = self.host(&format!("/usr/bin/python3 {} {}", path.display(), args));
        assert!(
            out.status.success(),
            "{script} {args} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Send `count` crafted frames of `kind` (see tests/tools/frames.py).
    pub fn send_frames(&self, dst_mac: &str, kind: &str, count: u32) {
        self.tool(
            "frames.py",
            &format!(
                "{} {} {} {} {} {}",
                self.host_if,
                dst_mac,
                self.host_ip(),
                self.stack_ip(),
                kind,
                count
            ),
        );
    }

    /// The bridge's namespace (Link::Bridged).
    pub fn bridge_ns(&self) -> String {
        format!("{}br", self.ns)
    }

    /// A shell command in the bridge's namespace (Link::Bridged).
    pub fn bridge(&self, cmd: &str) -> Output {
        try_run(&format!(
            "ip netns exec {} sh -c '{}'",
            self.bridge_ns(),
            cmd.replace('\'', "'\\''")
        ))
    }

    fn cleanup(&self) {
        let _ = try_run(&format!("ip netns del {} 2>/dev/null", self.bridge_ns()));
        let _ = try_run(&format!("ip netns del {} 2>/dev/null", self.ns));
        let _ = try_run(&format!("ip link del {} 2>/dev/null", self.dp_if));
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// One block of counters as dpstack prints them.
#[derive(Debug, Default, Clone)]
pub struct Block {
    pub cores: Vec<HashMap<String, u64>>,
    pub total: HashMap<String, u64>,
    /// (core, app name, counters)
    pub apps: Vec<(usize, String, HashMap<String, u64>)>,
    pub mempool_in_use: Option<u64>,
}

impl Block {
    pub fn get(&self, name: &str) -> u64 {
        *self
            .total
            .get(name)
            .unwrap_or_else(|| panic!("no counter {name}"))
    }
    pub fn core(&self, i: usize, name: &str) -> u64 {
        *self.cores[i]
            .get(name)
            .unwrap_or_else(|| panic!("no counter {name}"))
    }
    pub fn app_total(&self, app: &str, name: &str) -> u64 {
        self.apps
            .iter()
            .filter(|(_, a, _)| a == app)
            .map(|(_, _, m)| m.get(name).copied().unwrap_or(0))
            .sum()
    }
}

fn pairs(words: &[&str]) -> HashMap<String, u64> {
    words
        .iter()
        .filter_map(|w| w.split_once('='))
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// Parse every complete block with this tag (`stats` or `final`).
pub fn parse_blocks(lines: &[String], tag: &str) -> Vec<Block> {
    let mut out = vec![];
    let mut cur = Block::default();
    let prefix = format!("{tag} ");
    for l in lines {
        let Some(rest) = l.strip_prefix(&prefix) else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        match words.first() {
            Some(w) if w.starts_with("core=") => {
                let which = &w[5..];
                if let Some(app) = words.get(1).and_then(|a| a.strip_prefix("app=")) {
                    cur.apps.push((
                        which.parse().unwrap_or(0),
                        app.to_string(),
                        pairs(&words[2..]),
                    ));
                } else if which == "total" {
                    cur.total = pairs(&words[1..]);
                } else {
                    let i: usize = which.parse().unwrap();
                    if i == 0 && !cur.cores.is_empty() {
                        cur = Block::default();
                    }
                    cur.cores.push(pairs(&words[1..]));
                }
            }
            Some(&"mempool") => {
                cur.mempool_in_use = pairs(&words[1..]).get("in_use").copied();
                if !cur.cores.is_empty() || tag == "stats" {
                    out.push(std::mem::take(&mut cur));
                } else if let Some(last) = out.last_mut() {
                    // `final mempool` comes after the port closed, alone.
                    last.mempool_in_use = cur.mempool_in_use;
                    cur = Block::default();
                } else {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => {}
        }
    }
    // A stats block is complete at its mempool line; one still being
    // printed is left out. The final block has no mempool line of its own.
    if !cur.cores.is_empty() && tag != "stats" {
        out.push(cur);
    }
    out
}

/// One `final flow` line: what one core did for one flow (`--flow-records`).
#[derive(Debug, Clone)]
pub struct FlowRec {
    pub core: usize,
    pub proto: String,
    pub local_port: u16,
    /// The remote address, `IP:PORT`.
    pub remote: String,
    pub counts: HashMap<String, u64>,
}

impl FlowRec {
    pub fn get(&self, name: &str) -> u64 {
        *self
            .counts
            .get(name)
            .unwrap_or_else(|| panic!("no field {name} in {self:?}"))
    }
}

/// Every `final flow` line of a stopped dpstack.
pub fn flow_records(lines: &[String]) -> Vec<FlowRec> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("final flow "))
        .map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let field = |k: &str| {
                words
                    .iter()
                    .find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                    .unwrap_or_else(|| panic!("no {k} in {rest}"))
                    .to_string()
            };
            FlowRec {
                core: field("core").parse().unwrap(),
                proto: field("proto"),
                local_port: field("local_port").parse().unwrap(),
                remote: field("remote"),
                counts: pairs(&words),
            }
        })
        .collect()
}

/// The one record of a flow (`local` port: any if None), asserting that
/// exactly one core has it: the flow was handled by one core only.
pub fn only_record<'a>(
    recs: &'a [FlowRec],
    proto: &str,
    local: Option<u16>,
    remote: &str,
) -> &'a FlowRec {
    let on: Vec<&FlowRec> = recs
        .iter()
        .filter(|r| {
            r.proto == proto && r.remote == remote && local.is_none_or(|p| r.local_port == p)
        })
        .collect();
    assert_eq!(on.len(), 1, "{proto} {remote}: handled by {on:?}");
    on[0]
}

/// A running dpstack.
pub struct Dpstack {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    pub mac: String,
}

/// What a stopped dpstack left.
#[derive(Debug)]
pub struct Exit {
    pub code: Option<i32>,
    pub took: Duration,
    pub lines: Vec<String>,
    pub final_block: Block,
}

pub fn dpstack_bin() -> &'static str {
    env!("CARGO_BIN_EXE_dpstack")
}

/// EAL options for memory: hugepages if free, else --no-huge.
pub fn eal_memory(prefix: &str) -> String {
    let free = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("HugePages_Free:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .map(|v| v.parse::<u64>().unwrap_or(0))
                })
        })
        .unwrap_or(0);
    if free >= 64 {
        format!("--in-memory --file-prefix {prefix}")
    } else {
        format!("--no-huge -m 512 --no-shconf --file-prefix {prefix}")
    }
}

impl Dpstack {
    /// Start dpstack on 2 lcores against `net` with extra dpstack options.
    pub fn start(net: &TestNet, opts: &str) -> Dpstack {
        Self::start_on(net, "0-1", opts)
    }

    /// Start dpstack on the lcores `lcores` (EAL's -l list).
    pub fn start_on(net: &TestNet, lcores: &str, opts: &str) -> Dpstack {
        let queues = lcores.split(',').map(|r| match r.split_once('-') {
            Some((a, b)) => b.parse::<u32>().unwrap_or(0) - a.parse::<u32>().unwrap_or(0) + 1,
            None => 1,
        });
        let qpairs: u32 = queues.sum();
        Self::start_eal(net, &format!("-l {lcores}"), qpairs, opts)
    }

    /// Start dpstack with EAL lcore options `lcore_args` (e.g.
    /// `--lcores=(0-3)@(0,1)`) making `qpairs` lcores.
    pub fn start_eal(net: &TestNet, lcore_args: &str, qpairs: u32, opts: &str) -> Dpstack {
        let vdev = match net.link {
            Link::Veth | Link::Bridged => {
                format!("net_af_packet0,iface={},qpairs={qpairs}", net.dp_if)
            }
            Link::Tap => format!("net_tap0,iface={}", net.dp_if),
        };
        let args = format!(
            "{lcore_args} --no-pci {} --log-level=lib.eal:warning --vdev={vdev} -- --ip {}/24 --stats-interval 1 {opts}",
            eal_memory(&format!("dps{}", net.ns)),
            net.stack_ip()
        );
        let d = Self::spawn(&args);
        if net.link == Link::Tap {
            net.adopt_tap();
        }
        d
    }

    /// Spawn with raw arguments and wait for `ready`.
    pub fn spawn(args: &str) -> Dpstack {
        Self::spawn_bin(std::path::Path::new(dpstack_bin()), args)
    }

    /// Spawn the dpstack binary `bin` with raw arguments and wait for `ready`.
    pub fn spawn_bin(bin: &std::path::Path, args: &str) -> Dpstack {
        let mut child = Command::new(bin)
            .args(args.split_whitespace())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dpstack");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(l);
                }
            });
        }
        let mut d = Dpstack {
            child: Some(child),
            lines,
            mac: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if d.lines().iter().any(|l| l.starts_with("dpstack: ready")) {
                break;
            }
            if let Some(Some(status)) = d.child.as_mut().map(|c| c.try_wait().unwrap()) {
                panic!("dpstack exited early ({status}):\n{}", d.lines().join("\n"));
            }
            assert!(
                Instant::now() < deadline,
                "dpstack not ready:\n{}",
                d.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d.mac = d
            .lines()
            .iter()
            .find_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.iter()
                    .position(|x| *x == "mac")
                    .map(|i| w[i + 1].to_string())
            })
            .expect("mac in the banner");
        d
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn output(&self) -> String {
        self.lines().join("\n")
    }

    /// The newest complete stats block.
    pub fn latest(&self) -> Option<Block> {
        parse_blocks(&self.lines(), "stats").pop()
    }

    /// Wait for a stats block printed after now that satisfies `pred`.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Block) -> bool) -> Block {
        let deadline = Instant::now() + timeout;
        let seen = parse_blocks(&self.lines(), "stats").len();
        loop {
            let blocks = parse_blocks(&self.lines(), "stats");
            if blocks.len() > seen {
                let b = blocks.last().unwrap();
                if pred(b) {
                    return b.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last block: {:?}\noutput:\n{}",
                blocks.last().map(|b| &b.total),
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// A fresh block (printed after this call).
    pub fn next_block(&self) -> Block {
        self.wait_for("a stats block", Duration::from_secs(5), |_| true)
    }

    /// Whether the process still runs (None), or how it ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, wait up to 5 s, and parse the final block.
    pub fn stop(self) -> Exit {
        self.stop_with("TERM")
    }

    /// Send `signal` (TERM, INT), wait up to 5 s, and parse the final block.
    pub fn stop_with(mut self, signal: &str) -> Exit {
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        let _ = try_run(&format!("kill -{signal} {}", child.id()));
        let deadline = start + Duration::from_secs(5);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = start.elapsed();
        // Let the reader threads drain the pipes.
        std::thread::sleep(Duration::from_millis(100));
        let lines = self.lines();
        let final_block = parse_blocks(&lines, "final").pop().unwrap_or_default();
        Exit {
            code: status.and_then(|s| s.code()),
            took,
            lines,
            final_block,
        }
    }
}

impl Drop for Dpstack {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Check a clean exit: code 0, within `limit`, and no mbuf left in use.
pub fn assert_clean_exit(e: &Exit, limit: Duration) {
    assert_eq!(
        e.code,
        Some(0),
        "exit code; output:\n{}",
        e.lines.join("\n")
    );
    assert!(e.took <= limit, "took {:?} to exit", e.took);
    assert_eq!(
        e.final_block.mempool_in_use,
        Some(0),
        "mbufs leaked; output:\n{}",
        e.lines.join("\n")
    );
    assert!(!e.lines.iter().any(|l| l.contains("panicked")));
}
