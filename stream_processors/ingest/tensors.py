"""Inference request and response bodies -> one row per instance. Pure functions.

Two body formats are read:

- **Open Inference Protocol (V2)**: ``{"inputs": [{"name", "shape", "datatype", "data"}]}`` and
  ``{"outputs": [...]}``. ``data`` is row-major (flat or nested); row ``i`` of a tensor of shape
  ``[n, k]`` is ``data[i*k:(i+1)*k]``. A tensor of shape ``[n]`` or ``[n, 1]`` is one feature named by the
  tensor (the layout of MLServer's pandas codec); the columns of a wider tensor are named by the mapping's
  ``columns``, else ``<tensor>_<j>``. ``BYTES`` values are text (categorical), ``BOOL`` booleans.
  A shape has at most ``MAX_DIMENSIONS`` dimensions, none of them 0, and ``data`` is nested at most that
  deep: anything else is refused (400) before any arithmetic on the shape.
- **KServe V1**: ``{"instances": [...]}`` and ``{"predictions": [...]}``. An instance is an object
  (features by name), a list (named by the mapping's ``columns``, else ``x0``, ``x1``, ...) or a scalar.

A prediction that is a vector of class probabilities becomes ``prediction`` = the index of the largest
and ``score`` = ``{"<index>": probability}``; the mapping can name a separate score output.
"""

from __future__ import annotations

from stream_processors.ingest.errors import Rejected
from stream_processors.ingest.mapping import ModelMapping

__all__ = ["request_rows", "response_rows", "MAX_DIMENSIONS"]

MAX_DIMENSIONS = 8
"""Dimensions of a V2 tensor's shape, and levels of nesting of its ``data``: more is refused."""

_NUMBER_TYPES = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
DATATYPES = _NUMBER_TYPES | {"BOOL", "BYTES"}
_NO_MAPPING = ModelMapping(model="")


def request_rows(body: object, mapping: ModelMapping | None, max_rows: int) -> list[dict]:
    """The features of each row of an inference request (V1 or V2)."""
    mapping = mapping or _NO_MAPPING
    if isinstance(body, dict) and "instances" in body:
        return _v1_instances(body["instances"], mapping, max_rows)
    if isinstance(body, dict) and isinstance(body.get("inputs"), list):
        return _v2_inputs(body["inputs"], mapping, max_rows)
    raise Rejected("bad_body", "request body has neither 'instances' (KServe V1) nor 'inputs' "
                               "(Open Inference Protocol V2)")


def response_rows(body: object, mapping: ModelMapping | None, max_rows: int) -> list[tuple[object, object]]:
    """``(prediction, score)`` of each row of an inference response (V1 or V2); score may be None."""
    mapping = mapping or _NO_MAPPING
    if isinstance(body, dict) and "predictions" in body:
        return _v1_predictions(body["predictions"], mapping, max_rows)
    if isinstance(body, dict) and isinstance(body.get("outputs"), list):
        return _v2_outputs(body["outputs"], mapping, max_rows)
    raise Rejected("bad_body", "response body has neither 'predictions' (KServe V1) nor 'outputs' "
                               "(Open Inference Protocol V2)")


def _check_rows(n: int, max_rows: int) -> None:
    if n > max_rows:
        raise Rejected("too_many_rows", f"{n} rows in one request; the limit is {max_rows}")


def _v1_instances(instances: object, mapping: ModelMapping, max_rows: int) -> list[dict]:
    if not isinstance(instances, list):
        raise Rejected("bad_body", "'instances' must be a list")
    _check_rows(len(instances), max_rows)
    rows = []
    for i, inst in enumerate(instances):
        if isinstance(inst, dict):
            rows.append(inst)
        elif isinstance(inst, list):
            if mapping.strict and not mapping.columns:
                raise Rejected("bad_body", f"instance {i} is a list and the strict mapping names no columns")
            rows.append(_named(inst, mapping.columns, "x", f"instance {i}"))
        else:
            rows.append({mapping.columns[0] if mapping.columns else "x0": inst})
    return rows


def _named(values: list, columns: tuple[str, ...], prefix: str, what: str) -> dict:
    if columns:
        if len(columns) != len(values):
            raise Rejected("bad_body", f"{what} has {len(values)} values but the mapping names "
                                       f"{len(columns)} columns")
        return dict(zip(columns, values))
    return {f"{prefix}{j}": v for j, v in enumerate(values)}


def _v1_predictions(predictions: object, mapping: ModelMapping, max_rows: int) -> list[tuple[object, object]]:
    if not isinstance(predictions, list):
        raise Rejected("bad_body", "'predictions' must be a list")
    _check_rows(len(predictions), max_rows)
    out = []
    for i, p in enumerate(predictions):
        if isinstance(p, dict):
            key = mapping.prediction or "prediction"
            if key not in p:
                raise Rejected("bad_body", f"prediction {i} is an object without the key {key!r} "
                                           "(name it with 'prediction' in the mapping file)")
            out.append((p[key], p.get(mapping.score or "score")))
        elif isinstance(p, list):
            out.append(_class_vector(p, f"prediction {i}"))
        else:
            out.append((p, None))
    return out


def _class_vector(values: list, what: str) -> tuple[object, dict]:
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise Rejected("bad_body", f"{what} is a list, expected class probabilities (numbers)")
    best = max(range(len(values)), key=values.__getitem__)
    return best, {str(j): v for j, v in enumerate(values)}


