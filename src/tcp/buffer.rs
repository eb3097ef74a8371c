//! Send and receive buffers that hold memory only while they hold data.
//!
//! A buffer's capacity is a limit (the window it may offer), not memory it
//! owns. Bytes live in chunks of [`CHUNK`] bytes, taken from this core's
//! pool when data needs them and given back as soon as every byte in them
//! is consumed: an empty buffer holds no chunk, and no chunk table either,
//! so an idle connection costs its `Tcb` and nothing more (the design's
//! "TCP memory": kilobytes per connection, as on Linux).
//!
//! Invariants:
//! - A buffer is a ring of `slots` chunk positions (`capacity / CHUNK + 2`,
//!   enough for `capacity` bytes starting anywhere in a chunk, rounded up
//!   to a power of two); a slot holds a chunk only while some byte in it
//!   is stored and not consumed.
//! - Any range of at most [`CHUNK`] bytes touches at most two chunks, and
//!   [`CHUNK`] is at least the largest segment ([`MAX_SEGMENT`]): a segment
//!   goes out as two slices (the `Tcb`'s emit closure takes two).
//! - The pool ([`set_core_budget`], [`core_stats`]) is per thread, and a
//!   core is one thread; it counts every chunk and table buffers hold, and
//!   refuses new ones past the budget. Free chunks kept for reuse are
//!   bounded ([`SPARE_BYTES`]); beyond that they go back to the allocator.
//!
//! The receive side also keeps out-of-order data: bytes beyond the
//! contiguous part are written where they belong (taking the chunks for
//! that offset then) and their ranges tracked by an [`Assembler`] of
//! bounded size.

use arrayvec::ArrayVec;
use std::cell::RefCell;

/// Bytes per chunk: 9 KiB, the smallest size that holds the largest
/// segment (an MTU of 9000 less 40 bytes of IP and TCP headers), so that
/// any segment spans at most two chunks and goes out as two slices with
/// no change to the emit path. FreeBSD sizes its jumbo clusters the same
/// way (`MJUM9BYTES`). With a 1500-byte MTU a chunk holds six segments;
/// smaller chunks would waste less on a connection holding a few bytes,
/// but would make a jumbo segment span three.
pub const CHUNK: usize = 9 * 1024;

/// The largest segment payload a `Tcb` may send: `--mtu` is at most 9000.
pub const MAX_SEGMENT: usize = 9000 - 40;
const _: () = assert!(MAX_SEGMENT <= CHUNK);

/// The sizes a connection's buffers may be set to, initial or most
/// (`--tcp-buffer`, `--tcp-rmem`, `--tcp-wmem`, `tcp_set_buffer_limits`).
pub const BUFFER_SIZES: std::ops::RangeInclusive<usize> = 4096..=(64 << 20);

/// The largest capacity a buffer takes (`--tcp-buffer` is at most 64 MiB):
/// ring positions fit in a `u32` and chunk counts in a `u16`.
const MAX_CAPACITY: usize = 256 << 20;

/// Free chunks (and tables) the pool keeps for reuse, in bytes. A fresh
/// chunk is a zeroing, page-faulting allocation; a freed one is most often
/// taken again within the same poll (a request read, a response acked),
/// so a few thousand spare chunks absorb bursts. Beyond this, memory goes
/// back to the allocator.
pub const SPARE_BYTES: usize = 16 << 20;

type Chunk = Box<[u8; CHUNK]>;
type Table = Box<[Option<Chunk>]>;

fn table_bytes(slots: usize) -> usize {
    slots * std::mem::size_of::<Option<Chunk>>()
}

/// The buffer memory of one core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes of chunks and chunk tables that buffers hold now.
    pub bytes: usize,
    /// The most `bytes` has been.
    pub peak: usize,
    /// The budget (`usize::MAX`: none).
    pub limit: usize,
    /// Requests for a chunk refused because the budget was reached.
    pub refused: u64,
    /// Free bytes kept for reuse (not in `bytes`).
    pub spare: usize,
}

struct Pool {
    stats: PoolStats,
    chunks: Vec<Chunk>,
    tables: Vec<Table>,
    /// Spare tables that hold a spare chunk in slot 0 (the rest empty):
    /// what a buffer of one chunk gives back as it empties and a first
    /// write takes again, in one move instead of a chunk and a table each
    /// way (make pathcost: every request and response). Counted as the
    /// spare chunks and tables they are; split when a chunk or a table
    /// alone is wanted.
    loaded: Vec<Table>,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            stats: PoolStats {
                bytes: 0,
                peak: 0,
                limit: usize::MAX,
                refused: 0,
                spare: 0,
            },
            chunks: Vec::new(),
            tables: Vec::new(),
            loaded: Vec::new(),
        })
    };
}

/// Set this core's budget for buffer memory, in bytes; call on the core,
/// before its connections carry data. Past it, a send buffer takes less
/// (a short write) and a receive buffer stores less (the peer
/// retransmits); see [`SendBuffer::write`] and [`RecvBuffer::write`].
pub fn set_core_budget(bytes: usize) {
    POOL.with(|p| p.borrow_mut().stats.limit = bytes);
}

/// This core's buffer memory now.
pub fn core_stats() -> PoolStats {
    POOL.with(|p| p.borrow().stats)
}

/// Whether this core's budget has room for `bytes` more now: a buffer
/// grows its capacity (its window) only when the memory to fill the
/// growth could be had (Linux grows no buffer under memory pressure).
pub fn budget_allows(bytes: usize) -> bool {
    with_pool(|p| p.available() >= bytes).unwrap_or(false)
}

/// Run `f` on this thread's pool. None while the thread is being torn
/// down (its buffers then free their memory to the allocator directly).
fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> Option<R> {
    POOL.try_with(|p| p.try_borrow_mut().ok().map(|mut p| f(&mut p)))
        .ok()
        .flatten()
}

impl Pool {
    /// New bytes the budget allows now.
    fn available(&self) -> usize {
        self.stats.limit.saturating_sub(self.stats.bytes)
    }
    fn charge(&mut self, bytes: usize) {
        self.stats.bytes += bytes;
        self.stats.peak = self.stats.peak.max(self.stats.bytes);
    }
    fn take_chunk(&mut self) -> Chunk {
        self.charge(CHUNK);
        if let Some(c) = self.chunks.pop() {
            self.stats.spare -= CHUNK;
            return c;
        }
        // A loaded table's chunk; the table stays spare, empty.
        if let Some(mut t) = self.loaded.pop() {
            if let Some(c) = t[0].take() {
                self.stats.spare -= CHUNK;
                self.tables.push(t);
                return c;
            }
        }
        Box::new([0; CHUNK])
    }
    fn put_chunk(&mut self, c: Chunk) {
        self.stats.bytes -= CHUNK;
        if self.stats.spare + CHUNK <= SPARE_BYTES {
            self.stats.spare += CHUNK;
            self.chunks.push(c);
        }
    }
    fn take_table(&mut self, slots: usize) -> Table {
        let bytes = table_bytes(slots);
        self.charge(bytes);
        // Every connection of a core has the same capacities: the last
        // table is almost always the right size.
        if self.tables.last().is_some_and(|t| t.len() == slots) {
            if let Some(t) = self.tables.pop() {
                self.stats.spare -= bytes;
                return t;
            }
        }
        if let Some(i) = self.tables.iter().rposition(|t| t.len() == slots) {
            self.stats.spare -= bytes;
            return self.tables.swap_remove(i);
        }
        // A loaded table, its chunk left spare.
        if let Some(i) = self.loaded.iter().rposition(|t| t.len() == slots) {
            let mut t = self.loaded.swap_remove(i);
            if let Some(c) = t[0].take() {
                self.chunks.push(c);
            }
            self.stats.spare -= bytes;
            return t;
        }
        (0..slots).map(|_| None).collect()
    }
    /// `take_table(slots)` with `take_chunk()` in its slot 0, in one move
    /// when a loaded table of that size is spare.
    #[inline(always)]
    fn take_loaded(&mut self, slots: usize) -> Table {
        if self.loaded.last().is_some_and(|t| t.len() == slots) {
            if let Some(t) = self.loaded.pop() {
                let bytes = table_bytes(slots) + CHUNK;
                self.charge(bytes);
                self.stats.spare -= bytes;
                return t;
            }
        }
        self.take_apart(slots)
    }
    #[inline(never)]
    fn take_apart(&mut self, slots: usize) -> Table {
        let mut t = self.take_table(slots);
        t[0] = Some(self.take_chunk());
        t
    }
    /// A table whose one chunk is in slot 0: `put_chunk` of the chunk then
    /// `put_table` of the table, kept as one loaded table when both would
    /// be kept.
    #[inline(always)]
    fn put_loaded(&mut self, t: Table) {
        let bytes = table_bytes(t.len()) + CHUNK;
        if self.stats.spare + bytes <= SPARE_BYTES && self.tables.len() + self.loaded.len() < 64 {
            self.stats.bytes -= bytes;
            self.stats.spare += bytes;
            self.loaded.push(t);
            return;
        }
        self.put_apart(t);
    }
    #[inline(never)]
    fn put_apart(&mut self, mut t: Table) {
        if let Some(c) = t[0].take() {
            self.put_chunk(c);
        }
        self.put_table(t);
    }
    /// The table's slots are all empty.
    fn put_table(&mut self, t: Table) {
        let bytes = table_bytes(t.len());
        self.stats.bytes -= bytes;
        if self.stats.spare + bytes <= SPARE_BYTES && self.tables.len() + self.loaded.len() < 64 {
            self.stats.spare += bytes;
            self.tables.push(t);
        }
    }
}

