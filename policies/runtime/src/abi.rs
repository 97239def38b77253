//! The OPA Wasm ABI exports (<https://www.openpolicyagent.org/docs/wasm>), as `opa-wasm` calls
//! them. Values handed to the host are addresses of [`Value`]s on the bump heap; strings are
//! NUL-terminated. The ABI version globals are added by the compiler after linking: Rust cannot
//! export a global that holds a plain number.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;

use crate::json::{self, Value};
use crate::{heap, policy};

/// The one entrypoint every compiled policy has (id 0).
const ENTRYPOINT: &str = "kdr/policy/result";

fn leak(v: Value) -> usize {
    Box::leak(Box::new(v)) as *mut Value as usize
}

fn value<'a>(addr: usize) -> Option<&'a Value> {
    // SAFETY: addresses the host passes back are ones this module returned (or 0).
    (addr != 0).then(|| unsafe { &*(addr as *const Value) })
}

fn c_string(mut s: String) -> usize {
    s.push('\0');
    let bytes: &'static mut str = s.leak();
    bytes.as_ptr() as usize
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_malloc(size: usize) -> usize {
    let Ok(layout) = Layout::from_size_align(size.max(1), 8) else { return 0 };
    // SAFETY: a non-zero size; a null result (out of memory) traps in the host's reading.
    unsafe { alloc::alloc::alloc(layout) as usize }
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_free(_: usize) {}

#[unsafe(no_mangle)]
pub extern "C" fn opa_heap_ptr_get() -> usize {
    heap::pointer()
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_heap_ptr_set(p: usize) {
    heap::set_pointer(p);
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_json_parse(ptr: usize, len: usize) -> usize {
    // SAFETY: the host wrote `len` bytes at `ptr` (memory it got from `opa_malloc`).
    let text = unsafe { core::slice::from_raw_parts(ptr as *const u8, len) };
    json::parse(text).map_or(0, leak)
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_json_dump(addr: usize) -> usize {
    let mut out = String::new();
    match value(addr) {
        Some(v) => json::dump(v, &mut out),
        None => out.push_str("null"),
    }
    c_string(out)
}

#[unsafe(no_mangle)]
pub extern "C" fn builtins() -> usize {
    leak(Value::Object(Vec::new()))
}

#[unsafe(no_mangle)]
pub extern "C" fn entrypoints() -> usize {
    leak(Value::Object(alloc::vec![(ENTRYPOINT.into(), Value::Int(0))]))
}

struct Context {
    input: usize,
    entrypoint: u32,
    result: usize,
}

fn context<'a>(addr: usize) -> &'a mut Context {
    // SAFETY: the host passes back the address `opa_eval_ctx_new` returned.
    unsafe { &mut *(addr as *mut Context) }
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_new() -> usize {
    Box::leak(Box::new(Context {
        input: 0,
        entrypoint: 0,
        result: 0,
    })) as *mut Context as usize
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_set_input(ctx: usize, input: usize) {
    context(ctx).input = input;
}

/// Policies take everything from the input; `data` is accepted and unused.
#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_set_data(_: usize, _: usize) {}

#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_set_entrypoint(ctx: usize, entrypoint: u32) {
    context(ctx).entrypoint = entrypoint;
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_get_result(ctx: usize) -> usize {
    context(ctx).result
}

fn evaluate(entrypoint: u32, input: Option<&Value>) -> String {
    if entrypoint != 0 {
        // Undefined, as OPA answers for an entrypoint it does not have.
        return "[]".into();
    }
    policy::run(input)
}

#[unsafe(no_mangle)]
pub extern "C" fn eval(ctx: usize) -> u32 {
    let c = context(ctx);
    let result = evaluate(c.entrypoint, value(c.input));
    c.result = leak(Value::Raw(result));
    0
}

/// The one-call fast path (ABI 1.2): the host has written the input at `input_ptr`; the heap
/// starts after it.
#[unsafe(no_mangle)]
pub extern "C" fn opa_eval(
    _reserved: u32,
    entrypoint: u32,
    _data: usize,
    input_ptr: usize,
    input_len: usize,
    heap_ptr: usize,
    _format: u32,
) -> usize {
    heap::set_pointer(heap_ptr);
    // SAFETY: the host wrote `input_len` bytes of JSON at `input_ptr`.
    let text = unsafe { core::slice::from_raw_parts(input_ptr as *const u8, input_len) };
    let input = json::parse(text);
    c_string(evaluate(entrypoint, input.as_ref()))
}
