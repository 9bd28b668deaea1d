"""Write the header and directories of a tiled (Big)TIFF whose tiles are already compressed.

A Cloud-Optimized GeoTIFF is a tiled TIFF laid out as: header, the full-resolution image's
directory (IFD), the overviews' directories (largest first), then the tile data of the
smallest overview, …, of the largest overview, and last the full-resolution tiles. Once every
tile is compressed, only the directories are missing: :func:`tiff_header` builds the bytes
that go before the tile data, with every tile's final offset, and the tile bytes follow
unchanged.

Georeferencing, nodata, band descriptions and metadata are not encoded here: they are copied,
tag by tag, from a one-pixel GeoTIFF that GDAL writes with the same profile
(:func:`template_tags`), so they are exactly what GDAL would have written.

Example::

    tags = template_tags(Path("template.tif"))                   # written by GDAL, 1 × 1 px
    head = tiff_header([main, overview], tags, bigtiff=False)   # sets each data_offset
    out.write(head)
    for image in (overview, main):                              # smallest overview first
        out.write(tiles_of(image))
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

#: Byte size of each TIFF field type (1 BYTE … 18 IFD8).
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8}
SHORT, LONG, LONG8 = 3, 4, 16
NEW_SUBFILE_TYPE, IMAGE_WIDTH, IMAGE_LENGTH, COMPRESSION, PREDICTOR = 254, 256, 257, 259, 317
PLANAR_CONFIG, TILE_WIDTH, TILE_LENGTH, TILE_OFFSETS, TILE_BYTE_COUNTS = 284, 322, 323, 324, 325
#: Tags that describe the layout or encoding of the image data: set here, never copied.
STRUCTURAL = frozenset(
    {
        NEW_SUBFILE_TYPE,
        IMAGE_WIDTH,
        IMAGE_LENGTH,
        COMPRESSION,
        PREDICTOR,
        PLANAR_CONFIG,
        TILE_WIDTH,
        TILE_LENGTH,
        TILE_OFFSETS,
        TILE_BYTE_COUNTS,
        273,  # StripOffsets
        278,  # RowsPerStrip
        279,  # StripByteCounts
    }
)
#: Pixel-format tags an overview repeats from the full-resolution image.
PIXEL_FORMAT = frozenset({258, 262, 277, 338, 339, 42113})  # bits, photometric, samples, …


@dataclass(frozen=True)
class Tag:
    """One TIFF field: its id, type and the raw little-endian bytes of its values."""

    tag: int
    type: int
    count: int
    data: bytes


@dataclass
class Image:
    """One image of the file (full resolution or an overview) with its compressed tiles.

    Attributes:
        width, height: Size in pixels.
        tile: Tile edge in pixels.
        compression: TIFF compression code (8 deflate, 50000 zstd).
        predictor: 1 none, 2 horizontal differencing, 3 floating point.
        byte_counts: Compressed size of each tile, row-major.
        overview: Whether this is a reduced-resolution image.
        data_offset: File offset of its first tile; tiles follow each other without gaps.
    """

    width: int
    height: int
    tile: int
    compression: int
    predictor: int
    byte_counts: list[int]
    overview: bool = False
    data_offset: int = 0

    @property
    def data_size(self) -> int:
        """Bytes of all its tiles."""
        return sum(self.byte_counts)


def template_tags(path: Path) -> list[Tag]:
    """The non-structural tags of the first directory of a little-endian classic TIFF.

    Raises:
        ValueError: The file is not a little-endian classic TIFF.
    """
    raw = path.read_bytes()
    if raw[:4] != b"II*\x00":
        raise ValueError(f"{path} is not a little-endian classic TIFF")
    (offset,) = struct.unpack_from("<I", raw, 4)
    (count,) = struct.unpack_from("<H", raw, offset)
    tags = []
    for i in range(count):
        tag, kind, n, value = struct.unpack_from("<HHII", raw, offset + 2 + 12 * i)
        size = TYPE_SIZES[kind] * n
        start = offset + 2 + 12 * i + 8 if size <= 4 else value
        if tag not in STRUCTURAL:
            tags.append(Tag(tag, kind, n, raw[start : start + size]))
    return tags


def _ints(tag: int, kind: int, values: list[int]) -> Tag:
    fmt = {SHORT: "H", LONG: "I", LONG8: "Q"}[kind]
    return Tag(tag, kind, len(values), struct.pack(f"<{len(values)}{fmt}", *values))


def _image_tags(image: Image, shared: list[Tag], offsets: list[int], bigtiff: bool) -> list[Tag]:
    big = LONG8 if bigtiff else LONG
    own = [
        _ints(IMAGE_WIDTH, LONG, [image.width]),
        _ints(IMAGE_LENGTH, LONG, [image.height]),
        _ints(COMPRESSION, SHORT, [image.compression]),
        _ints(PLANAR_CONFIG, SHORT, [1]),
        _ints(PREDICTOR, SHORT, [image.predictor]),
        _ints(TILE_WIDTH, SHORT, [image.tile]),
        _ints(TILE_LENGTH, SHORT, [image.tile]),
        _ints(TILE_OFFSETS, big, offsets),
        _ints(TILE_BYTE_COUNTS, big, image.byte_counts),
    ]
    if image.overview:
        own.append(_ints(NEW_SUBFILE_TYPE, LONG, [1]))
        shared = [t for t in shared if t.tag in PIXEL_FORMAT]
    return sorted([*own, *shared], key=lambda t: t.tag)


def _directory(tags: list[Tag], at: int, bigtiff: bool, next_ifd: int) -> bytes:
    """One IFD at file offset ``at`` followed by its out-of-line values."""
    inline = 8 if bigtiff else 4
    entry = 20 if bigtiff else 12
    head = 8 if bigtiff else 2
    values_at = at + head + entry * len(tags) + inline
    entries, values = bytearray(), bytearray()
    entries += struct.pack("<Q" if bigtiff else "<H", len(tags))
    for t in tags:
        if len(t.data) <= inline:
            field_ = t.data.ljust(inline, b"\x00")
        else:
            if (values_at + len(values)) % 2:
                values += b"\x00"  # values start on a word boundary
            field_ = struct.pack("<Q" if bigtiff else "<I", values_at + len(values))
            values += t.data
        entries += struct.pack("<HHQ" if bigtiff else "<HHI", t.tag, t.type, t.count) + field_
    entries += struct.pack("<Q" if bigtiff else "<I", next_ifd)
    return bytes(entries + values)


def tiff_header(images: list[Image], shared: list[Tag], bigtiff: bool) -> bytes:
    """Header and directories of ``images`` (full resolution first, then overviews, largest
    first); sets each image's ``data_offset`` for the order smallest overview … full resolution.

    Args:
        images: The images, full resolution first.
        shared: Tags of the full-resolution image from :func:`template_tags` (georeference,
            nodata, metadata, pixel format); overviews repeat the pixel-format ones.
        bigtiff: Write a BigTIFF (64-bit offsets); needed when the file passes 4 GiB.

    Returns:
        The bytes from offset 0 to the first tile of the smallest overview.
    """

    def build(data_start: int) -> bytes:
        position = data_start
        for image in reversed(images):
            image.data_offset = position
            position += image.data_size
        header = (
            b"II+\x00" + struct.pack("<HHQ", 8, 0, 16)
            if bigtiff
            else b"II*\x00" + struct.pack("<I", 8)
        )
        out = bytearray(header)
        for i, image in enumerate(images):
            offsets, at = [], image.data_offset
            for count in image.byte_counts:
                offsets.append(at)
                at += count
            tags = _image_tags(image, shared, offsets, bigtiff)
            # the next directory starts where this one's values end (known after building it)
            draft = _directory(tags, len(out), bigtiff, 0)
            last = i == len(images) - 1
            next_ifd = 0 if last else len(out) + len(draft) + (len(out) + len(draft)) % 2
            out += _directory(tags, len(out), bigtiff, next_ifd)
            if not last and len(out) % 2:
                out += b"\x00"
        return bytes(out)

    size = len(build(0))
    head = build(size)
    assert len(head) == size  # offsets are fixed-width, so the size does not move
    return head
