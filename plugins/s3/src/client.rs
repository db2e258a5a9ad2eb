//! The S3 requests kast sends, signed and retried, on top of `http`: whole
//! and multipart uploads with `Content-MD5`, ranged reads, paged listings,
//! HEAD, delete and a metadata rewrite; and the errors a user can act on.

use crate::http::{self, Method, Reply};
use kast_sdk::{Error, ErrorKind, Location};
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use std::time::Duration;

/// How long a signed request stays valid: longer than any one transfer.
const SIGNATURE_LIFETIME: Duration = Duration::from_secs(3600);

/// Objects larger than this go up in parts of this size (option
/// `part_size_mib`): a failed part is retried alone, and no object is
/// limited by the 5 GiB of a single PUT.
const DEFAULT_PART_SIZE: usize = 64 << 20;
/// S3's smallest part (all but the last).
const MIN_PART_SIZE: usize = 5 << 20;

pub fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidInput, message)
}

/// A bucket, the key to it, and the prefix kast works under.
pub struct Client {
    bucket: Bucket,
    credentials: Credentials,
    /// Empty, or ending in `/`.
    pub prefix: String,
    endpoint: String,
    part_size: usize,
}

/// One object of a listing.
pub struct Listed {
    /// The whole key, decoded.
    pub key: String,
    pub size: u64,
    /// RFC 3339, as S3 gives it.
    pub last_modified: String,
}

/// One page-through of a listing: objects, and (with a delimiter) the
/// common prefixes that stand for folders.
#[derive(Default)]
pub struct Listing {
    pub objects: Vec<Listed>,
    pub folders: Vec<String>,
}

impl Client {
    /// The client for `s3://host[:port]/bucket[/prefix]` (HTTPS) or
    /// `s3+http://…`, with the location's options.
    pub fn open(location: &Location) -> Result<Client, Error> {
        let url = location.parse_url()?;
        let shown = kast_sdk::url::redact(&location.url);
        let https = url.scheme != "s3+http";
        let path = url.path.trim_start_matches('/');
        let (bucket_name, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket_name.is_empty() {
            return Err(invalid(format!(
                "{shown}: name the bucket: s3://host/BUCKET[/prefix]"
            )));
        }
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let endpoint = format!(
            "{}://{}",
            if https { "https" } else { "http" },
            url.authority()
        );
        let style = if location.option("path_style") == Some("false") {
            UrlStyle::VirtualHost
        } else {
            UrlStyle::Path
        };
        let region = location.option("region").unwrap_or("us-east-1").to_string();
        let bucket = Bucket::new(
            endpoint
                .parse()
                .map_err(|e| invalid(format!("{shown}: {e}")))?,
            style,
            bucket_name.to_string(),
            region,
        )
        .map_err(|e| invalid(format!("{shown}: {e}")))?;
        let key = location.option("access_key_id").ok_or_else(|| {
            invalid(format!(
                "{shown}: give access_key_id= and secret_access_key_file= (or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            ))
        })?;
        let secret = location
            .option("secret_access_key")
            .ok_or_else(|| invalid(format!("{shown}: give secret_access_key_file=PATH")))?;
        let part_size = match location.option("part_size_mib") {
            None => DEFAULT_PART_SIZE,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .map(|mib| mib << 20)
                .filter(|&size| (MIN_PART_SIZE..=(5 << 30)).contains(&size))
                .ok_or_else(|| invalid(format!("part_size_mib={text}: give 5 to 5120 (MiB)")))?,
        };
        Ok(Client {
            bucket,
            credentials: Credentials::new(key, secret),
            prefix,
            endpoint,
            part_size,
        })
    }

    /// The largest piece worth holding in memory: one part.
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    fn send(
        &self,
        method: Method,
        signed: url::Url,
        headers: &[(&str, String)],
        body: &[u8],
        what: &str,
    ) -> Result<Reply, Error> {
        http::with_retries(&self.endpoint, what, || {
            http::send(&method, &signed, headers, body)
        })
    }

    /// The error for a reply that is not a success.
    pub fn failure(&self, reply: &Reply, what: &str) -> Error {
        if (300..400).contains(&reply.status) {
            let to = reply.header("location").unwrap_or("elsewhere");
            return Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{}: {what}: the server redirected to {to}; kast does not follow \
                     redirects (the sandbox allows only the location's endpoint): \
                     use that endpoint in the location if you trust it",
                    self.endpoint
                ),
            );
        }
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
            "NoSuchBucket" => " (the bucket does not exist)",
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" => {
                " (check access_key_id and the secret key)"
            }
            "BadDigest" | "InvalidDigest" => " (the data changed on the way: try again)",
            _ => "",
        };
        Error::new(
            kind,
            format!(
                "{}: {what}: HTTP {} {code} {message}{hint}",
                self.endpoint, reply.status
            ),
        )
    }

