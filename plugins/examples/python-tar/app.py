"""A kast source connector, in Python: backs up the members of a tar
archive as if they were a tree on disk.

Location: ``tar:///path/to/archive.tar`` or ``.tar.gz``. A plain archive's
members are read straight from the file at their offsets; a gzip one is
decoded by ``gunzip.py`` (pure Python: the CPython that componentize-py
builds in has no zlib), which can also resume at checkpoints for random
access. bzip2, xz and zstd archives are refused with a clear error. The host
preopens exactly the folder holding the archive, read-only; this component
can reach nothing else.

What a backup keeps of each member: its type, mode, owner, times (``pax``
headers give nanoseconds and ctime), extended attributes (``SCHILY.xattr``
pax records), symlink targets, and hard links (a file with its target's
content and inode number). Folders that the archive only implies get the
archive's own mode and time. A later member of the same name replaces an
earlier one, as ``tar -x`` does.
"""

import os
import stat
import tarfile
from urllib.parse import unquote, urlparse

import gunzip
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import tree_source
from wit_world.imports import types as t

VERSION = "0.2.0"


def fail(kind, message):
    return Err(t.Error(kind=kind, message=message))


class Node:
    """One member (or implied folder) of the tree."""

    __slots__ = ("kind", "meta", "target", "member", "children")

    def __init__(self, kind, meta, target=None, member=None):
        self.kind = kind
        self.meta = meta
        self.target = target
        self.member = member
        self.children = {} if kind == t.EntryKind.DIR else None


def encode(name):
    """tarfile decodes names with surrogateescape: give back the bytes."""
    return name.encode("utf-8", "surrogateescape")


def split(name):
    """The member's path as components (none for the root itself); None
    for one that would leave the tree (``..``)."""
    parts = [p for p in encode(name).split(b"/") if p not in (b"", b".")]
    return None if b".." in parts else parts


def nanoseconds(member, key, fallback_ns):
    """A time from the member's pax header, to the nanosecond."""
    text = member.pax_headers.get(key)
    if text is not None:
        seconds, _, fraction = text.partition(".")
        try:
            return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])
        except ValueError:
            pass
    return fallback_ns


TYPES = {
    tarfile.DIRTYPE: (t.EntryKind.DIR, stat.S_IFDIR),
    tarfile.SYMTYPE: (t.EntryKind.SYMLINK, stat.S_IFLNK),
    tarfile.CHRTYPE: (t.EntryKind.SPECIAL, stat.S_IFCHR),
    tarfile.BLKTYPE: (t.EntryKind.SPECIAL, stat.S_IFBLK),
    tarfile.FIFOTYPE: (t.EntryKind.SPECIAL, stat.S_IFIFO),
}


GZIP = b"\x1f\x8b"
# The CPython inside the component has no bz2 or lzma (nor zlib: gzip is
# decoded by gunzip.py).
UNSUPPORTED = [(b"BZh", "bzip2"), (b"\xfd7zXZ", "xz"), (b"\x28\xb5\x2f\xfd", "zstd")]


# A gzip archive is decoded once on `open`, in archive order; kast then reads
# files in its own order. Members up to SMALL bytes are kept decoded from
# that pass (up to CACHE_BUDGET in all) and handed over from memory; the
# others get a checkpoint near their start, so a read decodes little else.
SMALL = 1 << 20
CACHE_BUDGET = 96 << 20
RECENT = 64 * 1024


