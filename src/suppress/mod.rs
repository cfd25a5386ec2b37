//! Suppression lists (contract §12): phone numbers that must not be sold,
//! held as a compressed sorted set so that a national do-not-call list of
//! tens of millions of numbers fits in memory and answers in well under a
//! microsecond.
//!
//! A number is the 10-digit NANP number (`lead::phone_number`: the same
//! rule that normalises a lead's phone, so any spelling on either side
//! matches). A plain sorted `Vec<u64>` costs 8 bytes a number (80 MB for 10
//! million); [`SuppressionSet`] costs 1.76 at 10 million:
//!
//! - the sorted numbers are cut into blocks of [`BLOCK`]; each block keeps
//!   its first number in full (`blocks`, beside where its gaps start: one
//!   cache line serves both) and the gaps to the
//!   next ones, less one, bit-packed at the block's own width (the bits of
//!   its largest gap) — dense runs cost 0 bits a number, a uniform list of
//!   10 million about 12;
//! - a sparse index over the numbers' top bits (`top`, about one `u32` per
//!   8 blocks) narrows the binary search over `blocks` to a few;
//! - a lookup binary-searches those few blocks and decodes at most
//!   `BLOCK - 1` gaps of one block: bounded work, no allocation.
//!
//! Memory is bounded whatever the numbers: each block's width is at most
//! the bits of the gaps it spans, so the bit-packed part is at most about
//! `n × (1 + log2(span / (n / BLOCK)))` bits (Jensen), plus 16 bytes a
//! block; measured figures are in docs/performance.md. (Blocks of 128
//! took 1.70 bytes a number and 1.4 µs a lookup on a busy box; 64 trade a
//! little memory for half the decoding.)
//!
//! Loading a file ([`load`]) counts invalid lines instead of failing on
//! them; building is pure. `exchange::suppression` holds the lists at run
//! time and `exchange::stages` checks them (ARCHITECTURE.md, "Security
//! and compliance").

mod load;

pub use load::{load, load_reader, LoadError, Loaded};

use crate::limits;

/// Numbers per block: a lookup decodes at most `BLOCK - 1` gaps.
pub const BLOCK: usize = 64;

/// Blocks per entry of the sparse index, about (a power of two).
const TOP_BLOCKS: u32 = 8;

/// The smallest and largest 10-digit NANP numbers (area code and exchange
/// start with 2–9).
pub const NANP_MIN: u64 = 2_002_000_000;
pub const NANP_MAX: u64 = 9_999_999_999;

/// A compressed sorted set of 10-digit NANP numbers. Immutable once built:
/// a new list file means a new set (built off the request path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionSet {
    len: usize,
    /// Per block: its first number, and the bit offset of its gaps in
    /// `bits` << 6 | their width.
    blocks: Vec<[u64; 2]>,
    /// Every block's gaps (less one), bit-packed; one spare word at the end
    /// so a read never needs a bounds branch.
    bits: Vec<u64>,
    /// `top[p]` = blocks whose first number `>> shift` is below `p`.
    top: Vec<u32>,
    shift: u32,
}

impl SuppressionSet {
    /// The empty set.
    pub fn empty() -> SuppressionSet {
        Builder::default().finish()
    }

    /// A set of any numbers, in any order, duplicates allowed. Each must be
    /// a NANP number (`lead::phone_number`); anything else is a bug here.
    pub fn from_numbers(numbers: impl IntoIterator<Item = u64>) -> SuppressionSet {
        let mut c = Collector::default();
        for n in numbers {
            assert!((NANP_MIN..=NANP_MAX).contains(&n), "not a NANP number: {n}");
            c.push(n);
        }
        c.finish()
    }

    /// Distinct numbers in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the set holds on the heap, and itself: what a list costs.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.blocks.capacity() * 16
            + self.bits.capacity() * 8
            + self.top.capacity() * 4
    }

    /// Whether `number` (a 10-digit NANP number) is in the set.
    pub fn contains(&self, number: u64) -> bool {
        let (Some(&[first, _]), Some(&[last, _])) = (self.blocks.first(), self.blocks.last())
        else {
            return false;
        };
        if number < first {
            return false;
        }
        // Blocks whose prefix is below p start below `number`; blocks
        // from top[p + 1] on start above it. The last block starting at or
        // below `number` is in [top[p] - 1, top[p + 1]).
        let p = ((number >> self.shift) as usize).min(self.top.len() - 2);
        let lo = (self.top[p] as usize).saturating_sub(1);
        let hi = if number >= last {
            self.blocks.len()
        } else {
            self.top[p + 1] as usize
        };
        let at = self.blocks[lo..hi].partition_point(|&[f, _]| f <= number);
        if at == 0 {
            return false;
        }
        self.block_contains(lo + at - 1, number)
    }

    /// Whether block `b` (whose first number is `<= number`) holds `number`.
    fn block_contains(&self, b: usize, number: u64) -> bool {
        let [mut v, meta] = self.blocks[b];
        if v == number {
            return true;
        }
        let (mut at, width) = (meta >> 6, (meta & 63) as u32);
        let n = BLOCK.min(self.len - b * BLOCK);
        for _ in 1..n {
            v += self.read(at, width) + 1;
            at += u64::from(width);
            if v >= number {
                return v == number;
            }
        }
        false
    }

    /// `width` (< 64) bits at bit `at` of `bits`.
    fn read(&self, at: u64, width: u32) -> u64 {
        if width == 0 {
            return 0;
        }
        let (word, bit) = ((at >> 6) as usize, (at & 63) as u32);
        let mut v = self.bits[word] >> bit;
        if bit + width > 64 {
            v |= self.bits[word + 1] << (64 - bit);
        }
        v & ((1u64 << width) - 1)
    }

    /// Every number, in order (tests, tools; not the request path).
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.blocks.len()).flat_map(move |b| {
            let [first, meta] = self.blocks[b];
            let (start, width) = (meta >> 6, (meta & 63) as u32);
            let n = BLOCK.min(self.len - b * BLOCK);
            let mut v = first;
            (0..n).map(move |i| {
                if i > 0 {
                    v += self.read(start + (i as u64 - 1) * u64::from(width), width) + 1;
                }
                v
            })
        })
    }
}

