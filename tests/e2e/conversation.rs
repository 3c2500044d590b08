//! The first conversation, through nginx only: two users on two different gateways.

use chat_e2e::{Api, Ws, connect_elsewhere, unique};
use chat_types::ws::ServerFrame;

#[tokio::test]
async fn a_message_reaches_a_member_on_another_gateway_and_history() -> anyhow::Result<()> {
    let api = Api::default();
    let a = api.register("alice").await?;
    let b = api.register("bob").await?;
    let channel = api
        .create_channel(&a.access_token, &unique("general-"))
        .await?;
    api.join(&b.access_token, channel.id).await?;

    let mut ws_a = Ws::connect(&a.access_token).await?;
    // B must be on the other gateway: this fails if fan-out reached only the sender's gateway.
    let mut ws_b = connect_elsewhere(&b.access_token, ws_a.gateway()).await?;
    assert_ne!(ws_a.gateway(), ws_b.gateway());
    println!(
        "alice on {}, bob on {}",
        ws_a.connection_id, ws_b.connection_id
    );

    let cmid = uuid::Uuid::new_v4().to_string();
    ws_a.send_message(channel.id, &cmid, "hello, bob 👋")
        .await?;
    let (acked, _) = ws_a
        .until(|f| match f {
            ServerFrame::Ack {
                client_msg_id,
                message,
            } if *client_msg_id == cmid => Some(message.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(acked.body, "hello, bob 👋");
    assert_eq!(acked.sender_id, a.user.id);

    let (got, _) = ws_b
        .until(|f| match f {
            ServerFrame::Message { message } => Some(message.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(got.id, acked.id);
    assert_eq!(got.body, "hello, bob 👋");
    assert_eq!(got.created_at, acked.created_at);
    assert_eq!(got.seq, Some(1));

    // The sender's own connection gets the message frame too (its place in the channel).
    let (own, _) = ws_a
        .until(|f| match f {
            ServerFrame::Message { message } => Some(message.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(own.id, acked.id);

    for token in [&a.access_token, &b.access_token] {
        let h = api.history(token, channel.id, "").await?;
        assert_eq!(h.messages.len(), 1);
        assert_eq!(h.messages[0].id, acked.id);
        assert_eq!(h.messages[0].body, "hello, bob 👋");
    }
    Ok(())
}

#[tokio::test]
async fn sending_to_a_channel_the_sender_is_not_in_is_refused_with_an_error_frame()
-> anyhow::Result<()> {
    let api = Api::default();
    let owner = api.register("owner").await?;
    let stranger = api.register("stranger").await?;
    let channel = api
        .create_channel(&owner.access_token, &unique("private-"))
        .await?;

    let mut ws = Ws::connect(&stranger.access_token).await?;
    ws.send_message(channel.id, "c-1", "let me in").await?;
    let (code, _) = ws
        .until(|f| match f {
            ServerFrame::Error {
                code,
                client_msg_id,
                ..
            } if client_msg_id.as_deref() == Some("c-1") => Some(code.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(code, "not_a_member");

    // The connection stays usable.
    ws.send_raw(r#"{"type":"ping"}"#).await?;
    ws.until(|f| matches!(f, ServerFrame::Pong).then_some(()))
        .await?;

    // Nothing was stored.
    let h = api.history(&owner.access_token, channel.id, "").await?;
    assert!(h.messages.is_empty());
    Ok(())
}
