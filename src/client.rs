//! `HmsClient`, the facade apps use. Methods borrow the shared inner state only briefly
//! and never across an await: each call asks the pure [`Session`] what to do, releases
//! the borrow, then carries out the effects (sending, settling promises, callbacks), so
//! a callback may call back into the client.

use crate::error::{ErrorAction, ErrorName, SdkError};
use crate::js::{random_uuid, rejected, to_js, to_js_error, Callbacks, Deferred};
use crate::listener::GlobalListener;
use crate::model::{http_base_of, socket_url, ClientOptions, JoinConfig, PeerListIteratorOptions, TokenOptions};
use crate::pending::Kind;
use crate::session::{Out, Session};
use crate::timer::Timer;
use crate::transport::{Transport, WsEvent};
use crate::wire::{decode, encode, encode_page, read_options, Frame, Keys};
use hms_protocol::JoinParams;
use js_sys::{Array, Function, Promise};
use std::cell::{Cell, Ref, RefCell, RefMut};
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;

/// Settles one request's promise; keeps the promise so a repeated call can return it.
pub(crate) struct Settle {
    deferred: Deferred,
    /// A page request: the iterator that asked, updated when its page arrives.
    iter: Option<Rc<RefCell<IterState>>>,
}

/// A new promise and what settles it.
fn new_promise() -> Settle {
    Settle { deferred: Deferred::new(), iter: None }
}

fn now() -> f64 {
    js_sys::Date::now()
}

struct Inner {
    session: RefCell<Session<Settle>>,
    transport: Cell<Option<Transport>>,
    /// A socket the server is closing (after a room end, a removal, our end-room's
    /// answer or `on-error`): kept until its close event, so we add no close of our own.
    closing: Cell<Option<Transport>>,
    /// Tags each socket's events: only the current socket's reach the session.
    generation: Cell<u32>,
    timer: Timer,
    /// The property names frames are read with.
    keys: Keys,
    /// `online`/`offline` listeners on the global object (none outside browsers).
    _network: (Option<GlobalListener>, Option<GlobalListener>),
    weak: Weak<Inner>,
    endpoint: String,
    /// The socket URL of the current session (same peer id and token for reconnects).
    url: Cell<String>,
    on_removed: Callbacks,
    on_peer_join: Callbacks,
    on_peer_leave: Callbacks,
    on_error: Callbacks,
    on_reconnecting: Callbacks,
    on_reconnected: Callbacks,
    on_state: Callbacks,
}

