//! Searching the guest's serial log, a file QEMU keeps appending to.

use std::io;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Incremental search of a growing file for one needle.
pub(crate) struct Scan<'a> {
    needle: &'a [u8],
    /// Bytes of the file already searched.
    offset: u64,
    /// The end of what was searched, in case the needle straddles reads.
    carry: Vec<u8>,
}

impl<'a> Scan<'a> {
    pub(crate) fn new(needle: &'a [u8]) -> Self {
        Scan {
            needle,
            offset: 0,
            carry: Vec::new(),
        }
    }

    /// Reads what the file gained since the last call; true once `needle`
    /// has been seen. A missing file is an empty one.
    pub(crate) async fn read_new(&mut self, path: &Path) -> io::Result<bool> {
        if self.needle.is_empty() {
            return Ok(true);
        }
        let mut file = match tokio::fs::File::open(path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if file.metadata().await?.len() < self.offset {
            // Truncated: start over.
            self.offset = 0;
            self.carry.clear();
        }
        file.seek(io::SeekFrom::Start(self.offset)).await?;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut chunk).await?;
            if n == 0 {
                return Ok(false);
            }
            self.offset += n as u64;
            self.carry.extend_from_slice(&chunk[..n]);
            if self
                .carry
                .windows(self.needle.len())
                .any(|w| w == self.needle)
            {
                return Ok(true);
            }
            let keep = self.carry.len().min(self.needle.len() - 1);
            self.carry.drain(..self.carry.len() - keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scan_finds_needles_across_reads_and_ignores_old_bytes() {
        let path = std::env::temp_dir().join(format!("zc-scan-{}.log", std::process::id()));
        std::fs::write(&path, b"boot\r\nzerocast-input: type=EV_K").unwrap();
        let mut scan = Scan::new(b"type=EV_KEY code=30 value=1");
        assert!(!scan.read_new(&path).await.unwrap());
        let mut text = std::fs::read(&path).unwrap();
        text.extend_from_slice(b"EY code=30 value=1\r\n");
        std::fs::write(&path, &text).unwrap();
        assert!(scan.read_new(&path).await.unwrap());
        // The carry is bounded by the needle's length.
        assert!(scan.carry.len() < 200);

        let mut missing = Scan::new(b"x");
        assert!(!missing
            .read_new(&path.with_extension("none"))
            .await
            .unwrap());
        std::fs::remove_file(&path).unwrap();
    }
}
