//! The structural invariants of ARCHITECTURE.md ("Structural rules"), checked on the source text
//! so that a change that breaks one fails CI. Each test names the rule it guards.

use std::fs;
use std::path::{Path, PathBuf};

fn crate_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn wire_crate() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hookline-wire")
}

/// Every `.rs` file under `dir`, with its text.
fn rust_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs" || e == "sql") {
                let text =
                    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.push((path, text));
            }
        }
    }
    assert!(!out.is_empty(), "no source files under {}", dir.display());
    out
}

/// Lines of `files` that contain `needle` (case-insensitive when asked), as `path:line: text`.
fn lines_naming(files: &[(PathBuf, String)], needle: &str, ignore_case: bool) -> Vec<String> {
    let needle = if ignore_case {
        needle.to_lowercase()
    } else {
        needle.to_owned()
    };
    let mut hits = Vec::new();
    for (path, text) in files {
        for (n, line) in text.lines().enumerate() {
            let hay = if ignore_case {
                line.to_lowercase()
            } else {
                line.to_owned()
            };
            if hay.contains(&needle) {
                hits.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn api_and_dashboard_never_import_each_other() {
    let src = crate_src();
    let api = rust_files(&src.join("api"));
    let dashboard = rust_files(&src.join("dashboard"));
    let hits: Vec<String> = lines_naming(&dashboard, "crate::api", false)
        .into_iter()
        .chain(lines_naming(&api, "crate::dashboard", false))
        .collect();
    assert!(
        hits.is_empty(),
        "api and dashboard are two front ends over crate::service and never import each other:\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_store_backends_never_import_each_other() {
    let store = crate_src().join("store");
    let postgres = rust_files(&store.join("postgres"));
    let sqlite = rust_files(&store.join("sqlite"));
    let hits: Vec<String> = lines_naming(&postgres, "sqlite", true)
        .into_iter()
        .chain(lines_naming(&sqlite, "postgres", true))
        .collect();
    assert!(
        hits.is_empty(),
        "store/sqlite and store/postgres share only what store/ itself holds, and neither names \
         the other:\n{}",
        hits.join("\n")
    );
}

#[test]
fn only_the_service_layer_notifies_the_engine() {
    let src = crate_src();
    let mut hits = Vec::new();
    for (path, text) in rust_files(&src) {
        let rel = path.strip_prefix(&src).unwrap_or(&path);
        // The engine defines the notifications; the service is the one caller.
        if rel.starts_with("service") || rel.starts_with("engine") {
            continue;
        }
        for call in [".config_changed(", ".config_deleted(", ".delivery_created("] {
            hits.extend(lines_naming(&[(path.clone(), text.clone())], call, false));
        }
    }
    assert!(
        hits.is_empty(),
        "only crate::service pairs a store write with the engine's notification:\n{}",
        hits.join("\n")
    );
}

#[test]
fn hookline_wire_does_no_io() {
    let manifest = fs::read_to_string(wire_crate().join("Cargo.toml")).expect("Cargo.toml");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dependencies] table");
    for io_crate in [
        "tokio", "hyper", "reqwest", "axum", "rusqlite", "postgres", "mio",
    ] {
        assert!(
            !deps.contains(io_crate),
            "hookline-wire must stay free of I/O: it depends on {io_crate}"
        );
    }
    let files = rust_files(&wire_crate().join("src"));
    let mut hits = Vec::new();
    for needle in [
        "std::fs",
        "std::net",
        "std::process",
        "tokio::",
        "std::io::",
    ] {
        hits.extend(
            lines_naming(&files, needle, false)
                .into_iter()
                // Doc examples show a receiver's own I/O; they are not the crate's.
                .filter(|h| !h.split(": ").nth(1).is_some_and(|l| l.starts_with("//"))),
        );
    }
    assert!(
        hits.is_empty(),
        "hookline-wire does no I/O (receivers bring their own):\n{}",
        hits.join("\n")
    );
}

#[test]
fn every_module_says_what_it_is_for() {
    let mut missing = Vec::new();
    for dir in [crate_src(), wire_crate().join("src")] {
        for (path, text) in rust_files(&dir) {
            let is_rust = path.extension().is_some_and(|e| e == "rs");
            let is_module = is_rust && path.file_name().is_some_and(|n| n != "main.rs");
            if is_module && !text.trim_start().starts_with("//!") {
                missing.push(path.display().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "every module starts with a //! doc saying its one job:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_source_file_sends_readers_outside_the_repository() {
    let mut files = rust_files(&crate_src());
    files.extend(rust_files(&wire_crate().join("src")));
    let hits = lines_naming(&files, "../shared", false);
    assert!(
        hits.is_empty(),
        "the contract lives in docs/ of this repository, not in ../shared:\n{}",
        hits.join("\n")
    );
}

/// The tests that RELIABILITY.md names as evidence, in backticks: `module::test` (acceptance,
/// relative to tests/acceptance/, or the wire crate's tests/) or a unit test's module path
/// (`engine::retry::tests::name`).
/// Names ending in `::` are groups, `module::test` is the notation itself; anything with an
/// uppercase letter or a `/` (a type's method, a file) is no test name.
fn tests_named_in_reliability() -> Vec<String> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../RELIABILITY.md");
    let text = fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
    let mut names: Vec<String> = text
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            span.contains("::")
                && !span.ends_with("::")
                && *span != "module::test"
                && span
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':')
        })
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The files a test named `path::name` can be in: the module's file under each root, and for a
/// unit test (`...::tests::name`) the parent module's file or its `tests.rs`.
fn files_for(modules: &[&str]) -> Vec<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Acceptance tests, unit tests of both crates, and the wire crate's integration tests
    // (RELIABILITY.md names those `hostile_input::...` too, marked "wire crate").
    let roots = [
        manifest.join("tests/acceptance"),
        // This file's own checks (`structure::name`).
        manifest.join("tests"),
        crate_src(),
        wire_crate().join("src"),
        wire_crate().join("tests"),
    ];
    let mut paths: Vec<Vec<&str>> = vec![modules.to_vec()];
    if modules.last() == Some(&"tests") {
        paths.push(modules[..modules.len() - 1].to_vec());
    }
    let mut files = Vec::new();
    for root in &roots {
        for path in paths.iter().filter(|p| !p.is_empty()) {
            let dir: PathBuf = path.iter().collect();
            files.push(root.join(&dir).with_extension("rs"));
            files.push(root.join(&dir).join("mod.rs"));
        }
    }
    files
}

#[test]
fn every_test_reliability_names_exists() {
    let names = tests_named_in_reliability();
    assert!(
        names.len() >= 20,
        "RELIABILITY.md names tests in backticks; found only {names:?}"
    );
    let mut missing = Vec::new();
    for name in &names {
        let segments: Vec<&str> = name.split("::").collect();
        let (test, modules) = segments.split_last().expect("a name with ::");
        let needle = format!("fn {test}(");
        let found = files_for(modules)
            .iter()
            .filter_map(|f| fs::read_to_string(f).ok())
            .any(|text| text.contains(&needle));
        if !found {
            missing.push(name.as_str());
        }
    }
    assert!(
        missing.is_empty(),
        "RELIABILITY.md names tests that do not exist (renamed or moved?):\n{}",
        missing.join("\n")
    );
}

/// The Grafana dashboard in `docs/grafana/` queries only metrics that `metrics.rs` records (a
/// renamed metric would leave a panel silently empty).
#[test]
fn the_grafana_dashboard_uses_only_metrics_hookline_records() {
    let dashboard = crate_src().join("../../../docs/grafana/hookline.json");
    let text =
        fs::read_to_string(&dashboard).unwrap_or_else(|e| panic!("{}: {e}", dashboard.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let metrics_rs = fs::read_to_string(crate_src().join("metrics.rs")).expect("metrics.rs");
    let mut names = Vec::new();
    for panel in json["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let bytes = expr.as_bytes();
            let mut i = 0;
            while let Some(at) = expr[i..].find("hookline_") {
                let start = i + at;
                let end = bytes[start..]
                    .iter()
                    .position(|b| !(b.is_ascii_lowercase() || *b == b'_' || b.is_ascii_digit()))
                    .map_or(expr.len(), |n| start + n);
                names.push(expr[start..end].to_owned());
                i = end;
            }
        }
    }
    assert!(
        names.len() >= 10,
        "the dashboard queries hookline metrics: {names:?}"
    );
    for name in names {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        let recorded = metrics_rs.contains(&format!("\"{base}\""))
            || (base == "hookline_attempt_duration_seconds"
                && metrics_rs.contains(
                    "const ATTEMPT_DURATION: &str = \"hookline_attempt_duration_seconds\"",
                ));
        assert!(
            recorded,
            "the dashboard queries {name}, which metrics.rs does not record"
        );
    }
}

/// Every process a test starts runs under a time limit (`process::run`, `run_sync`, or a
/// `timeout` around its wait), so that a regression that makes it hang fails the test instead of
/// stalling CI (RELIABILITY.md, "What is tested"). Checked near each `Command::new`: the statement
/// that starts a process names its limit within a few lines.
#[test]
fn every_process_a_test_starts_is_under_a_time_limit() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut unbounded = Vec::new();
    for (path, text) in rust_files(&tests) {
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            if !line.contains("Command::new(") || line.trim_start().starts_with("//") {
                continue;
            }
            // The statement that makes the command, and what follows it closely (a command
            // built into a variable is run a few lines further on).
            let from = n.saturating_sub(3);
            let end = (n..lines.len())
                .find(|&i| lines[i].trim_end().ends_with(';'))
                .unwrap_or(n);
            let to = (end + 25).min(lines.len());
            let near = lines[from..to].join("\n");
            // Or a comment that says where its limit is ("Time limit: ...").
            let bounded = [
                "process::run(",
                "run_ok(",
                "run_sync(",
                "timeout(",
                "run(&mut cmd",
                "Time limit:",
            ]
            .iter()
            .any(|limit| near.contains(limit));
            if !bounded {
                unbounded.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        unbounded.is_empty(),
        "processes started without a time limit:\n{}",
        unbounded.join("\n")
    );
}

/// PostgreSQL statements pick the rows they lock with `SKIP LOCKED` once: in a `MATERIALIZED`
/// CTE, an `ARRAY(...)` or a scalar subquery, never in `IN (SELECT ... SKIP LOCKED)`. A generic
/// plan may make that `IN` a nested loop that runs the locking select again for every outer row:
/// quadratic, and each run may skip different rows (the ~60 s claim stalls, BENCHMARKS.md).
#[test]
fn postgresql_statements_never_lock_rows_inside_an_in_subquery() {
    let mut offending = Vec::new();
    for (path, text) in rust_files(&crate_src().join("store/postgres")) {
        // The SQL as one line: comments dropped, string continuations and runs of white space
        // become one space.
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let flat: String = code
            .replace("\\\n", " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut from = 0;
        while let Some(at) = flat[from..].find("SKIP LOCKED") {
            let at = from + at;
            from = at + 1;
            // The `(` that opens the select holding this lock: walk back over balanced parens.
            let mut depth = 0i32;
            let mut open = None;
            for (i, c) in flat[..at].char_indices().rev() {
                match c {
                    ')' => depth += 1,
                    '(' if depth == 0 => {
                        open = Some(i);
                        break;
                    }
                    '(' => depth -= 1,
                    _ => {}
                }
            }
            let Some(open) = open else { continue };
            let before = flat[..open].trim_end().to_uppercase();
            if before.ends_with(" IN") {
                let start = open.saturating_sub(60);
                let start = (0..=start)
                    .rev()
                    .find(|i| flat.is_char_boundary(*i))
                    .unwrap_or(0);
                offending.push(format!("{}: ...{}", path.display(), &flat[start..at + 11]));
            }
        }
    }
    assert!(
        offending.is_empty(),
        "rows locked inside IN (SELECT ...): pick them once (a MATERIALIZED CTE or ARRAY(...)):\n{}",
        offending.join("\n")
    );
}

/// Every call of the `Store` trait on PostgreSQL is bounded (`answered`): a database that stops
/// answering without closing anything (a frozen host, a cut-off network) makes a call fail
/// after `--pg-statement-timeout` + `--pg-lock-timeout` + 5 s instead of waiting as long as it
/// does (`cluster::faults::a_database_that_stops_answering_gets_503s_not_hangs_and_loses_nothing`).
/// The methods that return at once (a record or an expiry queued for the writer, the signals)
/// have nothing to bound.
#[test]
fn every_postgresql_store_call_is_bounded_by_the_answer_deadline() {
    let path = crate_src().join("store/postgres/mod.rs");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = text
        .find("impl Store for PostgresStore {")
        .expect("the Store impl of PostgresStore");
    let block = &text[start..];
    let block = &block[..block.find("\n}\n").expect("the impl's end")];
    let mut unbounded = Vec::new();
    let mut methods = 0;
    // Each `async fn`'s text runs to the next method (or the impl's end).
    let mut rest = block;
    while let Some(at) = rest.find("    async fn ") {
        let body = &rest[at + 4..];
        let end = body
            .find("\n    fn ")
            .into_iter()
            .chain(body.find("\n    async fn "))
            .min();
        let method = &body[..end.unwrap_or(body.len())];
        let name: String = method["async fn ".len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        methods += 1;
        // The call itself wrapped (`self.answered(pin!(self.ingest(..)))`), or, for the two with a
        // bound of their own (`ping`, `close`), `answered(..)` around it.
        // Without white space: rustfmt breaks a long call over lines.
        let compact: String = method.chars().filter(|c| !c.is_whitespace()).collect();
        let wrapped = compact.contains(&format!("self.answered(pin!(self.{name}("))
            || (["ping", "close"].contains(&name.as_str()) && method.contains("answered("));
        if !wrapped {
            unbounded.push(name);
        }
        rest = &body[method.len()..];
    }
    assert!(
        methods > 30,
        "found only {methods} async methods: is the impl still there?"
    );
    assert!(
        unbounded.is_empty(),
        "PostgresStore's Store methods that wait for the database unbounded (wrap them in \
         `self.answered(...)`): {unbounded:?}"
    );
}
