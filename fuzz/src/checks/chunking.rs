//! Chunking: the ways one input is split into reads.

/// Splits `data` at `cuts` (each taken modulo `data.len() + 1`, then sorted).
pub fn split_at_cuts<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        chunks.push(&data[start..cut]);
        start = cut;
    }
    chunks.push(&data[start..]);
    chunks
}

/// Up to 8 cut points derived from one fuzzer byte (xorshift), for inputs of length `len`.
pub fn cuts_from_seed(seed: u8, len: usize) -> Vec<usize> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ (u64::from(seed) << 17) ^ len as u64;
    let n = usize::from(seed % 8) + 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (len as u64 + 1)) as usize
        })
        .collect()
}

/// Every chunking a check compares: whole, byte by byte, and at `cuts`.
pub(crate) fn chunkings<'a>(data: &'a [u8], cuts: &[usize]) -> [(&'static str, Vec<&'a [u8]>); 3] {
    [
        ("whole", vec![data]),
        ("byte by byte", data.chunks(1).collect()),
        ("at cuts", split_at_cuts(data, cuts)),
    ]
}
