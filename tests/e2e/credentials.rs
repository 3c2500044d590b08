//! A WebSocket never outlives its credentials: it is closed with 4401 when its access token
//! expires, so the client refreshes and reconnects (and resumes).

use chat_client::Error;
use chat_e2e::{access_token, api, connect, register};
use chat_types::ws::{ClientFrame, ServerFrame, close};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_websocket_is_closed_with_4401_when_its_access_token_expires() -> anyhow::Result<()> {
    let api = api();
    let u = register(&api, "expiring-").await?;
    let token = access_token(&u.user.id, 3)?;
    let opened = Instant::now();
    let mut ws = connect(&token).await?;
    ws.send(&ClientFrame::Ping).await?;
    ws.until(|f| matches!(f, ServerFrame::Pong).then_some(()))
        .await?;
    let err = loop {
        match ws.next_within(Duration::from_secs(10)).await {
            Ok(Some(_)) => continue,
            Ok(None) => anyhow::bail!("still open 10 s after the token expired"),
            Err(e) => break e,
        }
    };
    let after = opened.elapsed();
    println!("closed after {after:?}: {err}");
    assert!(
        matches!(
            err,
            Error::Closed {
                code: Some(close::UNAUTHORIZED),
                ..
            }
        ),
        "closed with 4401, got {err}"
    );
    // Whole seconds: `exp` is at most 3 s after the token was made, never before 2 s.
    assert!(after >= Duration::from_secs(1) && after <= Duration::from_secs(5));
    Ok(())
}
