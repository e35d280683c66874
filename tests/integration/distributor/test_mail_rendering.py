"""Every mail kind looked at as its recipients do: its HTML rendered in headless Chromium
(Debian's package, installed by scripts/bootstrap.sh) at a phone's 390 px and a desktop's
1024 px. Nothing may reach past the right edge (no horizontal scrolling), every image must be
one of the mail's own parts (``cid:``) and decode, and nothing may come from outside."""

from __future__ import annotations

import email
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from PIL import Image as PILImage

from dagmonitor_cli.browser import DESKTOP_WIDTH, PHONE_WIDTH, Page, browser, mail_html
from services.distributor.entitlements import Recipient, Role
from services.distributor.outbox import address
from services.distributor.rendering import Rendered
from tests.unit.distributor.mail_kinds import every_kind

pytestmark = pytest.mark.integration

KINDS = every_kind()
RECIPIENT = Recipient(Role.ENFORCEMENT_TEAM_LEADER, "teamleider@gemeente.invalid")


def _mail(rendered: Rendered) -> EmailMessage:
    outgoing = address(
        rendered,
        RECIPIENT,
        sender="dagmonitor@politie.invalid",
        domain="d.invalid",
        date=datetime(2026, 11, 28, 6, tzinfo=UTC),
    )
    return email.message_from_bytes(outgoing.body, policy=default)  # type: ignore[return-value]


@pytest.fixture(scope="module")
async def page() -> AsyncIterator[Page]:
    async with browser() as opened:
        yield opened


@pytest.mark.parametrize("width", [PHONE_WIDTH, DESKTOP_WIDTH])
@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_nothing_overflows_and_every_image_is_inline(
    page: Page, kind: str, width: int
) -> None:
    layout = await page.load(mail_html(_mail(KINDS[kind])), width)
    assert layout.inner_width == width, "no zooming out to fit"
    assert not layout.overflows, f"{kind} at {width} px: {layout.scroll_width} px, {layout.wide}"
    assert all(i.inline and i.loaded for i in layout.images), f"{kind}: {layout.images}"
    assert all(i.right <= width for i in layout.images)
    expected_images = {"hotspots": 1, "notice-persons": 1, "evaluation": 1}.get(kind, 0)
    assert len(layout.images) == expected_images


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_html_references_only_its_own_parts(kind: str) -> None:
    mail = _mail(KINDS[kind])
    html_part = mail.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    cids = {p["Content-ID"].strip("<>") for p in mail.walk() if p["Content-ID"]}
    sources = re.findall(r'<img[^>]*\ssrc="([^"]+)"', html)
    assert all(s.startswith("cid:") and s[4:] in cids for s in sources), sources
    assert not re.search(r'(src|href)="(https?:|//|file:)', html), "no external resource"
    assert "<script" not in html and "<link" not in html
    assert "bvh://" not in html, "no link a recipient cannot open"


async def test_a_page_that_is_too_wide_is_caught(page: Page) -> None:
    """The measurement can fail: a 600 px table does not fit a phone."""
    layout = await page.load('<table style="width:600px"><tr><td>x</td></tr></table>', 390)
    assert layout.overflows
    broken = await page.load('<img src="cid:nothing@x">', 390)
    assert not broken.images[0].inline and not broken.images[0].loaded


async def test_the_demo_photographs_every_mail_at_a_phones_width(tmp_path: Path) -> None:
    from dagmonitor_cli.demo import photograph

    mails = []
    for kind, rendered in sorted(KINDS.items()):
        path = tmp_path / "mail" / f"{kind}.eml"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(_mail(rendered).as_bytes())
        mails.append(path)
    lines: list[str] = []
    shots = await photograph(mails, tmp_path / "screenshots", lines.append)
    assert lines == []
    assert [s.name for s in shots] == [f"{kind}.png" for kind in sorted(KINDS)]
    for shot in shots:
        with PILImage.open(shot) as image:
            assert image.width == PHONE_WIDTH and image.height >= 400
