#!/usr/bin/env python3
"""Writes browser-like ClientHellos that no local client sends, for the
fuzzing corpus (t/fuzz/corpus/clienthello/):

  browser-mlkem          one record: a TLS 1.3 hello as a current browser
                         sends it: GREASE, X25519MLKEM768 (0x11ec, a
                         1216-byte share) and X25519 key shares, ALPN,
                         compress_certificate, an ECH GREASE extension
  browser-mlkem-split    the same hello in records of 512 bytes
  browser-mlkem-tiny     the same hello, its first record 1 byte long

    python3 t/fuzz/mkhello.py DIR

The bytes are pseudo-random from a fixed seed: the files are the same
every time.
"""
import os
import random
import struct
import sys

rng = random.Random(0x11EC)
GREASE = 0x0A0A


def rand(n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def u8(b):
    return struct.pack("!B", len(b)) + b


def u16(b):
    return struct.pack("!H", len(b)) + b


def u16s(*vals):
    return b"".join(struct.pack("!H", v) for v in vals)


def ext(typ, body):
    return struct.pack("!H", typ) + u16(body)


def extensions(host):
    shares = (u16s(GREASE) + u16(b"\0") +
              u16s(0x11EC) + u16(rand(1184) + rand(32)) +   # ML-KEM-768 pk || X25519
              u16s(0x001D) + u16(rand(32)))
    exts = [
        ext(GREASE, b""),
        ext(0x0000, u16(b"\0" + u16(host))),                              # server_name
        ext(0x0017, b""),                                                 # extended_master_secret
        ext(0xFF01, b"\0"),                                               # renegotiation_info
        ext(0x000A, u16(u16s(GREASE, 0x11EC, 0x001D, 0x0017, 0x0018))),   # supported_groups
        ext(0x000B, u8(b"\0")),                                           # ec_point_formats
        ext(0x0023, b""),                                                 # session_ticket
        ext(0x0010, u16(u8(b"h2") + u8(b"http/1.1"))),                    # ALPN
        ext(0x0005, b"\x01\0\0\0\0"),                                     # status_request
        ext(0x000D, u16(u16s(0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806,
                             0x0601))),                                   # signature_algorithms
        ext(0x0012, b""),                                                 # SCT
        ext(0x0033, u16(shares)),                                         # key_share
        ext(0x002D, u8(b"\x01")),                                         # psk_key_exchange_modes
        ext(0x002B, u8(u16s(GREASE, 0x0304, 0x0303))),                    # supported_versions
        ext(0x001B, u8(u16s(0x0002))),                                    # compress_certificate
        ext(0x44CD, u16(u8(b"h2"))),                                      # application_settings
        ext(0xFE0D, b"\0\0\x01\0\x01" + rand(1) + u16(rand(32)) + u16(rand(144))),  # ECH GREASE
        ext(GREASE + 0x1010, b"\0"),
    ]
    return u16(b"".join(exts))


def client_hello(host):
    suites = u16s(GREASE, 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9,
                  0xCCA8, 0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035)
    body = (u16s(0x0303) + rand(32) + u8(rand(32)) + u16(suites) + u8(b"\0") +
            extensions(host))
    return b"\x01" + struct.pack("!I", len(body))[1:] + body


def records(msg, sizes):
    out, off, i = b"", 0, 0
    while off < len(msg):
        n = sizes[min(i, len(sizes) - 1)]
        out += b"\x16\x03\x01" + struct.pack("!H", len(msg[off:off + n])) + msg[off:off + n]
        off += n
        i += 1
    return out


def main(outdir):
    msg = client_hello(b"www.example.com")
    for name, sizes in (("browser-mlkem", [16384]), ("browser-mlkem-split", [512]),
                        ("browser-mlkem-tiny", [1, 16384])):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(records(msg, sizes))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
