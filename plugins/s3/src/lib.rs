//! kast's built-in `s3` connector: a store in an S3-compatible bucket
//! (AWS, Garage, Ceph, MinIO…), through `wasi:http`. The plugin has no
//! sockets: the host sends each request, to exactly the location's endpoint,
//! and does the TLS. Requests are signed with AWS SigV4 (rusty-s3, as
//! presigned URLs, so only the host header is signed and bodies need no
//! hashing pass).
//!
//! Location: `s3://host[:port]/bucket[/prefix]` (HTTPS) or
//! `s3+http://host[:port]/bucket[/prefix]`. Options: `access_key_id`,
//! `secret_access_key` (or `secret_access_key_file`, read by the host),
//! `region` (default `us-east-1`), `path_style=false` for virtual-hosted
//! buckets. With no key options the host passes kast's own `AWS_*`
//! environment.

mod http;

use kast_sdk::{
    Connector, Error, ErrorKind, Location, ObjectInfo, ObjectKind, PluginInfo, Role, Storage,
    layout,
};
use rusty_s3::actions::{ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use std::time::Duration;

/// How long a signed request stays valid: longer than any one transfer.
const SIGNATURE_LIFETIME: Duration = Duration::from_secs(3600);

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidInput, message)
}

struct S3Connector;

impl Connector for S3Connector {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "s3".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            schemes: vec!["s3".into(), "s3+http".into()],
            roles: vec![Role::Storage],
            description: "a bucket on S3-compatible object storage".into(),
        }
    }

    fn storage(location: Location) -> Result<Box<dyn Storage>, Error> {
        Ok(Box::new(S3Storage::open(&location)?))
    }
}

kast_sdk::export_connector!(S3Connector);

/// A store under a prefix of a bucket.
struct S3Storage {
    bucket: Bucket,
    credentials: Credentials,
    /// Empty, or ending in `/`.
    prefix: String,
    endpoint: String,
}

impl S3Storage {
    fn open(location: &Location) -> Result<S3Storage, Error> {
        let url = &location.url;
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid(format!("{url}: not a URL")))?;
        let https = !scheme.eq_ignore_ascii_case("s3+http");
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let path = kast_sdk::percent_decode(path);
        let (bucket_name, prefix) = path.split_once('/').unwrap_or((&path, ""));
        if bucket_name.is_empty() {
            return Err(invalid(format!(
                "{url}: name the bucket: s3://host/BUCKET[/prefix]"
            )));
        }
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let endpoint = format!("{}://{authority}", if https { "https" } else { "http" });
        let style = if location.option("path_style") == Some("false") {
            UrlStyle::VirtualHost
        } else {
            UrlStyle::Path
        };
        let region = location.option("region").unwrap_or("us-east-1").to_string();
        let bucket = Bucket::new(
            endpoint
                .parse()
                .map_err(|e| invalid(format!("{url}: {e}")))?,
            style,
            bucket_name.to_string(),
            region,
        )
        .map_err(|e| invalid(format!("{url}: {e}")))?;
        let key = location.option("access_key_id").ok_or_else(|| {
            invalid(format!(
                "{url}: give access_key_id= and secret_access_key_file= (or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            ))
        })?;
        let secret = location
            .option("secret_access_key")
            .ok_or_else(|| invalid(format!("{url}: give secret_access_key_file=PATH")))?;
        Ok(S3Storage {
            bucket,
            credentials: Credentials::new(key, secret),
            prefix,
            endpoint,
        })
    }

    fn key(&self, kind: ObjectKind, name: &str) -> Result<String, Error> {
        let (_, path) = layout::object_path(kind, name)?;
        Ok(format!("{}{path}", self.prefix))
    }

    /// Sends one request, retrying what a busy or restarting server answers.
    fn send(
        &self,
        method: http::Method,
        signed: url::Url,
        headers: &[(&str, String)],
        body: &[u8],
        what: &str,
    ) -> Result<http::Reply, Error> {
        http::with_retries(&self.endpoint, what, || {
            http::send(&method, &signed, headers, body)
        })
    }

    /// The error for a reply that is not a success.
    fn failure(&self, reply: &http::Reply, what: &str) -> Error {
        let text = String::from_utf8_lossy(&reply.body);
        let code = xml_field(&text, "Code").unwrap_or_default();
        let message = xml_field(&text, "Message").unwrap_or_default();
        let kind = match (reply.status, code.as_str()) {
            // The location is wrong, not an object missing.
            (_, "NoSuchBucket") => ErrorKind::InvalidInput,
            (404, _) => ErrorKind::NotFound,
            (403, _) | (401, _) => ErrorKind::PermissionDenied,
            (400, "EntityTooLarge") => ErrorKind::NoSpace,
            _ => ErrorKind::Other,
        };
        let hint = match code.as_str() {
            "NoSuchBucket" => " (the bucket does not exist)".to_string(),
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" => {
                " (check access_key_id and the secret key)".to_string()
            }
            _ => String::new(),
        };
        Error::new(
            kind,
            format!(
                "{}: {what}: HTTP {} {code} {message}{hint}",
                self.endpoint, reply.status
            ),
        )
    }

