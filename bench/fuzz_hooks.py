"""schemathesis hooks for bench/fuzz.py (loaded by the CLI through $SCHEMATHESIS_HOOKS=fuzz_hooks).

The schema's `format: byte` (a base64 image) is drawn as real PNG/JPEG images: JSON Schema cannot say whether
bytes decode, so a random base64 string is the decoder's 400, outside the schema (serve/schemas.py), and the
tests draw images the same way (tests/serve/test_app.py, tests/reliability/test_schemas_property.py)."""

from __future__ import annotations

import base64
import io

import schemathesis
from hypothesis import strategies as st


def _image(size: int, fmt: str, colour: tuple[int, int, int]) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


IMAGES = [_image(1, "PNG", (30, 120, 200)), _image(8, "JPEG", (200, 30, 30)), _image(40, "PNG", (0, 0, 0)),
          _image(64, "JPEG", (250, 250, 250))]
schemathesis.openapi.format("byte", st.sampled_from(IMAGES))
