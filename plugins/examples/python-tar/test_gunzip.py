"""Checks gunzip.py against CPython's zlib (run natively, where zlib
exists): `python3 -m unittest test_gunzip` in this folder."""

import gzip
import os
import random
import tempfile
import unittest

import gunzip


def gzipped(data, level=6, members=1):
    """A gzip file of `data`, in `members` concatenated members."""
    f = tempfile.NamedTemporaryFile(delete=False)
    for i in range(members):
        part = data[i * len(data) // members:(i + 1) * len(data) // members]
        f.write(gzip.compress(part, compresslevel=level))
    f.close()
    return f.name


class GunzipTest(unittest.TestCase):
    def setUp(self):
        rng = random.Random(1)
        words = [b"alpha", b"beta ", b"\n", b"x" * 50, bytes(range(256))]
        self.text = b"".join(rng.choice(words) for _ in range(200_000))
        self.noise = rng.randbytes(2 << 20)
        self.rng = rng

    def open(self, path):
        fd = os.open(path, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        self.addCleanup(os.unlink, path)
        return gunzip.GzipFile(fd)

    def test_decodes_what_zlib_encodes_and_reads_at_any_offset(self):
        mixed = self.text[:300_000] + self.noise[:200_000] + bytes(3 << 20)
        for data in [b"", b"a", self.text, self.noise, mixed]:
            for level in (0, 1, 6, 9):
                gz = self.open(gzipped(data, level))
                self.assertEqual(b"".join(gz.stream()), data)
                self.assertEqual(gz.size, len(data))
                gz.mark(len(data) // 2, gunzip.MEMBER_GAP)
                for _ in range(20):
                    offset = self.rng.randrange(len(data) + 1)
                    length = self.rng.randrange(3 << 20)
                    self.assertEqual(gz.pread(length, offset), data[offset:offset + length])

    def test_concatenated_members_and_zero_padding(self):
        path = gzipped(self.text, members=3)
        with open(path, "ab") as f:
            f.write(bytes(512))
        gz = self.open(path)
        self.assertEqual(b"".join(gz.stream()), self.text)

    def test_damage_and_truncation_are_errors(self):
        path = gzipped(self.text)
        with open(path, "rb") as f:
            good = f.read()
        os.unlink(path)
        for i in range(100):
            bad = bytearray(good)
            if i % 4 == 0:
                bad = bad[:self.rng.randrange(len(bad))]
            else:
                bad[self.rng.randrange(10, len(bad))] ^= 1 << self.rng.randrange(8)
            path = tempfile.NamedTemporaryFile(delete=False).name
            with open(path, "wb") as f:
                f.write(bad)
            with self.assertRaises(gunzip.GzipError):
                b"".join(self.open(path).stream())


if __name__ == "__main__":
    unittest.main()
