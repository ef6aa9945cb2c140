//! One re-armable `setTimeout` that owns its callback and clears itself on drop.

use crate::js::{clear_timeout, set_timeout};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

/// A one-shot timer that can be armed again; at most one timeout is scheduled.
pub(crate) struct Timer {
    callback: Closure<dyn FnMut()>,
    handle: RefCell<Option<JsValue>>,
}

impl Timer {
    /// A timer that calls `f` when it fires. `f` must hold only weak references to the
    /// timer's owner.
    pub(crate) fn new(f: impl FnMut() + 'static) -> Self {
        Self { callback: Closure::<dyn FnMut()>::new(f), handle: RefCell::new(None) }
    }

    /// Fires in `delay_ms` (replacing any earlier schedule).
    pub(crate) fn arm(&self, delay_ms: f64) {
        self.cancel();
        let h = set_timeout(self.callback.as_ref().unchecked_ref(), delay_ms.max(0.0));
        *self.handle.borrow_mut() = Some(h);
    }

    /// Cancels the schedule, if any.
    pub(crate) fn cancel(&self) {
        if let Some(h) = self.handle.borrow_mut().take() {
            clear_timeout(&h);
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.cancel();
    }
}
