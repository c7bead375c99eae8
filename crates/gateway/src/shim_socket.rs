//! The shim socket: the gateway's face for `countersign connect`, without HTTP and without
//! a token. On Unix a socket in the data folder (`gateway.sock`, mode 0600, in the 0700
//! folder); on Windows a named pipe only its owner may open.
//!
//! Who may connect is decided by the operating system, before a byte is read: on Unix the
//! peer's user, as the kernel reports it (`SO_PEERCRED` / `getpeereid`), must be the
//! gateway's own; any other connection is closed unread and its refusal recorded like
//! every refusal at the port's door (`front_door::record_refusal`). Then the shim's hello
//! ([`crate::shim_wire`]) names the server and, for a project's server, the project; the
//! connection's client is that project's (`project-FOLDER-HASH`) or the shim's
//! (`stdio-shim`), the same names the shim's tokens carry over HTTP, so policy, grants,
//! the project scope and the journal see the same client whichever path it took. The
//! gateway answers with a proof keyed by the control token, so the shim knows whom it
//! talks to. After that the connection is one session on `/mcp/NAME`
//! ([`crate::dispatch`], the same as HTTP's): one JSON-RPC message a line each way, the
//! server's own messages on the same line, in order; the session ends when the
//! connection does.
//!
//! Bounds: connections (`limits.max_connections`, apart from the port's), a hello within
//! `limits.read_timeout_secs`, a message within `limits.max_body_bytes` (a longer line is
//! skipped unread and answered with an error), requests in flight per connection, and
//! what waits to be written (a client that stops reading is disconnected, see
//! `session::flow::strict`).
//!
//! Creating the socket never follows a symbolic link and never removes what is not a
//! stale socket of this user's: the folder must be this user's and 0700; an existing path
//! is replaced only if it is a socket of this user's that nobody answers on; the socket
//! is made under a temporary name, set to 0600 and renamed into place. It is removed at
//! shutdown only if it is still the one this gateway made.
//!
//! Must never: read from a peer of another user, let a connection reach a server its
//! client may not (the project scope is the policy's gate, as over HTTP), or hold more
//! than the bounds above for one connection.

use crate::dispatch::{dispatch, Dispatched};
use crate::front_door::{record_refusal, Face};
use crate::message::{self, code, Envelope, Kind};
use crate::session::flow::{self, FlowTx};
use crate::session::{AnswerTo, Door, Route, Session};
use crate::shim_wire::{self, Hello, Line, Welcome};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::Semaphore;

/// Resolves (with an error, its sender gone) when the socket closes.
type Stop = tokio::sync::watch::Receiver<()>;

