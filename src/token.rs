//! `getAuthTokenByRoomCode`: `POST <endpoint>/v2/token {code, user_id?}` -> `{token}`.
//!
//! Uses the global `fetch` and chains its promises with one-shot closures handed to the
//! JS garbage collector (`Closure::once_into_js`: reclaimed when collected, no leak).
//! gloo-net's `Request` (~6 KB gzip with the `http` crate) and the Rust-future executor
//! behind `future_to_promise` (~2 KB gzip) did not fit the 40 KB budget.

use crate::error::{codes, SdkError};
use crate::js::to_js_error;
use crate::wire::{token_answer, token_request};
use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// A promise, with the two-argument `then` typed plainly.
    type Thenable;
    #[wasm_bindgen(method, js_name = then)]
    fn then2(this: &Thenable, on_ok: &JsValue, on_err: &JsValue) -> Thenable;
    /// The `Response` of `fetch`.
    type FetchResponse;
    #[wasm_bindgen(js_name = fetch)]
    fn fetch_with_init(url: &str, init: &Object) -> Thenable;
    #[wasm_bindgen(method, getter)]
    fn status(this: &FetchResponse) -> u16;
    #[wasm_bindgen(method)]
    fn text(this: &FetchResponse) -> Thenable;
}

fn unreachable() -> JsValue {
    to_js_error(&SdkError::new(codes::FAILED_TO_CONNECT, "could not reach the token endpoint"))
}

/// A rejection handler that turns any network failure into 1000 FailedToConnect.
fn fail() -> JsValue {
    Closure::once_into_js(|_cause: JsValue| -> Result<JsValue, JsValue> { Err(unreachable()) })
}

/// The token, or the error the endpoint answered with.
fn settle(status: u16, text: &str) -> Result<String, SdkError> {
    let answer = token_answer(text);
    match answer.token {
        Some(token) if (200..300).contains(&status) => Ok(token),
        _ => {
            let code = answer.code.unwrap_or(if status >= 400 { i32::from(status) } else { codes::JSON_PARSING_FAILED });
            let message = answer.message.unwrap_or_else(|| String::from("the token endpoint refused the room code"));
            Err(SdkError::new(code, message))
        }
    }
}

/// Exchanges a room code for an auth token at the HTTP base URL `base`: a promise of
/// the token string, rejected with an `HmsError`.
pub(crate) fn token_by_room_code(base: &str, code: &str, user_id: Option<&str>) -> Promise {
    let mut url = String::from(base);
    if !url.ends_with('/') {
        url.push('/');
    }
    url.push_str("v2/token");
    let Some(body) = token_request(code, user_id) else {
        return Promise::reject(&to_js_error(&SdkError::new(codes::VALIDATION_FAILED, "the room code could not be encoded")));
    };
    let init = Object::new();
    let headers = Object::new();
    let _ = Reflect::set(&headers, &"Content-Type".into(), &"application/json".into());
    let _ = Reflect::set(&init, &"method".into(), &"POST".into());
    let _ = Reflect::set(&init, &"headers".into(), &headers);
    let _ = Reflect::set(&init, &"body".into(), &body.into());
    let on_response = Closure::once_into_js(move |response: JsValue| -> JsValue {
        let response: FetchResponse = response.unchecked_into();
        let status = response.status();
        let on_text = Closure::once_into_js(move |text: JsValue| -> Result<JsValue, JsValue> {
            settle(status, &text.as_string().unwrap_or_default()).map(JsValue::from).map_err(|e| to_js_error(&e))
        });
        response.text().then2(&on_text, &fail()).into()
    });
    fetch_with_init(&url, &init).then2(&on_response, &fail()).unchecked_into()
}
