//! `chat-gateway`: see the library's docs.

fn main() -> anyhow::Result<()> {
    let cfg: chat_gateway::Config = chat_common::config::load()?;
    // Built here rather than by `#[tokio::main]`: its size is a setting.
    chat_gateway::runtime(&cfg)?.block_on(async {
        let metrics = chat_common::telemetry::init("chat-gateway", &cfg.telemetry);
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        metrics::gauge!("chat_runtime_workers").set(workers as f64);
        let shutdown = chat_common::shutdown::on_signal();
        chat_gateway::Application::build(cfg, metrics, shutdown)
            .await?
            .run_until_stopped()
            .await
    })
}
