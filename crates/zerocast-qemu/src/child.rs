//! Helper processes (QEMU, vhost-device-vsock) must not outlive zerocast:
//! `kill_on_drop` covers an orderly exit, the kernel's parent-death signal
//! covers zerocast being killed outright.

use tokio::process::Command;

/// A command whose process gets SIGKILL when the thread that started it
/// (a runtime worker, alive as long as zerocast) goes away.
pub fn dies_with_parent(mut command: Command) -> Command {
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl, which is async-signal-safe; it touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}
