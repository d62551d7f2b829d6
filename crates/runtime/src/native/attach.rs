//! The attach socket a container's shim serves at `<dir>/attach.sock`: what `kubectl attach`
//! reaches through the agent. The shim owns the container's stdio (the stdin pipe, or the
//! terminal master for `tty: true`), so attaching never touches the container itself and
//! works the same after an agent restart.
//!
//! Both directions carry frames `[kind: u8][length: u32, big-endian][payload]`:
//! - client → shim: [`HELLO`] (one flag byte: the client sends stdin), [`STDIN`] bytes,
//!   [`STDIN_EOF`], [`RESIZE`] (width, height as u16 big-endian);
//! - shim → client: [`STDOUT`] and [`STDERR`] bytes, raw as the container wrote them. The
//!   shim closes the connection once the container exited and its output is drained.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const HELLO: u8 = b'h';
pub const STDIN: u8 = b'i';
pub const STDIN_EOF: u8 = b'e';
pub const RESIZE: u8 = b'r';
pub const STDOUT: u8 = b'1';
pub const STDERR: u8 = b'2';

/// The hello flag of a client that sends stdin.
pub const HELLO_STDIN: u8 = 1;

/// Frames larger than this are refused (the shim's reads are 32 KiB).
const MAX_FRAME: u32 = 1 << 20;

/// Frames a client may fall behind by before the shim drops it, so one stalled client never
/// blocks the container's output or the log.
const CLIENT_BACKLOG: usize = 256;

pub fn socket_path(container_dir: &Path) -> PathBuf {
    container_dir.join(SOCKET_NAME)
}

const SOCKET_NAME: &str = "attach.sock";

/// A socket address for `name` in `dir` that fits the 108 bytes of a Unix socket address
/// however long `dir` is (a long data dir would not): the directory reached through a
/// descriptor of ours, `/proc/self/fd/<fd>/<name>`. `dir_fd` must outlive the call using it.
fn short_address(dir_fd: &fs::File, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir_fd.as_raw_fd()))
}

/// Binds a Unix socket `name` in `dir`, whatever the length of `dir`'s path.
pub fn bind_in(dir: &Path, name: &str) -> io::Result<UnixListener> {
    let dir_fd = fs::File::open(dir)?;
    let _ = fs::remove_file(dir.join(name));
    UnixListener::bind(short_address(&dir_fd, name))
}

/// Connects to a Unix socket, whatever the length of its path.
pub fn connect(socket: &Path) -> io::Result<UnixStream> {
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
        return UnixStream::connect(socket);
    };
    let dir_fd = fs::File::open(dir)?;
    UnixStream::connect(short_address(&dir_fd, &name.to_string_lossy()))
}

/// One frame, encoded.
pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.push(kind);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Reads one frame; `None` at a clean end of stream.
pub fn read_frame(reader: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 5];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if length > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("attach frame of {length} bytes"),
        ));
    }
    let mut payload = vec![0u8; length as usize];
    reader.read_exact(&mut payload)?;
    Ok(Some((header[0], payload)))
}

/// Where attached input goes: the container's stdin pipe or its terminal master.
pub(super) struct StdinSink {
    writer: Mutex<Option<fs::File>>,
    /// `stdinOnce`: the first attached client that ends its stdin closes the container's.
    once: bool,
}

impl StdinSink {
    pub(super) fn new(writer: Option<fs::File>, once: bool) -> StdinSink {
        StdinSink {
            writer: Mutex::new(writer),
            once,
        }
    }

    fn write(&self, data: &[u8]) {
        let mut writer = self.writer.lock().expect("poisoned");
        if let Some(w) = writer.as_mut()
            && w.write_all(data).is_err()
        {
            *writer = None;
        }
    }

    fn client_ended(&self) {
        if self.once {
            self.writer.lock().expect("poisoned").take();
        }
    }
}

struct Client {
    frames: SyncSender<Vec<u8>>,
    writer: JoinHandle<()>,
}

/// The shim's side: the attached clients, fed by the output copiers.
pub(super) struct AttachServer {
    clients: Mutex<Vec<Client>>,
    stdin: StdinSink,
    /// The terminal master, for resizes (`tty: true` only).
    terminal: Option<OwnedFd>,
    path: PathBuf,
}

