//! IPv4 fragment reassembly (RFC 791, RFC 815) with bounded memory, and the
//! fragmentation plan for output.
//!
//! Memory: `max_datagrams` slots, each with a 64 KiB buffer, a bitmap of
//! 8-byte blocks and a list of the fragments seen, all allocated in `new`.
//! The *budget* (`max_bytes`) bounds what may be reserved at once: a slot
//! reserves up to the highest byte any of its fragments reached, so a flood
//! of first fragments with huge offsets exhausts the budget, not the
//! machine. When a new fragment needs a slot or budget that is not free, the
//! oldest other datagrams are evicted to make room (as Linux's frag
//! evictor does), so a flood of fragments that never complete cannot keep
//! real datagrams out for a whole timeout; evictions are counted
//! ([`Reassembler::take_evicted`]). Only when eviction cannot make room is
//! the fragment refused with [`FragError::NoSpace`].
//!
//! Overlap policy (as RFC 5722 for IPv6): a fragment that overlaps another
//! of the same datagram drops the whole datagram. An exact duplicate (same
//! offset, same length) is ignored.

use crate::time::{Duration, Instant};
use std::net::Ipv4Addr;

/// The largest IPv4 payload: 65535 - 20.
pub const MAX_PAYLOAD: usize = 65515;
/// Fragments kept per datagram; more drops the datagram.
pub const MAX_FRAGMENTS: usize = 128;
const BLOCKS: usize = 65536 / 8;
const WORDS: usize = BLOCKS / 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ident: u16,
}

#[derive(Clone, Copy, Debug)]
pub struct ReassemblyConfig {
    /// Datagrams reassembled at once.
    pub max_datagrams: usize,
    /// Payload bytes reserved at once, over all datagrams.
    pub max_bytes: usize,
    /// From the first fragment; RFC 1122 suggests 60 s at most.
    pub timeout: Duration,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            max_datagrams: 64,
            max_bytes: 1 << 20,
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragError {
    /// Partially overlaps a fragment already held: the datagram is dropped.
    Overlap,
    /// Past the largest datagram, a non-final fragment not a multiple of 8,
    /// a second different end, data past the end, or too many fragments:
    /// the datagram is dropped.
    TooBig,
    /// No slot or no memory budget: this fragment is dropped.
    NoSpace,
}

/// A completed datagram: valid until the next call into the reassembler.
#[derive(Debug)]
pub struct Reassembled<'a> {
    pub key: FragKey,
    /// The IP header of the offset-0 fragment, options included.
    pub header: &'a [u8],
    pub payload: &'a [u8],
}

struct Slot {
    active: bool,
    key: FragKey,
    first_seen: Instant,
    data: Box<[u8]>,
    blocks: Box<[u64; WORDS]>,
    frags: Vec<(u16, u16)>,
    /// Total payload length, once the last fragment arrived.
    total: Option<usize>,
    received: usize,
    reserved: usize,
    header: [u8; 60],
    header_len: usize,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            active: false,
            key: FragKey {
                src: Ipv4Addr::UNSPECIFIED,
                dst: Ipv4Addr::UNSPECIFIED,
                protocol: 0,
                ident: 0,
            },
            first_seen: Instant::ZERO,
            data: vec![0u8; 65536].into_boxed_slice(),
            blocks: Box::new([0u64; WORDS]),
            frags: Vec::with_capacity(MAX_FRAGMENTS),
            total: None,
            received: 0,
            reserved: 0,
            header: [0; 60],
            header_len: 0,
        }
    }

    fn reset(&mut self, key: FragKey, now: Instant) {
        self.active = true;
        self.key = key;
        self.first_seen = now;
        self.blocks.fill(0);
        self.frags.clear();
        self.total = None;
        self.received = 0;
        self.reserved = 0;
        self.header_len = 0;
    }

    fn any_block_set(&self, from: usize, to: usize) -> bool {
        (from..to).any(|b| self.blocks[b / 64] & (1 << (b % 64)) != 0)
    }

    fn set_blocks(&mut self, from: usize, to: usize) {
        for b in from..to {
            self.blocks[b / 64] |= 1 << (b % 64);
        }
    }
}

