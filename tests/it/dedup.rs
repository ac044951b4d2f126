//! Deduplication: unchanged trees, repeated files and a one-byte insertion
//! cost (almost) nothing.

use crate::support;

use std::path::Path;
use support::{Fixture, disk_usage, num, random_bytes, stored_blobs, write_file};

/// A tree of ~14 MiB in nested directories: incompressible files of many
/// sizes (empty, small, some over the 1 MiB maximum chunk), compressible
/// text, and an empty directory; the bytes written.
fn dedup_tree(root: &Path) -> u64 {
    let sizes: Vec<usize> = (0..10)
        .map(|i| match i % 5 {
            0 => 0,
            1 => 100 + i * 37,
            2 => 40_000 + i * 1000,
            3 => 300_000,
            _ => 1_500_000 + i * 10,
        })
        .collect();
    let shape = support::Shape {
        big: &sizes,
        small: 3,
        small_len: 9000,
    };
    let mut total = 0;
    for d in 0..4u64 {
        total += support::make_tree(&root.join(format!("d{d}/sub{}", d % 3)), d, shape);
    }
    std::fs::create_dir_all(root.join("empty")).unwrap();
    total
}

#[track_caller]
fn assert_under_1pct(what: &str, added: u64, total: u64) {
    assert!(
        added * 100 < total,
        "{what}: {added} bytes added for a {total}-byte tree (>= 1%)"
    );
}

