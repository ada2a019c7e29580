"""Small real files of each kind the PDS must recognise, built here (Pillow is not a dependency).

PNG and GIF are complete, decodable 1x1 images; the others carry the real container headers that
identify them (JFIF/Exif markers, RIFF/WEBP chunks, ISO-BMFF `ftyp` boxes, the EBML header).
"""

from __future__ import annotations

import struct
import zlib


def png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte + one red pixel
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def gif_1x1() -> bytes:
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0)  # screen 1x1, 2-colour global table
        + b"\xff\x00\x00\x00\x00\x00"
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, 1, 1, 0)  # image descriptor
        + b"\x02\x02\x44\x01\x00"  # LZW min code size 2, one data block
        + b"\x3b"
    )


def jpeg_jfif() -> bytes:
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    quant = b"\x00" + bytes(range(1, 65))
    return (
        b"\xff\xd8"
        + b"\xff\xe0"
        + struct.pack(">H", len(app0) + 2)
        + app0
        + b"\xff\xdb"
        + struct.pack(">H", len(quant) + 2)
        + quant
        + b"\xff\xd9"
    )


def jpeg_exif() -> bytes:
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x00\x00"
    return b"\xff\xd8\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + b"\xff\xd9"


def webp() -> bytes:
    vp8l = b"\x2f\x00\x00\x00\x00\x88\x88\x08\x08"  # lossless 1x1 bitstream header
    body = b"WEBP" + b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l + b"\x00"
    return b"RIFF" + struct.pack("<I", len(body)) + body


def iso_bmff(major: bytes, *compatible: bytes) -> bytes:
    """An `ftyp` box followed by an empty `mdat`, as every MP4/MOV/HEIF/AVIF file starts."""
    body = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    ftyp = struct.pack(">I", 8 + len(body)) + b"ftyp" + body
    return ftyp + struct.pack(">I", 8) + b"mdat"


def webm() -> bytes:
    doc_type = b"\x42\x82\x84webm"
    header = b"\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08" + doc_type
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(header)]) + header


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


# (name, content, sniffed type) — the kinds the brief names, as real uploads start.
SNIFFED = (
    ("png", png_1x1(), "image/png"),
    ("gif", gif_1x1(), "image/gif"),
    ("jpeg-jfif", jpeg_jfif(), "image/jpeg"),
    ("jpeg-exif", jpeg_exif(), "image/jpeg"),
    ("webp", webp(), "image/webp"),
    ("avif", iso_bmff(b"avif", b"mif1", b"miaf"), "image/avif"),
    ("avif-sequence", iso_bmff(b"avis", b"avis", b"msf1"), "image/avif"),
    ("avif-under-mif1", iso_bmff(b"mif1", b"avif", b"miaf"), "image/avif"),
    ("heic", iso_bmff(b"heic", b"mif1", b"heic"), "image/heic"),
    ("heic-10bit", iso_bmff(b"heix", b"mif1", b"heix"), "image/heic"),
    ("heic-under-mif1", iso_bmff(b"mif1", b"heic"), "image/heic"),
    ("mp4", iso_bmff(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4"),
    ("mp4-mp42", iso_bmff(b"mp42", b"mp42", b"isom"), "video/mp4"),
    ("quicktime", iso_bmff(b"qt  ", b"qt  "), "video/quicktime"),
    ("webm", webm(), "video/webm"),
    ("pdf", pdf(), "application/pdf"),
)
