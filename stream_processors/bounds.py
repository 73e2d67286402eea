"""Bounds on what a producer can create: checked on each message's events, then on the batch's new versions.

Each bound has a setting (``Settings``), a reason code (``producers.events.BOUND_CODES``) and a count in
``driftline_bounds_hit_total{bound}``. Past a bound, events are dead-lettered and the rest is applied:

- ``model_mismatch``: an event names another model than its message's key (without a key, the message's
  first event's model stands for it). Keys keep a model on one partition, hence one worker: an event of
  another model would be a second writer of that model's state.
- ``wrong_partition``: the message arrived on another partition than its model's (``partition_for(model,
  P)``, the murmur2 partitioner every Driftline producer uses): a producer that did not key by model name,
  or used another partitioner. A model's state lives with its partition's (``state.keys``); applying the
  event here would split it across two partitions, so the event is dead-lettered, to be sent again keyed.
- ``too_many_features`` / ``name_too_long``: an event with more features than ``max_features``, a feature
  name longer than ``max_name_length``, or a text value (category, prediction, score class, label) longer
  than ``max_category_length``.
- ``too_many_classes``: a score object of more than ``MAX_SCORE_CLASSES`` classes (the performance window
  keeps each event's score until its label comes).
- ``reserved_name``: a feature named as a column Driftline keeps beside the features (``__prediction__``,
  ``__score__``, ``__error__``): it would replace the prediction's or score's statistics.
- ``too_many_versions`` / ``too_many_models``: a version without saved state, of a model that already has
  ``max_versions_per_model`` versions, or of a new model when ``max_models`` models have state.
  ``too_many_events`` and ``name_too_long`` of ids are decided while decoding (``producers.events``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import chain, repeat
from operator import itemgetter

from detectors.model.columns import PREDICTION, SCORE
from detectors.model.performance_tracker import ERROR
from producers.events import COLUMN_CHECKS_FROM, Rejection

MAX_SCORE_CLASSES = 1000
"""Classes of a score object (class probabilities), as many as the categories a feature keeps."""
RESERVED_FEATURES = frozenset({PREDICTION, SCORE, ERROR})

__all__ = ["MAX_SCORE_CLASSES", "RESERVED_FEATURES", "EventBounds", "ModelCatalog", "message_owner"]


def message_owner(key: bytes | str | None, events: list[dict]) -> str | None:
    """The model a message belongs to: its key, or, for a message without one, its first event's model."""
    if key is None or key == b"" or key == "":
        return events[0]["model"] if events else None
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    return str(key)


class EventBounds:
    """The per-event bounds, checked on decoded events at a few C-speed passes per event."""

    def __init__(self, max_features: int, max_name_length: int, max_category_length: int,
                 partition_of: Callable[[str], int] | None = None) -> None:
        """``partition_of``: the partition of a model's messages, when the worker knows the partition count."""
        self.max_features = max_features
        self.max_name_length = max_name_length
        self.max_category_length = max_category_length
        self.partition_of = partition_of
        self._partitions: dict[str, int] = {}  # murmur2 in Python costs microseconds: once per model

    def problem(self, event: dict, owner: str | None, partition: int | None = None) -> tuple[str, str] | None:
        """(reason code, reason) when ``event`` (of a message that arrived on ``partition``) is past a bound,
        else None."""
        if owner is not None and event["model"] != owner:
            return "model_mismatch", f"the event's model is not the message key's ({owner[:256]!r}); a message " \
                                     "holds events of its key's model only"
        if partition is not None and self.partition_of is not None:
            expected = self._partition(event["model"])
            if expected != partition:
                return "wrong_partition", f"the event's model belongs to partition {expected}, the message arrived " \
                                          f"on partition {partition}: key messages by model name and use Kafka's " \
                                          "murmur2 partitioner (as the Driftline SDK does)"
        features = event.get("features")
        if features is None:  # a label
            label = event["label"]
            if type(label) is str and len(label) > self.max_category_length:
                return "name_too_long", f"the label is longer than {self.max_category_length} characters"
            return None
        if len(features) > self.max_features:
            return "too_many_features", f"{len(features)} features; at most {self.max_features} per event"
        if features and max(map(len, features)) > self.max_name_length:
            return "name_too_long", f"a feature name is longer than {self.max_name_length} characters"
        if not RESERVED_FEATURES.isdisjoint(features):
            return "reserved_name", f"feature names {sorted(RESERVED_FEATURES)} are Driftline's own columns " \
                                    "(prediction, score, error); rename the feature"
        texts = [v for v in features.values() if type(v) is str]
        prediction, score = event["prediction"], event["score"]
        if type(prediction) is str:
            texts.append(prediction)
        if isinstance(score, dict):
            if len(score) > MAX_SCORE_CLASSES:
                return "too_many_classes", f"the score has {len(score)} classes; at most {MAX_SCORE_CLASSES}"
            texts.extend(score)
        if texts and max(map(len, texts)) > self.max_category_length:
            return "name_too_long", f"a text value (category, prediction or score class) is longer than " \
                                    f"{self.max_category_length} characters"
        return None

    def all_within(self, events: list[dict], owner: str | None, partition: int | None = None) -> bool:
        """Is every one of a message's decoded ``events`` within the bounds (``problem`` None for each)?

        Checked per message at a few C-speed passes over its events: the models once each, feature names once
        per distinct name, text lengths as one max. False only says that ``problem`` must look at each event.
        """
        if len(events) < COLUMN_CHECKS_FROM:  # a few events (a single one too) cost less one by one
            return not any(self.problem(event, owner, partition) for event in events)
        models = set(map(_MODEL, events))
        if owner is not None and (len(models) != 1 or owner not in models):
            return False
        if partition is not None and self.partition_of is not None and \
                any(self._partition(model) != partition for model in models):
            return False
        features = list(map(dict.get, events, repeat("features", len(events))))
        kinds = set(map(type, features))
        if kinds == _LABELS:
            return _longest_text(map(_LABEL, events)) <= self.max_category_length
        if kinds != _INFERENCE or max(map(len, features)) > self.max_features:
            return False
        names = set().union(*features)
        if (names and max(map(len, names)) > self.max_name_length) or not RESERVED_FEATURES.isdisjoint(names):
            return False
        texts = [chain.from_iterable(map(dict.values, features)), map(_PREDICTION, events)]
        scores = list(map(_SCORE, events))
        if not _NUMBERS_OR_NONE.issuperset(map(type, scores)):
            for score in scores:
                if isinstance(score, dict):
                    if len(score) > MAX_SCORE_CLASSES:
                        return False
                    texts.append(score)
        return _longest_text(chain.from_iterable(texts)) <= self.max_category_length

    def _partition(self, model: str) -> int:
        found = self._partitions.get(model)
        if found is None:
            if len(self._partitions) > 100_000:
                self._partitions.clear()
            found = self._partitions[model] = self.partition_of(model)  # type: ignore[misc]
        return found


