//! The S3-compatible object store that holds attachments (versitygw in both stacks; any S3 API
//! in production): the bucket, presigned upload and download URLs, and the few calls the
//! services make themselves (HEAD, DELETE).
//!
//! Two clients over one HTTP connection pool: `store` talks to the store's own endpoint
//! (`objects.endpoint`), `signer` only presigns, for the origin clients use
//! (`objects.public_base`, nginx's `location /chat-attachments/`). SigV4 signs the `Host`
//! header, and nginx passes the client's `Host` on unchanged, so a URL signed for the public
//! origin verifies at the store. Presigning is local HMAC work: no round trip.
//!
//! Addressing is path-style (`<base>/<bucket>/<key>`): virtual-host buckets would need a DNS
//! name per bucket in front of nginx.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, SharedHttpClient,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use chat_common::config::ObjectsConfig;
use secrecy::ExposeSecret;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// A setting that cannot work; names the field.
    #[error("objects: {0}")]
    Config(String),
    /// The store refused or could not be reached.
    #[error("object store: {op} failed: {message}")]
    Store { op: &'static str, message: String },
}

/// The store's own `code: message` for an answer it gave, else the error's chain of causes
/// (connection refused, timeout, ...). Never the raw response (the SDK's Debug output is huge).
fn store_error<E, R>(op: &'static str, e: SdkError<E, R>) -> ObjectsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = match e.as_service_error() {
        Some(se) => format!(
            "{}: {}",
            se.code().unwrap_or("unknown error"),
            se.message().unwrap_or_default()
        ),
        None => {
            let mut message = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                message = format!("{message}: {c}");
                cause = c.source();
            }
            message
        }
    };
    ObjectsError::Store { op, message }
}

/// A presigned request: what a client must send, exactly (method, URL and these headers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presigned {
    pub method: String,
    pub url: String,
    /// Headers the signature covers besides `host` (a PUT's `content-length` and
    /// `content-type`); a request without them, or with other values, gets 403.
    pub headers: Vec<(String, String)>,
}

/// What a HEAD tells about a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub content_type: Option<String>,
}

/// The attachment bucket. Cheap to clone (the clients share their connection pool).
#[derive(Clone, Debug)]
pub struct Objects {
    store: Client,
    signer: Client,
    bucket: String,
}

