//! The S3-compatible object store that holds attachments (versitygw in both stacks; any S3 API
//! in production): the bucket, presigned upload and download URLs, and the few calls the
//! services make themselves (HEAD, DELETE).
//!
//! Two clients over one HTTP connection pool: `store` talks to the store's own endpoint
//! (`objects.endpoint`), `signer` only presigns, for the origin clients use (nginx's
//! `location /chat-attachments/`). SigV4 signs the `Host` header, and nginx passes the client's
//! `Host` on unchanged, so a URL verifies at the store only when it reaches it through the origin
//! it was signed for. A URL names the [`Origin`] the client's request came through (the page's
//! own: `localhost:8080`, a LAN address, another port all work), overriding the signer's
//! endpoint for that one request, when `objects.public_origins` is empty or lists it; otherwise
//! `objects.public_base`. Presigning is local HMAC work: no round trip.
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
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use chat_common::config::ObjectsConfig;
use secrecy::ExposeSecret;
use std::net::{Ipv4Addr, Ipv6Addr};
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

/// An origin a presigned URL may name: `http://` or `https://`, a host name or an IP literal
/// (IPv6 in brackets), and a port unless it is the scheme's default; lower-case. Only made
/// through these checks, so a `Host` header can never put a path, user info or anything else
/// into a URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin(String);

impl Origin {
    /// The origin of a request made with `scheme` (`http` or `https`) and this `Host` header
    /// value (`host[:port]`); `None` unless both are well-formed.
    pub fn from_host(scheme: &str, host: &str) -> Option<Origin> {
        let (scheme, default_port) = if scheme.eq_ignore_ascii_case("http") {
            ("http", 80)
        } else if scheme.eq_ignore_ascii_case("https") {
            ("https", 443)
        } else {
            return None;
        };
        let (host, port) = host_and_port(host)?;
        Some(Origin(match port {
            Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
            _ => format!("{scheme}://{host}"),
        }))
    }

    /// An origin written out, `http(s)://host[:port]` (a trailing `/` allowed), as in
    /// `objects.public_origins`.
    pub fn parse(s: &str) -> Option<Origin> {
        let (scheme, rest) = s.split_once("://")?;
        Origin::from_host(scheme, rest.strip_suffix('/').unwrap_or(rest))
    }

    /// `scheme://host[:port]`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host (lower-case; an IPv6 literal keeps its brackets) and port of `host[:port]`.
fn host_and_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (ip, after) = rest.split_once(']')?;
            ip.parse::<Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (format!("[{}]", ip.to_ascii_lowercase()), port)
        }
        None => {
            let (host, port) = match s.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (s, None),
            };
            if !valid_host_name(host) {
                return None;
            }
            (host.to_ascii_lowercase(), port)
        }
    };
    let port = match port {
        None => None,
        Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok().filter(|&p| p != 0)?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// A DNS name (labels of letters, digits and inner hyphens) or an IPv4 address. A name whose
/// last label starts with a digit must be a plain dotted IPv4 address: browsers would read
/// `1.2.3` or `0x7f.1` as other addresses, and send another `Host`.
fn valid_host_name(host: &str) -> bool {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    let numeric_end = host
        .rsplit('.')
        .next()
        .is_some_and(|last| last.starts_with(|c: char| c.is_ascii_digit()));
    (1..=253).contains(&host.len()) && host.split('.').all(label_ok) && !numeric_end
}

/// The key of an attachment's file (nginx serves only keys of this shape and
/// [`thumbnail_key`]'s): never the user's file name, so no path tricks and no collisions.
pub fn file_key(id: uuid::Uuid) -> String {
    format!("o/{}", id.as_hyphenated())
}

/// The key of an image attachment's thumbnail (a JPEG, made by `chat-media`).
pub fn thumbnail_key(id: uuid::Uuid) -> String {
    format!("t/{}.jpg", id.as_hyphenated())
}

/// The type thumbnails are stored and served as.
pub const THUMBNAIL_TYPE: &str = "image/jpeg";

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
    /// Presigns for `objects.public_base`, or for a request's origin (overridden per request).
    signer: Client,
    bucket: String,
    /// The origins URLs may name (`objects.public_origins`); empty: any.
    public_origins: Vec<Origin>,
}

