//! Criterion benches of the backup pipeline on one large file:
//! chunk, chunk+hash, and chunk -> hash -> compress -> pack (into a real
//! repository in a temp dir, packs fsynced and indexed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::atomic::AtomicU64;
use strata::backup::saver::BlobSaver;
use strata::backup::source::save_stream;
use strata::repo::keys::NewKey;
use strata::repo::{InitOptions, Repo};

/// 64 MiB of log-like text: compressible about 4x, like the seedlike logs.
fn text_data() -> Vec<u8> {
    let words = [
        "deploy", "build", "error", "session", "queue", "bridge", "message", "latency", "backup",
        "restore", "status", "retry",
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(64 << 20);
    let mut line = 0u64;
    while out.len() < 64 << 20 {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        out.extend_from_slice(
            format!(
                "{line:09} INFO {} {} id={}\n",
                words[(r % 12) as usize],
                words[((r >> 8) % 12) as usize],
                r >> 20
            )
            .as_bytes(),
        );
        line += 1;
    }
    out.truncate(64 << 20);
    out
}

fn bench(c: &mut Criterion) {
    let data = text_data();
    let mut g = c.benchmark_group("pipeline-64MiB-text");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init(&dir.path().join("r"), &InitOptions::default()).unwrap();
    let chunker = repo.chunker().clone();
    g.bench_function("chunk", |b| {
        b.iter(|| {
            chunker
                .stream(&data[..], data.len() as u64, |c| -> std::io::Result<()> {
                    std::hint::black_box(c.len());
                    Ok(())
                })
                .unwrap()
        })
    });
    g.bench_function("chunk+hash", |b| {
        b.iter(|| {
            chunker
                .stream(&data[..], data.len() as u64, |c| -> std::io::Result<()> {
                    std::hint::black_box(blake3::hash(c));
                    Ok(())
                })
                .unwrap()
        })
    });
    for encrypted in [false, true] {
        let name = if encrypted {
            "chunk+hash+zstd+pack+age"
        } else {
            "chunk+hash+zstd+pack"
        };
        g.bench_function(name, |b| {
            b.iter_with_setup(
                || {
                    let d = tempfile::tempdir().unwrap();
                    let opts = InitOptions {
                        key: encrypted.then(|| NewKey::Passphrase {
                            passphrase: "bench".to_string().into(),
                            log_n: Some(10),
                        }),
                        ..InitOptions::default()
                    };
                    let r = Repo::init(&d.path().join("r"), &opts).unwrap();
                    (d, r)
                },
                |(_d, r)| {
                    let saver = BlobSaver::new(&r).unwrap();
                    let progress = AtomicU64::new(0);
                    save_stream(&data[..], data.len() as u64, r.chunker(), &saver, &progress)
                        .map_err(|_| "save failed")
                        .unwrap();
                    saver.finish().unwrap();
                },
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
