//! `chat-api`: see the library's docs.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg: chat_api::Config = chat_common::config::load()?;
    let metrics = chat_common::telemetry::init("chat-api", &cfg.telemetry);
    let shutdown = chat_common::shutdown::on_signal();
    chat_api::Application::build(cfg, metrics, shutdown)
        .await?
        .run_until_stopped()
        .await
}
