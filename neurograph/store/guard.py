"""The read-only Cypher that power users may send: a grammar of what we vouch for.

Untrusted Cypher reaches the database only if it parses under the grammar below: reading
clauses (MATCH, OPTIONAL MATCH, UNWIND, WITH, RETURN, top-level UNION), expressions, map
projections, list comprehensions and quantifiers, calls of functions and procedures from a
short list of read-only ones. Everything else is refused by construction, not by searching the
text for bad words: no writes, no ``CALL {}`` subqueries, no ``FOREACH``, no ``LOAD CSV``, no
procedure outside the list. The text that runs is rebuilt from the parsed tokens (comments
dropped), so what the engine sees is exactly what was checked.

This is one of two defences: the query then runs on an isolated read-only replica (see
``replica.py``), so a crash inside the engine never reaches the store that serves the API.

    >>> checked_read_only("MATCH (n:Neuron) // the neurons\\nRETURN count(n) AS n")
    'MATCH (n:Neuron) RETURN count(n) AS n'
    >>> checked_read_only("CALL { CALL db.labels() } RETURN 1")
    Traceback (most recent call last):
    ...
    neurograph.errors.QueryError: read-only Cypher: CALL { ... } subqueries are not allowed here (line 1, column 6)
"""

from __future__ import annotations

import re
from functools import lru_cache

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..errors import QueryError

# Procedures that only read (FalkorDB's and Neo4j's names). Any other procedure is refused.
READ_PROCEDURES = frozenset(p.lower() for p in (
    "db.labels", "db.relationshipTypes", "db.propertyKeys", "db.indexes", "db.constraints",
    "db.idx.fulltext.queryNodes", "db.idx.fulltext.queryRelationships",
    "db.idx.vector.queryNodes", "db.idx.vector.queryRelationships",
    "db.index.fulltext.queryNodes", "db.index.fulltext.queryRelationships",
    "dbms.components",
))

# Functions (pure, read-only, common to FalkorDB and Neo4j or either). Unknown names are refused:
# a misspelt one gets the list in the error rather than an engine's crash.
FUNCTIONS = frozenset(f.lower() for f in (
    # aggregation
    "count", "sum", "avg", "min", "max", "collect", "stDev", "stDevP", "percentileCont", "percentileDisc",
    # scalar and predicates
    "id", "elementId", "labels", "type", "properties", "keys", "startNode", "endNode", "hasLabels",
    "exists", "coalesce", "size", "length", "head", "last", "tail", "range", "reverse", "nodes",
    "relationships", "timestamp", "toBoolean", "toBooleanOrNull", "toInteger", "toIntegerOrNull",
    "toFloat", "toFloatOrNull", "toString", "toStringOrNull", "isEmpty", "typeOf", "randomUUID",
    # maths
    "abs", "ceil", "floor", "round", "sign", "sqrt", "exp", "log", "log10", "e", "pi", "rand", "pow",
    "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "degrees", "radians",
    # strings
    "toLower", "toUpper", "trim", "lTrim", "rTrim", "left", "right", "substring", "replace", "split",
    "reverse", "string.join", "string.matchRegEx", "string.replaceRegEx",
    # lists and vectors
    "list.dedup", "list.sort", "vecf32", "vec.cosineDistance", "vec.euclideanDistance",
))

_KEYWORDS = ("match optional where with return unwind as order by skip limit distinct union all call "
             "yield and or xor not in starts ends contains is null true false case when then else end "
             "asc desc ascending descending create merge set delete detach remove foreach load csv drop "
             "any none single").split()

