"""Writes a chat log of N MiB of filler chat records that no log search for real text matches.

Usage: python3 scripts/filler-log.py PATH MIB (used by bench.sh and bench-query.sh).
"""
import sys

path, mb = sys.argv[1], int(sys.argv[2])
line = '{"ts":"2026-01-01T00:00:00.000Z","seq":%d,"kind":"chat","nick":"filler%d","channel":"#filler","text":"%s"}\n'
pad = "lorem ipsum dolor sit amet " * 3
with open(path, "w") as f:
    seq, size = 1, 0
    while size < mb * 1024 * 1024:
        s = line % (seq, seq % 97, pad)
        f.write(s)
        size += len(s)
        seq += 1
