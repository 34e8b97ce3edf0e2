//! Which OpenH264 build this process runs, and what to do about a slow one.
//!
//! `openh264-sys2` builds OpenH264 with its SIMD assembly when `nasm` is on
//! `PATH`, and silently as plain C (about half as fast) when it is not. Its
//! build script never runs again on its own, so installing `nasm` afterwards
//! changes nothing until that package is rebuilt; no build script of ours can
//! make it rerun. So the build is read from the linked OpenH264 itself, and
//! the encoder warns once when a rebuild would now give the fast one.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::{Once, OnceLock};

// SAFETY: declared as in OpenH264's `codec/common/inc/cpu.h` (C linkage),
// which `openh264-sys2` compiles into the static library it links.
unsafe extern "C" {
    /// OpenH264's CPU feature probe. Built without assembly (on x86: without
    /// `nasm`), it is a stub that reports no features.
    fn WelsCPUFeatureDetect(logical_processors: *mut i32) -> u32;
}

/// How the linked OpenH264 was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// With its SIMD assembly.
    Simd,
    /// Plain C, about half as fast.
    PlainC,
}

impl Build {
    /// The build linked into this program (probed once).
    pub fn current() -> Build {
        static BUILD: OnceLock<Build> = OnceLock::new();
        *BUILD.get_or_init(|| {
            // SAFETY: a plain C function that only runs cpuid (or reads
            // /proc/cpuinfo on some ARM builds); null means "no processor
            // count wanted", which every variant checks for.
            let features = unsafe { WelsCPUFeatureDetect(std::ptr::null_mut()) };
            if features == 0 {
                Build::PlainC
            } else {
                Build::Simd
            }
        })
    }

    /// For the encoder's description.
    pub fn describe(self) -> &'static str {
        match self {
            Build::Simd => "SIMD assembly",
            Build::PlainC => "plain C, ~2x slower than with nasm",
        }
    }
}

/// `cargo clean -p` takes the package name as `Cargo.lock` spells it.
const REBUILD: &str = "cargo clean -p openh264-sys2 && cargo build --release";

/// The warning for a plain-C build now that `nasm` is installed, if any:
/// the fast build is one rebuild away. `None` for the SIMD build, or when
/// `nasm` is still missing (the description already says plain C).
pub fn rebuild_advice(build: Build, nasm_installed: bool) -> Option<String> {
    (build == Build::PlainC && nasm_installed).then(|| {
        format!(
            "OpenH264 runs as plain C (about half the speed): nasm was missing when it was \
             built, and it is installed now. Rebuild it to get its SIMD assembly: {REBUILD}"
        )
    })
}

/// Logs [`rebuild_advice`] once per process, looking for `nasm` on `PATH`.
pub(crate) fn warn_once_if_rebuild_helps() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // OpenH264 takes nasm's assembly on x86 only.
        let nasm = cfg!(any(target_arch = "x86", target_arch = "x86_64"))
            && std::env::var_os("PATH").is_some_and(|path| on_path(&path, "nasm"));
        if let Some(advice) = rebuild_advice(Build::current(), nasm) {
            tracing::warn!("{advice}");
        }
    });
}

/// Whether `program` is a file in one of the directories of `path` (a
/// `PATH`-style list).
fn on_path(path: &OsStr, program: &str) -> bool {
    std::env::split_paths(path).any(|dir| Path::new(&dir).join(program).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_only_for_plain_c_with_nasm_installed() {
        let advice = rebuild_advice(Build::PlainC, true).expect("a rebuild helps");
        assert!(advice.contains(REBUILD), "{advice}");
        assert_eq!(rebuild_advice(Build::PlainC, false), None);
        assert_eq!(rebuild_advice(Build::Simd, true), None);
        assert_eq!(rebuild_advice(Build::Simd, false), None);
    }

    #[test]
    fn finds_a_program_in_any_path_directory() {
        let dir = std::env::temp_dir().join(format!("zerocast-on-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("nasm"), b"").unwrap();
        let path = std::env::join_paths(["/nonexistent".as_ref(), dir.as_path()]).unwrap();
        let found = on_path(&path, "nasm");
        let missing = on_path(&path, "yasm");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(found);
        assert!(!missing);
    }
}
