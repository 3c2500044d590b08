//! Scripted answers: per device token (a list of next answers, an added delay, what comes
//! after the list) and for every token (the next *n* requests). Pure state; the handler asks
//! [`Behaviours::next`] once per request that passed every check.
//!
//! Precedence: while a global window lasts, its `respond` (if given) answers and the token's
//! list is not consumed; its `delay_ms` adds to the token's. Requests refused by a check
//! neither consume a script nor wait.

use crate::answer::Answer;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Scripted tokens at most (the control API refuses more).
pub const MAX_SCRIPTED_TOKENS: usize = 100_000;
/// Answers in one `respond` list at most.
pub const MAX_RESPOND_LIST: usize = 10_000;
/// The longest delay a script may add (a slow device, not a hung one).
pub const MAX_DELAY_MS: u64 = 600_000;

/// `PUT /tokens/{token}/behaviour`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBehaviour {
    /// The next answers, in order.
    #[serde(default)]
    pub respond: Vec<Answer>,
    /// Added before answering each request for this token.
    #[serde(default)]
    pub delay_ms: u64,
    /// What every request gets once `respond` is used up (default `"ok"`).
    #[serde(default = "ok")]
    pub then: Answer,
}

/// `PUT /behaviour`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalBehaviour {
    /// How many requests (that pass the checks) the window covers; 0 ends a window.
    pub next_requests: u64,
    /// The answer for those requests; absent: each token's own script (or ok).
    #[serde(default)]
    pub respond: Option<Answer>,
    /// Added before answering each of those requests.
    #[serde(default)]
    pub delay_ms: u64,
}

fn ok() -> Answer {
    Answer::OK
}

impl TokenBehaviour {
    pub fn invalid(&self) -> Option<String> {
        if self.respond.len() > MAX_RESPOND_LIST {
            return Some(format!("respond: at most {MAX_RESPOND_LIST} answers"));
        }
        if self.delay_ms > MAX_DELAY_MS {
            return Some(format!("delay_ms: at most {MAX_DELAY_MS}"));
        }
        self.respond
            .iter()
            .chain([&self.then])
            .find_map(Answer::invalid)
    }
}

impl GlobalBehaviour {
    pub fn invalid(&self) -> Option<String> {
        if self.delay_ms > MAX_DELAY_MS {
            return Some(format!("delay_ms: at most {MAX_DELAY_MS}"));
        }
        self.respond.as_ref().and_then(Answer::invalid)
    }
}

/// The scripted part of one request's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub answer: Answer,
    pub delay: Duration,
}

struct Script {
    respond: VecDeque<Answer>,
    delay_ms: u64,
    then: Answer,
}

#[derive(Default)]
pub struct Behaviours {
    tokens: HashMap<String, Script>,
    global: Option<GlobalBehaviour>,
}

impl Behaviours {
    /// Replace `token`'s script. Fails only when too many tokens are scripted.
    pub fn set_token(&mut self, token: &str, b: TokenBehaviour) -> Result<(), String> {
        if self.tokens.len() >= MAX_SCRIPTED_TOKENS && !self.tokens.contains_key(token) {
            return Err(format!(
                "{MAX_SCRIPTED_TOKENS} tokens are scripted already: DELETE some"
            ));
        }
        self.tokens.insert(
            token.to_string(),
            Script {
                respond: b.respond.into(),
                delay_ms: b.delay_ms,
                then: b.then,
            },
        );
        Ok(())
    }

    pub fn forget_token(&mut self, token: &str) {
        self.tokens.remove(token);
    }

    /// Start a global window (`next_requests` 0: end the current one).
    pub fn set_global(&mut self, b: GlobalBehaviour) {
        self.global = (b.next_requests > 0).then_some(b);
    }

    /// The global window now: what is left of it.
    pub fn global(&self) -> Option<&GlobalBehaviour> {
        self.global.as_ref()
    }

