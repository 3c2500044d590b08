//! The iOS client's own code against the real stack: `chatkit-cli` (ChatKit's `APIClient`,
//! `TokenManager`, `RealtimeClient` over `URLSessionTransport`, the code path the iPhone runs)
//! and a Rust client in one channel, through nginx.
//!
//! The Swift program runs through `scripts/swift.sh` (a native toolchain, or the cached Debian
//! trixie root) and must be built first:
//! `scripts/swift.sh swift-build --package-path ios-client/ChatKit --product chatkit-cli`.
//! Its session file lives under the package's git-ignored `.build/`, which the Swift side sees at
//! the same path. Run one test at a time (`--test-threads=1`): the first kills a gateway.

use anyhow::{Context, bail, ensure};
use chat_e2e::{api, base_url, connect, connect_elsewhere, files, register, unique};
use chat_types::ChannelId;
use chat_types::attachments::AttachmentLink;
use chat_types::rest::Session;
use chat_types::ws::ServerFrame;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Generous: the Swift client's reconnect backoff, nginx noticing a dead gateway, and a gateway
/// restart all fit in it.
const WAIT: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    chat_e2e::repo_root()
}

fn cli() -> anyhow::Result<PathBuf> {
    let path = repo().join("ios-client/ChatKit/.build/debug/chatkit-cli");
    ensure!(
        path.exists(),
        "{} is missing: build it with scripts/swift.sh swift-build --package-path ios-client/ChatKit",
        path.display()
    );
    Ok(path)
}

/// A session file the Swift side can reach (the checkout is mounted into its root).
fn session_file() -> anyhow::Result<PathBuf> {
    let dir = repo().join("ios-client/ChatKit/.build/e2e");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("{}.json", unique("session-"))))
}

fn swift_command(session: &Path, args: &[&str]) -> anyhow::Result<Command> {
    let mut cmd = Command::new(repo().join("scripts/swift.sh"));
    cmd.current_dir(repo())
        .arg(cli()?)
        .args(["--server", &base_url(), "--session"])
        .arg(session)
        .args(args)
        .kill_on_drop(true);
    Ok(cmd)
}

/// One `chatkit-cli` command that exits; its stdout lines.
async fn swift_once(session: &Path, args: &[&str]) -> anyhow::Result<Vec<String>> {
    let out = tokio::time::timeout(WAIT, swift_command(session, args)?.output())
        .await
        .with_context(|| format!("chatkit-cli {args:?} timed out"))??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "chatkit-cli {args:?}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout.lines().map(str::to_owned).collect())
}

/// `field(line, "id")`: the value of `id=<value>` in a line of the CLI's output.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[start..];
    // `body=` is last and runs to the end of the line.
    Some(if name == "body" {
        rest
    } else {
        rest.split(' ').next().unwrap_or(rest)
    })
}

/// `chatkit-cli open <channel>`, running: lines typed into it are sent, its output is read as it
/// comes.
struct Conversation {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
}

impl Conversation {
    fn open(session: &Path, channel: ChannelId) -> anyhow::Result<Conversation> {
        let mut child = swift_command(session, &["open", &channel.to_string()])?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Conversation {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        })
    }

    async fn type_line(&mut self, text: &str) -> anyhow::Result<()> {
        self.stdin.write_all(format!("{text}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// The next output line `pick` accepts, within `wait`.
    async fn expect(
        &mut self,
        what: &str,
        wait: Duration,
        pick: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Err(_) => bail!("the Swift client printed no {what} within {wait:?}"),
                Ok(None) => bail!("the Swift client exited before printing {what}"),
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if pick(&line) {
                        return Ok(line);
                    }
                }
            }
        }
    }

    /// The client's timeline (`/dump`): (seq, message id, status, body) per entry, and the
    /// summary line.
    async fn dump(
        &mut self,
    ) -> anyhow::Result<(Vec<(Option<i64>, String, String, String)>, String)> {
        self.type_line("/dump").await?;
        let mut entries = Vec::new();
        loop {
            let line = self
                .expect("its timeline", Duration::from_secs(10), |l| {
                    l.starts_with("entry ") || l.starts_with("timeline ")
                })
                .await?;
            if line.starts_with("timeline ") {
                return Ok((entries, line));
            }
            entries.push((
                field(&line, "seq").and_then(|s| s.parse().ok()),
                field(&line, "id").unwrap_or_default().to_owned(),
                field(&line, "status").unwrap_or_default().to_owned(),
                field(&line, "body").unwrap_or_default().to_owned(),
            ));
        }
    }

    async fn quit(mut self) -> anyhow::Result<()> {
        self.type_line("/quit").await?;
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await??;
        ensure!(status.success(), "chatkit-cli open exited with {status}");
        Ok(())
    }
}

