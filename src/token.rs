//! `getAuthTokenByRoomCode`: `POST <endpoint>/v2/token {code, user_id?}` -> `{token}`,
//! with gloo-net's `Request` and a Rust future turned into the JS promise.

use crate::error::{ErrorAction, ErrorName, SdkError};
use crate::js::{json_parse, json_stringify, to_js, to_js_error};
use crate::model::{TokenAnswer, TokenRequest};
use gloo_net::http::Request;
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

async fn exchange(url: String, body: String) -> Result<String, SdkError> {
    let request = Request::post(&url).header("Content-Type", "application/json").body(body).map_err(|_| unreachable())?;
    let response = request.send().await.map_err(|_| unreachable())?;
    let status = response.status();
    let text = response.text().await.map_err(|_| unreachable())?;
    settle(status, &text)
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
    wasm_bindgen_futures::future_to_promise(async move {
        exchange(url, body).await.map(JsValue::from).map_err(|e| to_js_error(&e))
    })
}
