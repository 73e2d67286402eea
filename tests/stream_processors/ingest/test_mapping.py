"""Mapping files in YAML and TOML read the same; mistakes fail at start-up with one line."""

import pytest

from stream_processors.errors import ConfigError
from stream_processors.ingest.mapping import ModelMapping, load_mapping

YAML = """
strict: true
models:
  income:
    inferenceservice: income-sklearn
    version: 3
    columns: [age, hours]
    prediction: predict
    score: proba
    strict: true
"""
TOML = """
strict = true
[models.income]
inferenceservice = "income-sklearn"
version = 3
columns = ["age", "hours"]
prediction = "predict"
score = "proba"
strict = true
"""


def test_yaml_and_toml_agree(tmp_path):
    (tmp_path / "m.yaml").write_text(YAML)
    (tmp_path / "m.toml").write_text(TOML)
    a, b = load_mapping(tmp_path / "m.yaml"), load_mapping(tmp_path / "m.toml")
    assert a == b and a.strict
    expected = ModelMapping("income", "3", None, ("age", "hours"), "predict", "proba", strict=True)
    assert a.resolve("income-sklearn") == a.resolve("income") == expected
    assert a.resolve("other") is None
    assert a.allows("income") and not a.allows("income-sklearn") and not a.allows("other")
    assert not load_mapping("").strict


@pytest.mark.parametrize("text, words", [
    ("models:\n  m:\n    colums: [a]\n", "unknown keys ['colums']"),
    ("models:\n  m:\n    columns: [a, a]\n", "distinct"),
    ("strict: maybe\n", "'strict' must be true or false"),
    ("models: [1, 2]\n", "'models' must map"),
    ("models: {a: {x: 1\n", "does not parse"),
])
def test_mistakes_are_one_line_config_errors(tmp_path, text, words):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_mapping(path)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_mapping(tmp_path / "absent.yaml")
    (tmp_path / "m.json").write_text("{}")
    with pytest.raises(ConfigError, match=".toml"):
        load_mapping(tmp_path / "m.json")
