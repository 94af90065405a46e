//! The command line. `serve` runs the server and `bench` measures it; the other commands are the
//! operator's and developer's everyday tools, every one talking to a server's HTTP API:
//!
//! - [`listen`]: a local receiver that checks signatures and pretty-prints what arrives;
//! - [`emit`]: realistic sample events;
//! - [`app_keys`], [`configs`], [`deliveries`] (and `replay`), [`trace`], [`portal_link`]: the
//!   API's resources, each with `--json` for scripts and a readable table otherwise
//!   ([`output`]); the server and the credentials come from flags or the environment
//!   ([`client`]).
//!
//! `admin create-app-key | list-app-keys | create-config` are the first commands' names, kept
//! for scripts that use them.

pub mod app_keys;
pub mod catalogue;
pub mod client;
pub mod configs;
pub mod deliveries;
pub mod emit;
pub mod listen;
pub mod output;
pub mod portal_link;
pub mod trace;

use clap::{Args, Parser, Subcommand};

use crate::serve::ServeArgs;
use client::Connection;

#[derive(Debug, Parser)]
#[command(
    name = "hookline",
    version,
    about = "Webhook delivery for messaging platforms: ingest events, deliver them in the \
             platform's wire format, retry, and log every attempt."
)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "HOOKLINE_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: API, delivery engine, dashboard, embedded store.
    Serve(ServeArgs),
    /// Run a local receiver that checks the signature and pretty-prints every envelope.
    Listen(listen::ListenArgs),
    /// Send realistic sample events to a server.
    Emit(Client<emit::EmitArgs>),
    /// App keys: create (--env prints the export line), list, rotate the secret key.
    AppKeys(Group<app_keys::AppKeyCommand>),
    /// Webhook configs: list, get, create, update, pause, resume, delete, test,
    /// rotate-signing-secret.
    Configs(Group<configs::ConfigCommand>),
    /// The delivery log: list (with filters), get, redeliver.
    Deliveries(Group<deliveries::DeliveryCommand>),
    /// Queue a config's past deliveries again (e.g. `replay <config> --since 1h`).
    Replay(Client<deliveries::ReplayArgs>),
    /// The server's products and events (built-in and the operator's), with `--json` each
    /// hook's JSON Schema.
    Catalogue(Client<catalogue::CatalogueArgs>),
    /// What became of one hook for each config (`--admin`: under every app key).
    Trace(Client<trace::TraceArgs>),
    /// A short-lived, single-use link that signs its holder into the dashboard for the app key
    /// (`--read-only`: can change nothing).
    PortalLink(Client<portal_link::PortalLinkArgs>),
    /// The first commands' names, kept for scripts: create-app-key, list-app-keys,
    /// create-config.
    #[command(hide = true)]
    Admin(Group<AdminCommand>),
    /// Measure throughput, latency and cost: starts a server, a sink and producers.
    Bench(crate::bench::BenchArgs),
}

/// A command group of the client: the connection options, then a subcommand.
#[derive(Debug, Args)]
pub struct Group<C: Subcommand> {
    #[command(flatten)]
    pub conn: Connection,
    #[command(subcommand)]
    pub command: C,
}

/// A single client command: the connection options and the command's own arguments.
#[derive(Debug, Args)]
pub struct Client<A: Args> {
    #[command(flatten)]
    pub conn: Connection,
    #[command(flatten)]
    pub args: A,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Same as `app-keys create`.
    CreateAppKey {
        #[arg(long, default_value = "default")]
        name: String,
        #[arg(long)]
        env: bool,
    },
    /// Same as `app-keys list`.
    ListAppKeys,
    /// Same as `configs create`.
    CreateConfig {
        #[command(flatten)]
        fields: Box<configs::ConfigFields>,
    },
}

/// Runs a client command (everything but `serve` and `bench`).
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => crate::serve::run(args).await,
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Listen(args) => listen::listen(args).await,
        Command::Emit(c) => emit::emit(&c.conn, c.args).await,
        Command::AppKeys(g) => app_keys::run(&g.conn, g.command).await,
        Command::Configs(g) => configs::run(&g.conn, g.command).await,
        Command::Deliveries(g) => deliveries::run(&g.conn, g.command).await,
        Command::Replay(c) => deliveries::replay(&c.conn, c.args).await,
        Command::Catalogue(c) => catalogue::run(&c.conn, c.args).await,
        Command::Trace(c) => trace::trace(&c.conn, c.args).await,
        Command::PortalLink(c) => portal_link::portal_link(&c.conn, c.args).await,
        Command::Admin(g) => match g.command {
            AdminCommand::CreateAppKey { name, env } => {
                app_keys::run(&g.conn, app_keys::AppKeyCommand::Create { name, env }).await
            }
            AdminCommand::ListAppKeys => {
                app_keys::run(&g.conn, app_keys::AppKeyCommand::List).await
            }
            AdminCommand::CreateConfig { mut fields } => {
                fields.product.get_or_insert_with(|| "SMS".to_owned());
                configs::run(
                    &g.conn,
                    configs::ConfigCommand::Create {
                        fields: *fields,
                        paused: false,
                    },
                )
                .await
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn connection_options_go_before_or_after_the_subcommand() {
        for argv in [
            &[
                "hookline",
                "configs",
                "--json",
                "--app-key",
                "k",
                "get",
                "c1",
            ][..],
            &[
                "hookline",
                "configs",
                "get",
                "c1",
                "--json",
                "--app-key",
                "k",
            ][..],
        ] {
            let cli = Cli::try_parse_from(argv).expect("parses");
            let Command::Configs(g) = cli.command else {
                panic!("configs");
            };
            assert!(g.conn.json);
            assert_eq!(g.conn.app_key.as_deref(), Some("k"));
        }
    }
}
