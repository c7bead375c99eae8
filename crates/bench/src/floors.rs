//! The floors a relay cannot go below on this machine, run as separate processes like the
//! gateway: a pipe relay (one more process copying lines) and an HTTP relay (a loopback
//! HTTP/1.1 server that copies each request body to the upstream's stdin and answers with
//! the line that comes back). Neither parses JSON, checks anything or writes a record, so
//! the distance between them and the gateway is what Countersign itself costs. They are
//! measuring instruments only: no limits, no error recovery, never use them for real.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};

fn spawn_upstream(upstream: &str) -> Result<(ChildStdin, BufReader<ChildStdout>)> {
    let mut child = Command::new(upstream).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let to_child = child.stdin.take().context("stdin")?;
    let from_child = child.stdout.take().context("stdout")?;
    Ok((to_child, BufReader::new(from_child)))
}

/// `countersign-bench pipe-relay UPSTREAM`: copies lines both ways with blocking I/O.
pub fn pipe_relay(upstream: &str) -> Result<()> {
    let (mut to_child, from_child) = spawn_upstream(upstream)?;
    std::thread::spawn(move || {
        let mut out = std::io::stdout().lock();
        for line in from_child.lines().map_while(Result::ok) {
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    });
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        writeln!(to_child, "{line}")?;
        to_child.flush()?;
    }
    Ok(())
}

/// `countersign-bench http-relay UPSTREAM`: prints its loopback address, then serves one
/// keep-alive connection per thread, all against one upstream process. A request with an `id`
/// waits for the upstream's next line; a notification gets `202` at once.
pub fn http_relay(upstream: &str) -> Result<()> {
    let child = std::sync::Arc::new(std::sync::Mutex::new(spawn_upstream(upstream)?));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    for conn in listener.incoming() {
        let conn = conn?;
        let child = child.clone();
        std::thread::spawn(move || -> Result<()> {
            conn.set_nodelay(true)?;
            let mut reader = BufReader::new(conn.try_clone()?);
            let mut writer = conn;
            while let Some(body) = read_request(&mut reader)? {
                let mut guard = child.lock().map_err(|_| anyhow::anyhow!("upstream lock poisoned"))?;
                let (to_child, from_child) = &mut *guard;
                to_child.write_all(&body)?;
                to_child.write_all(b"\n")?;
                to_child.flush()?;
                let answer = if is_request(&body) {
                    let mut line = String::new();
                    from_child.read_line(&mut line)?;
                    let line = line.trim_end();
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: floor\r\n\
                         content-length: {}\r\n\r\n{line}",
                        line.len()
                    )
                } else {
                    "HTTP/1.1 202 Accepted\r\nmcp-session-id: floor\r\ncontent-length: 0\r\n\r\n".to_string()
                };
                drop(guard);
                writer.write_all(answer.as_bytes())?;
            }
            Ok(())
        });
    }
    Ok(())
}

fn is_request(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains("\"id\"")
}

/// One request's body, or `None` when the client closed the connection.
fn read_request(reader: &mut impl BufRead) -> Result<Option<Vec<u8>>> {
    let mut line = String::new();
    let mut length = 0;
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("connection closed inside a request head");
        }
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = v.trim().parse().context("content-length")?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(body))
}