impl Inner {
    /// The session, borrowed for one step (never across a callback or an await).
    fn session(&self) -> Ref<'_, Session<Settle>> {
        self.session.borrow()
    }

    /// The session, borrowed mutably for one step.
    fn session_mut(&self) -> RefMut<'_, Session<Settle>> {
        self.session.borrow_mut()
    }

    /// Carries out the session's effects in order, then makes sure the timer fires by
    /// the session's next deadline.
    fn run(&self, outs: Vec<Out<Settle>>) {
        for out in outs {
            match out {
                Out::Send { id, call } => self.send(encode(id.as_deref(), &call)),
                Out::Close => drop(self.transport.take()),
                Out::Detach => {
                    // Replacing an older closing socket closes that one (its Drop).
                    let old = self.closing.replace(self.transport.take());
                    drop(old);
                }
                Out::SendPage { id, call } => self.send(encode_page(&id, &call)),
                Out::ResolvePage(s, page) => {
                    if let Some(it) = &s.iter {
                        let mut it = it.borrow_mut();
                        it.iterator = Some(page.iterator);
                        it.eof = page.eof;
                        it.total = page.total;
                    }
                    s.deferred.resolve(&to_js(&page.peers));
                }
                Out::Resolve(s) => s.deferred.resolve(&JsValue::UNDEFINED),
                Out::Reject(s, e) => s.deferred.reject(&e),
                Out::PeerJoin(p) => self.on_peer_join.emit(&to_js(&p)),
                Out::PeerLeave(p) => self.on_peer_leave.emit(&to_js(&p)),
                Out::Removed(ev) => self.on_removed.emit(&to_js(&ev)),
                Out::Error(e) => self.on_error.emit(&to_js_error(&e)),
                Out::Reconnecting(e) => self.on_reconnecting.emit(&to_js_error(&e)),
                Out::Reconnected => self.on_reconnected.emit(&JsValue::UNDEFINED),
                Out::State(state) => self.on_state.emit(&to_js(&state)),
                Out::Connect => self.connect(),
                // Freed here, after the callbacks that came before it.
                Out::Release(room) => drop(room),
            }
        }
        self.rearm();
    }

    /// Sends `text` on the current socket, if there is one (taken out of its `Cell` for
    /// the call: sending calls nothing back). A failed send means the socket is closing:
    /// its close event follows.
    fn send(&self, text: Option<String>) {
        let t = self.transport.take();
        if let (Some(text), Some(t)) = (text, &t) {
            let _ = t.send(&text);
        }
        self.transport.set(t);
    }

    /// Opens a socket to the session's URL; a URL the browser refuses counts as a
    /// socket that closed at once.
    fn connect(&self) {
        let generation = self.generation.get().wrapping_add(1);
        self.generation.set(generation);
        let weak = self.weak.clone();
        let sink: Rc<dyn Fn(WsEvent)> = Rc::new(move |ev| {
            if let Some(inner) = weak.upgrade() {
                inner.on_socket(generation, ev);
            }
        });
        // A reconnect presents the place's secret, so the server gives this client its
        // place back (and to nobody else). The server makes it as hex: no encoding needed.
        let base = self.url.take();
        let mut url = base.clone();
        self.url.set(base);
        if let Some(secret) = self.session().reconnect_secret() {
            url.push_str("&reconnect_secret=");
            url.push_str(secret);
        }
        let transport = Transport::connect(&url, sink);
        match transport {
            Ok(t) => self.transport.set(Some(t)),
            Err(_) => {
                let outs = self.session_mut().on_close(1006, now());
                self.run(outs);
            }
        }
    }

    fn rearm(&self) {
        let deadline = self.session().next_deadline();
        match deadline {
            Some(d) => self.timer.ensure_by(d, now()),
            None => self.timer.cancel(),
        }
    }

    fn on_socket(&self, generation: u32, ev: WsEvent) {
        if generation != self.generation.get() {
            // An earlier socket: only its close matters, to release it.
            if matches!(ev, WsEvent::Close(_)) {
                drop(self.closing.take());
            }
            return;
        }
        let outs = match ev {
            WsEvent::Open => self.session_mut().on_open(now()),
            WsEvent::Close(code) => self.session_mut().on_close(code, now()),
            WsEvent::Text(text) => {
                // Any frame, even one we can't read, shows the connection is alive.
                self.session_mut().touch(now());
                match decode(&self.keys, &text) {
                    Some(Frame::Answer(id, result, secret)) => {
                        let mut session = self.session_mut();
                        if let Some(secret) = secret {
                            session.on_reconnect_secret(secret);
                        }
                        session.on_answer(&id, result)
                    }
                    Some(Frame::Page(id, page)) => self.session_mut().on_page(&id, page),
                    Some(Frame::Push(push)) => self.session_mut().on_push(push),
                    None => Vec::new(),
                }
            }
        };
        self.run(outs);
    }

    fn on_timer(&self) {
        self.timer.fired();
        let outs = self.session_mut().on_tick(now());
        self.run(outs);
    }

    fn on_network(&self, online: bool) {
        let outs = if online { self.session_mut().on_online(now()) } else { self.session_mut().on_offline(now()) };
        self.run(outs);
    }

    /// A request's promise: the one still waiting for `kind` (and `target`), or a new one
    /// that `make` hands to the session.
    fn request(&self, kind: Kind, target: Option<&str>, make: impl FnOnce(&mut Session<Settle>, Settle) -> Vec<Out<Settle>>) -> Promise {
        if let Some(p) = self.session().waiting(kind, target).map(|s| s.deferred.promise()) {
            return p;
        }
        let settle = new_promise();
        let promise = settle.deferred.promise();
        let outs = make(&mut self.session_mut(), settle);
        self.run(outs);
        promise
    }
}

/// The global `online` (or `offline`) listener of a client (one closure type for both).
fn network_listener(weak: Weak<Inner>, online: bool) -> Option<GlobalListener> {
    GlobalListener::new(if online { "online" } else { "offline" }, move || {
        if let Some(inner) = weak.upgrade() {
            inner.on_network(online);
        }
    })
}

