//! The WebSocket client against a scripted fake gateway on loopback: `ready` first, close codes
//! as errors, and a reconnect that resumes before it resends. (In the library, so the suite's
//! `cargo test --lib` runs them.)

use crate::{Backoff, Connector, Outbox};
use chat_types::ws::{ClientFrame, ServerFrame, close};
use chat_types::{ChannelId, MessageId, UserId};
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use uuid::Uuid;

type Server = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Accept one connection and send `ready`.
async fn accept(listener: &TcpListener) -> Server {
    let (tcp, _) = listener.accept().await.expect("accept");
    let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
    let ready = ServerFrame::Ready {
        user_id: UserId(Uuid::from_u128(1)),
        connection_id: "gateway-9:1".into(),
    };
    let text = serde_json::to_string(&ready).unwrap();
    ws.send(WsMessage::text(text)).await.expect("ready");
    ws
}

/// The next client frame the fake gateway reads.
async fn read(ws: &mut Server) -> ClientFrame {
    loop {
        match ws.next().await.expect("a frame").expect("ok") {
            WsMessage::Text(t) => return serde_json::from_str(t.as_str()).expect("a client frame"),
            _ => continue,
        }
    }
}

async fn listener() -> (TcpListener, Connector) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connector =
        Connector::new(&format!("ws://127.0.0.1:{port}/ws")).frame_timeout(Duration::from_secs(5));
    (listener, connector)
}

#[tokio::test]
async fn a_connection_starts_at_ready_and_reports_the_close_code() {
    let (listener, connector) = listener().await;
    let server = tokio::spawn(async move {
        let mut ws = accept(&listener).await;
        assert_eq!(read(&mut ws).await, ClientFrame::Ping);
        let frame = CloseFrame {
            code: close::GOING_AWAY.into(),
            reason: "draining".into(),
        };
        ws.close(Some(frame)).await.unwrap();
    });
    let mut conn = connector.connect("token").await.unwrap();
    assert_eq!(conn.gateway(), "gateway-9");
    assert_eq!(conn.user_id(), UserId(Uuid::from_u128(1)));
    conn.send(&ClientFrame::Ping).await.unwrap();
    let err = conn.next_frame().await.unwrap_err();
    assert_eq!(err.close_code(), Some(close::GOING_AWAY), "{err}");
    server.await.unwrap();
}

#[tokio::test]
async fn a_reconnect_resumes_first_then_resends_every_unacked_send_in_order() {
    let (listener, connector) = listener().await;
    let channel = ChannelId(Uuid::from_u128(2));
    let last = MessageId(Uuid::from_u128(3));
    let mut outbox = Outbox::new();
    outbox.seen(channel, last);
    outbox.sent(channel, "first".into(), "one".into());
    outbox.sent(channel, "second".into(), "two".into());
    outbox.sent(channel, "acked".into(), "three".into());
    outbox.acked("acked");
    let server = tokio::spawn(async move {
        let mut ws = accept(&listener).await;
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(read(&mut ws).await);
        }
        got
    });
    let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
    let (_conn, resent) = outbox
        .reconnect(&connector, "token", None, &backoff, || false)
        .await
        .expect("reconnected");
    assert_eq!(resent, 2);
    let got = server.await.unwrap();
    assert_eq!(
        got[0],
        ClientFrame::Resume {
            channels: [(channel, last)].into_iter().collect()
        }
    );
    let cmids: Vec<&str> = got[1..]
        .iter()
        .map(|f| match f {
            ClientFrame::Send { client_msg_id, .. } => client_msg_id.as_str(),
            other => panic!("expected a send, got {other:?}"),
        })
        .collect();
    assert_eq!(cmids, ["first", "second"]);
}

#[tokio::test]
async fn a_reconnect_gives_up_when_told_to_stop() {
    let (listener, connector) = listener().await;
    drop(listener);
    let outbox = Outbox::new();
    let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
    let tries = std::sync::atomic::AtomicU32::new(0);
    let stop = || tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 6;
    let again = outbox
        .reconnect(&connector, "token", None, &backoff, stop)
        .await;
    assert!(again.is_none());
}
