//! `getAuthTokenByRoomCode`: `POST <endpoint>/v2/token {code, user_id?}` -> `{token}`,
//! sent with gloo-net's `http::Request` and read with its `Response`, a Rust future run
//! by the SDK's executor (`executor.rs`).
//!
//! The `web_sys::Request` is made here and handed to gloo-net (`Request::from`) rather
//! than built with gloo-net's `RequestBuilder`: the builder re-parses every URL through
//! `Url`/`UrlSearchParams` and `format!` to merge query parameters this request never has,
//! which costs more than a kilobyte gzip (docs/SDK.md, "Size"; `lever-gloo-builder`
//! builds it that way for scripts/size-levers.sh). gloo-net's errors are mapped to
//! `SdkError`s without ever being formatted.

use crate::error::{ErrorAction, ErrorName, SdkError};
use crate::js::{json_parse, json_stringify, rejected, to_js};
use crate::model::{TokenAnswer, TokenRequest};
use js_sys::Promise;
use wasm_bindgen::prelude::*;

fn unreachable() -> SdkError {
    SdkError::new(ErrorName::EndpointUnreachable, ErrorAction::GetToken, "could not reach the token endpoint")
}

/// The token, or the error the endpoint answered with.
fn settle(status: u16, text: &str) -> Result<String, SdkError> {
    let answer = json_parse(&JsValue::from_str(text)).map(|v| TokenAnswer::read(&v)).unwrap_or_default();
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
    let Ok(body) = json_stringify(&to_js(&TokenRequest { code, user_id })) else {
        return rejected(&SdkError::new(ErrorName::ValidationFailed, ErrorAction::GetToken, "the room code could not be encoded"));
    };
    // A URL `fetch` refuses is reported like a network failure.
    let Ok(request) = request(&url, body.into()) else {
        return rejected(&unreachable());
    };
    settle_from(exchange(request))
}

/// The promise of `outcome`'s token: the SDK's own promise (as `join`'s and `endRoom`'s),
/// settled from a task of the SDK's executor (`executor.rs`; `lever-future-to-promise`
/// builds wasm-bindgen-futures' `future_to_promise` instead, for scripts/size-levers.sh).
#[cfg(not(feature = "lever-future-to-promise"))]
fn settle_from(outcome: impl std::future::Future<Output = Result<String, SdkError>> + 'static) -> Promise {
    let deferred = crate::js::Deferred::new();
    let promise = deferred.promise();
    crate::executor::spawn(async move {
        match outcome.await {
            Ok(token) => deferred.resolve(&JsValue::from(token)),
            Err(e) => deferred.reject(&e),
        }
    });
    promise
}

/// The promise of `outcome`'s token, made by `future_to_promise` (measurement only).
#[cfg(feature = "lever-future-to-promise")]
fn settle_from(outcome: impl std::future::Future<Output = Result<String, SdkError>> + 'static) -> Promise {
    wasm_bindgen_futures::future_to_promise(async move { outcome.await.map(JsValue::from).map_err(|e| crate::js::to_js_error(&e)) })
}

/// Sends the request and reads the answer; any network failure is 2003
/// EndpointUnreachable.
async fn exchange(request: gloo_net::http::Request) -> Result<String, SdkError> {
    let response = request.send().await.map_err(|_| unreachable())?;
    let status = response.status();
    let text = response.text().await.map_err(|_| unreachable())?;
    settle(status, &text)
}

/// The POST request, made as a `web_sys::Request` and handed to gloo-net.
#[cfg(not(feature = "lever-gloo-builder"))]
fn request(url: &str, body: JsValue) -> Result<gloo_net::http::Request, JsValue> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    let headers = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&headers, &JsValue::from_str("Content-Type"), &JsValue::from_str("application/json"));
    init.set_headers(&headers);
    init.set_body(&body);
    web_sys::Request::new_with_str_and_init(url, &init).map(gloo_net::http::Request::from)
}

/// The POST request, built with gloo-net's `RequestBuilder` (measurement only).
#[cfg(feature = "lever-gloo-builder")]
fn request(url: &str, body: JsValue) -> Result<gloo_net::http::Request, gloo_net::Error> {
    gloo_net::http::Request::post(url).header("Content-Type", "application/json").body(body)
}
