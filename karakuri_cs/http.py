"""HTTP response policy shared by the staff pages (operator console, training review)."""

from __future__ import annotations

# Staff pages load nothing from elsewhere and are never framed. (The customer chat page builds its own policy,
# because a site may embed it: apps/chat/views_pages.py.)
STAFF_PAGES_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
