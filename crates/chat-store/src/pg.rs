//! PostgreSQL: users, channels, memberships and refresh tokens.
//!
//! Every function is one round trip (or one transaction); none loops over rows issuing queries.

use chat_types::{Channel, ChannelId, ChannelKind, User, UserId};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;
use uuid::Uuid;

pub use sqlx::Error as PgError;
pub use sqlx::postgres::PgPool;

/// Migrations under `migrations/postgres`, embedded in every binary that needs them.
///
/// Migrations applied by a newer release that this binary does not know are accepted: every
/// migration is additive, so rolling a release back (or an older checkout sharing a development
/// database) must not refuse to start. A known migration whose text changed still fails.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("../../migrations/postgres");
    m.set_ignore_missing(true);
    m
}

/// How PostgreSQL plans a pool's statements (sqlx prepares each once per connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Planning {
    /// PostgreSQL's default (`plan_cache_mode = auto`): a custom plan for each of the first
    /// five executions, then a generic one, unless the custom plans were estimated cheaper, and
    /// then every execution is planned again. Right where the best plan depends on the values:
    /// the API's searches (a trigram index serves a long pattern, not a one-letter one).
    Auto,
    /// One generic plan per statement and connection (`force_generic_plan`), made again when
    /// the tables' statistics change. For services whose statements look rows up by key or by
    /// an array of keys, where `auto` kept planning: an array parameter makes every custom
    /// plan look cheaper than the generic one. Measured at 400 msg/s of groups traffic
    /// (pg_stat_statements, 2026-12-04): the notifier's candidate query spent 0.51 ms planning
    /// for 0.08 ms executing at every call, the gateways' DM-peer query 0.47 ms for 0.03 ms at
    /// every connect and disconnect; planning was a third of PostgreSQL's CPU.
    Generic,
}

impl Planning {
    fn setting(self) -> &'static str {
        match self {
            Planning::Auto => "auto",
            Planning::Generic => "force_generic_plan",
        }
    }
}

/// How a pool's connections start: every statement ends within `statement_timeout_ms`, and
/// plans as `planning` says (both are connection options, set at start-up).
pub fn connect_options(
    cfg: &chat_common::config::PostgresConfig,
    planning: Planning,
) -> Result<PgConnectOptions, PgError> {
    let url = cfg
        .connect_url()
        .map_err(|e| PgError::Configuration(e.into()))?;
    let options: PgConnectOptions = url.parse()?;
    Ok(options.options([("plan_cache_mode", planning.setting())]))
}

/// A pooled connection idle for at least this long is checked (one round trip) before it is
/// handed out; one used more recently is handed out as it is.
pub const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// A pool connected with [`connect_options`].
///
/// By default sqlx checks every connection before handing it out (a `Sync` and its answer),
/// which made each query cost two round trips, three with the check sqlx makes when a
/// connection comes back: 4.4 % of a message server's CPU went to these checks at 1,600 msg/s
/// (docs/benchmarks.md, issue 14, seventeenth step). What the check is for is a connection that
/// died while it sat in the pool: PostgreSQL restarted. A connection that failed while in use
/// is closed when it comes back (sqlx's check then fails), and a restart takes longer than
/// [`CHECK_IDLE_AFTER`]: the connections that outlived one have been idle longer than that, and
/// are checked and replaced before any caller sees them. (Were PostgreSQL back within the
/// second, a connection used just before would fail its next query once; the callers that must
/// not fail retry, as the message servers do.)
pub async fn connect(
    cfg: &chat_common::config::PostgresConfig,
    planning: Planning,
) -> Result<PgPool, PgError> {
    PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_IDLE_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(connect_options(cfg, planning)?)
        .await
}

/// A pool that connects only when first used (tools that need a pool's type, not a connection).
pub fn connect_lazy(cfg: &chat_common::config::PostgresConfig) -> Result<PgPool, PgError> {
    Ok(PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(connect_options(cfg, Planning::Auto)?))
}

/// Readiness: one round trip.
pub async fn ping(db: &PgPool) -> Result<(), String> {
    sqlx::query("SELECT 1")
        .execute(db)
        .await
        .map(|_| ())
        .map_err(|e| format!("postgres: {e}"))
}

fn is_unique_violation(e: &PgError, constraint: &str) -> bool {
    matches!(e, PgError::Database(d) if d.code().as_deref() == Some("23505")
        && d.constraint().is_none_or(|c| c == constraint))
}

