//! `getAuthTokenByRoomCode`: `POST <endpoint>/v2/token {code, user_id?}` -> `{token}`.
//!
//! By default the global `fetch`, its promises chained with one-shot closures handed to
//! the JS garbage collector (`Closure::once_into_js`: reclaimed when collected, no leak).
//! With the `token-gloo-net` feature, gloo-net's `Request` and a Rust future instead:
//! the product's specified package, which costs 6.5 KB gzip here (scripts/size-levers.sh,
//! docs/SDK.md "Size") and takes the package over its 44 KB budget.

use crate::error::{ErrorAction, ErrorName, SdkError};
use crate::js::{json_parse, json_stringify, to_js, to_js_error};
use crate::model::{TokenAnswer, TokenRequest};
use js_sys::Promise;
use wasm_bindgen::prelude::*;

fn unreachable() -> SdkError {
    SdkError::new(ErrorName::EndpointUnreachable, ErrorAction::GetToken, "could not reach the token endpoint")
}

/// The token, or the error the endpoint answered with.
fn settle(status: u16, text: &str) -> Result<String, SdkError> {
    let answer = json_parse(text).map(|v| TokenAnswer::read(&v)).unwrap_or_default();
    match answer.token {
        Some(token) if (200..300).contains(&status) => Ok(token),
        _ => {
            let code = answer.code.unwrap_or(if status >= 400 { i32::from(status) } else { ErrorName::JsonParsingFailed.code() });
            let message = answer.message.unwrap_or_else(|| String::from("the token endpoint refused the room code"));
            Err(SdkError::with_code(code, ErrorAction::GetToken, message))
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
    let Some(body) = json_stringify(&to_js(&TokenRequest { code, user_id })).ok().map(String::from) else {
        return Promise::reject(&to_js_error(&SdkError::new(ErrorName::ValidationFailed, ErrorAction::GetToken, "the room code could not be encoded")));
    };
    send(url, body)
}

#[cfg(feature = "token-gloo-net")]
fn send(url: String, body: String) -> Promise {
    async fn exchange(url: String, body: String) -> Result<String, SdkError> {
        let request = gloo_net::http::Request::post(&url).header("Content-Type", "application/json").body(body).map_err(|_| unreachable())?;
        let response = request.send().await.map_err(|_| unreachable())?;
        let status = response.status();
        let text = response.text().await.map_err(|_| unreachable())?;
        settle(status, &text)
    }
    wasm_bindgen_futures::future_to_promise(async move { exchange(url, body).await.map(JsValue::from).map_err(|e| to_js_error(&e)) })
}

#[cfg(not(feature = "token-gloo-net"))]
#[wasm_bindgen]
extern "C" {
    /// A promise, with the two-argument `then` typed plainly.
    type Thenable;
    #[wasm_bindgen(method, js_name = then)]
    fn then2(this: &Thenable, on_ok: &JsValue, on_err: &JsValue) -> Thenable;
    /// The `Response` of `fetch`.
    type FetchResponse;
    #[wasm_bindgen(js_name = fetch)]
    fn fetch_with_init(url: &str, init: &JsValue) -> Thenable;
    #[wasm_bindgen(method, getter)]
    fn status(this: &FetchResponse) -> u16;
    #[wasm_bindgen(method)]
    fn text(this: &FetchResponse) -> Thenable;
}

/// `fetch`'s init: POST, JSON, the body.
#[cfg(not(feature = "token-gloo-net"))]
#[derive(serde::Serialize)]
struct FetchInit {
    method: &'static str,
    headers: FetchHeaders,
    body: String,
}

#[cfg(not(feature = "token-gloo-net"))]
#[derive(serde::Serialize)]
struct FetchHeaders {
    #[serde(rename = "Content-Type")]
    content_type: &'static str,
}

#[cfg(not(feature = "token-gloo-net"))]
fn send(url: String, body: String) -> Promise {
    // Any network failure is 2003 EndpointUnreachable.
    let fail = || Closure::once_into_js(|_cause: JsValue| -> Result<JsValue, JsValue> { Err(to_js_error(&unreachable())) });
    let init = to_js(&FetchInit { method: "POST", headers: FetchHeaders { content_type: "application/json" }, body });
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
