"""A message leaves its queue only together with its unacked record; a full Redis keeps it queued.

kombu takes a message with BRPOP and writes its unacked record (which brings it back if the
worker is lost) afterwards. Redis at `maxmemory` with `noeviction` runs BRPOP (popping frees
memory) but refuses the record (HSET and ZADD grow it), so the message was only in the worker's
memory: a worker lost before finishing it lost the call.

Here both ways a worker takes messages write the record in the same Lua script as the pop:

- The batch pop (`_batch_pop`) pops and records in one script, which first runs a ZADD that
  changes nothing (`XX GT 0`: it adds no member, and lowers no score, should a producer have
  tagged a message with the probe's member name). Redis (6.2 and 7) refuses a memory-growing
  command in a script only while the script has written nothing, when Redis was over `maxmemory`
  as the script started: so a full Redis refuses the probe and the script returns `FULL` before
  it pops anything, and otherwise every pop and its record run together.
- BRPOP is kept as the blocking wait (no Redis command waits on several lists without popping).
  Each BRPOP is followed, in the same write, by `PROBE`, which Redis runs right after the pop and
  which says whether Redis was then full (its first write, the member naming the BRPOP in the
  taking set, is refused); both replies come in one read. Full: the item goes to
  `RECORD_OR_PUT_BACK`, whose reply is waited for; when the record is refused it puts the item
  back where BRPOP took it (the tail of the same priority list: the next one taken, in order),
  after a write that needs no memory and changes nothing (`no_op_write`), after which Redis lets the
  script finish (the RPUSH only gives back the memory BRPOP freed). Not full: the item was taken
  while Redis had room, and its record is written as before, with the next write and without
  waiting (`_unacked`), by a script that starts with the same write, so that Redis lets the record
  through even if it has filled up since (it grows by about what the pop freed). Waiting for a
  record script's reply before each call instead cost about +6% on the round trip (measured).

A worker lost between BRPOP's reply and the record script loses the message, as with stock kombu
(a window of a round trip, before the call starts; a BRPOP written ahead, as a call run on the
event loop stores its record (`_batch_pop.pop_ahead`), may pop the next message up to ~0.2 ms
before that call is over, which widens the window by as much); a full Redis no longer widens it
to the whole call. While Redis is full the channel takes nothing: it logs once, waits (`BACKOFF_FIRST` doubling
to `BACKOFF_MOST` seconds) and tries again, and logs when Redis has taken a record again.
"""

from __future__ import annotations

import hashlib
import logging
import time

from ._errors import ServerError

logger = logging.getLogger(__name__)

#: The reply of either script when Redis was over `maxmemory`: nothing was taken.
FULL = b"FULL"

#: Seconds a channel waits before taking again after a full Redis refused it, doubled each time up to `BACKOFF_MOST`.
BACKOFF_FIRST = 0.1
BACKOFF_MOST = 2.0

# `entry` of an item: its producer's delivery tag (only checked to be a string: the pop files the
# record under the worker's own tag) and unacked record ([message, exchange, routing key], as kombu
# writes it), or nil for an item kombu could not record (the worker drops or refuses it).
_ENTRY = """
local function entry(item)
  local ok, envelope = pcall(cjson.decode, item)
  if not ok or type(envelope) ~= 'table' then return nil end
  local properties = envelope['properties']
  if type(properties) ~= 'table' then return nil end
  local tag, delivery = properties['delivery_tag'], properties['delivery_info']
  if type(tag) ~= 'string' or type(delivery) ~= 'table' then return nil end
  local exchange, routing_key = delivery['exchange'], delivery['routing_key']
  if exchange == nil or routing_key == nil then return nil end
  return tag, '[' .. item .. ',' .. cjson.encode(exchange) .. ',' .. cjson.encode(routing_key) .. ']'
end
"""
_REFUSED_AS_FULL = """
local function refused_as_full(reply)
  return type(reply) == 'table' and reply.err ~= nil and string.find(reply.err, 'OOM', 1, true) ~= nil
end
"""

