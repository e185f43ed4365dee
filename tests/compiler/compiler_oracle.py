"""Test helpers for the compiler: exact and compiled traces of a graph, and random small DSL graphs."""

from __future__ import annotations

from hypothesis import strategies as st

from wasmformer.compiler import compile_graph
from wasmformer.engines.base import generate
from wasmformer.engines.dense import DenseEngine
from wasmformer.graph.evaluate import run
from wasmformer.graph.graph import Graph

# Small horizon keeps B, M and every score tiny, and the dense engine fast.
MAX_EXACT_TOKENS = 1 << 12


def reference_trace(graph: Graph, prompt: list[str], max_new_tokens: int) -> list[str]:
    """The exact evaluator's trace (raises EvaluationError where the graph has no defined answer)."""
    return run(graph, prompt, max_new_tokens).trace


def dense_trace(graph: Graph, prompt: list[str], max_new_tokens: int, time_limit: float = 2.0) -> list[str]:
    model, _ = compile_graph(graph, time_limit=time_limit, log=lambda _: None)
    ids = [model.vocab.index(token) for token in prompt]
    result = generate(DenseEngine(model), ids, max_new_tokens=max_new_tokens)
    return [model.vocab[i] for i in result.trace]


# -- a deep graph with slack ---------------------------------------------------------
def chain_graph(length: int = 120, width: int = 4) -> Graph:
    """Many small ops with slack (side branches read only by the logits): a real MILP to solve."""
    vocab = [f"v{i}" for i in range(8)] + ["halt"]
    graph = Graph(vocab, halt_token="halt", max_exact_tokens=1 << 10, name="chain")
    tables = [graph.token_table(f"table{i}", {v: (i * 3 + j) % 5 for j, v in enumerate(vocab)}) for i in range(width)]
    branch = [graph.persist(f"start{i}", tables[i] + 1) for i in range(width)]
    side = []
    for step in range(length):
        lane = step % width
        source = branch[(lane + 1) % width]
        if step % 3 == 0:
            (fetched,) = graph.lookup(f"fetch{step}", source, tables[lane], [branch[lane]])
            branch[lane] = graph.persist(f"keep{step}", fetched)
        else:
            branch[lane] = graph.step(f"step{step}", branch[lane] - source)
        if step % 5 == 0:
            side.append(graph.persist(f"side{step}", tables[lane] + 2 * tables[(lane + 2) % width]))
    total = sum(branch, graph.one * 0) + sum(side, graph.one * 0)
    graph.set_next_token_id(total)
    return graph


# -- random graphs ------------------------------------------------------------------
VOCAB = ["a", "b", "c", "d", "e", "f", "halt"]
SMALL = 6  # token-table values and small-feature bounds stay within [-SMALL, SMALL]


@st.composite
def random_graph(draw) -> Graph:
    """A small graph mixing every primitive; its logits read random combinations of what it built."""
    graph = Graph(VOCAB, halt_token="halt", max_exact_tokens=MAX_EXACT_TOKENS, name="random")
    pool = _Pool(graph, draw)
    for index in range(draw(st.integers(1, 3))):
        pool.add_table(f"table{index}")
    for index in range(draw(st.integers(3, 10))):
        op = draw(st.sampled_from(_Pool.OPS))
        getattr(pool, op)(f"n{index}")
    pool.finish()
    return graph


