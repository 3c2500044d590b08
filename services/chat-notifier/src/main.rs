//! `chat-notifier`: see the library's docs.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg: chat_notifier::Config = chat_common::config::load()?;
    let metrics = chat_common::telemetry::init("chat-notifier", &cfg.telemetry);
    let shutdown = chat_common::shutdown::on_signal();
    chat_notifier::Application::build(cfg, metrics, shutdown)
        .await?
        .run_until_stopped()
        .await
}
