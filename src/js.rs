//! JS objects: the one place they are made from Rust values ([`to_js`], serde-wasm-
//! bindgen's JSON-compatible serializer over the serde types of `model.rs`), `HmsError`
//! (a real `Error` subclass), callback sets, the TypeScript that no Rust type generates,
//! and a few global bindings.

use crate::error::SdkError;
use serde::Serialize;
use js_sys::{Array, Function, Object, Promise, Reflect, Set};
use wasm_bindgen::prelude::*;

// The payload shapes' TypeScript is generated from their Rust types by tsify (model.rs,
// error.rs); what follows is only what no Rust type describes: the role objects (checked
// against the protocol's types by a test in model.rs), `HmsError`'s class shape, the
// callback types, and signatures wasm-bindgen cannot spell.
#[wasm_bindgen(typescript_custom_section)]
const ROLE_TS: &'static str = crate::model::ROLE_TS;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Every rejection, throw and error callback of the SDK: a real `Error`. */
export interface HmsError extends Error, Readonly<HmsErrorDetails> {
  readonly name: HmsErrorName;
}
export interface HmsClient {
  /**
   * Exchanges a room code for an auth token (`POST <endpoint>/v2/token {code, user_id?}`).
   * `options.endpoint` is the HTTP base URL; it defaults to the WebSocket endpoint's origin.
   * Rejects with an HmsError: the server's code (404 unknown or disabled code), or 2003.
   */
  getAuthTokenByRoomCode(code: string, options?: HmsTokenOptions): Promise<string>;
  /**
   * An iterator over the room's whole peer list, page by page, in join order (100ms's
   * `HMSPeerListIterator`): `limit` peers a page, 1 to 100, default 10. The peers it
   * returns become peers this client knows (`getPeers`).
   */
  getPeerListIterator(options?: HmsPeerListIteratorOptions): HmsPeerListIterator;
}
export type HmsRemovedCallback = (ev: RemovedFromRoomEvent) => void;
export type HmsPeerCallback = (peer: HmsPeer) => void;
export type HmsErrorCallback = (error: HmsError) => void;
export type HmsReconnectedCallback = () => void;
export type HmsConnectionStateCallback = (state: HmsConnectionState) => void;
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
    /// `JSON.parse` of a JS string.
    #[wasm_bindgen(js_namespace = JSON, js_name = parse, catch)]
    pub(crate) fn json_parse(text: &JsValue) -> Result<JsValue, JsValue>;
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

/// `v` as a plain JS object (or string, for unit enums), as `JSON.parse` would give it:
/// `Option::None` is `null`, maps are plain objects. The only way the SDK makes the
/// objects it hands to apps.
pub(crate) fn to_js<T: Serialize + ?Sized>(v: &T) -> JsValue {
    // Serializing these types cannot fail (no maps with non-string keys, no u64 above
    // 2^53); were it to, the app would get `undefined` rather than a panic.
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap_or(JsValue::UNDEFINED)
}

/// A real JS `Error` (with its stack) re-parented to `HmsError.prototype`, with own
/// `name`, `code`, `action` and `isTerminal`.
pub(crate) fn to_js_error(e: &SdkError) -> JsValue {
    let err = js_sys::Error::new(&e.message);
    err.set_name(e.name().as_str());
    let details = to_js(&e.details());
    if let Some(details) = details.dyn_ref::<Object>() {
        Object::assign(&err, details);
    }
    Object::set_prototype_of(&err, &hms_error_prototype());
    err.into()
}

/// The one closure type of the SDK's browser callbacks (socket events, the timer, the
/// online/offline listeners): wasm-bindgen emits JS glue and an export per closure
/// signature, so each takes its event (or `undefined`) as a plain `JsValue`.
pub(crate) type Callback = Closure<dyn FnMut(JsValue)>;

/// A pending JS promise and the functions that settle it.
pub(crate) struct Deferred {
    resolve: Function,
    reject: Function,
    promise: Promise,
}

impl Deferred {
    /// A pending promise.
    pub(crate) fn new() -> Self {
        let mut fns = None;
        let promise = Promise::new(&mut |resolve, reject| fns = Some((resolve, reject)));
        // `Promise` runs its executor synchronously, so `fns` is always set; were it not,
        // settling would call `undefined`, a `TypeError` the `call1`s below catch: a no-op
        // rather than a panic (and no `new Function` import for a case that never happens).
        let (resolve, reject) = fns.unwrap_or_else(|| (JsValue::UNDEFINED.unchecked_into(), JsValue::UNDEFINED.unchecked_into()));
        Self { resolve, reject, promise }
    }

    /// The promise (the same one on every call).
    pub(crate) fn promise(&self) -> Promise {
        self.promise.clone()
    }

    /// Fulfils the promise with `value`.
    pub(crate) fn resolve(&self, value: &JsValue) {
        let _ = self.resolve.call1(&JsValue::UNDEFINED, value);
    }

    /// Rejects the promise with `e` as an `HmsError`.
    pub(crate) fn reject(&self, e: &SdkError) {
        let _ = self.reject.call1(&JsValue::UNDEFINED, &to_js_error(e));
    }
}

/// A promise already rejected with `e` as an `HmsError`.
pub(crate) fn rejected(e: &SdkError) -> Promise {
    Promise::reject(&to_js_error(e))
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

/// Eight random bytes from `crypto.getRandomValues` (the one source of randomness the
/// SDK imports), as a number.
pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    get_random_values(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// Sixteen random bytes from `crypto.getRandomValues`, as a UUID v4.
pub(crate) fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    get_random_values(&mut bytes);
    crate::model::uuid_v4(bytes)
}
