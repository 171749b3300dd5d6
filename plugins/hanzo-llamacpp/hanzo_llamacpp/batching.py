"""Continuous batching on llama.cpp's C API: several sequences decoded together in one context.

One thread (the decoder's) makes every llama.cpp call on the context. Each step it builds one batch
from the next token of every generating sequence plus as many waiting prompt tokens as fit, runs
``llama_decode`` once and samples each sequence's next token with its own sampler chain, as
llama.cpp's server does with its slots. Decoding four sequences together costs little more than one
on a CPU (the weights are read once per step), so four clients get close to four times the tokens.

The context holds ``parallel`` sequences of ``context_length`` tokens each (llama.cpp splits the
cache evenly: ``n_ctx = parallel x context_length``). A finished sequence leaves its tokens in its
slot; a later prompt that starts with the same tokens (a chat's next turn) reuses them and decodes
only the rest.

Callers (any thread) :meth:`BatchDecoder.submit` prompt tokens and read sampled tokens from the
returned :class:`Sequence`; :meth:`Sequence.cancel` stops one at the next step.
"""

from __future__ import annotations

import ctypes
import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hanzo_cli.api import HanzoError, SamplingOptions
from hanzo_llamacpp.engine import LlamaModel, default_threads, failure

if TYPE_CHECKING:
    import llama_cpp.llama_cpp as lc
else:
    from hanzo_llamacpp.engine import lc

#: Tokens per decode step (prompt chunks and generating sequences together), llama.cpp's default.
BATCH_TOKENS = 512

# What llama-cpp-python's ``create_completion`` uses when a setting is not given.
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_K = 40
DEFAULT_TOP_P = 0.95
DEFAULT_MIN_P = 0.05


@dataclass
class _End:
    """The last item of a sequence's queue: why it ended, or the error that ended it."""

    finish: str | None = None  # "stop" (end of text) or "length" (max_tokens or a full context)
    error: str | None = None


@dataclass(eq=False)
class Sequence:
    """One generation: its prompt, its sampled tokens as they come, and its slot while it runs."""

    prompt: list[int]
    options: SamplingOptions
    tokens: queue.SimpleQueue[int | _End] = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    slot: int = -1
    position: int = 0  # where the next decoded token goes
    waiting: list[int] = field(default_factory=list)  # prompt tokens not decoded yet
    last: int = -1  # the sampled token to decode next
    generated: int = 0
    sampler: Any = None  # a llama_sampler pointer
    finish: str | None = None  # why it ended, once iterating has reached the end

    def cancel(self) -> None:
        """Stop at the next step (nothing happens if it has ended)."""
        self.cancelled.set()

    def __iter__(self) -> Sequence:
        return self

    def __next__(self) -> int:
        """The next sampled token; StopIteration at the end (then :attr:`finish` says why)."""
        item = self.tokens.get()
        if isinstance(item, _End):
            self.tokens.put(item)  # iterating again ends again
            if item.error is not None:
                raise HanzoError(item.error)
            self.finish = item.finish
            raise StopIteration
        return item


