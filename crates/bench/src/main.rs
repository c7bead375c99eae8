//! `make bench`: trivial `tools/call`s to the fast rmcp upstream, direct and through the
//! gateway (HTTP face, and the stdio shim on each of its paths: the shim socket and HTTP),
//! sequential and with 16 concurrent clients. Every
//! client is connected first; then the runs take turns in rounds (the order reversed
//! every other round), so the direct baseline and the gateway see the same machine.
//! Prints p50/p99 latency, throughput, the relaying process's CPU time per call (the
//! gateway's own, and the HTTP floor relay's beside it), the gateway's RSS, and what each
//! shim path adds over the gateway's own HTTP face (its p50 less the raw HTTP client's).
//! The gateway runs with its
//! policy and audit on: each call is allowed by policy and its record committed before it
//! is forwarded; at the end the journal must hold exactly one call record per call made
//! through the gateway (warm-ups included), or the run fails.

mod floors;

use anyhow::{Context, Result};
use clap::Parser;
use countersign_bench::clients::{AnyClient, Caller, HttpClient, RawHttpClient, StdioClient};
use countersign_bench::journal::Census;
use countersign_bench::measure::{cli, concurrent_round, cpu_time, rss_kib, serve, timed, us, Row, Served};
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
    /// Rounds the calls are split into; every run takes one turn per round.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Run only the rows whose name contains this text (the direct stdio row, the
    /// baseline for "added", always runs). For profiling one path.
    #[arg(long)]
    only: Option<String>,
}

/// One run of the table: its clients, whether its calls go through the gateway (and so
/// must be in its journal), and the latencies gathered over the rounds.
struct Lane {
    clients: Clients,
    gateway: bool,
    /// The relaying process whose CPU time the lane's timed calls are charged.
    relay_pid: Option<u32>,
    row: Row,
}

enum Clients {
    One(AnyClient),
    Many(Vec<AnyClient>),
}

impl Lane {
    fn one(name: &str, gateway: bool, client: AnyClient) -> Self {
        Lane { clients: Clients::One(client), gateway, relay_pid: None, row: Row::new(name) }
    }

    fn many(name: &str, gateway: bool, clients: Vec<AnyClient>) -> Self {
        Lane { clients: Clients::Many(clients), gateway, relay_pid: None, row: Row::new(name) }
    }

    /// Charges this lane's timed calls the CPU time of process `pid`.
    fn relayed_by(mut self, pid: Option<u32>) -> Self {
        self.relay_pid = pid;
        self
    }

    /// Untimed calls before the first round: every session up, every upstream started.
    async fn warm_up(&mut self, calls: usize, per_client: usize) -> Result<()> {
        let name = self.row.name.clone();
        match &mut self.clients {
            Clients::One(c) => {
                for _ in 0..calls / 10 {
                    c.call().await.with_context(|| format!("{name}: warm-up"))?;
                }
                self.row.made += calls / 10;
            }
            Clients::Many(cs) => {
                let warm = (per_client / 10).max(1);
                for c in cs.iter_mut() {
                    for _ in 0..warm {
                        c.call().await.with_context(|| format!("{name}: warm-up"))?;
                    }
                }
                self.row.made += warm * cs.len();
            }
        }
        Ok(())
    }

    /// This lane's turn in one round.
    async fn round(&mut self, calls: usize, per_client: usize) -> Result<()> {
        let name = self.row.name.clone();
        let cpu_before = self.relay_pid.and_then(cpu_time);
        let mut round = match &mut self.clients {
            Clients::One(c) => timed(&name, calls, c).await?,
            Clients::Many(cs) => {
                let (round, back) = concurrent_round(&name, std::mem::take(cs), per_client).await?;
                *cs = back;
                round
            }
        };
        if let (Some(before), Some(after)) = (cpu_before, self.relay_pid.and_then(cpu_time)) {
            round.cpu = Some(after.saturating_sub(before));
        }
        self.row.add(round);
        Ok(())
    }
}

