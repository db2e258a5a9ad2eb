//! kast's built-in `s3` connector: a store in an S3-compatible bucket
//! (AWS, Garage, Ceph, MinIO…), a bucket backed up as a tree, or a restore
//! into one, through `wasi:http`. The plugin has no sockets: the host sends
//! each request, to exactly the location's endpoint, and does the TLS.
//! Requests are signed with AWS SigV4 (rusty-s3, as presigned URLs, so
//! bodies need no hashing pass; `Content-MD5` is signed along).
//!
//! Location: `s3://host[:port]/bucket[/prefix]` (HTTPS) or
//! `s3+http://host[:port]/bucket[/prefix]`. Options: `access_key_id`,
//! `secret_access_key` (or `secret_access_key_file`, read by the host),
//! `region` (default `us-east-1`), `path_style=false` for virtual-hosted
//! buckets, `part_size_mib` (multipart uploads above it, default 64),
//! `metadata=false` (a source skips the per-object HEAD for user
//! metadata). With no key options the host passes kast's own `AWS_*`
//! environment.

mod client;
mod destination;
mod source;
mod storage;

/// Requests go out through the shared HTTP client.
use kast_plugin_http_client as http;

use kast_sdk::{Connector, Destination, Error, Location, PluginInfo, Role, Source, Storage};
use std::rc::Rc;

struct S3Connector;

impl Connector for S3Connector {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "s3".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            schemes: vec!["s3".into(), "s3+http".into()],
            roles: vec![Role::Storage, Role::Source, Role::Destination],
            description: "a bucket on S3-compatible object storage".into(),
        }
    }

    fn storage(location: Location) -> Result<Box<dyn Storage>, Error> {
        Ok(Box::new(storage::S3Storage::new(Rc::new(
            client::Client::open(&location)?,
        ))))
    }

    fn source(location: Location) -> Result<Box<dyn Source>, Error> {
        let with_metadata = location.option("metadata") != Some("false");
        Ok(Box::new(source::S3Source::new(
            Rc::new(client::Client::open(&location)?),
            with_metadata,
        )))
    }

    fn destination(location: Location) -> Result<Box<dyn Destination>, Error> {
        Ok(Box::new(destination::S3Destination::new(Rc::new(
            client::Client::open(&location)?,
        ))))
    }
}

kast_sdk::export_connector!(S3Connector);

/// The user-metadata header that carries a file's modification time, as
/// seconds since the epoch with a fraction (rclone's convention), so a tree
/// restored into a bucket keeps its times when backed up again.
pub(crate) const MTIME_HEADER: &str = "x-amz-meta-mtime";
/// User metadata travel as extended attributes named this plus the name.
pub(crate) const XATTR_PREFIX: &str = "user.s3.";
