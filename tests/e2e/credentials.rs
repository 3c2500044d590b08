//! A WebSocket never outlives its credentials: it is closed with 4401 when its access token
//! expires, so the client refreshes and reconnects (and resumes); when its session ends (logout,
//! a reused refresh token) it is closed within a second on every gateway, and the session's
//! access tokens are refused from then on. Browsers open sockets with single-use tickets, and
//! one client address holds a bounded number of sockets.

use chat_client::{Connection, Error};
use chat_e2e::{
    PASSWORD, access_token, api, base_url, connect, connect_elsewhere, connector, register,
};
use chat_types::ws::{ClientFrame, ServerFrame, close};
use std::net::IpAddr;
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

/// Wait (at most `wait`) for the server to close `ws`; the close and when it came, measured
/// from `since`.
async fn closed(mut ws: Connection, since: Instant, wait: Duration) -> (Option<Error>, Duration) {
    let end = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(end, ws.next_text()).await {
            Err(_) => return (None, since.elapsed()),
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => return (Some(e), since.elapsed()),
        }
    }
}

/// The connection was closed with 4401 within a second.
fn assert_revoked(what: &str, (err, after): &(Option<Error>, Duration)) {
    println!("{what}: closed after {after:?}: {err:?}");
    let err = err
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: still open {after:?} after the revocation"));
    assert_eq!(err.close_code(), Some(close::UNAUTHORIZED), "{what}: {err}");
    assert!(
        *after <= Duration::from_secs(1),
        "{what}: closed only after {after:?}"
    );
}

/// `(status, code)` of a refusal.
fn refusal<T>(r: Result<T, Error>) -> (Option<u16>, Option<String>) {
    match r {
        Ok(_) => (None, None),
        Err(e) => (e.status(), e.code().map(String::from)),
    }
}

fn want(status: u16, code: &str) -> (Option<u16>, Option<String>) {
    (Some(status), Some(code.to_owned()))
}

#[tokio::test]
async fn logging_out_closes_the_sessions_sockets_on_every_gateway_within_a_second()
-> anyhow::Result<()> {
    let api = api();
    let s = register(&api, "logout-").await?;
    let a = connect(&s.access_token).await?;
    let b = connect_elsewhere(&s.access_token, a.gateway()).await?;
    // The same user on another device (another session) stays connected.
    let other = api.login(&s.user.username, PASSWORD).await?;
    let mut kept = connect(&other.access_token).await?;

    let started = Instant::now();
    api.logout(&s.refresh_token).await?;
    let wait = Duration::from_secs(3);
    let (ca, cb) = tokio::join!(closed(a, started, wait), closed(b, started, wait));
    assert_revoked("first gateway", &ca);
    assert_revoked("second gateway", &cb);

    // The session's access token is refused, over REST and at the upgrade.
    assert_eq!(
        refusal(api.me(&s.access_token).await),
        want(401, "token_revoked")
    );
    assert_eq!(
        refusal(connector().connect(&s.access_token).await),
        want(401, "token_revoked")
    );
    assert_eq!(
        refusal(api.ws_ticket(&s.access_token).await),
        want(401, "token_revoked")
    );

    // The other session is untouched.
    kept.send(&ClientFrame::Ping).await?;
    kept.until(|f| matches!(f, ServerFrame::Pong).then_some(()))
        .await?;
    assert_eq!(api.me(&other.access_token).await?.id, s.user.id);
    Ok(())
}

#[tokio::test]
async fn a_reused_refresh_token_closes_every_socket_of_its_session() -> anyhow::Result<()> {
    let api = api();
    let first = register(&api, "reuse-").await?;
    let rotated = api.refresh(&first.refresh_token).await?;
    // One socket per access token of the session, on both gateways.
    let old = connect(&first.access_token).await?;
    let new = connect_elsewhere(&rotated.access_token, old.gateway()).await?;

    let started = Instant::now();
    assert_eq!(
        refusal(api.refresh(&first.refresh_token).await),
        want(401, "refresh_token_reused")
    );
    let wait = Duration::from_secs(3);
    let (co, cn) = tokio::join!(closed(old, started, wait), closed(new, started, wait));
    assert_revoked("socket of the first access token", &co);
    assert_revoked("socket of the rotated access token", &cn);
    for token in [&first.access_token, &rotated.access_token] {
        assert_eq!(refusal(api.me(token).await), want(401, "token_revoked"));
        assert_eq!(
            refusal(connector().connect(token).await),
            want(401, "token_revoked")
        );
    }
    Ok(())
}

