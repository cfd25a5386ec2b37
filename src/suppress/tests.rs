use std::collections::BTreeSet;
use std::io::Read;

use super::*;

/// splitmix64: seeded, reproducible, no crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A NANP number: uniform over the range (a few non-NANP ones in the
    /// range, like 2001..., are fine for the set itself).
    fn number(&mut self) -> u64 {
        NANP_MIN + self.below(NANP_MAX - NANP_MIN + 1)
    }
}

/// Numbers in several shapes: uniform, dense runs (gap 0 → width 0),
/// clusters with huge gaps between, and the edges, with duplicates.
fn random_numbers(rng: &mut Rng, n: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(n + 4);
    match rng.below(4) {
        0 => out.extend((0..n).map(|_| rng.number())),
        1 => {
            let start = NANP_MIN + rng.below(1_000_000);
            out.extend((0..n as u64).map(|i| start + i));
        }
        2 => {
            while out.len() < n {
                let base = rng.number().min(NANP_MAX - 10_000);
                let run = 1 + rng.below(300) as usize;
                out.extend((0..run.min(n - out.len())).map(|_| base + rng.below(10_000)));
            }
        }
        _ => {
            out.extend((0..n).map(|_| rng.number()));
            out.extend([NANP_MIN, NANP_MAX, NANP_MIN + 1, NANP_MAX - 1]);
        }
    }
    // Duplicates.
    for _ in 0..rng.below(5) {
        if let Some(&v) = out.get(rng.below(out.len().max(1) as u64) as usize) {
            out.push(v);
        }
    }
    out
}

fn check_against_model(numbers: &[u64], rng: &mut Rng) {
    let model: BTreeSet<u64> = numbers.iter().copied().collect();
    let set = SuppressionSet::from_numbers(numbers.iter().copied());
    assert_eq!(set.len(), model.len());
    assert_eq!(set.is_empty(), model.is_empty());
    assert!(set.iter().eq(model.iter().copied()), "iter differs");
    let mut probes: Vec<u64> = vec![0, 1, NANP_MIN - 1, NANP_MIN, NANP_MAX, NANP_MAX + 1];
    probes.push(u64::MAX);
    for &v in &model {
        probes.extend([v, v - 1, v + 1]);
    }
    probes.extend((0..2_000).map(|_| rng.number()));
    for p in probes {
        assert_eq!(set.contains(p), model.contains(&p), "contains({p})");
    }
}

#[test]
fn the_set_agrees_with_a_btreeset_on_random_sets() {
    let mut rng = Rng(0x5eed);
    for n in [0, 1, 2, 3, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 1] {
        for _ in 0..4 {
            let numbers = random_numbers(&mut rng, n);
            check_against_model(&numbers, &mut rng);
        }
    }
    for _ in 0..40 {
        let n = rng.below(6_000) as usize;
        let numbers = random_numbers(&mut rng, n);
        check_against_model(&numbers, &mut rng);
    }
}

#[test]
fn edge_numbers_and_the_empty_set() {
    let empty = SuppressionSet::empty();
    assert!(empty.is_empty());
    assert!(!empty.contains(NANP_MIN) && !empty.contains(NANP_MAX) && !empty.contains(0));
    assert_eq!(SuppressionSet::from_numbers([]), empty);
    let edges = SuppressionSet::from_numbers([NANP_MAX, NANP_MIN, NANP_MAX, NANP_MIN]);
    assert_eq!(edges.len(), 2);
    assert!(edges.contains(NANP_MIN) && edges.contains(NANP_MAX));
    assert!(!edges.contains(NANP_MIN + 1) && !edges.contains(NANP_MAX - 1));
    assert!(!edges.contains(u64::MAX));
    // Both halves of the collector (split on bit 32 of the offset).
    let split = NANP_MIN + (1 << 32);
    let halves = SuppressionSet::from_numbers([split, split - 1, split + 1]);
    assert!(halves.iter().eq([split - 1, split, split + 1]));
}

#[test]
#[should_panic(expected = "not a NANP number")]
fn a_number_outside_nanp_is_a_bug() {
    SuppressionSet::from_numbers([123]);
}

#[test]
fn a_uniform_list_takes_about_two_bytes_a_number() {
    let mut rng = Rng(7);
    let n = 200_000;
    let set = SuppressionSet::from_numbers((0..n).map(|_| rng.number()));
    let per_number = set.bytes() as f64 / set.len() as f64;
    // A sorted Vec<u64> takes 8; the goal (40 MB for 10 million) is 4.
    assert!(per_number < 3.0, "{per_number} bytes a number");
    let dense = SuppressionSet::from_numbers((0..n).map(|i| NANP_MIN + i));
    assert!(dense.bytes() < 64 * 1024, "{} bytes", dense.bytes());
}

/// Hands out at most `step` bytes a read, so lines split across reads.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

const LIST: &str = "# national list\n\
    phone\n\
    (555) 234-5678\n\
    \n\
    555.234.5679\r\n\
    +1 555 234 5680\n\
    1-555-234-5681\n\
    5551234567\n\
    555-234-5678 x12\n\
    5552345682";

#[test]
fn a_file_in_any_spelling_loads_and_counts_invalid_lines() {
    for step in [1, 3, 7, 64, 1 << 20] {
        let r = Trickle {
            data: LIST.as_bytes(),
            step,
        };
        let loaded = load_reader(r, LIST.len() as u64).unwrap();
        assert!(
            loaded.set.iter().eq([
                5_552_345_678,
                5_552_345_679,
                5_552_345_680,
                5_552_345_681,
                5_552_345_682
            ]),
            "step {step}: {:?}",
            loaded.set.iter().collect::<Vec<_>>()
        );
        assert_eq!(loaded.lines, 10, "step {step}");
        // `phone`, the exchange starting with 1, the extension.
        assert_eq!(loaded.invalid_lines, 3, "step {step}");
        assert_eq!(loaded.first_invalid_line, Some(2), "step {step}");
    }
}

#[test]
fn overlong_lines_are_invalid_and_never_buffered_whole() {
    let long = format!("{}\n5552345678\n{}", "5".repeat(100_000), " ".repeat(70));
    for step in [5, 4096, 1 << 20] {
        let r = Trickle {
            data: long.as_bytes(),
            step,
        };
        let loaded = load_reader(r, 0).unwrap();
        assert!(loaded.set.iter().eq([5_552_345_678]), "step {step}");
        assert_eq!(
            (
                loaded.lines,
                loaded.invalid_lines,
                loaded.first_invalid_line
            ),
            (3, 2, Some(1)),
            "step {step}"
        );
    }
}

#[test]
fn a_missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(&dir.path().join("absent.txt")).unwrap_err();
    assert!(err.to_string().starts_with("cannot read:"), "{err}");
    std::fs::write(dir.path().join("list.txt"), LIST).unwrap();
    assert_eq!(load(&dir.path().join("list.txt")).unwrap().set.len(), 5);
}

#[test]
fn staleness_counts_whole_days_from_the_clock() {
    let day = 86_400_000;
    assert!(!is_stale(10 * day, 31, 41 * day));
    assert!(is_stale(10 * day, 31, 41 * day + 1));
    assert!(!is_stale(50 * day, 31, 41 * day), "a file from the future");
}
