use clap::Parser;
use hookline::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

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
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match cli.command {
        Command::Serve(args) => hookline::serve::run(args).await,
        Command::Listen(args) => hookline::cli::listen(args).await,
        Command::Emit(args) => hookline::cli::emit(args).await,
        Command::Admin(command) => hookline::cli::admin(command).await,
        Command::Bench(args) => hookline::bench::run(args).await,
    }
}
