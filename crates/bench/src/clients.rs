//! Minimal MCP clients for the benchmark: stdio (one request in flight) and streamable
//! HTTP (keep-alive, SSE answers as real clients accept them).

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// The request each call sends, with its id filled in.
#[derive(Clone, Debug)]
pub struct Request {
    before_id: String,
    after_id: String,
}

impl Request {
    /// `tools/call` of `tool` with `arguments` (a JSON object).
    pub fn call(tool: &str, arguments: &str) -> Self {
        Request {
            before_id: r#"{"jsonrpc":"2.0","id":"#.into(),
            after_id: format!(r#","method":"tools/call","params":{{"name":"{tool}","arguments":{arguments}}}}}"#),
        }
    }

    /// The fast fixture's `echo`.
    pub fn echo() -> Self {
        Self::call("echo", r#"{"text":"hi"}"#)
    }

    /// `tools/list`.
    pub fn list() -> Self {
        Request { before_id: r#"{"jsonrpc":"2.0","id":"#.into(), after_id: r#","method":"tools/list"}"#.into() }
    }

    fn render(&self, id: u64) -> String {
        format!("{}{id}{}", self.before_id, self.after_id)
    }
}

fn echo(id: u64) -> String {
    Request::echo().render(id)
}

/// Whether an answer is a success.
fn succeeded(body: &str) -> bool {
    body.contains("\"result\"") && !body.contains("\"isError\":true")
}

pub trait Caller {
    fn call(&mut self) -> impl std::future::Future<Output = Result<()>> + Send;
}

/// Any of the clients, so one run can hold them side by side.
pub enum AnyClient {
    Stdio(StdioClient),
    Http(HttpClient),
    Raw(RawHttpClient),
}

impl Caller for AnyClient {
    async fn call(&mut self) -> Result<()> {
        match self {
            AnyClient::Stdio(c) => c.call().await,
            AnyClient::Http(c) => c.call().await,
            AnyClient::Raw(c) => c.call().await,
        }
    }
}

pub struct StdioClient {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next: u64,
    request: Request,
}

impl StdioClient {
    pub async fn spawn(bin: &Path, args: &[&str], home: Option<&Path>) -> Result<Self> {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true);
        if let Some(h) = home {
            cmd.env("COUNTERSIGN_HOME", h);
        }
        let mut child = cmd.spawn().with_context(|| format!("spawn {}", bin.display()))?;
        let stdin = child.stdin.take().context("stdin")?;
        let lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut c = StdioClient { _child: child, stdin, lines, next: 1, request: Request::echo() };
        c.send(INIT).await?;
        c.recv().await?;
        c.send(INITIALIZED).await?;
        Ok(c)
    }

    async fn send(&mut self, line: &str) -> Result<()> {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<String> {
        self.lines.next_line().await?.context("the server closed its output")
    }

    /// Sends `request` on every call from now on.
    pub fn with(mut self, request: Request) -> Self {
        self.request = request;
        self
    }

    async fn call_once(&mut self) -> Result<()> {
        self.next += 1;
        let line = self.request.render(self.next);
        self.send(&line).await?;
        loop {
            let line = self.recv().await?;
            if line.contains("\"result\"") || line.contains("\"error\"") {
                if !succeeded(&line) {
                    bail!("call failed: {line}");
                }
                return Ok(());
            }
        }
    }
}

impl Caller for StdioClient {
    async fn call(&mut self) -> Result<()> {
        self.call_once().await
    }
}

pub struct HttpClient {
    http: reqwest::Client,
    url: String,
    token: String,
    pub session: String,
    next: u64,
    request: Request,
}

impl HttpClient {
    pub async fn connect(url: &str, token: &str) -> Result<Self> {
        let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(4).build()?;
        let resp = http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(INIT)
            .send()
            .await?;
        let session = resp.headers().get("mcp-session-id").context("no session id")?.to_str()?.to_string();
        resp.bytes().await?;
        let mut c =
            HttpClient { http, url: url.into(), token: token.into(), session, next: 1, request: Request::echo() };
        c.post(INITIALIZED.to_string()).await?;
        Ok(c)
    }

    async fn post(&mut self, body: String) -> Result<String> {
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .body(body)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("HTTP {}", resp.status());
        }
        Ok(resp.text().await?)
    }

    /// Sends `request` on every call from now on.
    pub fn with(mut self, request: Request) -> Self {
        self.request = request;
        self
    }

    /// Sends `request` once, whatever this client sends on its calls.
    pub async fn send(&mut self, request: &Request) -> Result<()> {
        self.next += 1;
        let body = self.post(request.render(self.next)).await?;
        if !succeeded(&body) {
            bail!("call failed: {body}");
        }
        Ok(())
    }

    async fn call_once(&mut self) -> Result<()> {
        self.next += 1;
        let body = self.post(self.request.render(self.next)).await?;
        if !succeeded(&body) {
            bail!("call failed: {body}");
        }
        Ok(())
    }
}

impl Caller for HttpClient {
    async fn call(&mut self) -> Result<()> {
        self.call_once().await
    }
}

/// A minimal keep-alive HTTP/1.1 client on one TCP connection: it writes each request in
/// one piece and reads exactly one response (Content-Length or chunked). It shows what
/// the gateway costs apart from an HTTP client library's own overhead.
pub struct RawHttpClient {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    head: String,
    next: u64,
}

impl RawHttpClient {
    pub async fn connect(url: &str, token: &str) -> Result<Self> {
        // The session is opened with the ordinary client; the calls then go raw.
        let http = HttpClient::connect(url, token).await?;
        let rest = url.strip_prefix("http://").context("http URL")?;
        let (addr, path) = rest.split_once('/').context("URL path")?;
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let head = format!(
            "POST /{path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMcp-Session-Id: {}\r\n",
            http.session
        );
        Ok(RawHttpClient { stream: tokio::io::BufReader::new(tcp), head, next: 1 })
    }

    async fn read_response(&mut self) -> Result<String> {
        use tokio::io::AsyncReadExt;
        let mut line = String::new();
        let mut length = None;
        let mut chunked = false;
        self.stream.read_line(&mut line).await?;
        if !line.starts_with("HTTP/1.1 200") {
            bail!("unexpected status: {line}");
        }
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
            if l.starts_with("transfer-encoding:") && l.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if let Some(n) = length {
            body.resize(n, 0);
            self.stream.read_exact(&mut body).await?;
        } else if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim(), 16).context("chunk size")?;
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        }
        Ok(String::from_utf8(body)?)
    }
}

impl Caller for RawHttpClient {
    async fn call(&mut self) -> Result<()> {
        self.next += 1;
        let body = echo(self.next);
        let request = format!("{}Content-Length: {}\r\n\r\n{body}", self.head, body.len());
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let answer = self.read_response().await?;
        if !succeeded(&answer) {
            bail!("call failed: {answer}");
        }
        Ok(())
    }
}
