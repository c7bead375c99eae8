//! Measuring: latencies of sequential and concurrent calls, percentiles and rates, a
//! process's RSS, and starting the gateway for a run.

use crate::clients;
use anyhow::{bail, Result};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Row {
    pub name: String,
    pub lat: Vec<Duration>,
    pub wall: Duration,
    /// CPU time the relaying process (the gateway, or a floor's relay) spent in the timed
    /// calls, when it is measured.
    pub cpu: Option<Duration>,
    /// Every call made for this row, warm-up included: what a journal must hold.
    pub made: usize,
}

impl Row {
    /// An empty row, to which rounds are added.
    pub fn new(name: &str) -> Self {
        Row { name: name.into(), lat: Vec::new(), wall: Duration::ZERO, cpu: None, made: 0 }
    }

    /// CPU time per timed call, when measured.
    pub fn cpu_per_call(&self) -> Option<Duration> {
        let calls = self.lat.len().max(1) as u32;
        self.cpu.map(|c| c / calls)
    }

    /// Adds one round's calls to this row.
    pub fn add(&mut self, round: Row) {
        self.lat.extend(round.lat);
        if let Some(cpu) = round.cpu {
            self.cpu = Some(self.cpu.unwrap_or_default() + cpu);
        }
        self.wall += round.wall;
        self.made += round.made;
    }

    pub fn pct(&self, p: f64) -> Duration {
        let mut v = self.lat.clone();
        v.sort();
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }
    pub fn rate(&self) -> f64 {
        self.lat.len() as f64 / self.wall.as_secs_f64()
    }
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The CPU time (user and system, every thread, the exited ones included) process `pid`
/// has used so far, from `/proc/<pid>/stat`, in USER_HZ ticks (100 per second on Linux:
/// 10 ms resolution, so measure runs of seconds of CPU).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

pub async fn sequential<C: clients::Caller>(name: &str, calls: usize, client: &mut C) -> Result<Row> {
    let warm = calls / 10;
    for _ in 0..warm {
        client.call().await?; // warm-up
    }
    let mut row = timed(name, calls, client).await?;
    row.made += warm;
    Ok(row)
}

/// `calls` sequential calls, each timed, with no warm-up (a round of an interleaved run).
pub async fn timed<C: clients::Caller>(name: &str, calls: usize, client: &mut C) -> Result<Row> {
    let mut lat = Vec::with_capacity(calls);
    let start = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        client.call().await?;
        lat.push(t.elapsed());
    }
    Ok(Row { name: name.into(), lat, wall: start.elapsed(), cpu: None, made: calls })
}

/// Runs `per_client` calls on each client at once.
pub async fn concurrent<C: clients::Caller + Send + 'static>(
    name: &str,
    clients: Vec<C>,
    per_client: usize,
) -> Result<Row> {
    // Every client's session is up (its upstream started) before the clock starts.
    let mut clients = clients;
    let warm = (per_client / 10).max(1);
    for c in &mut clients {
        for _ in 0..warm {
            c.call().await?;
        }
    }
    let n = clients.len();
    let (mut row, _) = concurrent_round(name, clients, per_client).await?;
    row.made += warm * n;
    Ok(row)
}

/// Runs `per_client` calls on each client at once, with no warm-up, and gives the clients
/// back for the next round.
pub async fn concurrent_round<C: clients::Caller + Send + 'static>(
    name: &str,
    clients: Vec<C>,
    per_client: usize,
) -> Result<(Row, Vec<C>)> {
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let t = Instant::now();
                    c.call().await?;
                    lat.push(t.elapsed());
                }
                anyhow::Ok((lat, c))
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut back = Vec::new();
    for t in tasks {
        let (l, c) = t.await??;
        lat.extend(l);
        back.push(c);
    }
    let made = lat.len();
    Ok((Row { name: name.into(), lat, wall: start.elapsed(), cpu: None, made }, back))
}

/// Waits for the gateway `pid` to write where it listens.
pub async fn wait_listen(home: &Path, pid: u32) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(home.join("gateway.json")) {
            let v: serde_json::Value = serde_json::from_str(&text)?;
            if v["pid"] == pid {
                return Ok(v["listen"].as_str().unwrap_or_default().to_string());
            }
        }
        if Instant::now() > deadline {
            bail!("the gateway did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the countersign CLI against `home`.
pub async fn cli(bin: &Path, home: &Path, args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new(bin).args(args).env("COUNTERSIGN_HOME", home).output().await?;
    if !out.status.success() {
        bail!("countersign {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// A `countersign serve` started for a run, and a client token for it.
pub struct Served {
    pub child: tokio::process::Child,
    pub pid: u32,
    pub addr: String,
    pub token: String,
}

/// Starts `countersign serve --config CONFIG` in `home` and makes a client token.
pub async fn serve(bin: &Path, home: &Path, config: &Path) -> Result<Served> {
    let child = tokio::process::Command::new(bin)
        .args(["serve", "--config"])
        .arg(config)
        .env("COUNTERSIGN_HOME", home)
        .env("COUNTERSIGN_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().unwrap_or(0);
    let addr = wait_listen(home, pid).await?;
    let token = cli(bin, home, &["token", "create", "bench"]).await?;
    Ok(Served { child, pid, addr, token })
}