/// Most requests one connection may have in flight (waiting for a person or a server);
/// more are answered with an error until some finish.
const IN_FLIGHT_PER_CONNECTION: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Something at the path (or the folder) is not what may be used or replaced; it is
    /// left as it is.
    #[error("{path}: {why}")]
    Unsafe { path: PathBuf, why: String },
    #[error("{path}: another process answers on it (another gateway for this data folder?); left as it is")]
    InUse { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The open shim socket: serves until dropped; then stops accepting, ends every
/// connection (and so its session) and (on Unix) removes its file if it is still its own.
pub(crate) struct ShimSocket {
    task: tokio::task::JoinHandle<()>,
    /// Dropped with the socket: every connection sees it and ends.
    _stop: tokio::sync::watch::Sender<()>,
    #[cfg(unix)]
    _file: unix::SocketFile,
    /// Where it is, for the log.
    pub(crate) place: String,
}

impl Drop for ShimSocket {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens the shim socket of `face`'s data folder and serves it.
#[cfg(unix)]
pub(crate) fn open(face: Face) -> Result<ShimSocket, SocketError> {
    let (listener, file) = unix::bind(&face.shared.home)?;
    let place = file.path.display().to_string();
    let room = Arc::new(Semaphore::new(face.shared.config.limits.max_connections));
    let (stop, stopped) = tokio::sync::watch::channel(());
    let task = tokio::spawn(unix::accept(listener, face, room, stopped));
    Ok(ShimSocket { task, _stop: stop, _file: file, place })
}

/// Opens the shim pipe of `face`'s data folder and serves it.
#[cfg(windows)]
pub(crate) fn open(face: Face) -> Result<ShimSocket, SocketError> {
    let name = face.shared.home.shim_pipe_name();
    let first = pipe::create(&name, true).map_err(|source| SocketError::Io { path: PathBuf::from(&name), source })?;
    let room = Arc::new(Semaphore::new(face.shared.config.limits.max_connections));
    let (stop, stopped) = tokio::sync::watch::channel(());
    let task = tokio::spawn(pipe::accept(first, name.clone(), face, room, stopped));
    Ok(ShimSocket { task, _stop: stop, place: name })
}

/// The shim socket is for Unix and Windows; elsewhere the shim uses HTTP.
#[cfg(not(any(unix, windows)))]
pub(crate) fn open(face: Face) -> Result<ShimSocket, SocketError> {
    let _ = face;
    Err(SocketError::Unsafe { path: PathBuf::new(), why: "no shim socket on this platform".into() })
}

/// A connection from another user: closed unread, and recorded.
#[cfg_attr(not(unix), allow(dead_code))]
fn refuse_peer(face: &Face, why: String) {
    tracing::warn!("refused a shim socket connection: {why}");
    record_refusal(&face.shared, "CONNECT shim socket".into(), None, &why);
}

/// One connection from this user: the hello, then one session until either side ends
/// or the socket is closed (`stop`). `place` is what the proof is made for
/// ([`shim_wire::SOCKET_PLACE`], or the pipe name).
async fn serve_connection<R, W>(face: Face, reader: R, writer: W, place: String, mut stop: Stop)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let read_timeout = Duration::from_secs(face.shared.config.limits.read_timeout_secs);
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let mut buf = Vec::new();
    let hello =
        match tokio::time::timeout(read_timeout, shim_wire::read_line(&mut reader, shim_wire::HELLO_MAX, &mut buf))
            .await
        {
            Ok(Ok(Some(Line::Text))) => Hello::parse(&buf).and_then(|h| known_server(&face, h)),
            Ok(Ok(Some(Line::TooLong))) => {
                Err(format!("a hello is one line of at most {} bytes", shim_wire::HELLO_MAX))
            }
            Ok(Ok(None) | Err(_)) => return,
            Err(_) => Err(format!("no hello within {}s", read_timeout.as_secs())),
        };
    let (hello, client) = match hello {
        Ok(hello) => {
            let client = hello.client();
            (hello, client)
        }
        Err(error) => {
            tracing::debug!("shim socket hello refused: {error}");
            let _ = writer.write_all(&Welcome::Error { error }.line()).await;
            let _ = writer.flush().await;
            return;
        }
    };
    let proof = crate::gateway_link::prove_at(&face.shared.control_token, &hello.nonce, &place);
    let welcome = Welcome::Ok { client: client.clone(), proof }.line();
    if writer.write_all(&welcome).await.is_err() || writer.flush().await.is_err() {
        return;
    }
    let route = Route::Single(hello.server);
    // Everything for this client goes through one bounded, ordered line: answers, progress,
    // the server's own messages and requests.
    let (line, mut out) = flow::strict::<String>();
    let mut written = tokio::spawn(async move {
        while let Some(text) = out.recv().await {
            if writer.write_all(&shim_wire::frame(&text)).await.is_err() {
                return;
            }
            while let Some(more) = out.try_recv() {
                if writer.write_all(&shim_wire::frame(&more)).await.is_err() {
                    return;
                }
            }
            if writer.flush().await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    });
    let max = face.shared.config.limits.max_body_bytes;
    let mut session: Option<Arc<Session>> = None;
    let mut writer_done = false;
    loop {
        let read = tokio::select! {
            read = shim_wire::read_line(&mut reader, max, &mut buf) => read,
            _ = &mut written => {
                // The client stopped reading (its line was cut) or its end closed.
                writer_done = true;
                break;
            }
            _ = stop.changed() => break,
        };
        match read {
            Ok(Some(Line::Text)) => take_line(&face, &route, &client, &mut session, &buf, &line).await,
            Ok(Some(Line::TooLong)) => {
                let msg = format!("message larger than the {max}-byte limit");
                let _ = line.send(message::error_response(None, code::INVALID_REQUEST, &msg));
            }
            Ok(None) | Err(_) => break,
        }
    }
    // The connection is the session: when it ends, so does the session (as a DELETE ends
    // an HTTP one), and what waits for a person is withdrawn.
    if let Some(session) = session {
        face.sessions.remove(&session.id);
        session.close();
    }
    drop(line);
    if !writer_done && tokio::time::timeout(read_timeout, &mut written).await.is_err() {
        written.abort();
    }
}

/// The hello's server, if it is configured and serves this client (a project's server is
/// not even named to another client).
fn known_server(face: &Face, hello: Hello) -> Result<Hello, String> {
    let servers = face.shared.servers();
    if servers.contains_key(&hello.server) {
        return Ok(hello);
    }
    let client = hello.client();
    let known: Vec<&String> = servers.iter().filter(|(_, s)| s.info.serves(&client)).map(|(n, _)| n).collect();
    Err(format!("no server named `{}`; configured: {known:?}", hello.server))
}

/// One line from the client: a message checked as the HTTP face checks a body, then
/// dispatched into the connection's session.
async fn take_line(
    face: &Face,
    route: &Route,
    client: &str,
    session: &mut Option<Arc<Session>>,
    bytes: &[u8],
    line: &FlowTx<String>,
) {
    let refuse = |id: Option<&serde_json::value::RawValue>, code: i64, msg: &str| {
        let _ = line.send(message::error_response(id, code, msg));
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return; // blank lines are nothing, as on stdio
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return refuse(None, code::PARSE_ERROR, "message is not UTF-8");
    };
    if let Err(e) = message::check(text, face.shared.config.limits.max_depth) {
        return refuse(None, e.code, &e.message);
    }
    let env = match Envelope::parse(text) {
        Ok(env) => env,
        Err(e) => return refuse(None, e.code, &e.message),
    };
    if env.kind() == Kind::Request && session.as_ref().is_some_and(|s| s.in_flight_count() >= IN_FLIGHT_PER_CONNECTION)
    {
        let msg = format!(
            "{IN_FLIGHT_PER_CONNECTION} requests are in flight on this connection, the most one may have; wait for \
             some to finish"
        );
        return refuse(env.id(), code::INTERNAL_ERROR, &msg);
    }
    let to = AnswerTo::Line(line.clone());
    match dispatch(face, route, client, Door::Socket, session.clone(), env, to).await {
        Dispatched::Taken | Dispatched::Answer(..) => {}
        Dispatched::Refused(_, body) => {
            let _ = line.send(body);
        }
        Dispatched::Opened(opened, _) => *session = Some(opened),
    }
}

#[cfg(all(test, unix))]
#[path = "shim_socket_tests.rs"]
mod tests;

#[cfg(unix)]
mod unix {
    use super::{refuse_peer, serve_connection, SocketError, Stop};
    use crate::front_door::Face;
    use crate::home::Home;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::net::UnixListener;
    use tokio::sync::Semaphore;

    /// The socket file this gateway made: removed when dropped, if it is still that file.
    pub(super) struct SocketFile {
        pub(super) path: PathBuf,
        dev: u64,
        ino: u64,
    }

    impl Drop for SocketFile {
        fn drop(&mut self) {
            let ours = fs::symlink_metadata(&self.path)
                .is_ok_and(|m| m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino);
            if ours {
                let _ = fs::remove_file(&self.path);
            }
        }
    }

    fn me() -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }

    fn is_own_socket(m: &fs::Metadata) -> bool {
        m.file_type().is_socket() && m.uid() == me()
    }

    /// Makes the socket safely (see the module's docs) and listens on it.
    pub(super) fn bind(home: &Home) -> Result<(UnixListener, SocketFile), SocketError> {
        let unsafe_at = |path: &Path, why: String| SocketError::Unsafe { path: path.to_path_buf(), why };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SocketError::Io { path, source }
        };
        let dir = home.dir();
        let d = fs::symlink_metadata(dir).map_err(io(dir))?;
        if !d.is_dir() {
            return Err(unsafe_at(dir, "the data folder is a symbolic link or not a folder".into()));
        }
        if d.uid() != me() || d.mode() & 0o077 != 0 {
            let why = format!(
                "the data folder must be this user's alone (0700); it is {:o} and belongs to uid {}",
                d.mode() & 0o7777,
                d.uid()
            );
            return Err(unsafe_at(dir, why));
        }
        let path = home.shim_socket_path();
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
            Ok(m) if is_own_socket(&m) => match std::os::unix::net::UnixStream::connect(&path) {
                Ok(_) => return Err(SocketError::InUse { path }),
                // A socket nobody answers on: left by a gateway that crashed; replaced below.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => {
                    return Err(unsafe_at(&path, format!("cannot tell whether it is in use ({e}); left as it is")))
                }
            },
            Ok(_) => {
                let why = "not a socket of this user's (a link, a file or another user's socket); left as it is";
                return Err(unsafe_at(&path, why.into()));
            }
        }
        // Made under a name of this process's own, made 0600, then renamed into place: the
        // path never holds a socket with a looser mode, and the rename replaces a stale
        // socket (or a link put there since) without following anything.
        let tmp = dir.join(format!(".gateway.sock.{}", std::process::id()));
        match fs::symlink_metadata(&tmp) {
            Err(_) => {}
            Ok(m) if is_own_socket(&m) => fs::remove_file(&tmp).map_err(io(&tmp))?,
            Ok(_) => return Err(unsafe_at(&tmp, "not a socket of this user's; left as it is".into())),
        }
        let listener = UnixListener::bind(&tmp).map_err(io(&tmp))?;
        let placed = (|| {
            let made = fs::symlink_metadata(&tmp).map_err(io(&tmp))?;
            if !is_own_socket(&made) {
                return Err(unsafe_at(&tmp, "changed under the gateway while it was made".into()));
            }
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(io(&tmp))?;
            fs::rename(&tmp, &path).map_err(io(&path))?;
            let m = fs::symlink_metadata(&path).map_err(io(&path))?;
            if !is_own_socket(&m) || m.dev() != made.dev() || m.ino() != made.ino() || m.mode() & 0o777 != 0o600 {
                return Err(unsafe_at(&path, "changed under the gateway while it was made".into()));
            }
            Ok(SocketFile { path: path.clone(), dev: m.dev(), ino: m.ino() })
        })();
        match placed {
            Ok(file) => Ok((listener, file)),
            Err(e) => {
                if fs::symlink_metadata(&tmp).is_ok_and(|m| is_own_socket(&m)) {
                    let _ = fs::remove_file(&tmp);
                }
                Err(e)
            }
        }
    }

    /// Accepts connections; a peer of another user is refused before anything is read.
    pub(super) async fn accept(listener: UnixListener, face: Face, room: Arc<Semaphore>, stop: Stop) {
        let me = me();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("accepting a shim socket connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(place) = room.clone().try_acquire_owned() else {
                tracing::warn!("too many shim socket connections are open; closed a new one");
                continue;
            };
            let (face, stop) = (face.clone(), stop.clone());
            tokio::spawn(async move {
                match stream.peer_cred() {
                    Ok(peer) if peer.uid() == me => {
                        let (reader, writer) = stream.into_split();
                        let place = crate::shim_wire::SOCKET_PLACE.to_string();
                        serve_connection(face, reader, writer, place, stop).await;
                    }
                    Ok(peer) => {
                        let pid = peer.pid().map(|p| format!(" (pid {p})")).unwrap_or_default();
                        let why = format!(
                            "a process of user {}{pid} connected to the shim socket; only the gateway's own user \
                             ({me}) may",
                            peer.uid()
                        );
                        drop(stream);
                        refuse_peer(&face, why);
                    }
                    Err(e) => {
                        drop(stream);
                        refuse_peer(&face, format!("the shim socket peer's user could not be read ({e})"));
                    }
                }
                drop(place);
            });
        }
    }
}