/// A ring of up to `capacity` bytes stored in chunks. Offsets are from the
/// head (the first byte not consumed).
struct Chunks {
    /// None while no chunk is held.
    table: Option<Table>,
    /// Where offset 0 is, as a position in the ring of `slots * CHUNK`.
    head: u32,
    capacity: u32,
    /// Bytes stored contiguously from the head: unacknowledged (send) or
    /// readable (receive). Kept here, in the padding, not in the buffers.
    len: u32,
    /// Chunks in the table.
    held: u16,
    /// log2 of the slots: a power of two, so that a slot is a mask away.
    slot_bits: u8,
}

impl Chunks {
    fn new(capacity: usize) -> Chunks {
        Chunks {
            table: None,
            head: 0,
            capacity: capacity.min(MAX_CAPACITY) as u32,
            len: 0,
            held: 0,
            slot_bits: (capacity.min(MAX_CAPACITY) / CHUNK + 2)
                .next_power_of_two()
                .trailing_zeros() as u8,
        }
    }
    fn capacity(&self) -> usize {
        self.capacity as usize
    }
    fn len(&self) -> usize {
        self.len as usize
    }
    /// At most `capacity`, which fits a `u32`.
    fn set_len(&mut self, len: usize) {
        self.len = len as u32;
    }
    /// Chunk positions in the ring: `capacity` bytes from any point of a
    /// chunk end at most `capacity / CHUNK + 1` chunks further.
    fn slots(&self) -> usize {
        1 << self.slot_bits
    }
    /// (slot, index in the chunk) of `offset` past the head.
    #[inline]
    fn locate(&self, offset: usize) -> (usize, usize) {
        let p = self.head as usize + offset;
        ((p / CHUNK) & (self.slots() - 1), p % CHUNK)
    }
    /// Bytes of buffer memory held.
    fn memory(&self) -> usize {
        self.table.as_ref().map_or(0, |t| table_bytes(t.len())) + self.held as usize * CHUNK
    }

    /// Change the capacity to `capacity`, at least `extent` (how far past
    /// the head bytes are stored), keeping every stored byte at its offset.
    /// A ring of another size has another number of slots: the chunk of
    /// the head goes to slot 0 of the new table, the next to slot 1, and
    /// the head keeps its place in its chunk. Memory is not taken: only a
    /// table of the new size for the chunks already held.
    fn resize(&mut self, pool: &mut Pool, capacity: usize, extent: usize) {
        let capacity = capacity.max(extent).min(MAX_CAPACITY);
        self.capacity = capacity as u32;
        let slot_bits = (capacity / CHUNK + 2).next_power_of_two().trailing_zeros() as u8;
        if slot_bits == self.slot_bits {
            return;
        }
        let old_slots = self.slots();
        self.slot_bits = slot_bits;
        let Some(mut old) = self.table.take() else {
            return;
        };
        let mut table = pool.take_table(self.slots());
        let first = self.head as usize / CHUNK;
        for (j, slot) in table.iter_mut().enumerate().take(old_slots) {
            *slot = old[(first + j) & (old_slots - 1)].take();
        }
        // `extent` bytes from anywhere in the head's chunk lie within
        // `capacity / CHUNK + 2` chunks: none was left behind.
        debug_assert!(old.iter().all(Option::is_none), "a stored chunk lost");
        pool.put_table(old);
        self.head %= CHUNK as u32;
        self.table = Some(table);
    }

    /// How much of `[offset, offset + len)` can be stored with at most
    /// `avail` bytes of new memory: all of it, or up to the first chunk
    /// that cannot be had.
    fn storable(&self, offset: usize, len: usize, avail: usize) -> usize {
        if len == 0 || self.capacity == 0 {
            return 0;
        }
        let table = self.table.as_deref();
        let (slot, at) = self.locate(offset);
        if at + len <= CHUNK {
            // Within one chunk (a segment, most often): what the loop
            // below finds, without it.
            let need = match table {
                None => table_bytes(self.slots()) + CHUNK,
                Some(t) if t[slot].is_none() => CHUNK,
                Some(_) => 0,
            };
            return if avail >= need { len } else { 0 };
        }
        self.storable_by_chunks(offset, len, avail)
    }

    /// `storable`, chunk by chunk: any range.
    fn storable_by_chunks(&self, offset: usize, len: usize, mut avail: usize) -> usize {
        if len == 0 || self.capacity == 0 {
            return 0;
        }
        let table = self.table.as_deref();
        if table.is_none() {
            let t = table_bytes(self.slots());
            if avail < t {
                return 0;
            }
            avail -= t;
        }
        let mut done = 0;
        while done < len {
            let (slot, at) = self.locate(offset + done);
            if table.is_none_or(|t| t[slot].is_none()) {
                if avail < CHUNK {
                    break;
                }
                avail -= CHUNK;
            }
            done += (CHUNK - at).min(len - done);
        }
        done
    }

    /// Copy `data` to `offset`, taking the chunks it needs (the caller
    /// checked with `storable` that the pool may give them).
    fn write_at(&mut self, pool: &mut Pool, offset: usize, data: &[u8]) {
        if data.is_empty() || self.capacity == 0 {
            return;
        }
        let slots = self.slots();
        let (slot, at) = self.locate(offset);
        if at + data.len() <= CHUNK {
            // Within one chunk (a segment, most often): the loop's one turn.
            let table = self.table.get_or_insert_with(|| pool.take_table(slots));
            let chunk = table[slot].get_or_insert_with(|| {
                self.held += 1;
                pool.take_chunk()
            });
            chunk[at..at + data.len()].copy_from_slice(data);
            return;
        }
        let mut done = 0;
        while done < data.len() {
            let (slot, at) = self.locate(offset + done);
            let n = (CHUNK - at).min(data.len() - done);
            let table = self.table.get_or_insert_with(|| pool.take_table(slots));
            let chunk = table[slot].get_or_insert_with(|| {
                self.held += 1;
                pool.take_chunk()
            });
            chunk[at..at + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
    }

    /// Whether `data` would be the first bytes of an empty ring that holds
    /// no table, all in its first chunk: [`Chunks::write_fresh`] stores it.
    #[inline]
    fn fresh(&self, data: &[u8]) -> bool {
        self.table.is_none() && self.head == 0 && self.capacity > 0 && data.len() <= CHUNK
    }

    /// `write_at(0, data)` on a ring that is [`Chunks::fresh`] for it: a
    /// table and one chunk, which the caller let it have past the budget
    /// (a first write always gets its chunk). What the general walk does,
    /// without the walk (make pathcost: every request and response starts
    /// an empty buffer).
    #[inline(always)]
    fn write_fresh(&mut self, pool: &mut Pool, data: &[u8]) {
        debug_assert!(self.fresh(data));
        let mut table = pool.take_loaded(self.slots());
        if let Some(chunk) = table[0].as_mut() {
            chunk[..data.len()].copy_from_slice(data);
        }
        self.held = 1;
        self.table = Some(table);
    }

    /// The stored bytes of `[offset, offset + len)`, chunk by chunk.
    fn pieces(&self, offset: usize, len: usize) -> Pieces<'_> {
        Pieces {
            chunks: self,
            offset,
            end: offset + len,
        }
    }

    /// Move the head `n` bytes on, and give back every chunk that holds no
    /// byte from `live` past the new head on (`usize::MAX`: none is live).
    #[inline(always)]
    fn advance(&mut self, pool: Option<&mut Pool>, n: usize, live: usize) {
        let slots = self.slots();
        let Some(table) = self.table.as_mut() else {
            return;
        };
        let head = self.head as usize;
        if self.held == 1 && live == usize::MAX {
            // Everything consumed, and one chunk held (a request, a
            // response): most often the head's, which the walk would find
            // first; it goes back in its table, moved to slot 0 (a loaded
            // table, [`Pool::put_loaded`]).
            let slot = (head / CHUNK) & (slots - 1);
            if table[slot].is_some() {
                table.swap(0, slot);
                self.held = 0;
                self.head = 0;
                if let (Some(p), Some(t)) = (pool, self.table.take()) {
                    p.put_loaded(t);
                }
                return;
            }
        }
        self.advance_walk(pool, n, live);
    }

    /// `advance`, chunk by chunk.
    #[inline(never)]
    fn advance_walk(&mut self, pool: Option<&mut Pool>, n: usize, live: usize) {
        let slots = self.slots();
        let Some(table) = self.table.as_mut() else {
            return;
        };
        let head = self.head as usize;
        let dead_end = (head + n).saturating_add(live);
        let mut pool = pool;
        let mut start = head - head % CHUNK;
        for _ in 0..slots {
            if start + CHUNK > dead_end || self.held == 0 {
                break;
            }
            if let Some(c) = table[(start / CHUNK) & (slots - 1)].take() {
                self.held -= 1;
                match pool.as_deref_mut() {
                    Some(p) => p.put_chunk(c),
                    None => drop(c),
                }
            }
            start += CHUNK;
        }
        self.head = ((head + n) % (slots * CHUNK)) as u32;
        if self.held == 0 {
            // Nothing stored: the next byte goes to the start of a chunk.
            self.head = 0;
            if let (Some(t), Some(p)) = (self.table.take(), pool) {
                p.put_table(t);
            }
        }
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        if self.table.is_some() && with_pool(|p| self.advance(Some(p), 0, usize::MAX)).is_none() {
            self.advance(None, 0, usize::MAX);
        }
    }
}

/// The stored bytes of a range, one slice per chunk.
struct Pieces<'a> {
    chunks: &'a Chunks,
    offset: usize,
    end: usize,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.offset >= self.end {
            return None;
        }
        let (slot, at) = self.chunks.locate(self.offset);
        let n = (CHUNK - at).min(self.end - self.offset);
        let chunk = self.chunks.table.as_ref()?[slot].as_ref();
        debug_assert!(chunk.is_some(), "stored bytes in a missing chunk");
        self.offset += n;
        Some(&chunk?[at..at + n])
    }
}

