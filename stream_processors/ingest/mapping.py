"""The mapping file: how a model server's tensors become a Driftline model's features.

YAML or TOML (by extension: .yaml/.yml or .toml)::

    strict: true                  # a model not listed here is refused with 422
    models:
      income:                     # the model id Driftline uses
        inferenceservice: income-sklearn   # optional: the KServe InferenceService name it arrives as
        version: "3"              # default: the CloudEvent's endpoint (default/canary), else "1"
        input: input-0            # optional: the 2-D input tensor the columns name (default: the first 2-D one)
        columns: [age, hours, education]   # its columns (V2), or the positions of list instances (V1)
        prediction: predict       # output tensor (V2) or key of object predictions (V1); default: the first
        score: predict_proba      # optional: the score / class-probability output
        strict: true              # refuse (400) bodies the mapping does not name: a missing input tensor,
                                  # another multi-column tensor, list instances without columns

Every key but ``models`` and ``strict`` is refused, so a typo fails at start-up.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from stream_processors.errors import ConfigError

__all__ = ["ModelMapping", "Mapping", "load_mapping"]

_MODEL_KEYS = {"inferenceservice", "version", "input", "columns", "prediction", "score", "strict"}


@dataclass(frozen=True)
class ModelMapping:
    model: str
    version: str | None = None
    input: str | None = None
    columns: tuple[str, ...] = ()
    prediction: str | None = None
    score: str | None = None
    strict: bool = False
    """Refuse bodies whose columns this mapping does not name, rather than naming them ``<tensor>_<j>``."""


@dataclass(frozen=True)
class Mapping:
    models: dict[str, ModelMapping] = field(default_factory=dict)
    """By the name a model arrives as (its InferenceService name, or its own id)."""
    strict: bool = False

    def resolve(self, name: str) -> ModelMapping | None:
        """The mapping of a model arriving as ``name``; None for an unmapped model (allowed unless strict)."""
        return self.models.get(name)

    def allows(self, model: str) -> bool:
        """Whether events of the Driftline model id ``model`` are accepted."""
        return not self.strict or any(m.model == model for m in self.models.values())


def load_mapping(path: str | Path | None) -> Mapping:
    """Read and check a mapping file; an empty path is the empty, non-strict mapping."""
    if not path:
        return Mapping()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the mapping file {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            doc = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            raise ConfigError(f"mapping file {path}: name it .yaml, .yml or .toml")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"mapping file {path} does not parse: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # yaml.YAMLError, without importing yaml where TOML is used
        if type(exc).__module__.startswith("yaml"):
            raise ConfigError(f"mapping file {path} does not parse: {str(exc).splitlines()[0]}") from None
        raise
    return parse_mapping(doc, str(path))


def parse_mapping(doc: object, where: str = "mapping") -> Mapping:
    if doc is None:
        return Mapping()
    if not isinstance(doc, dict) or set(doc) - {"models", "strict"}:
        raise ConfigError(f"{where}: expected the keys 'models' and 'strict'")
    strict = doc.get("strict", False)
    if not isinstance(strict, bool):
        raise ConfigError(f"{where}: 'strict' must be true or false")
    models = doc.get("models") or {}
    if not isinstance(models, dict):
        raise ConfigError(f"{where}: 'models' must map model ids to their settings")
    out: dict[str, ModelMapping] = {}
    for model, entry in models.items():
        entry = entry or {}
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: model {model!r} must be a table of settings")
        unknown = set(entry) - _MODEL_KEYS
        if unknown:
            raise ConfigError(f"{where}: model {model!r} has unknown keys {sorted(unknown)}; "
                              f"known: {sorted(_MODEL_KEYS)}")
        columns = entry.get("columns", [])
        if not isinstance(columns, list) or not all(isinstance(c, str) and c for c in columns) \
                or len(set(columns)) != len(columns):
            raise ConfigError(f"{where}: model {model!r}: 'columns' must be a list of distinct names")
        for key in ("input", "prediction", "score", "inferenceservice"):
            if key in entry and not (isinstance(entry[key], str) and entry[key]):
                raise ConfigError(f"{where}: model {model!r}: {key!r} must be a non-empty string")
        if not isinstance(entry.get("strict", False), bool):
            raise ConfigError(f"{where}: model {model!r}: 'strict' must be true or false")
        version = entry.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, (str, int))):
            raise ConfigError(f"{where}: model {model!r}: 'version' must be text or an integer")
        mapped = ModelMapping(str(model), None if version is None else str(version), entry.get("input"),
                              tuple(columns), entry.get("prediction"), entry.get("score"), entry.get("strict", False))
        for name in {str(model), entry.get("inferenceservice", str(model))}:
            if name in out:
                raise ConfigError(f"{where}: {name!r} names two models")
            out[name] = mapped
    return Mapping(out, strict)
