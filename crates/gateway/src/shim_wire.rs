//! What the stdio shim and the gateway say on the shim socket (a Unix socket in the data
//! folder, a named pipe on Windows), shared by both ends: the hello that opens a
//! connection, and the framing of every message after it.
//!
//! Framing is stdio's: newline-delimited JSON-RPC, one UTF-8 message a line. A writer
//! turns any CR or LF inside a message into a space (JSON allows them only between
//! tokens, where a space means the same), so a message is always exactly one line; a
//! reader takes at most a bounded number of bytes for one line and skips the rest of a
//! longer one without keeping it.
//!
//! The hello, the shim's first line:
//! `{"countersign":"connect","server":NAME,"project":DIR|null,"nonce":N}`; the gateway's
//! answer, its first line: `{"countersign":"ok","client":NAME,"proof":P}` or
//! `{"countersign":"error","error":TEXT}`. `project` names the project folder of a
//! project's server (`project = DIR` in config), which makes the connection's client
//! that project's (`project-FOLDER-HASH`), as its token does over HTTP; without it the
//! client is the shim's own (`stdio-shim`). `proof` is the HMAC of the nonce under the
//! data folder's control token ([`crate::gateway_link::prove_at`]), so the shim knows
//! it reached this folder's gateway before it sends a message. After that the connection
//! is one session on `/mcp/NAME`.
//!
//! This module holds no secret and does no I/O beyond the reader it is given; it never
//! lets a hello through that names no server or a folder that is not absolute.

use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Most bytes of a hello or of its answer.
pub const HELLO_MAX: usize = 8 * 1024;

/// The place the proof is made for on a Unix socket: a fixed name, as only this user can
/// create the socket in this user's data folder (the peer's user is checked as well). On
/// Windows the pipe's name is the place: a pipe name is global, so a proof made for
/// anything else does not pass for it.
pub const SOCKET_PLACE: &str = "shim-socket";

/// The shim's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    countersign: String,
    pub server: String,
    #[serde(default)]
    pub project: Option<String>,
    pub nonce: String,
}

impl Hello {
    pub fn new(server: &str, project: Option<&Path>, nonce: &str) -> Hello {
        Hello {
            countersign: "connect".into(),
            server: server.to_string(),
            project: project.map(|p| p.to_string_lossy().into_owned()),
            nonce: nonce.to_string(),
        }
    }

    /// The hello as one line, newline included.
    pub fn line(&self) -> Vec<u8> {
        frame(&serde_json::to_string(self).unwrap_or_default())
    }

    /// Reads and checks a hello (one line, without its newline).
    pub fn parse(line: &[u8]) -> Result<Hello, String> {
        let hello: Hello = serde_json::from_slice(line).map_err(|e| {
            format!(
                "the first line must be a hello: {{\"countersign\":\"connect\",\"server\":NAME,\"project\":DIR or \
                 null,\"nonce\":N}} ({e})"
            )
        })?;
        if hello.countersign != "connect" {
            let shown: String = hello.countersign.chars().take(40).filter(|c| !c.is_control()).collect();
            return Err(format!("unknown hello `{shown}`: expected \"connect\""));
        }
        let printable = |s: &str| !s.chars().any(char::is_control);
        if hello.server.is_empty() || hello.server.len() > 256 || !printable(&hello.server) {
            return Err("the hello must name a server (1 to 256 printable characters)".into());
        }
        if let Some(p) = &hello.project {
            if p.len() > 4096 || !printable(p) || !Path::new(p).is_absolute() {
                return Err("a hello's project is the absolute path of the project's folder".into());
            }
        }
        if !(16..=128).contains(&hello.nonce.len()) || !hello.nonce.chars().all(|c| c.is_ascii_graphic()) {
            return Err("a hello needs a nonce of 16 to 128 printable ASCII characters".into());
        }
        Ok(hello)
    }

    /// The client this connection speaks as: the project's, or the shim's own.
    pub fn client(&self) -> String {
        match &self.project {
            Some(p) => crate::tokens::project_token_name(Path::new(p)),
            None => crate::tokens::SHIM_TOKEN_NAME.to_string(),
        }
    }
}

/// The gateway's answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "countersign", rename_all = "lowercase")]
pub enum Welcome {
    /// The session may start; `client` is who the connection speaks as.
    Ok { client: String, proof: String },
    /// Refused, and why; the gateway closes the connection.
    Error { error: String },
}

impl Welcome {
    pub fn line(&self) -> Vec<u8> {
        frame(&serde_json::to_string(self).unwrap_or_default())
    }

    pub fn parse(line: &[u8]) -> Result<Welcome, String> {
        serde_json::from_slice(line).map_err(|_| "the peer did not answer the hello as a Countersign gateway".into())
    }
}

/// `text` as one line: CR and LF inside it become spaces, and a newline ends it.
pub fn frame(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend(text.bytes().map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }));
    bytes.push(b'\n');
    bytes
}

/// One line read with [`read_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line's bytes (in the buffer given), without its newline or a CR before it.
    Text,
    /// A line longer than the limit: skipped to its end, none of it kept.
    TooLong,
}

