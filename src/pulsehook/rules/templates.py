"""Rule ``message`` templates: Jinja2 in a sandbox, bounded (pure).

A template sees the plain fact data only and can format but never reach
objects or attributes beyond it. It is bounded: every loop iteration and call
spends from a budget (steps and time), no string or list a template builds
grows past a size, padding widths and ``range()`` are bounded, and the output
stops at a cap (cut with "…"). Breaking a limit raises; the caller falls back
to the default message.
"""

from __future__ import annotations

import contextvars
import functools
import re
import string
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, cast

from jinja2 import Template, TemplateError, nodes, pass_environment, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import Environment
from jinja2.exceptions import SecurityError
from jinja2.filters import (
    do_batch,
    do_center,
    do_format,
    do_indent,
    do_replace,
    do_wordwrap,
    sync_do_join,
    sync_do_slice,
    sync_do_sum,
)
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from ..notify import escape

TEMPLATE_LIMIT = 4096  # characters of template source (checked at load)
OUTPUT_LIMIT = 4096  # characters a template renders; the rest is cut with "…"
SIZE_LIMIT = 16_384  # characters any one string or list a template builds may hold
STEP_LIMIT = 10_000  # loop iterations and calls in one rendering
TIME_LIMIT = 0.1  # seconds one rendering may take (a fine template takes well under 1 ms)
WIDTH_LIMIT = 200  # padding, indent, batch and slice sizes; format widths
RANGE_LIMIT = 1000  # items of one range()


class _Budget:
    """What one rendering may still spend; a limit passed raises SecurityError."""

    __slots__ = ("deadline", "steps")

    def __init__(self) -> None:
        self.steps = 0
        # A resource guard, not domain time: a monotonic deadline for this rendering.
        self.deadline = time.monotonic() + TIME_LIMIT

    def step(self) -> None:
        self.steps += 1
        if self.steps > STEP_LIMIT:
            raise SecurityError(f"more than {STEP_LIMIT} loop iterations or calls")
        if time.monotonic() > self.deadline:
            raise SecurityError(f"rendering took longer than {TIME_LIMIT} s")


# The rendering under way in this thread (None while compiling: nothing to spend).
_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("budget", default=None)


def _step() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.step()


