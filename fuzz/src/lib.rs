//! Support for the fuzz targets: the invariant checks shared with `tests/properties.rs`
//! ([`checks`]), the counting allocator installed for every target, and the decoding of a
//! fuzz input's control bytes.

pub mod checks;

pub use checks::*;

#[global_allocator]
static ALLOC: checks::CountingAlloc = checks::CountingAlloc;

/// Splits a fuzz input into its control byte, its cut seed and its payload. Inputs shorter
/// than two bytes are all payload, with control byte and seed 0.
pub fn control(data: &[u8]) -> (u8, u8, &[u8]) {
    match data {
        [cfg, seed, payload @ ..] => (*cfg, *seed, payload),
        _ => (0, 0, data),
    }
}
