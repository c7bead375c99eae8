//! `make bench`: trivial `tools/call`s to the fast rmcp upstream, direct and through the
//! gateway (HTTP face and stdio shim), sequential and with 16 concurrent clients, all in
//! one run so the figures are comparable on a noisy machine. Prints p50/p99 latency,
//! throughput and the gateway's RSS. The gateway runs with its policy and audit on: each
//! call is allowed by policy and its record committed before it is forwarded.

mod floors;

use anyhow::{Context, Result};
use clap::Parser;
use countersign_bench::clients::{HttpClient, RawHttpClient, StdioClient};
use countersign_bench::measure::{cli, concurrent, rss_kib, sequential, serve, us, Row, Served};
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    /// The countersign binary (a release build).
    #[arg(long)]
    gateway: PathBuf,
    /// The fast-upstream binary.
    #[arg(long)]
    upstream: PathBuf,
    /// Calls per sequential run (and in total per concurrent run).
    #[arg(long, default_value_t = 5000)]
    calls: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Run only the rows whose name contains this text (the direct stdio row, the
    /// baseline for "added", always runs). For profiling one path.
    #[arg(long)]
    only: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("pipe-relay") {
        return floors::pipe_relay(raw.get(2).context("pipe-relay UPSTREAM")?);
    }
    if raw.get(1).map(String::as_str) == Some("http-relay") {
        return floors::http_relay(raw.get(2).context("http-relay UPSTREAM")?);
    }
    let args = Args::parse();
    let gateway = std::fs::canonicalize(&args.gateway).context("--gateway")?;
    let upstream = std::fs::canonicalize(&args.upstream).context("--upstream")?;
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\n[servers.fast]\ncommand = {:?}\ntrusted = true\n",
            upstream.display().to_string()
        ),
    )?;
    let per_client = args.calls / args.concurrency;
    let mut rows = Vec::new();

    let want = |name: &str| args.only.as_deref().is_none_or(|only| name.contains(only));
    let direct_x = format!("direct x{}", args.concurrency);
    let http_x = format!("gateway HTTP x{}", args.concurrency);
    let shim_x = format!("gateway shim x{}", args.concurrency);

    // Direct: the client talks to the upstream itself.
    let mut direct = StdioClient::spawn(&upstream, &[], None).await?;
    rows.push(sequential("direct (stdio)", args.calls, &mut direct).await?);
    if want(&direct_x) {
        let mut many = Vec::new();
        for _ in 0..args.concurrency {
            many.push(StdioClient::spawn(&upstream, &[], None).await?);
        }
        rows.push(concurrent(&direct_x, many, per_client).await?);
    }

    // The floor for any relay: one more process in the path that only copies lines.
    if want("pipe relay (floor)") {
        let me = std::env::current_exe()?;
        let relay_args = ["pipe-relay", upstream.to_str().unwrap_or_default()];
        let mut floor = StdioClient::spawn(&me, &relay_args, None).await?;
        rows.push(sequential("pipe relay (floor)", args.calls, &mut floor).await?);
    }
    if want("HTTP relay (floor)") {
        let me = std::env::current_exe()?;
        let mut relay = tokio::process::Command::new(&me)
            .args(["http-relay", upstream.to_str().unwrap_or_default()])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = relay.stdout.take().context("http-relay stdout")?;
        let mut addr = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut tokio::io::BufReader::new(stdout), &mut addr).await?;
        let url = format!("http://{}/mcp", addr.trim());
        let mut floor = RawHttpClient::connect(&url, "floor").await?;
        rows.push(sequential("HTTP relay (floor)", args.calls, &mut floor).await?);
        let _ = relay.start_kill();
    }

    // The gateway, with policy and audit on.
    let Served { child: mut serve, pid, addr, token } = serve(&gateway, &home, &config).await?;
    let idle_rss = rss_kib(pid);
    let url = format!("http://{addr}/mcp/fast");

    if want("gateway HTTP") {
        let mut http = HttpClient::connect(&url, &token).await?;
        rows.push(sequential("gateway HTTP", args.calls, &mut http).await?);
    }
    if want("gateway HTTP (raw client)") {
        let mut raw = RawHttpClient::connect(&url, &token).await?;
        rows.push(sequential("gateway HTTP (raw client)", args.calls, &mut raw).await?);
    }
    if want(&http_x) {
        let mut many = Vec::new();
        for _ in 0..args.concurrency {
            many.push(HttpClient::connect(&url, &token).await?);
        }
        rows.push(concurrent(&http_x, many, per_client).await?);
    }

    let shim_args = ["connect", "fast"];
    if want("gateway stdio shim") {
        let mut shim = StdioClient::spawn(&gateway, &shim_args, Some(&home)).await?;
        rows.push(sequential("gateway stdio shim", args.calls, &mut shim).await?);
    }
    if want(&shim_x) {
        let mut many = Vec::new();
        for _ in 0..args.concurrency {
            many.push(StdioClient::spawn(&gateway, &shim_args, Some(&home)).await?);
        }
        rows.push(concurrent(&shim_x, many, per_client).await?);
    }
    let loaded_rss = rss_kib(pid);

    let exported = cli(&gateway, &home, &["audit", "export", "--format", "jsonl"]).await?;
    let records = exported.lines().filter(|l| l.contains("\"tool\":\"echo\"")).count();
    let _ = serve.start_kill();

    print_report(&args, &rows, idle_rss, loaded_rss, records);
    Ok(())
}

fn print_report(args: &Args, rows: &[Row], idle_rss: u64, loaded_rss: u64, records: usize) {
    println!("\nCountersign relay benchmark: {} calls per run, {} concurrent clients", args.calls, args.concurrency);
    println!(
        "{:<24} {:>10} {:>10} {:>12} {:>14} {:>14}",
        "run", "p50 µs", "p99 µs", "calls/s", "added p50 µs", "added p99 µs"
    );
    let base =
        |concurrent: bool| rows.iter().find(|r| r.name.starts_with("direct") && r.name.contains(" x") == concurrent);
    for r in rows {
        let b = base(r.name.contains(" x"));
        let (a50, a99) = match b {
            Some(b) if !r.name.starts_with("direct") => {
                (format!("{:.1}", us(r.pct(0.5)) - us(b.pct(0.5))), format!("{:.1}", us(r.pct(0.99)) - us(b.pct(0.99))))
            }
            _ => ("-".into(), "-".into()),
        };
        println!(
            "{:<24} {:>10.1} {:>10.1} {:>12.0} {:>14} {:>14}",
            r.name,
            us(r.pct(0.5)),
            us(r.pct(0.99)),
            r.rate(),
            a50,
            a99
        );
    }
    println!("gateway RSS: idle {:.1} MiB, after load {:.1} MiB", idle_rss as f64 / 1024.0, loaded_rss as f64 / 1024.0);
    println!("audit records committed for the gateway's echo calls: {records}");
}