    /// The answer and delay for the next request to `token` (consumes scripts).
    pub fn next(&mut self, token: &str) -> Decision {
        let mut delay_ms = 0;
        let mut answer = None;
        if let Some(g) = &mut self.global {
            delay_ms += g.delay_ms;
            answer = g.respond.clone();
            g.next_requests -= 1;
            if g.next_requests == 0 {
                self.global = None;
            }
        }
        if let Some(script) = self.tokens.get_mut(token) {
            delay_ms += script.delay_ms;
            if answer.is_none() {
                answer = Some(
                    script
                        .respond
                        .pop_front()
                        .unwrap_or_else(|| script.then.clone()),
                );
            }
        }
        Decision {
            answer: answer.unwrap_or(Answer::OK),
            delay: Duration::from_millis(delay_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_token_gets_its_list_in_order_then_the_then_answer_for_ever() {
        let mut b = Behaviours::default();
        let script: TokenBehaviour = parse(
            r#"{"respond":[{"status":429,"reason":"TooManyRequests"},
                           {"status":410,"reason":"Unregistered","timestamp_ms":123}],
                "delay_ms":30,
                "then":{"status":400,"reason":"BadDeviceToken"}}"#,
        );
        assert_eq!(script.invalid(), None);
        b.set_token("aa", script).unwrap();
        let answers: Vec<_> = (0..4).map(|_| b.next("aa")).collect();
        assert_eq!(answers[0].answer, Answer::error(429, "TooManyRequests"));
        assert_eq!(answers[1].answer.status(), 410);
        assert_eq!(answers[2].answer, Answer::error(400, "BadDeviceToken"));
        assert_eq!(answers[3].answer, Answer::error(400, "BadDeviceToken"));
        assert!(answers.iter().all(|d| d.delay == Duration::from_millis(30)));
        assert_eq!(
            b.next("bb").answer,
            Answer::OK,
            "other tokens are untouched"
        );
        b.forget_token("aa");
        assert_eq!(b.next("aa").answer, Answer::OK);
    }

    #[test]
    fn then_defaults_to_ok() {
        let mut b = Behaviours::default();
        b.set_token(
            "aa",
            parse(r#"{"respond":[{"status":500,"reason":"InternalServerError"}]}"#),
        )
        .unwrap();
        assert_eq!(b.next("aa").answer.status(), 500);
        assert_eq!(
            b.next("aa"),
            Decision {
                answer: Answer::OK,
                delay: Duration::ZERO
            }
        );
    }

    #[test]
    fn a_global_window_answers_the_next_n_requests_and_adds_its_delay() {
        let mut b = Behaviours::default();
        b.set_token(
            "aa",
            parse(r#"{"respond":[{"status":429,"reason":"TooManyRequests"}],"delay_ms":5}"#),
        )
        .unwrap();
        b.set_global(parse(
            r#"{"next_requests":2,"respond":{"status":503,"reason":"ServiceUnavailable"},"delay_ms":10}"#,
        ));
        let first = b.next("aa");
        assert_eq!(first.answer.status(), 503);
        assert_eq!(first.delay, Duration::from_millis(15));
        assert_eq!(b.next("bb").answer.status(), 503);
        assert!(b.global().is_none(), "the window is used up");
        assert_eq!(
            b.next("aa").answer.status(),
            429,
            "the token's list was not consumed"
        );

        // A slowdown only: each token's own answer, later.
        b.set_global(parse(r#"{"next_requests":1,"delay_ms":50}"#));
        assert_eq!(
            b.next("cc"),
            Decision {
                answer: Answer::OK,
                delay: Duration::from_millis(50)
            }
        );
        assert_eq!(b.next("cc").delay, Duration::ZERO);
    }

    #[test]
    fn invalid_scripts_are_named() {
        let bad: TokenBehaviour = parse(r#"{"respond":[{"status":200,"reason":"x"}]}"#);
        assert!(bad.invalid().unwrap().contains("status 200"));
        let slow: TokenBehaviour = parse(r#"{"delay_ms":600001}"#);
        assert!(slow.invalid().is_some());
        assert!(serde_json::from_str::<TokenBehaviour>(r#"{"repsond":[]}"#).is_err());
    }
}
