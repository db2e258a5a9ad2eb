// A kast source connector, in JavaScript: backs up a folder of a WebDAV
// server (Nextcloud, ownCloud, Apache mod_dav, nginx dav, wsgidav, …).
//
// Location: dav://HOST[:PORT]/PATH (plain HTTP) or davs://HOST[:PORT]/PATH
// (HTTPS), a folder or a single file; options user= and password= (or password_file=, which the host
// reads). The host lets this component make HTTP requests to exactly that
// origin through wasi:http, and nothing else: no sockets, no files.
//
// A folder is listed with one PROPFIND (Depth: 1); a file is read in
// ranged GETs of the size kast asks for (a MiB or more), so a file of any
// size streams. WebDAV has no modes or owners: folders come back 0755 and
// files 0644, with the server's modification time (whole seconds).

const VERSION = "0.2.0";

/** The folder's URL, with a trailing slash, and the request headers. */
let root = "";
let headers = {};
/** For a file location, its one entry (the root is then its folder). */
let single = null;

/** An error result for kast: kind is one of the contract's error kinds. */
function failure(kind, message) {
  return { kind, message };
}

function kindOfStatus(status) {
  if (status === 404) return "not-found";
  if (status === 401 || status === 403) return "permission-denied";
  if (status >= 500) return "unavailable";
  return "other";
}

/** Percent-encodes a path given as bytes, component by component. */
function encodePath(bytes) {
  let out = "";
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~\/]/.test(c) ? c : "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** Percent-decodes a URL path to bytes (names need not be UTF-8). */
function decodePath(text) {
  const out = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "%" && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      out.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      out.push(...new TextEncoder().encode(text[i]));
    }
  }
  return new Uint8Array(out);
}

function unescapeXml(text) {
  return text
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, n) => String.fromCodePoint(Number(n)))
    .replace(/&#x([0-9a-fA-F]+);/g, (_, n) => String.fromCodePoint(parseInt(n, 16)))
    .replace(/&amp;/g, "&");
}

/** The text of the first element named `name` (any namespace prefix). */
function element(xml, name) {
  const m = xml.match(new RegExp(`<(?:[\\w.-]+:)?${name}(?:\\s[^>]*)?>([\\s\\S]*?)</(?:[\\w.-]+:)?${name}>`));
  return m ? unescapeXml(m[1].trim()) : undefined;
}

/** Each <response> of a PROPFIND multistatus: href, folder or not, size, time. */
function responses(xml) {
  const out = [];
  const re = /<((?:[\w.-]+:)?)response(?:\s[^>]*)?>([\s\S]*?)<\/\1response>/g;
  for (let m = re.exec(xml); m; m = re.exec(xml)) {
    const body = m[2];
    const href = element(body, "href");
    if (href === undefined) continue;
    const modified = Date.parse(element(body, "getlastmodified") ?? "");
    out.push({
      href,
      folder: /<(?:[\w.-]+:)?collection\s*\/?>/.test(body),
      size: BigInt(element(body, "getcontentlength") ?? "0"),
      mtimeNs: Number.isNaN(modified) ? 0n : BigInt(modified) * 1000000n,
    });
  }
  return out;
}

async function request(method, path, extra = {}, body = undefined) {
  const url = root + encodePath(path);
  let response;
  try {
    response = await fetch(url, { method, headers: { ...headers, ...extra }, body });
  } catch (e) {
    throw failure("unavailable", `${method} ${url}: ${e}`);
  }
  return response;
}

async function propfind(path, depth) {
  const body =
    '<?xml version="1.0"?><propfind xmlns="DAV:"><prop>' +
    "<resourcetype/><getcontentlength/><getlastmodified/></prop></propfind>";
  const response = await request("PROPFIND", path, { Depth: depth, "Content-Type": "application/xml" }, body);
  if (response.status !== 207) {
    throw failure(kindOfStatus(response.status), `PROPFIND /${new TextDecoder().decode(Uint8Array.from(path))}: HTTP ${response.status}`);
  }
  return responses(await response.text());
}

