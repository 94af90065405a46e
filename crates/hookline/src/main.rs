use clap::Parser;
use hookline::cli::Cli;
use tracing_subscriber::EnvFilter;

/// mimalloc, not glibc's malloc: an ingest's hooks are allocated on a request's worker thread
/// and freed on the store's writer thread, and glibc frees a block under the lock of the arena
/// that allocated it, so the writer and the workers waited on each other's arena locks (a fifth
/// of the SQLite writer's context switches, one event per request). Server CPU per hook fell by
/// 12-25 % on SQLite (BENCHMARKS.md, "The allocator"). Built without transparent huge pages
/// (`no_thp`): with them, peak RSS grew from 35 to 48 MiB; without, to 37-38.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(json: bool) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // tokio-postgres logs every statement's parameters at debug level (signing secrets among
    // them), and server notices ("already exists, skipping") at info: warn and above only,
    // whatever RUST_LOG asks.
    if let Ok(quiet) = "tokio_postgres=warn".parse() {
        filter = filter.add_directive(quiet);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    if let Err(e) = hookline::cli::run(cli.command).await {
        // The whole chain of causes on one line, without a backtrace: this is for people.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