/// The room client. Construct it synchronously; `join` to enter a room. Call `free()`
/// (or drop every reference) to release the socket.
#[wasm_bindgen]
pub struct HmsClient {
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl HmsClient {
    /// `new HmsClient({ endpoint, requestTimeoutMs?, ... })`. Throws a 6013
    /// ValidationFailed `HmsError` when `endpoint` is not a string.
    #[wasm_bindgen(constructor)]
    pub fn new(#[wasm_bindgen(unchecked_param_type = "HmsClientOptions")] options: JsValue) -> Result<HmsClient, JsValue> {
        crate::js::hms_error_prototype();
        let options = read_options(&options, ClientOptions::read).ok_or_else(|| {
            to_js_error(&SdkError::new(ErrorName::ValidationFailed, ErrorAction::Init, "options must be { endpoint: string, requestTimeoutMs?: number, ... }"))
        })?;
        let mut session = Session::with_config(options.config());
        // Jitter only needs to differ between clients, not to be unpredictable.
        session.seed(crate::js::random_u64());
        let inner = Rc::new_cyclic(|weak: &Weak<Inner>| {
            let (w1, w2, w3) = (weak.clone(), weak.clone(), weak.clone());
            Inner {
                session: RefCell::new(session),
                transport: Cell::new(None),
                closing: Cell::new(None),
                generation: Cell::new(0),
                timer: Timer::new(move || {
                    if let Some(inner) = w1.upgrade() {
                        inner.on_timer();
                    }
                }),
                _network: (network_listener(w2, true), network_listener(w3, false)),
                keys: Keys::new(),
                weak: weak.clone(),
                endpoint: options.endpoint,
                url: Cell::new(String::new()),
                on_removed: Callbacks::new(),
                on_peer_join: Callbacks::new(),
                on_peer_leave: Callbacks::new(),
                on_error: Callbacks::new(),
                on_reconnecting: Callbacks::new(),
                on_reconnected: Callbacks::new(),
                on_state: Callbacks::new(),
            }
        });
        Ok(HmsClient { inner })
    }

    /// Exchanges a room code for an auth token (`POST <endpoint>/v2/token`). The HTTP
    /// endpoint defaults to the WebSocket endpoint's origin.
    /// (Its TypeScript signature is declared in `js.rs`, to make `options` optional.)
    #[wasm_bindgen(js_name = getAuthTokenByRoomCode, skip_typescript)]
    pub fn get_auth_token_by_room_code(
        &self,
        code: String,
        options: Option<js_sys::Object>,
    ) -> Promise {
        let options = read_options(&options.map_or(JsValue::UNDEFINED, JsValue::from), |v| Some(TokenOptions::read(v))).unwrap_or_default();
        let base = options.endpoint.unwrap_or_else(|| http_base_of(&self.inner.endpoint));
        crate::token::token_by_room_code(&base, &code, options.user_id.as_deref())
    }

    /// Joins the room the token names. Resolves once the server accepted the join and
    /// sent the policy and the peer list, so `getLocalPeer()` is defined right after.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn join(&self, #[wasm_bindgen(unchecked_param_type = "HmsJoinConfig")] config: JsValue) -> Promise {
        let Some(config) = read_options(&config, JoinConfig::read) else {
            return rejected(&SdkError::new(ErrorName::ValidationFailed, ErrorAction::Join, "join takes { authToken: string, userName: string, metadata?: string }"));
        };
        let settle = new_promise();
        let promise = settle.deferred.promise();
        let peer_id = random_uuid();
        let params = JoinParams { name: config.user_name, data: config.metadata.unwrap_or_default() };
        let begun = self.inner.session_mut().begin_join(peer_id.clone(), random_uuid(), params, now(), settle);
        match begun {
            Err((settle, e)) => self.inner.run(vec![Out::Reject(settle, e)]),
            Ok(outs) => {
                let token = String::from(js_sys::encode_uri_component(&config.auth_token));
                self.inner.url.set(socket_url(&self.inner.endpoint, &peer_id, &token));
                // A socket still closing from the last session goes now.
                drop(self.inner.closing.take());
                self.inner.run(outs);
                self.inner.connect();
                self.inner.rearm();
            }
        }
        promise
    }

    /// The local peer while joined, else `undefined`.
    #[wasm_bindgen(js_name = getLocalPeer, unchecked_return_type = "HmsPeer | undefined")]
    pub fn get_local_peer(&self) -> JsValue {
        match self.inner.session().local_peer() {
            Some(p) => to_js(&p),
            None => JsValue::UNDEFINED,
        }
    }

    /// The peers this client knows, the local peer first; empty when not joined. In a
    /// small room that is everyone. In a large room (see `getPeerCount`) it is the local
    /// peer, the first page the server sent at join, the peers read with
    /// `getPeerListIterator`, and the joins and leaves the server reports to this role.
    #[wasm_bindgen(js_name = getPeers, unchecked_return_type = "HmsPeer[]")]
    pub fn get_peers(&self) -> Array {
        self.inner.session().peers().iter().map(to_js).collect()
    }