/// Bytes the application wrote and the peer has not acknowledged yet. The
/// first byte is the one at SND.UNA (or ISS+1 before the SYN is acked).
pub struct SendBuffer {
    ring: Chunks,
}

impl SendBuffer {
    /// A buffer of up to `capacity` bytes; it holds no memory until written.
    pub fn new(capacity: usize) -> SendBuffer {
        SendBuffer {
            ring: Chunks::new(capacity),
        }
    }
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
    pub fn len(&self) -> usize {
        self.ring.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ring.len() == 0
    }
    pub fn free(&self) -> usize {
        self.capacity() - self.ring.len()
    }
    /// Bytes of memory held now (chunks and their table).
    pub fn memory(&self) -> usize {
        self.ring.memory()
    }

    /// Make the capacity `capacity`, but no less than the bytes held:
    /// growth as the window grows, or the application's fixed size.
    /// Returns the new capacity.
    pub fn set_capacity(&mut self, capacity: usize) -> usize {
        let ring = &mut self.ring;
        let extent = ring.len();
        with_pool(|p| ring.resize(p, capacity, extent));
        self.capacity()
    }

    /// Append as much of `data` as fits; returns how much was taken: less
    /// than all when the buffer is full, or when the core's budget allows
    /// no new chunk (backpressure either way; the application hears it as
    /// a short write). An empty buffer always gets its first chunk, past
    /// the budget if need be: with nothing in flight no ACK would come to
    /// announce room (Linux forces memory for a socket whose queues are
    /// empty the same way, `tcp_stream_alloc_skb`'s `force_schedule`).
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        let at = self.ring.len();
        let first = at == 0;
        let ring = &mut self.ring;
        if first && ring.fresh(&data[..n]) {
            // The first write's chunk, past the budget if need be (as
            // `storable` with the forced allowance below finds).
            if with_pool(|p| ring.write_fresh(p, &data[..n])).is_some() {
                ring.set_len(n);
                return n;
            }
            return 0;
        }
        let k = with_pool(|p| {
            let mut avail = p.available();
            if first {
                avail = avail.max(CHUNK + table_bytes(ring.slots()));
            }
            let k = ring.storable(at, n, avail);
            if k < n {
                p.stats.refused += 1;
            }
            ring.write_at(p, at, &data[..k]);
            k
        })
        .unwrap_or(0);
        self.ring.set_len(self.ring.len() + k);
        k
    }

    /// `len` bytes from `offset`, as up to two slices: the whole range
    /// when `len` is at most [`CHUNK`] (a segment, [`MAX_SEGMENT`]).
    #[inline]
    pub fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        let len = len.min(self.ring.len().saturating_sub(offset));
        debug_assert!(len <= CHUNK, "a segment longer than a chunk");
        if len == 0 {
            return (&[], &[]);
        }
        let (slot, at) = self.ring.locate(offset);
        if at + len <= CHUNK {
            // In one chunk: the first piece is all of it.
            let chunk = self.ring.table.as_ref().and_then(|t| t[slot].as_ref());
            debug_assert!(chunk.is_some(), "stored bytes in a missing chunk");
            return (chunk.map_or(&[][..], |c| &c[at..at + len]), &[]);
        }
        let mut p = self.ring.pieces(offset, len);
        (p.next().unwrap_or(&[]), p.next().unwrap_or(&[]))
    }

    /// Drop `n` acknowledged bytes from the front, giving back the chunks
    /// they emptied.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.ring.len());
        if n == 0 {
            return;
        }
        self.ring.set_len(self.ring.len() - n);
        let live = if self.ring.len() > 0 { 0 } else { usize::MAX };
        let ring = &mut self.ring;
        if with_pool(|p| ring.advance(Some(p), n, live)).is_none() {
            ring.advance(None, n, live);
        }
    }
}

/// Out-of-order ranges, as offsets from RCV.NXT, sorted and disjoint.
/// Offsets are within the receive window, at most [`MAX_CAPACITY`]: they
/// are kept as `u32`, which halves the assembler's share of every `Tcb`.
#[derive(Debug, Default)]
pub struct Assembler {
    ranges: Ranges,
}

type Ranges = ArrayVec<(u32, u32), { Assembler::MAX_RANGES }>;

impl Assembler {
    /// Holes the receiver tracks; a segment that would need more is dropped.
    pub const MAX_RANGES: usize = 16;

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Record `[start, end)`. False if it needs more ranges than we keep.
    pub fn add(&mut self, start: usize, end: usize) -> bool {
        match self.with(start, end) {
            Some(r) => {
                self.ranges = r;
                true
            }
            None => false,
        }
    }

    /// The ranges with `[start, end)` added, None if they would be too many.
    fn with(&self, start: usize, end: usize) -> Option<Ranges> {
        if start >= end {
            return Some(self.ranges.clone());
        }
        debug_assert!(end <= MAX_CAPACITY, "a range past any window");
        let mut merged = (start as u32, end as u32);
        let mut out = Ranges::new();
        let mut placed = false;
        for &(s, e) in &self.ranges {
            if e < merged.0 {
                out.push((s, e));
            } else if s > merged.1 {
                if !placed {
                    out.try_push(merged).ok()?;
                    placed = true;
                }
                out.try_push((s, e)).ok()?;
            } else {
                merged = (merged.0.min(s), merged.1.max(e));
            }
        }
        if !placed {
            out.try_push(merged).ok()?;
        }
        Some(out)
    }

    /// If a range starts at 0, remove it and return its length; shift the
    /// rest down by that much.
    pub fn take_front(&mut self) -> usize {
        match self.ranges.first() {
            Some(&(0, end)) => {
                self.ranges.remove(0);
                self.shift(end as usize);
                end as usize
            }
            _ => 0,
        }
    }

    /// RCV.NXT moved `n` bytes, to below every range: shift them down.
    fn shift(&mut self, n: usize) {
        for r in self.ranges.iter_mut() {
            r.0 -= n as u32;
            r.1 -= n as u32;
        }
    }

    /// The end of the last range (how far past RCV.NXT data is held).
    pub fn end(&self) -> usize {
        self.ranges.last().map_or(0, |r| r.1 as usize)
    }

    /// The ranges, for SACK-like reporting and tests.
    pub fn ranges(&self) -> impl ExactSizeIterator<Item = (usize, usize)> + Clone + '_ {
        self.ranges.iter().map(|&(s, e)| (s as usize, e as usize))
    }

    pub fn clear(&mut self) {
        self.ranges.clear();
    }
}

/// Bytes received: `len` in order, readable by the application, then room
/// for out-of-order data up to the capacity.
pub struct RecvBuffer {
    ring: Chunks,
    ooo: Assembler,
}

/// What [`RecvBuffer::write`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Bytes that became readable in order (RCV.NXT advances by this).
    pub in_order: usize,
    /// The segment (or part of it) was kept out of order.
    pub queued: bool,
    /// The segment needed more out-of-order ranges than we keep.
    pub dropped: bool,
    /// The segment, or its tail from the first chunk the core's budget
    /// refused, was not stored (the peer will send it again).
    pub no_memory: bool,
}