async fn many_stdio(
    bin: &std::path::Path,
    args: &[&str],
    home: Option<&std::path::Path>,
    n: usize,
) -> Result<Vec<AnyClient>> {
    let mut many = Vec::new();
    for _ in 0..n {
        many.push(AnyClient::Stdio(StdioClient::spawn(bin, args, home).await?));
    }
    Ok(many)
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
    if args.rounds == 0 || args.calls < args.rounds * args.concurrency {
        anyhow::bail!("--calls must be at least --rounds x --concurrency");
    }
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            // Every lane's sessions live at once (three of them x16): the cap on one server's
            // processes is raised above that, so no session is evicted mid-run.
            "[gateway]\nlisten = \"127.0.0.1:0\"\n[limits]\nmax_processes_per_server = {}\n\
             [servers.fast]\ncommand = {:?}\ntrusted = true\n",
            4 * args.concurrency + 8,
            upstream.display().to_string()
        ),
    )?;
    let per_client = args.calls / args.concurrency;
    let want = |name: &str| args.only.as_deref().is_none_or(|only| name.contains(only));
    let direct_x = format!("direct x{}", args.concurrency);
    let http_x = format!("gateway HTTP x{}", args.concurrency);
    let mut lanes = Vec::new();

    // Direct: the client talks to the upstream itself.
    lanes.push(Lane::one("direct (stdio)", false, AnyClient::Stdio(StdioClient::spawn(&upstream, &[], None).await?)));
    if want(&direct_x) {
        lanes.push(Lane::many(&direct_x, false, many_stdio(&upstream, &[], None, args.concurrency).await?));
    }

    // The floor for any relay: one more process in the path that only copies lines.
    let me = std::env::current_exe()?;
    if want("pipe relay (floor)") {
        let relay_args = ["pipe-relay", upstream.to_str().unwrap_or_default()];
        let floor = StdioClient::spawn(&me, &relay_args, None).await?;
        lanes.push(Lane::one("pipe relay (floor)", false, AnyClient::Stdio(floor)));
    }
    let mut http_relay = None;
    if want("HTTP relay (floor)") {
        let mut relay = tokio::process::Command::new(&me)
            .args(["http-relay", upstream.to_str().unwrap_or_default()])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = relay.stdout.take().context("http-relay stdout")?;
        let mut addr = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut tokio::io::BufReader::new(stdout), &mut addr).await?;
        let url = format!("http://{}/mcp", addr.trim());
        let floor = RawHttpClient::connect(&url, "floor").await?;
        lanes.push(Lane::one("HTTP relay (floor)", false, AnyClient::Raw(floor)).relayed_by(relay.id()));
        http_relay = Some(relay);
    }

    // The gateway, with policy and audit on.
    let Served { child: mut serve, pid, addr, token } = serve(&gateway, &home, &config).await?;
    let idle_rss = rss_kib(pid);
    let url = format!("http://{addr}/mcp/fast");
    if want("gateway HTTP") {
        let client = AnyClient::Http(HttpClient::connect(&url, &token).await?);
        lanes.push(Lane::one("gateway HTTP", true, client).relayed_by(Some(pid)));
    }
    if want("gateway HTTP (raw client)") {
        let raw = RawHttpClient::connect(&url, &token).await?;
        lanes.push(Lane::one("gateway HTTP (raw client)", true, AnyClient::Raw(raw)).relayed_by(Some(pid)));
    }
    if want(&http_x) {
        let mut many = Vec::new();
        for _ in 0..args.concurrency {
            many.push(AnyClient::Http(HttpClient::connect(&url, &token).await?));
        }
        lanes.push(Lane::many(&http_x, true, many).relayed_by(Some(pid)));
    }
    // The shim on each of its paths, forced (`--transport`), side by side in one run.
    for (path, transport) in [("socket", "socket"), ("HTTP", "http")] {
        let shim_args = ["connect", "fast", "--transport", transport];
        let one = format!("gateway stdio shim ({path})");
        if want(&one) {
            let shim = StdioClient::spawn(&gateway, &shim_args, Some(&home)).await?;
            lanes.push(Lane::one(&one, true, AnyClient::Stdio(shim)).relayed_by(Some(pid)));
        }
        let many = format!("gateway shim x{} ({path})", args.concurrency);
        if want(&many) {
            let clients = many_stdio(&gateway, &shim_args, Some(&home), args.concurrency).await?;
            lanes.push(Lane::many(&many, true, clients).relayed_by(Some(pid)));
        }
    }

    for lane in &mut lanes {
        lane.warm_up(args.calls, per_client).await?;
    }
    let (calls, per_client) = (args.calls / args.rounds, per_client / args.rounds);
    for round in 0..args.rounds {
        // Forward, then backward: no run always goes first or last.
        let order: Vec<usize> =
            if round % 2 == 0 { (0..lanes.len()).collect() } else { (0..lanes.len()).rev().collect() };
        for i in order {
            lanes[i].round(calls, per_client).await?;
        }
    }
    let loaded_rss = rss_kib(pid);
    let made: usize = lanes.iter().filter(|l| l.gateway).map(|l| l.row.made).sum();

    let exported = cli(&gateway, &home, &["audit", "export", "--format", "jsonl"]).await?;
    let _ = serve.start_kill();
    if let Some(mut relay) = http_relay {
        let _ = relay.start_kill();
    }
    let rows: Vec<Row> = lanes.into_iter().map(|l| l.row).collect();
    print_report(&args, &rows, idle_rss, loaded_rss);
    let census = Census::of(&exported)?;
    println!("calls made through the gateway, warm-ups included: {made}");
    println!("{census}");
    census.expect_one_record_per_call("echo", made)?;
    println!("the journal holds exactly one call record per call made");
    Ok(())
}

