//! Replays the fuzzer's corpus (`fuzz/corpus/web_message`) through the same
//! checks the fuzz target runs, so every build re-tests what fuzzing found.

use zerocast_web::fuzzing::check_message;

#[test]
fn corpus_replays_clean() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/web_message");
    let entries = std::fs::read_dir(dir).expect("the fuzz corpus is in the repository");
    let mut n = 0;
    for entry in entries {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        check_message(&data);
        n += 1;
    }
    assert!(n > 10, "corpus has only {n} inputs");
}
