"""Token search over Neuron2Graph pattern graphs, as DeepDecipher's ``neuron2graph-search``.

Neurons whose N2G graph has these tokens as activating nodes, as important (context) nodes,
or in either role (``any_``); several tokens mean AND. Tokens compare case-insensitively; with
``keep_spaces`` (GraphQL's ``searchTokens``) their spaces count, so " the" and "the" are the
different tokens they are; without it (DeepDecipher's REST search) surrounding whitespace is
stripped, so "paris" finds the token " Paris".

    rows = await search_tokens(store, "smollm2-135m", activating=["paris"], important=["capital"])
    # [{'key': 'smollm2-135m/12/345', 'layer': 12, 'index': 345, 'score': 0.71}, ...]

    parse_query("activating:paris,important:capital")   # the DeepDecipher query string
    # {'activating': ['paris'], 'important': ['capital'], 'any_': []}
"""

from __future__ import annotations

from typing import Any, Iterable

from .domain import check_model_name
from .errors import QueryError

ORDERS = ("layer", "score")
MAX_LIMIT = 1000
ROLES = {"activating": "activating", "important": "important", "any": "any_"}


def normalise_token(token: str, keep_spaces: bool = False) -> str:
    """How search compares tokens: lower-cased; stripped unless ``keep_spaces`` (a bare space
    stays a space).

        >>> normalise_token(" The"), normalise_token(" The", keep_spaces=True)
        ('the', ' the')
    """
    t = str(token)
    if keep_spaces:
        return t.lower()
    return t.strip().lower() or t.lower()


def parse_query(query: str) -> dict[str, list[str]]:
    """Parse DeepDecipher's ``activating:tok,important:tok2,any:tok3`` query string.

    >>> parse_query("activating:Paris, important:capital")
    {'activating': ['Paris'], 'important': ['capital'], 'any_': []}
    """
    out: dict[str, list[str]] = {"activating": [], "important": [], "any_": []}
    for term in query.split(","):
        if not term.strip():
            continue
        role, sep, tok = term.strip().partition(":")
        if not sep or role.strip().lower() not in ROLES or not tok:
            raise QueryError(f"bad search term {term.strip()!r}: use activating:TOKEN, important:TOKEN or any:TOKEN")
        out[ROLES[role.strip().lower()]].append(tok)
    return out


async def search_tokens(store: Any, model: str, activating: Iterable[str] = (), important: Iterable[str] = (),
                        any_: Iterable[str] = (), order: str = "layer", limit: int = 50,
                        offset: int = 0, keep_spaces: bool = False) -> list[dict]:
    """Neurons of ``model`` whose N2G pattern graph has all the given tokens in their roles.

    Returns ``[{key, layer, index, score}]`` sorted by (layer, index), or by N2G firing F1
    (best first) with ``order="score"``. ``score`` is the neuron's ``n2g_firing_f1`` (None if
    not scored, e.g. imported graphs)."""
    check_model_name(model)
    if order not in ORDERS:
        raise QueryError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    if not (0 < int(limit) <= MAX_LIMIT) or int(offset) < 0:
        raise QueryError(f"limit must be in 1..{MAX_LIMIT} and offset >= 0")
    act = sorted({normalise_token(t, keep_spaces) for t in activating})
    imp = sorted({normalise_token(t, keep_spaces) for t in important})
    either = sorted({normalise_token(t, keep_spaces) for t in any_})
    if not (act or imp or either):
        raise QueryError("give at least one token to search for (activating, important or any)")
    return await store.query("search_tokens", model=model, activating=act, important=imp, any=either,
                             order=order, skip=int(offset), limit=int(limit), keep_spaces=bool(keep_spaces))