    /// Stores `data` at `key`: one PUT up to a part's size, a multipart
    /// upload above it.
    pub fn put(&self, key: &str, data: &[u8]) -> Result<(), Error> {
        if data.len() <= self.part_size {
            let mut action = self.bucket.put_object(Some(&self.credentials), key);
            let headers = signed_headers(action.headers_mut(), Some(data), &[]);
            let reply = self.send(
                Method::Put,
                action.sign(SIGNATURE_LIFETIME),
                &headers,
                data,
                "put",
            )?;
            if reply.status / 100 != 2 {
                return Err(self.failure(&reply, &format!("put {key}")));
            }
            return Ok(());
        }
        let mut upload = self.start_upload(key)?;
        for part in data.chunks(self.part_size) {
            upload.part(self, part)?;
        }
        upload.complete(self)
    }

    /// Begins a multipart upload; dropping it unfinished aborts it.
    pub fn start_upload(&self, key: &str) -> Result<Upload, Error> {
        let signed = self
            .bucket
            .create_multipart_upload(Some(&self.credentials), key)
            .sign(SIGNATURE_LIFETIME);
        let reply = self.send(Method::Post, signed, &[], &[], "start upload")?;
        if reply.status != 200 {
            return Err(self.failure(&reply, &format!("start upload of {key}")));
        }
        let id = CreateMultipartUpload::parse_response(&reply.body)
            .map_err(|e| invalid(format!("{}: an unreadable reply: {e}", self.endpoint)))?
            .upload_id()
            .to_string();
        Ok(Upload {
            key: key.to_string(),
            id,
            etags: Vec::new(),
            abort_with: Some((self.bucket.clone(), self.credentials.clone())),
            endpoint: self.endpoint.clone(),
        })
    }