    /// How many peers the room has, the local one included (0 when not joined). In a
    /// large room this is the server's count, which `getPeers()` may not all know.
    #[wasm_bindgen(js_name = getPeerCount)]
    pub fn get_peer_count(&self) -> f64 {
        self.inner.session().peer_count() as f64
    }

    /// An iterator over the room's whole peer list, page by page, in join order (100ms's
    /// `HMSPeerListIterator`): `limit` peers a page, 1 to 100, default 10. The peers it
    /// returns become peers this client knows (`getPeers`).
    /// (Typed by hand in `js.rs`, where the options can be optional.)
    #[wasm_bindgen(js_name = getPeerListIterator, skip_typescript)]
    pub fn get_peer_list_iterator(&self, options: JsValue) -> HmsPeerListIterator {
        let limit = read_options(&options, |v| Some(PeerListIteratorOptions::read(v))).unwrap_or_default().page();
        HmsPeerListIterator { inner: Rc::downgrade(&self.inner), limit, state: Rc::default() }
    }

    /// The room while joined, else `undefined`.
    #[wasm_bindgen(js_name = getRoom, unchecked_return_type = "HmsRoom | undefined")]
    pub fn get_room(&self) -> JsValue {
        match self.inner.session().room() {
            Some(r) => to_js(&r),
            None => JsValue::UNDEFINED,
        }
    }

    /// Ends the room for everyone (`lock` keeps it closed to later joins). Needs the
    /// `endRoom` permission (else 403 without contacting the server). Resolves once the
    /// server confirmed the end (its answer, or after a lost connection its end notice);
    /// the client has then left. While one is waiting, calling it again returns the same
    /// promise and sends nothing.
    #[wasm_bindgen(js_name = endRoom, unchecked_return_type = "Promise<void>")]
    pub fn end_room(&self, lock: bool, reason: String) -> Promise {
        self.inner.request(Kind::EndRoom, None, |session, settle| session.end_room(random_uuid(), lock, reason, now(), settle))
    }

    /// Removes another peer. Needs `removeOthers` (else 403 without contacting the
    /// server). While a removal of the same peer is waiting, returns its promise.
    #[wasm_bindgen(js_name = removePeer, unchecked_return_type = "Promise<void>")]
    pub fn remove_peer(&self, #[wasm_bindgen(js_name = peerId)] peer_id: String, reason: String) -> Promise {
        let target = peer_id.clone();
        self.inner.request(Kind::RemovePeer, Some(&target), |session, settle| session.remove_peer(random_uuid(), peer_id, reason, now(), settle))
    }

    /// The connection state: `Disconnected`, `Connecting`, `Connected`, `Reconnecting`,
    /// `Disconnecting` or `Failed` (100ms's room states).
    #[wasm_bindgen(js_name = getConnectionState, unchecked_return_type = "HmsConnectionState")]
    pub fn get_connection_state(&self) -> JsValue {
        to_js(&self.inner.session().connection_state())
    }

    /// Subscribes to connection state changes; the callback gets the new state.
    #[wasm_bindgen(js_name = onConnectionStateChange, unchecked_return_type = "HmsUnsubscribe")]
    pub fn on_connection_state_change(&self, #[wasm_bindgen(unchecked_param_type = "HmsConnectionStateCallback")] cb: Function) -> Function {
        self.inner.on_state.subscribe(&cb)
    }

