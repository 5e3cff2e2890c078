"""Drives Axon's Matrix API with matrix-nio, an unmodified third-party client
library: two users register, log in, create a room, invite, join, send, sync,
paginate, type, send receipts, set presence, redact and leave. Each step checks
the answer and prints one line; the first failure exits non-zero.

Usage: python nio_scenario.py http://127.0.0.1:PORT
"""

import asyncio
import sys
import uuid

from nio import (
    AsyncClient,
    JoinResponse,
    LoginResponse,
    PresenceGetResponse,
    PresenceSetResponse,
    RegisterResponse,
    RoomCreateResponse,
    RoomLeaveResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomReadMarkersResponse,
    RoomRedactResponse,
    RoomSendResponse,
    RoomTypingResponse,
    SyncResponse,
)


def check(ok, step, answer):
    if not ok:
        print(f"FAIL {step}: {answer!r}", flush=True)
        sys.exit(1)
    print(f"ok   {step}", flush=True)


async def sync_until(client, step, wanted, rounds=10):
    """Long-polls /sync until `wanted(response)` holds."""
    for _ in range(rounds):
        answer = await client.sync(timeout=3000)
        check(isinstance(answer, SyncResponse), f"{step} (sync)", answer)
        if wanted(answer):
            print(f"ok   {step}", flush=True)
            return answer
    check(False, step, "not seen after %d syncs" % rounds)


async def main(homeserver):
    suffix = uuid.uuid4().hex[:8]
    alice = AsyncClient(homeserver, f"alice{suffix}")
    bob = AsyncClient(homeserver, f"bob{suffix}")
    password = "correct horse battery"

    answer = await alice.register(f"alice{suffix}", password)
    check(isinstance(answer, RegisterResponse), "register alice", answer)
    answer = await bob.register(f"bob{suffix}", password)
    check(isinstance(answer, RegisterResponse), "register bob", answer)

    # A second device of alice's, by password login.
    alice2 = AsyncClient(homeserver, alice.user_id)
    answer = await alice2.login(password, device_name="nio second device")
    check(isinstance(answer, LoginResponse) and answer.user_id == alice.user_id,
          "login alice (second device)", answer)

    answer = await alice.room_create(name="interop", topic="matrix-nio on axon",
                                     invite=[bob.user_id])
    check(isinstance(answer, RoomCreateResponse), "create room with an invite", answer)
    room_id = answer.room_id

    await sync_until(bob, "bob sees the invite", lambda s: room_id in s.rooms.invite)
    answer = await bob.join(room_id)
    check(isinstance(answer, JoinResponse), "bob joins", answer)

    await sync_until(alice, "alice syncs", lambda s: room_id in s.rooms.join)
    answer = await alice.room_send(room_id, "m.room.message",
                                   {"msgtype": "m.text", "body": "hello from nio"})
    check(isinstance(answer, RoomSendResponse), "alice sends", answer)
    sent_id = answer.event_id

    def has_message(s):
        room = s.rooms.join.get(room_id)
        return room is not None and any(
            isinstance(e, RoomMessageText) and e.body == "hello from nio"
            for e in room.timeline.events)

    await sync_until(bob, "bob receives the message", has_message)

    answer = await bob.room_messages(room_id, start="", limit=20)
    check(isinstance(answer, RoomMessagesResponse)
          and any(getattr(e, "event_id", None) == sent_id for e in answer.chunk),
          "bob paginates /messages", answer)

    answer = await alice.room_typing(room_id, typing_state=True, timeout=30000)
    check(isinstance(answer, RoomTypingResponse), "alice types", answer)

    def alice_typing(s):
        room = s.rooms.join.get(room_id)
        return room is not None and any(
            alice.user_id in getattr(e, "users", []) for e in room.ephemeral)

    await sync_until(bob, "bob sees alice typing", alice_typing)

    answer = await bob.room_read_markers(room_id, fully_read_event=sent_id,
                                         read_event=sent_id)
    check(isinstance(answer, RoomReadMarkersResponse), "bob sets read markers", answer)

    def bob_read(s):
        room = s.rooms.join.get(room_id)
        return room is not None and any(
            any(r.user_id == bob.user_id and r.event_id == sent_id
                for r in getattr(e, "receipts", []))
            for e in room.ephemeral)

    await sync_until(alice, "alice sees bob's receipt", bob_read)

    answer = await alice.set_presence("online", "testing axon")
    check(isinstance(answer, PresenceSetResponse), "alice sets presence", answer)
    answer = await bob.get_presence(alice.user_id)
    check(isinstance(answer, PresenceGetResponse) and answer.presence == "online"
          and answer.status_msg == "testing axon", "bob reads alice's presence", answer)

    answer = await alice.room_redact(room_id, sent_id, reason="oops")
    check(isinstance(answer, RoomRedactResponse), "alice redacts", answer)

    answer = await bob.room_leave(room_id)
    check(isinstance(answer, RoomLeaveResponse), "bob leaves", answer)
    await sync_until(bob, "bob's sync shows the room left", lambda s: room_id in s.rooms.leave)

    for client in (alice, alice2, bob):
        await client.close()
    print("PASS matrix-nio scenario", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
