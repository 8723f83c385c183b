"""Start and stop N simulated pods in this process (the async API other packages use).

    async with await start_pods(SimConfig(profile="gie-8b", speed=10), n=3) as pods:
        urls = pods.urls                  # ["http://127.0.0.1:41001", ...]
        pods.set_faults(1, FaultSpec(error_rate=0.5))
        await pods.restart(2)             # same port, empty KV cache
        pods[0].engine                    # the live Engine of pod 0 (read-only use)

``base_port=0`` gives every pod an ephemeral port (tests); otherwise pods listen on
``base_port, base_port + 1, ...``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import TracebackType

from bench.vllmsim.faults import FaultSpec
from bench.vllmsim.server import Pod, SimConfig

__all__ = ["SimPods", "start_pods"]


class SimPods:
    """Handle on running pods; ``close()`` (or ``async with``) stops them all."""

    def __init__(self, pods: list[Pod]) -> None:
        self.pods = pods

    def __getitem__(self, index: int) -> Pod:
        return self.pods[index]

    def __len__(self) -> int:
        return len(self.pods)

    def __iter__(self) -> Iterator[Pod]:
        return iter(self.pods)

    @property
    def urls(self) -> list[str]:
        return [p.url for p in self.pods]

    def set_faults(self, index: int, spec: FaultSpec) -> None:
        self.pods[index].set_faults(spec)

    async def restart(self, index: int) -> None:
        await self.pods[index].restart()

    async def close(self) -> None:
        for pod in self.pods:
            await pod.stop()

    async def __aenter__(self) -> SimPods:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def start_pods(
    config: SimConfig | None = None,
    n: int = 1,
    host: str = "127.0.0.1",
    base_port: int = 0,
    faults: Mapping[int, FaultSpec] | None = None,
) -> SimPods:
    """Start ``n`` pods; ``faults`` overrides ``config.faults`` for some pod indexes."""
    cfg = config or SimConfig()
    pods: list[Pod] = []
    try:
        for i in range(n):
            pod = Pod(i, cfg, host, base_port + i if base_port else 0)
            if faults and i in faults:
                pod.set_faults(faults[i])
            await pod.start()
            pods.append(pod)
    except BaseException:
        for pod in pods:
            await pod.stop()
        raise
    return SimPods(pods)
