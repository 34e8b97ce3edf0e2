//! The private folder a VM's sockets and serial log live in. Another local
//! user who could enter it could connect to QEMU's or our sockets (and so
//! receive the guest's RAM memfd, or every keystroke), so it is created
//! new with mode 0700 under a random name, or, when the operator names it,
//! checked to be a real folder of ours that nobody else may enter.

use std::ffi::OsStr;
use std::fs::DirBuilder;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Where folders made by [`RuntimeDir::create`] go for root, who has no
/// `$XDG_RUNTIME_DIR` under a service manager.
const ROOT_BASE: &str = "/run/zerocast";

/// Random names tried before giving up: a clash means someone is planting
/// folders under our prefix, and a few fresh names get past that.
const ATTEMPTS: usize = 8;

/// A folder only we may enter.
#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
    /// Ours to remove: made by [`RuntimeDir::create`], not given.
    remove_on_drop: bool,
}

impl RuntimeDir {
    /// A new private folder (mode 0700, random name, created atomically so
    /// it cannot already exist) under `$XDG_RUNTIME_DIR`, else
    /// /run/zerocast when root, else the temp dir. Removed on drop.
    pub fn create(prefix: &str) -> anyhow::Result<RuntimeDir> {
        let xdg = std::env::var_os("XDG_RUNTIME_DIR");
        let xdg_is_dir = xdg.as_deref().is_some_and(|d| Path::new(d).is_dir());
        let base = match base_dir(xdg.as_deref(), xdg_is_dir, euid(), &std::env::temp_dir()) {
            Base::Existing(dir) => dir,
            Base::Ours(dir) => {
                ensure_private(&dir)?;
                dir
            }
        };
        create_in(&base, prefix)
    }