// ---------------------------------------------------------------- users

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("username taken")]
    UsernameTaken,
    #[error(transparent)]
    Db(#[from] PgError),
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    username: String,
    display_name: String,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: UserId(r.id),
            username: r.username,
            display_name: r.display_name,
        }
    }
}

/// Insert a user; a username already taken (ignoring case) is [`CreateUserError::UsernameTaken`].
pub async fn create_user(
    db: &PgPool,
    user: &User,
    password_hash: &str,
) -> Result<(), CreateUserError> {
    sqlx::query(
        "INSERT INTO users (id, username, display_name, password_hash) VALUES ($1, $2, $3, $4)",
    )
    .bind(user.id.0)
    .bind(&user.username)
    .bind(&user.display_name)
    .bind(password_hash)
    .execute(db)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "users_username_lower_key") {
            CreateUserError::UsernameTaken
        } else {
            CreateUserError::Db(e)
        }
    })?;
    Ok(())
}

/// A user and their password hash, by username ignoring case.
pub async fn user_with_hash(
    db: &PgPool,
    username: &str,
) -> Result<Option<(User, String)>, PgError> {
    let row: Option<(Uuid, String, String, String)> = sqlx::query_as(
        "SELECT id, username, display_name, password_hash FROM users WHERE lower(username) = lower($1)",
    )
    .bind(username)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(id, username, display_name, hash)| {
        (
            User {
                id: UserId(id),
                username,
                display_name,
            },
            hash,
        )
    }))
}

pub async fn user(db: &PgPool, id: UserId) -> Result<Option<User>, PgError> {
    let row: Option<UserRow> =
        sqlx::query_as("SELECT id, username, display_name FROM users WHERE id = $1")
            .bind(id.0)
            .fetch_optional(db)
            .await?;
    Ok(row.map(User::from))
}

/// People search: users whose username starts with `query` or whose display name contains it,
/// ignoring case. Ranked: the exact username first, then username prefixes, then display names
/// that start with the query, then display names that contain it; alphabetically by username
/// within each rank. The username prefix uses `users_username_prefix_idx`, the display-name
/// substring the trigram index `users_display_name_trgm_idx` (a bitmap OR of both).
pub async fn search_users(db: &PgPool, query: &str, limit: i64) -> Result<Vec<User>, PgError> {
    let q = query.to_lowercase();
    let escaped = escape_like(&q);
    let rows: Vec<UserRow> = sqlx::query_as(
        "SELECT id, username, display_name FROM users
         WHERE lower(username) LIKE $1 ESCAPE '\\' OR lower(display_name) LIKE $2 ESCAPE '\\'
         ORDER BY CASE WHEN lower(username) = $3 THEN 0
                       WHEN lower(username) LIKE $1 ESCAPE '\\' THEN 1
                       WHEN lower(display_name) LIKE $4 ESCAPE '\\' THEN 2
                       ELSE 3 END,
                  lower(username)
         LIMIT $5",
    )
    .bind(format!("{escaped}%"))
    .bind(format!("%{escaped}%"))
    .bind(&q)
    .bind(format!("{escaped}%"))
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(User::from).collect())
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------- refresh tokens

pub async fn insert_refresh_token(
    db: &PgPool,
    token_hash: &[u8],
    family_id: Uuid,
    user: UserId,
    expires_at: DateTime<Utc>,
) -> Result<(), PgError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(family_id)
    .bind(user.0)
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The token was valid and is now used; issue the next one in `family_id`.
    Rotated { user: UserId, family_id: Uuid },
    /// The token had been used before: its family (the session `family_id` of `user`) is now
    /// revoked.
    Reused { user: UserId, family_id: Uuid },
    /// Unknown, expired or revoked.
    Invalid,
}

