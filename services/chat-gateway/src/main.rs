//! `chat-gateway`: see the library's docs.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg: chat_gateway::Config = chat_common::config::load()?;
    let metrics = chat_common::telemetry::init("chat-gateway", &cfg.telemetry);
    let shutdown = chat_common::shutdown::on_signal();
    chat_gateway::Application::build(cfg, metrics, shutdown)
        .await?
        .run_until_stopped()
        .await
}
