//! Suppression lists at run time (contract §12): the `[[suppression]]`
//! files, loaded with each `Runtime` (start-up and the reload thread, never
//! on a request), and the durable internal list, kept in the store under
//! `Tree::Meta` and in memory, changed only by the admin API.
//!
//! `Exchange::post` and `Exchange::direct` call [`Lists::check`] and
//! [`Internal::contains`] before any buyer is called (`stages`).

use std::collections::HashSet;
use std::time::UNIX_EPOCH;

use crate::config::{ConfigError, Suppression, INTERNAL_LIST_ID};
use crate::store::{Batch, Store, StoreError, Tree};
use crate::suppress::{self, SuppressionSet};
use crate::sync::RwLock;

/// One `[[suppression]]` file as loaded.
pub struct FileList {
    pub id: String,
    pub verticals: Vec<String>,
    pub max_age_days: Option<u32>,
    /// The file's mtime when it was loaded (Unix ms).
    pub mtime_ms: u64,
    pub set: SuppressionSet,
}

/// Every `[[suppression]]` file of one config.
#[derive(Default)]
pub struct Lists(Vec<FileList>);

/// Why a lead may not be sold: a list of its vertical holds its phone
/// (`Suppressed`), or a list of its vertical is older than its
/// `max_age_days` (`Stale`), so nobody can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    Suppressed { list: String },
    Stale { list: String },
}

impl Lists {
    /// Loads every list (blocking: reads files). A list that cannot be read
    /// is an error on `suppression[i].path`; invalid lines are logged.
    pub fn load(cfgs: &[Suppression]) -> Result<Lists, Vec<ConfigError>> {
        let mut out = Vec::with_capacity(cfgs.len());
        let mut errors = Vec::new();
        for (i, c) in cfgs.iter().enumerate() {
            let key = format!("suppression[{i}].path");
            let mtime_ms = std::fs::metadata(&c.path)
                .and_then(|m| m.modified())
                .map(|t| {
                    t.duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64)
                });
            let loaded = mtime_ms
                .map_err(suppress::LoadError::Io)
                .and_then(|mtime| suppress::load(&c.path).map(|l| (mtime, l)));
            match loaded {
                Ok((mtime_ms, l)) => {
                    if l.invalid_lines > 0 {
                        log::warn!(target: "leadx::suppress", "list has invalid lines, skipped list={} invalid_lines={} first_invalid_line={}", c.id, l.invalid_lines, l.first_invalid_line.unwrap_or(0));
                    }
                    log::info!(target: "leadx::suppress", "list loaded list={} numbers={} bytes={}", c.id, l.set.len(), l.set.bytes());
                    out.push(FileList {
                        id: c.id.clone(),
                        verticals: c.verticals.clone(),
                        max_age_days: c.max_age_days,
                        mtime_ms,
                        set: l.set,
                    });
                }
                Err(e) => errors.push(ConfigError {
                    key,
                    message: format!("{}: {e}", c.path.display()),
                }),
            }
        }
        if errors.is_empty() {
            Ok(Lists(out))
        } else {
            Err(errors)
        }
    }

    /// The lists of `vertical`: a stale one blocks every lead (checked
    /// first), else one holding `number` does.
    pub fn check(&self, vertical: &str, number: Option<u64>, now_ms: u64) -> Result<(), Blocked> {
        let of_vertical = || {
            self.0
                .iter()
                .filter(|l| l.verticals.iter().any(|v| v == vertical))
        };
        if let Some(l) = of_vertical().find(|l| {
            l.max_age_days
                .is_some_and(|d| suppress::is_stale(l.mtime_ms, d, now_ms))
        }) {
            return Err(Blocked::Stale { list: l.id.clone() });
        }
        let Some(n) = number else { return Ok(()) };
        match of_vertical().find(|l| l.set.contains(n)) {
            Some(l) => Err(Blocked::Suppressed { list: l.id.clone() }),
            None => Ok(()),
        }
    }
}

/// The internal list: durable in the store (one `Tree::Meta` key a
/// number), mirrored in memory for lookups. The lock guards a set insert
/// or lookup; the store write happens before it is taken.
#[derive(Default)]
pub struct Internal {
    numbers: RwLock<HashSet<u64>>,
}

/// Key prefix of the internal list's numbers in `Tree::Meta`.
const PREFIX: &[u8] = b"suppressed/";

fn key(n: u64) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(&n.to_be_bytes());
    k
}

impl Internal {
    /// Reads the list from the store (start-up).
    pub fn open(store: &Store) -> Result<Internal, StoreError> {
        let rows = store.scan_prefix(Tree::Meta, PREFIX, usize::MAX)?;
        let numbers = rows
            .iter()
            .filter_map(|(k, _)| {
                let tail: [u8; 8] = k.get(k.len().checked_sub(8)?..)?.try_into().ok()?;
                Some(u64::from_be_bytes(tail))
            })
            .collect();
        Ok(Internal {
            numbers: RwLock::new(numbers),
        })
    }

    pub fn contains(&self, n: u64) -> bool {
        self.numbers.read().contains(&n)
    }

    pub fn len(&self) -> usize {
        self.numbers.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds (`add`) or removes `numbers`, durably, then in memory.
    pub fn change(&self, store: &Store, numbers: &[u64], add: bool) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        for &n in numbers {
            if add {
                batch.insert(Tree::Meta, key(n), Vec::new());
            } else {
                batch.remove(Tree::Meta, key(n));
            }
        }
        store.write_durable(batch)?;
        let mut set = self.numbers.write();
        for n in numbers {
            if add {
                set.insert(*n);
            } else {
                set.remove(n);
            }
        }
        Ok(())
    }
}

/// The internal list's id, as refusals and logs name it.
pub const INTERNAL: &str = INTERNAL_LIST_ID;

#[cfg(test)]
mod tests {
    use super::*;

    fn list(id: &str, mtime_ms: u64, days: Option<u32>, numbers: &[u64]) -> FileList {
        FileList {
            id: id.into(),
            verticals: vec!["auto".into()],
            max_age_days: days,
            mtime_ms,
            set: SuppressionSet::from_numbers(numbers.iter().copied()),
        }
    }

    #[test]
    fn a_list_blocks_its_verticals_only_and_a_stale_one_blocks_all() {
        const DAY: u64 = 86_400_000;
        let now = 100 * DAY;
        let lists = Lists(vec![list("dnc", now - DAY, Some(31), &[2_125_550_100])]);
        let blocked = Blocked::Suppressed { list: "dnc".into() };
        assert_eq!(lists.check("auto", Some(2_125_550_100), now), Err(blocked));
        assert_eq!(lists.check("auto", Some(2_125_550_101), now), Ok(()));
        assert_eq!(lists.check("auto", None, now), Ok(()));
        assert_eq!(lists.check("home", Some(2_125_550_100), now), Ok(()));
        let later = now + 31 * DAY;
        let stale = Blocked::Stale { list: "dnc".into() };
        assert_eq!(lists.check("auto", Some(2_125_550_101), later), Err(stale));
        assert_eq!(lists.check("home", Some(2_125_550_100), later), Ok(()));
    }
}
