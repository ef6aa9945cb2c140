//! An event listener on the global object (`window` or a worker's scope) that owns its
//! callback and removes it on drop (gloo-events' `EventListener`, in a few lines).

use wasm_bindgen::prelude::*;
use web_sys::EventTarget;

/// A registered listener; dropping it unregisters it and releases the callback.
pub(crate) struct GlobalListener {
    target: EventTarget,
    event: &'static str,
    callback: Closure<dyn FnMut()>,
}

impl GlobalListener {
    /// Listens for `event` on `globalThis`; `None` where the global is not an event target.
    /// `f` must hold only weak references to the listener's owner.
    pub(crate) fn new(event: &'static str, f: impl FnMut() + 'static) -> Option<Self> {
        let target: EventTarget = js_sys::global().dyn_into().ok()?;
        let callback = Closure::<dyn FnMut()>::new(f);
        target.add_event_listener_with_callback(event, callback.as_ref().unchecked_ref()).ok()?;
        Some(Self { target, event, callback })
    }
}

impl Drop for GlobalListener {
    fn drop(&mut self) {
        let _ = self.target.remove_event_listener_with_callback(self.event, self.callback.as_ref().unchecked_ref());
    }
}