async fn stack(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(repo().join("deploy/stack.sh"))
        .args(args)
        .status()
        .await?;
    ensure!(status.success(), "deploy/stack.sh {args:?}: {status}");
    Ok(())
}

#[tokio::test]
async fn swift_and_rust_clients_chat_and_the_swift_client_resumes_exactly_after_its_gateway_is_killed()
-> anyhow::Result<()> {
    let api = api();
    let bob: Session = register(&api, "bob").await?;
    let channel = api
        .create_channel(&bob.access_token, &unique("swift-"), None)
        .await?;

    // The Swift user signs up, joins and finds the channel, all through ChatKit's REST client.
    let session = session_file()?;
    let name = unique("swift");
    let signed_in = swift_once(&session, &["register", &name, "correct horse battery"]).await?;
    ensure!(
        signed_in.iter().any(|l| l.starts_with("signed in ")),
        "{signed_in:?}"
    );
    swift_once(&session, &["join", &channel.id.to_string()]).await?;
    let listed = swift_once(&session, &["conversations"]).await?;
    ensure!(
        listed
            .iter()
            .any(|l| field(l, "id") == Some(&channel.id.to_string())),
        "the joined channel is not listed: {listed:?}"
    );

    let mut swift = Conversation::open(&session, channel.id)?;
    let ready = swift
        .expect("ready", WAIT, |l| l.starts_with("ready "))
        .await?;
    let first_connection = field(&ready, "connection")
        .context("connection id")?
        .to_owned();
    let gateway = first_connection
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    swift
        .expect("history", WAIT, |l| l.starts_with("history "))
        .await?;
    let mut rust = connect_elsewhere(&bob.access_token, &gateway).await?;
    println!(
        "swift client on {first_connection}, rust client on {}",
        rust.connection_id()
    );

    // Both ways.
    rust.send_message(channel.id, &unique("r-"), "hello from rust")
        .await?;
    swift
        .expect("the Rust message", WAIT, |l| {
            l.starts_with("message ") && field(l, "body") == Some("hello from rust")
        })
        .await?;
    swift.type_line("hello from swift").await?;
    swift
        .expect("the ack", WAIT, |l| l.starts_with("acked "))
        .await?;
    rust.until(|f| match f {
        ServerFrame::Message { message } if message.body == "hello from swift" => Some(()),
        _ => None,
    })
    .await?;

    // The Swift client's gateway dies hard while the other side sends 20 messages.
    let restart = chat_e2e::Restart::guard(&[&gateway]);
    stack(&["kill", &gateway, "-9"]).await?;
    let mut acked = Vec::new();
    for i in 0..20 {
        let client_msg_id = unique("r-");
        rust.send_message(channel.id, &client_msg_id, &format!("while down {i}"))
            .await?;
        let (id, _) = rust
            .until(|f| match f {
                ServerFrame::Ack {
                    client_msg_id: c,
                    message,
                } if *c == client_msg_id => Some(message.id.to_string()),
                _ => None,
            })
            .await?;
        acked.push(id);
    }
    restart.start().await?;

    let again = swift
        .expect("a new ready", WAIT, |l| {
            l.starts_with("ready ") && field(l, "connection") != Some(first_connection.as_str())
        })
        .await?;
    swift
        .expect("resumed", WAIT, |l| l.starts_with("resumed "))
        .await?;

    // Every acked message, once, in order: poll the timeline until the last one is there.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (entries, summary) = loop {
        let (entries, summary) = swift.dump().await?;
        let have = acked
            .iter()
            .filter(|id| entries.iter().any(|e| &e.1 == *id))
            .count();
        if have == acked.len() || tokio::time::Instant::now() > deadline {
            break (entries, summary);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let positions: Vec<usize> = acked
        .iter()
        .map(|id| entries.iter().filter(|e| &e.1 == id).count())
        .collect();
    let once = positions.iter().filter(|&&n| n == 1).count();
    let seqs: Vec<i64> = acked
        .iter()
        .filter_map(|id| entries.iter().find(|e| &e.1 == id).and_then(|e| e.0))
        .collect();
    let in_order = seqs.windows(2).all(|w| w[1] == w[0] + 1);
    let all_seqs: Vec<i64> = entries.iter().filter_map(|e| e.0).collect();
    let timeline_ordered = all_seqs.windows(2).all(|w| w[0] < w[1]);
    println!(
        "swift client after kill -9 of {gateway}: reconnected as {}, {} of {} acked messages held once, \
         seqs {seqs:?} consecutive: {in_order}; timeline {} entries ordered: {timeline_ordered}; {summary}",
        field(&again, "connection").unwrap_or("?"),
        once,
        acked.len(),
        entries.len(),
    );
    // How they came: replayed after the new `ready` (before `resumed`), or live afterwards.
    let after_ready = swift
        .seen
        .iter()
        .rposition(|l| l.starts_with("ready "))
        .unwrap_or_default();
    let mut replayed = 0;
    let mut live = 0;
    let mut in_catch_up = true;
    for line in &swift.seen[after_ready..] {
        if line.starts_with("resumed ") {
            in_catch_up = false;
        }
        if line.starts_with("message ") && acked.iter().any(|id| field(line, "id") == Some(id)) {
            if in_catch_up {
                replayed += 1
            } else {
                live += 1
            }
        }
    }
    println!(
        "of the 20: {replayed} replayed by resume, {live} live after it, the rest filled over REST"
    );
    ensure!(
        once == acked.len(),
        "every acked message once: {positions:?}"
    );
    ensure!(
        in_order && seqs.len() == acked.len(),
        "in order without gaps: {seqs:?}"
    );
    ensure!(timeline_ordered, "timeline ordered by seq: {all_seqs:?}");
    ensure!(
        summary.contains("duplicates=0"),
        "no message delivered twice live: {summary}"
    );

    // And it still sends after the reconnect.
    swift.type_line("back again").await?;
    swift
        .expect("the ack", WAIT, |l| l.starts_with("acked "))
        .await?;
    rust.until(|f| match f {
        ServerFrame::Message { message } if message.body == "back again" => Some(()),
        _ => None,
    })
    .await?;
    swift.quit().await?;
    let _ = std::fs::remove_file(&session);
    Ok(())
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_and_the_swift_client_connects() -> anyhow::Result<()>
{
    let api = api();
    let carol: Session = register(&api, "carol").await?;
    let channel = api
        .create_channel(&carol.access_token, &unique("swift-"), None)
        .await?;
    // A token that expired while the app was suspended: the stored session still looks fresh
    // to the client (its `refresh_after` is ahead), so the socket meets the server with it.
    let expired = chat_e2e::access_token(&carol.user.id, 0)?;
    // `exp` is the issuing second; with no leeway it is refused from the next one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let refused = api
        .call("GET", "/api/v1/users/me", Some(&expired), None)
        .await?;
    ensure!(
        refused.status == 401 && refused.error_code() == Some("token_expired"),
        "the made-up token should be expired: {refused:?}"
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let session = session_file()?;
    std::fs::write(
        &session,
        serde_json::to_vec(&serde_json::json!({
            "user": carol.user,
            "access_token": expired,
            "refresh_token": carol.refresh_token,
            "access_token_expires_at": now + 900,
            "refresh_after": now + 800,
        }))?,
    )?;

    let mut swift = Conversation::open(&session, channel.id)?;
    let ready = swift
        .expect("ready", WAIT, |l| l.starts_with("ready "))
        .await?;
    swift.type_line("sent with a refreshed token").await?;
    swift
        .expect("the ack", WAIT, |l| l.starts_with("acked "))
        .await?;
    swift.quit().await?;

    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&session)?)?;
    let new_access = stored["access_token"].as_str().unwrap_or_default();
    let new_refresh = stored["refresh_token"].as_str().unwrap_or_default();
    println!(
        "swift client: upgrade refused with the expired token, refreshed (access token {}, refresh token {}), then {ready}",
        if new_access != expired {
            "replaced"
        } else {
            "UNCHANGED"
        },
        if new_refresh != carol.refresh_token {
            "rotated"
        } else {
            "UNCHANGED"
        },
    );
    ensure!(
        new_access != expired && new_refresh != carol.refresh_token,
        "the session was not refreshed"
    );
    let old = api
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(&serde_json::json!({ "refresh_token": carol.refresh_token })),
        )
        .await?;
    ensure!(
        old.status == 401,
        "the old refresh token is dead after rotation: {old:?}"
    );
    let _ = std::fs::remove_file(&session);
    Ok(())
}

