"""Neuron2Graph (N2G): a neuron's behaviour as a trie of activating and important tokens.

A port of Foote et al., "Neuron to Graph" (ICLR 2023 RTML workshop, arXiv 2304.12918; longer
preprint arXiv 2305.19911; code apartresearch/Neuron2Graph and the albertsgarde `n2g` fork),
written on token ids and a plain activation callable so it runs on any model:

1. **Split** a neuron's top examples into train and held-out halves (fixed seed).
2. **Prune** each training example to the shortest prior context (every 5th length, as the
   reference code tries them) that keeps >= 50% of the pivot activation with the pivot still
   the strongest token; up to 5 tokens after the pivot, within its sentence, are kept. The
   pivots are each example's max and its other tokens at >= 0.5x that max.
3. **Importance** of token k for token j: ``1 - a_masked/a`` with token k replaced by a
   neutral (pad) token.
4. **Augment**: substitute each important token with candidates from a
   :data:`SubstituteFn` and keep the variants whose pivot activation stays >= 0.5x. The
   papers ask a masked LM ((Distil)BERT) for the words that fit the masked position; offline,
   its causal analogue is the model's own next-token prediction at that position given the
   tokens before it (:func:`lm_substitutes`). The context-free alternative is the model's
   embedding neighbours (cosine on ``W_E``, :func:`embedding_neighbours` through
   :func:`token_substitutes`), mostly the token's own case and space variants. The pipeline
   and the benchmark take both in turns (:func:`combined_substitutes`), and more of them at
   the pivot, where a kept substitute is a new activating token the lookup baseline cannot know.
5. **Trie**: for every token with normalised activation > 0.5, walk backwards over its context;
   tokens with importance > 0.75 become nodes, the others wildcard ("ignore") nodes; the node
   where a line stops stores the normalised activation. Where a wildcard has siblings, their
   continuations are merged into it (the reference code's ``merge_ignores``).
6. **Predict** a token by matching backwards through the trie (exact token or wildcard), the
   max over every matching path's stored activation. Tokens are keyed by id; the reference
   code's case and space folding (:func:`text_normaliser`) is an option, as it joins tokens a
   neuron tells apart.

    >>> fn = lambda seqs: [[float(t == 2 and i >= 2 and s[i - 2] == 1) for i, t in enumerate(s)]
    ...                    for s in seqs]
    >>> ex = [Example([1, 7, 2], [0, 0, 1.0], 2), Example([1, 8, 2, 3], [0, 0, 1.0, 0], 2)]
    >>> m = fit_n2g(fn, ex, pad_token=0)
    >>> m.predict([1, 5, 2, 4, 2]).tolist()
    [0.0, 0.0, 1.0, 0.0, 0.0]

The package, by concern: :mod:`.trie` (the pattern trie), :mod:`.fit` (one neuron's fit and
scores), :mod:`.batched` (many neurons fitted with shared forward passes: of one layer, or of any layers
with every layer read from the same passes), :mod:`.sweep` (every neuron at once, a block of
contexts at a time: the neurons that peak on the same contexts share the passes),
:mod:`.substitutes` (substitute sources, token helpers), :mod:`.storage` (the graph rows and
:func:`build_n2g`).

Storage (:func:`build_n2g`): ``PatternNode`` nodes under the neuron (``HAS_PATTERN``),
``PATTERN_NEXT`` edges one token further back, ``MATCHES {role}`` edges to ``Token`` nodes,
the held-out scores as neuron properties (``n2g_firing_f1``, ``baseline_firing_f1``, ...) and
the graph as JSON (``n2g_graph``) and Graphviz DOT (``n2g_dot``). Similar neurons (symmetric
Jaccard of their tagged token sets) become ``SIMILAR {kind:'n2g'}`` edges.
"""

from __future__ import annotations

from .fit import (
    ActivationFn, Ask, Example, FitTrace, N2GConfig, Need, NeuronResult, Steps, SubstituteFn, _Acts, _lines,
    _scaled, drive, evaluate, fit_n2g, fit_steps, importance_many, importance_matrix, importance_steps, pivots,
    post_context, prune, prune_many, prune_steps, run_neuron, run_steps, split_examples,
)
from .batched import LayerFn, LayerStats, run_fits, run_layer, run_model
from .sweep import run_sweep, sweep_all
from .storage import (
    build_n2g, examples_from_rows, pattern_rows, similar_pairs, update_similar, write_neuron, write_neurons,
)
from .substitutes import (
    _top_ids, combined_substitutes, embedding_neighbours, lm_substitutes, neuron_fn, sentence_ends,
    text_normaliser, token_substitutes, unit_rows,
)
from .trie import WILDCARD, N2GModel, PatternNode

__all__ = [
    "ActivationFn", "Ask", "LayerFn", "LayerStats", "Example", "FitTrace", "N2GConfig", "N2GModel", "Need", "NeuronResult", "PatternNode", "Steps", "SubstituteFn",
    "WILDCARD", "build_n2g", "drive", "combined_substitutes", "embedding_neighbours", "evaluate", "examples_from_rows",
    "fit_n2g", "fit_steps", "importance_many", "importance_steps", "importance_matrix", "lm_substitutes", "neuron_fn", "pattern_rows", "pivots",
    "run_fits", "run_layer", "run_model", "run_sweep", "sweep_all", "write_neurons",
    "post_context", "prune", "prune_many", "prune_steps", "run_neuron", "run_steps", "sentence_ends", "similar_pairs", "split_examples",
    "text_normaliser", "token_substitutes", "unit_rows", "update_similar", "write_neuron",
]