pub struct Reassembler {
    cfg: ReassemblyConfig,
    slots: Vec<Slot>,
    in_use: usize,
    /// A slot whose datagram was handed out; freed at the next call.
    completed: Option<usize>,
    evicted: u64,
}

impl Reassembler {
    pub fn new(cfg: ReassemblyConfig) -> Self {
        Reassembler {
            cfg,
            slots: (0..cfg.max_datagrams).map(|_| Slot::new()).collect(),
            in_use: 0,
            completed: None,
            evicted: 0,
        }
    }

    /// Datagrams evicted to make room since the last call.
    pub fn take_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.evicted)
    }

    /// Evict the oldest active datagram other than `keep`; false if none.
    fn evict_oldest(&mut self, keep: Option<usize>) -> bool {
        let victim = self
            .slots
            .iter()
            .enumerate()
            .filter(|(i, s)| s.active && Some(*i) != keep)
            .min_by_key(|(_, s)| s.first_seen)
            .map(|(i, _)| i);
        match victim {
            Some(i) => {
                self.release(i);
                self.evicted += 1;
                true
            }
            None => false,
        }
    }

    fn release(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if s.active {
            s.active = false;
            self.in_use -= s.reserved;
            s.reserved = 0;
        }
    }

    fn release_completed(&mut self) {
        if let Some(i) = self.completed.take() {
            self.release(i);
        }
    }

    /// Feed one fragment (see the module docs for the rules).
    pub fn process_fragment(
        &mut self,
        now: Instant,
        key: FragKey,
        header: &[u8],
        offset: usize,
        more: bool,
        payload: &[u8],
    ) -> Result<Option<Reassembled<'_>>, FragError> {
        self.release_completed();
        let len = payload.len();
        let end = offset + len;
        let existing = self.slots.iter().position(|s| s.active && s.key == key);
        let bad_shape = end > MAX_PAYLOAD
            || (more && (len == 0 || !len.is_multiple_of(8)))
            || !offset.is_multiple_of(8);
        if bad_shape {
            if let Some(i) = existing {
                self.release(i);
            }
            return Err(FragError::TooBig);
        }
        let i = match existing {
            Some(i) => i,
            None => {
                let free = match self.slots.iter().position(|s| !s.active) {
                    Some(i) => Some(i),
                    None if self.evict_oldest(None) => self.slots.iter().position(|s| !s.active),
                    None => None,
                };
                let Some(i) = free else {
                    return Err(FragError::NoSpace);
                };
                self.slots[i].reset(key, now);
                i
            }
        };
        let budget = self.cfg.max_bytes;
        let s = &mut self.slots[i];
        // Exact duplicate: ignore.
        if s.frags
            .iter()
            .any(|&(o, l)| usize::from(o) == offset && usize::from(l) == len)
        {
            return Ok(None);
        }
        // The end of the datagram.
        let past_end = match s.total {
            Some(t) => end > t || (!more && end != t),
            None => {
                !more
                    && s.frags
                        .iter()
                        .any(|&(o, l)| usize::from(o) + usize::from(l) > end)
            }
        };
        if past_end || s.frags.len() >= MAX_FRAGMENTS {
            self.release(i);
            return Err(FragError::TooBig);
        }
        let (b0, b1) = (offset / 8, end.div_ceil(8));
        if s.any_block_set(b0, b1) {
            self.release(i);
            return Err(FragError::Overlap);
        }
        // Reserve memory up to this fragment's end, evicting the oldest
        // other datagrams if the budget is short.
        let extra = end.saturating_sub(s.reserved);
        while extra > 0 && self.in_use + extra > budget {
            if !self.evict_oldest(Some(i)) {
                if self.slots[i].frags.is_empty() {
                    self.release(i);
                }
                return Err(FragError::NoSpace);
            }
        }
        if extra > 0 {
            self.slots[i].reserved = end;
            self.in_use += extra;
        }
        let s = &mut self.slots[i];
        s.data[offset..end].copy_from_slice(payload);
        s.set_blocks(b0, b1);
        s.frags.push((offset as u16, len as u16));
        s.received += len;
        if !more {
            s.total = Some(end);
        }
        if offset == 0 {
            let hl = header.len().min(60);
            s.header[..hl].copy_from_slice(&header[..hl]);
            s.header_len = hl;
        }
        match s.total {
            Some(t) if s.received == t && s.header_len > 0 => {
                self.completed = Some(i);
                let s = &self.slots[i];
                Ok(Some(Reassembled {
                    key: s.key,
                    header: &s.header[..s.header_len],
                    payload: &s.data[..t],
                }))
            }
            _ => Ok(None),
        }
    }

    /// Drop datagrams whose first fragment is older than the timeout.
    /// `on_timeout` gets the key and the offset-0 header of each dropped
    /// datagram that has one (for ICMP time exceeded, RFC 792).
    pub fn expire(&mut self, now: Instant, mut on_timeout: impl FnMut(FragKey, &[u8])) -> usize {
        self.release_completed();
        let mut n = 0;
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.active && now.since(s.first_seen) >= self.cfg.timeout {
                if s.header_len > 0 {
                    on_timeout(s.key, &s.header[..s.header_len]);
                }
                self.release(i);
                n += 1;
            }
        }
        n
    }

    /// Datagrams held.
    pub fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, s)| s.active && self.completed != Some(*i))
            .count()
    }

    /// Payload bytes reserved now.
    pub fn bytes_in_use(&self) -> usize {
        self.in_use
    }

    /// The bound on [`Self::bytes_in_use`].
    pub fn bytes_capacity(&self) -> usize {
        self.cfg.max_bytes
    }

    /// When the oldest datagram times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| s.active)
            .map(|s| s.first_seen.plus(self.cfg.timeout))
            .min()
    }
}