#[tokio::test]
async fn logging_out_everywhere_closes_every_session_of_the_user() -> anyhow::Result<()> {
    let api = api();
    let phone = register(&api, "everywhere-").await?;
    let laptop = api.login(&phone.user.username, PASSWORD).await?;
    let a = connect(&phone.access_token).await?;
    let b = connect_elsewhere(&laptop.access_token, a.gateway()).await?;
    // Someone else's socket stays.
    let stranger = register(&api, "bystander-").await?;
    let mut kept = connect(&stranger.access_token).await?;

    let started = Instant::now();
    api.logout_all(&phone.access_token).await?;
    let wait = Duration::from_secs(3);
    let (ca, cb) = tokio::join!(closed(a, started, wait), closed(b, started, wait));
    assert_revoked("the calling session's socket", &ca);
    assert_revoked("the other session's socket", &cb);
    for s in [&phone, &laptop] {
        assert_eq!(
            refusal(api.me(&s.access_token).await),
            want(401, "token_revoked")
        );
        assert_eq!(
            refusal(api.refresh(&s.refresh_token).await).0,
            Some(401),
            "refresh tokens end too"
        );
    }
    kept.send(&ClientFrame::Ping).await?;
    kept.until(|f| matches!(f, ServerFrame::Pong).then_some(()))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_websocket_ticket_opens_one_socket_once() -> anyhow::Result<()> {
    let api = api();
    let s = register(&api, "ticket-").await?;
    let t = api.ws_ticket(&s.access_token).await?;
    assert!(t.expires_in > 0 && t.expires_in <= 60, "{t:?}");
    let mut ws = connector().connect_with_ticket(&t.ticket).await?;
    assert_eq!(ws.user_id(), s.user.id);
    ws.send(&ClientFrame::Ping).await?;
    ws.until(|f| matches!(f, ServerFrame::Pong).then_some(()))
        .await?;

    // Used once: refused the second time, through whichever gateway.
    for _ in 0..2 {
        assert_eq!(
            refusal(connector().connect_with_ticket(&t.ticket).await),
            want(401, "invalid_ticket")
        );
    }
    assert_eq!(
        refusal(connector().connect_with_ticket("made-up").await),
        want(401, "invalid_ticket")
    );
    // A ticket of a session that ended before it was used opens nothing.
    let unused = api.ws_ticket(&s.access_token).await?;
    api.logout(&s.refresh_token).await?;
    assert_eq!(
        refusal(connector().connect_with_ticket(&unused.ticket).await),
        want(401, "token_revoked")
    );
    // The socket the ticket opened belonged to that session: closed too.
    let (err, after) = closed(ws, Instant::now(), Duration::from_secs(3)).await;
    assert_eq!(
        err.and_then(|e| e.close_code()),
        Some(close::UNAUTHORIZED),
        "{after:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_websocket_ticket_is_refused() -> anyhow::Result<()> {
    let api = api();
    let s = register(&api, "stale-ticket-").await?;
    let t = api.ws_ticket(&s.access_token).await?;
    tokio::time::sleep(Duration::from_secs(t.expires_in + 1)).await;
    assert_eq!(
        refusal(connector().connect_with_ticket(&t.ticket).await),
        want(401, "invalid_ticket")
    );
    Ok(())
}

#[tokio::test]
async fn tokens_minted_before_sessions_were_in_tokens_keep_working() -> anyhow::Result<()> {
    let api = api();
    let s = register(&api, "legacy-").await?;
    let legacy = access_token(&s.user.id, 60)?;
    assert_eq!(api.me(&legacy).await?.id, s.user.id);
    let t = api.ws_ticket(&legacy).await?;
    connector().connect_with_ticket(&t.ticket).await?;
    connect(&legacy).await?;
    Ok(())
}

/// An address of this machine that is not loopback (loopback is exempt from the cap: it is the
/// machine's own tools): the one that would carry traffic to the outside. No packet is sent.
fn outside_address() -> anyhow::Result<IpAddr> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0")?;
    probe.connect("192.0.2.123:9")?;
    let ip = probe.local_addr()?.ip();
    anyhow::ensure!(
        !ip.is_loopback(),
        "this machine has no non-loopback address"
    );
    Ok(ip)
}

#[tokio::test]
async fn one_address_holds_a_bounded_number_of_websockets() -> anyhow::Result<()> {
    // deploy/stack.sh's default (CHAT_WS_CONNS_PER_ADDRESS), unless the stack was started with
    // another one.
    let cap: usize = std::env::var("CHAT_WS_CONNS_PER_ADDRESS")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(256);
    let from = Some(outside_address()?);
    println!("connecting {cap} sockets from {from:?} to {}", base_url());
    let api = api();
    // Spread over users: one user may hold 32 sockets per gateway.
    let per_user = 16;
    let mut users = Vec::new();
    for _ in 0..cap.div_ceil(per_user) {
        users.push(register(&api, "capped-").await?.access_token);
    }
    let conn = connector();
    let mut open = Vec::with_capacity(cap);
    for i in 0..cap {
        open.push(conn.connect_from(&users[i / per_user], from).await?);
    }
    let refused = conn.connect_from(&users[0], from).await;
    assert_eq!(refusal(refused), want(429, "too_many_connections"));
    // Loopback is not counted; and a socket closed makes room again.
    connect(&users[0]).await?;
    open.pop().expect("one").close(Duration::from_secs(2)).await;
    let mut again = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while again.is_none() && Instant::now() < deadline {
        // nginx counts a connection until it has finished with it: the close takes a moment.
        match conn.connect_from(&users[0], from).await {
            Ok(ws) => again = Some(ws),
            Err(e) if e.status() == Some(429) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    assert!(again.is_some(), "no room after a socket closed");
    Ok(())
}