    /// Leaves the room (a no-op when not joined). Requests still waiting are rejected
    /// with 6000 NotConnected.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn leave(&self) -> Promise {
        let outs = self.inner.session_mut().leave();
        self.inner.run(outs);
        Promise::resolve(&JsValue::UNDEFINED)
    }

    /// Subscribes to the local peer's removal (room ended, or removed by a peer or a
    /// back end). Not called for the peer whose own `endRoom` ended the room.
    #[wasm_bindgen(js_name = onRemovedFromRoom, unchecked_return_type = "HmsUnsubscribe")]
    pub fn on_removed_from_room(&self, #[wasm_bindgen(unchecked_param_type = "HmsRemovedCallback")] cb: Function) -> Function {
        self.inner.on_removed.subscribe(&cb)
    }

    /// Subscribes to other peers joining.
    #[wasm_bindgen(js_name = onPeerJoin, unchecked_return_type = "HmsUnsubscribe")]
    pub fn on_peer_join(&self, #[wasm_bindgen(unchecked_param_type = "HmsPeerCallback")] cb: Function) -> Function {
        self.inner.on_peer_join.subscribe(&cb)
    }

    /// Subscribes to other peers leaving.
    #[wasm_bindgen(js_name = onPeerLeave, unchecked_return_type = "HmsUnsubscribe")]
    pub fn on_peer_leave(&self, #[wasm_bindgen(unchecked_param_type = "HmsPeerCallback")] cb: Function) -> Function {
        self.inner.on_peer_leave.subscribe(&cb)
    }

    /// Subscribes to the start of reconnecting (the connection was lost; the argument
    /// says why: 1003 ConnectionLost).
    #[wasm_bindgen(js_name = onReconnecting, unchecked_return_type = "HmsUnsubscribe")]
    pub fn on_reconnecting(&self, #[wasm_bindgen(unchecked_param_type = "HmsErrorCallback")] cb: Function) -> Function {
        self.inner.on_reconnecting.subscribe(&cb)
    }

    /// Subscribes to successful reconnects (same peer id, peer list refreshed).
    #[wasm_bindgen(js_name = onReconnected, unchecked_return_type = "HmsUnsubscribe")]
    pub fn on_reconnected(&self, #[wasm_bindgen(unchecked_param_type = "HmsReconnectedCallback")] cb: Function) -> Function {
        self.inner.on_reconnected.subscribe(&cb)
    }

    /// Subscribes to errors that end the session on their own: the server's `on-error`,
    /// or the connection lost for good (a terminal 1003 ConnectionLost).
    #[wasm_bindgen(js_name = onError, unchecked_return_type = "HmsUnsubscribe")]
    pub fn on_error(&self, #[wasm_bindgen(unchecked_param_type = "HmsErrorCallback")] cb: Function) -> Function {
        self.inner.on_error.subscribe(&cb)
    }
}

impl Drop for HmsClient {
    /// `free()`: leave (telling the server), release the socket and the callbacks.
    fn drop(&mut self) {
        let outs = self.inner.session_mut().leave();
        self.inner.run(outs);
        let i = &self.inner;
        drop(i.closing.take());
        for cbs in [&i.on_removed, &i.on_peer_join, &i.on_peer_leave, &i.on_error, &i.on_reconnecting, &i.on_reconnected, &i.on_state] {
            cbs.clear();
        }
    }
}

/// Where an [`HmsPeerListIterator`] is.
#[derive(Default)]
pub(crate) struct IterState {
    /// The server's iterator id, after the first page.
    iterator: Option<String>,
    /// The last page said nothing follows.
    eof: bool,
    /// The last page's `total`.
    total: u64,
}

/// Reads a room's peer list page by page, in the shape of 100ms's `HMSPeerListIterator`:
/// `hasNext()`, `next()`, `getTotal()`. Made by `HmsClient.getPeerListIterator()`.
#[wasm_bindgen]
pub struct HmsPeerListIterator {
    inner: Weak<Inner>,
    limit: u32,
    state: Rc<RefCell<IterState>>,
}

#[wasm_bindgen]
impl HmsPeerListIterator {
    /// Whether another page may follow (true before the first `next()`).
    #[wasm_bindgen(js_name = hasNext)]
    pub fn has_next(&self) -> bool {
        !self.state.borrow().eof
    }

    /// The room's peer count as of the last page (0 before the first).
    #[wasm_bindgen(js_name = getTotal)]
    pub fn get_total(&self) -> f64 {
        self.state.borrow().total as f64
    }

    /// The next page of peers. Rejects with 6000 NotConnected when not joined (or the
    /// client was freed), with 404 when the server forgot the iterator (unused for
    /// 60 s, or more than 8 open): make a new one.
    #[wasm_bindgen(unchecked_return_type = "Promise<HmsPeer[]>")]
    pub fn next(&self) -> Promise {
        let Some(inner) = self.inner.upgrade() else {
            return rejected(&SdkError::new(ErrorName::NotConnected, ErrorAction::PeerList, "the client was freed"));
        };
        let iterator = self.state.borrow().iterator.clone();
        let mut settle = new_promise();
        settle.iter = Some(self.state.clone());
        let promise = settle.deferred.promise();
        let outs = inner.session_mut().peer_page(random_uuid(), iterator, self.limit, now(), settle);
        inner.run(outs);
        promise
    }
}
