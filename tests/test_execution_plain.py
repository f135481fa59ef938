"""Objects of plain fields completed in one step (api/execution_context.py) answer exactly what
graphql-core's general path answers: values, nulls, errors, aliases, directives, fragments."""

from __future__ import annotations

import enum
from typing import Optional

import strawberry

from neurograph.api.execution_context import AcyclicExecutionContext


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Item:
    name: str
    weight: float
    count: int
    ok: bool
    colour: Colour
    ident: strawberry.ID
    note: Optional[str] = None

    @strawberry.field
    def shout(self) -> str:  # a resolver of its own: not plain
        return self.name.upper()


ITEMS = [Item(name="a", weight=0.5, count=3, ok=True, colour=Colour.RED, ident=strawberry.ID("i1")),
         Item(name="b", weight=-2.0, count=-1, ok=False, colour=Colour.BLUE, ident=strawberry.ID("i2"), note="n"),
         Item(name="c", weight=float("nan"), count=1, ok=True, colour=Colour.RED, ident=strawberry.ID("i3")),
         Item(name=None, weight=1.0, count=2 ** 40, ok=True, colour=Colour.RED, ident=strawberry.ID("i4")),  # type: ignore[arg-type]
         Item(name="e", weight=3, count=2, ok=1, colour=Colour.BLUE, ident=7)]  # type: ignore[arg-type]


@strawberry.type
class Query:
    @strawberry.field
    def items(self, which: list[int]) -> list[Item]:
        return [ITEMS[i] for i in which]


FAST = strawberry.Schema(Query, execution_context_class=AcyclicExecutionContext)
STOCK = strawberry.Schema(Query)

QUERIES = [
    "query($w: [Int!]!) { items(which: $w) { name weight count ok colour ident note } }",
    "query($w: [Int!]!) { items(which: $w) { n: name w: weight name @skip(if: true) __typename } }",
    "query($w: [Int!]!) { items(which: $w) { ...F shout } } fragment F on Item { name colour }",
    "query($w: [Int!]!, $s: Boolean!) { items(which: $w) { name @include(if: $s) count } }",
]


async def test_plain_objects_answer_what_the_general_path_answers(monkeypatch):
    plans: list[tuple[str, int]] = []  # (type, fields done in one step): the fast path is taken
    plan = AcyclicExecutionContext._plan

    def spy(self, return_type, field_details_list):
        got = plan(self, return_type, field_details_list)
        plans.append((return_type.name, len(got)))
        return got

    monkeypatch.setattr(AcyclicExecutionContext, "_plan", spy)
    for query in QUERIES:
        for which in ([0, 1], [2], [3], [0, 3, 1], [4], []):
            variables = {"w": which, "s": False}
            fast, stock = await FAST.execute(query, variable_values=variables), \
                await STOCK.execute(query, variable_values=variables)
            assert fast.data == stock.data, (query, which)
            assert [(e.message, e.path) for e in fast.errors or []] == \
                   [(e.message, e.path) for e in stock.errors or []], (query, which)
    # the cases do reach errors (NaN weight, null name, a 40-bit count) and plain answers
    bad = await FAST.execute(QUERIES[0], variable_values={"w": [2, 3]})
    assert bad.errors and (await FAST.execute(QUERIES[0], variable_values={"w": [0, 1]})).data["items"][1]["note"] == "n"
    # plain selections are done in one step; a resolver of its own or __typename is not plain
    assert {("Item", 7), ("Item", 1), ("Item", 0)} <= set(plans)