class Unzipped:
    """A gzip archive's decoded bytes as the file object that tarfile's
    stream mode reads, keeping the members asked for with `keep`."""

    def __init__(self, gz):
        self.gz = gz
        self.chunks = gz.stream()
        self.pending, self.pos = b"", 0
        self.offset = 0  # of the next byte `read` returns
        self.recent = bytearray()  # the last bytes returned, up to RECENT
        self.wanted = {}  # member offset -> its size
        self.kept = {}  # member offset -> its bytes (complete once len == size)
        self.kept_bytes = 0

    def read(self, n):
        while len(self.pending) - self.pos < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.pending = self.pending[self.pos:] + chunk
            self.pos = 0
        data = self.pending[self.pos:self.pos + n]
        self.pos += len(data)
        start, self.offset = self.offset, self.offset + len(data)
        for offset, size in list(self.wanted.items()):
            self.copy(offset, size, data, start)
        self.recent += data
        del self.recent[:-RECENT]
        return data

    def copy(self, offset, size, data, data_offset):
        """Appends to a kept member what `data` (at `data_offset`) holds of it."""
        got = self.kept[offset]
        have = offset + len(got)
        lo, hi = max(have, data_offset), min(offset + size, data_offset + len(data))
        if lo == have and hi > lo:
            got += data[lo - data_offset:hi - data_offset]
        if len(got) == size:
            del self.wanted[offset]

    def keep(self, offset, size):
        """Asks for a member's bytes (called as tarfile yields the member:
        its first bytes may have gone by already, kept in `recent`).
        False when they cannot be kept: too large, over budget, or gone."""
        if size > SMALL or self.kept_bytes + size > CACHE_BUDGET:
            return False
        if offset < self.offset - len(self.recent):
            return False
        self.kept[offset] = bytearray()
        self.kept_bytes += size
        self.wanted[offset] = size
        self.copy(offset, size, self.recent, self.offset - len(self.recent))
        return True

    def drain(self):
        """Decodes to the end, so every member's checksum is checked."""
        for _ in self.chunks:
            pass


class Archive:
    """The archive, read once into a tree of members on `open`."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY)
        magic = os.pread(self.fd, 6, 0)
        for prefix, kind in UNSUPPORTED:
            if magic.startswith(prefix):
                raise fail(t.ErrorKind.UNSUPPORTED,
                           f"{path}: a {kind}-compressed archive; this connector reads "
                           f"plain and gzip tar only (decompress it first)")
        if magic.startswith(GZIP):
            self.gz = gunzip.GzipFile(self.fd)
            self.unzipped = Unzipped(self.gz)
            self.tar = tarfile.open(fileobj=self.unzipped, mode="r|", errors="surrogateescape")
        else:
            self.gz, self.unzipped = None, None
            self.tar = tarfile.open(path, "r:", errors="surrogateescape")
        info = os.stat(path)
        self.folder_meta = lambda: t.Metadata(
            mode=stat.S_IFDIR | 0o755, uid=info.st_uid, gid=info.st_gid,
            mtime_ns=info.st_mtime_ns, ctime_ns=info.st_mtime_ns,
            inode=0, size=0, xattrs=[])
        self.root = Node(t.EntryKind.DIR, self.folder_meta())
        self.inodes = {}
        for number, member in enumerate(self.tar, start=1):
            self.add(number, member)
            if self.gz is not None and member.isfile() and member.size:
                if not self.unzipped.keep(member.offset_data, member.size):
                    self.gz.mark(member.offset_data, gunzip.MEMBER_GAP)
        if self.unzipped is not None:
            self.unzipped.drain()

    def pread(self, member, length, offset):
        """`member`'s bytes at an offset in the (decoded) archive."""
        if self.gz is None:
            return os.pread(self.fd, length, offset)
        kept = self.unzipped.kept.get(member.offset_data)
        if kept is not None and len(kept) == member.size:
            start = offset - member.offset_data
            return bytes(kept[start:start + length])
        return self.gz.pread(length, offset)

    def done_with(self, member):
        """Frees a member's kept bytes once it has been read whole."""
        if self.unzipped is not None:
            self.unzipped.kept.pop(member.offset_data, None)

    def add(self, number, member):
        parts = split(member.name)
        if parts is None:
            return
        kind, type_bits = TYPES.get(member.type, (t.EntryKind.FILE, stat.S_IFREG))
        if not parts:
            # The root folder's own entry (`./`): its metadata.
            if kind == t.EntryKind.DIR:
                self.root.meta = self.metadata(member, stat.S_IFDIR, number, 0)
            return
        size, inode, source = member.size, number, member
        if member.islnk():
            # A hard link: the content and inode of the member it names.
            target = self.find(split(member.linkname) or [])
            if target is None or target.kind != t.EntryKind.FILE:
                return
            size, inode, source = target.meta.size, target.meta.inode, target.member
        meta = self.metadata(member, type_bits, inode,
                             size if kind == t.EntryKind.FILE else 0)
        target = encode(member.linkname) if kind == t.EntryKind.SYMLINK else None
        parent = self.folder(parts[:-1])
        if parent is None:
            return
        old = parent.children.get(parts[-1])
        node = Node(kind, meta, target, source)
        if old is not None and old.kind == kind == t.EntryKind.DIR:
            node.children = old.children  # a folder's own entry after its contents
        parent.children[parts[-1]] = node

    @staticmethod
    def metadata(member, type_bits, inode, size):
        mtime = nanoseconds(member, "mtime", int(member.mtime) * 1_000_000_000)
        return t.Metadata(
            mode=type_bits | (member.mode & 0o7777),
            uid=member.uid, gid=member.gid,
            mtime_ns=mtime, ctime_ns=nanoseconds(member, "ctime", mtime),
            inode=inode, size=size,
            xattrs=sorted(
                (encode(key[len("SCHILY.xattr."):]), encode(value))
                for key, value in member.pax_headers.items()
                if key.startswith("SCHILY.xattr.")))

    def folder(self, parts):
        """The folder at `parts`, made (as implied) where missing; None when
        a non-folder member stands in the way."""
        node = self.root
        for part in parts:
            child = node.children.get(part)
            if child is None:
                child = Node(t.EntryKind.DIR, self.folder_meta())
                node.children[part] = child
            if child.kind != t.EntryKind.DIR:
                return None
            node = child
        return node

    def find(self, parts):
        node = self.root
        for part in parts:
            if node.children is None or part not in node.children:
                return None
            node = node.children[part]
        return node

    def lookup(self, path):
        node = self.find([p for p in path.split(b"/") if p]) if path else self.root
        if node is None:
            raise fail(t.ErrorKind.NOT_FOUND, f"{path!r}: not in the archive")
        return node