GRAMMAR = r"""
?start: query
query: single_query (union single_query)*
union: UNION ALL?
single_query: reading* return_clause
            | call_clause
?reading: match_clause | unwind_clause | with_clause | call_clause

match_clause: OPTIONAL? MATCH pattern_list where?
unwind_clause: UNWIND expr AS name
with_clause: WITH DISTINCT? projection order? skip? limit? where?
return_clause: RETURN DISTINCT? projection order? skip? limit?
call_clause: CALL procedure "(" args? ")" (YIELD yield_item ("," yield_item)* where?)?
procedure: FUNC_NAME
yield_item: name (AS name)?
where: WHERE expr
projection: "*" ("," proj_item)* | proj_item ("," proj_item)*
proj_item: expr (AS name)?
order: ORDER BY sort_item ("," sort_item)*
sort_item: expr (ASC | ASCENDING | DESC | DESCENDING)?
skip: SKIP expr
limit: LIMIT expr

pattern_list: pattern_part ("," pattern_part)*
pattern_part: (name "=")? chain
chain: node (rel node)*
node: "(" name? labels? properties? ")"
labels: (":" name)+
properties: map_literal | PARAM
rel: "<-" rel_detail? "-"
   | "-" rel_detail? "->"
   | "-" rel_detail? "-"
rel_detail: "[" name? rel_types? hops? properties? "]"
rel_types: ":" name ("|" ":"? name)*
hops: "*" INT? (".." INT?)?

?expr: or_expr
?or_expr: xor_expr (OR xor_expr)*
?xor_expr: and_expr (XOR and_expr)*
?and_expr: not_expr (AND not_expr)*
?not_expr: NOT not_expr -> negation
         | comparison
?comparison: predicate (comp_op predicate)*
!comp_op: "<>" | "<=" | ">=" | "=" | "<" | ">"
?predicate: add_expr
          | add_expr IN add_expr -> in_list
          | add_expr STARTS WITH add_expr -> starts_with
          | add_expr ENDS WITH add_expr -> ends_with
          | add_expr CONTAINS add_expr -> contains
          | add_expr "=~" add_expr -> regex
          | add_expr IS NOT? NULL -> null_test
?add_expr: mul_expr (add_op mul_expr)*
!add_op: "+" | "-"
?mul_expr: pow_expr (mul_op pow_expr)*
!mul_op: "*" | "/" | "%"
?pow_expr: unary ("^" unary)*
?unary: add_op unary -> sign
      | postfix
?postfix: atom
        | postfix "." prop_name -> property
        | postfix "[" expr "]" -> subscript
        | postfix "[" expr? ".." expr? "]" -> slice
        | postfix labels -> has_labels
        | postfix "{" map_projection_items? "}" -> map_projection
?atom: literal
     | PARAM
     | name
     | "(" expr ")"
     | function_call
     | count_star
     | case_expr
     | list_comprehension
     | quantifier
     | map_literal
     | list_literal
count_star: COUNT_STAR
function_call: FUNC_NAME "(" DISTINCT? args? ")"
args: expr ("," expr)*
case_expr: CASE expr? (WHEN expr THEN expr)+ (ELSE expr)? END
list_comprehension: "[" name IN expr (WHERE expr)? ("|" expr)? "]"
quantifier: QUANT "(" name IN expr WHERE expr ")"
map_projection_items: map_projection_item ("," map_projection_item)*
map_projection_item: "." prop_name | "." "*" | prop_name ":" expr | name
map_literal: "{" (prop_name ":" expr ("," prop_name ":" expr)*)? "}"
list_literal: "[" (expr ("," expr)*)? "]"
literal: NUMBER | INT | STRING | TRUE | FALSE | NULL

name: NAME
prop_name: NAME | MATCH | OPTIONAL | WHERE | WITH | RETURN | UNWIND | AS | ORDER | BY | SKIP | LIMIT
         | DISTINCT | UNION | ALL | CALL | YIELD | AND | OR | XOR | NOT | IN | STARTS | ENDS | CONTAINS | IS
         | NULL | TRUE | FALSE | CASE | WHEN | THEN | ELSE | END | ASC | DESC | ASCENDING | DESCENDING

COUNT_STAR.5: /count\s*\(\s*\*\s*\)/i
PARAM: /\$[A-Za-z_][A-Za-z0-9_]*/
NUMBER.2: /(\d+\.\d*|\.\d+|\d+)[eE][+-]?\d+/ | /\d+\.\d+/ | /\.\d+/
INT: /0x[0-9a-fA-F]+|\d+/
STRING: /'([^'\\\n]|\\['"\\\/bfnrt]|\\u[0-9a-fA-F]{4})*'/ | /"([^"\\\n]|\\['"\\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/
NAME: /(?!(@KEYWORDS@)\b)[A-Za-z_][A-Za-z0-9_]*/i | /`[^`\n]+`/
QUANT.4: /(all|any|none|single)(?=\s*\()/i
// a name right before "(" names a function or procedure (LALR(1) cannot wait for the "(")
FUNC_NAME.3: /(?!(@KEYWORDS@)\b)[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(?=\s*\()/i

MATCH: /match\b/i
OPTIONAL: /optional\b/i
WHERE: /where\b/i
WITH: /with\b/i
RETURN: /return\b/i
UNWIND: /unwind\b/i
AS: /as\b/i
ORDER: /order\b/i
BY: /by\b/i
SKIP: /skip\b/i
LIMIT: /limit\b/i
DISTINCT: /distinct\b/i
UNION: /union\b/i
ALL: /all\b/i
CALL: /call\b/i
YIELD: /yield\b/i
AND: /and\b/i
OR: /or\b/i
XOR: /xor\b/i
NOT: /not\b/i
IN: /in\b/i
STARTS: /starts\b/i
ENDS: /ends\b/i
CONTAINS: /contains\b/i
IS: /is\b/i
NULL: /null\b/i
TRUE: /true\b/i
FALSE: /false\b/i
CASE: /case\b/i
WHEN: /when\b/i
THEN: /then\b/i
ELSE: /else\b/i
END: /end\b/i
ASC: /asc\b/i
DESC: /desc\b/i
ASCENDING: /ascending\b/i
DESCENDING: /descending\b/i

COMMENT: /\/\/[^\n]*/ | /\/\*(.|\n)*?\*\//
%import common.WS
%ignore WS
%ignore COMMENT
""".replace("@KEYWORDS@", "|".join(_KEYWORDS))

MAX_QUERY_CHARS = 20_000

