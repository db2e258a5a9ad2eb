//! A real 3-node Garage cluster on loopback, for the S3 tests: three
//! `garage server` processes with their own config, data and ports, one
//! shared RPC secret, replication factor 3, a bucket and a key; killed on
//! drop. `scripts/setup` installs the `garage` binary once.

use super::{free_port, signal_tree, wait_for_banner};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The bucket the cluster is made with.
pub const BUCKET: &str = "kast";

/// A running cluster; its processes are killed on drop.
pub struct Garage {
    /// Config and data of every node.
    pub dir: tempfile::TempDir,
    /// Each node's S3 port.
    pub s3_ports: Vec<u16>,
    rpc_ports: Vec<u16>,
    children: Vec<Option<Child>>,
    /// The S3 access key id with rights on [`BUCKET`].
    pub key_id: String,
    /// Its secret.
    pub secret: String,
}

fn garage(config: &Path, args: &[&str]) -> String {
    try_garage(config, args).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the garage CLI; its stderr as the error when it fails.
fn try_garage(config: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("garage")
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .expect("run garage (scripts/setup installs it)");
    if !out.status.success() {
        return Err(format!(
            "garage {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8(out.stdout).unwrap())
}

impl Garage {
    /// Starts three nodes, joins them, and makes the bucket and key.
    /// Tests start clusters in parallel and each picks free ports before
    /// binding them, so two may pick the same one: a node then reaches
    /// another cluster's, the handshake fails, and the cluster is started
    /// again on new ports.
    pub fn start() -> Garage {
        let mut attempt = 1;
        loop {
            match Self::try_start() {
                Ok(g) => return g,
                Err(e) if attempt < 3 => {
                    eprintln!("garage cluster did not form, again on new ports: {e}");
                    attempt += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn try_start() -> Result<Garage, String> {
        let dir = tempfile::tempdir().unwrap();
        let secret = String::from_utf8(
            Command::new("openssl")
                .args(["rand", "-hex", "32"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let mut g = Garage {
            s3_ports: (0..3).map(|_| free_port()).collect(),
            rpc_ports: (0..3).map(|_| free_port()).collect(),
            children: Vec::new(),
            key_id: String::new(),
            secret: String::new(),
            dir,
        };
        for node in 0..3 {
            let d = g.dir.path().join(format!("node{node}"));
            std::fs::create_dir(&d).unwrap();
            std::fs::write(
                d.join("garage.toml"),
                format!(
                    "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\n\
                     db_engine = \"sqlite\"\nreplication_factor = 3\n\
                     rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                     rpc_secret = \"{secret}\"\n[s3_api]\ns3_region = \"garage\"\n\
                     api_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n",
                    d = d.display(),
                    rpc = g.rpc_ports[node],
                    s3 = g.s3_ports[node],
                    secret = secret.trim(),
                ),
            )
            .unwrap();
            g.children.push(None);
            g.launch(node);
        }
        let config = g.config(0);
        for node in 1..3 {
            let id = try_garage(&g.config(node), &["node", "id", "-q"])?;
            try_garage(&config, &["node", "connect", id.trim()])?;
        }
        for node in 0..3 {
            let id = garage(&g.config(node), &["node", "id", "-q"]);
            let short = &id.trim()[..16];
            let zone = format!("dc{node}");
            garage(
                &config,
                &["layout", "assign", "-z", &zone, "-c", "1G", short],
            );
        }
        garage(&config, &["layout", "apply", "--version", "1"]);
        garage(&config, &["bucket", "create", BUCKET]);
        (g.key_id, g.secret) = g.create_key("kast-test");
        garage(
            &config,
            &[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                BUCKET,
                "--key",
                "kast-test",
            ],
        );
        std::fs::write(g.path("secret"), format!("{}\n", g.secret)).unwrap();
        Ok(g)
    }

    /// A new key, its id and secret, with no access to any bucket yet.
    pub fn create_key(&self, name: &str) -> (String, String) {
        let key = garage(&self.config(0), &["key", "create", name]);
        let field = |label: &str| {
            key.lines()
                .find_map(|l| l.strip_prefix(label))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {label} in {key}"))
        };
        (field("Key ID:"), field("Secret key:"))
    }

    /// A path inside the cluster's temporary folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self, node: usize) -> PathBuf {
        self.path(&format!("node{node}/garage.toml"))
    }

    fn launch(&mut self, node: usize) {
        let log = self.path(&format!("node{node}/log"));
        let child = Command::new("garage")
            .arg("-c")
            .arg(self.config(node))
            .arg("server")
            // Each node logs every S3 request it serves (see `requests`).
            .env("RUST_LOG", "warn,garage_api_common=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start garage (scripts/setup installs it)");
        self.children[node] = Some(child);
        // Any HTTP answer on the S3 port means the node is up.
        wait_for_banner(self.s3_ports[node], b"", &log);
    }

    /// `s3+http://127.0.0.1:PORT/kast/PREFIX` through `node`, with the key.
    pub fn url(&self, node: usize, prefix: &str) -> String {
        self.url_at(
            &format!("s3+http://127.0.0.1:{}", self.s3_ports[node]),
            prefix,
        )
    }

    /// The bucket's `prefix` through `endpoint` (such as a TLS proxy in
    /// front of a node), with the key.
    pub fn url_at(&self, endpoint: &str, prefix: &str) -> String {
        format!(
            "{endpoint}/{BUCKET}/{prefix}?region=garage&access_key_id={}&secret_access_key_file={}",
            self.key_id,
            self.path("secret").display()
        )
    }

    /// The S3 requests the cluster has served so far, as `PORT METHOD
    /// /path?query` lines from the nodes' logs: what a test checks the
    /// plugin sent.
    pub fn requests(&self) -> Vec<String> {
        (0..self.s3_ports.len())
            .flat_map(|node| {
                std::fs::read_to_string(self.path(&format!("node{node}/log")))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| !l.contains("error") && !l.contains("listening"))
                    .filter_map(|l| l.split_once(" 127.0.0.1:").map(|(_, r)| r.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Kills one node, as a crash would.
    pub fn kill(&mut self, node: usize) {
        if let Some(mut child) = self.children[node].take() {
            signal_tree(child.id(), "-KILL");
            let _ = child.wait();
        }
    }

    /// Kills node `node` and starts it again on the same ports and data.
    pub fn restart(&mut self, node: usize) {
        self.kill(node);
        self.launch(node);
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for node in 0..self.children.len() {
            self.kill(node);
        }
    }
}