class _Pool:
    OPS = ["step", "product", "equals", "select", "persist", "latest", "unique", "count", "placeholder", "table",
           "distance"]

    def __init__(self, graph: Graph, draw):
        self.graph, self.draw = graph, draw
        self.small = [graph.one]  # integer features with small bounds
        self.flags = []  # 0/1 features
        self.placeholders = []  # (placeholder, definition to bind at the end)

    def pick_small(self):
        expr = self.draw(st.sampled_from(self.small))
        if len(self.small) > 1 and self.draw(st.booleans()):
            other = self.draw(st.sampled_from(self.small))
            expr = expr + self.draw(st.integers(-2, 2)) * other
        return expr + self.draw(st.integers(-2, 2))

    def pick_flag(self):
        return self.draw(st.sampled_from(self.flags)) if self.flags else None

    def keep(self, expr, flag: bool = False) -> None:
        lo, hi = expr.bounds()
        if max(abs(lo), abs(hi)) <= 4 * SMALL * SMALL:
            self.small.append(expr)
        if flag:
            self.flags.append(expr)

    def add_table(self, name: str) -> None:
        values = self.draw(st.lists(st.integers(-SMALL, SMALL), min_size=len(VOCAB), max_size=len(VOCAB)))
        self.keep(self.graph.token_table(name, dict(zip(VOCAB, values))))

    table = add_table

    def step(self, name: str) -> None:
        self.keep(self.graph.step(name, self.pick_small()), flag=True)

    def product(self, name: str) -> None:
        self.keep(self.graph.product(name, self.pick_small(), self.pick_small()))

    def equals(self, name: str) -> None:
        self.keep(self.graph.equals(name, self.pick_small(), self.draw(st.integers(-3, 3))), flag=True)

    def select(self, name: str) -> None:
        flag = self.pick_flag()
        if flag is not None:
            self.keep(self.graph.select(name, flag, self.pick_small(), self.pick_small()))

    def persist(self, name: str) -> None:
        self.keep(self.graph.persist(name, self.pick_small()))

    def latest(self, name: str) -> None:
        """Keys from small features repeat across tokens, so ties (newest wins) matter."""
        width = self.draw(st.integers(1, 2))
        values = [self.pick_small() for _ in range(width)]
        clear = self.pick_clear(name)
        key = self.pick_small() if self.draw(st.integers(0, 3)) else self.graph.t - self.draw(st.integers(0, 3))
        query = self.pick_small() if self.draw(st.booleans()) else self.graph.t - 1
        for output in self.graph.lookup(name, query, key, values, clear=clear):
            self.keep(output)

    def unique(self, name: str) -> None:
        """Keys are positions (distinct); the query asks for a position some tokens back."""
        back = self.draw(st.integers(0, 3))
        clear = self.pick_clear(name)
        query = self.graph.t - back if self.draw(st.booleans()) else self.graph.t - self.pick_flag_or_one()
        outputs = self.graph.lookup(name, query, self.graph.t, [self.pick_small()], clear=clear, tie="unique")
        self.keep(outputs[0])

    def distance(self, name: str) -> None:
        """How long ago a key last occurred (a value of t fetched by a repeating key), as flags."""
        key = self.pick_small()
        clear = self.pick_clear(name)
        (then,) = self.graph.lookup(name, key, key, [self.graph.t - 1], clear=clear)
        since = self.graph.t - then
        self.keep(self.graph.step(f"{name}.within", self.draw(st.integers(1, 4)) - since), flag=True)
        self.keep(self.graph.equals(f"{name}.exactly", since, self.draw(st.integers(1, 4))), flag=True)

    def pick_clear(self, name: str):
        """A clear flag, or None; never set at t = 0, so some token is always a candidate."""
        flag = self.pick_flag() if self.draw(st.booleans()) else None
        if flag is None:
            return None
        return self.graph.product(f"{name}.clear", flag, self.graph.step(f"{name}.after_first", self.graph.t - 1))

    def pick_flag_or_one(self):
        return self.pick_flag() if self.flags else self.graph.one

    def count(self, name: str) -> None:
        flags = self.flags[-2:] or [self.graph.step(f"{name}.flag", self.pick_small())]
        for index, count in enumerate(self.graph.count_before(name, flags)):
            self.keep(self.graph.step(f"{name}.{index}.at_least", count - self.draw(st.integers(0, 3))), flag=True)

    def placeholder(self, name: str) -> None:
        """Used now, defined at the end (from features that exist now, so no cycle)."""
        definition = self.pick_small()
        lo, hi = definition.bounds()
        placeholder = self.graph.placeholder(name, lo, hi)
        self.placeholders.append((placeholder, definition))
        self.keep(self.graph.persist(f"{name}.use", placeholder + 1))

    def finish(self) -> None:
        for placeholder, definition in self.placeholders:
            self.graph.define(placeholder, definition)
        if self.draw(st.booleans()):  # the value itself names the next token (clamped to the vocabulary)
            self.graph.set_next_token_id(self.pick_newest() + self.pick_small() + len(VOCAB) // 2)
            return
        tokens = self.draw(st.lists(st.sampled_from(VOCAB), min_size=2, max_size=len(VOCAB), unique=True))
        logits = {token: self.pick_newest() * self.draw(st.integers(-3, 3)) + self.pick_small() for token in tokens}
        self.graph.set_logits(logits)

    def pick_newest(self):
        """One of the last features built, so the deepest ops reach the logits."""
        return self.draw(st.sampled_from(self.small[-3:]))
