//! A UDP echo server on Linux sockets: the baseline dpstack's udp-echo is
//! measured against in the same benchmark run. One thread, one socket,
//! recvmmsg-free on purpose: it is what an ordinary service does.

use clap::Parser;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Address to listen on, e.g. 198.18.0.1:7
    #[arg(long)]
    listen: String,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let sock = UdpSocket::bind(&args.listen)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut buf = vec![0u8; 65536];
    let mut echoed = 0u64;
    while Instant::now() < end {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                if sock.send_to(&buf[..n], from).is_ok() {
                    echoed += 1;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e),
        }
    }
    eprintln!("udpecho-kernel: echoed {echoed}");
    Ok(())
}