    fn list_prefix(&mut self, prefix: &str) -> Result<Vec<(String, u64)>, Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&self.bucket, Some(&self.credentials));
            action.with_prefix(prefix.to_string());
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let signed = action.sign(SIGNATURE_LIFETIME);
            let reply = self.send(http::Method::Get, signed, &[], &[], "list")?;
            if reply.status != 200 {
                return Err(self.failure(&reply, &format!("list {prefix}")));
            }
            let page = ListObjectsV2::parse_response(&reply.body)
                .map_err(|e| invalid(format!("{}: an unreadable listing: {e}", self.endpoint)))?;
            // Keys come URL-encoded (rusty-s3 asks for encoding-type=url).
            out.extend(
                page.contents
                    .into_iter()
                    .map(|c| (kast_sdk::percent_decode(&c.key), c.size)),
            );
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }
}

/// The text of `<field>…</field>` in an S3 error document.
fn xml_field(text: &str, field: &str) -> Option<String> {
    let start = text.find(&format!("<{field}>"))? + field.len() + 2;
    let end = text[start..].find(&format!("</{field}>"))? + start;
    Some(text[start..end].to_string())
}

impl Storage for S3Storage {
    /// One PUT: S3 makes an object visible whole or not at all.
    fn put(&mut self, kind: ObjectKind, name: &str, data: Vec<u8>) -> Result<(), Error> {
        let key = self.key(kind, name)?;
        let signed = self
            .bucket
            .put_object(Some(&self.credentials), &key)
            .sign(SIGNATURE_LIFETIME);
        let reply = self.send(http::Method::Put, signed, &[], &data, "put")?;
        if reply.status / 100 != 2 {
            return Err(self.failure(&reply, &format!("put {key}")));
        }
        Ok(())
    }

    fn get(&mut self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, Error> {
        let key = self.key(kind, name)?;
        let signed = self
            .bucket
            .get_object(Some(&self.credentials), &key)
            .sign(SIGNATURE_LIFETIME);
        let reply = self.send(http::Method::Get, signed, &[], &[], "get")?;
        if reply.status != 200 {
            return Err(self.failure(&reply, &format!("get {key}")));
        }
        Ok(reply.body)
    }

    fn get_range(
        &mut self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        if length == 0 {
            return Ok(Vec::new());
        }
        let key = self.key(kind, name)?;
        let signed = self
            .bucket
            .get_object(Some(&self.credentials), &key)
            .sign(SIGNATURE_LIFETIME);
        let range = format!("bytes={offset}-{}", offset.saturating_add(length - 1));
        let reply = self.send(http::Method::Get, signed, &[("range", range)], &[], "get")?;
        match reply.status {
            206 => Ok(reply.body),
            // A server that ignores ranges sends the whole object.
            200 => Ok(reply
                .body
                .into_iter()
                .skip(offset as usize)
                .take(length as usize)
                .collect()),
            416 => Ok(Vec::new()),
            _ => Err(self.failure(&reply, &format!("get {key}"))),
        }
    }

    fn list(&mut self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, Error> {
        let folder = layout::folder(kind);
        let prefix = match kind {
            ObjectKind::Config => format!("{}config", self.prefix),
            _ => format!("{}{folder}/", self.prefix),
        };
        let mut out: Vec<ObjectInfo> = self
            .list_prefix(&prefix)?
            .into_iter()
            .filter_map(|(key, size)| {
                let name = key.rsplit('/').next()?.to_string();
                let (_, path) = layout::object_path(kind, &name).ok()?;
                (format!("{}{path}", self.prefix) == key).then_some(ObjectInfo { name, size })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&mut self, kind: ObjectKind, name: &str) -> Result<(), Error> {
        let key = self.key(kind, name)?;
        let signed = self
            .bucket
            .delete_object(Some(&self.credentials), &key)
            .sign(SIGNATURE_LIFETIME);
        let reply = self.send(http::Method::Delete, signed, &[], &[], "delete")?;
        match reply.status {
            200 | 204 | 404 => Ok(()),
            _ => Err(self.failure(&reply, &format!("delete {key}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_documents_are_read() {
        let doc = "<Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>";
        assert_eq!(xml_field(doc, "Code").as_deref(), Some("NoSuchBucket"));
        assert_eq!(xml_field(doc, "Message").as_deref(), Some("gone"));
        assert_eq!(xml_field(doc, "Nope"), None);
    }
}