/// Split `payload_len` bytes for `mtu` with a header of `header_len`:
/// (offset, len, more), every non-final len a multiple of 8.
pub fn fragments(
    payload_len: usize,
    header_len: usize,
    mtu: usize,
) -> impl Iterator<Item = (usize, usize, bool)> {
    let per = (mtu.saturating_sub(header_len) / 8 * 8).max(8);
    let count = payload_len.div_ceil(per).max(1);
    (0..count).map(move |k| {
        let off = k * per;
        let len = per.min(payload_len - off);
        (off, len, k + 1 < count)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(ident: u16) -> FragKey {
        FragKey {
            src: Ipv4Addr::new(198, 18, 0, 2),
            dst: Ipv4Addr::new(198, 18, 0, 1),
            protocol: 17,
            ident,
        }
    }

    const HDR: [u8; 20] = [0x45; 20];

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn feed(r: &mut Reassembler, k: FragKey, d: &[u8], order: &[usize]) -> Option<Vec<u8>> {
        let plan: Vec<_> = fragments(d.len(), 20, 1500).collect();
        let mut out = None;
        for &i in order {
            let (o, l, m) = plan[i];
            if let Some(done) = r
                .process_fragment(Instant::ZERO, k, &HDR, o, m, &d[o..o + l])
                .unwrap()
            {
                assert_eq!(done.header, &HDR);
                out = Some(done.payload.to_vec());
            }
        }
        out
    }

    #[test]
    fn reassembles_in_any_order() {
        let d = data(8000);
        let n = fragments(8000, 20, 1500).count();
        assert_eq!(n, 6);
        let orders: Vec<Vec<usize>> = vec![
            (0..n).collect(),
            (0..n).rev().collect(),
            vec![3, 0, 5, 1, 4, 2],
        ];
        for (j, order) in orders.iter().enumerate() {
            let mut r = Reassembler::new(ReassemblyConfig::default());
            assert_eq!(feed(&mut r, key(j as u16), &d, order), Some(d.clone()));
            assert!(r.bytes_in_use() <= r.bytes_capacity());
            // Freed at the next call.
            r.expire(Instant::ZERO, |_, _| {});
            assert_eq!((r.in_flight(), r.bytes_in_use()), (0, 0));
        }
    }

    #[test]
    fn duplicates_are_ignored() {
        let d = data(3000);
        let mut r = Reassembler::new(ReassemblyConfig::default());
        assert_eq!(feed(&mut r, key(1), &d, &[0, 0, 1, 1, 2]), Some(d));
    }

    #[test]
    fn overlap_drops_the_datagram() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let d = data(2000);
        assert!(r
            .process_fragment(Instant::ZERO, key(1), &HDR, 0, true, &d[..1000])
            .unwrap()
            .is_none());
        assert_eq!(
            r.process_fragment(Instant::ZERO, key(1), &HDR, 504, true, &d[504..1504])
                .err(),
            Some(FragError::Overlap)
        );
        assert_eq!((r.in_flight(), r.bytes_in_use()), (0, 0));
    }

    #[test]
    fn impossible_shapes_are_too_big() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let z = [0u8; 1000];
        let t = Instant::ZERO;
        assert_eq!(
            r.process_fragment(t, key(1), &HDR, 65000, false, &z).err(),
            Some(FragError::TooBig)
        );
        assert_eq!(
            r.process_fragment(t, key(2), &HDR, 0, true, &z[..999])
                .err(),
            Some(FragError::TooBig)
        );
        // Two different ends.
        assert!(r
            .process_fragment(t, key(3), &HDR, 1000, false, &z[..100])
            .unwrap()
            .is_none());
        assert_eq!(
            r.process_fragment(t, key(3), &HDR, 1000, false, &z[..200])
                .err(),
            Some(FragError::TooBig)
        );
        // Data past a known end.
        assert!(r
            .process_fragment(t, key(4), &HDR, 0, false, &z[..100])
            .is_ok());
        assert!(r
            .process_fragment(t, key(5), &HDR, 800, false, &z[..100])
            .unwrap()
            .is_none());
        assert_eq!(
            r.process_fragment(t, key(5), &HDR, 896, true, &z[..8])
                .err(),
            Some(FragError::TooBig)
        );
        assert_eq!(r.in_flight(), 0);
        assert_eq!(r.bytes_in_use(), 0);
    }

    #[test]
    fn timeout_hands_back_the_first_header() {
        let cfg = ReassemblyConfig {
            timeout: Duration::from_secs(5),
            ..Default::default()
        };
        let mut r = Reassembler::new(cfg);
        let z = [0u8; 800];
        r.process_fragment(Instant::ZERO, key(1), &HDR, 0, true, &z)
            .unwrap();
        r.process_fragment(Instant::from_secs(1), key(2), &HDR, 800, true, &z)
            .unwrap();
        assert_eq!(r.next_deadline(), Some(Instant::from_secs(5)));
        let mut seen = vec![];
        assert_eq!(
            r.expire(Instant::from_secs(4), |k, h| seen.push((k, h.len()))),
            0
        );
        assert_eq!(
            r.expire(Instant::from_secs(6), |k, h| seen.push((k, h.len()))),
            2
        );
        assert_eq!(seen, vec![(key(1), 20)]);
        assert_eq!(r.bytes_in_use(), 0);
    }

    #[test]
    fn full_table_evicts_the_oldest() {
        let cfg = ReassemblyConfig {
            max_datagrams: 2,
            ..Default::default()
        };
        let mut r = Reassembler::new(cfg);
        let z = [0u8; 800];
        let t = Instant::from_secs;
        r.process_fragment(t(1), key(1), &HDR, 0, true, &z).unwrap();
        r.process_fragment(t(2), key(2), &HDR, 0, true, &z).unwrap();
        let third = r.process_fragment(t(3), key(3), &HDR, 0, true, &z);
        assert!(third.unwrap().is_none());
        assert_eq!(r.take_evicted(), 1);
        assert_eq!(r.take_evicted(), 0);
        // key(1) was the oldest: its tail now starts a new, incomplete datagram.
        let tail = r.process_fragment(t(3), key(1), &HDR, 800, false, &z[..10]);
        assert!(tail.unwrap().is_none());
        assert_eq!(r.take_evicted(), 1);
        let done = r.process_fragment(t(3), key(3), &HDR, 800, false, &z[..10]);
        assert_eq!(done.unwrap().unwrap().payload.len(), 810);
    }

    #[test]
    fn memory_budget_bounds_a_flood() {
        let cfg = ReassemblyConfig {
            max_datagrams: 64,
            max_bytes: 100_000,
            timeout: Duration::from_secs(30),
        };
        let mut r = Reassembler::new(cfg);
        let z = [0u8; 1480];
        for id in 0..1000u16 {
            // Far offsets reserve a lot each: the oldest make way.
            let t = Instant::from_micros(u64::from(id));
            assert!(r
                .process_fragment(t, key(id), &HDR, 40_000, true, &z)
                .is_ok());
            assert!(r.bytes_in_use() <= r.bytes_capacity());
        }
        assert!(r.take_evicted() > 900);
        // A real datagram still gets through during the flood.
        let d = data(8000);
        assert_eq!(feed(&mut r, key(5000), &d, &[0, 1, 2, 3, 4, 5]), Some(d));
        // One fragment larger than the whole budget is refused.
        let small = ReassemblyConfig {
            max_bytes: 1000,
            ..cfg
        };
        let mut r = Reassembler::new(small);
        assert_eq!(
            r.process_fragment(Instant::ZERO, key(1), &HDR, 0, true, &z)
                .err(),
            Some(FragError::NoSpace)
        );
        assert_eq!((r.in_flight(), r.bytes_in_use()), (0, 0));
    }

    #[test]
    fn fragment_plan() {
        for (len, mtu) in [
            (0, 1500),
            (1, 1500),
            (1480, 1500),
            (1481, 1500),
            (8000, 1500),
            (65507, 576),
        ] {
            let plan: Vec<_> = fragments(len, 20, mtu).collect();
            let mut at = 0;
            for (i, &(o, l, m)) in plan.iter().enumerate() {
                assert_eq!(o, at);
                assert!(20 + l <= mtu);
                assert_eq!(m, i + 1 < plan.len());
                if m {
                    assert_eq!(l % 8, 0);
                }
                at += l;
            }
            assert_eq!(at, len);
        }
        assert_eq!(
            fragments(0, 20, 1500).collect::<Vec<_>>(),
            vec![(0, 0, false)]
        );
    }

    proptest! {
        #[test]
        fn random_fragments_never_panic_or_exceed_the_bound(
            frags in proptest::collection::vec((0u16..4, 0usize..70000, any::<bool>(), 0usize..3000), 1..200)
        ) {
            let cfg = ReassemblyConfig { max_datagrams: 4, max_bytes: 50_000, timeout: Duration::from_secs(1) };
            let mut r = Reassembler::new(cfg);
            let z = vec![7u8; 3000];
            for (t, (id, off, more, len)) in frags.into_iter().enumerate() {
                let now = Instant::from_millis(t as u64 * 10);
                let _ = r.process_fragment(now, key(id), &HDR, off, more, &z[..len]);
                prop_assert!(r.bytes_in_use() <= r.bytes_capacity());
                r.expire(now, |_, _| {});
                prop_assert!(r.bytes_in_use() <= r.bytes_capacity());
            }
        }
    }
}
