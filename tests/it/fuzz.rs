//! Replays every committed fuzz input — the seed corpus and the inputs
//! that once crashed a target (`fuzz/regressions/<target>/`) — through the
//! same checks the fuzz targets run (`leadx::fuzz`), so a fixed crash stays
//! fixed in the normal suite, without libFuzzer. See docs/fuzzing.md.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/<kind>/<target>/` (none when the folder is absent).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_regression_input_passes_its_target_check() {
    let mut replayed = 0;
    for (name, check) in leadx::fuzz::TARGETS {
        let seeds = inputs("seeds", name);
        assert!(!seeds.is_empty(), "target {name} has no seed");
        for path in seeds.iter().chain(&inputs("regressions", name)) {
            let data = std::fs::read(path).unwrap();
            // Committed inputs stay small (docs/fuzzing.md).
            assert!(
                data.len() <= 16 * 1024,
                "{} is {} bytes",
                path.display(),
                data.len()
            );
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                panic!(
                    "{} fails its check: run `cargo fuzz run {name} {}`",
                    path.display(),
                    path.display()
                );
            }
            replayed += 1;
        }
    }
    assert!(replayed >= leadx::fuzz::TARGETS.len());
}

#[test]
fn every_input_folder_names_a_target() {
    for kind in ["seeds", "regressions"] {
        let Ok(dir) = std::fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for entry in dir {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                leadx::fuzz::target(&name).is_some(),
                "fuzz/{kind}/{name} is no target"
            );
        }
    }
}
