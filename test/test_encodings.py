"""Raw camera encodings decoded to RGB: frames made from a real photo in each encoding a driver publishes.

Each test builds the frame the way a sensor or driver does (a Bayer mosaic samples one colour per
pixel; YUV 4:2:2 and NV21 subsample colour) from skimage's astronaut photo, with padded rows, and
checks the decoded image matches the photo closely.
"""

from __future__ import annotations

import array
import struct
import zlib

import cv2
import numpy as np
import pytest
import skimage.data

pytestmark = pytest.mark.ros

conversions = pytest.importorskip("ivlm_ros.conversions", reason="ivlm_ros messages are not built")
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

PAD = 6  # bytes after every row (drivers align rows)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real RGB photo, 384x256 (even sizes, as Bayer and 4:2:x sensors have)."""
    return np.ascontiguousarray(skimage.data.astronaut()[::2, 64:448])


def _message(rows: np.ndarray, encoding: str, width: int, height: int, bigendian: bool = False) -> Image:
    """An Image of `rows` ((n_rows, row_bytes) uint8), each row followed by PAD junk bytes."""
    padded = np.hstack([rows, np.full((rows.shape[0], PAD), 99, np.uint8)])
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=bigendian, step=padded.shape[1])
    msg.data = array.array("B", padded.tobytes())
    return msg


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """(H, W) Bayer mosaic of an RGB image; `pattern` names the 2x2 tile row by row, e.g. 'rggb'."""
    out = np.zeros(rgb.shape[:2], rgb.dtype)
    for (dy, dx), colour in zip([(0, 0), (0, 1), (1, 0), (1, 1)], pattern, strict=True):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(colour)]
    return out


def _error(decoded: np.ndarray, photo: np.ndarray) -> float:
    assert decoded.shape == photo.shape and decoded.dtype == np.uint8
    return float(np.abs(decoded.astype(np.int16) - photo).mean())


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer8_is_demosaiced_to_the_photo(photo, pattern):
    h, w, _ = photo.shape
    rgb = conversions.image_to_rgb(_message(_mosaic(photo, pattern), f"bayer_{pattern}8", w, h))
    assert _error(rgb, photo) < 5.0  # bilinear demosaicing; a wrong tile order gives > 20


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer16_from_a_12bit_sensor_is_demosaiced_and_stretched(photo, pattern, bigendian):
    h, w, _ = photo.shape
    mosaic = _mosaic(photo, pattern).astype(np.uint16) * 16  # 12-bit values in 16-bit words
    raw = mosaic.astype(">u2" if bigendian else "<u2").view(np.uint8).reshape(h, 2 * w)
    rgb = conversions.image_to_rgb(_message(raw, f"bayer_{pattern}16", w, h, bigendian))
    expected = np.clip(photo * (255.0 / _mosaic(photo, pattern).max()), 0, 255).round().astype(np.uint8)
    assert _error(rgb, expected) < 5.0


@pytest.mark.parametrize(("encoding", "to_yuv"), [
    ("yuv422", cv2.COLOR_RGB2YUV_UYVY), ("uyvy", cv2.COLOR_RGB2YUV_UYVY),
    ("yuv422_yuy2", cv2.COLOR_RGB2YUV_YUY2), ("yuyv", cv2.COLOR_RGB2YUV_YUY2),
])
def test_packed_yuv422_is_converted_to_the_photo(photo, encoding, to_yuv):
    h, w, _ = photo.shape
    packed = cv2.cvtColor(photo, to_yuv).reshape(h, 2 * w)
    rgb = conversions.image_to_rgb(_message(packed, encoding, w, h))
    assert _error(rgb, photo) < 3.0  # half-resolution chroma; swapped byte order gives > 30


