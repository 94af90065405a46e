use clap::Parser;
use hookline::cli::Cli;
use tracing_subscriber::EnvFilter;

/// mimalloc, not glibc's malloc: an ingest's hooks are allocated on a request's worker thread
/// and freed on the store's writer thread, and glibc frees a block under the lock of the arena
/// that allocated it, so the writer and the workers waited on each other's arena locks (23 % of
/// the SQLite writer's context switches, one event per request). Measured on the server alone
/// (BENCHMARKS.md, "The allocator"): 17-30 % less CPU per hook with default batching, 3-16 % at
/// one event per request (its throughput within the noise there). Its memory stays in small
/// pages (see [`keep_memory_in_small_pages`]): peak RSS 34-35 → 37-38 MiB.
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

/// Transparent huge pages off for this process: mimalloc's large aligned segments, backed by
/// 2 MiB pages, took the peak RSS of a one-event benchmark from 34 to 50 MiB (idle 17 → 27 MiB)
/// where the kernel gives huge pages to every mapping (`transparent_hugepage=always`). mimalloc's
/// `no_thp` build only stops asking for them (`madvise`). Called first in `main`, before the
/// runtime and its threads allocate, so that no segment is faulted in as a huge page first. A
/// kernel without the flag leaves things as they are.
fn keep_memory_in_small_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() {
    keep_memory_in_small_pages();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(run());
}

async fn run() {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    if let Err(e) = hookline::cli::run(cli.command).await {
        // The whole chain of causes on one line, without a backtrace: this is for people.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
