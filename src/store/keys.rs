//! How logical trees map onto sled keys.
//!
//! Every logical [`Tree`] lives in ONE sled tree, its keys prefixed with one
//! tag byte. sled 0.34 only makes a batch atomic within one tree
//! (`apply_batch`); cross-tree atomicity would need transactions, which
//! retry and take the same global write lock anyway. A tag byte gives a sale
//! (Leads + Caps + Dedupe + Sales) all-or-nothing recovery for free.

use std::ops::Bound;

/// A logical table. The tag bytes are written to disk: never renumber one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tree {
    Pings,
    Leads,
    Calls,
    Idempotency,
    Caps,
    Dedupe,
    Sales,
    /// Postback events waiting for delivery or given up (contract §13,
    /// `records::keys::outbox_*`).
    Outbox,
    Meta,
}

impl Tree {
    /// Every tree, for tests and tools that walk the whole store.
    pub const ALL: [Tree; 9] = [
        Tree::Pings,
        Tree::Leads,
        Tree::Calls,
        Tree::Idempotency,
        Tree::Caps,
        Tree::Dedupe,
        Tree::Sales,
        Tree::Outbox,
        Tree::Meta,
    ];

    /// The on-disk tag byte. Gaps between tags leave room for later trees.
    pub(crate) const fn tag(self) -> u8 {
        match self {
            Tree::Pings => 0x10,
            Tree::Leads => 0x20,
            Tree::Calls => 0x30,
            Tree::Idempotency => 0x40,
            Tree::Caps => 0x50,
            Tree::Dedupe => 0x60,
            Tree::Sales => 0x70,
            Tree::Outbox => 0x80,
            Tree::Meta => 0xF0,
        }
    }
}

/// The sled key of `key` in `tree`.
pub(crate) fn encode(tree: Tree, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(tree.tag());
    out.extend_from_slice(key);
    out
}

/// The logical key of a sled key (the tag byte removed).
pub(crate) fn decode(raw: &[u8]) -> Vec<u8> {
    raw.get(1..).unwrap_or_default().to_vec()
}

/// sled bounds for logical keys in `[from, to)` of `tree`; an empty `to`
/// means "to the end of the tree". `None` when the range is empty (sled
/// would be asked for a reversed range otherwise).
pub(crate) fn range(tree: Tree, from: &[u8], to: &[u8]) -> Option<(Vec<u8>, Bound<Vec<u8>>)> {
    let lo = encode(tree, from);
    let hi = if to.is_empty() {
        // Every key of this tree sorts below the bare next tag byte.
        vec![tree.tag() + 1]
    } else {
        encode(tree, to)
    };
    (lo < hi).then_some((lo, Bound::Excluded(hi)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_distinct_and_leave_room_for_the_unbounded_end() {
        let mut tags: Vec<u8> = Tree::ALL.iter().map(|t| t.tag()).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), Tree::ALL.len());
        // `range` uses tag + 1 as an exclusive end: it must not overflow.
        assert!(tags.iter().all(|&t| t < u8::MAX));
    }

    #[test]
    fn encode_decode_round_trip() {
        let raw = encode(Tree::Sales, b"abc");
        assert_eq!(raw[0], Tree::Sales.tag());
        assert_eq!(decode(&raw), b"abc");
        assert_eq!(decode(&encode(Tree::Meta, b"")), b"");
    }

    #[test]
    fn range_bounds() {
        assert!(range(Tree::Leads, b"b", b"a").is_none());
        assert!(range(Tree::Leads, b"a", b"a").is_none());
        let (lo, hi) = range(Tree::Leads, b"a", b"").unwrap();
        assert_eq!(lo, encode(Tree::Leads, b"a"));
        assert_eq!(hi, Bound::Excluded(vec![Tree::Leads.tag() + 1]));
        let (_, hi) = range(Tree::Leads, b"", b"z").unwrap();
        assert_eq!(hi, Bound::Excluded(encode(Tree::Leads, b"z")));
    }
}
