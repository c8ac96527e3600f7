//! Regression tests for what fuzzing (fuzz/, cargo-fuzz) and the memory review of the
//! decoders found. Each embeds the hostile input and asserts the fixed behaviour: a
//! typed error (not only "no panic") and, where memory was the problem, a bound on what
//! the decoder allocates.
//!
//! The allocation bound is measured with a counting global allocator; the measured
//! sections are serialised by a lock so parallel tests do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use nodes::content::cbor::{self, CborError, MAX_ENCODED_LEN, MAX_ITEMS};

/// Counts live heap bytes and the peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static MEASURE: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result and the peak heap growth (bytes) while it ran. The
/// caller holds [`MEASURE`] for the whole test (building its input included), so that no
/// other measuring test allocates meanwhile.
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

/// 16 nested CBOR arrays, each declaring as many elements as bytes remain after its head
/// (about 2^20), padded with zeros to [`MAX_ENCODED_LEN`].
fn nested_declared_arrays() -> Vec<u8> {
    let mut b = Vec::with_capacity(MAX_ENCODED_LEN);
    for level in 0..16 {
        let remaining = MAX_ENCODED_LEN - 5 * (level + 1);
        b.push(0x9a);
        b.extend_from_slice(&(remaining as u32).to_be_bytes());
    }
    b.resize(MAX_ENCODED_LEN, 0);
    b
}

/// Each array used to reserve its declared length (capped only by the bytes left) before
/// reading an element, so one 1 MiB input reserved 16 × 2^20 `Value`s (about 512 MiB)
/// before the item limit stopped it. Now a container counts its elements against
/// [`MAX_ITEMS`] before it allocates: the input is refused at the outer array's head.
#[test]
fn cbor_nested_declared_lengths_do_not_preallocate() {
    let _g = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let input = nested_declared_arrays();
    let (r, grew) = peak_growth(|| cbor::decode(&input));
    assert_eq!(r, Err(CborError::TooManyItems { limit: MAX_ITEMS }));
    assert!(grew < 1 << 20, "decoder allocated {grew} bytes");
}

/// Within the item limit, nested containers together reserve at most [`MAX_ITEMS`]
/// slots: 15 nested arrays of (MAX_ITEMS / 16) elements each, declared but truncated.
#[test]
fn cbor_nested_arrays_within_the_item_limit_reserve_at_most_the_limit() {
    let _g = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let n = (MAX_ITEMS / 16) as u32;
    let mut input = Vec::new();
    for _ in 0..15 {
        input.push(0x99);
        input.extend_from_slice(&(n as u16).to_be_bytes());
    }
    input.resize(n as usize + 100, 0);
    let (r, grew) = peak_growth(|| cbor::decode(&input));
    assert!(matches!(r, Err(CborError::Truncated { .. })), "{r:?}");
    // MAX_ITEMS values of 32 bytes at most, plus the decoder's own small allocations.
    assert!(
        grew <= MAX_ITEMS * 32 + (64 << 10),
        "decoder allocated {grew} bytes"
    );
}