def _weight(value: Any) -> int:
    """About how many characters ``value`` shows as; counting stops past the limit."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple | set | frozenset | dict):
        total = 0
        for item in value.items() if isinstance(value, dict) else value:
            total += 2 + _weight(item)
            if total > SIZE_LIMIT:
                break
        return total
    if isinstance(value, int) and value.bit_length() > 4 * SIZE_LIMIT:
        return SIZE_LIMIT + 1
    return 8


def _sized(value: Any) -> Any:
    if _weight(value) > SIZE_LIMIT:
        raise SecurityError(f"a value of more than {SIZE_LIMIT} characters")
    return value


def _width(width: Any, what: str) -> None:
    if isinstance(width, int) and abs(width) > WIDTH_LIMIT:
        raise SecurityError(f"{what} is limited to {WIDTH_LIMIT}")


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent(fmt: str) -> None:
    """printf-style widths can allocate without bound: ``%999999999d``."""
    for spec in _PERCENT_SPEC.finditer(fmt):
        for part in spec.groups():
            if part == "*" or (part and (len(part) > 3 or int(part) > WIDTH_LIMIT)):
                raise SecurityError(f"format widths are limited to {WIDTH_LIMIT}")


def _check_braces(fmt: str) -> None:
    """str.format widths likewise: ``{:>999999999}``, or a width taken from an argument."""
    for _, _, spec, _ in string.Formatter().parse(fmt):
        numbers = re.findall(r"\d+", spec or "")
        if "{" in (spec or "") or any(len(n) > 3 or int(n) > WIDTH_LIMIT for n in numbers):
            raise SecurityError(f"format widths are limited to {WIDTH_LIMIT}")


def _check_replace(s: str, old: str, new: str, count: Any) -> None:
    hits = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    if len(s) + hits * (len(new) - len(old)) > SIZE_LIMIT:
        raise SecurityError(f"a value of more than {SIZE_LIMIT} characters")


# --- bounded filters and globals (each filter's result is size-checked as well) -----------


def _center(value: Any, width: int = 80) -> str:
    _width(width, "center() width")
    return do_center(value, width)


def _indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    _width(len(width) if isinstance(width, str) else width, "indent() width")
    return do_indent(s, width, first, blank)


@pass_environment
def _wordwrap(
    environment: Environment,
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    # Output grows by one wrapstring per line, and a line is at least a character.
    if wrapstring is not None and len(str(wrapstring)) > 10:
        raise SecurityError("wordwrap() wrapstring is limited to 10 characters")
    return do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_percent(str(value))
    return do_format(value, *args, **kwargs)


@pass_eval_context
def _replace(eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    _check_replace(str(s), str(old), str(new), count)
    return str(do_replace(eval_ctx, s, old, new, count))


@pass_eval_context
def _join(
    eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: str | int | None = None
) -> str:
    items = list(value)
    if attribute is None:
        size = sum(len(str(i)) for i in items) + len(str(d)) * max(0, len(items) - 1)
        if size > SIZE_LIMIT:
            raise SecurityError(f"a value of more than {SIZE_LIMIT} characters")
    return sync_do_join(eval_ctx, items, d, attribute)


@pass_environment
def _sum(
    environment: Environment,
    iterable: Iterable[Any],
    attribute: str | int | None = None,
    start: Any = 0,
) -> Any:
    # Summing lists from [] copies them over and over; numbers only.
    if not isinstance(start, int | float):
        raise SecurityError("sum() adds numbers only")
    return sync_do_sum(environment, iterable, attribute, start)


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    _width(linecount, "batch() size")
    return do_batch(value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
    _width(slices, "slice() count")
    return sync_do_slice(value, slices, fill_with)


def _loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """What every ``{% for %}`` iterates through (see _Bounded): a step per item."""
    for item in iterable:
        _step()
        yield item


def _concat(items: list[Any]) -> str:
    """What every ``~`` is compiled to (see _Bounded): a size-checked join."""
    parts = [str(item) for item in items]
    if sum(len(p) for p in parts) > SIZE_LIMIT:
        raise SecurityError(f"a value of more than {SIZE_LIMIT} characters")
    return "".join(parts)


def _range(*args: int) -> range:
    items = range(*args)
    if len(items) > RANGE_LIMIT:
        raise SecurityError(f"range() is limited to {RANGE_LIMIT} items")
    return items


class _Namespace(Namespace):
    """``namespace()``, whose attributes (the only state a loop can carry) are bounded."""

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, _sized(value))


def _size_checked(f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)  # keeps Jinja's pass_context/pass_environment marks
    def run(*args: Any, **kwargs: Any) -> Any:
        return _sized(f(*args, **kwargs))

    return run


_LOOP, _CONCAT = "pulsehook_loop", "pulsehook_concat"
BOUNDED_FILTERS: dict[str, Callable[..., Any]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "format": _format,
    "replace": _replace,
    "join": _join,
    "sum": _sum,
    "batch": _batch,
    "slice": _slice,
}

# Methods of plain values a template may call; anything else (to_bytes, expandtabs,
# encode...) is refused. Padding, replace, join and format are checked before.
_STR_METHODS = frozenset(
    (  # noqa: SIM905 - a word list reads better than one quoted name per line
        "capitalize casefold center count endswith find format format_map index isalnum isalpha"
        " isascii isdecimal isdigit isidentifier islower isnumeric isprintable isspace istitle"
        " isupper join ljust lower lstrip partition removeprefix removesuffix replace rfind"
        " rindex rjust rpartition rsplit rstrip split splitlines startswith strip swapcase title"
        " upper zfill"
    ).split()
)
_METHODS: tuple[tuple[type, frozenset[str]], ...] = (
    (str, _STR_METHODS),
    (dict, frozenset({"get", "items", "keys", "values"})),
    (list, frozenset({"count", "index"})),
    (tuple, frozenset({"count", "index"})),
    (bool, frozenset()),
    (int, frozenset({"bit_length", "conjugate"})),
    (float, frozenset({"conjugate", "is_integer"})),
)


def _check_method(obj: Any, args: tuple[Any, ...]) -> None:
    target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", "")
    for kind, allowed in _METHODS:
        if isinstance(owner, kind):
            if name not in allowed:
                raise SecurityError(f"{kind.__name__}.{name}() is not available in templates")
            break
    if not isinstance(owner, str):
        return
    if name in ("center", "ljust", "rjust", "zfill") and args:
        _width(args[0], f"{name}() width")
    elif name in ("format", "format_map"):
        _check_braces(owner)
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, str(args[0]), str(args[1]), args[2] if len(args) > 2 else -1)


class _Bounded(NodeTransformer):
    """Rewrites a parsed template: loops iterate through ``_loop``, ``~`` is ``_concat``."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def _filter(self, node: nodes.Expr, name: str, lineno: int) -> nodes.Filter:
        call = nodes.Filter(node, name, [], [], None, None, lineno=lineno)
        call.set_environment(self.environment)
        return call

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        node.iter = self._filter(cast(nodes.Expr, node.iter), _LOOP, node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        items = nodes.List(list(node.nodes), lineno=node.lineno)
        items.set_environment(self.environment)
        return self._filter(items, _CONCAT, node.lineno)


class _Generator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        super().visit_Template(_Bounded(self.environment).visit(node), frame)


def _finalize(item: Any) -> str:
    """Every ``{{ }}`` output: size-checked, and marked as outside text for escaping."""
    return escape.value(_sized(item))


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with every way to spend time or memory bounded."""

    code_generator_class = _Generator
    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def __init__(self) -> None:
        super().__init__(autoescape=False, finalize=_finalize)
        self.filters.update(BOUNDED_FILTERS)
        self.filters = {name: _size_checked(f) for name, f in self.filters.items()}
        self.filters[_LOOP] = _loop
        self.filters[_CONCAT] = _concat
        self.globals.pop("lipsum", None)  # lipsum(10**9)
        self.globals.update(range=_range, namespace=_Namespace)

    # Macro, set-block and filter-block bodies are joined here.
    @staticmethod
    def concat(parts: Iterable[str]) -> str:
        return str(_sized("".join(parts)))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        numbers = [n for n in (left, right) if isinstance(n, int | float)]
        if operator == "*" and len(numbers) == 1:
            other = right if numbers[0] is left else left
            if abs(numbers[0]) * _weight(other) > SIZE_LIMIT:
                raise SecurityError(f"a value of more than {SIZE_LIMIT} characters")
        elif operator == "*" and all(isinstance(n, int) for n in (left, right)):
            if left.bit_length() + right.bit_length() > 4 * SIZE_LIMIT:
                raise SecurityError("a number too large for a template")
        elif operator == "**" and numbers:
            base = abs(left) if isinstance(left, int) else 2
            if abs(right) > 64 or base.bit_length() * abs(right) > 4 * SIZE_LIMIT:
                raise SecurityError("exponent too large in a template")
        elif operator == "+" and not numbers and _weight(left) + _weight(right) > SIZE_LIMIT:
            raise SecurityError(f"a value of more than {SIZE_LIMIT} characters")
        elif operator == "%" and isinstance(left, str):
            _check_percent(left)
        return _sized(super().call_binop(context, operator, left, right))

    def call(
        __self,  # the sandbox's own convention: no clash with keyword arguments
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _step()
        _check_method(__obj, args)
        return _sized(super().call(__context, __obj, *args, **kwargs))


_ENV = _Sandbox()


@functools.lru_cache(maxsize=256)
def _template(source: str) -> Template:
    if len(source) > TEMPLATE_LIMIT:
        raise SecurityError(f"template is longer than {TEMPLATE_LIMIT} characters")
    # The marks delimit outside values: the author's own text never carries one.
    return _ENV.from_string(escape.unmarked(source))


def check_template(source: str) -> str | None:
    try:
        _template(source)
    except TemplateError as exc:
        return str(exc)
    return None


def render_template(source: str, fact: dict[str, Any], kind: str) -> str:
    """The template's output as marked text, cut at OUTPUT_LIMIT; raises on any limit."""
    template = _template(source)
    # Payload strings enter bounded, so no limit trips on one long description.
    data = {k: val[:SIZE_LIMIT] if isinstance(val, str) else val for k, val in fact.items()}
    token = _BUDGET.set(_Budget())
    try:
        chunks: list[str] = []
        size = 0
        stream = cast(Generator[str, None, None], template.generate({kind: data, **data}))
        try:
            for chunk in stream:
                chunks.append(chunk)
                size += len(chunk)
                if size > OUTPUT_LIMIT:
                    return "".join(chunks)[:OUTPUT_LIMIT] + escape.CLOSE + "…"
        finally:
            stream.close()
        return "".join(chunks)
    finally:
        _BUDGET.reset(token)
