//! One answer to a notification request, as scripted through the control API and as sent:
//! `200` with an empty body, or a status with `{"reason": …}` (and `"timestamp"` for `410`).

use serde::{Deserialize, Serialize};

/// `"ok"`, or `{"status": 410, "reason": "Unregistered", "timestamp_ms": 123}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Ok(OkTag),
    Error(ErrorAnswer),
}

/// The string `"ok"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OkTag {
    #[serde(rename = "ok")]
    Ok,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    /// 400..=599.
    pub status: u16,
    /// Apple's reason code, e.g. `TooManyRequests`; not checked against Apple's list, so tests
    /// can also script reasons the client does not know.
    pub reason: String,
    /// Only for `410`: the body's `timestamp` (ms since the epoch); the answer's time if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<u64>,
}

impl Answer {
    pub const OK: Answer = Answer::Ok(OkTag::Ok);

    pub fn error(status: u16, reason: &str) -> Answer {
        Answer::Error(ErrorAnswer {
            status,
            reason: reason.to_string(),
            timestamp_ms: None,
        })
    }

    pub fn status(&self) -> u16 {
        match self {
            Answer::Ok(_) => 200,
            Answer::Error(e) => e.status,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Answer::Ok(_) => None,
            Answer::Error(e) => Some(&e.reason),
        }
    }

    /// Why a scripted answer cannot be sent, if it cannot.
    pub fn invalid(&self) -> Option<String> {
        match self {
            Answer::Ok(_) => None,
            Answer::Error(e) if !(400..=599).contains(&e.status) => Some(format!(
                "status {}: scripted errors are 400..=599 (use \"ok\" for success)",
                e.status
            )),
            Answer::Error(e) if e.reason.is_empty() || e.reason.len() > 200 => {
                Some("reason: 1 to 200 characters".into())
            }
            Answer::Error(_) => None,
        }
    }

    /// The response body: empty for success, else `{"reason": …}` plus `timestamp` for `410`.
    pub fn body(&self, now_ms: u64) -> String {
        match self {
            Answer::Ok(_) => String::new(),
            Answer::Error(e) if e.status == 410 => serde_json::json!({
                "reason": e.reason,
                "timestamp": e.timestamp_ms.unwrap_or(now_ms),
            })
            .to_string(),
            Answer::Error(e) => serde_json::json!({ "reason": e.reason }).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_and_write_as_the_control_api_documents() {
        let ok: Answer = serde_json::from_str(r#""ok""#).unwrap();
        assert_eq!(ok, Answer::OK);
        let gone: Answer =
            serde_json::from_str(r#"{"status":410,"reason":"Unregistered","timestamp_ms":123}"#)
                .unwrap();
        assert_eq!(gone.status(), 410);
        assert_eq!(
            gone.body(999),
            r#"{"reason":"Unregistered","timestamp":123}"#
        );
        assert_eq!(serde_json::to_string(&Answer::OK).unwrap(), r#""ok""#);
        assert!(serde_json::from_str::<Answer>(r#""fine""#).is_err());
        assert!(Answer::error(200, "Fine").invalid().is_some());
        assert!(Answer::error(429, "").invalid().is_some());
        assert_eq!(
            Answer::error(429, "TooManyRequests").body(1),
            r#"{"reason":"TooManyRequests"}"#
        );
        assert_eq!(
            Answer::error(410, "Unregistered").body(77),
            r#"{"reason":"Unregistered","timestamp":77}"#
        );
    }
}
