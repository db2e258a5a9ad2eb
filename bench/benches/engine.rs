//! Per-stage throughput of the engine, and a whole backup and restore of
//! the 1 GiB benchmark tree, through the native local connectors and
//! through the fs WASM plugins in the same run (the price of the boundary),
//! plus the start-up cost of a plugin with a cold and a warm compile cache.
//!
//! `cargo bench -p kast-bench` runs everything; `-- stages` only the stages,
//! `-- "1 GiB"` the whole runs, `-- startup` the plugin start-up.

use criterion::{BatchSize, Criterion, Throughput};
use kast_bench::{benchmark_tree, data_dir, random_bytes, text_bytes};
use kast_engine::blob::{BlobKind, Sealer};
use kast_engine::chunker::Chunker;
use kast_engine::config::ChunkerParams;
use kast_engine::crypto::{Domain, Keys, MasterKey};
use kast_engine::keys::KdfParams;
use kast_engine::native::local::{LocalDestination, LocalSource};
use kast_engine::storage::LocalStorage;
use kast_engine::{BackupOptions, Compression, CreateOptions, RestoreOptions, Store};
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
        for level in [1, 3] {
            g.bench_function(format!("zstd:{level} compress {name}"), |b| {
                let mut zstd = zstd::bulk::Compressor::new(level).unwrap();
                b.iter(|| {
                    data.chunks(MIB)
                        .map(|c| zstd.compress(c).unwrap().len())
                        .sum::<usize>()
                })
            });
        }
    }
    g.bench_function("xchacha20-poly1305 seal 1 MiB", |b| {
        b.iter(|| {
            random
                .chunks(MIB)
                .map(|c| keys.seal(Domain::Blob, b"", c).unwrap().len())
                .sum::<usize>()
        })
    });
    for codec in [Compression::Lz4, Compression::default()] {
        g.bench_function(format!("blob seal ({codec} + seal) random"), |b| {
            let id = keys.blob_id(&random[..MIB]);
            let mut sealer = Sealer::new(codec);
            let mut out = Vec::new();
            b.iter(|| {
                random
                    .chunks(MIB)
                    .map(|c| {
                        out.clear();
                        sealer
                            .seal_into(&keys, BlobKind::Data, &id, c, &mut out)
                            .unwrap();
                        out.len()
                    })
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

fn fresh_store(storage: Arc<dyn kast_engine::Storage>, cache: &std::path::Path) -> Store {
    let options = CreateOptions {
        kdf: KdfParams::insecure_for_tests(),
        ..Default::default()
    };
    Store::create(storage, b"bench", &options, Some(cache.to_path_buf())).unwrap()
}

/// How the whole runs reach the disk: the engine's native connectors, or
/// the built-in fs plugins.
enum Via {
    Native,
    Wasm(kast_plugins::Host),
}

impl Via {
    fn name(&self) -> &'static str {
        match self {
            Via::Native => "native",
            Via::Wasm(_) => "wasm",
        }
    }

    fn storage(&self, path: &std::path::Path) -> Arc<dyn kast_engine::Storage> {
        match self {
            Via::Native => Arc::new(LocalStorage::new(path)),
            Via::Wasm(host) => host
                .new_storage(&format!("fs://{}", path.display()))
                .unwrap(),
        }
    }

    fn source(&self, path: &std::path::Path) -> Box<dyn kast_engine::Source> {
        match self {
            Via::Native => Box::new(LocalSource::new(path).unwrap()),
            Via::Wasm(host) => Box::new(host.source(&format!("fs://{}", path.display())).unwrap()),
        }
    }

    fn destination(&self, path: &std::path::Path) -> Box<dyn kast_engine::Destination> {
        match self {
            Via::Native => Box::new(LocalDestination::new(path).unwrap()),
            Via::Wasm(host) => Box::new(
                host.destination(&format!("fs://{}", path.display()))
                    .unwrap(),
            ),
        }
    }
}

fn whole(c: &mut Criterion) {
    let tree = benchmark_tree(&data_dir()).unwrap();
    let total: u64 = 8 * 96 * MIB as u64 + 256 * MIB as u64;
    let mut g = c.benchmark_group("1 GiB");
    g.throughput(Throughput::Bytes(total));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(40));
    let plugin_cache = tempfile::tempdir_in(data_dir()).unwrap();
    let host = kast_plugins::Host::new(Some(plugin_cache.path().to_path_buf()), None).unwrap();
    // Alternate native and wasm so both see the same machine state.
    for via in [Via::Native, Via::Wasm(host)] {
        let source = via.source(&tree);
        g.bench_function(format!("backup {}", via.name()), |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir_in(data_dir()).unwrap();
                    let store = fresh_store(
                        via.storage(&dir.path().join("store")),
                        &dir.path().join("cache"),
                    );
                    (dir, store)
                },
                |(dir, store)| {
                    black_box(
                        kast_engine::backup(&store, &*source, &BackupOptions::default()).unwrap(),
                    );
                    dir
                },
                BatchSize::PerIteration,
            )
        });
        let dir = tempfile::tempdir_in(data_dir()).unwrap();
        let store = fresh_store(
            via.storage(&dir.path().join("store")),
            &dir.path().join("cache"),
        );
        let snap = kast_engine::backup(&store, &*source, &BackupOptions::default()).unwrap();
        g.bench_function(format!("restore {}", via.name()), |b| {
            b.iter_batched(
                || tempfile::tempdir_in(data_dir()).unwrap(),
                |out| {
                    let dest = via.destination(out.path());
                    black_box(
                        kast_engine::restore(
                            &store,
                            &snap.id,
                            b"",
                            &*dest,
                            &RestoreOptions::default(),
                        )
                        .unwrap(),
                    );
                    out
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// What a command pays before doing any work: the runtime, the plugin
/// (compiled, or loaded precompiled from the cache), one instance opened.
fn startup(c: &mut Criterion) {
    let mut g = c.benchmark_group("startup");
    g.sample_size(10);
    let target = tempfile::tempdir().unwrap();
    let url = format!("fs://{}", target.path().display());
    g.bench_function("fs plugin, cold cache", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |cache| {
                let host = kast_plugins::Host::new(Some(cache.path().to_path_buf()), None).unwrap();
                black_box(host.storage(&url).unwrap());
                cache
            },
            BatchSize::PerIteration,
        )
    });
    let cache = tempfile::tempdir().unwrap();
    drop(
        kast_plugins::Host::new(Some(cache.path().to_path_buf()), None)
            .unwrap()
            .storage(&url)
            .unwrap(),
    );
    g.bench_function("fs plugin, warm cache", |b| {
        b.iter(|| {
            let host = kast_plugins::Host::new(Some(cache.path().to_path_buf()), None).unwrap();
            black_box(host.storage(&url).unwrap())
        })
    });
    g.finish();
}

/// Runs the groups the command line picks: what criterion's
/// `criterion_group!`/`criterion_main!` pair writes, spelled out so the
/// entry point is documented like the rest.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    stages(&mut criterion);
    whole(&mut criterion);
    startup(&mut criterion);
    criterion.final_summary();
}
