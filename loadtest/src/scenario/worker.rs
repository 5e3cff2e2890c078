//! Multi-process runs (`--processes N`): each process may open at most
//! 20,000 files here, so the parent re-executes its own binary as N
//! workers (`axon-loadtest worker --job -`) and gives each its share.
//!
//! The conversation is JSON lines. The parent writes the [`Job`] as the
//! first line of the worker's stdin; the worker answers on stdout with
//! [`Message`]s: `progress` while it works, `held` when its connections
//! are open, then, after the parent writes [`CLOSE`], `done` with its
//! result (or `failed`). Workers log to the inherited stderr.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines, Stdin};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::cli::WorkerArgs;
use crate::scenario::connections;

/// The line that tells workers to close their connections and report.
pub const CLOSE: &str = "close";

/// What a worker is to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scenario", rename_all = "lowercase")]
pub enum Job {
    /// A share of a `connections` run.
    Connections(connections::Job),
}

/// What a worker says, one per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Message {
    /// Connections open so far.
    Progress {
        /// Open now.
        open: u64,
    },
    /// Every connection of the share was tried; holding.
    Held {
        /// Open now.
        open: u64,
    },
    /// Closed; the share's result.
    Done {
        /// The result.
        outcome: Box<connections::Outcome>,
    },
    /// The share could not be run.
    Failed {
        /// Why.
        error: String,
    },
}

/// The parent's instructions, as the worker reads them.
pub type Instructions = Lines<BufReader<Stdin>>;

/// Runs the worker side: reads the job, does it, reports on stdout.
pub async fn serve(args: WorkerArgs) -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let text = if args.job == "-" {
        stdin
            .next_line()
            .await?
            .context("no job on the worker's stdin")?
    } else {
        args.job
    };
    let job: Job = serde_json::from_str(&text).context("parsing the worker's job")?;
    let result = match job {
        Job::Connections(job) => connections::work(job, &mut stdin).await,
    };
    if let Err(e) = result {
        emit(&Message::Failed {
            error: format!("{e:#}"),
        });
    }
    Ok(())
}

/// Writes one message line to stdout.
pub fn emit(message: &Message) {
    use std::io::Write as _;
    // Serialising these plain types cannot fail.
    let line = serde_json::to_string(message).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The parent's handle on its workers.
pub struct Workers {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    messages: mpsc::Receiver<(usize, Option<Message>)>,
}

impl Workers {
    /// Starts one worker per job from the binary at `exe` (the current
    /// executable, or `CARGO_BIN_EXE_axon-loadtest` in tests).
    pub async fn spawn(exe: &Path, jobs: &[Job]) -> anyhow::Result<Self> {
        let (tx, messages) = mpsc::channel(64 * jobs.len().max(1));
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let mut child = Command::new(exe)
                .args(["worker", "--job", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting worker {i} ({})", exe.display()))?;
            let mut stdin = child.stdin.take().context("worker stdin")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            let mut line = serde_json::to_string(job)?;
            line.push('\n');
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let message = serde_json::from_str(&line).unwrap_or_else(|e| Message::Failed {
                        error: format!("unreadable line from worker {i}: {e}: {line:.200}"),
                    });
                    if tx.send((i, Some(message))).await.is_err() {
                        return;
                    }
                }
                let _ = tx.send((i, None)).await;
            });
            children.push(child);
            stdins.push(stdin);
        }
        Ok(Self {
            children,
            stdins,
            messages,
        })
    }

    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// The next message of any worker, with its index; `None` for the
    /// message means that worker's stdout ended.
    pub async fn next(&mut self) -> Option<(usize, Option<Message>)> {
        self.messages.recv().await
    }

    /// Writes `line` to every worker.
    pub async fn tell_all(&mut self, line: &str) -> anyhow::Result<()> {
        for (i, stdin) in self.stdins.iter_mut().enumerate() {
            stdin
                .write_all(format!("{line}\n").as_bytes())
                .await
                .with_context(|| format!("writing to worker {i}"))?;
            stdin.flush().await?;
        }
        Ok(())
    }

    /// Waits for every worker to exit (so that their CPU time counts as
    /// this process's children's), killing any still running after 30 s.
    pub async fn wait(mut self) {
        self.stdins.clear();
        for child in &mut self.children {
            if tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_json_lines() {
        let done = Message::Done {
            outcome: Box::new(connections::Outcome {
                opened: 3,
                ..Default::default()
            }),
        };
        for m in [
            Message::Progress { open: 5 },
            Message::Held { open: 7 },
            done,
            Message::Failed { error: "no".into() },
        ] {
            let line = serde_json::to_string(&m).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(serde_json::from_str::<Message>(&line).unwrap(), m);
        }
    }
}