/// Reads the next line of at most `max` bytes into `buf` (cleared first). `None` at the
/// end of the input; a last line without a newline counts as a line. A longer line is
/// read to its end without being kept and reported as [`Line::TooLong`], so a flood of
/// bytes without a newline never holds more than `max` bytes.
pub async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize, buf: &mut Vec<u8>) -> io::Result<Option<Line>> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok(match (any, too_long) {
                (false, _) => None,
                (true, true) => Some(Line::TooLong),
                (true, false) => {
                    trim_cr(buf);
                    Some(Line::Text)
                }
            });
        }
        any = true;
        let (chunk, used, ends) = match memchr(available) {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        r.consume(used);
        if ends {
            if too_long {
                return Ok(Some(Line::TooLong));
            }
            trim_cr(buf);
            return Ok(Some(Line::Text));
        }
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

fn trim_cr(buf: &mut Vec<u8>) {
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Result<String, ()>> {
        let mut r = tokio::io::BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(line) = read_line(&mut r, max, &mut buf).await.unwrap() {
            out.push(match line {
                Line::Text => Ok(String::from_utf8(buf.clone()).unwrap()),
                Line::TooLong => Err(()),
            });
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_on_newlines_and_a_long_one_is_skipped_whole() {
        let got = lines(b"{\"a\":1}\r\n\n0123456789abc\nok\nlast", 10).await;
        assert_eq!(
            got,
            vec![Ok("{\"a\":1}".into()), Ok(String::new()), Err(()), Ok("ok".into()), Ok("last".into())],
            "CRLF ends a line too; a 13-byte line over a 10-byte limit is refused, and reading goes on after it"
        );
        assert_eq!(lines(b"", 10).await, vec![]);
        assert_eq!(lines(b"0123456789", 10).await, vec![Ok("0123456789".into())], "exactly the limit is a line");
        assert_eq!(lines(b"0123456789abcdef", 10).await, vec![Err(())], "a last line over the limit");
    }

    #[tokio::test]
    async fn a_flood_without_a_newline_is_never_kept() {
        let flood = vec![b'x'; 1 << 20];
        let mut r = tokio::io::BufReader::new(&flood[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, 1024, &mut buf).await.unwrap(), Some(Line::TooLong));
        assert!(buf.capacity() <= 64 * 1024, "at most the limit plus one read is ever held: {}", buf.capacity());
        assert_eq!(read_line(&mut r, 1024, &mut buf).await.unwrap(), None);
    }

    #[test]
    fn a_message_is_always_one_line() {
        let framed = frame("{\"a\":\n 1,\r\n\"b\": \"x\\ny\"}");
        assert_eq!(framed, b"{\"a\":  1,  \"b\": \"x\\ny\"}\n");
        let v: serde_json::Value = serde_json::from_slice(&framed).unwrap();
        assert_eq!(v["b"], "x\ny", "escaped newlines inside strings are untouched");
    }

    #[test]
    fn a_hello_round_trips_and_names_its_client() {
        let hello = Hello::new("fs", None, "0123456789abcdef");
        let line = hello.line();
        assert_eq!(line.last(), Some(&b'\n'));
        let back = Hello::parse(&line[..line.len() - 1]).unwrap();
        assert_eq!(back, hello);
        assert_eq!(back.client(), "stdio-shim");
        let project = Hello::new("helper", Some(Path::new("/home/ana/src/shop")), "0123456789abcdef");
        let back = Hello::parse(&project.line()).unwrap();
        assert_eq!(back.client(), crate::tokens::project_token_name(Path::new("/home/ana/src/shop")));
        assert!(back.client().starts_with("project-shop-"));
    }

    #[test]
    fn a_bad_hello_is_refused_with_a_reason() {
        let cases = [
            (r#"not json"#, "must be a hello"),
            (r#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#, "must be a hello"),
            (r#"{"countersign":"hello","server":"fs","nonce":"0123456789abcdef"}"#, "unknown hello"),
            (r#"{"countersign":"connect","server":"","nonce":"0123456789abcdef"}"#, "name a server"),
            (r#"{"countersign":"connect","server":"f\u0000s","nonce":"0123456789abcdef"}"#, "name a server"),
            (r#"{"countersign":"connect","server":"fs","project":"shop","nonce":"0123456789abcdef"}"#, "absolute"),
            (r#"{"countersign":"connect","server":"fs","nonce":"short"}"#, "nonce"),
            (r#"{"countersign":"connect","server":"fs","nonce":"0123456789abcdef","token":"x"}"#, "must be a hello"),
        ];
        for (line, why) in cases {
            let err = Hello::parse(line.as_bytes()).expect_err(line);
            assert!(err.contains(why), "{line}: {err}");
        }
    }

    #[test]
    fn a_welcome_round_trips() {
        for w in
            [Welcome::Ok { client: "stdio-shim".into(), proof: "ab".into() }, Welcome::Error { error: "no".into() }]
        {
            let line = w.line();
            assert_eq!(Welcome::parse(&line[..line.len() - 1]).unwrap(), w);
        }
        assert!(String::from_utf8(Welcome::Ok { client: "c".into(), proof: "p".into() }.line())
            .unwrap()
            .starts_with(r#"{"countersign":"ok""#));
        assert!(Welcome::parse(b"HTTP/1.1 400 Bad Request").is_err());
    }
}