#: KEYS: unacked index, unacked hash, then the lists BRPOP would be given, in its order.
#: ARGV: the most items to pop, the delivery time, the prefix of the delivery tags it files them
#: under (the n-th item popped: the prefix and n; see `_batch_pop.next_delivery_tag`).
#: Returns {key, item, recorded (0/1), ...} or FULL.
POP_AND_RECORD = (
    _ENTRY
    + _REFUSED_AS_FULL
    + """
local probe = redis.pcall('ZADD', KEYS[1], 'XX', 'GT', 0, 'task-sdk:full-probe')
if type(probe) == 'table' and probe.err then
  if refused_as_full(probe) then return redis.status_reply('FULL') end
  return probe
end
local popped = {}
local room = tonumber(ARGV[1])
for index = 3, #KEYS do
  local key = KEYS[index]
  while room > 0 do
    local item = redis.call('RPOP', key)
    if not item then break end
    local recorded = 0
    local tag, record = entry(item)
    if tag then
      tag = ARGV[3] .. (#popped / 3 + 1)  -- the worker's own tag, never the producer's (`_batch_pop`)
      local stored = redis.pcall('HSET', KEYS[2], tag, record)
      if type(stored) == 'table' and stored.err then
        redis.call('RPUSH', key, item)  -- not recorded (bookkeeping of the wrong type): back, as the next
        return popped
      end
      redis.call('ZADD', KEYS[1], ARGV[2], tag)
      recorded = 1
    end
    popped[#popped + 1] = key
    popped[#popped + 1] = item
    popped[#popped + 1] = recorded
    room = room - 1
  end
  if room == 0 then break end
end
return popped
"""
)

#: The name Redis gives `POP_AND_RECORD` in its script cache (EVALSHA).
POP_AND_RECORD_SHA = hashlib.sha1(POP_AND_RECORD.encode()).hexdigest()


def no_op_write(taking_key: int) -> str:
    """Lua for a write that needs no memory and changes nothing, after which Redis lets a script's
    writes through even when it is full: a ZREM of a member the taking set (`KEYS[taking_key]`,
    `wire.TAKING_KEY`) never holds (its members name BRPOPs). Not an HDEL of an unacked field: a
    delivery tag may be any string, "" too, and kombu files a message's record under its producer's
    tag (an `HDEL unacked ''` removed the record of a message tagged "" at every other call's
    record). pcall: a taking set of the wrong type is no reason to lose a record (the write counts
    all the same)."""
    return f"redis.pcall('ZREM', KEYS[{taking_key}], '')\n"


#: KEYS: unacked index, unacked hash, the list BRPOP took the item from, the taking set.
#: ARGV: delivery time, delivery tag, record, the item. Returns 1 (recorded) or FULL (put back).
RECORD_OR_PUT_BACK = (
    _REFUSED_AS_FULL
    + """
local stored = redis.pcall('HSET', KEYS[2], ARGV[2], ARGV[3])
if refused_as_full(stored) then
  -- a write that needs no memory lets the put-back through
  """
    + no_op_write(4)
    + """
  redis.call('RPUSH', KEYS[3], ARGV[4])
  return redis.status_reply('FULL')
end
if type(stored) == 'table' and stored.err then return stored end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
)


#: KEYS: the taking set (`task_contracts.wire.TAKING_KEY`). ARGV: the member naming this BRPOP, the
#: time it was sent. Returns FULL when Redis is over `maxmemory` (nothing written), else 0. The
#: member tells a cancel looking for a message that this BRPOP may hold one not yet in the unacked
#: hash; the script writing its entry removes it (`_unacked`), or the channel once it popped nothing.
#: (Redis's own TIME here, and a prune of old members, cost the worker ~8% more instructions per
#: `client.add(4, 7)`, measured: the sender's clock it is, and the prune goes with idle waits.)
PROBE = (
    _REFUSED_AS_FULL
    + """
local probe = redis.pcall('ZADD', KEYS[1], ARGV[2], ARGV[1])
if refused_as_full(probe) then return redis.status_reply('FULL') end
return 0
"""
)


class RecordRefused(ServerError):
    """A full Redis refused the unacked record of a message popped without it (kombu's record, on a
    channel with a global key prefix): the message is kept (`_unrecorded`) and not delivered. Caught
    by the channel; never reaches a caller."""


def is_full(reply: object) -> bool:
    """Whether a script's reply says that Redis was full and nothing was taken."""
    return reply in (FULL, FULL.decode())


class FullBackoff:
    """When a channel may take messages again after a full Redis refused it (see the module doc)."""

    def __init__(self) -> None:
        self._delay = 0.0
        self._until = 0.0

    def remaining(self) -> float:
        """Seconds left to wait before taking again (0 when not waiting)."""
        return max(0.0, self._until - time.monotonic())

    def refused(self, queue: str) -> None:
        """Redis was full as a message of `queue` was about to be taken; it stays queued."""
        if not self._delay:
            logger.warning(
                "Redis is full (maxmemory): a message of queue %r stays queued, since its unacked record "
                "could not be written; this worker takes no message until Redis has room again",
                queue,
            )
        self._delay = min(BACKOFF_MOST, 2 * self._delay) if self._delay else BACKOFF_FIRST
        self._until = time.monotonic() + self._delay

    def recorded(self) -> None:
        """A message was taken and recorded: Redis has room again."""
        if self._delay:
            logger.warning("Redis has room again: this worker takes messages again")
            self._delay = self._until = 0.0