#[tokio::test]
async fn the_swift_client_sends_a_file_and_shows_the_files_of_others() -> anyhow::Result<()> {
    let api = api();
    let dana: Session = register(&api, "dana").await?;
    let channel = api
        .create_channel(&dana.access_token, &unique("swift-files-"), None)
        .await?;
    let session = session_file()?;
    let name = unique("swift");
    swift_once(&session, &["register", &name, "correct horse battery"]).await?;
    swift_once(&session, &["join", &channel.id.to_string()]).await?;
    let mut rust = connect(&dana.access_token).await?;

    // A PNG in a directory the Swift side sees (the checkout), sent with a caption.
    let dir = repo()
        .join("ios-client/ChatKit/.build/e2e")
        .join(unique("files-"));
    std::fs::create_dir_all(&dir)?;
    let (width, height) = (37, 21);
    let bytes = files::png(width, height);
    let file_name = format!("{}.png", unique("photo-"));
    let file = dir.join(&file_name);
    std::fs::write(&file, &bytes)?;
    let out = swift_once(
        &session,
        &[
            "send-file",
            &channel.id.to_string(),
            file.to_str().context("a UTF-8 path")?,
            "a",
            "caption",
        ],
    )
    .await?;
    let up = out
        .iter()
        .find(|l| l.starts_with("uploaded "))
        .with_context(|| format!("no uploaded line: {out:?}"))?;
    let acked = out
        .iter()
        .find(|l| l.starts_with("acked "))
        .with_context(|| format!("no acked line: {out:?}"))?;
    let attachment_id = field(up, "id").context("attachment id")?.to_owned();
    let message_id = field(acked, "id").context("message id")?.to_owned();
    println!("swift client: {up}\nswift client: {acked}");
    let size = bytes.len();
    ensure!(
        field(up, "name") == Some(file_name.as_str())
            && field(up, "content_type") == Some("image/png")
            && field(up, "size") == Some(size.to_string().as_str())
            && field(up, "width") == Some(width.to_string().as_str())
            && field(up, "height") == Some(height.to_string().as_str()),
        "the completed upload as the Swift client printed it: {up}"
    );
    let carried = format!("{attachment_id}:{file_name}:{size}:{width}x{height}");
    ensure!(
        field(acked, "attachments") == Some(carried.as_str()),
        "the ack carries the file: {acked}"
    );

    // The Rust member gets the message with the file, measured, and downloads the same bytes.
    let (message, _) = rust
        .until(|f| match f {
            ServerFrame::Message { message } if message.id.to_string() == message_id => {
                Some(message.clone())
            }
            _ => None,
        })
        .await?;
    ensure!(message.body == "a caption", "caption: {:?}", message.body);
    ensure!(
        message.attachments.len() == 1,
        "one file: {:?}",
        message.attachments
    );
    let got = &message.attachments[0];
    ensure!(
        got.id.to_string() == attachment_id
            && got.name == file_name
            && got.content_type == "image/png"
            && got.size == size as u64
            && got.width == Some(width)
            && got.height == Some(height),
        "the file as the message carries it: {got:?}"
    );
    let r = api
        .call(
            "GET",
            &files::path(channel.id, &format!("/{}", got.id)),
            Some(&dana.access_token),
            None,
        )
        .await?;
    ensure!(r.status == 200, "link: {:?}", r.body);
    let link: AttachmentLink = serde_json::from_value(r.body)?;
    let download = files::http().get(&link.url).send().await?;
    ensure!(
        download.status().as_u16() == 200,
        "download: {}",
        download.status()
    );
    let downloaded = download.bytes().await?;
    ensure!(
        downloaded.as_ref() == bytes.as_slice(),
        "downloaded {} bytes, not the {size} the Swift client uploaded",
        downloaded.len()
    );

    // The other way: a file the Rust member uploads and sends shows in the Swift client.
    let mut swift = Conversation::open(&session, channel.id)?;
    swift
        .expect("ready", WAIT, |l| l.starts_with("ready "))
        .await?;
    swift
        .expect("history", WAIT, |l| l.starts_with("history "))
        .await?;
    let theirs_bytes = files::png(12, 7);
    let theirs = files::uploaded(
        &api,
        &dana.access_token,
        channel.id,
        "from-rust.png",
        "image/png",
        &theirs_bytes,
    )
    .await?;
    let cmid = unique("r-");
    rust.send_with_attachments(channel.id, &cmid, "one from rust", &[theirs.id])
        .await?;
    let (answer, _) = rust
        .until(|f| match f {
            ServerFrame::Ack {
                client_msg_id,
                message,
            } if *client_msg_id == cmid => Some(Ok(message.id.to_string())),
            ServerFrame::Error {
                client_msg_id: Some(c),
                code,
                ..
            } if *c == cmid => Some(Err(code.clone())),
            _ => None,
        })
        .await?;
    let theirs_id = answer.map_err(|code| anyhow::anyhow!("the Rust send was refused: {code}"))?;
    let shown = swift
        .expect("the Rust message with its file", WAIT, |l| {
            l.starts_with("message ") && field(l, "id") == Some(theirs_id.as_str())
        })
        .await?;
    println!("swift client: {shown}");
    let expected = format!("{}:from-rust.png:{}:12x7", theirs.id, theirs_bytes.len());
    ensure!(
        field(&shown, "attachments") == Some(expected.as_str())
            && field(&shown, "body") == Some("one from rust"),
        "the Swift client shows the file: {shown}"
    );
    // And its own file, as history brought it (REST), is in its timeline.
    swift.dump().await?;
    let entry = swift
        .seen
        .iter()
        .find(|l| l.starts_with("entry ") && field(l, "id") == Some(message_id.as_str()))
        .with_context(|| {
            format!(
                "the sent file's message is not in the timeline: {:?}",
                swift.seen
            )
        })?;
    ensure!(
        field(entry, "attachments") == Some(carried.as_str()),
        "history carries the file: {entry}"
    );
    swift.quit().await?;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&session);
    Ok(())
}