/// Mark a refresh token used, atomically; a second use revokes the whole family.
pub async fn rotate_refresh_token(
    db: &PgPool,
    token_hash: &[u8],
) -> Result<RotateOutcome, PgError> {
    let used: Option<(Uuid, Uuid)> = sqlx::query_as(
        "UPDATE refresh_tokens SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
         RETURNING user_id, family_id",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await?;
    if let Some((user, family_id)) = used {
        return Ok(RotateOutcome::Rotated {
            user: UserId(user),
            family_id,
        });
    }
    // Not usable: if it was already used, someone replayed it. Revoke the family so that the
    // thief's (or the victim's) newer token stops working too.
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL)
           AND revoked_at IS NULL",
    )
    .bind(token_hash)
    .execute(db)
    .await?;
    let was_used: Option<(bool, Uuid, Uuid)> = sqlx::query_as(
        "SELECT used_at IS NOT NULL, user_id, family_id FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await?;
    Ok(match was_used {
        Some((true, user, family_id)) => RotateOutcome::Reused {
            user: UserId(user),
            family_id,
        },
        _ => RotateOutcome::Invalid,
    })
}

/// Revoke the family of a refresh token (logout). Returns the user and the family (the
/// session whose access tokens must stop working too) if the token was known, also when the
/// family was revoked before (a repeated logout revokes the session's tokens again).
pub async fn revoke_refresh_family(
    db: &PgPool,
    token_hash: &[u8],
) -> Result<Option<(UserId, Uuid)>, PgError> {
    let row: Option<(Uuid, Uuid)> = sqlx::query_as(
        "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now())
         WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)
         RETURNING user_id, family_id",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(user, family)| (UserId(user), family)))
}

/// Revoke every refresh-token family of `user` still in use (logout everywhere). Returns the
/// families (sessions) revoked now, each once.
pub async fn revoke_user_families(db: &PgPool, user: UserId) -> Result<Vec<Uuid>, PgError> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE user_id = $1 AND revoked_at IS NULL
         RETURNING family_id",
    )
    .bind(user.0)
    .fetch_all(db)
    .await?;
    let mut families: Vec<Uuid> = rows.into_iter().map(|(f,)| f).collect();
    families.sort_unstable();
    families.dedup();
    Ok(families)
}

// ---------------------------------------------------------------- channels

#[derive(sqlx::FromRow)]
pub(crate) struct ChannelRow {
    id: Uuid,
    kind: String,
    name: String,
    description: String,
    created_at: DateTime<Utc>,
    created_by: Option<Uuid>,
}

impl From<ChannelRow> for Channel {
    fn from(r: ChannelRow) -> Self {
        Channel {
            id: ChannelId(r.id),
            kind: if r.kind == "direct" {
                ChannelKind::Direct
            } else {
                ChannelKind::Group
            },
            name: r.name,
            description: r.description,
            created_at: r.created_at,
            // Only a group has an owner; whoever opened a direct conversation owns nothing.
            created_by: r.created_by.filter(|_| r.kind != "direct").map(UserId),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateChannelError {
    /// A group channel has this name already, ignoring case and Unicode compatibility forms
    /// (the unique index `channels_group_name_key` decides, also between concurrent creations).
    #[error("channel name taken")]
    NameTaken,
    #[error(transparent)]
    Db(#[from] PgError),
}

/// Create a group channel with its creator as the first member, in one transaction.
pub async fn create_group(
    db: &PgPool,
    id: ChannelId,
    name: &str,
    description: &str,
    creator: UserId,
) -> Result<Channel, CreateChannelError> {
    let mut tx = db.begin().await?;
    let row: ChannelRow = sqlx::query_as(
        "INSERT INTO channels (id, kind, name, description, created_by) VALUES ($1, 'group', $2, $3, $4)
         RETURNING id, kind, name, description, created_at, created_by",
    )
    .bind(id.0)
    .bind(name)
    .bind(description)
    .bind(creator.0)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "channels_group_name_key") {
            CreateChannelError::NameTaken
        } else {
            CreateChannelError::Db(e)
        }
    })?;
    sqlx::query("INSERT INTO memberships (channel_id, user_id) VALUES ($1, $2)")
        .bind(id.0)
        .bind(creator.0)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row.into())
}

/// A channel as `viewer` sees it (a direct channel is named after the other user).
pub async fn channel_for(
    db: &PgPool,
    id: ChannelId,
    viewer: UserId,
) -> Result<Option<Channel>, PgError> {
    let row: Option<ChannelRow> = sqlx::query_as(
        "SELECT c.id, c.kind,
                CASE WHEN c.kind = 'direct' THEN coalesce(
                    (SELECT u.display_name FROM memberships m JOIN users u ON u.id = m.user_id
                     WHERE m.channel_id = c.id AND m.user_id <> $2 LIMIT 1), c.name)
                ELSE c.name END AS name,
                c.description, c.created_at, c.created_by
         FROM channels c WHERE c.id = $1",
    )
    .bind(id.0)
    .bind(viewer.0)
    .fetch_optional(db)
    .await?;
    Ok(row.map(Channel::from))
}

