//! The bump heap. Its pointer is the OPA ABI heap pointer: `opa_heap_ptr_get/set` read and
//! write it, `opa_eval` resets it, and `dealloc` is a no-op (everything is freed by the reset).
//! Running out of memory (the host's memory limit) fails the allocation, which traps.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::sync::atomic::{AtomicUsize, Ordering};

const PAGE: usize = 65_536;

/// The next free address; 0 until first used (then the policy's `heap_base`).
static NEXT: AtomicUsize = AtomicUsize::new(0);

pub fn pointer() -> usize {
    match NEXT.load(Ordering::Relaxed) {
        // SAFETY: a generated function that returns a constant.
        0 => unsafe { crate::hooks::heap_base() },
        p => p,
    }
}

pub fn set_pointer(p: usize) {
    NEXT.store(p, Ordering::Relaxed);
}

/// Grows the memory so that `end` is addressable.
fn ensure(end: usize) -> bool {
    let have = wasm32::memory_size(0) * PAGE;
    if end <= have {
        return true;
    }
    let pages = (end - have).div_ceil(PAGE);
    wasm32::memory_grow(0, pages) != usize::MAX
}

struct Bump;

// SAFETY: single-threaded (wasm32 without threads); every block is fresh memory past `NEXT`.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let start = pointer().next_multiple_of(layout.align());
        let Some(end) = start.checked_add(layout.size()) else {
            return core::ptr::null_mut();
        };
        if !ensure(end) {
            return core::ptr::null_mut();
        }
        set_pointer(end);
        start as *mut u8
    }

    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Growing the last block (the common case for strings being written) happens in place.
        if ptr as usize + layout.size() == pointer() && new_size >= layout.size() {
            let end = ptr as usize + new_size;
            if !ensure(end) {
                return core::ptr::null_mut();
            }
            set_pointer(end);
            return ptr;
        }
        // SAFETY: as `GlobalAlloc::realloc`'s default.
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            }
            new
        }
    }
}

#[global_allocator]
static ALLOCATOR: Bump = Bump;
