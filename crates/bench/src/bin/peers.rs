//! `make bench-peers`: Countersign beside the proxies people use today, in one run on one
//! machine with the same upstreams, client and workload. Systems: the client talking to
//! the upstream directly (stdio), Countersign's HTTP face and stdio shim (policy and audit
//! on: every call allowed by a rule and its record committed before it is forwarded),
//! npm `mcp-proxy` and PyPI `mcp-proxy` (both stdio → streamable HTTP bridges, neither
//! with a policy or an audit trail). Upstreams: the fast rmcp fixture (with 200 tools) and
//! npm `server-everything`. Workloads: sequential `tools/call`, 16 clients calling at
//! once, sequential `tools/list`. Prints p50, p99, throughput and each proxy's RSS, and
//! writes them as JSON for the table and plot in BENCHMARKS.md.

use anyhow::{bail, Context, Result};
use clap::Parser;
use countersign_bench::clients::{Caller, HttpClient, Request, StdioClient};
use countersign_bench::measure::{cli, concurrent, rss_kib, sequential, serve, us, Row, Served};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The countersign binary (a release build).
    #[arg(long)]
    gateway: PathBuf,
    /// The fast-upstream binary.
    #[arg(long)]
    fast: PathBuf,
    /// npm `server-everything`'s executable.
    #[arg(long)]
    everything: PathBuf,
    /// npm `mcp-proxy`'s executable.
    #[arg(long)]
    npm_proxy: PathBuf,
    /// PyPI `mcp-proxy`'s executable.
    #[arg(long)]
    py_proxy: PathBuf,
    /// Calls per sequential run (and in total per concurrent run).
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// `tools/list` calls per run.
    #[arg(long, default_value_t = 300)]
    lists: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Where to write the results as JSON.
    #[arg(long)]
    out: PathBuf,
}

/// One upstream server and how to call it.
struct Upstream {
    name: &'static str,
    command: PathBuf,
    args: Vec<String>,
    call: Request,
}

/// A system under test, started for one upstream.
enum System {
    Direct,
    CountersignHttp { url: String, token: String, pid: u32 },
    CountersignShim { bin: PathBuf, home: PathBuf, server: &'static str, pid: u32 },
    Proxy { url: String, pid: u32, _child: tokio::process::Child },
}

enum Client {
    Stdio(Box<StdioClient>),
    Http(Box<HttpClient>),
}

impl Caller for Client {
    async fn call(&mut self) -> Result<()> {
        match self {
            Client::Stdio(c) => c.call().await,
            Client::Http(c) => c.call().await,
        }
    }
}

impl System {
    async fn client(&self, upstream: &Upstream, request: Request) -> Result<Client> {
        let args: Vec<&str> = upstream.args.iter().map(String::as_str).collect();
        Ok(match self {
            System::Direct => {
                Client::Stdio(Box::new(StdioClient::spawn(&upstream.command, &args, None).await?.with(request)))
            }
            System::CountersignHttp { url, token, .. } => {
                Client::Http(Box::new(HttpClient::connect(url, token).await?.with(request)))
            }
            System::CountersignShim { bin, home, server, .. } => {
                Client::Stdio(Box::new(StdioClient::spawn(bin, &["connect", server], Some(home)).await?.with(request)))
            }
            System::Proxy { url, .. } => {
                Client::Http(Box::new(HttpClient::connect(url, "unused").await?.with(request)))
            }
        })
    }

