//! `make bench` (hub part): 100 simulated devices send chained audit records to a real
//! `countersign-hub`, all at once, in gzip-compressed batches as the laptops do, against
//! the SQLite default and against PostgreSQL in the same run. Prints records/s, batch
//! latency and the hub's peak RSS. Target (issue 6): ≥ 20,000 records/s with PostgreSQL.

use anyhow::{bail, Context, Result};
use clap::Parser;
use countersign_audit::chain::GENESIS;
use countersign_audit::wire::{Ack, Batch, WireRecord};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The countersign-hub binary (a release build).
    #[arg(long)]
    hub: PathBuf,
    /// PostgreSQL URL of a role that may create databases; without it only SQLite runs.
    #[arg(long, env = "COUNTERSIGN_TEST_POSTGRES")]
    postgres: Option<String>,
    #[arg(long, default_value_t = 100)]
    devices: usize,
    #[arg(long, default_value_t = 2000)]
    records_per_device: usize,
    #[arg(long, default_value_t = 500)]
    batch: usize,
}

struct Running {
    child: std::process::Child,
    url: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn start(hub: &PathBuf, database: Option<String>) -> Result<Running> {
    let dir = tempfile::tempdir()?;
    // An API token with the admin role, made on the hub's database before it serves.
    let mut make = std::process::Command::new(hub);
    make.args(["api-token", "create", "--role", "admin", "--name", "hub-bench"])
        .env("COUNTERSIGN_HUB_HOME", dir.path());
    if let Some(db) = &database {
        make.env("COUNTERSIGN_HUB_DATABASE", db);
    }
    let made = make.output()?;
    if !made.status.success() {
        bail!("countersign-hub api-token create: {}", String::from_utf8_lossy(&made.stderr));
    }
    let admin = String::from_utf8(made.stdout)?.trim().to_string();
    let port = free_port()?;
    let mut cmd = std::process::Command::new(hub);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("COUNTERSIGN_HUB_HOME", dir.path())
        .env("COUNTERSIGN_HUB_LOG", "warn")
        .stdout(std::process::Stdio::null());
    if let Some(db) = &database {
        cmd.env("COUNTERSIGN_HUB_DATABASE", db);
    }
    let child = cmd.spawn().context("starting the hub")?;
    let url = format!("http://127.0.0.1:{port}");
    let running = Running { child, url, admin, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{}/healthz", running.url)).await.is_err() {
        if Instant::now() > deadline {
            bail!("the hub did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(running)
}

/// One device's records, chained as a journal chains them.
fn records(device: &str, n: usize) -> Vec<WireRecord> {
    let mut prev = GENESIS.to_string();
    (1..=n)
        .map(|seq| {
            let mut r = WireRecord {
                seq: seq as i64,
                id: format!("{device}-{seq}"),
                time: format!("2026-11-29T10:{:02}:{:02}.{seq:06}Z", seq / 60 % 60, seq % 60),
                kind: "call".into(),
                user: format!("user-{device}"),
                device: device.into(),
                client: Some("bench".into()),
                client_name: Some("Cursor".into()),
                client_version: Some("1.0".into()),
                session: Some("s1".into()),
                server: Some("filesystem".into()),
                tool: Some(if seq % 3 == 0 { "write_file" } else { "read_file" }.into()),
                method: Some("tools/call".into()),
                arguments: Some(format!("{{\"path\":\"/home/u/project/file{seq}.txt\"}}")),
                decision: "allow".into(),
                rule: Some("class:read".into()),
                reason: Some("reads are allowed".into()),
                approval: None,
                policy_version: Some("local-1".into()),
                class: Some("read".into()),
                label: None,
                grant_id: None,
                grant_length: None,
                trace_id: None,
                user_verified: None,
                os_user: None,
                owner: None,
                approver: None,
                request_id: None,
                prev_hash: Some(prev.clone()),
                hash: None,
            };
            let hash = r.chain_fields().hash(&prev);
            r.hash = Some(hash.clone());
            prev = hash;
            r
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes)?;
    Ok(enc.finish()?)
}

struct Outcome {
    name: String,
    records: usize,
    wall: Duration,
    batches: Vec<Duration>,
    rss_kib: u64,
}

async fn run(name: &str, hub: &Running, args: &Args) -> Result<Outcome> {
    let http = reqwest::Client::new();
    let mut devices = Vec::new();
    for i in 0..args.devices {
        let token: serde_json::Value =
            http.post(format!("{}/v1/enrollment-tokens", hub.url)).bearer_auth(&hub.admin).send().await?.json().await?;
        let enrolled: serde_json::Value = http
            .post(format!("{}/v1/enroll", hub.url))
            .json(&serde_json::json!({"token": token["token"], "name": format!("device-{i}")}))
            .send()
            .await?
            .json()
            .await?;
        let credential = enrolled["credential"].as_str().context("no credential")?.to_string();
        let bodies: Vec<Vec<u8>> = records(&format!("d{i:03}"), args.records_per_device)
            .chunks(args.batch)
            .map(|chunk| {
                gzip(&serde_json::to_vec(&Batch { records: chunk.to_vec(), outcomes: vec![], grant_columns: true })?)
            })
            .collect::<Result<_>>()?;
        devices.push((credential, bodies));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (credential, bodies) in devices {
        let http = http.clone();
        let url = format!("{}/v1/ingest", hub.url);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for body in bodies {
                let t = Instant::now();
                let resp = http
                    .post(&url)
                    .bearer_auth(&credential)
                    .header("content-type", "application/json")
                    .header("content-encoding", "gzip")
                    .body(body)
                    .send()
                    .await?;
                if !resp.status().is_success() {
                    bail!("hub answered {}", resp.status());
                }
                let _: Ack = resp.json().await?;
                lat.push(t.elapsed());
            }
            Ok(lat)
        }));
    }
    let mut batches = Vec::new();
    for t in tasks {
        batches.extend(t.await??);
    }
    let wall = started.elapsed();
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", hub.child.id()))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    // Every batch was stored whole and no alert was raised.
    let alerts: Vec<serde_json::Value> =
        http.get(format!("{}/v1/alerts", hub.url)).bearer_auth(&hub.admin).send().await?.json().await?;
    if !alerts.is_empty() {
        bail!("{name}: the hub raised {} alert(s): {}", alerts.len(), alerts[0]);
    }
    Ok(Outcome { name: name.into(), records: args.devices * args.records_per_device, wall, batches, rss_kib })
}

fn psql(admin_url: &str, sql: &str) -> Result<()> {
    let status = std::process::Command::new("psql").args([admin_url, "-qc", sql]).status()?;
    if !status.success() {
        bail!("psql failed: {sql}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut outcomes = Vec::new();
    let sqlite = start(&args.hub, None).await?;
    outcomes.push(run("SQLite (default)", &sqlite, &args).await?);
    drop(sqlite);
    if let Some(admin_url) = &args.postgres {
        let name = format!("hub_bench_{}", std::process::id());
        psql(admin_url, &format!("CREATE DATABASE {name}"))?;
        let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
        let pg = start(&args.hub, Some(format!("{base}/{name}"))).await?;
        let result = run("PostgreSQL 15", &pg, &args).await;
        drop(pg);
        let _ = psql(admin_url, &format!("DROP DATABASE {name}"));
        outcomes.push(result?);
    }
    println!(
        "\nhub ingestion: {} devices x {} records, batches of {} (gzip), all devices at once\n",
        args.devices, args.records_per_device, args.batch
    );
    println!(
        "{:<18} {:>12} {:>14} {:>14} {:>14}",
        "database", "records/s", "batch p50 ms", "batch p99 ms", "hub peak MiB"
    );
    for o in &outcomes {
        let mut b = o.batches.clone();
        b.sort();
        let pct = |p: f64| b[((b.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
        println!(
            "{:<18} {:>12.0} {:>14.1} {:>14.1} {:>14.1}",
            o.name,
            o.records as f64 / o.wall.as_secs_f64(),
            pct(0.5),
            pct(0.99),
            o.rss_kib as f64 / 1024.0
        );
    }
    Ok(())
}
