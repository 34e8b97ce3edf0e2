//! Compiles the x264 shim (`csrc/x264_shim.c`) and links libx264
//! statically, so the guest binary stays a self-contained static-pie and
//! the host binary needs no libx264 at run time.

fn main() {
    println!("cargo:rerun-if-changed=csrc/x264_shim.c");
    let x264 = pkg_config::Config::new()
        .statik(true)
        .cargo_metadata(false)
        .probe("x264")
        .unwrap_or_else(|e| {
            panic!("libx264 not found ({e}): install libx264-dev (scripts/install-deps.sh)")
        });
    let mut shim = cc::Build::new();
    shim.file("csrc/x264_shim.c").warnings_into_errors(true);
    for dir in &x264.include_paths {
        shim.include(dir);
    }
    shim.compile("zerocast_x264_shim");
    for dir in &x264.link_paths {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    // libx264.a, never the shared library: the guest has no libc to load it with.
    println!("cargo:rustc-link-lib=static=x264");
}
