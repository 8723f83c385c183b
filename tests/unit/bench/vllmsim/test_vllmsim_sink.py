"""StreamSink (the step loop's SSE writer) and EmissionStats, against a fake transport."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from bench.vllmsim import protocol
from bench.vllmsim import tokenizer as tk
from bench.vllmsim.emission import EmissionStats
from bench.vllmsim.engine import Request, RequestSpec, RequestStatus
from bench.vllmsim.stream import StreamSink


class FakeTransport:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.buffered = 0
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16384, 65536)

    def write(self, data: bytes) -> None:
        self.data.append(data)


class FakeWriter:
    output_size = 0


def _request(n: int) -> Request:
    req = Request(RequestSpec("r1", [1, 2, 3], n), 0, tk.pseudo_output_ids(7, n), "length", 0.0)
    req.status = RequestStatus.RUNNING
    return req


def _step(req: Request) -> None:
    """What Engine.finish_step does to a request that gets a token."""
    req.num_output += 1
    if req.num_output == req.target_len:
        req.status = RequestStatus.FINISHED
        req.finish_reason = "length"


def _sink(transport: FakeTransport, *, chunked: bool = True, stall_at: int = -1) -> StreamSink:
    fmt = protocol.StreamFormatter(chat=True, request_id="r1", created=5, model="m")
    writer: Any = FakeWriter()
    tr: Any = transport
    return StreamSink(writer, tr, chunked, fmt, None, stall_at, EmissionStats())


def _unframe(data: bytes) -> bytes:
    size, _, rest = data.partition(b"\r\n")
    assert rest.endswith(b"\r\n") and len(rest) - 2 == int(size, 16)
    return rest[:-2]


@pytest.mark.parametrize("chunked", [True, False])
def test_emit_writes_framed_chunks_in_order(chunked: bool) -> None:
    tr = FakeTransport()
    sink = _sink(tr, chunked=chunked)
    req = _request(5)
    fmt = sink.fmt
    for i in range(5):
        _step(req)
        sink.emit(req, 0.0)
        text = tk.pseudo_piece(req.planned[i])
        expected = fmt.token_chunk(text, "length" if i == 4 else None)
        assert (_unframe(tr.data[-1]) if chunked else tr.data[-1]) == expected
    assert len(tr.data) == 5 and sink.sent == 5
    assert sink.writer.output_size == sum(len(d) for d in tr.data)
    assert sink.stats.fast_tokens == 5 and sink.stats.tokens.count == 5
    assert not sink.fast  # finished: the handler writes usage and [DONE]


async def test_prepared_bytes_are_written_at_the_step_end() -> None:
    tr = FakeTransport()
    sink = _sink(tr, stall_at=2)
    req = _request(4)
    fmt = sink.fmt
    waiter = asyncio.ensure_future(sink.wait())
    await asyncio.sleep(0)
    for i in range(4):
        final = "length" if i == 3 else ""
        data = sink.prepare(req, final)
        if i == 2:  # the stall point: left to emit, which hands the stream over
            assert data is None
            _step(req)
            sink.emit(req, 0.0)
            assert len(tr.data) == 2 and not sink.fast
            await asyncio.wait_for(waiter, 1)
            sink.sent, sink.stall_at, sink.fast = 3, -1, True  # the handler caught up
            continue
        assert data is not None
        text = tk.pseudo_piece(req.planned[i])
        assert _unframe(data) == fmt.token_chunk(text, final or None)
        assert not tr.data[i:]  # nothing is sent before the step's end
        if i == 3:
            waiter = asyncio.ensure_future(sink.wait())
            await asyncio.sleep(0)
        sink.write_prepared(req, data, 0.0)  # before the engine applies the step
        assert tr.data[-1] == data
        _step(req)
        sink.emit(req, 0.0)  # already sent: nothing more
        assert len(tr.data) == (i + 1 if i < 2 else i)
    await asyncio.wait_for(waiter, 1)  # the final token wakes the handler
    assert not sink.fast and sink.sent == 4 and sink.stats.fast_tokens == 3


def test_stale_or_aborted_prepared_bytes_are_not_sent() -> None:
    tr = FakeTransport()
    sink = _sink(tr)
    req = _request(5)
    data = sink.prepare(req, "")
    assert data is not None
    req.status = RequestStatus.FINISHED  # aborted while the step was in flight
    sink.write_prepared(req, data, 0.0)
    assert not tr.data
    req.status = RequestStatus.RUNNING
    sink.fast = False  # the handler took the stream over meanwhile
    sink.write_prepared(req, data, 0.0)
    assert not tr.data
    assert sink.prepare(req, "") is None


async def test_backpressure_and_stall_and_close_hand_over_to_the_handler() -> None:
    tr = FakeTransport()
    sink = _sink(tr, stall_at=3)
    req = _request(10)
    _step(req)
    sink.emit(req, 0.0)
    assert len(tr.data) == 1

    tr.buffered = 70000  # above the transport's high-water mark
    waiter = asyncio.ensure_future(sink.wait())
    await asyncio.sleep(0)
    _step(req)
    sink.emit(req, 1.0)
    await asyncio.wait_for(waiter, 1)
    assert len(tr.data) == 1 and not sink.fast and sink.pending_target == 1.0
    _step(req)
    sink.emit(req, 2.0)  # while the handler owns the stream, nothing is written
    assert len(tr.data) == 1 and sink.pending_target == 1.0
    assert sink.stats.handovers == 1

    # the handler caught up (sent = 3) and gave the stream back
    tr.buffered = 0
    sink.sent = req.num_output
    sink.fast, sink.pending_target = True, -1.0
    _step(req)  # token index 3 is the stall point
    sink.emit(req, 3.0)
    assert len(tr.data) == 1 and not sink.fast and sink.stats.handovers == 2

    sink.sent, sink.stall_at, sink.fast = req.num_output, -1, True
    tr.closing = True
    _step(req)
    sink.emit(req, 4.0)
    assert len(tr.data) == 1 and not sink.fast
    sink.close()
    assert sink.closed
    await sink.wait()  # returns at once once closed


def test_emission_stats_quantiles() -> None:
    st = EmissionStats()
    h = st.tokens
    assert h.quantile(0.99) == 0.0
    for i in range(100):
        st.add(i / 1000.0)  # 0..99 ms
    st.add(-0.001)
    st.add(5.0, 2)  # beyond the range: overflow bucket, max kept
    d = st.as_dict()
    assert d["tokens"] == 103 and d["early_tokens"] == 1 and d["max"] == 5.0
    assert 0.049 <= h.quantile(0.5) <= 0.0505
    assert 0.097 <= h.quantile(0.96) <= 0.0995
    assert h.quantile(1.0) == 5.0
    st.record_pass(0.001, 0.004, 0.003)
    d = st.as_dict()
    assert d["emission_pass_cpu_share"] == pytest.approx(0.75)
    assert d["step_start"] == {
        "p50": 0.001,
        "p90": 0.001,
        "p99": 0.001,
        "p999": 0.001,
        "max": 0.001,
        "count": 1,
    }
    st.clear()
    assert st.tokens.count == 0 and st.tokens.max == 0.0 and st.pass_wall_s == 0.0


def test_token_frame_matches_token_chunk() -> None:
    fmt = protocol.StreamFormatter(chat=False, request_id="cmpl-%d", created=1, model="a%sb")
    js = orjson.dumps(' "quoted" ')
    template, fixed = fmt.token_frame(chunked=True)
    framed = template % (fixed + len(js), js)
    assert _unframe(framed) == fmt.token_chunk(' "quoted" ')
    template, _ = fmt.token_frame(chunked=False)
    assert template % js == fmt.token_chunk(' "quoted" ')