impl RecvBuffer {
    /// A buffer of up to `capacity` bytes; it holds no memory until written.
    pub fn new(capacity: usize) -> RecvBuffer {
        RecvBuffer {
            ring: Chunks::new(capacity),
            ooo: Assembler::default(),
        }
    }
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
    /// Readable bytes.
    pub fn len(&self) -> usize {
        self.ring.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ring.len() == 0
    }
    /// Room past RCV.NXT: the receive window.
    pub fn window(&self) -> usize {
        self.capacity() - self.ring.len()
    }
    pub fn has_out_of_order(&self) -> bool {
        !self.ooo.is_empty()
    }
    pub fn assembler(&self) -> &Assembler {
        &self.ooo
    }
    /// Bytes of memory held now (chunks and their table).
    pub fn memory(&self) -> usize {
        self.ring.memory()
    }

    /// Make the capacity `capacity`, but no less than what is held,
    /// readable and out of order. The caller keeps it from shrinking the
    /// window it advertised (RFC 9293 3.8.6). Returns the new capacity.
    pub fn set_capacity(&mut self, capacity: usize) -> usize {
        let ring = &mut self.ring;
        let extent = ring.len() + self.ooo.end();
        with_pool(|p| ring.resize(p, capacity, extent));
        self.capacity()
    }

    /// Store `data`, which starts `offset` bytes past RCV.NXT. Bytes beyond
    /// the window are cut off (the caller trimmed to the window already).
    /// Past the core's budget, only the part that fits in chunks already
    /// held (a prefix) is stored and `no_memory` is set; the segment that
    /// starts at RCV.NXT while nothing is readable always gets its first
    /// chunk, so that a connection whose application has read everything
    /// still makes progress (Linux's `tcp_data_queue` forces memory for an
    /// empty receive queue).
    #[inline(always)]
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Written {
        // Nearly every segment: in order into an empty buffer that holds
        // no table (an echo's request, the application read the last
        // one), which the general path's first test sends to write_fresh
        // too; here without its call and set-up (make pathcost).
        let window = self.window();
        if offset == 0
            && self.ring.len == 0
            && self.ooo.is_empty()
            && !data.is_empty()
            && self.ring.fresh(&data[..data.len().min(window)])
        {
            return self.write_first(&data[..data.len().min(window)]);
        }
        self.write_general(offset, data, window)
    }

    /// [`RecvBuffer::write`] of `data` at RCV.NXT into an empty buffer
    /// that is [`Chunks::fresh`] for it: its chunk, forced as in
    /// `write_general`.
    #[inline]
    fn write_first(&mut self, data: &[u8]) -> Written {
        let mut w = Written {
            in_order: 0,
            queued: false,
            dropped: false,
            no_memory: false,
        };
        let ring = &mut self.ring;
        match with_pool(|p| ring.write_fresh(p, data)) {
            Some(()) => {
                ring.set_len(data.len());
                w.in_order = data.len();
            }
            // No pool (the thread is ending): nothing stored.
            None => w.no_memory = true,
        }
        w
    }

    /// [`RecvBuffer::write`], any case; `window` is `self.window()`, as
    /// `write` found it.
    #[inline(never)]
    fn write_general(&mut self, offset: usize, data: &[u8], window: usize) -> Written {
        debug_assert_eq!(window, self.window());
        let mut w = Written {
            in_order: 0,
            queued: false,
            dropped: false,
            no_memory: false,
        };
        if offset >= window || data.is_empty() {
            w.dropped = offset >= window && !data.is_empty();
            return w;
        }
        let n = data.len().min(window - offset);
        let at = self.ring.len() + offset;
        let forced = self.ring.len() == 0 && offset == 0;
        let out_of_order = offset > 0 || !self.ooo.is_empty();
        let (ring, ooo) = (&mut self.ring, &mut self.ooo);
        if forced && !out_of_order && ring.fresh(&data[..n]) {
            // In order into an empty buffer: its chunk, forced as below.
            match with_pool(|p| ring.write_fresh(p, &data[..n])) {
                Some(()) => {
                    ring.set_len(n);
                    w.in_order = n;
                }
                // No pool (the thread is ending): nothing stored.
                None => w.no_memory = true,
            }
            return w;
        }
        let stored = with_pool(|p| {
            let mut avail = p.available();
            if forced {
                avail = avail.max(CHUNK + table_bytes(ring.slots()));
            }
            let k = ring.storable(at, n, avail);
            let ranges = if out_of_order && k > 0 {
                match ooo.with(offset, offset + k) {
                    Some(r) => Some(r),
                    // At RCV.NXT the data is readable at once and needs no
                    // range of its own (it touches none: it would have
                    // merged); only a segment past RCV.NXT is refused.
                    None if offset == 0 => None,
                    None => return Err(()),
                }
            } else {
                None
            };
            if k < n {
                p.stats.refused += 1;
            }
            ring.write_at(p, at, &data[..k]);
            if let Some(r) = ranges {
                ooo.ranges = r;
            }
            Ok(k)
        })
        .unwrap_or(Ok(0));
        let k = match stored {
            Ok(k) => k,
            Err(()) => {
                w.dropped = true;
                return w;
            }
        };
        w.no_memory = k < n;
        if k == 0 {
            return w;
        }
        if out_of_order && offset == 0 && self.ooo.ranges.first().is_none_or(|r| r.0 > 0) {
            // In order before every held range (they were all full, so it
            // took none): the ranges move down by what became readable.
            self.ooo.shift(k);
            w.in_order = k;
        } else if out_of_order {
            w.in_order = self.ooo.take_front();
            w.queued = offset > 0;
        } else {
            w.in_order = k;
        }
        self.ring.set_len(self.ring.len() + w.in_order);
        w
    }

