//! The CRI container log format, as containerd and CRI-O write it and the kubelet reads it:
//! one entry per line, `<RFC3339Nano timestamp> <stdout|stderr> <P|F> <content>\n`. `P`
//! marks a partial entry (the line continues in the next entry of the same stream), `F` the
//! last piece of a line. Lines longer than [`MAX_ENTRY_CONTENT`] are split into `P…F`.
//!
//! Rotation (our choice, documented for the agent): the live file is `<path>` (e.g.
//! `0.log`); when writing an entry would grow it beyond `max_size`, `<path>.1` … are shifted
//! up by one, `<path>` becomes `<path>.1`, and a new `<path>` is started. At most
//! `max_files` files exist (the live one included), so `<path>.<max_files-1>` is the oldest.
//! [`log_files_oldest_first`] lists them in reading order.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::Stream;
use tokio::sync::{mpsc, watch};

/// Content bytes per entry before a line is split (containerd's default, 16 KiB).
pub const MAX_ENTRY_CONTENT: usize = 16 * 1024;
/// Default size at which the live file is rotated (kubelet's `containerLogMaxSize`).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Default number of files kept, live one included (kubelet's `containerLogMaxFiles`).
pub const DEFAULT_MAX_FILES: usize = 5;

/// How often a followed file is checked for growth or rotation.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Which output stream of the container an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            LogStream::Stdout => 0,
            LogStream::Stderr => 1,
        }
    }
}

/// One parsed log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub time: DateTime<Utc>,
    pub stream: LogStream,
    pub partial: bool,
    pub content: Vec<u8>,
}