def test_nv21_is_converted_to_the_photo(photo):
    h, w, _ = photo.shape
    yv12 = cv2.cvtColor(photo, cv2.COLOR_RGB2YUV_YV12)  # Y plane, then V plane, then U plane
    y, v, u = yv12[:h], yv12[h:h + h // 4].reshape(-1), yv12[h + h // 4:].reshape(-1)
    vu = np.stack([v, u], axis=1).reshape(h // 2, w)  # NV21: one plane of interleaved V, U
    rgb = conversions.image_to_rgb(_message(np.vstack([y, vu]), "nv21", w, h))
    assert _error(rgb, photo) < 3.0


@pytest.mark.parametrize(("encoding", "dtype"), [("16UC1", "<u2"), ("32FC1", "<f4"), ("64FC1", "<f8")])
def test_depth_like_encodings_are_refused_with_the_reason(encoding, dtype):
    depth = np.full((48, 64), 1500, dtype)
    msg = _message(depth.view(np.uint8).reshape(48, -1), encoding, 64, 48)
    with pytest.raises(ValueError, match=rf"'{encoding}' is a depth-like image.*colour or mono stream"):
        conversions.image_to_rgb(msg)


def test_odd_width_yuv_is_refused(photo):
    msg = _message(np.zeros((4, 2 * 5), np.uint8), "yuv422", 5, 4)
    with pytest.raises(ValueError, match="even width"):
        conversions.image_to_rgb(msg)


def test_a_raw_frame_above_max_image_pixels_is_refused_before_reading_its_data():
    msg = Image(height=20000, width=20000, encoding="rgb8", step=60000)  # no data at all
    with pytest.raises(ValueError, match=r"400\.0 MP.*max_image_pixels"):
        conversions.image_to_rgb(msg)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int) -> bytes:
    """The start of an RGB PNG of that size: signature, IHDR and a first IDAT (its first rows of zeros).

    A decompression bomb is such a file carried on: a few hundred KB of zeros that inflate to gigabytes.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compressobj().compress(bytes((3 * width + 1) * 4))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows)


def test_compressed_bomb_is_refused_from_its_header_before_decoding(photo):
    msg = CompressedImage(format="png")
    msg.data = array.array("B", _png_header(20000, 20000))
    with pytest.raises(ValueError, match=r"400000000 pixels.*max_image_pixels"):
        conversions.compressed_to_rgb(msg)
    msg.data = array.array("B", _png_header(8000, 6000))
    with pytest.raises(ValueError, match=r"8000x6000 = 48\.0 MP.*max_image_pixels = 40\.0 MP"):
        conversions.compressed_to_rgb(msg)
    _, png = cv2.imencode(".png", photo)
    msg.data = array.array("B", png.tobytes())
    assert conversions.compressed_to_rgb(msg, max_pixels=_pixels(photo)).shape == photo.shape
    with pytest.raises(ValueError, match="max_image_pixels"):
        conversions.compressed_to_rgb(msg, max_pixels=_pixels(photo) - 1)


def _pixels(image: np.ndarray) -> int:
    return image.shape[0] * image.shape[1]


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_compressed_frame_is_refused_not_answered_half_grey(photo, ext):
    """A cut transfer is named as such (the same check as the CLI's, which cv2.imread would decode with
    the missing part grey), not as an undecodable frame."""
    _, encoded = cv2.imencode(ext, photo)
    msg = CompressedImage(format=ext[1:])
    msg.data = array.array("B", encoded.tobytes()[: encoded.size * 2 // 3])
    with pytest.raises(ValueError, match=rf"has no (JPEG end marker|PNG end chunk).*compressed '{ext[1:]}'"):
        conversions.compressed_to_rgb(msg)
    msg.data = array.array("B", encoded.tobytes() + b"trailing")  # data after the end is fine
    assert conversions.compressed_to_rgb(msg).shape == photo.shape


def test_compressed_depth_is_refused():
    msg = CompressedImage(format="16UC1; compressedDepth png")
    msg.data = array.array("B", _png_header(64, 48))
    with pytest.raises(ValueError, match="depth image"):
        conversions.compressed_to_rgb(msg)


@pytest.mark.parametrize("encoding", ["rgb16", "bgr16"])
def test_16bit_colour_is_scaled_to_8bit(photo, encoding):
    h, w, _ = photo.shape
    pixels = (photo if encoding == "rgb16" else photo[:, :, ::-1]).astype("<u2") * 257  # full 16-bit range
    rgb = conversions.image_to_rgb(_message(pixels.view(np.uint8).reshape(h, -1), encoding, w, h))
    scale = 255.0 / photo.max()
    np.testing.assert_array_equal(rgb, np.round(photo * scale).astype(np.uint8))
