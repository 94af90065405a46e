//! `hookline bench --suite`: the documented scenarios (BENCHMARKS.md), each run three times in a
//! fresh server, reported as the median run (by its headline figure) with the other two beside
//! it. Each run is this binary started again with `bench --json`, so runs share nothing.

use std::process::Stdio;

use anyhow::Context;
use serde_json::Value;

use super::BenchArgs;

/// One scenario: its name, the `bench` arguments, and which figure is its headline.
struct Scenario {
    name: &'static str,
    args: &'static [&'static str],
    headline: Headline,
    /// Several nodes on one database: only with `--database-url`.
    postgres_only: bool,
}

#[derive(Clone, Copy)]
enum Headline {
    /// Hooks delivered per second, end to end (higher is better).
    Throughput,
    /// The p99 of ingest-to-receipt latency (lower is better).
    P99,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "one event per request and per POST, 64 producers",
        args: &[
            "--hooks=20000",
            "--producers=64",
            "--hooks-per-request=1",
            "--max-hooks-per-request=1",
        ],
        headline: Headline::Throughput,
        postgres_only: false,
    },
    Scenario {
        name: "one event per request, default batching, 64 producers",
        args: &["--hooks=50000", "--producers=64", "--hooks-per-request=1"],
        headline: Headline::Throughput,
        postgres_only: false,
    },
    Scenario {
        name: "100 per request, 100 per POST, 8 producers",
        args: &["--hooks=500000", "--producers=8", "--hooks-per-request=100"],
        headline: Headline::Throughput,
        postgres_only: false,
    },
    Scenario {
        name: "100 per request, 100 per POST, 16 producers",
        args: &[
            "--hooks=500000",
            "--producers=16",
            "--hooks-per-request=100",
        ],
        headline: Headline::Throughput,
        postgres_only: false,
    },
    Scenario {
        name: "fixed 1,000 hooks/s, one per request",
        args: &[
            "--hooks=20000",
            "--rate=1000",
            "--hooks-per-request=1",
            "--producers=4",
        ],
        headline: Headline::P99,
        postgres_only: false,
    },
    Scenario {
        name: "two nodes: one event per request and per POST, 64 producers",
        args: &[
            "--nodes=2",
            "--hooks=20000",
            "--producers=64",
            "--hooks-per-request=1",
            "--max-hooks-per-request=1",
        ],
        headline: Headline::Throughput,
        postgres_only: true,
    },
    Scenario {
        name: "two nodes: 100 per request, 100 per POST, 8 producers",
        args: &[
            "--nodes=2",
            "--hooks=500000",
            "--producers=8",
            "--hooks-per-request=100",
        ],
        headline: Headline::Throughput,
        postgres_only: true,
    },
];

const RUNS: usize = 3;

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the hookline binary")?;
    let store = if args.database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("| scenario | store | median | runs | p50 / p99 ms | server CPU ms/hook |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for scenario in SCENARIOS {
        if scenario.postgres_only && args.database_url.is_none() {
            continue;
        }
        let mut reports = Vec::with_capacity(RUNS);
        let mut failures = Vec::new();
        for _ in 0..RUNS {
            let mut command = tokio::process::Command::new(&exe);
            command
                .arg("bench")
                .arg("--json")
                .args(scenario.args)
                .args(args.server_arg.iter().map(|a| format!("--server-arg={a}")))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(url) = &args.database_url {
                command.arg(format!("--database-url={url}"));
            }
            let output = command
                .output()
                .await
                .with_context(|| format!("running {}", scenario.name))?;
            if !output.status.success() {
                // A failed run is reported, not hidden: it counts as the worst run of the three
                // and the table says why, and the other scenarios still run.
                let stderr = String::from_utf8_lossy(&output.stderr);
                let reason = stderr
                    .lines()
                    .rev()
                    .find(|l| l.starts_with("error"))
                    .unwrap_or("no error message")
                    .to_owned();
                eprintln!(
                    "{}: a run failed ({}): {reason}",
                    scenario.name, output.status
                );
                failures.push(reason);
                continue;
            }
            let report: Value = serde_json::from_slice(&output.stdout)
                .with_context(|| format!("{}: the run's report is not JSON", scenario.name))?;
            reports.push(report);
        }
        if failures.len() > RUNS / 2 {
            println!(
                "| {} | {} | **most runs failed** | {} | | |",
                scenario.name,
                store,
                failures.join("; ")
            );
            continue;
        }
        let figure = |r: &Value| -> f64 {
            match scenario.headline {
                Headline::Throughput => r["endToEndHooksPerSec"].as_f64().unwrap_or(0.0),
                Headline::P99 => r["latencyMs"]["p99"].as_f64().unwrap_or(f64::MAX),
            }
        };
        reports.sort_by(|a, b| figure(a).total_cmp(&figure(b)));
        // A failed run counts as the worst of the three: the median is the middle of them all.
        let median_index = match scenario.headline {
            Headline::Throughput => RUNS / 2 - failures.len(),
            Headline::P99 => RUNS / 2,
        };
        let median = &reports[median_index];
        let show = |r: &Value| match scenario.headline {
            Headline::Throughput => format!("{:.0} hooks/s", figure(r)),
            Headline::P99 => format!("p99 {:.2} ms", figure(r)),
        };
        let runs: Vec<String> = failures
            .iter()
            .map(|reason| format!("failed ({reason})"))
            .chain(reports.iter().map(show))
            .collect();
        println!(
            "| {} | {} | **{}** | {} | {:.2} / {:.2} | {:.4} |",
            scenario.name,
            store,
            show(median),
            runs.join(", "),
            median["latencyMs"]["p50"].as_f64().unwrap_or(0.0),
            median["latencyMs"]["p99"].as_f64().unwrap_or(0.0),
            median["serverCpuMsPerHook"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(())
}