/// Group channels whose name contains `query` (ignoring case); an empty query lists the newest.
pub async fn search_groups(db: &PgPool, query: &str, limit: i64) -> Result<Vec<Channel>, PgError> {
    let rows: Vec<ChannelRow> = sqlx::query_as(
        "SELECT id, kind, name, description, created_at, created_by FROM channels
         WHERE kind = 'group' AND lower(name) LIKE $1 ESCAPE '\\'
         ORDER BY (lower(name) = $2) DESC, created_at DESC LIMIT $3",
    )
    .bind(format!("%{}%", escape_like(&query.to_lowercase())))
    .bind(query.to_lowercase())
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Channel::from).collect())
}

/// What a user may do with a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    NoSuchChannel,
    NotMember(ChannelKind),
    Member(ChannelKind),
}

pub async fn access(db: &PgPool, channel: ChannelId, user: UserId) -> Result<Access, PgError> {
    let row: Option<(String, bool)> = sqlx::query_as(
        "SELECT c.kind, EXISTS (SELECT 1 FROM memberships m WHERE m.channel_id = c.id AND m.user_id = $2)
         FROM channels c WHERE c.id = $1",
    )
    .bind(channel.0)
    .bind(user.0)
    .fetch_optional(db)
    .await?;
    Ok(match row {
        None => Access::NoSuchChannel,
        Some((kind, member)) => {
            let kind = if kind == "direct" {
                ChannelKind::Direct
            } else {
                ChannelKind::Group
            };
            if member {
                Access::Member(kind)
            } else {
                Access::NotMember(kind)
            }
        }
    })
}

/// Who created (owns) a group channel; `None` for direct channels, unknown channels, and groups
/// whose creator's account is gone.
pub async fn channel_owner(db: &PgPool, channel: ChannelId) -> Result<Option<UserId>, PgError> {
    let row: Option<(Option<Uuid>,)> =
        sqlx::query_as("SELECT created_by FROM channels WHERE id = $1 AND kind = 'group'")
            .bind(channel.0)
            .fetch_optional(db)
            .await?;
    Ok(row.and_then(|(u,)| u).map(UserId))
}

/// Of `channels`, those `user` is a member of.
pub async fn member_channels(
    db: &PgPool,
    user: UserId,
    channels: &[ChannelId],
) -> Result<Vec<ChannelId>, PgError> {
    let ids: Vec<Uuid> = channels.iter().map(|c| c.0).collect();
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT channel_id FROM memberships WHERE user_id = $1 AND channel_id = ANY($2)",
    )
    .bind(user.0)
    .bind(&ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(c,)| ChannelId(c)).collect())
}

/// Add a member. Returns `true` if they were not a member before.
/// A new member has read everything before they joined: their read mark starts at the
/// channel's newest message.
pub async fn join(db: &PgPool, channel: ChannelId, user: UserId) -> Result<bool, PgError> {
    let r = sqlx::query(
        "INSERT INTO memberships (channel_id, user_id, read_seq)
         VALUES ($1, $2, coalesce((SELECT max(seq) FROM channel_messages WHERE channel_id = $1), 0))
         ON CONFLICT DO NOTHING",
    )
    .bind(channel.0)
    .bind(user.0)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Remove a member. Returns `true` if they were a member.
pub async fn leave(db: &PgPool, channel: ChannelId, user: UserId) -> Result<bool, PgError> {
    let r = sqlx::query("DELETE FROM memberships WHERE channel_id = $1 AND user_id = $2")
        .bind(channel.0)
        .bind(user.0)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Members of a channel, by username.
pub async fn members(db: &PgPool, channel: ChannelId) -> Result<Vec<User>, PgError> {
    let rows: Vec<UserRow> = sqlx::query_as(
        "SELECT u.id, u.username, u.display_name FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.channel_id = $1 ORDER BY lower(u.username)",
    )
    .bind(channel.0)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(User::from).collect())
}

/// Member ids of a channel (the fan-out list).
pub async fn member_ids(db: &PgPool, channel: ChannelId) -> Result<Vec<UserId>, PgError> {
    let rows: Vec<(Uuid,)> =
        sqlx::query_as("SELECT user_id FROM memberships WHERE channel_id = $1")
            .bind(channel.0)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|(u,)| UserId(u)).collect())
}

