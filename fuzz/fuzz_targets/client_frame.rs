//! Client WebSocket frames: any text a client sends parses into a `ClientFrame` or is refused,
//! never a panic, and what the gateway checks of a `send` (its `client_msg_id` and body) holds
//! for any parsed frame. A parsed frame written back parses to itself.
#![no_main]
use chat_types::limits;
use chat_types::ws::ClientFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(frame) = serde_json::from_str::<ClientFrame>(text) else {
        return;
    };
    if let ClientFrame::Send {
        client_msg_id,
        body,
        ..
    } = &frame
    {
        let _ = limits::valid_client_msg_id(client_msg_id);
        let _ = limits::valid_body(body);
    }
    let again = serde_json::to_string(&frame).expect("a parsed frame serialises");
    let back: ClientFrame = serde_json::from_str(&again).expect("a written frame parses");
    assert_eq!(back, frame);
});
