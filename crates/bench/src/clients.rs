//! Minimal MCP clients for the benchmark: stdio (one request in flight) and streamable
//! HTTP (keep-alive, SSE answers as real clients accept them).

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

fn echo(id: u64) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hi"}}}}}}"#)
}

pub trait Caller {
    fn call(&mut self) -> impl std::future::Future<Output = Result<()>> + Send;
}

pub struct StdioClient {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next: u64,
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
        let mut c = StdioClient { _child: child, stdin, lines, next: 1 };
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

    async fn call_echo(&mut self) -> Result<()> {
        self.next += 1;
        self.send(&echo(self.next)).await?;
        loop {
            let line = self.recv().await?;
            if line.contains("\"result\"") || line.contains("\"error\"") {
                if line.contains("\"isError\":true") || line.contains("\"error\"") {
                    bail!("call failed: {line}");
                }
                return Ok(());
            }
        }
    }
}

impl Caller for StdioClient {
    async fn call(&mut self) -> Result<()> {
        self.call_echo().await
    }
}

pub struct HttpClient {
    http: reqwest::Client,
    url: String,
    token: String,
    session: String,
    next: u64,
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
        let mut c = HttpClient { http, url: url.into(), token: token.into(), session, next: 1 };
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

    async fn call_echo(&mut self) -> Result<()> {
        self.next += 1;
        let body = self.post(echo(self.next)).await?;
        if !body.contains("\"result\"") || body.contains("\"isError\":true") {
            bail!("call failed: {body}");
        }
        Ok(())
    }
}

impl Caller for HttpClient {
    async fn call(&mut self) -> Result<()> {
        self.call_echo().await
    }
}
