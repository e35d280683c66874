"""Photos from the police: decoded to be checked, re-encoded without any metadata."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from services.ingest.photos import PhotoProblem, PhotoRejected, clean_photo

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def _jpeg(size: tuple[int, int] = (300, 400), *, exif: bool = True, **save: object) -> bytes:
    image = Image.new("RGB", size, (120, 80, 60))
    out = io.BytesIO()
    if exif:
        tags = Image.Exif()
        tags[0x010F] = "Camera of an officer"  # Make
        tags[GPS_IFD] = {1: "N", 2: (52.0, 5.0, 0.0), 3: "E", 4: (5.0, 7.0, 0.0)}
        tags[ORIENTATION] = 6  # rotated: shown upright only when turned
        save["exif"] = tags
    image.save(out, format="JPEG", **save)  # type: ignore[arg-type]
    return out.getvalue()


def _png(size: tuple[int, int] = (200, 200)) -> bytes:
    info = PngInfo()
    info.add_text("Comment", "Kerkstraat 12, Utrecht")
    out = io.BytesIO()
    Image.new("RGBA", size, (10, 20, 30, 255)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def test_a_jpeg_loses_its_exif_and_gps_and_stands_upright() -> None:
    original = _jpeg()
    assert Image.open(io.BytesIO(original)).getexif().get(GPS_IFD) is not None
    photo = clean_photo(original, "image/jpeg")
    cleaned = Image.open(io.BytesIO(photo.data))
    assert cleaned.format == "JPEG" and photo.media_type == "JPEG"
    assert dict(cleaned.getexif()) == {}, "no EXIF at all: no camera, no GPS position"
    assert b"Camera of an officer" not in photo.data
    assert "icc_profile" not in cleaned.info
    assert (photo.width, photo.height) == (400, 300), "turned by its orientation"


def test_a_png_loses_its_text_chunks() -> None:
    photo = clean_photo(_png(), "image/png")
    cleaned = Image.open(io.BytesIO(photo.data))
    assert cleaned.format == "PNG"
    assert "Comment" not in cleaned.info and b"Kerkstraat" not in photo.data


def test_a_large_photo_is_scaled_to_what_a_mail_needs() -> None:
    photo = clean_photo(_jpeg((3000, 2000), exif=False), "image/jpeg", max_bytes=10**7)
    assert max(photo.width, photo.height) == 1024


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (_jpeg(), "image/gif", PhotoProblem.UNSUPPORTED_MEDIA_TYPE),
        (_jpeg(), "application/json", PhotoProblem.UNSUPPORTED_MEDIA_TYPE),
        (_png(), "image/jpeg", PhotoProblem.INVALID_IMAGE),  # declared JPEG, is PNG
        (b"", "image/jpeg", PhotoProblem.INVALID_IMAGE),
        (b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg", PhotoProblem.INVALID_IMAGE),
        (_jpeg()[:300], "image/jpeg", PhotoProblem.INVALID_IMAGE),  # truncated
        (b"x" * 600_000, "image/jpeg", PhotoProblem.TOO_LARGE),
    ],
)
def test_what_is_refused(body: bytes, content_type: str, problem: PhotoProblem) -> None:
    with pytest.raises(PhotoRejected) as caught:
        clean_photo(body, content_type)
    assert caught.value.problem is problem


def test_a_small_file_of_enormous_dimensions_is_refused_before_it_is_decoded() -> None:
    bomb = _jpeg((8000, 100), exif=False, quality=10)
    assert len(bomb) < 100_000
    with pytest.raises(PhotoRejected) as caught:
        clean_photo(bomb, "image/jpeg")
    assert caught.value.problem is PhotoProblem.IMAGE_TOO_LARGE


def test_the_detail_names_no_content() -> None:
    with pytest.raises(PhotoRejected) as caught:
        clean_photo(b"Kerkstraat 12", "image/png")
    assert "Kerkstraat" not in str(caught.value)
