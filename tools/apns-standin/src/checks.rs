//! The checks APNs makes on a notification request, in the stand-in's fixed order (design
//! §2, `docs/design/push-and-attachments.md`): the first that fails decides the answer. Pure:
//! no IO, no clock (the time is passed in), so every case is a unit test.

use crate::answer::Answer;
use crate::provider_token::{ProviderTokens, TokenRules};
use axum::http::{HeaderMap, Method, Version};

/// The largest payload APNs takes for a regular notification.
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// `apns-collapse-id` may have at most this many bytes.
pub const MAX_COLLAPSE_ID_BYTES: usize = 64;

/// `apns-push-type` values Apple documents.
const PUSH_TYPES: &[&str] = &[
    "alert",
    "background",
    "complication",
    "controls",
    "fileprovider",
    "liveactivity",
    "location",
    "mdm",
    "pushtotalk",
    "voip",
    "widgets",
];

/// Why a request is refused: Apple's reason codes, with their statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not Apple's: APNs never sees HTTP/1 (the listener accepts HTTP/2 only, so this shows
    /// only in unit tests or with a client that skips ALPN and the HTTP/2 preface).
    NotHttp2,
    MethodNotAllowed,
    BadPath,
    MissingDeviceToken,
    MissingProviderToken,
    InvalidProviderToken,
    ExpiredProviderToken,
    TooManyProviderTokenUpdates,
    MissingTopic,
    DeviceTokenNotForTopic,
    InvalidPushType,
    BadPriority,
    BadCollapseId,
    BadMessageId,
    BadExpirationDate,
    DuplicateHeaders,
    PayloadEmpty,
    PayloadTooLarge,
    BadDeviceToken,
}

impl Reject {
    pub fn status(self) -> u16 {
        use Reject::*;
        match self {
            NotHttp2 => 505,
            MethodNotAllowed => 405,
            BadPath => 404,
            MissingProviderToken | InvalidProviderToken | ExpiredProviderToken => 403,
            TooManyProviderTokenUpdates => 429,
            PayloadTooLarge => 413,
            MissingDeviceToken
            | MissingTopic
            | DeviceTokenNotForTopic
            | InvalidPushType
            | BadPriority
            | BadCollapseId
            | BadMessageId
            | BadExpirationDate
            | DuplicateHeaders
            | PayloadEmpty
            | BadDeviceToken => 400,
        }
    }

    pub fn reason(self) -> &'static str {
        use Reject::*;
        match self {
            NotHttp2 => "HTTP2Required",
            MethodNotAllowed => "MethodNotAllowed",
            BadPath => "BadPath",
            MissingDeviceToken => "MissingDeviceToken",
            MissingProviderToken => "MissingProviderToken",
            InvalidProviderToken => "InvalidProviderToken",
            ExpiredProviderToken => "ExpiredProviderToken",
            TooManyProviderTokenUpdates => "TooManyProviderTokenUpdates",
            MissingTopic => "MissingTopic",
            DeviceTokenNotForTopic => "DeviceTokenNotForTopic",
            InvalidPushType => "InvalidPushType",
            BadPriority => "BadPriority",
            BadCollapseId => "BadCollapseId",
            BadMessageId => "BadMessageId",
            BadExpirationDate => "BadExpirationDate",
            DuplicateHeaders => "DuplicateHeaders",
            PayloadEmpty => "PayloadEmpty",
            PayloadTooLarge => "PayloadTooLarge",
            BadDeviceToken => "BadDeviceToken",
        }
    }

    pub fn answer(self) -> Answer {
        Answer::error(self.status(), self.reason())
    }
}

/// The body as read: its bytes, or "more than [`MAX_PAYLOAD_BYTES`]" (the rest is not read).
#[derive(Clone, Debug)]
pub enum Payload {
    Read(bytes::Bytes),
    TooLarge,
}

/// What the checks look at.
pub struct Incoming<'a> {
    pub version: Version,
    pub method: &'a Method,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub payload: &'a Payload,
}

/// Settings the checks depend on.
pub struct Rules<'a> {
    pub topics: &'a [String],
    pub tokens: TokenRules,
}

/// The device token named by `path` (`/3/device/<token>`), if the path has that shape; used
/// to file the request's record even when a check refuses it.
pub fn device_token(path: &str) -> Option<&str> {
    let token = path.strip_prefix("/3/device/")?;
    (!token.is_empty() && !token.contains('/')).then_some(token)
}