impl AttachServer {
    /// Binds the socket and serves it from a thread of its own.
    pub(super) fn start(
        container_dir: &Path,
        stdin: StdinSink,
        terminal: Option<OwnedFd>,
    ) -> io::Result<Arc<AttachServer>> {
        let path = socket_path(container_dir);
        let listener = bind_in(container_dir, SOCKET_NAME)?;
        let server = Arc::new(AttachServer {
            clients: Mutex::new(Vec::new()),
            stdin,
            terminal,
            path,
        });
        let serving = Arc::clone(&server);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => serving.add_client(stream),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        });
        Ok(server)
    }

    fn add_client(self: &Arc<Self>, stream: UnixStream) {
        let Ok(mut reading) = stream.try_clone() else {
            return;
        };
        let (frames, queued) = std::sync::mpsc::sync_channel::<Vec<u8>>(CLIENT_BACKLOG);
        let mut writing = stream;
        let writer = std::thread::spawn(move || {
            while let Ok(frame) = queued.recv() {
                if writing.write_all(&frame).is_err() {
                    break;
                }
            }
            let _ = writing.shutdown(std::net::Shutdown::Both);
        });
        self.clients
            .lock()
            .expect("poisoned")
            .push(Client { frames, writer });
        let server = Arc::clone(self);
        std::thread::spawn(move || {
            let mut sends_stdin = false;
            loop {
                match read_frame(&mut reading) {
                    Ok(Some((HELLO, flags))) => {
                        sends_stdin = flags.first().is_some_and(|f| f & HELLO_STDIN != 0);
                    }
                    Ok(Some((STDIN, data))) => server.stdin.write(&data),
                    Ok(Some((STDIN_EOF, _))) => {
                        if sends_stdin {
                            server.stdin.client_ended();
                            sends_stdin = false;
                        }
                    }
                    Ok(Some((RESIZE, size))) if size.len() == 4 => {
                        server.resize(
                            u16::from_be_bytes([size[0], size[1]]),
                            u16::from_be_bytes([size[2], size[3]]),
                        );
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            // A client that went away without ending its stdin ended it all the same.
            if sends_stdin {
                server.stdin.client_ended();
            }
        });
    }

    fn resize(&self, width: u16, height: u16) {
        let Some(terminal) = &self.terminal else {
            return;
        };
        if width == 0 || height == 0 {
            return;
        }
        let size = nix::libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize through a valid pointer.
        unsafe {
            nix::libc::ioctl(terminal.as_raw_fd(), nix::libc::TIOCSWINSZ, &size);
        }
    }

    /// Hands container output to every attached client; a client too far behind is dropped.
    pub(super) fn broadcast(&self, kind: u8, data: &[u8]) {
        let mut clients = self.clients.lock().expect("poisoned");
        if clients.is_empty() {
            return;
        }
        let frame = encode(kind, data);
        clients.retain(|c| match c.frames.try_send(frame.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        });
    }

    /// The container exited and its output was copied: stop accepting, let each client
    /// receive what is queued (for at most `grace`), then close the connections.
    pub(super) fn finish(&self, grace: Duration) {
        let _ = fs::remove_file(&self.path);
        let clients = std::mem::take(&mut *self.clients.lock().expect("poisoned"));
        let deadline = Instant::now() + grace;
        for client in clients {
            drop(client.frames);
            while !client.writer.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_frames_are_refused() {
        let mut bytes = encode(STDIN, b"hello");
        bytes.extend(encode(STDIN_EOF, b""));
        let mut reader = io::Cursor::new(bytes);
        assert_eq!(
            read_frame(&mut reader).unwrap(),
            Some((STDIN, b"hello".to_vec()))
        );
        assert_eq!(read_frame(&mut reader).unwrap(), Some((STDIN_EOF, vec![])));
        assert_eq!(read_frame(&mut reader).unwrap(), None);

        let mut huge = vec![STDIN];
        huge.extend_from_slice(&(MAX_FRAME + 1).to_be_bytes());
        assert!(read_frame(&mut io::Cursor::new(huge)).is_err());
    }

    #[test]
    fn sockets_bind_and_connect_in_directories_longer_than_a_socket_address() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("d".repeat(60)).join("e".repeat(60));
        fs::create_dir_all(&deep).unwrap();
        assert!(socket_path(&deep).as_os_str().len() > 108);
        let listener = bind_in(&deep, SOCKET_NAME).unwrap();
        let _client = connect(&socket_path(&deep)).unwrap();
        listener.accept().unwrap();
        assert!(socket_path(&deep).exists());
    }

    #[test]
    fn input_reaches_the_container_and_stdin_once_closes_it_after_the_first_client() {
        let dir = tempfile::tempdir().unwrap();
        let (read_end, write_end) = std::io::pipe().unwrap();
        let sink = StdinSink::new(Some(fs::File::from(OwnedFd::from(write_end))), true);
        let server = AttachServer::start(dir.path(), sink, None).unwrap();

        let mut client = connect(&socket_path(dir.path())).unwrap();
        client.write_all(&encode(HELLO, &[HELLO_STDIN])).unwrap();
        client.write_all(&encode(STDIN, b"line\n")).unwrap();
        client.write_all(&encode(STDIN_EOF, b"")).unwrap();
        // The container sees the input, then end of file: stdinOnce closed its stdin.
        let mut seen = String::new();
        let mut read_end = read_end;
        read_end.read_to_string(&mut seen).unwrap();
        assert_eq!(seen, "line\n");

        // Output reaches the client; finishing closes its connection.
        while server.clients.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        server.broadcast(STDOUT, b"out");
        server.finish(Duration::from_secs(5));
        assert_eq!(
            read_frame(&mut client).unwrap(),
            Some((STDOUT, b"out".to_vec()))
        );
        assert_eq!(read_frame(&mut client).unwrap(), None);
        assert!(!socket_path(dir.path()).exists());
    }
}
