//! Any bytes as a tree blob (format-spec/objects.md "Tree body"): `Err`, or a
//! tree that is safe to restore (sorted unique safe names, known kinds,
//! directories with subtrees).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::BlobId;
use strata::snapshot::tree::{EntryKind, Tree, valid_name};

fuzz_target!(|data: &[u8]| {
    let Ok(t) = Tree::decode(data, &BlobId::of(data)) else {
        return;
    };
    for w in t.entries.windows(2) {
        assert!(w[0].name < w[1].name);
    }
    for e in &t.entries {
        assert!(valid_name(&e.name));
        let k = EntryKind::from_u8(e.kind).expect("known kind");
        assert!(k != EntryKind::Dir || e.subtree.is_some());
    }
    let again = Tree::decode(&t.encode().expect("encode"), &BlobId::of(data)).expect("re-decode");
    assert_eq!(again, t);
});
