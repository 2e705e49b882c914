"""SNS: what a topic keeps of what it published."""

from __future__ import annotations

from typing import Any

# Messages a topic keeps of what it published (moto's test helpers read them; SNS's API does not).
SENT_NOTIFICATIONS_KEPT = 1_000


def sent_notifications_bounded() -> None:
    """moto's topics keep every message ever published (``sent_notifications``, read by its
    test helpers, never by SNS's API): three events per payment, each with its body and
    attributes, for the server's life. A topic keeps its last ``SENT_NOTIFICATIONS_KEPT``."""
    from collections import deque

    from moto.sns.models import Topic

    init = Topic.__init__

    def init_bounded(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.sent_notifications = deque(maxlen=SENT_NOTIFICATIONS_KEPT)

    Topic.__init__ = init_bounded  # type: ignore[method-assign]