# What people try most that the grammar leaves out, named in the error instead of a bare
# "unexpected token" (a position in the text comes with it).
_NOT_ALLOWED = [
    (re.compile(r"\bCALL\s*\{", re.I), "CALL { ... } subqueries"),
    (re.compile(r"\b(CREATE|MERGE|SET|DELETE|DETACH|REMOVE|DROP)\b", re.I), "writes (%s)"),
    (re.compile(r"\bFOREACH\b", re.I), "FOREACH"),
    (re.compile(r"\bLOAD\s+CSV\b", re.I), "LOAD CSV"),
    (re.compile(r"\b(EXISTS|COUNT|COLLECT)\s*\{", re.I), "%s { ... } subqueries"),
]


# Pattern predicates (``WHERE NOT (a)-[:R]->(b)``) need more than one token of look-ahead to tell
# from a parenthesised expression: queries the LALR parser (~1 ms) refuses get a second try with
# an Earley parser of the grammar plus them (~50-300 ms).
_WITH_PATTERN_PREDICATES = GRAMMAR.replace("?atom: literal", "?atom: pattern_predicate\n     | literal") + \
    "\npattern_predicate: node (rel node)+\n"


@lru_cache(maxsize=2)
def _parser(fast: bool = True) -> Lark:
    if fast:
        return Lark(GRAMMAR, parser="lalr", keep_all_tokens=True)
    return Lark(_WITH_PATTERN_PREDICATES, parser="earley", lexer="basic", keep_all_tokens=True)


def _tokens(tree: Tree) -> list[Token]:
    out: list[Token] = []
    stack: list[Tree | Token] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Token):
            out.append(node)
        else:
            stack.extend(reversed(node.children))
    return out


def _check_names(tree: Tree) -> None:
    for sub in tree.iter_subtrees():
        if sub.data not in ("function_call", "procedure"):
            continue
        name = str(sub.children[0])
        if sub.data == "procedure":
            if name.lower() not in READ_PROCEDURES:
                raise QueryError(f"read-only Cypher: procedure {name!r} is not allowed here; the allowed ones are "
                                 + ", ".join(sorted(READ_PROCEDURES)))
        elif name.lower() not in FUNCTIONS:
            raise QueryError(f"read-only Cypher: function {name!r} is not known here (misspelt, or not "
                             f"vouched for as read-only)")


def _refusal(text: str, e: UnexpectedInput) -> QueryError:
    line, column = getattr(e, "line", "?"), getattr(e, "column", "?")
    where = f"(line {line}, column {column})"
    pos = getattr(e, "pos_in_stream", None)
    if pos is None and isinstance(e, UnexpectedToken):
        pos = e.token.start_pos
    for pattern, what in _NOT_ALLOWED:
        m = pattern.search(text, max(0, (pos or 0) - 12)) if pos is not None else pattern.search(text)
        if m is not None and (pos is None or m.start() <= pos + 1):
            what = what % m.group(1).upper() if m.groups() else what
            return QueryError(f"read-only Cypher: {what} "
                              f"{'are' if what.endswith('s') else 'is'} not allowed here {where}")
    if isinstance(e, UnexpectedEOF):
        return QueryError("read-only Cypher: the query ends too early (it must end with RETURN, or be one "
                          "CALL of a read-only procedure)")
    snippet = text[pos:pos + 20] if isinstance(pos, int) else ""
    return QueryError(f"read-only Cypher: not a query this endpoint runs, at {snippet!r} {where}; allowed: "
                      "MATCH, OPTIONAL MATCH, UNWIND, WITH, RETURN, UNION and CALL of read-only procedures")


def checked_read_only(text: str) -> str:
    """The text to run for ``text`` if it is read-only Cypher we vouch for; QueryError otherwise.
    The result is the query rebuilt from its tokens: comments dropped, spacing kept minimal."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError("read-only Cypher: the query is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"read-only Cypher: the query is longer than {MAX_QUERY_CHARS} characters")
    if "\x00" in text:
        raise QueryError("read-only Cypher: the query contains a NUL character")
    try:
        try:
            tree = _parser().parse(text)
        except (UnexpectedToken, UnexpectedEOF):
            tree = _parser(fast=False).parse(text)
    except (UnexpectedCharacters, UnexpectedToken, UnexpectedEOF) as e:
        raise _refusal(text, e) from None
    except LarkError as e:  # ambiguity or recursion troubles: refuse rather than guess
        raise QueryError(f"read-only Cypher: could not be checked ({type(e).__name__})") from None
    except RecursionError:
        raise QueryError("read-only Cypher: the query nests too deeply") from None
    _check_names(tree)
    return _rebuild(text, _tokens(tree))


def _rebuild(text: str, tokens: list[Token]) -> str:
    """The tokens as they stand in ``text``; one space wherever anything (blanks, a comment)
    separated two of them."""
    parts: list[str] = []
    end = None
    for t in sorted(tokens, key=lambda t: t.start_pos):
        if end is not None and t.start_pos > end:
            parts.append(" ")
        parts.append(text[t.start_pos:t.end_pos])
        end = t.end_pos
    return "".join(parts)


def refuse_writes(text: str) -> None:
    """Raise QueryError unless ``text`` is read-only Cypher we vouch for (see checked_read_only)."""
    checked_read_only(text)
