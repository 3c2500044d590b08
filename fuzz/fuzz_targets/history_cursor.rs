//! History query parameters (`before`, `after`, `limit` of `GET /channels/{id}/messages`): any
//! values are parsed into a page or refused with the contract's error codes, never a panic; a
//! parsed page respects the limits, and a cursor accepted is a message id that prints back to
//! an equivalent cursor.
#![no_main]
use chat_types::rest::HistoryQuery;
use chat_types::{error_code, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|parts: (Option<&str>, Option<&str>, Option<&str>)| {
    let (before, after, limit) = parts;
    match HistoryQuery::parse(before, after, limit) {
        Ok(q) => {
            assert!((1..=limits::HISTORY_MAX_LIMIT).contains(&q.limit));
            for (raw, parsed) in [(before, q.before), (after, q.after)] {
                assert_eq!(raw.is_some(), parsed.is_some());
                if let Some(id) = parsed {
                    let again = HistoryQuery::parse(Some(&id.to_string()), None, None).unwrap();
                    assert_eq!(again.before, Some(id));
                }
            }
        }
        Err((code, message)) => {
            assert!(code == error_code::INVALID_LIMIT || code == error_code::INVALID_CURSOR);
            assert!(!message.is_empty());
        }
    }
});