impl Objects {
    /// Clients for `cfg`; reads the keys (inline or from their files). No network yet.
    pub fn new(cfg: &ObjectsConfig) -> Result<Objects, ObjectsError> {
        check_origin("objects.endpoint", &cfg.endpoint)?;
        check_origin("objects.public_base", &cfg.public_base)?;
        if !valid_bucket_name(&cfg.bucket) {
            return Err(ObjectsError::Config(format!(
                "objects.bucket {:?} is not a valid bucket name (3-63 of a-z, 0-9, '-', '.')",
                cfg.bucket
            )));
        }
        if cfg.region.is_empty() {
            return Err(ObjectsError::Config("objects.region is empty".into()));
        }
        let key = |field: &str, s: secrecy::SecretString| {
            let s = s.expose_secret().to_owned();
            if s.is_empty() {
                return Err(ObjectsError::Config(format!("{field} is empty")));
            }
            Ok(s)
        };
        let access = cfg
            .access_key()
            .map_err(|e| ObjectsError::Config(e.to_string()))?;
        let secret = cfg
            .secret_key()
            .map_err(|e| ObjectsError::Config(e.to_string()))?;
        let (access, secret) = (
            key("objects.access_key", access)?,
            key("objects.secret_key", secret)?,
        );
        let credentials = Credentials::new(access, secret, None, None, "chat-config");
        // rustls on ring (the SDK's default TLS would bring aws-lc); plain http works too.
        let http: SharedHttpClient = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let conf = |endpoint: &str| {
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(cfg.region.clone()))
                .endpoint_url(endpoint.trim_end_matches('/'))
                .force_path_style(true)
                .credentials_provider(credentials.clone())
                // No checksum trailers (aws-chunked) on our own PUTs, and none in presigned URLs:
                // browsers could not send them, and some stores reject them.
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(3))
                        .operation_attempt_timeout(Duration::from_secs(30))
                        .build(),
                )
                .http_client(http.clone())
                .build()
        };
        Ok(Objects {
            store: Client::from_conf(conf(&cfg.endpoint)),
            signer: Client::from_conf(conf(&cfg.public_base)),
            bucket: cfg.bucket.clone(),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Create the bucket unless it exists (`chat-admin migrate`). Returns whether it created
    /// it. Idempotent, also when two migrators race.
    pub async fn ensure_bucket(&self) -> Result<bool, ObjectsError> {
        match self.store.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(false),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {}
            Err(e) => return Err(store_error("head bucket", e)),
        }
        match self.store.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => {
                tracing::info!(bucket = %self.bucket, "created the bucket");
                Ok(true)
            }
            Err(e)
                if e.as_service_error().is_some_and(|e| {
                    e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()
                }) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_error("create bucket", e)),
        }
    }

    /// A URL to upload `key` with: the store refuses (403) any other length or type than
    /// these, and any use after `expires`.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires: Duration,
    ) -> Result<Presigned, ObjectsError> {
        let length = i64::try_from(content_length)
            .map_err(|_| ObjectsError::Config("content length out of range".into()))?;
        let req = self
            .signer
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(length)
            .presigned(presigning(expires)?)
            .await
            .map_err(|e| store_error("presign put", e))?;
        Ok(presigned(&req))
    }

    /// A URL to download `key` with until `expires`.
    pub async fn presign_get(
        &self,
        key: &str,
        expires: Duration,
    ) -> Result<Presigned, ObjectsError> {
        let req = self
            .signer
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning(expires)?)
            .await
            .map_err(|e| store_error("presign get", e))?;
        Ok(presigned(&req))
    }

    /// A download URL for `key` until `expires` whose answer carries these `Content-Type` and
    /// `Content-Disposition` (S3's `response-content-type` / `response-content-disposition`,
    /// covered by the signature): the type stored is what browsers get, and a file is shown
    /// inline or saved under its name as the API decides.
    pub async fn presign_download(
        &self,
        key: &str,
        expires: Duration,
        content_type: &str,
        disposition: &str,
    ) -> Result<Presigned, ObjectsError> {
        let req = self
            .signer
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(content_type)
            .response_content_disposition(disposition)
            .presigned(presigning(expires)?)
            .await
            .map_err(|e| store_error("presign get", e))?;
        Ok(presigned(&req))
    }

    /// The bytes of `key` from `start` through `end` (inclusive; fewer if the object is shorter),
    /// or the whole object with `end` `None`. `None` if there is no such object.
    pub async fn get_range(
        &self,
        key: &str,
        start: u64,
        end: Option<u64>,
    ) -> Result<Option<Vec<u8>>, ObjectsError> {
        let range = match end {
            Some(end) => format!("bytes={start}-{end}"),
            None => format!("bytes={start}-"),
        };
        let out = match self
            .store
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(range)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(e) => return Err(store_error("get object", e)),
        };
        let bytes = out.body.collect().await.map_err(|e| ObjectsError::Store {
            op: "get object",
            message: e.to_string(),
        })?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    /// Size and type of `key`, or `None` if there is no such object (not uploaded yet).
    pub async fn head(&self, key: &str) -> Result<Option<ObjectHead>, ObjectsError> {
        match self
            .store
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectHead {
                size: out
                    .content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                content_type: out.content_type().map(str::to_owned),
            })),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(e) => Err(store_error("head object", e)),
        }
    }

    /// Delete `key`; deleting a missing object is not an error (S3 answers 204 either way).
    pub async fn delete(&self, key: &str) -> Result<(), ObjectsError> {
        self.store
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("delete object", e))
    }
}

fn presigning(expires: Duration) -> Result<PresigningConfig, ObjectsError> {
    PresigningConfig::expires_in(expires)
        .map_err(|e| ObjectsError::Config(format!("presigned URL lifetime: {e}")))
}

