//! The wasm build's global allocator (chosen by measurement: docs/SDK.md, "Size").
//! talc by default; the `alloc-lol` and `alloc-default` features exist only so
//! `scripts/size-levers.sh` can measure the alternatives in the same build.

#[cfg(not(any(feature = "alloc-lol", feature = "alloc-default")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

// SAFETY: the SDK's wasm build is single-threaded (no atomics), which is what
// `AssumeSingleThreaded` requires.
#[cfg(all(feature = "alloc-lol", not(feature = "alloc-default")))]
#[global_allocator]
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };
