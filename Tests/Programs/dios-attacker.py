#!/usr/bin/env python3
"""A hostile host on a cluster's link, for the tests: it sees every frame on
the loopback interface (an AF_PACKET socket, as root) and, for as long as it
runs, sends the nodes' UDP ports

  - the frames it recorded, again (replays), and altered copies of them;
  - heartbeats, acknowledgements and data frames it makes itself, claiming to
    come from the cluster's instances, with the epochs and sequence numbers it
    saw on the link (and made-up ones), as plain frames and with a trailer of
    random bytes where the tag goes;
  - data frames whose payload claims to be a name delta, a name sync, a run,
    a "leaving" message, or stream data.

Usage: dios-attacker.py PORT [PORT ...] --instances 0.0,1.0 --seconds S
Prints what it sent, by kind, when it ends (on SIGTERM or after S seconds).
"""
import argparse
import os
import random
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
HEADER = struct.Struct(">HBBBBH HH HH II III".replace(" ", ""))
MAGIC, VERSION = 0xD105, 1
DATA, ACK, HEARTBEAT = 1, 2, 3
TRAILER = 24


def header(kind, flags, length, src, dst, src_epoch, dst_epoch, seq=0, ack=0, credit=0):
    return HEADER.pack(MAGIC, VERSION, kind, flags, 0, length, src[0], src[1], dst[0], dst[1],
                       src_epoch, dst_epoch, seq, ack, credit)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("ports", type=int, nargs="+")
    parser.add_argument("--instances", required=True)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=int, default=4000, help="frames sent per second, about")
    args = parser.parse_args()
    instances = [tuple(int(x) for x in i.split(".")) for i in args.instances.split(",")]
    ports = set(args.ports)
    rng = random.Random(7)

    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sniffer.bind(("lo", 0))
    sniffer.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    recorded = []  # (port, frame)
    seen = {}      # instance -> (its epoch, the epoch it names, last sequence)
    sent = {"replayed": 0, "altered": 0, "heartbeat": 0, "ack": 0, "data": 0, "claimed message": 0}
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    # A mask inherited from the process that started this one may block it.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    deadline = time.monotonic() + args.seconds

    def send(port, frame, kind):
        try:
            sender.sendto(frame, ("127.0.0.1", port))
            sent[kind] += 1
        except OSError:
            pass

    def sniff():
        while True:
            try:
                packet = sniffer.recv(65535)
            except BlockingIOError:
                return
            # Ethernet (14), IPv4 (IHL words), UDP (8), then the DIOS frame.
            if len(packet) < 14 + 20 + 8 + HEADER.size or packet[12:14] != b"\x08\x00" or packet[23] != 17:
                continue
            ihl = (packet[14] & 0x0F) * 4
            udp = 14 + ihl
            port = struct.unpack(">H", packet[udp + 2:udp + 4])[0]
            frame = packet[udp + 8:]
            if port not in ports or len(frame) < HEADER.size:
                continue
            fields = HEADER.unpack(frame[:HEADER.size])
            if fields[0] != MAGIC:
                continue
            src = (fields[6], fields[7])
            seen[src] = (fields[10], fields[11], fields[12], port)
            if len(recorded) < 20000:
                recorded.append((port, frame))
            elif rng.random() < 0.01:
                recorded[rng.randrange(len(recorded))] = (port, frame)

    while not stop[0] and time.monotonic() < deadline:
        select.select([sniffer], [], [], 0.001)
        sniff()
        for _ in range(max(1, args.rate // 100)):
            choice = rng.random()
            port = rng.choice(sorted(ports))
            src = rng.choice(instances)
            dst = rng.choice(instances)
            epochs = seen.get(src)
            src_epoch = epochs[0] if epochs and rng.random() < 0.7 else rng.getrandbits(32) or 1
            dst_epoch = epochs[1] if epochs and rng.random() < 0.7 else rng.choice([0, rng.getrandbits(32)])
            seq = (epochs[2] + rng.randrange(0, 64)) & 0xFFFFFFFF if epochs else rng.getrandbits(32)
            tag = bytes(rng.getrandbits(8) for _ in range(TRAILER)) if rng.random() < 0.5 else b""
            if choice < 0.3 and recorded:
                p, frame = rng.choice(recorded)
                send(p, frame, "replayed")
            elif choice < 0.4 and recorded:
                p, frame = rng.choice(recorded)
                altered = bytearray(frame)
                altered[rng.randrange(len(altered))] ^= 1 << rng.randrange(8)
                send(p, bytes(altered), "altered")
            elif choice < 0.55:
                send(port, header(HEARTBEAT, 0, 0, src, dst, src_epoch, dst_epoch, 0, seq, seq + 128) + tag,
                     "heartbeat")
            elif choice < 0.7:
                send(port, header(ACK, 0, 0, src, dst, src_epoch, dst_epoch, 0, seq, seq + 128) + tag, "ack")
            elif choice < 0.85:
                payload = bytes([1]) + bytes(rng.getrandbits(8) for _ in range(40))
                send(port, header(DATA, 3, len(payload), src, dst, src_epoch, dst_epoch, seq) + payload + tag, "data")
            else:
                # 18 name delta, 19 name sync, 20 name confirm, 21 leaving, 3 run
                kind = rng.choice([18, 19, 20, 21, 3])
                payload = bytes([kind]) + bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
                send(port, header(DATA, 3, len(payload), src, dst, src_epoch, dst_epoch, seq) + payload + tag,
                     "claimed message")
    print("attacker: recorded %d frames from %d instances; sent %s" % (
        len(recorded), len(seen), ", ".join("%d %s" % (n, k) for k, n in sent.items())), flush=True)


if __name__ == "__main__":
    sys.exit(main())