fn presigned(req: &aws_sdk_s3::presigning::PresignedRequest) -> Presigned {
    Presigned {
        method: req.method().to_owned(),
        url: req.uri().to_owned(),
        headers: req
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

/// `http(s)://host[:port]` with nothing after it but an optional `/`.
fn check_origin(field: &str, value: &str) -> Result<(), ObjectsError> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    match rest.map(|r| r.trim_end_matches('/')) {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ']) => Ok(()),
        _ => Err(ObjectsError::Config(format!(
            "{field} {value:?} must be an origin like http://127.0.0.1:19000 (no path)"
        ))),
    }
}

/// S3's rules for new buckets, simplified: 3-63 characters of `a-z0-9.-`, starting and
/// ending with a letter or digit.
fn valid_bucket_name(name: &str) -> bool {
    let ok_end = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && ok_end(name.chars().next())
        && ok_end(name.chars().last())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ObjectsConfig {
        ObjectsConfig {
            access_key: Some("chat-test-access".into()),
            secret_key: Some("chat-test-secret-key-0123456789".into()),
            ..ObjectsConfig::default()
        }
    }

    #[tokio::test]
    async fn a_presigned_put_names_the_public_origin_and_binds_length_and_type() {
        let objects = Objects::new(&config()).unwrap();
        let put = objects
            .presign_put("o/abc", "image/png", 5, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(put.method, "PUT");
        assert!(
            put.url
                .starts_with("http://127.0.0.1:8080/chat-attachments/o/abc?"),
            "{}",
            put.url
        );
        assert!(put.url.contains("X-Amz-Expires=60"), "{}", put.url);
        let signed = put
            .url
            .split('&')
            .find_map(|p| p.strip_prefix("X-Amz-SignedHeaders="))
            .unwrap();
        assert_eq!(signed, "content-length%3Bcontent-type%3Bhost");
        assert!(!put.url.contains("x-amz-checksum"), "{}", put.url);
        let mut headers = put.headers.clone();
        headers.sort();
        assert_eq!(
            headers,
            [
                ("content-length".to_owned(), "5".to_owned()),
                ("content-type".to_owned(), "image/png".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn a_presigned_get_needs_no_headers() {
        let objects = Objects::new(&config()).unwrap();
        let get = objects
            .presign_get("o/abc", Duration::from_secs(300))
            .await
            .unwrap();
        assert_eq!(get.method, "GET");
        assert!(
            get.url
                .starts_with("http://127.0.0.1:8080/chat-attachments/o/abc?")
        );
        assert!(get.headers.is_empty(), "{:?}", get.headers);
    }

    #[tokio::test]
    async fn a_download_url_fixes_type_and_disposition() {
        let objects = Objects::new(&config()).unwrap();
        let get = objects
            .presign_download(
                "o/abc",
                Duration::from_secs(300),
                "application/pdf",
                "attachment; filename*=UTF-8''a%20b.pdf",
            )
            .await
            .unwrap();
        assert!(
            get.url.contains("response-content-type=application%2Fpdf"),
            "{}",
            get.url
        );
        assert!(
            get.url.contains(
                "response-content-disposition=attachment%3B%20filename%2A%3DUTF-8%27%27a%2520b.pdf"
            ),
            "{}",
            get.url
        );
        assert!(get.headers.is_empty(), "{:?}", get.headers);
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let mut cfg = config();
        cfg.public_base = "http://127.0.0.1:8080/files".into();
        let e = Objects::new(&cfg).unwrap_err().to_string();
        assert!(e.contains("objects.public_base"), "{e}");

        let mut cfg = config();
        cfg.bucket = "Chat_Attachments".into();
        let e = Objects::new(&cfg).unwrap_err().to_string();
        assert!(e.contains("objects.bucket"), "{e}");

        let mut cfg = config();
        cfg.secret_key = None;
        let e = Objects::new(&cfg).unwrap_err().to_string();
        assert!(e.contains("CHAT__OBJECTS__SECRET_KEY"), "{e}");
    }
}