/** An href's path as bytes, without scheme, host or trailing slash. */
function hrefPath(href) {
  return decodePath(href.replace(/^[a-z]+:\/\/[^/]+/i, "").replace(/\/+$/, ""));
}

function sameBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function metadata(item) {
  return {
    mode: item.folder ? 0o40755 : 0o100644,
    uid: 0,
    gid: 0,
    mtimeNs: item.mtimeNs,
    ctimeNs: item.mtimeNs,
    inode: 0n,
    size: item.folder ? 0n : item.size,
    xattrs: [],
  };
}

/** A listed item as a directory entry, named by its href's last part. */
function entry(item) {
  const full = hrefPath(item.href);
  return {
    name: full.subarray(full.lastIndexOf(0x2f) + 1),
    kind: item.folder ? "dir" : "file",
    meta: metadata(item),
    symlinkTarget: undefined,
  };
}

export const plugin = {
  info() {
    return {
      name: "js-webdav",
      version: VERSION,
      schemes: ["dav", "davs"],
      roles: ["source"],
      description: "a folder on a WebDAV server (written in JavaScript)",
    };
  },
};

/** A folder's entries, handed over a page at a time. */
class DirListing {
  constructor(entries) {
    this.entries = entries;
    this.at = 0;
  }

  next(max) {
    const page = this.entries.slice(this.at, this.at + max);
    this.at += page.length;
    return page;
  }
}

/** An open file: each read is one ranged GET at the offset kast asks for. */
class File {
  constructor(path) {
    this.path = path;
  }

  async readAt(offset, length) {
    const end = offset + BigInt(length) - 1n;
    const response = await request("GET", this.path, { Range: `bytes=${offset}-${end}` });
    if (response.status === 416) return new Uint8Array();
    if (response.status !== 206 && response.status !== 200) {
      throw failure(kindOfStatus(response.status), `GET /${new TextDecoder().decode(this.path)}: HTTP ${response.status}`);
    }
    let bytes = new Uint8Array(await response.arrayBuffer());
    if (response.status === 200) {
      // The server ignored the range and sent the whole file.
      bytes = bytes.subarray(Number(offset), Number(offset) + length);
    }
    return bytes;
  }
}

export const treeSource = {
  DirListing,
  File,

  async open(location) {
    const m = location.url.match(/^(davs?):\/\/([^/?#]+)(\/[^?#]*)?/);
    if (!m) throw failure("invalid-input", `expected dav://HOST[:PORT]/PATH, got ${location.url}`);
    const scheme = m[1] === "davs" ? "https" : "http";
    const host = m[2].replace(/^[^@]*@/, "");
    root = `${scheme}://${host}${(m[3] ?? "/").replace(/\/+$/, "")}/`;
    const options = new Map(location.options);
    headers = {};
    if (options.has("user")) {
      const credentials = `${options.get("user")}:${options.get("password") ?? ""}`;
      headers.Authorization = "Basic " + btoa(String.fromCharCode(...new TextEncoder().encode(credentials)));
    }
    const self = await propfind(new Uint8Array(), "0");
    if (!self.length) throw failure("not-found", `${location.url}: the server lists nothing there`);
    single = null;
    if (!self[0].folder) {
      // A file location: present that one file, as the fs connector does,
      // from its folder.
      single = entry(self[0]);
      root = root.replace(/[^/]+\/$/, "");
    }
  },

  async listDir(path) {
    if (single) return new DirListing([single]);
    const own = hrefPath(root + encodePath(path));
    const entries = [];
    for (const item of await propfind(path.length ? [...path, 0x2f] : path, "1")) {
      // The answer lists the folder itself too.
      if (!sameBytes(hrefPath(item.href), own)) entries.push(entry(item));
    }
    return new DirListing(entries);
  },

  openFile(path) {
    return new File(path);
  },
};
