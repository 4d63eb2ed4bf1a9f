"""Image preprocessing: PNG/JPEG bytes -> normalised CHW float32 pixels, with untrusted-input guards.

Order of checks, cheapest first and all before any pixel is decoded: byte size, magic bytes, the width
and height the header declares (decompression bombs), then the decode itself (truncated or corrupt
data). PIL's own DecompressionBombError/Warning are caught as a second line of defence.
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
import pandas as pd
from PIL import Image

from actors.columns import Rejected, ensure_reject_column, reject
from actors.settings import ImageSettings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"

CORRUPT = "corrupt image"
NOT_IMAGE = "not a PNG or JPEG image"
TOO_MANY_BYTES = "image over max_bytes"
TOO_MANY_PIXELS = "image over max_pixels"


class ImageRejected(Rejected):
    """The bytes are not an image this pipeline accepts; `reason` says why."""


def _as_bytes(data) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, np.ndarray):
        return data.tobytes()
    raise ImageRejected(NOT_IMAGE)


def _png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the IHDR chunk, which must come first in a PNG."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def header_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """(width, height) declared by the header, without decoding pixels; raises ImageRejected."""
    if data.startswith(PNG_MAGIC):
        size = _png_size(data)
        if size is None:
            raise ImageRejected(CORRUPT)
    elif data.startswith(JPEG_MAGIC):
        size = None  # JPEG's size sits in a SOF marker; PIL reads only the header on open()
    else:
        raise ImageRejected(NOT_IMAGE)
    if size is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                size = Image.open(io.BytesIO(data)).size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(TOO_MANY_PIXELS) from None
        except Exception:
            raise ImageRejected(CORRUPT) from None
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageRejected(CORRUPT)
    if width * height > max_pixels:
        raise ImageRejected(TOO_MANY_PIXELS)
    return width, height


def preprocess_image(data, settings: ImageSettings) -> np.ndarray:
    """Encoded PNG/JPEG bytes -> float32 array (3, image_size, image_size), normalised.

    Raises ImageRejected(reason) for anything it will not decode.
    """
    data = _as_bytes(data)
    if len(data) > settings.max_bytes:
        raise ImageRejected(TOO_MANY_BYTES)
    header_size(data, settings.max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in ("PNG", "JPEG"):
                    raise ImageRejected(NOT_IMAGE)
                img.load()  # raises OSError on truncated data (LOAD_TRUNCATED_IMAGES stays False)
                rgb = img.convert("RGB")
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(TOO_MANY_PIXELS) from None
    except Exception:
        raise ImageRejected(CORRUPT) from None
    size = settings.image_size
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0  # (H, W, 3) in [0, 1]
    mean = np.asarray(settings.mean, dtype=np.float32)
    std = np.asarray(settings.std, dtype=np.float32)
    pixels = (pixels - mean) / std
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))  # (3, H, W)


class ImagePreprocessor:
    """Ray Data actor: `image` bytes -> `pixel_values` (flattened CHW float32; null when no image)."""

    def __init__(self, settings: ImageSettings | dict):
        self.settings = settings if isinstance(settings, ImageSettings) else ImageSettings(**settings)
        # PIL's global guard, per actor process: warn above max_pixels, error above twice that.
        Image.MAX_IMAGE_PIXELS = self.settings.max_pixels

    def preprocess(self, data) -> np.ndarray:
        """One image, as serving calls it: (3, H, W) float32; raises ImageRejected."""
        return preprocess_image(data, self.settings)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        ensure_reject_column(batch)
        images = batch["image"].tolist() if "image" in batch.columns else [None] * len(batch)
        pixels: list[np.ndarray | None] = []
        reasons: list[str | None] = []
        for data in images:
            if data is None or data is pd.NA or (isinstance(data, float) and np.isnan(data)):
                pixels.append(None)  # no image: modality absent, not a rejection
                reasons.append(None)
                continue
            try:
                pixels.append(preprocess_image(data, self.settings).ravel())
                reasons.append(None)
            except ImageRejected as exc:
                pixels.append(None)
                reasons.append(exc.reason)
        batch["pixel_values"] = pd.Series(pixels, index=batch.index, dtype=object)
        for reason in sorted({r for r in reasons if r is not None}):
            reject(batch, [r == reason for r in reasons], reason)
        return batch