    /// The operator's folder (`--work-dir`): a real folder owned by us with
    /// no group or other permissions, created 0700 if it does not exist yet.
    /// Left in place on drop.
    pub fn given(path: &Path) -> anyhow::Result<RuntimeDir> {
        // "link/" would make lstat look through the link.
        let path: PathBuf = path.components().collect();
        ensure_private(&path)?;
        Ok(RuntimeDir {
            path,
            remove_on_drop: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if self.remove_on_drop {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                tracing::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// The folder new runtime folders are made in.
#[derive(Debug, PartialEq, Eq)]
enum Base {
    /// The user's own ($XDG_RUNTIME_DIR) or the sticky temp dir: used as it is.
    Existing(PathBuf),
    /// Ours to create 0700 and to check before use.
    Ours(PathBuf),
}

/// `$XDG_RUNTIME_DIR` when it names a folder (the spec requires an absolute
/// path), else /run/zerocast for root, else the temp dir.
fn base_dir(xdg: Option<&OsStr>, xdg_is_dir: bool, euid: u32, temp: &Path) -> Base {
    match xdg.map(Path::new) {
        Some(dir) if dir.is_absolute() && xdg_is_dir => Base::Existing(dir.to_owned()),
        _ if euid == 0 => Base::Ours(PathBuf::from(ROOT_BASE)),
        _ => Base::Existing(temp.to_owned()),
    }
}

/// Makes `prefix-RANDOM` in `base`: `mkdir` fails on anything already there
/// (a folder, a file, a planted symlink), so what we get is new and ours.
fn create_in(base: &Path, prefix: &str) -> anyhow::Result<RuntimeDir> {
    for _ in 0..ATTEMPTS {
        let path = base.join(format!("{prefix}-{}", random_suffix()?));
        match DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {
                return Ok(RuntimeDir {
                    path,
                    remove_on_drop: true,
                })
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("creating a folder in {}", base.display()))
            }
        }
    }
    bail!(
        "{ATTEMPTS} random names in {} were all taken: someone is creating folders there; \
         set XDG_RUNTIME_DIR to a folder of your own, or pass --work-dir",
        base.display()
    )
}

fn random_suffix() -> anyhow::Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).context("reading the OS random number generator")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Creates `path` 0700 if it is missing, then refuses it unless it is a
/// real folder owned by us with no group or other permissions.
fn ensure_private(path: &Path) -> anyhow::Result<()> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    }
    // lstat: a symlink is judged itself, never the folder it points to.
    let meta =
        std::fs::symlink_metadata(path).with_context(|| format!("checking {}", path.display()))?;
    let kind = match meta.file_type() {
        t if t.is_symlink() => Kind::Symlink,
        t if t.is_dir() => Kind::Dir,
        _ => Kind::Other,
    };
    let (me, p) = (euid(), path.display());
    match check_private(kind, meta.uid(), meta.mode(), me) {
        Ok(()) => Ok(()),
        Err(Refusal::Symlink) => bail!(
            "{p} is a symbolic link: give the real folder it points to, \
             or a path that does not exist yet (it is then created with mode 0700)"
        ),
        Err(Refusal::NotADir) => bail!(
            "{p} exists and is not a folder: give a folder, or a path that does not exist yet"
        ),
        Err(Refusal::Owner(uid)) => bail!(
            "{p} belongs to uid {uid}, not to us (uid {me}): whoever owns it could reach \
             the VM's sockets; give a folder of our own, or a path that does not exist yet"
        ),
        Err(Refusal::Mode(mode)) => bail!(
            "{p} has mode {mode:03o}: other users could reach the VM's sockets; \
             run `chmod 700 {p}`, or give a path that does not exist yet"
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    Symlink,
    Other,
}

/// Why a folder is not private.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    Symlink,
    NotADir,
    Owner(u32),
    /// The permission bits, when group or others have any.
    Mode(u32),
}

fn check_private(kind: Kind, owner: u32, mode: u32, euid: u32) -> Result<(), Refusal> {
    match kind {
        Kind::Symlink => Err(Refusal::Symlink),
        Kind::Other => Err(Refusal::NotADir),
        Kind::Dir if owner != euid => Err(Refusal::Owner(owner)),
        Kind::Dir if mode & 0o077 != 0 => Err(Refusal::Mode(mode & 0o7777)),
        Kind::Dir => Ok(()),
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn base_is_xdg_when_it_is_an_absolute_folder() {
        let temp = Path::new("/tmp");
        let xdg = Some(OsStr::new("/run/user/1000"));
        assert_eq!(
            base_dir(xdg, true, 1000, temp),
            Base::Existing("/run/user/1000".into())
        );
        assert_eq!(
            base_dir(xdg, true, 0, temp),
            Base::Existing("/run/user/1000".into())
        );
        // Missing or relative: as if unset.
        assert_eq!(
            base_dir(xdg, false, 1000, temp),
            Base::Existing(temp.into())
        );
        assert_eq!(
            base_dir(Some(OsStr::new("run/user")), true, 1000, temp),
            Base::Existing(temp.into())
        );
    }

    #[test]
    fn base_is_run_zerocast_for_root_without_xdg() {
        let temp = Path::new("/tmp");
        assert_eq!(base_dir(None, false, 0, temp), Base::Ours(ROOT_BASE.into()));
        assert_eq!(
            base_dir(None, false, 1000, temp),
            Base::Existing(temp.into())
        );
    }

    #[test]
    fn only_our_own_closed_folders_pass() {
        assert_eq!(check_private(Kind::Dir, 1000, 0o40700, 1000), Ok(()));
        assert_eq!(check_private(Kind::Dir, 1000, 0o40500, 1000), Ok(()));
        assert_eq!(
            check_private(Kind::Dir, 1000, 0o40755, 1000),
            Err(Refusal::Mode(0o755))
        );
        assert_eq!(
            check_private(Kind::Dir, 1000, 0o41701, 1000),
            Err(Refusal::Mode(0o1701))
        );
        assert_eq!(
            check_private(Kind::Dir, 0, 0o40700, 1000),
            Err(Refusal::Owner(0))
        );
        assert_eq!(
            check_private(Kind::Symlink, 1000, 0o120777, 1000),
            Err(Refusal::Symlink)
        );
        assert_eq!(
            check_private(Kind::Other, 1000, 0o100600, 1000),
            Err(Refusal::NotADir)
        );
    }

    /// A scratch folder for one test, private so the checks pass inside it.
    fn scratch(name: &str) -> RuntimeDir {
        let base = std::env::temp_dir();
        create_in(&base, &format!("zerocast-rt-test-{name}")).unwrap()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn created_folders_are_new_private_and_removed() {
        let s = scratch("create");
        let a = create_in(s.path(), "vm").unwrap();
        let b = create_in(s.path(), "vm").unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(mode(a.path()), 0o700);
        let path = a.path().to_owned();
        std::fs::write(path.join("serial.log"), "x").unwrap();
        drop(a);
        assert!(!path.exists());
    }

    #[test]
    fn a_given_folder_is_created_private_and_kept() {
        let s = scratch("given");
        let path = s.path().join("work");
        let given = RuntimeDir::given(&path).unwrap();
        assert_eq!(mode(&path), 0o700);
        drop(given);
        assert!(path.is_dir());
        // Existing and private: accepted as it is.
        RuntimeDir::given(&path).unwrap();
    }

    #[test]
    fn open_folders_symlinks_and_files_are_refused() {
        let s = scratch("refused");
        let open = s.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = RuntimeDir::given(&open).unwrap_err().to_string();
        assert!(e.contains("chmod 700"), "{e}");

        let target = s.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = s.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for given in [link.clone(), link.join("")] {
            let e = RuntimeDir::given(&given).unwrap_err().to_string();
            assert!(e.contains("symbolic link"), "{given:?}: {e}");
        }
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);

        let file = s.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = RuntimeDir::given(&file).unwrap_err().to_string();
        assert!(e.contains("not a folder"), "{e}");
    }
}
