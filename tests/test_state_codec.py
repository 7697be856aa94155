"""The checkpoint state codec writes exactly the documented format (state_codec's
module docstring), whatever path a value takes through the encoder, and reads back
the same graph; malformed documents are refused, not half-read (issue 15 items 2-3).

The expected documents here are written by hand from the docstring's table, not by
the encoder: a faster encoder (issue 15 item 3: checkpoints often enough for a fast
restart) must not change a byte of what earlier checkpoints hold."""

from __future__ import annotations

import enum
import json
from collections import deque
from typing import NamedTuple

import numpy as np
import pytest

from tracklayer.services.fusion_service.state_codec import (
    StateFormatError,
    decode_state,
    encode_state,
)

HERE = (__name__,)


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Look(NamedTuple):
    t_s: float
    n: int


class Box:
    """An object node (attributes of an allowed class)."""

    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


class Slotted:
    __slots__ = ("a", "b")


def test_every_kind_of_value_is_written_as_the_docstring_says():
    shared = [1, "x"]
    arr = np.arange(6, dtype="<f8").reshape(2, 3)
    s = Slotted()
    s.a = (2, 2.5)  # s.b never set: not written
    root = {
        "plain": [None, True, 7, "s", 1.5, float("inf")],
        "tuple": (1, (2.0, "z")),
        "nt": Look(0.25, 4),
        "fs": frozenset({3, 1}),
        "set": {2, 1},
        "bytes": b"\x01\xff",
        "enum": Colour.RED,
        "intenum": Level.HIGH,
        "np": np.int32(-2),
        "dq": deque([1, 2], maxlen=3),
        "same": (shared, shared),
        "arr": arr,
        "obj": Box(v=shared, s=s),
    }
    doc, buf = encode_state(root, HERE)
    m = __name__
    expected_nodes = [
        {"k": "dict", "items": [
            ["plain", {"r": 1}],
            ["tuple", {"t": [1, {"t": [{"f": "2.0"}, "z"]}]}],
            ["nt", {"nt": f"{m}:Look", "t": [{"f": "0.25"}, 4]}],
            ["fs", {"fs": [1, 3]}],
            ["set", {"r": 2}],
            ["bytes", {"b": "01ff"}],
            ["enum", {"e": f"{m}:Colour", "v": "red"}],
            ["intenum", {"e": f"{m}:Level", "v": 3}],
            ["np", {"n": "<i4", "h": "feffffff"}],
            ["dq", {"r": 3}],
            ["same", {"t": [{"r": 4}, {"r": 4}]}],
            ["arr", {"r": 5}],
            ["obj", {"r": 6}],
        ]},
        {"k": "list", "items": [None, True, 7, "s", {"f": "1.5"}, {"f": "inf"}]},
        {"k": "set", "items": [1, 2]},
        {"k": "deque", "maxlen": 3, "items": [1, 2]},
        {"k": "list", "items": [1, "x"]},
        {"k": "array", "dtype": "<f8", "shape": [2, 3], "order": "C", "offset": 0,
         "nbytes": 48},
        {"k": "obj", "c": f"{m}:Box", "d": {"v": {"r": 4}, "s": {"r": 7}}},
        {"k": "obj", "c": f"{m}:Slotted", "d": {"a": {"t": [2, {"f": "2.5"}]}}},
    ]  # fmt: skip
    assert json.loads(doc) == {"root": {"r": 0}, "nodes": expected_nodes}
    assert doc == json.dumps(json.loads(doc), separators=(",", ":")).encode()
    assert buf == arr.tobytes()

    back = decode_state(doc, buf, HERE)
    assert back["plain"][:5] == root["plain"][:5] and back["plain"][5] == float("inf")
    assert back["nt"] == Look(0.25, 4) and type(back["nt"]) is Look
    assert back["enum"] is Colour.RED and back["intenum"] is Level.HIGH
    assert back["dq"].maxlen == 3 and list(back["dq"]) == [1, 2]
    assert back["same"][0] is back["same"][1] is back["obj"].v  # one list, three refs
    assert np.array_equal(back["arr"], arr) and back["arr"].dtype == arr.dtype
    assert back["obj"].s.a == (2, 2.5) and not hasattr(back["obj"].s, "b")
    assert back["np"] == np.int32(-2) and back["np"].dtype == np.int32
    assert (back["fs"], back["set"], back["bytes"]) == (frozenset({1, 3}), {1, 2}, b"\x01\xff")


def test_a_str_subclass_enum_and_a_foreign_instance_take_the_same_path_as_before():
    class Named(enum.StrEnum):  # a str first: written as its text (as always)
        A = "a"

    doc, _ = encode_state([Named.A], HERE)
    assert json.loads(doc)["nodes"] == [{"k": "list", "items": ["a"]}]
    with pytest.raises(StateFormatError, match="outside"):
        encode_state([Box(f=object())], HERE)
    with pytest.raises(StateFormatError, match="dtype object"):
        encode_state({"a": np.array([None])}, HERE)


@pytest.mark.parametrize(
    "value",
    [
        {"t": "abc"},  # a tuple's items must be a list (was read as ('a', 'b', 'c'))
        {"fs": {"x": 1}},
        {"nt": f"{__name__}:Look", "t": 5},
        [1, 2],  # a bare list is not a value
        1.5,  # floats are written as {"f": repr}
    ],
)
def test_a_malformed_value_is_refused(value):
    doc = json.dumps({"root": value, "nodes": []}).encode()
    with pytest.raises((StateFormatError, TypeError)):
        decode_state(doc, b"", HERE)


def test_malformed_items_of_a_node_are_refused():
    doc = b'{"root":{"r":0},"nodes":[{"k":"list","items":"abc"}]}'
    with pytest.raises(StateFormatError, match="not a list"):
        decode_state(doc, b"", HERE)


def test_the_garbage_collector_is_left_as_it_was_even_after_a_refusal():
    """Encoding and decoding pause the cyclic collector (speed); a service that runs
    for months must get it back, also when a state is refused half-way."""
    import gc

    assert gc.isenabled()
    doc, buf = encode_state({"a": [1, 2]}, HERE)
    decode_state(doc, buf, HERE)
    assert gc.isenabled()
    with pytest.raises(StateFormatError):
        encode_state({"x": [Box(f=object())]}, HERE)
    with pytest.raises(StateFormatError):
        decode_state(b'{"root":{"r":0},"nodes":[{"k":"list","items":"abc"}]}', b"", HERE)
    assert gc.isenabled()
    gc.disable()
    try:
        decode_state(doc, buf, HERE)
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()
