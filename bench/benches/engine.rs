//! Per-stage throughput of the engine, and a whole backup and restore of
//! the 1 GiB benchmark tree to a native local store.
//!
//! `cargo bench -p kast-bench` runs everything; `-- stages` only the stages.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kast_bench::{benchmark_tree, data_dir, random_bytes, text_bytes};
use kast_engine::blob::{self, BlobKind};
use kast_engine::chunker::Chunker;
use kast_engine::config::ChunkerParams;
use kast_engine::crypto::{Domain, Keys, MasterKey};
use kast_engine::keys::KdfParams;
use kast_engine::local::{LocalDestination, LocalSource};
use kast_engine::storage::LocalStorage;
use kast_engine::{BackupOptions, CreateOptions, RestoreOptions, Store};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

const MIB: usize = 1 << 20;

fn keys() -> Keys {
    Keys::derive(&MasterKey::generate().unwrap())
}

fn stages(c: &mut Criterion) {
    let random = random_bytes(64 * MIB, 7);
    let text = text_bytes(64 * MIB, 8);
    let keys = keys();
    let mut g = c.benchmark_group("stages");
    g.throughput(Throughput::Bytes(random.len() as u64));
    g.sample_size(10);
    let chunker = Chunker::new(ChunkerParams::default(), keys.chunker_seed());
    g.bench_function("fastcdc 512K/1M/8M", |b| {
        b.iter(|| {
            chunker
                .chunks(&random[..])
                .map(|c| c.unwrap().len())
                .sum::<usize>()
        })
    });
    g.bench_function("keyed blake3 1 MiB pieces", |b| {
        b.iter(|| {
            random
                .chunks(MIB)
                .fold(0u8, |acc, c| acc ^ keys.blob_id(c).0[0])
        })
    });
    for (name, data) in [("random", &random), ("text", &text)] {
        g.bench_function(format!("lz4 compress {name}"), |b| {
            b.iter(|| {
                data.chunks(MIB)
                    .map(|c| lz4_flex::block::compress(c).len())
                    .sum::<usize>()
            })
        });
    }
    g.bench_function("xchacha20-poly1305 seal 1 MiB", |b| {
        b.iter(|| {
            random
                .chunks(MIB)
                .map(|c| keys.seal(Domain::Blob, b"", c).unwrap().len())
                .sum::<usize>()
        })
    });
    g.bench_function("blob seal (compress+seal) random", |b| {
        let id = keys.blob_id(&random[..MIB]);
        b.iter(|| {
            random
                .chunks(MIB)
                .map(|c| blob::seal(&keys, BlobKind::Data, &id, c).unwrap().len())
                .sum::<usize>()
        })
    });
    g.finish();
}

fn fresh_store(dir: &std::path::Path) -> Store {
    let options = CreateOptions {
        kdf: KdfParams::insecure_for_tests(),
        ..Default::default()
    };
    Store::create(
        Arc::new(LocalStorage::new(dir.join("store"))),
        b"bench",
        &options,
        Some(dir.join("cache")),
    )
    .unwrap()
}

fn whole(c: &mut Criterion) {
    let tree = benchmark_tree(&data_dir()).unwrap();
    let total: u64 = 8 * 96 * MIB as u64 + 256 * MIB as u64;
    let mut g = c.benchmark_group("native 1 GiB");
    g.throughput(Throughput::Bytes(total));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(40));
    let source = LocalSource::new(&tree).unwrap();
    g.bench_function("backup", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir_in(data_dir()).unwrap();
                let store = fresh_store(dir.path());
                (dir, store)
            },
            |(dir, store)| {
                black_box(kast_engine::backup(&store, &source, &BackupOptions::default()).unwrap());
                dir
            },
            BatchSize::PerIteration,
        )
    });
    let dir = tempfile::tempdir_in(data_dir()).unwrap();
    let store = fresh_store(dir.path());
    let snap = kast_engine::backup(&store, &source, &BackupOptions::default()).unwrap();
    g.bench_function("restore", |b| {
        b.iter_batched(
            || tempfile::tempdir_in(data_dir()).unwrap(),
            |out| {
                let dest = LocalDestination::new(out.path()).unwrap();
                black_box(
                    kast_engine::restore(&store, &snap.id, b"", &dest, &RestoreOptions::default())
                        .unwrap(),
                );
                out
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, stages, whole);
criterion_main!(benches);
