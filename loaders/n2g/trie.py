"""The N2G trie: pattern nodes keyed by token (or a wildcard), matched backwards from an
activating token; prediction, the reference code's ``merge_ignores``, JSON and Graphviz DOT."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np

WILDCARD = None  # the trie key of an "ignore" node: matches any token


@dataclass
class PatternNode:
    """One trie node: the token key it matches (None: any token), its depth back from the
    activating token (0), the raw token ids seen there and, where a line ended, the stored
    normalised activation."""

    id: int
    key: Hashable | None
    depth: int
    role: str  # activating | important | ignore
    token_ids: set[int] = field(default_factory=set)
    children: dict[Hashable | None, "PatternNode"] = field(default_factory=dict)
    end: float | None = None


class N2GModel:
    """A fitted N2G trie for one neuron; ``predict`` gives normalised activations per token.

        >>> m = N2GModel()
        >>> m.add_line([(3, True), (WILDCARD, False), (1, True)], [3, 9, 1], 0.8)
        >>> m.predict([1, 2, 3]).tolist(), m.predict([2, 2, 3]).tolist()
        ([0.0, 0.0, 0.8], [0.0, 0.0, 0.0])
    """

    def __init__(self, normalise: Callable[[int], Hashable] | None = None) -> None:
        self.normalise = normalise or (lambda t: t)
        self.root = PatternNode(-1, None, -1, "root")
        self.nodes: list[PatternNode] = []

    def add_line(self, keys: Sequence[tuple[Hashable | None, bool]], raw: Sequence[int], activation: float) -> None:
        """Insert one line: (key, important) pairs from the activating token backwards (key
        None = wildcard) with their raw token ids; the last node stores ``activation``."""
        node = self.root
        for depth, ((key, _important), tok) in enumerate(zip(keys, raw)):
            child = node.children.get(key)
            if child is None:
                role = "activating" if depth == 0 else ("ignore" if key is WILDCARD else "important")
                child = PatternNode(len(self.nodes), key, depth, role)
                self.nodes.append(child)
                node.children[key] = child
            if key is not WILDCARD:
                child.token_ids.add(int(tok))
            node = child
        # Repeated lines keep the largest activation: prediction is a max over paths anyway.
        node.end = activation if node.end is None else max(node.end, activation)

    def predict_at(self, tokens: Sequence[Hashable], pos: int) -> float:
        """Max stored activation over every trie path that matches backwards from ``pos``."""
        first = self.root.children.get(tokens[pos])
        if first is None:
            return 0.0
        best = 0.0
        stack = [(first, pos)]
        while stack:
            node, p = stack.pop()
            if node.end is not None and node.end > best:
                best = node.end
            if p == 0 or not node.children:
                continue
            for key in (tokens[p - 1], WILDCARD):
                child = node.children.get(key)
                if child is not None:
                    stack.append((child, p - 1))
        return best

    def predict(self, tokens: Sequence[int]) -> np.ndarray:
        keys = [self.normalise(int(t)) for t in tokens]
        return np.array([self.predict_at(keys, i) for i in range(len(keys))], dtype=float)

    def merge_ignores(self) -> None:
        """The reference code's last fitting step: where a node has a wildcard child, the
        continuations of its other children are merged into the wildcard's subtree, and a
        child that ends no line is dropped. A context token seen next to a wildcard thus
        generalises to any token there: "B <- x <- A" beside "B <- * <- C" becomes
        "B <- * <- {A, C}", while "B <- x" itself (a line end) stays.

            >>> m = N2GModel()
            >>> m.add_line([(3, True), (5, True), (1, True)], [3, 5, 1], 0.9)
            >>> m.add_line([(3, True), (WILDCARD, False), (2, True)], [3, 9, 2], 0.7)
            >>> m.merge_ignores()
            >>> m.predict([1, 6, 3]).tolist(), m.predict([2, 5, 3]).tolist()
            ([0.0, 0.0, 0.9], [0.0, 0.0, 0.7])
        """
        queue = deque([self.root])
        while queue:
            node = queue.popleft()
            wild = node.children.get(WILDCARD)
            if wild is not None:
                for key, child in list(node.children.items()):
                    if key is WILDCARD:
                        continue
                    for grand in child.children.values():
                        self._merge_into(wild, grand)
                    if child.end is None:
                        del node.children[key]
            queue.extend(node.children.values())
        # Number the nodes left, parents before children, in insertion order.
        self.nodes = []
        stack = list(reversed(self.root.children.values()))
        while stack:
            n = stack.pop()
            n.id = len(self.nodes)
            self.nodes.append(n)
            stack.extend(reversed(n.children.values()))

    @staticmethod
    def _merge_into(parent: PatternNode, src: PatternNode) -> None:
        """Add a copy of ``src``'s subtree under ``parent``, joining nodes with the same key."""
        dst = parent.children.get(src.key)
        if dst is None:
            dst = parent.children[src.key] = PatternNode(-1, src.key, src.depth, src.role)
        dst.token_ids |= src.token_ids
        if src.end is not None:
            dst.end = src.end if dst.end is None else max(dst.end, src.end)
        for c in src.children.values():
            N2GModel._merge_into(dst, c)

    def token_sets(self) -> dict[str, set[int]]:
        """Raw token ids by role: activating (depth 0) and important (context) nodes."""
        out: dict[str, set[int]] = {"activating": set(), "important": set()}
        for n in self.nodes:
            if n.role in out:
                out[n.role] |= n.token_ids
        return out

    def edges(self) -> list[tuple[int, int]]:
        return [(n.id, c.id) for n in self.nodes for c in n.children.values()]

    # --- serialisation --------------------------------------------------------------------
    def to_dict(self, decode: Callable[[int], str] | None = None) -> dict[str, Any]:
        """A JSON-able form: {graph: {nodes: [...], edges: [[parent, child], ...]}}."""
        decode = decode or str
        nodes = [{
            "id": n.id, "depth": n.depth, "role": n.role,
            "token": None if n.key is WILDCARD else decode(min(n.token_ids)),
            "token_ids": sorted(n.token_ids), "activation": n.end, "is_end": n.end is not None,
        } for n in self.nodes]
        return {"graph": {"nodes": nodes, "edges": [list(e) for e in self.edges()]}}

    def to_dot(self, decode: Callable[[int], str] | None = None) -> str:
        """Graphviz DOT as the papers draw it: read right to left, activating tokens red,
        context tokens blue, wildcards dropped (dashed edges skip over them), tokens merged
        per depth."""
        decode = decode or str
        lines = ['digraph N2G {', '  graph [rankdir=RL, splines=spline, ranksep=1.5, nodesep=0.2];',
                 '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
        ids: dict[tuple[int, Hashable], str] = {}
        edges: set[tuple[str, str, bool]] = set()

        def node_id(n: PatternNode) -> str:
            k = (n.depth, n.key)
            if k not in ids:
                ids[k] = f"n{len(ids)}"
                label = decode(min(n.token_ids)).replace("\\", "\\\\").replace('"', '\\"')
                color = "#ff8080" if n.role == "activating" else "#9ecbff"
                extra = ", peripheries=2" if n.end is not None else ""
                lines.append(f'  {ids[k]} [label="{label}", fillcolor="{color}"{extra}];')
            return ids[k]

        def walk(n: PatternNode, visible: str | None, skipped: bool) -> None:
            if n.key is WILDCARD:
                for c in n.children.values():
                    walk(c, visible, True)
                return
            me = node_id(n)
            if visible is not None:
                edges.add((me, visible, skipped))
            for c in n.children.values():
                walk(c, me, False)

        for c in self.root.children.values():
            walk(c, None, False)
        for a, b, skipped in sorted(edges):
            lines.append(f"  {a} -> {b}{' [style=dashed]' if skipped else ''};")
        lines.append("}")
        return "\n".join(lines)

