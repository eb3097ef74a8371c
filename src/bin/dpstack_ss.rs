//! `dpstack-ss`: a running dpstack's connections and sockets, as `ss -tin`
//! shows Linux's, read from its DPDK telemetry socket
//! (`/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2`, SOCK_SEQPACKET, JSON):
//! every page of `/dpstack/tcp/conns` (or `/dpstack/udp/sockets` with
//! `-u`), following each reply's `next`.
//!
//! Filters, after the options, are a subset of ss's: `state NAME`,
//! `sport = :PORT`, `dport = :PORT` (see `dpstack::stats::ss`).

use clap::Parser;
use dpstack::stats::ss::{format_record, header, page_records, Filter};
use std::io::Write;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "dpstack-ss",
    about = "Show a running dpstack's TCP connections (or UDP sockets) as ss -tin does",
    after_help = "FILTER: state NAME (established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, \
time-wait, close-wait, last-ack, closing, listening, connected, synchronized, all; repeatable), \
sport = :PORT, dport = :PORT (also ==, !=); all joined by AND.\n\
Examples: dpstack-ss --file-prefix dps state established dport = :443\n          dpstack-ss -l\n          dpstack-ss -ua --json"
)]
struct Args {
    /// The dpstack's EAL --file-prefix.
    #[arg(long, default_value = "rte")]
    file_prefix: String,
    /// The telemetry socket (instead of the one --file-prefix names).
    #[arg(long)]
    socket: Option<String>,
    /// UDP sockets instead of TCP.
    #[arg(short = 'u', long)]
    udp: bool,
    /// Listening sockets only (TCP listeners, unconnected UDP sockets).
    #[arg(short = 'l', long)]
    listening: bool,
    /// Every socket: listening, connected, TIME-WAIT.
    #[arg(short = 'a', long)]
    all: bool,
    /// One core only.
    #[arg(long)]
    core: Option<usize>,
    /// The records as JSON (one array), not as ss lines.
    #[arg(long)]
    json: bool,
    /// Leave out the indented internals line.
    #[arg(long)]
    brief: bool,
    /// Taken for ss's habits and ignored: TCP, numeric and internals are
    /// what dpstack-ss shows anyway.
    #[arg(short = 't', hide = true)]
    tcp: bool,
    #[arg(short = 'n', hide = true)]
    numeric: bool,
    #[arg(short = 'i', hide = true)]
    info: bool,
    /// The filter (see below).
    filter: Vec<String>,
}

/// A client of DPDK's telemetry socket (SOCK_SEQPACKET: one message per
/// request and per reply).
struct Telemetry {
    fd: i32,
}

impl Telemetry {
    fn connect(path: &str) -> Result<Telemetry, String> {
        // SAFETY: plain socket(2); the descriptor is owned by the returned
        // value and closed in Drop.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0) };
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let t = Telemetry { fd };
        // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_bytes();
        if bytes.len() >= addr.sun_path.len() {
            return Err(format!("{path}: path too long"));
        }
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        // SAFETY: addr is a valid sockaddr_un of the size given.
        let r = unsafe {
            libc::connect(
                t.fd,
                &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(format!(
                "cannot connect to {path}: {} (is dpstack running with this --file-prefix?)",
                std::io::Error::last_os_error()
            ));
        }
        // The greeting: {"version": ..., "pid": ..., "max_output_len": ...}.
        t.recv()?;
        Ok(t)
    }

    fn recv(&self) -> Result<serde_json::Value, String> {
        let mut buf = vec![0u8; 1 << 20];
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return Err(format!(
                "telemetry socket: {}",
                if n == 0 {
                    "closed".to_string()
                } else {
                    std::io::Error::last_os_error().to_string()
                }
            ));
        }
        serde_json::from_slice(&buf[..n as usize]).map_err(|e| format!("bad reply: {e}"))
    }

    /// Send `cmd` and return its reply's value (null: the command refused
    /// its parameters).
    fn call(&self, cmd: &str) -> Result<serde_json::Value, String> {
        // SAFETY: the command's bytes are readable for their length.
        let n = unsafe { libc::send(self.fd, cmd.as_ptr().cast(), cmd.len(), 0) };
        if n < 0 {
            return Err(format!("send: {}", std::io::Error::last_os_error()));
        }
        let v = self.recv()?;
        let name = cmd.split(',').next().unwrap_or(cmd);
        Ok(v.get(name).cloned().unwrap_or(serde_json::Value::Null))
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.fd) };
    }
}

fn run(args: &Args) -> Result<(), String> {
    let filter = Filter::parse(args.listening, args.all, &args.filter)?;
    let path = args
        .socket
        .clone()
        .unwrap_or_else(|| format!("/var/run/dpdk/{}/dpdk_telemetry.v2", args.file_prefix));
    let t = Telemetry::connect(&path)?;
    let cmd = if args.udp {
        "/dpstack/udp/sockets"
    } else {
        "/dpstack/tcp/conns"
    };
    let mut params = match args.core {
        Some(c) => c.to_string(),
        None => "*".to_string(),
    };
    let mut records = Vec::new();
    // A listing of a million connections is 50000 pages: no bound but
    // the cursor moving on.
    loop {
        let page = t.call(&format!("{cmd},{params}"))?;
        if page.is_null() {
            return Err(format!("{cmd},{params}: refused (no such core?)"));
        }
        records.extend(
            page_records(&page)
                .into_iter()
                .filter(|r| filter.matches(r)),
        );
        match page.get("next").and_then(|n| n.as_str()) {
            Some(n) if n != params => params = n.to_string(),
            _ => break,
        }
    }
    let mut out = std::io::stdout().lock();
    let w = |out: &mut std::io::StdoutLock, s: &str| {
        writeln!(out, "{s}").map_err(|e| format!("stdout: {e}"))
    };
    if args.json {
        let v =
            serde_json::Value::Array(records.into_iter().map(serde_json::Value::Object).collect());
        return w(&mut out, &v.to_string());
    }
    w(&mut out, &header())?;
    for r in &records {
        w(&mut out, &format_record(r, !args.brief))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dpstack-ss: {e}");
            ExitCode::from(1)
        }
    }
}
