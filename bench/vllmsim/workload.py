"""A shared-prefix, multi-turn chat workload for the simulator's benchmark and tests.

Conversations start as a Poisson process. Each picks one of a few long system prompts
(the shared prefix), then runs ``turns`` turns; turn N+1 is sent a think time after
turn N's answer and carries the whole history, so it hits turn N's prompt and answer
blocks if it lands on the same pod.

Prompt token ids are built incrementally (previous prompt + answer + the new user
turn), which equals tokenizing the fully rendered conversation because the chat
template's turn boundaries are token boundaries (checked by the tokenizer tests); it
keeps long simulations from re-tokenizing every history.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bench.vllmsim import tokenizer
from bench.vllmsim.des import RequestRecord, SimRequest, Simulation

__all__ = ["ChatWorkload", "Conversation", "random_text"]

_VOCAB = (
    "system user model answer question context detail policy careful explain summary "
    "request customer account invoice travel weather recipe garden history science music "
    "football library network database kernel memory process thread latency routing cache"
).split()


def random_text(rng: random.Random, approx_tokens: int) -> str:
    """Filler text of roughly ``approx_tokens`` tokens (about 4 characters each)."""
    words: list[str] = []
    chars = 0
    while chars < approx_tokens * 4:
        w = rng.choice(_VOCAB)
        words.append(w)
        chars += len(w) + 1
    return " ".join(words)


@dataclass(slots=True)
class Conversation:
    key: str
    group: int
    turn: int
    prompt_ids: list[int]


@dataclass(frozen=True, slots=True)
class ChatWorkload:
    session_rate: float
    """New conversations per second."""
    duration_s: float
    """Conversations start within [0, duration_s)."""
    turns: int = 3
    num_system_prompts: int = 8
    system_prompt_tokens: int = 800
    user_message_tokens: int = 60
    think_time_s: float = 3.0
    """Mean of the exponential pause between an answer and the next turn."""
    max_tokens: int = 256
    seed: int = 0

    @property
    def request_rate(self) -> float:
        return self.session_rate * self.turns

    def install(self, sim: Simulation) -> None:
        """Submit the first turns and chain the next turns on ``sim.on_finish``."""
        rng = random.Random(f"workload:{self.seed}")
        systems = [
            tokenizer.encode(
                tokenizer.render_chat(
                    [{"role": "system", "content": random_text(rng, self.system_prompt_tokens)}],
                    add_generation_prompt=False,
                )
            )
            for _ in range(self.num_system_prompts)
        ]
        self._check_keep_ids(sim)
        t = 0.0
        n = 0
        while True:
            t += rng.expovariate(self.session_rate)
            if t >= self.duration_s:
                break
            group = rng.randrange(self.num_system_prompts)
            conv = Conversation(f"c{n}", group, 1, systems[group] + self._user_turn(rng))
            sim.submit(self._request(conv, t))
            n += 1
        turn_rng = random.Random(f"turns:{self.seed}")
        previous = sim.on_finish

        def on_finish(rec: RequestRecord, s: Simulation) -> None:
            if previous is not None:
                previous(rec, s)
            conv = rec.payload
            if not isinstance(conv, Conversation) or conv.turn >= self.turns:
                return
            assert rec.output_token_ids is not None
            nxt = Conversation(
                conv.key,
                conv.group,
                conv.turn + 1,
                conv.prompt_ids + rec.output_token_ids + self._continue(turn_rng),
            )
            s.submit(self._request(nxt, rec.finish + turn_rng.expovariate(1 / self.think_time_s)))

        sim.on_finish = on_finish

    @staticmethod
    def _check_keep_ids(sim: Simulation) -> None:
        if not sim.keep_output_ids:
            raise ValueError("ChatWorkload needs Simulation(keep_output_ids=True)")

    def _user_turn(self, rng: random.Random) -> list[int]:
        text = random_text(rng, self.user_message_tokens)
        return tokenizer.encode(f"{tokenizer.IM_START}user\n{text}{tokenizer.IM_END}\n") + (
            tokenizer.encode(f"{tokenizer.IM_START}assistant\n")
        )

    def _continue(self, rng: random.Random) -> list[int]:
        return tokenizer.encode(f"{tokenizer.IM_END}\n") + self._user_turn(rng)

    def _request(self, conv: Conversation, at: float) -> SimRequest:
        return SimRequest(
            request_id=f"{conv.key}-t{conv.turn}",
            prompt_token_ids=conv.prompt_ids,
            max_tokens=self.max_tokens,
            arrival=at,
            session=conv.key,
            payload=conv,
        )