archive = None


class Plugin(exports.Plugin):
    def info(self):
        return t.PluginInfo(
            name="python-tar", version=VERSION, schemes=["tar"],
            roles=[t.Role.SOURCE],
            description="Backs up the members of a tar archive (written in Python)")


class TreeSource(exports.TreeSource):
    def open(self, location):
        global archive
        url = urlparse(location.url)
        if url.scheme != "tar" or url.netloc or not url.path:
            raise fail(t.ErrorKind.INVALID_INPUT,
                       f"expected tar:///path/to/archive.tar, got {location.url}")
        path = unquote(url.path)
        try:
            archive = Archive(path)
        except FileNotFoundError:
            raise fail(t.ErrorKind.NOT_FOUND, f"{path}: no such archive")
        except PermissionError as e:
            raise fail(t.ErrorKind.PERMISSION_DENIED, f"{path}: {e}")
        except gunzip.GzipError as e:
            raise fail(t.ErrorKind.INVALID_INPUT, f"{path}: {e}")
        except (tarfile.TarError, EOFError, OSError) as e:
            raise fail(t.ErrorKind.INVALID_INPUT, f"{path}: not a readable tar archive: {e}")

    def list_dir(self, path):
        node = archive.lookup(path)
        if node.kind != t.EntryKind.DIR:
            raise fail(t.ErrorKind.INVALID_INPUT, f"{path!r}: not a folder")
        return Listing([t.Entry(name=name, kind=child.kind, meta=child.meta,
                                symlink_target=child.target)
                        for name, child in node.children.items()])

    def open_file(self, path):
        node = archive.lookup(path)
        if node.kind != t.EntryKind.FILE:
            raise fail(t.ErrorKind.INVALID_INPUT, f"{path!r}: not a file")
        if node.member.issparse():
            raise fail(t.ErrorKind.UNSUPPORTED, f"{path!r}: a sparse member")
        return File(node.member)


class Listing(tree_source.DirListing):
    """A folder's entries, handed over a page at a time."""

    def __init__(self, entries):
        self.entries = entries
        self.at = 0

    def next(self, max):
        page = self.entries[self.at:self.at + max]
        self.at += len(page)
        return page


class File(tree_source.File):
    """A member, read at any offset: an archive keeps a member's bytes in
    one run, so a read is a read at an offset in the file (or in the
    decoded gzip stream)."""

    def __init__(self, member):
        self.member = member
        self.read_to = 0

    def read_at(self, offset, length):
        size = self.member.size
        if offset >= size:
            return b""
        try:
            data = archive.pread(self.member, min(length, size - offset),
                                 self.member.offset_data + offset)
        except (OSError, gunzip.GzipError) as e:
            raise fail(t.ErrorKind.OTHER, f"reading the archive: {e}")
        self.read_to = max(self.read_to, offset + len(data))
        if self.read_to == size:
            archive.done_with(self.member)
        return data