impl Objects {
    /// Clients for `cfg`; reads the keys (inline or from their files). No network yet.
    pub fn new(cfg: &ObjectsConfig) -> Result<Objects, ObjectsError> {
        check_origin("objects.endpoint", &cfg.endpoint)?;
        check_origin("objects.public_base", &cfg.public_base)?;
        let public_origins = cfg
            .public_origin_list()
            .iter()
            .map(|o| {
                Origin::parse(o).ok_or_else(|| {
                    ObjectsError::Config(format!(
                        "objects.public_origins: {o:?} is not an origin like \
                         https://chat.example.com (scheme, host and port only)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
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
            public_origins,
        })
    }

    /// The origin to sign for instead of `objects.public_base`: the client's, if it has one
    /// and `objects.public_origins` allows it.
    fn endpoint_for<'a>(&self, origin: Option<&'a Origin>) -> Option<&'a Origin> {
        origin.filter(|o| self.public_origins.is_empty() || self.public_origins.contains(o))
    }

    /// The per-request configuration that points the signer at `origin` (path-style, like the
    /// signer itself), if any.
    fn override_for(&self, origin: Option<&Origin>) -> Option<aws_sdk_s3::config::Builder> {
        self.endpoint_for(origin).map(|o| {
            aws_sdk_s3::config::Builder::default()
                .endpoint_url(o.as_str())
                .force_path_style(true)
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

    /// A URL to upload `key` with, for `objects.public_base`: see [`Self::presign_put_for`].
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires: Duration,
    ) -> Result<Presigned, ObjectsError> {
        self.presign_put_for(None, key, content_type, content_length, expires)
            .await
    }

    /// A URL to upload `key` with, through `origin` (the client's; `objects.public_base` when
    /// `None` or not allowed): the store refuses (403) any other length or type than these,
    /// any use after `expires`, and any use through another origin.
    pub async fn presign_put_for(
        &self,
        origin: Option<&Origin>,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires: Duration,
    ) -> Result<Presigned, ObjectsError> {
        let length = i64::try_from(content_length)
            .map_err(|_| ObjectsError::Config("content length out of range".into()))?;
        let mut op = self
            .signer
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(length)
            .customize();
        if let Some(conf) = self.override_for(origin) {
            op = op.config_override(conf);
        }
        let req = op
            .presigned(presigning(expires)?)
            .await
            .map_err(|e| store_error("presign put", e))?;
        Ok(presigned(&req))
    }

    /// A URL to download `key` with until `expires`, for `objects.public_base`.
    pub async fn presign_get(
        &self,
        key: &str,
        expires: Duration,
    ) -> Result<Presigned, ObjectsError> {
        self.presign_get_for(None, key, expires).await
    }

    /// A URL to download `key` with until `expires`, through `origin` (as for
    /// [`Self::presign_put_for`]).
    pub async fn presign_get_for(
        &self,
        origin: Option<&Origin>,
        key: &str,
        expires: Duration,
    ) -> Result<Presigned, ObjectsError> {
        let mut op = self
            .signer
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .customize();
        if let Some(conf) = self.override_for(origin) {
            op = op.config_override(conf);
        }
        let req = op
            .presigned(presigning(expires)?)
            .await
            .map_err(|e| store_error("presign get", e))?;
        Ok(presigned(&req))
    }

    /// A download URL for `objects.public_base`: see [`Self::presign_download_for`].
    pub async fn presign_download(
        &self,
        key: &str,
        expires: Duration,
        content_type: &str,
        disposition: &str,
    ) -> Result<Presigned, ObjectsError> {
        self.presign_download_for(None, key, expires, content_type, disposition)
            .await
    }

    /// A download URL for `key` until `expires`, through `origin` (as for
    /// [`Self::presign_put_for`]), whose answer carries these `Content-Type` and
    /// `Content-Disposition` (S3's `response-content-type` / `response-content-disposition`,
    /// covered by the signature): the type stored is what browsers get, and a file is shown
    /// inline or saved under its name as the API decides.
    pub async fn presign_download_for(
        &self,
        origin: Option<&Origin>,
        key: &str,
        expires: Duration,
        content_type: &str,
        disposition: &str,
    ) -> Result<Presigned, ObjectsError> {
        let mut op = self
            .signer
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(content_type)
            .response_content_disposition(disposition)
            .customize();
        if let Some(conf) = self.override_for(origin) {
            op = op.config_override(conf);
        }
        let req = op
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

    /// Store `bytes` under `key` with `content_type` (our own objects: thumbnails). Replaces an
    /// object of that key, so writing the same one again after a crash is harmless.
    pub async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), ObjectsError> {
        self.store
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(bytes.into())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("put object", e))
    }

    /// Whether the bucket answers (readiness checks).
    pub async fn ping(&self) -> Result<(), ObjectsError> {
        self.store
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("head bucket", e))
    }

    /// Delete `keys` (at most 1,000: one DeleteObjects request); missing ones are not an error.
    /// Fails if the store could not delete one of them.
    pub async fn delete_many(&self, keys: &[String]) -> Result<(), ObjectsError> {
        if keys.is_empty() {
            return Ok(());
        }
        let built = |e: aws_sdk_s3::error::BuildError| ObjectsError::Store {
            op: "delete objects",
            message: e.to_string(),
        };
        let objects = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build().map_err(built))
            .collect::<Result<Vec<_>, _>>()?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(built)?;
        let out = self
            .store
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| store_error("delete objects", e))?;
        match out.errors().first() {
            None => Ok(()),
            Some(e) => Err(ObjectsError::Store {
                op: "delete objects",
                message: format!(
                    "{} of {} not deleted, e.g. {:?}: {:?} {:?}",
                    out.errors().len(),
                    keys.len(),
                    e.key(),
                    e.code(),
                    e.message()
                ),
            }),
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

    fn origin(s: &str) -> Origin {
        Origin::parse(s).unwrap_or_else(|| panic!("{s}"))
    }

    #[test]
    fn a_host_header_makes_an_origin_only_when_well_formed() {
        for (scheme, host, want) in [
            ("http", "localhost:8080", "http://localhost:8080"),
            ("http", "LocalHost:8080", "http://localhost:8080"),
            ("HTTPS", "Chat.Example.com", "https://chat.example.com"),
            ("http", "127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http", "192.168.1.20:9090", "http://192.168.1.20:9090"),
            ("http", "[::1]:8080", "http://[::1]:8080"),
            ("https", "[2001:DB8::1]", "https://[2001:db8::1]"),
            (
                "http",
                "[::ffff:192.0.2.1]:8080",
                "http://[::ffff:192.0.2.1]:8080",
            ),
            (
                "http",
                "xn--bcher-kva.example:8080",
                "http://xn--bcher-kva.example:8080",
            ),
            ("http", "chat-1.example.com", "http://chat-1.example.com"),
            // The scheme's default port is what browsers leave out of `Host`.
            ("http", "localhost:80", "http://localhost"),
            ("https", "chat.example.com:443", "https://chat.example.com"),
            (
                "http",
                "chat.example.com:443",
                "http://chat.example.com:443",
            ),
            ("http", "localhost:08080", "http://localhost:8080"),
        ] {
            assert_eq!(
                Origin::from_host(scheme, host).map(|o| o.to_string()),
                Some(want.to_owned()),
                "{scheme} {host}"
            );
        }
        for host in [
            "",
            " ",
            "localhost:",
            "localhost:0",
            "localhost:65536",
            "localhost:123456",
            "localhost:80a",
            "localhost:+80",
            "localhost: 80",
            "user@localhost",
            "user:pass@localhost:8080",
            "localhost/evil",
            "localhost:8080/chat-attachments",
            "localhost?x=1",
            "localhost#x",
            "local host",
            " localhost",
            "localhost\t",
            "a:b:c",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[::1]:8080:1",
            "[fe80::1%25eth0]:8080",
            "[127.0.0.1]",
            "[]",
            "1.2.3",
            "0x7f.0.0.1",
            "127.1",
            "256.1.1.1",
            "example.123",
            "-chat.example.com",
            "chat-.example.com",
            "chat..example.com",
            "chat.example.com.",
            ".example.com",
            "chat_1.example.com",
            "bücher.example",
            "%6cocalhost",
        ] {
            assert_eq!(Origin::from_host("http", host), None, "{host:?}");
        }
        assert_eq!(
            Origin::from_host("http", &format!("{}.com", "a".repeat(64))),
            None
        );
        assert_eq!(
            Origin::from_host("http", &["abcdefghi"; 26].join(".")),
            None,
            "longer than 253"
        );
        for scheme in ["ftp", "", "http:", "ws"] {
            assert_eq!(Origin::from_host(scheme, "localhost"), None, "{scheme}");
        }
        assert_eq!(
            origin("https://chat.example.com/").as_str(),
            "https://chat.example.com"
        );
        assert_eq!(origin("http://[::1]:8080").as_str(), "http://[::1]:8080");
        for bad in [
            "chat.example.com",
            "https://chat.example.com/app",
            "https://chat.example.com//",
            "https://u@chat.example.com",
            "https//chat.example.com",
        ] {
            assert_eq!(Origin::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn urls_name_the_origin_asked_for() {
        let objects = Objects::new(&config()).unwrap();
        let ttl = Duration::from_secs(60);
        let local = origin("http://localhost:8080");
        let put = objects
            .presign_put_for(Some(&local), "o/abc", "image/png", 5, ttl)
            .await
            .unwrap();
        assert!(
            put.url
                .starts_with("http://localhost:8080/chat-attachments/o/abc?"),
            "{}",
            put.url
        );
        // The rest of the signer's settings stand: keys, region, no checksum, bound headers.
        assert!(
            put.url.contains("X-Amz-Credential=chat-test-access%2F"),
            "{}",
            put.url
        );
        assert!(
            put.url.contains("%2Fus-east-1%2Fs3%2Faws4_request"),
            "{}",
            put.url
        );
        assert!(
            put.url
                .contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost"),
            "{}",
            put.url
        );
        assert!(!put.url.contains("x-amz-checksum"), "{}", put.url);
        assert_eq!(put.headers.len(), 2, "{:?}", put.headers);

        for other in [
            "https://chat.example.com",
            "http://192.168.1.20:9090",
            "http://[::1]:8080",
        ] {
            let o = origin(other);
            let get = objects
                .presign_get_for(Some(&o), "o/abc", ttl)
                .await
                .unwrap();
            assert!(
                get.url
                    .starts_with(&format!("{other}/chat-attachments/o/abc?")),
                "{other}: {}",
                get.url
            );
            let download = objects
                .presign_download_for(Some(&o), "o/abc", ttl, "image/png", "inline")
                .await
                .unwrap();
            assert!(
                download
                    .url
                    .starts_with(&format!("{other}/chat-attachments/o/abc?")),
                "{other}: {}",
                download.url
            );
        }

        // No origin: `objects.public_base`; and the signature differs with the host.
        let base = objects
            .presign_put_for(None, "o/abc", "image/png", 5, ttl)
            .await
            .unwrap();
        assert!(
            base.url
                .starts_with("http://127.0.0.1:8080/chat-attachments/o/abc?"),
            "{}",
            base.url
        );
        let signature = |url: &str| {
            url.split('&')
                .find_map(|p| p.strip_prefix("X-Amz-Signature="))
                .unwrap()
                .to_owned()
        };
        assert_ne!(signature(&base.url), signature(&put.url));
        // The signer itself was not changed by the overrides.
        let again = objects.presign_get("o/abc", ttl).await.unwrap();
        assert!(
            again
                .url
                .starts_with("http://127.0.0.1:8080/chat-attachments/o/abc?"),
            "{}",
            again.url
        );
    }

    #[tokio::test]
    async fn public_origins_limit_the_origins_urls_name() {
        let mut cfg = config();
        cfg.public_origins = "https://chat.example.com, http://LOCALHOST:8080/".into();
        let objects = Objects::new(&cfg).unwrap();
        let ttl = Duration::from_secs(60);
        for (asked, named) in [
            ("https://chat.example.com", "https://chat.example.com"),
            ("http://localhost:8080", "http://localhost:8080"),
            ("http://chat.example.com", "http://127.0.0.1:8080"),
            ("http://localhost:9090", "http://127.0.0.1:8080"),
            ("http://evil.example", "http://127.0.0.1:8080"),
        ] {
            let o = origin(asked);
            let put = objects
                .presign_put_for(Some(&o), "o/abc", "text/plain", 1, ttl)
                .await
                .unwrap();
            assert!(
                put.url
                    .starts_with(&format!("{named}/chat-attachments/o/abc?")),
                "{asked}: {}",
                put.url
            );
        }

        cfg.public_origins = "https://chat.example.com,https://chat.example.com/app".into();
        let e = Objects::new(&cfg).unwrap_err().to_string();
        assert!(e.contains("objects.public_origins"), "{e}");
        assert!(e.contains("/app"), "{e}");
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
