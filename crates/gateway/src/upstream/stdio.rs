//! A local MCP server as a child process speaking newline-delimited JSON on stdin/stdout.
//! Its stderr goes to the log, tokens in it redacted. Lines longer than the limit end the process; so does
//! dropping the link. The child runs in its own process group so that helpers it starts
//! (`npx` starts `node`) end with it, and it is always waited for: no zombies. Its
//! [`ProcessSlot`] is given back only once it has been waited for.

use super::{EventSink, ProcessSlot, UpstreamError, UpstreamEvent, UpstreamLink};
use futures::StreamExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

/// Ends the process when the last link is dropped.
struct KillOnDrop(Option<oneshot::Sender<()>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn spawn(
    name: &str,
    command: &str,
    args: &[String],
    env: &[(String, countersign_vault::Secret)],
    cwd: Option<&Path>,
    max_line: usize,
    events: EventSink,
    slot: Option<ProcessSlot>,
) -> Result<UpstreamLink, UpstreamError> {
    let mut cmd = Command::new(command);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v.expose())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|source| UpstreamError::Spawn { command: command.to_string(), source })?;
    let pid = child.id();
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(UpstreamError::Spawn { command: command.into(), source: std::io::Error::other("no pipes") });
    };
    tracing::info!(server = name, pid, "started upstream `{command}`");

    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    let (fatal_tx, fatal_rx) = oneshot::channel::<String>();

    let reader_events = events.clone();
    let server = name.to_string();
    let reader = tokio::spawn(async move {
        let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(max_line));
        let mut junk = 0usize;
        while let Some(line) = lines.next().await {
            match line {
                Ok(line) if line.trim_start().starts_with('{') => {
                    if !reader_events(UpstreamEvent::Message(line)) {
                        break;
                    }
                }
                Ok(line) if line.trim().is_empty() => {}
                Ok(line) => {
                    junk += 1;
                    // Not JSON-RPC: say so without echoing it (it could hold anything).
                    tracing::warn!(
                        server,
                        bytes = line.len(),
                        lines = junk,
                        "upstream wrote a non-JSON line on stdout"
                    );
                }
                Err(LinesCodecError::MaxLineLengthExceeded) => {
                    let _ = fatal_tx.send(format!("it wrote a line over the {max_line}-byte limit"));
                    return;
                }
                Err(LinesCodecError::Io(e)) => {
                    tracing::warn!(server, error = %e, "reading upstream stdout failed");
                    break;
                }
            }
        }
    });

    let server = name.to_string();
    tokio::spawn(async move {
        let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(8192));
        while let Some(Ok(line)) = lines.next().await {
            // A server may echo what it was called with: no token reaches the log (scrubbed
            // before the line is cut, so no piece of a token is left at the cut).
            let shown: String = countersign_audit::scrub_log_text(&line).chars().take(1000).collect();
            tracing::info!(server, "stderr: {shown}");
        }
    });

    let server = name.to_string();
    tokio::spawn(async move {
        let reason = tokio::select! {
            status = child.wait() => match status {
                Ok(s) => format!("it exited ({s})"),
                Err(e) => format!("waiting for it failed: {e}"),
            },
            _ = kill_rx => {
                kill_group(pid, &mut child).await;
                "the gateway closed it".to_string()
            }
            why = fatal_rx => match why {
                Ok(why) => {
                    kill_group(pid, &mut child).await;
                    why
                }
                // Its stdout closed: it is exiting. Give it a moment, then make sure.
                Err(_) => match tokio::time::timeout(std::time::Duration::from_secs(5), child.wait()).await {
                    Ok(Ok(s)) => format!("it exited ({s})"),
                    _ => {
                        kill_group(pid, &mut child).await;
                        "it closed its output".to_string()
                    }
                },
            },
        };
        // Reaped: its room under the cap is free again.
        drop(slot);
        // Deliver what it wrote before it went, then report the end.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), reader).await;
        tracing::info!(server, pid, "upstream ended: {reason}");
        events(UpstreamEvent::Closed(reason));
    });

    Ok(UpstreamLink {
        writer: super::Writer::Pipe(Arc::new(tokio::sync::Mutex::new(stdin))),
        _guard: Arc::new(KillOnDrop(Some(kill_tx))),
    })
}

async fn kill_group(pid: Option<u32>, child: &mut tokio::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = pid {
        // SAFETY: kill(2) with a negative pid signals the process group we created.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

#[cfg(test)]
#[path = "stdio_tests.rs"]
mod tests;
