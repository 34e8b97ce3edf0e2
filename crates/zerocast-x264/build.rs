//! Compiles the x264 shim (`csrc/x264_shim.c`) and links libx264
//! statically, so the guest binary stays a self-contained static-pie and
//! the host binary needs no libx264 at run time.
//!
//! Without libx264-dev the shim is built without x264 (every encoder then
//! fails to open, saying why), so that `cargo run -- demo` needs nothing but
//! cargo: OpenH264, the default of such builds, builds from crates.io.
//! `ZEROCAST_REQUIRE_X264=1` (set by the test script) makes a missing
//! libx264 a build error instead.

fn main() {
    println!("cargo:rerun-if-changed=csrc/x264_shim.c");
    println!("cargo:rerun-if-env-changed=ZEROCAST_REQUIRE_X264");
    let mut shim = cc::Build::new();
    shim.file("csrc/x264_shim.c").warnings_into_errors(true);
    match pkg_config::Config::new()
        .statik(true)
        .cargo_metadata(false)
        .probe("x264")
    {
        Ok(x264) => {
            shim.define("ZC_HAVE_X264", None);
            for dir in &x264.include_paths {
                shim.include(dir);
            }
            for dir in &x264.link_paths {
                println!("cargo:rustc-link-search=native={}", dir.display());
            }
            // libx264.a, never the shared library: the guest has no libc to load it with.
            println!("cargo:rustc-link-lib=static=x264");
        }
        Err(e) if std::env::var_os("ZEROCAST_REQUIRE_X264").is_some_and(|v| v == "1") => {
            panic!("libx264 not found ({e}): install libx264-dev (scripts/install-deps.sh)")
        }
        Err(_) => println!(
            "cargo:warning=libx264 not found: building without x264 (--encoder x264 and the guest agent's baseline need libx264-dev)"
        ),
    }
    shim.compile("zerocast_x264_shim");
}
