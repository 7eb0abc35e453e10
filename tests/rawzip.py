"""A zip archive written field by field, for archives the standard writers
cannot produce: encrypted flags, zip64 records, lying sizes, a name or an
offset in the central directory that differs from the local header, bytes
before the compressed data.  Shared by the fixture generator
(tests/data/make_fixtures.py), the fuzz corpus (tests/fuzz/make_corpus.py)
and the reliability suites (tests/reliability/harness.py); the checked-in
archives they wrote must not change, so neither may the bytes written here.

Every entry is dated 1999-05-01 00:00 (0x5021, time 0) with Unix mode 0600.
"""
import struct
import zlib


def deflate(data):
    """Raw deflate (no zlib header), level 9."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    return co.compress(data) + co.flush()


def raw_zip(members, zip64=False, method=8):
    """The bytes of a zip of members, each a dict:

      name      str or bytes, in the local header
      data      the uncompressed bytes; or instead
      comp      an already compressed stream, with crc and size
      method    0 stored, 8 deflate, or any number (default: `method`)
      flags     general-purpose bits (default 0)
      size      the uncompressed size to declare (default len(data))
      prefix    bytes stored before the compressed data (an encryption
                header, say)
      cd_name   another name for the central directory
      offset    another local header offset for the central directory

    zip64 puts the sizes and offsets in zip64 extra fields and ends with
    zip64 end records."""
    out = bytearray()
    central = bytearray()
    for m in members:
        name = m["name"] if isinstance(m["name"], bytes) else m["name"].encode("utf-8")
        cd_name = m.get("cd_name", name)
        if isinstance(cd_name, str):
            cd_name = cd_name.encode("utf-8")
        meth = m.get("method", method)
        if "comp" in m:
            comp, crc, usize = m["comp"], m["crc"], m["size"]
        else:
            data = m["data"]
            comp = deflate(data) if meth == 8 else data
            crc = zlib.crc32(data) & 0xFFFFFFFF
            usize = m.get("size", len(data))
        comp = m.get("prefix", b"") + comp
        flags = m.get("flags", 0)
        need = 45 if zip64 else 20
        offset = len(out)
        if zip64:
            lextra = struct.pack("<HHQQ", 1, 16, usize, len(comp))
            l_us = l_cs = 0xFFFFFFFF
        else:
            lextra, l_us, l_cs = b"", usize, len(comp)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, need, flags, meth, 0, 0x5021, crc,
                           l_cs, l_us, len(name), len(lextra))
        out += name + lextra + comp
        c_off = m.get("offset", offset)
        if zip64:
            cextra = struct.pack("<HHQQQ", 1, 24, usize, len(comp), c_off)
            c_us = c_cs = c_off = 0xFFFFFFFF
        else:
            cextra, c_us, c_cs = b"", usize, len(comp)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x0314, need, flags, meth, 0,
                               0x5021, crc, c_cs, c_us, len(cd_name), len(cextra), 0, 0, 0,
                               0o100600 << 16, c_off)
        central += cd_name + cextra
    cd_off = len(out)
    out += central
    n = len(members)
    if zip64:
        e64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central),
                           cd_off)
        out += struct.pack("<IIQI", 0x07064B50, 0, e64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                           0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), cd_off, 0)
    return bytes(out)
