"""gzip (RFC 1952) and DEFLATE (RFC 1951) decoding in pure Python, with
random access.

The CPython that componentize-py builds in has no ``zlib``, so ``tarfile``
cannot read a ``.tar.gz`` by itself. This module decodes the stream in
Python, and while it does, it notes a checkpoint at a block boundary about
every ``CHECKPOINT_EVERY`` bytes of output: the input bit position and the
32 KiB of output before it (all a DEFLATE decoder needs to resume). A read at
any offset then starts from the nearest checkpoint instead of the beginning,
the way zlib's ``zran.c`` example does.

It is slow next to zlib (pure Python, a few MB/s), which is why the tar
connector reads plain archives straight from the file instead.
"""

import binascii
import bisect
import collections
import os

WINDOW = 32 * 1024
CHECKPOINT_EVERY = 1 << 20
# A member not kept in memory gets its own checkpoint unless one is this
# close before it: a read of it decodes at most this much it does not need.
MEMBER_GAP = 256 * 1024
READ_SIZE = 256 * 1024


class GzipError(Exception):
    """The stream is not gzip, or is damaged or cut short."""


LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
               35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
LENGTH_EXTRA = [0] * 8 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4 + [0]
DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
             257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
             8193, 12289, 16385, 24577]
DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8,
              9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
CODE_LENGTH_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13,
                     2, 14, 1, 15]


def huffman_table(lengths):
    """A lookup table for a canonical Huffman code: indexed by the next
    ``bits`` input bits (first bit lowest), each entry is
    ``symbol << 4 | code length``; -1 marks a bit pattern no code starts."""
    bits = max(lengths)
    if bits == 0:
        return [-1, -1], 1
    count = [0] * 16
    for length in lengths:
        count[length] += 1
    count[0] = 0
    code, next_code = 0, [0] * 16
    for length in range(1, 16):
        code = (code + count[length - 1]) << 1
        next_code[length] = code
        if code + count[length] > 1 << length:
            raise GzipError("damaged: an over-subscribed Huffman code")
    size = 1 << bits
    table = [-1] * size
    for symbol, length in enumerate(lengths):
        if length:
            code = next_code[length]
            next_code[length] += 1
            reversed_code = int(format(code, f"0{length}b")[::-1], 2)
            table[reversed_code::1 << length] = [symbol << 4 | length] * (size >> length)
    return table, bits


FIXED_LITERALS = huffman_table([8] * 144 + [9] * 112 + [7] * 24 + [8] * 8)
FIXED_DISTANCES = huffman_table([5] * 30)


