//! `make bench-scale`: Countersign with many servers and many sessions. One gateway with
//! 100 configured upstream servers (the fast fixture, 50 tools each: 5,000 tools on the
//! aggregate endpoint) beside one with a single server listing the same 5,000 tools;
//! `tools/list` timed on both (the goal: aggregate ≤ 2x single). Then 200 client
//! sessions at once on one server, each calling while the others do: the gateway's RSS
//! and open files before, with all 200 open, and its RSS per session.

use anyhow::{bail, Result};
use clap::Parser;
use countersign_bench::clients::{Caller, HttpClient, Request};
use countersign_bench::measure::{concurrent, rss_kib, sequential, serve, us, Served};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// The countersign binary (a release build).
    #[arg(long)]
    gateway: PathBuf,
    /// The fast-upstream binary.
    #[arg(long)]
    fast: PathBuf,
    #[arg(long, default_value_t = 100)]
    servers: usize,
    #[arg(long, default_value_t = 50)]
    tools_per_server: usize,
    #[arg(long, default_value_t = 200)]
    sessions: usize,
    #[arg(long, default_value_t = 40)]
    lists: usize,
}

struct Gateway {
    served: Served,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Gateway {
    type Target = Served;
    fn deref(&self) -> &Served {
        &self.served
    }
}

async fn start(bin: &Path, servers: &str) -> Result<Gateway> {
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    let config = dir.path().join("scale.toml");
    std::fs::write(
        &config,
        format!("[gateway]\nlisten = \"127.0.0.1:0\"\n[limits]\nmax_sessions = 1000\nmax_sessions_per_token = 1000\n{servers}[policy]\nallow = [\"mcp__*__echo\"]\n"),
    )?;
    Ok(Gateway { served: serve(bin, &home, &config).await?, _dir: dir })
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn server(name: &str, fast: &Path, extra_tools: usize) -> String {
    format!("[servers.{name}]\ncommand = {:?}\nargs = [\"--tools\", \"{extra_tools}\"]\n", fast.display().to_string())
}

async fn tools_listed(url: &str, token: &str) -> Result<usize> {
    // One listing read in full, to count what the client is given.
    let http = reqwest::Client::new();
    let mut c = HttpClient::connect(url, token).await?;
    let body = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &c.session)
        .body(r#"{"jsonrpc":"2.0","id":99,"method":"tools/list"}"#)
        .send()
        .await?
        .text()
        .await?;
    c.call().await.ok();
    let json = body.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or(&body);
    let v: serde_json::Value = serde_json::from_str(json)?;
    Ok(v["result"]["tools"].as_array().map_or(0, Vec::len))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = std::fs::canonicalize(&args.gateway)?;
    let fast = std::fs::canonicalize(&args.fast)?;
    let extra = args.tools_per_server - 2;
    let total = args.servers * args.tools_per_server;

    let many: String = (0..args.servers).map(|i| server(&format!("s{i:03}"), &fast, extra)).collect();
    let aggregate = start(&bin, &many).await?;
    let single = start(&bin, &server("big", &fast, total - 2)).await?;
    let agg_url = format!("http://{}/mcp", aggregate.addr);
    let big_url = format!("http://{}/mcp/big", single.addr);

    let cold = Instant::now();
    let mut agg = HttpClient::connect(&agg_url, &aggregate.token).await?.with(Request::list());
    agg.call().await?;
    let cold_aggregate = cold.elapsed();
    let listed_aggregate = tools_listed(&agg_url, &aggregate.token).await?;
    let listed_single = tools_listed(&big_url, &single.token).await?;
    if listed_aggregate != total || listed_single != total {
        bail!("expected {total} tools on both; aggregate listed {listed_aggregate}, single {listed_single}");
    }
    let mut one = HttpClient::connect(&big_url, &single.token).await?.with(Request::list());
    // Interleaved in rounds, so both see the same machine.
    let mut agg_rows = Vec::new();
    let mut one_rows = Vec::new();
    for _ in 0..4 {
        one_rows.push(sequential("single", args.lists / 4, &mut one).await?);
        agg_rows.push(sequential("aggregate", args.lists / 4, &mut agg).await?);
    }
    let median = |rows: &[countersign_bench::measure::Row]| {
        let mut all: Vec<_> = rows.iter().flat_map(|r| r.lat.clone()).collect();
        all.sort();
        all[all.len() / 2]
    };
    let (agg_p50, one_p50) = (median(&agg_rows), median(&one_rows));
    let agg_rss = rss_kib(aggregate.pid);
    println!("\nScale: {} servers x {} tools = {total} tools", args.servers, args.tools_per_server);
    println!(
        "  first aggregate tools/list (starts {} upstreams): {:.0} ms",
        args.servers,
        cold_aggregate.as_secs_f64() * 1e3
    );
    println!("  tools/list p50, aggregate of {} servers: {:.1} ms", args.servers, us(agg_p50) / 1e3);
    println!("  tools/list p50, one server with {total} tools: {:.1} ms", us(one_p50) / 1e3);
    println!("  ratio aggregate / single: {:.2} (goal <= 2)", us(agg_p50) / us(one_p50));
    println!(
        "  gateway RSS with {} upstreams and one aggregate session: {:.1} MiB",
        args.servers,
        agg_rss as f64 / 1024.0
    );
    drop(agg);
    drop(one);
    let mut single = single;
    let _ = single.served.child.start_kill();

    // Many sessions on one server of the first gateway.
    let url = format!("http://{}/mcp/s000", aggregate.addr);
    let rss_before = rss_kib(aggregate.pid);
    let files_before = open_files(aggregate.pid);
    let mut clients = Vec::new();
    for _ in 0..args.sessions {
        clients.push(HttpClient::connect(&url, &aggregate.token).await?);
    }
    let row = concurrent("sessions", clients, 20).await?;
    let rss_after = rss_kib(aggregate.pid);
    let files_after = open_files(aggregate.pid);
    println!("\n{} sessions at once on one server, 20 calls each:", args.sessions);
    println!("  p50 {:.0} µs, p99 {:.0} µs, {:.0} calls/s, no errors", us(row.pct(0.5)), us(row.pct(0.99)), row.rate());
    println!(
        "  gateway RSS {:.1} MiB before, {:.1} MiB with them open: {:.1} KiB per session",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        rss_after.saturating_sub(rss_before) as f64 / args.sessions as f64
    );
    println!("  open files {files_before} before, {files_after} with them open (each session's upstream: its pipes)");
    let mut aggregate = aggregate;
    let _ = aggregate.served.child.start_kill();
    Ok(())
}
