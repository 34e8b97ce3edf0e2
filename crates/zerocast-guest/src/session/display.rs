//! The screen's mode, through `xrandr`. Xorg's modesetting driver offers
//! only the modes of the monitor's EDID; a size it lacks is made with a
//! CVT reduced-blanking modeline (computed here: `cvt` is not in every
//! image) and added to the output first.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Bound on each tool's run (xrandr's mode set takes about a second under TCG).
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// Sets the screen to `width` x `height`.
pub fn resize(width: u32, height: u32) -> Result<()> {
    let query = tool("xrandr", &["--query"])?;
    let output = connected_output(&query).context("xrandr shows no connected output")?;
    let name = format!("{width}x{height}");
    if !output_has_mode(&query, &name) {
        let timings = cvt_reduced_blanking(width, height);
        let mut newmode = vec!["--newmode", name.as_str()];
        newmode.extend(timings.iter().map(String::as_str));
        // Fails when X already has a mode of that name (one not on this
        // output): adding that one is as good.
        let _ = tool("xrandr", &newmode);
        tool("xrandr", &["--addmode", &output, &name])?;
    }
    tool("xrandr", &["--output", &output, "--mode", &name])?;
    Ok(())
}

/// The first output xrandr lists as connected, e.g. `Virtual-1`.
fn connected_output(query: &str) -> Option<String> {
    query.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let name = words.next()?;
        (words.next() == Some("connected")).then(|| name.to_owned())
    })
}

/// Whether the first connected output lists a mode named `name`.
fn output_has_mode(query: &str, name: &str) -> bool {
    query
        .lines()
        .skip_while(|l| l.split_whitespace().nth(1) != Some("connected"))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .any(|l| l.split_whitespace().next() == Some(name))
}

/// VESA CVT 1.2 reduced-blanking timings of a 60 Hz mode, as xrandr's
/// `--newmode` takes them: clock (MHz), the horizontal and vertical
/// display, sync start, sync end and total, then the sync polarities.
fn cvt_reduced_blanking(width: u32, height: u32) -> Vec<String> {
    const REFRESH: u64 = 60;
    const FRAME_NS: u64 = 1_000_000_000 / REFRESH;
    const MIN_VBLANK_NS: u64 = 460_000;
    const V_FRONT: u32 = 3;
    const MIN_V_BACK: u32 = 6;
    // The vertical sync width tells the aspect ratio (CVT's table).
    let v_sync = match (width, height) {
        (w, h) if w * 3 == h * 4 => 4,
        (w, h) if w * 9 == h * 16 => 5,
        (w, h) if w * 10 == h * 16 => 6,
        (w, h) if w * 4 == h * 5 || w * 9 == h * 15 => 7,
        _ => 10,
    };
    let (h_sync_start, h_sync_end, h_total) = (width + 48, width + 80, width + 160);
    // Whole lines of blanking that last the minimum time (a line lasts the
    // frame less that minimum, over the active lines), at least what the
    // sync and porches need.
    let lines = MIN_VBLANK_NS * u64::from(height) / (FRAME_NS - MIN_VBLANK_NS) + 1;
    let blank_lines = u32::try_from(lines)
        .unwrap_or(u32::MAX)
        .max(V_FRONT + v_sync + MIN_V_BACK);
    let v_total = height + blank_lines;
    // The clock in 0.25 MHz steps, rounded down.
    let quarters = REFRESH * u64::from(h_total) * u64::from(v_total) / 250_000;
    let clock = format!("{}.{:02}", quarters / 4, quarters % 4 * 25);
    let mut timings = vec![clock];
    timings.extend(
        [
            width,
            h_sync_start,
            h_sync_end,
            h_total,
            height,
            height + V_FRONT,
            height + V_FRONT + v_sync,
            v_total,
        ]
        .map(|v| v.to_string()),
    );
    timings.extend(["+hsync".to_owned(), "-vsync".to_owned()]);
    timings
}

/// Runs `program` with `args`, at most [`TOOL_TIMEOUT`]; its output, or
/// what it said when it failed.
fn tool(program: &str, args: &[&str]) -> Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let stdout = thread::spawn(move || read_all(out.as_mut()));
    let stderr = thread::spawn(move || read_all(err.as_mut()));
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{program} took more than {TOOL_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        bail!("{program} {}: {status}: {}", args.join(" "), stderr.trim());
    }
    Ok(stdout)
}

fn read_all(pipe: Option<&mut impl Read>) -> String {
    let mut text = String::new();
    if let Some(pipe) = pipe {
        let _ = pipe.read_to_string(&mut text);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUERY: &str = "Screen 0: minimum 320 x 200, current 1280 x 800, maximum 8192 x 8192
Virtual-1 connected primary 1280x800+0+0 (normal left inverted right x axis y axis) 0mm x 0mm
   1280x800      59.81*+
   1920x1080     60.00  
   1024x768      60.00  
Virtual-2 disconnected (normal left inverted right x axis y axis)
   1600x900      60.00  
";

    #[test]
    fn reads_xrandr() {
        assert_eq!(connected_output(QUERY).as_deref(), Some("Virtual-1"));
        assert!(output_has_mode(QUERY, "1920x1080"));
        assert!(
            !output_has_mode(QUERY, "1600x900"),
            "a disconnected output's mode"
        );
    }

    #[test]
    fn modelines_match_cvt_r() {
        // What `cvt -r` prints for these.
        assert_eq!(
            cvt_reduced_blanking(1920, 1080).join(" "),
            "138.50 1920 1968 2000 2080 1080 1083 1088 1111 +hsync -vsync"
        );
        assert_eq!(
            cvt_reduced_blanking(1280, 800).join(" "),
            "71.00 1280 1328 1360 1440 800 803 809 823 +hsync -vsync"
        );
        assert_eq!(
            cvt_reduced_blanking(1024, 768).join(" "),
            "56.00 1024 1072 1104 1184 768 771 775 790 +hsync -vsync"
        );
    }
}