def _flatten(data: object, name: str) -> list:
    """``data`` row-major and flat; iterative, so nesting costs no stack, and refused past MAX_DIMENSIONS."""
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(d, list) for d in data):
        return data
    out: list = []
    stack = [iter(data)]
    while stack:
        for d in stack[-1]:
            if isinstance(d, list):
                if len(stack) >= MAX_DIMENSIONS:
                    raise Rejected("bad_body", f"tensor {name!r}: 'data' is nested more than {MAX_DIMENSIONS} deep")
                stack.append(iter(d))
                break
            out.append(d)
        else:
            stack.pop()
    return out


def _values_fit(shape: list[int], count: int) -> bool:
    """Whether the values of ``shape`` number exactly ``count``; the product stops once it passes ``count``."""
    product = 1
    for d in shape:
        product *= d
        if product > count:
            return False
    return product == count


def _tensor(t: object, max_rows: int) -> tuple[str, list, int]:
    """(name, row-major values, values per row) of one V2 tensor, its values checked against its datatype."""
    if not isinstance(t, dict):
        raise Rejected("bad_body", "a tensor must be an object with name, shape, datatype and data")
    name, shape, datatype = t.get("name"), t.get("shape"), t.get("datatype")
    if not isinstance(name, str) or not name:
        raise Rejected("bad_body", "a tensor has no 'name'")
    if not isinstance(shape, list) or len(shape) > MAX_DIMENSIONS or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise Rejected("bad_body", f"tensor {name!r}: 'shape' must be a list of at most {MAX_DIMENSIONS} positive "
                                   "integers")
    if datatype not in DATATYPES:
        raise Rejected("bad_body", f"tensor {name!r}: datatype {datatype!r} is not one of {sorted(DATATYPES)}")
    if "data" not in t:
        raise Rejected("bad_body", f"tensor {name!r} has no 'data'")
    n = shape[0] if shape else 1
    _check_rows(n, max_rows)
    data = _flatten(t["data"], name)
    if not _values_fit(shape, len(data)):
        raise Rejected("bad_body", f"tensor {name!r}: shape {shape} does not hold the {len(data)} values of data")
    width = len(data) // n
    _check_values(name, datatype, data)
    return name, data, width


def _check_values(name: str, datatype: str, data: list) -> None:
    if datatype == "BOOL":
        ok = all(isinstance(v, bool) or v in (0, 1) for v in data)
    elif datatype == "BYTES":
        ok = all(isinstance(v, str) for v in data)
    elif datatype.startswith(("INT", "UINT")):
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in data)
    else:
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data)
    if not ok:
        raise Rejected("bad_body", f"tensor {name!r}: data does not match datatype {datatype}")
    if datatype == "BOOL":
        data[:] = [bool(v) for v in data]


def _rows_of(data: list, width: int) -> list:
    return data if width == 1 else [data[i:i + width] for i in range(0, len(data), width)]


def _v2_inputs(inputs: list, mapping: ModelMapping, max_rows: int) -> list[dict]:
    tensors = [_tensor(t, max_rows) for t in inputs]
    if not tensors:
        raise Rejected("bad_body", "'inputs' is empty")
    counts = {name: len(data) // width for name, data, width in tensors}
    if len(set(counts.values())) > 1:
        raise Rejected("bad_body", f"input tensors disagree on the number of rows: {counts}")
    n = next(iter(counts.values()))
    wide = mapping.input or next((name for name, _, width in tensors if width > 1), None)
    if mapping.strict:
        if mapping.input and mapping.input not in counts:
            raise Rejected("bad_body", f"the request has no input tensor {mapping.input!r} "
                                       f"(inputs: {sorted(counts)}), which the strict mapping names")
        unnamed = sorted(name for name, _, width in tensors if width > 1 and (name != wide or not mapping.columns))
        if unnamed:
            raise Rejected("bad_body", f"input tensor(s) {unnamed} have several columns the strict mapping "
                                       "does not name")
    rows: list[dict] = [{} for _ in range(n)]
    for name, data, width in tensors:
        if width == 1:
            for row, value in zip(rows, data):
                row[name] = value
            continue
        columns = mapping.columns if name == wide else ()
        for i, values in enumerate(_rows_of(data, width)):
            rows[i].update(_named(values, columns, f"{name}_", f"row {i} of tensor {name!r}"))
    return rows


def _v2_outputs(outputs: list, mapping: ModelMapping, max_rows: int) -> list[tuple[object, object]]:
    tensors = {name: (data, width) for name, data, width in (_tensor(t, max_rows) for t in outputs)}
    if not tensors:
        raise Rejected("bad_body", "'outputs' is empty")
    pred_name = mapping.prediction or next(iter(tensors))
    if pred_name not in tensors:
        raise Rejected("bad_body", f"the response has no output tensor {pred_name!r} (outputs: {sorted(tensors)})")
    data, width = tensors[pred_name]
    if width == 1:
        out = [(p, None) for p in data]
    else:
        out = [_class_vector(row, f"row {i} of {pred_name!r}") for i, row in enumerate(_rows_of(data, width))]
    if mapping.score:
        if mapping.score not in tensors:
            raise Rejected("bad_body", f"the response has no output tensor {mapping.score!r} for the score")
        sdata, swidth = tensors[mapping.score]
        scores = sdata if swidth == 1 else [{str(j): v for j, v in enumerate(row)} for row in _rows_of(sdata, swidth)]
        if len(scores) != len(out):
            raise Rejected("bad_body", f"outputs {pred_name!r} and {mapping.score!r} disagree on the number of rows")
        out = [(p, s) for (p, _), s in zip(out, scores)]
    return out