    fn pid(&self) -> Option<u32> {
        match self {
            System::Direct => None,
            System::CountersignHttp { pid, .. } | System::CountersignShim { pid, .. } | System::Proxy { pid, .. } => {
                Some(*pid)
            }
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_port(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Starts a peer proxy in front of `upstream`.
async fn proxy(kind: &str, bin: &Path, upstream: &Upstream) -> Result<System> {
    let port = free_port()?;
    let mut cmd = tokio::process::Command::new(bin);
    match kind {
        "npm" => cmd.args(["--port", &port.to_string(), "--host", "127.0.0.1", "--server", "stream", "--"]),
        _ => cmd.args(["--port", &port.to_string(), "--host", "127.0.0.1", "--log-level", "WARNING", "--"]),
    };
    cmd.arg(&upstream.command).args(&upstream.args);
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true).spawn()?;
    let pid = child.id().context("proxy pid")?;
    wait_port(port).await?;
    Ok(System::Proxy { url: format!("http://127.0.0.1:{port}/mcp"), pid, _child: child })
}

struct Measured {
    system: String,
    upstream: &'static str,
    workload: String,
    row: Row,
    rss_kib: Option<u64>,
}

async fn measure(args: &Args, system: &System, name: &str, upstream: &Upstream) -> Result<Vec<Measured>> {
    let mut out = Vec::new();
    let mut one = system.client(upstream, upstream.call.clone()).await?;
    let row = sequential("call", args.calls, &mut one).await.with_context(|| format!("{name} sequential"))?;
    out.push(("tools/call sequential".to_string(), row));
    let mut many = Vec::new();
    for _ in 0..args.concurrency {
        many.push(system.client(upstream, upstream.call.clone()).await?);
    }
    let row =
        concurrent("x", many, args.calls / args.concurrency).await.with_context(|| format!("{name} concurrent"))?;
    out.push((format!("tools/call x{}", args.concurrency), row));
    let mut lister = system.client(upstream, Request::list()).await?;
    let row = sequential("list", args.lists, &mut lister).await.with_context(|| format!("{name} list"))?;
    out.push(("tools/list sequential".to_string(), row));
    let rss = system.pid().map(rss_kib);
    Ok(out
        .into_iter()
        .map(|(workload, row)| Measured {
            system: name.to_string(),
            upstream: upstream.name,
            workload,
            row,
            rss_kib: rss,
        })
        .collect())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let abs = |p: &Path| std::fs::canonicalize(p).with_context(|| p.display().to_string());
    let gateway = abs(&args.gateway)?;
    let upstreams = [
        Upstream {
            name: "fast (200 tools)",
            command: abs(&args.fast)?,
            args: vec!["--tools".into(), "198".into()],
            call: Request::echo(),
        },
        Upstream {
            name: "server-everything",
            command: abs(&args.everything)?,
            args: vec!["stdio".into()],
            call: Request::call("echo", r#"{"message":"hi"}"#),
        },
    ];
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    let config = dir.path().join("peers.toml");
    let server = |name: &str, u: &Upstream| {
        format!("[servers.{name}]\ncommand = {:?}\nargs = {:?}\n", u.command.display().to_string(), u.args)
    };
    std::fs::write(
        &config,
        format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\n{}{}[policy]\nallow = [\"mcp__fast__echo\", \"mcp__everything__echo\"]\n",
            server("fast", &upstreams[0]),
            server("everything", &upstreams[1])
        ),
    )?;
    let Served { child: mut serve, pid, addr, token } = serve(&gateway, &home, &config).await?;

    let mut results = Vec::new();
    for (upstream, key) in upstreams.iter().zip(["fast", "everything"]) {
        let systems: Vec<(&str, System)> = vec![
            ("direct (stdio)", System::Direct),
            (
                "Countersign HTTP",
                System::CountersignHttp { url: format!("http://{addr}/mcp/{key}"), token: token.clone(), pid },
            ),
            (
                "Countersign shim",
                System::CountersignShim { bin: gateway.clone(), home: home.clone(), server: key, pid },
            ),
            ("npm mcp-proxy", proxy("npm", &args.npm_proxy, upstream).await?),
            ("PyPI mcp-proxy", proxy("pypi", &args.py_proxy, upstream).await?),
        ];
        for (name, system) in &systems {
            eprintln!("{} through {name}…", upstream.name);
            results.extend(measure(&args, system, name, upstream).await?);
        }
    }
    let exported = cli(&gateway, &home, &["audit", "export", "--format", "jsonl"]).await?;
    let records = exported.lines().filter(|l| l.contains("\"tool\":\"echo\"")).count();
    let _ = serve.start_kill();
    report(&args, &results, records)
}

fn report(args: &Args, results: &[Measured], records: usize) -> Result<()> {
    println!(
        "\nPeers: {} calls per run, {} concurrent clients, {} tools/list",
        args.calls, args.concurrency, args.lists
    );
    println!(
        "{:<18} {:<18} {:<22} {:>9} {:>9} {:>10} {:>10} {:>9}",
        "upstream", "system", "workload", "p50 µs", "p99 µs", "per s", "added p50", "RSS MiB"
    );
    let mut rows = Vec::new();
    for m in results {
        let direct = results
            .iter()
            .find(|d| d.system.starts_with("direct") && d.upstream == m.upstream && d.workload == m.workload);
        let added = direct.map(|d| us(m.row.pct(0.5)) - us(d.row.pct(0.5)));
        let ours = results
            .iter()
            .find(|c| c.system == "Countersign HTTP" && c.upstream == m.upstream && c.workload == m.workload);
        let rss = m.rss_kib.map(|k| k as f64 / 1024.0);
        println!(
            "{:<18} {:<18} {:<22} {:>9.1} {:>9.1} {:>10.0} {:>10} {:>9}",
            m.upstream,
            m.system,
            m.workload,
            us(m.row.pct(0.5)),
            us(m.row.pct(0.99)),
            m.row.rate(),
            added.map_or("-".into(), |a| format!("{a:.1}")),
            rss.map_or("-".into(), |r| format!("{r:.1}"))
        );
        rows.push(json!({
            "upstream": m.upstream,
            "system": m.system,
            "workload": m.workload,
            "p50_us": us(m.row.pct(0.5)),
            "p99_us": us(m.row.pct(0.99)),
            "per_s": m.row.rate(),
            "added_p50_us": added,
            "rss_mib": rss,
            "p50_vs_countersign_http": ours.map(|o| us(m.row.pct(0.5)) / us(o.row.pct(0.5))),
        }));
    }
    println!("audit records committed for Countersign's echo calls: {records}");
    let doc = json!({
        "calls": args.calls,
        "concurrency": args.concurrency,
        "lists": args.lists,
        "audit_records": records,
        "rows": rows,
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