#[test]
fn unchanged_tree_adds_under_one_percent() {
    let fx = Fixture::new();
    let src = fx.path("src/data");
    let total = dedup_tree(&src);
    let first = fx.strata.snapshot(&[&src]);
    assert_eq!(num(&first, "summary/total_bytes"), total);
    assert!(num(&first, "summary/stored_added") > total / 2, "{first}");
    let (data_blobs, _) = stored_blobs(fx.strata.repo());

    let runs: [&[&str]; 3] = [
        &[],                  // parent found: nothing is read
        &["--force-rehash"],  // everything read, nothing new
        &["--host", "other"], // no parent at all: dedup by the index alone
    ];
    for extra in runs {
        let du_before = disk_usage(fx.strata.repo());
        let mut args: Vec<&std::ffi::OsStr> = vec![src.as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let s = fx.strata.snapshot(&args);
        let du_after = disk_usage(fx.strata.repo());
        let what = format!("snapshot {extra:?}");
        assert_eq!(num(&s, "summary/total_bytes"), total, "{what}: {s}");
        assert_under_1pct(&what, num(&s, "summary/bytes_added"), total);
        assert_under_1pct(&what, num(&s, "summary/stored_added"), total);
        assert_under_1pct(
            &format!("{what} (du)"),
            du_after.saturating_sub(du_before),
            total,
        );
        // the same tree twice: the very same data blobs
        assert_eq!(stored_blobs(fx.strata.repo()).0, data_blobs, "{what}");
        let expect_read = if extra.is_empty() { 0 } else { total };
        assert_eq!(num(&s, "summary/bytes_read"), expect_read, "{what}: {s}");
        // an unchanged tree is the same tree: `diff` finds nothing under it
        // (the root tree itself may differ: it records the ancestors, and
        // other tests change /tmp's mtime meanwhile)
        let diff = support::ok(
            fx.strata.repo(),
            &[],
            &[
                "diff",
                first["id"].as_str().unwrap(),
                s["id"].as_str().unwrap(),
            ],
        );
        let inside = format!("{}/", src.display());
        assert!(!diff.lines().any(|l| l.contains(&inside)), "{what}: {diff}");
    }
}

#[test]
fn file_copied_ten_times_is_stored_once() {
    const LEN: usize = 4 << 20;
    let content = random_bytes(42, LEN);

    // the chunks of one copy, in a repository of its own (both unencrypted:
    // encrypted repositories have different chunk boundaries by design)
    let one = Fixture::with_init(&["--no-encryption"]);
    write_file(&one.path("src/data/only"), &content);
    let s1 = one.strata.snapshot(&[one.path("src/data")]);
    let (one_blobs, _) = stored_blobs(one.strata.repo());
    assert!(one_blobs >= 4, "4 MiB in chunks of at most 1 MiB");

    let fx = Fixture::with_init(&["--no-encryption"]);
    let src = fx.path("src/data");
    for i in 0..10 {
        write_file(&src.join(format!("dir{}/copy{i}.bin", i % 3)), &content);
    }
    let du_before = disk_usage(fx.strata.repo());
    let s = fx.strata.snapshot(&[&src]);
    let du_growth = disk_usage(fx.strata.repo()) - du_before;

    assert_eq!(num(&s, "summary/total_bytes"), 10 * LEN as u64);
    assert_eq!(num(&s, "summary/files_new"), 10);
    assert_eq!(stored_blobs(fx.strata.repo()).0, one_blobs, "{s}");
    let added = num(&s, "summary/bytes_added");
    assert!(
        (LEN as u64..LEN as u64 + (64 << 10)).contains(&added),
        "bytes_added {added} for one {LEN}-byte file stored ten times"
    );
    // the same bytes as the single copy, plus a few more tree blobs
    let stored = num(&s, "summary/stored_added");
    let stored_one = num(&s1, "summary/stored_added");
    assert!(
        stored >= stored_one && stored < stored_one + (64 << 10),
        "stored_added {stored} for ten copies, {stored_one} for one"
    );
    assert!(
        du_growth < LEN as u64 + LEN as u64 / 20 + (256 << 10),
        "repository grew by {du_growth} bytes for one {LEN}-byte file"
    );
}

#[test]
fn one_byte_inserted_in_64_mib_adds_at_most_three_chunks() {
    const LEN: usize = 64 << 20;
    let fx = Fixture::new();
    let src = fx.path("src/data");
    let file = src.join("big.bin");
    let mut data = random_bytes(7, LEN);
    write_file(&file, &data);
    let first = fx.strata.snapshot(&[&src]);
    assert_eq!(num(&first, "summary/bytes_read"), LEN as u64);
    let (data_before, tree_before) = stored_blobs(fx.strata.repo());
    assert!(data_before >= 64, "64 MiB in chunks of at most 1 MiB");

    data.insert(LEN / 2 + 12_345, 0x42);
    std::fs::write(&file, &data).unwrap();
    let s = fx.strata.snapshot(&[&src]);
    assert_eq!(num(&s, "summary/files_changed"), 1, "{s}");
    assert_eq!(num(&s, "summary/bytes_read"), LEN as u64 + 1);
    let (data_after, tree_after) = stored_blobs(fx.strata.repo());
    let new_data = data_after - data_before;
    assert!(
        (1..=3).contains(&new_data),
        "{new_data} data blobs added for a one-byte insertion"
    );
    // the trees of the file's directory and of each of its ancestors up to
    // the root changed (the snapshot keeps /tmp/.../src/data), nothing else
    let depth = src.components().count() as u64;
    assert_eq!(tree_after - tree_before, depth);
    assert_eq!(num(&s, "summary/blobs_added"), new_data + depth, "{s}");
    assert!(
        num(&s, "summary/bytes_added") <= 3 * (1 << 20) + (16 << 10),
        "{s}"
    );

    // and the new version restores byte for byte
    let target = fx.path("restored");
    fx.strata.restore("latest", &target, &[] as &[&str]);
    assert!(std::fs::read(support::under(&target, &file)).unwrap() == data);
}

/// A large directory is stored in content-defined parts (objects.md
/// "Parts"): deleting and adding a few of its 10 000 entries rewrites a few
/// parts, not the whole listing, and the result restores exactly.
#[test]
fn large_directory_change_rewrites_few_tree_parts() {
    let fx = Fixture::new();
    let src = fx.path("src/big");
    for i in 0..10_000u64 {
        write_file(
            &src.join(format!("{i:07}.json")),
            format!("{{\"id\":{i}}}\n").as_bytes(),
        );
    }
    let first = fx.strata.snapshot(&[&src]);
    let (_, trees_before) = stored_blobs(fx.strata.repo());
    // ~10 000 entries of ~70 bytes (the contents are inline) in parts of
    // ~16 KiB: ~40 parts + the index tree + the root tree
    assert!(
        trees_before > 25,
        "expected a parted listing, got {trees_before} tree blobs"
    );

    std::fs::remove_file(src.join("0001234.json")).unwrap();
    std::fs::remove_file(src.join("0002345.json")).unwrap();
    write_file(&src.join("0099999.json"), b"{\"id\":99999}\n");
    let second = fx.strata.snapshot(&[&src]);
    assert_eq!(num(&second, "summary/files_unchanged"), 9998);
    let (_, trees_after) = stored_blobs(fx.strata.repo());
    let new_trees = trees_after - trees_before;
    // the changed parts (at most two per edit), the index tree, and the
    // trees of its ancestors up to the root (one per component of `src`)
    let ancestors = src.components().count() as u64 - 1;
    assert!(
        new_trees <= 7 + ancestors,
        "{new_trees} new tree blobs for 3 edits"
    );
    // every byte added is a tree's (the new file is inline); a few of ~40
    // parts were rewritten, not the listing
    let tree_bytes = num(&second, "summary/bytes_added");
    assert!(
        tree_bytes * 4 < num(&first, "summary/bytes_added"),
        "second snapshot added {tree_bytes} tree bytes"
    );
    let out = fx.path("out");
    fx.strata.restore("latest", &out, &[] as &[&str]);
    support::assert_same_tree(&src, &support::under(&out, &src));
}

/// A large directory's tree is saved part by part while its children are
/// read (backup/treestream.rs), and is the tree of the whole listing: an
/// incremental snapshot that reuses most parts and fills in inline contents
/// from the parent's parts gives the same root tree as one that reads every
/// file again, and restores exactly.
#[test]
fn streamed_large_directory_tree_equals_the_tree_read_from_scratch() {
    let fx = Fixture::new();
    let src = fx.path("src/big");
    let pad = |i: u64| "x".repeat((i % 97) as usize);
    for i in 0..3000u64 {
        write_file(
            &src.join(format!("{i:05}.json")),
            format!("{{\"id\":{i},\"pad\":\"{}\"}}\n", pad(i)).as_bytes(),
        );
    }
    let first = fx.strata.snapshot(&[&src]);
    // edits spread over the parts: changed, removed and added entries
    for i in (0..3000u64).step_by(311) {
        write_file(&src.join(format!("{i:05}.json")), b"changed\n");
    }
    std::fs::remove_file(src.join("01500.json")).unwrap();
    write_file(&src.join("02999a.json"), b"new\n");
    let incremental = fx.strata.snapshot(&[&src]);
    assert_eq!(num(&incremental, "summary/files_unchanged"), 2989);
    let again = fx
        .strata
        .snapshot(&["--force-rehash".as_ref(), src.as_os_str()]);
    assert_eq!(num(&again, "summary/files_unchanged"), 0);
    assert_ne!(first["tree"], incremental["tree"]);
    assert_eq!(
        incremental["tree"], again["tree"],
        "{incremental} vs {again}"
    );
    assert!(incremental["tree"].is_string());
    let out = fx.path("out");
    fx.strata.restore("latest", &out, &[] as &[&str]);
    support::assert_same_tree(&src, &support::under(&out, &src));
}
