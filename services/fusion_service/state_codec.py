"""Checkpoint state as data: an object graph written as JSON plus one array buffer.

Checkpoints used to be pickles, so whoever could write the state directory could run
code in the service (issue 15). This codec writes the same object graph (the fusion
core and what the engine keeps beside it) as data that loading cannot turn into code:

* a JSON document of *nodes* (every mutable value once, so shared references and
  cycles survive) and inline values, and
* one binary buffer holding every numpy array's bytes (numeric and bool dtypes only,
  never ``object``), cut by (dtype, shape, offset, length) entries in the JSON.

Encoded values (``v`` below is any encoded value):

==================  ==================================================================
JSON scalar         None, bool, int, str; a float is ``{"f": repr}`` (exact, also
                    ``inf``/``nan``)
``{"r": i}``        node ``i`` (list, dict, set, deque, array, object)
``{"t": [v...]}``   a tuple; ``{"nt": class, "t": [...]}`` a NamedTuple
``{"fs": [v...]}``  a frozenset; ``{"b": hex}`` bytes
``{"e": class, "v": value}``    an enum member
``{"n": dtype, "h": hex}``      a numpy scalar (its exact bytes)
==================  ==================================================================

Nodes: ``{"k": "list" | "set" | "deque", "items": [...], "maxlen": n}``,
``{"k": "dict", "items": [[key, value], ...]}``, ``{"k": "array", "dtype", "shape",
"order", "offset", "nbytes"}``, ``{"k": "obj", "c": class, "d": {attribute: v}}``.

Loading resolves a class name only inside the allowed modules (``tracklayer.fusion``
and the configured tracker's module), creates objects with ``object.__new__`` and sets
their attributes directly: no constructor, ``__setstate__``, ``__reduce__`` or any
other function named by the file runs. Anything else is a :class:`StateFormatError`.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import importlib
import json
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

#: Array dtype kinds a checkpoint may hold: bool, signed/unsigned int, float, complex.
_ARRAY_KINDS = frozenset("biufc")


class StateFormatError(ValueError):
    """A value cannot be written as checkpoint data, or a checkpoint's data is not valid."""


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _attributes(obj: object) -> dict[str, Any]:
    """Instance attributes of ``obj``: its ``__dict__`` and every ``__slots__`` set."""
    out = dict(getattr(obj, "__dict__", {}))
    for klass in type(obj).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if name in ("__dict__", "__weakref__") or name in out:
                continue
            try:
                out[name] = object.__getattribute__(obj, name)
            except AttributeError:
                continue  # a slot never set stays unset
    return out