    /// Copy readable bytes into `out`, consuming them.
    #[inline]
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.ring.len());
        if n == 0 {
            return 0;
        }
        let (slot, start) = self.ring.locate(0);
        let one = self.ring.table.as_ref().and_then(|t| t[slot].as_ref());
        match one {
            // In one chunk: one copy, no walk.
            Some(c) if start + n <= CHUNK => out[..n].copy_from_slice(&c[start..start + n]),
            _ => {
                let mut at = 0;
                for piece in self.ring.pieces(0, n) {
                    out[at..at + piece.len()].copy_from_slice(piece);
                    at += piece.len();
                }
            }
        }
        self.consume(n);
        n
    }

    /// The readable bytes, one slice per chunk, without consuming them.
    pub fn peek(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.ring.pieces(0, self.ring.len())
    }

    /// Whether [`RecvBuffer::move_into`] can hand every readable byte to
    /// `tx` as it stands: no out-of-order data, the readable bytes alone
    /// in the first chunk of the ring from its start (as the first write
    /// into an empty buffer leaves them), `tx` empty, holding no table, of
    /// the same number of slots, with room for them all.
    #[inline]
    pub fn movable_into(&self, tx: &SendBuffer) -> bool {
        let (r, t) = (&self.ring, &tx.ring);
        r.held == 1
            && r.head == 0
            && r.len > 0
            && self.ooo.is_empty()
            && t.table.is_none()
            && t.len == 0
            && t.head == 0
            && t.slot_bits == r.slot_bits
            && r.len() <= t.capacity()
    }

    /// Move every readable byte to the empty send buffer `tx` without
    /// copying them: the chunk that holds them, with its table, changes
    /// hands ([`RecvBuffer::movable_into`] must hold). Both buffers end as
    /// `read` of everything into a buffer and `tx.write` of it leave them
    /// (the same layout: a table of the same size with the one chunk at
    /// slot 0, the head at 0), and the core's pool counts the same bytes
    /// held (and peak): held all along by one buffer or the other, never
    /// given back and taken again (only its spare count can differ, when
    /// the spares are full and the round trip would have swapped a chunk
    /// for a spare one). An
    /// echo's request becomes its response (make pathcost: two copies and
    /// two trips through the pool less per echo). Returns the bytes moved.
    #[inline]
    pub fn move_into(&mut self, tx: &mut SendBuffer) -> usize {
        debug_assert!(self.movable_into(tx));
        let n = self.ring.len;
        tx.ring.table = self.ring.table.take();
        tx.ring.held = 1;
        tx.ring.len = n;
        self.ring.held = 0;
        self.ring.len = 0;
        n as usize
    }

    /// Consume `n` readable bytes, giving back the chunks they emptied.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.ring.len());
        if n == 0 {
            return;
        }
        self.ring.set_len(self.ring.len() - n);
        // Out-of-order data keeps its chunks (it starts past RCV.NXT).
        let live = if self.ring.len() > 0 {
            0
        } else {
            self.ooo.ranges().next().map_or(usize::MAX, |r| r.0)
        };
        let ring = &mut self.ring;
        if with_pool(|p| ring.advance(Some(p), n, live)).is_none() {
            ring.advance(None, n, live);
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{TcpFlags, TcpOptions, TcpRepr};
    use std::net::SocketAddrV4;

    /// A segment from `remote` to `local`, with a full window.
    fn peer_segment(
        remote: SocketAddrV4,
        local: SocketAddrV4,
        flags: TcpFlags,
        seq: u32,
        ack: u32,
    ) -> TcpRepr {
        TcpRepr {
            src_port: remote.port(),
            dst_port: local.port(),
            seq_number: seq,
            ack_number: ack,
            flags,
            window_len: 65535,
            urgent_at: 0,
            options: TcpOptions::default(),
        }
    }

    /// The chunk table of a buffer of `capacity`.
    fn table_for(capacity: usize) -> usize {
        table_bytes((capacity / CHUNK + 2).next_power_of_two())
    }

    /// Run `f` on a thread of its own: a fresh pool, budget unlimited.
    fn on_fresh_core(f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(f).join().unwrap();
    }

    #[test]
    fn storable_within_a_chunk_is_what_the_chunk_walk_finds() {
        on_fresh_core(|| {
            let mut pool = Pool {
                stats: core_stats(),
                chunks: Vec::new(),
                tables: Vec::new(),
                loaded: Vec::new(),
            };
            let mut ring = Chunks::new(64 * 1024);
            let t = table_bytes(ring.slots());
            let avails = [0, CHUNK - 1, CHUNK, t, t + CHUNK - 1, t + CHUNK, usize::MAX];
            let check = |ring: &Chunks| {
                for offset in [0, 1, 100, CHUNK - 64, CHUNK - 1, CHUNK, 2 * CHUNK + 5] {
                    for len in [0, 1, 64, 1460, CHUNK - offset % CHUNK, CHUNK, CHUNK + 1] {
                        for &avail in &avails {
                            assert_eq!(
                                ring.storable(offset, len, avail),
                                ring.storable_by_chunks(offset, len, avail),
                                "offset {offset} len {len} avail {avail}"
                            );
                        }
                    }
                }
            };
            // No table, then a table with one chunk, then one further on.
            check(&ring);
            ring.write_at(&mut pool, 10, &[1; 64]);
            check(&ring);
            ring.write_at(&mut pool, 2 * CHUNK, &[2; 64]);
            check(&ring);
            ring.advance(Some(&mut pool), 0, usize::MAX);
        });
    }

    /// The pool's spares: (loaded tables, tables, chunks, spare bytes).
    fn spares() -> (usize, usize, usize, usize) {
        POOL.with(|p| {
            let p = p.borrow();
            (
                p.loaded.len(),
                p.tables.len(),
                p.chunks.len(),
                p.stats.spare,
            )
        })
    }

    #[test]
    fn a_one_chunk_buffer_goes_back_and_comes_again_loaded() {
        on_fresh_core(|| {
            let table = table_for(64 * 1024);
            let one = table + CHUNK;
            // A request in, a response out, each one chunk: the table goes
            // back with its chunk in it, and the next first write takes both.
            let mut r = RecvBuffer::new(64 * 1024);
            assert_eq!(r.write(0, &[7; 100]).in_order, 100);
            r.consume(100);
            assert_eq!(spares(), (1, 0, 0, one));
            let mut s = SendBuffer::new(64 * 1024);
            assert_eq!(s.write(&[8; 64]), 64);
            assert_eq!(spares(), (0, 0, 0, 0));
            assert_eq!(s.slices(0, 64), (&[8; 64][..], &[][..]));
            assert_eq!(core_stats().bytes, one);
            // A chunk left in a chunk other than the first goes back to
            // slot 0 of its table: the next write finds it there.
            s.write(&[9; CHUNK - 64]);
            s.write(&[10; 10]);
            s.consume(CHUNK);
            assert_eq!(s.memory(), one);
            s.consume(10);
            // (The first chunk went back alone.)
            assert_eq!(spares(), (1, 0, 1, one + CHUNK));
            let mut r = RecvBuffer::new(64 * 1024);
            assert_eq!(r.write(0, &[11; 5]).in_order, 5);
            assert_eq!(spares(), (0, 0, 1, CHUNK));
            let mut out = [0; 5];
            assert_eq!(r.read(&mut out), 5);
            assert_eq!(out, [11; 5]);
            // No loaded table: a first write takes a table and a chunk.
            let mut a = SendBuffer::new(64 * 1024);
            a.write(&[1; 10]);
            assert_eq!(spares(), (0, 0, 1, CHUNK));
            r.write(0, &[2; 10]);
            assert_eq!(spares(), (0, 0, 0, 0));
            assert_eq!(r.peek().next(), Some(&[2; 10][..]));
            // Two loaded tables, then a buffer that wants three chunks and
            // a table: it splits them, and one more chunk is new.
            a.consume(10);
            r.consume(10);
            assert_eq!(spares(), (2, 0, 0, 2 * one));
            let mut big = SendBuffer::new(64 * 1024);
            assert_eq!(big.write(&vec![3; 2 * CHUNK + 1]), 2 * CHUNK + 1);
            assert_eq!(spares(), (0, 1, 0, table));
            let st = core_stats();
            assert_eq!((st.bytes, st.peak), (table + 3 * CHUNK, table + 3 * CHUNK));
            drop(big);
            assert_eq!(core_stats().bytes, 0);
            assert_eq!(spares().3, 2 * table + 3 * CHUNK);
        });
    }

    /// `RecvBuffer::write` (its first-write fast path) against
    /// `write_general` alone: the same seeded writes, reads and budgets
    /// on two fresh cores give the same results, bytes, memory and pool
    /// stats after every step, and the fast path's case came up.
    #[test]
    fn write_first_is_the_general_path() {
        use crate::fuzzing::pair::Prng;
        fn run(seed: u64, general: bool) -> (Vec<String>, usize) {
            std::thread::spawn(move || {
                let mut rng = Prng(seed);
                let mut trace = Vec::new();
                let mut first = 0;
                if rng.chance(300) {
                    set_core_budget(rng.below(3 * CHUNK as u64) as usize);
                }
                let capacities = [0, 1, 100, 4096, CHUNK, 64 * 1024];
                let capacity = capacities[rng.below(capacities.len() as u64) as usize];
                let mut r = RecvBuffer::new(capacity);
                for step in 0..300u64 {
                    if rng.chance(400) {
                        let mut out = vec![0; rng.below(2 * CHUNK as u64) as usize];
                        let n = r.read(&mut out);
                        trace.push(format!("read {n} {:?}", &out[..n.min(8)]));
                    } else {
                        let offset = if rng.chance(700) {
                            0
                        } else {
                            rng.below(3 * CHUNK as u64) as usize
                        };
                        let lens = [0, 1, 64, 1460, CHUNK - 1, CHUNK, CHUNK + 7];
                        let len = lens[rng.below(lens.len() as u64) as usize];
                        let data: Vec<u8> = (0..len).map(|i| (step as usize + i) as u8).collect();
                        if offset == 0
                            && r.is_empty()
                            && r.memory() == 0
                            && !r.has_out_of_order()
                            && len > 0
                            && capacity > 0
                        {
                            first += 1;
                        }
                        let w = if general {
                            r.write_general(offset, &data, r.window())
                        } else {
                            r.write(offset, &data)
                        };
                        trace.push(format!("write {offset} {len} {w:?}"));
                    }
                    let bytes: Vec<u8> = r.peek().flatten().copied().collect();
                    let ranges: Vec<_> = r.assembler().ranges().collect();
                    trace.push(format!(
                        "len {} window {} memory {} ranges {ranges:?} bytes {bytes:?} {:?}",
                        r.len(),
                        r.window(),
                        r.memory(),
                        core_stats()
                    ));
                }
                (trace, first)
            })
            .join()
            .unwrap()
        }
        let mut taken = 0;
        for seed in 0..200 {
            let (fast, first) = run(seed, false);
            let (general, _) = run(seed, true);
            assert_eq!(fast, general, "seed {seed}");
            taken += first;
        }
        assert!(taken > 1000, "the first-write case came up {taken} times");
    }

    #[test]
    fn idle_buffers_hold_no_memory() {
        on_fresh_core(|| {
            let s = SendBuffer::new(256 * 1024);
            let r = RecvBuffer::new(256 * 1024);
            assert_eq!((s.memory(), r.memory()), (0, 0));
            assert_eq!(s.capacity(), 256 * 1024);
            assert_eq!(r.window(), 256 * 1024);
            assert_eq!(core_stats().bytes, 0);
        });
    }

    #[test]
    fn chunks_go_back_as_they_are_consumed() {
        on_fresh_core(|| {
            let table = table_for(256 * 1024);
            let mut s = SendBuffer::new(256 * 1024);
            let data: Vec<u8> = (0..3 * CHUNK).map(|i| i as u8).collect();
            assert_eq!(s.write(&data), 3 * CHUNK);
            assert_eq!(s.memory(), 3 * CHUNK + table);
            assert_eq!(core_stats().bytes, s.memory());
            // Not quite a chunk: nothing emptied.
            s.consume(CHUNK - 1);
            assert_eq!(s.memory(), 3 * CHUNK + table);
            // The first chunk's last byte: it goes back.
            s.consume(1);
            assert_eq!(s.memory(), 2 * CHUNK + table);
            let (a, b) = s.slices(CHUNK - 10, 20);
            assert_eq!([a, b].concat(), &data[2 * CHUNK - 10..2 * CHUNK + 10]);
            // Drained: no chunk and no table left, and the pool keeps them.
            s.consume(2 * CHUNK);
            assert_eq!(s.memory(), 0);
            let st = core_stats();
            assert_eq!((st.bytes, st.peak), (0, 3 * CHUNK + table));
            assert_eq!(st.spare, 3 * CHUNK + table);

            // The receive side, through read.
            let mut r = RecvBuffer::new(256 * 1024);
            assert_eq!(r.write(0, &data[..CHUNK + 5]).in_order, CHUNK + 5);
            assert_eq!(r.memory(), 2 * CHUNK + table);
            // Reused from the pool, not allocated.
            assert_eq!(core_stats().spare, CHUNK);
            let mut out = vec![0; CHUNK];
            assert_eq!(r.read(&mut out), CHUNK);
            assert_eq!(out, &data[..CHUNK]);
            assert_eq!(r.memory(), CHUNK + table);
            assert_eq!(r.read(&mut out), 5);
            assert_eq!(r.memory(), 0);
            assert_eq!(core_stats().bytes, 0);
        });
    }

    #[test]
    fn dropping_a_buffer_gives_its_chunks_back() {
        on_fresh_core(|| {
            let mut s = SendBuffer::new(64 * 1024);
            s.write(&[1; 20_000]);
            let mut r = RecvBuffer::new(64 * 1024);
            r.write(30_000, &[2; 100]);
            assert!(core_stats().bytes > 0);
            drop((s, r));
            assert_eq!(core_stats().bytes, 0);
        });
    }

    #[test]
    fn spare_chunks_are_bounded() {
        on_fresh_core(|| {
            let n = SPARE_BYTES / CHUNK + 100;
            let mut bufs: Vec<SendBuffer> = (0..n).map(|_| SendBuffer::new(CHUNK)).collect();
            for b in bufs.iter_mut() {
                assert_eq!(b.write(&[0; 10]), 10);
            }
            assert!(core_stats().bytes >= n * CHUNK);
            drop(bufs);
            let st = core_stats();
            assert_eq!(st.bytes, 0);
            assert!(st.spare <= SPARE_BYTES);
            assert!(st.spare + 100 * CHUNK > SPARE_BYTES);
        });
    }

    #[test]
    fn out_of_order_far_in_the_window() {
        on_fresh_core(|| {
            let cap = 256 * 1024;
            let table = table_for(cap);
            let data: Vec<u8> = (0..cap).map(|i| (i % 251) as u8).collect();
            let mut r = RecvBuffer::new(cap);
            // At the right edge of the window: one chunk for it, none for
            // the hole before it.
            let far = cap - 100;
            let w = r.write(far, &data[far..]);
            assert!(w.queued && !w.no_memory && w.in_order == 0);
            assert_eq!(r.memory(), CHUNK + table);
            // Across a chunk boundary: two more.
            let mid = 5 * CHUNK - 50;
            assert!(r.write(mid, &data[mid..mid + 100]).queued);
            assert_eq!(r.memory(), 3 * CHUNK + table);
            // The front arrives; reading it gives back the chunk it
            // emptied, while the out-of-order data keeps its chunks.
            assert_eq!(r.write(0, &data[..1000]).in_order, 1000);
            assert_eq!(r.memory(), 4 * CHUNK + table);
            let mut out = vec![0; 1000];
            assert_eq!(r.read(&mut out), 1000);
            assert_eq!(out, &data[..1000]);
            assert_eq!(r.memory(), 3 * CHUNK + table);
            assert_eq!(
                r.assembler().ranges().collect::<Vec<_>>(),
                [(mid - 1000, mid - 900), (far - 1000, cap - 1000)]
            );
            // The rest in order, in segments: the stream comes out whole.
            let mut nxt = 1000;
            let mut stream = out;
            while nxt < cap {
                let n = (cap - nxt).min(1460);
                let w = r.write(0, &data[nxt..nxt + n]);
                nxt += w.in_order;
                let mut buf = vec![0; r.len()];
                r.read(&mut buf);
                stream.extend_from_slice(&buf);
            }
            assert!(stream == data);
            assert_eq!(r.memory(), 0);
            assert_eq!(core_stats().bytes, 0);
        });
    }

    #[test]
    fn budget_refuses_then_recovers() {
        on_fresh_core(|| {
            let cap = 64 * 1024;
            let table = table_for(cap);
            // Room for one buffer's table and two chunks.
            set_core_budget(table + 2 * CHUNK);
            let mut a = SendBuffer::new(cap);
            assert_eq!(a.write(&vec![1; 3 * CHUNK]), 2 * CHUNK, "a short write");
            assert_eq!(core_stats().refused, 1);
            assert_eq!(a.write(&[1]), 0);
            assert_eq!(core_stats().refused, 2);

            // The receive side: an empty buffer's in-order segment gets
            // its first chunk past the budget.
            let mut r = RecvBuffer::new(cap);
            let w = r.write(0, &vec![2; CHUNK - 100]);
            assert_eq!((w.in_order, w.no_memory), (CHUNK - 100, false));
            // Out of order into that chunk: stored.
            let w = r.write(50, &[4; 10]);
            assert!(w.queued && !w.no_memory);
            // A segment that needs a new chunk: the part that fits in the
            // chunk held is stored, the rest is not.
            let w = r.write(0, &[2; 200]);
            assert_eq!(w.in_order, 100);
            assert!(w.no_memory && !w.dropped);
            assert_eq!(core_stats().refused, 3);
            // Out of order past the budget: nothing stored, nothing tracked.
            let w = r.write(3 * CHUNK, &[3; 10]);
            assert!(w.no_memory && !w.queued && !w.dropped);
            assert!(!r.has_out_of_order());
            assert_eq!(w.in_order, 0);
            let st = core_stats();
            assert_eq!(st.refused, 4);
            assert_eq!(st.bytes, 2 * table + 3 * CHUNK);
            assert!(st.peak > st.limit);

            // Memory comes back as the peer acknowledges and the
            // application reads: both sides go on.
            a.consume(2 * CHUNK);
            assert_eq!(a.memory(), 0);
            let mut out = vec![0; CHUNK];
            assert_eq!(r.read(&mut out), CHUNK);
            assert_eq!(r.memory(), 0);
            let w = r.write(0, &vec![2; CHUNK + 10]);
            assert_eq!((w.in_order, w.no_memory), (CHUNK + 10, false));
            assert_eq!(a.write(&[1; 10]), 10);
            assert_eq!(core_stats().refused, 4);
        });
    }

    /// Growing (autotuning) and shrinking (the application's fixed size) a
    /// buffer that holds data, with the head anywhere in its chunk: every
    /// byte stays where it was in the stream, and memory is what the
    /// bytes need plus a table of the new size.
    #[test]
    fn a_buffer_keeps_its_bytes_across_a_resize() {
        on_fresh_core(|| {
            let data: Vec<u8> = (0..64 * CHUNK).map(|i| (i % 251) as u8).collect();
            let mut s = SendBuffer::new(3 * CHUNK);
            assert_eq!(s.write(&data[..3 * CHUNK]), 3 * CHUNK);
            s.consume(CHUNK + 77);
            let held = s.len();
            assert_eq!(s.set_capacity(40 * CHUNK), 40 * CHUNK);
            assert_eq!(s.write(&data[3 * CHUNK..20 * CHUNK]), 17 * CHUNK);
            let base = CHUNK + 77;
            for offset in (0..s.len() - MAX_SEGMENT).step_by(4099) {
                let (a, b) = s.slices(offset, MAX_SEGMENT);
                let at = base + offset;
                assert!([a, b].concat() == data[at..at + MAX_SEGMENT]);
            }
            // Not below what it holds; then down to a small ring again.
            assert_eq!(s.set_capacity(4096), held + 17 * CHUNK);
            s.consume(s.len() - 100);
            assert_eq!(s.set_capacity(4096), 4096);
            let (a, b) = s.slices(0, 100);
            let at = base + held + 17 * CHUNK - 100;
            assert!([a, b].concat() == data[at..at + 100]);
            assert_eq!(s.memory(), table_bytes(2) + CHUNK);

            // Receiving, with data out of order past a hole.
            let mut r = RecvBuffer::new(2 * CHUNK);
            assert_eq!(r.write(0, &data[..1000]).in_order, 1000);
            // Offsets are from RCV.NXT, 1000 bytes into the stream now.
            let w = r.write(4000, &data[5000..2 * CHUNK]);
            assert!(w.queued);
            assert_eq!(r.set_capacity(100), 2 * CHUNK, "the data it holds stays");
            assert_eq!(r.set_capacity(30 * CHUNK), 30 * CHUNK);
            assert_eq!(r.write(0, &data[1000..5000]).in_order, 2 * CHUNK - 1000);
            assert_eq!(
                r.write(0, &data[2 * CHUNK..29 * CHUNK]).in_order,
                27 * CHUNK
            );
            let mut out = vec![0; 29 * CHUNK];
            assert_eq!(r.read(&mut out), 29 * CHUNK);
            assert!(out == data[..29 * CHUNK]);
            assert_eq!(r.memory(), 0);
            assert_eq!(core_stats().bytes, table_bytes(2) + CHUNK);
        });
    }

    #[test]
    fn an_empty_send_buffer_always_takes_a_chunk() {
        on_fresh_core(|| {
            set_core_budget(0);
            let mut s = SendBuffer::new(64 * 1024);
            // One chunk past a budget of nothing: no write waits forever
            // for an ACK that cannot come.
            assert_eq!(s.write(&vec![1; 2 * CHUNK]), CHUNK);
            assert_eq!(s.write(&[1]), 0);
            s.consume(CHUNK);
            assert_eq!(s.write(&[1; 5]), 5);
        });
    }

    #[test]
    fn a_segment_is_two_slices_at_any_alignment() {
        on_fresh_core(|| {
            let data: Vec<u8> = (0..40 * CHUNK).map(|i| (i % 253) as u8).collect();
            let mut s = SendBuffer::new(3 * CHUNK);
            // `una` walks the stream and the head around the ring.
            let (mut una, mut end) = (0, 0);
            for step in [1, CHUNK - MAX_SEGMENT, 7, CHUNK - 1, CHUNK, 4000, 3 * CHUNK] {
                end += s.write(&data[end..end + 3 * CHUNK]);
                for offset in [0, 1, 255, 256, CHUNK - 1, CHUNK, 2 * CHUNK - 13] {
                    if una + offset + MAX_SEGMENT <= end {
                        let (a, b) = s.slices(offset, MAX_SEGMENT);
                        let at = una + offset;
                        assert!([a, b].concat() == data[at..at + MAX_SEGMENT]);
                    }
                }
                s.consume(step);
                una += step.min(end - una);
            }
        });
    }

    /// What an idle connection costs: connections accepted through a
    /// table, a request read and a response sent and acknowledged on each,
    /// hold no buffer memory once idle. Prints the cost per connection
    /// (`cargo test --lib idle_established -- --nocapture`).
    #[test]
    fn idle_established_connections_hold_no_buffer_memory() {
        use crate::hash::FlowMap;
        use crate::stats::Counters;
        use crate::tcp::isn::IsnGenerator;
        use crate::tcp::table::FlowKey;
        use crate::tcp::{State, Tcb, TcpConfig, TcpTable};
        use crate::time::Instant;
        use crate::wire::TcpFlags;
        use std::mem::size_of;
        use std::net::{Ipv4Addr, SocketAddrV4};
        on_fresh_core(|| {
            const N: usize = 2000;
            // The default buffers: 256 KiB each way, 1 GiB per 2000
            // connections as fixed rings.
            let cfg = TcpConfig {
                max_connections: N,
                ..Default::default()
            };
            let mut table = TcpTable::new(cfg, IsnGenerator::new(), Instant::ZERO);
            let local = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
            let (iss, irs) = (1000u32, 5000u32);
            let now = Instant::from_secs(1);
            let mut c = Counters::default();
            let mut ids = Vec::new();
            for i in 0..N {
                let remote = SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 2), 1024 + i as u16);
                let seg = |flags, seq, ack| peer_segment(remote, local, flags, seq, ack);
                let mut syn = seg(TcpFlags::SYN, irs, 0);
                syn.options.mss = Some(1460);
                let tcb = Tcb::accept(&cfg, now, local, remote, iss, 0, &syn);
                assert_eq!(
                    tcb.buffer_bytes(),
                    0,
                    "a half-open connection holds no buffer"
                );
                let id = table.insert(now, Box::new(tcb)).unwrap();
                let mut tcb = table.take(id.index).unwrap();
                tcb.dispatch(now, &mut |_, _, _| true);
                let request = b"GET / HTTP/1.1\r\n\r\n";
                let ack = TcpFlags::ACK;
                tcb.process(
                    now,
                    &seg(ack | TcpFlags::PSH, irs + 1, iss + 1),
                    request,
                    &mut c,
                );
                assert_eq!(tcb.state, State::Established);
                assert!(tcb.buffer_bytes() > 0);
                assert_eq!(tcb.recv(&mut [0; 64]), request.len());
                // Two full segments (Nagle would hold a third, short one).
                assert_eq!(tcb.send(&[b'x'; 2920]), 2920);
                let mut sent = 0;
                tcb.dispatch(now, &mut |_, a, b| {
                    sent += a.len() + b.len();
                    true
                });
                assert_eq!(sent, 2920);
                let acked = iss + 1 + 2920;
                tcb.process(
                    now,
                    &seg(ack, irs + 1 + request.len() as u32, acked),
                    b"",
                    &mut c,
                );
                assert_eq!(table.put(now, id.index, tcb), None);
                ids.push(id);
            }
            let st = core_stats();
            assert_eq!(st.bytes, 0, "idle connections hold no chunk");
            assert!(st.peak > 0);
            for id in &ids {
                let tcb = table.take(id.index).unwrap();
                assert_eq!(tcb.state, State::Established);
                assert_eq!(tcb.unsent_or_unacked(), 0);
                assert_eq!(tcb.buffer_bytes(), 0);
                assert_eq!(table.put(now, id.index, tcb), None);
            }
            assert_eq!(table.len(), N);

            // What one costs: the Tcb on the heap (glibc: an 8-byte header,
            // 16-byte granules), its slot in the table (with its share of
            // the table's per-slot lists) and its entry in
            // the 4-tuple index (entry and control byte per bucket, at the
            // index's load).
            let tcb = size_of::<Tcb>();
            let boxed = (tcb + 8).next_multiple_of(16);
            let slot = TcpTable::fixed_bytes_per_slot();
            let map: FlowMap<FlowKey, u32> =
                FlowMap::with_capacity_and_hasher(N, Default::default());
            let buckets = (map.capacity() * 8).div_ceil(7).next_power_of_two();
            let index = (buckets * (size_of::<(FlowKey, u32)>() + 1)).div_ceil(N);
            let total = boxed + slot + index;
            eprintln!(
                "idle established connection: Tcb {tcb} B (boxed {boxed}) + slot {slot} \
                 + index {index} = {total} B; buffer memory 0 (was {} B of rings)",
                cfg.rx_buffer + cfg.tx_buffer
            );
            // The bound: at most 8 KB, TCB included.
            assert!(total <= 8 * 1024, "{total} B");
        });
    }

    /// A connection at the budget: the segment is counted as dropped for
    /// memory and acknowledged at once (RCV.NXT unchanged), and the peer's
    /// retransmission is taken once memory is back.
    #[test]
    fn a_connection_at_the_budget_drops_acks_and_recovers() {
        use crate::stats::{Counters, DropReason};
        use crate::tcp::{State, Tcb, TcpConfig};
        use crate::time::Instant;
        use crate::wire::TcpFlags;
        use std::net::{Ipv4Addr, SocketAddrV4};
        on_fresh_core(|| {
            let cfg = TcpConfig::default();
            let local = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
            let remote = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40000);
            let (iss, irs) = (1000u32, 5000u32);
            let seg = |flags, seq, ack| peer_segment(remote, local, flags, seq, ack);
            let now = Instant::from_secs(1);
            let mut c = Counters::default();
            let syn = seg(TcpFlags::SYN, irs, 0);
            let mut tcb = Tcb::accept(&cfg, now, local, remote, iss, 0, &syn);
            tcb.dispatch(now, &mut |_, _, _| true);
            let ack = TcpFlags::ACK;
            tcb.process(now, &seg(ack, irs + 1, iss + 1), b"", &mut c);
            assert_eq!(tcb.state, State::Established);

            set_core_budget(0);
            // Out of order past the budget: not stored, counted, and
            // acknowledged at once.
            let far = irs + 1 + 3 * CHUNK as u32;
            tcb.process(now, &seg(ack, far, iss + 1), &[7; 100], &mut c);
            assert_eq!(c.dropped(DropReason::TcpNoMemory), 1);
            assert_eq!(c.tcp_ooo_segments, 0);
            assert_eq!(tcb.buffer_bytes(), 0);
            let mut acks = Vec::new();
            tcb.dispatch(now, &mut |r, _, _| {
                acks.push(r.ack_number);
                true
            });
            assert_eq!(acks, vec![irs + 1]);

            // Memory is back: the retransmission is kept.
            set_core_budget(usize::MAX);
            tcb.process(now, &seg(ack, far, iss + 1), &[7; 100], &mut c);
            assert_eq!(c.dropped(DropReason::TcpNoMemory), 1);
            assert_eq!(c.tcp_ooo_segments, 1);
            assert!(tcb.buffer_bytes() > 0);
        });
    }

    use proptest::prelude::*;

    #[test]
    fn send_ring_wraps() {
        let mut s = SendBuffer::new(8);
        assert_eq!(s.write(b"abcdef"), 6);
        s.consume(4);
        assert_eq!(s.write(b"ghijklmn"), 6);
        let (a, b) = s.slices(0, 8);
        assert_eq!([a, b].concat(), b"efghijkl");
        let (a, b) = s.slices(3, 10);
        assert_eq!([a, b].concat(), b"hijkl");
        assert_eq!(s.free(), 0);
    }

    #[test]
    fn assembler_merges() {
        let mut a = Assembler::default();
        assert!(a.add(10, 20));
        assert!(a.add(30, 40));
        assert!(a.add(15, 32));
        assert_eq!(a.ranges().collect::<Vec<_>>(), [(10, 40)]);
        assert_eq!(a.take_front(), 0);
        assert!(a.add(0, 10));
        assert_eq!(a.take_front(), 40);
        assert!(a.is_empty());
    }

    #[test]
    fn assembler_is_bounded() {
        let mut a = Assembler::default();
        for i in 0..Assembler::MAX_RANGES {
            assert!(a.add(i * 10 + 5, i * 10 + 6));
        }
        assert!(!a.add(1000, 1001));
        // Merging into an existing range needs no new one.
        assert!(a.add(5, 7));
    }

    #[test]
    fn recv_out_of_order() {
        let mut r = RecvBuffer::new(16);
        let w = r.write(4, b"efgh");
        assert_eq!(w.in_order, 0);
        assert!(w.queued);
        assert_eq!(r.len(), 0);
        let w = r.write(0, b"abcd");
        assert_eq!(w.in_order, 8);
        let mut out = [0u8; 16];
        assert_eq!(r.read(&mut out), 8);
        assert_eq!(&out[..8], b"abcdefgh");
        // Beyond the window is cut.
        let w = r.write(0, &[7u8; 20]);
        assert_eq!(w.in_order, 16);
        assert_eq!(r.window(), 0);
    }

    /// `move_into` leaves both buffers and the pool's count as `read` of
    /// everything and `write` of it do, and is offered only when it can.
    #[test]
    fn move_into_is_read_and_write() {
        let data: Vec<u8> = (0..CHUNK).map(|i| (i * 13 + 5) as u8).collect();
        for (rx_cap, tx_cap, n, skip) in [
            (128 * 1024, 128 * 1024, 64, 0),
            (128 * 1024, 128 * 1024, CHUNK, 0),
            (4096, 4096, 4096, 0),
            (4096, 100, 200, 0),
            (128 * 1024, 1 << 20, 64, 0),
            (128 * 1024, 128 * 1024, 64, 10),
        ] {
            let fill = |r: &mut RecvBuffer| {
                // `skip` bytes read first: the rest no longer starts the ring.
                let w = r.write(0, &data[..skip + n]);
                assert_eq!(w.in_order, skip + n);
                let mut sink = vec![0; skip];
                r.read(&mut sink);
            };
            let (mut r1, mut t1) = (RecvBuffer::new(rx_cap), SendBuffer::new(tx_cap));
            fill(&mut r1);
            let mut out = vec![0; CHUNK];
            let k = r1.read(&mut out);
            t1.write(&out[..k]);
            let general = (core_stats().bytes, r1.memory(), t1.memory());
            let (mut r2, mut t2) = (RecvBuffer::new(rx_cap), SendBuffer::new(tx_cap));
            fill(&mut r2);
            let fits = n <= tx_cap
                && (rx_cap / CHUNK + 2).next_power_of_two()
                    == (tx_cap / CHUNK + 2).next_power_of_two();
            assert_eq!(
                r2.movable_into(&t2),
                fits && skip == 0,
                "{rx_cap} {tx_cap} {n} {skip}"
            );
            if !r2.movable_into(&t2) {
                continue;
            }
            let bytes = core_stats().bytes;
            assert_eq!(r2.move_into(&mut t2), n);
            assert_eq!(core_stats().bytes, bytes, "no memory taken or given");
            assert_eq!(r2.len(), 0);
            assert_eq!(r2.memory(), 0);
            assert_eq!(t2.len(), t1.len());
            assert_eq!(t2.slices(0, n), t1.slices(0, n));
            assert_eq!(t2.ring.head, t1.ring.head);
            // Both pairs hold the same now: the pool's count is the same.
            drop((r1, t1));
            assert_eq!((core_stats().bytes, r2.memory(), t2.memory()), general);
            // And appending afterwards lands the same way.
            assert_eq!(t2.write(&data[..100]), 100.min(tx_cap - n));
        }
    }

    #[derive(Clone, Debug)]
    enum SendOp {
        Write(usize),
        Consume(usize),
        Segment(usize, usize),
    }

    fn send_op() -> impl Strategy<Value = SendOp> {
        prop_oneof![
            (0usize..3 * CHUNK).prop_map(SendOp::Write),
            (0usize..3 * CHUNK).prop_map(SendOp::Consume),
            (0usize..3 * CHUNK, 0usize..=MAX_SEGMENT).prop_map(|(o, l)| SendOp::Segment(o, l)),
        ]
    }

    proptest! {
        /// Any arrival order of a stream's segments reassembles it exactly.
        #[test]
        fn reassembles_any_order(
            cuts in proptest::collection::vec(1usize..200, 1..20),
            seed in any::<u64>(),
        ) {
            let total: usize = cuts.iter().sum();
            let data: Vec<u8> = (0..total).map(|i| (i * 7 + 3) as u8).collect();
            let mut segs = Vec::new();
            let mut at = 0;
            for c in &cuts {
                segs.push((at, *c));
                at += c;
            }
            // Deterministic shuffle.
            let mut s = seed;
            for i in (1..segs.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                segs.swap(i, (s >> 33) as usize % (i + 1));
            }
            let mut r = RecvBuffer::new(total);
            let mut nxt = 0;
            for (start, len) in segs {
                // The caller trims what is below RCV.NXT.
                if start + len <= nxt {
                    continue;
                }
                let skip = nxt.saturating_sub(start);
                let w = r.write(start + skip - nxt, &data[start + skip..start + len]);
                prop_assert!(!w.dropped || Assembler::MAX_RANGES < cuts.len());
                nxt += w.in_order;
            }
            if nxt == total {
                let mut out = vec![0; total];
                prop_assert_eq!(r.read(&mut out), total);
                prop_assert_eq!(out, data);
            }
        }

        /// The send buffer behaves as a byte queue of bounded length
        /// (a Vec model), and holds memory exactly while it holds bytes.
        #[test]
        fn send_buffer_is_a_bounded_queue(
            capacity in 1usize..4 * CHUNK,
            ops in proptest::collection::vec(send_op(), 1..60),
        ) {
            let mut s = SendBuffer::new(capacity);
            let mut model: Vec<u8> = Vec::new();
            let mut next = 0u8;
            for op in ops {
                match op {
                    SendOp::Write(n) => {
                        let data: Vec<u8> = (0..n).map(|i| next.wrapping_add(i as u8)).collect();
                        next = next.wrapping_add(n as u8).wrapping_add(1);
                        let k = s.write(&data);
                        prop_assert_eq!(k, n.min(capacity - model.len()));
                        model.extend_from_slice(&data[..k]);
                    }
                    SendOp::Consume(n) => {
                        s.consume(n);
                        model.drain(..n.min(model.len()));
                    }
                    SendOp::Segment(offset, len) => {
                        let (a, b) = s.slices(offset, len);
                        let from = offset.min(model.len());
                        let to = (offset + len).min(model.len()).max(from);
                        prop_assert!([a, b].concat() == model[from..to]);
                    }
                }
                prop_assert_eq!(s.len(), model.len());
                prop_assert_eq!(s.free(), capacity - model.len());
                let chunks = s.memory() / CHUNK;
                prop_assert_eq!(chunks == 0, model.is_empty());
                // Only chunks with unacknowledged bytes are held.
                prop_assert!(chunks <= model.len().div_ceil(CHUNK) + 1);
            }
        }
    }
}
