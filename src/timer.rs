//! One re-armable `setTimeout` that owns its callback and clears itself on drop.

use crate::js::{clear_timeout, set_timeout, Callback};
use std::cell::Cell;
use wasm_bindgen::prelude::*;

/// A one-shot timer that can be armed again; at most one timeout is scheduled.
pub(crate) struct Timer {
    callback: Callback,
    /// The scheduled timeout's handle (a `Cell`: taken and put back, never borrowed).
    handle: Cell<Option<JsValue>>,
    /// When the scheduled timeout fires (ms, `Date.now()` clock).
    at: Cell<Option<f64>>,
}

impl Timer {
    /// A timer that calls `f` when it fires. `f` must hold only weak references to the
    /// timer's owner and call [`Timer::fired`] first.
    pub(crate) fn new(mut f: impl FnMut() + 'static) -> Self {
        Self { callback: Callback::new(move |_: JsValue| f()), handle: Cell::new(None), at: Cell::new(None) }
    }

    /// Makes sure the timer fires by `deadline` (absolute, `now` is the current time).
    /// A timeout already due at or before it is kept: its callback re-arms for what is
    /// left, so a deadline that only moves later (the heartbeat's, on every frame)
    /// costs no `clearTimeout`/`setTimeout` pair per frame.
    pub(crate) fn ensure_by(&self, deadline: f64, now: f64) {
        if self.at.get().is_some_and(|at| at <= deadline) {
            return;
        }
        self.cancel();
        let h = set_timeout(self.callback.as_ref().unchecked_ref(), (deadline - now).max(0.0));
        self.handle.set(Some(h));
        self.at.set(Some(deadline));
    }

    /// The timeout ran: nothing is scheduled any more.
    pub(crate) fn fired(&self) {
        self.handle.take();
        self.at.set(None);
    }

    /// Cancels the schedule, if any.
    pub(crate) fn cancel(&self) {
        if let Some(h) = self.handle.take() {
            clear_timeout(&h);
        }
        self.at.set(None);
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.cancel();
    }
}