class BatchDecoder:
    """A model's context with ``parallel`` sequence slots, served by one decoding thread."""

    def __init__(self, model: LlamaModel, *, context_length: int, parallel: int, threads: int | None) -> None:
        self.model = model
        self.parallel = max(1, parallel)
        params = lc.llama_context_default_params()
        params.n_ctx = context_length * self.parallel
        params.n_batch = params.n_ubatch = BATCH_TOKENS
        params.n_seq_max = self.parallel
        params.kv_unified = False  # each sequence its own part of the cache: no client can crowd out another
        params.n_threads = params.n_threads_batch = threads or default_threads()
        params.no_perf = True
        # As llama-cpp-python's Llama (and so its server): flash attention off. "Auto" turns it on for
        # CPUs, which changes the sums enough that greedy completions drift from create_completion's.
        params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        ctx = lc.llama_init_from_model(model.ptr, params)
        if not ctx:
            raise failure(f"llama.cpp cannot make a context of {params.n_ctx} tokens for {model.path}")
        self._ctx: ctypes.c_void_p | None = ctx
        self._memory = lc.llama_get_memory(ctx)
        #: Tokens one sequence may hold, prompt and completion together.
        self.context_length: int = lc.llama_n_ctx_seq(ctx)
        self._batch = lc.llama_batch_init(BATCH_TOKENS, 0, 1)
        self._inbox: queue.SimpleQueue[Sequence | None] = queue.SimpleQueue()
        self._slots: list[Sequence | None] = [None] * self.parallel
        self._cached: list[list[int]] = [[] for _ in range(self.parallel)]  # tokens each slot's cache holds
        self._waiting: deque[Sequence] = deque()
        self._broken: str | None = None  # why the decoding thread ended, if it failed
        self._thread = threading.Thread(target=self._run, name="llama-decoder", daemon=True)
        self._thread.start()

    def submit(self, prompt: list[int], options: SamplingOptions) -> Sequence:
        """Queue a generation; its tokens arrive on the returned sequence."""
        if not prompt:
            raise HanzoError("the prompt has no tokens")
        if len(prompt) >= self.context_length:
            raise HanzoError(
                f"the prompt is {len(prompt)} tokens; the model's context holds {self.context_length}"
            )
        if self._broken is not None:
            raise HanzoError(self._broken)
        sequence = Sequence(list(prompt), options)
        self._inbox.put(sequence)
        return sequence

    def close(self) -> None:
        if self._ctx is None:
            return
        self._inbox.put(None)
        self._thread.join()
        lc.llama_batch_free(self._batch)
        lc.llama_free(self._ctx)
        self._ctx = None

    # -- the decoding thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # a failure here must not leave callers waiting forever
            self._broken = f"the decoder stopped: {exc}"
            self._end_all(self._broken)
            raise

    def _serve(self) -> None:
        while True:
            active = any(s is not None for s in self._slots)
            try:
                while True:  # everything queued, blocking only when there is nothing else to do
                    item = self._inbox.get(block=not active and not self._waiting)
                    if item is None:
                        self._end_all("the model was unloaded")
                        return
                    self._waiting.append(item)
                    active = True
            except queue.Empty:
                pass
            self._admit()
            self._drop_cancelled()
            if any(s is not None for s in self._slots):
                self._step()

    def _admit(self) -> None:
        """Give waiting sequences the free slots: the one whose cache shares most of the prompt."""
        while self._waiting and None in self._slots:
            sequence = self._waiting.popleft()
            if sequence.cancelled.is_set():
                sequence.tokens.put(_End("stop"))
                continue
            free = [i for i, s in enumerate(self._slots) if s is None]
            slot = max(free, key=lambda i: _common_prefix(self._cached[i], sequence.prompt))
            # At least the prompt's last token is decoded again: its logits give the first sample.
            reuse = min(_common_prefix(self._cached[slot], sequence.prompt), len(sequence.prompt) - 1)
            # Sliding-window layers forget positions behind their window: a cache that no longer
            # starts at 0 cannot be cut back and continued, nor can one that refuses to drop a tail.
            whole = lc.llama_memory_seq_pos_min(self._memory, slot) <= 0
            if reuse == 0 or not whole or not lc.llama_memory_seq_rm(self._memory, slot, reuse, -1):
                lc.llama_memory_seq_rm(self._memory, slot, -1, -1)
                reuse = 0
            sequence.slot, sequence.position = slot, reuse
            sequence.waiting = sequence.prompt[reuse:]
            sequence.sampler = _sampler(sequence.options)
            self._cached[slot] = sequence.prompt[:reuse]
            self._slots[slot] = sequence

    def _drop_cancelled(self) -> None:
        for sequence in self._slots:
            if sequence is not None and sequence.cancelled.is_set():
                self._finish(sequence, _End("stop"))

    def _finish(self, sequence: Sequence, end: _End) -> None:
        self._slots[sequence.slot] = None
        if sequence.sampler is not None:
            lc.llama_sampler_free(sequence.sampler)
            sequence.sampler = None
        sequence.tokens.put(end)

    def _end_all(self, error: str) -> None:
        for sequence in [*self._slots, *self._waiting]:
            if sequence is not None:
                sequence.tokens.put(_End(error=error))
                if sequence.sampler is not None:
                    lc.llama_sampler_free(sequence.sampler)
        self._slots = [None] * self.parallel
        self._waiting.clear()

    def _step(self) -> None:
        """One ``llama_decode``: each generating sequence's last token, then prompt tokens that fit."""
        batch = self._batch
        used = 0
        sampled: list[tuple[Sequence, int]] = []  # (sequence, batch index of its logits)

        def add(sequence: Sequence, token: int, logits: bool) -> None:
            nonlocal used
            batch.token[used] = token
            batch.pos[used] = sequence.position
            batch.n_seq_id[used] = 1
            batch.seq_id[used][0] = sequence.slot
            batch.logits[used] = logits
            if logits:
                sampled.append((sequence, used))
            self._cached[sequence.slot].append(token)
            sequence.position += 1
            used += 1

        running = [s for s in self._slots if s is not None]
        for sequence in running:
            if not sequence.waiting:
                add(sequence, sequence.last, True)
        for sequence in running:
            if sequence.waiting and used < BATCH_TOKENS:
                take = sequence.waiting[: BATCH_TOKENS - used]
                del sequence.waiting[: len(take)]
                for index, token in enumerate(take):
                    add(sequence, token, not sequence.waiting and index == len(take) - 1)
        batch.n_tokens = used
        status = lc.llama_decode(self._ctx, batch)
        if status != 0:
            message = failure(f"llama.cpp could not decode (status {status})").message
            for sequence in running:
                lc.llama_memory_seq_rm(self._memory, sequence.slot, -1, -1)
                self._cached[sequence.slot] = []
                self._finish(sequence, _End(error=message))
            return
        vocab = self.model.vocab
        for sequence, index in sampled:
            token = lc.llama_sampler_sample(sequence.sampler, self._ctx, index)
            if lc.llama_vocab_is_eog(vocab, token):
                self._finish(sequence, _End("stop"))
                continue
            sequence.generated += 1
            sequence.last = token
            sequence.tokens.put(token)
            limit = sequence.options.max_tokens or 0  # 0 or less: until the end of text or context
            if 0 < limit <= sequence.generated or sequence.position >= self.context_length:
                self._finish(sequence, _End("length"))


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _sampler(options: SamplingOptions) -> Any:
    """The sampler chain ``create_completion`` builds for the same settings (repetition penalties
    left out: at their default of 1.0 they change nothing)."""
    params = lc.llama_sampler_chain_default_params()
    params.no_perf = True
    chain = lc.llama_sampler_chain_init(params)
    temperature = DEFAULT_TEMPERATURE if options.temperature is None else options.temperature
    seed = lc.LLAMA_DEFAULT_SEED if options.seed is None else options.seed & 0xFFFFFFFF
    if temperature == 0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        return chain
    if temperature > 0:
        top_k = DEFAULT_TOP_K if options.top_k is None else options.top_k
        top_p = DEFAULT_TOP_P if options.top_p is None else options.top_p
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(top_k))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(top_p, 1))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_min_p(DEFAULT_MIN_P, 1))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(temperature))
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed))
    return chain
