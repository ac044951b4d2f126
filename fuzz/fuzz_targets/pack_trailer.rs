//! Any bytes as a whole pack file: header, footer and trailer checks
//! (format-spec/pack.md) return `Err` or entries that describe the file
//! exactly; decoding each accepted blob never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::pack::format::parse_pack;

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = parse_pack(data, "fuzz") else {
        return;
    };
    let mut next = 8u64;
    for e in &entries {
        assert_eq!(e.offset, next, "blobs are contiguous");
        next += u64::from(e.stored_len);
    }
    assert_eq!(
        next + 52 * entries.len() as u64 + 44,
        data.len() as u64,
        "entries, trailer and footer cover the file"
    );
    for e in &entries {
        let stored = &data[e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize];
        if let Ok(raw) =
            strata::blob::decompress(stored, e.compression, e.raw_len as usize, &|| "fuzz".into())
        {
            assert_eq!(raw.len(), e.raw_len as usize);
        }
    }
});
