"""KServe V1 and Open Inference Protocol bodies become rows, value by value."""

import numpy as np
import pytest

from stream_processors.ingest.errors import Rejected
from stream_processors.ingest.mapping import ModelMapping
from stream_processors.ingest.tensors import request_rows, response_rows


def v2(name, values, datatype="FP64"):
    arr = np.asarray(values)
    return {"name": name, "shape": list(arr.shape), "datatype": datatype, "data": arr.ravel().tolist()}


def test_v2_columns_of_a_2d_tensor_are_read_row_major():
    x = np.arange(12, dtype=float).reshape(4, 3) / 7
    mapping = ModelMapping("m", columns=("a", "b", "c"))
    rows = request_rows({"inputs": [v2("input-0", x)]}, mapping, 100)
    assert [[r["a"], r["b"], r["c"]] for r in rows] == x.tolist()
    unmapped = request_rows({"inputs": [v2("input-0", x)]}, None, 100)
    assert [unmapped[i][f"input-0_{j}"] for i in range(4) for j in range(3)] == x.ravel().tolist()


def test_v2_pandas_codec_layout_bytes_and_bool():
    body = {"inputs": [v2("age", [[31], [45]], "INT64"),
                       {"name": "city", "shape": [2], "datatype": "BYTES", "data": ["Lyon", "Oslo"]},
                       {"name": "member", "shape": [2, 1], "datatype": "BOOL", "data": [[True], [False]]}]}
    assert request_rows(body, None, 10) == [{"age": 31, "city": "Lyon", "member": True},
                                            {"age": 45, "city": "Oslo", "member": False}]


def test_v2_outputs_prediction_and_score_tensors():
    proba = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]])
    body = {"outputs": [v2("predict", proba.argmax(1), "INT64"), v2("proba", proba)]}
    rows = response_rows(body, ModelMapping("m", prediction="predict", score="proba"), 10)
    assert [p for p, _ in rows] == proba.argmax(1).tolist()
    assert [[s["0"], s["1"]] for _, s in rows] == proba.tolist()
    # without a mapping a probability tensor is the prediction: argmax and the vector as score
    rows = response_rows({"outputs": [v2("proba", proba)]}, None, 10)
    assert [p for p, _ in rows] == proba.argmax(1).tolist() and rows[0][1] == {"0": 0.2, "1": 0.8}


def test_v1_instances_and_predictions():
    mapping = ModelMapping("m", columns=("a", "b"))
    assert request_rows({"instances": [[1, 2], [3, 4]]}, mapping, 10) == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]
    assert request_rows({"instances": [{"a": 1}, [5, 6]]}, None, 10) == [{"a": 1}, {"x0": 5, "x1": 6}]
    assert response_rows({"predictions": [1, "cat"]}, None, 10) == [(1, None), ("cat", None)]
    assert response_rows({"predictions": [{"label": 1, "p": 0.7}]}, ModelMapping("m", prediction="label", score="p"),
                         10) == [(1, 0.7)]
    assert response_rows({"predictions": [[0.1, 0.7, 0.2]]}, None, 10) == [(1, {"0": 0.1, "1": 0.7, "2": 0.2})]


