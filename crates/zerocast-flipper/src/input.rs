//! Prints the guest's key, button, pointer and wheel events to stdout (the
//! serial console), so a host test can check that input sent to the VM
//! arrives in it, and keeps the absolute pointer's position for the
//! hardware cursor to follow.
//!
//! Each `/dev/input/event*` device gets a thread doing blocking reads: there
//! are only a handful of devices, and it keeps this free of `poll` and of
//! any effect on the drawing loop.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::thread;

/// Size of `struct input_event` on 64-bit Linux: a `struct timeval` (two
/// 64-bit fields), then type u16, code u16, value i32.
const EVENT_SIZE: usize = 24;

/// QEMU's absolute axes run from 0 to this.
pub const ABS_MAX: i32 = 0x7fff;

/// The absolute pointer as the guest's devices last reported it (`ABS_X`,
/// `ABS_Y`, 0..=[`ABS_MAX`]).
#[derive(Debug, Default)]
pub struct Pointer {
    x: AtomicI32,
    y: AtomicI32,
    moved: AtomicBool,
}

impl Pointer {
    fn note(&self, kind: u16, code: u16, value: i32) {
        let axis = match (kind, code) {
            (EV_ABS, 0) => &self.x,
            (EV_ABS, 1) => &self.y,
            _ => return,
        };
        axis.store(value, Ordering::Relaxed);
        self.moved.store(true, Ordering::Release);
    }

    /// The position, if it moved since the last call.
    pub fn take_moved(&self) -> Option<(i32, i32)> {
        self.moved.swap(false, Ordering::Acquire).then(|| {
            (
                self.x.load(Ordering::Relaxed),
                self.y.load(Ordering::Relaxed),
            )
        })
    }
}

const EV_ABS: u16 = 3;

/// Starts a reader for every input device present now and returns how many
/// started. Devices that appear later are not watched.
pub fn spawn_readers(pointer: &Arc<Pointer>) -> usize {
    let mut devices: Vec<PathBuf> = match fs::read_dir("/dev/input") {
        Ok(dir) => dir
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| file_name(path).starts_with("event"))
            .collect(),
        Err(e) => {
            println!("zerocast-input: no /dev/input: {e}");
            return 0;
        }
    };
    devices.sort();

    let mut started = 0;
    for path in devices {
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                println!("zerocast-input: cannot open {}: {e}", path.display());
                continue;
            }
        };
        println!(
            "zerocast-input: device {} \"{}\"",
            path.display(),
            device_name(&path)
        );
        let pointer = pointer.clone();
        let spawned = thread::Builder::new()
            .name(format!("input-{}", file_name(&path)))
            .spawn(move || read_events(&path, file, &pointer));
        match spawned {
            Ok(_) => started += 1,
            Err(e) => println!("zerocast-input: cannot start a reader thread: {e}"),
        }
    }
    started
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// The device's name from sysfs (what `EVIOCGNAME` returns, without an ioctl).
fn device_name(dev: &Path) -> String {
    let sys = Path::new("/sys/class/input")
        .join(file_name(dev))
        .join("device/name");
    fs::read_to_string(sys)
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

fn read_events(path: &Path, mut dev: File, pointer: &Pointer) {
    // An evdev read returns whole events, so reading exactly one never splits one.
    let mut raw = [0u8; EVENT_SIZE];
    loop {
        if let Err(e) = dev.read_exact(&mut raw) {
            println!("zerocast-input: {} stopped: {e}", path.display());
            return;
        }
        let (kind, code, value) = fields(&raw);
        pointer.note(kind, code, value);
        if let Some(line) = describe(&raw) {
            println!("{line}");
        }
    }
}

/// An event's type, code and value.
fn fields(raw: &[u8; EVENT_SIZE]) -> (u16, u16, i32) {
    (
        u16::from_ne_bytes([raw[16], raw[17]]),
        u16::from_ne_bytes([raw[18], raw[19]]),
        i32::from_ne_bytes([raw[20], raw[21], raw[22], raw[23]]),
    )
}

/// The line for one raw event, or `None` for the kinds a test does not
/// care about (sync reports, scan codes, LEDs...). Buttons are EV_KEY, the
/// wheel is EV_REL.
fn describe(raw: &[u8; EVENT_SIZE]) -> Option<String> {
    let (kind, code, value) = fields(raw);
    let kind = match kind {
        1 => "EV_KEY",
        2 => "EV_REL",
        3 => "EV_ABS",
        _ => return None,
    };
    Some(format!(
        "zerocast-input: type={kind} code={code} value={value}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u16, code: u16, value: i32) -> [u8; EVENT_SIZE] {
        let mut raw = [0xAAu8; EVENT_SIZE]; // the timestamp is ignored
        raw[16..18].copy_from_slice(&kind.to_ne_bytes());
        raw[18..20].copy_from_slice(&code.to_ne_bytes());
        raw[20..24].copy_from_slice(&value.to_ne_bytes());
        raw
    }

    #[test]
    fn describes_keys_pointer_and_wheel() {
        assert_eq!(
            describe(&event(1, 30, 1)).as_deref(),
            Some("zerocast-input: type=EV_KEY code=30 value=1")
        );
        assert_eq!(
            describe(&event(3, 0, 16383)).as_deref(),
            Some("zerocast-input: type=EV_ABS code=0 value=16383")
        );
        assert_eq!(
            describe(&event(2, 8, -1)).as_deref(),
            Some("zerocast-input: type=EV_REL code=8 value=-1")
        );
    }

    #[test]
    fn the_pointer_keeps_absolute_moves_only() {
        let p = Pointer::default();
        assert_eq!(p.take_moved(), None);
        p.note(2, 0, 5); // relative: not the tablet
        assert_eq!(p.take_moved(), None);
        p.note(3, 0, 100);
        p.note(3, 1, 200);
        assert_eq!(p.take_moved(), Some((100, 200)));
        assert_eq!(p.take_moved(), None);
    }

    #[test]
    fn skips_sync_and_misc() {
        assert_eq!(describe(&event(0, 0, 0)), None);
        assert_eq!(describe(&event(4, 4, 30)), None);
    }
}
