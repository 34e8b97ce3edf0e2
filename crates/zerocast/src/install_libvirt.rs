//! `zerocast install-libvirt`: writes the vhost-user descriptor (QEMU's
//! docs/interop/vhost-user.json) through which libvirt finds zerocast's GPU
//! backend, after checking the backend answers `--print-capabilities` as
//! libvirt will ask, and prints the domain XML that uses it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::Args;

/// The thin program a descriptor points at: QEMU's conventions want the
/// backend's options at the top level, which `zerocast gpu-backend` is not.
pub const BACKEND_PROGRAM: &str = "zerocast-vhost-user-gpu";

/// Sorts before Debian's `50-qemu-gpu.json` (package qemu-system-gui):
/// libvirt takes the first descriptor by file name whose type matches.
pub const DESCRIPTOR_NAME: &str = "40-zerocast-gpu.json";

/// What a domain needs: the GPU as a vhost-user device, guest RAM a memfd
/// shared with the backend, and ACPI, without which libvirt 9.0 passes
/// `-no-acpi`, an option QEMU 10 no longer has. For input through `zerocast
/// serve`: a virtio tablet and keyboard, and a QMP socket of the domain's
/// own where the daemon looks for it (libvirt keeps its monitor to
/// itself; `DOMAIN` is the domain's name).
pub const DOMAIN_XML: &str = "\
<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <features>
    <acpi/>
  </features>
  <devices>
    <video>
      <driver name='vhostuser'/>
      <model type='virtio' heads='1'/>
    </video>
    <input type='tablet' bus='virtio'/>
    <input type='keyboard' bus='virtio'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-qmp'/>
    <qemu:arg value='unix:/run/zerocast/qmp/DOMAIN.qmp,server=on,wait=off'/>
  </qemu:commandline>
</domain>";

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Folder of vhost-user descriptors: /etc/qemu/vhost-user is the
    /// administrator's (libvirt also reads /usr/share/qemu/vhost-user and
    /// $XDG_CONFIG_HOME/qemu/vhost-user).
    #[arg(long, default_value = "/etc/qemu/vhost-user")]
    pub dir: PathBuf,
    /// The descriptor's file name; the lowest name of a type wins.
    #[arg(long, default_value = DESCRIPTOR_NAME)]
    pub name: String,
    /// The backend program (absolute path). Default: zerocast-vhost-user-gpu
    /// next to this zerocast.
    #[arg(long)]
    pub binary: Option<PathBuf>,
}

/// The descriptor's JSON for `binary`.
pub fn descriptor(binary: &Path) -> anyhow::Result<String> {
    let binary = binary
        .to_str()
        .with_context(|| format!("{} is not UTF-8, as JSON needs", binary.display()))?;
    let json = serde_json::json!({
        "description": "zerocast: the VM's display encoded from guest memory and streamed to browsers",
        "type": "gpu",
        "binary": binary,
    });
    Ok(serde_json::to_string_pretty(&json)? + "\n")
}

pub fn run(args: &InstallArgs) -> anyhow::Result<()> {
    if args.name.contains('/') || !args.name.ends_with(".json") {
        bail!(
            "--name {:?}: a file name ending in .json, as libvirt looks for",
            args.name
        );
    }
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .context("finding this program")?
            .with_file_name(BACKEND_PROGRAM),
    };
    let binary = binary.canonicalize().with_context(|| {
        format!(
            "{}: no backend program there (cargo build --release builds it next to zerocast; \
             or pass --binary)",
            binary.display()
        )
    })?;
    check_capabilities(&binary)?;

    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let path = args.dir.join(&args.name);
    let text = descriptor(&binary)?;
    // Written aside and renamed: libvirt never reads half a descriptor.
    let partial = args.dir.join(format!(".{}.partial", args.name));
    {
        let mut f = std::fs::File::create(&partial)
            .with_context(|| format!("writing {}", partial.display()))?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
    }
    std::fs::rename(&partial, &path)
        .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;

    println!("wrote {}:\n{text}", path.display());
    println!(
        "libvirt now starts {} for a domain whose video device is vhost-user \
         (this name sorts before Debian's 50-qemu-gpu.json). Add to the domain (virsh edit):\n\n{DOMAIN_XML}\n",
        binary.display()
    );
    println!(
        "With `zerocast serve` running (its socket {}), each backend registers there and the \
         daemon serves every VM at its one address, input included once /run/zerocast/qmp \
         exists and QEMU may create sockets in it. Without it, each backend writes its own \
         viewer URLs (with their tokens) to {}/ID-DOMAIN-VIDEO.txt (libvirt discards its \
         stderr). Defaults come from {} (see docs/libvirt.md).",
        crate::serve::ROOT_SOCKET,
        crate::gpu_backend::ROOT_ANNOUNCE_DIR,
        crate::gpu_backend::DEFAULT_CONFIG
    );
    Ok(())
}

/// Runs `binary --print-capabilities` as libvirt does, which skips a
/// backend whose answer is not a gpu with a features list.
fn check_capabilities(binary: &Path) -> anyhow::Result<()> {
    let out = Command::new(binary)
        .arg("--print-capabilities")
        .output()
        .with_context(|| format!("running {} --print-capabilities", binary.display()))?;
    let caps: serde_json::Value = serde_json::from_slice(&out.stdout).ok().unwrap_or_default();
    if !out.status.success() || caps["type"] != "gpu" || !caps["features"].is_array() {
        bail!(
            "{} --print-capabilities answered {:?} ({}): not a vhost-user gpu backend",
            binary.display(),
            String::from_utf8_lossy(&out.stdout).trim(),
            out.status
        );
    }
    Ok(())
}
