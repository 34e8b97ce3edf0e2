//! `zerocast-vhost-user-gpu`: the program a vhost-user descriptor names.
//! QEMU's backend program conventions put `--print-capabilities`, `--fd`
//! and `--socket-path` at the top level, so this becomes `zerocast
//! gpu-backend` with the same arguments: `exec`, not a child, so that the
//! process libvirt started (its pid, its descriptors, its cgroup) is the
//! backend itself.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let zerocast = match std::env::current_exe() {
        Ok(me) => me.with_file_name("zerocast"),
        Err(e) => {
            eprintln!("zerocast-vhost-user-gpu: cannot find where it runs from: {e}");
            return ExitCode::FAILURE;
        }
    };
    let e = Command::new(&zerocast)
        .arg("gpu-backend")
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!(
        "zerocast-vhost-user-gpu: cannot run {} (it must sit next to this program): {e}",
        zerocast.display()
    );
    ExitCode::FAILURE
}
