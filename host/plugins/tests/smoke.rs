use kast_engine::keys::KdfParams;
use kast_engine::{BackupOptions, CreateOptions, RestoreOptions, Store};

#[test]
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/a.txt"), b"hello").unwrap();
    std::fs::write(src.join("b.bin"), vec![7u8; 3_000_000]).unwrap();
    let host = kast_plugins::Host::new(Some(dir.path().join("cache")), None).unwrap();
    let t = std::time::Instant::now();
    let storage = host
        .storage(dir.path().join("store").to_str().unwrap())
        .unwrap();
    eprintln!("storage open {:?}", t.elapsed());
    let options = CreateOptions {
        kdf: KdfParams::insecure_for_tests(),
        ..Default::default()
    };
    let store = Store::create(storage, b"pw", &options, None).unwrap();
    let source = host.source(src.to_str().unwrap()).unwrap();
    let out = kast_engine::backup(&store, &source, &BackupOptions::default()).unwrap();
    eprintln!("{:?}", out.snapshot.summary);
    let dest = host
        .destination(dir.path().join("out").to_str().unwrap())
        .unwrap();
    let r = kast_engine::restore(&store, &out.id, b"", &dest, &RestoreOptions::default()).unwrap();
    eprintln!("{r:?}");
    assert_eq!(
        std::fs::read(dir.path().join("out/sub/a.txt")).unwrap(),
        b"hello"
    );
    assert_eq!(
        std::fs::read(dir.path().join("out/b.bin")).unwrap().len(),
        3_000_000
    );
    let report = kast_engine::check::check(&store, &Default::default()).unwrap();
    assert!(report.is_clean(), "{:?}", report.damage);
}