/// A header's value if it is present exactly once or more (the first), as text; `Err(())` if
/// it is not text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<Result<&'a str, ()>> {
    headers.get(name).map(|v| v.to_str().map_err(|_| ()))
}

/// The `apns-id` of the answer: the request's when it is a canonical UUID, else a new one.
pub fn answer_apns_id(headers: &HeaderMap) -> String {
    match header(headers, "apns-id") {
        Some(Ok(id)) if is_canonical_uuid(id) => id.to_string(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

fn is_canonical_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

/// Run every check in order; the first failure is the answer.
pub fn check(
    req: &Incoming<'_>,
    rules: &Rules<'_>,
    tokens: &mut ProviderTokens,
    now_secs: u64,
) -> Result<(), Reject> {
    // 1. transport, method, path
    if req.version != Version::HTTP_2 {
        return Err(Reject::NotHttp2);
    }
    if req.method != Method::POST {
        return Err(Reject::MethodNotAllowed);
    }
    let device = match req.path.strip_prefix("/3/device") {
        Some("" | "/") => return Err(Reject::MissingDeviceToken),
        Some(rest) => match rest.strip_prefix('/') {
            Some(token) if !token.contains('/') => token,
            _ => return Err(Reject::BadPath),
        },
        None => return Err(Reject::BadPath),
    };

    // 2. provider token
    let authorization = match header(req.headers, "authorization") {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(())) => return Err(Reject::InvalidProviderToken),
    };
    tokens.check(authorization, now_secs, rules.tokens)?;

    // 3. headers, payload, device token
    match header(req.headers, "apns-topic") {
        None => return Err(Reject::MissingTopic),
        Some(Ok(topic)) if rules.topics.iter().any(|t| t == topic) => {}
        Some(_) => return Err(Reject::DeviceTokenNotForTopic),
    }
    if let Some(push_type) = header(req.headers, "apns-push-type")
        && !matches!(push_type, Ok(t) if PUSH_TYPES.contains(&t))
    {
        return Err(Reject::InvalidPushType);
    }
    if let Some(priority) = header(req.headers, "apns-priority")
        && !matches!(priority, Ok("1" | "5" | "10"))
    {
        return Err(Reject::BadPriority);
    }
    if let Some(collapse) = req.headers.get("apns-collapse-id")
        && collapse.len() > MAX_COLLAPSE_ID_BYTES
    {
        return Err(Reject::BadCollapseId);
    }
    if let Some(id) = header(req.headers, "apns-id")
        && !matches!(id, Ok(id) if is_canonical_uuid(id))
    {
        return Err(Reject::BadMessageId);
    }
    if let Some(expiration) = header(req.headers, "apns-expiration")
        && !matches!(expiration, Ok(e) if e.parse::<u64>().is_ok())
    {
        return Err(Reject::BadExpirationDate);
    }
    if req
        .headers
        .keys()
        .any(|name| req.headers.get_all(name).iter().nth(1).is_some())
    {
        return Err(Reject::DuplicateHeaders);
    }
    match req.payload {
        Payload::Read(body) if body.is_empty() => return Err(Reject::PayloadEmpty),
        Payload::Read(body) if body.len() > MAX_PAYLOAD_BYTES => {
            return Err(Reject::PayloadTooLarge);
        }
        Payload::TooLarge => return Err(Reject::PayloadTooLarge),
        Payload::Read(_) => {}
    }
    if !device.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Reject::BadDeviceToken);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_token::tests::token;
    use axum::http::HeaderValue;
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};

    const NOW: u64 = 1_800_000_000;
    const RULES: TokenRules = TokenRules {
        max_age_secs: 3600,
        min_refresh_secs: 0,
    };

    struct Case {
        version: Version,
        method: Method,
        path: String,
        headers: HeaderMap,
        payload: Payload,
    }

    impl Case {
        /// A request that passes every check.
        fn good(key_pem: &str) -> Case {
            let mut headers = HeaderMap::new();
            let jwt = token(key_pem, "KID", "TEAM", NOW - 10);
            for (k, v) in [
                ("authorization", format!("bearer {jwt}")),
                ("apns-topic", "com.example.chat".into()),
                ("apns-push-type", "alert".into()),
                ("apns-priority", "10".into()),
                ("apns-expiration", (NOW + 3600).to_string()),
                ("apns-collapse-id", "c".repeat(64)),
                ("apns-id", "6f1b6ad2-5a53-4bd4-9a43-5e3d8e1e0c3a".into()),
            ] {
                headers.insert(k, HeaderValue::from_str(&v).unwrap());
            }
            Case {
                version: Version::HTTP_2,
                method: Method::POST,
                path: "/3/device/a1b2c3".into(),
                headers,
                payload: Payload::Read(r#"{"aps":{"alert":"hi"}}"#.into()),
            }
        }

        fn set(mut self, name: &'static str, value: &str) -> Case {
            self.headers
                .insert(name, HeaderValue::from_str(value).unwrap());
            self
        }

        fn without(mut self, name: &str) -> Case {
            self.headers.remove(name);
            self
        }

        fn run(&self, tokens: &mut ProviderTokens) -> Result<(), Reject> {
            let topics = vec!["com.example.chat".to_string()];
            let rules = Rules {
                topics: &topics,
                tokens: RULES,
            };
            let incoming = Incoming {
                version: self.version,
                method: &self.method,
                path: &self.path,
                headers: &self.headers,
                payload: &self.payload,
            };
            check(&incoming, &rules, tokens, NOW)
        }
    }

    fn setup() -> (ProviderTokens, String) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let tokens = ProviderTokens::new(&key.public_key_pem(), "KID", "TEAM").unwrap();
        (tokens, key.serialize_pem())
    }

    #[test]
    fn a_well_formed_request_passes_and_optional_headers_may_be_absent() {
        let (mut t, key) = setup();
        assert_eq!(Case::good(&key).run(&mut t), Ok(()));
        let bare = [
            "apns-push-type",
            "apns-priority",
            "apns-expiration",
            "apns-collapse-id",
            "apns-id",
        ]
        .into_iter()
        .fold(Case::good(&key), Case::without);
        assert_eq!(bare.run(&mut t), Ok(()));
        let upper = Case {
            path: "/3/device/A1B2C3".into(),
            ..Case::good(&key)
        };
        assert_eq!(upper.run(&mut t), Ok(()));
    }

    #[test]
    fn each_check_gives_apples_reason() {
        let (mut t, key) = setup();
        let good = || Case::good(&key);
        let old = token(&key, "KID", "TEAM", NOW - 3601);
        let cases: Vec<(Case, Reject)> = vec![
            (
                Case {
                    version: Version::HTTP_11,
                    ..good()
                },
                Reject::NotHttp2,
            ),
            (
                Case {
                    method: Method::GET,
                    ..good()
                },
                Reject::MethodNotAllowed,
            ),
            (
                Case {
                    path: "/3/devices/a1".into(),
                    ..good()
                },
                Reject::BadPath,
            ),
            (
                Case {
                    path: "/3/device/a1/x".into(),
                    ..good()
                },
                Reject::BadPath,
            ),
            (
                Case {
                    path: "/".into(),
                    ..good()
                },
                Reject::BadPath,
            ),
            (
                Case {
                    path: "/3/device/".into(),
                    ..good()
                },
                Reject::MissingDeviceToken,
            ),
            (
                Case {
                    path: "/3/device".into(),
                    ..good()
                },
                Reject::MissingDeviceToken,
            ),
            (
                good().without("authorization"),
                Reject::MissingProviderToken,
            ),
            (
                good().set("authorization", "bearer a.b.c"),
                Reject::InvalidProviderToken,
            ),
            (
                good().set("authorization", &format!("bearer {old}")),
                Reject::ExpiredProviderToken,
            ),
            (good().without("apns-topic"), Reject::MissingTopic),
            (
                good().set("apns-topic", "com.example.other"),
                Reject::DeviceTokenNotForTopic,
            ),
            (
                good().set("apns-push-type", "shout"),
                Reject::InvalidPushType,
            ),
            (good().set("apns-priority", "7"), Reject::BadPriority),
            (
                good().set("apns-collapse-id", &"c".repeat(65)),
                Reject::BadCollapseId,
            ),
            (good().set("apns-id", "not-a-uuid"), Reject::BadMessageId),
            (
                good().set("apns-id", "6f1b6ad25a534bd49a435e3d8e1e0c3a"),
                Reject::BadMessageId,
            ),
            (
                good().set("apns-expiration", "tomorrow"),
                Reject::BadExpirationDate,
            ),
            (
                Case {
                    payload: Payload::Read("".into()),
                    ..good()
                },
                Reject::PayloadEmpty,
            ),
            (
                Case {
                    payload: Payload::Read(vec![b' '; 4097].into()),
                    ..good()
                },
                Reject::PayloadTooLarge,
            ),
            (
                Case {
                    payload: Payload::TooLarge,
                    ..good()
                },
                Reject::PayloadTooLarge,
            ),
            (
                Case {
                    path: "/3/device/xyz".into(),
                    ..good()
                },
                Reject::BadDeviceToken,
            ),
        ];
        for (case, want) in cases {
            assert_eq!(
                case.run(&mut t),
                Err(want),
                "{} {:?}",
                case.path,
                case.headers
            );
        }
        let mut dup = good();
        dup.headers
            .append("apns-topic", HeaderValue::from_static("com.example.chat"));
        assert_eq!(dup.run(&mut t), Err(Reject::DuplicateHeaders));
        let exactly = Case {
            payload: Payload::Read(vec![b' '; 4096].into()),
            ..good()
        };
        assert_eq!(
            exactly.run(&mut t),
            Ok(()),
            "4096 bytes is the limit, not over it"
        );
    }

    #[test]
    fn checks_run_in_the_documented_order() {
        let (mut t, key) = setup();
        // Everything wrong at once: each fix reveals the next check in line.
        let mut case = Case {
            version: Version::HTTP_11,
            method: Method::PUT,
            path: "/3/device/".into(),
            headers: HeaderMap::new(),
            payload: Payload::Read("".into()),
        };
        for (k, v) in [
            ("apns-push-type", "shout"),
            ("apns-priority", "7"),
            ("apns-id", "nope"),
            ("apns-expiration", "soon"),
        ] {
            case.headers.insert(k, HeaderValue::from_static(v));
        }
        case.headers.insert(
            "apns-collapse-id",
            HeaderValue::from_str(&"c".repeat(65)).unwrap(),
        );
        case.headers
            .append("x-extra", HeaderValue::from_static("1"));
        case.headers
            .append("x-extra", HeaderValue::from_static("2"));
        let jwt = format!("bearer {}", token(&key, "KID", "TEAM", NOW));
        let mut seen = vec![];
        loop {
            let got = case.run(&mut t);
            let Err(reject) = got else { break };
            seen.push(reject);
            match reject {
                Reject::NotHttp2 => case.version = Version::HTTP_2,
                Reject::MethodNotAllowed => case.method = Method::POST,
                Reject::MissingDeviceToken => case.path = "/3/device/zz".into(),
                Reject::MissingProviderToken => case = case.set("authorization", "bearer x"),
                Reject::InvalidProviderToken => case = case.set("authorization", &jwt),
                Reject::MissingTopic => case = case.set("apns-topic", "com.other"),
                Reject::DeviceTokenNotForTopic => case = case.set("apns-topic", "com.example.chat"),
                Reject::InvalidPushType => case = case.without("apns-push-type"),
                Reject::BadPriority => case = case.without("apns-priority"),
                Reject::BadCollapseId => case = case.without("apns-collapse-id"),
                Reject::BadMessageId => case = case.without("apns-id"),
                Reject::BadExpirationDate => case = case.without("apns-expiration"),
                Reject::DuplicateHeaders => case = case.without("x-extra"),
                Reject::PayloadEmpty => case.payload = Payload::TooLarge,
                Reject::PayloadTooLarge => case.payload = Payload::Read("{}".into()),
                Reject::BadDeviceToken => case.path = "/3/device/ab".into(),
                other => panic!("unexpected {other:?}"),
            }
        }
        use Reject::*;
        assert_eq!(
            seen,
            vec![
                NotHttp2,
                MethodNotAllowed,
                MissingDeviceToken,
                MissingProviderToken,
                InvalidProviderToken,
                MissingTopic,
                DeviceTokenNotForTopic,
                InvalidPushType,
                BadPriority,
                BadCollapseId,
                BadMessageId,
                BadExpirationDate,
                DuplicateHeaders,
                PayloadEmpty,
                PayloadTooLarge,
                BadDeviceToken,
            ]
        );
    }

    #[test]
    fn the_answer_echoes_a_valid_apns_id_or_makes_one() {
        let mut h = HeaderMap::new();
        let id = "6F1B6AD2-5A53-4BD4-9A43-5E3D8E1E0C3A";
        h.insert("apns-id", HeaderValue::from_static(id));
        assert_eq!(answer_apns_id(&h), id);
        h.insert("apns-id", HeaderValue::from_static("nope"));
        assert!(is_canonical_uuid(&answer_apns_id(&h)));
        assert!(is_canonical_uuid(&answer_apns_id(&HeaderMap::new())));
        assert_eq!(device_token("/3/device/ab"), Some("ab"));
        assert_eq!(device_token("/3/device/"), None);
        assert_eq!(device_token("/x"), None);
    }
}
