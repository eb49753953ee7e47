# amaranth: UnusedElaboratable=no
"""The byte packer and serializer between a UART and a wider link: every byte in order, byte 0
of a word the earliest, under every mix of idle producers and stalling consumers; the packer
keeps taking bytes while a full word waits, as a UART receiver needs."""

import random

import pytest
from streams import receive, send, simulate

from systolica.rtl.link_width import BytePacker, ByteSerializer

# (word bytes, words, producer idle probability, consumer stall probability, seed)
CASES = [
    (16, 12, 0.0, 0.0, 1),
    (16, 12, 0.5, 0.0, 2),
    (16, 12, 0.0, 0.7, 3),
    (16, 12, 0.6, 0.6, 4),
    (16, 12, 0.9, 0.2, 5),
    (4, 30, 0.3, 0.8, 6),
    (2, 30, 0.5, 0.5, 7),
    (1, 20, 0.4, 0.4, 8),
]
IDS = [f"{n}B-idle{idle}-stall{stall}" for n, _, idle, stall, _ in CASES]


def words_and_bytes(n, count, seed):
    rng = random.Random(seed)
    data = bytes(rng.randrange(256) for _ in range(n * count))
    return [int.from_bytes(data[i:i + n], "little") for i in range(0, len(data), n)], list(data)


@pytest.mark.parametrize(("n", "count", "p_idle", "p_stall", "seed"), CASES, ids=IDS)
def test_packer_puts_the_first_byte_in_the_low_byte(n, count, p_idle, p_stall, seed):
    words, data = words_and_bytes(n, count, seed)
    dut = BytePacker(n)
    rng = random.Random(seed + 100)

    async def producer(ctx):
        await send(ctx, dut.i, data, rng=rng, p_idle=p_idle)

    async def consumer(ctx):
        assert await receive(ctx, dut.o, count, rng=rng, p_stall=p_stall) == words

    simulate(dut, consumer, producer)


@pytest.mark.parametrize(("n", "count", "p_idle", "p_stall", "seed"), CASES, ids=IDS)
def test_serializer_sends_the_low_byte_first(n, count, p_idle, p_stall, seed):
    words, data = words_and_bytes(n, count, seed)
    dut = ByteSerializer(n)
    rng = random.Random(seed + 200)

    async def producer(ctx):
        await send(ctx, dut.i, words, rng=rng, p_idle=p_idle)

    async def consumer(ctx):
        assert await receive(ctx, dut.o, len(data), rng=rng, p_stall=p_stall) == data

    simulate(dut, consumer, producer)


def test_packer_takes_bytes_while_a_full_word_waits():
    """With nothing taking words, the second word's bytes are all taken (a UART's next bytes
    do not wait for the link); only the third word's first byte is refused."""
    dut = BytePacker(16)

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        taken = 0
        ctx.set(dut.i.valid, 1)
        for _ in range(40):
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            taken += ready
        assert taken == 32
        assert ctx.get(dut.o.valid)

    simulate(dut, bench)


@pytest.mark.parametrize("cls", [BytePacker, ByteSerializer])
@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_word_bytes_must_be_a_positive_integer(cls, bad):
    with pytest.raises(TypeError, match="word_bytes must be a positive integer"):
        cls(bad)