/// Member ids of several channels at once: `(channel, user)` pairs.
pub async fn member_ids_of(
    db: &PgPool,
    channels: &[ChannelId],
) -> Result<Vec<(ChannelId, UserId)>, PgError> {
    let ids: Vec<Uuid> = channels.iter().map(|c| c.0).collect();
    let rows: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT channel_id, user_id FROM memberships WHERE channel_id = ANY($1)")
            .bind(&ids)
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(c, u)| (ChannelId(c), UserId(u)))
        .collect())
}

/// The accounts with these usernames (lowercase, as `limits::mentioned_usernames` gives them):
/// `(username, id)` pairs, through the unique index on `lower(username)`.
pub async fn user_ids_by_username(
    db: &PgPool,
    names: &[String],
) -> Result<Vec<(String, UserId)>, PgError> {
    let rows: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT lower(username), id FROM users WHERE lower(username) = ANY($1)")
            .bind(names)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|(n, u)| (n, UserId(u))).collect())
}

/// The peers of `users`' direct conversations: `(user, peer)` pairs. Who is told when one of
/// `users` comes online or goes offline.
pub async fn dm_peers_of(db: &PgPool, users: &[UserId]) -> Result<Vec<(UserId, UserId)>, PgError> {
    let ids: Vec<Uuid> = users.iter().map(|u| u.0).collect();
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT me.user_id, peer.user_id
         FROM memberships me
         JOIN channels c ON c.id = me.channel_id AND c.kind = 'direct'
         JOIN memberships peer ON peer.channel_id = me.channel_id AND peer.user_id <> me.user_id
         WHERE me.user_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(u, p)| (UserId(u), UserId(p)))
        .collect())
}

/// Key of the direct channel between two users, the same whoever asks.
pub fn dm_key(a: UserId, b: UserId) -> String {
    let (lo, hi) = if a.0 <= b.0 { (a, b) } else { (b, a) };
    format!("{lo}:{hi}")
}

/// The direct channel of `me` and `other`, created with both as members if it does not exist.
/// Concurrent calls for the same pair agree on one channel (the unique `dm_key` decides).
/// Returns the channel as `me` sees it and whether this call created it.
pub async fn get_or_create_dm(
    db: &PgPool,
    new_id: ChannelId,
    me: UserId,
    other: UserId,
) -> Result<(ChannelId, bool), PgError> {
    let key = dm_key(me, other);
    let mut tx = db.begin().await?;
    let inserted: Option<(Uuid,)> = sqlx::query_as(
        "INSERT INTO channels (id, kind, name, description, created_by, dm_key)
         VALUES ($1, 'direct', '', '', $2, $3)
         ON CONFLICT (dm_key) DO NOTHING RETURNING id",
    )
    .bind(new_id.0)
    .bind(me.0)
    .bind(&key)
    .fetch_optional(&mut *tx)
    .await?;
    let (id, created) = match inserted {
        Some((id,)) => {
            sqlx::query(
                "INSERT INTO memberships (channel_id, user_id) SELECT $1, unnest($2::uuid[])
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(vec![me.0, other.0])
            .execute(&mut *tx)
            .await?;
            (id, true)
        }
        None => {
            // The other call's transaction has committed (ON CONFLICT waited for it).
            let (id,): (Uuid,) = sqlx::query_as("SELECT id FROM channels WHERE dm_key = $1")
                .bind(&key)
                .fetch_one(&mut *tx)
                .await?;
            (id, false)
        }
    };
    tx.commit().await?;
    Ok((ChannelId(id), created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_start_with_the_statement_timeout_and_the_planning_mode() {
        let cfg = chat_common::config::PostgresConfig::default();
        let generic = connect_options(&cfg, Planning::Generic).expect("options");
        let options = generic.get_options().expect("start-up options");
        assert!(options.contains("-c statement_timeout=10000"), "{options}");
        assert!(
            options.contains("-c plan_cache_mode=force_generic_plan"),
            "{options}"
        );
        let auto = connect_options(&cfg, Planning::Auto).expect("options");
        assert!(
            auto.get_options()
                .expect("options")
                .contains("-c plan_cache_mode=auto")
        );
    }
}
