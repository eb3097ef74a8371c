//! Flow steering for devices whose RSS cannot be predicted (af_packet's
//! fanout hash, tap, no RSS): a TCP segment or a UDP datagram that reaches
//! a core that does not own its connection (or connected UDP socket) is
//! handed to the owner.
//!
//! The owner is found in a [`FlowDirectory`]: a fixed-size, lock-free
//! open-addressing table written when a connection is made or freed (not
//! per packet) and read only on a miss. Frames cross through a bounded
//! queue per (source, destination) pair of cores: one producer, one
//! consumer. A full queue drops the frame and counts it.

pub use crate::flow::FlowDirectory;
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;

/// The directory and the handoff queues of all cores.
pub struct Steering<B> {
    /// TCP connections.
    pub directory: Arc<FlowDirectory>,
    /// Connected UDP sockets.
    pub udp_directory: Arc<FlowDirectory>,
    cores: usize,
    /// [dst * cores + src]
    queues: Vec<ArrayQueue<B>>,
}

impl<B> Steering<B> {
    pub fn new(cores: usize, flows: usize, queue: usize) -> Steering<B> {
        Steering {
            directory: Arc::new(FlowDirectory::new(flows)),
            udp_directory: Arc::new(FlowDirectory::new(flows.min(64 * 1024))),
            cores,
            queues: (0..cores * cores)
                .map(|_| ArrayQueue::new(queue.max(1)))
                .collect(),
        }
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Hand `buf` from core `src` to core `dst`; gives it back if full.
    pub fn push(&self, src: usize, dst: usize, buf: B) -> Result<(), B> {
        self.queues[dst * self.cores + src].push(buf)
    }

    /// The next frame another core handed to `dst`, from `src`.
    pub fn pop(&self, src: usize, dst: usize) -> Option<B> {
        self.queues[dst * self.cores + src].pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_bounded_per_pair() {
        let s: Steering<u32> = Steering::new(2, 16, 2);
        assert!(s.push(0, 1, 7).is_ok());
        assert!(s.push(0, 1, 8).is_ok());
        assert_eq!(s.push(0, 1, 9), Err(9));
        assert!(s.push(1, 0, 5).is_ok());
        assert_eq!(s.pop(0, 1), Some(7));
        assert_eq!(s.pop(1, 0), Some(5));
        assert_eq!(s.pop(1, 0), None);
    }
}
