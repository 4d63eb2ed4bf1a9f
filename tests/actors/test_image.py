"""Image actor on hand-made bytes: valid PNG/JPEG, truncated, random, bomb header, oversize. No Ray."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from actors.image import ImagePreprocessor, ImageRejected, preprocess_image
from actors.settings import ImageSettings

SETTINGS = ImageSettings(image_size=16, max_bytes=200_000, max_pixels=1_000_000)


def _encode(fmt: str, size=(40, 30), color=(255, 0, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height, followed by a tiny IDAT: a decompression bomb header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_valid_png_is_normalised_chw():
    out = preprocess_image(_encode("PNG"), SETTINGS)
    assert out.shape == (3, 16, 16) and out.dtype == np.float32
    # pure red, mean=std=0.5: R channel (1-0.5)/0.5 = 1, G and B (0-0.5)/0.5 = -1
    assert np.allclose(out[0], 1.0) and np.allclose(out[1:], -1.0)


def test_jpeg_decodes():
    out = preprocess_image(_encode("JPEG", color=(0, 0, 255)), SETTINGS)
    assert out.shape == (3, 16, 16)
    assert out[2].mean() > 0.9 and out[0].mean() < -0.9


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_encode("PNG")[:60], "corrupt image"),  # truncated inside IDAT
        (np.random.default_rng(0).bytes(500), "not a PNG or JPEG image"),
        (_png_claiming(100_000, 100_000), "image over max_pixels"),
        (b"GIF89a" + b"\0" * 100, "not a PNG or JPEG image"),
        (b"\x89PNG\r\n\x1a\n", "corrupt image"),
    ],
)
def test_bad_bytes_are_rejected_with_reason(data, reason):
    with pytest.raises(ImageRejected) as info:
        preprocess_image(data, SETTINGS)
    assert info.value.reason == reason


def test_over_max_bytes():
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8))
    buf = io.BytesIO()
    noisy.save(buf, format="PNG")
    with pytest.raises(ImageRejected, match="max_bytes"):
        preprocess_image(buf.getvalue(), SETTINGS)


def test_bomb_is_rejected_even_under_pil_default_limit():
    # 2000x2000 = 4M pixels: fine for PIL's default guard, over our max_pixels of 1M
    with pytest.raises(ImageRejected, match="max_pixels"):
        preprocess_image(_png_claiming(2000, 2000), SETTINGS)


def test_batch_marks_rejects_and_absent_images():
    actor = ImagePreprocessor(SETTINGS)
    batch = pd.DataFrame(
        {
            "id": list("abcde"),
            "image": [_encode("PNG"), None, _encode("PNG")[:60], b"junk", _encode("JPEG")],
            "reject_reason": [None, None, None, "empty text", None],
        }
    )
    out = actor(batch)
    assert out["reject_reason"].tolist() == [None, None, "corrupt image", "empty text", None]
    assert out["pixel_values"][1] is None  # no image: modality absent, not rejected
    assert len(out["pixel_values"][0]) == 3 * 16 * 16 and out["pixel_values"][4].dtype == np.float32
