//! A raw `web_sys::WebSocket` that owns its event handlers: they are set in
//! [`Transport::connect`], and detached and released (with the socket closed 1000) when
//! the transport is dropped, so a dropped transport reports nothing more.

use crate::js::Callback;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// What the socket reports.
pub(crate) enum WsEvent {
    /// The socket opened.
    Open,
    /// A text frame arrived (the JS string itself: it is parsed by `JSON.parse` without
    /// a round trip through wasm memory).
    Text(JsValue),
    /// The socket closed (or failed to open) with this close code.
    Close(u16),
}

/// One WebSocket and its handlers.
pub(crate) struct Transport {
    ws: WebSocket,
    _on_open: Callback,
    _on_message: Callback,
    _on_close: Callback,
}

impl Transport {
    /// Opens `url`; every event goes to `sink`. The sink must hold only weak references
    /// to the owner of the transport, or owner and socket would keep each other alive.
    pub(crate) fn connect(url: &str, sink: Rc<dyn Fn(WsEvent)>) -> Result<Self, JsValue> {
        let ws = WebSocket::new(url)?;
        let s = sink.clone();
        let on_open = Callback::new(move |_: JsValue| s(WsEvent::Open));
        let s = sink.clone();
        let on_message = Callback::new(move |ev: JsValue| {
            // Binary frames are not part of the protocol: ignored.
            let data = ev.unchecked_into::<MessageEvent>().data();
            if data.is_string() {
                s(WsEvent::Text(data));
            }
        });
        let on_close = Callback::new(move |ev: JsValue| sink(WsEvent::Close(ev.unchecked_into::<CloseEvent>().code())));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Self { ws, _on_open: on_open, _on_message: on_message, _on_close: on_close })
    }

    /// Sends a text frame; `false` when the socket is not open.
    pub(crate) fn send(&self, text: &str) -> bool {
        self.ws.ready_state() == WebSocket::OPEN && self.ws.send_with_str(text).is_ok()
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        if self.ws.ready_state() <= WebSocket::OPEN {
            let _ = self.ws.close_with_code(1000);
        }
    }
}
