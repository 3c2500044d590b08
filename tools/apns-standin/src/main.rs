//! `apns-standin`: the APNs stand-in as a process (flags: `apns-standin --help`).

use apns_standin::{App, Config};
use clap::Parser;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        // The stacks write the output to a log file: no colour codes there.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let app = App::build(cfg).await?;
    app.run_until_stopped(chat_common::shutdown::on_signal())
        .await
}