@pytest.mark.parametrize("body, reason, words", [
    ({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}]}, "bad_body",
     "[2, 2] does not hold the 3 values"),
    ({"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1.5]}]}, "bad_body", "INT64"),
    ({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": [3]}]}, "bad_body", "BYTES"),
    ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP128", "data": [3]}]}, "bad_body", "FP128"),
    ({"inputs": [v2("a", [1, 2]), v2("b", [1, 2, 3])]}, "bad_body", "disagree"),
    ({"instances": [[1, 2, 3]]}, "bad_body", "3 values"),
    ({"foo": 1}, "bad_body", "instances"),
    ({"instances": list(range(11))}, "too_many_rows", "11 rows"),
])
def test_bad_request_bodies_name_the_problem(body, reason, words):
    with pytest.raises(Rejected) as exc:
        request_rows(body, ModelMapping("m", columns=("a", "b")) if "instances" in body else None, 10)
    assert exc.value.reason == reason and words in exc.value.message


def test_bad_response_bodies_name_the_problem():
    with pytest.raises(Rejected, match="no output tensor 'nope'"):
        response_rows({"outputs": [v2("p", [1.0])]}, ModelMapping("m", prediction="nope"), 10)
    with pytest.raises(Rejected, match="without the key 'prediction'"):
        response_rows({"predictions": [{"x": 1}]}, None, 10)


def test_a_strict_model_mapping_refuses_what_it_does_not_name():
    strict = ModelMapping("m", input="input-0", columns=("a", "b"), strict=True)
    body = {"inputs": [v2("input-0", [[1, 2]]), v2("city", [["x"]], "BYTES")]}
    assert request_rows(body, strict, 10) == [{"a": 1, "b": 2, "city": "x"}]
    with pytest.raises(Rejected, match="no input tensor 'input-0'"):
        request_rows({"inputs": [v2("other", [1.0])]}, strict, 10)
    with pytest.raises(Rejected, match=r"\['extra'\] have several columns"):
        request_rows({"inputs": [v2("input-0", [[1, 2]]), v2("extra", [[1, 2]])]}, strict, 10)
    with pytest.raises(Rejected, match="strict mapping names no columns"):
        request_rows({"instances": [[1, 2]]}, ModelMapping("m", strict=True), 10)
    # the same bodies without strict: the columns are named after their tensor
    assert request_rows({"inputs": [v2("input-0", [[1, 2]]), v2("extra", [[3, 4]])]},
                        ModelMapping("m", input="input-0", columns=("a", "b")), 10) == [
        {"a": 1, "b": 2, "extra_0": 3, "extra_1": 4}]


def test_hostile_shapes_are_refused_at_once_without_printing_the_product():
    import time

    t0 = time.perf_counter()
    for k in (9, 250, 50_000):  # 9 dimensions is one too many; 50,000 once stalled the event loop for 9.6 s
        tensor = {"name": "t", "shape": [1] + [10**18] * k, "datatype": "FP32", "data": [1.0]}
        with pytest.raises(Rejected, match="at most 8 positive") as exc:
            request_rows({"inputs": [tensor]}, None, 10)
        assert exc.value.status == 400 and len(exc.value.message) < 200
    assert time.perf_counter() - t0 < 1.0
    # eight huge dimensions are allowed, and the product stops growing once it passes len(data)
    tensor = {"name": "t", "shape": [1] + [10**18] * 7, "datatype": "FP32", "data": [1.0]}
    with pytest.raises(Rejected, match=r"does not hold the 1 values") as exc:
        request_rows({"inputs": [tensor]}, None, 10)
    assert str(10**36) not in exc.value.message


def test_a_zero_dimension_is_refused():
    for shape in ([2, 0], [0], [1, 0, 3]):
        with pytest.raises(Rejected, match="positive") as exc:
            request_rows({"inputs": [{"name": "t", "shape": shape, "datatype": "FP32", "data": []}]}, None, 10)
        assert exc.value.status == 400


def test_data_nested_too_deep_is_refused_without_recursion():
    deep: object = [1.0]
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(Rejected, match="nested more than 8 deep") as exc:
        request_rows({"inputs": [{"name": "t", "shape": [1], "datatype": "FP32", "data": deep}]}, None, 10)
    assert exc.value.status == 400
    # nesting as deep as the shape is read row-major
    x = np.arange(2 * 2 * 2 * 2, dtype=float).reshape(2, 2, 2, 2)
    rows = request_rows({"inputs": [{"name": "t", "shape": [2, 2, 2, 2], "datatype": "FP64",
                                     "data": x.tolist()}]}, None, 10)
    assert [[r[f"t_{j}"] for j in range(8)] for r in rows] == x.reshape(2, 8).tolist()