class _Encoder:
    """Walks an object graph once; ``nodes`` and ``buffer`` are the result."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = allowed
        self.nodes: list[dict[str, Any]] = []
        self.memo: dict[int, int] = {}
        self.keep: list[object] = []  # keeps ids stable while walking
        self.buffer = bytearray()
        self.names: dict[type, str] = {}  # allowed classes seen, by class

    def check_class(self, cls: type) -> str:
        name = self.names.get(cls)
        if name is None:
            name = _class_name(cls)
            if not _module_allowed(cls.__module__, self.allowed):
                raise StateFormatError(f"checkpoint: class {name} is outside {self.allowed}")
            self.names[cls] = name
        return name

    def value(self, x: Any) -> Any:
        """The encoded form of ``x`` (see the module docstring). The types a fusion state
        is made of go through a table keyed by the exact type (a checkpoint of the soak's
        state encodes some 35,000 values: the chain of checks below cost half the encode);
        anything else takes :meth:`other`, which decides exactly as the table does."""
        kind = type(x)
        if kind in _PLAIN:
            return x
        fast = _FAST.get(kind)
        return fast(self, x) if fast is not None else self.other(x)

    def items(self, xs: Iterable[Any]) -> list[Any]:
        """Encoded values of ``xs`` in order (plain values without a call)."""
        value = self.value
        return [x if type(x) in _PLAIN else value(x) for x in xs]

    def other(self, x: Any) -> Any:  # noqa: PLR0911 - one branch per kind
        if x is None or isinstance(x, bool | str) or type(x) is int:
            return x
        if isinstance(x, enum.Enum):
            return {"e": self.check_class(type(x)), "v": self.value(x.value)}
        if type(x) is float:
            return {"f": repr(x)}
        if isinstance(x, np.generic):
            if x.dtype.kind not in _ARRAY_KINDS:
                raise StateFormatError(f"checkpoint: numpy scalar of dtype {x.dtype}")
            return {"n": x.dtype.str, "h": x.tobytes().hex()}
        if type(x) is tuple:
            return {"t": self.items(x)}
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            return {"nt": self.check_class(type(x)), "t": self.items(x)}
        if type(x) is frozenset:
            return {"fs": sorted(self.items(x), key=_sort_key)}
        if type(x) is bytes:
            return {"b": x.hex()}
        return {"r": self.node(x)}

    def ref(self, x: Any) -> dict[str, int]:
        i = self.memo.get(id(x))
        return {"r": self.node(x) if i is None else i}

    def node(self, x: Any) -> int:
        i = self.memo.get(id(x))
        if i is not None:
            return i
        i = self.memo[id(x)] = len(self.nodes)
        self.keep.append(x)
        entry: dict[str, Any] = {}
        self.nodes.append(entry)
        kind = type(x)
        if kind is list or kind is deque:
            entry["k"] = "list" if kind is list else "deque"
            if kind is deque:
                entry["maxlen"] = x.maxlen
            entry["items"] = self.items(x)
        elif kind is set:
            entry.update(k="set", items=sorted(self.items(x), key=_sort_key))
        elif kind is dict:
            value = self.value
            entry.update(
                k="dict",
                items=[
                    [k if type(k) in _PLAIN else value(k), v if type(v) in _PLAIN else value(v)]
                    for k, v in x.items()
                ],
            )
        elif kind is np.ndarray:
            entry.update(self.array(x))
        else:  # an instance of an allowed class; anything else (functions...) is refused
            name = self.check_class(kind)
            attrs = _attributes(x)
            entry.update(k="obj", c=name, d={k: self.value(v) for k, v in attrs.items()})
        return i

    def array(self, a: np.ndarray) -> dict[str, Any]:
        if a.dtype.kind not in _ARRAY_KINDS or a.dtype.fields is not None:
            raise StateFormatError(f"checkpoint: array of dtype {a.dtype}")
        order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
        raw = a.tobytes(order=order)
        offset = len(self.buffer)
        self.buffer += raw
        return {
            "k": "array",
            "dtype": a.dtype.str,
            "shape": list(a.shape),
            "order": order,
            "offset": offset,
            "nbytes": len(raw),
        }


#: Types encoded as themselves (exact types: a subclass takes the general path).
_PLAIN = frozenset({int, str, bool, type(None)})

#: Encoders by exact type for what a fusion state holds most; each gives what
#: :meth:`_Encoder.other` gives for that type.
_FAST: dict[type, Any] = {
    float: lambda enc, x: {"f": repr(x)},
    tuple: lambda enc, x: {"t": enc.items(x)},
    np.ndarray: _Encoder.ref,
    list: _Encoder.ref,
    dict: _Encoder.ref,
    deque: _Encoder.ref,
    set: _Encoder.ref,
}


def _sort_key(v: Any) -> str:
    """Set members in a stable order (the JSON of each), so equal states encode equally."""
    return json.dumps(v, sort_keys=True)


def _module_allowed(module: str, allowed: Iterable[str]) -> bool:
    return any(module == m or module.startswith(m + ".") for m in allowed)


@contextlib.contextmanager
def _without_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: encoding or decoding a state allocates tens
    of thousands of containers, which set off collections that walk the whole heap
    (the service's, tracker and all) again and again: in a salvo state's decode they
    took more than half the time. Nothing made meanwhile needs them (no cycles are
    left behind that reference counting does not free)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def encode_state(root: Any, allowed: tuple[str, ...]) -> tuple[bytes, bytes]:
    """(JSON document, array buffer) for the graph under ``root``; classes must live
    in ``allowed`` modules. Raises :class:`StateFormatError` for anything else."""
    enc = _Encoder(allowed)
    with _without_gc():
        top = enc.value(root)
        doc = json.dumps({"root": top, "nodes": enc.nodes}, separators=(",", ":"))
    return doc.encode(), bytes(enc.buffer)


class _Decoder:
    """Rebuilds a graph from :func:`encode_state`'s output (two passes: shells, fill)."""

    def __init__(self, nodes: list[dict[str, Any]], buffer: bytes, allowed: tuple[str, ...]):
        self.nodes, self.buffer, self.allowed = nodes, memoryview(buffer), allowed
        self.classes: dict[str, type] = {}  # names resolved so far
        self.built: list[Any] = [self.shell(n) for n in nodes]

    def cls(self, name: Any) -> type:
        if isinstance(name, str) and name in self.classes:
            return self.classes[name]
        self.classes[name] = found = self.find_class(name)
        return found

    def find_class(self, name: Any) -> type:
        if not isinstance(name, str) or ":" not in name:
            raise StateFormatError(f"class name {name!r:.80} is malformed")
        module, qualname = name.split(":", 1)
        if not _module_allowed(module, self.allowed):
            raise StateFormatError(f"class {name:.120} is outside {self.allowed}")
        try:
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise StateFormatError(f"class {name:.120} does not exist ({exc})") from None
        if not isinstance(obj, type):
            raise StateFormatError(f"{name:.120} is not a class")
        return obj

    def shell(self, node: Any) -> Any:
        kind = node.get("k") if isinstance(node, dict) else None
        if kind == "list":
            return []
        if kind == "deque":
            return deque(maxlen=node.get("maxlen"))
        if kind == "set":
            return set()
        if kind == "dict":
            return {}
        if kind == "array":
            return self.array(node)
        if kind == "obj":
            cls = self.cls(node.get("c"))
            if issubclass(cls, tuple | enum.Enum):
                raise StateFormatError(f"class {node.get('c')} cannot be a node")
            return object.__new__(cls)
        raise StateFormatError(f"node kind {kind!r:.40} is unknown")

    def array(self, node: dict[str, Any]) -> np.ndarray:
        dtype = np.dtype(str(node["dtype"]))
        if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None:
            raise StateFormatError(f"array dtype {dtype} is not allowed")
        off, n = int(node["offset"]), int(node["nbytes"])
        if off < 0 or n < 0 or off + n > len(self.buffer):
            raise StateFormatError("array outside the array buffer")
        shape = tuple(int(s) for s in node["shape"])
        flat = np.frombuffer(self.buffer[off : off + n], dtype=dtype)
        order = "F" if node.get("order") == "F" else "C"
        return flat.reshape(shape, order=order).copy(order=order)

    def fill(self) -> None:
        """Fill every shell, children first (a node is numbered before what it holds),
        so a set member or dict key is complete before it is hashed."""
        for node, obj in zip(reversed(self.nodes), reversed(self.built), strict=True):
            kind = node["k"]
            if kind in ("list", "deque"):
                obj.extend(self.items(node["items"]))
            elif kind == "set":
                obj.update(self.items(node["items"]))
            elif kind == "dict":
                for k, v in node["items"]:
                    obj[self.value(k)] = self.value(v)
            elif kind == "obj":
                for name, v in node["d"].items():
                    object.__setattr__(obj, str(name), self.value(v))

    def items(self, vs: Any) -> list[Any]:
        """Decoded values of the list ``vs`` (plain JSON values without a call)."""
        if not isinstance(vs, list):
            raise StateFormatError(f"items {vs!r:.60} are not a list")
        value = self.value
        return [v if type(v) in _PLAIN else value(v) for v in vs]

    def value(self, v: Any) -> Any:  # noqa: PLR0911 - one branch per kind
        if type(v) in _PLAIN:
            return v
        if not isinstance(v, dict):
            raise StateFormatError(f"value {v!r:.60} is malformed")
        if "r" in v:
            return self.built[int(v["r"])]
        if "f" in v:
            return float(v["f"])
        if "nt" in v:
            return tuple.__new__(self.cls(v["nt"]), self.items(v["t"]))
        if "t" in v:
            return tuple(self.items(v["t"]))
        if "fs" in v:
            return frozenset(self.items(v["fs"]))
        if "e" in v:
            cls = self.cls(v["e"])
            if not issubclass(cls, enum.Enum):
                raise StateFormatError(f"{v['e']:.120} is not an enum")
            return cls(self.value(v["v"]))
        if "n" in v:
            dtype = np.dtype(str(v["n"]))
            if dtype.kind not in _ARRAY_KINDS:
                raise StateFormatError(f"numpy scalar dtype {dtype} is not allowed")
            return np.frombuffer(bytes.fromhex(v["h"]), dtype=dtype)[0]
        if "b" in v:
            return bytes.fromhex(v["b"])
        raise StateFormatError(f"value {str(v)[:60]} is malformed")


def decode_state(doc: bytes, buffer: bytes, allowed: tuple[str, ...]) -> Any:
    """The graph :func:`encode_state` wrote; raises :class:`StateFormatError` (or a
    ``ValueError``/``KeyError``/``TypeError`` for malformed data) instead of running code."""
    with _without_gc():
        data = json.loads(doc)
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
            raise StateFormatError("not a checkpoint document (no node list)")
        dec = _Decoder(data["nodes"], buffer, allowed)
        dec.fill()
        return dec.value(data["root"])
