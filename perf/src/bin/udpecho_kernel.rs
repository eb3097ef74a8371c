//! A UDP echo server on Linux sockets: the baseline dpstack's udp-echo is
//! measured against in the same benchmark run. One thread, one socket;
//! with `--mmsg`, batches of up to 32 datagrams through recvmmsg/sendmmsg
//! (the fastest a plain socket server gets), otherwise recv_from/send_to
//! (what an ordinary service does).

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
    /// Batch with recvmmsg/sendmmsg.
    #[arg(long)]
    mmsg: bool,
}

const BATCH: usize = 32;

/// recvmmsg a batch, sendmmsg it back to the senders. Returns echoed.
fn mmsg_round(fd: i32, bufs: &mut [[u8; 2048]; BATCH]) -> std::io::Result<u64> {
    // SAFETY: zeroed C structs; every pointer set below points into
    // `bufs`, `addrs` and `iovs`, which outlive both calls.
    unsafe {
        let mut addrs: [libc::sockaddr_in; BATCH] = std::mem::zeroed();
        let mut iovs: [libc::iovec; BATCH] = std::mem::zeroed();
        let mut msgs: [libc::mmsghdr; BATCH] = std::mem::zeroed();
        for i in 0..BATCH {
            iovs[i].iov_base = bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = bufs[i].len();
            msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        let n = libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            BATCH as u32,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        );
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Ok(0),
                _ => Err(e),
            };
        }
        for m in msgs.iter_mut().take(n as usize) {
            (*m.msg_hdr.msg_iov).iov_len = m.msg_len as usize;
        }
        let sent = libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, 0);
        Ok(sent.max(0) as u64)
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let sock = UdpSocket::bind(&args.listen)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut buf = vec![0u8; 65536];
    let mut echoed = 0u64;
    if args.mmsg {
        use std::os::fd::AsRawFd;
        let mut bufs = Box::new([[0u8; 2048]; BATCH]);
        while Instant::now() < end {
            echoed += mmsg_round(sock.as_raw_fd(), &mut bufs)?;
        }
    }
    while !args.mmsg && Instant::now() < end {
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
