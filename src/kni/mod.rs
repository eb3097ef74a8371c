//! The kernel exception path (the modern KNI): what the stack does not own
//! goes to a Linux interface (a TAP or virtio-user port, `dpk0` by
//! default), and what the kernel sends there goes out on the wire.
//!
//! Every core puts kernel-bound frames into its own bounded queue (one
//! producer, one consumer: no locks); one designated core drains all of
//! them into the kernel port, and reads what the kernel sends and transmits
//! it on its own TX queue of the NIC. A full queue, a kernel interface that
//! is down, or the rate limit drops the frame and counts it: the fast path
//! never waits for the kernel.

use crossbeam_queue::ArrayQueue;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Which kernel interface, if any.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum KniMode {
    #[default]
    Off,
    /// DPDK's TAP PMD (works everywhere).
    Tap(String),
    /// virtio-user over /dev/vhost-net (faster where the kernel has vhost-net).
    VirtioUser(String),
}

pub const DEFAULT_IFNAME: &str = "dpk0";

impl FromStr for KniMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, name) = match s.split_once(':') {
            Some((k, n)) => (k, n),
            None => (s, DEFAULT_IFNAME),
        };
        if kind != "off"
            && (name.is_empty()
                || name.len() > 15
                || !name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.'))
        {
            return Err(format!(
                "bad interface name '{name}' (1-15 of [A-Za-z0-9_.-])"
            ));
        }
        match kind {
            "off" if !s.contains(':') => Ok(KniMode::Off),
            "tap" => Ok(KniMode::Tap(name.to_string())),
            "virtio-user" => Ok(KniMode::VirtioUser(name.to_string())),
            _ => Err(format!(
                "bad --kni '{s}': expected off, tap[:IFNAME] or virtio-user[:IFNAME]"
            )),
        }
    }
}

impl KniMode {
    pub fn ifname(&self) -> Option<&str> {
        match self {
            KniMode::Off => None,
            KniMode::Tap(n) | KniMode::VirtioUser(n) => Some(n),
        }
    }

    /// The EAL device name and arguments that create it, with our MAC.
    pub fn vdev(&self, mac: &str, queue_size: usize) -> Option<(String, String)> {
        match self {
            KniMode::Off => None,
            KniMode::Tap(n) => Some(("net_tap_dpk".into(), format!("iface={n},mac={mac}"))),
            KniMode::VirtioUser(n) => Some((
                "virtio_user_dpk".into(),
                format!("path=/dev/vhost-net,queues=1,queue_size={queue_size},iface={n},mac={mac}"),
            )),
        }
    }
}

/// What goes to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KniPolicy {
    /// Ethertypes other than IPv4 and ARP (IPv6 and NDP work through Linux).
    pub other_ethertypes: bool,
    /// IP protocols the stack does not handle.
    pub other_protocols: bool,
    /// TCP and UDP ports no application owns (instead of RST or port
    /// unreachable), and TCP segments of no connection of ours.
    pub unowned_ports: bool,
    /// A copy of every ARP frame, so the kernel knows its neighbours.
    pub arp_copy: bool,
    /// ICMP echo requests are answered by the kernel, not by dpstack.
    /// ICMP that dpstack does not consume (echo replies, errors) always goes.
    pub icmp_to_kernel: bool,
}

impl Default for KniPolicy {
    fn default() -> Self {
        KniPolicy {
            other_ethertypes: true,
            other_protocols: true,
            unowned_ports: true,
            arp_copy: true,
            icmp_to_kernel: false,
        }
    }
}

/// The exception path's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KniConfig {
    pub mode: KniMode,
    /// The core (index) that drains the queues and serves the kernel port.
    pub core: usize,
    /// Frames per second to the kernel, all cores together.
    pub rate: u64,
    /// Each core's queue toward the kernel, in frames.
    pub queue: usize,
    pub policy: KniPolicy,
}

impl Default for KniConfig {
    fn default() -> Self {
        KniConfig {
            mode: KniMode::Off,
            core: 0,
            rate: 100_000,
            queue: 1024,
            policy: KniPolicy::default(),
        }
    }
}

/// The per-core queues toward the kernel and the kernel link's state.
pub struct KniShared<B> {
    queues: Vec<ArrayQueue<B>>,
    link_up: AtomicBool,
}

impl<B> KniShared<B> {
    pub fn new(cores: usize, queue: usize) -> KniShared<B> {
        KniShared {
            queues: (0..cores).map(|_| ArrayQueue::new(queue.max(1))).collect(),
            link_up: AtomicBool::new(true),
        }
    }
    /// Core `core` hands a frame to the kernel; gives it back when full.
    pub fn push(&self, core: usize, b: B) -> Result<(), B> {
        self.queues[core].push(b)
    }
    /// The designated core takes the next frame core `core` queued.
    pub fn pop(&self, core: usize) -> Option<B> {
        self.queues[core].pop()
    }
    pub fn cores(&self) -> usize {
        self.queues.len()
    }
    pub fn link_up(&self) -> bool {
        self.link_up.load(Ordering::Relaxed)
    }
    pub fn set_link_up(&self, up: bool) {
        self.link_up.store(up, Ordering::Relaxed)
    }
}

/// Parse `/proc/sys/net/ipv4/ip_local_port_range` ("32768\t60999").
pub fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let mut it = s.split_whitespace().map(|x| x.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// Do two inclusive port ranges overlap?
pub fn ranges_overlap(a: (u16, u16), b: (u16, u16)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!("off".parse(), Ok(KniMode::Off));
        assert_eq!("tap".parse(), Ok(KniMode::Tap("dpk0".into())));
        assert_eq!("tap:k1".parse(), Ok(KniMode::Tap("k1".into())));
        assert_eq!(
            "virtio-user:vk".parse(),
            Ok(KniMode::VirtioUser("vk".into()))
        );
        assert!("tap:".parse::<KniMode>().is_err());
        assert!("tap:waytoolonginterfacename".parse::<KniMode>().is_err());
        assert!("tap:a b".parse::<KniMode>().is_err());
        assert!("kni".parse::<KniMode>().is_err());
        let (name, args) = KniMode::Tap("dpk0".into())
            .vdev("02:00:00:00:00:01", 1024)
            .unwrap();
        assert_eq!(name, "net_tap_dpk");
        assert_eq!(args, "iface=dpk0,mac=02:00:00:00:00:01");
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("x"), None);
        assert!(!ranges_overlap((32768, 60999), (61000, 65535)));
        assert!(ranges_overlap((32768, 61000), (61000, 65535)));
        assert!(ranges_overlap((1024, 65535), (61000, 61001)));
    }

    #[test]
    fn queues_are_bounded_per_core() {
        let k: KniShared<u8> = KniShared::new(2, 1);
        assert!(k.push(0, 1).is_ok());
        assert_eq!(k.push(0, 2), Err(2));
        assert!(k.push(1, 3).is_ok());
        assert_eq!(k.pop(0), Some(1));
        assert!(k.link_up());
        k.set_link_up(false);
        assert!(!k.link_up());
    }
}
