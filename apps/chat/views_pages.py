"""The customer chat pages: the full page at /chat/, the compact page the embed widget frames at /chat/embed/,
and a demo host page at /chat/embed-demo/ that shows the one-<script>-tag embed.

Every page sends a strict Content-Security-Policy: scripts, styles and connections only to this origin (the
pages load nothing from anywhere else), so even a rendering bug could not run injected script. The embed page
is the only one other sites may frame: `frame-ancestors 'self'` plus the origins in
settings.CHAT_EMBED_ALLOWED_ORIGINS, and no X-Frame-Options header (it would override nothing in modern
browsers but blocks older ones).
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.clickjacking import xframe_options_deny, xframe_options_exempt
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

# A CSP host-source as an administrator would write it: scheme://host[:port], host may start with "*.".
# Anything else (quotes, semicolons, commas, paths) could break or widen the header, so it is refused.
_ORIGIN_RE = re.compile(r"^https?://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def embed_allowed_origins() -> list[str]:
    """The origins in CHAT_EMBED_ALLOWED_ORIGINS that are valid CSP host-sources (others are logged, dropped)."""
    origins = []
    for token in (settings.CHAT_EMBED_ALLOWED_ORIGINS or "").split():
        token = token.rstrip("/")
        if _ORIGIN_RE.match(token):
            origins.append(token)
        else:
            logger.warning(
                "CHAT_EMBED_ALLOWED_ORIGINS: ignoring %r (expected an origin such as https://www.example.co.jp)",
                token,
            )
    return origins


def _csp(request: HttpRequest, *, frame_ancestors: str) -> str:
    host = request.get_host()
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            # 'self' covers ws(s) to the same host in current browsers; the explicit entries help older ones.
            f"connect-src 'self' ws://{host} wss://{host}",
            "frame-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


def _chat_context(*, embed: bool) -> dict:
    return {"embed": embed, "max_chars": settings.CHAT_MAX_MESSAGE_CHARS}


def _no_store(response: HttpResponse) -> HttpResponse:
    # The page itself holds no data (history arrives over the socket), but a stale cached page could load
    # stale script; keep it fresh.
    response["Cache-Control"] = "no-cache"
    response["Referrer-Policy"] = "same-origin"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_safe
@xframe_options_deny
def chat_page(request: HttpRequest) -> HttpResponse:
    """The full-page customer chat."""
    response = render(request, "chat/chat.html", _chat_context(embed=False))
    response["Content-Security-Policy"] = _csp(request, frame_ancestors="'none'")
    return _no_store(response)


@require_safe
@xframe_options_exempt
def chat_embed_page(request: HttpRequest) -> HttpResponse:
    """The compact chat that embed.js opens in an iframe on the company's own sites."""
    response = render(request, "chat/embed.html", _chat_context(embed=True))
    ancestors = " ".join(["'self'", *embed_allowed_origins()])
    response["Content-Security-Policy"] = _csp(request, frame_ancestors=ancestors)
    return _no_store(response)


@require_safe
@xframe_options_deny
def embed_demo_page(request: HttpRequest) -> HttpResponse:
    """A sample company page carrying the one <script> tag, with the snippet to copy."""
    script_url = request.build_absolute_uri(static("chat/embed.js"))
    snippet = f'<script src="{script_url}" defer></script>'
    response = render(
        request,
        "chat/embed_demo.html",
        {"script_src": static("chat/embed.js"), "snippet": snippet, "allowed_origins": embed_allowed_origins()},
    )
    response["Content-Security-Policy"] = _csp(request, frame_ancestors="'none'")
    return _no_store(response)
