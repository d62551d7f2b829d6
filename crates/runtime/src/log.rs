//! Container log files in the CRI format kubelet reads
//! (`2016-10-06T00:17:09.669794202Z stdout F text`), written by the shim.
//!
//! Lines longer than [`MAX_LINE`] are split into partial (`P`) records ending with a full
//! (`F`) one, as containerd does. When the live file passes `max_size` it is renamed to
//! `<path>.<n>` (oldest first, `max_files` kept in all) and a new one begins.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// containerd's split size for one record (16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: usize,
    /// Bytes of an unfinished line per stream.
    pending: [Vec<u8>; 2],
}

impl LogWriter {
    /// kubelet's defaults: 10 MiB per file, 5 files.
    pub fn open(path: &Path) -> io::Result<LogWriter> {
        Self::with_limits(path, 10 * 1024 * 1024, 5)
    }

    pub fn with_limits(path: &Path, max_size: u64, max_files: usize) -> io::Result<LogWriter> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Appends output of `stream`; complete lines become records at once, the rest waits for
    /// its newline (or [`MAX_LINE`] bytes, or [`LogWriter::flush_partial`]).
    pub fn write(&mut self, stream: Stream, mut data: &[u8]) -> io::Result<()> {
        let slot = stream as usize;
        while let Some(newline) = data.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.pending[slot]);
            line.extend_from_slice(&data[..newline]);
            self.record(stream, &line, true)?;
            data = &data[newline + 1..];
        }
        self.pending[slot].extend_from_slice(data);
        while self.pending[slot].len() >= MAX_LINE {
            let rest = self.pending[slot].split_off(MAX_LINE);
            let chunk = std::mem::replace(&mut self.pending[slot], rest);
            self.record(stream, &chunk, false)?;
        }
        Ok(())
    }

    /// Writes what is left of an unfinished line as a full record (the stream ended).
    pub fn flush_partial(&mut self, stream: Stream) -> io::Result<()> {
        let slot = stream as usize;
        if self.pending[slot].is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.pending[slot]);
        self.record(stream, &line, true)
    }

    fn record(&mut self, stream: Stream, content: &[u8], full: bool) -> io::Result<()> {
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let mut record = Vec::with_capacity(content.len() + 48);
        record.extend_from_slice(timestamp.as_bytes());
        record.push(b' ');
        record.extend_from_slice(stream.as_str().as_bytes());
        record.extend_from_slice(if full { b" F " } else { b" P " });
        record.extend_from_slice(content);
        record.push(b'\n');
        if self.size > 0 && self.size + record.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&record)?;
        self.size += record.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let rotated = rotated_files(&self.path);
        let next = rotated.last().map(|(n, _)| n + 1).unwrap_or(1);
        fs::rename(&self.path, suffixed(&self.path, next))?;
        // Keep max_files in all: the live file and max_files - 1 rotated ones.
        let mut rotated = rotated_files(&self.path);
        while rotated.len() > self.max_files - 1 {
            let (_, oldest) = rotated.remove(0);
            let _ = fs::remove_file(oldest);
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn suffixed(path: &Path, n: u64) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Rotated files of `path` (`<path>.<n>`), oldest first.
pub fn rotated_files(path: &Path) -> Vec<(u64, PathBuf)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
    else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_str()?.to_string();
            let n = file.strip_prefix(&prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Every file of a container's log, oldest first, the live file last.
pub fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = rotated_files(path).into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| l.splitn(2, ' ').nth(1).unwrap().to_string())
            .collect()
    }

    #[test]
    fn lines_become_cri_records_and_partials_wait_for_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let mut w = LogWriter::open(&path).unwrap();
        w.write(Stream::Stdout, b"hello\nwor").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"ld\n").unwrap();
        w.write(Stream::Stdout, b"tail").unwrap();
        w.flush_partial(Stream::Stdout).unwrap();
        assert_eq!(
            records(&path),
            ["stdout F hello", "stderr F oops", "stdout F world", "stdout F tail"]
        );
        let first = fs::read_to_string(&path).unwrap();
        let timestamp = first.split(' ').next().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(timestamp).is_ok());
    }

    #[test]
    fn long_lines_split_into_partial_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path).unwrap();
        let mut long = vec![b'x'; MAX_LINE + 10];
        long.push(b'\n');
        w.write(Stream::Stdout, &long).unwrap();
        let r = records(&path);
        assert_eq!(r.len(), 2);
        assert!(r[0].starts_with("stdout P xxx"));
        assert_eq!(r[1], format!("stdout F {}", "x".repeat(10)));
    }

    #[test]
    fn rotation_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::with_limits(&path, 200, 3).unwrap();
        for i in 0..40 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let files = log_files(&path);
        assert_eq!(files.len(), 3);
        assert_eq!(files.last().unwrap(), &path);
        let newest = records(&path);
        assert_eq!(newest.last().unwrap(), "stdout F line 39");
    }
}
