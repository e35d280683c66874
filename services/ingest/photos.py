"""Persons' photos from the police (``PUT /v1/photos/{photo_id}``): checked by decoding them,
and re-encoded without metadata before anything is published (ADR 0017).

A photo is JPEG or PNG, at most ``max_bytes`` as sent, at most ``max_side`` pixels a side
(a small file can decode to an enormous image). Decoding it proves it is an image of the
declared type; re-encoding it drops everything but the pixels: EXIF (camera, time, GPS
position), XMP, ICC profiles and PNG text chunks, which may carry personal data. The image is
first turned upright by its EXIF orientation and scaled to at most ``out_side`` pixels a side:
a mail needs no more, and the record stays far below Kafka's 1 MB message limit. Pure: no
I/O, tested without servers.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from enum import StrEnum

from PIL import Image, ImageOps, UnidentifiedImageError

from dagmonitor.errors import DagmonitorError

MEDIA_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG"}
"""Accepted Content-Types and the format each must decode as."""


class PhotoProblem(StrEnum):
    """Why a photo is refused; the HTTP answer's ``error``."""

    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    TOO_LARGE = "too_large"
    INVALID_IMAGE = "invalid_image"
    IMAGE_TOO_LARGE = "image_too_large"


STATUS = {
    PhotoProblem.UNSUPPORTED_MEDIA_TYPE: 415,
    PhotoProblem.TOO_LARGE: 413,
    PhotoProblem.INVALID_IMAGE: 400,
    PhotoProblem.IMAGE_TOO_LARGE: 400,
}


class PhotoRejected(DagmonitorError):
    """The photo is refused: ``problem`` and a detail that names no content."""

    def __init__(self, problem: PhotoProblem, detail: str) -> None:
        super().__init__(f"{problem.value}: {detail}")
        self.problem = problem
        self.detail = detail


@dataclass(frozen=True, slots=True)
class CleanPhoto:
    """A photo ready to publish: its format (``JPEG``/``PNG``), size and re-encoded bytes."""

    media_type: str
    width: int
    height: int
    data: bytes


def clean_photo(
    body: bytes,
    content_type: str,
    *,
    max_bytes: int = 512 * 1024,
    max_side: int = 6000,
    out_side: int = 1024,
) -> CleanPhoto:
    """Decode, check and re-encode one photo; raises ``PhotoRejected``."""
    expected = MEDIA_TYPES.get(content_type)
    if expected is None:
        raise PhotoRejected(PhotoProblem.UNSUPPORTED_MEDIA_TYPE, "send image/jpeg or image/png")
    if len(body) > max_bytes:
        raise PhotoRejected(PhotoProblem.TOO_LARGE, f"the photo exceeds {max_bytes} bytes")
    if not body:
        raise PhotoRejected(PhotoProblem.INVALID_IMAGE, "the body is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(body), formats=[expected])
            if max(image.size) > max_side:
                raise PhotoRejected(
                    PhotoProblem.IMAGE_TOO_LARGE, f"at most {max_side} pixels a side"
                )
            image.load()
            upright = ImageOps.exif_transpose(image)
    except PhotoRejected:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        SyntaxError,
        ValueError,
    ):
        raise PhotoRejected(
            PhotoProblem.INVALID_IMAGE, f"the body does not decode as {content_type}"
        ) from None
    upright.thumbnail((out_side, out_side))
    data = _encode(upright, expected)
    if len(data) > max_bytes:
        raise PhotoRejected(PhotoProblem.TOO_LARGE, f"the photo exceeds {max_bytes} bytes")
    return CleanPhoto(expected, upright.width, upright.height, data)


def _encode(image: Image.Image, media_type: str) -> bytes:
    """Pixels only: no ``exif``, ``icc_profile`` or text passed, so none is written."""
    out = io.BytesIO()
    if media_type == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, format="JPEG", quality=85, optimize=True)
    else:
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            image = image.convert("RGBA")
        image.save(out, format="PNG", optimize=True)
    return out.getvalue()
