"""The floor of a queue round trip between two Python processes through one Redis.

`python -m bench._echo URL REQUESTS REPLIES` answers each item BRPOPped from REQUESTS by an LPUSH
of the same bytes onto REPLIES, until it pops `stop`. The bench times LPUSH + BRPOP from its side.
"""

from __future__ import annotations

import sys

import redis


def serve(url: str, requests: str, replies: str) -> None:
    client = redis.Redis.from_url(url)
    client.lpush(replies, b"ready")
    while True:
        _, item = client.brpop([requests], timeout=0)  # type: ignore[misc]
        if item == b"stop":
            return
        client.lpush(replies, item)


if __name__ == "__main__":
    serve(*sys.argv[1:4])
