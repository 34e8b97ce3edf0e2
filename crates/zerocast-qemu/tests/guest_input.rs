//! Boots the test guest (scripts/build-guest.sh) on QEMU's own virtio-gpu
//! under TCG, sends a key and a click through `QmpInput`, and checks that
//! the guest's zerocast-flipper reports them on the serial console.
//!
//! Needs `qemu-system-x86_64` and work/guest/{vmlinuz,initrd.img} (or
//! `$ZEROCAST_WORK`); builds nothing itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zerocast_input::{Button, InputEvent, InputSink};
use zerocast_qemu::{Gpu, InputStats, Qmp, QmpInput, Vm, VmConfig, QCODES};

const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
const INPUT_TIMEOUT: Duration = Duration::from_secs(20);

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn guest_dir() -> PathBuf {
    match std::env::var_os("ZEROCAST_WORK") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../work/guest"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_and_click_reach_the_guest() {
    let guest = guest_dir();
    let (kernel, initrd) = (guest.join("vmlinuz"), guest.join("initrd.img"));
    assert!(
        kernel.is_file() && initrd.is_file(),
        "no test guest in {}: run scripts/build-guest.sh first",
        guest.display()
    );

    let dir = std::env::temp_dir().join(format!("zerocast-qemu-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary folder");
    let mut config = VmConfig::new(Gpu::VirtioGpu, dir.join("qmp.sock"), dir.join("serial.log"));
    config.kernel = Some(kernel);
    config.initrd = Some(initrd);
    config.append = "quiet drm_kms_helper.fbdev_emulation=0 zerocast.run=flipper".into();

    let started = Instant::now();
    let mut vm = Vm::spawn(&config).expect("QEMU starts");
    let outcome = exercise(&vm, started).await;
    let status = vm.kill().await;
    eprintln!(
        "QEMU stopped ({status:?}) after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    if let Err(e) = outcome {
        let serial = std::fs::read_to_string(vm.serial_log()).unwrap_or_default();
        let tail: Vec<&str> = serial.lines().rev().take(20).collect();
        panic!(
            "{e}\nlast serial lines:\n{}\nQEMU stderr: {}\n(kept {})",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            vm.stderr_tail(),
            dir.display()
        );
    }
    drop(vm);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn exercise(vm: &Vm, started: Instant) -> Result<()> {
    let at = || format!("{:.1} s", started.elapsed().as_secs_f64());

    vm.wait_for_serial("zerocast-flipper: frame", BOOT_TIMEOUT)
        .await?;
    eprintln!("flipper frames on the serial console at {}", at());

    let mut qmp = Qmp::connect(vm.qmp_socket(), Duration::from_secs(10)).await?;
    check_qcodes(&mut qmp).await?;

    let input = QmpInput::start(qmp, vm.qmp_socket())?;
    let events = [
        InputEvent::Key {
            code: 30,
            down: true,
        },
        InputEvent::Key {
            code: 30,
            down: false,
        },
        InputEvent::MoveAbs { x: 0.5, y: 0.25 },
        InputEvent::Button {
            button: Button::Left,
            down: true,
        },
        InputEvent::Button {
            button: Button::Left,
            down: false,
        },
    ];
    for event in events {
        input.send(0, event);
    }
    let stats = input.close().await;
    eprintln!("input sent at {}: {stats:?}", at());
    if stats
        != (InputStats {
            sent: 5,
            ..InputStats::default()
        })
    {
        return Err(format!("QEMU did not take all the input: {stats:?}").into());
    }

    for line in [
        "zerocast-input: type=EV_KEY code=30 value=1",
        "zerocast-input: type=EV_KEY code=272 value=1",
    ] {
        vm.wait_for_serial(line, INPUT_TIMEOUT).await?;
        eprintln!("guest saw {line:?} at {}", at());
    }
    Ok(())
}

/// Every qcode in the key table is one this QEMU knows.
async fn check_qcodes(qmp: &mut Qmp) -> Result<()> {
    let schema = qmp.execute("query-qmp-schema", None).await?;
    let qkeycode = schema
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["meta-type"] == "enum")
        .filter_map(|entry| entry["values"].as_array())
        .find(|values| values.iter().any(|v| v == "kp_decimal"))
        .ok_or("no QKeyCode enum in QEMU's QMP schema")?;
    let unknown: Vec<&str> = QCODES
        .iter()
        .map(|&(_, name)| name)
        .filter(|name| !qkeycode.iter().any(|v| v == name))
        .collect();
    if !unknown.is_empty() {
        return Err(format!("qcodes this QEMU does not know: {unknown:?}").into());
    }
    Ok(())
}