class Decoder:
    """Decodes a gzip file from a given bit position, block by block.

    ``out`` holds decoded bytes; ``out_start`` is the offset (in the whole
    decoded stream) of ``out[0]``. Callers take bytes from ``out`` and call
    ``trim`` so that only the last 32 KiB (the DEFLATE window) is kept.
    """

    def __init__(self, fd, bit_position, out_offset, window, in_member):
        self.fd = fd
        self.in_pos = bit_position // 8
        self.buf, self.buf_pos = b"", 0
        self.bits, self.nbits = 0, 0
        self.out = bytearray(window)
        self.out_start = out_offset - len(window)
        # Whether the next thing in the input is a block (True) or a gzip
        # member header (False).
        self.in_member = in_member
        self.last_block = False
        self.crc, self.member_start = 0, out_offset
        self.verify = not in_member  # a checksum is only known from a member's start
        self.finished = False
        if bit_position % 8:
            self.need(bit_position % 8)
            self.drop(bit_position % 8)

    # -- input ---------------------------------------------------------
    def fill(self):
        """Loads more input into ``buf``; False at the end of the file."""
        data = os.pread(self.fd, READ_SIZE, self.in_pos)
        if not data:
            return False
        self.buf = self.buf[self.buf_pos:] + data
        self.buf_pos = 0
        self.in_pos += len(data)
        return True

    def need(self, n):
        while self.nbits < n:
            if self.buf_pos + 4 > len(self.buf) and not self.fill():
                if self.buf_pos < len(self.buf):
                    self.bits |= self.buf[self.buf_pos] << self.nbits
                    self.buf_pos += 1
                    self.nbits += 8
                    continue
                raise GzipError("cut short: the archive ends inside its compressed data")
            piece = self.buf[self.buf_pos:self.buf_pos + 4]
            self.bits |= int.from_bytes(piece, "little") << self.nbits
            self.buf_pos += len(piece)
            self.nbits += 8 * len(piece)

    def drop(self, n):
        self.bits >>= n
        self.nbits -= n

    def take_bits(self, n):
        self.need(n)
        value = self.bits & ((1 << n) - 1)
        self.drop(n)
        return value

    def bit_position(self):
        """Where the next unread bit is, counted from the file's start."""
        return (self.in_pos - (len(self.buf) - self.buf_pos)) * 8 - self.nbits

    def align(self):
        self.drop(self.nbits % 8)

    def take_bytes(self, n):
        """Whole bytes, after `align`."""
        out = bytearray()
        while self.nbits and n:
            out.append(self.bits & 0xFF)
            self.drop(8)
            n -= 1
        while n:
            if self.buf_pos >= len(self.buf) and not self.fill():
                raise GzipError("cut short: the archive ends inside its compressed data")
            piece = self.buf[self.buf_pos:self.buf_pos + n]
            self.buf_pos += len(piece)
            out += piece
            n -= len(piece)
        return bytes(out)

    # -- gzip framing --------------------------------------------------
    def member_header(self):
        """Reads a gzip member header; False when the file has ended."""
        self.align()
        if self.nbits == 0 and self.buf_pos >= len(self.buf) and not self.fill():
            return False
        head = self.take_bytes(1)
        if head == b"\0":
            return False  # zero padding after the last member, as some tools write
        head += self.take_bytes(9)
        if head[:3] != b"\x1f\x8b\x08":
            raise GzipError("not a gzip stream (or junk after its end)")
        flags = head[3]
        if flags & 4:  # FEXTRA
            self.take_bytes(int.from_bytes(self.take_bytes(2), "little"))
        for flag in (8, 16):  # FNAME, FCOMMENT: zero-terminated
            if flags & flag:
                while self.take_bytes(1) != b"\0":
                    pass
        if flags & 2:  # FHCRC
            self.take_bytes(2)
        self.crc, self.member_start = 0, self.out_start + len(self.out)
        self.verify = True
        return True

    def member_trailer(self):
        self.align()
        trailer = self.take_bytes(8)
        if self.verify:
            crc = int.from_bytes(trailer[:4], "little")
            size = int.from_bytes(trailer[4:], "little")
            length = self.out_start + len(self.out) - self.member_start
            if crc != self.crc or size != length & 0xFFFFFFFF:
                raise GzipError("damaged: the gzip checksum does not match its data")

    # -- blocks ------------------------------------------------------------
    def at_block_start(self):
        """True when the next input is a block header (a place to resume)."""
        return self.in_member and not self.finished

    def step(self):
        """Decodes one block (or a gzip header or trailer); False at the end."""
        if self.finished:
            return False
        if not self.in_member:
            if not self.member_header():
                self.finished = True
                return False
            self.in_member, self.last_block = True, False
            return True
        before = len(self.out)
        self.last_block = self.take_bits(1) == 1
        kind = self.take_bits(2)
        if kind == 0:
            self.align()
            header = self.take_bytes(4)
            length = int.from_bytes(header[:2], "little")
            if length ^ int.from_bytes(header[2:], "little") != 0xFFFF:
                raise GzipError("damaged: a stored block's length check fails")
            self.out += self.take_bytes(length)
        elif kind == 1:
            self.codes(*FIXED_LITERALS, *FIXED_DISTANCES)
        elif kind == 2:
            self.codes(*self.dynamic_tables())
        else:
            raise GzipError("damaged: an invalid block type")
        if self.verify:
            self.crc = binascii.crc32(memoryview(self.out)[before:], self.crc)
        if self.last_block:
            self.member_trailer()
            self.in_member = False
        return True

    def dynamic_tables(self):
        literal_count = self.take_bits(5) + 257
        distance_count = self.take_bits(5) + 1
        code_count = self.take_bits(4) + 4
        code_lengths = [0] * 19
        for i in range(code_count):
            code_lengths[CODE_LENGTH_ORDER[i]] = self.take_bits(3)
        table, bits = huffman_table(code_lengths)
        lengths = []
        while len(lengths) < literal_count + distance_count:
            self.need(bits)
            entry = table[self.bits & ((1 << bits) - 1)]
            if entry < 0:
                raise GzipError("damaged: an invalid code-length code")
            self.drop(entry & 15)
            symbol = entry >> 4
            if symbol < 16:
                lengths.append(symbol)
            elif symbol == 16:
                if not lengths:
                    raise GzipError("damaged: a repeat with nothing before it")
                lengths += [lengths[-1]] * (3 + self.take_bits(2))
            elif symbol == 17:
                lengths += [0] * (3 + self.take_bits(3))
            else:
                lengths += [0] * (11 + self.take_bits(7))
        if len(lengths) > literal_count + distance_count or lengths[256] == 0:
            raise GzipError("damaged: invalid code lengths")
        return (*huffman_table(lengths[:literal_count]),
                *huffman_table(lengths[literal_count:]))

    def codes(self, literals, literal_bits, distances, distance_bits):
        """The hot loop: literals and back-references until end-of-block.
        The bit buffer lives in locals here (attribute access is slow)."""
        out = self.out
        append = out.append
        from_bytes = int.from_bytes
        literal_mask = (1 << literal_bits) - 1
        distance_mask = (1 << distance_bits) - 1
        bits, nbits, buf, pos = self.bits, self.nbits, self.buf, self.buf_pos
        last_fast_load = len(buf) - 6
        try:
            while True:
                if nbits < 48:
                    if pos <= last_fast_load:
                        bits |= from_bytes(buf[pos:pos + 6], "little") << nbits
                        pos += 6
                        nbits += 48
                    else:
                        # Never past the end: a gzip trailer (64 bits) follows.
                        self.bits, self.nbits, self.buf_pos = bits, nbits, pos
                        self.need(48)
                        bits, nbits, buf, pos = self.bits, self.nbits, self.buf, self.buf_pos
                        last_fast_load = len(buf) - 6
                entry = literals[bits & literal_mask]
                if entry < 0:
                    raise GzipError("damaged: an invalid literal/length code")
                used = entry & 15
                bits >>= used
                nbits -= used
                symbol = entry >> 4
                if symbol < 256:
                    append(symbol)
                    continue
                if symbol == 256:
                    return
                symbol -= 257
                if symbol >= 29:
                    raise GzipError("damaged: an invalid length code")
                extra = LENGTH_EXTRA[symbol]
                length = LENGTH_BASE[symbol] + (bits & ((1 << extra) - 1))
                bits >>= extra
                entry = distances[bits & distance_mask]
                if entry < 0 or entry >> 4 >= 30:
                    raise GzipError("damaged: an invalid distance code")
                used = entry & 15
                bits >>= used
                symbol = entry >> 4
                distance_extra = DIST_EXTRA[symbol]
                distance = DIST_BASE[symbol] + (bits & ((1 << distance_extra) - 1))
                bits >>= distance_extra
                nbits -= extra + used + distance_extra
                if nbits < 0:
                    raise GzipError("cut short: the archive ends inside its compressed data")
                if distance > len(out):
                    raise GzipError("damaged: a reference before the start of the data")
                start = len(out) - distance
                if distance >= length:
                    out += out[start:start + length]
                else:
                    pattern = out[start:]
                    out += (pattern * (length // distance + 1))[:length]
        finally:
            self.bits, self.nbits, self.buf_pos = bits, nbits, pos

    def trim(self, keep_from):
        """Forgets output before offset ``keep_from``, keeping the window."""
        cut = min(keep_from - self.out_start, len(self.out) - WINDOW)
        if cut > 0:
            del self.out[:cut]
            self.out_start += cut


class GzipFile:
    """A gzip file, read once through on creation (to check it and note
    checkpoints), then readable at any offset with `pread`."""

    def __init__(self, fd):
        self.fd = fd
        self.checkpoints = []  # (out offset, bit position, window), sorted
        self.recent_blocks = collections.deque(maxlen=8)  # the same, for `mark`
        self.decoders = []  # a few recently used, most recent last
        self.size = None

    def stream(self):
        """Yields the decoded bytes in order, noting checkpoints and
        checking every member's CRC; sets ``size`` at the end."""
        decoder = Decoder(self.fd, 0, 0, b"", in_member=False)
        next_checkpoint = 0
        while True:
            here = decoder.out_start + len(decoder.out)
            if decoder.at_block_start():
                block = (here, decoder.bit_position(), bytes(decoder.out[-WINDOW:]))
                self.recent_blocks.append(block)
                if here >= next_checkpoint:
                    self.checkpoints.append(block)
                    next_checkpoint = here + CHECKPOINT_EVERY
            before = len(decoder.out)
            if not decoder.step():
                break
            if len(decoder.out) > before:
                yield bytes(decoder.out[before:])
            decoder.trim(decoder.out_start + len(decoder.out))
        self.size = decoder.out_start + len(decoder.out)

    def mark(self, offset, gap=0):
        """Adds a checkpoint at the last block that starts at or before
        ``offset``, so that a read from there wastes less than a block,
        unless one is already within ``gap`` bytes before it. Called while
        `stream` is near ``offset`` (older blocks are forgotten)."""
        for block in reversed(self.recent_blocks):
            if block[0] <= offset:
                i = bisect.bisect_right(self.checkpoints, block[0], key=lambda c: c[0])
                if i and self.checkpoints[i - 1][0] + gap >= block[0]:
                    return
                self.checkpoints.insert(i, block)
                return

    def pread(self, length, offset):
        """``length`` bytes from decoded offset ``offset`` (fewer at the end)."""
        decoder = self.decoder_for(offset)
        while decoder.out_start + len(decoder.out) < offset + length:
            if not decoder.step():
                break
            decoder.trim(offset)
        start = offset - decoder.out_start
        data = bytes(decoder.out[start:start + length])
        decoder.trim(offset + len(data))
        return data

    def decoder_for(self, offset):
        """A decoder at or before ``offset`` that has the least to decode: a
        recent one, or a new one from the nearest checkpoint."""
        i = bisect.bisect_right(self.checkpoints, offset, key=lambda c: c[0]) - 1
        checkpoint = self.checkpoints[max(i, 0)]
        for decoder in reversed(self.decoders):
            end = decoder.out_start + len(decoder.out)
            if decoder.out_start <= offset and end >= checkpoint[0]:
                self.decoders.remove(decoder)
                self.decoders.append(decoder)
                return decoder
        out_offset, bit_position, window = checkpoint
        decoder = Decoder(self.fd, bit_position, out_offset, window, in_member=True)
        self.decoders = self.decoders[-3:] + [decoder]
        return decoder
