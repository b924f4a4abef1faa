"""What an input image must satisfy before any pixel is decoded (node and CLI alike).

Size: a small encoded file can decode to a huge frame (a 425 KB 20000x20000 PNG took the node to
3.1 GB and the CLI to 6.4 GB): the size is read from the encoded header first (Pillow parses headers
without decoding) and compared with the limit, so such a file is refused before it takes memory.
Completeness: OpenCV decodes what is there of a truncated JPEG or PNG and greys the rest without an
error, and a half-grey frame would be answered as if it were the scene.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image as PILImage

# 40 MP is above 8K UHD (33 MP); a 20000x20000 frame would need 1.2 GB as RGB
MAX_IMAGE_PIXELS = 40_000_000


def check_image_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """ValueError naming `what` unless width x height is a non-empty image of at most `max_pixels`."""
    if width <= 0 or height <= 0:
        raise ValueError(f"empty image ({width}x{height}, {what})")
    if width * height > max_pixels:
        raise ValueError(f"image is {width}x{height} = {width * height / 1e6:.1f} MP ({what}), above "
                         f"max_image_pixels = {max_pixels / 1e6:.1f} MP; lower the camera resolution or "
                         f"raise max_image_pixels")


def check_encoded_image(data: bytes | Path, max_pixels: int, what: str) -> tuple[int, int]:
    """(width, height) of an encoded image (jpeg, png, ...; bytes or a file) from its header alone,
    checked against `max_pixels`; ValueError naming `what` for an unreadable header or a frame that is
    too large."""
    try:
        with warnings.catch_warnings():  # Pillow warns before its own bomb limit; ours is lower anyway
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data) if isinstance(data, bytes) else data) as header:
                width, height = header.size
    except PILImage.DecompressionBombError as exc:  # Pillow's own bound (~179 MP) is above ours
        raise ValueError(f"image is too large ({what}): {exc}; images above max_image_pixels = "
                         f"{max_pixels / 1e6:.1f} MP are refused") from None
    except Exception as exc:  # Pillow raises several types for unreadable headers
        raise ValueError(f"cannot read the image header ({what}): {exc}") from None
    check_image_pixels(width, height, max_pixels, what)
    return width, height


def check_complete(data: bytes, what: str) -> None:
    """ValueError naming `what` when a JPEG or PNG is cut short (other formats pass)."""
    # inside a JPEG scan 0xFF is always followed by 0x00 or a restart marker, so an end-of-image marker
    # after the last start-of-scan is the end of the picture (data appended after it is fine)
    if data[:2] == b"\xff\xd8" and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        problem = "has no JPEG end marker after its last scan"
    elif data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data:
        problem = "has no PNG end chunk"
    else:
        return
    raise ValueError(f"image {problem} ({what}): it is truncated; check the source (a partly written file, "
                     "a cut transfer)")