/// Formats a timestamp as kubelet prints it: RFC3339 with nine fractional digits, UTC.
pub fn format_timestamp(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Parses one line of a CRI log file (without the trailing newline). `None` for a line that
/// is not in the format (a reader skips it, as kubelet does).
pub fn parse_entry(line: &[u8]) -> Option<LogEntry> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let time = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
    let stream = match parts.next()? {
        b"stdout" => LogStream::Stdout,
        b"stderr" => LogStream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let content = parts.next().unwrap_or_default().to_vec();
    Some(LogEntry {
        time,
        stream,
        partial,
        content,
    })
}

fn encode_entry(
    out: &mut Vec<u8>,
    time: &DateTime<Utc>,
    stream: LogStream,
    partial: bool,
    content: &[u8],
) {
    out.extend_from_slice(format_timestamp(time).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// Settings of a [`LogWriter`].
#[derive(Debug, Clone, Copy)]
pub struct LogWriterOptions {
    pub max_size: u64,
    pub max_files: usize,
}

impl Default for LogWriterOptions {
    fn default() -> Self {
        LogWriterOptions {
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// Appends a container's output to its CRI log file, rotating by size. Synchronous std IO,
/// so the process that owns a container's pipes can run it on a plain thread. Output is
/// buffered per stream up to a newline (or [`MAX_ENTRY_CONTENT`] bytes, written as a `P`
/// entry); [`LogWriter::finish`] writes what remains of a stream as its final line.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    options: LogWriterOptions,
    pending: [Vec<u8>; 2],
}

impl LogWriter {
    /// Opens (appending to) or creates the live file at `path`.
    pub fn open(path: impl Into<PathBuf>, options: LogWriterOptions) -> io::Result<LogWriter> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path,
            file,
            size,
            options: LogWriterOptions {
                max_size: options.max_size.max(1),
                max_files: options.max_files.max(1),
            },
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Writes output of `stream` read at the current time.
    pub fn write(&mut self, stream: LogStream, data: &[u8]) -> io::Result<()> {
        self.write_at(Utc::now(), stream, data)
    }

    /// Writes output of `stream` with an explicit timestamp (tests, replays).
    pub fn write_at(
        &mut self,
        time: DateTime<Utc>,
        stream: LogStream,
        data: &[u8],
    ) -> io::Result<()> {
        let mut pending = std::mem::take(&mut self.pending[stream.index()]);
        let mut out = Vec::new();
        for &byte in data {
            if byte == b'\n' {
                encode_entry(&mut out, &time, stream, false, &pending);
                pending.clear();
            } else {
                pending.push(byte);
                if pending.len() == MAX_ENTRY_CONTENT {
                    encode_entry(&mut out, &time, stream, true, &pending);
                    pending.clear();
                }
            }
        }
        self.pending[stream.index()] = pending;
        self.append(&out)
    }

    /// Writes the unterminated rest of `stream` (if any) as a complete line: call it when the
    /// stream reaches EOF.
    pub fn finish(&mut self, stream: LogStream) -> io::Result<()> {
        self.finish_at(Utc::now(), stream)
    }

    pub fn finish_at(&mut self, time: DateTime<Utc>, stream: LogStream) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending[stream.index()]);
        if pending.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        encode_entry(&mut out, &time, stream, false, &pending);
        self.append(&out)
    }

    /// Appends whole entries, rotating first when they would not fit. Entries are never
    /// split across files, so every file parses on its own.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            // The longest prefix of whole entries that fits (at least one entry).
            let mut take = 0;
            for (i, b) in rest.iter().enumerate() {
                if *b == b'\n' {
                    if take > 0 && self.size + (i + 1) as u64 > self.options.max_size {
                        break;
                    }
                    take = i + 1;
                    if self.size + take as u64 > self.options.max_size {
                        break;
                    }
                }
            }
            if take == 0 {
                take = rest.len();
            }
            if self.size > 0 && self.size + take as u64 > self.options.max_size {
                self.rotate()?;
                continue;
            }
            self.file.write_all(&rest[..take])?;
            self.size += take as u64;
            rest = &rest[take..];
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.options.max_files - 1;
        if keep == 0 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let rotated = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        let _ = fs::remove_file(rotated(keep));
        for n in (1..keep).rev() {
            if rotated(n).exists() {
                fs::rename(rotated(n), rotated(n + 1))?;
            }
        }
        fs::rename(&self.path, rotated(1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// The live file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The files of the log whose live file is `path`, oldest first (`path.N`, …, `path.1`,
/// `path`); missing ones are skipped.
pub fn log_files_oldest_first(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(usize, PathBuf)> = Vec::new();
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                let file_name = entry.file_name();
                let Some(file_name) = file_name.to_str() else {
                    continue;
                };
                if let Some(n) = file_name
                    .strip_prefix(name)
                    .and_then(|s| s.strip_prefix('.'))
                    .and_then(|s| s.parse::<usize>().ok())
                {
                    rotated.push((n, path.with_file_name(file_name)));
                }
            }
        }
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// What to read, as the kubelet's `/containerLogs` query says.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Keep reading as the live file grows (and across rotation) until the container stops.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// Only lines at or after this time.
    pub since_time: Option<DateTime<Utc>>,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<u64>,
    /// Prefix each line with its RFC3339Nano timestamp and a space.
    pub timestamps: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// True while the container runs; following stops once it is false (or its sender is
    /// dropped) and the files are drained. `None` with `follow`: follow until the reader is
    /// dropped.
    pub running: Option<watch::Receiver<bool>>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            follow: false,
            tail_lines: None,
            since_time: None,
            limit_bytes: None,
            timestamps: false,
            stdout: true,
            stderr: true,
            running: None,
        }
    }
}

/// Turns entries into output lines: reassembles partial entries per stream and applies the
/// stream and time filters.
struct Assembler {
    options: LogOptions,
    pending: [Option<(DateTime<Utc>, Vec<u8>)>; 2],
}

impl Assembler {
    fn push(&mut self, entry: LogEntry) -> Option<Vec<u8>> {
        let wanted = match entry.stream {
            LogStream::Stdout => self.options.stdout,
            LogStream::Stderr => self.options.stderr,
        };
        if !wanted {
            return None;
        }
        let slot = &mut self.pending[entry.stream.index()];
        let (time, mut content) = match slot.take() {
            Some((time, mut content)) => {
                content.extend_from_slice(&entry.content);
                (time, content)
            }
            None => (entry.time, entry.content),
        };
        if entry.partial {
            *slot = Some((time, content));
            return None;
        }
        if self.options.since_time.is_some_and(|since| time < since) {
            return None;
        }
        let mut line = Vec::with_capacity(content.len() + 40);
        if self.options.timestamps {
            line.extend_from_slice(format_timestamp(&time).as_bytes());
            line.push(b' ');
        }
        line.append(&mut content);
        line.push(b'\n');
        Some(line)
    }
}

/// Splits file bytes into lines, keeping an unterminated tail for the next read.
#[derive(Default)]
struct LineBuffer {
    buf: Vec<u8>,
}

impl LineBuffer {
    fn feed(&mut self, data: &[u8], mut each: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            each(&self.buf[start..start + pos]);
            start += pos + 1;
        }
        self.buf.drain(..start);
    }
}

/// Output with `limit_bytes` applied. Returns false once the limit is reached or the reader
/// went away.
struct Output {
    tx: mpsc::Sender<io::Result<Bytes>>,
    remaining: Option<u64>,
}

impl Output {
    async fn send(&mut self, mut data: Vec<u8>) -> bool {
        if let Some(remaining) = &mut self.remaining {
            if *remaining == 0 {
                return false;
            }
            if data.len() as u64 > *remaining {
                data.truncate(*remaining as usize);
            }
            *remaining -= data.len() as u64;
        }
        if data.is_empty() {
            return true;
        }
        self.tx.send(Ok(Bytes::from(data))).await.is_ok() && self.remaining != Some(0)
    }
}

/// Reads a container's log files (oldest first) as kubelet serves them: plain lines (or with
/// timestamps), partial entries joined, filtered by stream and time, the last `tail_lines`
/// only, at most `limit_bytes`, and with `follow` then waits for more until the container
/// stopped. The stream ends when done; dropping it stops the reader.
pub async fn read_logs(
    paths_oldest_first: Vec<PathBuf>,
    opts: LogOptions,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let output = Output {
            tx: tx.clone(),
            remaining: opts.limit_bytes,
        };
        if let Err(err) = read_task(paths_oldest_first, opts, output).await {
            let _ = tx.send(Err(err)).await;
        }
    });
    tokio_stream_from(rx)
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<io::Result<Bytes>>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn read_task(paths: Vec<PathBuf>, opts: LogOptions, mut out: Output) -> io::Result<()> {
    let follow = opts.follow;
    let mut running = opts.running.clone();
    let tail = opts.tail_lines;
    let mut assembler = Assembler {
        options: opts,
        pending: [None, None],
    };
    // The files present now are read to their end first (for tail_lines, keeping only the
    // last N lines); the last one is then followed.
    let mut tail_buf: VecDeque<Vec<u8>> = VecDeque::new();
    let mut live: Option<(PathBuf, File, u64)> = None;
    let count = paths.len();
    for (i, path) in paths.into_iter().enumerate() {
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        let mut lines = LineBuffer::default();
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let mut ready = Vec::new();
        lines.feed(&data, |line| {
            if let Some(entry) = parse_entry(line)
                && let Some(out) = assembler.push(entry)
            {
                ready.push(out);
            }
        });
        for line in ready {
            match tail {
                Some(0) => {}
                Some(n) => {
                    if tail_buf.len() == n {
                        tail_buf.pop_front();
                    }
                    tail_buf.push_back(line);
                }
                None => {
                    if !out.send(line).await {
                        return Ok(());
                    }
                }
            }
        }
        if i + 1 == count {
            let inode = file.metadata()?.ino();
            // An unterminated last line stays for the follow loop to complete.
            let offset = data.len() as u64 - lines.buf.len() as u64;
            file.seek(SeekFrom::Start(offset))?;
            live = Some((path, file, inode));
        }
    }
    for line in tail_buf {
        if !out.send(line).await {
            return Ok(());
        }
    }
    if !follow {
        return Ok(());
    }
    let Some((path, mut file, mut inode)) = live else {
        return Ok(());
    };
    let mut lines = LineBuffer::default();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Whether the container had stopped before this drain: then this is the last one.
        let stopped = match &running {
            Some(rx) => !*rx.borrow() || rx.has_changed().is_err(),
            None => false,
        };
        loop {
            let n = file.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            let mut ready = Vec::new();
            lines.feed(&chunk[..n], |line| {
                if let Some(entry) = parse_entry(line)
                    && let Some(out) = assembler.push(entry)
                {
                    ready.push(out);
                }
            });
            for line in ready {
                if !out.send(line).await {
                    return Ok(());
                }
            }
        }
        // Rotated: the file we read is drained; continue with the file rotated right after
        // it (several rotations may have happened since the last poll), else the live one.
        if fs::metadata(&path).is_ok_and(|meta| meta.ino() != inode) {
            let files = log_files_oldest_first(&path);
            let ours = files
                .iter()
                .position(|f| fs::metadata(f).is_ok_and(|m| m.ino() == inode));
            let next = match ours {
                Some(i) if i + 1 < files.len() => files[i + 1].clone(),
                _ => path.clone(),
            };
            if let Ok(new_file) = File::open(&next) {
                inode = new_file.metadata()?.ino();
                file = new_file;
                lines = LineBuffer::default();
                continue;
            }
        }
        if stopped {
            return Ok(());
        }
        let wait = tokio::time::sleep(FOLLOW_POLL);
        match &mut running {
            Some(rx) => {
                tokio::select! {
                    _ = wait => {}
                    _ = rx.changed() => {}
                    _ = out.tx.closed() => return Ok(()),
                }
            }
            None => {
                tokio::select! {
                    _ = wait => {}
                    _ = out.tx.closed() => return Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