    /// `length` bytes of `key` from `offset` (fewer at its end), or all of
    /// it; `None` when the range starts past the end.
    pub fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Option<Vec<u8>>, Error> {
        let signed = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGNATURE_LIFETIME);
        let Some((offset, length)) = range else {
            let reply = self.send(Method::Get, signed, &[], &[], "get")?;
            if reply.status != 200 {
                return Err(self.failure(&reply, &format!("get {key}")));
            }
            return Ok(Some(reply.body));
        };
        if length == 0 {
            return Ok(Some(Vec::new()));
        }
        let range = format!("bytes={offset}-{}", offset.saturating_add(length - 1));
        let reply = self.send(Method::Get, signed, &[("range", range)], &[], "get")?;
        match reply.status {
            206 => Ok(Some(reply.body)),
            // A server that ignores ranges sends the whole object.
            200 => Ok(Some(
                reply
                    .body
                    .into_iter()
                    .skip(offset as usize)
                    .take(length as usize)
                    .collect(),
            )),
            416 => Ok(None),
            _ => Err(self.failure(&reply, &format!("get {key}"))),
        }
    }

    /// Every object under `prefix`; with `folders`, only those directly in
    /// it, and the sub-prefixes as folders.
    pub fn list(&self, prefix: &str, folders: bool) -> Result<Listing, Error> {
        let mut out = Listing::default();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&self.bucket, Some(&self.credentials));
            action.with_prefix(prefix.to_string());
            if folders {
                action.with_delimiter("/");
            }
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let signed = action.sign(SIGNATURE_LIFETIME);
            let reply = self.send(Method::Get, signed, &[], &[], "list")?;
            if reply.status != 200 {
                return Err(self.failure(&reply, &format!("list {prefix}")));
            }
            let page = ListObjectsV2::parse_response(&reply.body)
                .map_err(|e| invalid(format!("{}: an unreadable listing: {e}", self.endpoint)))?;
            // Keys come URL-encoded (rusty-s3 asks for encoding-type=url).
            out.objects
                .extend(page.contents.into_iter().map(|c| Listed {
                    key: kast_sdk::percent_decode(&c.key),
                    size: c.size,
                    last_modified: c.last_modified,
                }));
            out.folders.extend(
                page.common_prefixes
                    .into_iter()
                    .map(|p| kast_sdk::percent_decode(&p.prefix)),
            );
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// The headers of each of `keys` (`None` for a missing one), asked for
    /// all at once: a folder of small objects costs one round trip, not one
    /// per object.
    pub fn head_many(&self, keys: &[String]) -> Result<Vec<Option<Reply>>, Error> {
        let signed: Vec<url::Url> = keys
            .iter()
            .map(|key| {
                self.bucket
                    .head_object(Some(&self.credentials), key)
                    .sign(SIGNATURE_LIFETIME)
            })
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for (key, reply) in keys.iter().zip(http::send_all(&Method::Head, &signed)) {
            let reply = match reply {
                Ok(reply) => reply,
                // One that failed in the crowd gets the patient path.
                Err(_) => self.send(
                    Method::Head,
                    self.bucket
                        .head_object(Some(&self.credentials), key)
                        .sign(SIGNATURE_LIFETIME),
                    &[],
                    &[],
                    "head",
                )?,
            };
            match reply.status {
                200 => out.push(Some(reply)),
                404 => out.push(None),
                _ => return Err(self.failure(&reply, &format!("head {key}"))),
            }
        }
        Ok(out)
    }

    /// Replaces the user metadata of `key` (S3 objects are immutable: a
    /// copy onto itself is the only way).
    pub fn set_meta(&self, key: &str, meta: &[(String, String)]) -> Result<(), Error> {
        let source = format!("/{}/{}", self.bucket.name(), encode_key(key));
        let mut all = vec![
            ("x-amz-copy-source".to_string(), source),
            (
                "x-amz-metadata-directive".to_string(),
                "REPLACE".to_string(),
            ),
        ];
        all.extend_from_slice(meta);
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        let headers = signed_headers(action.headers_mut(), None, &all);
        let reply = self.send(
            Method::Put,
            action.sign(SIGNATURE_LIFETIME),
            &headers,
            &[],
            "set metadata",
        )?;
        if !succeeded_whole(&reply) {
            return Err(self.failure(&reply, &format!("set metadata of {key}")));
        }
        Ok(())
    }

    /// Deleting a missing object succeeds.
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        let signed = self
            .bucket
            .delete_object(Some(&self.credentials), key)
            .sign(SIGNATURE_LIFETIME);
        let reply = self.send(Method::Delete, signed, &[], &[], "delete")?;
        match reply.status {
            200 | 204 | 404 => Ok(()),
            _ => Err(self.failure(&reply, &format!("delete {key}"))),
        }
    }
}

/// Signs `Content-MD5` of `body` (so the server refuses bytes changed on
/// the way) and the `extra` headers; returns the same headers to send.
fn signed_headers<'a>(
    map: &mut rusty_s3::Map<'_>,
    body: Option<&[u8]>,
    extra: &'a [(String, String)],
) -> Vec<(&'a str, String)> {
    use base64::Engine;
    use md5::Digest;
    let mut headers = Vec::with_capacity(extra.len() + 1);
    if let Some(body) = body {
        let digest = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body));
        map.insert("content-md5", digest.clone());
        headers.push(("content-md5", digest));
    }
    for (name, value) in extra {
        map.insert(name.clone(), value.clone());
        headers.push((name.as_str(), value.clone()));
    }
    headers
}

