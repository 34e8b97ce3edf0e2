//! Replays the fuzzer's corpus (`fuzz/corpus/gpu_commands`) through the
//! same script interpreter and checks the fuzz target runs, so every build
//! re-tests what fuzzing found.

use zerocast_gpu::fuzzing::run;

#[test]
fn corpus_replays_clean() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/gpu_commands"
    );
    let entries = std::fs::read_dir(dir).expect("the fuzz corpus is in the repository");
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        // Shown with the failure: which input broke.
        eprintln!("replaying {}", path.display());
        run(&std::fs::read(path).unwrap());
        n += 1;
    }
    assert!(n > 5, "corpus has only {n} inputs");
}
