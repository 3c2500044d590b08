//! argon2id on a fixed pool of dedicated threads, each reusing one memory buffer.
//!
//! argon2 is memory-hard: every hash fills 19 MiB. Computed on tokio's blocking pool, each hash
//! ran on whichever blocking thread was free, threads came and went, and glibc gave each new
//! thread its own malloc arena that kept its 19 MiB after the free: the API grew from 16 MB to
//! over 600 MB after ~2,000 logins and stayed there. Here a fixed number of threads each own one
//! buffer for their whole life, so the memory argon2 needs is `threads x 19 MiB`, allocated
//! once, and it also bounds the CPU that hashing can take to that many cores.
//!
//! Jobs wait in a bounded queue; a full queue makes callers wait (their request timeout bounds
//! that wait).

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// Jobs waiting for a hashing thread, at most.
const QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("the hashing pool has stopped")]
    Stopped,
}

enum Job {
    Hash {
        password: String,
        reply: oneshot::Sender<Result<String, HashError>>,
    },
    /// `phc: None`: an unknown user; verify against a dummy hash so the answer takes as long.
    Verify {
        password: String,
        phc: Option<String>,
        reply: oneshot::Sender<Result<bool, HashError>>,
    },
}

/// A handle on the hashing threads; cheap to clone. The threads end when every handle is gone.
#[derive(Clone)]
pub struct HashPool {
    jobs: mpsc::Sender<Job>,
}

impl HashPool {
    /// Start `threads` hashing threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&rx))?;
        }
        Ok(HashPool { jobs: tx })
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) of `password`.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Hash { password, reply }).await?;
        rx.await.map_err(|_| HashError::Stopped)?
    }

    /// Whether `password` matches the PHC string `phc`. With `None` (an unknown user) the same
    /// work is done against a dummy hash, and the answer is `false`.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, HashError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Verify {
            password,
            phc,
            reply,
        })
        .await?;
        rx.await.map_err(|_| HashError::Stopped)?
    }

    async fn submit(&self, job: Job) -> Result<(), HashError> {
        self.jobs.send(job).await.map_err(|_| HashError::Stopped)
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let job = {
            let Ok(mut rx) = rx.lock() else { return };
            rx.blocking_recv()
        };
        match job {
            None => return,
            Some(Job::Hash { password, reply }) => {
                let _ = reply.send(hash(&mut memory, password.as_bytes()));
            }
            Some(Job::Verify {
                password,
                phc,
                reply,
            }) => {
                let result = match phc {
                    Some(phc) => verify(&mut memory, password.as_bytes(), &phc),
                    None => dummy_hash(&mut memory)
                        .and_then(|dummy| verify(&mut memory, password.as_bytes(), dummy))
                        .map(|_| false),
                };
                let _ = reply.send(result);
            }
        }
    }
}

fn err(e: impl std::fmt::Display) -> HashError {
    HashError::Argon2(e.to_string())
}

/// Run argon2 with `params` into `out`, in `memory` (grown to the size `params` needs, kept).
fn compute(
    memory: &mut Vec<Block>,
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), HashError> {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
        .map_err(err)
}

/// A new argon2id hash with the library's default (OWASP) parameters, as a PHC string.
fn hash(memory: &mut Vec<Block>, password: &[u8]) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(err)?;
    let params = Params::default();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    compute(
        memory,
        Algorithm::Argon2id,
        Version::V0x13,
        params.clone(),
        password,
        salt_bytes,
        &mut out,
    )?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(err)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(err)?),
    }
    .to_string())
}

/// Whether `password` matches the PHC string `phc` (its own algorithm and parameters).
fn verify(memory: &mut Vec<Block>, password: &[u8], phc: &str) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(phc).map_err(err)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(HashError::Argon2(
            "stored hash without salt or output".into(),
        ));
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(err)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(err)?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(err)?;
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(err)?;
    let mut out = vec![0u8; expected.len()];
    compute(
        memory, algorithm, version, params, password, salt_bytes, &mut out,
    )?;
    // `Output`'s equality is constant-time.
    Ok(Output::new(&out).map_err(err)? == expected)
}

/// A valid argon2id hash of a random password, verified against for unknown usernames. Made on
/// a hashing thread the first time it is needed.
fn dummy_hash(memory: &mut Vec<Block>) -> Result<&'static str, HashError> {
    static H: OnceLock<String> = OnceLock::new();
    if let Some(h) = H.get() {
        return Ok(h);
    }
    let h = hash(memory, uuid::Uuid::new_v4().as_bytes())?;
    Ok(H.get_or_init(|| h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[tokio::test]
    async fn hashes_verify_here_and_with_the_library() {
        let pool = HashPool::start(2).unwrap();
        let phc = pool.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            pool.verify("correct horse".into(), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(
            !pool
                .verify("wrong horse".into(), Some(phc.clone()))
                .await
                .unwrap()
        );
        // The same format the library writes and reads (hashes stored before this pool).
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn hashes_made_by_the_library_verify_here() {
        use argon2::PasswordHasher;
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        // Non-default parameters: the stored hash's own parameters are used.
        let lib = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let phc = lib.hash_password(b"pw 12345", &salt).unwrap().to_string();
        let pool = HashPool::start(1).unwrap();
        assert!(
            pool.verify("pw 12345".into(), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(!pool.verify("pw 1234".into(), Some(phc)).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_users_are_refused_after_the_same_work() {
        let pool = HashPool::start(1).unwrap();
        assert!(!pool.verify("anything".into(), None).await.unwrap());
        assert!(
            pool.verify("anything".into(), Some("not a phc".into()))
                .await
                .is_err()
        );
    }
}
