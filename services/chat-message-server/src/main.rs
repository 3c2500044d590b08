//! `chat-message-server`: see the library's docs.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Fail points named in `FAILPOINTS` (the fault tests); none otherwise.
    let _faults = fail::FailScenario::setup();
    let cfg: chat_message_server::Config = chat_common::config::load()?;
    let metrics = chat_common::telemetry::init("chat-message-server", &cfg.telemetry);
    let shutdown = chat_common::shutdown::on_signal();
    chat_message_server::Application::build(cfg, metrics, shutdown)
        .await?
        .run_until_stopped()
        .await
}
