//! An event listener on the global object (`window` or a worker's scope) that owns its
//! callback and removes it on drop (gloo-events' `EventListener`, in a few lines).

use crate::js::Callback;
use js_sys::Function;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The global `addEventListener` (unqualified: the global object's own method).
    #[wasm_bindgen(js_name = addEventListener, catch)]
    fn add_event_listener(event: &str, f: &Function) -> Result<(), JsValue>;
    #[wasm_bindgen(js_name = removeEventListener, catch)]
    fn remove_event_listener(event: &str, f: &Function) -> Result<(), JsValue>;
}

/// A registered listener; dropping it unregisters it and releases the callback.
pub(crate) struct GlobalListener {
    event: &'static str,
    callback: Callback,
}

impl GlobalListener {
    /// Listens for `event` on the global object; `None` where it has no
    /// `addEventListener`. `f` must hold only weak references to the listener's owner.
    pub(crate) fn new(event: &'static str, mut f: impl FnMut() + 'static) -> Option<Self> {
        let callback = Callback::new(move |_: JsValue| f());
        add_event_listener(event, callback.as_ref().unchecked_ref()).ok()?;
        Some(Self { event, callback })
    }
}

impl Drop for GlobalListener {
    fn drop(&mut self) {
        let _ = remove_event_listener(self.event, self.callback.as_ref().unchecked_ref());
    }
}
