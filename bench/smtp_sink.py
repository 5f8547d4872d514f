"""An aiosmtpd handler for bench/send.py: accepts and discards, after `delay_ms` per message
(a relay's time to take a message; aiosmtpd's own Sink answers at once).

    python -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_sink.SlowSink 20
"""

from __future__ import annotations

import asyncio
from typing import Any


class SlowSink:
    def __init__(self, delay_ms: str = "0") -> None:
        self.delay = float(delay_ms) / 1000

    @classmethod
    def from_cli(cls, parser: Any, *args: str) -> SlowSink:
        return cls(*args)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 OK"