/// The Windows named pipe. NOT TESTED: the project's machines run Linux, so this is
/// written against tokio's and windows-sys's documented APIs and has not been built or run
/// on Windows; test it there before relying on it. Who may connect is the pipe's DACL:
/// protected (nothing inherited), full access for the pipe's owner only (`OW`), remote
/// clients rejected; `first_pipe_instance` makes the gateway fail, not share, when
/// another process created the name first. The peer's user is not read again here (the
/// DACL already decided), so no refusal is recorded on Windows: a connection the DACL
/// refuses never reaches the gateway.
#[cfg(windows)]
mod pipe {
    use super::{serve_connection, Face, Stop};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
    use tokio::sync::Semaphore;
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
    };
    use windows_sys::Win32::Security::{PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES};

    /// One instance of the pipe, with the owner-only DACL.
    pub(super) fn create(name: &str, first: bool) -> std::io::Result<NamedPipeServer> {
        let sddl: Vec<u16> = "D:P(A;;GA;;;OW)".encode_utf16().chain(std::iter::once(0)).collect();
        let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `sddl` is NUL-terminated UTF-16; on success the descriptor is allocated
        // by the system and freed below with LocalFree.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut attributes = SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: descriptor,
            bInheritHandle: 0,
        };
        let mut options = ServerOptions::new();
        options.first_pipe_instance(first).reject_remote_clients(true);
        // SAFETY: `attributes` is a valid SECURITY_ATTRIBUTES that outlives the call.
        let server = unsafe {
            options.create_with_security_attributes_raw(name, &mut attributes as *mut SECURITY_ATTRIBUTES as *mut _)
        };
        // SAFETY: the descriptor came from ConvertStringSecurityDescriptorToSecurityDescriptorW.
        unsafe { LocalFree(descriptor as _) };
        server
    }

    pub(super) async fn accept(
        mut server: NamedPipeServer,
        name: String,
        face: Face,
        room: Arc<Semaphore>,
        stop: Stop,
    ) {
        loop {
            if let Err(e) = server.connect().await {
                tracing::warn!("accepting a shim pipe connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let connected = server;
            server = match create(&name, false) {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!("the shim pipe cannot take more connections: {e}");
                    return;
                }
            };
            let Ok(place) = room.clone().try_acquire_owned() else {
                tracing::warn!("too many shim pipe connections are open; closed a new one");
                continue;
            };
            let (face, name, stop) = (face.clone(), name.clone(), stop.clone());
            tokio::spawn(async move {
                let (reader, writer) = tokio::io::split(connected);
                serve_connection(face, reader, writer, name, stop).await;
                drop(place);
            });
        }
    }
}
