//! `make bench-scale`: Countersign with many servers and many sessions. One gateway with
//! 100 configured upstream servers (the fast fixture, 50 tools each: 5,000 tools on the
//! aggregate endpoint) beside one with a single server listing the same 5,000 tools;
//! `tools/list` timed on both, in alternating rounds. Cold listings are the goal's
//! measure (aggregate ≤ 2x single): before each one every upstream announces
//! `notifications/tools/list_changed` (the fast fixture's `--announce`), so neither the
//! aggregate session's kept listing nor a kept review can answer it; cached listings
//! (what a session that saw no change gets) are reported beside them, and so is the first
//! listing of a fresh session, which starts the upstreams. Then 200 client sessions at
//! once on one server, each calling while the others do: the gateway's RSS and open files
//! before, with all 200 open, and its RSS per session.

use anyhow::{bail, Result};
use clap::Parser;
use countersign_bench::clients::{Caller, HttpClient, Request};
use countersign_bench::measure::{concurrent, rss_kib, sequential, serve, us, Served};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
        format!("[gateway]\nlisten = \"127.0.0.1:0\"\n[limits]\nmax_sessions = 1000\nmax_sessions_per_token = 1000\nmax_processes_per_server = 1000\n{servers}[policy]\nallow = [\"mcp__*__echo\"]\n"),
    )?;
    Ok(Gateway { served: serve(bin, &home, &config).await?, _dir: dir })
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn server(name: &str, fast: &Path, extra_tools: usize) -> String {
    format!(
        "[servers.{name}]\ncommand = {:?}\nargs = [\"--announce\", \"--tools\", \"{extra_tools}\"]\n",
        fast.display().to_string()
    )
}

/// The first `tools/list` of a fresh session, timed from connecting (which starts no
/// upstream) to the answer (which starts them).
async fn first_listing(url: &str, token: &str) -> Result<(HttpClient, Duration)> {
    let started = Instant::now();
    let mut c = HttpClient::connect(url, token).await?.with(Request::list());
    c.call().await?;
    Ok((c, started.elapsed()))
}

/// One listing that no cache may answer: every upstream of the session first announces
/// that its list changed (untimed), then the listing is timed.
async fn cold_listing(client: &mut HttpClient, announce: &[Request]) -> Result<Duration> {
    for request in announce {
        client.send(request).await?;
    }
    let started = Instant::now();
    client.call().await?;
    Ok(started.elapsed())
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

    let (mut agg, first_aggregate) = first_listing(&agg_url, &aggregate.token).await?;
    let (mut one, first_single) = first_listing(&big_url, &single.token).await?;
    let listed_aggregate = tools_listed(&agg_url, &aggregate.token).await?;
    let listed_single = tools_listed(&big_url, &single.token).await?;
    if listed_aggregate != total || listed_single != total {
        bail!("expected {total} tools on both; aggregate listed {listed_aggregate}, single {listed_single}");
    }
    // The tools whose `echo` makes each upstream announce a change, on each session.
    let servers: Vec<String> = (0..args.servers).map(|i| format!("s{i:03}")).collect();
    let announce_all: Vec<Request> =
        servers.iter().map(|s| Request::call(&format!("{s}__echo"), r#"{"text":"list_changed"}"#)).collect();
    let announce_one = [Request::call("echo", r#"{"text":"list_changed"}"#)];

    // Interleaved in rounds, so both see the same machine.
    let (mut agg_cached, mut one_cached, mut agg_cold, mut one_cold) = (vec![], vec![], vec![], vec![]);
    let per_round = (args.lists / 4).max(1);
    for _ in 0..4 {
        one_cached.extend(sequential("single", per_round, &mut one).await?.lat);
        agg_cached.extend(sequential("aggregate", per_round, &mut agg).await?.lat);
        for _ in 0..per_round {
            one_cold.push(cold_listing(&mut one, &announce_one).await?);
            agg_cold.push(cold_listing(&mut agg, &announce_all).await?);
        }
    }
    let median = |lat: &mut Vec<Duration>| {
        lat.sort();
        lat[lat.len() / 2]
    };
    let (agg_p50, one_p50) = (median(&mut agg_cached), median(&mut one_cached));
    let (agg_cold_p50, one_cold_p50) = (median(&mut agg_cold), median(&mut one_cold));
    let cold_ratio = us(agg_cold_p50) / us(one_cold_p50);
    let agg_rss = rss_kib(aggregate.pid);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("\nScale: {} servers x {} tools = {total} tools", args.servers, args.tools_per_server);
    println!(
        "  first tools/list of a fresh session: aggregate (starts {} upstreams) {:.0} ms, single (starts one) {:.0} ms",
        args.servers,
        ms(first_aggregate),
        ms(first_single)
    );
    println!("  cold tools/list p50 (after every upstream announced list_changed), {} samples each:", agg_cold.len());
    println!("    aggregate of {} servers: {:.1} ms", args.servers, ms(agg_cold_p50));
    println!("    one server with {total} tools: {:.1} ms", ms(one_cold_p50));
    println!(
        "    ratio aggregate / single, cold: {cold_ratio:.2} (goal <= 2: {})",
        if cold_ratio <= 2.0 { "met" } else { "NOT MET" }
    );
    println!("  cached tools/list p50 (no change announced), {} samples each:", agg_cached.len());
    println!("    aggregate of {} servers: {:.1} ms", args.servers, ms(agg_p50));
    println!("    one server with {total} tools: {:.1} ms", ms(one_p50));
    println!("    ratio aggregate / single, cached: {:.2} (not the goal's measure)", us(agg_p50) / us(one_p50));
    println!(
        "  gateway RSS with {} upstreams and two aggregate sessions: {:.1} MiB",
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