/// A key as a path segment of `x-amz-copy-source`: `/` kept, the rest of
/// anything but unreserved characters escaped.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A multipart upload under way. Parts go up one by one; `complete` makes
/// the object appear whole. Dropped before that, it is aborted, so no
/// half-uploaded parts stay behind (and cost storage) after a failure.
pub struct Upload {
    key: String,
    id: String,
    etags: Vec<String>,
    /// What the abort needs; `None` once completed.
    abort_with: Option<(Bucket, Credentials)>,
    endpoint: String,
}

impl Upload {
    /// Sends the next part (all but the last at least 5 MiB).
    pub fn part(&mut self, client: &Client, data: &[u8]) -> Result<(), Error> {
        let number = u16::try_from(self.etags.len() + 1)
            .ok()
            .filter(|&n| n <= 10_000)
            .ok_or_else(|| invalid(format!("{}: more than 10,000 parts", self.key)))?;
        let mut action =
            client
                .bucket
                .upload_part(Some(&client.credentials), &self.key, number, &self.id);
        let headers = signed_headers(action.headers_mut(), Some(data), &[]);
        let reply = client.send(
            Method::Put,
            action.sign(SIGNATURE_LIFETIME),
            &headers,
            data,
            "put part",
        )?;
        if reply.status / 100 != 2 {
            return Err(client.failure(&reply, &format!("put part {number} of {}", self.key)));
        }
        let etag = reply
            .header("etag")
            .ok_or_else(|| invalid(format!("{}: a part's reply has no ETag", self.endpoint)))?;
        self.etags.push(etag.to_string());
        Ok(())
    }

    /// Makes the object appear, whole.
    pub fn complete(mut self, client: &Client) -> Result<(), Error> {
        let action = client.bucket.complete_multipart_upload(
            Some(&client.credentials),
            &self.key,
            &self.id,
            self.etags.iter().map(String::as_str),
        );
        let signed = action.sign(SIGNATURE_LIFETIME);
        let body = action.body();
        let reply = client.send(Method::Post, signed, &[], body.as_bytes(), "finish upload")?;
        if !succeeded_whole(&reply) {
            return Err(client.failure(&reply, &format!("finish upload of {}", self.key)));
        }
        self.abort_with = None;
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some((bucket, credentials)) = self.abort_with.take() {
            let signed = bucket
                .abort_multipart_upload(Some(&credentials), &self.key, &self.id)
                .sign(SIGNATURE_LIFETIME);
            // Best effort: the error that got us here is the one to report.
            let _ = http::send(&Method::Delete, &signed, &[], &[]);
        }
    }
}

/// Whether a copy or a multipart completion succeeded: S3 may send its
/// 200 before the work is done, and report a failure in the body.
fn succeeded_whole(reply: &Reply) -> bool {
    reply.status == 200 && !reply.body.windows(7).any(|w| w == b"<Error>")
}

/// The text of `<field>…</field>` in an S3 error document.
pub fn xml_field(text: &str, field: &str) -> Option<String> {
    let start = text.find(&format!("<{field}>"))? + field.len() + 2;
    let end = text[start..].find(&format!("</{field}>"))? + start;
    Some(text[start..end].to_string())
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

    #[test]
    fn content_md5_is_the_base64_digest() {
        let mut map = rusty_s3::Map::new();
        let headers = signed_headers(&mut map, Some(b""), &[]);
        // RFC 1321's digest of the empty string, in base64.
        assert_eq!(headers[0].1, "1B2M2Y8AsgTpgAmY7PhCfg==");
    }

    #[test]
    fn copy_sources_are_escaped() {
        assert_eq!(encode_key("a b/ü+x"), "a%20b/%C3%BC%2Bx");
    }
}