/// Takes strictly increasing numbers and packs them block by block.
#[derive(Default)]
struct Builder {
    len: usize,
    blocks: Vec<[u64; 2]>,
    bits: Vec<u64>,
    bit_len: u64,
    block: Vec<u64>,
    prev: Option<u64>,
}

impl Builder {
    fn push(&mut self, n: u64) {
        // Strictly increasing, across blocks too: a lookup relies on it.
        assert!(
            self.prev.is_none_or(|prev| n > prev),
            "suppression numbers out of order"
        );
        self.prev = Some(n);
        self.block.push(n);
        self.len += 1;
        if self.block.len() == BLOCK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let Some(&first) = self.block.first() else {
            return;
        };
        let max_gap = self.block.windows(2).map(|w| w[1] - w[0] - 1).max();
        let width = max_gap.map_or(0, |g| 64 - g.leading_zeros());
        self.blocks
            .push([first, self.bit_len << 6 | u64::from(width)]);
        let block = std::mem::take(&mut self.block);
        for w in block.windows(2) {
            self.write(w[1] - w[0] - 1, width);
        }
        self.block = block;
        self.block.clear();
    }

    fn write(&mut self, v: u64, width: u32) {
        if width == 0 {
            return;
        }
        let (word, bit) = ((self.bit_len >> 6) as usize, (self.bit_len & 63) as u32);
        while self.bits.len() < word + 2 {
            self.bits.push(0);
        }
        self.bits[word] |= v << bit;
        if bit + width > 64 {
            self.bits[word + 1] |= v >> (64 - bit);
        }
        self.bit_len += u64::from(width);
    }

    fn finish(mut self) -> SuppressionSet {
        self.flush();
        // One spare word: `read` may look one word past the last gap.
        while self.bits.len() < (self.bit_len >> 6) as usize + 2 {
            self.bits.push(0);
        }
        let blocks = self.blocks.len();
        let last = self.blocks.last().map_or(0, |b| b[0]);
        let value_bits = 64 - last.leading_zeros();
        let block_bits = 64 - (blocks as u64).leading_zeros();
        // About one index entry per TOP_BLOCKS blocks: a smaller index
        // stays in cache (and in the TLB), and the search it leaves runs
        // over a few adjacent cache lines of `blocks`.
        let shift = (value_bits + TOP_BLOCKS.trailing_zeros()).saturating_sub(block_bits);
        let prefixes = (last >> shift) as usize + 1;
        let mut top = Vec::with_capacity(prefixes + 1);
        let mut b = 0;
        for p in 0..=prefixes {
            while b < blocks && ((self.blocks[b][0] >> shift) as usize) < p {
                b += 1;
            }
            top.push(b as u32);
        }
        let mut set = SuppressionSet {
            len: self.len,
            blocks: self.blocks,
            bits: self.bits,
            top,
            shift,
        };
        set.blocks.shrink_to_fit();
        set.bits.shrink_to_fit();
        set
    }
}

/// Gathers numbers in any order in 4 bytes each (two halves of `u32`
/// offsets from [`NANP_MIN`], split on bit 32), then sorts, dedupes and
/// packs them. Half of what a `Vec<u64>` would take while loading.
#[derive(Default)]
struct Collector {
    halves: [Vec<u32>; 2],
}

const _: () = assert!(NANP_MAX - NANP_MIN < 1 << 33);
const _: () = assert!(limits::SUPPRESSION_NUMBERS_MAX < u32::MAX as usize);

impl Collector {
    fn with_capacity(n: usize) -> Collector {
        Collector {
            // Each half may get every number; pages never written cost no
            // memory, and no half ever grows (a copy at twice the size).
            halves: [Vec::with_capacity(n), Vec::with_capacity(n)],
        }
    }

    fn len(&self) -> usize {
        self.halves[0].len() + self.halves[1].len()
    }

    fn push(&mut self, n: u64) {
        let off = n - NANP_MIN;
        self.halves[(off >> 32) as usize].push(off as u32);
    }

    fn finish(self) -> SuppressionSet {
        let mut b = Builder::default();
        for (high, mut half) in self.halves.into_iter().enumerate() {
            half.sort_unstable();
            half.dedup();
            let base = NANP_MIN + ((high as u64) << 32);
            for &off in &half {
                b.push(base + u64::from(off));
            }
        }
        b.finish()
    }
}

/// Whether a list file last modified at `mtime_ms` is older than
/// `max_age_days` at `now_ms` (both Unix ms; `now_ms` from the exchange's
/// `Clock`). A file from the future is not stale.
pub fn is_stale(mtime_ms: u64, max_age_days: u32, now_ms: u64) -> bool {
    now_ms.saturating_sub(mtime_ms) > u64::from(max_age_days) * 86_400_000
}

#[cfg(test)]
mod tests;
