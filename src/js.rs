//! JS conversions: `HmsError` (a real `Error` subclass), serializing payloads, callback
//! sets, the TypeScript declarations of the public payloads, and a few global bindings.

use crate::error::SdkError;
use js_sys::{Array, Function, Object, Reflect, Set};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of `new HmsClient(...)`. */
export interface HmsClientOptions {
  /** WebSocket URL of the room server, e.g. `ws://127.0.0.1:7880/ws`. */
  endpoint: string;
  /** How long a request waits for its answer before it fails with 6008 RequestTimeout (default 10000). */
  requestTimeoutMs?: number;
  /** `ping` interval while joined (default 3000). */
  heartbeatIntervalMs?: number;
  /** No incoming frame for this long means the connection is lost (default 12000). */
  heartbeatTimeoutMs?: number;
  /** Total time spent reconnecting before `onError` gets 1006 ReconnectFailed (default 30000; 0 = never reconnect). */
  reconnectBudgetMs?: number;
}
/** What a role may do. */
export interface HmsPermissions {
  endRoom: boolean;
  removeOthers: boolean;
  mute: boolean;
  unmute: boolean;
  changeRole: boolean;
  hlsStreaming: boolean;
  rtmpStreaming: boolean;
  browserRecording: boolean;
  pollRead: boolean;
  pollWrite: boolean;
}
/** A role of the room's template. */
export interface HmsRole {
  name: string;
  priority: number;
  permissions: HmsPermissions;
}
/** A peer of the room. */
export interface HmsPeer {
  peerId: string;
  name: string;
  userId: string;
  metadata: string;
  isLocal: boolean;
  role: HmsRole;
}
/** The joined room. */
export interface HmsRoom {
  id: string;
  name: string;
  sessionId: string | null;
}
/** Why the local peer is no longer in the room. */
export interface RemovedFromRoomEvent {
  reason: string;
  /** Exactly the server's `room_end`: true when the whole room ended. */
  roomWasEnded: boolean;
  /** Who ended the room or removed us; `null` when a back end did it through the REST API. */
  peerWhoRemoved: HmsPeer | null;
}
/** What `join` takes. */
export interface HmsJoinConfig {
  authToken: string;
  userName: string;
  metadata?: string;
}
/** Options of `getAuthTokenByRoomCode`. */
export interface HmsTokenOptions {
  userId?: string;
  /** HTTP base URL of the token service; derived from the client's endpoint when absent. */
  endpoint?: string;
}
/** The stable names of `HmsError`. */
export type HmsErrorName =
  | "BadRequest" | "InvalidToken" | "PermissionDenied" | "NotFound" | "Conflict" | "RoomLocked"
  | "RateLimited" | "ParseError" | "InvalidRequest" | "MethodNotFound" | "InvalidParams"
  | "FailedToConnect" | "ConnectionLost" | "ReconnectFailed" | "NotConnected" | "JsonParsingFailed"
  | "RequestTimeout" | "ValidationFailed" | "ServerError";
export interface HmsError extends Error {
  /** 6000 NotConnected, 403 PermissionDenied, 423 RoomLocked, 401 InvalidToken, 404 NotFound,
   *  1003 ConnectionLost, 6008 RequestTimeout, 1000 FailedToConnect, or a server code. */
  readonly code: number;
  readonly name: HmsErrorName;
}
export interface HmsClient {
  /**
   * Exchanges a room code for an auth token (`POST <endpoint>/v2/token {code, user_id?}`).
   * `options.endpoint` is the HTTP base URL; it defaults to the WebSocket endpoint's origin.
   * Rejects with an HmsError: the server's code (404 unknown or disabled code), or 1000.
   */
  getAuthTokenByRoomCode(code: string, options?: HmsTokenOptions): Promise<string>;
}
export type HmsRemovedCallback = (ev: RemovedFromRoomEvent) => void;
export type HmsPeerCallback = (peer: HmsPeer) => void;
export type HmsErrorCallback = (error: HmsError) => void;
export type HmsReconnectedCallback = () => void;
export type HmsUnsubscribe = () => void;
"#;

/// The class of every error the SDK throws or rejects with: `err instanceof HmsError`
/// and `err instanceof Error` both hold. Instances are made by the SDK only; read
/// `code`, `name` and `message`.
#[wasm_bindgen]
pub struct HmsError {
    _private: u8,
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    pub(crate) fn set_timeout(cb: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    pub(crate) fn clear_timeout(handle: &JsValue);
    /// `crypto.getRandomValues` (window and workers alike).
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]);
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(what: &str, err: &JsValue);
    #[wasm_bindgen(js_namespace = JSON, js_name = parse, catch)]
    pub(crate) fn json_parse(text: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_namespace = JSON, js_name = stringify, catch)]
    pub(crate) fn json_stringify(v: &JsValue) -> Result<js_sys::JsString, JsValue>;
}

/// `HmsError.prototype`, chained to `Error.prototype` (idempotent, so it is simply
/// done on each call: cheaper in code size than caching it in a thread-local). An
/// instance of the exported marker class gives us its prototype without JS glue.
pub(crate) fn hms_error_prototype() -> Object {
    let marker: JsValue = HmsError { _private: 0 }.into();
    let proto = Object::get_prototype_of(&marker);
    let error_proto = Object::get_prototype_of(&js_sys::Error::new(""));
    Object::set_prototype_of(&proto, &error_proto);
    proto
}

/// A real JS `Error` (with its stack) re-parented to `HmsError.prototype`, with own
/// `name` and `code`.
pub(crate) fn to_js_error(e: &SdkError) -> JsValue {
    let err = js_sys::Error::new(&e.message);
    err.set_name(e.name());
    let _ = Reflect::set(&err, &JsValue::from_str("code"), &JsValue::from(e.code));
    Object::set_prototype_of(&err, &hms_error_prototype());
    err.into()
}

/// A set of subscribed callbacks. A JS `Set` keeps the order and makes unsubscribing a
/// bound `Set.prototype.delete`, so no Rust closure is created per subscription.
pub(crate) struct Callbacks {
    set: Set,
}

impl Callbacks {
    pub(crate) fn new() -> Self {
        Self { set: Set::new(&JsValue::UNDEFINED) }
    }

    /// Adds `cb` and returns the function that removes it.
    pub(crate) fn subscribe(&self, cb: &Function) -> Function {
        self.set.add(cb);
        // `set.delete.bind(set, cb)`. Neither lookup can fail on a real `Set`; were it to,
        // the app would get `undefined` rather than a panic.
        Reflect::get(&self.set, &JsValue::from_str("delete"))
            .and_then(|del| Reflect::get(&del, &JsValue::from_str("bind")).and_then(|bind| Function::from(bind).call2(&del, &self.set, cb)))
            .unwrap_or(JsValue::UNDEFINED)
            .unchecked_into()
    }

    /// Calls every callback with `arg`. Works on a copy, so callbacks may (un)subscribe;
    /// a throwing callback is logged and the others still run.
    pub(crate) fn emit(&self, arg: &JsValue) {
        for cb in Array::from(&self.set).iter() {
            if let Some(f) = cb.dyn_ref::<Function>() {
                if let Err(e) = f.call1(&JsValue::UNDEFINED, arg) {
                    console_error("hms-client: a callback threw", &e);
                }
            }
        }
    }

    /// Forgets every callback.
    pub(crate) fn clear(&self) {
        self.set.clear();
    }
}

/// Sixteen random bytes from `crypto.getRandomValues`, as a UUID v4.
pub(crate) fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    get_random_values(&mut bytes);
    crate::model::uuid_v4(bytes)
}
