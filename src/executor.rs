//! Runs the SDK's Rust futures in the browser: today one, the token exchange over
//! gloo-net (`token.rs`), whose awaits are gloo-net's `JsFuture`s.
//!
//! Not wasm-bindgen-futures' `spawn_local`: its executor (a task queue behind a lazily
//! made thread-local, a `globalThis.queueMicrotask` lookup, JSPI support) costs 1.9 KB
//! gzip in this package (docs/SDK.md, "Size"; `lever-future-to-promise` builds it), for
//! futures that are only ever woken from a promise callback. Here a task is polled at
//! once when spawned and then synchronously inside its waker's `wake`, which a
//! `JsFuture` calls from its promise callback, so the future runs in that microtask. A
//! wake during the task's own poll makes it poll again once that poll returns. A task
//! lives as long as a waker of it does: a future whose promise never settles is freed
//! with that promise's callbacks, as with wasm-bindgen-futures.
//!
//! Pure Rust (no wasm-bindgen types), so it is tested natively; the wakers are `Rc`s, so
//! they must stay on the thread that made them, as everything does in the SDK's
//! single-threaded wasm build (and in the tests below).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, RawWaker, RawWakerVTable, Waker};

/// A spawned future (`None` once it completed) and whether it was woken while polled.
struct Task {
    future: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>,
    woken: Cell<bool>,
}

/// Runs `future` to completion: polled now, then whenever it is woken.
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    let task = Rc::new(Task { future: RefCell::new(Some(Box::pin(future))), woken: Cell::new(false) });
    run(&task);
}

/// Polls the task until it completes or waits without having been woken meanwhile.
fn run(task: &Rc<Task>) {
    let Ok(mut slot) = task.future.try_borrow_mut() else {
        // Woken from inside its own poll: that poll's loop polls again.
        task.woken.set(true);
        return;
    };
    let waker = waker(task);
    let mut cx = Context::from_waker(&waker);
    loop {
        task.woken.set(false);
        // Completed: a late wake has nothing to do.
        let Some(future) = slot.as_mut() else { return };
        if future.as_mut().poll(&mut cx).is_ready() {
            // Dropping the future drops the wakers it lent out, so the task is freed.
            *slot = None;
            return;
        }
        if !task.woken.get() {
            return;
        }
    }
}

fn waker(task: &Rc<Task>) -> Waker {
    // SAFETY: the data pointer is an `Rc<Task>` turned into a raw pointer, and each
    // function of `VTABLE` keeps its strong count balanced; wakers never leave the
    // thread (module docs).
    unsafe { Waker::from_raw(raw_waker(Rc::clone(task))) }
}

fn raw_waker(task: Rc<Task>) -> RawWaker {
    RawWaker::new(Rc::into_raw(task).cast(), &VTABLE)
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake, wake_by_ref, drop_waker);

// SAFETY (the four functions below): `data` is a pointer made by `raw_waker` from an
// `Rc<Task>` that the waker owns, one strong count per waker.
unsafe fn clone_waker(data: *const ()) -> RawWaker {
    unsafe { Rc::increment_strong_count(data.cast::<Task>()) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    let task = unsafe { Rc::from_raw(data.cast::<Task>()) };
    run(&task);
}

unsafe fn wake_by_ref(data: *const ()) {
    let task = ManuallyDrop::new(unsafe { Rc::from_raw(data.cast::<Task>()) });
    run(&task);
}

unsafe fn drop_waker(data: *const ()) {
    drop(unsafe { Rc::from_raw(data.cast::<Task>()) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;

    /// A future that waits for `Signal::fire`, counting its polls; records its drop.
    #[derive(Default)]
    struct Signal {
        fired: Cell<bool>,
        waker: RefCell<Option<Waker>>,
        polls: Cell<u32>,
        dropped: Cell<bool>,
    }

    impl Signal {
        fn fire(&self) {
            self.fired.set(true);
            let waker = self.waker.borrow_mut().take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    struct WaitFor(Rc<Signal>);

    impl Future for WaitFor {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0.polls.set(self.0.polls.get() + 1);
            if self.0.fired.get() {
                return Poll::Ready(());
            }
            *self.0.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    impl Drop for WaitFor {
        fn drop(&mut self) {
            self.0.dropped.set(true);
        }
    }

    #[test]
    fn a_ready_future_runs_at_once_and_is_freed() {
        let signal = Rc::new(Signal::default());
        signal.fired.set(true);
        spawn(WaitFor(signal.clone()));
        assert_eq!(signal.polls.get(), 1);
        assert!(signal.dropped.get());
        assert_eq!(Rc::strong_count(&signal), 1, "nothing of the task is left");
    }

    #[test]
    fn a_waiting_future_runs_when_woken_and_later_wakes_do_nothing() {
        let signal = Rc::new(Signal::default());
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        let s = signal.clone();
        spawn(async move {
            WaitFor(s).await;
            d.set(true);
        });
        assert_eq!(signal.polls.get(), 1);
        assert!(!done.get());
        let spare = signal.waker.borrow().clone().expect("the future lent its waker");
        signal.fire();
        assert!(done.get(), "woken, it ran to the end at once");
        assert_eq!(signal.polls.get(), 2);
        assert!(signal.dropped.get());
        // A waker kept past the end wakes nothing and frees the task when dropped.
        spare.wake_by_ref();
        spare.wake();
        assert_eq!(signal.polls.get(), 2);
        assert_eq!(Rc::strong_count(&signal), 1);
    }

    #[test]
    fn a_wake_during_its_own_poll_polls_again() {
        let polls = Rc::new(Cell::new(0));
        let p = polls.clone();
        spawn(std::future::poll_fn(move |cx| {
            p.set(p.get() + 1);
            if p.get() < 3 {
                // Wakes itself while being polled, as a future yielding does.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(())
        }));
        assert_eq!(polls.get(), 3);
    }

    #[test]
    fn a_future_never_woken_is_freed_with_its_last_waker() {
        let signal = Rc::new(Signal::default());
        spawn(WaitFor(signal.clone()));
        assert!(!signal.dropped.get());
        // What a promise that never settles does when its callbacks are collected.
        drop(signal.waker.borrow_mut().take());
        assert!(signal.dropped.get());
        assert_eq!(Rc::strong_count(&signal), 1);
    }
}