fn print_report(args: &Args, rows: &[Row], idle_rss: u64, loaded_rss: u64) {
    println!(
        "\nCountersign relay benchmark: {} calls per run in {} interleaved rounds, {} concurrent clients",
        args.calls, args.rounds, args.concurrency
    );
    println!(
        "{:<28} {:>10} {:>10} {:>12} {:>14} {:>14} {:>16}",
        "run", "p50 µs", "p99 µs", "calls/s", "added p50 µs", "added p99 µs", "relay CPU µs/call"
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
        let cpu = r.cpu_per_call().map_or("-".to_string(), |c| format!("{:.1}", us(c)));
        println!(
            "{:<28} {:>10.1} {:>10.1} {:>12.0} {:>14} {:>14} {:>16}",
            r.name,
            us(r.pct(0.5)),
            us(r.pct(0.99)),
            r.rate(),
            a50,
            a99,
            cpu
        );
    }
    println!("gateway RSS: idle {:.1} MiB, after load {:.1} MiB", idle_rss as f64 / 1024.0, loaded_rss as f64 / 1024.0);
    println!(
        "relay CPU: the gateway's own CPU time (every thread, user and system) over the timed calls of the \
         row, per call; for the shim rows the shim processes' CPU is not included; the HTTP floor's is its \
         relay process's"
    );
    // The shim's own cost: the same gateway work, reached through one more process.
    let face = rows.iter().find(|r| r.name == "gateway HTTP (raw client)");
    let shims = rows.iter().filter(|r| r.name.starts_with("gateway stdio shim"));
    match face {
        Some(face) => {
            println!("what the shim adds over the gateway's HTTP face (its p50 less the raw client's):");
            for r in shims {
                println!("  {:<28} {:>8.1} µs", r.name, us(r.pct(0.5)) - us(face.pct(0.5)));
            }
        }
        None => println!("(the shim's own cost needs the \"gateway HTTP (raw client)\" row)"),
    }
}