_MODEL, _LABEL, _PREDICTION, _SCORE = map(itemgetter, ("model", "label", "prediction", "score"))
_LABELS = {type(None)}
_INFERENCE = {dict}
_NUMBERS_OR_NONE = frozenset({int, float, type(None)})


def _longest_text(values: Iterable) -> int:
    """The length of the longest string among ``values`` (0 without one)."""
    return max(map(len, filter(str.__instancecheck__, values)), default=0)


class ModelCatalog:
    """The model versions with saved state, as this worker knows them.

    Read from the store at the first batch and again after each rebalance (``forget``), then kept up to date
    with what the worker saves, so the check costs no Redis call in the common case; a version the catalog
    does not know is looked up (one call per batch, all such versions at once) before it is refused.
    """

    def __init__(self, store, max_models: int, max_versions_per_model: int) -> None:
        self._store = store
        self.max_models = max_models
        self.max_versions_per_model = max_versions_per_model
        self._versions: dict[str, set[str]] | None = None

    def forget(self) -> None:
        """Read the store again before the next check (after a rebalance: other workers saved meanwhile)."""
        self._versions = None

    def _known(self) -> dict[str, set[str]]:
        if self._versions is None:
            versions: dict[str, set[str]] = {}
            for model, version in self._store.models():
                versions.setdefault(model, set()).add(version)
            self._versions = versions
        return self._versions

    def saved(self, keys: Iterable[tuple[str, str]]) -> None:
        known = self._known()
        for model, version in keys:
            known.setdefault(model, set()).add(version)

    def admit(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Refused (model, version) keys, in the order given, with their reason code; the rest are admitted
        (and count against the caps from now on)."""
        known = self._known()
        candidates = {}
        for key in keys:
            model, version = key
            versions = known.get(model)
            if versions is not None and version in versions:
                continue
            if versions is None and len(known) >= self.max_models:
                candidates[key] = "too_many_models"
            elif versions is not None and len(versions) >= self.max_versions_per_model:
                candidates[key] = "too_many_versions"
            else:
                known.setdefault(model, set()).add(version)
        if not candidates:
            return {}
        existing = self._store.existing(list(candidates))  # saved by another worker since the catalog was read
        self.saved(existing)
        return {k: code for k, code in candidates.items() if k not in existing}

    def label_models_refused(self, models: list[str]) -> list[str]:
        """Those of ``models`` (of a batch's labels) without state while ``max_models`` models have state: their
        predictions are refused (``too_many_models``), so their labels could never be joined; kept, each would
        wait in Redis until it expires."""
        known = self._known()
        if len(known) < self.max_models:
            return []
        refused = []
        for model in models:
            if model in known:
                continue
            versions = self._store.versions_of(model)  # given state by another worker since the catalog was read
            if versions:
                self.saved((model, v) for v in versions)
            else:
                refused.append(model)
        return refused

    def refusal(self, code: str, model: str, versions: list[str], events: list[dict], excerpt: str) -> Rejection:
        """One dead letter for the events of one message refused for ``code`` (``excerpt``: the first one's)."""
        shown = ", ".join(repr(v[:64]) for v in versions[:5]) + (", ..." if len(versions) > 5 else "")
        if code == "too_many_models" and not versions:
            reason = f"{len(events)} labels of a model without state; {self.max_models} models have state already " \
                     "(DRIFTLINE_MAX_MODELS), so its predictions are refused and its labels cannot be joined"
        elif code == "too_many_models":
            reason = f"{len(events)} events of a new model; {self.max_models} models have state already " \
                     "(DRIFTLINE_MAX_MODELS)"
        else:
            reason = f"{len(events)} events of {len(versions)} new versions ({shown}); the model has " \
                     f"{self.max_versions_per_model} versions already (DRIFTLINE_MAX_VERSIONS_PER_MODEL)"
        return Rejection(code, reason, model, events[0]["event_id"], excerpt, count=len(events))
