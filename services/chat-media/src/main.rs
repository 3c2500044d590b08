//! `chat-media`: see the library's docs.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg: chat_media::Config = chat_common::config::load()?;
    let metrics = chat_common::telemetry::init("chat-media", &cfg.telemetry);
    let shutdown = chat_common::shutdown::on_signal();
    chat_media::Application::build(cfg, metrics, shutdown)
        .await?
        .run_until_stopped()
        .await
}
